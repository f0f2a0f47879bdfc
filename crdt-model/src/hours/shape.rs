//! Opening hours reduced to their shape over a week, for hours that have one: when every rule selects
//! days by weekday (and maybe public holiday) alone and keeps within its day, the state at any instant is
//! a function of the local weekday, the minute of the day and whether the day is a public holiday. Such
//! hours ([`DayShapes`]) are worked out once, when a listing's search row is made, by the `opening-hours`
//! crate itself on a reference week, and are kept in the row. A query then answers "open now" with a
//! table look-up instead of parsing the expression in every process (parsing 2,485 expressions took most
//! of an unfiltered list of 10,000 spaces without a daemon).
//!
//! Hours with dates, months, weeks, years, school holidays, shifted holidays, nth weekdays of a month, sun
//! events, open ends, repeats or times past midnight have no shape; they are evaluated by the crate as
//! before. The shapes are a pure function of the expression and the crate's rules, so a change of the
//! crate that changes its answers must change the rows' format (`SearchRow::FORMAT`).

use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike,
    Utc,
};
use chrono_tz::Tz;
use compact_calendar::CompactCalendar;
use opening_hours::localization::Country;
use opening_hours::{Context, ContextHolidays, OpeningHours};
use opening_hours_syntax::rules::day::{HolidayKind, WeekDayRange};
use opening_hours_syntax::rules::time::Time;
use opening_hours_syntax::rules::OpeningHoursExpression;

use super::{HoursError, HoursExpr, OpenState};

/// A Monday: the reference week the shapes are read from (any week gives the same shapes).
const REFERENCE_MONDAY: (i32, u32, u32) = (2024, 1, 1);
const DAY_MINUTES: u16 = 1440;
/// How far [`WeekHours::steady_until`] looks for a change: past the day it trusts a state for at most.
const LOOK_AHEAD_DAYS: i64 = 2;

/// One day's states as (first minute, state code) pairs in order, the first at minute 0 and each state
/// holding until the next pair's minute (the last until midnight). Codes: 0 closed, 1 open, 2 unknown.
type DayShape = Vec<(u16, u8)>;

/// The shape of hours over a week: each weekday's states on an ordinary day and, when the hours mention
/// public holidays, on a public holiday.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayShapes {
    /// Monday first.
    ordinary: [DayShape; 7],
    /// Monday first; `None` when no rule selects public holidays.
    holiday: Option<[DayShape; 7]>,
}

impl HoursExpr {
    /// The expression's shape over a week, or `None` when it has none (see the module documentation).
    pub fn day_shapes(&self) -> Option<DayShapes> {
        let expr = self.0.get_expression();
        let mentions_holidays = day_local(&expr)?;
        let ordinary = week_of(&self.0)?;
        let holiday = if mentions_holidays {
            // The same expression where every day of the reference week is a public holiday.
            let mut every_day = CompactCalendar::default();
            for date in reference_week() {
                every_day.insert(date);
            }
            let context = Context::default().with_holidays(ContextHolidays::new(
                Arc::new(every_day),
                Arc::new(CompactCalendar::default()),
            ));
            Some(week_of(&self.0.clone().with_context(context))?)
        } else {
            None
        };
        Some(DayShapes { ordinary, holiday })
    }
}

/// `Some(whether a rule selects public holidays)` when every rule depends on the weekday (and public
/// holidays) alone and keeps within its day; `None` otherwise.
fn day_local(expr: &OpeningHoursExpression) -> Option<bool> {
    let mut holidays = false;
    for rule in &expr.rules {
        let days = &rule.day_selector;
        if !days.year.is_empty() || !days.monthday.is_empty() || !days.week.is_empty() {
            return None;
        }
        for range in &days.weekday {
            match range {
                WeekDayRange::Fixed {
                    offset,
                    nth_from_start,
                    nth_from_end,
                    ..
                } => {
                    let every_week =
                        nth_from_start.iter().all(|n| *n) || nth_from_end.iter().all(|n| *n);
                    if *offset != 0 || !every_week {
                        return None;
                    }
                }
                WeekDayRange::Holiday {
                    kind: HolidayKind::Public,
                    offset: 0,
                } => holidays = true,
                WeekDayRange::Holiday { .. } => return None,
            }
        }
        for span in &rule.time_selector.spans {
            let (Time::Fixed(start), Time::Fixed(end)) = (&span.range.start, &span.range.end)
            else {
                return None;
            };
            let minutes = |t: &opening_hours_syntax::ExtendedTime| {
                u16::from(t.hour()) * 60 + u16::from(t.minute())
            };
            // A span whose start is not before its end runs into the next day (`12:00-12:00` is 24
            // hours): its state would depend on the day before.
            if span.open_end
                || span.repeats.is_some()
                || minutes(start) >= minutes(end)
                || minutes(end) > DAY_MINUTES
            {
                return None;
            }
        }
    }
    Some(holidays)
}

fn reference_week() -> impl Iterator<Item = NaiveDate> {
    let (y, m, d) = REFERENCE_MONDAY;
    let monday = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    (0..7).map(move |i| monday + Duration::days(i))
}

/// Each day of the reference week as the crate evaluates it; `None` if its ranges do not tile the day.
fn week_of(oh: &OpeningHours) -> Option<[DayShape; 7]> {
    let mut days: [DayShape; 7] = Default::default();
    for (slot, date) in days.iter_mut().zip(reference_week()) {
        let start = date.and_time(NaiveTime::MIN);
        let mut shape: DayShape = Vec::new();
        let mut at = 0u16;
        for range in oh.iter_range(start, start + Duration::days(1)) {
            let from = super::minutes_since(start, range.range.start);
            let to = super::minutes_since(start, range.range.end);
            if from != at || to < from {
                return None;
            }
            let code = OpenState::from(range.kind).code();
            if from < to && shape.last().is_none_or(|(_, c)| *c != code) {
                shape.push((from, code));
            }
            at = to;
        }
        if at != DAY_MINUTES || shape.is_empty() {
            return None;
        }
        *slot = shape;
    }
    Some(days)
}

impl DayShapes {
    /// The shapes placed in time zone `tz` (an IANA name), with the public holidays of `country` (ISO
    /// 3166-1 alpha-2) when they matter: as [`HoursExpr::in_zone`] and [`super::Hours::with_country`] do.
    pub fn in_place(&self, tz: &str, country: &str) -> Result<WeekHours, HoursError> {
        let zone: Tz = tz
            .parse()
            .map_err(|_| HoursError::UnknownTimeZone(tz.to_string()))?;
        let holidays = match self.holiday {
            Some(_) => country.parse::<Country>().ok().map(|c| c.holidays()),
            None => None,
        };
        Ok(WeekHours {
            shapes: self.clone(),
            tz: zone,
            holidays,
        })
    }

    /// Whether the shapes are well formed (each day non-empty, from minute 0, in order, within the day,
    /// known states): shapes read back from a store that do not are not used (the hours are then
    /// evaluated by the crate).
    pub fn is_valid(&self) -> bool {
        let day_ok = |d: &DayShape| {
            d.first().is_some_and(|(m, _)| *m == 0)
                && d.windows(2).all(|w| w[0].0 < w[1].0)
                && d.iter().all(|(m, c)| *m < DAY_MINUTES && *c <= 2)
        };
        self.ordinary.iter().all(day_ok) && self.holiday.iter().flatten().all(day_ok)
    }

    fn day(&self, date: NaiveDate, holiday: bool) -> &DayShape {
        let weekday = date.weekday().num_days_from_monday() as usize;
        match (&self.holiday, holiday) {
            (Some(h), true) => &h[weekday],
            _ => &self.ordinary[weekday],
        }
    }
}

/// [`DayShapes`] in a time zone and a country: what [`super::Hours`] answers, from the tables.
#[derive(Clone, Debug)]
pub struct WeekHours {
    shapes: DayShapes,
    tz: Tz,
    /// The country's public holidays, when the shapes have a holiday table and the country is known.
    holidays: Option<ContextHolidays>,
}

impl WeekHours {
    fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays
            .as_ref()
            .is_some_and(|h| h.get_public().contains(date))
    }

    fn day(&self, date: NaiveDate) -> &DayShape {
        self.shapes.day(date, self.is_holiday(date))
    }

    /// The state code of local `date` at `minute` of the day.
    fn code_at(&self, date: NaiveDate, minute: u16) -> u8 {
        let day = self.day(date);
        day[day
            .partition_point(|(from, _)| *from <= minute)
            .saturating_sub(1)]
        .1
    }

    /// Open, closed or unknown at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> OpenState {
        let local = now.with_timezone(&self.tz).naive_local();
        let minute = (local.hour() * 60 + local.minute()) as u16;
        OpenState::from_code(self.code_at(local.date(), minute))
    }

    /// An instant after `now` until which the state at `now` surely holds, for caching it: the next change
    /// found in the tables, but at most a day ahead and never past the zone's next change of UTC offset
    /// ([`super::steady_until`]). Within that span the offset is `now`'s, so a local time converts with it.
    pub fn steady_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let local = now.with_timezone(&self.tz).naive_local();
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let today = local.date();
        let offset = Duration::seconds(i64::from(
            self.tz
                .offset_from_utc_datetime(&now.naive_utc())
                .fix()
                .local_minus_utc(),
        ));
        let instant = |at: NaiveDateTime| (at - offset).and_utc().max(now);
        let mut current = self.code_at(today, minute);
        let mut change = None;
        'days: for ahead in 0..LOOK_AHEAD_DAYS {
            let date = today + Duration::days(ahead);
            for &(from, c) in self.day(date) {
                if ahead == 0 && from <= minute {
                    continue;
                }
                if c != current {
                    let at = date.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(from));
                    change = Some(instant(at));
                    break 'days;
                }
                current = c;
            }
        }
        let end = instant((today + Duration::days(LOOK_AHEAD_DAYS)).and_time(NaiveTime::MIN));
        super::steady_until(&self.tz, now, Some(change.unwrap_or(end)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is a failure with its message.
mod tests {
    use super::super::Hours;
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Hours with a shape, hand-written and generated like the fixture's (weekday spans, half hours,
    /// Saturdays, Sundays, `PH off`) plus comments, unknown, fallbacks and holiday hours.
    fn shaped() -> Vec<String> {
        let mut v: Vec<String> = [
            "24/7",
            "off",
            "Mo-Fr 08:00-18:00",
            "Mo-Fr 08:00-18:00; PH off",
            "Mo-Fr 08:00-12:00,13:00-17:30; Sa 10:00-14:00; PH off",
            "Mo-Su 00:00-24:00",
            "Mo-Fr 09:00-17:00; PH 10:00-12:00",
            "Mo-Fr,PH 10:00-16:00",
            "Tu-Th 09:00-17:00 open \"by appointment\"; Fr 09:00-12:00 unknown",
            "Mo-Fr 08:00-18:00 || \"call ahead\"",
            "Sa-Su off; Mo-Fr 07:30-19:00",
            "Fr-Mo 10:00-14:00",
            "10:00-18:00",
            "Mo-Fr 08:00-18:00; We off; PH closed \"holiday\"",
            "Mo 00:00-24:00; Tu 00:00-01:00",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed = 7u64;
        let mut below = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..40 {
            let open = [7, 8, 9, 10][below(4) as usize];
            let half = ["00", "30"][below(2) as usize];
            let mut h = format!("Mo-Fr {open:02}:{half}-{:02}:00", 17 + below(6));
            if below(2) == 0 {
                h.push_str(&format!(
                    "; Sa {:02}:00-{:02}:00",
                    9 + below(2),
                    13 + below(5)
                ));
            }
            if below(4) == 0 {
                h.push_str(&format!(
                    "; Su {:02}:00-{:02}:00",
                    10 + below(2),
                    14 + below(3)
                ));
            }
            if below(2) == 0 {
                h.push_str("; PH off");
            }
            v.push(h);
        }
        v
    }

    /// Instants every 47 minutes and 13 seconds over stretches with clock changes and public holidays, in
    /// both hemispheres.
    fn instants() -> Vec<DateTime<Utc>> {
        let stretches = [
            ("2026-03-26T00:00:00Z", 7),  // Europe's spring change (29 March)
            ("2026-10-22T00:00:00Z", 14), // Europe's and America's autumn changes
            ("2026-12-22T00:00:00Z", 14), // Christmas, New Year
            ("2027-03-24T00:00:00Z", 7),  // Easter 2027 (28 March) and Europe's spring change
            ("2026-04-01T00:00:00Z", 7),  // Australia's autumn change (5 April)
        ];
        let mut v = Vec::new();
        for (from, days) in stretches {
            let mut t = utc(from);
            let end = t + Duration::days(days);
            while t < end {
                v.push(t);
                t += Duration::minutes(47) + Duration::seconds(13);
            }
        }
        v
    }

    #[test]
    fn shapes_answer_what_the_crate_answers() {
        let zones = [
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
        ];
        let countries = ["DE", "FR", "US", "AU", "ZZ"];
        let instants = instants();
        let mut checked = 0;
        for (n, text) in shaped().iter().enumerate() {
            let expr = HoursExpr::parse(text).unwrap();
            let shapes = expr
                .day_shapes()
                .unwrap_or_else(|| panic!("{text:?} should have a shape"));
            let zone = zones[n % zones.len()];
            let country = countries[n % countries.len()];
            let hours = expr.in_zone(zone).unwrap().with_country(country);
            let week = shapes.in_place(zone, country).unwrap();
            for &t in &instants {
                assert_eq!(
                    week.state(t),
                    hours.state(t),
                    "{text:?} in {zone}, {country}, at {t}"
                );
                let bound = week.steady_until(t);
                assert!(bound > t, "{text:?} at {t}: bound {bound} is not after it");
                // Every change the crate sees before the bound keeps the state (it also sees a change of
                // comment alone); so a state kept until the bound is never stale.
                let mut at = t;
                while let Some(change) = hours.next_change(at).filter(|c| *c < bound) {
                    assert_eq!(
                        hours.state(change),
                        week.state(t),
                        "{text:?} in {zone}, {country}, at {t}: the state changes at {change}, before the bound {bound}"
                    );
                    at = change;
                }
                checked += 1;
            }
        }
        assert!(checked > 80_000, "only {checked} instants checked");
    }

    /// Around every change of UTC offset (clocks back, clocks forward, Lord Howe's half hour), the state
    /// found at an instant holds, minute by minute, until the bound, for the tables and for the crate's own
    /// evaluation (hours without a shape): a clock that goes back repeats an hour that a search on the
    /// wall clock from the instant never sees.
    #[test]
    fn a_state_holds_until_its_bound_across_clock_changes() {
        let changes = [
            ("America/New_York", "2026-11-01T06:00:00Z"),
            ("America/New_York", "2026-03-08T07:00:00Z"),
            ("Europe/Berlin", "2026-10-25T01:00:00Z"),
            ("Europe/Berlin", "2026-03-29T01:00:00Z"),
            ("Australia/Lord_Howe", "2026-04-04T15:00:00Z"),
        ];
        let texts = [
            "Su 00:00-01:30",
            "Mo-Su 02:15-23:00",
            "Mo-Su 01:00-01:30,03:00-04:00",
            "Sa-Su 00:30-02:30; PH off",
            "Mo-Fr 08:00-18:00",
        ];
        let mut minutes = 0;
        for (zone, at) in changes {
            let change = utc(at);
            let mut t = change - Duration::hours(3);
            while t < change + Duration::hours(3) {
                for text in texts {
                    let expr = HoursExpr::parse(text).unwrap();
                    let week = expr.day_shapes().unwrap().in_place(zone, "US").unwrap();
                    // The same hours without a shape (a date rule that never matches here).
                    let plain = format!("{text}; Feb 29 off");
                    let hours = Hours::parse(&plain, zone).unwrap().with_country("US");
                    assert!(HoursExpr::parse(&plain).unwrap().day_shapes().is_none());
                    let state = hours.state(t);
                    assert_eq!(week.state(t), state, "{text:?} in {zone} at {t}");
                    for bound in [week.steady_until(t), hours.steady_until(t)] {
                        // Within a minute of the change the bound may be `t` itself.
                        assert!(bound >= t, "{text:?} in {zone} at {t}: bound {bound}");
                        let mut m = t;
                        while m < bound && m < t + Duration::hours(4) {
                            assert_eq!(
                                hours.state(m),
                                state,
                                "{text:?} in {zone}: found at {t}, trusted until {bound}, changed at {m}"
                            );
                            m += Duration::minutes(1);
                            minutes += 1;
                        }
                    }
                }
                t += Duration::minutes(7) + Duration::seconds(11);
            }
        }
        assert!(minutes > 100_000, "only {minutes} minutes checked");
    }

    #[test]
    fn the_bound_is_the_change_itself_when_one_comes_within_the_week() {
        let expr = HoursExpr::parse("Mo-Fr 08:00-18:00").unwrap();
        let week = expr
            .day_shapes()
            .unwrap()
            .in_place("Europe/Berlin", "DE")
            .unwrap();
        let hours = expr.in_zone("Europe/Berlin").unwrap();
        // Friday 2026-12-04, 17:00 UTC = 18:00 Berlin: closed until Monday 08:00 (07:00 UTC).
        let t = utc("2026-12-04T16:30:00Z");
        assert_eq!(week.steady_until(t), utc("2026-12-04T17:00:00Z"));
        assert_eq!(Some(week.steady_until(t)), hours.next_change(t));
        assert_eq!(hours.steady_until(t), week.steady_until(t));
        // Closed from Friday evening to Monday morning: trusted for a day at most.
        let t = utc("2026-12-04T17:30:00Z");
        assert_eq!(week.steady_until(t), utc("2026-12-05T17:30:00Z"));
        // 24/7 never changes: a day too.
        let always = HoursExpr::parse("24/7").unwrap().day_shapes().unwrap();
        let always = always.in_place("UTC", "").unwrap();
        assert_eq!(
            always.steady_until(utc("2026-12-04T16:30:00Z")),
            utc("2026-12-05T16:30:00Z")
        );
        // Clocks go back in New York at 06:00Z on 1 November 2026: closed at 01:45 summer time, a state
        // trusted only until then, since 01:00-01:30 winter time is open again.
        let sunday = HoursExpr::parse("Su 00:00-01:30").unwrap();
        let t = utc("2026-11-01T05:45:00Z");
        let week = sunday
            .day_shapes()
            .unwrap()
            .in_place("America/New_York", "US")
            .unwrap();
        assert_eq!(week.state(t), OpenState::Closed);
        assert!(week.steady_until(t) <= utc("2026-11-01T06:00:00Z"));
        assert_eq!(week.state(utc("2026-11-01T06:10:00Z")), OpenState::Open);
    }

    #[test]
    fn public_holidays_use_the_holiday_table_of_a_known_country_only() {
        let expr = HoursExpr::parse("Mo-Fr 08:00-18:00; PH off").unwrap();
        let shapes = expr.day_shapes().unwrap();
        // 2026-12-25 is a Friday and a public holiday in Germany.
        let noon = utc("2026-12-25T11:00:00Z");
        assert_eq!(
            shapes.in_place("Europe/Berlin", "DE").unwrap().state(noon),
            OpenState::Closed
        );
        assert_eq!(
            shapes.in_place("Europe/Berlin", "ZZ").unwrap().state(noon),
            OpenState::Open
        );
        let plain = HoursExpr::parse("Mo-Fr 08:00-18:00")
            .unwrap()
            .day_shapes()
            .unwrap();
        assert!(plain.holiday.is_none());
        assert_eq!(
            plain.in_place("Europe/Berlin", "DE").unwrap().state(noon),
            OpenState::Open
        );
        assert_eq!(
            shapes.in_place("Mars/Olympus", "DE").unwrap_err(),
            HoursError::UnknownTimeZone("Mars/Olympus".into())
        );
    }

    #[test]
    fn hours_that_depend_on_more_than_the_weekday_have_no_shape() {
        for text in [
            "Mo-Fr 22:00-02:00",
            "Dec 24 off; Mo-Fr 08:00-18:00",
            "Jan-Mar Mo-Fr 08:00-16:00",
            "week 01-10 Mo 10:00-12:00",
            "2027 Mo-Fr 08:00-18:00",
            "Mo[1] 10:00-12:00",
            "Mo-Fr 08:00-18:00; SH off",
            "PH +1 day off; Mo-Fr 08:00-18:00",
            "sunrise-sunset",
            "Mo-Fr 10:00+",
            "Mo-Fr 10:00-16:00/01:30",
            "Mo-Fr 18:00-26:00",
            "PH 12:00-12:00",
            "Mo-Fr 09:00-17:00; PH 12:00-12:00",
            "Mo 00:00-00:00",
        ] {
            let expr = HoursExpr::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(expr.day_shapes(), None, "{text:?} has no shape");
        }
        // Evaluating them stays the crate's job, and still works.
        let hours = Hours::parse("Mo-Fr 22:00-02:00", "UTC").unwrap();
        assert_eq!(hours.state(utc("2026-12-05T01:00:00Z")), OpenState::Open);
    }

    #[test]
    fn shapes_that_are_not_well_formed_are_told_apart() {
        let good = HoursExpr::parse("Mo-Fr 08:00-18:00; PH off")
            .unwrap()
            .day_shapes()
            .unwrap();
        assert!(good.is_valid());
        let mut empty_day = good.clone();
        empty_day.ordinary[2].clear();
        let mut late_start = good.clone();
        late_start.ordinary[0][0].0 = 5;
        let mut out_of_order = good.clone();
        out_of_order.ordinary[0].push((100, 1));
        let mut past_midnight = good.clone();
        past_midnight.holiday.as_mut().unwrap()[6].push((1440, 0));
        let mut odd_state = good.clone();
        odd_state.ordinary[4][0].1 = 7;
        for bad in [
            empty_day,
            late_start,
            out_of_order,
            past_midnight,
            odd_state,
        ] {
            assert!(!bad.is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn shapes_read_back_from_their_encoding() {
        for text in shaped() {
            let shapes = HoursExpr::parse(&text).unwrap().day_shapes().unwrap();
            let bytes = postcard::to_stdvec(&shapes).unwrap();
            assert_eq!(postcard::from_bytes::<DayShapes>(&bytes).unwrap(), shapes);
            assert!(bytes.len() < 200, "{text:?}: {} bytes", bytes.len());
        }
    }
}
