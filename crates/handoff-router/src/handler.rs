use std::time::Duration;

use chrono::{DateTime, Utc};

use handoff_config::{Rules, RulesHandle};
use handoff_domain::disposition::{Actor, ActorKind, Outcome};
use handoff_domain::events::{stable_event_id, EventKind, LeadAssigned, LeadDisposition};
use handoff_domain::lead::LeadPayload;
use handoff_domain::privacy::mask_email;
use handoff_domain::routing::{Placement, RoutingDecision};
use handoff_domain::scoring::Score;
use handoff_domain::sla::SlaPolicy;
use handoff_domain::submission::check_lead;
use handoff_domain::Lead;
use handoff_kafka::{
    Effects, EventHandler, EventProducer, HandleError, InboundEvent, OutboundEvent, PoisonReason,
    TraceParent,
};
use handoff_store::{AssignmentCommit, CommitOutcome, QueueOutcome, Store};
use handoff_telemetry::Metrics;

/// Optimistic commits that lost a race (another instance moved the rotation) are decided
/// again with fresh state; this many times before the event counts as a transient failure.
const MAX_DECISION_ATTEMPTS: usize = 16;

/// The first assignment of a lead; reassignments count up from here.
const FIRST_ATTEMPT: u32 = 1;

#[derive(Debug)]
pub struct RouterHandler {
    store: Store,
    producer: EventProducer,
    metrics: Metrics,
    rules: RulesHandle,
    sla: SlaPolicy,
    lead_retention: Duration,
}

impl RouterHandler {
    pub fn new(
        store: Store,
        producer: EventProducer,
        metrics: Metrics,
        rules: RulesHandle,
        sla: SlaPolicy,
        lead_retention: Duration,
    ) -> Self {
        Self {
            store,
            producer,
            metrics,
            rules,
            sla,
            lead_retention,
        }
    }

    async fn publish(&self, event: OutboundEvent) -> Result<Effects, HandleError> {
        let ack = self
            .producer
            .enqueue(&event)
            .await
            .map_err(HandleError::transient)?;
        Ok(ack)
    }

    /// Below the MQL threshold: nurture, with the breakdown for marketing.
    async fn nurture(
        &self,
        lead: &Lead,
        score: Score,
        trace: TraceParent,
    ) -> Result<Effects, HandleError> {
        self.metrics.leads_unqualified.inc();
        tracing::info!(lead_id = %lead.id, points = score.points, "lead unqualified; sent to nurture");
        let decision = SystemDecision {
            outcome: Outcome::Unqualified,
            reason_code: "below_mql_threshold",
            note: String::new(),
            team: String::new(),
            queue: "nurture".to_owned(),
        };
        self.publish_system_disposition(lead, score, decision, trace)
            .await
    }

    async fn overflow(
        &self,
        lead: &Lead,
        score: Score,
        decision: RoutingDecision,
        queue: String,
        trace: TraceParent,
    ) -> Result<Effects, HandleError> {
        let outcome = self
            .store
            .enqueue_overflow(lead.id.as_str(), &queue, self.lead_retention.as_secs())
            .await
            .map_err(HandleError::transient)?;
        let queue = match outcome {
            QueueOutcome::AlreadyAssigned(recorded) => {
                return self.republish(lead, &recorded, trace).await
            }
            QueueOutcome::Queued(queue) => queue,
        };
        let team_label = if decision.team.is_empty() {
            "unrouted"
        } else {
            decision.team.as_str()
        };
        self.metrics
            .leads_overflowed
            .with_label_values(&[team_label])
            .inc();
        tracing::warn!(lead_id = %lead.id, team = %decision.team, %queue, reason = %decision.explanation.reason, "no eligible rep; lead queued");
        let decision = SystemDecision {
            outcome: Outcome::Overflowed,
            reason_code: if decision.team.is_empty() {
                "no_rule_matched"
            } else {
                "no_eligible_rep"
            },
            note: decision.explanation.reason,
            team: decision.team,
            queue,
        };
        self.publish_system_disposition(lead, score, decision, trace)
            .await
    }

    /// A decision the router made about a lead, told to marketing as a disposition. Its
    /// event id is stable per (lead, outcome, queue), so a redelivered lead repeats it.
    async fn publish_system_disposition(
        &self,
        lead: &Lead,
        score: Score,
        decision: SystemDecision,
        trace: TraceParent,
    ) -> Result<Effects, HandleError> {
        let id = stable_event_id(
            EventKind::LeadDisposition,
            &[lead.id.as_str(), decision.outcome.as_str(), &decision.queue],
        );
        let event = LeadDisposition {
            lead_id: lead.id.clone(),
            outcome: decision.outcome,
            reason_code: decision.reason_code.to_owned(),
            note: decision.note,
            actor: Actor {
                kind: ActorKind::System,
                id: "router".to_owned(),
            },
            occurred_at: Utc::now(),
            source: lead.source.clone(),
            score: Some(score),
            team_id: decision.team,
            rep_id: String::new(),
            queue: decision.queue,
        };
        self.publish(outbound(
            EventKind::LeadDisposition,
            id,
            lead,
            trace,
            &event,
        )?)
        .await
    }

    /// A redelivered lead that was assigned before: publish the recorded event again, with
    /// the same event id, so downstream de-duplicates it.
    async fn republish(
        &self,
        lead: &Lead,
        recorded: &str,
        trace: TraceParent,
    ) -> Result<Effects, HandleError> {
        let assigned: LeadAssigned = serde_json::from_str(recorded).map_err(|e| {
            HandleError::transient(format!(
                "recorded assignment of {} is unreadable: {e}",
                lead.id
            ))
        })?;
        tracing::debug!(lead_id = %lead.id, rep = %assigned.rep_id, "lead already assigned; republishing");
        let id = assigned.event_id();
        self.publish(outbound(
            EventKind::LeadAssigned,
            id,
            lead,
            trace,
            &assigned,
        )?)
        .await
    }

    /// Routes with one snapshot of the rules, so a reload mid-way cannot mix two rule sets.
    async fn route(
        &self,
        rules: &Rules,
        lead: &Lead,
        score: Score,
        prior_owner: Option<String>,
        trace: TraceParent,
    ) -> Result<Effects, HandleError> {
        let routing = &rules.routing;
        let mut matched = routing.match_rule(lead, &score);
        // The account owner a CRM published on account.owner, over the rules file's accounts.
        if let Some(owner) = crate::accounts::published_owner(&self.store, routing, lead).await? {
            matched = routing.with_account_owner(matched, &owner);
        }
        // The rep who already works this contact, if they are still in the rules.
        if let Some(rep) = prior_owner.filter(|rep| routing.has_rep(rep)) {
            matched = routing.with_prior_owner(matched, &rep);
        }
        let teams: Vec<(&str, &[String])> = routing
            .teams_for(&matched)
            .into_iter()
            .map(|team| (team, routing.members(team)))
            .collect();
        for _ in 0..MAX_DECISION_ATTEMPTS {
            let now = Utc::now();
            let day = now.format("%Y-%m-%d").to_string();
            let states = if teams.is_empty() {
                Default::default()
            } else {
                self.store
                    .team_states(&teams, &day)
                    .await
                    .map_err(HandleError::transient)?
            };
            let decision = routing.choose(matched.clone(), &states, now);
            let rep = match &decision.placement {
                Placement::Rep(rep) => rep.clone(),
                Placement::Queue(queue) => {
                    let queue = queue.clone();
                    return self.overflow(lead, score, decision, queue, trace).await;
                }
            };
            let state = states.get(&decision.team).cloned().unwrap_or_default();
            let capacity = state
                .reps
                .get(&rep)
                .and_then(|r| r.capacity)
                .unwrap_or_else(|| routing.rep_capacity(&rep));
            let assigned_at = now;
            let due_at = self
                .sla
                .due_at(assigned_at, routing.first_touch_seconds(&decision.team));
            let event = LeadAssigned {
                lead_id: lead.id.clone(),
                attempt: FIRST_ATTEMPT,
                team_id: decision.team.clone(),
                rep_id: rep.clone(),
                received_at: lead.received_at,
                assigned_at,
                first_touch_due_at: due_at,
                score: score.clone(),
                explanation: decision.explanation.clone(),
                source: lead.source.clone(),
            };
            let payload = serde_json::to_string(&event)
                .map_err(|e| HandleError::transient(format!("cannot encode lead.assigned: {e}")))?;
            let outcome = self
                .store
                .commit_assignment(&AssignmentCommit {
                    lead_id: lead.id.as_str(),
                    team: &decision.team,
                    rep: &rep,
                    rotation_before: &decision.rotation_before,
                    rotation_after: &decision.rotation_after,
                    capacity,
                    daily_cap: routing.rep_daily_cap(&rep),
                    day: &day,
                    contact_email: &lead.contact.email,
                    sticky_seconds: u64::from(routing.sticky_days()) * 86_400,
                    attempt: FIRST_ATTEMPT,
                    assigned_ms: assigned_at.timestamp_millis(),
                    due_ms: due_at.timestamp_millis(),
                    assigned_event: &payload,
                    retention_seconds: self.lead_retention.as_secs(),
                })
                .await
                .map_err(HandleError::transient)?;
            match outcome {
                CommitOutcome::Assigned => {
                    self.record_assignment(lead, &event, assigned_at);
                    let id = event.event_id();
                    return self
                        .publish(outbound(EventKind::LeadAssigned, id, lead, trace, &event)?)
                        .await;
                }
                CommitOutcome::AlreadyAssigned(recorded) => {
                    return self.republish(lead, &recorded, trace).await
                }
                CommitOutcome::Conflict(why) => {
                    tracing::debug!(lead_id = %lead.id, %why, "routing state moved; deciding again");
                }
            }
        }
        Err(HandleError::transient(format!(
            "routing state kept moving for lead {} ({MAX_DECISION_ATTEMPTS} attempts)",
            lead.id
        )))
    }

    fn record_assignment(&self, lead: &Lead, event: &LeadAssigned, assigned_at: DateTime<Utc>) {
        self.metrics
            .leads_assigned
            .with_label_values(&[event.team_id.as_str()])
            .inc();
        let latency = (assigned_at - lead.received_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.metrics.assignment_latency.observe(latency);
        tracing::info!(
            lead_id = %lead.id,
            email = %mask_email(&lead.contact.email),
            team = %event.team_id,
            rep = %event.rep_id,
            rule = %event.explanation.rule,
            score = event.score.points,
            "lead assigned"
        );
    }
}

impl EventHandler for RouterHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        let payload: LeadPayload = event.decode(EventKind::LeadCreated)?;
        // Other producers publish here too: what they left unset comes from the record
        // (deterministically, so a redelivery is the same lead), and their leads are held to
        // ingest's rules.
        let lead = payload
            .into_lead(&event.origin())
            .map_err(|e| HandleError::poison(PoisonReason::ContractInvalid, e.to_string()))?;
        let lead = check_lead(&lead)
            .map_err(|e| HandleError::poison(PoisonReason::ContractInvalid, e.to_string()))?;
        let trace = event.child_trace();
        let rules = self.rules.current();
        let sticky = rules.routing.sticky_days() > 0;
        let prior_owner = self
            .store
            .record_lead(
                lead.id.as_str(),
                &lead.source,
                lead.received_at.timestamp_millis(),
                self.lead_retention.as_secs(),
                sticky.then_some(lead.contact.email.as_str()),
            )
            .await
            .map_err(HandleError::transient)?;
        let score = rules.scoring.score(&lead);
        self.metrics.lead_score.observe(f64::from(score.points));
        if !score.qualified {
            return self.nurture(&lead, score, trace).await;
        }
        self.route(&rules, &lead, score, prior_owner, trace).await
    }
}

/// What the router decided for a lead it did not assign.
struct SystemDecision {
    outcome: Outcome,
    reason_code: &'static str,
    note: String,
    team: String,
    queue: String,
}

fn outbound<T: serde::Serialize>(
    kind: EventKind,
    id: String,
    lead: &Lead,
    trace: TraceParent,
    data: &T,
) -> Result<OutboundEvent, HandleError> {
    OutboundEvent::new(kind, id, lead.id.as_str(), Utc::now(), trace, data)
        .map_err(|e| HandleError::transient(format!("cannot encode {}: {e}", kind.ce_type())))
}
