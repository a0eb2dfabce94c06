//! From a consumed event to a [`Notification`]: which event tells whom what. The body comes
//! from `message`; sending, retrying and de-duplicating are `delivery`'s.

use std::sync::Arc;

use futures::FutureExt;

use handoff_config::RulesHandle;
use handoff_domain::disposition::Outcome;
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition, SlaBreached, SlaReminder};
use handoff_domain::routing::ChannelKind;
use handoff_domain::{LeadId, RepId, TeamId, Transience};
use handoff_kafka::{Effects, EventHandler, HandleError, InboundEvent, PoisonReason};
use handoff_store::Store;
use handoff_telemetry::traces::SPAN_TARGET;
use tracing::Instrument;

use crate::delivery::{Deliveries, Notification};
use crate::links::LinkSigner;
use crate::message::{self, LeadFacts};

#[derive(Debug)]
pub(crate) struct NotifierHandler {
    deliveries: Arc<Deliveries>,
    rules: RulesHandle,
    /// Reads the lead's current assignment, for the details of reminders and breaches.
    store: Store,
    /// `None`: `[actions]` is off and messages carry no links.
    links: Option<LinkSigner>,
}

/// Whose channel an event goes to.
enum Audience {
    /// The assignee (their own channel, else their team's).
    Rep { team: Option<TeamId>, rep: RepId },
    /// The team's manager channel (else the team's).
    Manager { team: Option<TeamId> },
}

impl NotifierHandler {
    pub(crate) fn new(
        deliveries: Arc<Deliveries>,
        rules: RulesHandle,
        store: Store,
        links: Option<LinkSigner>,
    ) -> Self {
        Self {
            deliveries,
            rules,
            store,
            links,
        }
    }

    /// The lead's details as its current assignment carries them; none if the lead or
    /// its assignment is unknown (the message then says what the event says).
    async fn facts(&self, lead: &LeadId) -> Result<LeadFacts, HandleError> {
        let record = self.store.lead(lead.as_str()).await.map_err(|e| {
            HandleError::transient(format!("cannot read the lead for its notification: {e}"))
        })?;
        Ok(record
            .and_then(|r| r.assigned)
            .and_then(|a| serde_json::from_str::<LeadAssigned>(&a).ok())
            .map(|a| LeadFacts::of_assignment(&a))
            .unwrap_or_default())
    }

    async fn notification(
        &self,
        event: &InboundEvent,
    ) -> Result<Option<Notification>, HandleError> {
        // (audience, event id, type, message, the attempt links act on)
        let (audience, event_id, event_type, message, attempt) = match event.kind() {
            Some(EventKind::LeadAssigned) => {
                let e: LeadAssigned = event.decode(EventKind::LeadAssigned)?;
                (
                    Audience::Rep {
                        team: Some(e.team_id.clone()),
                        rep: e.rep_id.clone(),
                    },
                    e.event_id(),
                    "lead.assigned",
                    message::assigned(&e),
                    Some((e.lead_id.clone(), e.attempt)),
                )
            }
            Some(EventKind::SlaBreached) => {
                let e: SlaBreached = event.decode(EventKind::SlaBreached)?;
                let facts = self.facts(&e.lead_id).await?;
                (
                    Audience::Manager {
                        team: e.team_id.clone(),
                    },
                    e.event_id(),
                    "sla.breached",
                    message::breached(&e, facts),
                    None,
                )
            }
            Some(EventKind::SlaReminder) => {
                let e: SlaReminder = event.decode(EventKind::SlaReminder)?;
                let facts = self.facts(&e.lead_id).await?;
                let audience = match e.rep_id.clone() {
                    Some(rep) => Audience::Rep {
                        team: e.team_id.clone(),
                        rep,
                    },
                    None => Audience::Manager {
                        team: e.team_id.clone(),
                    },
                };
                (
                    audience,
                    e.event_id(),
                    "sla.reminder",
                    message::reminder(&e, facts),
                    Some((e.lead_id.clone(), e.attempt)),
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
                let facts = self.facts(&e.lead_id).await?;
                (
                    Audience::Manager {
                        team: e.team_id.clone(),
                    },
                    id,
                    "lead.escalated",
                    message::escalated(&e, facts),
                    None,
                )
            }
            _ => {
                return Err(HandleError::poison(
                    PoisonReason::UnexpectedType,
                    format!("unexpected event type {:?}", event.header("ce_type")),
                ))
            }
        };
        let rules = self.rules.current();
        let routing = &rules.routing;
        let (channel, rep) = match &audience {
            Audience::Rep { team, rep } => (
                routing.rep_channel(team.as_ref().map_or("", |t| t.as_str()), rep.as_str()),
                Some(rep),
            ),
            Audience::Manager { team } => (
                team.as_ref()
                    .and_then(|t| routing.manager_channel(t.as_str())),
                None,
            ),
        };
        let Some(channel) = channel else {
            return Ok(None);
        };
        // A link acts as the rep: only the rep's own channel gets one.
        let links = match (&self.links, rep, attempt, channel.kind) {
            (Some(signer), Some(rep), Some((lead, attempt)), ChannelKind::Rep) => {
                signer.links(&lead, rep, attempt, chrono::Utc::now())
            }
            _ => None,
        };
        let body = message.with_links(links).render(&channel);
        let body = serde_json::to_string(&body)
            .map_err(|e| HandleError::permanent(format!("cannot encode webhook body: {e}")))?;
        Ok(Some(Notification {
            url: channel.url,
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
        if let Some(notification) = self.notification(event).await? {
            // The delivery's step of the lead's trace: storing it and its first attempt
            // (exported when tracing is on; retries later are not part of it).
            let span = tracing::info_span!(
                target: SPAN_TARGET,
                "notifier.deliver",
                otel.kind = "producer",
                event_type = notification.event_type,
                lead_id = event.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()),
            );
            // Webhooks carry no traceparent: only the span's parent matters here.
            let _ = event.trace_for(&span);
            self.deliveries
                .begin(notification, event)
                .instrument(span)
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
