//! Opening hours (OSM `opening_hours` syntax) evaluated in the space's own time zone: open now, the next
//! change, and a week table for the detail view.
//!
//! Evaluation is on local wall-clock time: `now` (UTC, always passed in, never read from a clock) is turned
//! into the space's local time with chrono-tz, and the `opening-hours` crate answers for that naive local
//! time. Across a daylight-saving jump the answer is the one for the wall clock, which is what a door sign
//! means. Sun events (`sunrise`, `sunset`) use the crate's fixed defaults (07:00 and 19:00), since the
//! listing's hours are evaluated without coordinates. `PH` rules use the public holidays of the listing's
//! country when the crate knows them ([`Hours::with_country`]); otherwise `PH` never matches.

use std::fmt;
use std::str::FromStr;

mod shape;
pub use shape::{DayShapes, WeekHours};

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;
use opening_hours::localization::Country;
use opening_hours::{Context, OpeningHours, RuleKind};

/// Whether a place is open at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenState {
    Open,
    Closed,
    /// The hours say so (`unknown`, `"by appointment"` style rules), or there are no hours at all.
    Unknown,
}

impl OpenState {
    /// The state as a two-bit code (0 closed, 1 open, 2 unknown), for tables and caches that pack it.
    pub fn code(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::Unknown => 2,
        }
    }

    /// The state of a [`OpenState::code`]; any other code is unknown.
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Closed,
            1 => Self::Open,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for OpenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RuleKind> for OpenState {
    fn from(k: RuleKind) -> Self {
        match k {
            RuleKind::Open => Self::Open,
            RuleKind::Closed => Self::Closed,
            RuleKind::Unknown => Self::Unknown,
        }
    }
}

/// Hours that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("{text:?} is not valid OSM opening_hours syntax ({reason})")]
    Syntax { text: String, reason: String },
    #[error("{0:?} is not a known IANA time zone")]
    UnknownTimeZone(String),
}

/// How many recent expressions [`check_syntax`] remembers the verdict of, per thread.
const SYNTAX_MEMO: usize = 32;

thread_local! {
    /// The verdicts of the expressions this thread checked last, newest first. Replaying a listing's
    /// history validates the listing after every change, and its hours seldom change between two: the
    /// parse was a tenth of a rebuild's time.
    static CHECKED: std::cell::RefCell<Vec<(String, Result<(), String>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Check an expression's syntax; the error is one short clause ("unexpected \"8 to 6\" at column 7").
pub(crate) fn check_syntax(text: &str) -> Result<(), String> {
    if let Some(known) = CHECKED.with(|m| {
        let mut m = m.borrow_mut();
        let at = m.iter().position(|(t, _)| t == text)?;
        let hit = m.remove(at);
        let verdict = hit.1.clone();
        m.insert(0, hit);
        Some(verdict)
    }) {
        return known;
    }
    let verdict = OpeningHours::from_str(text)
        .map(|_| ())
        .map_err(|e| condense(&e.to_string(), text));
    CHECKED.with(|m| {
        let mut m = m.borrow_mut();
        m.truncate(SYNTAX_MEMO - 1);
        m.insert(0, (text.to_string(), verdict.clone()));
    });
    verdict
}

/// The parser's syntax errors are multi-line pest reports (`--> 1:7`, a caret line, `= expected` and the
/// grammar's rule names); people are better served by the position and the text found there. Other
/// errors (numbers out of range, inverted ranges) are one line already.
fn condense(report: &str, text: &str) -> String {
    let column = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("-->"))
        .and_then(|pos| pos.trim().split(':').nth(1))
        .and_then(|c| c.trim().parse::<usize>().ok());
    match column {
        Some(c) => {
            let rest: String = text.chars().skip(c.saturating_sub(1)).collect();
            let rest = rest.trim_end();
            if rest.is_empty() {
                format!("it ends too early at column {c}")
            } else if rest.chars().count() > 24 {
                let head: String = rest.chars().take(24).collect();
                format!("unexpected \"{head}...\" at column {c}")
            } else {
                format!("unexpected \"{rest}\" at column {c}")
            }
        }
        None => report
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Look ahead at most this far for the next change, so odd expressions cannot make a query scan centuries.
const NEXT_CHANGE_HORIZON_DAYS: i64 = 366;

/// An opening hours expression compiled for one time zone (and optionally one country's holidays).
/// Parse once and evaluate many times; cloning is cheap.
#[derive(Clone, Debug)]
pub struct Hours {
    oh: OpeningHours,
    tz: Tz,
}

/// An opening hours expression parsed, not yet tied to a time zone or a country: parsing is most of what
/// compiling hours costs, and many spaces share an expression in different places (10,000 listings of a
/// generated alliance hold 2,485 distinct expressions in 8,137 distinct places). Cloning is cheap.
#[derive(Clone, Debug)]
pub struct HoursExpr(OpeningHours);

impl HoursExpr {
    pub fn parse(text: &str) -> Result<Self, HoursError> {
        OpeningHours::from_str(text)
            .map(Self)
            .map_err(|e| HoursError::Syntax {
                text: text.to_string(),
                reason: condense(&e.to_string(), text),
            })
    }

    /// The expression evaluated in time zone `tz` (an IANA name).
    pub fn in_zone(&self, tz: &str) -> Result<Hours, HoursError> {
        let tz = Tz::from_str(tz).map_err(|_| HoursError::UnknownTimeZone(tz.to_string()))?;
        Ok(Hours {
            oh: self.0.clone(),
            tz,
        })
    }
}

impl Hours {
    pub fn parse(text: &str, tz: &str) -> Result<Self, HoursError> {
        // The zone is checked first, so an unknown zone is reported before a syntax error.
        Tz::from_str(tz).map_err(|_| HoursError::UnknownTimeZone(tz.to_string()))?;
        HoursExpr::parse(text)?.in_zone(tz)
    }

    /// Use the public holidays of `country` (ISO 3166-1 alpha-2) for `PH` rules. Countries the crate has
    /// no calendar for leave `PH` never matching.
    pub fn with_country(self, country: &str) -> Self {
        match Country::from_str(country) {
            Ok(c) => Self {
                oh: self
                    .oh
                    .with_context(Context::default().with_holidays(c.holidays())),
                tz: self.tz,
            },
            Err(_) => self,
        }
    }

    /// Decodes the public holiday calendars [`Hours::with_country`] reads (the crate unpacks its whole
    /// embedded database at the first use, ~15 ms), so that a caller with an idle thread pays for it there
    /// rather than in the first evaluation.
    pub fn load_holidays() {
        let _ = Country::FR.holidays();
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    fn local(&self, now: DateTime<Utc>) -> NaiveDateTime {
        now.with_timezone(&self.tz).naive_local()
    }

    /// Open, closed or unknown at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> OpenState {
        self.oh.state(self.local(now)).0.into()
    }

    /// The state at `now` with the rule's comment (`"by appointment"`), empty when there is none.
    pub fn state_with_comment(&self, now: DateTime<Utc>) -> (OpenState, String) {
        let (kind, comment) = self.oh.state(self.local(now));
        (kind.into(), comment.to_string())
    }

    /// The next instant the state changes, within a year; `None` for `24/7` and other hours that do not
    /// change that soon.
    ///
    /// The hours are read on the wall clock, which jumps when the zone changes its UTC offset. So the
    /// wall clock's next change is taken only if it comes before the zone's next jump; at a jump, the
    /// state on the new wall clock is compared with the state so far (clocks going back repeat an hour
    /// whose changes happen again; clocks going forward skip one), and the search goes on from there.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let horizon = now + Duration::days(NEXT_CHANGE_HORIZON_DAYS);
        let state = self.state(now);
        let mut from = now;
        // Each round passes one jump of the wall clock; a zone makes a few a year.
        for _ in 0..8 {
            let wall = self.wall_change(from);
            let until = wall.unwrap_or(horizon).min(horizon);
            match offset_change(&self.tz, from, until) {
                Some(jump) if self.state(jump) != state => return Some(jump),
                Some(jump) => from = jump,
                None => return wall.filter(|w| *w < horizon),
            }
        }
        None
    }

    /// The first change after `from` as the wall clock at `from` runs on, ignoring the zone's jumps: the
    /// end of the range `from` is in, as the first instant after `from` that shows that wall time.
    fn wall_change(&self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = self.local(from);
        let horizon = local + Duration::days(NEXT_CHANGE_HORIZON_DAYS);
        let first = self.oh.iter_range(local, horizon).next()?;
        if first.range.end >= horizon {
            return None;
        }
        Some(local_to_utc_after(&self.tz, first.range.end, from))
    }

    /// An instant after `now` until which the state found at `now` surely holds, for caching it: the next
    /// change, but never past the zone's next change of UTC offset nor a day ahead ([`steady_until`]).
    pub fn steady_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        steady_until(&self.tz, now, self.next_change(now))
    }

    /// The seven days (Monday first) of the local week that contains `now`, each with its intervals.
    pub fn week(&self, now: DateTime<Utc>) -> WeekTable {
        let today = self.local(now).date();
        let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
        let days = (0..7)
            .map(|i| {
                let date = monday + Duration::days(i);
                DayRow {
                    date,
                    today: date == today,
                    intervals: self.day(date),
                }
            })
            .collect();
        WeekTable { days }
    }

    fn day(&self, date: NaiveDate) -> Vec<Interval> {
        let start = date.and_time(NaiveTime::MIN);
        let end = start + Duration::days(1);
        self.oh
            .iter_range(start, end)
            .filter(|r| r.kind != RuleKind::Closed)
            .map(|r| Interval {
                start_min: minutes_since(start, r.range.start),
                end_min: minutes_since(start, r.range.end),
                state: r.kind.into(),
                comment: r.comment.to_string(),
            })
            .collect()
    }
}

/// How long a state found at `now` may be trusted when it next changes at `change` (as found on the wall
/// clock from `now` on): until `change`, but at most a day, and never past the zone's next change of UTC
/// offset. A clock that goes back repeats an hour whose states a wall-clock search from `now` never sees
/// ("Su 00:00-01:30" at 01:45 summer time opens again at 01:00 winter time); a clock that goes forward
/// skips some. Within a day there is at most one offset change, found to the minute (the instant returned
/// is at or before it).
pub(crate) fn steady_until(
    tz: &Tz,
    now: DateTime<Utc>,
    change: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let day = now + Duration::days(1);
    let until = change.map_or(day, |c| c.min(day));
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let here = offset(now);
    if offset(until) == here {
        return until;
    }
    let (mut lo, mut hi) = (now, until);
    while hi - lo > Duration::minutes(1) {
        let mid = lo + (hi - lo) / 2;
        if offset(mid) == here {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

fn minutes_since(start: NaiveDateTime, t: NaiveDateTime) -> u16 {
    // Ranges come clipped to the day, so this is 0..=1440 and fits in u16.
    u16::try_from((t - start).num_minutes().clamp(0, 1440)).unwrap_or(1440)
}

/// The UTC instant of a local wall-clock time: the earlier one when clocks go back, and the end of the
/// gap when clocks go forward past it.
/// The first instant after `after` whose wall time in `tz` is `naive`: of a wall time that happens twice
/// (clocks going back), the later one when the earlier is not after `after`; a wall time that never
/// happens (clocks going forward) is taken as the first one after the gap.
fn local_to_utc_after(tz: &Tz, naive: NaiveDateTime, after: DateTime<Utc>) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Ambiguous(early, late) => {
            let early = early.with_timezone(&Utc);
            if early > after {
                early
            } else {
                late.with_timezone(&Utc)
            }
        }
        _ => local_to_utc(tz, naive),
    }
}

/// The first instant in (`from`, `until`] at which `tz`'s UTC offset differs from its offset at `from`,
/// to the second; `None` when it does not change by `until`. Looked for a day at a time, then bisected.
fn offset_change(tz: &Tz, from: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let here = offset(from);
    let mut lo = from;
    let hi = loop {
        if lo >= until {
            return None;
        }
        let next = (lo + Duration::days(1)).min(until);
        if offset(next) != here {
            break next;
        }
        lo = next;
    };
    let mut hi = hi;
    while hi - lo > Duration::seconds(1) {
        let mid = lo + (hi - lo) / 2;
        if offset(mid) == here {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Zones change offset on whole seconds: the change is `hi` without its fraction.
    let whole = hi.with_nanosecond(0).unwrap_or(hi);
    Some(if whole > lo && offset(whole) != here {
        whole
    } else {
        hi
    })
}

fn local_to_utc(tz: &Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    let mut t = naive;
    // A gap is at most a few hours; step forward a minute at a time, a bounded number of times.
    for _ in 0..(24 * 60) {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.with_timezone(&Utc);
        }
        t += Duration::minutes(1);
    }
    naive.and_utc()
}

/// One interval of a day in a [`WeekTable`], in local minutes since midnight (`end_min` may be 1440).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    pub start_min: u16,
    pub end_min: u16,
    /// Open or unknown (closed time is the gaps between intervals).
    pub state: OpenState,
    pub comment: String,
}

impl fmt::Display for Interval {
    /// `08:00-18:00`, `10:00-12:00 unknown`, `14:00-16:00 "by appointment"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start_min), hm(self.end_min))?;
        if self.state == OpenState::Unknown {
            f.write_str(" unknown")?;
        }
        if !self.comment.is_empty() {
            write!(f, " {:?}", self.comment)?;
        }
        Ok(())
    }
}

/// One day of a [`WeekTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayRow {
    pub date: NaiveDate,
    /// Whether this is the local day that contains `now`.
    pub today: bool,
    pub intervals: Vec<Interval>,
}

impl DayRow {
    /// The OSM two-letter day name: `Mo` .. `Su`.
    pub fn day_name(&self) -> &'static str {
        ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
            [self.date.weekday().num_days_from_monday() as usize]
    }

    /// The intervals as text: `08:00-18:00, 19:00-22:00`, or `closed`.
    pub fn text(&self) -> String {
        if self.intervals.is_empty() {
            return "closed".to_string();
        }
        self.intervals
            .iter()
            .map(Interval::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The seven days of the current local week, Monday first, for the detail view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeekTable {
    pub days: Vec<DayRow>,
}

impl WeekTable {
    pub fn today(&self) -> Option<&DayRow> {
        self.days.iter().find(|d| d.today)
    }
}

impl fmt::Display for WeekTable {
    /// One line per day, today marked with `>`: `> Tu 2025-05-13  08:00-18:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.days {
            let mark = if d.today { '>' } else { ' ' };
            writeln!(f, "{mark} {} {}  {}", d.day_name(), d.date, d.text())?;
        }
        Ok(())
    }
}

/// Open, closed or unknown at `now` for hours `opening_hours` in time zone `tz`.
pub fn is_open(opening_hours: &str, tz: &str, now: DateTime<Utc>) -> Result<OpenState, HoursError> {
    Ok(Hours::parse(opening_hours, tz)?.state(now))
}

/// The next state change after `now`, within a year.
pub fn next_change(
    opening_hours: &str,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, HoursError> {
    Ok(Hours::parse(opening_hours, tz)?.next_change(now))
}

/// The week table for the local week that contains `now`.
pub fn week_table(
    opening_hours: &str,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<WeekTable, HoursError> {
    Ok(Hours::parse(opening_hours, tz)?.week(now))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn remembered_syntax_verdicts_equal_fresh_ones() {
        let fresh = |t: &str| {
            OpeningHours::from_str(t)
                .map(|_| ())
                .map_err(|e| condense(&e.to_string(), t))
        };
        let texts: Vec<String> = (0..SYNTAX_MEMO * 2)
            .map(|i| match i % 3 {
                0 => format!("Mo-Fr {:02}:00-18:00", i % 10),
                1 => format!("Mo-Fr 8 to {i}"),
                _ => format!("Sa {:02}:00-{:02}:30; PH off", i % 12, 12 + i % 12),
            })
            .collect();
        // Every text checked three times over, with more texts between than the memo holds, and each
        // right after itself: the verdicts (valid and invalid alike) never depend on what came before.
        for _ in 0..3 {
            for t in &texts {
                assert_eq!(check_syntax(t), fresh(t), "{t}");
                assert_eq!(check_syntax(t), fresh(t), "{t} again");
            }
        }
        assert!(check_syntax("Mo-Fr 8 to 6").is_err());
        assert_eq!(check_syntax("Mo-Fr 08:00-18:00"), Ok(()));
    }

    #[test]
    fn weekday_hours_in_tokyo() {
        let oh = "Mo-Fr 08:00-18:00";
        // 2025-05-12 is a Monday. 23:30 UTC on Sunday is 08:30 Monday in Tokyo (UTC+9).
        assert_eq!(
            is_open(oh, "Asia/Tokyo", utc("2025-05-11T23:30:00Z")),
            Ok(OpenState::Open)
        );
        // 22:30 UTC Sunday is 07:30 Monday in Tokyo: not yet.
        assert_eq!(
            is_open(oh, "Asia/Tokyo", utc("2025-05-11T22:30:00Z")),
            Ok(OpenState::Closed)
        );
        // 09:30 UTC Monday is 18:30 in Tokyo: closed, though it is mid-morning in UTC.
        assert_eq!(
            is_open(oh, "Asia/Tokyo", utc("2025-05-12T09:30:00Z")),
            Ok(OpenState::Closed)
        );
        // 15:00 UTC Friday is midnight Saturday in Tokyo.
        assert_eq!(
            is_open(oh, "Asia/Tokyo", utc("2025-05-16T15:00:00Z")),
            Ok(OpenState::Closed)
        );
        assert_eq!(
            is_open(oh, "Asia/Tokyo", utc("2025-05-16T08:59:00Z")),
            Ok(OpenState::Open)
        );
    }

    #[test]
    fn same_instant_differs_by_zone() {
        let oh = "Mo-Sa 09:00-17:00";
        let t = utc("2025-01-15T12:00:00Z"); // Wednesday
        assert_eq!(is_open(oh, "Europe/Lisbon", t), Ok(OpenState::Open)); // 12:00
        assert_eq!(is_open(oh, "America/Toronto", t), Ok(OpenState::Closed)); // 07:00
        assert_eq!(is_open(oh, "Australia/Melbourne", t), Ok(OpenState::Closed)); // 23:00
        assert_eq!(
            is_open(oh, "America/Argentina/Buenos_Aires", t),
            Ok(OpenState::Open)
        ); // 09:00
    }

    /// Clocks going back repeat an hour, and its changes happen again; clocks going forward skip an hour,
    /// and its changes never happen. Berlin, 2026: back at 03:00 CEST on 25 October (01:00 UTC), forward
    /// at 02:00 CET on 29 March (01:00 UTC).
    #[test]
    fn the_next_change_sees_the_hour_clocks_repeat_or_skip() {
        let h = Hours::parse("Su 00:00-02:30", "Europe/Berlin").unwrap();
        // 02:15 CEST, open: closes at 02:30 CEST.
        assert_eq!(
            h.next_change(utc("2026-10-25T00:15:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        // 02:45 CEST, closed: open again when the clock goes back to 02:00 CET, not next Sunday.
        assert_eq!(
            h.next_change(utc("2026-10-25T00:45:00Z")),
            Some(utc("2026-10-25T01:00:00Z"))
        );
        // 02:10 CET, open: closes at 02:30 CET, not at the 02:30 CEST already past.
        assert_eq!(
            h.next_change(utc("2026-10-25T01:10:00Z")),
            Some(utc("2026-10-25T01:30:00Z"))
        );
        // Hours inside the skipped hour never open that night: next Sunday, 02:15 CEST.
        let h = Hours::parse("Su 02:15-02:45", "Europe/Berlin").unwrap();
        assert_eq!(
            h.next_change(utc("2026-03-29T00:50:00Z")),
            Some(utc("2026-04-05T00:15:00Z"))
        );
    }

    /// Minute by minute across both changes of offset in two zones: the next change is after now, the
    /// state holds every minute until it, and changes at it.
    #[test]
    fn the_state_holds_until_the_next_change_across_clock_changes() {
        let nights = [
            ("Europe/Berlin", "2026-03-29T00:00:00Z"),
            ("Europe/Berlin", "2026-10-25T00:00:00Z"),
            ("America/New_York", "2026-03-08T06:00:00Z"),
            ("America/New_York", "2026-11-01T05:00:00Z"),
        ];
        let exprs = [
            "Su 00:00-02:30",
            "Su 02:15-02:45",
            "Mo-Su 01:30-02:30",
            "Mo-Su 01:00-01:20,01:40-03:10",
            "Sa,Su 00:00-24:00; Su 02:00-03:00 off",
        ];
        for (zone, start) in nights {
            for expr in exprs {
                let h = Hours::parse(expr, zone).unwrap();
                let start = utc(start);
                for m in 0..(5 * 60) {
                    let t = start + Duration::minutes(m);
                    let state = h.state(t);
                    let Some(change) = h.next_change(t) else {
                        continue;
                    };
                    assert!(
                        change > t,
                        "{expr} in {zone} at {t}: {change} is not after it"
                    );
                    let mut at = t + Duration::minutes(1);
                    while at < change && at < t + Duration::hours(8) {
                        assert_eq!(
                            h.state(at),
                            state,
                            "{expr} in {zone}: from {t} the next change is {change}, but the state changed by {at}"
                        );
                        at += Duration::minutes(1);
                    }
                }
            }
        }
    }

    #[test]
    fn daylight_saving_follows_the_wall_clock() {
        let oh = "Mo-Su 08:00-09:00";
        // Berlin is UTC+1 in January and UTC+2 in July: 07:30 UTC is 08:30 and 09:30 local.
        assert_eq!(
            is_open(oh, "Europe/Berlin", utc("2025-01-15T07:30:00Z")),
            Ok(OpenState::Open)
        );
        assert_eq!(
            is_open(oh, "Europe/Berlin", utc("2025-07-15T07:30:00Z")),
            Ok(OpenState::Closed)
        );
        assert_eq!(
            is_open(oh, "Europe/Berlin", utc("2025-07-15T06:30:00Z")),
            Ok(OpenState::Open)
        );
    }

    #[test]
    fn unknown_and_24_7() {
        assert_eq!(
            is_open("24/7", "Africa/Nairobi", utc("2025-03-02T03:00:00Z")),
            Ok(OpenState::Open)
        );
        assert_eq!(
            is_open(
                "Mo-Fr 10:00-12:00 unknown",
                "UTC",
                utc("2025-05-12T11:00:00Z")
            ),
            Ok(OpenState::Unknown)
        );
        let h = Hours::parse("Mo-Fr 10:00-12:00 \"by appointment\"", "UTC").unwrap();
        let (state, comment) = h.state_with_comment(utc("2025-05-12T11:00:00Z"));
        assert_eq!(
            (state, comment.as_str()),
            (OpenState::Open, "by appointment")
        );
    }

    #[test]
    fn public_holidays_need_the_country() {
        // 2025-04-25 (a Friday) is Freedom Day, a public holiday in Portugal.
        let t = utc("2025-04-25T10:00:00Z");
        let oh = "Mo-Fr 09:00-18:00; PH off";
        let without = Hours::parse(oh, "Europe/Lisbon").unwrap();
        assert_eq!(without.state(t), OpenState::Open);
        assert_eq!(without.with_country("PT").state(t), OpenState::Closed);
        assert_eq!(
            Hours::parse(oh, "Europe/Lisbon")
                .unwrap()
                .with_country("ZZ")
                .state(t),
            OpenState::Open,
            "an unknown country just has no holidays"
        );
    }

    #[test]
    fn next_change_is_in_utc() {
        let h = Hours::parse("Mo-Fr 08:00-18:00", "Asia/Tokyo").unwrap();
        // Monday 08:30 Tokyo: closes at 18:00 Tokyo = 09:00 UTC.
        assert_eq!(
            h.next_change(utc("2025-05-11T23:30:00Z")),
            Some(utc("2025-05-12T09:00:00Z"))
        );
        // Friday 19:00 Tokyo: opens Monday 08:00 Tokyo = Sunday 23:00 UTC.
        assert_eq!(
            h.next_change(utc("2025-05-16T10:00:00Z")),
            Some(utc("2025-05-18T23:00:00Z"))
        );
        assert_eq!(
            next_change("24/7", "UTC", utc("2025-05-16T10:00:00Z")),
            Ok(None)
        );
    }

    #[test]
    fn local_times_in_a_spring_forward_gap_map_to_its_end() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // 2025-03-30 02:30 does not exist in Berlin; clocks jump from 02:00 to 03:00 (01:00 UTC).
        let gap = NaiveDate::from_ymd_opt(2025, 3, 30)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(local_to_utc(&tz, gap), utc("2025-03-30T01:00:00Z"));
    }

    #[test]
    fn week_table_marks_today_and_lists_intervals() {
        let oh = "Mo-Fr 08:00-12:00,13:00-18:00; Sa 10:00-14:00; Su off";
        // Wednesday 2025-05-14 10:00 in Lisbon (UTC+1 in summer).
        let w = week_table(oh, "Europe/Lisbon", utc("2025-05-14T09:00:00Z")).unwrap();
        assert_eq!(w.days.len(), 7);
        assert_eq!(
            w.days[0].date,
            NaiveDate::from_ymd_opt(2025, 5, 12).unwrap()
        );
        assert_eq!(w.days[0].day_name(), "Mo");
        assert_eq!(w.days[0].text(), "08:00-12:00, 13:00-18:00");
        assert_eq!(w.days[5].text(), "10:00-14:00");
        assert_eq!(w.days[6].text(), "closed");
        assert_eq!(w.today().map(|d| d.day_name()), Some("We"));
        let shown = w.to_string();
        assert!(
            shown.contains("> We 2025-05-14  08:00-12:00, 13:00-18:00\n"),
            "{shown}"
        );
        assert!(shown.contains("  Su 2025-05-18  closed\n"), "{shown}");
    }

    #[test]
    fn week_table_across_midnight_and_all_day() {
        let w = week_table("Fr 20:00-02:00", "UTC", utc("2025-05-14T09:00:00Z")).unwrap();
        assert_eq!(w.days[4].text(), "20:00-24:00");
        assert_eq!(w.days[5].text(), "00:00-02:00");
        let w = week_table("24/7", "UTC", utc("2025-05-14T09:00:00Z")).unwrap();
        assert!(w.days.iter().all(|d| d.text() == "00:00-24:00"));
    }

    #[test]
    fn week_starts_on_local_monday() {
        // Sunday 20:00 UTC is already Monday 05:00 in Tokyo: the Tokyo week starts that Monday.
        let w = week_table("Mo 04:00-06:00", "Asia/Tokyo", utc("2025-05-18T20:00:00Z")).unwrap();
        assert_eq!(
            w.days[0].date,
            NaiveDate::from_ymd_opt(2025, 5, 19).unwrap()
        );
        assert!(w.days[0].today);
    }

    #[test]
    fn errors_are_one_clause() {
        let e = is_open("Mo-Fr 8 to 6", "UTC", utc("2025-05-14T09:00:00Z")).unwrap_err();
        let msg = e.to_string();
        assert_eq!(
            msg,
            "\"Mo-Fr 8 to 6\" is not valid OSM opening_hours syntax (unexpected \"8 to 6\" at column 7)"
        );
        let e = is_open("Mo-Fr 08:00-", "UTC", utc("2025-05-14T09:00:00Z")).unwrap_err();
        assert!(
            e.to_string().ends_with("(it ends too early at column 13)"),
            "{e}"
        );
        let long = "Mo-Fr 08:00-18:00; Sx 10:00-12:00 and more words here";
        let e = is_open(long, "UTC", utc("2025-05-14T09:00:00Z")).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("(unexpected \"Sx 10:00-12:00 and more ...\" at column 20)"),
            "{e}"
        );
        assert_eq!(
            is_open("24/7", "Mars/Olympus", utc("2025-05-14T09:00:00Z")),
            Err(HoursError::UnknownTimeZone("Mars/Olympus".into()))
        );
    }
}
