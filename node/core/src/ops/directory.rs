//! The directory as members browse it: listings filtered and sorted by a [`Query`], each with the live
//! state of its seat pools.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{self, Availability, Freshness, SeatBeacon};
use deskmesh_crdt_model::listing::Listing;
use deskmesh_crdt_model::query::{distance_km, Query, SearchIndex, SeatsFree, Sort};
use deskmesh_crdt_model::OpenState;
use deskmesh_keys::{PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use deskmesh_crdt_model::verify;

use crate::node::{IndexEntry, Node};
use crate::ops::trust::FactView;

/// One row of `spaces list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryRow {
    pub id: SpaceId,
    pub name: String,
    pub city: String,
    pub country: String,
    pub open_now: Option<bool>,
    /// "yes", "no" or "unknown".
    pub seats_free: String,
    pub seats: Vec<PoolSeats>,
    pub day_pass: Option<String>,
    pub wifi_down_mbps: Option<f64>,
    pub access: Vec<String>,
    pub amenities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    pub signers: Vec<PublicKey>,
    /// Set for a revoked space a coordinator asked to keep listed: the revocation's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// Facts a coordinator verified (every other fact is only claimed by the space).
    #[serde(default)]
    pub facts: Vec<FactView>,
}

/// The live status of one seat pool, as shown in the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSeats {
    pub pool: String,
    pub status: String,
    /// "fresh", "stale", "unknown" or "closed".
    pub freshness: String,
    pub availability: Option<Availability>,
    pub age_s: Option<u64>,
}

/// What `spaces list` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    pub total: usize,
    pub matched: usize,
    pub spaces: Vec<DirectoryRow>,
}

impl Node {
    /// The directory, filtered and sorted by `query`, with each space's seat freshness.
    pub fn directory(&self, query: &Query, now: DateTime<Utc>) -> anyhow::Result<Directory> {
        let entries = self.entries()?;
        let verifications = self.verifications()?;
        let mut listings = Vec::with_capacity(entries.len());
        let mut facts = Vec::with_capacity(entries.len());
        for e in &entries {
            match e.listing() {
                Ok(l) => {
                    let states = verifications
                        .get(&e.space)
                        .map(|v| verify::fact_states(&l, v))
                        .unwrap_or_default();
                    facts.push(states);
                    listings.push((e, l));
                }
                Err(err) => tracing::warn!("skipping {}: {err}", e.space),
            }
        }
        let mut pools: BTreeMap<SpaceId, Vec<SeatBeacon>> = BTreeMap::new();
        for b in self.beacons()? {
            pools.entry(b.space.clone()).or_default().push(b);
        }
        let now_ms = now.timestamp_millis();
        let mut seats: Vec<(SeatsFree, Vec<PoolSeats>)> = listings
            .iter()
            .map(|(_, l)| {
                pool_seats(
                    l,
                    pools.get(&l.id).map(Vec::as_slice).unwrap_or(&[]),
                    now_ms,
                )
            })
            .collect();
        let index = if query.verified_only {
            // Filters see a fact only where a coordinator verified it and it has not changed since.
            let masked: Vec<Listing> = listings
                .iter()
                .zip(&facts)
                .map(|((_, l), states)| {
                    let verified: Vec<&str> = states
                        .iter()
                        .filter(|s| s.is_verified())
                        .map(|s| s.fact.as_str())
                        .collect();
                    verify::verified_only(l, &verified)
                })
                .collect();
            SearchIndex::build(masked.iter())
        } else {
            SearchIndex::build(listings.iter().map(|(_, l)| l))
        };
        let hits = query.run_on(&index, |i| seats[i].0, now);
        let matched = hits.len();
        let mut rows = Vec::with_capacity(hits.len());
        for i in hits {
            let (entry, l) = &listings[i];
            let (free, pool_rows) = std::mem::take(&mut seats[i]);
            let mut r = row(entry, l, free, pool_rows, index.open_state(i, now), query);
            r.facts = FactView::all(&facts[i], self.roster());
            rows.push(r);
        }
        Ok(Directory {
            total: listings.len(),
            matched,
            spaces: rows,
        })
    }
}

/// Each pool's status line and the space's seats-free summary.
pub fn pool_seats(
    listing: &Listing,
    beacons: &[SeatBeacon],
    now_ms: i64,
) -> (SeatsFree, Vec<PoolSeats>) {
    let mut summary = Vec::new();
    let mut out = Vec::new();
    for p in &listing.seat_pools {
        match beacons.iter().find(|b| b.pool == p.id) {
            Some(b) => {
                let fr = beacon::freshness(b, now_ms);
                summary.push((fr, b.availability));
                let (label, age) = match fr {
                    Freshness::Fresh { age_s } => ("fresh", Some(age_s)),
                    Freshness::Stale { age_s } => ("stale", Some(age_s)),
                    Freshness::Unknown => ("unknown", None),
                    Freshness::Closed => ("closed", None),
                };
                out.push(PoolSeats {
                    pool: p.id.clone(),
                    status: beacon::describe(&fr, &b.availability),
                    freshness: label.into(),
                    availability: Some(b.availability),
                    age_s: age,
                });
            }
            None => {
                summary.push((Freshness::Unknown, Availability::Full));
                out.push(PoolSeats {
                    pool: p.id.clone(),
                    status: "unknown".into(),
                    freshness: "unknown".into(),
                    availability: None,
                    age_s: None,
                });
            }
        }
    }
    (beacon::summarise(summary), out)
}

fn row(
    entry: &IndexEntry,
    l: &Listing,
    seats_free: SeatsFree,
    seats: Vec<PoolSeats>,
    open: OpenState,
    query: &Query,
) -> DirectoryRow {
    let a = &l.accessibility;
    let mut access = Vec::new();
    if matches!(a.wheelchair, Some(w) if w.to_string() == "yes") {
        access.push("wheelchair");
    }
    if a.toilets_wheelchair == Some(true) {
        access.push("accessible_toilet");
    }
    if a.hearing_loop == Some(true) {
        access.push("hearing_loop");
    }
    if a.quiet_room == Some(true) {
        access.push("quiet_room");
    }
    if a.entrance.as_ref().and_then(|e| e.step_free) == Some(true) {
        access.push("step_free_entrance");
    }
    let distance_km = match query.sort {
        Sort::Distance { lat, lon } => Some(distance_km(lat, lon, l.location.lat, l.location.lon)),
        Sort::Name => None,
    };
    DirectoryRow {
        id: l.id.clone(),
        name: l.name.clone(),
        city: l.location.address.city.clone(),
        country: l.location.address.country.clone(),
        open_now: match open {
            OpenState::Open => Some(true),
            OpenState::Closed => Some(false),
            OpenState::Unknown => None,
        },
        seats_free: match seats_free {
            SeatsFree::Yes => "yes",
            SeatsFree::No => "no",
            SeatsFree::Unknown => "unknown",
        }
        .into(),
        seats,
        day_pass: l
            .day_pass()
            .map(|o| format!("{:.2} {}", o.price, o.currency)),
        wifi_down_mbps: l.internet.down_mbps,
        access: access.into_iter().map(String::from).collect(),
        amenities: l.amenities.iter().map(|(a, _)| a.to_string()).collect(),
        distance_km,
        signers: entry.signers.iter().map(|s| s.key).collect(),
        revoked: entry.revoked.as_ref().map(|r| r.reason.clone()),
        facts: Vec::new(),
    }
}
