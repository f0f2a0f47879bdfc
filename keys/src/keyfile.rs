//! The device key file: written owner-only, refused when others can read it (as ssh does).
//!
//! The file holds one line, `deskmesh-device-key-v1 <base58 seed>`, so a stray `cat` shows what it is and a
//! truncated copy is detected. It is written to a temporary file with mode 0600, synced, and renamed into
//! place, so a crash never leaves half a key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::key::DeviceKey;

const HEADER: &str = "deskmesh-device-key-v1";

/// Why the device key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("no device key at {0}; run `deskmesh init` first")]
    Missing(PathBuf),
    #[error(
        "device key {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("device key {0} is not a deskmesh key file (corrupt or truncated)")]
    Malformed(PathBuf),
    #[error("a device key already exists at {0}; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("cannot access device key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `key` to `path` with mode 0600; refuses to replace an existing key.
pub fn write(path: &Path, key: &DeviceKey) -> Result<(), KeyFileError> {
    if path.exists() {
        return Err(KeyFileError::Exists(path.to_path_buf()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    let line = Zeroizing::new(format!(
        "{HEADER} {}\n",
        bs58::encode(key.seed().as_ref()).into_string()
    ));
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io(&tmp))?;
        f.write_all(line.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = fs::File::open(dir) {
        // Syncing the directory makes the rename durable; failure here is not fatal on filesystems
        // that do not support it.
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads the key at `path`, refusing a file that group or others can read.
pub fn read(path: &Path) -> Result<DeviceKey, KeyFileError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyFileError::Missing(path.to_path_buf()))
        }
        Err(e) => return Err(io(path)(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io(path))?);
    let malformed = || KeyFileError::Malformed(path.to_path_buf());
    let mut parts = text.split_whitespace();
    if parts.next() != Some(HEADER) {
        return Err(malformed());
    }
    let seed_text = parts.next().ok_or_else(malformed)?;
    let seed = Zeroizing::new(
        bs58::decode(seed_text)
            .into_vec()
            .map_err(|_| malformed())?,
    );
    let arr: Zeroizing<[u8; 32]> =
        Zeroizing::new(seed.as_slice().try_into().map_err(|_| malformed())?);
    Ok(DeviceKey::from_seed(&arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Signer;

    #[test]
    fn round_trip_and_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.key");
        let key = DeviceKey::generate();
        write(&path, &key).expect("write");
        assert_eq!(read(&path).expect("read").public_key(), key.public_key());
        assert!(matches!(write(&path, &key), Err(KeyFileError::Exists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = read(&path).expect_err("0644 must be refused");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn truncated_file_is_malformed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("device.key");
        write(&path, &DeviceKey::generate()).expect("write");
        let text = fs::read_to_string(&path).expect("read");
        fs::write(&path, &text[..text.len() / 2]).expect("truncate");
        assert!(matches!(read(&path), Err(KeyFileError::Malformed(_))));
        assert!(matches!(
            read(&dir.path().join("nope")),
            Err(KeyFileError::Missing(_))
        ));
    }
}
