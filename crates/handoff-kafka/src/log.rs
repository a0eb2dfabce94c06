//! Reading topics from their beginning, outside any consumer group: what rebuilding the
//! Redis state from the event log needs (docs/operations.md). The end offsets are taken
//! first, so a read is bounded and everything published after it is left to the services'
//! own consumers, which process it after the rebuild.
//!
//! A rebuild replays the records in an order of its own (by record time, across topics),
//! in memory that must fit a pod whatever the log's size, so it reads the log twice:
//!
//! ```text
//!  index_log     every record once: keep (the caller's sort key, where it sits), 16 bytes
//!                + the key, instead of ~1.7 KiB per record
//!  (sort)        the caller sorts the index
//!  read_in_order the records again, in the index's order: each partition reads ahead a
//!                few records, paused while the order is elsewhere
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use handoff_config::KafkaSettings;

use crate::{InboundEvent, KafkaError};

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

/// The rebuild's reader: the operator tools' reader ([`crate::reader_config`]), with each
/// partition's end known from the captured position instead of EOF events, and fetches
/// kept small.
fn reader_config(settings: &KafkaSettings) -> Result<ClientConfig, KafkaError> {
    let mut config = crate::reader_config(settings, "state")?;
    config
        .set("enable.partition.eof", "false")
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

/// Where one record of a [`LogPosition`] sits: its topic (the index in `position.topics`,
/// which is in name order), partition and offset. 16 bytes: what a rebuild keeps per record
/// instead of the record itself (about 1.7 KiB in memory), so that reading the whole log in
/// an order of its choosing takes memory for the count of the records, not their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordAt {
    pub topic: u16,
    pub partition: i32,
    pub offset: i64,
}

/// One record of [`read_in_order`].
#[derive(Debug)]
pub enum LogRecord {
    /// The record, in its turn.
    Read(InboundEvent),
    /// Indexed by [`index_log`], but no longer there when its turn came: retention or
    /// compaction removed it between the two reads.
    Gone {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

/// Records a stream of [`read_in_order`] holds before it pauses (resumed at half): the
/// memory of an ordered read is about this many records per partition that has any, plus
/// librdkafka's queue ([`bounded_reader_config`]).
const BUFFERED_PER_PARTITION: usize = 32;

/// The reader's configuration with librdkafka's pre-fetch queue bounded: its default
/// (64 MiB, and 100,000 messages per partition) would be most of a small pod's memory.
fn bounded_reader_config(settings: &KafkaSettings) -> Result<ClientConfig, KafkaError> {
    let mut config = reader_config(settings)?;
    config
        .set("queued.max.messages.kbytes", "2048")
        .set("queued.min.messages", "1000")
        // With a small queue the thresholds are often met; the default backoff (1 s) would
        // stall an ordered read waiting on that partition.
        .set("fetch.queue.backoff.ms", "20");
    Ok(config)
}

/// Reads every record of `position` once (from each partition's low offset up to, not
/// including, its high offset) and keeps only `key(record)` and where the record sits: the
/// first of the two reads of an ordered replay (sort the index, then [`read_in_order`]).
/// Fails if a partition does not reach its end within `timeout` of silence.
pub async fn index_log<K, F>(
    settings: &KafkaSettings,
    position: &LogPosition,
    timeout: Duration,
    mut key: F,
) -> Result<Vec<(K, RecordAt)>, KafkaError>
where
    K: Send + 'static,
    F: FnMut(&InboundEvent) -> K + Send + 'static,
{
    let config = bounded_reader_config(settings)?;
    let position = position.clone();
    tokio::task::spawn_blocking(move || {
        let mut streams = Streams::open(&config, &position, timeout)?;
        let mut index = Vec::with_capacity(usize::try_from(position.retained()).unwrap_or(0));
        while let Some((at, event)) = streams.receive()? {
            index.push((key(&event), at));
        }
        Ok(index)
    })
    .await
    .map_err(|e| KafkaError::Unreachable(e.to_string()))?
}

/// The records at `order` (from [`index_log`] on the same `position`), in that order, on
/// the returned channel, read as they are taken: a partition reads ahead at most
/// [`BUFFERED_PER_PARTITION`] records beyond what the order has reached in it (more only
/// where the order goes back within the partition). Ends after the last record, or with an
/// error; stops reading when the receiver is dropped.
pub fn read_in_order(
    settings: &KafkaSettings,
    position: &LogPosition,
    order: Vec<RecordAt>,
    timeout: Duration,
) -> tokio::sync::mpsc::Receiver<Result<LogRecord, KafkaError>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(256);
    let config = bounded_reader_config(settings);
    let position = position.clone();
    tokio::task::spawn_blocking(move || {
        let read = || -> Result<(), KafkaError> {
            let mut streams = Streams::open(&config?, &position, timeout)?;
            for at in order {
                let record = streams.take(at)?;
                if sender.blocking_send(Ok(record)).is_err() {
                    // The receiver stopped (its replay failed): nothing more to read.
                    return Ok(());
                }
            }
            Ok(())
        };
        if let Err(e) = read() {
            let _ = sender.blocking_send(Err(e));
        }
    });
    receiver
}

/// The partitions of a position, assigned by hand to one consumer and read up to their
/// captured ends.
struct Streams {
    consumer: BaseConsumer,
    /// Topic index (as in [`RecordAt`]) -> name, and back.
    names: Vec<String>,
    indices: BTreeMap<String, u16>,
    streams: BTreeMap<(u16, i32), Stream>,
    /// Streams not at their end yet.
    open: usize,
    timeout: Duration,
    last_progress: Instant,
}

struct Stream {
    /// The captured end (exclusive).
    high: i64,
    /// The offset after the last record received: what comes again after a resume (or a
    /// redelivery) is recognised by it.
    next: i64,
    paused: bool,
    /// Received, not yet taken ([`read_in_order`] only), in offset order.
    buffered: VecDeque<InboundEvent>,
}

impl Stream {
    fn done(&self) -> bool {
        self.next >= self.high
    }
}

impl Streams {
    fn open(
        config: &ClientConfig,
        position: &LogPosition,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = config.create()?;
        let mut list = TopicPartitionList::new();
        let mut names = Vec::new();
        let mut indices = BTreeMap::new();
        let mut streams = BTreeMap::new();
        for (topic, partitions) in &position.topics {
            let index = u16::try_from(names.len()).map_err(|_| {
                KafkaError::Unreachable("too many topics to read at once".to_owned())
            })?;
            names.push(topic.clone());
            indices.insert(topic.clone(), index);
            for (partition, (low, high)) in partitions.iter().enumerate() {
                if high > low {
                    let partition = i32::try_from(partition).unwrap_or(i32::MAX);
                    list.add_partition_offset(topic, partition, Offset::Offset(*low))?;
                    streams.insert(
                        (index, partition),
                        Stream {
                            high: *high,
                            next: *low,
                            paused: false,
                            buffered: VecDeque::new(),
                        },
                    );
                }
            }
        }
        if !streams.is_empty() {
            consumer.assign(&list)?;
        }
        Ok(Self {
            consumer,
            names,
            indices,
            open: streams.len(),
            streams,
            timeout,
            last_progress: Instant::now(),
        })
    }

    /// The next record of any stream, in offset order within its stream; `None` once every
    /// stream reached its end.
    fn receive(&mut self) -> Result<Option<(RecordAt, InboundEvent)>, KafkaError> {
        while self.open > 0 {
            let Some(message) = self.consumer.poll(Duration::from_millis(200)) else {
                if self.last_progress.elapsed() > self.timeout {
                    return Err(self.stalled());
                }
                continue;
            };
            let message = message?;
            self.last_progress = Instant::now();
            let Some(&topic) = self.indices.get(message.topic()) else {
                continue;
            };
            let at = RecordAt {
                topic,
                partition: message.partition(),
                offset: message.offset(),
            };
            let Some(stream) = self.streams.get_mut(&(topic, at.partition)) else {
                continue;
            };
            // Received before (fetched again after a resume), or past the captured end:
            // later records are the services'.
            if at.offset < stream.next || stream.done() {
                continue;
            }
            stream.next = at.offset + 1;
            let done = stream.done();
            let event = InboundEvent::from_message(&message);
            drop(message);
            if done {
                self.open -= 1;
                self.set_paused(topic, at.partition, true)?;
            }
            return Ok(Some((at, event)));
        }
        Ok(None)
    }

    /// The record at `at`, reading (and holding what other streams deliver meanwhile)
    /// until it arrives.
    fn take(&mut self, at: RecordAt) -> Result<LogRecord, KafkaError> {
        let key = (at.topic, at.partition);
        loop {
            let Some(stream) = self.streams.get_mut(&key) else {
                return Ok(self.gone(at));
            };
            if let Some(i) = stream.buffered.iter().position(|e| e.offset == at.offset) {
                let Some(event) = stream.buffered.remove(i) else {
                    return Ok(self.gone(at));
                };
                if stream.paused
                    && !stream.done()
                    && stream.buffered.len() <= BUFFERED_PER_PARTITION / 2
                {
                    self.set_paused(at.topic, at.partition, false)?;
                }
                return Ok(LogRecord::Read(event));
            }
            if stream.next > at.offset || stream.done() {
                return Ok(self.gone(at));
            }
            if stream.paused {
                self.set_paused(at.topic, at.partition, false)?;
            }
            let Some((got, event)) = self.receive()? else {
                return Ok(self.gone(at));
            };
            let got = (got.topic, got.partition);
            if let Some(stream) = self.streams.get_mut(&got) {
                stream.buffered.push_back(event);
                // Another stream ahead of the order waits, paused, until the order gets
                // there; the awaited one reads on whatever it holds.
                if got != key && !stream.paused && stream.buffered.len() >= BUFFERED_PER_PARTITION {
                    self.set_paused(got.0, got.1, true)?;
                }
            }
        }
    }

    fn gone(&self, at: RecordAt) -> LogRecord {
        LogRecord::Gone {
            topic: self.name(at.topic).to_owned(),
            partition: at.partition,
            offset: at.offset,
        }
    }

    fn name(&self, topic: u16) -> &str {
        self.names
            .get(usize::from(topic))
            .map_or("unknown", String::as_str)
    }

    /// Pauses or resumes fetching a stream. librdkafka drops what it fetched for a paused
    /// partition and resumes after the last record this consumer received.
    fn set_paused(&mut self, topic: u16, partition: i32, paused: bool) -> Result<(), KafkaError> {
        let Some(name) = self.names.get(usize::from(topic)) else {
            return Ok(());
        };
        let mut list = TopicPartitionList::new();
        list.add_partition(name, partition);
        if paused {
            self.consumer.pause(&list)?;
        } else {
            self.consumer.resume(&list)?;
        }
        if let Some(stream) = self.streams.get_mut(&(topic, partition)) {
            stream.paused = paused;
        }
        Ok(())
    }

    fn stalled(&self) -> KafkaError {
        let stalled: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, stream)| !stream.done())
            .map(|((topic, partition), stream)| {
                format!(
                    "{}[{partition}] at {} of {}",
                    self.name(*topic),
                    stream.next,
                    stream.high
                )
            })
            .collect();
        KafkaError::Unreachable(format!("reading the log stalled: {}", stalled.join(", ")))
    }
}
