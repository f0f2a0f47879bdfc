//! The alliance report (`deskmesh report`): the figures a coordinator hands to a city or a funder — how
//! many spaces and seats, where, how many are free now, when they are open, how accessible they are,
//! what they offer and cost, who takes part in the Coworking Visa, and how fresh the data is.
//!
//! This module computes the figures only, as a typed [`AllianceReport`]; front ends render it (the CLI
//! writes a self-contained HTML page and Markdown). Seat figures come from [`Node::directory`], the same
//! rows `spaces list` shows, so the directory's seat rule is the report's.
//!
//! Unknown is kept apart from no everywhere: a listing that does not say whether it has a step-free
//! entrance is counted as unknown, never as not accessible.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Utc};
use deskmesh_crdt_model::beacon::Availability;
use deskmesh_crdt_model::hours::Hours;
use deskmesh_crdt_model::listing::{Amenity, Listing, Wheelchair};
use deskmesh_crdt_model::query::Query;
use deskmesh_crdt_model::seats::SeatState;
use deskmesh_crdt_model::OpenState;
use serde::{Deserialize, Serialize};

use crate::node::Node;
use crate::ops::directory::DirectoryRow;

/// Which spaces a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportScope {
    /// A city, compared case-insensitively.
    pub city: Option<String>,
    /// An ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
}

/// Everything in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllianceReport {
    pub alliance: Option<String>,
    pub generated_at: DateTime<Utc>,
    pub scope: ReportScope,
    /// Spaces in scope, and in the whole directory.
    pub spaces: usize,
    pub spaces_in_directory: usize,
    pub cities: usize,
    pub countries: usize,
    /// One point per space in scope, for the map.
    pub points: Vec<MapPoint>,
    pub seats: SeatTotals,
    pub seats_by_city: Vec<Tally>,
    pub seats_by_country: Vec<Tally>,
    pub seats_now: SeatsNow,
    pub hours: HoursCoverage,
    pub accessibility: Vec<Coverage>,
    /// How many spaces have each amenity, most common first.
    pub amenities: Vec<Tally>,
    pub day_pass: Vec<PriceSummary>,
    pub coworking_visa: Visa,
    pub freshness: Freshness,
    /// Coordinator-verified claims. `None`: this version records none; a later one fills it in.
    pub verification: Option<Verification>,
}

/// A space on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapPoint {
    pub name: String,
    pub city: String,
    pub country: String,
    pub lat: f64,
    pub lon: f64,
    pub seats: u64,
    /// The state of its desks now by the one seat rule: "free", "full", "stale", "closed", "unknown" or
    /// "no_desks".
    pub seats_free: String,
    /// The one wording of that state ("4 free, 2 min ago").
    pub seats_text: String,
}

/// Seats in the listings (the static capacity of their seat pools).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeatTotals {
    /// Every seat of every pool.
    pub total: u64,
    /// Hot and dedicated desks only.
    pub desks: u64,
    /// Seats the listings say are wheelchair accessible.
    pub accessible: u64,
    /// Spaces that list no seat pool.
    pub spaces_without_pools: usize,
}

/// A count under a label: spaces and their seats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub label: String,
    pub spaces: usize,
    pub seats: u64,
}

/// Open seats now, from the seat beacons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeatsNow {
    /// Spaces by the directory's seats-free answer.
    pub spaces_free: usize,
    pub spaces_full: usize,
    pub spaces_unknown: usize,
    /// Seats counted in fresh beacons that give a number.
    pub seats_counted: u64,
    /// Pools whose fresh beacon says many or few rather than a number.
    pub pools_without_count: usize,
    /// Pools by the freshness of their newest beacon.
    pub pools_fresh: usize,
    pub pools_stale: usize,
    pub pools_unknown: usize,
    pub pools_closed: usize,
}

/// When spaces are open, from their public opening hours in their own time zones (this week, public
/// holidays applied).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HoursCoverage {
    pub open_now: usize,
    /// Open after 19:00 on at least one weekday.
    pub evenings: usize,
    /// Open on Saturday or Sunday.
    pub weekends: usize,
    /// Members may get in around the clock (`24/7` member access hours).
    pub members_24_7: usize,
    /// Spaces whose listing gives hours.
    pub known: usize,
    /// Spaces whose listing does not.
    pub unknown: usize,
}

/// One accessibility fact across the spaces: yes, limited (wheelchair only), no, unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub label: String,
    pub yes: usize,
    pub limited: usize,
    pub no: usize,
    pub unknown: usize,
}

/// Day-pass prices in one currency (never converted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceSummary {
    pub currency: String,
    pub spaces: usize,
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// Coworking Visa participation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visa {
    pub participating: usize,
    /// Spaces whose listing does not say they take part.
    pub not_stated: usize,
}

/// How recently the listings' facts were checked (`provenance.check_date`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    pub within_90_days: usize,
    pub within_a_year: usize,
    pub older: usize,
    pub never: usize,
    pub newest: Option<String>,
    pub oldest: Option<String>,
}

/// Coordinator verification of listings; the hook for verified claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub verified: usize,
    pub unverified: usize,
}

impl ReportScope {
    pub fn covers(&self, l: &Listing) -> bool {
        let a = &l.location.address;
        self.city
            .as_ref()
            .is_none_or(|c| c.trim().eq_ignore_ascii_case(a.city.trim()))
            && self
                .country
                .as_ref()
                .is_none_or(|c| c.trim().eq_ignore_ascii_case(&a.country))
    }
}

impl Node {
    /// The report over the spaces `scope` covers, as of `now`.
    pub fn report(
        &self,
        scope: &ReportScope,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AllianceReport> {
        let directory = self.directory(&Query::default(), now)?;
        let rows: BTreeMap<_, _> = directory
            .spaces
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut listings: Vec<Listing> = self.entries()?.into_iter().map(|e| e.listing).collect();
        let total = listings.len();
        listings.retain(|l| scope.covers(l));
        listings.sort_by(|a, b| a.name.cmp(&b.name));
        let pairs: Vec<(&Listing, Option<&DirectoryRow>)> =
            listings.iter().map(|l| (l, rows.get(&l.id))).collect();
        Ok(AllianceReport {
            alliance: self.roster_state().map(|state| state.name.clone()),
            generated_at: now,
            scope: scope.clone(),
            spaces: listings.len(),
            spaces_in_directory: total,
            cities: distinct(&listings, |l| {
                format!("{}/{}", l.location.address.country, l.location.address.city)
            }),
            countries: distinct(&listings, |l| l.location.address.country.clone()),
            points: pairs.iter().map(|(l, r)| point(l, *r)).collect(),
            seats: seat_totals(&listings),
            seats_by_city: tally(&listings, |l| {
                format!(
                    "{}, {}",
                    l.location.address.city, l.location.address.country
                )
            }),
            seats_by_country: tally(&listings, |l| l.location.address.country.clone()),
            seats_now: seats_now(&pairs),
            hours: hours(&listings, now),
            accessibility: accessibility(&listings),
            amenities: amenities(&listings),
            day_pass: day_pass(&listings),
            coworking_visa: Visa {
                participating: listings
                    .iter()
                    .filter(|l| l.reciprocity.coworking_visa)
                    .count(),
                not_stated: listings
                    .iter()
                    .filter(|l| !l.reciprocity.coworking_visa)
                    .count(),
            },
            freshness: freshness(&listings, now),
            verification: None,
        })
    }
}

fn distinct(listings: &[Listing], key: impl Fn(&Listing) -> String) -> usize {
    listings
        .iter()
        .map(key)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

fn capacity(l: &Listing) -> u64 {
    l.seat_pools.iter().map(|p| u64::from(p.capacity)).sum()
}

fn point(l: &Listing, row: Option<&DirectoryRow>) -> MapPoint {
    MapPoint {
        name: l.name.clone(),
        city: l.location.address.city.clone(),
        country: l.location.address.country.clone(),
        lat: l.location.lat,
        lon: l.location.lon,
        seats: capacity(l),
        // The one seat rule's state ("free", "full", "stale", "closed", "unknown", "no_desks") and wording.
        seats_free: row.map_or_else(|| "unknown".into(), |r| r.seats_now.state.as_str().into()),
        seats_text: row.map_or_else(|| "unknown".into(), |r| r.seats_text.clone()),
    }
}

fn seat_totals(listings: &[Listing]) -> SeatTotals {
    use deskmesh_crdt_model::listing::PoolKind;
    let pools = || listings.iter().flat_map(|l| &l.seat_pools);
    SeatTotals {
        total: pools().map(|p| u64::from(p.capacity)).sum(),
        desks: pools()
            .filter(|p| matches!(p.kind, PoolKind::HotDesk | PoolKind::DedicatedDesk))
            .map(|p| u64::from(p.capacity))
            .sum(),
        accessible: pools()
            .filter_map(|p| p.accessible_capacity)
            .map(u64::from)
            .sum(),
        spaces_without_pools: listings.iter().filter(|l| l.seat_pools.is_empty()).count(),
    }
}

/// Spaces and seats per label, most seats first.
fn tally(listings: &[Listing], key: impl Fn(&Listing) -> String) -> Vec<Tally> {
    let mut by: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for l in listings {
        let e = by.entry(key(l)).or_default();
        e.0 += 1;
        e.1 += capacity(l);
    }
    let mut out: Vec<Tally> = by
        .into_iter()
        .map(|(label, (spaces, seats))| Tally {
            label,
            spaces,
            seats,
        })
        .collect();
    out.sort_by(|a, b| b.seats.cmp(&a.seats).then(a.label.cmp(&b.label)));
    out
}

fn seats_now(pairs: &[(&Listing, Option<&DirectoryRow>)]) -> SeatsNow {
    let mut s = SeatsNow::default();
    for (_, row) in pairs {
        let Some(row) = row else {
            s.spaces_unknown += 1;
            continue;
        };
        match row.seats_now.state {
            SeatState::Free => s.spaces_free += 1,
            SeatState::Full => s.spaces_full += 1,
            _ => s.spaces_unknown += 1,
        }
        for p in &row.seats {
            match p.freshness.as_str() {
                "fresh" => {
                    s.pools_fresh += 1;
                    match p.availability {
                        Some(Availability::Count(n)) => s.seats_counted += u64::from(n),
                        Some(Availability::Many | Availability::Few) => s.pools_without_count += 1,
                        _ => {}
                    }
                }
                "stale" => s.pools_stale += 1,
                "closed" => s.pools_closed += 1,
                _ => s.pools_unknown += 1,
            }
        }
    }
    s
}

fn hours(listings: &[Listing], now: DateTime<Utc>) -> HoursCoverage {
    let mut h = HoursCoverage::default();
    for l in listings {
        if l.member_access_hours.as_deref().map(str::trim) == Some("24/7") {
            h.members_24_7 += 1;
        }
        let Some(Ok(hours)) = l.hours() else {
            h.unknown += 1;
            continue;
        };
        h.known += 1;
        if hours.state(now) == OpenState::Open {
            h.open_now += 1;
        }
        let (evening, weekend) = evening_and_weekend(&hours, now);
        h.evenings += usize::from(evening);
        h.weekends += usize::from(weekend);
    }
    h
}

/// Whether the hours open after 19:00 on a weekday, and on a weekend day, in the week of `now`.
fn evening_and_weekend(hours: &Hours, now: DateTime<Utc>) -> (bool, bool) {
    let week = hours.week(now);
    let mut evening = false;
    let mut weekend = false;
    for d in &week.days {
        let open = d.intervals.iter().filter(|i| i.state == OpenState::Open);
        if d.date.weekday().num_days_from_monday() >= 5 {
            weekend |= open.clone().next().is_some();
        } else {
            evening |= open.clone().any(|i| i.end_min > 19 * 60);
        }
    }
    (evening, weekend)
}

fn accessibility(listings: &[Listing]) -> Vec<Coverage> {
    let mut wheelchair = Coverage {
        label: "Wheelchair access".into(),
        yes: 0,
        limited: 0,
        no: 0,
        unknown: 0,
    };
    for l in listings {
        match l.accessibility.wheelchair {
            Some(Wheelchair::Yes) => wheelchair.yes += 1,
            Some(Wheelchair::Limited) => wheelchair.limited += 1,
            Some(Wheelchair::No) => wheelchair.no += 1,
            None => wheelchair.unknown += 1,
        }
    }
    type Fact = fn(&Listing) -> Option<bool>;
    let facts: [(&str, Fact); 6] = [
        ("Step-free entrance", |l| {
            l.accessibility.entrance.as_ref().and_then(|e| e.step_free)
        }),
        ("Accessible toilet", |l| l.accessibility.toilets_wheelchair),
        ("Elevator", |l| {
            l.accessibility.elevator.as_ref().and_then(|e| e.present)
        }),
        ("Hearing loop", |l| l.accessibility.hearing_loop),
        ("Quiet room", |l| l.accessibility.quiet_room),
        ("Accessible parking", |l| l.accessibility.accessible_parking),
    ];
    let mut out = vec![wheelchair];
    for (label, fact) in facts {
        let mut c = Coverage {
            label: label.into(),
            yes: 0,
            limited: 0,
            no: 0,
            unknown: 0,
        };
        for l in listings {
            match fact(l) {
                Some(true) => c.yes += 1,
                Some(false) => c.no += 1,
                None => c.unknown += 1,
            }
        }
        out.push(c);
    }
    out
}

fn amenities(listings: &[Listing]) -> Vec<Tally> {
    let mut out: Vec<Tally> = Amenity::ALL
        .iter()
        .map(|a| {
            let with: Vec<&Listing> = listings
                .iter()
                .filter(|l| l.amenities.contains(*a))
                .collect();
            Tally {
                label: a.as_str().replace('_', " "),
                spaces: with.len(),
                seats: with.iter().map(|l| capacity(l)).sum(),
            }
        })
        .filter(|t| t.spaces > 0)
        .collect();
    out.sort_by(|a, b| b.spaces.cmp(&a.spaces).then(a.label.cmp(&b.label)));
    out
}

fn day_pass(listings: &[Listing]) -> Vec<PriceSummary> {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in listings {
        if let Some(o) = l.day_pass() {
            by.entry(o.currency.clone()).or_default().push(o.price);
        }
    }
    by.into_iter()
        .map(|(currency, mut prices)| {
            prices.sort_by(f64::total_cmp);
            let n = prices.len();
            let median = if n % 2 == 1 {
                prices[n / 2]
            } else {
                (prices[n / 2 - 1] + prices[n / 2]) / 2.0
            };
            PriceSummary {
                currency,
                spaces: n,
                min: prices[0],
                median,
                max: prices[n - 1],
            }
        })
        .collect()
}

fn freshness(listings: &[Listing], now: DateTime<Utc>) -> Freshness {
    let today = now.date_naive();
    let mut f = Freshness::default();
    let mut dates = Vec::new();
    for l in listings {
        let Some(d) = l.provenance.check_date else {
            f.never += 1;
            continue;
        };
        dates.push(d.0);
        let age = today - d.0;
        if age <= Duration::days(90) {
            f.within_90_days += 1;
        } else if age <= Duration::days(365) {
            f.within_a_year += 1;
        } else {
            f.older += 1;
        }
    }
    dates.sort();
    f.oldest = dates.first().map(|d| d.to_string());
    f.newest = dates.last().map(|d| d.to_string());
    f
}
