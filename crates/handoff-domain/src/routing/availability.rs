//! When a rep can take leads: working hours in their own time zone (a weekly schedule plus
//! holidays) and out-of-office periods. Hours and dates are the rep's local ones, so a
//! schedule means the same thing on both sides of a DST change; an out-of-office period is
//! fixed to instants when the rules are read (a local date or date-time in the rep's zone,
//! or a time with an offset), so the router, the simulator and the SLA clock all see the
//! same exact start and end.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;

/// As written: `working_hours = { mon = ["09:00-12:30", "13:30-17:00"], ... }`.
pub type WeeklyScheduleSpec = BTreeMap<String, Vec<String>>;

/// An out-of-office entry as written. Each end is a local date (`"2026-12-20"`: the whole
/// day, both ends included), a local date-time (`"2026-12-21T13:00"`, in the rep's zone) or
/// a time with an offset (`"2026-12-21T13:00:00+01:00"`, `Z`); a date-time `to` is
/// excluded. A mixed entry means what each end says: `from` a date is that day's start,
/// `to` a date that day's end.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRangeSpec {
    pub from: String,
    pub to: String,
}

/// An out-of-office period: from the first instant (included) to the second (excluded).
pub type Period = (DateTime<Utc>, DateTime<Utc>);

/// Seconds in a day: shift bounds are seconds after the local midnight of the day the shift
/// starts, so an overnight shift ends after this.
const DAY: u32 = 86_400;

/// One working interval, belonging to the day it starts on: `start` included, `end`
/// excluded, in seconds after that day's local midnight (`end` up to a day later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shift {
    start: u32,
    end: u32,
}

/// A checked weekly schedule: per weekday (Monday = 0), the shifts that start that day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklySchedule([Vec<Shift>; 7]);

impl WeeklySchedule {
    /// Checks the written form; the error names the key (`working_hours.mon[0]`).
    pub fn parse(spec: &WeeklyScheduleSpec) -> Result<Self, (String, String)> {
        let mut days: [Vec<Shift>; 7] = Default::default();
        for (day, ranges) in spec {
            let index = DAYS.iter().position(|d| d == day).ok_or_else(|| {
                (
                    format!("working_hours.{day}"),
                    format!("unknown day `{day}`, expected one of {}", DAYS.join(", ")),
                )
            })?;
            for (i, range) in ranges.iter().enumerate() {
                let key = format!("working_hours.{day}[{i}]");
                days[index].push(parse_range(range).map_err(|m| (key, m))?);
            }
        }
        Ok(Self(days))
    }

    fn day(&self, date: NaiveDate) -> &[Shift] {
        &self.0[weekday_index(date.weekday())]
    }
}

/// An IANA zone name, checked.
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name.trim()).map_err(|_| {
        format!("invalid time zone `{name}`, expected an IANA name such as Europe/Berlin or America/New_York")
    })
}

/// Local dates, `"YYYY-MM-DD"`; the error names the entry (`holidays[2]`).
pub fn parse_holidays(dates: &[String]) -> Result<Vec<NaiveDate>, (String, String)> {
    dates
        .iter()
        .enumerate()
        .map(|(i, d)| parse_date(d).map_err(|m| (format!("holidays[{i}]"), m)))
        .collect()
}

fn parse_date(value: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d")
        .map_err(|_| format!("invalid date `{value}`, expected YYYY-MM-DD"))
}

/// One end of an out-of-office entry, as written.
enum Bound {
    Date(NaiveDate),
    Local(NaiveDateTime),
    Instant(DateTime<Utc>),
}

fn parse_bound(value: &str) -> Result<Bound, String> {
    let text = value.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Bound::Date(date));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Bound::Local(local));
        }
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| Bound::Instant(t.with_timezone(&Utc)))
        .map_err(|_| {
            format!("invalid date or time `{value}`, expected a local date (2026-12-21), a local date-time (2026-12-21T13:00) or a time with an offset (2026-12-21T13:00:00+01:00)")
        })
}

impl DateRangeSpec {
    /// The instants the entry covers, `from` included and `to` excluded, with local dates
    /// and date-times read in `zone`. The error names the key (`from`, `to`, or `""` for
    /// the entry) and what is wrong.
    pub fn resolve(&self, zone: Tz) -> Result<Period, (&'static str, String)> {
        let out_of_range = |value: &str| format!("`{value}` is out of range");
        let from = parse_bound(&self.from).map_err(|m| ("from", m))?;
        let to = parse_bound(&self.to).map_err(|m| ("to", m))?;
        if let (Bound::Date(from), Bound::Date(to)) = (&from, &to) {
            if to < from {
                return Err(("", "`to` is before `from`".to_owned()));
            }
        }
        let start = match from {
            Bound::Date(date) => first_instant(zone, date.and_time(NaiveTime::MIN)),
            Bound::Local(local) => first_instant(zone, local),
            Bound::Instant(t) => Some(t),
        }
        .ok_or_else(|| ("from", out_of_range(&self.from)))?;
        // A date `to` is included: the period ends when the next day begins.
        let end = match to {
            Bound::Date(date) => date
                .succ_opt()
                .and_then(|next| first_instant(zone, next.and_time(NaiveTime::MIN))),
            Bound::Local(local) => first_instant(zone, local),
            Bound::Instant(t) => Some(t),
        }
        .ok_or_else(|| ("to", out_of_range(&self.to)))?;
        if end <= start {
            return Err((
                "",
                format!(
                    "`to` must be after `from` ({} is not after {}; a date-time `to` is excluded, a date `to` included)",
                    self.to, self.from
                ),
            ));
        }
        Ok((start, end))
    }
}

/// A rep's checked availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    time_zone: Tz,
    /// `None`: no schedule, always working.
    weekly: Option<WeeklySchedule>,
    holidays: Vec<NaiveDate>,
    out_of_office: Vec<Period>,
}

/// Why a rep is not available now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    OutOfOffice,
    Holiday,
    OutsideWorkingHours,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::OutOfOffice => "out_of_office",
            Unavailable::Holiday => "holiday",
            Unavailable::OutsideWorkingHours => "outside_working_hours",
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Availability {
    /// Always available, in UTC.
    pub fn always() -> Self {
        Self {
            time_zone: Tz::UTC,
            weekly: None,
            holidays: Vec::new(),
            out_of_office: Vec::new(),
        }
    }

    /// From checked parts (the rules file resolves team defaults and calendars first).
    pub fn new(
        time_zone: Tz,
        weekly: Option<WeeklySchedule>,
        holidays: Vec<NaiveDate>,
        out_of_office: Vec<Period>,
    ) -> Self {
        Self {
            time_zone,
            weekly,
            holidays,
            out_of_office,
        }
    }

    /// Checks the written form; the error names the key and what is allowed.
    pub fn parse(
        time_zone: Option<&str>,
        weekly: Option<&WeeklyScheduleSpec>,
        holidays: &[String],
        out_of_office: &[DateRangeSpec],
    ) -> Result<Self, (String, String)> {
        let time_zone = match time_zone {
            None => Tz::UTC,
            Some(name) => parse_time_zone(name).map_err(|m| ("time_zone".to_owned(), m))?,
        };
        let weekly = weekly.map(WeeklySchedule::parse).transpose()?;
        let holidays = parse_holidays(holidays)?;
        let out_of_office = parse_out_of_office(out_of_office, time_zone)?;
        Ok(Self::new(time_zone, weekly, holidays, out_of_office))
    }

    /// Whether anything limits when the rep works (hours, holidays, out-of-office): without,
    /// a business-hours clock is the wall clock.
    pub fn has_schedule(&self) -> bool {
        *self
            != Self {
                time_zone: self.time_zone,
                ..Self::always()
            }
    }

    /// The zone local hours, dates and date-times are read in.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// `Ok` when the rep works at `now`; otherwise why not. A shift belongs to the day it
    /// starts: a holiday on that day cancels all of it, past midnight too.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), Unavailable> {
        if self
            .out_of_office
            .iter()
            .any(|(from, to)| *from <= now && now < *to)
        {
            return Err(Unavailable::OutOfOffice);
        }
        let local = self.local(now);
        let today = local.date();
        let holiday = |day: NaiveDate| self.holidays.contains(&day);
        let Some(weekly) = &self.weekly else {
            return if holiday(today) {
                Err(Unavailable::Holiday)
            } else {
                Ok(())
            };
        };
        let second = local.num_seconds_from_midnight();
        let in_today = weekly
            .day(today)
            .iter()
            .any(|s| s.start <= second && second < s.end);
        // The part after midnight of an overnight shift that started yesterday.
        let yesterday = today.pred_opt();
        let in_yesterdays = yesterday.is_some_and(|y| {
            weekly
                .day(y)
                .iter()
                .any(|s| s.end > DAY && second < s.end - DAY)
        });
        let yesterday_off = yesterday.is_some_and(holiday);
        if (in_today && !holiday(today)) || (in_yesterdays && !yesterday_off) {
            Ok(())
        } else if holiday(today) || in_yesterdays {
            Err(Unavailable::Holiday)
        } else {
            Err(Unavailable::OutsideWorkingHours)
        }
    }

    /// The rep's wall clock at `now`. Not `with_timezone`: at the ends of chrono's range (a
    /// simulation `--at` far away) the local time may not exist and it would panic; the UTC
    /// time stands in then.
    fn local(&self, now: DateTime<Utc>) -> NaiveDateTime {
        let utc = now.naive_utc();
        let offset = self.time_zone.offset_from_utc_datetime(&utc).fix();
        utc.checked_add_offset(offset).unwrap_or(utc)
    }

    /// The first moment after `after` at which [`Self::check`] may answer differently: the
    /// next start or end of a shift today (an overnight shift from yesterday ends today), an
    /// out-of-office start or end, a change of the zone's offset (the local clock jumps), or
    /// the next local midnight (the weekday and holidays change then). A simulation's clock
    /// goes from one to the next instead of minute by minute. `None` only at the end of
    /// chrono's time.
    pub fn next_change(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let utc = after.naive_utc();
        let offset = self.time_zone.offset_from_utc_datetime(&utc).fix();
        let local = utc.checked_add_offset(offset)?;
        let today = local.date();
        let mut candidates = reached_at(self.time_zone, today.succ_opt()?.and_time(NaiveTime::MIN));
        let midnight = candidates.first().copied()?;
        if let Some(weekly) = &self.weekly {
            let mut seconds: Vec<u32> = weekly
                .day(today)
                .iter()
                .flat_map(|s| [s.start, s.end])
                .filter(|s| *s < DAY)
                .collect();
            if let Some(yesterday) = today.pred_opt() {
                seconds.extend(
                    weekly
                        .day(yesterday)
                        .iter()
                        .filter(|s| s.end > DAY)
                        .map(|s| s.end - DAY),
                );
            }
            for second in seconds {
                let Some(time) = NaiveTime::from_num_seconds_from_midnight_opt(second, 0) else {
                    continue;
                };
                if time > local.time() {
                    candidates.extend(reached_at(self.time_zone, today.and_time(time)));
                }
            }
        }
        candidates.extend(
            self.out_of_office
                .iter()
                .flat_map(|(from, to)| [*from, *to])
                .filter(|t| *t > after && *t < midnight),
        );
        // A jump of the local clock (DST) changes the local time without crossing a boundary:
        // find it to the second (zones change offset on whole seconds).
        let offset_at = |seconds: i64| {
            DateTime::from_timestamp(seconds, 0).map(|t| {
                self.time_zone
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
            })
        };
        let (mut same, mut changed) = (after.timestamp(), midnight.timestamp());
        if offset_at(changed) != Some(offset) {
            while changed - same > 1 {
                let middle = same + (changed - same) / 2;
                if offset_at(middle) == Some(offset) {
                    same = middle;
                } else {
                    changed = middle;
                }
            }
            candidates.extend(DateTime::from_timestamp(changed, 0));
        }
        candidates.into_iter().filter(|t| *t > after).min()
    }
}

/// Every out-of-office entry resolved in `zone`; the error names the entry
/// (`out_of_office[1].to`).
pub fn parse_out_of_office(
    entries: &[DateRangeSpec],
    zone: Tz,
) -> Result<Vec<Period>, (String, String)> {
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry.resolve(zone).map_err(|(key, message)| {
                let at = if key.is_empty() {
                    format!("out_of_office[{i}]")
                } else {
                    format!("out_of_office[{i}].{key}")
                };
                (at, message)
            })
        })
        .collect()
}

/// When the local clock reads `local`: once, twice in a repeated hour, or (skipped in a
/// gap) when the gap ends.
fn reached_at(zone: Tz, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
    let mut naive = local;
    // DST gaps are an hour or two; a day bounds any zone's.
    for _ in 0..=24 * 60 {
        match zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => return vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(first, second) => {
                return vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
            }
            LocalResult::None => match naive.checked_add_signed(TimeDelta::minutes(1)) {
                Some(later) => naive = later,
                None => break,
            },
        }
    }
    Vec::new()
}

/// The first time the local clock reads `local` (in a gap: when the gap ends).
fn first_instant(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    reached_at(zone, local).into_iter().min()
}

fn weekday_index(day: Weekday) -> usize {
    day.num_days_from_monday() as usize
}

/// `"09:00-17:30"`; `"22:00-06:00"` runs past midnight into the next day; `"24:00"` is
/// the end of the day (`"00:00-24:00"`: all day).
fn parse_range(range: &str) -> Result<Shift, String> {
    let invalid = || {
        format!("invalid hours `{range}`, expected HH:MM-HH:MM such as 09:00-17:30, 22:00-06:00 (overnight) or 00:00-24:00 (all day)")
    };
    let (start, end) = range.split_once('-').ok_or_else(invalid)?;
    let second = |text: &str| {
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map(|t| t.num_seconds_from_midnight())
            .map_err(|_| invalid())
    };
    let start = second(start)?;
    let end = if end.trim() == "24:00" {
        DAY
    } else {
        second(end)?
    };
    if end == start {
        return Err(format!(
            "`{range}` starts and ends at the same time; a whole day is 00:00-24:00"
        ));
    }
    // Past midnight: the shift ends the next day.
    let end = if end < start { end + DAY } else { end };
    Ok(Shift { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin_nine_to_five() -> Availability {
        let weekly: WeeklyScheduleSpec = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| ((*d).to_owned(), vec!["09:00-17:00".to_owned()]))
            .collect();
        match Availability::parse(
            Some("Europe/Berlin"),
            Some(&weekly),
            &["2026-12-24".to_owned()],
            &[DateRangeSpec {
                from: "2026-08-03".into(),
                to: "2026-08-14".into(),
            }],
        ) {
            Ok(a) => a,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        match s.parse() {
            Ok(t) => t,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn working_hours_follow_the_reps_clock_across_dst() {
        let a = berlin_nine_to_five();
        // Winter (CET, UTC+1): 08:30 UTC is 09:30 in Berlin.
        assert_eq!(a.check(at("2026-01-14T08:30:00Z")), Ok(()));
        assert_eq!(
            a.check(at("2026-01-14T07:30:00Z")),
            Err(Unavailable::OutsideWorkingHours)
        );
        // Summer (CEST, UTC+2): 07:30 UTC is 09:30 in Berlin.
        assert_eq!(a.check(at("2026-07-15T07:30:00Z")), Ok(()));
        assert_eq!(
            a.check(at("2026-07-15T15:30:00Z")),
            Err(Unavailable::OutsideWorkingHours)
        );
        // The Monday after the spring change (29 March 2026): 07:00 UTC is 09:00 local.
        assert_eq!(a.check(at("2026-03-30T07:00:00Z")), Ok(()));
        assert_eq!(
            a.check(at("2026-03-30T06:59:00Z")),
            Err(Unavailable::OutsideWorkingHours)
        );
        // Weekend.
        assert_eq!(
            a.check(at("2026-01-17T10:00:00Z")),
            Err(Unavailable::OutsideWorkingHours)
        );
    }

    #[test]
    fn holidays_and_out_of_office_are_local_days() {
        let a = berlin_nine_to_five();
        assert_eq!(
            a.check(at("2026-12-24T10:00:00Z")),
            Err(Unavailable::Holiday)
        );
        assert_eq!(
            a.check(at("2026-08-10T10:00:00Z")),
            Err(Unavailable::OutOfOffice)
        );
        assert_eq!(
            a.check(at("2026-08-14T10:00:00Z")),
            Err(Unavailable::OutOfOffice)
        );
        assert_eq!(a.check(at("2026-08-17T10:00:00Z")), Ok(()));
    }

    #[test]
    fn the_ends_of_time_do_not_panic() {
        let a = berlin_nine_to_five();
        assert_eq!(
            a.check(DateTime::<Utc>::MAX_UTC),
            Err(Unavailable::OutsideWorkingHours)
        );
        let st_johns = Availability::parse(Some("America/St_Johns"), None, &[], &[]);
        assert_eq!(
            st_johns.map(|a| a.check(DateTime::<Utc>::MIN_UTC)),
            Ok(Ok(()))
        );
    }

    /// Walks the clock from change to change and checks, minute by minute, that `check`
    /// answers the same everywhere between two changes.
    fn assert_no_change_is_missed(a: &Availability, from: &str, days: i64) {
        let mut now = at(from);
        let end = now + TimeDelta::days(days);
        while now < end {
            let next = match a.next_change(now) {
                Some(next) => next,
                None => panic!("no change after {now}"),
            };
            assert!(next > now && next <= now + TimeDelta::days(1) + TimeDelta::hours(3));
            let answer = a.check(now);
            let mut t = now;
            while t < next {
                assert_eq!(
                    a.check(t),
                    answer,
                    "changed at {t}, between {now} and {next}"
                );
                t += TimeDelta::minutes(1);
            }
            now = next;
        }
    }

    #[test]
    fn next_change_finds_every_opening_closing_and_day() {
        let a = berlin_nine_to_five();
        assert_eq!(
            a.next_change(at("2026-11-30T20:00:00Z")),
            Some(at("2026-11-30T23:00:00Z")),
            "local midnight"
        );
        assert_eq!(
            a.next_change(at("2026-12-01T07:59:30Z")),
            Some(at("2026-12-01T08:00:00Z")),
            "09:00 in Berlin"
        );
        assert_eq!(
            a.next_change(at("2026-12-01T08:00:00Z")),
            Some(at("2026-12-01T16:00:00Z"))
        );
        // Across both DST changes, holidays and out-of-office.
        assert_no_change_is_missed(&a, "2026-03-27T00:00:00Z", 5);
        assert_no_change_is_missed(&a, "2026-10-23T00:00:00Z", 5);
        assert_no_change_is_missed(&a, "2026-12-22T00:00:00Z", 4);
        // Hours inside the DST gap and the repeated hour, in a zone that changes at midnight.
        let weekly: WeeklyScheduleSpec = ["sun", "mon", "sat"]
            .iter()
            .map(|d| {
                (
                    (*d).to_owned(),
                    vec!["00:30-02:30".to_owned(), "02:45-03:00".to_owned()],
                )
            })
            .collect();
        for zone in ["Europe/Berlin", "America/Santiago", "Australia/Lord_Howe"] {
            let a = match Availability::parse(Some(zone), Some(&weekly), &[], &[]) {
                Ok(a) => a,
                Err(e) => panic!("{e:?}"),
            };
            assert_no_change_is_missed(&a, "2026-03-27T00:00:00Z", 5);
            assert_no_change_is_missed(&a, "2026-04-03T00:00:00Z", 5);
            assert_no_change_is_missed(&a, "2026-09-04T00:00:00Z", 5);
            assert_no_change_is_missed(&a, "2026-10-02T00:00:00Z", 5);
            assert_no_change_is_missed(&a, "2026-10-23T00:00:00Z", 5);
        }
        assert_eq!(
            Availability::always().next_change(DateTime::<Utc>::MAX_UTC),
            None
        );
    }

    #[test]
    fn bad_input_names_the_key() {
        let err = Availability::parse(Some("Mars/Olympus"), None, &[], &[]).err();
        assert_eq!(err.map(|e| e.0), Some("time_zone".to_owned()));
        // `17:00-09:00` is an overnight shift now; an empty range is still refused.
        let weekly: WeeklyScheduleSpec =
            [("mon".to_owned(), vec!["09:00-09:00".to_owned()])].into();
        let err = Availability::parse(None, Some(&weekly), &[], &[]).err();
        assert_eq!(
            err,
            Some((
                "working_hours.mon[0]".to_owned(),
                "`09:00-09:00` starts and ends at the same time; a whole day is 00:00-24:00"
                    .to_owned()
            ))
        );
        for bad in ["24:00-06:00", "9-17", "09:00-24:01", "09:00"] {
            let weekly: WeeklyScheduleSpec = [("mon".to_owned(), vec![bad.to_owned()])].into();
            let err = Availability::parse(None, Some(&weekly), &[], &[]).err();
            assert_eq!(
                err.map(|e| e.0),
                Some("working_hours.mon[0]".to_owned()),
                "{bad}"
            );
        }
        let weekly: WeeklyScheduleSpec = [("monday".to_owned(), vec![])].into();
        let err = Availability::parse(None, Some(&weekly), &[], &[]).err();
        assert_eq!(err.map(|e| e.0), Some("working_hours.monday".to_owned()));
    }

    fn parsed(
        zone: &str,
        weekly: &[(&str, &[&str])],
        holidays: &[&str],
        out_of_office: &[(&str, &str)],
    ) -> Availability {
        let weekly: WeeklyScheduleSpec = weekly
            .iter()
            .map(|(day, ranges)| {
                (
                    (*day).to_owned(),
                    ranges.iter().map(|r| (*r).to_owned()).collect(),
                )
            })
            .collect();
        let holidays: Vec<String> = holidays.iter().map(|h| (*h).to_owned()).collect();
        let out_of_office: Vec<DateRangeSpec> = out_of_office
            .iter()
            .map(|(from, to)| DateRangeSpec {
                from: (*from).to_owned(),
                to: (*to).to_owned(),
            })
            .collect();
        let weekly = (!weekly.is_empty()).then_some(&weekly);
        match Availability::parse(Some(zone), weekly, &holidays, &out_of_office) {
            Ok(a) => a,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn out_of_office_takes_dates_local_times_and_offsets() {
        let a = parsed(
            "Europe/Berlin",
            &[],
            &[],
            &[
                // Whole local days, both included (summer: UTC+2).
                ("2026-08-03", "2026-08-14"),
                // An afternoon, local: 13:00 to 17:00 Berlin (winter: UTC+1), `to` excluded.
                ("2026-12-21T13:00", "2026-12-21T17:00"),
                // With offsets.
                ("2026-12-22T09:00:00+01:00", "2026-12-22T10:30:00Z"),
                // Mixed: from 15:00 local to the end of the 24th.
                ("2026-12-23T15:00", "2026-12-24"),
            ],
        );
        let away = Err(Unavailable::OutOfOffice);
        assert_eq!(a.check(at("2026-08-02T21:59:59Z")), Ok(()));
        assert_eq!(a.check(at("2026-08-02T22:00:00Z")), away);
        assert_eq!(a.check(at("2026-08-14T21:59:59Z")), away);
        assert_eq!(a.check(at("2026-08-14T22:00:00Z")), Ok(()));

        assert_eq!(a.check(at("2026-12-21T11:59:59Z")), Ok(()));
        assert_eq!(a.check(at("2026-12-21T12:00:00Z")), away);
        assert_eq!(a.check(at("2026-12-21T15:59:59Z")), away);
        assert_eq!(a.check(at("2026-12-21T16:00:00Z")), Ok(()));

        assert_eq!(a.check(at("2026-12-22T07:59:59Z")), Ok(()));
        assert_eq!(a.check(at("2026-12-22T08:00:00Z")), away);
        assert_eq!(a.check(at("2026-12-22T10:29:59Z")), away);
        assert_eq!(a.check(at("2026-12-22T10:30:00Z")), Ok(()));

        assert_eq!(a.check(at("2026-12-23T13:59:59Z")), Ok(()));
        assert_eq!(a.check(at("2026-12-23T14:00:00Z")), away);
        assert_eq!(a.check(at("2026-12-24T22:59:59Z")), away);
        assert_eq!(a.check(at("2026-12-24T23:00:00Z")), Ok(()));

        // The clock stops at each exact start and end, not only at midnight.
        assert_eq!(
            a.next_change(at("2026-12-21T09:00:00Z")),
            Some(at("2026-12-21T12:00:00Z"))
        );
        assert_eq!(
            a.next_change(at("2026-12-21T12:00:00Z")),
            Some(at("2026-12-21T16:00:00Z"))
        );
        assert_eq!(
            a.next_change(at("2026-12-22T07:00:00Z")),
            Some(at("2026-12-22T08:00:00Z"))
        );
        assert_no_change_is_missed(&a, "2026-12-20T00:00:00Z", 6);
        assert_no_change_is_missed(&a, "2026-08-01T00:00:00Z", 3);
    }

    #[test]
    fn a_local_out_of_office_time_in_a_dst_gap_starts_when_the_gap_ends() {
        // 29 March 2026, Berlin: 02:00 local does not exist, the clock jumps to 03:00.
        let a = parsed(
            "Europe/Berlin",
            &[],
            &[],
            &[("2026-03-29T02:30", "2026-03-29T04:00")],
        );
        assert_eq!(a.check(at("2026-03-29T00:59:59Z")), Ok(()));
        assert_eq!(
            a.check(at("2026-03-29T01:00:00Z")),
            Err(Unavailable::OutOfOffice)
        );
        assert_eq!(a.check(at("2026-03-29T02:00:00Z")), Ok(()));
    }

    #[test]
    fn bad_out_of_office_names_the_entry_and_end() {
        let err = |from: &str, to: &str| {
            Availability::parse(
                Some("Europe/Berlin"),
                None,
                &[],
                &[
                    DateRangeSpec {
                        from: "2026-01-01".into(),
                        to: "2026-01-02".into(),
                    },
                    DateRangeSpec {
                        from: from.into(),
                        to: to.into(),
                    },
                ],
            )
            .err()
            .map(|e| e.0)
        };
        assert_eq!(
            err("2026-12-21T25:00", "2026-12-22"),
            Some("out_of_office[1].from".to_owned())
        );
        assert_eq!(
            err("2026-12-21", "next week"),
            Some("out_of_office[1].to".to_owned())
        );
        assert_eq!(
            err("2026-12-22", "2026-12-21"),
            Some("out_of_office[1]".to_owned())
        );
        // A date-time `to` is excluded: an empty period is refused.
        assert_eq!(
            err("2026-12-21T13:00", "2026-12-21T13:00"),
            Some("out_of_office[1]".to_owned())
        );
        assert_eq!(
            err("2026-12-21T13:00", "2026-12-21T12:00:00Z"),
            Some("out_of_office[1]".to_owned())
        );
        // A single day, both ends the same date, is a whole day.
        assert_eq!(err("2026-12-21", "2026-12-21"), None);
    }

    #[test]
    fn overnight_shifts_belong_to_the_day_they_start() {
        // Monday 7 and Tuesday 8 December 2026 nights; the Tuesday is a holiday.
        let a = parsed(
            "Europe/Berlin",
            &[("mon", &["22:00-06:00"]), ("tue", &["22:00-06:00"])],
            &["2026-12-08"],
            &[],
        );
        let outside = Err(Unavailable::OutsideWorkingHours);
        assert_eq!(a.check(at("2026-12-07T20:59:59Z")), outside);
        assert_eq!(a.check(at("2026-12-07T21:00:00Z")), Ok(()), "Mon 22:00");
        assert_eq!(a.check(at("2026-12-07T23:30:00Z")), Ok(()), "Tue 00:30");
        // Tuesday is a holiday, but Monday's shift is Monday's.
        assert_eq!(a.check(at("2026-12-08T04:59:59Z")), Ok(()), "Tue 05:59:59");
        assert_eq!(
            a.check(at("2026-12-08T05:00:00Z")),
            Err(Unavailable::Holiday)
        );
        // Tuesday's own shift is cancelled by the holiday, past midnight too.
        assert_eq!(
            a.check(at("2026-12-08T21:30:00Z")),
            Err(Unavailable::Holiday)
        );
        assert_eq!(
            a.check(at("2026-12-09T02:00:00Z")),
            Err(Unavailable::Holiday),
            "Wed 03:00, in Tuesday's shift"
        );
        assert_eq!(a.check(at("2026-12-09T05:00:00Z")), outside, "Wed 06:00");
        assert_eq!(a.check(at("2026-12-09T21:00:00Z")), outside, "Wed 22:00");

        assert_eq!(
            a.next_change(at("2026-12-07T20:00:00Z")),
            Some(at("2026-12-07T21:00:00Z"))
        );
        assert_eq!(
            a.next_change(at("2026-12-07T21:00:00Z")),
            Some(at("2026-12-07T23:00:00Z")),
            "local midnight"
        );
        assert_eq!(
            a.next_change(at("2026-12-07T23:00:00Z")),
            Some(at("2026-12-08T05:00:00Z")),
            "the end of Monday's shift, on Tuesday"
        );
        assert_no_change_is_missed(&a, "2026-12-06T00:00:00Z", 4);
        // Across DST, in zones that change at 02:00, at midnight and by half an hour.
        for zone in ["Europe/Berlin", "America/Santiago", "Australia/Lord_Howe"] {
            let a = parsed(
                zone,
                &[
                    ("fri", &["20:00-02:30"]),
                    ("sat", &["23:30-01:00", "01:30-02:15"]),
                    ("sun", &["22:00-24:00"]),
                ],
                &[],
                &[],
            );
            for from in [
                "2026-03-26T00:00:00Z",
                "2026-04-02T00:00:00Z",
                "2026-09-03T00:00:00Z",
                "2026-10-01T00:00:00Z",
                "2026-10-22T00:00:00Z",
            ] {
                assert_no_change_is_missed(&a, from, 5);
            }
        }
    }

    #[test]
    fn all_day_is_midnight_to_midnight() {
        let a = parsed("Europe/Berlin", &[("sat", &["00:00-24:00"])], &[], &[]);
        // Saturday 12 December 2026, Berlin (UTC+1).
        assert_eq!(
            a.check(at("2026-12-11T22:59:59Z")),
            Err(Unavailable::OutsideWorkingHours)
        );
        assert_eq!(a.check(at("2026-12-11T23:00:00Z")), Ok(()));
        assert_eq!(a.check(at("2026-12-12T22:59:59Z")), Ok(()));
        assert_eq!(
            a.check(at("2026-12-12T23:00:00Z")),
            Err(Unavailable::OutsideWorkingHours)
        );
        assert_eq!(
            a.next_change(at("2026-12-12T10:00:00Z")),
            Some(at("2026-12-12T23:00:00Z"))
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_range() -> impl Strategy<Value = String> {
            // Quarter hours, so starts and ends meet DST gaps and each other.
            (0_u32..96, 1_u32..96).prop_map(|(start, length)| {
                let end = (start + length) % 96;
                let hm = |q: u32| format!("{:02}:{:02}", q / 4, (q % 4) * 15);
                let end = if end == 0 {
                    "24:00".to_owned()
                } else {
                    hm(end)
                };
                format!("{}-{end}", hm(start))
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Whatever the shifts (overnight, all day, overlapping) and out-of-office
            /// periods (local or with an offset), `check` never changes its answer between
            /// two `next_change`s: a simulation and a business-hours clock see every change.
            #[test]
            fn next_change_never_misses_a_change(
                zone in prop::sample::select(vec!["Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata"]),
                // Weeks with a DST change in one of the zones.
                start in prop::sample::select(vec!["2026-03-27", "2026-04-03", "2026-09-04", "2026-10-23"]),
                fri in prop::collection::vec(any_range(), 0..3),
                sat in prop::collection::vec(any_range(), 0..3),
                sun in prop::collection::vec(any_range(), 0..2),
                away in prop::collection::vec((0_i64..4 * 96, 1_i64..160, any::<bool>()), 0..3),
                holiday in any::<bool>(),
            ) {
                let weekly: WeeklyScheduleSpec = [("fri", fri), ("sat", sat), ("sun", sun)]
                    .into_iter()
                    .map(|(day, ranges)| (day.to_owned(), ranges))
                    .collect();
                let Ok(first) = NaiveDate::parse_from_str(start, "%Y-%m-%d") else {
                    return Err(TestCaseError::fail("start"));
                };
                let midnight = first.and_time(NaiveTime::MIN);
                let out_of_office: Vec<DateRangeSpec> = away
                    .iter()
                    .map(|(from, quarters, with_offset)| {
                        let from = midnight + TimeDelta::minutes(from * 15);
                        let to = from + TimeDelta::minutes(quarters * 15);
                        let write = |t: NaiveDateTime| if *with_offset {
                            format!("{}+01:00", t.format("%Y-%m-%dT%H:%M:%S"))
                        } else {
                            t.format("%Y-%m-%dT%H:%M").to_string()
                        };
                        DateRangeSpec { from: write(from), to: write(to) }
                    })
                    .collect();
                let holidays: Vec<String> = if holiday {
                    vec![first.succ_opt().map(|d| d.to_string()).unwrap_or_default()]
                } else {
                    Vec::new()
                };
                match Availability::parse(Some(zone), Some(&weekly), &holidays, &out_of_office) {
                    Ok(a) => assert_no_change_is_missed(&a, &format!("{start}T00:00:00Z"), 4),
                    // A local period inside a DST gap can be empty: refused, with its key.
                    Err((key, _)) => prop_assert!(key.starts_with("out_of_office["), "{key}"),
                }
            }
        }
    }

    /// Team defaults, calendars and overnight shifts as the rules file writes them.
    mod rules_file {
        use super::*;
        use crate::routing::{ModelError, RoutingConfig, RoutingModel};
        use serde_json::{json, Value};

        fn model(value: Value) -> Result<RoutingModel, Vec<ModelError>> {
            let config: RoutingConfig = match serde_json::from_value(value) {
                Ok(c) => c,
                Err(e) => panic!("config: {e}"),
            };
            RoutingModel::new(config, "test")
        }

        fn weekdays(hours: &str) -> Value {
            json!({"mon": [hours], "tue": [hours], "wed": [hours], "thu": [hours], "fri": [hours]})
        }

        fn check(model: &RoutingModel, rep: &str, time: &str) -> Result<(), Unavailable> {
            match model.rep_availability(rep) {
                Some(a) => a.check(at(time)),
                None => panic!("no rep {rep}"),
            }
        }

        fn error_keys(value: Value) -> Vec<String> {
            match model(value) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.into_iter().map(|e| e.key).collect(),
            }
        }

        #[test]
        fn team_defaults_fill_in_each_key_a_rep_does_not_set() {
            let m = match model(json!({
                "calendars": {"de": {"holidays": ["2026-12-24", "2026-12-25", "2026-12-26"]}},
                "teams": [{
                    "id": "emea",
                    "members": ["ana", "bruno", "chiara"],
                    "time_zone": "Europe/Berlin",
                    "working_hours": weekdays("09:00-17:00"),
                    "holiday_calendar": "de",
                }],
                "reps": [
                    {"id": "ana", "capacity": 1},
                    {"id": "bruno", "capacity": 1, "time_zone": "America/New_York"},
                    {"id": "chiara", "capacity": 1, "working_hours": {"sat": ["10:00-14:00"]}, "holidays": ["2026-12-12"]},
                ],
                "rules": [{"name": "all", "team": "emea"}],
            })) {
                Ok(m) => m,
                Err(e) => panic!("{e:?}"),
            };
            let outside = Err(Unavailable::OutsideWorkingHours);
            // ana: everything from the team. Monday 7 December, 09:30 Berlin.
            assert_eq!(check(&m, "ana", "2026-12-07T08:30:00Z"), Ok(()));
            assert_eq!(check(&m, "ana", "2026-12-07T07:30:00Z"), outside);
            assert_eq!(
                check(&m, "ana", "2026-12-24T10:00:00Z"),
                Err(Unavailable::Holiday)
            );
            // bruno: the team's hours on his own clock (09:30 in New York).
            assert_eq!(check(&m, "bruno", "2026-12-07T14:30:00Z"), Ok(()));
            assert_eq!(check(&m, "bruno", "2026-12-07T08:30:00Z"), outside);
            // chiara: her own hours and dates, the team's zone and calendar on top.
            assert_eq!(check(&m, "chiara", "2026-12-19T09:30:00Z"), Ok(()));
            assert_eq!(check(&m, "chiara", "2026-12-07T08:30:00Z"), outside);
            assert_eq!(
                check(&m, "chiara", "2026-12-12T09:30:00Z"),
                Err(Unavailable::Holiday)
            );
            assert_eq!(
                check(&m, "chiara", "2026-12-26T09:30:00Z"),
                Err(Unavailable::Holiday),
                "the team's calendar"
            );
            assert!(m.warnings().is_empty(), "{:?}", m.warnings());
        }

        #[test]
        fn a_rep_in_two_teams_with_different_defaults_is_refused() {
            let file = |ana: Value, us_zone: &str| {
                json!({
                    "teams": [
                        {"id": "emea", "members": ["ana"], "time_zone": "Europe/Berlin", "working_hours": weekdays("09:00-17:00")},
                        {"id": "us", "members": ["ana", "bob"], "time_zone": us_zone},
                    ],
                    "reps": [ana, {"id": "bob", "capacity": 1}],
                    "rules": [{"name": "emea", "team": "emea", "when": {"field": "company.country", "equals": "DE"}}, {"name": "us", "team": "us"}],
                })
            };
            let errors = match model(file(
                json!({"id": "ana", "capacity": 1}),
                "America/New_York",
            )) {
                Ok(_) => panic!("accepted"),
                Err(errors) => errors,
            };
            assert_eq!(
                errors,
                vec![ModelError {
                    key: "reps[ana].time_zone".to_owned(),
                    message: "rep `ana` sets no `time_zone` and is in teams emea, us whose `time_zone` differ: set the rep's own, or make the teams' the same".to_owned(),
                }]
            );
            // Her own zone settles it; so do teams that agree. Hours only one team sets
            // are that team's.
            assert!(model(file(
                json!({"id": "ana", "capacity": 1, "time_zone": "Europe/Lisbon"}),
                "America/New_York"
            ))
            .is_ok());
            let m = match model(file(json!({"id": "ana", "capacity": 1}), "Europe/Berlin")) {
                Ok(m) => m,
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(check(&m, "ana", "2026-12-07T08:30:00Z"), Ok(()));
            assert_eq!(
                check(&m, "ana", "2026-12-07T16:30:00Z"),
                Err(Unavailable::OutsideWorkingHours)
            );
        }

        #[test]
        fn calendars_and_team_defaults_name_the_key_at_fault() {
            let file = |team: Value, rep: Value| {
                let mut team_entry = json!({"id": "emea", "members": ["ana"]});
                let mut rep_entry = json!({"id": "ana", "capacity": 1});
                for (entry, extra) in [(&mut team_entry, team), (&mut rep_entry, rep)] {
                    if let (Some(entry), Value::Object(extra)) = (entry.as_object_mut(), extra) {
                        entry.extend(extra);
                    }
                }
                json!({
                    "calendars": {"de": {"holidays": ["2026-12-24"]}, "bad": {"holidays": ["2026-12-24", "24.12.2026"]}},
                    "teams": [team_entry],
                    "reps": [rep_entry],
                    "rules": [{"name": "all", "team": "emea"}],
                })
            };
            let calendar_error = "calendars[bad].holidays[1]".to_owned();
            assert_eq!(
                error_keys(file(json!({}), json!({"holiday_calendar": "fr"}))),
                vec![
                    calendar_error.clone(),
                    "reps[ana].holiday_calendar".to_owned()
                ]
            );
            assert_eq!(
                error_keys(file(json!({"holiday_calendar": "fr"}), json!({}))),
                vec![
                    calendar_error.clone(),
                    "teams[emea].holiday_calendar".to_owned()
                ]
            );
            assert_eq!(
                error_keys(file(json!({"time_zone": "Mars/Olympus"}), json!({}))),
                vec![calendar_error.clone(), "teams[emea].time_zone".to_owned()]
            );
            assert_eq!(
                error_keys(file(
                    json!({"working_hours": {"mon": ["09:00-09:00"]}}),
                    json!({})
                )),
                vec![
                    calendar_error.clone(),
                    "teams[emea].working_hours.mon[0]".to_owned()
                ]
            );
            assert_eq!(
                error_keys(file(json!({"holidays": ["soon"]}), json!({}))),
                vec![calendar_error.clone(), "teams[emea].holidays[0]".to_owned()]
            );
            assert_eq!(
                error_keys(file(
                    json!({}),
                    json!({"out_of_office": [{"from": "2026-12-21T13:00", "to": "2026-12-21T12:00"}]})
                )),
                vec![calendar_error, "reps[ana].out_of_office[0]".to_owned()]
            );
        }

        /// The rules-file example in README.md ("Working hours, holidays and out-of-office")
        /// loads and means what the README says.
        #[test]
        fn the_readme_example_loads_and_means_what_it_says() {
            let readme = include_str!("../../../../README.md");
            let Some(block) = readme
                .split("```toml")
                .skip(1)
                .filter_map(|rest| rest.split("```").next())
                .find(|block| block.contains("holiday_calendar = \"de\""))
            else {
                panic!("no README example with holiday_calendar");
            };
            // The README shows only the keys it explains; a rule makes it a whole file.
            let file = format!("{block}\n[[routing.rules]]\nname = \"all\"\nteam = \"emea\"\n");
            #[derive(serde::Deserialize)]
            struct RulesFile {
                routing: RoutingConfig,
            }
            let config = match toml::from_str::<RulesFile>(&file) {
                Ok(f) => f.routing,
                Err(e) => panic!("{e}\n{file}"),
            };
            let m = match RoutingModel::new(config, "readme") {
                Ok(m) => m,
                Err(e) => panic!("{e:?}"),
            };
            let away = Err(Unavailable::OutOfOffice);
            // ana: the team's Berlin hours, away 13:00-17:00 on Monday 21 December.
            assert_eq!(check(&m, "ana", "2026-12-21T11:59:00Z"), Ok(()));
            assert_eq!(check(&m, "ana", "2026-12-21T12:00:00Z"), away);
            assert_eq!(check(&m, "ana", "2026-12-21T15:59:00Z"), away);
            // Back at 17:00 Berlin, which is when her day ends anyway.
            assert_eq!(
                m.rep_availability("ana")
                    .and_then(|a| a.next_change(at("2026-12-21T12:00:00Z"))),
                Some(at("2026-12-21T16:00:00Z"))
            );
            assert_eq!(
                check(&m, "ana", "2026-12-24T10:00:00Z"),
                Err(Unavailable::Holiday)
            );
            assert_eq!(check(&m, "ana", "2026-12-30T15:59:00Z"), away);
            // bruno: the team's hours on London's clock (09:30 London is 09:30 UTC).
            assert_eq!(check(&m, "bruno", "2026-12-07T09:30:00Z"), Ok(()));
            assert_eq!(
                check(&m, "bruno", "2026-12-07T08:30:00Z"),
                Err(Unavailable::OutsideWorkingHours)
            );
            // night: Sunday 22:00 to Monday 06:00 Berlin, and on to Friday morning.
            assert_eq!(check(&m, "night", "2026-12-06T21:30:00Z"), Ok(()));
            assert_eq!(check(&m, "night", "2026-12-11T04:59:00Z"), Ok(()));
            assert_eq!(
                check(&m, "night", "2026-12-11T21:30:00Z"),
                Err(Unavailable::OutsideWorkingHours)
            );
        }
    }
}
