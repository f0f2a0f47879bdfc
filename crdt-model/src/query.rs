//! Directory queries: what members filter and sort by (city, open now, seats free now, price, wifi speed,
//! amenities, accessibility, reciprocity, distance), run over many listings at once.
//!
//! Build a [`SearchIndex`] once (it folds text to lower case without accents, compiles opening hours and
//! packs amenities and access facts into bit masks) and keep it: a changed listing replaces its row
//! ([`SearchIndex::set`], [`SearchIndex::insert`], [`SearchIndex::remove`]). Run any number of
//! [`Query`]s against it with [`Query::run_on`]; rows are checked cheapest filter first and nothing is
//! allocated per row. Opening hours are compiled once per distinct (hours, time zone, country), however
//! many spaces share them (an expression is parsed once for every zone and country that uses it), and each remembers its open state until it next changes, so `open_now` over
//! a large directory costs an evaluation per distinct hours only when a state has expired. Live seat availability is not part of a listing: the caller passes it per row (the
//! beacon layer decides freshness). [`Query::run`] takes plain [`Entry`] values and builds the index itself,
//! for one-off queries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::hours::{DayShapes, Hours, HoursExpr, OpenState, WeekHours};
use crate::listing::{vocabulary, Accessibility, Amenity, Category, Listing, Product, Wheelchair};

vocabulary! {
    /// An accessibility need a member can filter by. A listing matches only when the fact is known to be
    /// `yes`; unknown does not match.
    AccessNeed, "access need" {
        /// `accessibility.wheelchair` is `yes` (not `limited`).
        Wheelchair => "wheelchair",
        /// `accessibility.toilets_wheelchair` is true.
        AccessibleToilet => "accessible_toilet",
        /// `accessibility.hearing_loop` is true.
        HearingLoop => "hearing_loop",
        /// `accessibility.quiet_room` is true.
        QuietRoom => "quiet_room",
        /// `accessibility.entrance.step_free` is true.
        StepFreeEntrance => "step_free_entrance",
    }
}

impl AccessNeed {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether `a` is known to meet this need.
    pub fn met_by(self, a: &Accessibility) -> bool {
        match self {
            Self::Wheelchair => a.wheelchair == Some(Wheelchair::Yes),
            Self::AccessibleToilet => a.toilets_wheelchair == Some(true),
            Self::HearingLoop => a.hearing_loop == Some(true),
            Self::QuietRoom => a.quiet_room == Some(true),
            Self::StepFreeEntrance => a.entrance.as_ref().and_then(|e| e.step_free) == Some(true),
        }
    }
}

/// One listing with its live seat status, for [`Query::run`].
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub listing: &'a Listing,
    /// Whether it has seats free now by [`crate::seats::space_now`].
    pub free_now: bool,
}

/// Result order.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Sort {
    /// By name (case- and accent-insensitive), then by position.
    #[default]
    Name,
    /// Nearest first from this point, by great-circle distance.
    Distance { lat: f64, lon: f64 },
    /// Cheapest day pass first, grouped by currency (amounts are never converted): the group of
    /// [`Query::currency`] first when given, then the others by currency code; no day pass last.
    Price,
}

/// A radius filter: only spaces within `radius_km` of a point.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub radius_km: f64,
}

/// A directory query. Every set filter must match (AND); the default matches everything, sorted by name.
///
/// It crosses a node's control socket as it is (serde), so a query means the same in process and through
/// a running daemon.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Query {
    /// Words that must all appear (case- and accent-insensitive) in the name, description, translations,
    /// city, street or postcode.
    pub text: Option<String>,
    /// The city, compared whole (case- and accent-insensitive).
    pub city: Option<String>,
    pub category: Option<Category>,
    /// All of these are required.
    pub amenities: Vec<Amenity>,
    /// All of these must be known `yes`.
    pub access: Vec<AccessNeed>,
    /// Open now by the public opening hours, in the space's time zone; unknown does not match.
    pub open_now: bool,
    /// Seats free now by the one rule ([`crate::seats::space_now`]): desk pools, in opening hours, fresh.
    pub seats_free_now: bool,
    /// Sells a day pass at this price or less (0 finds free drop-in). Amounts are never converted: with
    /// [`Query::currency`] only day passes in that currency count; without it each listing's own amount
    /// is compared, which front ends must say (the command line refuses a price without a currency).
    pub max_day_pass_price: Option<f64>,
    /// ISO 4217 code that [`Query::max_day_pass_price`] is in.
    pub currency: Option<String>,
    /// The directory as of this instant instead of the node's clock (opening hours and seat freshness).
    /// Front ends set it only from a test clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Measured download speed at least this many Mbit/s; unmeasured does not match.
    pub min_wifi_down_mbps: Option<f64>,
    /// Accepts the Coworking Visa.
    pub coworking_visa: bool,
    pub near: Option<Near>,
    pub sort: Sort,
    /// Sort by distance from the middle of this city's spaces (the directory's own cities, compared
    /// whole); the node resolves it and answers with the point. Overrides [`Query::sort`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_city: Option<String>,
    /// At most this many results, after sorting.
    pub limit: Option<usize>,
    /// Filters read only facts a coordinator verified (claims count as unknown). The query does not know
    /// verifications: whoever runs it builds the index from [`crate::verify::verified_only`] listings.
    pub verified_only: bool,
}

/// What the index keeps of one listing: only what queries read, precomputed. `H` is how the row names
/// its hours: a slot of the index's shared hours in the index, the hours themselves in a [`SearchRow`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Row<H = Option<u32>> {
    /// Folded name, description, translations and address, joined by newlines.
    haystack: String,
    /// Folded name, the sort key.
    name_key: String,
    /// Folded city.
    city: String,
    category: Category,
    amenities: u32,
    access: u8,
    /// In the index, the slot of [`SearchIndex::hours`] holding the row's compiled hours (shared with
    /// every row whose hours, time zone and country are the same); `None` when the listing has none.
    hours: H,
    /// Every day pass as (price, currency).
    day_passes: Vec<(f64, [u8; 3])>,
    wifi_down: Option<f64>,
    visa: bool,
    lat: f64,
    lon: f64,
}

/// One listing's row of a [`SearchIndex`], standing alone: what a node keeps beside each listing so that
/// a command can query the directory without reading and preparing every listing
/// ([`SearchIndex::push_row`] takes it as [`SearchIndex::push`] takes the listing).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchRow(Row<Option<(HoursKey, Option<DayShapes>)>>);

impl SearchRow {
    /// The encoding [`SearchRow::to_bytes`] writes; a node keeping rows of another format rebuilds them.
    pub const FORMAT: &'static [u8] = b"deskmesh-search-row-2";

    pub fn of(l: &Listing) -> Self {
        let addr = &l.location.address;
        let mut haystack = String::with_capacity(l.name.len() + l.description.len() + 64);
        let mut add = |s: &str| {
            fold_into(s, &mut haystack);
            haystack.push('\n');
        };
        add(&l.name);
        add(&l.description);
        for t in l.translations.values() {
            add(t.name.as_deref().unwrap_or(""));
            add(t.description.as_deref().unwrap_or(""));
        }
        add(&addr.city);
        add(addr.street.as_deref().unwrap_or(""));
        add(addr.postcode.as_deref().unwrap_or(""));

        let access = AccessNeed::ALL
            .iter()
            .filter(|n| n.met_by(&l.accessibility))
            .fold(0, |m, n| m | n.bit());
        let day_passes = l
            .offers
            .iter()
            .filter(|o| o.product == Product::DayPass)
            .map(|o| (o.price, currency_code(&o.currency)))
            .collect();
        let hours = l.opening_hours.as_deref().map(|text| {
            let key = (
                text.to_string(),
                l.location.timezone.clone(),
                addr.country.clone(),
            );
            (key, shapes::of(text))
        });
        Self(Row {
            haystack,
            name_key: fold(&l.name),
            city: fold(&addr.city),
            category: l.category,
            amenities: l.amenities.mask(),
            access,
            hours,
            day_passes,
            wifi_down: l.internet.down_mbps,
            visa: l.reciprocity.coworking_visa,
            lat: l.location.lat,
            lon: l.location.lon,
        })
    }

    /// The row in [`SearchRow::FORMAT`].
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The listing's name folded for comparing: the directory's name order is this key, then the space
    /// id ([`SearchIndex::name_key`]).
    pub fn name_key(&self) -> &str {
        &self.0.name_key
    }
}

/// Values shared by every row with the same key, each slot freed when its last row goes: the opening
/// hours of a directory are few next to its rows.
#[derive(Clone, Debug)]
struct Shared<K, T> {
    /// The value of each slot with its key and how many rows use it; `None` is a free slot.
    slots: Vec<Option<(K, T, u32)>>,
    by_key: HashMap<K, u32>,
    free: Vec<u32>,
}

impl<K, T> Default for Shared<K, T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            by_key: HashMap::new(),
            free: Vec::new(),
        }
    }
}

impl<K: Clone + Eq + std::hash::Hash, T> Shared<K, T> {
    /// The slot of `key`, one more row using it; a new slot holds `make()`.
    fn acquire(&mut self, key: &K, make: impl FnOnce() -> T) -> u32 {
        if let Some(&slot) = self.by_key.get(key) {
            if let Some(Some((_, _, users))) = self.slots.get_mut(slot as usize) {
                *users += 1;
            }
            return slot;
        }
        let entry = Some((key.clone(), make(), 1));
        let slot = match self.free.pop() {
            Some(free) => {
                self.slots[free as usize] = entry;
                free
            }
            None => {
                self.slots.push(entry);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_key.insert(key.clone(), slot);
        slot
    }

    /// One row fewer uses `slot`; the last one frees it, and its value is returned.
    fn release(&mut self, slot: u32) -> Option<T> {
        let entry = self.slots.get_mut(slot as usize)?;
        let users = match entry {
            Some((_, _, users)) => {
                *users = users.saturating_sub(1);
                *users
            }
            None => return None,
        };
        if users > 0 {
            return None;
        }
        let (key, value, _) = entry.take()?;
        self.by_key.remove(&key);
        self.free.push(slot);
        Some(value)
    }

    fn get(&self, slot: u32) -> Option<(&K, &T)> {
        match self.slots.get(slot as usize) {
            Some(Some((k, v, _))) => Some((k, v)),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        self.by_key.len()
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten().map(|(_, v, _)| v)
    }
}

/// Opening hours compiled once for all the rows that share them, with their open state remembered.
#[derive(Clone, Debug, Default)]
struct HoursSlot {
    /// The slot of the expression in [`SearchIndex::exprs`].
    expr: u32,
    /// The hours' shape over a week, when they have one (from the row): evaluated from it, without
    /// parsing the expression.
    shapes: Option<DayShapes>,
    /// The shapes in the row's time zone and country, placed at the slot's first evaluation; `None` when
    /// the time zone is unknown.
    week: std::sync::OnceLock<Option<WeekHours>>,
    /// Compiled at the slot's first evaluation, not when the row is indexed: compiling is most of what
    /// indexing 10,000 listings costs, and a query that keeps 30 rows (`--city`) evaluates only those.
    /// Holds `None` when the hours do not compile (a stored listing may predate a rule): unknown.
    hours: std::sync::OnceLock<Option<Hours>>,
    open: OpenCache,
}

/// What compiled hours depend on: the expression, the time zone and the country (its holidays).
type HoursKey = (String, String, String);

/// Listings prepared for fast queries. Keep it and change rows as listings change ([`SearchIndex::set`],
/// [`SearchIndex::insert`], [`SearchIndex::remove`], [`SearchIndex::push`]); row `i` is the `i`th
/// listing given.
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    /// Boxed, so inserting a row in the middle (a catalog in space id order) moves pointers, not rows.
    #[allow(clippy::vec_box)] // on purpose: see above
    rows: Vec<Box<Row>>,
    /// Hours by (expression, time zone, country).
    hours: Shared<HoursKey, HoursSlot>,
    /// Expressions parsed once, by text, however many time zones and countries use them (parsing is
    /// most of compiling); `None` when one does not parse.
    exprs: Shared<String, std::sync::OnceLock<Option<HoursExpr>>>,
}

impl SearchIndex {
    pub fn build<'a>(listings: impl IntoIterator<Item = &'a Listing>) -> Self {
        let mut index = Self::default();
        for l in listings {
            index.push(l);
        }
        index
    }

    /// Add one listing as the next row.
    pub fn push(&mut self, l: &Listing) {
        let row = self.row(l);
        self.rows.push(Box::new(row));
    }

    /// Replace row `i` with `l` (nothing happens when there is no row `i`).
    pub fn set(&mut self, i: usize, l: &Listing) {
        if i >= self.rows.len() {
            return;
        }
        let row = self.row(l);
        let old = std::mem::replace(&mut *self.rows[i], row);
        self.release(old.hours);
    }

    /// Insert `l` as row `i`, moving later rows up by one (`i` past the end appends).
    pub fn insert(&mut self, i: usize, l: &Listing) {
        let row = self.row(l);
        let i = i.min(self.rows.len());
        self.rows.insert(i, Box::new(row));
    }

    /// Remove row `i`, moving later rows down by one (nothing happens when there is no row `i`).
    pub fn remove(&mut self, i: usize) {
        if i < self.rows.len() {
            let old = self.rows.remove(i);
            self.release(old.hours);
        }
    }

    /// Distinct opening hours in use (each compiled once, when first evaluated).
    pub fn distinct_hours(&self) -> usize {
        self.hours.len()
    }

    /// Distinct hours expressions in use (each parsed once, however many places share it).
    pub fn distinct_expressions(&self) -> usize {
        self.exprs.len()
    }

    /// How many of the distinct hours have been made ready to evaluate so far (compiled, or their shapes
    /// placed in their time zone).
    pub fn compiled_hours(&self) -> usize {
        self.hours
            .values()
            .filter(|h| h.hours.get().is_some() || h.week.get().is_some())
            .count()
    }

    /// How many of the distinct hours are evaluated from their shape over a week, never parsed.
    pub fn shaped_hours(&self) -> usize {
        self.hours.values().filter(|h| h.shapes.is_some()).count()
    }

    /// How many of the distinct expressions have been parsed so far.
    pub fn parsed_expressions(&self) -> usize {
        self.exprs.values().filter(|e| e.get().is_some()).count()
    }

    /// Compiles every distinct hours not compiled yet, spread over up to `threads` threads: for a query
    /// about to evaluate most rows (an unfiltered list of 10,000 spaces holds thousands of distinct
    /// hours, and compiling is what evaluating them first costs).
    pub fn compile_all(&self, threads: usize) {
        let pending: Vec<(&HoursKey, &HoursSlot)> = self
            .hours
            .slots
            .iter()
            .flatten()
            .filter(|(_, h, _)| h.shapes.is_none() && h.hours.get().is_none())
            .map(|(k, h, _)| (k, h))
            .collect();
        deskmesh_keys::par::map_in_order(
            &pending,
            threads,
            64,
            |(key, slot)| {
                self.compiled(slot, key);
            },
            |_| {},
        );
    }

    /// Add a row made elsewhere ([`SearchRow::of`], maybe read back from disk) as the next row.
    pub fn push_row(&mut self, row: SearchRow) {
        let row = self.intern(row);
        self.rows.push(Box::new(row));
    }

    /// `row` in this index: its hours take the slot shared with every row with the same hours; they are
    /// compiled at the first evaluation ([`SearchIndex::compiled`]).
    fn intern(&mut self, SearchRow(row): SearchRow) -> Row {
        let exprs = &mut self.exprs;
        let hours = row.hours.map(|(key, shapes)| {
            self.hours.acquire(&key, || HoursSlot {
                expr: exprs.acquire(&key.0, Default::default),
                // Shapes read back from a store are used only if well formed.
                shapes: shapes.filter(DayShapes::is_valid),
                ..HoursSlot::default()
            })
        });
        Row {
            haystack: row.haystack,
            name_key: row.name_key,
            city: row.city,
            category: row.category,
            amenities: row.amenities,
            access: row.access,
            hours,
            day_passes: row.day_passes,
            wifi_down: row.wifi_down,
            visa: row.visa,
            lat: row.lat,
            lon: row.lon,
        }
    }

    /// One row fewer uses `slot`; the last one frees it (and its expression, when no other slot uses it).
    fn release(&mut self, slot: Option<u32>) {
        if let Some(freed) = slot.and_then(|s| self.hours.release(s)) {
            self.exprs.release(freed.expr);
        }
    }

    /// Slot `slot`'s hours, compiled now if this is their first use; `None` when they do not compile.
    fn compiled<'s>(&'s self, slot: &'s HoursSlot, key: &HoursKey) -> Option<&'s Hours> {
        slot.hours
            .get_or_init(|| {
                let (text, tz, country) = key;
                let expr = self
                    .exprs
                    .get(slot.expr)
                    .and_then(|(_, e)| e.get_or_init(|| HoursExpr::parse(text).ok()).clone())?;
                expr.in_zone(tz).ok().map(|h| h.with_country(country))
            })
            .as_ref()
    }

    fn row(&mut self, l: &Listing) -> Row {
        self.intern(SearchRow::of(l))
    }

    /// Row `i`'s name as the name sort compares it (folded).
    pub fn name_key(&self, i: usize) -> &str {
        &self.rows[i].name_key
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The middle of a city's spaces (the mean of their points), found by the city's name compared whole,
    /// case- and accent-insensitive; `None` when no row is in that city.
    pub fn city_point(&self, city: &str) -> Option<(f64, f64)> {
        let key = fold(city.trim());
        let (mut n, mut lat, mut lon) = (0u32, 0.0, 0.0);
        for r in self.rows.iter().filter(|r| r.city == key) {
            n += 1;
            lat += r.lat;
            lon += r.lon;
        }
        (n > 0).then(|| (lat / f64::from(n), lon / f64::from(n)))
    }

    /// The distinct cities of the rows, as folded keys.
    pub fn city_keys(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.rows.iter().map(|r| r.city.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Row `i`'s state at `now` by its public hours, reusing the compiled hours; unknown when it has none.
    pub fn open_state(&self, i: usize, now: DateTime<Utc>) -> OpenState {
        self.rows
            .get(i)
            .map_or(OpenState::Unknown, |r| self.row_open_state(r, now))
    }

    fn row_open_state(&self, row: &Row, now: DateTime<Utc>) -> OpenState {
        let Some((key, h)) = row.hours.and_then(|s| self.hours.get(s)) else {
            return OpenState::Unknown;
        };
        if let Some(shapes) = &h.shapes {
            let (_, tz, country) = key;
            return match h.week.get_or_init(|| shapes.in_place(tz, country).ok()) {
                Some(week) => h.open.state(now, |t| (week.state(t), week.steady_until(t))),
                None => OpenState::Unknown,
            };
        }
        match self.compiled(h, key) {
            Some(hours) => h
                .open
                .state(now, |t| (hours.state(t), hours.steady_until(t))),
            None => OpenState::Unknown,
        }
    }
}

/// An hours slot's open state remembered together with the span of minutes it holds for (from the evaluation to
/// the next change), so that repeated queries cost one atomic load per row instead of an evaluation.
///
/// Packed in one `u64` so that concurrent queries never see a state from one evaluation with a span from
/// another: bits 0-1 the state (3 = empty), bits 2-32 the first minute, bits 33-63 the first minute after
/// (minutes since the Unix epoch; 31 bits reach the year 6053).
#[derive(Debug)]
struct OpenCache(AtomicU64);

const CACHE_EMPTY: u64 = 3;
const MINUTE_MASK: u64 = (1 << 31) - 1;

impl Default for OpenCache {
    fn default() -> Self {
        Self(AtomicU64::new(CACHE_EMPTY))
    }
}

impl Clone for OpenCache {
    fn clone(&self) -> Self {
        Self(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl OpenCache {
    /// The state at `now`, from the cache when it holds for `now`, else from `evaluate` (the state at an
    /// instant, and until when it surely holds).
    fn state(
        &self,
        now: DateTime<Utc>,
        evaluate: impl FnOnce(DateTime<Utc>) -> (OpenState, DateTime<Utc>),
    ) -> OpenState {
        // Hours change on whole minutes, so a state found anywhere in a minute holds for all of it.
        let Some(minute) = u64::try_from(now.timestamp().div_euclid(60))
            .ok()
            .filter(|m| *m < MINUTE_MASK)
        else {
            return evaluate(now).0;
        };
        let packed = self.0.load(Ordering::Relaxed);
        let (code, from, until) = (packed & 3, (packed >> 2) & MINUTE_MASK, packed >> 33);
        if code != CACHE_EMPTY && from <= minute && minute < until {
            return OpenState::from_code(code as u8);
        }
        let (state, steady) = evaluate(now);
        let until = u64::try_from(steady.timestamp().div_euclid(60))
            .unwrap_or(0)
            .clamp(minute + 1, MINUTE_MASK);
        self.0.store(
            u64::from(state.code()) | (minute << 2) | (until << 33),
            Ordering::Relaxed,
        );
        state
    }
}

/// The parts of a query that are folded or packed once per run, not once per row.
struct Prepared {
    terms: Vec<String>,
    city: Option<String>,
    amenities: u32,
    access: u8,
    currency: Option<[u8; 3]>,
}

impl Query {
    /// Whether the query filters by anything a listing says, or keeps at most `few` rows: one that may
    /// keep only some spaces, as opposed to a list of every space (`open_now` and `seats_free_now` do
    /// not count: they keep about half of a directory by day).
    pub fn is_narrow(&self, few: usize) -> bool {
        self.text.is_some()
            || self.city.is_some()
            || self.category.is_some()
            || !self.amenities.is_empty()
            || !self.access.is_empty()
            || self.max_day_pass_price.is_some()
            || self.min_wifi_down_mbps.is_some()
            || self.coworking_visa
            || self.limit.is_some_and(|l| l <= few)
    }

    /// Run over plain entries, building the index first. For repeated queries build a [`SearchIndex`]
    /// once and use [`Query::run_on`].
    pub fn run(&self, entries: &[Entry<'_>], now: DateTime<Utc>) -> Vec<usize> {
        let index = SearchIndex::build(entries.iter().map(|e| e.listing));
        self.run_on(&index, |i| entries[i].free_now, now)
    }

    /// The indices of matching rows, sorted and limited. `free_now(i)` says whether row `i` has seats free
    /// now by [`crate::seats::space_now`]; it is only called for rows that passed every cheaper filter, and
    /// only when [`Query::seats_free_now`] is set.
    pub fn run_on(
        &self,
        index: &SearchIndex,
        seats: impl Fn(usize) -> bool,
        now: DateTime<Utc>,
    ) -> Vec<usize> {
        let p = Prepared {
            terms: self
                .text
                .as_deref()
                .map(|t| t.split_whitespace().map(fold).collect())
                .unwrap_or_default(),
            city: self.city.as_deref().map(|c| fold(c.trim())),
            amenities: self.amenities.iter().fold(0, |m, a| m | a.bit()),
            access: self.access.iter().fold(0, |m, a| m | a.bit()),
            currency: self.currency.as_deref().map(currency_code),
        };

        let mut hits: Vec<usize> = index
            .rows
            .iter()
            .enumerate()
            .filter(|(i, row)| self.matches(&p, index, row, *i, &seats, now))
            .map(|(i, _)| i)
            .collect();

        let sort = match self.near_city.as_deref().and_then(|c| index.city_point(c)) {
            Some((lat, lon)) => Sort::Distance { lat, lon },
            None => self.sort,
        };
        match sort {
            Sort::Name => hits.sort_unstable_by(|&a, &b| {
                index.rows[a]
                    .name_key
                    .cmp(&index.rows[b].name_key)
                    .then(a.cmp(&b))
            }),
            Sort::Distance { lat, lon } => {
                let mut keyed: Vec<(f64, usize)> = hits
                    .iter()
                    .map(|&i| {
                        (
                            distance_km(lat, lon, index.rows[i].lat, index.rows[i].lon),
                            i,
                        )
                    })
                    .collect();
                keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                hits = keyed.into_iter().map(|(_, i)| i).collect();
            }
            Sort::Price => {
                hits.sort_by(|&a, &b| {
                    price_order(&index.rows[a], &index.rows[b], p.currency)
                        .then_with(|| index.rows[a].name_key.cmp(&index.rows[b].name_key))
                        .then(a.cmp(&b))
                });
            }
        }
        if let Some(n) = self.limit {
            hits.truncate(n);
        }
        hits
    }

    /// Cheapest checks first; opening hours, the only costly one, last.
    fn matches(
        &self,
        p: &Prepared,
        index: &SearchIndex,
        row: &Row,
        i: usize,
        seats: &impl Fn(usize) -> bool,
        now: DateTime<Utc>,
    ) -> bool {
        if self.category.is_some_and(|c| c != row.category)
            || (self.coworking_visa && !row.visa)
            || row.amenities & p.amenities != p.amenities
            || row.access & p.access != p.access
        {
            return false;
        }
        if p.city.as_ref().is_some_and(|c| *c != row.city) {
            return false;
        }
        if let Some(min) = self.min_wifi_down_mbps {
            if !row.wifi_down.is_some_and(|d| d >= min) {
                return false;
            }
        }
        if let Some(max) = self.max_day_pass_price {
            let ok = row
                .day_passes
                .iter()
                .any(|(price, cur)| *price <= max && p.currency.is_none_or(|c| c == *cur));
            if !ok {
                return false;
            }
        }
        if let Some(n) = &self.near {
            if distance_km(n.lat, n.lon, row.lat, row.lon) > n.radius_km {
                return false;
            }
        }
        if !p.terms.iter().all(|t| row.haystack.contains(t.as_str())) {
            return false;
        }
        if self.seats_free_now && !seats(i) {
            return false;
        }
        if self.open_now && index.row_open_state(row, now) != OpenState::Open {
            return false;
        }
        true
    }
}

/// A row's cheapest day pass in `currency` when given and it has one, else its cheapest in any currency.
fn cheapest(row: &Row, currency: Option<[u8; 3]>) -> Option<(f64, [u8; 3])> {
    let best = |only: Option<[u8; 3]>| {
        row.day_passes
            .iter()
            .filter(|(_, c)| only.is_none_or(|o| o == *c))
            .copied()
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    currency.and_then(|c| best(Some(c))).or_else(|| best(None))
}

/// Price order: the group of `first` (a currency), then the other currencies by code, then no day pass;
/// cheapest first within a currency.
fn price_order(a: &Row, b: &Row, first: Option<[u8; 3]>) -> std::cmp::Ordering {
    let key = |r: &Row| cheapest(r, first).map(|(price, cur)| (Some(cur) != first, cur, price));
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.0.cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.total_cmp(&y.2)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// Great-circle distance in kilometres between two points in degrees (haversine, mean Earth radius).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

fn currency_code(s: &str) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (o, b) in out.iter_mut().zip(s.trim().bytes()) {
        *o = b.to_ascii_uppercase();
    }
    out
}

/// Lower case without the accents of Latin letters, so "montreal" finds "Montréal" and "STRASSE" finds
/// "Straße".
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(s, &mut out);
    out
}

fn fold_into(s: &str, out: &mut String) {
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        for l in c.to_lowercase() {
            match strip_accent(l) {
                Folded::One(b) => out.push(b),
                Folded::Two(s) => out.push_str(s),
            }
        }
    }
}

enum Folded {
    One(char),
    Two(&'static str),
}

fn strip_accent(c: char) -> Folded {
    let base = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'ď' | 'đ' | 'ð' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'ĥ' | 'ħ' => 'h',
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => 'i',
        'ĵ' => 'j',
        'ķ' => 'k',
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => 'l',
        'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => 'o',
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => 's',
        'ţ' | 'ť' | 'ŧ' | 'ț' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'ŵ' => 'w',
        'ý' | 'ÿ' | 'ŷ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        'ß' => return Folded::Two("ss"),
        'æ' => return Folded::Two("ae"),
        'œ' => return Folded::Two("oe"),
        'þ' => return Folded::Two("th"),
        other => other,
    };
    Folded::One(base)
}

/// The shapes of hours by expression, remembered across rows: a directory holds few distinct expressions
/// (2,485 in 10,000 generated listings), and reading one's shape parses it.
mod shapes {
    use std::collections::HashMap;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    use crate::hours::{DayShapes, HoursExpr};

    /// At most this many expressions are remembered; past it the memory starts afresh.
    const KEPT: usize = 4096;

    type Seen = Option<HashMap<String, Option<DayShapes>>>;
    static SEEN: Mutex<Seen> = Mutex::new(None);

    fn seen() -> MutexGuard<'static, Seen> {
        SEEN.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shape of `text` over a week ([`HoursExpr::day_shapes`]); `None` when it has none or does not
    /// parse (a stored listing may predate a rule), as the crate would then say unknown.
    pub(super) fn of(text: &str) -> Option<DayShapes> {
        if let Some(known) = seen().as_ref().and_then(|m| m.get(text)) {
            return known.clone();
        }
        let shapes = HoursExpr::parse(text).ok().and_then(|e| e.day_shapes());
        let mut seen = seen();
        let map = seen.get_or_insert_with(HashMap::new);
        if map.len() >= KEPT {
            map.clear();
        }
        map.insert(text.to_string(), shapes.clone());
        shapes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::listing::{Amenities, Booking, Entrance, Internet, Offer};

    const SAMPLE: &str = include_str!("../../node/sample/alliance.json");

    fn sample() -> Vec<Listing> {
        let all: Vec<serde_json::Value> = serde_json::from_str(SAMPLE).unwrap();
        all.into_iter()
            .map(|v| Listing::from_value(v).unwrap())
            .collect()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Wednesday 2025-05-14 12:00 UTC: midday in Lisbon, 14:00 in Berlin, 08:00 in Montréal, 21:00 in Kyoto.
    fn noon() -> DateTime<Utc> {
        utc("2025-05-14T12:00:00Z")
    }

    /// Names of the hits, in order.
    fn names(
        ls: &[Listing],
        q: &Query,
        seats: impl Fn(usize) -> bool,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let index = SearchIndex::build(ls);
        q.run_on(&index, seats, now)
            .into_iter()
            .map(|i| ls[i].name.clone())
            .collect()
    }

    fn run(ls: &[Listing], q: &Query) -> Vec<String> {
        names(ls, q, |_| false, noon())
    }

    #[test]
    fn empty_query_returns_everything_by_name() {
        let ls = sample();
        let got = run(&ls, &Query::default());
        assert_eq!(got.len(), 12);
        let mut sorted = got.clone();
        sorted.sort_by_key(|n| fold(n));
        assert_eq!(got, sorted);
        assert_eq!(got[0], "Atelier Mile-End");
    }

    #[test]
    fn text_is_case_and_accent_insensitive_and_every_word_counts() {
        let ls = sample();
        let q = |t: &str| Query {
            text: Some(t.into()),
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q("MONTREAL")),
            ["Atelier Mile-End"],
            "city, without its accent"
        );
        assert_eq!(run(&ls, &q("kanal")), ["Kanalwerk Coworking"]);
        assert_eq!(
            run(&ls, &q("tatami")),
            ["Machiya Desk Kyoto"],
            "description"
        );
        assert_eq!(run(&ls, &q("町家")), ["Machiya Desk Kyoto"], "translation");
        assert_eq!(
            run(&ls, &q("gartenstrasse")),
            ["Bibliothek am Ufer"],
            "street, ß folded"
        );
        assert_eq!(run(&ls, &q("10999")), ["Kanalwerk Coworking"], "postcode");
        assert_eq!(run(&ls, &q("river lisbon")), ["Azulejo Works"]);
        assert!(
            run(&ls, &q("river berlin")).is_empty(),
            "all words must match"
        );
    }

    #[test]
    fn city_is_matched_whole() {
        let ls = sample();
        let q = Query {
            city: Some(" berlin ".into()),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Bibliothek am Ufer", "Kanalwerk Coworking"]);
        let q = Query {
            city: Some("Montreal".into()),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Atelier Mile-End"]);
        let q = Query {
            city: Some("Berl".into()),
            ..Query::default()
        };
        assert!(run(&ls, &q).is_empty());
    }

    #[test]
    fn amenities_are_all_required() {
        let ls = sample();
        let q = Query {
            amenities: vec![Amenity::PhoneBooth, Amenity::Showers],
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q),
            [
                "Kanalwerk Coworking",
                "Laneway Collective",
                "Vanalinn Works"
            ]
        );
        let q = Query {
            amenities: vec![Amenity::EvCharging],
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Laneway Collective"]);
        let q = Query {
            amenities: vec![Amenity::Childcare],
            ..Query::default()
        };
        assert!(run(&ls, &q).is_empty());
    }

    #[test]
    fn access_needs_require_a_known_yes() {
        let ls = sample();
        let q = Query {
            access: vec![AccessNeed::HearingLoop],
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q),
            ["Kanalwerk Coworking"],
            "false and unknown both fail"
        );
        let q = Query {
            access: vec![AccessNeed::Wheelchair],
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q),
            [
                "Azulejo Works",
                "Bibliothek am Ufer",
                "Kanalwerk Coworking",
                "Laneway Collective",
                "Roma Norte Commons"
            ],
            "limited is not yes"
        );
        let q = Query {
            access: vec![
                AccessNeed::StepFreeEntrance,
                AccessNeed::AccessibleToilet,
                AccessNeed::QuietRoom,
            ],
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Azulejo Works", "Kanalwerk Coworking"]);

        // Unknown is not no, and not yes either.
        let mut l = ls[0].clone();
        l.accessibility.entrance = Some(Entrance::default());
        assert!(!AccessNeed::StepFreeEntrance.met_by(&l.accessibility));
        l.accessibility.entrance = None;
        assert!(!AccessNeed::StepFreeEntrance.met_by(&l.accessibility));
    }

    #[test]
    fn open_now_uses_each_space_s_time_zone() {
        let ls = sample();
        let q = Query {
            open_now: true,
            city: None,
            ..Query::default()
        };
        // Wednesday 12:00 UTC is 13:00 in Lisbon, 14:00 in Berlin and Cape Town, 15:00 in Nairobi and
        // Tallinn and 09:00 in Buenos Aires: open. It is 08:00 in Montréal (opens 08:30), 06:00 in Mexico
        // City, 21:00 in Kyoto (just closed) and 22:00 in Melbourne: closed.
        assert_eq!(
            run(&ls, &q),
            [
                "Azulejo Works",
                "Bibliothek am Ufer",
                "Bo-Kaap Studio Desks",
                "Casa Palermo Cowork",
                "Kanalwerk Coworking",
                "Miradouro Café Desks",
                "Savanna Hub",
                "Vanalinn Works",
            ]
        );
        // Saturday 2025-05-17 02:00 UTC is 11:00 on Saturday in Kyoto, which opens Mo-Sa; it is Friday 20:00
        // in Mexico City (just closed), Saturday noon in Melbourne (weekdays only) and night elsewhere.
        let got = names(&ls, &q, |_| false, utc("2025-05-17T02:00:00Z"));
        assert_eq!(got, ["Machiya Desk Kyoto"]);
    }

    #[test]
    fn unknown_hours_never_count_as_open() {
        let mut l = sample().remove(0);
        l.opening_hours = None;
        let q = Query {
            open_now: true,
            ..Query::default()
        };
        assert!(run(&[l.clone()], &q).is_empty());
        l.opening_hours = Some("Mo-Su 00:00-24:00 unknown".into());
        assert!(run(&[l], &q).is_empty());
    }

    #[test]
    fn seats_free_now_requires_yes_and_asks_only_for_survivors() {
        let ls = sample();
        let q = Query {
            seats_free_now: true,
            city: Some("Lisbon".into()),
            ..Query::default()
        };
        let asked = std::cell::RefCell::new(Vec::new());
        let got = names(
            &ls,
            &q,
            |i| {
                asked.borrow_mut().push(i);
                match i {
                    0 => true,
                    1 => false,
                    _ => true,
                }
            },
            noon(),
        );
        assert_eq!(got, ["Azulejo Works"]);
        assert_eq!(*asked.borrow(), [0, 1], "only the Lisbon rows were asked");
        let no = Query {
            seats_free_now: true,
            ..Query::default()
        };
        assert!(names(&ls, &no, |_| false, noon()).is_empty());
    }

    #[test]
    fn day_pass_price_with_and_without_currency() {
        let ls = sample();
        let q = Query {
            max_day_pass_price: Some(0.0),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Bibliothek am Ufer"], "free drop-in");
        let q = Query {
            max_day_pass_price: Some(20.0),
            currency: Some("eur".into()),
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q),
            [
                "Azulejo Works",
                "Bibliothek am Ufer",
                "Miradouro Café Desks",
                "Vanalinn Works"
            ]
        );
        let q = Query {
            max_day_pass_price: Some(3000.0),
            currency: Some("JPY".into()),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Machiya Desk Kyoto"]);
        // Without a currency, each listing's own amounts are compared: 30 finds the EUR, CAD ones.
        let q = Query {
            max_day_pass_price: Some(30.0),
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q),
            [
                "Atelier Mile-End",
                "Azulejo Works",
                "Bibliothek am Ufer",
                "Kanalwerk Coworking",
                "Miradouro Café Desks",
                "Vanalinn Works"
            ]
        );
    }

    #[test]
    fn price_sort_groups_by_currency_and_never_mixes_amounts() {
        let ls = sample();
        let q = Query {
            sort: Sort::Price,
            ..Query::default()
        };
        let got = run(&ls, &q);
        // Currencies by code (ARS, AUD, CAD, EUR, JPY, KES, MXN, ZAR), cheapest first within each: 250 ZAR
        // never sorts among 45 AUD, and 15000 ARS is not "more" than anything in another currency.
        assert_eq!(
            got,
            [
                "Casa Palermo Cowork",
                "Laneway Collective",
                "Atelier Mile-End",
                "Bibliothek am Ufer",
                "Miradouro Café Desks",
                "Azulejo Works",
                "Vanalinn Works",
                "Kanalwerk Coworking",
                "Machiya Desk Kyoto",
                "Savanna Hub",
                "Roma Norte Commons",
                "Bo-Kaap Studio Desks",
            ]
        );
        let q = Query {
            sort: Sort::Price,
            currency: Some("ZAR".into()),
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q)[0],
            "Bo-Kaap Studio Desks",
            "the chosen currency first"
        );
        // 15 in ARS matches nothing; 15000 ARS does.
        let q = Query {
            max_day_pass_price: Some(15.0),
            currency: Some("ARS".into()),
            ..Query::default()
        };
        assert!(run(&ls, &q).is_empty());
        let q = Query {
            max_day_pass_price: Some(15000.0),
            currency: Some("ARS".into()),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Casa Palermo Cowork"]);
    }

    #[test]
    fn a_city_s_point_is_the_middle_of_its_spaces() {
        let ls = sample();
        let index = SearchIndex::build(&ls);
        let (lat, lon) = index.city_point(" LISBON ").unwrap();
        assert!(
            (lat - 38.71).abs() < 0.05 && (lon + 9.14).abs() < 0.05,
            "{lat},{lon}"
        );
        assert!(index.city_point("Atlantis").is_none());
        assert!(index.city_keys().contains(&"montreal"));
        let q = Query {
            sort: Sort::Distance { lat, lon },
            ..Query::default()
        };
        let mut near = names(&ls, &q, |_| false, noon());
        near.truncate(2);
        near.sort();
        assert_eq!(near, ["Azulejo Works", "Miradouro Café Desks"]);
    }

    #[test]
    fn wifi_visa_and_category() {
        let ls = sample();
        let q = Query {
            min_wifi_down_mbps: Some(600.0),
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q),
            [
                "Kanalwerk Coworking",
                "Machiya Desk Kyoto",
                "Vanalinn Works"
            ]
        );
        let q = Query {
            coworking_visa: true,
            ..Query::default()
        };
        assert_eq!(
            run(&ls, &q),
            [
                "Atelier Mile-End",
                "Azulejo Works",
                "Kanalwerk Coworking",
                "Laneway Collective",
                "Vanalinn Works"
            ]
        );
        let q = Query {
            category: Some(Category::Library),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Bibliothek am Ufer"]);

        let mut unmeasured = ls[0].clone();
        unmeasured.internet = Internet::default();
        let q = Query {
            min_wifi_down_mbps: Some(0.0),
            ..Query::default()
        };
        assert!(
            run(&[unmeasured], &q).is_empty(),
            "unmeasured does not match"
        );
    }

    #[test]
    fn distance_sort_near_filter_and_limit() {
        let ls = sample();
        // From Lisbon's Praça do Comércio.
        let (lat, lon) = (38.707751, -9.136592);
        let q = Query {
            sort: Sort::Distance { lat, lon },
            limit: Some(3),
            ..Query::default()
        };
        let got = run(&ls, &q);
        assert_eq!(got.len(), 3, "limited");
        assert_eq!(
            &got[..2],
            ["Azulejo Works", "Miradouro Café Desks"],
            "nearest first"
        );
        assert!(
            got[2] == "Kanalwerk Coworking" || got[2] == "Bibliothek am Ufer",
            "then Berlin: {got:?}"
        );
        let q = Query {
            near: Some(Near {
                lat,
                lon,
                radius_km: 5.0,
            }),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Azulejo Works", "Miradouro Café Desks"]);
        let q = Query {
            near: Some(Near {
                lat,
                lon,
                radius_km: 0.9,
            }),
            ..Query::default()
        };
        assert_eq!(run(&ls, &q), ["Azulejo Works"]);
    }

    #[test]
    fn haversine_distances() {
        // Lisbon to Berlin is about 2,310 km; Melbourne to Buenos Aires about 11,500 km.
        let d = distance_km(38.7223, -9.1393, 52.52, 13.405);
        assert!((d - 2312.0).abs() < 15.0, "{d}");
        let d = distance_km(-37.8136, 144.9631, -34.6037, -58.3816);
        assert!((d - 11_550.0).abs() < 150.0, "{d}");
        assert_eq!(distance_km(10.0, 20.0, 10.0, 20.0), 0.0);
        let antipodes = distance_km(0.0, 0.0, 0.0, 180.0);
        assert!((antipodes - std::f64::consts::PI * 6371.0088).abs() < 1e-6);
    }

    #[test]
    fn run_over_plain_entries_matches_the_index() {
        let ls = sample();
        let entries: Vec<Entry<'_>> = ls
            .iter()
            .enumerate()
            .map(|(i, l)| Entry {
                listing: l,
                free_now: i % 2 == 0,
            })
            .collect();
        let q = Query {
            seats_free_now: true,
            open_now: true,
            ..Query::default()
        };
        let got: Vec<&str> = q
            .run(&entries, noon())
            .into_iter()
            .map(|i| ls[i].name.as_str())
            .collect();
        assert_eq!(
            got,
            ["Azulejo Works", "Kanalwerk Coworking", "Vanalinn Works"]
        );
    }

    #[test]
    fn access_needs_and_amenities_parse_from_flags() {
        assert_eq!(
            "step-free-entrance".parse::<AccessNeed>(),
            Ok(AccessNeed::StepFreeEntrance)
        );
        let err = "ramp".parse::<AccessNeed>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown access need \"ramp\"; expected one of: wheelchair, accessible_toilet, hearing_loop, quiet_room, step_free_entrance"
        );
        assert_eq!("Phone_Booth".parse::<Amenity>(), Ok(Amenity::PhoneBooth));
    }

    #[test]
    fn index_open_state_and_a_large_directory() {
        // 10,000 generated rows exercise every filter together; correctness only (speed is benchmarked).
        let base = sample();
        let mut ls = Vec::new();
        for i in 0..10_000 {
            let mut l = base[i % base.len()].clone();
            l.name = format!("{} {i}", l.name);
            if i % 7 == 0 {
                l.amenities = Amenities::default();
            }
            if i % 5 == 0 {
                l.offers.push(Offer {
                    product: Product::DayPass,
                    price: 1.0,
                    currency: "EUR".into(),
                    booking: Booking::WalkIn,
                });
            }
            ls.push(l);
        }
        let index = SearchIndex::build(&ls);
        assert_eq!(index.len(), 10_000);
        assert_eq!(index.open_state(0, noon()), OpenState::Open);
        assert_eq!(index.open_state(99_999, noon()), OpenState::Unknown);
        let q = Query {
            text: Some("works".into()),
            amenities: vec![Amenity::Coffee],
            open_now: true,
            max_day_pass_price: Some(1.0),
            currency: Some("EUR".into()),
            ..Query::default()
        };
        let hits = q.run_on(&index, |_| false, noon());
        let expected: Vec<usize> = (0..10_000)
            .filter(|i| {
                let l = &ls[*i];
                let a = &l.location.address;
                let translations = l.translations.values().map(|t| {
                    format!(
                        "{} {}",
                        t.name.as_deref().unwrap_or(""),
                        t.description.as_deref().unwrap_or("")
                    )
                });
                let fields = [
                    l.name.clone(),
                    l.description.clone(),
                    a.city.clone(),
                    a.street.clone().unwrap_or_default(),
                ];
                fields
                    .into_iter()
                    .chain(translations)
                    .any(|f| fold(&f).contains("works"))
                    && i % 7 != 0
                    && i % 5 == 0
                    && l.amenities.contains(Amenity::Coffee)
                    && l.hours().unwrap().unwrap().state(noon()) == OpenState::Open
            })
            .collect();
        let mut sorted_hits = hits.clone();
        sorted_hits.sort_unstable();
        assert_eq!(sorted_hits, expected);
        assert!(!hits.is_empty());
    }

    /// Hours with a shape over a week are answered from the shape the row carries (kept on disk): the
    /// crate's answer, public holidays included, without parsing the expression at the query.
    #[test]
    fn hours_with_a_shape_are_answered_without_parsing() {
        let mut l = sample()[0].clone();
        l.opening_hours = Some("Mo-Fr 08:00-18:00; PH off".into());
        l.location.timezone = "Europe/Berlin".into();
        l.location.address.country = "DE".into();
        let back = SearchRow::from_bytes(&SearchRow::of(&l).to_bytes()).unwrap();
        let mut index = SearchIndex::default();
        index.push_row(back);
        assert_eq!(index.shaped_hours(), 1);
        let crate_says = l.hours().unwrap().unwrap();
        // Wednesday noon, Wednesday evening, Saturday, and Christmas Day (a Thursday, a holiday).
        for t in [
            noon(),
            utc("2025-05-14T17:30:00Z"),
            utc("2025-05-17T12:00:00Z"),
            utc("2025-12-25T11:00:00Z"),
            utc("2025-12-26T11:00:00Z"),
            utc("2025-12-29T11:00:00Z"),
        ] {
            assert_eq!(index.open_state(0, t), crate_says.state(t), "{t}");
        }
        assert_eq!(
            index.open_state(0, utc("2025-12-25T11:00:00Z")),
            OpenState::Closed
        );
        assert_eq!(
            index.open_state(0, utc("2025-12-29T11:00:00Z")),
            OpenState::Open
        );
        assert_eq!((index.compiled_hours(), index.parsed_expressions()), (1, 0));
    }

    /// Indexing compiles no hours; evaluating a row compiles its slot's only, once.
    #[test]
    fn hours_are_compiled_at_their_first_evaluation() {
        let ls = sample();
        let index = SearchIndex::build(&ls);
        assert!(
            index.distinct_hours() > 1,
            "the sample needs several distinct hours"
        );
        assert_eq!(index.compiled_hours(), 0);
        let first = index.open_state(0, noon());
        assert_eq!(index.compiled_hours(), 1);
        assert_eq!(index.open_state(0, noon()), first);
        assert_eq!(index.compiled_hours(), 1);
        let direct = ls[0].hours().unwrap().unwrap().state(noon());
        assert_eq!(first, direct);
        // A query that evaluates hours for every row compiles each distinct one.
        Query {
            open_now: true,
            ..Query::default()
        }
        .run_on(&index, |_| false, noon());
        assert_eq!(index.compiled_hours(), index.distinct_hours());

        // Compiling them all at once, on several threads, compiles each once and answers the same.
        let zones = ["Europe/Lisbon", "Asia/Tokyo", "America/Toronto"];
        let many: Vec<Listing> = (0..120)
            .map(|i| {
                let mut l = ls[i % ls.len()].clone();
                // A date makes hours without a shape over a week: the crate evaluates them.
                l.opening_hours = Some(format!(
                    "Mo-Fr {:02}:00-{:02}:00; Dec 25 off",
                    6 + i % 5,
                    14 + i % 7
                ));
                l.location.timezone = zones[i % 3].into();
                l
            })
            .collect();
        let (ahead, lazy) = (SearchIndex::build(&many), SearchIndex::build(&many));
        assert!(ahead.distinct_hours() >= 64, "enough hours to use threads");
        assert_eq!(ahead.shaped_hours(), 0);
        ahead.compile_all(4);
        assert_eq!(ahead.compiled_hours(), ahead.distinct_hours());
        assert_eq!(ahead.parsed_expressions(), ahead.distinct_expressions());
        for i in 0..many.len() {
            assert_eq!(
                ahead.open_state(i, noon()),
                lazy.open_state(i, noon()),
                "row {i}"
            );
        }
    }

    /// An index built from rows read back from bytes answers every query as one built from the listings.
    #[test]
    fn rows_read_back_from_bytes_answer_as_the_listings_do() {
        let ls = sample();
        let from_listings = SearchIndex::build(&ls);
        let mut from_rows = SearchIndex::default();
        for l in &ls {
            let bytes = SearchRow::of(l).to_bytes();
            let row = SearchRow::from_bytes(&bytes).unwrap();
            assert_eq!(row, SearchRow::of(l));
            from_rows.push_row(row);
        }
        assert!(SearchRow::from_bytes(b"\xff\xff").is_err());
        assert_eq!(from_rows.distinct_hours(), from_listings.distinct_hours());
        let queries = [
            Query::default(),
            Query {
                open_now: true,
                ..Query::default()
            },
            Query {
                text: Some("cafe".into()),
                sort: Sort::Name,
                ..Query::default()
            },
            Query {
                city: Some("Lisbon".into()),
                access: vec![AccessNeed::Wheelchair],
                ..Query::default()
            },
            Query {
                max_day_pass_price: Some(20.0),
                currency: Some("EUR".into()),
                sort: Sort::Distance {
                    lat: 38.7,
                    lon: -9.1,
                },
                ..Query::default()
            },
        ];
        for q in &queries {
            assert_eq!(
                q.run_on(&from_rows, |_| false, noon()),
                q.run_on(&from_listings, |_| false, noon()),
                "{q:?}"
            );
        }
        for i in 0..ls.len() {
            assert_eq!(
                from_rows.open_state(i, noon()),
                from_listings.open_state(i, noon())
            );
        }
    }

    /// One expression used in two time zones is parsed once and evaluated in each zone; its parse is
    /// freed with the last hours that use it.
    #[test]
    fn an_expression_is_parsed_once_for_every_zone_that_uses_it() {
        let mut lisbon = sample()[0].clone();
        // Hours without a shape over a week (a date), which the crate evaluates.
        lisbon.opening_hours = Some("Mo-Su 09:00-17:00; Dec 25 off".into());
        lisbon.location.timezone = "Europe/Lisbon".into();
        let mut tokyo = lisbon.clone();
        tokyo.location.timezone = "Asia/Tokyo".into();
        let mut index = SearchIndex::build([&lisbon, &tokyo]);
        assert_eq!(index.distinct_hours(), 2);
        assert_eq!(index.distinct_expressions(), 1);
        assert_eq!(index.shaped_hours(), 0);
        // 12:00 UTC: 13:00 in Lisbon (open), 21:00 in Tokyo (closed).
        assert_eq!(index.open_state(0, noon()), OpenState::Open);
        assert_eq!(index.open_state(1, noon()), OpenState::Closed);
        assert_eq!((index.compiled_hours(), index.parsed_expressions()), (2, 1));
        // A syntax error in a shared expression is unknown in every zone that uses it.
        let mut bad = lisbon.clone();
        bad.opening_hours = Some("Mo-Fr 8 to 6".into());
        index.set(0, &bad);
        assert_eq!(index.open_state(0, noon()), OpenState::Unknown);
        assert_eq!(index.distinct_expressions(), 2);
        index.remove(1);
        index.remove(0);
        assert_eq!(
            (index.distinct_hours(), index.distinct_expressions()),
            (0, 0)
        );
    }

    #[test]
    fn rows_can_be_replaced_inserted_and_removed_and_hours_are_shared() {
        let ls = sample();
        let mut index = SearchIndex::build(&ls);
        let distinct = index.distinct_hours();
        assert!(distinct > 0 && distinct <= ls.len());
        // A copy of every listing shares its compiled hours.
        for l in &ls {
            index.push(l);
        }
        assert_eq!(index.distinct_hours(), distinct);
        for _ in 0..ls.len() {
            index.remove(ls.len());
        }
        assert_eq!(index.len(), ls.len());
        assert_eq!(index.distinct_hours(), distinct);

        // Replacing a row: the index answers as one built from the new listings.
        let mut changed = ls.clone();
        changed[0].opening_hours = Some("Mo-Su 00:00-24:00".into());
        changed[0].name = "Zeta Works".into();
        index.set(0, &changed[0]);
        let fresh = SearchIndex::build(&changed);
        for q in [
            Query {
                open_now: true,
                ..Query::default()
            },
            Query::default(),
            Query {
                text: Some("works".into()),
                ..Query::default()
            },
        ] {
            assert_eq!(
                q.run_on(&index, |_| false, noon()),
                q.run_on(&fresh, |_| false, noon())
            );
        }
        // Inserting and removing in the middle keeps the others in place.
        index.insert(1, &ls[0]);
        assert_eq!(index.len(), ls.len() + 1);
        let original = SearchIndex::build(&ls);
        assert_eq!(index.open_state(1, noon()), original.open_state(0, noon()));
        index.remove(1);
        for i in 0..changed.len() {
            assert_eq!(index.open_state(i, noon()), fresh.open_state(i, noon()));
        }
        // Hours nobody uses any more are freed, and their slot reused.
        let before = index.distinct_hours();
        let mut odd = changed[1].clone();
        odd.opening_hours = Some("Mo 06:00-07:00".into());
        index.set(1, &odd);
        index.set(1, &changed[1]);
        assert_eq!(index.distinct_hours(), before);
        // Out of range is ignored.
        index.set(999, &ls[0]);
        index.remove(999);
        assert_eq!(index.len(), changed.len());
    }

    #[test]
    fn cached_open_states_agree_with_direct_evaluation() {
        let ls = sample();
        let index = SearchIndex::build(&ls);
        let week = utc("2025-05-12T00:00:00Z");
        let dst = utc("2025-03-29T00:00:00Z"); // Europe's clocks go forward on the 30th.
        let mut instants: Vec<DateTime<Utc>> = (0..1440)
            .map(|k| week + chrono::Duration::minutes(7 * k))
            .chain((0..1440).map(|k| dst + chrono::Duration::minutes(3 * k)))
            .collect();
        // Jumps backwards and repeats must not reuse a span they are outside of.
        instants.extend([
            week,
            dst,
            week + chrono::Duration::seconds(59),
            week + chrono::Duration::days(3),
        ]);
        for t in instants {
            for (i, l) in ls.iter().enumerate() {
                let direct = l.hours().unwrap().unwrap().state(t);
                assert_eq!(index.open_state(i, t), direct, "{} at {t}", l.name);
            }
        }
    }

    #[test]
    fn folding() {
        assert_eq!(fold("Montréal"), "montreal");
        assert_eq!(fold("Gartenstraße"), "gartenstrasse");
        assert_eq!(fold("ÆRØ"), "aero");
        assert_eq!(fold("İstanbul").chars().next(), Some('i'));
    }
}
