//! sla: tracks every assignment's first-touch deadline.
//!
//! - Consumes `lead.disposition`: a rep's first touch stops the clock and frees capacity.
//! - Consumes `lead.assigned`: adopts assignments other producers made (the router already
//!   scheduled its own deadlines in the same atomic step as the assignment).
//! - Polls the deadline set: due entries are claimed with a lease, `sla.breached` is
//!   published (stable event id per lead and attempt), then the claim is completed. A
//!   poller that dies mid-way leaves claims that are re-claimed after the lease.

mod poller;
mod touches;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::{KafkaSettings, RulesHandle, SlaSettings};
use handoff_domain::events::EventKind;
use handoff_domain::sla::SlaPolicy;
use handoff_kafka::{run_consumer, ConsumerSpec, EventProducer, KafkaError};
use handoff_store::Store;
use handoff_telemetry::Metrics;

pub use poller::SlaPoller;

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
    let policy = SlaPolicy {
        first_touch_seconds: deps.settings.first_touch_seconds,
    };
    let handler = touches::TouchHandler {
        store: deps.store.clone(),
        metrics: deps.metrics.clone(),
        rules: deps.rules,
        policy,
        lead_retention: deps.lead_retention,
    };
    let poller = SlaPoller::new(
        deps.store,
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
