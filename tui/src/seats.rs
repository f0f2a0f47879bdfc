//! How live seat status reads on screen: one summary per space for the table and the map, one line per
//! pool for the detail and operator views, and the age of a fact ("2 min ago").
//!
//! The beacon layer (`deskmesh_crdt_model::beacon`) owns the rules: freshness, the seats-free summary and
//! the wording ("4 free, 2 min ago", "~4 free, 12 min ago", "unknown", "closed"); this module applies them
//! to what the node handed over and chooses what to show. A space's summary covers its hot-desk pools
//! (what a member walking in can get), or all its pools when it has none. Outside its opening hours a
//! space reads "closed" whatever its beacons say; with no usable beacon it reads "unknown", never "0
//! free". Every state has a symbol as well as a colour so it reads without colour.

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::beacon::{describe, summarise, Freshness, STALE_FOR_S};
use deskmesh_crdt_model::listing::PoolKind;
use deskmesh_crdt_model::{OpenState, SeatsFree};
use ratatui::style::Style;

use crate::model::{Availability, PoolStatus, SpaceView};
use crate::theme::Theme;

/// What a member can expect, coarsely: the class picks the symbol and colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeatClass {
    Free,
    Few,
    Full,
    Unknown,
    Closed,
}

impl SeatClass {
    /// One cell, distinct without colour.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Free => "●",
            Self::Few => "◐",
            Self::Full => "○",
            Self::Unknown => "?",
            Self::Closed => "-",
        }
    }

    pub(crate) fn style(self, theme: Theme) -> Style {
        match self {
            Self::Free => theme.good(),
            Self::Few => theme.warn(),
            Self::Full => theme.bad(),
            Self::Unknown | Self::Closed => theme.dim(),
        }
    }
}

/// The beacon layer's freshness rule applied to a [`PoolStatus`]: fresh within its ttl, stale for
/// [`STALE_FOR_S`] more, then unknown; closed when the beacon says so. It mirrors
/// `beacon::freshness` (which takes a whole signed-beacon record); a test keeps the two equal.
pub(crate) fn freshness(p: &PoolStatus, now: DateTime<Utc>) -> Freshness {
    let age_ms = (now
        .timestamp_millis()
        .saturating_sub(p.published_at.timestamp_millis()))
    .max(0);
    let age_s = u64::try_from(age_ms / 1000).unwrap_or(0);
    let ttl_ms = i64::from(p.ttl_s) * 1000;
    let stale_ms = ttl_ms + i64::try_from(STALE_FOR_S).unwrap_or(i64::MAX / 2_000) * 1000;
    if age_ms > stale_ms {
        Freshness::Unknown
    } else if p.availability == Availability::Closed || !p.is_open {
        Freshness::Closed
    } else if age_ms <= ttl_ms {
        Freshness::Fresh { age_s }
    } else {
        Freshness::Stale { age_s }
    }
}

/// A space's seats, over the pools that matter to a walk-in member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) class: SeatClass,
    /// The combined freshness: stale if any counted pool is, aged by the oldest.
    freshness: Freshness,
    /// The combined availability: summed counts, or the best bucket.
    availability: Availability,
    seats_free: SeatsFree,
}

impl Summary {
    const fn closed() -> Self {
        Self {
            class: SeatClass::Closed,
            freshness: Freshness::Closed,
            availability: Availability::Closed,
            seats_free: SeatsFree::No,
        }
    }

    /// The beacon layer's wording: "4 free, 2 min ago", "~4 free, 12 min ago", "unknown", "closed".
    pub(crate) fn text(&self) -> String {
        describe(&self.freshness, &self.availability)
    }

    pub(crate) fn seats_free(&self) -> SeatsFree {
        self.seats_free
    }

    /// Larger is better, for sorting by seats: many, then by count, few, full, closed, unknown.
    pub(crate) fn rank(&self) -> i64 {
        match (self.class, self.availability) {
            (SeatClass::Free | SeatClass::Few, Availability::Many) => 1_000_000,
            (SeatClass::Free | SeatClass::Few, Availability::Count(n)) => 10 + i64::from(n),
            (SeatClass::Free | SeatClass::Few, _) => 5,
            (SeatClass::Full, _) => 0,
            (SeatClass::Closed, _) => -1,
            (SeatClass::Unknown, _) => -2,
        }
    }
}

/// The summary of `space` at `now`, given whether its hours say it is open.
pub(crate) fn summary(space: &SpaceView, open: OpenState, now: DateTime<Utc>) -> Summary {
    if open == OpenState::Closed {
        return Summary::closed();
    }
    let pools = &space.listing.seat_pools;
    let has_hot_desks = pools.iter().any(|p| p.kind == PoolKind::HotDesk);
    let counted = |status: &&PoolStatus| {
        !has_hot_desks
            || pools
                .iter()
                .any(|p| p.id == status.pool && p.kind == PoolKind::HotDesk)
    };
    let states: Vec<(Freshness, Availability)> = space
        .pools
        .iter()
        .filter(counted)
        .map(|p| (freshness(p, now), p.availability))
        .collect();
    let seats_free = summarise(states.iter().copied());

    let mut count = 0u32;
    let (mut counted_any, mut many, mut few, mut stale, mut closed) =
        (false, false, false, false, false);
    let mut oldest = 0u64;
    for (f, a) in &states {
        let age_s = match *f {
            Freshness::Unknown => continue,
            Freshness::Closed => {
                closed = true;
                continue;
            }
            Freshness::Stale { age_s } => {
                stale = true;
                age_s
            }
            Freshness::Fresh { age_s } => age_s,
        };
        oldest = oldest.max(age_s);
        match a {
            Availability::Count(n) => {
                counted_any = true;
                count = count.saturating_add(*n);
            }
            Availability::Many => many = true,
            Availability::Few => few = true,
            Availability::Full | Availability::Closed => counted_any = true,
        }
    }
    let open_known = counted_any || many || few;
    if !open_known {
        return if closed {
            Summary::closed()
        } else {
            Summary {
                class: SeatClass::Unknown,
                freshness: Freshness::Unknown,
                availability: Availability::Full,
                seats_free,
            }
        };
    }
    let (class, availability) = if many {
        (SeatClass::Free, Availability::Many)
    } else if count > 1 {
        (SeatClass::Free, Availability::Count(count))
    } else if count == 1 {
        (SeatClass::Few, Availability::Count(1))
    } else if few {
        (SeatClass::Few, Availability::Few)
    } else {
        (SeatClass::Full, Availability::Full)
    };
    let freshness = if stale {
        Freshness::Stale { age_s: oldest }
    } else {
        Freshness::Fresh { age_s: oldest }
    };
    Summary {
        class,
        freshness,
        availability,
        seats_free,
    }
}

/// One pool's status for the detail and operator views: its class and "4 free, 2 min ago".
pub(crate) fn pool_line(status: Option<&PoolStatus>, now: DateTime<Utc>) -> (SeatClass, String) {
    let Some(p) = status else {
        return (SeatClass::Unknown, "unknown (no beacon)".to_string());
    };
    let f = freshness(p, now);
    let class = match (f, p.availability) {
        (Freshness::Unknown, _) => {
            return (
                SeatClass::Unknown,
                format!("unknown (last beacon {})", ago(p.published_at, now)),
            )
        }
        (Freshness::Closed, _) | (_, Availability::Closed) => SeatClass::Closed,
        (_, Availability::Count(0) | Availability::Full) => SeatClass::Full,
        (_, Availability::Count(1) | Availability::Few) => SeatClass::Few,
        (_, Availability::Count(_) | Availability::Many) => SeatClass::Free,
    };
    (class, describe(&f, &p.availability))
}

/// How long ago `then` was, worded as the beacon layer words ages: "just now", "2 min ago", "3 h ago",
/// and "2 d ago" beyond a day.
pub(crate) fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds();
    match s {
        i64::MIN..=-60 => "in the future".to_string(),
        -59..=59 => "just now".to_string(),
        60..=3_599 => format!("{} min ago", s / 60),
        3_600..=86_399 => format!("{} h ago", s / 3_600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use deskmesh_crdt_model::beacon::{self, SeatBeacon};
    use deskmesh_crdt_model::listing::{PoolAccess, SeatPool};
    use deskmesh_crdt_model::Listing;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-05-14T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn space(pools: &[(&str, PoolKind)]) -> SpaceView {
        let id = "sp-aaaaaaaaaaaaaaaa".parse().unwrap();
        let mut l = Listing::new_minimal(id, "X", 0.0, 0.0, "C", "PT", "UTC");
        l.seat_pools = pools
            .iter()
            .map(|(id, kind)| SeatPool {
                id: id.to_string(),
                kind: *kind,
                capacity: 10,
                accessible_capacity: None,
                access: PoolAccess::WalkIn,
            })
            .collect();
        SpaceView::new(l)
    }

    fn beacon(pool: &str, a: Availability, age_s: i64) -> PoolStatus {
        PoolStatus {
            pool: pool.into(),
            availability: a,
            is_open: true,
            published_at: now() - Duration::seconds(age_s),
            ttl_s: 300,
        }
    }

    #[test]
    fn freshness_mirrors_the_beacon_layer() {
        let author = crate::fake::key(1);
        for age_s in [0, 299, 300, 301, 900, 1199, 1200, 1201, 5000, -30] {
            for a in [
                Availability::Count(3),
                Availability::Closed,
                Availability::Full,
            ] {
                for is_open in [true, false] {
                    let mut p = beacon("a", a, age_s);
                    p.is_open = is_open;
                    let real = SeatBeacon {
                        space: "sp-aaaaaaaaaaaaaaaa".parse().unwrap(),
                        pool: "a".into(),
                        availability: a,
                        is_open,
                        published_at_ms: p.published_at.timestamp_millis(),
                        ttl_s: p.ttl_s,
                        seq: 0,
                        author,
                        roster_heads: Vec::new(),
                    };
                    assert_eq!(
                        freshness(&p, now()),
                        beacon::freshness(&real, now().timestamp_millis()),
                        "age {age_s} {a:?} open {is_open}"
                    );
                    assert_eq!(PoolStatus::from(&real), p);
                }
            }
        }
    }

    #[test]
    fn sums_hot_desk_pools_only() {
        let mut s = space(&[
            ("a", PoolKind::HotDesk),
            ("b", PoolKind::HotDesk),
            ("room", PoolKind::MeetingRoom),
        ]);
        s.pools = vec![
            beacon("a", Availability::Count(3), 120),
            beacon("b", Availability::Count(1), 60),
            beacon("room", Availability::Count(1), 10),
        ];
        let sum = summary(&s, OpenState::Open, now());
        assert_eq!(sum.class, SeatClass::Free);
        assert_eq!(sum.text(), "4 free, 2 min ago");
        assert_eq!(sum.seats_free(), SeatsFree::Yes);
    }

    #[test]
    fn stale_is_marked_and_expired_is_unknown() {
        let mut s = space(&[("a", PoolKind::HotDesk)]);
        s.pools = vec![beacon("a", Availability::Count(4), 12 * 60)];
        assert_eq!(
            summary(&s, OpenState::Open, now()).text(),
            "~4 free, 12 min ago"
        );
        s.pools = vec![beacon("a", Availability::Count(4), 60 * 60)];
        let sum = summary(&s, OpenState::Open, now());
        assert_eq!(sum.text(), "unknown");
        assert_eq!(sum.seats_free(), SeatsFree::Unknown);
    }

    #[test]
    fn closed_hours_win_over_beacons() {
        let mut s = space(&[("a", PoolKind::HotDesk)]);
        s.pools = vec![beacon("a", Availability::Count(4), 10)];
        let sum = summary(&s, OpenState::Closed, now());
        assert_eq!(sum.text(), "closed");
        assert_eq!(sum.seats_free(), SeatsFree::No);
        s.pools[0].is_open = false;
        assert_eq!(summary(&s, OpenState::Open, now()).text(), "closed");
    }

    #[test]
    fn no_beacon_is_unknown_not_zero() {
        let s = space(&[("a", PoolKind::HotDesk)]);
        let sum = summary(&s, OpenState::Open, now());
        assert_eq!(
            (sum.class, sum.text()),
            (SeatClass::Unknown, "unknown".to_string())
        );
        assert_eq!(pool_line(None, now()).1, "unknown (no beacon)");
    }

    #[test]
    fn buckets_and_full() {
        let mut s = space(&[("a", PoolKind::HotDesk)]);
        s.pools = vec![beacon("a", Availability::Full, 90)];
        let full = summary(&s, OpenState::Open, now());
        assert_eq!(
            (full.class, full.text()),
            (SeatClass::Full, "full, 1 min ago".to_string())
        );
        assert_eq!(full.seats_free(), SeatsFree::No);
        s.pools = vec![beacon("a", Availability::Many, 0)];
        let many = summary(&s, OpenState::Unknown, now());
        assert_eq!(many.text(), "many free, just now");
        assert!(many.rank() > full.rank());
    }

    #[test]
    fn ages_read_naturally() {
        let t = now();
        assert_eq!(ago(t, t), "just now");
        assert_eq!(ago(t - Duration::seconds(42), t), "just now");
        assert_eq!(ago(t - Duration::seconds(125), t), "2 min ago");
        assert_eq!(ago(t - Duration::hours(5), t), "5 h ago");
        assert_eq!(ago(t - Duration::days(3), t), "3 d ago");
    }
}
