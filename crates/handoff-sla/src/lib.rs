//! sla: tracks every assignment's first-touch deadline (and every queued lead's, from
//! receipt), and moves leads through their lifecycle from what reps and CRMs report.
//!
//! - Consumes `lead.disposition`: a touch stops the clock (and frees the rep, by policy);
//!   a close ends the lead; a touch before the assignment is recorded for it to see; a
//!   report for a closed lead is refused (logged, counted), never applied.
//! - Consumes `lead.assigned`: adopts assignments other producers made (the router already
//!   scheduled its own deadlines in the same atomic step as the assignment).
//! - Schedules, per assignment, reminders at `sla.reminder_fractions` of the first-touch
//!   window, and the disposition deadline (from the first touch, in the report's own
//!   step, or from the assignment, by `sla.disposition_from`) with its reminders.
//! - Polls the deadline and reminder sets: due entries (by the Redis server's clock) are
//!   claimed with a lease and a random token per round, `sla.breached` / `sla.reminder`
//!   is published (stable event id per lead, attempt and SLA, and fraction), then the
//!   claims are completed, each only if still the round's. A reminder whose lead no longer
//!   waits for what it asks (touched, disposed of, closed, reassigned) is dropped
//!   silently. A poller that dies mid-way leaves claims that are re-claimed after the
//!   lease (docs/sla-claims.md).

mod clocks;
mod poller;
mod touches;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::{KafkaSettings, RulesHandle, SlaSettings};
use handoff_domain::events::EventKind;
use handoff_kafka::{run_consumer, ConsumerSpec, EventProducer, KafkaError};
use handoff_store::Store;
use handoff_telemetry::Metrics;

pub use clocks::Clocks;
pub use poller::SlaPoller;
pub use touches::record_report;

#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

#[derive(Debug, Clone)]
pub struct SlaDeps {
    pub kafka: KafkaSettings,
    pub settings: SlaSettings,
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub rules: RulesHandle,
    pub lead_retention: Duration,
    pub closed_retention: Duration,
    pub drain: Duration,
}

/// Runs the consumer and the poller until `shutdown`; the first to fail stops both.
pub async fn run(deps: SlaDeps, shutdown: CancellationToken) -> Result<(), SlaError> {
    let topics = deps.producer.topics().clone();
    let spec = ConsumerSpec {
        service: "sla",
        topics: vec![
            topics.of(EventKind::LeadAssigned),
            topics.of(EventKind::LeadDisposition),
        ],
        max_in_flight: 1024,
        drain: deps.drain,
    };
    let handler = touches::TouchHandler {
        store: deps.store.clone(),
        metrics: deps.metrics.clone(),
        release: deps.settings.release_capacity_on,
        lead_retention: deps.lead_retention,
        closed_retention: deps.closed_retention,
        clocks: Clocks::new(&deps.settings, deps.rules.clone()),
    };
    let poller = SlaPoller::new(
        deps.store,
        deps.rules,
        deps.producer.clone(),
        deps.metrics.clone(),
        &deps.settings,
    );
    // The consumer failing stops the poller too, so the process exits and is restarted whole.
    let stop = shutdown.child_token();
    let poll = tokio::spawn(poller.run(stop.clone()));
    let consumed = run_consumer(
        &deps.kafka,
        spec,
        handler,
        deps.producer,
        deps.metrics,
        stop.clone(),
    )
    .await;
    stop.cancel();
    if let Err(e) = poll.await {
        tracing::error!(error = %e, "SLA poller task failed");
    }
    consumed?;
    Ok(())
}
