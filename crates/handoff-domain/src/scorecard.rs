//! The agreement's scorecard: each commitment of crate::agreement measured against the
//! funnel's daily facts for one period, with its pace. Pure: the funnel keeps the facts
//! (handoff-store's scorecard module), ingest, the CLI and the metrics render this.
//!
//! - Counts (`mqls`, `revenue`): a target is per period; the days a target entry applies to
//!   carry an equal share of it (a change on the 15th of a 31-day month: 14/31 of the old
//!   target plus 17/31 of the new one). The expectation by now is the share of the time
//!   elapsed; the projection is the actual extended at its rate so far (actual / elapsed
//!   fraction); on track when the projection reaches the target.
//! - Rates: each target entry is measured over its own days (actual = numerator /
//!   denominator of those days) and is on track when its actual reaches its target; the
//!   commitment is behind when any of its spans is.
//!
//! Days are UTC days.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::agreement::{Agreement, Commitment, PeriodKind, Segment, Target};
use crate::disposition::{format_units, AMOUNT_SCALE};

/// What the funnel counts per day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// A lead counted as qualified (an MQL delivered).
    Mql,
    Accepted,
    Rejected,
    Converted,
    FirstTouchMet,
    FirstTouchMissed,
    /// A lead's first feedback within the agreement's feedback window.
    FeedbackMet,
    /// Feedback after the window, or the window ended without any (counted then, once).
    FeedbackMissed,
    /// A conversion's value in ten-thousandths of its currency.
    Revenue,
}

impl Measure {
    pub const ALL: [Measure; 9] = [
        Measure::Mql,
        Measure::Accepted,
        Measure::Rejected,
        Measure::Converted,
        Measure::FirstTouchMet,
        Measure::FirstTouchMissed,
        Measure::FeedbackMet,
        Measure::FeedbackMissed,
        Measure::Revenue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Mql => "mql",
            Measure::Accepted => "accepted",
            Measure::Rejected => "rejected",
            Measure::Converted => "converted",
            Measure::FirstTouchMet => "first_touch_met",
            Measure::FirstTouchMissed => "first_touch_missed",
            Measure::FeedbackMet => "feedback_met",
            Measure::FeedbackMissed => "feedback_missed",
            Measure::Revenue => "revenue",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

/// One day's count of one measure for one attribution.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fact {
    pub day: NaiveDate,
    pub measure: Measure,
    pub source_kind: String,
    pub campaign: String,
    pub team: String,
    /// Revenue only.
    pub currency: String,
    pub value: i64,
}

/// A month (`2026-12`) or a quarter (`2026-Q4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub kind: PeriodKind,
    /// The first day.
    pub start: NaiveDate,
    /// The day after the last.
    pub end: NaiveDate,
}

impl Period {
    /// `2026-12` or `2026-Q4` (`q4` too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("period {text:?} is not a month (2026-12) or a quarter (2026-Q4)");
        let (year, rest) = text.trim().split_once('-').ok_or_else(bad)?;
        // Digits only (`str::parse` takes a sign too: `+2026-+1` is no period), exactly as the
        // API's documented pattern says.
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let shape = match rest.strip_prefix(['Q', 'q']) {
            Some(quarter) => digits(quarter, 1),
            None => digits(rest, 2),
        };
        if !digits(year, 4) || !shape {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        if !(2000..=9999).contains(&year) {
            return Err(bad());
        }
        let (kind, month) = match rest.strip_prefix(['Q', 'q']) {
            Some(q) => {
                let q: u32 = q.parse().map_err(|_| bad())?;
                if !(1..=4).contains(&q) {
                    return Err(bad());
                }
                (PeriodKind::Quarter, (q - 1) * 3 + 1)
            }
            None if rest.len() == 2 => (PeriodKind::Month, rest.parse().map_err(|_| bad())?),
            None => return Err(bad()),
        };
        let start = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Self::starting(kind, start).ok_or_else(bad)
    }

    fn starting(kind: PeriodKind, start: NaiveDate) -> Option<Self> {
        let months = match kind {
            PeriodKind::Month => 1,
            PeriodKind::Quarter => 3,
        };
        let end = start.checked_add_months(chrono::Months::new(months))?;
        Some(Period { kind, start, end })
    }

    /// The period of `kind` that holds `day`.
    pub fn containing(kind: PeriodKind, day: NaiveDate) -> Option<Self> {
        let month = match kind {
            PeriodKind::Month => day.month(),
            PeriodKind::Quarter => (day.month0() / 3) * 3 + 1,
        };
        Self::starting(kind, NaiveDate::from_ymd_opt(day.year(), month, 1)?)
    }

    pub fn previous(&self) -> Option<Self> {
        let day = self.start.pred_opt()?;
        Self::containing(self.kind, day)
    }

    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }

    pub fn name(&self) -> String {
        match self.kind {
            PeriodKind::Month => self.start.format("%Y-%m").to_string(),
            PeriodKind::Quarter => {
                format!("{}-Q{}", self.start.year(), self.start.month0() / 3 + 1)
            }
        }
    }

    pub fn last_day(&self) -> NaiveDate {
        self.end.pred_opt().unwrap_or(self.end)
    }
}

/// Where a commitment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    OnTrack,
    Behind,
    /// A rate with nothing measured yet (no lead decided, touched or given feedback).
    NoData,
    /// The period (or this target's days) has not begun.
    NotStarted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::OnTrack => "on track",
            Status::Behind => "behind",
            Status::NoData => "no data yet",
            Status::NotStarted => "not started",
        }
    }
}

/// The days one target entry applies to within the period, and how it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    pub from: NaiveDate,
    /// The last day (inclusive).
    pub to: NaiveDate,
    /// The entry's target as written.
    pub target: f64,
    /// Counts: the share of the period's target these days carry; rates: the target.
    pub applies: f64,
    /// Counts: the sum over these days; rates: the ratio (`None` without a denominator).
    pub actual: Option<f64>,
    pub status: Status,
}

/// One commitment over one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub commitment: Commitment,
    pub side: &'static str,
    pub segment: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub currency: String,
    /// Counts: the period's target (pro-rated across changes); rates: the day-weighted
    /// target over the days with a target.
    pub target: f64,
    /// Counts: the sum so far; rates: the ratio so far (`None`: nothing measured).
    pub actual: Option<f64>,
    /// Rates: numerator and denominator of `actual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<(i64, i64)>,
    /// Counts: what the plan expects by now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_to_date: Option<f64>,
    /// Counts: actual / expected by now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pace: Option<f64>,
    /// The end-of-period value at the pace so far (rates: the ratio so far).
    pub projected: Option<f64>,
    pub status: Status,
    /// More than one when the target changed within the period.
    pub targets: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodCard {
    pub period: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// How much of the period has passed, 0 to 1.
    pub elapsed: f64,
    pub lines: Vec<Line>,
}

/// The current period and the one before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub rules_version: String,
    pub first_touch_window_minutes: u32,
    pub feedback_window_hours: u32,
    pub current: PeriodCard,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<PeriodCard>,
}

/// The scorecard of `period` and the one before, at `now`, from `facts` (any days; those
/// outside the periods are ignored).
pub fn scorecard(
    agreement: &Agreement,
    rules_version: &str,
    period: Period,
    now: DateTime<Utc>,
    facts: &[Fact],
) -> Scorecard {
    Scorecard {
        rules_version: rules_version.to_owned(),
        first_touch_window_minutes: agreement.first_touch_window_minutes,
        feedback_window_hours: agreement.feedback_window_hours,
        current: period_card(agreement, period, now, facts),
        previous: period
            .previous()
            .map(|p| period_card(agreement, p, now, facts)),
    }
}

/// One period's card.
pub fn period_card(
    agreement: &Agreement,
    period: Period,
    now: DateTime<Utc>,
    facts: &[Fact],
) -> PeriodCard {
    let elapsed = elapsed_days(period, now);
    let lines = agreement
        .commitments(period.kind)
        .into_iter()
        .filter_map(|entries| line(period, now, elapsed, &entries, facts))
        .collect();
    PeriodCard {
        period: period.name(),
        from: period.start,
        to: period.last_day(),
        elapsed: elapsed / period.days() as f64,
        lines,
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Days of `period` passed by `now`, fractional, 0 to its length.
fn elapsed_days(period: Period, now: DateTime<Utc>) -> f64 {
    let seconds = (now - midnight(period.start)).num_milliseconds() as f64 / 1000.0;
    (seconds / 86_400.0).clamp(0.0, period.days() as f64)
}

/// The consecutive days of the period each entry applies to (an entry applies from its
/// `from` until the next entry's).
fn spans<'a>(period: Period, entries: &[&'a Target]) -> Vec<(NaiveDate, NaiveDate, &'a Target)> {
    let mut spans = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let from = entry.from.unwrap_or(NaiveDate::MIN).max(period.start);
        let until = entries
            .get(i + 1)
            .and_then(|next| next.from)
            .unwrap_or(NaiveDate::MAX)
            .min(period.end);
        if from < until {
            spans.push((from, until, *entry));
        }
    }
    spans
}

/// The sums of `measures` over facts of the segment (and currency) on days `from..until`.
fn sum(
    facts: &[Fact],
    segment: &Segment,
    currency: &str,
    measures: &[Measure],
    from: NaiveDate,
    until: NaiveDate,
) -> i64 {
    facts
        .iter()
        .filter(|f| from <= f.day && f.day < until)
        .filter(|f| measures.contains(&f.measure))
        .filter(|f| f.measure != Measure::Revenue || f.currency == currency)
        .filter(|f| segment.contains(&f.source_kind, &f.campaign, &f.team))
        .map(|f| f.value)
        .fold(0i64, i64::saturating_add)
}

/// A rate's numerator and denominator measures.
fn rate_measures(commitment: Commitment) -> (&'static [Measure], &'static [Measure]) {
    match commitment {
        Commitment::AcceptanceRate => (
            &[Measure::Accepted],
            &[Measure::Accepted, Measure::Rejected],
        ),
        Commitment::FirstTouchAttainment => (
            &[Measure::FirstTouchMet],
            &[Measure::FirstTouchMet, Measure::FirstTouchMissed],
        ),
        Commitment::FeedbackCompletion => (
            &[Measure::FeedbackMet],
            &[Measure::FeedbackMet, Measure::FeedbackMissed],
        ),
        Commitment::Mqls => (&[Measure::Mql], &[]),
        Commitment::Revenue => (&[Measure::Revenue], &[]),
    }
}

fn line(
    period: Period,
    now: DateTime<Utc>,
    elapsed: f64,
    entries: &[&Target],
    facts: &[Fact],
) -> Option<Line> {
    let first = entries.first()?;
    let (commitment, segment, currency) = (first.commitment, &first.segment, &first.currency);
    let (numerator, denominator) = rate_measures(commitment);
    let days = period.days() as f64;
    let scale = if commitment == Commitment::Revenue {
        AMOUNT_SCALE as f64
    } else {
        1.0
    };
    let begun = |from: NaiveDate| now >= midnight(from);
    let mut targets = Vec::new();
    let (mut target, mut expected, mut weighted_days) = (0.0, 0.0, 0.0);
    for (from, until, entry) in spans(period, entries) {
        let span_days = (until - from).num_days() as f64;
        let elapsed_in_span =
            (elapsed - (from - period.start).num_days() as f64).clamp(0.0, span_days);
        let top = sum(facts, segment, currency, numerator, from, until);
        let span = if commitment.is_rate() {
            let bottom = sum(facts, segment, currency, denominator, from, until);
            weighted_days += span_days;
            target += entry.target * span_days;
            let actual = ratio(top, bottom);
            Span {
                from,
                to: until.pred_opt().unwrap_or(until),
                target: entry.target,
                applies: entry.target,
                actual,
                status: match actual {
                    _ if !begun(from) => Status::NotStarted,
                    None => Status::NoData,
                    Some(a) if a >= entry.target => Status::OnTrack,
                    Some(_) => Status::Behind,
                },
            }
        } else {
            let share = entry.target * span_days / days;
            target += share;
            expected += entry.target * elapsed_in_span / days;
            let actual = top as f64 / scale;
            let span_expected = entry.target * elapsed_in_span / days;
            Span {
                from,
                to: until.pred_opt().unwrap_or(until),
                target: entry.target,
                applies: share,
                actual: Some(actual),
                status: if !begun(from) {
                    Status::NotStarted
                } else if actual >= span_expected {
                    Status::OnTrack
                } else {
                    Status::Behind
                },
            }
        };
        targets.push(span);
    }
    // A target whose first day comes after the period says nothing about it.
    if targets.is_empty() {
        return None;
    }
    if commitment.is_rate() {
        let (top, bottom) = targets_range(&targets)
            .map(|(from, until)| {
                (
                    sum(facts, segment, currency, numerator, from, until),
                    sum(facts, segment, currency, denominator, from, until),
                )
            })
            .unwrap_or((0, 0));
        let actual = ratio(top, bottom);
        let statuses: Vec<Status> = targets.iter().map(|s| s.status).collect();
        let status = if statuses.contains(&Status::Behind) {
            Status::Behind
        } else if statuses.contains(&Status::OnTrack) {
            Status::OnTrack
        } else if statuses.contains(&Status::NoData) {
            Status::NoData
        } else {
            Status::NotStarted
        };
        Some(Line {
            commitment,
            side: commitment.side(),
            segment: segment.to_string(),
            currency: currency.clone(),
            target: if weighted_days > 0.0 {
                target / weighted_days
            } else {
                0.0
            },
            actual,
            counts: Some((top, bottom)),
            expected_to_date: None,
            pace: None,
            projected: actual,
            status,
            targets,
        })
    } else {
        let actual = targets_range(&targets)
            .map(|(from, until)| sum(facts, segment, currency, numerator, from, until))
            .unwrap_or(0) as f64
            / scale;
        let pace = (expected > 0.0).then(|| actual / expected);
        // At the pace so far against the plan: with one target all period this is the
        // actual extended linearly; across a change it follows the plan's own shape.
        let projected = match pace {
            _ if elapsed <= 0.0 => None,
            Some(pace) => Some(pace * target),
            None => Some(actual * days / elapsed),
        };
        let status = match projected {
            None => Status::NotStarted,
            Some(p) if p >= target => Status::OnTrack,
            Some(_) => Status::Behind,
        };
        Some(Line {
            commitment,
            side: commitment.side(),
            segment: segment.to_string(),
            currency: currency.clone(),
            target,
            actual: Some(actual),
            counts: None,
            expected_to_date: (elapsed > 0.0).then_some(expected),
            pace,
            projected,
            status,
            targets,
        })
    }
}

/// The days the spans cover (from the first's start to the last's end).
fn targets_range(spans: &[Span]) -> Option<(NaiveDate, NaiveDate)> {
    let first = spans.first()?;
    let last = spans.last()?;
    Some((first.from, last.to + Duration::days(1)))
}

fn ratio(top: i64, bottom: i64) -> Option<f64> {
    (bottom > 0).then(|| top as f64 / bottom as f64)
}

fn number(commitment: Commitment, value: f64) -> String {
    if commitment.is_rate() {
        format!("{:.1}%", value * 100.0)
    } else if commitment == Commitment::Revenue {
        format_units((value * AMOUNT_SCALE as f64).round() as i64)
    } else {
        format!("{}", value.round() as i64)
    }
}

/// The scorecard as plain text, for a weekly e-mail or a chat post.
pub fn to_text(card: &Scorecard) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Sales-marketing agreement scorecard (rules {}; first touch within {} min, feedback within {} h)",
        card.rules_version, card.first_touch_window_minutes, card.feedback_window_hours
    );
    for period in std::iter::once(&card.current).chain(card.previous.as_ref()) {
        let _ = writeln!(
            out,
            "\n{} ({} to {}, {:.0}% elapsed)",
            period.period,
            period.from,
            period.to,
            period.elapsed * 100.0
        );
        if period.lines.is_empty() {
            let _ = writeln!(out, "  no targets for this period in [agreement]");
        }
        for line in &period.lines {
            let c = line.commitment;
            let currency = if line.currency.is_empty() {
                String::new()
            } else {
                format!(" {}", line.currency)
            };
            let actual = line
                .actual
                .map_or("-".to_owned(), |a| number(c, a) + &currency);
            let _ = write!(
                out,
                "  [{}] {} ({}, {}): {} of target {}{}",
                line.status.as_str(),
                c.as_str(),
                line.side,
                line.segment,
                actual,
                number(c, line.target),
                currency
            );
            if let Some((top, bottom)) = line.counts {
                let _ = write!(out, " ({top} of {bottom})");
            }
            if let (false, Some(projected)) = (c.is_rate(), line.projected) {
                let _ = write!(out, "; projected {}{currency}", number(c, projected));
            }
            if let Some(pace) = line.pace {
                let _ = write!(out, "; pace {:.0}% of plan", pace * 100.0);
            }
            let _ = writeln!(out);
            if line.targets.len() > 1 {
                for span in &line.targets {
                    let _ = writeln!(
                        out,
                        "      target {} from {} to {}: {} ({})",
                        number(c, span.target),
                        span.from,
                        span.to,
                        span.actual.map_or("-".to_owned(), |a| number(c, a)),
                        span.status.as_str()
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
