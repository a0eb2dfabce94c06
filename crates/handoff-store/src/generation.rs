//! The state's generation marker: one hash, written once when a deployment's state starts
//! (`handoff state init`, or the first service on an empty log) and replaced by each
//! rebuild from the event log. Every service remembers the marker it works on; a marker
//! that is gone (Redis restarted without persistence, FLUSHALL, a failover that lost the
//! writes) or older than the one it knew (a restore from an old snapshot) means the state
//! it derives from the log is lost (docs/operations.md).

use std::sync::LazyLock;

use redis::Script;

use crate::{Store, StoreError};

static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'created_ms', ARGV[2], 'origin', ARGV[3], 'offsets', ARGV[4])
return 1",
    )
});

/// Reads the marker and advances its tick, unless there is no marker (then nil: the tick
/// must not create a marker without an id).
static OBSERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local tick = redis.call('HINCRBY', KEYS[1], 'tick', 1)
local f = redis.call('HMGET', KEYS[1], 'id', 'created_ms', 'origin', 'offsets')
return {f[1], f[2], f[3], f[4], tick}",
    )
});

static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0",
    )
});

static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0",
    )
});

/// One generation of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Random, unique per generation.
    pub id: String,
    /// When the state was started or rebuilt (ms since the epoch).
    pub created_ms: i64,
    /// `init` (started on an empty log) or `rebuild` (replayed from the log).
    pub origin: String,
    /// The log position the state is consistent with (JSON: topic -> per partition
    /// `[low, high]`), as the writer saw it.
    pub offsets: String,
}

impl Generation {
    /// A new generation, created now.
    pub fn new(origin: &str, offsets: String) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            created_ms: chrono::Utc::now().timestamp_millis(),
            origin: origin.to_owned(),
            offsets,
        }
    }
}

/// What the Redis server says about its persistence (`None`: it would not say; managed
/// services often disable `CONFIG`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persistence {
    /// `CONFIG GET appendonly`.
    pub appendonly: Option<bool>,
    /// `CONFIG GET appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: Option<String>,
    /// `INFO persistence`: `aof_enabled`.
    pub aof_enabled: Option<bool>,
    /// `INFO persistence`: `rdb_last_save_time` (an RDB snapshot alone loses everything
    /// written since it).
    pub rdb_last_save_time: Option<i64>,
}

impl Store {
    /// The current marker, if there is one.
    pub async fn generation(&self) -> Result<Option<Generation>, StoreError> {
        let mut connection = self.connection();
        let (id, created_ms, origin, offsets): (
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
        ) = redis::cmd("HMGET")
            .arg(self.keys.generation())
            .arg(&["id", "created_ms", "origin", "offsets"])
            .query_async(&mut connection)
            .await?;
        Ok(id.map(|id| Generation {
            id,
            created_ms: created_ms.unwrap_or(0),
            origin: origin.unwrap_or_default(),
            offsets: offsets.unwrap_or_default(),
        }))
    }

    /// The current marker with its tick, advanced by this call. Every process observes the
    /// marker this way on each check, so the tick only grows while Redis keeps its
    /// writes; a process that gets a tick not above the last one it got knows Redis went
    /// back in time (a restore from a snapshot, a failover to a lagging replica) even
    /// though the marker itself came back with it.
    pub async fn observe_generation(&self) -> Result<Option<(Generation, i64)>, StoreError> {
        let mut connection = self.connection();
        type Fields = (
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            i64,
        );
        let observed: Option<Fields> = OBSERVE
            .key(self.keys.generation())
            .invoke_async(&mut connection)
            .await?;
        Ok(
            observed.and_then(|(id, created_ms, origin, offsets, tick)| {
                Some((
                    Generation {
                        id: id?,
                        created_ms: created_ms.unwrap_or(0),
                        origin: origin.unwrap_or_default(),
                        offsets: offsets.unwrap_or_default(),
                    },
                    tick,
                ))
            }),
        )
    }

    /// Writes `generation` unless a marker exists; `true` if written.
    pub async fn create_generation(&self, generation: &Generation) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let created: i64 = CREATE
            .key(self.keys.generation())
            .arg(&generation.id)
            .arg(generation.created_ms)
            .arg(&generation.origin)
            .arg(&generation.offsets)
            .invoke_async(&mut connection)
            .await?;
        Ok(created == 1)
    }

    /// Replaces the marker (the end of a rebuild).
    pub async fn replace_generation(&self, generation: &Generation) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let key = self.keys.generation();
        let _: () = redis::pipe()
            .atomic()
            .del(&key)
            .hset_multiple(
                &key,
                &[
                    ("id", generation.id.clone()),
                    ("created_ms", generation.created_ms.to_string()),
                    ("origin", generation.origin.clone()),
                    ("offsets", generation.offsets.clone()),
                ],
            )
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Takes the rebuild lease for `owner` unless another holder has it; `true` if taken.
    pub async fn lock_rebuild(&self, owner: &str, lease_ms: u64) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.keys.rebuild_lock())
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(lease_ms.max(1))
            .query_async(&mut connection)
            .await?;
        Ok(taken.is_some())
    }

    /// Extends `owner`'s lease; `false` if it is no longer theirs.
    pub async fn renew_rebuild(&self, owner: &str, lease_ms: u64) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let renewed: i64 = RENEW
            .key(self.keys.rebuild_lock())
            .arg(owner)
            .arg(lease_ms.max(1))
            .invoke_async(&mut connection)
            .await?;
        Ok(renewed == 1)
    }

    /// Gives the lease up if `owner` still holds it.
    pub async fn unlock_rebuild(&self, owner: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = RELEASE
            .key(self.keys.rebuild_lock())
            .arg(owner)
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Reads the server's persistence settings, as far as it allows.
    pub async fn persistence(&self) -> Result<Persistence, StoreError> {
        let mut connection = self.connection();
        let config = |name: &'static str| {
            let mut connection = connection.clone();
            async move {
                // A server that refuses CONFIG (renamed or ACL'd away) just does not tell.
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async::<Vec<String>>(&mut connection)
                    .await
                    .ok()
                    .and_then(|pair| pair.get(1).cloned())
            }
        };
        let appendonly = config("appendonly").await.map(|v| v == "yes");
        let appendfsync = config("appendfsync").await;
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query_async(&mut connection)
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
                .map(str::to_owned)
        };
        Ok(Persistence {
            appendonly,
            appendfsync,
            aof_enabled: field("aof_enabled").map(|v| v == "1"),
            rdb_last_save_time: field("rdb_last_save_time").and_then(|v| v.parse().ok()),
        })
    }
}
