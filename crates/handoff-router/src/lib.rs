//! router: consumes `lead.created`, scores the lead against the shared MQL definition,
//! picks a rep with the routing rules, and commits the decision in one atomic Redis step
//! before publishing `lead.assigned` (or a `lead.disposition` for nurture and overflow).
//!
//! Redelivery is safe: a lead already assigned republishes the recorded event (same event
//! id) and charges no capacity again.

mod handler;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::{KafkaSettings, RulesHandle};
use handoff_domain::events::EventKind;
use handoff_domain::sla::SlaPolicy;
use handoff_kafka::{run_consumer, ConsumerSpec, EventProducer, KafkaError};
use handoff_store::Store;
use handoff_telemetry::Metrics;

pub use handler::RouterHandler;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

#[derive(Debug, Clone)]
pub struct RouterDeps {
    pub kafka: KafkaSettings,
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub rules: RulesHandle,
    pub sla: SlaPolicy,
    pub lead_retention: Duration,
    pub max_in_flight: usize,
    pub drain: Duration,
}

/// Routes leads until `shutdown` is cancelled; then drains and commits.
pub async fn run(deps: RouterDeps, shutdown: CancellationToken) -> Result<(), RouterError> {
    let topics = deps.producer.topics().clone();
    let spec = ConsumerSpec {
        service: "router",
        topics: vec![topics.of(EventKind::LeadCreated)],
        max_in_flight: deps.max_in_flight,
        drain: deps.drain,
    };
    let handler = RouterHandler::new(
        deps.store,
        deps.producer.clone(),
        deps.metrics.clone(),
        deps.rules,
        deps.sla,
        deps.lead_retention,
    );
    run_consumer(
        &deps.kafka,
        spec,
        handler,
        deps.producer,
        deps.metrics,
        shutdown,
    )
    .await?;
    Ok(())
}
