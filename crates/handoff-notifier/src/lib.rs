//! notifier: tells reps (and their team and manager channels) about assignments, reminders,
//! SLA breaches and escalations by POSTing signed JSON (or Slack Block Kit) to webhooks.
//! A rep's own channel gets the lead's contact details and accept/reject links
//! (`message`, `links`; docs/notifier.md).
//!
//! ```text
//!  handler (event → Notification, body from `message`)
//!     └─► delivery: store in Redis, one attempt per permit ─► attempt (signed POST)
//!            ▲    failed: delayed set (backoff) / circuit open: delayed set
//!            └── retry poller (claims due deliveries with a lease)
//! ```
//! Deliveries are durable in Redis from the moment the event is handled (then its offset
//! may be stored): a permit is held only during one attempt, never across a backoff, and
//! a restart loses no pending retry. A circuit breaker per webhook URL keeps a dead
//! receiver from costing anyone else time. Delivered (event, URL) pairs are remembered for
//! a window, so a redelivered event is not sent twice. A delivery that fails for good (a
//! refusal, or its attempts or age used up) sends the event to the dead-letter topic with
//! the reason: it is never dropped silently. Semantics: docs/notifier.md.
//!
//! Webhooks reach only public addresses unless `notifier.allowed_private_targets` names
//! them, judged on the address connected to (`egress`); redirects are never followed.

mod attempt;
mod breaker;
mod delivery;
mod egress;
mod handler;
mod links;
mod message;
mod retry;
mod signature;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::{ActionLinkSettings, KafkaSettings, NotifierSettings, RulesHandle};
use handoff_domain::events::EventKind;
use handoff_kafka::{run_consumer, ConsumerSpec, EventProducer, KafkaError};
use handoff_store::Store;
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
    /// The accept/reject links (off without `actions.public_url` and its key).
    pub actions: ActionLinkSettings,
    /// Pending deliveries, their retry schedule and the de-duplication markers.
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub rules: RulesHandle,
    pub drain: Duration,
}

/// Consumes assignments and breaches and polls the retry schedule until `shutdown`; then
/// waits up to `drain` for attempts in flight (an abandoned one comes back after its lease).
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
            topics.of(EventKind::LeadDisposition),
        ],
        // Handling an event ends once its delivery is stored: the window holds no webhooks.
        max_in_flight: deps.settings.concurrency.max(1) * 4,
        drain: deps.drain,
    };
    let deliveries = delivery::Deliveries::new(
        &deps.settings,
        deps.store.clone(),
        deps.producer.clone(),
        deps.metrics.clone(),
    )?;
    let poller = retry::RetryPoller::new(
        deliveries.clone(),
        Duration::from_millis(deps.settings.retry_poll_interval_ms),
        Duration::from_millis(deps.settings.claim_lease_ms),
        deps.producer.gate().clone(),
    );
    // The consumer failing stops the poller too, so the process exits and is restarted whole.
    let stop = shutdown.child_token();
    let poller = tokio::spawn(poller.run(stop.clone()));
    let signer = links::LinkSigner::new(&deps.actions);
    if signer.is_none() {
        tracing::info!(
            "actions.public_url (or its key) is not set: messages carry no accept/reject links"
        );
    }
    let handler =
        handler::NotifierHandler::new(deliveries.clone(), deps.rules, deps.store.clone(), signer);
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
    if let Err(e) = poller.await {
        tracing::error!(error = %e, "webhook retry poller task failed");
    }
    let tracker = deliveries.tracker();
    tracker.close();
    if tokio::time::timeout(deps.drain, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = tracker.len(),
            "webhook attempts still in flight at the drain deadline; they are retried after their claim's lease"
        );
    }
    consumed?;
    Ok(())
}
