//! The dead-letter topic as an operator reads it (`handoff dlq`): every record from the
//! beginning of each partition to its end at the time of the call, and re-sending chosen
//! records to the topic they came from.
//!
//! The end is librdkafka's partition EOF (the broker's high watermark as the fetch saw it),
//! not a ListOffsets query, which Tansu answers only in part (architecture.md). A partition
//! that reached its end is paused, so records dead-lettered while the tool reads are left
//! for the next call and the read always ends.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use handoff_config::KafkaSettings;

use crate::client_config::{producer_config, reader_config};
use crate::{InboundEvent, KafkaError, DLQ_HEADERS};

/// Set on a record re-sent from the dead-letter topic: `<topic>:<partition>:<offset>` of the
/// dead letter it came from. Everything else (key, payload, `ce_id`) is the original's, so
/// consumers that applied the event before recognise it.
pub const REPLAYED_FROM_HEADER: &str = "handoff_replayed_from";

/// librdkafka also reports each partition's end as a client error, which the default
/// context logs at error level on every read; the reader handles the ends it polls, so only
/// other errors are logged.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: RdKafkaError, reason: &str) {
        if !matches!(error, RdKafkaError::PartitionEOF(_)) {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// Every record of `topic`, partition by partition in offset order, up to each partition's
/// end when it was reached. Fails when the topic does not exist or a partition gives no
/// sign of life (a record or its end) within `timeout`.
pub async fn read_to_end(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<InboundEvent>, KafkaError> {
    let config = reader_config(settings, "dlq")?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<ReaderContext> = config.create_with_context(ReaderContext)?;
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(KafkaError::Unreachable(format!(
                "topic {topic} does not exist (or has no partitions)"
            )));
        }
        let mut list = TopicPartitionList::new();
        for partition in &partitions {
            list.add_partition_offset(&topic, *partition, Offset::Beginning)?;
        }
        consumer.assign(&list)?;
        let mut open: BTreeSet<i32> = partitions.into_iter().collect();
        let mut records = Vec::new();
        let mut last_progress = Instant::now();
        while !open.is_empty() {
            let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
                if last_progress.elapsed() > timeout {
                    return Err(KafkaError::Unreachable(format!(
                        "reading {topic} stalled: partitions {open:?} did not reach their end within {} s",
                        timeout.as_secs()
                    )));
                }
                continue;
            };
            last_progress = Instant::now();
            match polled {
                Ok(message) => {
                    let record = InboundEvent::from_message(&message);
                    if open.contains(&record.partition) {
                        records.push(record);
                    }
                }
                Err(RdKafkaError::PartitionEOF(partition)) => {
                    if open.remove(&partition) {
                        let mut done = TopicPartitionList::new();
                        done.add_partition(&topic, partition);
                        // Records dead-lettered from now on are the next call's.
                        consumer.pause(&done)?;
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        Ok(records)
    })
    .await
    .map_err(|e| KafkaError::Unreachable(e.to_string()))?
}

/// Where one record was re-sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The dead letter: `partition:offset` on the dead-letter topic.
    pub dead_letter: (i32, i64),
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Re-sends `records` (read from `dead_letter_topic`) to their origin topics, in the order
/// given, with their key, payload and original headers (the `handoff_dlq_*` ones dropped),
/// plus [`REPLAYED_FROM_HEADER`]. `allowed_topics`: where a record may go (this
/// deployment's topics); a record naming another origin is refused before anything is sent.
/// Returns once the broker acknowledged every record.
pub async fn replay(
    settings: &KafkaSettings,
    dead_letter_topic: &str,
    records: &[InboundEvent],
    allowed_topics: &[String],
) -> Result<Vec<Replayed>, KafkaError> {
    for record in records {
        let origin = origin_topic(record);
        if !origin.is_some_and(|t| allowed_topics.iter().any(|a| a == t)) {
            return Err(KafkaError::ReplayRefused(
                origin.unwrap_or("(no origin header)").to_owned(),
            ));
        }
    }
    let producer: FutureProducer = producer_config(settings, "handoff-dlq")?.create()?;
    let mut replayed = Vec::with_capacity(records.len());
    for record in records {
        let topic = origin_topic(record).unwrap_or_default();
        let replayed_from = format!("{dead_letter_topic}:{}:{}", record.partition, record.offset);
        let headers = record
            .headers
            .iter()
            .filter(|(key, _)| {
                !DLQ_HEADERS.contains(&key.as_str()) && key.as_str() != REPLAYED_FROM_HEADER
            })
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_slice()),
                })
            })
            .insert(Header {
                key: REPLAYED_FROM_HEADER,
                value: Some(replayed_from.as_str()),
            });
        let payload = record.payload.as_deref().unwrap_or_default();
        let mut out: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(key) = record.key.as_deref().filter(|k| !k.is_empty()) {
            out = out.key(key);
        }
        let (partition, offset) = producer
            .send(
                out,
                Duration::from_millis(settings.message_timeout_ms.into()),
            )
            .await
            .map(|delivery| (delivery.partition, delivery.offset))
            .map_err(|(source, _)| KafkaError::Delivery {
                topic: topic.to_owned(),
                source,
            })?;
        replayed.push(Replayed {
            dead_letter: (record.partition, record.offset),
            topic: topic.to_owned(),
            partition,
            offset,
        });
    }
    Ok(replayed)
}

fn origin_topic(record: &InboundEvent) -> Option<&str> {
    record.header(DLQ_HEADERS[0])
}
