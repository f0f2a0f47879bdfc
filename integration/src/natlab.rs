//! The NAT lab: one alliance spread over a [`Lab`] with private networks, shared by the NAT traversal test
//! (`tests/nat.rs`) and the `natbench` benchmark.
//!
//! - Public host 1 runs the coordinator's node, which listens on its bridge address: the one member with a
//!   public address, so the relay (every node is a relay server) and the bootstrap of the others.
//! - Private network `k` (1-based) holds one space's node behind a router of [`NatLab::KINDS`]`[k - 1]`:
//!   1 and 2 are endpoint-independent ("cone"), 3 is symmetric. Each listens on all interfaces (TCP and
//!   QUIC on [`PORT`]) and knows nothing but the relay's address.
//!
//! Every node runs with `--nat-private-ips`: the lab's "public" side is 10.x, which AutoNAT otherwise
//! ignores. The lab's addresses and namespaces come from [`Lab`]; the daemons' logs are `run.log` beside
//! each home, as for every daemon of [`crate::daemon`].

use std::cell::RefCell;

use serde_json::Value;

use crate::daemon::{self, space, Daemon};
use crate::lab::{Lab, NatKind};
use crate::TestNode;

/// The port every lab node listens on (TCP and QUIC).
pub const PORT: u16 = 4717;

/// The alliance in the lab, and its running daemons.
#[derive(Debug)]
pub struct NatLab {
    /// Index 0 is the relay, `k` the node on private network `k`; `None` while stopped. Fields drop in
    /// order: the daemons first, then their homes, then the lab.
    daemons: RefCell<Vec<Option<Daemon>>>,
    /// The coordinator, on the public side.
    pub relay: TestNode,
    /// The spaces on private networks 1, 2, 3, with their space ids.
    pub spaces: Vec<(TestNode, String)>,
    /// The relay's TCP address, ending in its peer id (known once it started).
    relay_addr: RefCell<String>,
    pub lab: Lab,
}

impl NatLab {
    /// The NAT in front of private networks 1, 2 and 3.
    pub const KINDS: [NatKind; 3] = [NatKind::Cone, NatKind::Cone, NatKind::Symmetric];

    /// Builds the lab and the alliance (no daemon runs yet), or `None` where namespaces are not permitted
    /// (see [`Lab::up`]). `tag` tells apart several labs of one process.
    pub fn new(tag: u32) -> Option<NatLab> {
        let lab = Lab::up(1, tag)?;
        for (i, kind) in Self::KINDS.iter().enumerate() {
            lab.nat(i + 1, *kind);
        }
        let relay = TestNode::new();
        relay.init("relay");
        relay.ok(&["alliance", "create", "NAT Lab Alliance"]);
        let spaces = (1..=Self::KINDS.len())
            .map(|k| space(&relay, &format!("Private {k}")))
            .collect();
        Some(NatLab {
            lab,
            relay,
            spaces,
            daemons: RefCell::new((0..=Self::KINDS.len()).map(|_| None).collect()),
            relay_addr: RefCell::new(String::new()),
        })
    }

    /// Node `i`: 0 the relay, `k` the space on private network `k`.
    pub fn node(&self, i: usize) -> &TestNode {
        if i == 0 {
            &self.relay
        } else {
            &self.spaces[i - 1].0
        }
    }

    /// Every node, for the logs of a failed wait.
    pub fn nodes(&self) -> Vec<&TestNode> {
        (0..=Self::KINDS.len()).map(|i| self.node(i)).collect()
    }

    /// The space id of the node on private network `k`.
    pub fn space_id(&self, k: usize) -> &str {
        &self.spaces[k - 1].1
    }

    /// Starts the relay on public host 1 and waits until its control socket answers.
    pub fn start_relay(&self) {
        let ip = self.lab.ip(1);
        let tcp = format!("/ip4/{ip}/tcp/{PORT}");
        let quic = format!("/ip4/{ip}/udp/{PORT}/quic-v1");
        let d = daemon::start_in(
            &self.relay,
            Some(&self.lab.host(1)),
            &["--listen", &tcp, "--listen", &quic, "--nat-private-ips"],
        );
        assert!(d.addr.contains("/p2p/"), "relay listens on {}", d.addr);
        let id = peer_id(&self.relay);
        *self.relay_addr.borrow_mut() = format!("{tcp}/p2p/{id}");
        self.daemons.borrow_mut()[0] = Some(d);
    }

    /// The relay's TCP address, ending in its peer id; empty before it first started.
    pub fn relay_addr(&self) -> String {
        self.relay_addr.borrow().clone()
    }

    /// Stops the relay (kills its process).
    pub fn stop_relay(&self) {
        self.daemons.borrow_mut()[0] = None;
    }

    /// Starts the node on private network `k`, bootstrapping from the relay only.
    pub fn start_private(&self, k: usize) {
        self.start_private_on(k, PORT);
    }

    /// [`NatLab::start_private`] listening on `port` (TCP and QUIC): a node restarted on a new port meets
    /// no NAT mapping or conntrack entry its previous run left in the routers.
    pub fn start_private_on(&self, k: usize, port: u16) {
        let relay = self.relay_addr();
        assert!(!relay.is_empty(), "start the relay first");
        let tcp = format!("/ip4/0.0.0.0/tcp/{port}");
        let quic = format!("/ip4/0.0.0.0/udp/{port}/quic-v1");
        let d = daemon::start_in(
            self.node(k),
            Some(&self.lab.private_host(k)),
            &[
                "--listen",
                &tcp,
                "--listen",
                &quic,
                "--bootstrap",
                &relay,
                "--nat-private-ips",
            ],
        );
        self.daemons.borrow_mut()[k] = Some(d);
    }

    /// Stops the node on private network `k`.
    pub fn stop_private(&self, k: usize) {
        self.daemons.borrow_mut()[k] = None;
    }
}

/// A running node's `status --json`, or `Null` while it cannot answer.
pub fn status(node: &TestNode) -> Value {
    let out = node.run(&["status", "--json"]);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Whether `status` says AutoNAT found the node private and it holds a relay reservation.
pub fn private_and_reserved(node: &TestNode) -> bool {
    let s = status(node);
    s["reachability"]["nat"] == "private"
        && s["reachability"]["relayed"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
}

/// The node's peer id.
pub fn peer_id(node: &TestNode) -> String {
    node.json(&["status"])["peer_id"]
        .as_str()
        .expect("peer_id")
        .to_string()
}

/// How `node` is connected to `peer` now, as `peers --json` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    None,
    /// Every connection goes through a relay.
    Relayed,
    /// At least one direct connection.
    Direct,
}

/// `node`'s link to `peer`; checks on the way that `relayed` agrees with the addresses.
pub fn link(node: &TestNode, peer: &str) -> Link {
    let out = node.run(&["peers", "--json"]);
    if !out.status.success() {
        return Link::None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("peers JSON");
    let Some(p) = v["peers"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["peer_id"] == peer))
    else {
        return Link::None;
    };
    let addrs: Vec<&str> = p["addresses"]
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let all_relayed = !addrs.is_empty() && addrs.iter().all(|a| a.contains("/p2p-circuit"));
    assert_eq!(
        p["relayed"], all_relayed,
        "`relayed` must say whether every connection goes through a relay: {p}"
    );
    if all_relayed {
        Link::Relayed
    } else {
        Link::Direct
    }
}
