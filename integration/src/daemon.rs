//! Helpers for tests that run `deskmesh run` daemons: start one and wait until its control socket
//! answers, poll a condition against a deadline (never a fixed sleep), read a node's directory through
//! the CLI, and admit a space with a signed listing. Every daemon logs to `run.log` beside its home, and
//! a timed-out wait prints the logs of the nodes involved.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{listing_json, TestNode};

/// How long any condition may take to come true.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(100);

/// A running `deskmesh run`, killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    /// The node's first listen address, ending in `/p2p/<peer id>`.
    pub addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the node's daemon logs go.
pub fn log_path(node: &TestNode) -> PathBuf {
    node.dir.path().join("run.log")
}

/// The node's daemon log so far.
pub fn log(node: &TestNode) -> String {
    std::fs::read_to_string(log_path(node)).unwrap_or_default()
}

/// The daemon logs of these nodes, for failure messages.
pub fn logs(nodes: &[&TestNode]) -> String {
    let mut out = String::new();
    for (i, n) in nodes.iter().enumerate() {
        out.push_str(&format!("\n---- node {i} ----\n{}", log(n)));
    }
    out
}

/// Polls `check` until it returns true; panics with `what` and the logs after [`DEADLINE`].
pub fn wait_until(what: &str, nodes: &[&TestNode], check: impl FnMut() -> bool) {
    wait_until_within(what, DEADLINE, nodes, check);
}

/// [`wait_until`] with a deadline of its own, for what the mesh only promises within a longer bound.
pub fn wait_until_within(
    what: &str,
    deadline: Duration,
    nodes: &[&TestNode],
    mut check: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > deadline {
            panic!("timed out waiting until {what}{}", logs(nodes));
        }
        std::thread::sleep(POLL);
    }
}

/// Starts `deskmesh run --no-mdns ARGS` and waits until its control socket answers with a listen
/// address (an address only through a relay may come later: then `addr` is empty).
pub fn start(node: &TestNode, args: &[&str]) -> Daemon {
    start_in(node, None, args)
}

/// [`start`] inside network namespace `ns` (see [`crate::lab`]); the control socket is a file, so every
/// other command reaches the daemon from outside the namespace as usual.
pub fn start_in(node: &TestNode, ns: Option<&str>, args: &[&str]) -> Daemon {
    let mut daemon = spawn_in(node, ns, args);
    wait_ready(node, &mut daemon);
    daemon
}

/// Starts the daemon without waiting for it.
pub fn spawn_in(node: &TestNode, ns: Option<&str>, args: &[&str]) -> Daemon {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(node))
        .expect("open log");
    // A daemon killed earlier leaves its socket file behind; the wait below must only see the new one.
    let _ = std::fs::remove_file(node.home().join("control.sock"));
    let mut cmd = match ns {
        None => node.cmd(&["run", "--no-mdns"]),
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns])
                .arg(crate::deskmesh_bin())
                .arg("--home")
                .arg(node.home())
                .args(["run", "--no-mdns"]);
            c.env_remove("DESKMESH_HOME").env("NO_COLOR", "1");
            c
        }
    };
    cmd.args(args)
        .env("RUST_LOG", "warn,deskmesh_node=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    Daemon {
        child: cmd.spawn().expect("spawn deskmesh run"),
        addr: String::new(),
    }
}

/// Waits until the daemon answers on its control socket, and notes its first listen address.
pub fn wait_ready(node: &TestNode, daemon: &mut Daemon) {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("deskmesh run exited with {status}{}", logs(&[node]));
        }
        // Without a daemon, `status` opens the store itself and would hold the lock the starting daemon
        // needs, so ask only once the daemon has created its socket (after it opened the store).
        let socket = node.home().join("control.sock");
        let out = socket.exists().then(|| node.run(&["status", "--json"]));
        if let Some(out) = out.filter(|o| o.status.success()) {
            let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
            if v["running"] == true {
                if let Some(addr) = v["listen"][0].as_str() {
                    assert!(
                        addr.contains("/p2p/12D3"),
                        "listen address without peer id: {addr}"
                    );
                    daemon.addr = addr.to_string();
                }
                return;
            }
        }
        if start.elapsed() > DEADLINE {
            panic!(
                "deskmesh run never answered on its control socket{}",
                logs(&[node])
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The rows of `spaces list --json`, or none while the node cannot answer.
pub fn rows(node: &TestNode) -> Vec<Value> {
    let out = node.run(&["spaces", "list", "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("spaces list JSON");
    v["spaces"].as_array().cloned().unwrap_or_default()
}

/// The row of `space` among `rows`.
pub fn row_of<'a>(rows: &'a [Value], space: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["id"] == space)
}

/// Free seats of `space`'s pool "hot" as `spaces list` shows them.
pub fn hot_seats(node: &TestNode, space: &str) -> Option<u64> {
    let rows = rows(node);
    row_of(&rows, space)?["seats"]
        .as_array()?
        .iter()
        .find(|p| p["pool"] == "hot")
        .and_then(|p| p["availability"]["Count"].as_u64())
}

/// A new space admitted by `coord`, joined, with its listing signed before any daemon runs.
pub fn space(coord: &TestNode, name: &str) -> (TestNode, String) {
    let node = TestNode::new();
    let key = node.init(name);
    let token = coord.ok(&["alliance", "invite", &key, "--space", name]);
    let token = token.lines().next().expect("token line").to_string();
    node.ok(&["alliance", "join", &token]);
    let id = node.json(&["alliance", "show"])["this_space"]
        .as_str()
        .expect("this_space")
        .to_string();
    let file = node.dir.path().join("listing.json");
    std::fs::write(&file, listing_json(&id, name).to_string()).expect("write listing");
    node.ok(&[
        "space",
        "edit",
        "--file",
        file.to_str().expect("utf-8 path"),
    ]);
    (node, id)
}
