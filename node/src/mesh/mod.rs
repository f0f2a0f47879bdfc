//! The mesh: `deskmesh run`, a long-running node that moves signed items between stores over libp2p.
//!
//! [`behaviour`] composes the libp2p protocols and builds the swarm; [`service`] is the one task that owns
//! the swarm, the opened [`Node`] and the sans-I/O [`deskmesh_sync::SyncEngine`], executes the engine's
//! intents, takes every received item through the node's one ingest path and answers the control socket
//! ([`crate::control`]). Two-stage sync: gossipsub (one topic per alliance, strict validation) carries each
//! new signed item at once; on every connection and every ~30 s the engine reconciles item sets with the
//! peer and the missing items flow over request-response, roster operations first.
//!
//! Reachability: every node is a circuit-relay v2 server with conservative limits, so a member space with
//! a public address serves as a relay for the others; [`nat`] decides when this node listens through a
//! relay itself (a `/p2p-circuit` `--listen` address, or AutoNAT saying it is private) and DCUtR then
//! tries to turn relayed connections into direct ones. What a peer may cost the node is bounded: connections
//! and requests per peer ([`behaviour`]'s constants), handshakes per address and strangers' connections
//! with slots kept for known peers ([`guard`], which [`trust`] tells apart), gossip peer scores that
//! graylist peers sending rejected messages, and listing changes stored per space per hour ([`limits`]).
//! Dead connections are closed after failed pings, and [`peers`] keeps the peers learned at run time in the
//! home and decides when to dial them again.

pub mod behaviour;
pub mod embedded;
pub mod guard;
pub mod limits;
pub mod nat;
pub mod peers;
pub mod service;
pub mod trust;
pub mod watchdog;

use anyhow::Context;
use deskmesh_core::home::Home;
use deskmesh_core::node::Busy;
use deskmesh_core::Node;
use libp2p::Multiaddr;

/// What `deskmesh run` was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Addresses to listen on; empty means all interfaces on the configured port (TCP and QUIC).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start, besides the invite's and the roster's.
    pub bootstrap: Vec<Multiaddr>,
    /// Local-network discovery.
    pub mdns: bool,
    /// AutoNAT counts peers at private IPs (a network lab, a private WAN): see
    /// [`behaviour::autonat_config`].
    pub nat_private_ips: bool,
    /// Stops the node when it turns true (the demo runs several nodes in one process); Ctrl-C and
    /// SIGTERM always stop it.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Starts the node and runs it until Ctrl-C or SIGTERM.
pub fn run(home: &Home, opts: RunOptions) -> anyhow::Result<()> {
    if let Some(running) = crate::control::Remote::connect(&home.socket_path())? {
        anyhow::bail!(
            "this node is already running (pid {}, {}); stop it first, or give another --home",
            running.welcome().pid,
            running.welcome().server
        );
    }
    // The directory is read on other threads while the roster loads and the network starts.
    let node = open_when_free_by(home, Node::open_to_serve)?;
    node.require_roster()?;
    raise_file_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let exit = rt.block_on(service::run(node, home.clone(), opts))?;
    drop(rt);
    match exit {
        service::Exit::Stopped => Ok(()),
        service::Exit::Reopen => restart(),
    }
}

/// Raises the soft limit on open files to the hard one: every pending and established connection holds a
/// socket, and the connection limits ([`behaviour::MAX_PENDING_INCOMING`] and the rest) assume the process
/// may hold that many; a soft limit of 1,024 (a common default) would run out first.
fn raise_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
        }
    }
}

/// Replaces this process with a new `deskmesh run` with the same arguments: the store failed a write and
/// only a new process can open it again (sled 0.34 cannot reopen a database in the process that held it);
/// the new one takes back what the store noted before it serves anything.
fn restart() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find this program to restart it")?;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(anyhow::Error::new(err)
        .context("cannot restart the node to reopen its store; start it again"))
}

/// Opens the node, waiting up to five seconds while another process holds the store: a short command run
/// just before the daemon (`status`, `spaces list`) holds it only for a moment. A daemon that holds it
/// for good is named in the error.
pub fn open_when_free(home: &Home) -> anyhow::Result<Node> {
    open_when_free_by(home, Node::open)
}

/// [`open_when_free`] with another way of opening (such as [`Node::open_to_read`]).
pub fn open_when_free_by(
    home: &Home,
    open: impl Fn(&Home) -> anyhow::Result<Node>,
) -> anyhow::Result<Node> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open(home) {
            Ok(node) => return Ok(node),
            Err(e) => {
                let busy = e.chain().any(|c| c.downcast_ref::<Busy>().is_some());
                if !busy || std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use deskmesh_keys::{DeviceKey, Signer};

    #[test]
    fn the_core_computes_the_same_peer_id_as_libp2p() {
        for seed in [[1u8; 32], [42; 32], [255; 32]] {
            let key = DeviceKey::from_seed(&seed);
            let mut bytes = *key.seed();
            let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut bytes).expect("key");
            assert_eq!(
                deskmesh_core::peer_id::peer_id(&key.public_key()),
                keypair.public().to_peer_id().to_string()
            );
        }
    }
}
