//! The at-least-once consume loop every service runs.
//!
//! ```text
//!  recv ──► handler.handle(event) ──► Effects (a future: produce acks, webhook, ...)
//!               │  Poison ──► dead-letter record (its ack is the effect)
//!               │  Transient ──► retry the same event with backoff (never skipped)
//!               ▼
//!        spawn(effects) ──► [in-order queue] ──► acker: await each, store offset+1
//! ```
//! Effects run concurrently, but offsets are stored strictly in consumption order, so a
//! stored offset always means "this and everything before it is durable". If an effect
//! fails for good, nothing after it is stored and the loop stops with an error: the
//! events are redelivered to whoever consumes the partition next.
//!
//! A panic while handling an event, or in its effects, is caught and the event is
//! dead-lettered (`handler_panic`): a bug triggered by one event must not stop the
//! partition behind it, and a consumer that crashed on it would crash again on every
//! redelivery.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use handoff_config::KafkaSettings;
use handoff_telemetry::Metrics;

use crate::{consumer_config, EventProducer, InboundEvent, KafkaError};

/// What must become durable before an event's offset may be stored.
pub type Effects = BoxFuture<'static, Result<(), KafkaError>>;

/// Why an event can never be processed (a closed set: it is a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonReason {
    /// Not JSON, or no payload.
    Undecodable,
    /// JSON, but not a valid message of the contract (unknown field, wrong type, invalid lead).
    ContractInvalid,
    /// A `ce_type` this topic does not carry.
    UnexpectedType,
    /// Its effect (e.g. a webhook) failed for good after every retry.
    DeliveryFailed,
    /// Handling it (or its effects) panicked: a bug, caught so the partition keeps moving.
    HandlerPanic,
}

impl PoisonReason {
    pub const ALL: [PoisonReason; 5] = [
        PoisonReason::Undecodable,
        PoisonReason::ContractInvalid,
        PoisonReason::UnexpectedType,
        PoisonReason::DeliveryFailed,
        PoisonReason::HandlerPanic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoisonReason::Undecodable => "undecodable",
            PoisonReason::ContractInvalid => "contract_invalid",
            PoisonReason::UnexpectedType => "unexpected_type",
            PoisonReason::DeliveryFailed => "delivery_failed",
            PoisonReason::HandlerPanic => "handler_panic",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The event can never be processed: dead-letter it and move on.
    #[error("{reason:?}: {detail}")]
    Poison {
        reason: PoisonReason,
        detail: String,
    },
    /// A dependency is down (Redis, the broker): retry the same event later.
    #[error("transient: {0}")]
    Transient(String),
}

impl HandleError {
    pub fn poison(reason: PoisonReason, detail: impl Into<String>) -> Self {
        Self::Poison {
            reason,
            detail: detail.into(),
        }
    }

    pub fn transient(error: impl std::fmt::Display) -> Self {
        Self::Transient(error.to_string())
    }
}

/// A service's reaction to one event.
pub trait EventHandler: Send + Sync + 'static {
    /// Performs the event's synchronous effects (e.g. a Redis script) and returns the ones
    /// still in flight (e.g. produce acknowledgements).
    fn handle(
        &self,
        event: &InboundEvent,
    ) -> impl Future<Output = Result<Effects, HandleError>> + Send;
}

/// Which topics, as which group, under which name.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Short service name: log field, metric label, and the consumer group
    /// (`<kafka.group_prefix>-<service>`).
    pub service: &'static str,
    pub topics: Vec<String>,
    /// Events whose effects are not yet durable, at most (back-pressure).
    pub max_in_flight: usize,
    /// How long shutdown waits for in-flight effects before giving up on them (they are
    /// then redelivered, never lost).
    pub drain: Duration,
}

struct LoggingContext {
    service: &'static str,
}

impl ClientContext for LoggingContext {}

impl ConsumerContext for LoggingContext {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        // With enable.auto.commit, librdkafka commits the stored offsets of revoked
        // partitions itself; effects still in flight for them are redelivered to the new
        // owner, which is safe because every effect is idempotent.
        if let Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(
                service = self.service,
                partitions = partitions.count(),
                "partitions revoked"
            );
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(
                    service = self.service,
                    partitions = partitions.count(),
                    "partitions assigned"
                )
            }
            Rebalance::Error(e) => {
                tracing::warn!(service = self.service, error = %e, "rebalance error")
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

struct InFlight {
    topic: String,
    partition: i32,
    offset: i64,
    effects: JoinHandle<Result<(), KafkaError>>,
}

/// Runs the loop until `shutdown` is cancelled (then drains and commits) or an effect
/// fails for good (then returns the error without storing anything after it).
pub async fn run_consumer<H: EventHandler>(
    kafka: &KafkaSettings,
    spec: ConsumerSpec,
    handler: H,
    producer: EventProducer,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(), KafkaError> {
    let group = format!("{}-{}", kafka.group_prefix, spec.service);
    let consumer: std::sync::Arc<StreamConsumer<LoggingContext>> = std::sync::Arc::new(
        consumer_config(kafka, &group, &format!("handoff-{}", spec.service)).create_with_context(
            LoggingContext {
                service: spec.service,
            },
        )?,
    );
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(service = spec.service, %group, topics = ?spec.topics, "consuming");
    // Every error series at zero: one that first appears at its first error shows rate()
    // no increase (docs/metrics.md).
    for kind in ["receive", "transient", "effect"] {
        metrics
            .consumer_errors
            .with_label_values(&[spec.service, kind]);
    }
    for reason in PoisonReason::ALL {
        metrics
            .dead_lettered
            .with_label_values(&[spec.service, reason.as_str()]);
    }

    let (queue, pending) = mpsc::channel::<InFlight>(spec.max_in_flight.max(1));
    let failed = CancellationToken::new();
    let acker = tokio::spawn(store_offsets_in_order(
        consumer.clone(),
        pending,
        failed.clone(),
        metrics.clone(),
        spec.service,
    ));

    let mut receive_backoff = Backoff::new();
    loop {
        let message = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = failed.cancelled() => break,
            message = consumer.recv() => message,
        };
        let event = match message {
            Ok(message) => {
                receive_backoff.reset();
                InboundEvent::from_message(&message)
            }
            Err(e) => {
                metrics
                    .consumer_errors
                    .with_label_values(&[spec.service, "receive"])
                    .inc();
                tracing::warn!(service = spec.service, error = %e, "receive failed; retrying");
                receive_backoff.wait(&shutdown).await;
                continue;
            }
        };
        let Some(effects) = process(
            &handler,
            &event,
            &producer,
            &metrics,
            spec.service,
            &shutdown,
        )
        .await
        else {
            // Shut down while retrying: the event is not stored and will be redelivered.
            break;
        };
        let in_flight = InFlight {
            topic: event.topic.clone(),
            partition: event.partition,
            offset: event.offset,
            effects: tokio::spawn(dead_letter_on_panic(
                effects,
                event,
                producer.clone(),
                metrics.clone(),
                spec.service,
            )),
        };
        if queue.send(in_flight).await.is_err() {
            break;
        }
    }

    drop(queue);
    let drained = tokio::time::timeout(spec.drain, acker).await;
    let outcome = match drained {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) => Err(KafkaError::EffectFailed(join.to_string())),
        Err(_) => {
            tracing::warn!(
                service = spec.service,
                "drain deadline passed; unfinished events will be redelivered"
            );
            Ok(())
        }
    };
    match consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        Ok(()) | Err(RdKafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(service = spec.service, error = %e, "final commit failed; the last events may be redelivered")
        }
    }
    consumer.unsubscribe();
    tracing::info!(service = spec.service, "consumer stopped");
    outcome
}

/// Handles one event until it yields effects: poison (and a panic) goes to the dead-letter
/// topic, transient errors are retried. `None` if shutdown came first.
async fn process<H: EventHandler>(
    handler: &H,
    event: &InboundEvent,
    producer: &EventProducer,
    metrics: &Metrics,
    service: &'static str,
    shutdown: &CancellationToken,
) -> Option<Effects> {
    let mut backoff = Backoff::new();
    loop {
        // The call is inside the async block so that a panic before its first await is
        // caught too.
        let handled = AssertUnwindSafe(async { handler.handle(event).await })
            .catch_unwind()
            .await;
        let (reason, detail) = match handled {
            Ok(Ok(effects)) => return Some(effects),
            Ok(Err(HandleError::Poison { reason, detail })) => (reason, detail),
            Err(panic) => (PoisonReason::HandlerPanic, panic_message(&*panic)),
            Ok(Err(HandleError::Transient(error))) => {
                retrying(metrics, service, event, &error);
                if !backoff.wait(shutdown).await {
                    return None;
                }
                continue;
            }
        };
        match dead_letter(producer, metrics, service, event, reason, &detail).await {
            Ok(ack) => return Some(ack),
            Err(e) => {
                retrying(metrics, service, event, &e.to_string());
                if !backoff.wait(shutdown).await {
                    return None;
                }
            }
        }
    }
}

fn retrying(metrics: &Metrics, service: &'static str, event: &InboundEvent, error: &str) {
    metrics
        .consumer_errors
        .with_label_values(&[service, "transient"])
        .inc();
    tracing::warn!(
        service,
        topic = %event.topic,
        partition = event.partition,
        offset = event.offset,
        error = %error,
        "processing failed; retrying the same event"
    );
}

/// Enqueues the event on the dead-letter topic, counts and logs it; the ack is its effect.
async fn dead_letter(
    producer: &EventProducer,
    metrics: &Metrics,
    service: &'static str,
    event: &InboundEvent,
    reason: PoisonReason,
    detail: &str,
) -> Result<Effects, KafkaError> {
    let ack = producer.dead_letter(event, reason, detail, service).await?;
    metrics
        .dead_lettered
        .with_label_values(&[service, reason.as_str()])
        .inc();
    // A panic message may quote input (std's slicing panics print the string they cut),
    // so it goes only onto the dead-letter record, next to the payload it came from.
    let logged = match reason {
        PoisonReason::HandlerPanic => "handling panicked; the message is on the dead-letter record",
        _ => detail,
    };
    tracing::warn!(
        service,
        topic = %event.topic,
        partition = event.partition,
        offset = event.offset,
        reason = reason.as_str(),
        detail = %logged,
        "event dead-lettered"
    );
    Ok(ack)
}

/// Runs an event's effects; if they panic, the event goes to the dead-letter topic instead
/// and the dead letter's ack becomes the effect, so the offset can move on. (Without this
/// the join error would stop the consumer and the event would panic again on redelivery.)
async fn dead_letter_on_panic(
    effects: Effects,
    event: InboundEvent,
    producer: EventProducer,
    metrics: Metrics,
    service: &'static str,
) -> Result<(), KafkaError> {
    match AssertUnwindSafe(effects).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let detail = panic_message(&*panic);
            dead_letter(
                &producer,
                &metrics,
                service,
                &event,
                PoisonReason::HandlerPanic,
                &detail,
            )
            .await?
            .await
        }
    }
}

/// The message a panic was raised with (`panic!` with a literal or a format string).
fn panic_message(panic: &(dyn Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    format!("panicked: {message}")
}

async fn store_offsets_in_order(
    consumer: std::sync::Arc<StreamConsumer<LoggingContext>>,
    mut pending: mpsc::Receiver<InFlight>,
    failed: CancellationToken,
    metrics: Metrics,
    service: &'static str,
) -> Result<(), KafkaError> {
    while let Some(in_flight) = pending.recv().await {
        let outcome = match in_flight.effects.await {
            Ok(outcome) => outcome,
            Err(join) => Err(KafkaError::EffectFailed(join.to_string())),
        };
        if let Err(e) = outcome {
            metrics
                .consumer_errors
                .with_label_values(&[service, "effect"])
                .inc();
            tracing::error!(
                service,
                topic = %in_flight.topic,
                partition = in_flight.partition,
                offset = in_flight.offset,
                error = %e,
                "an effect failed for good; stopping so the event is redelivered"
            );
            failed.cancel();
            return Err(e);
        }
        let mut offsets = TopicPartitionList::new();
        let stored = offsets
            .add_partition_offset(
                &in_flight.topic,
                in_flight.partition,
                Offset::Offset(in_flight.offset + 1),
            )
            .and_then(|()| consumer.store_offsets(&offsets));
        if let Err(e) = stored {
            // Typically the partition was revoked meanwhile; its new owner redelivers.
            tracing::debug!(service, error = %e, "offset not stored");
        }
    }
    Ok(())
}

/// Exponential backoff, 100 ms doubling to 5 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }

    /// Sleeps; `false` if shutdown came first.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}
