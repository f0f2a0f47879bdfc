//! An in-memory [`NodeApi`] for tests, examples and benchmarks, and a generator of synthetic
//! directories (any number of spaces across real cities, with seat beacons, signers and a roster).
//!
//! Everything here is deterministic: the same arguments give the same data, so snapshots stay stable.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use deskmesh_crdt_model::listing::{
    Accessibility, Amenity, Booking, Entrance, Offer, PoolAccess, PoolKind, Product, SeatPool,
    Wheelchair,
};
use deskmesh_crdt_model::Listing;
use deskmesh_keys::{DeviceKey, Hash, PublicKey, Signer, SpaceId};

use crate::model::{
    Availability, FactView, FindingView, NodeApi, PoolStatus, RejectedView, RosterEntryView,
    SignerView, Snapshot, SpaceView, Status, Update,
};

/// A node held in memory: hands out a snapshot and queued updates, and records the commands it gets.
#[derive(Debug, Default)]
pub struct FakeNode {
    pub snapshot: Snapshot,
    /// Updates `poll` hands out, oldest first.
    pub updates: VecDeque<Update>,
    /// Every accepted `set_seats` call.
    pub seats_set: Vec<(String, Availability)>,
    /// Every accepted listing edit.
    pub edits: Vec<Listing>,
    /// When set, every command fails with this text.
    pub fail_with: Option<String>,
}

impl FakeNode {
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            snapshot,
            ..Self::default()
        }
    }
}

impl NodeApi for FakeNode {
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        Ok(self.snapshot.clone())
    }

    fn poll(&mut self) -> Option<Update> {
        self.updates.pop_front()
    }

    fn set_seats(&mut self, pool: &str, availability: Availability) -> Result<(), String> {
        if let Some(e) = &self.fail_with {
            return Err(e.clone());
        }
        self.seats_set.push((pool.to_string(), availability));
        Ok(())
    }

    fn edit_listing(&mut self, listing: Listing) -> Result<(), String> {
        if let Some(e) = &self.fail_with {
            return Err(e.clone());
        }
        // The real node validates too; its errors name the field path the same way.
        listing.validate().map_err(|e| e.to_string())?;
        self.edits.push(listing);
        Ok(())
    }
}

/// A deterministic test key.
pub fn key(n: u8) -> PublicKey {
    DeviceKey::from_seed(&[n; 32]).public_key()
}

/// A deterministic hash.
pub fn hash(label: &str) -> Hash {
    Hash::of("tui-fake", label.as_bytes())
}

/// A valid space id built from a number (`sp-` and 16 base32 characters).
pub fn space_id(n: u64) -> SpaceId {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 10];
    bytes[2..].copy_from_slice(&n.to_be_bytes());
    let bits = bytes
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let body: String = (0..16)
        .rev()
        .map(|i| char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]))
        .collect();
    let text = format!("sp-{body}");
    match text.parse() {
        Ok(id) => id,
        // 16 base32 characters always decode to 10 bytes, so the parse cannot fail.
        Err(e) => unreachable!("{text} is not a space id: {e}"),
    }
}

/// Seat beacons for `listing` that cover every freshness state as `n` varies: fresh counts, a stale
/// one, an expired one, full, closed and none.
pub fn beacons(listing: &Listing, n: u64, now: DateTime<Utc>) -> Vec<PoolStatus> {
    listing
        .seat_pools
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let k = n.wrapping_add(i as u64) % 7;
            let (availability, age_s) = match k {
                0 => (Availability::Count((n % 9) as u32 + 2), 120),
                1 => (Availability::Count(1), 40),
                2 => (Availability::Count((n % 5) as u32 + 1), 12 * 60),
                3 => (Availability::Full, 300),
                4 => (Availability::Many, 30),
                5 => (Availability::Count(3), 3 * 3600),
                _ => return None,
            };
            Some(PoolStatus {
                pool: p.id.clone(),
                availability,
                is_open: true,
                published_at: now - Duration::seconds(age_s),
                ttl_s: 600,
            })
        })
        .collect()
}

/// A space view for `listing` with beacons, two signers (one revoked on every third space) and, on
/// every fourth space, a rejected change.
pub fn space_view(listing: Listing, n: u64, now: DateTime<Utc>) -> SpaceView {
    let pools = beacons(&listing, n, now);
    let k = (n % 200) as u8;
    let mut signers = vec![SignerView {
        key: key(k),
        changes: 3 + (n % 5) as usize,
        authorised_by: hash(&format!("admit {n}")),
        removed_by: None,
    }];
    if n.is_multiple_of(3) {
        signers.push(SignerView {
            key: key(k.wrapping_add(50)),
            changes: 1,
            authorised_by: hash(&format!("device {n}")),
            removed_by: Some(hash(&format!("revoke {n}"))),
        });
    }
    let rejected = if n.is_multiple_of(4) {
        vec![RejectedView {
            change: hash(&format!("change {n}")).short(),
            author: Some(key(k.wrapping_add(100))),
            reason: "the author is not authorised for this space at the roster heads it names"
                .into(),
        }]
    } else {
        Vec::new()
    };
    // Every fifth space has its accessibility verified; on every tenth its wifi changed since.
    let mut facts = Vec::new();
    if n.is_multiple_of(5) {
        facts.push(FactView {
            fact: "accessibility".into(),
            verified: true,
            by: format!("coordinator {}", key(250).short()),
            checked_on: "2026-05-01".into(),
            note: "visited".into(),
        });
    }
    if n.is_multiple_of(10) {
        facts.push(FactView {
            fact: "internet.down_mbps".into(),
            verified: false,
            by: format!("coordinator {}", key(250).short()),
            checked_on: "2026-04-12".into(),
            note: String::new(),
        });
    }
    SpaceView {
        listing,
        pools,
        signers,
        rejected,
        revoked: None,
        facts,
    }
}

/// The audit's findings for `spaces`: each rejected change, as the node's audit lists it.
pub fn findings(spaces: &[SpaceView]) -> Vec<FindingView> {
    spaces
        .iter()
        .flat_map(|s| {
            s.rejected.iter().map(move |r| FindingView {
                status: "rejected".into(),
                kind: "listing change".into(),
                space: Some(format!("{:?} ({})", s.listing.name, s.listing.id)),
                item: Some(r.change.clone()),
                author: r
                    .author
                    .map(|k| format!("removed device of {} {}", s.listing.name, k.short())),
                from: Some("peer 12D3KooWBeta (mesh)".into()),
                reason: r.reason.clone(),
            })
        })
        .collect()
}

/// A roster for `spaces`: the alliance's creation, then an admission per space (the first `max`).
pub fn roster(spaces: &[SpaceView], max: usize, now: DateTime<Utc>) -> Vec<RosterEntryView> {
    let coordinator = key(250);
    let mut out = vec![RosterEntryView {
        op: hash("create"),
        kind: "create".into(),
        summary: "alliance founded".into(),
        signed_by: vec![coordinator],
        at: Some(now - Duration::days(90)),
    }];
    for (i, s) in spaces.iter().take(max).enumerate() {
        out.push(RosterEntryView {
            op: hash(&format!("admit {i}")),
            kind: "admit space".into(),
            summary: format!("{} ({})", s.listing.name, s.listing.location.address.city),
            signed_by: vec![coordinator],
            at: Some(now - Duration::days(80 - i as i64)),
        });
        if i % 3 == 0 {
            out.push(RosterEntryView {
                op: hash(&format!("revoke {i}")),
                kind: "revoke device".into(),
                summary: format!("a lost laptop of {}", s.listing.name),
                signed_by: vec![coordinator, key(251)],
                at: Some(now - Duration::days(10 - (i as i64 % 10))),
            });
        }
    }
    out
}

/// A status line's worth of facts: online, attached, three peers, synced two minutes ago.
pub fn status(my_space: Option<SpaceId>, now: DateTime<Utc>) -> Status {
    Status {
        alliance: Some("Sample Alliance".into()),
        node_name: "laptop".into(),
        my_space,
        my_space_name: None,
        home: None,
        peers: 3,
        relayed_peers: 0,
        last_sync: Some(now - Duration::seconds(130)),
        online: true,
        attached_to_daemon: true,
        daemon_stopped: false,
        starting: false,
        standing: None,
    }
}

/// Cities the synthetic generator spreads spaces over: name, country, time zone, lat, lon.
const CITIES: &[(&str, &str, &str, f64, f64)] = &[
    ("Lisbon", "PT", "Europe/Lisbon", 38.72, -9.14),
    ("Berlin", "DE", "Europe/Berlin", 52.52, 13.40),
    ("Montréal", "CA", "America/Toronto", 45.50, -73.57),
    ("Nairobi", "KE", "Africa/Nairobi", -1.29, 36.82),
    ("Melbourne", "AU", "Australia/Melbourne", -37.81, 144.96),
    (
        "Buenos Aires",
        "AR",
        "America/Argentina/Buenos_Aires",
        -34.60,
        -58.38,
    ),
    ("Tallinn", "EE", "Europe/Tallinn", 59.44, 24.75),
    ("Kyoto", "JP", "Asia/Tokyo", 35.01, 135.77),
    ("Mexico City", "MX", "America/Mexico_City", 19.43, -99.13),
    ("Cape Town", "ZA", "Africa/Johannesburg", -33.92, 18.42),
    ("Seoul", "KR", "Asia/Seoul", 37.57, 126.98),
    ("Bogotá", "CO", "America/Bogota", 4.71, -74.07),
];

const WORDS: &[&str] = &[
    "Harbour", "Atelier", "Commons", "Desk", "Loft", "Works", "Hub", "Studio", "Garden", "Foundry",
    "Library", "Yard", "Mill", "Terrace", "Lantern",
];

/// A synthetic directory of `n` valid listings spread over real cities, with beacons, signers and a
/// roster; for benchmarks and scale tests.
pub fn synthetic(n: usize, now: DateTime<Utc>) -> Snapshot {
    let spaces: Vec<SpaceView> = (0..n as u64)
        .map(|i| space_view(synthetic_listing(i), i, now))
        .collect();
    let roster = roster(&spaces, 200, now);
    Snapshot {
        status: status(None, now),
        findings: findings(&spaces),
        following: 0,
        spaces,
        roster,
    }
}

fn synthetic_listing(i: u64) -> Listing {
    let (city, country, tz, lat, lon) = CITIES[(i as usize) % CITIES.len()];
    let w = |k: u64| WORDS[((i / 7 + k * 5) as usize) % WORDS.len()];
    let name = format!("{} {} {}", w(0), w(1), i);
    // Spread spaces over about 20 km around the city centre.
    let dlat = ((i * 37) % 100) as f64 / 500.0 - 0.1;
    let dlon = ((i * 53) % 100) as f64 / 500.0 - 0.1;
    let mut l = Listing::new_minimal(
        space_id(i + 1),
        name,
        lat + dlat,
        lon + dlon,
        city,
        country,
        tz,
    );
    l.description =
        format!("Synthetic space number {i} for benchmarks, near the centre of {city}.");
    l.opening_hours = Some(
        match i % 4 {
            0 => "Mo-Fr 08:00-18:00",
            1 => "Mo-Sa 09:00-20:00",
            2 => "24/7",
            _ => "Mo-Fr 07:30-19:00; Sa 10:00-14:00",
        }
        .to_string(),
    );
    l.offers = vec![Offer {
        product: Product::DayPass,
        price: 5.0 + (i % 30) as f64,
        currency: "EUR".into(),
        booking: Booking::WalkIn,
    }];
    l.internet.wifi = Some(true);
    l.internet.down_mbps = Some(10.0 * (1 + i % 60) as f64);
    l.amenities = Amenity::ALL
        .iter()
        .enumerate()
        .filter(|(k, _)| (i >> (k % 8)) & 1 == 1)
        .map(|(_, a)| *a)
        .collect();
    l.accessibility = Accessibility {
        wheelchair: [Some(Wheelchair::Yes), Some(Wheelchair::Limited), None][(i % 3) as usize],
        toilets_wheelchair: i.is_multiple_of(2).then_some(true),
        hearing_loop: [Some(true), Some(false), None][(i % 3) as usize],
        quiet_room: (!i.is_multiple_of(5)).then_some(i % 2 == 1),
        entrance: Some(Entrance {
            step_free: Some(i % 4 != 1),
            ..Entrance::default()
        }),
        ..Accessibility::default()
    };
    l.seat_pools = vec![
        SeatPool {
            id: "hot-desks".into(),
            kind: PoolKind::HotDesk,
            capacity: 20 + (i % 30) as u32,
            accessible_capacity: Some(2),
            access: PoolAccess::WalkIn,
        },
        SeatPool {
            id: "booths".into(),
            kind: PoolKind::PhoneBooth,
            capacity: 3,
            accessible_capacity: None,
            access: PoolAccess::WalkIn,
        },
    ];
    l.normalise();
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_listings_are_valid_and_distinct() {
        let now = Utc::now();
        let s = synthetic(300, now);
        assert_eq!(s.spaces.len(), 300);
        for v in &s.spaces {
            assert_eq!(v.listing.validate(), Ok(()), "{}", v.listing.name);
        }
        let mut ids: Vec<_> = s.spaces.iter().map(|v| v.listing.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 300);
    }

    #[test]
    fn fake_node_records_commands_and_validates_edits() {
        let now = Utc::now();
        let mut node = FakeNode::new(synthetic(2, now));
        node.set_seats("hot-desks", Availability::Count(4)).unwrap();
        assert_eq!(
            node.seats_set,
            vec![("hot-desks".to_string(), Availability::Count(4))]
        );
        let mut l = node.snapshot.spaces[0].listing.clone();
        l.name.clear();
        assert_eq!(
            node.edit_listing(l),
            Err("name: must not be empty".to_string())
        );
        assert!(node.edits.is_empty());
        node.fail_with = Some("offline".into());
        assert_eq!(
            node.set_seats("x", Availability::Full),
            Err("offline".into())
        );
    }
}
