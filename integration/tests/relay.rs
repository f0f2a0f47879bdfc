//! NAT traversal end to end: real `deskmesh run` processes on 127.0.0.1 (mDNS off), every wait a poll
//! against a deadline.
//!
//! - `a_node_listening_only_through_a_relay_is_reached_by_its_circuit`: A, the coordinator, is the hub and
//!   the relay; C listens only on a circuit through A; B knows nothing but C's circuit address. B reaches
//!   C through A (the relay and client log lines prove it, and `peers` shows the circuit), and B and C
//!   replicate listings and seat updates. DCUtR may upgrade the connection to a direct one on loopback,
//!   so the test accepts either outcome but checks that `relayed` always matches the addresses.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use deskmesh_integration::{listing_json, TestNode};
use serde_json::Value;

/// How long any condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(100);

/// A running `deskmesh run`, killed when dropped.
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_path(node: &TestNode) -> PathBuf {
    node.dir.path().join("run.log")
}

fn log(node: &TestNode) -> String {
    std::fs::read_to_string(log_path(node)).unwrap_or_default()
}

/// The daemon logs of these nodes, for failure messages.
fn logs(nodes: &[(&str, &TestNode)]) -> String {
    let mut out = String::new();
    for (name, n) in nodes {
        out.push_str(&format!("\n---- node {name} ----\n{}", log(n)));
    }
    out
}

/// Polls `check` until it returns true; panics with `what` and the logs after [`DEADLINE`].
fn wait_until(what: &str, nodes: &[(&str, &TestNode)], mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > DEADLINE {
            panic!("timed out waiting until {what}{}", logs(nodes));
        }
        std::thread::sleep(POLL);
    }
}

/// Starts `deskmesh run --no-mdns ARGS` and waits until its control socket answers.
fn start(node: &TestNode, args: &[&str]) -> Daemon {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(node))
        .expect("open log");
    let _ = std::fs::remove_file(node.home().join("control.sock"));
    let mut cmd = node.cmd(&["run", "--no-mdns"]);
    cmd.args(args)
        .env("RUST_LOG", "warn,deskmesh_node=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut daemon = Daemon {
        child: cmd.spawn().expect("spawn deskmesh run"),
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("deskmesh run exited with {status}{}", logs(&[("", node)]));
        }
        // Ask only once the daemon has its socket: without one, `status` would open the store itself.
        let socket = node.home().join("control.sock");
        let out = socket.exists().then(|| node.run(&["status", "--json"]));
        if let Some(out) = out.filter(|o| o.status.success()) {
            let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
            if v["running"] == true {
                return daemon;
            }
        }
        if start.elapsed() > DEADLINE {
            panic!("deskmesh run never answered{}", logs(&[("", node)]));
        }
        std::thread::sleep(POLL);
    }
}

/// The listen addresses `status` shows (full multiaddrs ending in the node's peer id).
fn listen_addrs(node: &TestNode) -> Vec<String> {
    let out = node.run(&["status", "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    v["listen"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `peers --json` of a running node, or none while it cannot answer.
fn peers(node: &TestNode) -> Vec<Value> {
    let out = node.run(&["peers", "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("peers JSON");
    v["peers"].as_array().cloned().unwrap_or_default()
}

fn rows(node: &TestNode) -> Vec<Value> {
    let out = node.run(&["spaces", "list", "--json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("spaces list JSON");
    v["spaces"].as_array().cloned().unwrap_or_default()
}

fn shows(node: &TestNode, space: &str) -> bool {
    rows(node).iter().any(|r| r["id"] == space)
}

/// Free seats of `space`'s pool "hot" as `spaces list` shows them.
fn hot_seats(node: &TestNode, space: &str) -> Option<u64> {
    rows(node)
        .iter()
        .find(|r| r["id"] == space)?
        .get("seats")?
        .as_array()?
        .iter()
        .find(|p| p["pool"] == "hot")
        .and_then(|p| p["availability"]["Count"].as_u64())
}

/// A new space admitted by `coord`, joined, with its listing signed before any daemon runs.
fn space(coord: &TestNode, name: &str) -> (TestNode, String) {
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

/// Whether `node`'s `peers` lists `peer` with a `/p2p-circuit` address; asserts on the way that `relayed`
/// says exactly whether every address of the peer goes through a relay.
fn listed_through_a_circuit(node: &TestNode, peer: &str) -> bool {
    let mut circuit = false;
    for p in peers(node).iter().filter(|p| p["peer_id"] == peer) {
        let addrs: Vec<&str> = p["addresses"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let all_relayed = !addrs.is_empty() && addrs.iter().all(|a| a.contains("/p2p-circuit/"));
        assert_eq!(
            p["relayed"], all_relayed,
            "`relayed` must say whether every connection goes through a relay: {p}"
        );
        circuit |= addrs.iter().any(|a| a.contains("/p2p-circuit/"));
    }
    circuit
}

fn peer_id(node: &TestNode) -> String {
    node.json(&["status"])["peer_id"]
        .as_str()
        .expect("peer_id")
        .to_string()
}

#[test]
fn a_node_listening_only_through_a_relay_is_reached_by_its_circuit() {
    let a = TestNode::new();
    a.init("coordinator");
    a.ok(&["alliance", "create", "Relay Alliance"]);
    let (b, b_space) = space(&a, "Space B");
    let (c, c_space) = space(&a, "Space C");
    let (a_id, b_id, c_id) = (peer_id(&a), peer_id(&b), peer_id(&c));
    let all = [("A", &a), ("B", &b), ("C", &c)];

    let _da = start(&a, &["--listen", "/ip4/127.0.0.1/tcp/0"]);
    let mut a_addr = String::new();
    wait_until("A listens", &all, || {
        a_addr = listen_addrs(&a).into_iter().next().unwrap_or_default();
        !a_addr.is_empty()
    });
    assert!(a_addr.ends_with(&format!("/p2p/{a_id}")), "{a_addr}");

    // C listens on nothing but a circuit through A.
    let circuit = format!("{a_addr}/p2p-circuit");
    let _dc = start(&c, &["--listen", &circuit]);
    let mut c_addr = String::new();
    wait_until("C's reservation on A is accepted", &all, || {
        let listen = listen_addrs(&c);
        c_addr = listen.first().cloned().unwrap_or_default();
        !listen.is_empty()
    });
    let listen = listen_addrs(&c);
    assert!(
        listen.iter().all(|l| l.contains("/p2p-circuit/")),
        "C listens only through the relay: {listen:?}"
    );
    assert_eq!(c_addr, format!("{circuit}/p2p/{c_id}"));
    wait_until("both sides log the reservation", &all, || {
        log(&c).contains("relay reservation accepted")
            && log(&a).contains("serving a relay reservation")
    });

    // B knows only C's circuit address.
    let _db = start(
        &b,
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", &c_addr],
    );
    wait_until("B lists C as connected through the circuit", &all, || {
        listed_through_a_circuit(&b, &c_id)
    });
    wait_until("C lists B as connected through the circuit", &all, || {
        listed_through_a_circuit(&c, &b_id)
    });
    wait_until("the relay and both ends log the circuit", &all, || {
        log(&a).contains("relaying a circuit")
            && log(&b).contains("relayed connection opened through a relay")
            && log(&c).contains("relayed connection accepted from a peer")
    });
    let a_log = log(&a);
    assert!(
        a_log
            .lines()
            .any(|l| l.contains("relaying a circuit") && l.contains(&b_id) && l.contains(&c_id)),
        "A relays from B to C{}",
        logs(&all)
    );

    // B and C replicate listings and seat updates.
    wait_until("B shows C's listing and C shows B's", &all, || {
        shows(&b, &c_space) && shows(&c, &b_space)
    });
    c.ok(&["seats", "set", "--pool", "hot", "4"]);
    wait_until("B shows C's seat update", &all, || {
        hot_seats(&b, &c_space) == Some(4)
    });
    b.ok(&["seats", "set", "--pool", "hot", "2"]);
    wait_until("C shows B's seat update", &all, || {
        hot_seats(&c, &b_space) == Some(2)
    });

    // The connection may have been upgraded to a direct one; either way the last `peers` is consistent.
    let upgraded =
        log(&b).contains("hole punch succeeded") || log(&c).contains("hole punch succeeded");
    eprintln!("hole punch on loopback succeeded: {upgraded}");
}
