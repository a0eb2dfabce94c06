//! The SLAs handoff keeps the clock on: the first touch of an assignment, and the
//! disposition (what became of the lead) after it; when each is due on its clock (wall, or
//! the rep's working hours), when reminders go out, and which outcomes stop the clocks.

use chrono::{DateTime, Duration, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::disposition::Outcome;
use crate::routing::Availability;

/// Default first-touch window: the five minutes that decide whether a lead qualifies.
pub const DEFAULT_FIRST_TOUCH_SECONDS: u32 = 300;

/// Default disposition window: the 48 hours sales–marketing agreements write down.
pub const DEFAULT_DISPOSITION_SECONDS: u32 = 48 * 3600;

/// Default reminders: halfway to the deadline and at 80% of the window.
pub const DEFAULT_REMINDER_FRACTIONS: [f64; 2] = [0.5, 0.8];

/// proto: `handoff.v1.Sla`. Which promise an SLA event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Sla {
    /// A rep contacts the lead (a queue wait, attempt 0, counts here too).
    #[default]
    FirstTouch,
    /// Sales says what became of the lead: accepted, converted, rejected, recycled.
    Disposition,
}

impl Sla {
    pub const ALL: [Sla; 2] = [Sla::FirstTouch, Sla::Disposition];

    /// Metric label and key-name form.
    pub fn as_str(self) -> &'static str {
        match self {
            Sla::FirstTouch => "first_touch",
            Sla::Disposition => "disposition",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// What counts as time on an SLA's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    /// Every second counts.
    #[default]
    Wall,
    /// Only the assignee's working hours count (their zone, weekly schedule, holidays,
    /// out-of-office).
    BusinessHours,
}

/// When the disposition clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispositionStart {
    /// At the lead's first touch (a lead accepted at once is disposed at once).
    #[default]
    FirstTouch,
    /// At the assignment.
    Assignment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaPolicy {
    pub first_touch_seconds: u32,
    pub first_touch_clock: SlaClock,
    pub disposition_seconds: u32,
    pub disposition_clock: SlaClock,
    pub disposition_from: DispositionStart,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            first_touch_seconds: DEFAULT_FIRST_TOUCH_SECONDS,
            first_touch_clock: SlaClock::Wall,
            disposition_seconds: DEFAULT_DISPOSITION_SECONDS,
            disposition_clock: SlaClock::Wall,
            disposition_from: DispositionStart::FirstTouch,
        }
    }
}

impl SlaPolicy {
    /// When the first touch of an assignment made at `assigned_at` is due on the wall
    /// clock; a team's own window, when it has one, wins over the default.
    pub fn due_at(&self, assigned_at: DateTime<Utc>, team_seconds: Option<u32>) -> DateTime<Utc> {
        let seconds = team_seconds.unwrap_or(self.first_touch_seconds);
        // `assigned_at` may come off a topic: a time near the end of chrono's range must
        // not overflow (`+` panics), it is due at the end of time instead.
        assigned_at
            .checked_add_signed(Duration::seconds(i64::from(seconds)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// When the first touch of an assignment to a rep with `availability` is due, on the
    /// team's first-touch clock (the rules file's `first_touch_clock`, else the policy's;
    /// an unknown rep's clock is the wall's).
    pub fn first_touch_due_at(
        &self,
        assigned_at: DateTime<Utc>,
        team: TeamSla,
        availability: Option<&Availability>,
    ) -> DateTime<Utc> {
        let seconds = team.first_touch_seconds.unwrap_or(self.first_touch_seconds);
        due_on(
            self.first_touch_clock(team),
            assigned_at,
            seconds,
            availability,
        )
    }

    /// The first-touch clock of a team: its own (rules file), else the policy's.
    pub fn first_touch_clock(&self, team: TeamSla) -> SlaClock {
        team.first_touch_clock.unwrap_or(self.first_touch_clock)
    }

    /// The first-touch clock an assignment to `rep` at `assigned_at` starts, with its due
    /// time and the words an explanation gives it.
    pub fn first_touch(
        &self,
        assigned_at: DateTime<Utc>,
        team: TeamSla,
        rep: &str,
        availability: Option<&Availability>,
    ) -> FirstTouchClock {
        let seconds = team.first_touch_seconds.unwrap_or(self.first_touch_seconds);
        let clock = self.first_touch_clock(team);
        let due_at = self.first_touch_due_at(assigned_at, team, availability);
        let counted = match (clock, availability) {
            (SlaClock::BusinessHours, Some(hours)) if hours.has_schedule() => {
                format!("of {rep}'s working hours")
            }
            // No hours known for the rep: every second counts, whatever the policy.
            (SlaClock::BusinessHours, _) => {
                format!("on the wall clock ({rep} has no working hours in the rules)")
            }
            (SlaClock::Wall, _) => "on the wall clock".to_owned(),
        };
        FirstTouchClock {
            clock,
            started_at: assigned_at,
            due_at,
            summary: format!(
                "first touch due by {}: {} {counted}, counted from the assignment",
                due_at.format("%Y-%m-%d %H:%M:%S UTC"),
                window_words(seconds)
            ),
        }
    }

    /// What an explanation says of a lead that waits in a queue: its first-touch clock runs
    /// on the wall clock from its arrival (nobody's working hours apply yet), due at `due_at`.
    pub fn waiting_clock_words(&self, team: TeamSla, due_at: DateTime<Utc>) -> String {
        let seconds = team.first_touch_seconds.unwrap_or(self.first_touch_seconds);
        format!(
            "first-touch clock running while it waits: {} on the wall clock from its arrival, due by {} (a breach is recorded then if it still waits)",
            window_words(seconds),
            due_at.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }

    /// When the disposition of a lead whose clock started at `start` is due.
    pub fn disposition_due_at(
        &self,
        start: DateTime<Utc>,
        team_seconds: Option<u32>,
        availability: Option<&Availability>,
    ) -> DateTime<Utc> {
        let seconds = team_seconds.unwrap_or(self.disposition_seconds);
        due_on(self.disposition_clock, start, seconds, availability)
    }

    pub fn clock(&self, sla: Sla) -> SlaClock {
        match sla {
            Sla::FirstTouch => self.first_touch_clock,
            Sla::Disposition => self.disposition_clock,
        }
    }
}

/// A deadline and the reminders before it: (fraction of the window in thousandths, when).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockPlan {
    pub due: DateTime<Utc>,
    pub reminders: Vec<(u32, DateTime<Utc>)>,
}

/// The clocks an assignment starts beside its first-touch deadline: the reminders before
/// it, and the disposition clock when the policy starts it at the assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignmentClocks {
    pub first_touch_reminders: Vec<(u32, DateTime<Utc>)>,
    pub disposition: Option<ClockPlan>,
}

/// The SLA policy with its reminders: what every clock an assignment starts is computed
/// from, by the router when it commits an assignment and by the SLA tracker for one made
/// elsewhere (the same computation, so both schedule the same instants).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlaClocks {
    pub policy: SlaPolicy,
    /// Fractions of each window at which the rep is reminded (checked: 0 < f < 1).
    pub reminder_fractions: Vec<f64>,
}

impl SlaClocks {
    /// The reminders before `due` of a window on `clock` that started at `start`.
    pub fn reminders(
        &self,
        clock: SlaClock,
        start: DateTime<Utc>,
        due: DateTime<Utc>,
        availability: Option<&Availability>,
    ) -> Vec<(u32, DateTime<Utc>)> {
        self.reminder_fractions
            .iter()
            .map(|f| {
                (
                    permille(*f),
                    reminder_at(clock, start, due, *f, availability),
                )
            })
            .collect()
    }

    /// The disposition clock started at `start`: its due time and reminders.
    pub fn disposition(
        &self,
        start: DateTime<Utc>,
        team_seconds: Option<u32>,
        availability: Option<&Availability>,
    ) -> ClockPlan {
        let due = self
            .policy
            .disposition_due_at(start, team_seconds, availability);
        ClockPlan {
            due,
            reminders: self.reminders(
                self.policy.clock(Sla::Disposition),
                start,
                due,
                availability,
            ),
        }
    }

    /// The clocks of an assignment at `assigned_at` whose first touch is due at `due`, to
    /// a rep with `availability` in a team with `team` terms (and its own disposition
    /// window).
    pub fn at_assignment(
        &self,
        assigned_at: DateTime<Utc>,
        due: DateTime<Utc>,
        team: TeamSla,
        team_disposition_seconds: Option<u32>,
        availability: Option<&Availability>,
    ) -> AssignmentClocks {
        AssignmentClocks {
            first_touch_reminders: self.reminders(
                self.policy.first_touch_clock(team),
                assigned_at,
                due,
                availability,
            ),
            disposition: (self.policy.disposition_from == DispositionStart::Assignment)
                .then(|| self.disposition(assigned_at, team_disposition_seconds, availability)),
        }
    }
}

/// A team's own first-touch terms from the rules file (`None`: the policy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TeamSla {
    pub first_touch_seconds: Option<u32>,
    pub first_touch_clock: Option<SlaClock>,
}

/// proto: `handoff.v1.FirstTouchClock`. The first-touch clock a decision started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstTouchClock {
    #[serde(with = "proto_clock")]
    pub clock: SlaClock,
    pub started_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub summary: String,
}

/// `SlaClock` as proto's enum names it on the wire (`WALL`, `BUSINESS_HOURS`); the
/// configuration spells it `wall`, `business_hours`.
mod proto_clock {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::SlaClock;

    pub fn serialize<S: Serializer>(clock: &SlaClock, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match clock {
            SlaClock::Wall => "WALL",
            SlaClock::BusinessHours => "BUSINESS_HOURS",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SlaClock, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "WALL" => Ok(SlaClock::Wall),
            "BUSINESS_HOURS" => Ok(SlaClock::BusinessHours),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["WALL", "BUSINESS_HOURS"],
            )),
        }
    }
}

/// `300` -> "5m", `5400` -> "1h 30m": a window as the rules file would write it.
fn window_words(seconds: u32) -> String {
    humantime::format_duration(std::time::Duration::from_secs(u64::from(seconds))).to_string()
}

fn due_on(
    clock: SlaClock,
    start: DateTime<Utc>,
    seconds: u32,
    availability: Option<&Availability>,
) -> DateTime<Utc> {
    let window = TimeDelta::seconds(i64::from(seconds));
    match (clock, availability) {
        (SlaClock::BusinessHours, Some(availability)) => business_due(start, window, availability),
        _ => start
            .checked_add_signed(window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    }
}

/// How far ahead the business clock looks for working hours; past it, the rest of a
/// window counts on the wall clock (a rep with no working hour for a year would otherwise
/// hold the lead for ever without a breach).
const HORIZON: TimeDelta = TimeDelta::days(366);

/// Bounds the walk whatever the schedule (intervals per day are the rules file's).
const MAX_STEPS: usize = 100_000;

/// Walks `availability` from `start`: calls `open(from, to)` for each stretch of working
/// time, in order, until it returns `Some` (the answer) or the horizon is passed; `None`
/// then, with where the walk stopped.
fn walk_open<T>(
    start: DateTime<Utc>,
    availability: &Availability,
    mut open: impl FnMut(DateTime<Utc>, DateTime<Utc>) -> Option<T>,
) -> Result<T, DateTime<Utc>> {
    let horizon = start.checked_add_signed(HORIZON);
    let mut now = start;
    for _ in 0..MAX_STEPS {
        if horizon.is_some_and(|h| now >= h) {
            return Err(now);
        }
        // `None` only at the end of chrono's time: nothing is left to count.
        let Some(next) = availability.next_change(now) else {
            return Err(DateTime::<Utc>::MAX_UTC);
        };
        if availability.check(now).is_ok() {
            if let Some(answer) = open(now, next) {
                return Ok(answer);
            }
        }
        now = next;
    }
    Err(now)
}

/// When `window` of working time (per `availability`) has passed since `start`: a lead
/// assigned at 17:58 to a rep who works until 18:00, with a 5-minute window, is due at
/// 09:03 on their next working day. Never before `start`; the wall clock for a rep who is
/// always available; past a year without enough working time, the rest counts on the wall
/// clock.
pub fn business_due(
    start: DateTime<Utc>,
    window: TimeDelta,
    availability: &Availability,
) -> DateTime<Utc> {
    let mut left = window.max(TimeDelta::zero());
    if left.is_zero() {
        return start;
    }
    let walked = walk_open(start, availability, |from, to| {
        let stretch = to - from;
        if stretch >= left {
            Some(from.checked_add_signed(left))
        } else {
            left -= stretch;
            None
        }
    });
    match walked {
        Ok(due) => due,
        Err(stopped) => stopped.checked_add_signed(left),
    }
    .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The working time (per `availability`) between `start` and `end`, counted as
/// [`business_due`] counts it (so `business_due(start, working_time(start, end))` is
/// `end` when `end` falls in working hours).
pub fn working_time(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    availability: &Availability,
) -> TimeDelta {
    if end <= start {
        return TimeDelta::zero();
    }
    let mut counted = TimeDelta::zero();
    let walked = walk_open(start, availability, |from, to| {
        if from >= end {
            return Some(());
        }
        counted += to.min(end) - from;
        (to >= end).then_some(())
    });
    if let Err(stopped) = walked {
        if stopped < end {
            counted += end - stopped;
        }
    }
    counted
}

/// When the reminder at `fraction` of the window from `start` to `due` goes out: that
/// fraction of the time the SLA's clock counts between them.
pub fn reminder_at(
    clock: SlaClock,
    start: DateTime<Utc>,
    due: DateTime<Utc>,
    fraction: f64,
    availability: Option<&Availability>,
) -> DateTime<Utc> {
    let fraction = fraction.clamp(0.0, 1.0);
    let part = |whole: TimeDelta| {
        TimeDelta::milliseconds((whole.num_milliseconds() as f64 * fraction) as i64)
    };
    let at = match (clock, availability) {
        (SlaClock::BusinessHours, Some(a)) => {
            business_due(start, part(working_time(start, due, a)), a)
        }
        _ => start
            .checked_add_signed(part(due - start))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    };
    at.clamp(start.min(due), due.max(start))
}

/// A fraction as whole thousandths: its name in keys and event ids (0.5 -> 500).
pub fn permille(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 1000.0).round() as u32
}

/// Whether a reported outcome is a disposition marketing can use: the lead was accepted
/// as sales-qualified, converted, rejected (with a reason) or recycled. A contact alone
/// is not.
pub fn is_disposition(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Accepted | Outcome::Converted | Outcome::Rejected | Outcome::Recycled
    )
}

/// Whether a disposition counts as the first touch (stops the clock and frees the rep's
/// capacity). Everything a rep or CRM reports means a human looked at the lead; system
/// outcomes do not.
pub fn is_first_touch(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Accepted
            | Outcome::Contacted
            | Outcome::Rejected
            | Outcome::Converted
            | Outcome::Recycled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_window_overrides_the_default() {
        let t0 = Utc::now();
        let policy = SlaPolicy::default();
        assert_eq!(policy.due_at(t0, None), t0 + Duration::seconds(300));
        assert_eq!(policy.due_at(t0, Some(60)), t0 + Duration::seconds(60));
    }

    #[test]
    fn an_assignment_at_the_end_of_time_does_not_overflow() {
        let policy = SlaPolicy::default();
        assert_eq!(
            policy.due_at(DateTime::<Utc>::MAX_UTC, Some(u32::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn only_human_outcomes_stop_the_clock() {
        assert!(is_first_touch(Outcome::Contacted));
        assert!(!is_first_touch(Outcome::Unqualified));
        assert!(!is_first_touch(Outcome::Overflowed));
    }

    use crate::routing::WeeklyScheduleSpec;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        match s.parse() {
            Ok(t) => t,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn hours(zone: &str, days: &[&str], range: &str, holidays: &[&str]) -> Availability {
        let weekly: WeeklyScheduleSpec = days
            .iter()
            .map(|d| ((*d).to_owned(), vec![range.to_owned()]))
            .collect();
        let holidays: Vec<String> = holidays.iter().map(|h| (*h).to_owned()).collect();
        match Availability::parse(Some(zone), Some(&weekly), &holidays, &[]) {
            Ok(a) => a,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn weekdays(range: &str) -> Availability {
        hours(
            "Europe/Berlin",
            &["mon", "tue", "wed", "thu", "fri"],
            range,
            &["2026-12-24"],
        )
    }

    #[test]
    fn a_window_that_outlasts_the_day_resumes_at_the_next_opening() {
        let a = weekdays("09:00-18:00");
        // Thursday 17:58 in Berlin (CET, UTC+1): 2 minutes today, 3 on Friday morning.
        assert_eq!(
            business_due(at("2026-12-03T16:58:00Z"), TimeDelta::minutes(5), &a),
            at("2026-12-04T08:03:00Z")
        );
        // Friday 17:58: Monday 09:03.
        assert_eq!(
            business_due(at("2026-12-04T16:58:00Z"), TimeDelta::minutes(5), &a),
            at("2026-12-07T08:03:00Z")
        );
        // Wednesday 23 December 17:58: the 24th is a holiday, so Friday 25th 09:03.
        assert_eq!(
            business_due(at("2026-12-23T16:58:00Z"), TimeDelta::minutes(5), &a),
            at("2026-12-25T08:03:00Z")
        );
        // Assigned on a Saturday: the clock starts on Monday at 09:00.
        assert_eq!(
            business_due(at("2026-12-05T10:00:00Z"), TimeDelta::minutes(5), &a),
            at("2026-12-07T08:05:00Z")
        );
        // Within the hours, it is the wall clock.
        assert_eq!(
            business_due(at("2026-12-03T09:00:00Z"), TimeDelta::minutes(5), &a),
            at("2026-12-03T09:05:00Z")
        );
    }

    /// Issue 24 (7, 13): a shift past midnight counts on both sides of it, a holiday
    /// cancels the shift that starts on it, and an afternoon off stops the clock for
    /// exactly that afternoon.
    #[test]
    fn overnight_shifts_and_partial_days_off_count_to_the_second() {
        let night = hours(
            "Europe/Berlin",
            &["mon", "tue", "wed", "thu", "fri"],
            "22:00-06:00",
            &["2026-12-24"],
        );
        // Monday 23:58 Berlin: across midnight on the wall clock.
        assert_eq!(
            business_due(at("2026-12-07T22:58:00Z"), TimeDelta::minutes(5), &night),
            at("2026-12-07T23:03:00Z")
        );
        // Tuesday 05:58, in Monday's shift: 2 minutes, then 3 from Tuesday 22:00.
        assert_eq!(
            business_due(at("2026-12-08T04:58:00Z"), TimeDelta::minutes(5), &night),
            at("2026-12-08T21:03:00Z")
        );
        // Thursday 24th 05:58, in Wednesday's shift; Thursday's shift is a holiday's, so
        // the rest counts from Friday 22:00.
        assert_eq!(
            business_due(at("2026-12-24T04:58:00Z"), TimeDelta::minutes(5), &night),
            at("2026-12-25T21:03:00Z")
        );
        let weekly: WeeklyScheduleSpec = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| ((*d).to_owned(), vec!["09:00-18:00".to_owned()]))
            .collect();
        let away = [crate::routing::DateRangeSpec {
            from: "2026-12-03T13:00".to_owned(),
            to: "2026-12-03T14:00".to_owned(),
        }];
        let afternoon = match Availability::parse(Some("Europe/Berlin"), Some(&weekly), &[], &away)
        {
            Ok(a) => a,
            Err(e) => panic!("{e:?}"),
        };
        // Thursday 12:58 Berlin: 2 minutes before lunch off, 3 after 14:00.
        assert_eq!(
            business_due(
                at("2026-12-03T11:58:00Z"),
                TimeDelta::minutes(5),
                &afternoon
            ),
            at("2026-12-03T13:03:00Z")
        );
        assert_eq!(
            working_time(
                at("2026-12-03T11:00:00Z"),
                at("2026-12-03T14:00:00Z"),
                &afternoon
            ),
            TimeDelta::hours(2)
        );
    }

    #[test]
    fn a_team_clock_wins_over_the_policy_and_the_explanation_says_when_it_is_due() {
        let a = weekdays("09:00-18:00");
        let wall = SlaPolicy::default();
        let friday_evening = at("2026-12-04T16:58:00Z");
        let business = TeamSla {
            first_touch_seconds: None,
            first_touch_clock: Some(SlaClock::BusinessHours),
        };
        // The team's business-hours clock: due Monday 09:03 Berlin.
        let clock = wall.first_touch(friday_evening, business, "ana", Some(&a));
        assert_eq!(clock.due_at, at("2026-12-07T08:03:00Z"));
        assert_eq!(clock.clock, SlaClock::BusinessHours);
        assert_eq!(clock.started_at, friday_evening);
        assert_eq!(
            clock.summary,
            "first touch due by 2026-12-07 08:03:00 UTC: 5m of ana's working hours, counted from the assignment"
        );
        assert_eq!(
            wall.first_touch_due_at(friday_evening, business, Some(&a)),
            clock.due_at
        );
        // A rep with no hours: every second counts, and the words say why.
        let clock = wall.first_touch(
            friday_evening,
            business,
            "bob",
            Some(&Availability::always()),
        );
        assert_eq!(clock.due_at, friday_evening + TimeDelta::minutes(5));
        assert!(
            clock.summary.contains("bob has no working hours"),
            "{}",
            clock.summary
        );
        // A team on the wall clock under a business-hours policy.
        let policy = SlaPolicy {
            first_touch_clock: SlaClock::BusinessHours,
            ..SlaPolicy::default()
        };
        let on_the_wall = TeamSla {
            first_touch_seconds: Some(600),
            first_touch_clock: Some(SlaClock::Wall),
        };
        let clock = policy.first_touch(friday_evening, on_the_wall, "ana", Some(&a));
        assert_eq!(clock.due_at, friday_evening + TimeDelta::minutes(10));
        assert!(
            clock.summary.contains("10m on the wall clock"),
            "{}",
            clock.summary
        );
        // Serialized as proto names its enum.
        let json = serde_json::to_value(&clock).unwrap_or_default();
        assert_eq!(json["clock"], "WALL");
        let back: FirstTouchClock = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, clock);
        // A lead that waits: the wall clock from its arrival.
        let words = policy.waiting_clock_words(on_the_wall, at("2026-12-04T23:10:00Z"));
        assert_eq!(
            words,
            "first-touch clock running while it waits: 10m on the wall clock from its arrival, due by 2026-12-04 23:10:00 UTC (a breach is recorded then if it still waits)"
        );
    }

    #[test]
    fn the_policy_picks_the_clock_per_sla() {
        let a = weekdays("09:00-18:00");
        let policy = SlaPolicy {
            first_touch_clock: SlaClock::BusinessHours,
            ..SlaPolicy::default()
        };
        let friday_evening = at("2026-12-04T16:58:00Z");
        assert_eq!(
            policy.first_touch_due_at(friday_evening, TeamSla::default(), Some(&a)),
            at("2026-12-07T08:03:00Z")
        );
        // An unknown rep (no availability): the wall clock.
        assert_eq!(
            policy.first_touch_due_at(friday_evening, TeamSla::default(), None),
            friday_evening + TimeDelta::minutes(5)
        );
        // The disposition clock is the wall's by default: 48 hours.
        assert_eq!(
            policy.disposition_due_at(friday_evening, None, Some(&a)),
            friday_evening + TimeDelta::hours(48)
        );
        assert_eq!(
            policy.disposition_due_at(friday_evening, Some(60), Some(&a)),
            friday_evening + TimeDelta::minutes(1)
        );
    }

    #[test]
    fn reminders_fall_at_their_fraction_of_the_counted_time() {
        let t0 = at("2026-12-03T10:00:00Z");
        let due = t0 + TimeDelta::minutes(10);
        assert_eq!(
            reminder_at(SlaClock::Wall, t0, due, 0.5, None),
            t0 + TimeDelta::minutes(5)
        );
        assert_eq!(
            reminder_at(SlaClock::Wall, t0, due, 0.8, None),
            t0 + TimeDelta::minutes(8)
        );
        // 17:50 to 09:10 next day on a 09-18 schedule: 20 working minutes, half is 18:00
        // (the closing time: the first moment 10 minutes have passed).
        let a = weekdays("09:00-18:00");
        let start = at("2026-12-03T16:50:00Z");
        let due = business_due(start, TimeDelta::minutes(20), &a);
        assert_eq!(due, at("2026-12-04T08:10:00Z"));
        assert_eq!(working_time(start, due, &a), TimeDelta::minutes(20));
        assert_eq!(
            reminder_at(SlaClock::BusinessHours, start, due, 0.5, Some(&a)),
            at("2026-12-03T17:00:00Z")
        );
        assert_eq!(
            reminder_at(SlaClock::BusinessHours, start, due, 0.75, Some(&a)),
            at("2026-12-04T08:05:00Z")
        );
        assert_eq!(permille(0.8), 800);
    }

    #[test]
    fn a_rep_who_never_works_gets_a_deadline_a_year_out_not_never() {
        let never = hours("UTC", &[], "09:00-10:00", &[]);
        let t0 = at("2026-12-03T10:00:00Z");
        let due = business_due(t0, TimeDelta::minutes(5), &never);
        // The walk stops at the first change of the schedule past the horizon (a midnight).
        assert!(due >= t0 + HORIZON + TimeDelta::minutes(5), "{due}");
        assert!(
            due <= t0 + HORIZON + TimeDelta::days(1) + TimeDelta::minutes(5),
            "{due}"
        );
    }

    #[test]
    fn dispositions_marketing_can_use() {
        assert!(is_disposition(Outcome::Accepted));
        assert!(is_disposition(Outcome::Rejected));
        assert!(!is_disposition(Outcome::Contacted));
        assert!(!is_disposition(Outcome::Overflowed));
    }

    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        prop_oneof![
            // Around now, seconds apart, where schedules matter.
            (1_700_000_000_i64..1_900_000_000).prop_map(|s| DateTime::from_timestamp(s, 0)),
            // chrono's range ends.
            Just(Some(DateTime::<Utc>::MAX_UTC)),
            Just(Some(DateTime::<Utc>::MIN_UTC)),
            (0_i64..86_400 * 30)
                .prop_map(|s| DateTime::<Utc>::MAX_UTC.checked_sub_signed(TimeDelta::seconds(s))),
            (0_i64..86_400 * 30)
                .prop_map(|s| DateTime::<Utc>::MIN_UTC.checked_add_signed(TimeDelta::seconds(s))),
        ]
        .prop_map(|t| t.unwrap_or_default())
    }

    fn any_availability() -> impl Strategy<Value = Availability> {
        prop_oneof![
            Just(Availability::always()),
            Just(weekdays("09:00-18:00")),
            Just(hours(
                "America/St_Johns",
                &["mon", "wed", "sat"],
                "00:30-02:30",
                &[]
            )),
            Just(hours("Australia/Lord_Howe", &["sun"], "01:00-03:00", &[])),
            Just(hours(
                "America/Santiago",
                &["fri", "sat", "sun"],
                "22:30-06:00",
                &["2026-04-04"]
            )),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn due_is_never_before_the_start(
            start in any_time(),
            seconds in 0_u32..=u32::MAX,
            a in any_availability(),
        ) {
            let due = business_due(start, TimeDelta::seconds(i64::from(seconds)), &a);
            prop_assert!(due >= start);
        }

        #[test]
        fn always_available_is_the_wall_clock(
            start in any_time(),
            seconds in 0_u32..=u32::MAX,
        ) {
            let window = TimeDelta::seconds(i64::from(seconds));
            prop_assert_eq!(
                business_due(start, window, &Availability::always()),
                start.checked_add_signed(window).unwrap_or(DateTime::<Utc>::MAX_UTC)
            );
        }

        #[test]
        fn a_longer_window_is_never_due_sooner(
            start in any_time(),
            a in 0_u32..400_000,
            b in 0_u32..400_000,
            availability in any_availability(),
        ) {
            let (short, long) = (a.min(b), a.max(b));
            prop_assert!(
                business_due(start, TimeDelta::seconds(i64::from(short)), &availability)
                    <= business_due(start, TimeDelta::seconds(i64::from(long)), &availability)
            );
        }

        #[test]
        fn reminders_fall_between_start_and_due(
            start in any_time(),
            seconds in 1_u32..400_000,
            fraction in 0.01_f64..0.99,
            availability in any_availability(),
        ) {
            let due = business_due(start, TimeDelta::seconds(i64::from(seconds)), &availability);
            let reminder = reminder_at(SlaClock::BusinessHours, start, due, fraction, Some(&availability));
            prop_assert!(start <= reminder && reminder <= due);
        }
    }
}
