//! The node's home directory: where each file lives, and opening them with clear errors.
//!
//! ```text
//! <home>/                      --home DIR, or $DESKMESH_HOME, or the platform data directory
//! ├── device.key               this node's ed25519 secret, mode 0600 (deskmesh-keys::keyfile)
//! ├── node.toml                node settings: display name, listen port (written by `init`), saved location
//! ├── store/                   the sled database (see docs/STORAGE.md)
//! ├── store.pid                which process holds the store now: pid and command (see [`StoreLock`])
//! ├── control.sock             the running daemon's control socket, owner-only (only while `run` is up)
//! ├── peers.json               peers learned at run time, with their addresses, to dial after a restart
//! └── demo/                    device keys of the sample spaces created by `deskmesh demo`
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Settings kept in `node.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeConfig {
    /// A human name for this node, shown to peers and in `status`.
    pub name: String,
    /// The TCP/QUIC port the mesh listens on; fixed at `init` so peers can save the address.
    pub listen_port: u16,
    /// Where the member usually is: distances are measured from here when asked (`spaces list --near`
    /// with no value, the TUI's distance column). Set with `deskmesh location set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SavedPlace>,
}

/// A saved point, and the city it was named by, if any.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedPlace {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The layout of one node's home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home given on the command line or in `DESKMESH_HOME`, else the platform data directory.
    pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(root) = explicit {
            return Ok(Self { root });
        }
        let dirs = directories::ProjectDirs::from("org", "deskmesh", "deskmesh").context(
            "cannot find a data directory for this user; pass --home DIR or set DESKMESH_HOME",
        )?;
        Ok(Self {
            root: dirs.data_dir().to_path_buf(),
        })
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn key_path(&self) -> PathBuf {
        self.root.join("device.key")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("node.toml")
    }

    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn socket_path(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// The peers the running node learned, kept across restarts (written by the mesh).
    pub fn peers_path(&self) -> PathBuf {
        self.root.join("peers.json")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root.join("store.pid")
    }

    pub fn demo_dir(&self) -> PathBuf {
        self.root.join("demo")
    }

    /// Creates the home directory with owner-only permissions.
    pub fn create(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create the home directory {}", self.root.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).with_context(
                || format!("cannot restrict permissions of {}", self.root.display()),
            )?;
        }
        Ok(())
    }

    pub fn is_initialised(&self) -> bool {
        self.key_path().exists()
    }

    pub fn read_config(&self) -> anyhow::Result<NodeConfig> {
        let path = self.config_path();
        let text = fs::read_to_string(&path).with_context(|| {
            format!("cannot read {}; run `deskmesh init` first", path.display())
        })?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid node.toml", path.display()))
    }

    pub fn write_config(&self, config: &NodeConfig) -> anyhow::Result<()> {
        let path = self.config_path();
        let text = toml::to_string_pretty(config).context("cannot encode node.toml")?;
        let tmp = path.with_extension("toml.tmp");
        fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// Fails with one sentence unless `init` has run here.
    pub fn require_initialised(&self) -> anyhow::Result<()> {
        if !self.is_initialised() {
            bail!(
                "no deskmesh node at {}; run `deskmesh init` first (or pass --home)",
                self.root.display()
            );
        }
        Ok(())
    }
}

/// Says which process holds the store while this value lives: `<home>/store.pid` holds its pid and
/// command line. sled's own file lock is what keeps a second process out; this file only lets that second
/// process say *who* holds the store and what to do about it. It is removed on drop (a killed process
/// leaves it behind, which [`holder`] notices because that pid is gone).
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
}

impl StoreLock {
    /// Records this process as the store's holder. Failing to write the note is not an error: the lock
    /// itself is sled's.
    pub fn record(home: &Home) -> Self {
        let path = home.lock_path();
        // The program's file name and its arguments as given, on one line.
        let mut args = std::env::args();
        let program = args
            .next()
            .map(|p| {
                Path::new(&p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or(p)
            })
            .unwrap_or_else(|| "deskmesh".into());
        let mut command = std::iter::once(program)
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
            .replace('\n', " ");
        if command.chars().count() > 120 {
            command = command.chars().take(119).chain(['…']).collect();
        }
        let text = format!("{}\n{command}\n", std::process::id());
        if let Err(e) = fs::write(&path, text) {
            tracing::debug!(path = %path.display(), error = %e, "cannot note which process holds the store");
        }
        Self { path }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Only our own note is removed: a later holder may have written its own.
        if holder_at(&self.path).is_some_and(|h| h.pid == std::process::id()) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The process that holds a home's store, as its note says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The first words of its command line, such as `deskmesh run` or `deskmesh tui`.
    pub command: String,
}

/// The live process that noted it holds `home`'s store, if any.
pub fn holder(home: &Home) -> Option<Holder> {
    let h = holder_at(&home.lock_path())?;
    // A note left by a killed process names a pid that is gone (or reused; then the message is merely
    // less precise).
    let alive =
        Path::new("/proc").join(h.pid.to_string()).exists() || !Path::new("/proc/self").exists();
    alive.then_some(h)
}

fn holder_at(path: &Path) -> Option<Holder> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let command = lines.next().unwrap_or("deskmesh").trim().to_string();
    Some(Holder { pid, command })
}
