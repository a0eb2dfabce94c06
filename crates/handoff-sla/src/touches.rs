use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;

use handoff_config::RulesHandle;
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition};
use handoff_domain::sla::{is_first_touch, SlaPolicy};
use handoff_kafka::{Effects, EventHandler, HandleError, InboundEvent};
use handoff_store::Store;
use handoff_telemetry::Metrics;

#[derive(Debug)]
pub(crate) struct TouchHandler {
    pub store: Store,
    pub metrics: Metrics,
    pub rules: RulesHandle,
    pub policy: SlaPolicy,
    pub lead_retention: Duration,
}

impl TouchHandler {
    async fn on_disposition(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let disposition: LeadDisposition = event.decode(EventKind::LeadDisposition)?;
        if !is_first_touch(disposition.outcome) {
            return Ok(());
        }
        let touched_ms = disposition
            .occurred_at
            .timestamp_millis()
            .min(Utc::now().timestamp_millis());
        let touch = self
            .store
            .record_first_touch(disposition.lead_id.as_str(), touched_ms)
            .await
            .map_err(HandleError::transient)?;
        if let Some(touch) = touch {
            // Saturating: `occurred_at` comes from the reporter and may be far in the past.
            let seconds = touched_ms.saturating_sub(touch.assigned_ms).max(0) as f64 / 1000.0;
            self.metrics
                .first_touch_seconds
                .with_label_values(&[touch.team.as_str()])
                .observe(seconds);
            tracing::info!(
                lead_id = %disposition.lead_id,
                rep = %touch.rep,
                outcome = disposition.outcome.as_str(),
                seconds,
                "first touch; SLA clock stopped"
            );
        }
        Ok(())
    }

    async fn on_assigned(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let assigned: LeadAssigned = event.decode(EventKind::LeadAssigned)?;
        let due_at = self.policy.due_at(
            assigned.assigned_at,
            self.rules
                .current()
                .routing
                .first_touch_seconds(&assigned.team_id),
        );
        let adopted = self
            .store
            .adopt_assignment(
                assigned.lead_id.as_str(),
                &assigned.team_id,
                &assigned.rep_id,
                assigned.attempt,
                assigned.assigned_at.timestamp_millis(),
                assigned.first_touch_due_at.min(due_at).timestamp_millis(),
                self.lead_retention.as_secs(),
            )
            .await
            .map_err(HandleError::transient)?;
        if adopted {
            tracing::info!(lead_id = %assigned.lead_id, attempt = assigned.attempt, "adopted an assignment made elsewhere; deadline scheduled");
        }
        Ok(())
    }
}

impl EventHandler for TouchHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        let kind = event.kind();
        match kind {
            Some(EventKind::LeadDisposition) => self.on_disposition(event).await?,
            Some(EventKind::LeadAssigned) => self.on_assigned(event).await?,
            _ => {
                return Err(HandleError::poison(
                    handoff_kafka::PoisonReason::UnexpectedType,
                    format!("unexpected event type {:?}", event.header("ce_type")),
                ))
            }
        }
        // Every effect above is a Redis write that has already been acknowledged.
        Ok(async { Ok(()) }.boxed())
    }
}
