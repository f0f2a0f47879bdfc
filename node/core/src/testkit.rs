//! Nodes over the in-memory store for unit tests: a founded alliance, admitted spaces with their own keys,
//! and a listing any test can edit.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_keys::{DeviceKey, Signer, SpaceId};
use deskmesh_store::MemoryStore;

use crate::home::NodeConfig;
use crate::node::Node;

/// A fixed instant, so listings with opening hours evaluate the same on every run.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 10, 30, 0)
        .single()
        .expect("a valid time")
}

/// A node with a fresh key over an empty in-memory store.
pub fn node(name: &str) -> Node {
    node_with_key(name, DeviceKey::generate())
}

pub fn node_with_key(name: &str, key: DeviceKey) -> Node {
    Node::with_store(
        key,
        NodeConfig {
            name: name.into(),
            listen_port: 0,
            location: None,
        },
        Arc::new(MemoryStore::new()),
    )
    .expect("a node over the memory store opens")
}

/// A coordinator that founded an alliance.
pub fn coordinator() -> Node {
    let mut c = node("coordinator");
    c.alliance_create("Test Alliance", 1, now())
        .expect("create the alliance");
    c
}

/// A space node admitted by `coordinator` and joined with its token.
pub fn space(coordinator: &mut Node, name: &str) -> Node {
    let mut s = node(name);
    let invite = coordinator
        .alliance_invite(s.public_key(), name, Vec::new(), now())
        .expect("invite");
    s.alliance_join(&invite.token).expect("join");
    s
}

/// A space admitted by `coordinator`, joined, that has published its listing (named `name`).
pub fn listed_space(coordinator: &mut Node, name: &str) -> (Node, SpaceId) {
    let mut s = space(coordinator, name);
    let id = s.my_space().expect("the space's own id");
    s.publish_listing(&listing(&id, name), now())
        .expect("publish the listing");
    (s, id)
}

/// Every signed item `from` holds, imported into `to` (a bundle, as a USB stick would carry it).
pub fn carry(from: &Node, to: &mut Node) -> crate::bundle::BundleReport {
    let mut report = crate::bundle::BundleReport::default();
    for batch in from.bundle().expect("a bundle").batches(usize::MAX) {
        report.merge(to.import_items(batch).expect("import"));
    }
    report
}

/// A valid listing for `space`, with one pool of 10 hot desks, open every day.
pub fn listing(space: &SpaceId, name: &str) -> Listing {
    let value = serde_json::json!({
        "id": space.to_string(),
        "name": name,
        "location": {
            "lon": -9.14, "lat": 38.72, "timezone": "Europe/Lisbon",
            "address": {"city": "Lisbon", "country": "PT", "street": "Rua Augusta 1"}
        },
        "opening_hours": "Mo-Su 00:00-24:00",
        "offers": [{"product": "day_pass", "price": 15.0, "currency": "EUR", "booking": "walk_in"}],
        "amenities": ["coffee"],
        "accessibility": {"wheelchair": "yes"},
        "seat_pools": [{"id": "hot", "kind": "hot_desk", "capacity": 10, "access": "walk_in"}]
    });
    Listing::from_value(value).expect("the test listing is valid")
}

/// The public key of a node, for asserting who signed.
pub fn key_of(node: &Node) -> deskmesh_keys::PublicKey {
    node.signer().public_key()
}
