//! handoff's Redis adapter. Every key lives under one hash tag, `{<prefix>}`, so each
//! multi-key script touches a single slot and the same code runs on Redis Cluster (see
//! docs/adr/0001-redis-keys-share-one-hash-tag.md). Each state change that must be atomic
//! is one Lua script.

mod accounts;
mod action_links;
mod clocks;
mod connection;
mod deadlines;
mod deliveries;
mod erasure;
mod funnel;
mod generation;
mod idempotency;
mod keys;
mod leads;
mod lifecycle;
mod reconcile;
mod restore;
mod routing_state;
mod scorecard;
mod server_clock;

use connection::Connection;

use handoff_domain::Transience;

pub use accounts::OwnerUpdate;
pub use clocks::Scheduled;
pub use deadlines::{ClaimRequest, Claimed, DueBreach, DueReminder};
pub use deliveries::{Begun, ClaimedDelivery, OriginEvent, PendingDelivery, Start};
pub use erasure::ErasureReport;
pub use funnel::{
    AssignmentTimes, FunnelAssignment, FunnelBreach, FunnelGauges, FunnelOutcome, FunnelSource,
    OutcomeReport, OverdueFeedback, SettledTouch,
};
pub use generation::{Generation, Persistence};
pub use handoff_domain::sla::ClockPlan;
pub use idempotency::Reservation;
pub use leads::{ContactOwner, LeadRecord};
pub use lifecycle::{
    AssignOutcome, CommitContext, DecideOutcome, DispositionClock, DispositionStarts,
    EscalateOutcome, Escalation, FromQueue, Parked, QueueView, RecordedDecision, ReportOutcome,
    TimelineEntry, WaitingLead,
};
pub use reconcile::ReconcileReport;
pub use scorecard::{DAY_RETENTION_DAYS, MAX_DAYS_READ};
pub use server_clock::ServerClock;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("stored data is corrupt at {key}: {message}")]
    Corrupt { key: String, message: String },
    /// A value could not be encoded for Redis (a bug, not bad luck).
    #[error("cannot encode for redis: {0}")]
    Encode(String),
    /// A step kept losing races with concurrent writers to the same lead.
    #[error("contended: {0}")]
    Contended(String),
    /// `redis.url` names no topology we can reach (see handoff_config::RedisTopology).
    #[error("{0}")]
    Url(String),
}

impl Transience for StoreError {
    /// Redis unreachable, slow, loading, failing over or read-only (a replica mid-failover)
    /// passes; a script error or corrupt stored data does not.
    fn is_transient(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::ReadOnly | redis::ErrorKind::ExtensionError
                    )
            }
            StoreError::Contended(_) => true,
            StoreError::Corrupt { .. } | StoreError::Encode(_) | StoreError::Url(_) => false,
        }
    }
}

/// A connection (auto-reconnecting, multiplexed; one server, a cluster or a Sentinel-watched
/// master) and the key namespace. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    connection: Connection,
    keys: keys::Keys,
    clock: ServerClock,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects (failing fast if Redis is not there) to what `url` names: one server, a
    /// cluster or a Sentinel group (forms: handoff_config::RedisTopology), with bounded
    /// response times, so a hung Redis shows up as an error to retry, not a stuck consumer.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let topology = handoff_config::RedisTopology::parse(url).map_err(StoreError::Url)?;
        Ok(Self {
            connection: Connection::open(&topology).await?,
            keys: keys::Keys::new(key_prefix),
            clock: ServerClock::default(),
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }

    /// Deletes every key of this namespace. For `handoff dev`, whose embedded broker starts
    /// empty each time: its Redis state must too. Never called by the services.
    pub async fn clear_namespace(&self) -> Result<u64, StoreError> {
        let mut connection = self.connection();
        let mut deleted = 0;
        for keys in self.keys_matching("*").await?.chunks(500) {
            deleted += redis::cmd("UNLINK")
                .arg(keys)
                .query_async::<u64>(&mut connection)
                .await?;
        }
        Ok(deleted)
    }

    /// Every key of the deployment matching `pattern` (a glob after the hash tag).
    pub(crate) async fn keys_matching(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection();
        let pattern = format!("{}:{pattern}", self.keys.tag());
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, batch): (u64, Vec<String>) =
                redis::from_redis_value(&connection.on_node_of(self.keys.tag(), &scan).await?)?;
            keys.extend(batch);
            if next == 0 {
                // SCAN may return a key twice (rehashing): once is enough.
                keys.sort();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next;
        }
    }

    fn connection(&self) -> Connection {
        self.connection.clone()
    }
}
