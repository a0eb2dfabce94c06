//! The consumer side: each `lead.created` is scored and placed once; a redelivered lead
//! replays its first decision's event (same event id), whatever the rules say now.

use chrono::Utc;

use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition};
use handoff_domain::lead::LeadPayload;
use handoff_domain::submission::check_lead;
use handoff_domain::Lead;
use handoff_kafka::{
    Effects, EventHandler, EventProducer, HandleError, InboundEvent, OutboundEvent, PoisonReason,
    TraceParent,
};
use handoff_store::RecordedDecision;
use handoff_telemetry::traces::SPAN_TARGET;
use tracing::Instrument;

use crate::placement::{disposition_id, KnownOwners, PlaceError, Placed, Placer};

#[derive(Debug)]
pub struct RouterHandler {
    placer: Placer,
    producer: EventProducer,
}

impl RouterHandler {
    pub(crate) fn new(placer: Placer, producer: EventProducer) -> Self {
        Self { placer, producer }
    }

    async fn publish(&self, event: OutboundEvent) -> Result<Effects, HandleError> {
        self.producer
            .enqueue(&event)
            .await
            .map_err(HandleError::from_error)
    }
}

impl EventHandler for RouterHandler {
    /// One span per attempt: the decision and, through its effects, the produce
    /// acknowledgement after which the offset may be committed.
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "router.lead_created",
            otel.kind = "consumer",
            lead_id = tracing::field::Empty,
        );
        let trace = event.trace_for(&span);
        let effects = self.route(event, trace).instrument(span.clone()).await?;
        Ok(Box::pin(effects.instrument(span)))
    }
}

impl RouterHandler {
    async fn route(
        &self,
        event: &InboundEvent,
        trace: TraceParent,
    ) -> Result<Effects, HandleError> {
        let payload: LeadPayload = event.decode(EventKind::LeadCreated)?;
        // Other producers publish here too: what they left unset comes from the record
        // (deterministically, so a redelivery is the same lead), and their leads are held to
        // ingest's rules.
        let lead = payload
            .into_lead(&event.origin())
            .map_err(|e| HandleError::poison(PoisonReason::ContractInvalid, e.to_string()))?;
        let lead = check_lead(&lead)
            .map_err(|e| HandleError::poison(PoisonReason::ContractInvalid, e.to_string()))?;
        tracing::Span::current().record("lead_id", tracing::field::display(&lead.id));
        let rules = self.placer.rules.current();
        let sticky = rules.routing.sticky_seconds() > 0 && !lead.contact.email.is_empty();
        let score = rules.scoring.score(&lead);
        self.placer
            .metrics
            .lead_score
            .observe(f64::from(score.points));
        let recorded = self.placer.store.record_lead(
            &lead.id,
            &lead.source,
            lead.received_at,
            self.placer.retention.as_secs(),
            sticky.then_some(lead.contact.email.as_str()),
        );
        let published = async {
            if score.qualified {
                self.placer.published_owner(&rules.routing, &lead).await
            } else {
                Ok(None)
            }
        };
        // Independent keys: the account owner is read in the same round trip time as the
        // lead is recorded (one of the router's sequential round trips a lead, perf in
        // docs/benchmarks.md), not after it.
        let (prior, published) = futures::join!(recorded, published);
        let owners = KnownOwners {
            prior: prior.map_err(HandleError::from_error)?,
            published: published.map_err(place_failure)?,
        };
        let placed = if score.qualified {
            self.placer
                .route(&rules, &lead, &score, owners, None, &trace)
                .await
        } else {
            self.placer.nurture(&lead, score, &trace).await
        }
        .map_err(place_failure)?;
        match outbound_of(&lead, placed, trace)? {
            Some(event) => self.publish(event).await,
            None => Ok(Box::pin(async { Ok(()) })),
        }
    }
}

/// The event to publish for what became of a lead (`None`: nothing to say).
pub(crate) fn outbound_of(
    lead: &Lead,
    placed: Placed,
    trace: TraceParent,
) -> Result<Option<OutboundEvent>, HandleError> {
    let encoded = |kind, id, payload| {
        OutboundEvent::encoded(kind, id, lead.id.as_str(), Utc::now(), trace, payload)
    };
    match placed {
        Placed::Assigned(event, payload) => Ok(Some(encoded(
            EventKind::LeadAssigned,
            event.event_id(),
            payload,
        ))),
        Placed::Parked(event, payload) => Ok(Some(encoded(
            EventKind::LeadDisposition,
            disposition_id(&event),
            payload,
        ))),
        Placed::Replay(recorded) => replay(lead, &recorded, trace).map(Some),
        Placed::StillWaiting | Placed::Nothing => Ok(None),
    }
}

/// The first decision's event again, with the same event id, so downstream de-duplicates.
fn replay(
    lead: &Lead,
    recorded: &RecordedDecision,
    trace: TraceParent,
) -> Result<OutboundEvent, HandleError> {
    let unreadable = |e: serde_json::Error| {
        HandleError::permanent(format!(
            "recorded decision of {} is unreadable: {e}",
            lead.id
        ))
    };
    tracing::debug!(lead_id = %lead.id, "lead decided before; replaying its decision");
    match recorded.kind {
        EventKind::LeadAssigned => {
            let event: LeadAssigned =
                serde_json::from_str(&recorded.payload).map_err(unreadable)?;
            outbound(
                EventKind::LeadAssigned,
                event.event_id(),
                lead,
                trace,
                &event,
            )
        }
        _ => {
            let event: LeadDisposition =
                serde_json::from_str(&recorded.payload).map_err(unreadable)?;
            let id = disposition_id(&event);
            outbound(EventKind::LeadDisposition, id, lead, trace, &event)
        }
    }
}

fn outbound<T: serde::Serialize>(
    kind: EventKind,
    id: String,
    lead: &Lead,
    trace: TraceParent,
    data: &T,
) -> Result<OutboundEvent, HandleError> {
    OutboundEvent::new(kind, id, lead.id.as_str(), Utc::now(), trace, data)
        .map_err(|e| HandleError::permanent(format!("cannot encode {}: {e}", kind.ce_type())))
}

fn place_failure(error: PlaceError) -> HandleError {
    HandleError::from_error(error)
}
