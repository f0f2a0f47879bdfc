//! The mesh: `deskmesh run`, a long-running node that moves signed items between stores over libp2p.
//!
//! [`behaviour`] composes the libp2p protocols and builds the swarm; [`service`] is the one task that owns
//! the swarm, the opened [`Node`] and the sans-I/O [`crate::sync::SyncEngine`], executes the engine's
//! intents, validates gossip through the node's `accept_*` paths and answers the control socket
//! ([`crate::control`]). Two-stage sync: gossipsub (one topic per alliance, strict validation) carries each
//! new signed item at once; on every connection and every ~30 s the engine reconciles item sets with the
//! peer and the missing items flow over request-response, roster operations first.
//!
//! Reachability: every node is a circuit-relay v2 server with conservative limits, so a member space with
//! a public address serves as a relay for the others; [`nat`] decides when this node listens through a
//! relay itself (a `/p2p-circuit` `--listen` address, or AutoNAT saying it is private) and DCUtR then
//! tries to turn relayed connections into direct ones. What a peer may cost the node is bounded: connections
//! and requests per peer ([`behaviour`]'s constants), gossip peer scores that graylist peers sending
//! rejected messages, and listing changes stored per space per hour ([`limits`]).

pub mod behaviour;
pub mod embedded;
pub mod limits;
pub mod nat;
pub mod service;

use std::fmt;

use anyhow::Context;
use libp2p::{identity, Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::home::Home;
use crate::ops::Node;

/// What `deskmesh run` was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Addresses to listen on; empty means all interfaces on the configured port (TCP and QUIC).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start, besides the invite's and the roster's.
    pub bootstrap: Vec<Multiaddr>,
    /// Local-network discovery.
    pub mdns: bool,
    /// Stops the node when it turns true (the demo runs several nodes in one process); Ctrl-C and
    /// SIGTERM always stop it.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

/// This node's libp2p peer id: the device key read as a libp2p ed25519 key.
pub fn peer_id(node: &Node) -> anyhow::Result<PeerId> {
    let mut seed = *node.signer().seed();
    let keypair = identity::Keypair::ed25519_from_bytes(&mut seed)
        .context("the device key cannot be used as a libp2p identity")?;
    Ok(keypair.public().to_peer_id())
}

/// Starts the node and runs it until Ctrl-C or SIGTERM.
pub fn run(home: &Home, opts: RunOptions) -> anyhow::Result<()> {
    let node = open_when_free(home)?;
    node.require_roster()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(service::run(node, opts))
}

/// Opens the node, waiting up to five seconds while another process holds the store: a short command run
/// just before the daemon (`status`, `spaces list`) holds it only for a moment.
pub fn open_when_free(home: &Home) -> anyhow::Result<Node> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Node::open(home) {
            Ok(node) => return Ok(node),
            Err(e) => {
                let locked = e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<crate::store::StoreError>(),
                        Some(crate::store::StoreError::Locked { .. })
                    )
                });
                if !locked || std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// One connected peer, as `status` and `peers` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addresses: Vec<String>,
    /// Whether every connection to the peer goes through a relay.
    pub relayed: bool,
}

/// What `deskmesh status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Whether a `deskmesh run` daemon answered.
    pub running: bool,
    pub alliance: Option<String>,
    pub alliance_name: Option<String>,
    pub peer_id: String,
    /// Full multiaddrs ending in `/p2p/<peer id>`.
    pub listen: Vec<String>,
    pub peers: Vec<PeerInfo>,
    pub listings: usize,
    /// When a sync session with any peer last completed (RFC 3339).
    pub last_sync: Option<String>,
}

impl Status {
    /// The status of a home with no daemon running.
    pub fn offline(node: &Node) -> anyhow::Result<Self> {
        Ok(Self {
            running: false,
            alliance: node.alliance_id().map(|a| a.to_string()),
            alliance_name: node.roster().map(|r| r.name().to_string()),
            peer_id: peer_id(node)?.to_string(),
            listen: Vec::new(),
            peers: Vec::new(),
            listings: node.store.entries()?.len(),
            last_sync: None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alliance = match (&self.alliance_name, &self.alliance) {
            (Some(n), Some(a)) => format!("{n} ({a})"),
            _ => "none".to_string(),
        };
        writeln!(
            f,
            "daemon:    {}",
            if self.running {
                "running"
            } else {
                "not running (start it with `deskmesh run`)"
            }
        )?;
        writeln!(f, "alliance:  {alliance}")?;
        writeln!(f, "peer id:   {}", self.peer_id)?;
        for a in &self.listen {
            writeln!(f, "listening: {a}")?;
        }
        writeln!(f, "peers:     {}", self.peers.len())?;
        writeln!(f, "listings:  {}", self.listings)?;
        write!(
            f,
            "last sync: {}",
            self.last_sync.as_deref().unwrap_or("never")
        )
    }
}

/// What `deskmesh peers` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peers {
    pub peers: Vec<PeerInfo>,
}

impl fmt::Display for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.peers.is_empty() {
            return write!(f, "no peers connected");
        }
        for (i, p) in self.peers.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{} {} {}",
                p.peer_id,
                if p.relayed { "relayed" } else { "direct" },
                p.addresses.join(" ")
            )?;
        }
        Ok(())
    }
}
