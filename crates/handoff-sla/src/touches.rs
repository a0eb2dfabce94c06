use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;

use handoff_domain::assignment::Assignment;
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition};
use handoff_domain::lifecycle::CapacityRelease;
use handoff_kafka::{Effects, EventHandler, HandleError, InboundEvent};
use handoff_store::{ReportOutcome, Store};
use handoff_telemetry::Metrics;

use crate::clocks::Clocks;

/// Moves leads through their lifecycle from what is reported (`lead.disposition`) and
/// adopts assignments other producers announce (`lead.assigned`).
#[derive(Debug)]
pub(crate) struct TouchHandler {
    pub store: Store,
    pub metrics: Metrics,
    pub release: CapacityRelease,
    pub lead_retention: Duration,
    pub closed_retention: Duration,
    pub clocks: Clocks,
}

impl TouchHandler {
    async fn on_disposition(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let disposition: LeadDisposition = event.decode(EventKind::LeadDisposition)?;
        let event_id = event.header("ce_id").unwrap_or_default();
        let event_id = if event_id.is_empty() {
            // Without a CloudEvents id, the record's position is the report's identity.
            format!("{}/{}/{}", event.topic, event.partition, event.offset)
        } else {
            event_id.to_owned()
        };
        let outcome = self
            .store
            .report_disposition(
                &disposition,
                &event_id,
                self.release,
                self.closed_retention.as_secs(),
                &|at, team, rep| self.clocks.disposition_from_touch(at, team, rep),
            )
            .await
            .map_err(HandleError::from_error)?;
        let Some(outcome) = outcome else {
            // The router's own decisions (nurture, queue, escalation) are applied where made.
            return Ok(());
        };
        record_report(&self.metrics, &disposition, &outcome);
        Ok(())
    }
    async fn on_assigned(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let assigned: LeadAssigned = event.decode(EventKind::LeadAssigned)?;
        // The router's own assignments are committed with their clocks: nothing to adopt
        // or schedule (the common case, one read).
        if self
            .store
            .assignment_settled(&assigned.lead_id, assigned.attempt)
            .await
            .map_err(HandleError::from_error)?
        {
            return Ok(());
        }
        let payload = serde_json::to_string(&assigned)
            .map_err(|e| HandleError::permanent(format!("cannot encode lead.assigned: {e}")))?;
        let adopted = self
            .store
            .adopt_assignment(
                &Assignment::adopted(&assigned),
                &payload,
                self.release,
                self.lead_retention.as_secs(),
                self.store.now(),
            )
            .await
            .map_err(HandleError::from_error)?;
        if adopted {
            tracing::info!(lead_id = %assigned.lead_id, attempt = assigned.attempt, "adopted an assignment made elsewhere; clock started");
        }
        self.clocks
            .schedule(&self.store, &assigned)
            .await
            .map_err(HandleError::transient)?;
        Ok(())
    }
}

/// Counts and logs what applying a report did (the first-touch time when it was the first).
pub fn record_report(metrics: &Metrics, disposition: &LeadDisposition, outcome: &ReportOutcome) {
    let at = disposition.occurred_at.min(Utc::now());
    match outcome {
        ReportOutcome::Applied {
            from,
            first_touch,
            assigned_ms,
            team,
            rep,
        } => {
            if let (true, Some(assigned_ms)) = (*first_touch, *assigned_ms) {
                // Saturating: `occurred_at` comes from the reporter and may be far off.
                let seconds =
                    at.timestamp_millis().saturating_sub(assigned_ms).max(0) as f64 / 1000.0;
                metrics
                    .first_touch_seconds
                    .with_label_values(&[team.as_ref().map_or("", |t| t.as_str())])
                    .observe(seconds);
            }
            tracing::info!(
                lead_id = %disposition.lead_id,
                rep = rep.as_ref().map(|r| r.as_str()),
                outcome = disposition.outcome.as_str(),
                from = from.as_str(),
                first_touch,
                "report applied to the lead"
            );
        }
        ReportOutcome::Duplicate => {}
        ReportOutcome::Refused { state } => {
            metrics
                .reports_refused
                .with_label_values(&[state.as_str()])
                .inc();
            tracing::warn!(lead_id = %disposition.lead_id, outcome = disposition.outcome.as_str(), state = state.as_str(), "report refused: illegal in the lead's state");
        }
        ReportOutcome::Unknown => {
            metrics
                .reports_refused
                .with_label_values(&["unknown_lead"])
                .inc();
            tracing::warn!(lead_id = %disposition.lead_id, outcome = disposition.outcome.as_str(), "report for a lead this deployment does not know; ignored");
        }
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
