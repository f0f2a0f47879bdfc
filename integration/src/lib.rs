//! Test support for deskmesh's end-to-end tests: finding the real `deskmesh` binary and running it in
//! temporary homes. The tests themselves live in `tests/`, one file per area.
//!
//! The binary is the one `cargo test --workspace` builds beside the test executables
//! (`target/<profile>/deskmesh`); when this crate's tests run alone and it is missing or stale, it is built
//! once. [`daemon`] starts `deskmesh run` processes and waits on them; [`lab`] puts them in network
//! namespaces with partitions and loss, and [`natlab`] spreads an alliance over private networks behind
//! NAT routers; [`disk`] gives a node a disk that can be filled.

pub mod daemon;
pub mod disk;
pub mod lab;
pub mod natlab;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The path of the `deskmesh` binary under test.
pub fn deskmesh_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("DESKMESH_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test-exe> -> target/<profile>/deskmesh
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps");
        let bin = profile_dir.join(format!("deskmesh{}", std::env::consts::EXE_SUFFIX));
        // `cargo test --workspace` builds the binary in the same run as this test executable (node has an
        // integration test of its own, which makes cargo build its binary). `cargo test -p
        // deskmesh-integration`, or `cargo test --workspace --test NAME`, relinks this executable when the
        // node changed (it depends on the node crate) but not the binary: a binary much older than this
        // executable, or older than a source it is built from, is stale, so build it (a no-op when cargo
        // finds it fresh).
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let stale = match (modified(&bin), modified(&exe)) {
            (Some(b), Some(e)) => {
                b + std::time::Duration::from_secs(600) < e
                    || newest_source().is_some_and(|s| s > b)
            }
            _ => true,
        };
        if stale {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build.args([
                "build",
                "--quiet",
                "-p",
                "deskmesh-node",
                "--bin",
                "deskmesh",
            ]);
            if profile_dir.file_name().is_some_and(|p| p == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "cargo build of deskmesh failed");
        }
        bin
    })
}

/// When a source of the `deskmesh` binary last changed: the newest `.rs` or `Cargo.toml` in the crates
/// it is built from.
fn newest_source() -> Option<std::time::SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, newest);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                || path.file_name().is_some_and(|n| n == "Cargo.toml")
            {
                if let Ok(m) = entry.metadata().and_then(|m| m.modified()) {
                    *newest = (*newest).max(Some(m));
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let mut newest = None;
    for krate in ["keys", "crdt-model", "node", "tui"] {
        walk(&root.join(krate), &mut newest);
    }
    newest
}

/// One node's home in a temporary directory, and a way to run `deskmesh` against it.
#[derive(Debug)]
pub struct TestNode {
    pub dir: tempfile::TempDir,
}

impl TestNode {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A command for this node, with `--home` set and a clean environment for deskmesh variables.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(deskmesh_bin());
        c.arg("--home").arg(self.home()).args(args);
        c.env_remove("DESKMESH_HOME").env("NO_COLOR", "1");
        c
    }

    /// Runs `deskmesh ARGS` and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn deskmesh")
    }

    /// Runs `deskmesh ARGS`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "deskmesh {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs `deskmesh ARGS`, asserting failure with exactly one line on stderr; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "deskmesh {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "deskmesh {args:?} panicked: {stderr}"
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "one sentence expected, got: {stderr}"
        );
        stderr.trim().to_string()
    }

    /// Runs a `--json` command and parses its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("valid JSON output")
    }

    /// Runs a `--json` command that must exit with `code` (0 is success) and parses its output.
    pub fn json_exit(&self, args: &[&str], code: i32) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert_eq!(
            out.status.code(),
            Some(code),
            "deskmesh {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("valid JSON output")
    }

    /// `audit --json`: exit 0 when it reports nothing wrong, 3 when it reports something (checked against
    /// its `ok` field).
    pub fn audit(&self) -> serde_json::Value {
        let out = self.run(&["audit", "--json"]);
        let audit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "audit printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let expected = if audit["ok"] == true { 0 } else { 3 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "audit exit code for {audit}"
        );
        audit
    }

    /// `init`, returning the node's public key.
    pub fn init(&self, name: &str) -> String {
        let out = self.ok(&["init", "--name", name]);
        out.lines()
            .next()
            .expect("public key line")
            .trim()
            .to_string()
    }
}

impl Default for TestNode {
    fn default() -> Self {
        Self::new()
    }
}

/// A coordinator and one admitted space, joined, the usual start of a test.
pub fn alliance_with_space() -> (TestNode, TestNode, String) {
    let coord = TestNode::new();
    coord.init("coordinator");
    coord.ok(&["alliance", "create", "Test Alliance"]);
    let space = TestNode::new();
    let key = space.init("space");
    let token = coord.ok(&["alliance", "invite", &key, "--space", "Space One"]);
    let token = token.lines().next().expect("token line").to_string();
    space.ok(&["alliance", "join", &token]);
    let space_id = space.json(&["alliance", "show"])["this_space"]
        .as_str()
        .expect("this_space")
        .to_string();
    (coord, space, space_id)
}

/// A valid listing for `space_id`, as JSON text.
pub fn listing_json(space_id: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "id": space_id,
        "name": name,
        "description": "A test space by the river.",
        "category": "coworking_space",
        "location": {
            "lon": -9.14,
            "lat": 38.71,
            "address": {"street": "Rua A 1", "city": "Lisbon", "postcode": "1000-001", "country": "PT"},
            "timezone": "Europe/Lisbon"
        },
        "opening_hours": "Mo-Fr 08:00-18:00",
        "offers": [{"product": "day_pass", "price": 15.0, "currency": "EUR", "booking": "walk_in"}],
        "internet": {"wifi": true, "down_mbps": 200.0},
        "amenities": ["coffee", "printer"],
        "accessibility": {"wheelchair": "yes"},
        "seat_pools": [{"id": "hot", "kind": "hot_desk", "capacity": 10, "access": "walk_in"}]
    })
}
