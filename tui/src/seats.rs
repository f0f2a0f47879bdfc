//! How live seat status reads on screen. The rule and the words are the listing model's
//! (`deskmesh_crdt_model::seats`): a space's seats are its desk pools, within its opening hours, fresh
//! figures only, and every state has one wording and one symbol, the same as the command line's. This
//! module only maps the node's pool statuses onto that rule and picks a style per state: a stale figure is
//! dimmed and carries its age, and every state has a symbol, so it reads without colour too.

use chrono::{DateTime, Utc};
use deskmesh_crdt_model::seats::{self, Reading, SeatState, SeatsNow};
use deskmesh_crdt_model::OpenState;
use ratatui::style::Style;

use crate::model::{PoolStatus, SpaceView};
use crate::theme::Theme;

/// What the node said about a pool, as the rule reads it.
pub(crate) fn reading(p: &PoolStatus) -> Reading {
    Reading {
        availability: p.availability,
        is_open: p.is_open,
        published_at_ms: p.published_at.timestamp_millis(),
        ttl_s: p.ttl_s,
    }
}

/// The seats of `space` at `now`, given its state by its opening hours.
pub(crate) fn summary(space: &SpaceView, open: OpenState, now: DateTime<Utc>) -> SeatsNow {
    seats::space_now(
        &space.listing.seat_pools,
        |id| space.pool(id).map(reading),
        open,
        now.timestamp_millis(),
    )
}

/// One pool's seats at `now`.
pub(crate) fn pool_line(status: Option<&PoolStatus>, now: DateTime<Utc>) -> SeatsNow {
    seats::pool_now(status.map(reading).as_ref(), now.timestamp_millis())
}

/// The style of a seat state: free green (one or few yellow), full red, stale and the rest dimmed.
pub(crate) fn style(s: &SeatsNow, theme: Theme) -> Style {
    match s.state {
        SeatState::Free if s.few() => theme.warn(),
        SeatState::Free => theme.good(),
        SeatState::Full => theme.bad(),
        SeatState::Stale | SeatState::Closed | SeatState::Unknown | SeatState::NoDesks => {
            theme.dim()
        }
    }
}

/// "● 4 free, 2 min ago": the symbol and the one wording.
pub(crate) fn label(s: &SeatsNow) -> String {
    format!("{} {}", s.symbol(), s.text())
}

/// How long ago `then` was, worded as the seat figures' ages are: "just now", "2 min ago", "3 h ago",
/// "2 d ago"; "in the future" for a clock ahead of ours.
pub(crate) fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds();
    if s <= -60 {
        return "in the future".to_string();
    }
    seats::ago(u64::try_from(s).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Availability;
    use chrono::Duration;
    use deskmesh_crdt_model::listing::{PoolAccess, PoolKind, SeatPool};
    use deskmesh_crdt_model::Listing;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-05-14T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn space(pools: &[(&str, PoolKind)]) -> SpaceView {
        let id = "sp-aaaaaaaaaaaaaaaa".parse().unwrap();
        let mut l = Listing::new_minimal(id, "X", 1.0, 1.0, "C", "PT", "UTC");
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
    fn the_table_reads_what_the_rule_says() {
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
        assert_eq!(label(&sum), "● 4 free, 2 min ago");
        assert!(sum.free_now());
        assert_eq!(style(&sum, Theme::colored()), Theme::colored().good());
        assert_eq!(label(&summary(&s, OpenState::Closed, now())), "- closed");
        s.pools = vec![beacon("a", Availability::Count(4), 12 * 60)];
        let stale = summary(&s, OpenState::Open, now());
        assert_eq!(label(&stale), "◌ ~4 free, 12 min ago");
        assert_eq!(style(&stale, Theme::plain()), Theme::plain().dim());
        assert_eq!(label(&pool_line(None, now())), "? unknown");
    }

    #[test]
    fn ages_read_naturally() {
        let t = now();
        assert_eq!(ago(t, t), "just now");
        assert_eq!(ago(t - Duration::seconds(42), t), "just now");
        assert_eq!(ago(t - Duration::seconds(125), t), "2 min ago");
        assert_eq!(ago(t - Duration::hours(5), t), "5 h ago");
        assert_eq!(ago(t - Duration::days(3), t), "3 d ago");
        assert_eq!(ago(t + Duration::days(3), t), "in the future");
    }
}
