//! `deskmesh demo`: a sample alliance a newcomer can explore at once.
//!
//! The demo node founds an alliance, then for each of the sample listings (`node/sample/alliance.json`)
//! creates a real device key for the space (kept under `<home>/demo/`), admits it, has that key sign the
//! listing and a seat beacon per pool, and stores everything exactly as if it had arrived from the mesh:
//! every signature in the resulting store is real and `deskmesh audit` verifies it.

use anyhow::Context;
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{Availability, SeatBeacon};
use deskmesh_crdt_model::doc::SpaceDoc;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::query::Query;
use deskmesh_keys::roster::OpBody;
use deskmesh_keys::{keyfile, DeviceKey, Signer, SpaceId};
use serde::Serialize;

use deskmesh_core::home::Home;
use deskmesh_core::ingest::{At, SignedItem, Source, Verdict};
use deskmesh_core::node::{self, RosterAuthority};
use deskmesh_core::ops::directory::Directory;
use deskmesh_core::Node;

pub mod fixture;
pub mod live;

/// The sample directory shipped with deskmesh.
pub const SAMPLE: &str = include_str!("../../sample/alliance.json");

/// The sample listings, each given the id of a fresh space key.
pub fn sample_listings() -> anyhow::Result<Vec<Listing>> {
    let values: Vec<serde_json::Value> =
        serde_json::from_str(SAMPLE).context("the bundled sample directory is not valid JSON")?;
    values
        .into_iter()
        .map(|v| Listing::from_value(v).map_err(|e| anyhow::anyhow!("bundled sample listing: {e}")))
        .collect()
}

/// What `demo` reports.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub home: String,
    pub created: bool,
    pub directory: Directory,
}

/// Creates (or reopens) the sample alliance in `home` and shows its directory.
pub fn run(home: &Home, now: DateTime<Utc>) -> anyhow::Result<DemoReport> {
    let created = !home.is_initialised();
    if created {
        node::init(home, Some("Demo coordinator".into()))?;
        let mut node = Node::open(home)?;
        node.alliance_create("Demo Coworking Alliance", 1, now)?;
        populate(home, &mut node, now)?;
    }
    let node = Node::open(home)?;
    Ok(DemoReport {
        home: home.root().display().to_string(),
        created,
        directory: node.directory(&Query::default(), now)?,
    })
}

/// Admits every sample space with its own key and stores its signed listing and seats.
pub fn populate(
    home: &Home,
    node: &mut Node,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(SpaceId, DeviceKey)>> {
    let dir = home.demo_dir();
    let mut spaces = Vec::new();
    for (i, mut listing) in sample_listings()?.into_iter().enumerate() {
        let key = DeviceKey::generate();
        let space = SpaceId::derive(&key.public_key());
        keyfile::write(&dir.join(format!("{space}.key")), &key)?;
        listing.id = space.clone();
        // A beacon too old to mean anything is not kept: that is the "unknown" state on purpose.
        admit_space(node, &key, &listing, now, |j, capacity| {
            sample_seats(i + j, capacity)
        })?;
        spaces.push((space, key));
    }
    Ok(spaces)
}

/// Admits `key`'s space (signed by this node, a coordinator), has `key` sign `listing` and one seat
/// beacon per pool with the (availability, age in minutes) `seats(pool index, capacity)` gives, and takes
/// everything through the node's ingest path, as if it came from a bundle. Returns the listing's
/// document. A beacon too old to be kept is skipped, not an error. Nothing is announced: this runs
/// before the node is on the mesh.
pub fn admit_space(
    node: &mut Node,
    key: &DeviceKey,
    listing: &Listing,
    now: DateTime<Utc>,
    seats: impl Fn(usize, u32) -> (Availability, i64),
) -> anyhow::Result<SpaceDoc> {
    let space = listing.id.clone();
    let roster = node.roster().context("this node is not in an alliance")?;
    let admit = roster.propose(
        node.signer(),
        OpBody::AdmitSpace {
            space: space.clone(),
            name: listing.name.clone(),
            devices: vec![key.public_key()],
        },
        now.timestamp_millis(),
    );
    take(node, vec![SignedItem::op(&admit)])?;
    let roster = node.roster().context("this node is not in an alliance")?;
    let heads = roster.heads();
    let mut doc = SpaceDoc::new(space.clone());
    let mut items = Vec::new();
    if let Some(change) = doc.edit(
        listing,
        key,
        &RosterAuthority(Some(roster)),
        heads.clone(),
        now.timestamp_millis(),
    )? {
        items.push(SignedItem::change(&change));
    }
    for (j, pool) in listing.seat_pools.iter().enumerate() {
        let (availability, age_min) = seats(j, pool.capacity);
        let beacon = SeatBeacon {
            space: space.clone(),
            pool: pool.id.clone(),
            availability,
            is_open: availability != Availability::Closed,
            published_at_ms: now.timestamp_millis() - age_min * 60_000,
            ttl_s: 900,
            seq: 0,
            author: key.public_key(),
            roster_heads: heads.clone(),
        };
        items.push(SignedItem::beacon(&beacon.sign(key)?));
    }
    take(node, items)?;
    Ok(doc)
}

/// Ingests items signed for the demo; any refusal is a bug in the demo, reported as an error.
fn take(node: &mut Node, items: Vec<SignedItem>) -> anyhow::Result<()> {
    let report = node.ingest(items, Source::Bundle, At::now());
    node.take_made();
    if let Some(e) = report.flush_error {
        anyhow::bail!("{e}");
    }
    for o in report.outcomes {
        match o.verdict {
            Verdict::Refused(why) | Verdict::Failed(why) => {
                anyhow::bail!("the demo's own {} was refused: {why}", o.kind.label())
            }
            _ => {}
        }
    }
    Ok(())
}

/// Varied but deterministic seat states: fresh counts, buckets, a stale one and a full one, as
/// (availability, age in minutes). The benchmark uses the same mix.
pub fn sample_seats(n: usize, capacity: u32) -> (Availability, i64) {
    match n % 6 {
        0 => (Availability::Count(capacity.min(4)), 2),
        1 => (Availability::Many, 5),
        2 => (Availability::Few, 1),
        3 => (Availability::Count(capacity.min(2)), 20),
        4 => (Availability::Full, 3),
        _ => (Availability::Count(capacity.min(7)), 0),
    }
}
