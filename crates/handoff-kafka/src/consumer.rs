//! The at-least-once consume loop every service runs.
//!
//! ```text
//!  recv ──► partition worker (one per owned partition, partition.rs) ──► handle, effects,
//!   │         in-order acker: store offset+1 once the event and all before it are durable
//!   └── a partition with too many events waiting to be handled is paused (fetching
//!       stops) until its worker has taken half; the other partitions keep flowing
//! ```
//! Offsets are stored strictly in consumption order per partition, so a stored offset
//! always means "this and everything before it on this partition is durable". An event
//! that fails blocks only its own partition; it is retried with backoff, never skipped:
//! after `kafka.permanent_retry_budget_seconds` a permanent failure is dead-lettered, after
//! `kafka.transient_retry_budget_seconds` an infrastructure failure stops the consumer with
//! an error (the process exits non-zero, its supervisor restarts it, the event is
//! redelivered).
//!
//! Poison (undecodable, contract-invalid) and a panic while handling an event, or in its
//! effects, dead-letter the event at once: a bug triggered by one event must not stop the
//! partition behind it, and a consumer that crashed on it would crash again on every
//! redelivery.
//!
//! Partitions are assigned cooperatively (`cooperative-sticky`): a rebalance revokes only
//! the partitions that move, and the revoke callback (assignment.rs) lets their finished
//! work be stored and committed first.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use handoff_config::KafkaSettings;
use handoff_telemetry::Metrics;

use crate::assignment::{Assignment, ConsumerCallbacks, PartitionKey};
use crate::partition::{self, Failure, Shared};
use crate::{consumer_config, EventHandler, EventProducer, InboundEvent, KafkaError, PoisonReason};

/// Which topics, as which group, under which name.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Short service name: log field, metric label, and the consumer group
    /// (`<kafka.group_prefix>-<service>`).
    pub service: &'static str,
    pub topics: Vec<String>,
    /// Events of one partition waiting to be handled, at most (back-pressure: beyond it
    /// the partition's fetching pauses until half are taken); as many again may wait for
    /// their effects to be durable.
    pub max_in_flight: usize,
    /// How long shutdown waits for in-flight effects before giving up on them (they are
    /// then redelivered, never lost).
    pub drain: Duration,
}

/// Runs the loop until `shutdown` is cancelled (then drains and commits) or an event
/// cannot make progress within its budget (then drains the other partitions, commits,
/// and returns the error).
pub async fn run_consumer<H: EventHandler>(
    kafka: &KafkaSettings,
    spec: ConsumerSpec,
    handler: H,
    producer: EventProducer,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(), KafkaError> {
    let group = format!("{}-{}", kafka.group_prefix, spec.service);
    let instance_id = kafka.group_instance_id_for(spec.service);
    let assignment = Arc::new(Assignment::default());
    let consumer: Arc<StreamConsumer<ConsumerCallbacks>> = Arc::new(
        consumer_config(
            kafka,
            &group,
            &format!("handoff-{}", spec.service),
            instance_id.as_deref(),
        )?
        .create_with_context(ConsumerCallbacks {
            service: spec.service,
            assignment: assignment.clone(),
            metrics: metrics.clone(),
            rebalance_drain: kafka.rebalance_drain(),
        })?,
    );
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(
        service = spec.service,
        %group,
        group_instance_id = instance_id.as_deref().unwrap_or("(dynamic)"),
        protocol = kafka.group_protocol.as_str(),
        topics = ?spec.topics,
        "consuming"
    );
    // Every error series at zero: one that first appears at its first error shows rate()
    // no increase (docs/metrics.md).
    for kind in [
        "receive",
        "transient",
        "permanent",
        "effect",
        "budget_exhausted",
    ] {
        metrics
            .consumer_errors
            .with_label_values(&[spec.service, kind]);
    }
    for reason in PoisonReason::ALL {
        metrics
            .dead_lettered
            .with_label_values(&[spec.service, reason.as_str()]);
    }

    let shared = Arc::new(Shared {
        handler,
        producer,
        metrics: metrics.clone(),
        service: spec.service,
        consumer: consumer.clone(),
        assignment: assignment.clone(),
        max_in_flight: spec.max_in_flight.max(1),
        transient_budget: kafka.transient_retry_budget(),
        permanent_budget: kafka.permanent_retry_budget(),
        resume: Notify::new(),
        failure: Failure::new(shutdown.child_token()),
    });
    let stop = shared.failure.stop.clone();

    // librdkafka reports trouble (a broker away, all brokers down) as error events on the
    // same queue as the messages and the rebalance callbacks, and recovers by itself. The
    // loop keeps polling through them: sleeping after each one let the errors of a long
    // outage pile up in front of the new assignment, which then waited minutes to be served.
    let mut errors_in_a_row: u64 = 0;
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = shared.resume.notified() => {
                resume_caught_up(&shared);
                continue;
            }
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => {
                if errors_in_a_row > 0 {
                    tracing::info!(
                        service = spec.service,
                        errors = errors_in_a_row,
                        "receiving again"
                    );
                    errors_in_a_row = 0;
                }
                dispatch(&shared, InboundEvent::from_message(&message));
            }
            Err(e) => {
                metrics
                    .consumer_errors
                    .with_label_values(&[spec.service, "receive"])
                    .inc();
                if let Some((code, reason)) = consumer.client().fatal_error() {
                    tracing::error!(service = spec.service, ?code, %reason, "the Kafka client failed for good");
                    shared
                        .failure
                        .fail(KafkaError::Client(RdKafkaError::MessageConsumptionFatal(
                            code,
                        )));
                    break;
                }
                errors_in_a_row += 1;
                if errors_in_a_row == 1 {
                    tracing::warn!(service = spec.service, error = %e, "receive failed; librdkafka retries by itself");
                } else {
                    tracing::debug!(service = spec.service, error = %e, errors = errors_in_a_row, "receive failed again");
                }
                // Errors come one event at a time; this only keeps a burst from
                // starving the runtime's other tasks.
                tokio::task::yield_now().await;
            }
        }
    }

    // Stop every worker from taking new events and give their effects `drain` to finish.
    stop.cancel();
    let workers: Vec<_> = assignment
        .lock()
        .partitions
        .values_mut()
        .filter_map(|owned| owned.worker.take())
        .collect();
    let mut unfinished = 0;
    let deadline = tokio::time::Instant::now() + spec.drain;
    for worker in workers {
        if tokio::time::timeout_at(deadline, worker.task)
            .await
            .is_err()
        {
            unfinished += 1;
        }
    }
    if unfinished > 0 {
        tracing::warn!(
            service = spec.service,
            partitions = unfinished,
            "drain deadline passed; unfinished events will be redelivered"
        );
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(RdKafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(service = spec.service, error = %e, "final commit failed; the last events may be redelivered")
        }
    }
    consumer.unsubscribe();
    let outcome = match shared.failure.take() {
        Some(error) => Err(error),
        None => Ok(()),
    };
    tracing::info!(service = spec.service, "consumer stopped");
    outcome
}

/// Hands the event to its partition's worker (started on the partition's first event);
/// pauses the partition when the worker is too far behind.
fn dispatch<H: EventHandler>(shared: &Arc<Shared<H>>, event: InboundEvent) {
    let key: PartitionKey = (event.topic.clone(), event.partition);
    let mut state = shared.assignment.lock();
    let Some(owned) = state.partitions.get_mut(&key) else {
        // Fetched before its partition was revoked: the new owner consumes it.
        tracing::debug!(service = shared.service, topic = %key.0, partition = key.1, "event of a partition no longer owned; left to its owner");
        return;
    };
    let generation = owned.generation;
    let worker = owned
        .worker
        .get_or_insert_with(|| partition::spawn(shared, key.clone(), generation));
    let queued = worker
        .queued
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
        + 1;
    if worker.events.send(event).is_err() {
        // The worker stopped (the service is stopping): the event will be redelivered.
        return;
    }
    if queued >= shared.max_in_flight && !owned.paused {
        match shared.consumer.pause(&partition_list(&key)) {
            Ok(()) => owned.paused = true,
            Err(e) => {
                tracing::warn!(service = shared.service, topic = %key.0, partition = key.1, error = %e, "cannot pause a partition")
            }
        }
    }
}

/// Resumes the paused partitions whose workers have caught up.
fn resume_caught_up<H>(shared: &Shared<H>) {
    let resume_at = shared.max_in_flight / 2;
    let mut state = shared.assignment.lock();
    for (key, owned) in state.partitions.iter_mut() {
        let caught_up = owned.worker.as_ref().is_none_or(|worker| {
            worker.queued.load(std::sync::atomic::Ordering::Acquire) <= resume_at
        });
        if owned.paused && caught_up {
            match shared.consumer.resume(&partition_list(key)) {
                Ok(()) => owned.paused = false,
                Err(e) => {
                    tracing::warn!(service = shared.service, topic = %key.0, partition = key.1, error = %e, "cannot resume a partition")
                }
            }
        }
    }
}

fn partition_list(key: &PartitionKey) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(&key.0, key.1);
    list
}
