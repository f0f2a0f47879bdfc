//! The spaces table's data: a search index over every listing and the filtered, sorted list of rows.
//!
//! The index is built once and kept; the filtered list is rebuilt only when the data or the filters
//! change, never per frame, so drawing touches just the visible rows even with 10,000 spaces. The index
//! is append-only: a changed listing is pushed as a new index row and its old row is left dead (skipped
//! after each query), so a live listing update costs one row, not a rebuild of 10,000. The index is
//! compacted when dead rows outnumber live ones.

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::listing::Product;
use deskmesh_crdt_model::query::fold;
use deskmesh_crdt_model::verify;
use deskmesh_crdt_model::{OpenState, Query, SearchIndex, Sort};

use crate::model::SpaceView;
use deskmesh_crdt_model::SeatsNow;

use crate::seats;

/// Table order. `Distance` needs a point; the others always apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Name,
    City,
    /// Most free seats first.
    Seats,
    /// Cheapest day pass first, grouped by currency (the price filter's first); spaces without one last.
    /// Currencies are never converted.
    Price,
    /// Nearest first from the point set with `n`.
    Distance,
}

impl SortKey {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::City => "city",
            Self::Seats => "seats",
            Self::Price => "price",
            Self::Distance => "distance",
        }
    }

    /// The next key in the `s` cycle; distance only when a point is set.
    pub(crate) fn next(self, has_point: bool) -> Self {
        match self {
            Self::Name => Self::City,
            Self::City => Self::Seats,
            Self::Seats => Self::Price,
            Self::Price if has_point => Self::Distance,
            Self::Price | Self::Distance => Self::Name,
        }
    }
}

/// The search index and the rows currently shown, as slots into the app's `spaces`.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    index: SearchIndex,
    /// The same rows as `index`, each listing reduced to the facts a coordinator verified, for queries
    /// that ask for verified facts only.
    verified: SearchIndex,
    /// Index row to slot.
    row_slot: Vec<usize>,
    /// Slot to its live index row.
    slot_row: Vec<usize>,
    /// Folded city per slot, the city sort key.
    city_key: Vec<String>,
    /// Open state and seat summary per slot at `at`. The app's clock only moves on ticks, so these are
    /// exact for every frame drawn until the next tick; they spare the map and the seat sort and filter
    /// 10,000 evaluations of opening hours and beacons each.
    open: Vec<OpenState>,
    seats: Vec<SeatsNow>,
    at: DateTime<Utc>,
    /// Slots that pass the filters, in display order.
    pub(crate) shown: Vec<usize>,
}

/// Minutes since the epoch: opening hours change only on minute boundaries.
fn minute(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

impl Directory {
    pub(crate) fn build(spaces: &[SpaceView], now: DateTime<Utc>) -> Self {
        let mut d = Self {
            at: now,
            ..Self::default()
        };
        for (slot, s) in spaces.iter().enumerate() {
            d.set(slot, s);
        }
        d
    }

    /// Move the caches to `now`: opening hours when the minute changed, seat summaries always.
    pub(crate) fn refresh(&mut self, spaces: &[SpaceView], now: DateTime<Utc>) {
        if now == self.at {
            return;
        }
        if minute(now) != minute(self.at) {
            for (slot, &row) in self.slot_row.iter().enumerate() {
                self.open[slot] = self.index.open_state(row, now);
            }
        }
        self.at = now;
        for (slot, s) in spaces.iter().enumerate().take(self.seats.len()) {
            self.seats[slot] = seats::summary(s, self.open[slot], now);
        }
    }

    /// Index slot `slot` (a new one when `slot` is the next free slot) with `space`'s listing.
    pub(crate) fn set(&mut self, slot: usize, space: &SpaceView) {
        let listing = &space.listing;
        let row = self.index.len();
        self.index.push(listing);
        let facts: Vec<&str> = space
            .facts
            .iter()
            .filter(|f| f.verified)
            .map(|f| f.fact.as_str())
            .collect();
        self.verified.push(&verify::verified_only(listing, &facts));
        self.row_slot.push(slot);
        let city = fold(&listing.location.address.city);
        let open = self.index.open_state(row, self.at);
        let summary = seats::summary(space, open, self.at);
        if slot < self.slot_row.len() {
            self.slot_row[slot] = row;
            self.city_key[slot] = city;
            self.open[slot] = open;
            self.seats[slot] = summary;
        } else {
            self.slot_row.push(row);
            self.city_key.push(city);
            self.open.push(open);
            self.seats.push(summary);
        }
    }

    /// Recompute the seat summary of `slot` after its beacons changed.
    pub(crate) fn touch(&mut self, slot: usize, space: &SpaceView) {
        if let (Some(summary), Some(&open)) = (self.seats.get_mut(slot), self.open.get(slot)) {
            *summary = seats::summary(space, open, self.at);
        }
    }

    /// Rebuild from scratch when more than half the index rows are dead.
    pub(crate) fn compact_if_needed(&mut self, spaces: &[SpaceView]) {
        let dead = self.index.len() - self.slot_row.len();
        if dead > 64 && dead > self.slot_row.len() {
            let shown = std::mem::take(&mut self.shown);
            *self = Self::build(spaces, self.at);
            self.shown = shown;
        }
    }

    /// Whether slot `slot` is open at `now`, from the cache when `now` is in its minute.
    pub(crate) fn open_state(&self, slot: usize, now: DateTime<Utc>) -> OpenState {
        if minute(now) == minute(self.at) {
            if let Some(&open) = self.open.get(slot) {
                return open;
            }
        }
        self.slot_row
            .get(slot)
            .map_or(OpenState::Unknown, |&row| self.index.open_state(row, now))
    }

    /// The seat summary of `slot` at `now`, from the cache when it is for `now`.
    pub(crate) fn summary(
        &self,
        spaces: &[SpaceView],
        slot: usize,
        now: DateTime<Utc>,
    ) -> SeatsNow {
        match self.seats.get(slot) {
            Some(s) if now == self.at => *s,
            _ => seats::summary(&spaces[slot], self.open_state(slot, now), now),
        }
    }

    /// Run `query` (its own sort is replaced) and order the hits by `sort`.
    pub(crate) fn refilter(
        &mut self,
        spaces: &[SpaceView],
        query: &Query,
        sort: SortKey,
        point: Option<(f64, f64)>,
        now: DateTime<Utc>,
    ) {
        let mut q = query.clone();
        q.sort = match (sort, point) {
            (SortKey::Distance, Some((lat, lon))) => Sort::Distance { lat, lon },
            _ => Sort::Name,
        };
        let seats_free = |row: usize| self.summary(spaces, self.row_slot[row], now).free_now();
        let index = if q.verified_only {
            &self.verified
        } else {
            &self.index
        };
        let hits = q.run_on(index, seats_free, now);
        let mut shown: Vec<usize> = hits
            .into_iter()
            .filter_map(|row| {
                let slot = self.row_slot[row];
                (self.slot_row[slot] == row).then_some(slot)
            })
            .collect();

        // Stable sorts on top of the name order, so ties stay alphabetical.
        match sort {
            SortKey::Name | SortKey::Distance => {}
            SortKey::City => shown.sort_by(|&a, &b| self.city_key[a].cmp(&self.city_key[b])),
            SortKey::Price => {
                // Grouped by currency, the filter's currency first, cheapest first within each; amounts
                // in different currencies are never compared.
                let first = query.currency.as_deref();
                let key = |slot: usize| {
                    let offers = &spaces[slot].listing.offers;
                    let pass = |only: Option<&str>| {
                        offers
                            .iter()
                            .filter(|o| o.product == Product::DayPass)
                            .filter(|o| only.is_none_or(|c| o.currency == c))
                            .min_by(|a, b| a.price.total_cmp(&b.price))
                    };
                    first
                        .and_then(|c| pass(Some(c)))
                        .or_else(|| pass(None))
                        .map(|o| {
                            (
                                Some(o.currency.as_str()) != first,
                                o.currency.clone(),
                                o.price,
                            )
                        })
                };
                shown.sort_by(|&a, &b| match (key(a), key(b)) {
                    (Some(x), Some(y)) => {
                        x.0.cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.total_cmp(&y.2))
                    }
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                });
            }
            SortKey::Seats => {
                let mut keyed: Vec<(i64, usize)> = shown
                    .iter()
                    .map(|&slot| (-self.summary(spaces, slot, now).rank(), slot))
                    .collect();
                keyed.sort_by_key(|(rank, _)| *rank);
                shown = keyed.into_iter().map(|(_, slot)| slot).collect();
            }
        }
        self.shown = shown;
    }
}
