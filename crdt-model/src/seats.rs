//! The one rule for "seats free now", and the one wording of every seat state.
//!
//! Every front end asks this module, so `spaces list --seats-free`, the SEATS column, the JSON, the
//! exports and the terminal UI can never disagree. A space has seats free now when:
//!
//! - the pool is a **desk pool** ([`is_desk`]: hot desks and dedicated desks). Meeting rooms, phone
//!   booths and private offices are shown pool by pool, never counted as seats;
//! - the space is **within its opening hours** in its own time zone (outside them it is closed, whatever a
//!   beacon says; with no hours known, the beacons alone decide);
//! - the figure is **fresh**: within its ttl. A stale figure (past its ttl by at most
//!   [`crate::beacon::STALE_FOR_S`]) is shown with its age ("~4 free, 12 min ago") but never counted as
//!   free; older than that, or no beacon at all, is "unknown", never "0 free".
//!
//! Each [`SeatState`] has one word and one symbol, and [`SeatsNow::text`] is the one sentence shown for a
//! space or a pool wherever it is shown. Nothing here reads a clock: callers pass `now`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::beacon::{Availability, Freshness, SeatBeacon, STALE_FOR_S};
use crate::hours::OpenState;
use crate::listing::{PoolKind, SeatPool};

/// Whether a pool of this kind holds desks a member can sit at (counted as seats), rather than rooms,
/// booths or offices (shown separately).
pub fn is_desk(kind: PoolKind) -> bool {
    matches!(kind, PoolKind::HotDesk | PoolKind::DedicatedDesk)
}

/// What a beacon said about one pool, whatever carried it (a verified [`SeatBeacon`], the node's view, a
/// front end's copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub availability: Availability,
    /// False when the beacon says the pool is closed.
    pub is_open: bool,
    pub published_at_ms: i64,
    pub ttl_s: u32,
}

impl From<&SeatBeacon> for Reading {
    fn from(b: &SeatBeacon) -> Self {
        Self {
            availability: b.availability,
            is_open: b.is_open,
            published_at_ms: b.published_at_ms,
            ttl_s: b.ttl_s,
        }
    }
}

impl Reading {
    /// The last moment this reading says anything: its ttl and [`STALE_FOR_S`] after it was published.
    pub fn says_nothing_after_ms(&self) -> i64 {
        let stale_s = i64::try_from(STALE_FOR_S).unwrap_or(i64::MAX / 2000);
        self.published_at_ms
            .saturating_add((i64::from(self.ttl_s) + stale_s) * 1000)
    }

    /// The beacon layer's freshness of this reading at `now_ms`.
    pub fn freshness(&self, now_ms: i64) -> Freshness {
        // The rule lives in `beacon::freshness`; a reading carries exactly the fields it reads.
        let age_ms = now_ms.saturating_sub(self.published_at_ms).max(0);
        let age_s = u64::try_from(age_ms / 1000).unwrap_or(0);
        let ttl_ms = i64::from(self.ttl_s) * 1000;
        if now_ms > self.says_nothing_after_ms() {
            Freshness::Unknown
        } else if self.availability == Availability::Closed || !self.is_open {
            Freshness::Closed
        } else if age_ms <= ttl_ms {
            Freshness::Fresh { age_s }
        } else {
            Freshness::Stale { age_s }
        }
    }
}

/// The state of a space's desks, or of one pool, now. One word each, the same everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    /// A fresh figure says seats are free.
    Free,
    /// A fresh figure says no seat is free.
    Full,
    /// The newest figure is older than its ttl: shown with its age, not counted as free.
    Stale,
    /// Outside opening hours, or the space says the pool is closed.
    Closed,
    /// No figure, or one too old to say anything.
    Unknown,
    /// The listing has no desk pools (only rooms, booths or offices, or none at all).
    NoDesks,
}

impl SeatState {
    pub const ALL: [SeatState; 6] = [
        Self::Free,
        Self::Full,
        Self::Stale,
        Self::Closed,
        Self::Unknown,
        Self::NoDesks,
    ];

    /// The word for the state, as JSON and the command line write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Full => "full",
            Self::Stale => "stale",
            Self::Closed => "closed",
            Self::Unknown => "unknown",
            Self::NoDesks => "no_desks",
        }
    }

    /// What the state means, for legends and help.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Free => "seats free (a fresh figure)",
            Self::Full => "no seat free (a fresh figure)",
            Self::Stale => "stale: past its ttl, shown with its age",
            Self::Closed => "closed now (by its hours, or the space says so)",
            Self::Unknown => "no recent figure",
            Self::NoDesks => "no desk pools (rooms and booths are not seats)",
        }
    }
}

impl fmt::Display for SeatState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seats of a space (its desk pools) or of one pool, now: a state, what the figure said, and how old
/// it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatsNow {
    pub state: SeatState,
    /// The figure, for free, full and stale: summed counts, or the best bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// Seconds since the (oldest counted) figure was published, for free, full and stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<u64>,
}

impl SeatsNow {
    const fn bare(state: SeatState) -> Self {
        Self {
            state,
            availability: None,
            age_s: None,
        }
    }

    /// Whether a member walking in now finds a seat, by the rule: a fresh figure with seats, in hours.
    pub fn free_now(&self) -> bool {
        self.state == SeatState::Free
    }

    /// Whether the figure is only one seat, or "few": drawn as a half circle.
    pub fn few(&self) -> bool {
        matches!(
            self.availability,
            Some(Availability::Count(1) | Availability::Few)
        )
    }

    /// The one sentence for this state: "4 free, 2 min ago", "full, just now", "~4 free, 12 min ago",
    /// "~full, 20 min ago", "closed", "unknown", "no desks listed".
    pub fn text(&self) -> String {
        let prefix = match self.state {
            SeatState::Free | SeatState::Full => "",
            SeatState::Stale => "~",
            SeatState::Closed => return "closed".into(),
            SeatState::Unknown => return "unknown".into(),
            SeatState::NoDesks => return "no desks listed".into(),
        };
        let what = match self.availability {
            Some(Availability::Count(0) | Availability::Full) | None => "full".to_string(),
            Some(Availability::Count(n)) => format!("{n} free"),
            Some(Availability::Many) => "many free".into(),
            Some(Availability::Few) => "few free".into(),
            Some(Availability::Closed) => return "closed".into(),
        };
        format!("{prefix}{what}, {}", ago(self.age_s.unwrap_or(0)))
    }

    /// One cell that tells the state apart without colour: `●` free, `◐` one or few free, `○` full,
    /// `◌` stale, `-` closed, `?` unknown, `·` no desks.
    pub fn symbol(&self) -> &'static str {
        match self.state {
            SeatState::Free if self.few() => "◐",
            other => symbol(other),
        }
    }

    /// Larger is better, for sorting by seats: fresh many, then by count, few, full, stale, closed,
    /// unknown, no desks.
    pub fn rank(&self) -> i64 {
        match (self.state, self.availability) {
            (SeatState::Free, Some(Availability::Many)) => 1_000_000,
            (SeatState::Free, Some(Availability::Count(n))) => 10 + i64::from(n),
            (SeatState::Free, _) => 5,
            (SeatState::Full, _) => 0,
            (SeatState::Stale, _) => -1,
            (SeatState::Closed, _) => -2,
            (SeatState::Unknown, _) => -3,
            (SeatState::NoDesks, _) => -4,
        }
    }
}

/// The symbol of a state (free with many seats; [`SeatsNow::symbol`] gives `◐` for one or few).
pub fn symbol(state: SeatState) -> &'static str {
    match state {
        SeatState::Free => "●",
        SeatState::Full => "○",
        SeatState::Stale => "◌",
        SeatState::Closed => "-",
        SeatState::Unknown => "?",
        SeatState::NoDesks => "·",
    }
}

/// Every seat symbol with a one-word name and its meaning, in the order legends list them.
pub fn legend() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = vec![(symbol(SeatState::Free), "free", SeatState::Free.meaning())];
    out.push(("◐", "few", "one or few seats free (a fresh figure)"));
    out.extend(SeatState::ALL[1..].iter().map(|s| {
        let word = match s {
            SeatState::NoDesks => "no desks",
            other => other.as_str(),
        };
        (symbol(*s), word, s.meaning())
    }));
    out
}

/// "just now", "2 min ago", "3 h ago", "2 d ago".
pub fn ago(age_s: u64) -> String {
    match age_s {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", age_s / 60),
        3600..=86_399 => format!("{} h ago", age_s / 3600),
        _ => format!("{} d ago", age_s / 86_400),
    }
}

/// One pool now, from its newest reading (if any). Opening hours are the space's business
/// ([`space_now`]); a pool alone only knows what its beacon says.
pub fn pool_now(reading: Option<&Reading>, now_ms: i64) -> SeatsNow {
    let Some(r) = reading else {
        return SeatsNow::bare(SeatState::Unknown);
    };
    let (state, age_s) = match r.freshness(now_ms) {
        Freshness::Unknown => return SeatsNow::bare(SeatState::Unknown),
        Freshness::Closed => return SeatsNow::bare(SeatState::Closed),
        Freshness::Stale { age_s } => (SeatState::Stale, age_s),
        Freshness::Fresh { age_s } if r.availability.has_seats() => (SeatState::Free, age_s),
        Freshness::Fresh { age_s } => (SeatState::Full, age_s),
    };
    SeatsNow {
        state,
        availability: Some(normal(r.availability)),
        age_s: Some(age_s),
    }
}

/// `Count(0)` and `Full` are the same fact: written `Full`.
fn normal(a: Availability) -> Availability {
    match a {
        Availability::Count(0) => Availability::Full,
        other => other,
    }
}

/// Figures of several pools added up: counts summed, "many" beats any count, "few" counts as one seat
/// unless a count says more.
#[derive(Default)]
struct Sum {
    count: u32,
    many: bool,
    few: bool,
    oldest: u64,
    any: bool,
}

impl Sum {
    fn add(&mut self, a: Availability, age_s: u64) {
        self.any = true;
        self.oldest = self.oldest.max(age_s);
        match a {
            Availability::Count(n) => self.count = self.count.saturating_add(n),
            Availability::Many => self.many = true,
            Availability::Few => self.few = true,
            Availability::Full | Availability::Closed => {}
        }
    }

    fn availability(&self) -> Availability {
        if self.many {
            Availability::Many
        } else if self.count > 0 {
            Availability::Count(self.count)
        } else if self.few {
            Availability::Few
        } else {
            Availability::Full
        }
    }

    fn into_now(self, state: SeatState) -> SeatsNow {
        SeatsNow {
            state,
            availability: Some(self.availability()),
            age_s: Some(self.oldest),
        }
    }
}

/// A space's seats now: its desk pools only, within its opening hours, fresh figures only.
///
/// `reading(pool id)` gives the newest reading of a pool; `open` is the space's state by its public
/// opening hours at `now_ms`. In order: no desk pools → no desks; closed by the hours → closed; any fresh
/// desk figure with seats → free (their seats summed); else any stale one with seats → stale; else every
/// desk pool known fresh (or closed) → full (or closed when all are closed); every one known but some
/// only stale → stale full; otherwise unknown.
pub fn space_now<'a>(
    pools: impl IntoIterator<Item = &'a SeatPool>,
    reading: impl Fn(&str) -> Option<Reading>,
    open: OpenState,
    now_ms: i64,
) -> SeatsNow {
    let mut desks = 0usize;
    let (mut fresh_free, mut stale_free, mut fresh_full, mut stale_full) = (
        Sum::default(),
        Sum::default(),
        Sum::default(),
        Sum::default(),
    );
    let (mut closed, mut unknown) = (0usize, 0usize);
    for p in pools.into_iter().filter(|p| is_desk(p.kind)) {
        desks += 1;
        if open == OpenState::Closed {
            continue;
        }
        let now = pool_now(reading(&p.id).as_ref(), now_ms);
        let (a, age) = (
            now.availability.unwrap_or(Availability::Full),
            now.age_s.unwrap_or(0),
        );
        match now.state {
            SeatState::Free => fresh_free.add(a, age),
            SeatState::Full => fresh_full.add(a, age),
            SeatState::Stale if a.has_seats() => stale_free.add(a, age),
            SeatState::Stale => stale_full.add(a, age),
            SeatState::Closed => closed += 1,
            SeatState::Unknown | SeatState::NoDesks => unknown += 1,
        }
    }
    if desks == 0 {
        return SeatsNow::bare(SeatState::NoDesks);
    }
    if open == OpenState::Closed {
        return SeatsNow::bare(SeatState::Closed);
    }
    if fresh_free.any {
        return fresh_free.into_now(SeatState::Free);
    }
    if stale_free.any {
        return stale_free.into_now(SeatState::Stale);
    }
    if unknown > 0 {
        return SeatsNow::bare(SeatState::Unknown);
    }
    if stale_full.any {
        stale_full.oldest = stale_full.oldest.max(fresh_full.oldest);
        return stale_full.into_now(SeatState::Stale);
    }
    if fresh_full.any {
        return fresh_full.into_now(SeatState::Full);
    }
    debug_assert_eq!(closed, desks);
    SeatsNow::bare(SeatState::Closed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;
    use crate::beacon::{freshness, SeatBeacon};
    use crate::listing::PoolAccess;
    use deskmesh_keys::{DeviceKey, Signer, SpaceId};

    const NOW: i64 = 1_747_224_000_000; // Wednesday 2025-05-14 12:00 UTC

    fn pool(id: &str, kind: PoolKind) -> SeatPool {
        SeatPool {
            id: id.into(),
            kind,
            capacity: 10,
            accessible_capacity: None,
            access: PoolAccess::WalkIn,
        }
    }

    fn at(a: Availability, age_s: i64) -> Reading {
        Reading {
            availability: a,
            is_open: a != Availability::Closed,
            published_at_ms: NOW - age_s * 1000,
            ttl_s: 300,
        }
    }

    fn space(pools: &[SeatPool], readings: &[(&str, Reading)], open: OpenState) -> SeatsNow {
        space_now(
            pools,
            |id| readings.iter().find(|(p, _)| *p == id).map(|(_, r)| *r),
            open,
            NOW,
        )
    }

    #[test]
    fn only_desk_pools_count() {
        let pools = [
            pool("hot", PoolKind::HotDesk),
            pool("room", PoolKind::MeetingRoom),
            pool("booth", PoolKind::PhoneBooth),
        ];
        let full_desks_free_room = space(
            &pools,
            &[
                ("hot", at(Availability::Count(0), 10)),
                ("room", at(Availability::Count(1), 10)),
                ("booth", at(Availability::Many, 10)),
            ],
            OpenState::Open,
        );
        assert_eq!(full_desks_free_room.state, SeatState::Full);
        assert_eq!(full_desks_free_room.text(), "full, just now");
        assert!(!full_desks_free_room.free_now());

        let rooms_only = [pool("room", PoolKind::MeetingRoom)];
        let s = space(
            &rooms_only,
            &[("room", at(Availability::Many, 1))],
            OpenState::Open,
        );
        assert_eq!(
            (s.state, s.text().as_str()),
            (SeatState::NoDesks, "no desks listed")
        );
        assert_eq!(space(&[], &[], OpenState::Open).state, SeatState::NoDesks);

        let two_kinds_of_desk = [
            pool("hot", PoolKind::HotDesk),
            pool("fixed", PoolKind::DedicatedDesk),
        ];
        let s = space(
            &two_kinds_of_desk,
            &[
                ("hot", at(Availability::Count(3), 120)),
                ("fixed", at(Availability::Count(1), 60)),
            ],
            OpenState::Open,
        );
        assert_eq!(s.text(), "4 free, 2 min ago");
        assert!(s.free_now());
    }

    #[test]
    fn opening_hours_win_over_beacons() {
        let pools = [pool("hot", PoolKind::HotDesk)];
        let r = [("hot", at(Availability::Count(4), 10))];
        assert_eq!(space(&pools, &r, OpenState::Open).state, SeatState::Free);
        let closed = space(&pools, &r, OpenState::Closed);
        assert_eq!(
            (closed.state, closed.text().as_str()),
            (SeatState::Closed, "closed")
        );
        assert!(!closed.free_now());
        // No hours known: the beacons alone decide.
        assert!(space(&pools, &r, OpenState::Unknown).free_now());
        // The space saying it is closed is closed, in hours or not.
        let said_closed = [("hot", at(Availability::Closed, 10))];
        assert_eq!(
            space(&pools, &said_closed, OpenState::Open).state,
            SeatState::Closed
        );
    }

    #[test]
    fn only_fresh_figures_are_free_and_stale_says_its_age() {
        let pools = [pool("hot", PoolKind::HotDesk), pool("b", PoolKind::HotDesk)];
        // 12 minutes old with a 5-minute ttl: stale.
        let stale = space(
            &pools,
            &[
                ("hot", at(Availability::Count(4), 720)),
                ("b", at(Availability::Full, 10)),
            ],
            OpenState::Open,
        );
        assert_eq!(stale.state, SeatState::Stale);
        assert_eq!(stale.text(), "~4 free, 12 min ago");
        assert!(!stale.free_now());
        // A fresh free pool wins over a stale one.
        let fresh = space(
            &pools,
            &[
                ("hot", at(Availability::Count(4), 720)),
                ("b", at(Availability::Few, 30)),
            ],
            OpenState::Open,
        );
        assert_eq!(
            (fresh.text().as_str(), fresh.symbol()),
            ("few free, just now", "◐")
        );
        // Past ttl + 15 min: unknown, never "0 free".
        let old = space(
            &pools,
            &[
                ("hot", at(Availability::Count(4), 3600)),
                ("b", at(Availability::Full, 10)),
            ],
            OpenState::Open,
        );
        assert_eq!(
            (old.state, old.text().as_str()),
            (SeatState::Unknown, "unknown")
        );
        // Known full everywhere, one of them stale: stale full, aged by the oldest.
        let stale_full = space(
            &pools,
            &[
                ("hot", at(Availability::Count(0), 600)),
                ("b", at(Availability::Full, 10)),
            ],
            OpenState::Open,
        );
        assert_eq!(stale_full.text(), "~full, 10 min ago");
        // No beacon at all.
        assert_eq!(
            space(&pools, &[], OpenState::Open).state,
            SeatState::Unknown
        );
    }

    #[test]
    fn boundaries_follow_the_beacon_layer() {
        let k = DeviceKey::from_seed(&[1; 32]);
        for age_s in [0, 299, 300, 301, 1199, 1200, 1201, 5000, -30] {
            for a in [
                Availability::Count(3),
                Availability::Count(0),
                Availability::Closed,
                Availability::Many,
            ] {
                for is_open in [true, false] {
                    let b = SeatBeacon {
                        space: SpaceId::derive(&k.public_key()),
                        pool: "hot".into(),
                        availability: a,
                        is_open,
                        published_at_ms: NOW - age_s * 1000,
                        ttl_s: 300,
                        seq: 0,
                        author: k.public_key(),
                        roster_heads: Vec::new(),
                    };
                    let r = Reading::from(&b);
                    assert_eq!(
                        r.freshness(NOW),
                        freshness(&b, NOW),
                        "{age_s} {a:?} {is_open}"
                    );
                }
            }
        }
    }

    #[test]
    fn one_wording_per_state() {
        let zero = pool_now(Some(&at(Availability::Count(0), 5)), NOW);
        let full = pool_now(Some(&at(Availability::Full, 5)), NOW);
        assert_eq!(zero, full, "0 free and full are one state");
        assert_eq!(zero.text(), "full, just now");
        assert_eq!(zero.symbol(), "○");
        assert_eq!(pool_now(None, NOW).text(), "unknown");
        assert_eq!(
            pool_now(Some(&at(Availability::Many, 7300)), NOW).state,
            SeatState::Unknown
        );
        let mut long = at(Availability::Many, 7300);
        long.ttl_s = 24 * 3600;
        assert_eq!(pool_now(Some(&long), NOW).text(), "many free, 2 h ago");
        let symbols: Vec<&str> = legend().iter().map(|(s, _, _)| *s).collect();
        assert_eq!(symbols, ["●", "◐", "○", "◌", "-", "?", "·"]);
        assert_eq!(
            serde_json::to_string(&SeatState::NoDesks).unwrap(),
            "\"no_desks\""
        );
        let ranks: Vec<i64> = [
            pool_now(Some(&at(Availability::Many, 1)), NOW),
            pool_now(Some(&at(Availability::Count(2), 1)), NOW),
            pool_now(Some(&at(Availability::Few, 1)), NOW),
            full,
            pool_now(Some(&at(Availability::Count(2), 700)), NOW),
            pool_now(Some(&at(Availability::Closed, 1)), NOW),
            pool_now(None, NOW),
        ]
        .iter()
        .map(SeatsNow::rank)
        .collect();
        let mut sorted = ranks.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(ranks, sorted);
    }
}
