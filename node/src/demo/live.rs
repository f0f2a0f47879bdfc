//! `deskmesh demo`: a small live alliance on loopback, with the terminal UI open on a member's node.
//!
//! [`prepare`] lays the demo out once in its home: the home itself is the coordinator's node, holding the
//! sample alliance [`crate::demo`] creates; under `<home>/demo/nodes/` it adds a node for a few of the
//! sample spaces (each with that space's own device key) and a member's laptop with no space, joined with
//! a member token as a real member would. The space and member nodes start with (part of) the roster only and get every listing and seat beacon over the mesh.
//! [`run`] starts all of them as real mesh nodes in this process (TCP and QUIC on 127.0.0.1, noise,
//! each with its own sled store and control socket, mDNS off so the demo stays on this machine), has the
//! space nodes change their open seats now and then, and opens the TUI on the member node through its
//! control socket, exactly as `deskmesh tui` attaches to a daemon. Quitting the TUI stops every node;
//! the data stays, and running the demo again with `--home` starts the same alliance.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_keys::keyfile;
use deskmesh_keys::roster::SignedOp;
use deskmesh_keys::SpaceId;
use libp2p::Multiaddr;

use deskmesh_core::api::Handle;
use deskmesh_core::home::{Home, NodeConfig};
use deskmesh_core::ops::seats::DEFAULT_TTL_S;
use deskmesh_core::{node, Node};

use crate::control::Remote;
use crate::mesh::{self, embedded::Embedded};

/// How many sample spaces get a running node of their own.
const SPACE_NODES: usize = 3;

/// What `demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Open the TUI on the member node (when the terminal allows); otherwise run until Ctrl-C.
    pub tui: bool,
    /// Mean time between seat changes on the space nodes; `None` leaves seats alone.
    pub churn: Option<Duration>,
}

/// Seat pools of a space: (pool id, capacity).
pub type Pools = Vec<(String, u32)>;

/// The part one node plays in the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Coordinator,
    /// A space's own node: its device key signs for the space.
    Space {
        space: SpaceId,
        /// Its seat pools: (pool id, capacity).
        pools: Pools,
    },
    /// A member's laptop: replicates the directory, signs nothing.
    Member,
}

/// One node of the demo alliance.
#[derive(Debug, Clone)]
pub struct DemoNode {
    pub name: String,
    pub home: Home,
    pub role: Role,
}

/// Creates the demo alliance in `home` if it is not there yet and returns its nodes, coordinator first
/// and member last.
pub fn prepare(home: &Home) -> anyhow::Result<Vec<DemoNode>> {
    if !home.is_initialised() {
        crate::demo::run(home, Utc::now())?;
    }
    let coordinator = Node::open(home)?;
    let roster = coordinator.require_roster()?;
    let ops: Vec<SignedOp> = roster
        .ops_in_order()
        .into_iter()
        .map(|(_, _, op)| op.clone())
        .collect();
    // Spaces open now come first, so the seats that change are the ones a member sees change.
    let open_now: std::collections::BTreeSet<SpaceId> = coordinator
        .directory(
            &deskmesh_crdt_model::query::Query {
                open_now: true,
                ..Default::default()
            },
            Utc::now(),
        )?
        .spaces
        .into_iter()
        .map(|row| row.id)
        .collect();
    let mut entries: Vec<(bool, String, SpaceId, Pools)> = Vec::new();
    for entry in coordinator.entries()? {
        let listing = entry.listing;
        if listing.seat_pools.is_empty() {
            continue;
        }
        let pools = listing
            .seat_pools
            .iter()
            .map(|p| (p.id.clone(), p.capacity))
            .collect();
        let closed = !open_now.contains(&listing.id);
        entries.push((closed, listing.name.clone(), listing.id.clone(), pools));
    }
    entries.sort();
    let mut nodes = vec![DemoNode {
        name: "coordinator".into(),
        home: home.clone(),
        role: Role::Coordinator,
    }];
    let nodes_dir = home.demo_dir().join("nodes");
    // On a second run the nodes already made are kept, whatever is open now.
    let made: std::collections::BTreeSet<SpaceId> = entries
        .iter()
        .filter(|(_, name, ..)| Home::at(nodes_dir.join(slug(name))).is_initialised())
        .map(|(_, _, space, _)| space.clone())
        .collect();
    if !made.is_empty() {
        entries.retain(|(_, _, space, _)| made.contains(space));
    }
    for (_, name, space, pools) in entries.into_iter().take(SPACE_NODES) {
        let node_home = Home::at(nodes_dir.join(slug(&name)));
        if !node_home.is_initialised() {
            let key = keyfile::read(&home.demo_dir().join(format!("{space}.key")))
                .with_context(|| format!("the demo has no key for {name}"))?;
            node_home.create()?;
            keyfile::write(&node_home.key_path(), &key)?;
            node_home.write_config(&NodeConfig {
                name: name.clone(),
                listen_port: 0,
                location: None,
            })?;
            Node::open(&node_home)?.adopt_roster(&ops, &[])?;
        }
        nodes.push(DemoNode {
            name,
            home: node_home,
            role: Role::Space { space, pools },
        });
    }
    let member = Home::at(nodes_dir.join("member"));
    if !member.is_initialised() {
        // The way a real member joins: a member token with the alliance's create operation only; the
        // rest of the roster comes over the mesh.
        let token = coordinator.member_invite(Vec::new())?.token;
        node::init(&member, Some("Member laptop".into()))?;
        Node::open(&member)?.alliance_join(&token)?;
    }
    nodes.push(DemoNode {
        name: "Member laptop".into(),
        home: member,
        role: Role::Member,
    });
    Ok(nodes)
}

/// A directory name for a space: lowercase letters and digits, dashes between words.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "space".into()
    } else {
        out
    }
}

/// Runs the demo: every node on loopback, seats changing, the TUI on the member node.
pub fn run(home: &Home, opts: &DemoOptions) -> anyhow::Result<()> {
    let nodes = prepare(home)?;
    let log_path = home.demo_dir().join("demo.log");
    mesh::embedded::log_to_file(&log_path)?;
    let interactive = opts.tui && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();

    let mut mesh = Embedded::new()?;
    let mut hub: Vec<Multiaddr> = Vec::new();
    let mut addresses = Vec::new();
    for node in &nodes {
        let started = mesh.start(
            &node.name,
            &node.home,
            vec![
                "/ip4/127.0.0.1/tcp/0".parse()?,
                "/ip4/127.0.0.1/udp/0/quic-v1".parse()?,
            ],
            hub.clone(),
            false,
        );
        let listen = match started {
            Ok(listen) => listen,
            Err(e) => {
                mesh.stop();
                return Err(e.context(format!("see {}", log_path.display())));
            }
        };
        let tcp = listen
            .iter()
            .find(|a| a.contains("/tcp/"))
            .cloned()
            .unwrap_or_default();
        // Every node dials the coordinator; identify and the DHT introduce them to each other.
        if hub.is_empty() {
            hub = tcp.parse().into_iter().collect();
        }
        addresses.push(tcp);
    }

    let churn = opts.churn.map(|period| {
        let spaces: Vec<(PathBuf, Pools)> = nodes
            .iter()
            .filter_map(|n| match &n.role {
                Role::Space { pools, .. } => Some((n.home.socket_path(), pools.clone())),
                _ => None,
            })
            .collect();
        let stop = mesh.stopping();
        std::thread::spawn(move || churn_seats(&spaces, period, &stop))
    });

    let member = nodes
        .last()
        .map(|n| n.home.clone())
        .context("the demo has no member node")?;
    let outcome = if interactive {
        match crate::tui_client::attach(&member.socket_path()) {
            Ok(Some(mut api)) => deskmesh_tui::run_in_terminal(
                &mut api,
                deskmesh_tui::Theme::from_env(),
                &mut chrono::Utc::now,
            )
            .map_err(anyhow::Error::from),
            Ok(None) => Err(anyhow::anyhow!(
                "the member node stopped before the TUI could attach"
            )),
            Err(e) => Err(e.into()),
        }
    } else {
        print_layout(home, &nodes, &addresses, &log_path).and_then(|()| mesh.wait_for_signal())
    };

    // Stop every node and wait for each to flush its store.
    mesh.stop();
    if let Some(handle) = churn {
        let _ = handle.join();
    }
    outcome?;
    println!(
        "The demo's nodes stopped; their data stays in {}.\nStart them again with: deskmesh demo --home {}",
        home.root().display(),
        home.root().display()
    );
    Ok(())
}

fn print_layout(
    home: &Home,
    nodes: &[DemoNode],
    addresses: &[String],
    log_path: &std::path::Path,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "deskmesh demo: {} nodes on 127.0.0.1; data in {}; logs in {}",
        nodes.len(),
        home.root().display(),
        log_path.display()
    )?;
    for (node, addr) in nodes.iter().zip(addresses) {
        let role = match node.role {
            Role::Coordinator => "coordinator",
            Role::Space { .. } => "space",
            Role::Member => "member",
        };
        writeln!(
            out,
            "  {:<24} {role:<12} --home {}",
            node.name,
            node.home.root().display()
        )?;
        writeln!(out, "  {:<24} {:<12} {addr}", "", "")?;
    }
    if let (Some(member), Some(space)) = (
        nodes.iter().find(|n| n.role == Role::Member),
        nodes.iter().find(|n| matches!(n.role, Role::Space { .. })),
    ) {
        writeln!(
            out,
            "In another terminal (`deskmesh` is target/release/deskmesh in a checkout):"
        )?;
        writeln!(
            out,
            "  deskmesh --home {} tui",
            member.home.root().display()
        )?;
        writeln!(
            out,
            "  deskmesh --home {} seats set 3",
            space.home.root().display()
        )?;
        writeln!(
            out,
            "  deskmesh --home {} status",
            member.home.root().display()
        )?;
    }
    writeln!(out, "Ctrl-C stops the nodes.")?;
    out.flush()?;
    Ok(())
}

/// Sets a new seat count on a random space node's random pool every `period` or so, through the node's
/// control socket, until `stop` turns true.
fn churn_seats(
    spaces: &[(PathBuf, Pools)],
    period: Duration,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    let mut rng = Rng::seeded();
    loop {
        // Sleep in short steps so stopping is prompt; jitter between half and one and a half periods.
        let wait = period.mul_f64(0.5 + rng.unit());
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if *stop.borrow() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        if *stop.borrow() || spaces.is_empty() {
            return;
        }
        let (socket, pools) = &spaces[rng.below(spaces.len())];
        if pools.is_empty() {
            continue;
        }
        let (pool, capacity) = &pools[rng.below(pools.len())];
        let availability = match rng.below(10) {
            0 => Availability::Full,
            1 => Availability::Few,
            _ => Availability::Count(rng.below(*capacity as usize + 1) as u32),
        };
        let mut remote = match Remote::connect(socket) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "demo: cannot reach a space node");
                continue;
            }
        };
        match remote.seats_set(Some(pool.clone()), availability, DEFAULT_TTL_S) {
            Ok(_) => tracing::info!(pool = %pool, ?availability, "demo: seats changed"),
            Err(e) => tracing::warn!(error = %e, "demo: seat change refused"),
        }
    }
}

/// A small xorshift generator: the demo's seat changes only need to look varied.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Self(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_plain_directory_names() {
        assert_eq!(slug("Kanalwerk Coworking"), "kanalwerk-coworking");
        assert_eq!(slug("  Café & Co. "), "caf-co");
        assert_eq!(slug("!!!"), "space");
    }

    #[test]
    fn prepare_lays_out_a_coordinator_spaces_and_a_member_with_the_roster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().join("demo"));
        let nodes = prepare(&home).expect("prepare");
        assert_eq!(nodes.len(), SPACE_NODES + 2);
        assert_eq!(nodes[0].role, Role::Coordinator);
        assert_eq!(nodes.last().map(|n| n.role.clone()), Some(Role::Member));
        let coordinator = Node::open(&home).expect("open coordinator");
        let alliance = coordinator.alliance_id();
        drop(coordinator);
        for node in &nodes[1..] {
            let opened = Node::open(&node.home).expect("open node");
            assert_eq!(opened.alliance_id(), alliance, "{}", node.name);
            match &node.role {
                Role::Space { space, pools } => {
                    assert_eq!(opened.my_space().as_ref(), Some(space), "{}", node.name);
                    assert!(!pools.is_empty());
                    // Listings arrive over the mesh, not by copying the store.
                    assert!(opened.entries().expect("entries").is_empty());
                }
                Role::Member => assert_eq!(opened.my_space(), None),
                Role::Coordinator => unreachable!("only the first node coordinates"),
            }
        }
        // A second run reuses what is there.
        let again = prepare(&home).expect("prepare again");
        let homes: Vec<_> = again.iter().map(|n| n.home.root().to_path_buf()).collect();
        let first: Vec<_> = nodes.iter().map(|n| n.home.root().to_path_buf()).collect();
        assert_eq!(homes, first);
    }
}
