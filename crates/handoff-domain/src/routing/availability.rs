//! When a rep can take leads: working hours in their own time zone (a weekly schedule plus
//! holidays) and out-of-office date ranges. Dates and times are the rep's local ones, so
//! a schedule means the same thing on both sides of a DST change.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;

/// As written: `working_hours = { mon = ["09:00-12:30", "13:30-17:00"], ... }`.
pub type WeeklyScheduleSpec = BTreeMap<String, Vec<String>>;

/// `{ from = "2026-12-20", to = "2027-01-02" }`, both days included.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRangeSpec {
    pub from: String,
    pub to: String,
}

/// A rep's checked availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    time_zone: Tz,
    /// Per weekday (Monday = 0), the open intervals; `None`: no schedule, always working.
    weekly: Option<[Vec<(NaiveTime, NaiveTime)>; 7]>,
    holidays: Vec<NaiveDate>,
    out_of_office: Vec<(NaiveDate, NaiveDate)>,
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

    /// Checks the written form; the error names the key and what is allowed.
    pub fn parse(
        time_zone: Option<&str>,
        weekly: Option<&WeeklyScheduleSpec>,
        holidays: &[String],
        out_of_office: &[DateRangeSpec],
    ) -> Result<Self, (String, String)> {
        let time_zone = match time_zone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                (
                    "time_zone".to_owned(),
                    format!("invalid time zone `{name}`, expected an IANA name such as Europe/Berlin or America/New_York"),
                )
            })?,
        };
        let weekly = match weekly {
            None => None,
            Some(spec) => {
                let mut days: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
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
                Some(days)
            }
        };
        let date = |key: String, value: &str| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|_| (key, format!("invalid date `{value}`, expected YYYY-MM-DD")))
        };
        let holidays = holidays
            .iter()
            .enumerate()
            .map(|(i, d)| date(format!("holidays[{i}]"), d))
            .collect::<Result<_, _>>()?;
        let mut ranges = Vec::new();
        for (i, range) in out_of_office.iter().enumerate() {
            let from = date(format!("out_of_office[{i}].from"), &range.from)?;
            let to = date(format!("out_of_office[{i}].to"), &range.to)?;
            if to < from {
                return Err((
                    format!("out_of_office[{i}]"),
                    "`to` is before `from`".to_owned(),
                ));
            }
            ranges.push((from, to));
        }
        Ok(Self {
            time_zone,
            weekly,
            holidays,
            out_of_office: ranges,
        })
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

    /// `Ok` when the rep works at `now`; otherwise why not.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), Unavailable> {
        // Not `with_timezone`: at the ends of chrono's range (a simulation `--at` far away)
        // the local time may not exist and it would panic; the UTC time stands in then.
        let utc = now.naive_utc();
        let offset = self.time_zone.offset_from_utc_datetime(&utc).fix();
        let local = utc.checked_add_offset(offset).unwrap_or(utc);
        let today = local.date();
        if self
            .out_of_office
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&today))
        {
            return Err(Unavailable::OutOfOffice);
        }
        if self.holidays.contains(&today) {
            return Err(Unavailable::Holiday);
        }
        if let Some(weekly) = &self.weekly {
            let day = weekday_index(local.weekday());
            let time = local.time();
            if !weekly[day]
                .iter()
                .any(|(start, end)| *start <= time && time < *end)
            {
                return Err(Unavailable::OutsideWorkingHours);
            }
        }
        Ok(())
    }

    /// The first moment after `after` at which [`Self::check`] may answer differently: the
    /// next start or end of a working interval today, a change of the zone's offset (the
    /// local clock jumps), or the next local midnight (the weekday, holidays and
    /// out-of-office change then). A simulation's clock goes from one to the next instead
    /// of minute by minute. `None` only at the end of chrono's time.
    pub fn next_change(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let utc = after.naive_utc();
        let offset = self.time_zone.offset_from_utc_datetime(&utc).fix();
        let local = utc.checked_add_offset(offset)?;
        let today = local.date();
        let mut candidates = self.reached_at(today.succ_opt()?.and_time(NaiveTime::MIN));
        let midnight = candidates.first().copied()?;
        if let Some(weekly) = &self.weekly {
            for (start, end) in &weekly[weekday_index(local.weekday())] {
                for time in [start, end] {
                    if *time > local.time() {
                        candidates.extend(self.reached_at(today.and_time(*time)));
                    }
                }
            }
        }
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

    /// When the local clock reads `local`: once, twice in a repeated hour, or (skipped in a
    /// gap) when the gap ends.
    fn reached_at(&self, local: NaiveDateTime) -> Vec<DateTime<Utc>> {
        let mut naive = local;
        // DST gaps are an hour or two; a day bounds any zone's.
        for _ in 0..=24 * 60 {
            match self.time_zone.from_local_datetime(&naive) {
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
}

fn weekday_index(day: Weekday) -> usize {
    day.num_days_from_monday() as usize
}

fn parse_range(range: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let invalid = || format!("invalid hours `{range}`, expected HH:MM-HH:MM such as 09:00-17:30");
    let (start, end) = range.split_once('-').ok_or_else(invalid)?;
    let start = NaiveTime::parse_from_str(start.trim(), "%H:%M").map_err(|_| invalid())?;
    let end = NaiveTime::parse_from_str(end.trim(), "%H:%M").map_err(|_| invalid())?;
    if end <= start {
        return Err(format!("`{range}` ends before it starts"));
    }
    Ok((start, end))
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
        let weekly: WeeklyScheduleSpec =
            [("mon".to_owned(), vec!["17:00-09:00".to_owned()])].into();
        let err = Availability::parse(None, Some(&weekly), &[], &[]).err();
        assert_eq!(
            err,
            Some((
                "working_hours.mon[0]".to_owned(),
                "`17:00-09:00` ends before it starts".to_owned()
            ))
        );
        let weekly: WeeklyScheduleSpec = [("monday".to_owned(), vec![])].into();
        let err = Availability::parse(None, Some(&weekly), &[], &[]).err();
        assert_eq!(err.map(|e| e.0), Some("working_hours.monday".to_owned()));
    }
}
