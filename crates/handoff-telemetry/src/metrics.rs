//! Every metric handoff exports. Naming (docs/metrics.md): `handoff_` prefix, snake_case,
//! base units (seconds), `_total` only on counters, label values from small closed sets
//! (team ids from the rules file, outcome and reason codes) — never raw error text or lead
//! data.

use prometheus::{
    exponential_buckets, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
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
    /// Routing commits that found the team's state moved since it was read and decided
    /// again, by kind (assign, reassign).
    pub routing_conflicts: IntCounterVec,
    /// Time from a lead's receipt to its assignment.
    pub assignment_latency: Histogram,
    /// Lead scores, to watch the MQL model drift.
    pub lead_score: Histogram,
    /// Missed deadlines, by team and SLA (first_touch, disposition).
    pub sla_breaches: IntCounterVec,
    /// Reminders sent before a deadline, by SLA.
    pub sla_reminders: IntCounterVec,
    /// Claims a poller could not complete: its lease ran out and another poller took the
    /// entry (which publishes it again, same event id), by kind (breach, reminder).
    pub sla_claims_lost: IntCounterVec,
    /// Time from assignment to first touch, by team.
    pub first_touch_seconds: HistogramVec,
    pub awaiting_first_touch: IntGauge,
    pub dispositions: IntCounterVec,
    /// Consumer-side errors, by service and kind (receive, transient, effect).
    pub consumer_errors: IntCounterVec,
    /// How long handling one event took (its last attempt, up to its effects being
    /// enqueued; their acknowledgement is not in it), by service.
    pub consumer_handle_seconds: HistogramVec,
    pub dead_lettered: IntCounterVec,
    /// Events of a partition not yet processed by its consumer group (messages), by service,
    /// topic and partition; from librdkafka's statistics, for the partitions this process owns.
    pub consumer_lag: IntGaugeVec,
    /// Partitions this process consumes, by service.
    pub consumer_partitions_assigned: IntGaugeVec,
    /// Partitions assigned to or revoked from this process, by service and kind.
    pub consumer_rebalances: IntCounterVec,
    /// Webhook delivery attempts and skips, by outcome (delivered, retried, failed,
    /// refused, duplicate).
    pub webhook_deliveries: IntCounterVec,
    /// Deliveries put in the delayed set, by reason (attempt_failed, circuit_open,
    /// destination_busy).
    pub webhook_retries_scheduled: IntCounterVec,
    /// Open circuits, by webhook host (a host from the rules file: a closed set).
    pub webhook_circuits_open: IntGaugeVec,
    /// Time from the notifier first seeing an event to the receiver's 2xx.
    pub webhook_delivery_latency: Histogram,
    /// Deliveries stored and not yet delivered or given up (retries waiting, in flight).
    pub webhook_pending: IntGauge,
    /// Rules file reloads, by outcome (applied, rejected).
    pub rules_reloads: IntCounterVec,
    /// Leads waiting per queue (queues from the rules and any that held a lead).
    pub queue_depth: IntGaugeVec,
    /// How long the oldest lead of each queue has waited (0 when empty).
    pub queue_oldest_wait_seconds: GaugeVec,
    /// Leads routed from a queue, by queue.
    pub queue_drained: IntCounterVec,
    /// Time leads waited in a queue before their assignment.
    pub queue_wait_seconds: Histogram,
    /// Derived state repaired by reconciliation, by kind (stale_open, missing_open,
    /// stale_queued, missing_deadline): should stay 0.
    pub capacity_drift: IntCounterVec,
    /// Reported outcomes not applied, by reason (closed, unknown_lead).
    pub reports_refused: IntCounterVec,
    /// Missed first touches acted on, by team (whose attempt it was) and outcome
    /// (reassigned, escalated).
    pub escalations: IntCounterVec,
    /// `account.owner` records applied, by outcome (applied, stale, removed).
    pub account_owner_records: IntCounterVec,
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
        // 0.1 ms .. ~13 s: from a lead decided on an idle Redis to one behind a slow one.
        let consumer_handle_seconds = HistogramVec::new(
            HistogramOpts::new(
                "handoff_consumer_handle_seconds",
                "Time handling one consumed event took (its last attempt; the acknowledgement of \
                 what it published is not in it), by service.",
            )
            .buckets(exponential_buckets(0.0001, 2.0, 18)?),
            &["service"],
        )?;
        registry.register(Box::new(consumer_handle_seconds.clone()))?;
        let awaiting_first_touch = IntGauge::new(
            "handoff_leads_awaiting_first_touch",
            "Leads holding reps' capacity: assigned, first touch not reported yet (also touched \
             ones when capacity is released on close).",
        )?;
        registry.register(Box::new(awaiting_first_touch.clone()))?;
        let webhook_circuits_open = IntGaugeVec::new(
            Opts::new(
                "handoff_webhook_circuits_open",
                "Webhook URLs whose circuit is open (or half-open), by host, in this process.",
            ),
            &["host"],
        )?;
        registry.register(Box::new(webhook_circuits_open.clone()))?;
        let webhook_delivery_latency = Histogram::with_opts(
            HistogramOpts::new(
                "handoff_webhook_delivery_latency_seconds",
                "Time from the notifier first seeing an event to the webhook's 2xx, retries included.",
            )
            // Around the 5-minute SLA, with 1 s as a bucket: "not delayed by more than a second".
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                1800.0, 3600.0,
            ]),
        )?;
        registry.register(Box::new(webhook_delivery_latency.clone()))?;
        let webhook_pending = IntGauge::new(
            "handoff_webhook_pending_deliveries",
            "Webhook deliveries stored and not yet delivered or given up.",
        )?;
        registry.register(Box::new(webhook_pending.clone()))?;
        let queue_depth = IntGaugeVec::new(
            Opts::new("handoff_queue_depth", "Leads waiting in a queue."),
            &["queue"],
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        let queue_oldest_wait_seconds = GaugeVec::new(
            Opts::new(
                "handoff_queue_oldest_wait_seconds",
                "How long the oldest lead of a queue has waited.",
            ),
            &["queue"],
        )?;
        registry.register(Box::new(queue_oldest_wait_seconds.clone()))?;
        let queue_wait_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "handoff_queue_wait_seconds",
                "Time leads waited in a queue before their assignment.",
            )
            .buckets(exponential_buckets(1.0, 2.0, 18)?),
        )?;
        registry.register(Box::new(queue_wait_seconds.clone()))?;
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
            routing_conflicts: counter_vec(
                "handoff_routing_conflicts_total",
                "Routing commits that found the team's state moved since it was read (another instance decided for the team meanwhile) and decided again, by kind (assign, reassign).",
                &["kind"],
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
                "Deadlines missed, by team and SLA (first_touch, disposition).",
                &["team", "sla"],
            )?,
            sla_reminders: counter_vec(
                "handoff_sla_reminders_total",
                "Reminders sent to the rep before a deadline, by SLA.",
                &["sla"],
            )?,
            sla_claims_lost: counter_vec(
                "handoff_sla_claims_lost_total",
                "SLA claims whose lease ran out before their poller completed them (another poller re-claimed them), by kind (breach, reminder).",
                &["kind"],
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
            consumer_handle_seconds,
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
            webhook_retries_scheduled: counter_vec(
                "handoff_webhook_retries_scheduled_total",
                "Webhook deliveries put in the delayed set, by reason.",
                &["reason"],
            )?,
            webhook_circuits_open,
            webhook_delivery_latency,
            webhook_pending,
            rules_reloads: counter_vec(
                "handoff_rules_reloads_total",
                "Rules file reloads, by outcome (applied, rejected).",
                &["outcome"],
            )?,
            queue_depth,
            queue_oldest_wait_seconds,
            queue_drained: counter_vec(
                "handoff_queue_drained_total",
                "Leads routed from a queue once someone could take them, by queue.",
                &["queue"],
            )?,
            queue_wait_seconds,
            capacity_drift: counter_vec(
                "handoff_capacity_drift_total",
                "Derived routing state repaired by reconciliation, by kind.",
                &["kind"],
            )?,
            reports_refused: counter_vec(
                "handoff_reports_refused_total",
                "Reported outcomes not applied to the lead, by reason.",
                &["reason"],
            )?,
            escalations: counter_vec(
                "handoff_escalations_total",
                "Missed first touches acted on, by team and outcome (reassigned, escalated).",
                &["team", "outcome"],
            )?,
            account_owner_records: counter_vec(
                "handoff_account_owner_records_total",
                "account.owner records, by outcome (applied, stale, removed).",
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
