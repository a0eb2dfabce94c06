//! From a consumed event to a [`Notification`]: which event tells whom what. The body comes
//! from `message`; sending, retrying and de-duplicating are `delivery`'s.

use std::sync::Arc;

use futures::FutureExt;

use handoff_config::RulesHandle;
use handoff_domain::disposition::Outcome;
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition, SlaBreached, SlaReminder};
use handoff_domain::Transience;
use handoff_kafka::{Effects, EventHandler, HandleError, InboundEvent, PoisonReason};

use crate::delivery::{Deliveries, Notification};
use crate::message;

#[derive(Debug)]
pub(crate) struct NotifierHandler {
    deliveries: Arc<Deliveries>,
    rules: RulesHandle,
}

impl NotifierHandler {
    pub(crate) fn new(deliveries: Arc<Deliveries>, rules: RulesHandle) -> Self {
        Self { deliveries, rules }
    }

    fn notification(&self, event: &InboundEvent) -> Result<Option<Notification>, HandleError> {
        let (team, rep, event_id, event_type, body) = match event.kind() {
            Some(EventKind::LeadAssigned) => {
                let e: LeadAssigned = event.decode(EventKind::LeadAssigned)?;
                (
                    Some(e.team_id.clone()),
                    Some(e.rep_id.clone()),
                    e.event_id(),
                    "lead.assigned",
                    message::assigned(&e),
                )
            }
            Some(EventKind::SlaBreached) => {
                let e: SlaBreached = event.decode(EventKind::SlaBreached)?;
                (
                    e.team_id.clone(),
                    e.rep_id.clone(),
                    e.event_id(),
                    "sla.breached",
                    message::breached(&e),
                )
            }
            Some(EventKind::SlaReminder) => {
                let e: SlaReminder = event.decode(EventKind::SlaReminder)?;
                (
                    e.team_id.clone(),
                    e.rep_id.clone(),
                    e.event_id(),
                    "sla.reminder",
                    message::reminder(&e),
                )
            }
            Some(EventKind::LeadDisposition) => {
                let e: LeadDisposition = event.decode(EventKind::LeadDisposition)?;
                // Only escalations are news for a channel; the other outcomes are reports
                // the reps made themselves.
                if e.outcome != Outcome::Escalated {
                    return Ok(None);
                }
                let Some(id) = event.header("ce_id").map(str::to_owned) else {
                    return Ok(None);
                };
                (
                    e.team_id.clone(),
                    None,
                    id,
                    "lead.escalated",
                    message::escalated(&e),
                )
            }
            _ => {
                return Err(HandleError::poison(
                    PoisonReason::UnexpectedType,
                    format!("unexpected event type {:?}", event.header("ce_type")),
                ))
            }
        };
        // Breaches and escalations go to the team channel (the manager's), assignments and
        // reminders to the rep.
        let rep_for_url = rep
            .as_ref()
            .filter(|_| matches!(event_type, "lead.assigned" | "sla.reminder"))
            .map(|r| r.as_str());
        let rules = self.rules.current();
        let team = team.as_ref().map_or("", |t| t.as_str());
        let Some(url) = rules.routing.webhook_for(team, rep_for_url) else {
            return Ok(None);
        };
        let body = serde_json::to_string(&body)
            .map_err(|e| HandleError::permanent(format!("cannot encode webhook body: {e}")))?;
        Ok(Some(Notification {
            url: url.to_owned(),
            event_id,
            event_type,
            body,
        }))
    }
}

impl EventHandler for NotifierHandler {
    /// Stores the delivery (and starts its first attempt) before returning: once this is
    /// done the event's offset may be stored, because the delivery lives in Redis.
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        if let Some(notification) = self.notification(event)? {
            self.deliveries
                .begin(notification, event)
                .await
                .map_err(|e| {
                    if e.is_transient() {
                        HandleError::transient(e)
                    } else {
                        // Never dropped silently: the event waits on the dead-letter topic.
                        HandleError::poison(
                            PoisonReason::DeliveryFailed,
                            format!("cannot store the webhook delivery: {e}"),
                        )
                    }
                })?;
        }
        Ok(async { Ok(()) }.boxed())
    }
}
