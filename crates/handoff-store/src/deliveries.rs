//! Webhook deliveries waiting for an attempt: the notifier's durable retry schedule.
//!
//! ```text
//!  begin ──► pending[id] = record ──► claimed (lease) ──► attempt ──► finish (marker if sent)
//!                 │                        ▲    │
//!                 └─► due (delayed set) ───┘    └─► reschedule ──► due
//! ```
//! A delivery is one record in a hash (`pending`) plus its place in one of two sorted
//! sets: `due` (by due time) or `claimed` (by lease expiry). A poller claims due entries,
//! and claims whose lease ran out (their notifier died mid-attempt), atomically, with an
//! owner token; only the owner reschedules or finishes. A delivered one leaves a marker
//! for a de-duplication window, so a redelivered event is not sent again. Every time is
//! the Redis server's (`TIME`), so instances on different hosts agree on due and lease.
//!
//! Nothing lives unbounded: a record leaves when it is delivered or given up (the notifier
//! gives up after its attempts or maximum age); markers expire.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

static BEGIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/delivery_begin.lua")));
static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/delivery_claim.lua")));
static RESCHEDULE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/delivery_reschedule.lua")));
static FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/delivery_finish.lua")));

/// One webhook delivery, as stored between attempts: everything the next attempt and a
/// dead letter need, so no pending retry depends on the Kafka event being read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelivery {
    /// Names the (event, destination) pair; a digest, so no URL appears in key names.
    pub id: String,
    /// Where it goes. Kept here (not re-read from the rules) so a retry sends what the
    /// first attempt sent; it may carry a token, so it is never logged.
    pub url: String,
    /// The event's stable id: the receiver's de-duplication key (`handoff-event-id`).
    pub event_id: String,
    pub event_type: String,
    /// The webhook body, as sent.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the notifier first saw the event (unix ms): the maximum age counts from here.
    pub first_seen_ms: i64,
    /// Why the last attempt failed, for the dead letter.
    pub last_error: Option<String>,
    /// The consumed event, so a give-up can dead-letter it after its offset was stored.
    pub origin: OriginEvent,
}

/// A consumed Kafka record, bytes hex-encoded (headers and payloads need not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OriginEvent {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key_hex: Option<String>,
    pub payload_hex: Option<String>,
    pub headers_hex: Vec<(String, String)>,
    pub timestamp_ms: Option<i64>,
}

/// How a delivery starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start<'a> {
    /// Claimed for an attempt now, by the holder of `token`, for `lease`.
    Claim { token: &'a str, lease: Duration },
    /// Scheduled `after` from now (its destination's circuit is open, or it is busy).
    Defer { after: Duration },
}

/// What [`Store::begin_delivery`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    /// Stored and claimed: the caller attempts it now.
    Claimed,
    /// Stored in the delayed set.
    Deferred,
    /// Delivered within the de-duplication window: nothing to do.
    AlreadySent,
    /// Already stored (a redelivered event): its schedule owns it.
    AlreadyPending,
}

/// A delivery claimed by a poller, with the token that proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub delivery: PendingDelivery,
    pub token: String,
}

impl Store {
    /// Stores a delivery unless it was already sent or is already pending.
    pub async fn begin_delivery(
        &self,
        delivery: &PendingDelivery,
        start: Start<'_>,
    ) -> Result<Begun, StoreError> {
        let record = self.encode(delivery)?;
        let (mode, delay, token) = match start {
            Start::Claim { token, lease } => ("claim", lease, token),
            Start::Defer { after } => ("defer", after, ""),
        };
        let mut connection = self.connection();
        let outcome: String = BEGIN
            .key(self.sent_marker(&delivery.id))
            .key(self.pending())
            .key(self.due())
            .key(self.claimed())
            .key(self.owners())
            .arg(&delivery.id)
            .arg(record)
            .arg(mode)
            .arg(millis(delay))
            .arg(token)
            .invoke_async(&mut connection)
            .await?;
        match outcome.as_str() {
            "claimed" => Ok(Begun::Claimed),
            "deferred" => Ok(Begun::Deferred),
            "sent" => Ok(Begun::AlreadySent),
            "pending" => Ok(Begun::AlreadyPending),
            other => Err(StoreError::Corrupt {
                key: self.pending(),
                message: format!("delivery_begin answered {other:?}"),
            }),
        }
    }

    /// Claims up to `limit` due deliveries (and expired claims) for `lease`, as `token`.
    pub async fn claim_deliveries(
        &self,
        token: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection();
        let flat: Vec<String> = CLAIM
            .key(self.pending())
            .key(self.due())
            .key(self.claimed())
            .key(self.owners())
            .arg(millis(lease))
            .arg(limit)
            .arg(token)
            .invoke_async(&mut connection)
            .await?;
        let mut claimed = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(id), Some(record)) = (items.next(), items.next()) {
            let delivery: PendingDelivery =
                serde_json::from_str(&record).map_err(|e| StoreError::Corrupt {
                    key: format!("{} {id}", self.pending()),
                    message: e.to_string(),
                })?;
            claimed.push(ClaimedDelivery {
                delivery,
                token: token.to_owned(),
            });
        }
        Ok(claimed)
    }

    /// Moves a claimed delivery back to the delayed set, due `after` from now, with its
    /// updated record. `false`: the claim is no longer `token`'s (its lease ran out).
    pub async fn reschedule_delivery(
        &self,
        delivery: &PendingDelivery,
        token: &str,
        after: Duration,
    ) -> Result<bool, StoreError> {
        let record = self.encode(delivery)?;
        let mut connection = self.connection();
        let done: i64 = RESCHEDULE
            .key(self.pending())
            .key(self.due())
            .key(self.claimed())
            .key(self.owners())
            .arg(&delivery.id)
            .arg(token)
            .arg(millis(after))
            .arg(record)
            .invoke_async(&mut connection)
            .await?;
        Ok(done == 1)
    }

    /// Ends a claimed delivery. `delivered`: marks it sent for `dedup_window`, so the same
    /// event is not delivered again meanwhile. `false`: the claim was no longer `token`'s.
    pub async fn finish_delivery(
        &self,
        id: &str,
        token: &str,
        delivered: bool,
        dedup_window: Duration,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let done: i64 = FINISH
            .key(self.sent_marker(id))
            .key(self.pending())
            .key(self.due())
            .key(self.claimed())
            .key(self.owners())
            .arg(id)
            .arg(token)
            .arg(if delivered { "1" } else { "0" })
            .arg(dedup_window.as_secs().max(1))
            .invoke_async(&mut connection)
            .await?;
        Ok(done == 1)
    }

    /// Whether the delivery was made within the de-duplication window.
    pub async fn delivery_sent(&self, id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let exists: i64 = redis::cmd("EXISTS")
            .arg(self.sent_marker(id))
            .query_async(&mut connection)
            .await?;
        Ok(exists == 1)
    }

    /// Deliveries stored and not yet delivered or given up.
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        let mut connection = self.connection();
        Ok(redis::cmd("HLEN")
            .arg(self.pending())
            .query_async(&mut connection)
            .await?)
    }

    fn encode(&self, delivery: &PendingDelivery) -> Result<String, StoreError> {
        serde_json::to_string(delivery).map_err(|e| StoreError::Corrupt {
            key: self.pending(),
            message: format!("cannot encode delivery {}: {e}", delivery.id),
        })
    }

    /// Hash id -> delivery record (JSON).
    pub(crate) fn pending(&self) -> String {
        format!("{}:notify:pending", self.keys.tag())
    }

    /// Sorted set id -> due time (ms, Redis clock).
    fn due(&self) -> String {
        format!("{}:notify:due", self.keys.tag())
    }

    /// Sorted set id -> lease expiry (ms, Redis clock) of a claimed delivery.
    fn claimed(&self) -> String {
        format!("{}:notify:claimed", self.keys.tag())
    }

    /// Hash id -> the token of the claim's owner.
    fn owners(&self) -> String {
        format!("{}:notify:owner", self.keys.tag())
    }

    /// Exists (with a TTL) once the delivery was made.
    fn sent_marker(&self, id: &str) -> String {
        format!("{}:notify:sent:{id}", self.keys.tag())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
