use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use handoff_config::SlaSettings;
use handoff_domain::events::{EventKind, SlaBreached};
use handoff_domain::LeadId;
use handoff_kafka::{EventProducer, OutboundEvent, TraceParent};
use handoff_store::{DueBreach, Store};
use handoff_telemetry::Metrics;

/// Claims missed deadlines and publishes one `sla.breached` per (lead, attempt).
#[derive(Debug)]
pub struct SlaPoller {
    store: Store,
    producer: EventProducer,
    metrics: Metrics,
    interval: Duration,
    lease: Duration,
    batch: u32,
}

impl SlaPoller {
    pub fn new(
        store: Store,
        producer: EventProducer,
        metrics: Metrics,
        settings: &SlaSettings,
    ) -> Self {
        Self {
            store,
            producer,
            metrics,
            interval: Duration::from_millis(settings.poll_interval_ms),
            lease: Duration::from_secs(u64::from(settings.lease_seconds)),
            batch: settings.claim_batch,
        }
    }

    /// Polls until `shutdown`. Redis or broker trouble is logged and retried on the next
    /// tick: a claim not completed comes back after its lease.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gauge_tick = 0u32;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            loop {
                match self.tick().await {
                    // A full batch: there may be more due right now.
                    Ok(claimed) if claimed == self.batch as usize => continue,
                    Ok(_) => break,
                    Err(e) => {
                        self.metrics
                            .consumer_errors
                            .with_label_values(&["sla", "transient"])
                            .inc();
                        tracing::warn!(error = %e, "SLA poll failed; retrying next tick");
                        break;
                    }
                }
            }
            gauge_tick = gauge_tick.wrapping_add(1);
            if gauge_tick % 5 == 0 {
                if let Ok(open) = self.store.awaiting_first_touch().await {
                    self.metrics.awaiting_first_touch.set(open);
                }
            }
        }
    }

    /// One claim-publish-complete round; returns how many were claimed.
    async fn tick(&self) -> Result<usize, String> {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
        let due = self
            .store
            .claim_due(
                now.timestamp_millis(),
                lease_until.timestamp_millis(),
                self.batch,
            )
            .await
            .map_err(|e| e.to_string())?;
        let claimed = due.len();
        let published = join_all(due.into_iter().map(|breach| self.breach(breach, now))).await;
        for outcome in published {
            outcome?;
        }
        Ok(claimed)
    }

    async fn breach(&self, due: DueBreach, now: DateTime<Utc>) -> Result<(), String> {
        let event = SlaBreached {
            lead_id: LeadId::from(due.lead_id.as_str()),
            attempt: due.attempt,
            team_id: due.team.clone(),
            rep_id: due.rep.clone(),
            due_at: DateTime::from_timestamp_millis(due.due_ms).unwrap_or(now),
            breached_at: now,
        };
        let outbound = OutboundEvent::new(
            EventKind::SlaBreached,
            event.event_id(),
            &due.lead_id,
            now,
            TraceParent::new_root(),
            &event,
        )
        .map_err(|e| e.to_string())?;
        self.producer
            .publish(&outbound)
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .complete_breach(&due.member)
            .await
            .map_err(|e| e.to_string())?;
        self.metrics
            .sla_breaches
            .with_label_values(&[due.team.as_str()])
            .inc();
        let late_ms = (now.timestamp_millis() - due.due_ms).max(0);
        tracing::warn!(lead_id = %due.lead_id, attempt = due.attempt, rep = %due.rep, team = %due.team, late_ms, "first-touch SLA breached");
        Ok(())
    }
}
