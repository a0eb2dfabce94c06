//! Queues that drain by themselves: every `queue_poll_ms`, each queue's oldest leads are
//! offered to the reps again with the current rules and state — so a lead is routed soon
//! after capacity frees, a rep comes back or is activated, working hours begin or the
//! rules change, whichever happens. Several router instances may drain at once: the
//! commit takes a lead out of its queue atomically, so one of them wins.
//!
//! An assignment from a queue has no consumer offset to hold back until its event is
//! acknowledged: the commit puts it in an outbox, cleared after the broker's ack and
//! published again by whichever drainer finds it there later.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use handoff_config::{QueueOrder, Rules};
use handoff_domain::events::{EventKind, LeadAssigned};
use handoff_domain::{Lead, LeadId, QueueName};
use handoff_kafka::{EventProducer, OutboundEvent, TraceParent};
use handoff_store::{QueueView, StoreError, WaitingLead};

use crate::placement::{KnownOwners, PlaceError, Placed, Placer, Waited};

/// A queue pass stops after this many leads in a row that still nobody can take: the ones
/// behind them mostly go to the same full team.
const GIVE_UP_AFTER: usize = 10;

/// An outbox entry older than this lost its publisher (a crash): publish it again.
const OUTBOX_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum DrainError {
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing an assignment from a queue: {0}")]
    Publish(String),
}

#[derive(Debug)]
pub(crate) struct QueueDrainer {
    pub placer: Placer,
    pub producer: EventProducer,
    pub interval: Duration,
    pub scan: u32,
    pub order: QueueOrder,
    pub reconcile_every: Option<Duration>,
}

impl QueueDrainer {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reconcile = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if !self.producer.gate().is_open() {
                // The state is lost: no queue to drain until it is rebuilt.
                continue;
            }
            if let Err(e) = self.pass().await {
                self.placer
                    .metrics
                    .consumer_errors
                    .with_label_values(&["router", "drain"])
                    .inc();
                tracing::warn!(error = %e, "queue drain pass failed; retrying next tick");
            }
            if let Some(every) = self.reconcile_every {
                if last_reconcile.elapsed() >= every {
                    last_reconcile = tokio::time::Instant::now();
                    self.reconcile().await;
                }
            }
        }
    }

    /// One pass over the outbox and every queue.
    pub async fn pass(&self) -> Result<(), DrainError> {
        self.republish_outbox().await?;
        let rules = self.placer.rules.current();
        let mut queues: BTreeSet<QueueName> =
            self.placer.store.queue_names().await?.into_iter().collect();
        queues.extend(rules.routing.queue_names().into_iter().map(QueueName::from));
        for queue in &queues {
            let view = self.placer.store.queue(queue, self.scan).await?;
            let view = if self.drain(&rules, &view).await? {
                // Leads left it: read it again for the gauges.
                self.placer.store.queue(queue, 1).await?
            } else {
                view
            };
            self.observe(&view);
        }
        Ok(())
    }

    /// Offers the leads of `view` to reps, first come first; `true` if any left the queue.
    async fn drain(&self, rules: &Rules, view: &QueueView) -> Result<bool, DrainError> {
        let queue = &view.name;
        let waiting = self.placer.store.waiting_leads(view).await?;
        let mut changed = false;
        let mut candidates = Vec::with_capacity(waiting.len());
        for entry in waiting {
            match decode(&entry) {
                Some(lead) => {
                    let score = rules.scoring.score(&lead);
                    let queued_ms = entry.queued_ms.unwrap_or(entry.received_ms);
                    // The assignment continues the trace the lead came in with.
                    let trace = TraceParent::child_of(entry.trace.as_deref());
                    candidates.push((entry.received_ms, queued_ms, lead, score, trace));
                }
                None => {
                    // Its record expired (or was written by a newer version): nothing can
                    // route it, and a queue must not be blocked by it.
                    if self
                        .placer
                        .store
                        .drop_from_queue(queue, &entry.lead_id)
                        .await?
                    {
                        changed = true;
                        tracing::warn!(lead_id = %entry.lead_id, %queue, "queued lead's record is gone; removed from the queue");
                    }
                }
            }
        }
        if self.order == QueueOrder::Score {
            candidates.sort_by(|a, b| b.3.points.cmp(&a.3.points).then(a.0.cmp(&b.0)));
        }
        let mut still_waiting = 0;
        for (_, queued_ms, lead, score, trace) in candidates {
            let waited = Waited {
                queue: queue.clone(),
                since: DateTime::from_timestamp_millis(queued_ms).unwrap_or(lead.received_at),
            };
            let owners = KnownOwners {
                published: self.placer.published_owner(&rules.routing, &lead).await?,
                prior: None,
            };
            match self
                .placer
                .route(rules, &lead, &score, owners, Some(&waited), &trace)
                .await?
            {
                Placed::Assigned(event, payload) => {
                    still_waiting = 0;
                    changed = true;
                    self.publish(&lead, &event, payload, trace).await?;
                }
                Placed::StillWaiting => {
                    still_waiting += 1;
                    if still_waiting >= GIVE_UP_AFTER {
                        break;
                    }
                }
                // Another instance took it (or it was closed): it left the queue too.
                Placed::Nothing => changed = true,
                Placed::Parked(..) | Placed::Replay(_) => {}
            }
        }
        Ok(changed)
    }

    async fn publish(
        &self,
        lead: &Lead,
        event: &LeadAssigned,
        payload: String,
        trace: TraceParent,
    ) -> Result<(), DrainError> {
        self.publish_assignment(&lead.id, event, payload, trace)
            .await
    }

    /// Publishes an assignment made from a queue and clears it from the outbox once the
    /// broker has acknowledged it.
    async fn publish_assignment(
        &self,
        lead_id: &LeadId,
        event: &LeadAssigned,
        payload: String,
        trace: TraceParent,
    ) -> Result<(), DrainError> {
        let outbound = OutboundEvent::encoded(
            EventKind::LeadAssigned,
            event.event_id(),
            lead_id.as_str(),
            Utc::now(),
            trace,
            payload,
        );
        self.producer
            .publish(&outbound)
            .await
            .map_err(|e| DrainError::Publish(e.to_string()))?;
        self.placer.store.outbox_done(lead_id).await?;
        Ok(())
    }

    async fn republish_outbox(&self) -> Result<(), DrainError> {
        let grace = chrono::Duration::from_std(OUTBOX_GRACE).unwrap_or_default();
        let pending = self
            .placer
            .store
            .outbox_pending(self.placer.store.now() - grace, 100)
            .await?;
        for (lead_id, payload) in pending {
            let Some((event, payload)) = payload.and_then(|p| {
                let event = serde_json::from_str::<LeadAssigned>(&p).ok()?;
                Some((event, p))
            }) else {
                self.placer.store.outbox_done(&lead_id).await?;
                continue;
            };
            self.publish_assignment(&lead_id, &event, payload, TraceParent::new_root())
                .await?;
            tracing::info!(%lead_id, "assignment from a queue published again from the outbox");
        }
        Ok(())
    }

    fn observe(&self, view: &QueueView) {
        let queue = &view.name;
        let metrics = &self.placer.metrics;
        metrics
            .queue_depth
            .with_label_values(&[queue.as_str()])
            .set(i64::try_from(view.depth).unwrap_or(i64::MAX));
        let oldest = view.oldest_received_ms.map_or(0.0, |ms| {
            (Utc::now().timestamp_millis() - ms).max(0) as f64 / 1000.0
        });
        metrics
            .queue_oldest_wait_seconds
            .with_label_values(&[queue.as_str()])
            .set(oldest);
    }

    async fn reconcile(&self) {
        let rules = self.placer.rules.current();
        let report = self
            .placer
            .store
            .reconcile(
                rules.routing.rep_ids(),
                self.placer.release,
                self.placer.retention.as_secs(),
            )
            .await;
        match report {
            Ok(report) => {
                let drift = &self.placer.metrics.capacity_drift;
                drift
                    .with_label_values(&["stale_open"])
                    .inc_by(report.stale_open);
                drift
                    .with_label_values(&["missing_open"])
                    .inc_by(report.missing_open);
                drift
                    .with_label_values(&["stale_queued"])
                    .inc_by(report.stale_queued);
                drift
                    .with_label_values(&["missing_deadline"])
                    .inc_by(report.missing_deadline);
                if report.total() > 0 {
                    tracing::warn!(?report, "reconciliation repaired routing state");
                }
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation failed; retrying later"),
        }
    }
}

fn decode(entry: &WaitingLead) -> Option<Lead> {
    serde_json::from_str(entry.lead.as_deref()?).ok()
}
