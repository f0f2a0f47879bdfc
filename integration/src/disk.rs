//! A small disk for one test: [`Tmpfs`] mounts a tmpfs of a few MiB (root only) that can be filled to the
//! last byte and emptied again, to see what a node does when its disk is full. Unmounted when dropped,
//! also when the test fails. Where mounting is not permitted the test skips with a note on stderr,
//! except under `CI`, where it must work and the test fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB at `path` (created if missing).
    pub fn mount(path: &Path, mib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("create the mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "mounting a tmpfs is required in CI: {why}"
                );
                eprintln!("SKIPPED: cannot mount a tmpfs here ({why}); run as root");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes zeros until the disk is full; the file to remove for room again.
    pub fn fill(&self) -> PathBuf {
        let file = self.path.join("filler");
        let mut f = std::fs::File::create(&file).expect("create the filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        for size in [4096usize, 512, 1] {
            while f.write_all(&chunk[..size]).is_ok() {}
        }
        file
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
