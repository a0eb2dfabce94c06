//! Marketing's view of the pipeline (crates/handoff-funnel): leads by stage, source kind and
//! campaign, first-touch SLA attainment by team, and the feedback backlog. Label values come
//! from closed sets: stages and results below, reason codes from `ingest.reason_codes`, teams
//! from the rules file, source kinds and campaigns folded by `[funnel]` (anything else is
//! `other`, an empty one `none`).

use prometheus::{
    CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::Metrics;

/// The funnel's stages, in order (label `stage`).
pub const STAGES: [&str; 8] = [
    "received",
    "qualified",
    "unqualified",
    "assigned",
    "accepted",
    "rejected",
    "converted",
    "recycled",
];

/// Which SLA a breach missed (label `sla`).
pub const SLA_KINDS: [&str; 2] = ["first_touch", "disposition"];

/// Whether a first touch came within its window (label `result`).
pub const SLA_RESULTS: [&str; 2] = ["met", "missed"];

/// Cloning is cheap: every field is an `Arc` inside.
#[derive(Clone, Debug)]
pub struct FunnelMetrics {
    /// Leads reaching a stage, once per lead and stage.
    pub leads: IntCounterVec,
    /// Rejections by reason code.
    pub rejections: IntCounterVec,
    /// Receipt → first touch (speed to lead).
    pub time_to_first_touch: HistogramVec,
    /// First assignment → first outcome marketing can use.
    pub time_to_disposition: HistogramVec,
    /// First touches within their window (`met`) or not (`missed`), by team.
    pub first_touch_sla: IntCounterVec,
    /// SLA breaches by SLA, team, source kind and campaign.
    pub sla_breaches: IntCounterVec,
    /// Assigned leads without an outcome marketing can use after the backlog window.
    pub disposition_backlog: IntGauge,
    /// Assigned leads without an outcome marketing can use, of any age.
    pub awaiting_disposition: IntGauge,
    /// Assigned leads past their first-touch deadline and still untouched.
    pub first_touch_overdue: IntGauge,
    /// Converted leads' value, by source kind, campaign, team and currency.
    pub revenue: CounterVec,
    /// Leads' first feedback within the agreement's feedback window (`met`) or after it.
    pub feedback: IntCounterVec,
    /// The agreement scorecard of the current periods (handoff-domain's scorecard), one
    /// series per commitment: labels period (month, quarter), commitment, side, segment,
    /// currency.
    pub scorecard: ScorecardGauges,
}

/// The scorecard's figures as gauges (see `FunnelMetrics::scorecard`).
#[derive(Clone, Debug)]
pub struct ScorecardGauges {
    pub target: GaugeVec,
    /// Counts: the sum so far; rates: the ratio so far (absent while nothing is measured).
    pub actual: GaugeVec,
    /// Counts only: what the plan expects by now.
    pub expected: GaugeVec,
    pub projected: GaugeVec,
    /// 1 on track, 0 behind (absent: no data or not started).
    pub on_track: GaugeVec,
    /// `agreement.alert_below_pace`, for the alert rules.
    pub alert_below_pace: prometheus::Gauge,
}

/// The scorecard gauges' labels.
pub const SCORECARD_LABELS: [&str; 5] = ["period", "commitment", "side", "segment", "currency"];

impl ScorecardGauges {
    /// Forgets every series (before the next computation sets the current ones).
    pub fn reset(&self) {
        for g in [
            &self.target,
            &self.actual,
            &self.expected,
            &self.projected,
            &self.on_track,
        ] {
            g.reset();
        }
    }
}

impl FunnelMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let histogram_vec = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets),
                &["source_kind", "campaign"],
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        Ok(Self {
            leads: counter_vec(
                "handoff_funnel_leads_total",
                "Leads reaching a funnel stage (once per lead), by stage, source kind and campaign.",
                &["stage", "source_kind", "campaign"],
            )?,
            rejections: counter_vec(
                "handoff_funnel_rejections_total",
                "Leads rejected by sales, by reason code, source kind and campaign.",
                &["reason", "source_kind", "campaign"],
            )?,
            // Seconds to a day: a form answered at once to a lead found the next morning.
            time_to_first_touch: histogram_vec(
                "handoff_funnel_time_to_first_touch_seconds",
                "Time from a lead's receipt to its first touch (speed to lead).",
                vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0,
                    86400.0,
                ],
            )?,
            // Up to a week: the feedback SLA is 48 h by default.
            time_to_disposition: histogram_vec(
                "handoff_funnel_time_to_disposition_seconds",
                "Time from a lead's first assignment to the first outcome marketing can use.",
                vec![
                    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 172800.0,
                    259200.0, 604800.0,
                ],
            )?,
            first_touch_sla: counter_vec(
                "handoff_funnel_first_touch_sla_total",
                "Assignments whose first touch came within the window (met) or not (missed), by team.",
                &["team", "result"],
            )?,
            sla_breaches: counter_vec(
                "handoff_funnel_sla_breaches_total",
                "SLA breaches, by SLA (first_touch, disposition), team, source kind and campaign.",
                &["sla", "team", "source_kind", "campaign"],
            )?,
            disposition_backlog: gauge(
                "handoff_funnel_disposition_backlog",
                "Assigned leads with no outcome marketing can use after the feedback window (funnel.backlog_after_seconds).",
            )?,
            awaiting_disposition: gauge(
                "handoff_funnel_awaiting_disposition",
                "Assigned leads with no outcome marketing can use yet.",
            )?,
            first_touch_overdue: gauge(
                "handoff_funnel_first_touch_overdue",
                "Assigned leads past their first-touch deadline and not yet touched.",
            )?,
            revenue: {
                let c = CounterVec::new(
                    Opts::new(
                        "handoff_funnel_revenue_total",
                        "Value of converted leads in units of their currency, by source kind, campaign, team and currency.",
                    ),
                    &["source_kind", "campaign", "team", "currency"],
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            feedback: counter_vec(
                "handoff_funnel_feedback_total",
                "Leads' first feedback within the agreement's feedback window (met) or after it (missed), by team.",
                &["team", "result"],
            )?,
            scorecard: {
                let gauge_vec = |name: &str, help: &str| {
                    let g = GaugeVec::new(Opts::new(name, help), &SCORECARD_LABELS)?;
                    registry.register(Box::new(g.clone()))?;
                    Ok::<_, prometheus::Error>(g)
                };
                let pace = prometheus::Gauge::new(
                    "handoff_scorecard_alert_below_pace",
                    "The agreement's alert threshold: a count's pace below this fraction of plan is behind.",
                )?;
                registry.register(Box::new(pace.clone()))?;
                ScorecardGauges {
                    target: gauge_vec(
                        "handoff_scorecard_target",
                        "The agreement's target for the current period (counts: per period, pro-rated across changes; rates: a fraction).",
                    )?,
                    actual: gauge_vec(
                        "handoff_scorecard_actual",
                        "The current period's actual (counts: so far; rates: the ratio so far).",
                    )?,
                    expected: gauge_vec(
                        "handoff_scorecard_expected",
                        "Counts: what the plan expects by now in the current period.",
                    )?,
                    projected: gauge_vec(
                        "handoff_scorecard_projected",
                        "The end-of-period value at the pace so far (rates: the ratio so far).",
                    )?,
                    on_track: gauge_vec(
                        "handoff_scorecard_on_track",
                        "1 when the commitment is on track, 0 when behind.",
                    )?,
                    alert_below_pace: pace,
                }
            },
        })
    }

    /// Creates every series of one source kind and campaign at zero. A series that first
    /// appears at its first increment shows Prometheus no increase (its first sample is
    /// already 1), so rate() and increase() would miss it; one that exists at 0 does not.
    pub fn prime_source(&self, source_kind: &str, campaign: &str, reasons: &[String]) {
        for stage in STAGES {
            self.leads
                .with_label_values(&[stage, source_kind, campaign]);
        }
        for reason in reasons {
            self.rejections
                .with_label_values(&[reason.as_str(), source_kind, campaign]);
        }
        self.time_to_first_touch
            .with_label_values(&[source_kind, campaign]);
        self.time_to_disposition
            .with_label_values(&[source_kind, campaign]);
    }

    /// Creates a team's series at zero (see [`FunnelMetrics::prime_source`]).
    pub fn prime_team(&self, team: &str) {
        for result in SLA_RESULTS {
            self.first_touch_sla.with_label_values(&[team, result]);
            self.feedback.with_label_values(&[team, result]);
        }
    }
}

/// Creates the shared metrics' per-team series, the rules-reload and webhook outcomes, at
/// zero (see [`FunnelMetrics::prime_source`]): the ops dashboard's rates then see the first
/// assignment, breach, rejected reload and failed webhook too. (The consume loop does the
/// same for its error series.)
pub fn prime_known_series(metrics: &Metrics, teams: &[&str]) {
    for team in teams {
        metrics.leads_assigned.with_label_values(&[team]);
        metrics.leads_overflowed.with_label_values(&[team]);
        for sla in SLA_KINDS {
            metrics.sla_breaches.with_label_values(&[team, sla]);
        }
        metrics.first_touch_seconds.with_label_values(&[team]);
    }
    for sla in SLA_KINDS {
        metrics.sla_reminders.with_label_values(&[sla]);
    }
    for kind in ["breach", "reminder"] {
        metrics.sla_claims_lost.with_label_values(&[kind]);
    }
    for outcome in ["applied", "rejected"] {
        metrics.rules_reloads.with_label_values(&[outcome]);
    }
    for outcome in ["delivered", "retried", "failed", "refused"] {
        metrics.webhook_deliveries.with_label_values(&[outcome]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primed_series_are_exported_at_zero() {
        let registry = Registry::new();
        let metrics = Metrics::new(registry.clone()).unwrap_or_else(|e| panic!("{e}"));
        let funnel = FunnelMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        funnel.prime_source("web_form", "other", &["spam".to_owned()]);
        funnel.prime_team("sales");
        prime_known_series(&metrics, &["sales"]);
        let text = metrics.render();
        for line in [
            r#"handoff_funnel_leads_total{campaign="other",source_kind="web_form",stage="accepted"} 0"#,
            r#"handoff_funnel_rejections_total{campaign="other",reason="spam",source_kind="web_form"} 0"#,
            r#"handoff_funnel_first_touch_sla_total{result="missed",team="sales"} 0"#,
            r#"handoff_leads_assigned_total{team="sales"} 0"#,
            r#"handoff_sla_breaches_total{sla="disposition",team="sales"} 0"#,
            r#"handoff_sla_reminders_total{sla="first_touch"} 0"#,
            r#"handoff_rules_reloads_total{outcome="rejected"} 0"#,
            r#"handoff_funnel_time_to_first_touch_seconds_count{campaign="other",source_kind="web_form"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
