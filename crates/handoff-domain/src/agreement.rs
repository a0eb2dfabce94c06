//! The sales–marketing agreement: what each side committed to, per period (month or
//! quarter) and segment (all leads, one source kind, one campaign or one team). It lives in
//! the rules file's `[agreement]` table, so it is checked by `handoff rules check`,
//! hot-reloaded and versioned with the rules. crate::scorecard measures the funnel's facts
//! against it.
//!
//! A change of target mid-period is a second entry for the same commitment and segment
//! with `from = "YYYY-MM-DD"`: each entry applies from its `from` day (an entry without one
//! applies from the beginning) until the next entry's `from`, so the old and the new target
//! each apply to their own days.

use std::collections::BTreeSet;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::disposition::is_currency_code;

/// `[agreement]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementConfig {
    /// Sales' promise: a first touch within this many minutes of assignment (what the
    /// scorecard quotes; the SLA clocks in handoff.toml time each lead).
    #[serde(default = "default_first_touch_minutes")]
    pub first_touch_window_minutes: u32,
    /// Sales' promise: feedback marketing can use (accepted, rejected, converted, recycled)
    /// within this many hours of the first assignment.
    #[serde(default = "default_feedback_hours")]
    pub feedback_window_hours: u32,
    /// The alerts fire when a count's pace (actual / expected by now) is below this
    /// fraction of plan.
    #[serde(default = "default_alert_below_pace")]
    pub alert_below_pace: f64,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

impl Default for AgreementConfig {
    fn default() -> Self {
        Self {
            first_touch_window_minutes: default_first_touch_minutes(),
            feedback_window_hours: default_feedback_hours(),
            alert_below_pace: default_alert_below_pace(),
            targets: Vec::new(),
        }
    }
}

fn default_first_touch_minutes() -> u32 {
    15
}
fn default_feedback_hours() -> u32 {
    48
}
fn default_alert_below_pace() -> f64 {
    0.9
}

/// One `[[agreement.targets]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub commitment: Commitment,
    #[serde(default)]
    pub period: PeriodKind,
    /// At most one of `source_kind`, `campaign`, `team`; none: all leads.
    #[serde(default)]
    pub source_kind: Option<String>,
    #[serde(default)]
    pub campaign: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    /// A count per period (`mqls`, `revenue`) or a fraction from 0 to 1 (the rates).
    pub target: f64,
    /// `revenue` only: the ISO 4217 currency the target is in.
    #[serde(default)]
    pub currency: Option<String>,
    /// The first day (UTC) this entry applies, `YYYY-MM-DD`.
    #[serde(default)]
    pub from: Option<String>,
}

/// What a side committed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Commitment {
    /// Marketing: qualified leads delivered per period.
    Mqls,
    /// Marketing: the share of decided leads sales accepted (accepted / (accepted + rejected)).
    AcceptanceRate,
    /// Sales: first touches within the window / first touches with a verdict.
    FirstTouchAttainment,
    /// Sales: leads given feedback within the feedback window / leads whose first feedback
    /// came, or whose window ended without any (counted missed on the day it ended).
    FeedbackCompletion,
    /// Both: the value of converted leads, per currency.
    Revenue,
}

impl Commitment {
    pub const ALL: [Commitment; 5] = [
        Commitment::Mqls,
        Commitment::AcceptanceRate,
        Commitment::FirstTouchAttainment,
        Commitment::FeedbackCompletion,
        Commitment::Revenue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Commitment::Mqls => "mqls",
            Commitment::AcceptanceRate => "acceptance_rate",
            Commitment::FirstTouchAttainment => "first_touch_attainment",
            Commitment::FeedbackCompletion => "feedback_completion",
            Commitment::Revenue => "revenue",
        }
    }

    /// Whose commitment it is.
    pub fn side(self) -> &'static str {
        match self {
            Commitment::Mqls | Commitment::AcceptanceRate => "marketing",
            Commitment::FirstTouchAttainment | Commitment::FeedbackCompletion => "sales",
            Commitment::Revenue => "shared",
        }
    }

    /// A rate (target 0..1, measured as a ratio) rather than a count per period.
    pub fn is_rate(self) -> bool {
        matches!(
            self,
            Commitment::AcceptanceRate
                | Commitment::FirstTouchAttainment
                | Commitment::FeedbackCompletion
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    #[default]
    Month,
    Quarter,
}

impl PeriodKind {
    pub const ALL: [PeriodKind; 2] = [PeriodKind::Month, PeriodKind::Quarter];

    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
        }
    }
}

/// Which leads a target is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    All,
    SourceKind(String),
    Campaign(String),
    Team(String),
}

impl Segment {
    /// Whether a fact with this attribution belongs to the segment.
    pub fn contains(&self, source_kind: &str, campaign: &str, team: &str) -> bool {
        match self {
            Segment::All => true,
            Segment::SourceKind(k) => k == source_kind,
            Segment::Campaign(c) => c == campaign,
            Segment::Team(t) => t == team,
        }
    }

    /// (dimension, value): `("all", "")`, `("team", "emea")`; metric labels use these.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Segment::All => ("all", ""),
            Segment::SourceKind(k) => ("source_kind", k),
            Segment::Campaign(c) => ("campaign", c),
            Segment::Team(t) => ("team", t),
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            ("all", _) => f.write_str("all"),
            (dimension, value) => write!(f, "{dimension}={value}"),
        }
    }
}

/// One checked target entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub commitment: Commitment,
    pub period: PeriodKind,
    pub segment: Segment,
    /// Empty except for revenue.
    pub currency: String,
    pub target: f64,
    /// `None`: from the beginning.
    pub from: Option<NaiveDate>,
}

impl Target {
    /// What makes two entries the same commitment (their `from` tells them apart).
    pub fn key(&self) -> (Commitment, PeriodKind, &Segment, &str) {
        (self.commitment, self.period, &self.segment, &self.currency)
    }
}

/// The checked agreement.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub first_touch_window_minutes: u32,
    pub feedback_window_hours: u32,
    pub alert_below_pace: f64,
    /// Sorted by commitment, period, segment, currency, then `from` (earliest first).
    pub targets: Vec<Target>,
}

impl Default for Agreement {
    fn default() -> Self {
        // The default configuration has no targets: nothing can fail its checks.
        Self {
            first_touch_window_minutes: default_first_touch_minutes(),
            feedback_window_hours: default_feedback_hours(),
            alert_below_pace: default_alert_below_pace(),
            targets: Vec::new(),
        }
    }
}

/// The longest a segment value may be (it becomes a metric label value).
const MAX_VALUE: usize = 64;

impl Agreement {
    /// Checks `config` against the rules' teams; every error names its key (relative to
    /// `agreement.`) and what is allowed.
    pub fn new<'a>(
        config: AgreementConfig,
        teams: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Vec<String>> {
        let teams: BTreeSet<&str> = teams.into_iter().collect();
        let mut errors = Vec::new();
        if config.first_touch_window_minutes == 0 {
            errors.push("first_touch_window_minutes: must be greater than 0".to_owned());
        }
        if config.feedback_window_hours == 0 {
            errors.push("feedback_window_hours: must be greater than 0".to_owned());
        }
        if !(config.alert_below_pace > 0.0 && config.alert_below_pace <= 1.0) {
            errors.push(format!(
                "alert_below_pace: {} must be a fraction above 0 and at most 1 (0.9: alert below 90% of plan)",
                config.alert_below_pace
            ));
        }
        let mut targets = Vec::new();
        for (i, entry) in config.targets.into_iter().enumerate() {
            match check_target(entry, &teams) {
                Ok(target) => targets.push(target),
                Err(message) => errors.push(format!("targets[{i}].{message}")),
            }
        }
        targets.sort_by(|a, b| a.key().cmp(&b.key()).then(a.from.cmp(&b.from)));
        for pair in targets.windows(2) {
            if let [a, b] = pair {
                if a.key() == b.key() && a.from == b.from {
                    let from = a.from.map_or("the beginning".to_owned(), |d| d.to_string());
                    errors.push(format!(
                        "targets: two entries for {} of {} from {from}; give the later one its own `from` day",
                        a.commitment.as_str(),
                        a.segment
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(Agreement {
                first_touch_window_minutes: config.first_touch_window_minutes,
                feedback_window_hours: config.feedback_window_hours,
                alert_below_pace: config.alert_below_pace,
                targets,
            })
        } else {
            Err(errors)
        }
    }

    /// The entries of one commitment, earliest `from` first, for periods of `kind`.
    pub fn commitments(&self, kind: PeriodKind) -> Vec<Vec<&Target>> {
        let mut groups: Vec<Vec<&Target>> = Vec::new();
        for target in self.targets.iter().filter(|t| t.period == kind) {
            match groups.last_mut() {
                Some(group) if group.first().is_some_and(|g| g.key() == target.key()) => {
                    group.push(target)
                }
                _ => groups.push(vec![target]),
            }
        }
        groups
    }

    /// The feedback window in milliseconds.
    pub fn feedback_window_ms(&self) -> i64 {
        i64::from(self.feedback_window_hours) * 3_600_000
    }
}

fn check_target(entry: TargetConfig, teams: &BTreeSet<&str>) -> Result<Target, String> {
    let segments: Vec<Segment> = [
        entry.source_kind.map(Segment::SourceKind),
        entry.campaign.map(Segment::Campaign),
        entry.team.map(Segment::Team),
    ]
    .into_iter()
    .flatten()
    .collect();
    let segment = match segments.as_slice() {
        [] => Segment::All,
        [one] => one.clone(),
        _ => {
            return Err(
                "source_kind, campaign, team: at most one of them (none: all leads)".to_owned(),
            )
        }
    };
    let (dimension, value) = segment.parts();
    if dimension != "all" {
        if value.is_empty() || value.len() > MAX_VALUE || value.chars().any(char::is_control) {
            return Err(format!(
                "{dimension}: must be 1 to {MAX_VALUE} characters without control characters"
            ));
        }
        if dimension == "team" && !teams.contains(value) {
            let known: Vec<&str> = teams.iter().copied().collect();
            return Err(format!(
                "team: unknown team `{value}`, expected one of {}",
                known.join(", ")
            ));
        }
    }
    let commitment = entry.commitment;
    if !entry.target.is_finite() {
        return Err("target: must be a number".to_owned());
    }
    if commitment.is_rate() {
        if !(entry.target > 0.0 && entry.target <= 1.0) {
            return Err(format!(
                "target: {} is a rate, a fraction above 0 and at most 1 (0.8 for 80%)",
                commitment.as_str()
            ));
        }
    } else if entry.target < 0.0 {
        return Err(format!(
            "target: {} is a count per period, 0 or more",
            commitment.as_str()
        ));
    }
    let currency = match (commitment, entry.currency) {
        (Commitment::Revenue, Some(code)) => {
            let upper = code.trim().to_ascii_uppercase();
            if !is_currency_code(&upper) {
                return Err(format!(
                    "currency: {code:?} must be an ISO 4217 code of three letters, e.g. EUR"
                ));
            }
            upper
        }
        (Commitment::Revenue, None) => {
            return Err("currency: required for revenue (an ISO 4217 code, e.g. EUR)".to_owned())
        }
        (_, Some(_)) => return Err("currency: only for the revenue commitment".to_owned()),
        (_, None) => String::new(),
    };
    let from =
        match entry.from {
            None => None,
            Some(text) => Some(NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(
                |_| format!("from: {text:?} is not a day; expected YYYY-MM-DD, e.g. 2026-12-15"),
            )?),
        };
    Ok(Target {
        commitment,
        period: entry.period,
        segment,
        currency,
        target: entry.target,
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Agreement, Vec<String>> {
        let config: AgreementConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        Agreement::new(config, ["emea", "na"])
    }

    #[test]
    fn targets_are_grouped_per_commitment_with_their_changes_in_order() {
        let agreement = parse(
            r#"
            [[targets]]
            commitment = "mqls"
            target = 500
            from = "2026-12-15"
            [[targets]]
            commitment = "mqls"
            target = 400
            [[targets]]
            commitment = "revenue"
            currency = "eur"
            source_kind = "web_form"
            target = 100000
            [[targets]]
            commitment = "acceptance_rate"
            period = "quarter"
            team = "emea"
            target = 0.8
            "#,
        );
        let Ok(agreement) = agreement else {
            panic!("{agreement:?}");
        };
        let months = agreement.commitments(PeriodKind::Month);
        let shape: Vec<Vec<(&str, String, f64)>> = months
            .iter()
            .map(|g| {
                g.iter()
                    .map(|t| (t.commitment.as_str(), t.segment.to_string(), t.target))
                    .collect()
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                vec![("mqls", "all".into(), 400.0), ("mqls", "all".into(), 500.0)],
                vec![("revenue", "source_kind=web_form".into(), 100000.0)]
            ]
        );
        assert_eq!(months[1][0].currency, "EUR");
        assert_eq!(agreement.commitments(PeriodKind::Quarter).len(), 1);
        assert_eq!(agreement.feedback_window_ms(), 48 * 3_600_000);
    }

    #[test]
    fn errors_name_the_key_and_what_is_allowed() {
        let err = |text: &str| parse(text).err().unwrap_or_default().join("; ");
        assert!(err("[[targets]]\ncommitment = \"mql\"\ntarget = 1")
            .contains("unknown variant `mql`, expected one of `mqls`, `acceptance_rate`"));
        assert!(
            err("[[targets]]\ncommitment = \"mqls\"\nperiod = \"week\"\ntarget = 1")
                .contains("unknown variant `week`, expected `month` or `quarter`")
        );
        assert_eq!(
            err("[[targets]]\ncommitment = \"acceptance_rate\"\ntarget = 80"),
            "targets[0].target: acceptance_rate is a rate, a fraction above 0 and at most 1 (0.8 for 80%)"
        );
        assert_eq!(
            err("[[targets]]\ncommitment = \"mqls\"\nteam = \"apac\"\ntarget = 10"),
            "targets[0].team: unknown team `apac`, expected one of emea, na"
        );
        assert_eq!(
            err("[[targets]]\ncommitment = \"mqls\"\nteam = \"na\"\ncampaign = \"x\"\ntarget = 10"),
            "targets[0].source_kind, campaign, team: at most one of them (none: all leads)"
        );
        assert_eq!(
            err("[[targets]]\ncommitment = \"revenue\"\ntarget = 10"),
            "targets[0].currency: required for revenue (an ISO 4217 code, e.g. EUR)"
        );
        assert_eq!(
            err("[[targets]]\ncommitment = \"mqls\"\ncurrency = \"EUR\"\ntarget = 10"),
            "targets[0].currency: only for the revenue commitment"
        );
        assert_eq!(
            err("[[targets]]\ncommitment = \"mqls\"\ntarget = 10\nfrom = \"2026-12-32\""),
            "targets[0].from: \"2026-12-32\" is not a day; expected YYYY-MM-DD, e.g. 2026-12-15"
        );
        assert_eq!(
            err("[[targets]]\ncommitment = \"mqls\"\ntarget = 10\n[[targets]]\ncommitment = \"mqls\"\ntarget = 20"),
            "targets: two entries for mqls of all from the beginning; give the later one its own `from` day"
        );
        assert_eq!(
            err("alert_below_pace = 1.5"),
            "alert_below_pace: 1.5 must be a fraction above 0 and at most 1 (0.9: alert below 90% of plan)"
        );
    }
}
