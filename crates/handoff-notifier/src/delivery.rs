//! The delivery machinery: admission, one attempt at a time, durable retries, give-up.
//!
//! ```text
//!  event ──► begin: circuit closed? ──yes──► permit ──► store+claim (lease) ──► attempt
//!                 │ no (open / busy)                                             │
//!                 └──► store in the delayed set ◄── reschedule (backoff) ◄─ failed
//!                                │                                               │
//!         retry poller: claim due ┘──► circuit? ──► permit ──► attempt    delivered: mark,
//!                                                                          given up: DLQ
//! ```
//! A permit is held only for one attempt (at most `timeout_ms`), never across a backoff:
//! between attempts a delivery waits in Redis, so a dead receiver costs its own deliveries
//! time and nobody else's, and a restart loses no pending retry. The Kafka offset of the
//! event is stored once its delivery is stored (see `handler`).
//!
//! Semantics: at-least-once, de-duplicated. A delivered (event, URL) pair is marked for
//! `dedup_window_seconds`, so a redelivered event is not sent again; a process dying
//! between the receiver's 2xx and the mark sends that one message again after the claim's
//! lease. Receivers de-duplicate those by `handoff-event-id` (docs/webhooks.md).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use handoff_config::NotifierSettings;
use handoff_domain::Transience;
use handoff_kafka::{EventProducer, InboundEvent, PoisonReason};
use handoff_store::{Begun, OriginEvent, PendingDelivery, Start, Store, StoreError};
use handoff_telemetry::Metrics;

use crate::attempt::{Outcome, Sender};
use crate::breaker::{Admission, BreakerSettings, Circuits, Deferral, Pass};

/// What to send where: built by the handler from an event (and the message module), handed
/// to the machinery. Nothing here knows how the body was made.
#[derive(Debug, Clone)]
pub(crate) struct Notification {
    pub(crate) url: String,
    pub(crate) event_id: String,
    pub(crate) event_type: &'static str,
    pub(crate) body: String,
}

/// When to stop, and how long to wait between attempts.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) max_age: Duration,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) lease: Duration,
    pub(crate) dedup_window: Duration,
}

impl RetryPolicy {
    fn from_settings(settings: &NotifierSettings) -> Self {
        Self {
            max_attempts: settings.max_attempts,
            max_age: Duration::from_secs(settings.max_age_seconds),
            initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
            lease: Duration::from_millis(settings.claim_lease_ms),
            dedup_window: Duration::from_secs(settings.dedup_window_seconds),
        }
    }

    /// Exponential from `initial_backoff`, capped; the receiver's `Retry-After` wins (capped
    /// too); ±20 % jitter so receivers recovering from an outage are not hit all at once.
    pub(crate) fn backoff(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)));
        let base = retry_after.unwrap_or(exponential).min(self.max_backoff);
        base.mul_f64(0.8 + rand::random::<f64>() * 0.4)
    }

    /// Why the delivery must stop now, if it must.
    fn exhausted(&self, delivery: &PendingDelivery, now_ms: i64) -> Option<String> {
        let last = delivery
            .last_error
            .as_deref()
            .unwrap_or("no attempt was made");
        let age =
            Duration::from_millis(u64::try_from(now_ms - delivery.first_seen_ms).unwrap_or(0));
        if delivery.attempts >= self.max_attempts {
            Some(format!(
                "gave up after {} attempts (notifier.max_attempts): {last}",
                delivery.attempts
            ))
        } else if age >= self.max_age {
            Some(format!(
                "gave up after {} s (notifier.max_age_seconds) and {} attempts: {last}",
                age.as_secs(),
                delivery.attempts
            ))
        } else {
            None
        }
    }
}

/// Shared by the event handler and the retry poller.
#[derive(Debug)]
pub(crate) struct Deliveries {
    sender: Sender,
    store: Store,
    producer: EventProducer,
    circuits: Arc<Circuits>,
    /// One per attempt in flight, all destinations together.
    permits: Arc<Semaphore>,
    /// Attempts in flight, so shutdown can wait for them.
    tracker: TaskTracker,
    policy: RetryPolicy,
    metrics: Metrics,
}

impl Deliveries {
    pub(crate) fn new(
        settings: &NotifierSettings,
        store: Store,
        producer: EventProducer,
        metrics: Metrics,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let policy = RetryPolicy::from_settings(settings);
        let circuits = Circuits::new(
            BreakerSettings {
                threshold: settings.breaker_threshold,
                cooldown: Duration::from_millis(settings.breaker_cooldown_ms),
                per_destination: settings.per_destination_concurrency.max(1),
                busy_delay: policy.initial_backoff,
            },
            metrics.webhook_circuits_open.clone(),
        );
        Ok(Arc::new(Self {
            sender: Sender::new(settings)?,
            store,
            producer,
            circuits,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            tracker: TaskTracker::new(),
            policy,
            metrics,
        }))
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Stores a new delivery and starts its first attempt, or schedules it when its URL's
    /// circuit is open or busy. Returns once the delivery is durable (or known to be sent
    /// or pending already): the event's offset may be stored then.
    pub(crate) async fn begin(
        self: &Arc<Self>,
        notification: Notification,
        event: &InboundEvent,
    ) -> Result<(), StoreError> {
        let delivery = PendingDelivery {
            id: delivery_id(&notification.event_id, &notification.url),
            url: notification.url,
            event_id: notification.event_id,
            event_type: notification.event_type.to_owned(),
            body: notification.body,
            attempts: 0,
            first_seen_ms: now_ms(),
            last_error: None,
            origin: origin_of(event),
        };
        let begun = match self
            .circuits
            .admit(&delivery.url, tokio::time::Instant::now())
        {
            Admission::Go(pass) => match self.permits.clone().acquire_owned().await {
                // Taken before the claim, so the lease does not run while waiting for it.
                Ok(permit) => {
                    let token = claim_token();
                    let start = Start::Claim {
                        token: &token,
                        lease: self.policy.lease,
                    };
                    let begun = self.store.begin_delivery(&delivery, start).await?;
                    if begun == Begun::Claimed {
                        let this = self.clone();
                        // In the delivery's span (when traces are exported).
                        self.tracker.spawn(
                            async move {
                                this.attempt(delivery, token, pass, permit).await;
                            }
                            .in_current_span(),
                        );
                    }
                    begun
                }
                // The semaphore is never closed; were it, the poller would still find this.
                Err(_) => {
                    self.defer(&delivery, self.policy.initial_backoff, None)
                        .await?
                }
            },
            Admission::Later { after, reason } => {
                self.defer(&delivery, after, Some(reason)).await?
            }
        };
        match begun {
            Begun::AlreadySent => {
                self.metrics
                    .webhook_deliveries
                    .with_label_values(&["duplicate"])
                    .inc();
                tracing::debug!(event_id = %event.ce_id().unwrap_or_default(), "webhook already delivered; redelivered event skipped");
            }
            Begun::AlreadyPending => {
                tracing::debug!(event_id = %event.ce_id().unwrap_or_default(), "webhook delivery already scheduled; redelivered event skipped");
            }
            Begun::Claimed | Begun::Deferred => {}
        }
        Ok(())
    }

    /// Carries on with a delivery the retry poller claimed. `permit` was taken before the
    /// claim (so the lease does not run while waiting for one).
    pub(crate) async fn resume(
        self: &Arc<Self>,
        delivery: PendingDelivery,
        token: String,
        permit: OwnedSemaphorePermit,
    ) {
        let id = delivery.id.clone();
        if let Err(e) = self.resume_claimed(delivery, token, permit).await {
            // The claim stays; its lease brings the delivery back.
            self.store_trouble(&id, &e);
        }
    }

    async fn resume_claimed(
        self: &Arc<Self>,
        delivery: PendingDelivery,
        token: String,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), StoreError> {
        // Delivered by an instance whose claim ran out under it: only clear the record.
        if self.store.delivery_sent(&delivery.id).await? {
            self.store
                .finish_delivery(&delivery.id, &token, false, self.policy.dedup_window)
                .await?;
            self.metrics
                .webhook_deliveries
                .with_label_values(&["duplicate"])
                .inc();
            return Ok(());
        }
        if let Some(reason) = self.policy.exhausted(&delivery, now_ms()) {
            drop(permit);
            self.give_up(delivery, &token, &reason, "failed").await;
            return Ok(());
        }
        match self
            .circuits
            .admit(&delivery.url, tokio::time::Instant::now())
        {
            Admission::Go(pass) => {
                self.attempt(delivery, token, pass, permit).await;
            }
            Admission::Later { after, reason } => {
                drop(permit);
                if self
                    .store
                    .reschedule_delivery(&delivery, &token, after)
                    .await?
                {
                    self.count_deferral(reason);
                }
            }
        }
        Ok(())
    }

    /// One attempt, then: mark delivered, schedule the next, or give up.
    async fn attempt(
        self: &Arc<Self>,
        mut delivery: PendingDelivery,
        token: String,
        pass: Pass,
        permit: OwnedSemaphorePermit,
    ) {
        delivery.attempts = delivery.attempts.saturating_add(1);
        let outcome = self.sender.send(&delivery).await;
        drop(permit);
        match outcome {
            Outcome::Delivered => {
                pass.succeeded();
                self.metrics
                    .webhook_deliveries
                    .with_label_values(&["delivered"])
                    .inc();
                let waited = now_ms().saturating_sub(delivery.first_seen_ms).max(0);
                self.metrics
                    .webhook_delivery_latency
                    .observe(waited as f64 / 1000.0);
                tracing::debug!(event_id = %delivery.event_id, attempt = delivery.attempts, "webhook delivered");
                if let Err(e) = self
                    .store
                    .finish_delivery(&delivery.id, &token, true, self.policy.dedup_window)
                    .await
                {
                    // Delivered but not marked: after the lease it is sent once more.
                    self.store_trouble(&delivery.id, &e);
                }
            }
            Outcome::Rejected { error } => {
                // The receiver is alive; it refuses this request for good.
                pass.succeeded();
                self.give_up(delivery, &token, &error, "failed").await;
            }
            Outcome::NotAllowed(refused) => {
                drop(pass);
                self.give_up(delivery, &token, &refused.to_string(), "refused")
                    .await;
            }
            Outcome::Failed { error, after } => {
                pass.failed();
                delivery.last_error = Some(error.clone());
                if let Some(reason) = self.policy.exhausted(&delivery, now_ms()) {
                    self.give_up(delivery, &token, &reason, "failed").await;
                    return;
                }
                let wait = self.policy.backoff(delivery.attempts, after);
                match self
                    .store
                    .reschedule_delivery(&delivery, &token, wait)
                    .await
                {
                    Ok(rescheduled) => {
                        self.metrics
                            .webhook_deliveries
                            .with_label_values(&["retried"])
                            .inc();
                        if rescheduled {
                            self.metrics
                                .webhook_retries_scheduled
                                .with_label_values(&["attempt_failed"])
                                .inc();
                        }
                        tracing::info!(event_id = %delivery.event_id, attempt = delivery.attempts, retry_in_ms = wait.as_millis() as u64, %error, "webhook delivery failed; retrying");
                    }
                    Err(e) => self.store_trouble(&delivery.id, &e),
                }
            }
        }
    }

    /// Sends the event to the dead-letter topic with the reason, then forgets the delivery.
    /// If the dead letter cannot be published, the claim stays and its lease brings the
    /// delivery back to try again: a give-up is never lost either.
    async fn give_up(&self, delivery: PendingDelivery, token: &str, reason: &str, outcome: &str) {
        let event = inbound_of(&delivery.origin);
        let published = match self
            .producer
            .dead_letter(&event, PoisonReason::DeliveryFailed, reason, "notifier")
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        if let Err(e) = published {
            tracing::warn!(event_id = %delivery.event_id, error = %e, "cannot dead-letter a failed webhook delivery; it comes back after the claim's lease");
            return;
        }
        self.metrics
            .webhook_deliveries
            .with_label_values(&[outcome])
            .inc();
        self.metrics
            .dead_lettered
            .with_label_values(&["notifier", PoisonReason::DeliveryFailed.as_str()])
            .inc();
        tracing::warn!(event_id = %delivery.event_id, attempts = delivery.attempts, %reason, "webhook delivery gave up; event dead-lettered");
        if let Err(e) = self
            .store
            .finish_delivery(&delivery.id, token, false, self.policy.dedup_window)
            .await
        {
            self.store_trouble(&delivery.id, &e);
        }
    }

    /// Stores a new delivery in the delayed set, due `after` from now.
    async fn defer(
        &self,
        delivery: &PendingDelivery,
        after: Duration,
        reason: Option<Deferral>,
    ) -> Result<Begun, StoreError> {
        let begun = self
            .store
            .begin_delivery(delivery, Start::Defer { after })
            .await?;
        if let (Begun::Deferred, Some(reason)) = (begun, reason) {
            self.count_deferral(reason);
        }
        Ok(begun)
    }

    fn count_deferral(&self, reason: Deferral) {
        self.metrics
            .webhook_retries_scheduled
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    fn store_trouble(&self, id: &str, error: &StoreError) {
        self.metrics
            .consumer_errors
            .with_label_values(&[
                "notifier",
                if error.is_transient() {
                    "transient"
                } else {
                    "effect"
                },
            ])
            .inc();
        tracing::warn!(delivery = %id, %error, "cannot record a webhook delivery's progress in Redis; its claim's lease brings it back");
    }
}

/// Names an (event, URL) pair without the URL's text (it may carry a token).
fn delivery_id(event_id: &str, url: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(event_id.as_bytes());
    digest.update(b"\n");
    digest.update(url.as_bytes());
    hex::encode(digest.finalize())
}

fn claim_token() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn origin_of(event: &InboundEvent) -> OriginEvent {
    OriginEvent {
        topic: event.topic.clone(),
        partition: event.partition,
        offset: event.offset,
        key_hex: event.key.as_deref().map(hex::encode),
        payload_hex: event.payload.as_deref().map(hex::encode),
        headers_hex: event
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), hex::encode(value)))
            .collect(),
        timestamp_ms: event.timestamp.map(|t| t.timestamp_millis()),
    }
}

/// The consumed event again, for its dead letter (same payload, key and headers, and the
/// origin topic, partition and offset).
fn inbound_of(origin: &OriginEvent) -> InboundEvent {
    let bytes = |text: &str| hex::decode(text).unwrap_or_default();
    InboundEvent {
        topic: origin.topic.clone(),
        partition: origin.partition,
        offset: origin.offset,
        key: origin.key_hex.as_deref().map(bytes),
        payload: origin.payload_hex.as_deref().map(bytes),
        headers: origin
            .headers_hex
            .iter()
            .map(|(name, value)| (name.clone(), bytes(value)))
            .collect(),
        timestamp: origin
            .timestamp_ms
            .and_then(chrono::DateTime::from_timestamp_millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            max_age: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            lease: Duration::from_secs(30),
            dedup_window: Duration::from_secs(3600),
        }
    }

    fn within(d: Duration, base_ms: u64) -> bool {
        let ms = d.as_millis() as u64;
        ms >= base_ms * 8 / 10 && ms <= base_ms * 12 / 10
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let p = policy();
        assert!(within(p.backoff(1, None), 500));
        assert!(within(p.backoff(2, None), 1000));
        assert!(within(p.backoff(4, None), 4000));
        assert!(within(p.backoff(30, None), 10_000), "capped");
        assert!(within(p.backoff(1, Some(Duration::from_secs(3))), 3000));
        assert!(
            within(p.backoff(1, Some(Duration::from_secs(3600))), 10_000),
            "Retry-After capped too"
        );
    }

    #[test]
    fn a_delivery_is_given_up_after_its_attempts_or_its_age() {
        let p = policy();
        let mut d = PendingDelivery {
            id: "x".into(),
            url: "https://example.com/h".into(),
            event_id: "e".into(),
            event_type: "lead.assigned".into(),
            body: "{}".into(),
            attempts: 3,
            first_seen_ms: 1_000_000,
            last_error: Some("webhook answered 503 Service Unavailable".into()),
            origin: OriginEvent::default(),
        };
        assert_eq!(p.exhausted(&d, 1_000_000 + 59_000), None);
        assert_eq!(
            p.exhausted(&d, 1_000_000 + 60_000).as_deref(),
            Some("gave up after 60 s (notifier.max_age_seconds) and 3 attempts: webhook answered 503 Service Unavailable")
        );
        d.attempts = 4;
        assert_eq!(
            p.exhausted(&d, 1_000_000).as_deref(),
            Some("gave up after 4 attempts (notifier.max_attempts): webhook answered 503 Service Unavailable")
        );
    }

    #[test]
    fn the_origin_event_survives_storage_byte_for_byte() {
        let event = InboundEvent {
            topic: "t.lead.assigned".into(),
            partition: 2,
            offset: 41,
            key: Some(b"lead-1".to_vec()),
            payload: Some(b"{\"a\":1}".to_vec()),
            headers: vec![("ce_id".into(), vec![0xff, 0x00, b'x'])],
            timestamp: chrono::DateTime::from_timestamp_millis(1_700_000_000_123),
        };
        let back = inbound_of(&origin_of(&event));
        assert_eq!(format!("{back:?}"), format!("{event:?}"));
    }

    #[test]
    fn delivery_ids_differ_by_event_and_url_and_hide_the_url() {
        let a = delivery_id("e1", "https://hooks.slack.com/services/T/B/token");
        assert_eq!(
            a,
            delivery_id("e1", "https://hooks.slack.com/services/T/B/token")
        );
        assert_ne!(
            a,
            delivery_id("e2", "https://hooks.slack.com/services/T/B/token")
        );
        assert_ne!(
            a,
            delivery_id("e1", "https://hooks.slack.com/services/T/B/other")
        );
        assert!(!a.contains("token") && a.len() == 64);
    }
}
