//! A small real alliance, built once per process from fixed seeds so its signed bytes are the same on
//! every run: a coordinator, one admitted space with a signed listing and a seat beacon. Targets start a
//! fresh node over the in-memory store from it for every input, so one input cannot change how the next
//! one is judged.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use deskmesh_core::home::NodeConfig;
use deskmesh_core::ingest::SignedItem;
use deskmesh_core::Node;
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::roster::SignedOp;
use deskmesh_keys::{DeviceKey, Signer, SpaceId};
use deskmesh_store::MemoryStore;

/// Everything the targets and the seed writer need, as exact signed bytes.
#[derive(Debug)]
pub struct Fixture {
    /// Roster operations in causal order: the alliance's creation, then the space's admission.
    pub ops: Vec<SignedOp>,
    pub space: SpaceId,
    /// The space's signed listing change and seat beacon.
    pub change: Vec<u8>,
    pub beacon: Vec<u8>,
    /// A `dmi1` token for the space's key and a `dmm1` member token.
    pub invite: String,
    pub member: String,
    /// The listing as JSON text.
    pub listing_json: String,
    /// Every item of the space's store in bundle form.
    pub bundle: Vec<u8>,
}

/// The fixed instant the fixture is signed at.
pub fn when() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

/// The fixture, built on first use.
pub fn get() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        build().unwrap_or_else(|e| panic!("the fuzz fixture cannot be built: {e:#}"))
    })
}

/// A node over an empty in-memory store with a fixed key.
pub fn bare_node(seed: u8) -> anyhow::Result<Node> {
    Node::with_store(
        DeviceKey::from_seed(&[seed; 32]),
        NodeConfig {
            name: format!("fuzz-{seed}"),
            listen_port: 0,
            location: None,
        },
        Arc::new(MemoryStore::new()),
    )
}

/// A fresh member's node that knows the fixture's roster (and nothing else).
pub fn member_node() -> anyhow::Result<Node> {
    let mut node = bare_node(9)?;
    node.adopt_roster(&get().ops, &[])?;
    Ok(node)
}

fn build() -> anyhow::Result<Fixture> {
    let now = when();
    let mut coordinator = bare_node(1)?;
    coordinator.alliance_create("Fuzz Alliance", 1, now)?;
    let mut space = bare_node(2)?;
    let invite = coordinator
        .alliance_invite(space.signer().public_key(), "Fuzz Space", vec![], now)?
        .token;
    space.alliance_join(&invite)?;
    let id = space.require_space()?;
    let listing = listing(&id)?;
    space.publish_listing(&listing, now)?;
    space.seats_set(None, Availability::Count(4), 900, now)?;
    let bundle = space.bundle()?;
    let ops = bundle
        .roster_ops
        .iter()
        .map(|b| SignedOp::from_bytes(b))
        .collect::<Result<Vec<_>, _>>()?;
    let change = bundle
        .changes
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the space has no change"))?;
    let beacon = bundle
        .beacons
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the space has no beacon"))?;
    let member = space.member_invite(vec![
        "/ip4/192.0.2.10/tcp/4717/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".into(),
    ])?;
    Ok(Fixture {
        ops,
        space: id,
        change,
        beacon,
        invite,
        member: member.token,
        listing_json: serde_json::to_string_pretty(&listing.to_value())?,
        bundle: bundle.encode()?,
    })
}

/// The roster operations as items, for ingest.
pub fn op_items() -> Vec<SignedItem> {
    get().ops.iter().map(SignedItem::op).collect()
}

fn listing(space: &SpaceId) -> anyhow::Result<Listing> {
    let value = serde_json::json!({
        "id": space.to_string(),
        "name": "Fuzz Space",
        "description": "A space the fuzzer starts from.",
        "category": "coworking_space",
        "location": {
            "lon": -9.14, "lat": 38.72, "timezone": "Europe/Lisbon",
            "address": {"city": "Lisbon", "country": "PT", "street": "Rua Augusta 1", "postcode": "1100-048"}
        },
        "opening_hours": "Mo-Fr 08:00-20:00; Sa 10:00-14:00",
        "offers": [{"product": "day_pass", "price": 15.0, "currency": "EUR", "booking": "walk_in"}],
        "internet": {"wifi": true, "down_mbps": 200.0},
        "amenities": ["coffee", "printer"],
        "accessibility": {"wheelchair": "yes"},
        "seat_pools": [{"id": "hot", "kind": "hot_desk", "capacity": 10, "access": "walk_in"}]
    });
    Ok(Listing::from_value(value)?)
}
