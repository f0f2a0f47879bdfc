//! The directory as members browse it: listings filtered and sorted by a [`Query`], each with its seats
//! now by the one rule of [`deskmesh_crdt_model::seats`] (desk pools, opening hours, fresh figures) and the
//! state of every pool, rooms and booths included.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use anyhow::bail;
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{Availability, Freshness, SeatBeacon, SignedBeacon};
use deskmesh_crdt_model::listing::{Listing, PoolKind};
use deskmesh_crdt_model::query::{distance_km, fold, Query, SearchIndex, SearchRow, Sort};
use deskmesh_crdt_model::seats::{self, Reading, SeatState, SeatsNow};
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
    /// Seats free now by the one rule: a fresh figure of a desk pool with seats, within opening hours.
    pub seats_free: bool,
    /// The space's desks now: state, figure and age.
    pub seats_now: SeatsNow,
    /// The one wording of `seats_now` ("4 free, 2 min ago", "~full, 20 min ago", "closed", "unknown").
    pub seats_text: String,
    /// Every pool, desks, rooms and booths, each with its own state.
    pub seats: Vec<PoolSeats>,
    /// The cheapest day pass, "18.00 EUR".
    pub day_pass: Option<String>,
    pub wifi_down_mbps: Option<f64>,
    pub access: Vec<String>,
    pub amenities: Vec<String>,
    pub lat: f64,
    pub lon: f64,
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
    pub kind: PoolKind,
    /// Whether the pool holds desks (counted as seats) rather than rooms, booths or offices.
    pub desk: bool,
    pub state: SeatState,
    /// The one wording of the pool's state.
    pub status: String,
    /// "fresh", "stale", "unknown" or "closed".
    pub freshness: String,
    pub availability: Option<Availability>,
    pub age_s: Option<u64>,
}

/// Where distances were measured from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    pub lat: f64,
    pub lon: f64,
    /// The city it is the middle of, when given by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

/// What `spaces list` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Directory {
    pub total: usize,
    pub matched: usize,
    /// The instant the directory describes (opening hours and seat freshness).
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    pub spaces: Vec<DirectoryRow>,
}

impl Node {
    /// The directory, filtered and sorted by `query`, with each space's seats now.
    pub fn directory(&self, query: &Query, now: DateTime<Utc>) -> anyhow::Result<Directory> {
        if let Some(found) = self.directory_from_rows(query, now)? {
            return Ok(found);
        }
        let now = query.at.unwrap_or(now);
        // The directory in memory: entries, listings and search index, row for row.
        let catalog = self.catalog()?;
        let (entries, index) = (catalog.entries(), catalog.search());
        let listings = catalog.listings();
        let verifications = self.verifications()?;
        let facts_of = |i: usize| {
            let e = &entries[i];
            verifications
                .get(&e.space)
                .map(|v| verify::fact_states(&e.listing, v))
                .unwrap_or_default()
        };
        let now_ms = now.timestamp_millis();
        // Seats (and so opening hours) only for the rows a filter or the answer needs: a `--city` query
        // over 10,000 spaces evaluates the few it keeps.
        let seats_of = |i: usize| {
            let l = &listings[i];
            pool_seats(l, catalog.beacons(&l.id), index.open_state(i, now), now_ms)
        };
        let mut query = query.clone();
        let origin = match resolve_origin(&mut query, index) {
            Ok(origin) => origin,
            Err(city) => bail!("{}", unknown_city(&city, listings.iter())),
        };
        // Asked for verified facts only, the filters see a fact only where a coordinator verified it and
        // it has not changed since.
        let verified_index = query.verified_only.then(|| {
            let masked: Vec<Listing> = listings
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let states = facts_of(i);
                    let verified: Vec<&str> = states
                        .iter()
                        .filter(|s| s.is_verified())
                        .map(|s| s.fact.as_str())
                        .collect();
                    verify::verified_only(l, &verified)
                })
                .collect();
            SearchIndex::build(masked.iter())
        });
        // A query that evaluates the hours of most rows compiles them all first, on every core.
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let searched = verified_index.as_ref().unwrap_or(index);
        if query.open_now || query.seats_free_now {
            searched.compile_all(threads);
        }
        let hits = query.run_on(searched, |i| seats_of(i).0.free_now(), now);
        if hits.len() > index.distinct_hours() {
            index.compile_all(threads);
        }
        let matched = hits.len();
        // Keys are named (from the roster's state) only if some row has a verified fact.
        let names = std::cell::OnceCell::new();
        let names = || names.get_or_init(|| crate::names::KeyNames::new(self.roster_state()));
        let mut rows = Vec::with_capacity(hits.len());
        for i in hits {
            let (entry, l) = (&entries[i], &listings[i]);
            let (now_seats, pool_rows) = seats_of(i);
            let mut r = row(
                entry,
                l,
                now_seats,
                pool_rows,
                index.open_state(i, now),
                origin.as_ref(),
            );
            r.facts = FactView::all_named(&facts_of(i), |k| names().of(k));
            rows.push(r);
        }
        Ok(Directory {
            total: listings.len(),
            matched,
            at: now,
            origin,
            spaces: rows,
        })
    }

    /// [`Node::directory`] without the directory in memory (a command without a daemon), for a query that
    /// keeps few spaces: it runs on the search rows the store keeps beside the listings and reads only
    /// the hits' entries and beacons, instead of reading and preparing all 10,000 listings. `None` when it
    /// does not apply (the directory is in memory, the rows are not complete, the query keeps many spaces
    /// or needs every listing), and the directory in memory answers.
    fn directory_from_rows(
        &self,
        query: &Query,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Directory>> {
        if !query.is_narrow(FEW_HITS) || query.verified_only || self.catalog_in_memory() {
            return Ok(None);
        }
        let Some(stored) = self.store.search_rows(SearchRow::FORMAT)? else {
            return Ok(None);
        };
        let now = query.at.unwrap_or(now);
        let mut index = SearchIndex::default();
        let mut spaces = Vec::with_capacity(stored.len());
        for (space, bytes) in stored {
            let Ok(row) = SearchRow::from_bytes(&bytes) else {
                tracing::warn!(space = %space, "a stored search row does not read back; reading every listing");
                return Ok(None);
            };
            index.push_row(row);
            spaces.push(space);
        }
        let mut query = query.clone();
        let Ok(origin) = resolve_origin(&mut query, &index) else {
            // An unknown city: the directory in memory names the cities there are.
            return Ok(None);
        };
        // Each hit's entry and beacons, read when first needed (a seats filter needs them for the rows
        // that pass every cheaper filter).
        let hits_read: RefCell<HashMap<usize, Option<Rc<Hit>>>> = RefCell::default();
        let failed: RefCell<Option<anyhow::Error>> = RefCell::default();
        let hit = |i: usize| -> Option<Rc<Hit>> {
            if let Some(read) = hits_read.borrow().get(&i) {
                return read.clone();
            }
            let read = match self.read_hit(&spaces[i]) {
                Ok(read) => read.map(Rc::new),
                Err(e) => {
                    failed.borrow_mut().get_or_insert(e);
                    None
                }
            };
            hits_read.borrow_mut().insert(i, read.clone());
            read
        };
        let now_ms = now.timestamp_millis();
        let seats_of = |i: usize, h: &Hit| {
            pool_seats(
                &h.entry.listing,
                &h.beacons,
                index.open_state(i, now),
                now_ms,
            )
        };
        let hits = query.run_on(
            &index,
            |i| hit(i).is_some_and(|h| seats_of(i, &h).0.free_now()),
            now,
        );
        if let Some(e) = failed.take() {
            return Err(e);
        }
        if hits.len() > FEW_HITS {
            return Ok(None);
        }
        // Keys are named (from the roster's state) only if some hit has a verified fact.
        let names = std::cell::OnceCell::new();
        let names = || names.get_or_init(|| crate::names::KeyNames::new(self.roster_state()));
        let mut rows = Vec::with_capacity(hits.len());
        for i in hits.iter().copied() {
            let Some(h) = hit(i) else {
                continue;
            };
            let (now_seats, pool_rows) = seats_of(i, &h);
            let mut r = row(
                &h.entry,
                &h.entry.listing,
                now_seats,
                pool_rows,
                index.open_state(i, now),
                origin.as_ref(),
            );
            let facts = self.fact_states(&h.entry.listing)?;
            r.facts = FactView::all_named(&facts, |k| names().of(k));
            rows.push(r);
        }
        if let Some(e) = failed.take() {
            return Err(e);
        }
        Ok(Some(Directory {
            total: index.len(),
            matched: hits.len(),
            at: now,
            origin,
            spaces: rows,
        }))
    }

    /// One space's stored entry (`None` when it has none, or its listing does not read back) and the
    /// newest beacon of each of its pools.
    pub(crate) fn read_hit(&self, space: &SpaceId) -> anyhow::Result<Option<Hit>> {
        let Some(bytes) = self.store.entry(space)? else {
            return Ok(None);
        };
        let Some(entry) = crate::catalog::read_entry(space, &bytes)? else {
            return Ok(None);
        };
        let mut beacons: Vec<SeatBeacon> = self
            .store
            .space_beacons(space)?
            .into_iter()
            .filter_map(|(_, b)| SignedBeacon::from_bytes(&b).and_then(|b| b.decode()).ok())
            .collect();
        beacons.sort_by(|a, b| a.pool.cmp(&b.pool));
        Ok(Some(Hit { entry, beacons }))
    }

    /// The middle of the directory's spaces in `city` (compared whole, case- and accent-insensitive).
    pub fn city_point(&self, city: &str) -> anyhow::Result<(f64, f64)> {
        let catalog = self.catalog()?;
        catalog
            .search()
            .city_point(city)
            .ok_or_else(|| anyhow::anyhow!("{}", unknown_city(city, catalog.listings().iter())))
    }

    /// The newest verified beacon of every pool, by space.
    pub fn beacons_by_space(&self) -> anyhow::Result<BTreeMap<SpaceId, Vec<SeatBeacon>>> {
        let mut pools: BTreeMap<SpaceId, Vec<SeatBeacon>> = BTreeMap::new();
        for b in self.beacons()? {
            pools.entry(b.space.clone()).or_default().push(b);
        }
        Ok(pools)
    }

    /// Every listed space's seats now by the one rule, for exports.
    pub fn seats_now(&self, now: DateTime<Utc>) -> anyhow::Result<BTreeMap<SpaceId, SeatsNow>> {
        let catalog = self.catalog()?;
        let mut out = BTreeMap::new();
        for (i, l) in catalog.listings().iter().enumerate() {
            let open = catalog.search().open_state(i, now);
            out.insert(
                l.id.clone(),
                pool_seats(l, catalog.beacons(&l.id), open, now.timestamp_millis()).0,
            );
        }
        Ok(out)
    }
}

/// Hits beyond which a query without the directory in memory reads it all: reading that many entries
/// one by one costs about what reading every listing at once does.
pub const FEW_HITS: usize = 3000;

/// A hit's entry and the newest beacon of each of its pools, read from the store.
pub(crate) struct Hit {
    pub(crate) entry: IndexEntry,
    pub(crate) beacons: Vec<SeatBeacon>,
}

/// Where distances are measured from: a `near_city` becomes a distance sort from the middle of its
/// spaces. `Err` carries a city no space is in.
fn resolve_origin(query: &mut Query, index: &SearchIndex) -> Result<Option<Origin>, String> {
    Ok(match &query.near_city {
        Some(city) => {
            let Some((lat, lon)) = index.city_point(city) else {
                return Err(city.clone());
            };
            let origin = Origin {
                lat,
                lon,
                city: Some(city.trim().to_string()),
            };
            query.sort = Sort::Distance { lat, lon };
            Some(origin)
        }
        None => match query.sort {
            Sort::Distance { lat, lon } => Some(Origin {
                lat,
                lon,
                city: None,
            }),
            _ => None,
        },
    })
}

/// One sentence for a city no space is in, naming a few that are.
fn unknown_city<'a>(city: &str, listings: impl Iterator<Item = &'a Listing>) -> String {
    let mut cities: Vec<&str> = listings.map(|l| l.location.address.city.as_str()).collect();
    cities.sort_by_key(|c| fold(c));
    cities.dedup_by_key(|c| fold(c));
    let shown: Vec<&str> = cities.iter().take(12).copied().collect();
    let more = if cities.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    if shown.is_empty() {
        format!(
            "no space in the directory is in {:?}; the directory is empty",
            city.trim()
        )
    } else {
        format!(
            "no space in the directory is in {:?}; give LAT,LON or one of: {}{more}",
            city.trim(),
            shown.join(", ")
        )
    }
}

/// The space's seats now (desk pools, `open` by its hours) and each pool's own state.
pub fn pool_seats(
    listing: &Listing,
    beacons: &[SeatBeacon],
    open: OpenState,
    now_ms: i64,
) -> (SeatsNow, Vec<PoolSeats>) {
    let reading = |pool: &str| beacons.iter().find(|b| b.pool == pool).map(Reading::from);
    let space = seats::space_now(&listing.seat_pools, reading, open, now_ms);
    let out = listing
        .seat_pools
        .iter()
        .map(|p| {
            let r = reading(&p.id);
            let now = seats::pool_now(r.as_ref(), now_ms);
            let freshness = match r.map(|r| r.freshness(now_ms)) {
                Some(Freshness::Fresh { .. }) => "fresh",
                Some(Freshness::Stale { .. }) => "stale",
                Some(Freshness::Closed) => "closed",
                Some(Freshness::Unknown) | None => "unknown",
            };
            PoolSeats {
                pool: p.id.clone(),
                kind: p.kind,
                desk: seats::is_desk(p.kind),
                state: now.state,
                status: now.text(),
                freshness: freshness.into(),
                availability: now.availability,
                age_s: now.age_s,
            }
        })
        .collect();
    (space, out)
}

fn row(
    entry: &IndexEntry,
    l: &Listing,
    seats_now: SeatsNow,
    seats: Vec<PoolSeats>,
    open: OpenState,
    origin: Option<&Origin>,
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
    let distance_km = origin
        .map(|o| (distance_km(o.lat, o.lon, l.location.lat, l.location.lon) * 10.0).round() / 10.0);
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
        seats_free: seats_now.free_now(),
        seats_text: seats_now.text(),
        seats_now,
        seats,
        day_pass: l
            .day_pass()
            .map(|o| format!("{:.2} {}", o.price, o.currency)),
        wifi_down_mbps: l.internet.down_mbps,
        access: access.into_iter().map(String::from).collect(),
        amenities: l.amenities.iter().map(|(a, _)| a.to_string()).collect(),
        lat: l.location.lat,
        lon: l.location.lon,
        distance_km,
        signers: entry.signers.iter().map(|s| s.key).collect(),
        revoked: entry.revoked.as_ref().map(|r| r.reason.clone()),
        facts: Vec::new(),
    }
}
