//! One partition's worker: handles its events one after another, retries an event that
//! fails (only this partition waits), and stores offsets in order as effects finish.
//!
//! ```text
//!  events ──► handle ──► Effects ──► spawn(settle) ──► [in-order queue] ──► acker: store offset+1
//!               │ Poison, panic ──► dead letter (its ack is the effect)
//!               │ Failed ──► retry with backoff for the class's budget, then
//!               │              permanent: dead letter (processing_failed)
//!               │              transient: stop the service (the event is redelivered)
//! ```

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use rdkafka::consumer::StreamConsumer;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use handoff_domain::Transience;
use handoff_telemetry::Metrics;

use crate::assignment::{Assignment, ConsumerCallbacks, PartitionKey, Worker};
use crate::{
    Effects, EventHandler, EventProducer, HandleError, InboundEvent, KafkaError, PoisonReason,
};

/// What every partition worker of one consumer shares.
pub(crate) struct Shared<H> {
    pub handler: H,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub service: &'static str,
    pub consumer: Arc<StreamConsumer<ConsumerCallbacks>>,
    pub assignment: Arc<Assignment>,
    /// Events waiting to be handled per partition, at most, before its fetching pauses;
    /// also the bound on handled events waiting for their effects.
    pub max_in_flight: usize,
    pub transient_budget: Duration,
    pub permanent_budget: Duration,
    /// Woken when a worker's queue shrank enough to resume a paused partition.
    pub resume: Notify,
    pub failure: Failure,
}

/// The first error that must stop the service; cancelling `stop` stops every worker and
/// the loop.
pub(crate) struct Failure {
    pub stop: CancellationToken,
    error: Mutex<Option<KafkaError>>,
}

impl Failure {
    pub fn new(stop: CancellationToken) -> Self {
        Self {
            stop,
            error: Mutex::new(None),
        }
    }

    pub fn fail(&self, error: KafkaError) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert(error);
        self.stop.cancel();
    }

    pub fn take(&self) -> Option<KafkaError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Starts the worker of a partition under `generation`.
pub(crate) fn spawn<H: EventHandler>(
    shared: &Arc<Shared<H>>,
    key: PartitionKey,
    generation: u64,
) -> Worker {
    let (events, receiver) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let stop = shared.failure.stop.child_token();
    let task = tokio::spawn(run(
        shared.clone(),
        key,
        generation,
        receiver,
        queued.clone(),
        stop.clone(),
    ));
    Worker {
        events,
        queued,
        stop,
        task,
    }
}

struct InFlight {
    offset: i64,
    effects: JoinHandle<Result<(), KafkaError>>,
}

async fn run<H: EventHandler>(
    shared: Arc<Shared<H>>,
    key: PartitionKey,
    generation: u64,
    mut events: mpsc::UnboundedReceiver<InboundEvent>,
    queued: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let (in_order, pending) = mpsc::channel::<InFlight>(shared.max_in_flight.max(1));
    let acker = tokio::spawn(store_in_order(shared.clone(), key, generation, pending));
    let resume_at = shared.max_in_flight / 2;
    loop {
        let event = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        // Taken: the backlog that pauses fetching shrank. It counts events waiting to be
        // handled, not those waiting for their acknowledgements (the bounded `in_order`
        // holds those back): counting both, a partition paused while its worker had
        // nothing left to handle and idled through every re-fetch after the resume
        // (docs/benchmarks.md, "The router alone").
        if queued.fetch_sub(1, Ordering::AcqRel) == resume_at + 1 {
            shared.resume.notify_one();
        }
        let offset = event.offset;
        let Some(effects) = process(&shared, &event, &stop).await else {
            // Stopped while retrying: the event is not stored and will be redelivered.
            break;
        };
        let in_flight = InFlight {
            offset,
            effects: tokio::spawn(settle(effects, event, shared.clone())),
        };
        if in_order.send(in_flight).await.is_err() {
            break;
        }
    }
    drop(in_order);
    // Waits for the effects of every event taken, so a revoke can commit them.
    let _ = acker.await;
}

/// Handles one event until it yields effects. `None` if the worker was stopped first, or
/// the event exhausted the transient budget (then the service is stopping).
async fn process<H: EventHandler>(
    shared: &Shared<H>,
    event: &InboundEvent,
    stop: &CancellationToken,
) -> Option<Effects> {
    let mut backoff = Backoff::new();
    let mut failing_since: Option<Instant> = None;
    loop {
        // While the Redis state is lost, nothing is decided on it (gate.rs).
        if !shared.producer.gate().is_open() {
            tokio::select! {
                () = shared.producer.gate().opened() => {}
                () = stop.cancelled() => return None,
            }
        }
        // The call is inside the async block so that a panic before its first await is
        // caught too.
        let attempt = Instant::now();
        let handled = AssertUnwindSafe(async { shared.handler.handle(event).await })
            .catch_unwind()
            .await;
        let (reason, detail) = match handled {
            Ok(Ok(effects)) => {
                shared
                    .metrics
                    .consumer_handle_seconds
                    .with_label_values(&[shared.service])
                    .observe(attempt.elapsed().as_secs_f64());
                return Some(effects);
            }
            Ok(Err(HandleError::Poison { reason, detail })) => (reason, detail),
            Err(panic) => (PoisonReason::HandlerPanic, panic_message(&*panic)),
            Ok(Err(HandleError::Failed { transient, detail })) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                let budget = if transient {
                    shared.transient_budget
                } else {
                    shared.permanent_budget
                };
                if since.elapsed() < budget {
                    retrying(shared, event, transient, &detail);
                    if !backoff.wait(stop).await {
                        return None;
                    }
                    continue;
                }
                if transient {
                    give_up(shared, event, since, detail);
                    return None;
                }
                (PoisonReason::ProcessingFailed, detail)
            }
        };
        // Dead-lettering can fail only for the broker's sake: retried like a transient error.
        match dead_letter(shared, event, reason, &detail).await {
            Ok(ack) => return Some(ack),
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= shared.transient_budget {
                    give_up(shared, event, since, e.to_string());
                    return None;
                }
                retrying(shared, event, true, &e.to_string());
                if !backoff.wait(stop).await {
                    return None;
                }
            }
        }
    }
}

fn retrying<H>(shared: &Shared<H>, event: &InboundEvent, transient: bool, error: &str) {
    let kind = if transient { "transient" } else { "permanent" };
    shared
        .metrics
        .consumer_errors
        .with_label_values(&[shared.service, kind])
        .inc();
    tracing::warn!(
        service = shared.service,
        topic = %event.topic,
        partition = event.partition,
        offset = event.offset,
        class = kind,
        error = %error,
        "processing failed; retrying the same event (its partition waits)"
    );
}

fn give_up<H>(shared: &Shared<H>, event: &InboundEvent, since: Instant, detail: String) {
    shared
        .metrics
        .consumer_errors
        .with_label_values(&[shared.service, "budget_exhausted"])
        .inc();
    let error = KafkaError::RetryBudgetExhausted {
        topic: event.topic.clone(),
        partition: event.partition,
        offset: event.offset,
        seconds: since.elapsed().as_secs(),
        detail,
    };
    tracing::error!(service = shared.service, error = %error, "giving up: stopping the service");
    shared.failure.fail(error);
}

/// Enqueues the event on the dead-letter topic, counts and logs it; the ack is its effect.
async fn dead_letter<H>(
    shared: &Shared<H>,
    event: &InboundEvent,
    reason: PoisonReason,
    detail: &str,
) -> Result<Effects, KafkaError> {
    let service = shared.service;
    let ack = shared
        .producer
        .dead_letter(event, reason, detail, service)
        .await?;
    shared
        .metrics
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

/// Runs an event's effects. If they panic, or fail in a way no retry can fix (the broker
/// refuses a record as too large), the event goes to the dead-letter topic instead and
/// that ack becomes the effect, so the partition moves on. A transient failure (after
/// the producer's own retries) is returned: the partition stops and the event is
/// redelivered.
async fn settle<H>(
    effects: Effects,
    event: InboundEvent,
    shared: Arc<Shared<H>>,
) -> Result<(), KafkaError> {
    let (reason, detail) = match AssertUnwindSafe(effects).catch_unwind().await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) if e.is_transient() => return Err(e),
        Ok(Err(e)) => (PoisonReason::DeliveryFailed, e.to_string()),
        Err(panic) => (PoisonReason::HandlerPanic, panic_message(&*panic)),
    };
    dead_letter(&shared, &event, reason, &detail).await?.await
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

/// Awaits each event's effects in offset order and stores offset+1, while the partition
/// is still owned under `generation`.
async fn store_in_order<H>(
    shared: Arc<Shared<H>>,
    key: PartitionKey,
    generation: u64,
    mut pending: mpsc::Receiver<InFlight>,
) {
    while let Some(in_flight) = pending.recv().await {
        let outcome = match in_flight.effects.await {
            Ok(outcome) => outcome,
            Err(join) => Err(KafkaError::EffectFailed(join.to_string())),
        };
        if let Err(e) = outcome {
            shared
                .metrics
                .consumer_errors
                .with_label_values(&[shared.service, "effect"])
                .inc();
            tracing::error!(
                service = shared.service,
                topic = %key.0,
                partition = key.1,
                offset = in_flight.offset,
                error = %e,
                "an effect failed for good; stopping so the event is redelivered"
            );
            shared.failure.fail(e);
            return;
        }
        shared
            .assignment
            .store(&*shared.consumer, &key, generation, in_flight.offset + 1);
    }
}

/// Exponential backoff, 100 ms doubling to 5 s.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }

    /// Sleeps; `false` if `stop` came first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = stop.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}
