//! Every metric handoff exports. Naming (docs/metrics.md): `handoff_` prefix, snake_case,
//! base units (seconds), `_total` only on counters, label values from small closed sets
//! (team ids from the rules file, outcome and reason codes) — never raw error text or lead
//! data.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry,
};

/// Cloning is cheap: every field is an `Arc` inside.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// Leads accepted by ingest (published to lead.created).
    pub leads_received: IntCounter,
    /// Submissions refused, by reason (invalid, malformed, too_large, unsupported_media_type).
    pub leads_rejected: IntCounterVec,
    /// HTTP requests by route template and status code.
    pub http_requests: IntCounterVec,
    pub leads_assigned: IntCounterVec,
    pub leads_unqualified: IntCounter,
    /// Leads nobody could take, by team ("unrouted" when no rule matched).
    pub leads_overflowed: IntCounterVec,
    /// Time from a lead's receipt to its assignment.
    pub assignment_latency: Histogram,
    /// Lead scores, to watch the MQL model drift.
    pub lead_score: Histogram,
    pub sla_breaches: IntCounterVec,
    /// Time from assignment to first touch, by team.
    pub first_touch_seconds: HistogramVec,
    pub awaiting_first_touch: IntGauge,
    pub dispositions: IntCounterVec,
    /// Consumer-side errors, by service and kind (receive, transient, effect).
    pub consumer_errors: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    /// Events of a partition not yet processed by its consumer group (messages), by service,
    /// topic and partition; from librdkafka's statistics, for the partitions this process owns.
    pub consumer_lag: IntGaugeVec,
    /// Partitions this process consumes, by service.
    pub consumer_partitions_assigned: IntGaugeVec,
    /// Partitions assigned to or revoked from this process, by service and kind.
    pub consumer_rebalances: IntCounterVec,
    /// Webhook deliveries, by outcome (delivered, retried, failed, refused).
    pub webhook_deliveries: IntCounterVec,
    /// Rules file reloads, by outcome (applied, rejected).
    pub rules_reloads: IntCounterVec,
}

impl Metrics {
    pub fn new(registry: Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        // 5 ms .. ~11 min: from an instant route to a lead stuck behind an outage.
        let latency_buckets = exponential_buckets(0.005, 2.0, 18)?;
        let assignment_latency = Histogram::with_opts(
            HistogramOpts::new(
                "handoff_lead_assignment_latency_seconds",
                "Time from a lead's receipt to its assignment.",
            )
            .buckets(latency_buckets),
        )?;
        registry.register(Box::new(assignment_latency.clone()))?;
        let lead_score = Histogram::with_opts(
            HistogramOpts::new("handoff_lead_score_points", "Scores of routed leads.").buckets(
                vec![-50.0, -20.0, 0.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0],
            ),
        )?;
        registry.register(Box::new(lead_score.clone()))?;
        let first_touch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "handoff_sla_first_touch_seconds",
                "Time from assignment to the rep's first touch.",
            )
            .buckets(vec![
                15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0,
            ]),
            &["team"],
        )?;
        registry.register(Box::new(first_touch_seconds.clone()))?;
        let awaiting_first_touch = IntGauge::new(
            "handoff_leads_awaiting_first_touch",
            "Assigned leads whose first touch has not been reported yet.",
        )?;
        registry.register(Box::new(awaiting_first_touch.clone()))?;
        let gauge_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };

        Ok(Self {
            leads_received: counter(
                "handoff_leads_received_total",
                "Leads accepted by ingest and published to lead.created.",
            )?,
            leads_rejected: counter_vec(
                "handoff_leads_rejected_total",
                "Lead submissions refused, by reason.",
                &["reason"],
            )?,
            http_requests: counter_vec(
                "handoff_http_requests_total",
                "HTTP requests, by route and status code.",
                &["route", "status"],
            )?,
            leads_assigned: counter_vec(
                "handoff_leads_assigned_total",
                "Leads assigned to a rep, by team.",
                &["team"],
            )?,
            leads_unqualified: counter(
                "handoff_leads_unqualified_total",
                "Leads below the MQL threshold, sent to nurture.",
            )?,
            leads_overflowed: counter_vec(
                "handoff_leads_overflowed_total",
                "Leads no rep could take, queued, by team.",
                &["team"],
            )?,
            assignment_latency,
            lead_score,
            sla_breaches: counter_vec(
                "handoff_sla_breaches_total",
                "First-touch deadlines missed, by team.",
                &["team"],
            )?,
            first_touch_seconds,
            awaiting_first_touch,
            dispositions: counter_vec(
                "handoff_dispositions_total",
                "Dispositions published, by outcome.",
                &["outcome"],
            )?,
            consumer_errors: counter_vec(
                "handoff_consumer_errors_total",
                "Errors while consuming, by service and kind.",
                &["service", "kind"],
            )?,
            dead_lettered: counter_vec(
                "handoff_events_dead_lettered_total",
                "Events sent to the dead-letter topic, by service and reason.",
                &["service", "reason"],
            )?,
            consumer_lag: gauge_vec(
                "handoff_consumer_lag",
                "Events of a partition its consumer group has not processed yet (messages).",
                &["service", "topic", "partition"],
            )?,
            consumer_partitions_assigned: gauge_vec(
                "handoff_consumer_partitions_assigned",
                "Partitions this process consumes.",
                &["service"],
            )?,
            consumer_rebalances: counter_vec(
                "handoff_consumer_rebalances_total",
                "Partitions assigned to or revoked from this process, by kind (assigned, revoked).",
                &["service", "kind"],
            )?,
            webhook_deliveries: counter_vec(
                "handoff_webhook_deliveries_total",
                "Webhook delivery attempts, by outcome.",
                &["outcome"],
            )?,
            rules_reloads: counter_vec(
                "handoff_rules_reloads_total",
                "Rules file reloads, by outcome (applied, rejected).",
                &["outcome"],
            )?,
            registry,
        })
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}
