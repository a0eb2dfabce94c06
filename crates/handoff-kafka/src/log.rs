//! Reading topics from their beginning, outside any consumer group: what rebuilding the
//! Redis state from the event log needs (docs/operations.md). The end offsets are taken
//! first, so a read is bounded and everything published after it is left to the services'
//! own consumers, which process it after the rebuild.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use handoff_config::KafkaSettings;

use crate::{base_config, InboundEvent, KafkaError};

/// Headers `lead.created` carries when its request had an `Idempotency-Key`: the SHA-256
/// (hex) of the caller's namespaced key, as ingest's Redis mark is named, and the request's
/// fingerprint; with them a rebuild restores the mark, so a retry after a loss is still
/// answered with the first lead id. Never the key itself.
pub const IDEMPOTENCY_KEY_HEADER: &str = "handoff_idempotency_key_sha256";
pub const IDEMPOTENCY_FINGERPRINT_HEADER: &str = "handoff_idempotency_fingerprint";
/// On an `sla.breached` fired by a rebuild, for a deadline that passed while the state was
/// lost: why it is late.
pub const LATE_REASON_HEADER: &str = "handoff_late_reason";

/// Where each partition of some topics began and ended at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// Topic -> per partition (index = partition id): `[low, high)` offsets.
    pub topics: BTreeMap<String, Vec<(i64, i64)>>,
}

impl LogPosition {
    /// Records retained in all the topics.
    pub fn retained(&self) -> i64 {
        self.topics
            .values()
            .flatten()
            .map(|(low, high)| (high - low).max(0))
            .sum()
    }

    /// Whether anything was ever published (a topic whose retention dropped every record
    /// still has a high offset above 0).
    pub fn ever_written(&self) -> bool {
        self.topics.values().flatten().any(|(_, high)| *high > 0)
    }
}

fn reader_config(settings: &KafkaSettings) -> Result<ClientConfig, KafkaError> {
    let mut config = base_config(settings, "handoff-state")?;
    // Partitions are assigned by hand and no offset is ever committed; librdkafka still
    // needs a group to assign. A fresh one per reader: no member or state of an earlier
    // reader (killed, say) can hold this one up at the coordinator. Under the group prefix,
    // so the one prefixed group ACL a deployment grants covers it.
    config
        .set(
            "group.id",
            format!(
                "{}-state-reader-{:016x}",
                settings.group_prefix,
                rand::random::<u64>()
            ),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string())
        .set("fetch.max.bytes", "1048576");
    Ok(config)
}

/// The current `[low, high)` offsets of every partition of `topics`.
pub async fn log_position(
    settings: &KafkaSettings,
    topics: &[String],
    timeout: Duration,
) -> Result<LogPosition, KafkaError> {
    let config = reader_config(settings)?;
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let mut position = LogPosition::default();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            let partitions = metadata
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            let mut offsets = Vec::with_capacity(partitions);
            for partition in 0..partitions {
                let partition = i32::try_from(partition).unwrap_or(i32::MAX);
                offsets.push(consumer.fetch_watermarks(&topic, partition, timeout)?);
            }
            position.topics.insert(topic, offsets);
        }
        Ok(position)
    })
    .await
    .map_err(|e| KafkaError::Unreachable(e.to_string()))?
}

/// Every record of `position` (from each partition's low offset up to, not including, its
/// high offset), in partition order within each topic. Fails if a partition does not reach
/// its end within `timeout` of silence.
pub async fn read_log(
    settings: &KafkaSettings,
    position: &LogPosition,
    timeout: Duration,
) -> Result<Vec<InboundEvent>, KafkaError> {
    let config = reader_config(settings)?;
    let position = position.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let mut list = TopicPartitionList::new();
        // (topic, partition) -> the offset to reach.
        let mut remaining: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (topic, partitions) in &position.topics {
            for (partition, (low, high)) in partitions.iter().enumerate() {
                if high > low {
                    let partition = i32::try_from(partition).unwrap_or(i32::MAX);
                    list.add_partition_offset(topic, partition, Offset::Offset(*low))?;
                    remaining.insert((topic.clone(), partition), *high);
                }
            }
        }
        let mut events = Vec::with_capacity(usize::try_from(position.retained()).unwrap_or(0));
        if remaining.is_empty() {
            return Ok(events);
        }
        consumer.assign(&list)?;
        let mut last_progress = Instant::now();
        // The last offset read per partition, for the error if reading stalls.
        let mut reached: BTreeMap<(String, i32), i64> = BTreeMap::new();
        while !remaining.is_empty() {
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                if last_progress.elapsed() > timeout {
                    let stalled: Vec<String> = remaining
                        .iter()
                        .map(|((topic, partition), high)| {
                            let at = reached.get(&(topic.clone(), *partition));
                            format!("{topic}[{partition}] at {at:?} of {high}")
                        })
                        .collect();
                    return Err(KafkaError::Unreachable(format!(
                        "reading the log stalled: {}",
                        stalled.join(", ")
                    )));
                }
                continue;
            };
            let message = message?;
            last_progress = Instant::now();
            let event = InboundEvent::from_message(&message);
            let key = (event.topic.clone(), event.partition);
            reached.insert(key.clone(), event.offset);
            let Some(high) = remaining.get(&key).copied() else {
                continue;
            };
            if event.offset + 1 >= high {
                remaining.remove(&key);
                let mut done = TopicPartitionList::new();
                done.add_partition(&key.0, key.1);
                // Stops fetching past the captured end; later records are the services'.
                let _ = consumer.pause(&done);
            }
            if event.offset < high {
                events.push(event);
            }
        }
        Ok(events)
    })
    .await
    .map_err(|e| KafkaError::Unreachable(e.to_string()))?
}
