//! A missed first touch sets off the team's escalation policy: the lead goes to another
//! rep of the team (never one who had it) until `max_attempts`, then to the escalation
//! team; when nobody can take it, it stays with its rep and the manager is told (the
//! ESCALATED disposition). Each step is one atomic Redis step (the old rep's capacity and
//! clock go, the new attempt's start) and happens once per (lead, attempt): a redelivered
//! breach replays the events with the same ids.
//!
//! A touch that lands before the step commits wins: the lead stays with the rep who
//! called (the breach stands, the reassignment does not happen). A touch after it is a
//! report like any other (the API refuses a rep's key for a lead no longer theirs).

use chrono::Utc;

use handoff_config::{EscalationSettings, Rules};
use handoff_domain::assignment::Assignment;
use handoff_domain::disposition::{Actor, ActorKind, Outcome};
use handoff_domain::events::{
    stable_event_id, EventKind, LeadAssigned, LeadDisposition, SlaBreached,
};
use handoff_domain::routing::RoutingExplanation;
use handoff_domain::sla::Sla;
use handoff_domain::{RepId, TeamId};
use handoff_kafka::{
    Effects, EventHandler, EventProducer, HandleError, InboundEvent, OutboundEvent, TraceParent,
};
use handoff_store::{EscalateOutcome, Escalation};
use handoff_telemetry::traces::SPAN_TARGET;
use tracing::Instrument;

use crate::placement::{effective_capacity, PlaceError, Placer};

/// Optimistic commits that lost a race are decided again this many times.
const MAX_DECISION_ATTEMPTS: usize = 16;

#[derive(Debug)]
pub(crate) struct EscalationHandler {
    pub placer: Placer,
    pub producer: EventProducer,
    pub defaults: EscalationSettings,
}

/// The events one escalation step publishes, as (kind, event id, payload): the payloads
/// stored with the step, so a replay publishes the same bytes.
#[derive(Default)]
struct Steps {
    events: Vec<(EventKind, String, String)>,
}

fn disposition_id(lead: &str, outcome: Outcome, attempt: u32) -> String {
    stable_event_id(
        EventKind::LeadDisposition,
        &[lead, outcome.as_str(), &attempt.to_string()],
    )
}

impl EscalationHandler {
    async fn steps(
        &self,
        rules: &Rules,
        breach: &SlaBreached,
        old_rep: &RepId,
        trace: &str,
    ) -> Result<Steps, PlaceError> {
        let store = &self.placer.store;
        let nothing = Steps::default();
        let Some(record) = store.lead(breach.lead_id.as_str()).await? else {
            return Ok(nothing);
        };
        let Some(current) = record
            .assigned
            .as_deref()
            .and_then(|a| serde_json::from_str::<LeadAssigned>(a).ok())
        else {
            return Ok(nothing);
        };
        let routing = &rules.routing;
        let team = current.team_id.clone();
        let policy = routing.escalation(team.as_str());
        let max_attempts = policy
            .max_attempts
            .unwrap_or(self.defaults.max_attempts)
            .max(1);
        let to_team = policy.to_team.or_else(|| self.defaults.to_team.clone());
        let mut targets: Vec<(TeamId, Outcome)> = Vec::new();
        if breach.attempt < max_attempts {
            targets.push((team.clone(), Outcome::Reassigned));
        }
        if let Some(to) = to_team.filter(|to| *to != team.as_str()) {
            targets.push((TeamId::from(to), Outcome::Escalated));
        }
        let exclude: Vec<&str> = record
            .had
            .iter()
            .map(RepId::as_str)
            .chain(std::iter::once(old_rep.as_str()))
            .collect();
        // One decision per team at a time in this instance (team_locks.rs).
        let _turn = self
            .placer
            .team_locks
            .turn(targets.iter().map(|(target, _)| target.as_str()))
            .await;
        for _ in 0..MAX_DECISION_ATTEMPTS {
            // On Redis's clock, like the deadline of the new attempt (placement.rs).
            let now = store.now();
            let mut chosen = None;
            for (target, outcome) in &targets {
                let members = routing.members(target.as_str());
                let states = store
                    .team_states(&[(target.as_str(), members)], now)
                    .await?;
                if let Some(pick) = routing.reassign(target.as_str(), &states, now, &exclude) {
                    let capacity = effective_capacity(routing, &states, target.as_str(), &pick.rep);
                    chosen = Some((target.clone(), *outcome, pick, capacity));
                    break;
                }
            }
            let why = format!(
                "first touch missed by {old_rep} (attempt {}, due {})",
                breach.attempt,
                breach.due_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            let (assignment, assigned, outcome, reason_code, note) = match chosen {
                Some((target, outcome, pick, capacity)) => {
                    let clock = self.placer.sla.policy.first_touch(
                        now,
                        routing.team_sla(target.as_str()),
                        &pick.rep,
                        routing.rep_availability(&pick.rep),
                    );
                    let assignment = Assignment {
                        lead_id: breach.lead_id.clone(),
                        attempt: breach.attempt.saturating_add(1),
                        team: target.clone(),
                        rep: RepId::from(pick.rep.as_str()),
                        capacity,
                        daily_cap: routing.rep_daily_cap(&pick.rep),
                        assigned_at: now,
                        first_touch_due_at: clock.due_at,
                        rotation_before: pick.rotation_before.clone(),
                        rotation_after: pick.rotation_after.clone(),
                        waited: None,
                        // The new rep takes a unit of capacity, whatever the lead joined.
                        joins: None,
                    };
                    let (rule, how) = if outcome == Outcome::Reassigned {
                        ("reassignment", format!("reassigned within team {target}"))
                    } else {
                        ("escalation", format!("escalated to team {target}"))
                    };
                    let reason = format!("{why}; {how}: {}", pick.reason);
                    let event = LeadAssigned {
                        lead_id: breach.lead_id.clone(),
                        attempt: assignment.attempt,
                        team_id: target,
                        rep_id: assignment.rep.clone(),
                        received_at: current.received_at,
                        assigned_at: now,
                        first_touch_due_at: assignment.first_touch_due_at,
                        score: current.score.clone(),
                        explanation: RoutingExplanation {
                            rule: rule.to_owned(),
                            strategy: pick.strategy.to_owned(),
                            reason: reason.clone(),
                            skipped: pick.skipped,
                            rules_version: routing.version().to_owned(),
                            rules_not_matched: Vec::new(),
                            first_touch: Some(clock),
                        },
                        source: current.source.clone(),
                        queue: None,
                        queued_at: None,
                        lead: current.lead.clone(),
                        joins: None,
                    };
                    let code = if outcome == Outcome::Reassigned {
                        "first_touch_missed"
                    } else {
                        "attempts_exhausted"
                    };
                    (Some(assignment), Some(event), outcome, code, reason)
                }
                None => (
                    None,
                    None,
                    Outcome::Escalated,
                    "no_eligible_rep",
                    format!("{why}; nobody else can take it now: it stays with {old_rep}, the team's manager is told"),
                ),
            };
            let disposition = LeadDisposition {
                lead_id: breach.lead_id.clone(),
                outcome,
                reason_code: reason_code.to_owned(),
                note,
                actor: Actor {
                    kind: ActorKind::System,
                    id: "sla".to_owned(),
                },
                occurred_at: now,
                source: current.source.clone(),
                score: Some(current.score.clone()),
                // About the miss: the team and rep whose attempt it was (their manager is
                // told); the new assignment is in lead.assigned.
                team_id: Some(team.clone()),
                rep_id: Some(old_rep.clone()),
                queue: None,
                amount: String::new(),
                currency: String::new(),
            };
            let encode = |what: &'static str, e: serde_json::Result<String>| {
                e.map_err(|e| PlaceError::Encode(what, e.to_string()))
            };
            let disposition_json = encode("lead.disposition", serde_json::to_string(&disposition))?;
            let assigned_json = match &assigned {
                Some(a) => Some(encode("lead.assigned", serde_json::to_string(a))?),
                None => None,
            };
            let reassignment = assignment.as_ref().zip(assigned_json.as_deref());
            let step = Escalation {
                lead_id: &breach.lead_id,
                attempt: breach.attempt,
                old_rep,
                reassignment,
                disposition: &disposition_json,
                retention_seconds: self.placer.retention.as_secs(),
                now,
                trace,
            };
            match store.escalate(&step).await? {
                EscalateOutcome::Done => {
                    self.placer
                        .metrics
                        .escalations
                        .with_label_values(&[team.as_str(), outcome.as_str()])
                        .inc();
                    tracing::info!(
                        lead_id = %breach.lead_id,
                        attempt = breach.attempt,
                        outcome = outcome.as_str(),
                        to_rep = assigned.as_ref().map(|a| a.rep_id.as_str()),
                        "missed first touch acted on"
                    );
                    let mut events = Vec::with_capacity(2);
                    if let (Some(a), Some(payload)) = (&assigned, assigned_json) {
                        events.push((EventKind::LeadAssigned, a.event_id(), payload));
                    }
                    events.push((
                        EventKind::LeadDisposition,
                        disposition_id(breach.lead_id.as_str(), outcome, breach.attempt),
                        disposition_json,
                    ));
                    return Ok(Steps { events });
                }
                EscalateOutcome::AlreadyDone { disposition } => {
                    return self.replay(breach, &disposition).await;
                }
                EscalateOutcome::Stale => return Ok(nothing),
                EscalateOutcome::Conflict(why) => {
                    self.placer
                        .metrics
                        .routing_conflicts
                        .with_label_values(&["reassign"])
                        .inc();
                    tracing::debug!(lead_id = %breach.lead_id, %why, "state moved; deciding the reassignment again");
                }
            }
        }
        Err(PlaceError::Contended(breach.lead_id.to_string()))
    }

    /// A redelivered breach: the disposition recorded then, and the new attempt's
    /// assignment if the lead still has it.
    async fn replay(&self, breach: &SlaBreached, disposition: &str) -> Result<Steps, PlaceError> {
        let lead = breach.lead_id.as_str();
        let mut events = Vec::with_capacity(2);
        let record = self.placer.store.lead(lead).await?;
        if let Some(payload) = record.and_then(|r| r.assigned) {
            if let Ok(assigned) = serde_json::from_str::<LeadAssigned>(&payload) {
                if assigned.attempt == breach.attempt.saturating_add(1) {
                    events.push((EventKind::LeadAssigned, assigned.event_id(), payload));
                }
            }
        }
        if let Ok(recorded) = serde_json::from_str::<LeadDisposition>(disposition) {
            let id = disposition_id(lead, recorded.outcome, breach.attempt);
            events.push((EventKind::LeadDisposition, id, disposition.to_owned()));
        }
        Ok(Steps { events })
    }
}

impl EventHandler for EscalationHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        // The reassignment's step of the lead's trace (exported when tracing is on).
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "router.sla_breached",
            otel.kind = "consumer",
            lead_id = tracing::field::Empty,
        );
        let trace = event.trace_for(&span);
        let effects = self.escalate(event, trace).instrument(span.clone()).await?;
        Ok(Box::pin(effects.instrument(span)))
    }
}

impl EscalationHandler {
    async fn escalate(
        &self,
        event: &InboundEvent,
        trace: TraceParent,
    ) -> Result<Effects, HandleError> {
        let breach: SlaBreached = event.decode(EventKind::SlaBreached)?;
        tracing::Span::current().record("lead_id", tracing::field::display(&breach.lead_id));
        // A queue wait (attempt 0) has no rep to take the lead from: the drainer routes it.
        // A missed disposition is the rep's report overdue, not a lead to take away.
        let Some(old_rep) = breach
            .rep_id
            .clone()
            .filter(|_| breach.attempt > 0 && breach.sla == Sla::FirstTouch)
        else {
            return Ok(Box::pin(async { Ok(()) }));
        };
        let rules = self.placer.rules.current();
        let steps = self
            .steps(&rules, &breach, &old_rep, &trace.to_string())
            .await
            .map_err(HandleError::from_error)?;
        let key = breach.lead_id.as_str();
        let mut acks = Vec::with_capacity(steps.events.len());
        for (kind, id, payload) in steps.events {
            let event = OutboundEvent::encoded(kind, id, key, Utc::now(), trace, payload);
            acks.push(
                self.producer
                    .enqueue(&event)
                    .await
                    .map_err(HandleError::from_error)?,
            );
        }
        Ok(Box::pin(async move {
            for ack in acks {
                ack.await?;
            }
            Ok(())
        }))
    }
}
