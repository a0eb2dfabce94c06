//! Deciding where one lead goes and committing it: shared by the consumer (a new lead) and
//! the queue drainer (a lead that waited). The decision is one [`Assignment`] value the
//! store commits atomically and the event is built from.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use handoff_config::{Rules, RulesHandle};
use handoff_domain::accounts::AccountOwnership;
use handoff_domain::assignment::{Assignment, QueueWait, FIRST_ATTEMPT};
use handoff_domain::disposition::{Actor, ActorKind, Outcome};
use handoff_domain::events::{stable_event_id, EventKind, LeadAssigned, LeadDisposition};
use handoff_domain::lifecycle::CapacityRelease;
use handoff_domain::privacy::mask_email;
use handoff_domain::routing::{Placement, RoutingDecision, RoutingModel, TeamState};
use handoff_domain::scoring::Score;
use handoff_domain::sla::SlaClocks;
use handoff_domain::{Lead, LeadId, QueueName, TeamId, Transience};
use handoff_kafka::TraceParent;
use handoff_store::{
    AssignOutcome, CommitContext, ContactOwner, DecideOutcome, FromQueue, Parked, RecordedDecision,
    Store, StoreError,
};
use handoff_telemetry::Metrics;

use crate::team_locks::TeamLocks;

/// Optimistic commits that lost a race (another instance moved the rotation, or filled the
/// rep) are decided again with fresh state; this many times before giving up for now.
const MAX_DECISION_ATTEMPTS: usize = 16;

/// Who already owns a lead's account or contact, read before it is decided: the caller
/// reads them beside its own round trips (they are independent reads).
#[derive(Debug, Default)]
pub(crate) struct KnownOwners {
    /// The owner `account.owner` published for the lead's domains
    /// ([`Placer::published_owner`]).
    pub published: Option<AccountOwnership>,
    /// The rep who worked this contact lately (sticky routing), and the contact's lead
    /// holding their capacity.
    pub prior: Option<ContactOwner>,
}

/// The queue nurtured leads are reported in.
const NURTURE: &str = "nurture";

#[derive(Debug, thiserror::Error)]
pub(crate) enum PlaceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode {0}: {1}")]
    Encode(&'static str, String),
    #[error("routing state kept moving for lead {0} ({MAX_DECISION_ATTEMPTS} attempts)")]
    Contended(String),
}

impl Transience for PlaceError {
    fn is_transient(&self) -> bool {
        match self {
            PlaceError::Store(e) => e.is_transient(),
            PlaceError::Encode(..) => false,
            // Other instances moved the state every time: it settles.
            PlaceError::Contended(_) => true,
        }
    }
}

/// What became of a lead.
#[derive(Debug)]
pub(crate) enum Placed {
    /// Assigned now: the event and its payload as stored with the decision.
    Assigned(Box<LeadAssigned>, String),
    /// Nurtured or queued now: tell marketing with this event (and its stored payload).
    Parked(Box<LeadDisposition>, String),
    /// Decided before (a redelivery): replay the event recorded then.
    Replay(RecordedDecision),
    /// A waiting lead nobody can take yet: it keeps waiting.
    StillWaiting,
    /// Nothing to do: closed before anyone decided it, or another instance took it.
    Nothing,
}

/// Where a lead routed from a queue waited.
#[derive(Debug, Clone)]
pub(crate) struct Waited {
    pub queue: QueueName,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Placer {
    pub store: Store,
    pub metrics: Metrics,
    pub rules: RulesHandle,
    pub sla: SlaClocks,
    pub retention: Duration,
    pub release: CapacityRelease,
    /// Shared by every clone (consumer, drainer, escalation): one decision per team at a
    /// time in this instance.
    pub team_locks: TeamLocks,
}

impl Placer {
    /// Nurtures a lead below the MQL threshold, once.
    pub async fn nurture(
        &self,
        lead: &Lead,
        score: Score,
        trace: &TraceParent,
    ) -> Result<Placed, PlaceError> {
        let event = system_disposition(
            lead,
            score,
            Outcome::Unqualified,
            "below_mql_threshold",
            String::new(),
            None,
            QueueName::from(NURTURE),
        );
        let placed = self.park(lead, &Parked::Nurture, event, trace).await?;
        if matches!(placed, Placed::Parked(..)) {
            self.metrics.leads_unqualified.inc();
            tracing::info!(lead_id = %lead.id, "lead unqualified; sent to nurture");
        }
        Ok(placed)
    }

    /// Records a decision that is not an assignment with its `lead.disposition`, once:
    /// `Parked` when recorded now, else the replay of the first decision (or nothing, for a
    /// lead closed before anyone decided it).
    async fn park(
        &self,
        lead: &Lead,
        parked: &Parked<'_>,
        event: LeadDisposition,
        trace: &TraceParent,
    ) -> Result<Placed, PlaceError> {
        let payload = encode("lead.disposition", &event)?;
        let outcome = self
            .store
            .record_decision(
                &lead.id,
                lead.received_at,
                &trace.to_string(),
                parked,
                &payload,
                self.store.now(),
                self.retention.as_secs(),
            )
            .await?;
        Ok(match outcome {
            DecideOutcome::Recorded => Placed::Parked(Box::new(event), payload),
            DecideOutcome::AlreadyDecided(recorded) => Placed::Replay(recorded),
            DecideOutcome::Closed => Placed::Nothing,
        })
    }

    /// Routes a qualified lead with one snapshot of the rules (a reload mid-way cannot mix
    /// two rule sets). `owners`: read by the caller (see [`KnownOwners`]); `waited`: the
    /// lead is routed from the queue it waits in.
    pub async fn route(
        &self,
        rules: &Rules,
        lead: &Lead,
        score: &Score,
        owners: KnownOwners,
        waited: Option<&Waited>,
        trace: &TraceParent,
    ) -> Result<Placed, PlaceError> {
        let routing = &rules.routing;
        let mut matched = routing.match_rule(lead, score);
        // The account owner a CRM published on account.owner, over the rules file's
        // accounts; before the sticky owner, who wins over both.
        if let Some(owner) = owners.published {
            matched = routing.with_account_owner(matched, &owner);
        }
        // The rep who already works this contact, if they are still in the rules.
        let prior = owners.prior.filter(|p| routing.has_rep(p.rep.as_str()));
        if let Some(prior) = &prior {
            matched = routing.with_prior_owner(matched, prior.rep.as_str());
        }
        let teams: Vec<(&str, &[String])> = routing
            .teams_for(&matched)
            .into_iter()
            .map(|team| (team, routing.members(team)))
            .collect();
        // This instance's other decisions for these teams wait; the commit below then
        // conflicts only with other instances (team_locks.rs).
        let _turn = self
            .team_locks
            .turn(teams.iter().map(|(team, _)| *team))
            .await;
        for _ in 0..MAX_DECISION_ATTEMPTS {
            // On Redis's clock: the deadline written with the assignment is fired by the
            // SLA tracker on that clock (handoff-store's server_clock.rs).
            let now = self.store.now();
            // A repeat of the contact's lead still open with their rep joins it (no second
            // unit of capacity); asked each attempt, as a touch may have closed it since.
            // (The owner's team is the same either way: `teams` stands.)
            let this_attempt = match &prior {
                Some(ContactOwner {
                    rep,
                    lead: Some(open),
                }) => {
                    let still_open = self
                        .store
                        .is_open_with(rep.as_str(), open.as_str(), now)
                        .await?;
                    routing.with_prior_owner_of(
                        matched.clone(),
                        rep.as_str(),
                        still_open.then_some(open.as_str()),
                    )
                }
                _ => matched.clone(),
            };
            let states = if teams.is_empty() {
                Default::default()
            } else {
                self.store.team_states(&teams, now).await?
            };
            let mut decision = routing.choose(this_attempt, &states, now);
            // Worded here, once per decision, for the event: the engine only counts misses.
            routing.explain_misses(&mut decision, lead, score);
            let Some((team, rep)) = decision
                .assignee()
                .map(|(team, rep)| (team.clone(), rep.clone()))
            else {
                if waited.is_some() {
                    return Ok(Placed::StillWaiting);
                }
                let queue = match &decision.placement {
                    Placement::Queue(queue) => queue.clone(),
                    Placement::Rep(_) => QueueName::from(routing.unrouted_queue()),
                };
                return self.queue(rules, lead, score, decision, queue, trace).await;
            };
            let capacity = effective_capacity(routing, &states, team.as_str(), rep.as_str());
            let (team_sla, hours) = (
                routing.team_sla(team.as_str()),
                routing.rep_availability(rep.as_str()),
            );
            let clock = self
                .sla
                .policy
                .first_touch(now, team_sla, rep.as_str(), hours);
            // The reminders and the disposition clock start in the same commit.
            let clocks = self.sla.at_assignment(
                now,
                clock.due_at,
                team_sla,
                routing.disposition_seconds(team.as_str()),
                hours,
            );
            let assignment = Assignment {
                lead_id: lead.id.clone(),
                attempt: FIRST_ATTEMPT,
                team: team.clone(),
                daily_cap: routing.rep_daily_cap(rep.as_str()),
                capacity,
                assigned_at: now,
                first_touch_due_at: clock.due_at,
                rep,
                rotation_before: decision.rotation_before.clone(),
                rotation_after: decision.rotation_after.clone(),
                waited: waited.map(|w| QueueWait {
                    queue: w.queue.clone(),
                    since: w.since,
                }),
                joins: decision.joins.clone().map(LeadId::from),
            };
            let mut explanation = decision.explanation.clone();
            explanation.first_touch = Some(clock);
            let event = assignment.event(lead, score.clone(), explanation);
            let payload = encode("lead.assigned", &event)?;
            let sticky_seconds = routing.sticky_seconds();
            let day = now.format("%Y-%m-%d").to_string();
            let trace = trace.to_string();
            let context = CommitContext {
                event: &payload,
                day: &day,
                contact_email: Some(lead.contact.email.as_str())
                    .filter(|email| !email.is_empty() && sticky_seconds > 0),
                sticky_seconds,
                release: self.release,
                retention_seconds: self.retention.as_secs(),
                now,
                trace: &trace,
                clocks: &clocks,
            };
            let from_queue = waited.map(|w| FromQueue { queue: &w.queue });
            match self
                .store
                .commit_assignment(&assignment, &context, from_queue)
                .await?
            {
                AssignOutcome::Assigned { touched_before } => {
                    self.record_assignment(lead, &event, waited, touched_before);
                    return Ok(Placed::Assigned(Box::new(event), payload));
                }
                AssignOutcome::AlreadyDecided(recorded) => return Ok(Placed::Replay(recorded)),
                AssignOutcome::NoLongerWaiting | AssignOutcome::Closed => {
                    return Ok(Placed::Nothing)
                }
                AssignOutcome::Conflict(why) => {
                    self.metrics
                        .routing_conflicts
                        .with_label_values(&["assign"])
                        .inc();
                    tracing::debug!(lead_id = %lead.id, %why, "routing state moved; deciding again");
                }
            }
        }
        Err(PlaceError::Contended(lead.id.to_string()))
    }

    /// The owner `account.owner` names for the lead's domains (nearest first). An
    /// unreadable stored owner is logged and routing goes on without it, so it cannot hold
    /// up every lead of that account; Redis down is an error (retried).
    pub(crate) async fn published_owner(
        &self,
        routing: &RoutingModel,
        lead: &Lead,
    ) -> Result<Option<AccountOwnership>, PlaceError> {
        match self
            .store
            .account_owner(&routing.account_domains(lead))
            .await
        {
            Ok(owner) => Ok(owner),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                tracing::error!(lead_id = %lead.id, error = %e, "stored account owner unreadable; routing without it");
                Ok(None)
            }
        }
    }

    /// Nobody can take the lead now: it waits in `queue`, its clock running from receipt.
    async fn queue(
        &self,
        rules: &Rules,
        lead: &Lead,
        score: &Score,
        decision: RoutingDecision,
        queue: QueueName,
        trace: &TraceParent,
    ) -> Result<Placed, PlaceError> {
        let team = decision.team.clone();
        let team_sla = rules.routing.team_sla(decision.team_str());
        let wait_due = self
            .sla
            .policy
            .due_at(lead.received_at, team_sla.first_touch_seconds);
        // The note is the explanation marketing and the lead's timeline see: it says the
        // clock runs while the lead waits, and when it is due (a Friday-night lead queued
        // until Monday breaches on Friday night, and the note says so).
        let note = format!(
            "{}; {}",
            decision.explanation.reason,
            self.sla.policy.waiting_clock_words(team_sla, wait_due)
        );
        let event = system_disposition(
            lead,
            score.clone(),
            Outcome::Overflowed,
            if team.is_some() {
                "no_eligible_rep"
            } else {
                "no_rule_matched"
            },
            note,
            team.clone(),
            queue.clone(),
        );
        let stored_lead = encode("lead", lead)?;
        let parked = Parked::Waiting {
            queue: &queue,
            team: team.as_ref(),
            lead: &stored_lead,
            wait_due,
        };
        let placed = self.park(lead, &parked, event, trace).await?;
        if matches!(placed, Placed::Parked(..)) {
            let team_label = team.as_ref().map_or("unrouted", TeamId::as_str);
            self.metrics
                .leads_overflowed
                .with_label_values(&[team_label])
                .inc();
            tracing::warn!(lead_id = %lead.id, team = team_label, %queue, reason = %decision.explanation.reason, "no eligible rep; lead waits in its queue");
        }
        Ok(placed)
    }

    fn record_assignment(
        &self,
        lead: &Lead,
        event: &LeadAssigned,
        waited: Option<&Waited>,
        touched_before: bool,
    ) {
        self.metrics
            .leads_assigned
            .with_label_values(&[event.team_id.as_str()])
            .inc();
        let latency = (event.assigned_at - lead.received_at)
            .num_milliseconds()
            .max(0) as f64
            / 1000.0;
        self.metrics.assignment_latency.observe(latency);
        if let Some(waited) = waited {
            let wait = (event.assigned_at - waited.since).num_milliseconds().max(0) as f64 / 1000.0;
            self.metrics.queue_wait_seconds.observe(wait);
            self.metrics
                .queue_drained
                .with_label_values(&[waited.queue.as_str()])
                .inc();
        }
        tracing::info!(
            lead_id = %lead.id,
            email = %mask_email(&lead.contact.email),
            team = %event.team_id,
            rep = %event.rep_id,
            rule = %event.explanation.rule,
            score = event.score.points,
            from_queue = waited.map(|w| w.queue.as_str()),
            touched_before,
            "lead assigned"
        );
    }
}

/// A rep's capacity as a decision sees it: the runtime override, else the rules file's.
pub(crate) fn effective_capacity(
    routing: &RoutingModel,
    states: &BTreeMap<String, TeamState>,
    team: &str,
    rep: &str,
) -> u32 {
    states
        .get(team)
        .and_then(|state| state.reps.get(rep))
        .and_then(|r| r.capacity)
        .unwrap_or_else(|| routing.rep_capacity(rep))
}

/// A decision the router made about a lead it did not assign, told to marketing.
fn system_disposition(
    lead: &Lead,
    score: Score,
    outcome: Outcome,
    reason_code: &str,
    note: String,
    team: Option<TeamId>,
    queue: QueueName,
) -> LeadDisposition {
    LeadDisposition {
        lead_id: lead.id.clone(),
        outcome,
        reason_code: reason_code.to_owned(),
        note,
        actor: Actor {
            kind: ActorKind::System,
            id: "router".to_owned(),
        },
        occurred_at: Utc::now(),
        source: lead.source.clone(),
        score: Some(score),
        team_id: team,
        rep_id: None,
        queue: Some(queue),
        amount: String::new(),
        currency: String::new(),
    }
}

/// The id of a system disposition: stable per (lead, outcome, queue), so a replay repeats it.
pub(crate) fn disposition_id(event: &LeadDisposition) -> String {
    stable_event_id(
        EventKind::LeadDisposition,
        &[
            event.lead_id.as_str(),
            event.outcome.as_str(),
            event.queue.as_ref().map_or("", QueueName::as_str),
        ],
    )
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, PlaceError> {
    serde_json::to_string(value).map_err(|e| PlaceError::Encode(what, e.to_string()))
}
