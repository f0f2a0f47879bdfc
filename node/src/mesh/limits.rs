//! Rate limits the mesh applies to what peers send, kept pure: every method takes `now` (time since the
//! daemon started) and nothing here reads a clock, so the tests drive time by hand.
//!
//! [`RateLimiter`] keeps one token bucket per key (the mesh keys it by space: at most
//! [`CHANGES_PER_HOUR`] listing changes per space per hour, with a burst of [`CHANGE_BURST`], and
//! [`BEACONS_PER_HOUR`] seat beacons with a burst of [`BEACON_BURST`]). Checking
//! and spending are separate steps so only changes the node actually stores spend a token: an invalid
//! change claiming someone else's space cannot use up that space's budget. A key over its limit is
//! reported as needing a warning once per period, so a flood costs one log line an hour, not one per
//! change. The map of buckets is capped ([`MAX_TRACKED_SPACES`]): at the cap, idle keys (whose buckets
//! are full again, so forgetting them changes nothing) are dropped first, then the least recently used,
//! a sixteenth of the map at a time (one scan per 256 new keys, not one per key).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

/// Listing changes one space may add to the store per hour, whoever relays them.
pub const CHANGES_PER_HOUR: u32 = 600;
/// Changes one space may add at once before the hourly rate applies: two hours' worth, so a node
/// catching up on a space's recent history is not slowed down.
pub const CHANGE_BURST: u32 = 1200;
/// How long a listing change held back by its space's limit waits before it is asked for again: the
/// budget refills one change every six seconds, so the next session a little later stores some more
/// (the sync engine's usual wait for a refused item is ten minutes, for items that will not improve).
pub const CHANGE_RETRY: Duration = Duration::from_secs(30);
/// Items one peer may send within [`BAD_ITEMS_WINDOW`] that no honest node relays (bad signatures,
/// bytes that do not decode) before it is disconnected and barred for [`BAR`]. A few are forgiven: a
/// node of another version may judge an odd item differently (PROTOCOL §1), and relays one item at a time.
pub const BAD_ITEMS_PER_PEER: u32 = 16;
/// The window [`BAD_ITEMS_PER_PEER`] counts in.
pub const BAD_ITEMS_WINDOW: Duration = Duration::from_secs(600);
/// How long a peer that sent too many bad items is refused.
pub const BAR: Duration = Duration::from_secs(600);
/// Spaces whose change budget is remembered at once.
pub const MAX_TRACKED_SPACES: usize = 4096;
/// Seat beacons one space may add to the store per hour, whoever relays them: one every five seconds,
/// far more than a space whose seats change every few minutes ever sends.
pub const BEACONS_PER_HOUR: u32 = 720;
/// Beacons one space may add at once before the hourly rate applies.
pub const BEACON_BURST: u32 = 120;

/// A rate limit that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("a rate limit needs at least one event per period")]
    ZeroCount,
    #[error("a rate limit needs a period of at least one event's worth of nanoseconds")]
    PeriodTooShort,
    #[error("a rate limit needs a burst of at least one event")]
    ZeroBurst,
    #[error("a rate limit's burst is too large to represent")]
    BurstTooLarge,
    #[error("a rate limiter needs room for at least one key")]
    ZeroCapacity,
}

/// What [`RateLimiter::check`] says about one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: go ahead, then [`RateLimiter::spend`].
    Allowed,
    /// Over the limit. `warn` is true for the first refusal of this key in a period, so the caller logs
    /// once per key per period; never while the key is over only because of reservations
    /// ([`RateLimiter::reserve`]), which may all come back (a forged event is never stored), so that they
    /// cannot use up the one warning a real flood gets.
    Limited { warn: bool },
}

/// One key's bucket, as a generic cell rate algorithm: instead of a token count it keeps the time at
/// which the bucket will be full again, which is exact with integer durations.
#[derive(Debug, Clone)]
struct Bucket {
    /// When the bucket is full again; at or before `now` it is full.
    full_at: Duration,
    /// Last time the key was checked or spent, for least-recently-used eviction.
    last_seen: Duration,
    /// When this key was last reported as needing a warning.
    warned_at: Option<Duration>,
    /// Tokens held by [`RateLimiter::reserve`] and not refunded yet.
    reserved: u32,
}

/// Token buckets per key: `count` events per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter<K> {
    /// Time one token takes to come back.
    interval: Duration,
    /// `burst` tokens' worth of time.
    burst_span: Duration,
    period: Duration,
    capacity: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter allowing `count` events per `period` per key, bursts of `burst`, for up to `capacity`
    /// keys at once.
    pub fn new(
        count: u32,
        period: Duration,
        burst: u32,
        capacity: usize,
    ) -> Result<Self, LimitError> {
        if count == 0 {
            return Err(LimitError::ZeroCount);
        }
        if burst == 0 {
            return Err(LimitError::ZeroBurst);
        }
        if capacity == 0 {
            return Err(LimitError::ZeroCapacity);
        }
        let interval = period / count;
        if interval.is_zero() {
            return Err(LimitError::PeriodTooShort);
        }
        let burst_span = interval
            .checked_mul(burst)
            .ok_or(LimitError::BurstTooLarge)?;
        Ok(Self {
            interval,
            burst_span,
            period,
            capacity,
            buckets: HashMap::new(),
        })
    }

    /// The limiter for seat beacons per space: [`BEACONS_PER_HOUR`], [`BEACON_BURST`],
    /// [`MAX_TRACKED_SPACES`].
    pub fn for_beacons() -> Self {
        let period = Duration::from_secs(3600);
        // The same values `new` would check: a non-zero interval (5 s) and a burst span of ten minutes.
        let interval = period / BEACONS_PER_HOUR;
        Self {
            interval,
            burst_span: interval * BEACON_BURST,
            period,
            capacity: MAX_TRACKED_SPACES,
            buckets: HashMap::new(),
        }
    }

    /// The limiter for listing changes per space: [`CHANGES_PER_HOUR`], [`CHANGE_BURST`],
    /// [`MAX_TRACKED_SPACES`].
    pub fn for_changes() -> Self {
        let period = Duration::from_secs(3600);
        // The same values `new` would check: a non-zero interval, and a burst span of a few hours.
        let interval = period / CHANGES_PER_HOUR;
        Self {
            interval,
            burst_span: interval * CHANGE_BURST,
            period,
            capacity: MAX_TRACKED_SPACES,
            buckets: HashMap::new(),
        }
    }

    /// Whether one more event for `key` fits at `now`. Spends nothing; a key never spent is not stored.
    pub fn check(&mut self, key: &K, now: Duration) -> Verdict {
        let Some(bucket) = self.buckets.get_mut(key) else {
            return Verdict::Allowed;
        };
        bucket.last_seen = now;
        let debt = bucket.full_at.saturating_sub(now);
        if debt + self.interval <= self.burst_span {
            return Verdict::Allowed;
        }
        let held = self.interval.saturating_mul(bucket.reserved);
        if bucket.reserved > 0 && debt.saturating_sub(held) + self.interval <= self.burst_span {
            return Verdict::Limited { warn: false };
        }
        let warn = match bucket.warned_at {
            Some(at) if now < at + self.period => false,
            _ => {
                bucket.warned_at = Some(now);
                true
            }
        };
        Verdict::Limited { warn }
    }

    /// Spends one token of `key`'s bucket (after a [`Verdict::Allowed`] and a successful store).
    pub fn spend(&mut self, key: K, now: Duration) {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.evict(now);
        }
        let interval = self.interval;
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            full_at: now,
            last_seen: now,
            warned_at: None,
            reserved: 0,
        });
        bucket.full_at = bucket.full_at.max(now) + interval;
        bucket.last_seen = now;
    }

    /// Spends one token of `key`'s bucket for an event still being checked, until [`RateLimiter::refund`]
    /// gives it back (the event, once judged, spends again only if it was stored). Events checked at once
    /// cannot together pass the limit.
    pub fn reserve(&mut self, key: K, now: Duration) {
        self.spend(key.clone(), now);
        if let Some(bucket) = self.buckets.get_mut(&key) {
            bucket.reserved += 1;
        }
    }

    /// Gives back one token [`RateLimiter::reserve`] (or [`RateLimiter::spend`]) took for `key`.
    pub fn refund(&mut self, key: &K) {
        let interval = self.interval;
        if let Some(bucket) = self.buckets.get_mut(key) {
            bucket.full_at = bucket.full_at.saturating_sub(interval);
            bucket.reserved = bucket.reserved.saturating_sub(1);
        }
    }

    /// Tokens `key` has left at `now`.
    pub fn available(&self, key: &K, now: Duration) -> u32 {
        let debt = self
            .buckets
            .get(key)
            .map_or(Duration::ZERO, |b| b.full_at.saturating_sub(now));
        let left = self.burst_span.saturating_sub(debt);
        // At most `burst` tokens fit in `burst_span`, and `burst` is a u32.
        u32::try_from(left.as_nanos() / self.interval.as_nanos()).unwrap_or(u32::MAX)
    }

    /// Keys whose buckets are remembered.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Makes room for one key: drops every idle bucket (full again), then, while less than a sixteenth
    /// of the map is free, the least recently used, so that room is made once per sixteenth of the
    /// capacity and not on every new key (one scan of the map each time: a join that meets thousands of
    /// new spaces at once spends on each of them).
    fn evict(&mut self, now: Duration) {
        self.buckets.retain(|_, b| b.full_at > now);
        let keep = self.capacity - (self.capacity / EVICT_SHARE).max(1);
        if self.buckets.len() <= keep {
            return;
        }
        let mut seen: Vec<(Duration, K)> = self
            .buckets
            .iter()
            .map(|(k, b)| (b.last_seen, k.clone()))
            .collect();
        let drop = seen.len() - keep;
        seen.select_nth_unstable_by_key(drop - 1, |(at, _)| *at);
        for (_, k) in seen.into_iter().take(drop) {
            self.buckets.remove(&k);
        }
    }
}

/// At the cap, [`RateLimiter`] frees this share of its map at once (a sixteenth: 256 of 4,096 spaces).
const EVICT_SHARE: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// 10 per minute (one every 6 s), bursts of 3.
    fn limiter(capacity: usize) -> RateLimiter<&'static str> {
        RateLimiter::new(10, secs(60), 3, capacity).expect("valid limits")
    }

    /// Checks then spends, as the mesh does; returns whether the event was allowed.
    fn take(l: &mut RateLimiter<&'static str>, key: &'static str, now: Duration) -> bool {
        match l.check(&key, now) {
            Verdict::Allowed => {
                l.spend(key, now);
                true
            }
            Verdict::Limited { .. } => false,
        }
    }

    #[test]
    fn a_burst_is_allowed_then_the_bucket_is_empty() {
        let mut l = limiter(8);
        assert_eq!(l.available(&"a", secs(0)), 3);
        for i in 0..3 {
            assert!(take(&mut l, "a", secs(0)), "event {i} of the burst");
        }
        assert_eq!(l.available(&"a", secs(0)), 0);
        assert_eq!(l.check(&"a", secs(0)), Verdict::Limited { warn: true });
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_beyond_the_burst() {
        let mut l = limiter(8);
        for _ in 0..3 {
            assert!(take(&mut l, "a", secs(0)));
        }
        assert!(!take(&mut l, "a", secs(5)), "one token takes 6 s");
        assert!(take(&mut l, "a", secs(6)));
        assert!(!take(&mut l, "a", secs(6)));
        assert_eq!(l.available(&"a", secs(18)), 2);
        // A long pause refills the bucket to the burst, not more.
        assert_eq!(l.available(&"a", secs(3600)), 3);
        for _ in 0..3 {
            assert!(take(&mut l, "a", secs(3600)));
        }
        assert!(!take(&mut l, "a", secs(3600)));
    }

    /// Reserving while a batch is checked holds the budget for batches in flight; the refunds give back
    /// what was not stored.
    #[test]
    fn over_the_limit_only_by_reservations_uses_up_no_warning() {
        let mut l = limiter(8);
        for _ in 0..3 {
            assert_eq!(l.check(&"a", secs(0)), Verdict::Allowed);
            l.reserve("a", secs(0));
        }
        // Over the limit, but the reservations may all come back: no warning, and it is kept.
        assert_eq!(l.check(&"a", secs(0)), Verdict::Limited { warn: false });
        assert_eq!(l.check(&"a", secs(0)), Verdict::Limited { warn: false });
        // They did not (the events were stored: spent, reservations refunded): the first refusal warns.
        for _ in 0..3 {
            l.refund(&"a");
            l.spend("a", secs(0));
        }
        assert_eq!(l.check(&"a", secs(0)), Verdict::Limited { warn: true });
        assert_eq!(
            l.check(&"a", secs(6)),
            Verdict::Allowed,
            "a token came back"
        );
        // Spent tokens and reservations together: over even with the reservations back warns too.
        let mut m = limiter(8);
        for _ in 0..3 {
            m.spend("b", secs(0));
        }
        m.reserve("b", secs(0));
        assert_eq!(m.check(&"b", secs(0)), Verdict::Limited { warn: true });
    }

    #[test]
    fn reservations_hold_the_budget_until_refunded() {
        let mut l = limiter(8);
        for _ in 0..3 {
            assert!(take(&mut l, "a", secs(0)), "reserved");
        }
        assert!(
            !take(&mut l, "a", secs(0)),
            "a second batch in flight is over the limit"
        );
        for _ in 0..3 {
            l.refund(&"a");
        }
        assert_eq!(l.available(&"a", secs(0)), 3);
        l.refund(&"b");
        assert_eq!(l.len(), 1, "refunding an unknown key stores nothing");
    }

    #[test]
    fn keys_have_independent_buckets() {
        let mut l = limiter(8);
        for _ in 0..3 {
            assert!(take(&mut l, "a", secs(0)));
        }
        assert!(!take(&mut l, "a", secs(0)));
        for _ in 0..3 {
            assert!(take(&mut l, "b", secs(0)), "b is untouched by a's flood");
        }
        assert_eq!(l.available(&"a", secs(0)), 0);
        assert_eq!(l.available(&"c", secs(0)), 3);
    }

    #[test]
    fn checking_spends_nothing_and_stores_nothing() {
        let mut l = limiter(8);
        for _ in 0..10 {
            assert_eq!(l.check(&"a", secs(0)), Verdict::Allowed);
        }
        assert!(l.is_empty(), "a key that never spent is not remembered");
        l.spend("a", secs(0));
        assert_eq!(l.available(&"a", secs(0)), 2);
    }

    #[test]
    fn a_limited_key_is_reported_for_warning_once_per_period() {
        let mut l = limiter(8);
        for _ in 0..3 {
            assert!(take(&mut l, "a", secs(0)));
        }
        assert_eq!(l.check(&"a", secs(0)), Verdict::Limited { warn: true });
        assert_eq!(l.check(&"a", secs(1)), Verdict::Limited { warn: false });
        // Keep the bucket empty for a whole period; the next refusal after it warns again.
        let mut now = 6;
        while now < 60 {
            assert!(take(&mut l, "a", secs(now)));
            assert_eq!(l.check(&"a", secs(now)), Verdict::Limited { warn: false });
            now += 6;
        }
        assert!(take(&mut l, "a", secs(60)));
        assert_eq!(l.check(&"a", secs(60)), Verdict::Limited { warn: true });
        // Another key warns on its own schedule.
        for _ in 0..3 {
            assert!(take(&mut l, "b", secs(60)));
        }
        assert_eq!(l.check(&"b", secs(60)), Verdict::Limited { warn: true });
    }

    #[test]
    fn the_map_is_capped_and_idle_keys_go_first() {
        let mut l = limiter(3);
        l.spend("a", secs(0));
        l.spend("b", secs(0));
        for _ in 0..3 {
            l.spend("busy", secs(0));
        }
        assert_eq!(l.len(), 3);
        // At 7 s, "a" and "b" are full again (idle) but "busy" still owes 12 s: the idle ones go.
        l.spend("d", secs(7));
        assert_eq!(l.len(), 2);
        assert_eq!(
            l.available(&"busy", secs(7)),
            1,
            "the busy key keeps its debt"
        );
        l.spend("e", secs(7));
        assert_eq!(l.len(), 3);
        // No key is idle at 8 s: the least recently used one ("busy", last seen at 0 s) goes.
        l.spend("f", secs(8));
        assert_eq!(l.len(), 3);
        assert_eq!(l.available(&"busy", secs(8)), 3, "evicted: a fresh bucket");
        assert_eq!(l.available(&"d", secs(8)), 2, "kept");
    }

    #[test]
    fn at_the_cap_the_least_recently_used_sixteenth_goes_at_once() {
        let mut l: RateLimiter<u32> = RateLimiter::new(10, secs(60), 3, 64).expect("valid");
        for i in 0..64u32 {
            l.spend(i, Duration::from_millis(u64::from(i)));
        }
        assert_eq!(l.len(), 64);
        // No bucket is idle: the four least recently used (0..4) go, and the new key comes in.
        l.spend(64, Duration::from_millis(64));
        assert_eq!(l.len(), 61);
        for i in 0..4 {
            assert_eq!(l.available(&i, secs(1)), 3, "key {i} was forgotten");
        }
        for i in 4..=64 {
            assert_eq!(l.available(&i, secs(1)), 2, "key {i} was kept");
        }
        // The next three new keys need no eviction.
        for i in 65..68u32 {
            l.spend(i, Duration::from_millis(u64::from(i)));
        }
        assert_eq!(l.len(), 64);
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let mut l: RateLimiter<u32> = RateLimiter::new(10, secs(60), 3, 100).expect("valid");
        for i in 0..10_000u32 {
            l.spend(i, Duration::from_millis(u64::from(i)));
            assert!(l.len() <= 100);
        }
    }

    #[test]
    fn nonsense_limits_are_refused() {
        assert_eq!(
            RateLimiter::<u8>::new(0, secs(1), 1, 1).err(),
            Some(LimitError::ZeroCount)
        );
        assert_eq!(
            RateLimiter::<u8>::new(1, secs(1), 0, 1).err(),
            Some(LimitError::ZeroBurst)
        );
        assert_eq!(
            RateLimiter::<u8>::new(1, secs(1), 1, 0).err(),
            Some(LimitError::ZeroCapacity)
        );
        assert_eq!(
            RateLimiter::<u8>::new(10, Duration::from_nanos(5), 1, 1).err(),
            Some(LimitError::PeriodTooShort)
        );
    }

    #[test]
    fn the_change_limiter_matches_its_constants() {
        let mut l: RateLimiter<&str> = RateLimiter::for_changes();
        assert_eq!(l.available(&"s", secs(0)), CHANGE_BURST);
        for _ in 0..CHANGE_BURST {
            assert_eq!(l.check(&"s", secs(0)), Verdict::Allowed);
            l.spend("s", secs(0));
        }
        assert!(matches!(l.check(&"s", secs(0)), Verdict::Limited { .. }));
        assert_eq!(l.available(&"s", secs(3600)), CHANGES_PER_HOUR);
    }

    #[test]
    fn the_beacon_limiter_matches_its_constants() {
        let mut l: RateLimiter<&str> = RateLimiter::for_beacons();
        assert_eq!(l.available(&"s", secs(0)), BEACON_BURST);
        for _ in 0..BEACON_BURST {
            assert_eq!(l.check(&"s", secs(0)), Verdict::Allowed);
            l.spend("s", secs(0));
        }
        assert!(matches!(
            l.check(&"s", secs(0)),
            Verdict::Limited { warn: true }
        ));
        assert!(matches!(
            l.check(&"s", secs(1)),
            Verdict::Limited { warn: false }
        ));
        assert_eq!(l.available(&"s", secs(5)), 1, "one more every five seconds");
        assert_eq!(l.available(&"s", secs(3600)), BEACON_BURST);
    }

    proptest! {
        /// Whatever the arrival times, a key never gets more than its burst plus what the rate refills.
        #[test]
        fn never_more_than_burst_plus_refill(gaps in proptest::collection::vec(0u64..20_000, 1..200)) {
            let mut l = limiter(4);
            let mut now = 0u64;
            let mut allowed = 0u64;
            for g in gaps {
                now += g;
                if take(&mut l, "k", Duration::from_millis(now)) {
                    allowed += 1;
                }
            }
            // 3 at once, then one per 6 s.
            prop_assert!(allowed <= 3 + now / 6_000, "{allowed} events in {now} ms");
        }
    }
}
