//! `dm-adversary`: a test-only tool that crafts what a dishonest or compromised party would send, for the
//! adversarial end-to-end tests (`tests/adversarial.rs`). It signs with the real device key of a home it is
//! given (a stolen laptop, a space that wants to speak for another, a device pretending to be a
//! coordinator) and writes a bundle for `deskmesh import`, or connects to a running node over libp2p and
//! sends items (a flood of seat beacons) or raw gossip (an unreadable message) the way a peer would.
//!
//! It never goes through a node's checks: that is the point. Everything it makes must be refused by the
//! honest nodes' one ingest path, and show in their audit. The homes it reads must not be in use by a
//! running node (it opens their store).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Parser, Subcommand};
use deskmesh_core::bundle::Bundle;
use deskmesh_core::home::Home;
use deskmesh_core::Node;
use deskmesh_crdt_model::beacon::{Availability, SeatBeacon, SignedBeacon};
use deskmesh_crdt_model::change::{Authority, Denial};
use deskmesh_crdt_model::verify::Verification;
use deskmesh_keys::roster::{OpBody, SignedOp};
use deskmesh_keys::{DeviceKey, Domain, Hash, PublicKey, Signer, SpaceId};
use deskmesh_node::mesh::behaviour::{self, Request, WireItem};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr};

#[derive(Debug, Parser)]
#[command(
    name = "dm-adversary",
    about = "Craft refused items for deskmesh's adversarial tests"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Sign a listing change with HOME's key, naming HOME's roster heads (old ones, if HOME missed its
    /// removal), and write it to a bundle.
    SignChange {
        #[arg(long)]
        home: PathBuf,
        /// The space whose listing to change (default: the space HOME's key belonged to).
        #[arg(long)]
        space: Option<SpaceId>,
        /// The listing's new name.
        #[arg(long)]
        rename: String,
        /// Make a change on top of one that is never written: its dependency never arrives.
        #[arg(long)]
        orphan: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a roster operation with HOME's key and write it to a bundle.
    SignOp {
        #[arg(long)]
        home: PathBuf,
        /// Revoke this space.
        #[arg(long)]
        revoke: Option<SpaceId>,
        /// Add this coordinator (a quorum change, with HOME's signature alone).
        #[arg(long)]
        add_coordinator: Option<PublicKey>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a verification of a listing's facts with HOME's key and write it to a bundle.
    SignVerification {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        space: SpaceId,
        #[arg(long = "fact")]
        facts: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Send COUNT valid seat beacons signed by HOME's key (a space's device) to the node at TO, as a
    /// peer's sync batches. Prints this tool's peer id.
    FloodBeacons {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        to: Multiaddr,
        /// Date the beacons this many minutes ago (their ttl is 15 minutes).
        #[arg(long, default_value_t = 0)]
        age_min: i64,
    },
    /// Sign one valid seat beacon of HOME's space (its first pool) dated AGE_MIN minutes ago with HOME's
    /// key, and write it to a bundle. With the default 15-minute ttl, past 30 minutes it says nothing.
    SignBeacon {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        age_min: i64,
        #[arg(long, default_value_t = 900)]
        ttl_s: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Send COUNT seat beacons of HOME's space that claim HOME's key but carry signatures that do not
    /// verify, to the node at TO, as a peer's sync batches, until TO closes the connection; then dial TO
    /// again with the same identity. BATCH items go in each sync batch.
    /// Prints this tool's peer id, then `redial: connected` or `redial: refused`.
    FloodForged {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 50)]
        batch: usize,
        #[arg(long)]
        to: Multiaddr,
    },
    /// Publish a gossip message that is not a signed item on the alliance's topic, through the node at
    /// TO. Prints this tool's peer id.
    Gossip {
        #[arg(long)]
        alliance: String,
        #[arg(long)]
        to: Multiaddr,
    },
}

/// Says yes to everything: the adversary signs what it likes.
struct Anything;

impl Authority for Anything {
    fn authorise(&self, _: &[Hash], key: &PublicKey, _: &SpaceId) -> Result<Hash, Denial> {
        Ok(Hash::of("adversary", key.as_bytes()))
    }
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Cmd::SignChange {
            home,
            space,
            rename,
            orphan,
            out,
        } => {
            let node = open(&home)?;
            let space = match space {
                Some(s) => s,
                None => own_space(&node)?,
            };
            let heads = node.require_roster()?.heads();
            let (mut doc, _) = node.space_doc(&space)?;
            let mut listing = match node.current_listing(&space)? {
                Some(l) => l,
                None => bail!("HOME holds no listing of {space}"),
            };
            let now = Utc::now().timestamp_millis();
            if orphan {
                listing.description = "a change that is never sent".into();
                doc.edit(&listing, node.signer(), &Anything, heads.clone(), now)?
                    .context("the hidden change changed nothing")?;
            }
            listing.name = rename;
            let change = doc
                .edit(&listing, node.signer(), &Anything, heads, now + 1)?
                .context("the change changed nothing")?;
            write(
                &out,
                Bundle {
                    changes: vec![change.to_bytes()],
                    ..Bundle::default()
                },
            )
        }
        Cmd::SignOp {
            home,
            revoke,
            add_coordinator,
            out,
        } => {
            let node = open(&home)?;
            let body = match (revoke, add_coordinator) {
                (Some(space), None) => OpBody::RevokeSpace {
                    space,
                    reason: "taken over".into(),
                    keep: Vec::new(),
                    listed: false,
                },
                (None, Some(key)) => OpBody::AddCoordinator { key },
                _ => bail!("give one of --revoke or --add-coordinator"),
            };
            let op: SignedOp =
                node.require_roster()?
                    .propose(node.signer(), body, Utc::now().timestamp_millis());
            write(
                &out,
                Bundle {
                    roster_ops: vec![op.to_bytes()],
                    ..Bundle::default()
                },
            )
        }
        Cmd::SignVerification {
            home,
            space,
            facts,
            out,
        } => {
            let node = open(&home)?;
            let listing = node
                .current_listing(&space)?
                .context("HOME holds no listing of that space")?;
            let now = Utc::now();
            let v = Verification::of(
                &listing,
                &facts,
                now.date_naive(),
                "vouching for myself",
                node.public_key(),
                node.require_roster()?.heads(),
                now.timestamp_millis(),
            )?
            .sign(node.signer())?;
            write(
                &out,
                Bundle {
                    verifications: vec![v.to_bytes()],
                    ..Bundle::default()
                },
            )
        }
        Cmd::FloodBeacons {
            home,
            count,
            to,
            age_min,
        } => {
            let items = beacons(&home, count, false, age_min, 900)?;
            runtime()?.block_on(send_items(to, items))
        }
        Cmd::SignBeacon {
            home,
            age_min,
            ttl_s,
            out,
        } => {
            let items = beacons(&home, 1, false, age_min, ttl_s)?;
            write(
                &out,
                Bundle {
                    beacons: items.into_iter().map(|i| i.bytes).collect(),
                    ..Bundle::default()
                },
            )
        }
        Cmd::FloodForged {
            home,
            count,
            batch,
            to,
        } => {
            let items = beacons(&home, count, true, 0, 900)?;
            runtime()?.block_on(send_forged(to, items, batch.max(1)))
        }
        Cmd::Gossip { alliance, to } => runtime()?.block_on(gossip_garbage(alliance, to)),
    }
}

/// COUNT seat beacons of HOME's space signed by HOME's key, or, `forged`, claiming it under signatures
/// made by another key; dated `age_min` minutes ago, fresh for `ttl_s`.
fn beacons(
    home: &std::path::Path,
    count: u64,
    forged: bool,
    age_min: i64,
    ttl_s: u32,
) -> anyhow::Result<Vec<WireItem>> {
    {
        {
            let node = open(home)?;
            let space = own_space(&node)?;
            let listing = node
                .current_listing(&space)?
                .context("HOME has no listing")?;
            let pool = listing
                .seat_pools
                .first()
                .context("the listing has no seat pool")?
                .id
                .clone();
            let heads = node.require_roster()?.heads();
            let now = Utc::now().timestamp_millis() - age_min * 60_000;
            let other = DeviceKey::generate();
            let mut items = Vec::new();
            for seq in 0..count {
                let b = SeatBeacon {
                    space: space.clone(),
                    pool: pool.clone(),
                    availability: Availability::Count((seq % 5) as u32),
                    is_open: true,
                    published_at_ms: now,
                    ttl_s,
                    seq: 1_000_000 + seq,
                    author: node.public_key(),
                    roster_heads: heads.clone(),
                }
                .sign(node.signer())?;
                let b = if forged {
                    SignedBeacon {
                        signature: other.sign(Domain::SeatBeacon, &b.bytes),
                        bytes: b.bytes,
                    }
                } else {
                    b
                };
                items.push(WireItem {
                    kind: deskmesh_sync::ItemKind::SeatBeacon,
                    bytes: b.to_bytes(),
                });
            }
            Ok(items)
        }
    }
}

fn open(home: &std::path::Path) -> anyhow::Result<Node> {
    Node::open(&Home::at(home.to_path_buf()))
}

/// The space HOME's key is (or was) a device of.
fn own_space(node: &Node) -> anyhow::Result<SpaceId> {
    if let Some(s) = node.my_space() {
        return Ok(s);
    }
    let me = node.public_key();
    node.require_roster()?
        .state()
        .spaces
        .iter()
        .find(|(_, s)| s.devices.contains_key(&me) || s.removed_devices.contains_key(&me))
        .map(|(id, _)| id.clone())
        .context("HOME's key is not a device of any space")
}

fn write(out: &std::path::Path, bundle: Bundle) -> anyhow::Result<()> {
    std::fs::write(out, bundle.encode()?).with_context(|| format!("cannot write {}", out.display()))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// A swarm with a fresh identity, like any stranger's.
fn swarm() -> anyhow::Result<libp2p::Swarm<behaviour::Behaviour>> {
    let key = DeviceKey::generate();
    let mut seed = *key.seed();
    let swarm = behaviour::build_swarm(&mut seed, false, "dm-adversary".into(), false)?;
    println!("{}", swarm.local_peer_id());
    Ok(swarm)
}

/// How long the tool waits for the node to connect, answer or take its subscription.
const DEADLINE: Duration = Duration::from_secs(30);

/// Sends each of `batches` to `peer` as one packed sync request; returns how many were sent.
fn send_batches(
    swarm: &mut libp2p::Swarm<behaviour::Behaviour>,
    peer: libp2p::PeerId,
    batches: impl IntoIterator<Item = Vec<WireItem>>,
) -> anyhow::Result<usize> {
    let mut sent = 0;
    for batch in batches {
        let packed = behaviour::pack(&batch)?;
        swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, Request::Items(packed));
        sent += 1;
    }
    Ok(sent)
}

/// Dials `to` and sends `items` as sync batches, waiting for every batch to be answered.
async fn send_items(to: Multiaddr, items: Vec<WireItem>) -> anyhow::Result<()> {
    let mut swarm = swarm()?;
    swarm.dial(to.clone())?;
    let start = Instant::now();
    let mut peer = None;
    let mut pending = 0usize;
    let mut batches: Vec<Vec<WireItem>> = items.chunks(50).map(<[_]>::to_vec).collect();
    loop {
        if start.elapsed() > DEADLINE {
            bail!("the node at {to} did not answer every batch in time");
        }
        let event = tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await;
        match event {
            Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) if peer.is_none() => {
                peer = Some(peer_id);
                pending += send_batches(&mut swarm, peer_id, batches.drain(..))?;
            }
            Ok(SwarmEvent::Behaviour(behaviour::BehaviourEvent::Sync(
                libp2p::request_response::Event::Message {
                    message: libp2p::request_response::Message::Response { .. },
                    ..
                },
            ))) => {
                pending = pending.saturating_sub(1);
                if pending == 0 && peer.is_some() {
                    return Ok(());
                }
            }
            Ok(SwarmEvent::Behaviour(behaviour::BehaviourEvent::Sync(
                libp2p::request_response::Event::OutboundFailure { error, .. },
            ))) => bail!("a batch was lost: {error}"),
            Ok(SwarmEvent::OutgoingConnectionError { error, .. }) => {
                bail!("cannot dial {to}: {error}")
            }
            _ => {}
        }
    }
}

/// Dials `to`, sends `items` as sync batches and waits until the node closes the connection (an error
/// after [`DEADLINE`]), then dials it again with the same identity and prints whether the node serves it.
async fn send_forged(to: Multiaddr, items: Vec<WireItem>, batch: usize) -> anyhow::Result<()> {
    let mut swarm = swarm()?;
    swarm.dial(to.clone())?;
    let start = Instant::now();
    let mut peer = None;
    let mut batches: Vec<Vec<WireItem>> = items.chunks(batch).map(<[_]>::to_vec).collect();
    // The node answers each batch as it takes it and checks it after: until it closes the connection.
    loop {
        if start.elapsed() > DEADLINE {
            bail!("the node at {to} did not close the connection in time");
        }
        let event = tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await;
        match event {
            Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) if peer.is_none() => {
                peer = Some(peer_id);
                send_batches(&mut swarm, peer_id, batches.drain(..))?;
            }
            Ok(SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            }) if peer.is_some() => break,
            Ok(SwarmEvent::OutgoingConnectionError { error, .. }) if peer.is_none() => {
                bail!("cannot dial {to}: {error}")
            }
            _ => {}
        }
    }
    // Dial again, as the same peer.
    let again = Instant::now();
    let mut dialled = false;
    loop {
        if again.elapsed() > DEADLINE {
            bail!("dialling {to} again neither connected nor failed in time");
        }
        if !dialled && swarm.connected_peers().next().is_none() {
            swarm.dial(to.clone())?;
            dialled = true;
        }
        let event = tokio::time::timeout(Duration::from_secs(1), swarm.select_next_some()).await;
        match event {
            // The node refuses a barred peer right after the handshake, so a connection made is not yet
            // an answer: an empty batch is, answered on a connection the node kept, lost on one it closed.
            Ok(SwarmEvent::ConnectionEstablished { peer_id, .. }) if dialled => {
                send_batches(&mut swarm, peer_id, [Vec::new()])?;
            }
            Ok(SwarmEvent::Behaviour(behaviour::BehaviourEvent::Sync(
                libp2p::request_response::Event::Message {
                    message: libp2p::request_response::Message::Response { .. },
                    ..
                },
            ))) if dialled => {
                println!("redial: connected");
                return Ok(());
            }
            Ok(SwarmEvent::Behaviour(behaviour::BehaviourEvent::Sync(
                libp2p::request_response::Event::OutboundFailure { .. },
            ))) if dialled => {
                println!("redial: refused");
                return Ok(());
            }
            Ok(SwarmEvent::OutgoingConnectionError { .. }) if dialled => {
                println!("redial: refused");
                return Ok(());
            }
            _ => {}
        }
    }
}

/// Joins the alliance topic through `to` and publishes bytes that are no signed item.
async fn gossip_garbage(alliance: String, to: Multiaddr) -> anyhow::Result<()> {
    let mut swarm = swarm()?;
    let topic = gossipsub::IdentTopic::new(format!("deskmesh/v1/{alliance}"));
    swarm.behaviour_mut().gossip.subscribe(&topic)?;
    swarm.dial(to.clone())?;
    let start = Instant::now();
    let garbage = b"\xff\xfethis is not a signed deskmesh item".to_vec();
    let mut published_at: Option<Instant> = None;
    loop {
        if start.elapsed() > DEADLINE {
            bail!("the node at {to} never took the gossip message");
        }
        if published_at.is_none() {
            // Publishing fails until the node has told us it is subscribed too.
            if swarm
                .behaviour_mut()
                .gossip
                .publish(topic.clone(), garbage.clone())
                .is_ok()
            {
                published_at = Some(Instant::now());
            }
        }
        // Stay connected a moment so the message is delivered before the tool exits.
        if published_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            return Ok(());
        }
        if let Ok(SwarmEvent::OutgoingConnectionError { error, .. }) =
            tokio::time::timeout(Duration::from_millis(200), swarm.select_next_some()).await
        {
            bail!("cannot dial {to}: {error}")
        }
    }
}
