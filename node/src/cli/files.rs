//! Files the command line reads for the node: regular files or standard input (`-`, or `/dev/stdin`),
//! never more than a bound. A named pipe, a device, a directory or an oversized file is refused with one
//! sentence before anything is read, so nothing can make a command (or the daemon it talks to) wait or
//! grow without bound. Only bytes leave the client; the node parses them.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{bail, Context};
use deskmesh_core::api::Bytes;
use deskmesh_core::ops::listing::{FileBytes, FileFormat};

/// Reads `path` (or standard input) whole, refusing anything but a regular file or stdin and anything
/// over `limit` bytes. `what` names the file in messages ("a listing file"). Returns the name to use in
/// messages and the bytes.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> anyhow::Result<(String, Vec<u8>)> {
    if is_stdin(path) {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        if bytes.len() as u64 > limit {
            bail!(
                "standard input holds more than {}; {what} may be at most that",
                size(limit)
            );
        }
        return Ok(("standard input".into(), bytes));
    }
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        bail!("{name} is a directory; give {what} instead");
    }
    if !kind.is_file() {
        let special = if kind.is_fifo() {
            "a named pipe"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        bail!(
            "{name} is {special}; give {what} that is a regular file, or - to read standard input"
        );
    }
    if meta.len() > limit {
        bail!(
            "{name} is {}; {what} may be at most {}",
            size(meta.len()),
            size(limit)
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .with_context(|| format!("cannot read {name}"))?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    if bytes.len() as u64 > limit {
        bail!("{name} grew past {} while it was read", size(limit));
    }
    Ok((name, bytes))
}

/// A listing file: JSON, or TOML by its `.toml` extension (standard input: TOML unless it starts with `{`).
pub fn read_listing(path: &Path, limit: u64) -> anyhow::Result<FileBytes> {
    let (name, bytes) = read_bounded(path, limit, "a listing file")?;
    let toml = if is_stdin(path) {
        bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b != b'{')
    } else {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    };
    Ok(FileBytes {
        name,
        format: if toml {
            FileFormat::Toml
        } else {
            FileFormat::Json
        },
        bytes: Bytes(bytes),
    })
}

/// Writes `bytes` to a new file at `path`; an existing file is kept unless `force`.
pub fn write_new(path: &Path, bytes: &[u8], force: bool) -> anyhow::Result<()> {
    let name = path.display();
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{name} exists already; edit it, or pass --force to replace it")
        } else {
            anyhow::anyhow!("cannot write {name}: {e}")
        }
    })?;
    std::io::Write::write_all(&mut f, bytes).with_context(|| format!("cannot write {name}"))
}

/// A file name for people from a space's name: lower case ASCII letters and digits joined by `-`
/// (accents dropped, at most 60 characters), `space` when nothing is left.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => {
                'a'
            }
            'ç' | 'Ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
            'ñ' | 'Ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'ø' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
            'ß' => 's',
            c => c.to_ascii_lowercase(),
        };
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 60 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "space".into()
    } else {
        out
    }
}

/// Whether the regular file at `path` starts with `magic`; `false` for standard input (which cannot be
/// peeked at) and for anything unreadable (reading it whole then says why).
pub fn starts_with(path: &Path, magic: &[u8]) -> bool {
    if is_stdin(path) {
        return false;
    }
    let mut head = vec![0u8; magic.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == magic)
}

pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new("/dev/stdin")
}

/// A byte count for people.
fn size(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn directories_pipes_devices_and_large_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_bounded(dir.path(), 1024, "a listing file").unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let fifo = dir.path().join("pipe");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        // Reading a pipe nobody writes would block: it must be refused from its metadata alone.
        let err = read_bounded(&fifo, 1024, "a listing file").unwrap_err();
        assert!(err.to_string().contains("named pipe"), "{err}");
        let err = read_bounded(Path::new("/dev/zero"), 1024, "a listing file").unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; 2048]).unwrap();
        let err = read_bounded(&big, 1024, "a listing file").unwrap_err();
        assert!(err.to_string().contains("at most 1.0 KiB"), "{err}");
        let ok = dir.path().join("ok.toml");
        std::fs::write(&ok, "name = \"x\"").unwrap();
        let file = read_listing(&ok, 1024).unwrap();
        assert_eq!(file.format, FileFormat::Toml);
        assert_eq!(file.bytes.0, b"name = \"x\"");
    }
}
