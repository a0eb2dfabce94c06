//! notifier: tells reps (and their team channels) about assignments and SLA breaches by
//! POSTing signed JSON to webhooks. Slack incoming webhooks read the `text` field; other
//! receivers get the structured fields too.
//!
//! Each delivery runs on its own (bounded) task with retries and backoff, so one slow or
//! failing webhook does not hold up other leads. A delivery that fails for good sends the
//! event to the dead-letter topic: it is never dropped silently.
//!
//! Webhooks reach only public addresses unless `notifier.allowed_private_targets` names
//! them, judged on the address connected to (`egress`); redirects are never followed.

mod egress;
mod handler;
mod message;
mod signature;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::{KafkaSettings, NotifierSettings, RulesHandle};
use handoff_domain::events::EventKind;
use handoff_kafka::{run_consumer, ConsumerSpec, EventProducer, KafkaError};
use handoff_telemetry::Metrics;

pub use egress::RefusedTarget;
pub use signature::{sign, verify, verify_at, SignatureError, SIGNATURE_HEADER, TOLERANCE};

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

#[derive(Debug, Clone)]
pub struct NotifierDeps {
    pub kafka: KafkaSettings,
    pub settings: NotifierSettings,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub rules: RulesHandle,
    pub drain: Duration,
}

pub async fn run(deps: NotifierDeps, shutdown: CancellationToken) -> Result<(), NotifierError> {
    if deps.settings.signing_secret.is_empty() {
        tracing::warn!("notifier.signing_secret is empty: webhooks are sent unsigned and receivers cannot verify them");
    }
    let topics = deps.producer.topics().clone();
    let spec = ConsumerSpec {
        service: "notifier",
        topics: vec![
            topics.of(EventKind::LeadAssigned),
            topics.of(EventKind::SlaBreached),
            topics.of(EventKind::SlaReminder),
        ],
        max_in_flight: deps.settings.concurrency.max(1) * 4,
        drain: deps.drain,
    };
    let handler = handler::NotifierHandler::new(
        &deps.settings,
        deps.rules,
        deps.producer.clone(),
        deps.metrics.clone(),
    )?;
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
