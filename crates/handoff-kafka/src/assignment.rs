//! Which partitions this consumer owns, under which assignment generation, and what it
//! stored for each; the rebalance and statistics callbacks that keep it so.
//!
//! A partition gets a new generation every time it is assigned. Its worker stores
//! offsets only while its generation is still the partition's: after the partition moved
//! away (and perhaps came back), a late acknowledgement of an old worker stores nothing.
//!
//! On revoke (cooperative: only the partitions that move; eager: all of them) the
//! callback stops the revoked partitions' workers from taking new events, waits up to
//! `kafka.rebalance_drain_ms` for the effects of the events they already handled, then
//! forgets the partitions and commits what was stored, synchronously, before librdkafka
//! lets the next owner start. Whatever did not finish in time is redelivered to it.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use handoff_telemetry::Metrics;

use crate::InboundEvent;

/// A topic and one of its partitions.
pub(crate) type PartitionKey = (String, i32);

/// The worker of one owned partition, as the consume loop and the callbacks see it.
pub(crate) struct Worker {
    /// Events received for the partition, in offset order.
    pub events: mpsc::UnboundedSender<InboundEvent>,
    /// Events sent to the worker and not yet taken for handling (the loop pauses the
    /// partition's fetching when there are too many; those handled and waiting for their
    /// acknowledgements are bounded by the worker's in-order queue).
    pub queued: Arc<AtomicUsize>,
    /// Cancelled on revoke and shutdown: the worker takes no new event.
    pub stop: CancellationToken,
    /// Ends once every event the worker took is settled (stored, or given up).
    pub task: JoinHandle<()>,
}

/// One partition this consumer owns.
pub(crate) struct Owned {
    pub generation: u64,
    /// The next offset to consume, as last stored (none until the first store).
    pub stored: Option<i64>,
    /// Fetching paused because the worker has a full queue.
    pub paused: bool,
    /// Started on the partition's first event.
    pub worker: Option<Worker>,
}

#[derive(Default)]
pub(crate) struct State {
    pub partitions: HashMap<PartitionKey, Owned>,
    next_generation: u64,
}

/// Shared by the consume loop, the partition workers and the callbacks.
#[derive(Default)]
pub(crate) struct Assignment {
    state: Mutex<State>,
}

impl Assignment {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock left a consistent map (every update is
        // one statement), so carry on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `next` for the partition if `generation` still owns it; `false` otherwise.
    pub fn store<C: Consumer<X>, X: ConsumerContext>(
        &self,
        consumer: &C,
        key: &PartitionKey,
        generation: u64,
        next: i64,
    ) -> bool {
        let mut state = self.lock();
        let Some(owned) = state.partitions.get_mut(key) else {
            return false;
        };
        if owned.generation != generation {
            return false;
        }
        let mut offsets = TopicPartitionList::new();
        let stored = offsets
            .add_partition_offset(&key.0, key.1, Offset::Offset(next))
            .and_then(|()| consumer.store_offsets(&offsets));
        match stored {
            Ok(()) => {
                owned.stored = Some(next);
                true
            }
            Err(e) => {
                tracing::debug!(topic = %key.0, partition = key.1, error = %e, "offset not stored");
                false
            }
        }
    }
}

/// The consumer's librdkafka context: rebalances and statistics.
pub(crate) struct ConsumerCallbacks {
    pub service: &'static str,
    pub assignment: Arc<Assignment>,
    pub metrics: Metrics,
    pub rebalance_drain: Duration,
}

impl ConsumerCallbacks {
    fn revoke(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        let keys: Vec<PartitionKey> = partitions
            .elements()
            .iter()
            .map(|p| (p.topic().to_owned(), p.partition()))
            .collect();
        let workers: Vec<Worker> = {
            let mut state = self.assignment.lock();
            keys.iter()
                .filter_map(|key| state.partitions.get_mut(key)?.worker.take())
                .collect()
        };
        for worker in &workers {
            worker.stop.cancel();
        }
        let unfinished = wait_for(&workers, Instant::now() + self.rebalance_drain);
        let mut commit = TopicPartitionList::new();
        {
            let mut state = self.assignment.lock();
            for key in &keys {
                let Some(owned) = state.partitions.remove(key) else {
                    continue;
                };
                if let Some(next) = owned.stored {
                    if let Err(e) = commit.add_partition_offset(&key.0, key.1, Offset::Offset(next))
                    {
                        tracing::warn!(service = self.service, error = %e, "cannot list an offset to commit");
                    }
                }
                let partition = key.1.to_string();
                let _ = self.metrics.consumer_lag.remove_label_values(&[
                    self.service,
                    &key.0,
                    &partition,
                ]);
            }
            self.metrics
                .consumer_partitions_assigned
                .with_label_values(&[self.service])
                .set(i64::try_from(state.partitions.len()).unwrap_or(i64::MAX));
        }
        for worker in workers {
            // Stopped and given its time: whatever it still does cannot store an offset.
            worker.task.abort();
        }
        // A lost assignment (the session timed out, e.g. the broker was away) may already
        // be another member's: committing could move its offsets back, and with the
        // coordinator away the synchronous commit only blocks the rejoin. The events since
        // the last commit are redelivered instead; their effects are idempotent.
        let lost = consumer.assignment_lost();
        if commit.count() > 0 && !lost {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(service = self.service, error = %e, "commit on revoke failed; the new owner may see the last events again");
            }
        }
        self.metrics
            .consumer_rebalances
            .with_label_values(&[self.service, "revoked"])
            .inc_by(keys.len() as u64);
        tracing::info!(
            service = self.service,
            partitions = keys.len(),
            committed = if lost { 0 } else { commit.count() },
            lost,
            unfinished,
            "partitions revoked"
        );
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, partitions: &TopicPartitionList) {
        let mut state = self.assignment.lock();
        for p in partitions.elements() {
            state.next_generation += 1;
            let owned = Owned {
                generation: state.next_generation,
                stored: None,
                paused: false,
                worker: None,
            };
            if let Some(old) = state
                .partitions
                .insert((p.topic().to_owned(), p.partition()), owned)
            {
                // Assigned again without a revoke first: the old worker's generation is gone.
                if let Some(worker) = old.worker {
                    worker.stop.cancel();
                }
            }
        }
        self.metrics
            .consumer_partitions_assigned
            .with_label_values(&[self.service])
            .set(i64::try_from(state.partitions.len()).unwrap_or(i64::MAX));
        drop(state);
        // A partition paused under an earlier assignment would otherwise stay paused.
        if let Err(e) = consumer.resume(partitions) {
            tracing::debug!(service = self.service, error = %e, "resume on assign failed");
        }
        self.metrics
            .consumer_rebalances
            .with_label_values(&[self.service, "assigned"])
            .inc_by(partitions.count() as u64);
        tracing::info!(
            service = self.service,
            partitions = partitions.count(),
            "partitions assigned"
        );
    }
}

/// Blocks until every worker ended or the deadline passed; returns how many did not end.
/// The callback runs on the thread polling the consumer, a runtime worker: on the
/// multi-thread runtime `block_in_place` lets the effects run meanwhile; on a
/// current-thread runtime they cannot, so there is nothing to wait for.
fn wait_for(workers: &[Worker], deadline: Instant) -> usize {
    let unfinished = || workers.iter().filter(|w| !w.task.is_finished()).count();
    if unfinished() == 0 {
        return 0;
    }
    let wait = || {
        while unfinished() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        unfinished()
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => match runtime.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => unfinished(),
            _ => tokio::task::block_in_place(wait),
        },
        Err(_) => wait(),
    }
}

impl ClientContext for ConsumerCallbacks {
    fn stats_raw(&self, statistics: &[u8]) {
        let stats: Statistics = match serde_json::from_slice(statistics) {
            Ok(stats) => stats,
            Err(e) => {
                tracing::debug!(service = self.service, error = %e, "unreadable librdkafka statistics");
                return;
            }
        };
        let state = self.assignment.lock();
        for ((topic, partition), owned) in &state.partitions {
            let reported = stats
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(&partition.to_string()));
            if let Some(lag) = reported.and_then(|p| p.lag(owned.stored)) {
                self.metrics
                    .consumer_lag
                    .with_label_values(&[self.service, topic, &partition.to_string()])
                    .set(lag);
            }
        }
    }
}

impl ConsumerContext for ConsumerCallbacks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.revoke(consumer, partitions);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => self.assign(consumer, partitions),
            Rebalance::Error(e) => {
                tracing::warn!(service = self.service, error = %e, "rebalance error")
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

/// The part of librdkafka's statistics JSON the lag needs (STATISTICS.md).
#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: HashMap<String, TopicStatistics>,
}

#[derive(Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: HashMap<String, PartitionStatistics>,
}

#[derive(Deserialize)]
struct PartitionStatistics {
    #[serde(default = "unknown")]
    hi_offset: i64,
    #[serde(default = "unknown")]
    ls_offset: i64,
    #[serde(default = "unknown")]
    lo_offset: i64,
    #[serde(default = "unknown")]
    committed_offset: i64,
}

fn unknown() -> i64 {
    -1
}

impl PartitionStatistics {
    /// Events after the group's position: the end of the log (the last stable offset, which
    /// is the high watermark without transactions) minus what this consumer stored, else
    /// what the group committed, else, with nothing committed yet, the log start (the
    /// consumer starts at the earliest event). `None` until the end is known.
    fn lag(&self, stored: Option<i64>) -> Option<i64> {
        let end = if self.ls_offset >= 0 {
            self.ls_offset
        } else {
            self.hi_offset
        };
        if end < 0 {
            return None;
        }
        let position = stored
            .or((self.committed_offset >= 0).then_some(self.committed_offset))
            .or((self.lo_offset >= 0).then_some(self.lo_offset))?;
        Some((end - position).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(hi: i64, lo: i64, committed: i64) -> PartitionStatistics {
        PartitionStatistics {
            hi_offset: hi,
            ls_offset: hi,
            lo_offset: lo,
            committed_offset: committed,
        }
    }

    #[test]
    fn lag_counts_from_the_stored_then_committed_then_first_offset() {
        assert_eq!(partition(10, 0, 4).lag(Some(7)), Some(3));
        assert_eq!(partition(10, 0, 4).lag(None), Some(6));
        assert_eq!(partition(10, 2, -1001).lag(None), Some(8));
        assert_eq!(partition(-1, 0, 4).lag(Some(7)), None);
        assert_eq!(partition(10, 0, 12).lag(None), Some(0));
    }

    #[test]
    fn librdkafka_statistics_parse() {
        let json = br#"{"name":"c","topics":{"t":{"topic":"t","partitions":{
            "0":{"partition":0,"hi_offset":5,"ls_offset":5,"lo_offset":0,"committed_offset":-1001},
            "-1":{"partition":-1,"hi_offset":-1}}}}}"#;
        let stats: Result<Statistics, _> = serde_json::from_slice(json);
        let lag = stats.ok().and_then(|s| {
            s.topics
                .get("t")
                .and_then(|t| t.partitions.get("0"))
                .and_then(|p| p.lag(None))
        });
        assert_eq!(lag, Some(5));
    }
}
