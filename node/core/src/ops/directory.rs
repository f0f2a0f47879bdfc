//! The directory as members browse it: listings filtered and sorted by a [`Query`], each with its seats
//! now by the one rule of [`deskmesh_crdt_model::seats`] (desk pools, opening hours, fresh figures) and the
//! state of every pool, rooms and booths included.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::bail;
use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{Availability, Freshness, SeatBeacon, SignedBeacon};
use deskmesh_crdt_model::listing::{Listing, PoolKind, SeatPool};
use deskmesh_crdt_model::query::{distance_km, fold, Query, SearchIndex, Sort};
use deskmesh_crdt_model::seats::{self, Reading, SeatState, SeatsNow};
use deskmesh_crdt_model::OpenState;
use deskmesh_keys::{PublicKey, SpaceId};
use serde::{Deserialize, Serialize};

use deskmesh_crdt_model::verify;

use crate::node::{IndexEntry, Node};
use crate::ops::trust::FactView;
use crate::rows::StoredRow;

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
        let held = self.catalog()?;
        let catalog: &crate::catalog::Catalog = &held;
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
            pool_seats(
                &l.seat_pools,
                catalog.beacons(&l.id),
                index.open_state(i, now),
                now_ms,
            )
        };
        let mut query = query.clone();
        let origin = match resolve_origin(&mut query, index) {
            Ok(origin) => origin,
            Err(city) => bail!(
                "{}",
                unknown_city(
                    &city,
                    listings.iter().map(|l| l.location.address.city.as_str())
                )
            ),
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
        // The rows on every core (a whole list is 10,000 of them, made on the daemon's event loop), then
        // the verified facts of the few spaces that have some.
        let shown = catalog.shown();
        let make = |&i: &usize| {
            let (now_seats, pool_rows) = seats_of(i);
            let open = index.open_state(i, now);
            row(
                (*shown[i]).clone(),
                now_seats,
                pool_rows,
                open,
                origin.as_ref(),
            )
        };
        let mut rows = deskmesh_keys::par::map_in_order(&hits, threads, 1024, make, make);
        for (r, &i) in rows.iter_mut().zip(&hits) {
            r.facts = FactView::all_named(&facts_of(i), |k| names().of(k));
        }
        Ok(Directory {
            total: listings.len(),
            matched,
            at: now,
            origin,
            spaces: rows,
        })
    }

    /// [`Node::directory`] without the directory in memory (a command without a daemon): it runs on the
    /// rows the store keeps beside the listings ([`StoredRow`]: each space's search row and what its
    /// directory row shows), so it reads no listing, only the beacons (all of them, beside the rows, for
    /// a query that may keep most spaces; a narrow query's hits' alone) and the listing of a hit a
    /// coordinator verified facts of. `None` when it does not apply (the directory is in memory, the
    /// rows are not complete, or the query shows verified facts only, which masks every listing), and
    /// the directory in memory answers.
    fn directory_from_rows(
        &self,
        query: &Query,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Directory>> {
        if query.verified_only || self.catalog_in_memory() {
            return Ok(None);
        }
        match self.rows_answer(query, now, true)? {
            FromRows::Answer(answer) => Ok(answer),
            // It passed its checksum, so a part that does not read back is a bug, not a damaged file:
            // the store's trees are read instead, which keeps a new snapshot.
            FromRows::SnapshotUnreadable => {
                tracing::warn!("the directory snapshot does not read back; reading the store");
                match self.rows_answer(query, now, false)? {
                    FromRows::Answer(answer) => Ok(answer),
                    FromRows::SnapshotUnreadable => Ok(None),
                }
            }
        }
    }

    /// [`Node::directory_from_rows`], from the directory snapshot when it is current and `snapshot`.
    fn rows_answer(
        &self,
        query: &Query,
        now: DateTime<Utc>,
        snapshot: bool,
    ) -> anyhow::Result<FromRows> {
        let narrow = query.is_narrow(FEW_HITS);
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let (source, raw_beacons) = self.read_kept(narrow, snapshot)?;
        let from_snapshot = matches!(source, Some(Stored::Snapshot(_)));
        let Some(stored) = source.as_ref().and_then(Stored::rows) else {
            return Ok(if from_snapshot {
                FromRows::SnapshotUnreadable
            } else {
                FromRows::Answer(None)
            });
        };
        // The rows are prepared while another thread decodes the beacons.
        let beacons = raw_beacons.map(|raw| std::thread::spawn(move || raw.newest()));
        let rows = kept_rows(&stored);
        if beacons.is_some() {
            // Waiting for the beacons: the hours' holiday calendars are unpacked meanwhile.
            deskmesh_crdt_model::hours::Hours::load_holidays();
        }
        let all_beacons = beacons.map(|thread| {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("reading the seat beacons failed (a thread panicked)"))
        });
        let Some(kept) = rows else {
            return Ok(FromRows::Answer(None));
        };
        let all_beacons = match all_beacons.transpose()? {
            None => None,
            Some(Some(newest)) => Some(newest),
            Some(None) => return Ok(FromRows::SnapshotUnreadable),
        };
        let now = query.at.unwrap_or(now);
        let mut query = query.clone();
        let index = &kept.index;
        let origin = match resolve_origin(&mut query, index) {
            Ok(origin) => origin,
            Err(city) => {
                let shown: Vec<&Shown> = (0..index.len()).filter_map(|i| kept.shown(i)).collect();
                if kept.unreadable.get() {
                    return Ok(FromRows::Answer(None));
                }
                bail!(
                    "{}",
                    unknown_city(&city, shown.into_iter().map(Shown::city))
                )
            }
        };
        // A narrow query reads each hit's beacons when first needed (a seats filter needs them for the
        // rows that pass every cheaper filter).
        let read: RefCell<HashMap<usize, Vec<SeatBeacon>>> = RefCell::default();
        let failed: RefCell<Option<anyhow::Error>> = RefCell::default();
        let now_ms = now.timestamp_millis();
        let seats_of = |i: usize| {
            let open = index.open_state(i, now);
            let Some(s) = kept.shown(i) else {
                // Thrown away: the answer comes from the directory instead.
                return pool_seats(&[], &[], open, now_ms);
            };
            match &all_beacons {
                Some(all) => pool_seats(
                    &s.pools,
                    all.get(&s.id).map_or(&[][..], Vec::as_slice),
                    open,
                    now_ms,
                ),
                None => {
                    let mut read = read.borrow_mut();
                    let beacons = read.entry(i).or_insert_with(|| {
                        self.stored_beacons(&s.id).unwrap_or_else(|e| {
                            failed.borrow_mut().get_or_insert(e);
                            Vec::new()
                        })
                    });
                    pool_seats(&s.pools, beacons, open, now_ms)
                }
            }
        };
        // A query that evaluates the hours of most rows compiles them all first, on every core.
        if !narrow && (query.open_now || query.seats_free_now) {
            index.compile_all(threads);
        }
        let hits = query.run_on(index, |i| seats_of(i).0.free_now(), now);
        if let Some(e) = failed.take() {
            return Err(e);
        }
        // Each hit's row: its shown part, its hours (compiled at their first use) and seats now.
        let built: Vec<Option<DirectoryRow>> = match &all_beacons {
            // Every beacon in memory: the rows are made on every core.
            Some(all) => {
                let (raw, origin) = (&kept.raw, origin.as_ref());
                let make = |&i: &usize| {
                    let (bytes, at) = &raw[i];
                    let shown = StoredRow::shown_of(bytes, *at).ok()?;
                    let beacons = all.get(&shown.id).map_or(&[][..], Vec::as_slice);
                    let open = index.open_state(i, now);
                    let (now_seats, pools) = pool_seats(&shown.pools, beacons, open, now_ms);
                    Some(row(shown, now_seats, pools, open, origin))
                };
                deskmesh_keys::par::map_in_order(&hits, threads, 256, make, |_| None)
            }
            // A narrow query's few hits, with the beacons read for them.
            None => {
                if hits.len() > index.distinct_hours() {
                    index.compile_all(threads);
                }
                let make = |i: usize| {
                    let (now_seats, pools) = seats_of(i);
                    let open = index.open_state(i, now);
                    let shown = kept.shown(i)?.clone();
                    Some(row(shown, now_seats, pools, open, origin.as_ref()))
                };
                hits.iter().map(|&i| make(i)).collect()
            }
        };
        if let Some(e) = failed.take() {
            return Err(e);
        }
        // A shown part that did not read back (a hit's, or one a seats filter read): the directory
        // answers instead.
        let rows = built.into_iter().collect::<Option<Vec<DirectoryRow>>>();
        let Some(mut rows) = rows.filter(|_| !kept.unreadable.get()) else {
            tracing::warn!("a stored directory row does not read back; reading every listing");
            return Ok(FromRows::Answer(None));
        };
        // Facts a coordinator verified need the listing: read for those spaces alone.
        let verifications = if narrow {
            None
        } else {
            Some(self.verifications()?)
        };
        // Keys are named (from the roster's state) only if some hit has a verified fact.
        let names = std::cell::OnceCell::new();
        let names = || names.get_or_init(|| crate::names::KeyNames::new(self.roster_state()));
        for r in &mut rows {
            let verified = match &verifications {
                Some(all) => all.get(&r.id).cloned().unwrap_or_default(),
                None => self.space_verifications(&r.id)?,
            };
            if verified.is_empty() {
                continue;
            }
            if let Some(entry) = self.stored_entry(&r.id)? {
                let facts = verify::fact_states(&entry.listing, &verified);
                r.facts = FactView::all_named(&facts, |k| names().of(k));
            }
        }
        let total = kept.index.len();
        // Freed on another thread: 10,000 rows and their beacons take milliseconds to free, after the
        // answer is made. The rows' bytes go with what they were lent from.
        let KeptRows { index, shown, .. } = kept;
        let _ = std::thread::Builder::new()
            .name("free-rows".into())
            .spawn(move || drop((index, shown, all_beacons, source)));
        Ok(FromRows::Answer(Some(Directory {
            total,
            matched: rows.len(),
            at: now,
            origin,
            spaces: rows,
        })))
    }

    /// The newest beacon of each of `space`'s pools, by pool, read from the store (not from the
    /// directory in memory, as [`Node::space_beacons`] is).
    fn stored_beacons(&self, space: &SpaceId) -> anyhow::Result<Vec<SeatBeacon>> {
        let mut beacons: Vec<SeatBeacon> = self
            .store
            .space_beacons(space)?
            .into_iter()
            .filter_map(|(_, b)| SignedBeacon::from_bytes(&b).and_then(|b| b.decode()).ok())
            .collect();
        beacons.sort_by(|a, b| a.pool.cmp(&b.pool));
        Ok(beacons)
    }

    /// One space's stored entry (`None` when it has none, or its listing does not read back) and the
    /// newest beacon of each of its pools.
    pub(crate) fn read_hit(&self, space: &SpaceId) -> anyhow::Result<Option<Hit>> {
        let Some(entry) = self.stored_entry(space)? else {
            return Ok(None);
        };
        Ok(Some(Hit {
            entry,
            beacons: self.stored_beacons(space)?,
        }))
    }

    /// One space's stored entry; `None` when it has none, or its listing does not read back.
    fn stored_entry(&self, space: &SpaceId) -> anyhow::Result<Option<IndexEntry>> {
        match self.store.entry(space)? {
            Some(bytes) => crate::catalog::read_entry(space, &bytes),
            None => Ok(None),
        }
    }

    /// The middle of the directory's spaces in `city` (compared whole, case- and accent-insensitive).
    pub fn city_point(&self, city: &str) -> anyhow::Result<(f64, f64)> {
        let catalog = self.catalog()?;
        catalog.search().city_point(city).ok_or_else(|| {
            let cities = catalog.listings().iter();
            let cities = cities.map(|l| l.location.address.city.as_str());
            anyhow::anyhow!("{}", unknown_city(city, cities))
        })
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
                pool_seats(
                    &l.seat_pools,
                    catalog.beacons(&l.id),
                    open,
                    now.timestamp_millis(),
                )
                .0,
            );
        }
        Ok(out)
    }
}

/// Hits beyond which a query without the directory in memory reads every beacon at once instead of each
/// hit's one by one ([`Query::is_narrow`]).
pub const FEW_HITS: usize = 3000;

/// A hit's entry and the newest beacon of each of its pools, read from the store.
pub(crate) struct Hit {
    pub(crate) entry: IndexEntry,
    pub(crate) beacons: Vec<SeatBeacon>,
}

/// Every kept row and, unless `narrow`, every beacon, as the store holds them (`None` rows when they are
/// not complete in the current format): from the directory snapshot when the store has not changed since
/// it was taken, else from the store's trees, and then kept as the snapshot when a whole list read them.
type Kept = (Option<Stored>, Option<RawBeacons>);

/// What [`Node::rows_answer`] found.
enum FromRows {
    /// The directory, or `None` when the rows do not apply and the directory in memory answers.
    Answer(Option<Directory>),
    /// The snapshot's rows or beacons did not read back: ask again from the store's trees.
    SnapshotUnreadable,
}

/// Where the kept rows were read from; [`Stored::rows`] lends them (the snapshot's are not copied).
enum Stored {
    Snapshot(Arc<deskmesh_store::DirectorySnapshot>),
    Trees(deskmesh_store::SpaceRows),
}

/// Every beacon as the store holds them, or the snapshot that holds them, to decode on another thread
/// while the rows are prepared ([`RawBeacons::newest`]).
enum RawBeacons {
    Read(Vec<(SpaceId, String, Vec<u8>)>),
    Snapshot(Arc<deskmesh_store::DirectorySnapshot>),
}

impl RawBeacons {
    /// The newest beacon of each pool, by space; `None` if the snapshot's beacons do not read back.
    fn newest(self) -> Option<HashMap<SpaceId, Vec<SeatBeacon>>> {
        match self {
            RawBeacons::Read(raw) => Some(crate::catalog::newest_beacons(raw)),
            RawBeacons::Snapshot(s) => s.beacons().map(crate::catalog::newest_beacons),
        }
    }
}

impl Stored {
    /// Each row's space id (as text) and bytes, in space id order; `None` if the snapshot's rows do not
    /// read back.
    fn rows(&self) -> Option<Vec<(&str, &[u8])>> {
        match self {
            Stored::Snapshot(snapshot) => snapshot.row_slices(),
            Stored::Trees(rows) => Some(
                rows.iter()
                    .map(|(id, bytes)| (id.as_str(), bytes.as_slice()))
                    .collect(),
            ),
        }
    }
}

impl Node {
    /// `snapshot`: whether a current directory snapshot may be used.
    fn read_kept(&self, narrow: bool, snapshot: bool) -> anyhow::Result<Kept> {
        let store = &*self.store;
        let read_at = store.position();
        if read_at.is_some() && snapshot {
            if let Some(snapshot) = store.directory_snapshot(StoredRow::FORMAT) {
                // Both parts are decoded later, at once ([`Stored::rows`], [`RawBeacons::newest`]).
                let snapshot = Arc::new(snapshot);
                let beacons = (!narrow).then(|| RawBeacons::Snapshot(Arc::clone(&snapshot)));
                return Ok((Some(Stored::Snapshot(snapshot)), beacons));
            }
        }
        // The two trees are read at once.
        let (rows, beacons) = std::thread::scope(|scope| {
            let beacons = (!narrow).then(|| scope.spawn(|| store.beacons()));
            let rows = store.search_rows(StoredRow::FORMAT);
            let beacons = beacons.map(|thread| match thread.join() {
                Ok(read) => read.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!(
                    "reading the seat beacons failed (a thread panicked)"
                )),
            });
            (rows, beacons)
        });
        let (rows, beacons) = (rows?, beacons.transpose()?);
        if let (Some(at), Some(rows), Some(beacons)) = (read_at, &rows, &beacons) {
            store.keep_directory_snapshot(at, StoredRow::FORMAT, rows, beacons);
        }
        Ok((rows.map(Stored::Trees), beacons.map(RawBeacons::Read)))
    }
}

/// The rows the store keeps ([`StoredRow`]) in space id order, prepared for queries: their search rows as
/// an index, each row's shown part read when first asked for ([`KeptRows::shown`]). `None` when a search
/// row does not read back (the directory is read instead). Decoding the search rows on a second core
/// was measured and not kept: the beacons are decoded on it meanwhile, and it was no faster.
fn kept_rows<'a>(stored: &[(&str, &'a [u8])]) -> Option<KeptRows<'a>> {
    let mut index = SearchIndex::default();
    let mut raw = Vec::with_capacity(stored.len());
    for (space, bytes) in stored {
        let Ok((search, at)) = StoredRow::search_of(bytes) else {
            tracing::warn!(space = %space, "a stored directory row does not read back; reading every listing");
            return None;
        };
        index.push_row(search);
        raw.push((*bytes, at));
    }
    let shown = raw.iter().map(|_| OnceCell::new()).collect();
    Some(KeptRows {
        index,
        raw,
        shown,
        unreadable: Cell::new(false),
    })
}

/// The rows the store keeps, as a query without the directory in memory reads them ([`kept_rows`]).
struct KeptRows<'a> {
    index: SearchIndex,
    /// Row `i`'s bytes, and where its shown part starts in them.
    raw: Vec<(&'a [u8], usize)>,
    shown: Vec<OnceCell<Option<Shown>>>,
    /// Set when a shown part did not read back: the answer is not given from the rows.
    unreadable: Cell<bool>,
}

impl KeptRows<'_> {
    /// Row `i`'s shown part, read at the first call; `None` (and [`KeptRows::unreadable`] set) when it
    /// does not read back.
    fn shown(&self, i: usize) -> Option<&Shown> {
        self.shown[i]
            .get_or_init(|| {
                let (bytes, at) = &self.raw[i];
                let read = StoredRow::shown_of(bytes, *at).ok();
                if read.is_none() {
                    self.unreadable.set(true);
                }
                read
            })
            .as_ref()
    }
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
fn unknown_city<'a>(city: &str, cities: impl Iterator<Item = &'a str>) -> String {
    let mut cities: Vec<&str> = cities.collect();
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

/// The space's seats now (desk pools of its `pools`, `open` by its hours) and each pool's own state.
pub fn pool_seats(
    pools: &[SeatPool],
    beacons: &[SeatBeacon],
    open: OpenState,
    now_ms: i64,
) -> (SeatsNow, Vec<PoolSeats>) {
    let reading = |pool: &str| beacons.iter().find(|b| b.pool == pool).map(Reading::from);
    let space = seats::space_now(pools, reading, open, now_ms);
    let out = pools
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

/// What a directory row shows of a space that does not change with the clock or the query, made from its
/// index entry. The store keeps it beside the listing ([`crate::rows::StoredRow`]), so that a command
/// without a daemon lists spaces without reading their listings; the directory in memory makes it from
/// the entry at each query. Either way [`row`] turns it into the row, so both show the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Shown {
    id: SpaceId,
    name: String,
    city: String,
    country: String,
    day_pass: Option<String>,
    wifi_down_mbps: Option<f64>,
    access: Vec<String>,
    amenities: Vec<String>,
    lat: f64,
    lon: f64,
    signers: Vec<PublicKey>,
    revoked: Option<String>,
    #[serde(with = "pools")]
    pools: Vec<SeatPool>,
}

impl Shown {
    pub(crate) fn of(entry: &IndexEntry) -> Self {
        let l = &entry.listing;
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
        Self {
            id: l.id.clone(),
            name: l.name.clone(),
            city: l.location.address.city.clone(),
            country: l.location.address.country.clone(),
            day_pass: l
                .day_pass()
                .map(|o| format!("{:.2} {}", o.price, o.currency)),
            wifi_down_mbps: l.internet.down_mbps,
            access: access.into_iter().map(String::from).collect(),
            amenities: l.amenities.iter().map(|(a, _)| a.to_string()).collect(),
            lat: l.location.lat,
            lon: l.location.lon,
            signers: entry.signers.iter().map(|s| s.key).collect(),
            revoked: entry.revoked.as_ref().map(|r| r.reason.clone()),
            pools: l.seat_pools.clone(),
        }
    }

    /// The space's city as its listing spells it.
    pub(crate) fn city(&self) -> &str {
        &self.city
    }
}

/// [`Shown::pools`] in a form that reads back from postcard (which has no field names, so a field left
/// out when empty, as the listing's JSON does, would shift every field after it).
mod pools {
    use deskmesh_crdt_model::listing::{PoolAccess, PoolKind, SeatPool};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Pool {
        id: String,
        kind: PoolKind,
        capacity: u32,
        accessible_capacity: Option<u32>,
        access: PoolAccess,
    }

    pub(super) fn serialize<S: Serializer>(pools: &[SeatPool], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(pools.iter().map(|p| Pool {
            id: p.id.clone(),
            kind: p.kind,
            capacity: p.capacity,
            accessible_capacity: p.accessible_capacity,
            access: p.access,
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SeatPool>, D::Error> {
        Ok(Vec::<Pool>::deserialize(d)?
            .into_iter()
            .map(|p| SeatPool {
                id: p.id,
                kind: p.kind,
                capacity: p.capacity,
                accessible_capacity: p.accessible_capacity,
                access: p.access,
            })
            .collect())
    }
}

fn row(
    shown: Shown,
    seats_now: SeatsNow,
    seats: Vec<PoolSeats>,
    open: OpenState,
    origin: Option<&Origin>,
) -> DirectoryRow {
    let distance_km =
        origin.map(|o| (distance_km(o.lat, o.lon, shown.lat, shown.lon) * 10.0).round() / 10.0);
    DirectoryRow {
        id: shown.id,
        name: shown.name,
        city: shown.city,
        country: shown.country,
        open_now: match open {
            OpenState::Open => Some(true),
            OpenState::Closed => Some(false),
            OpenState::Unknown => None,
        },
        seats_free: seats_now.free_now(),
        seats_text: seats_now.text(),
        seats_now,
        seats,
        day_pass: shown.day_pass,
        wifi_down_mbps: shown.wifi_down_mbps,
        access: shown.access,
        amenities: shown.amenities,
        lat: shown.lat,
        lon: shown.lon,
        distance_km,
        signers: shown.signers,
        revoked: shown.revoked,
        facts: Vec::new(),
    }
}
