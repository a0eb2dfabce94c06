//! What-if routing: the exact decision code the router runs, over in-memory state, so a
//! RevOps person can see what a rules change does before deploying it
//! (`handoff simulate --rules FILE --leads LEADS.jsonl`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::lead::Lead;
use crate::routing::{Placement, RoutingExplanation, RoutingModel, TeamState};
use crate::scoring::{Score, ScoringModel};

/// Where one lead went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedOutcome {
    Unqualified,
    Assigned { team: String, rep: String },
    Queued { team: String, queue: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedDecision {
    pub lead_id: String,
    pub score: Score,
    pub outcome: SimulatedOutcome,
    /// `None` for unqualified leads (they are not routed).
    pub explanation: Option<RoutingExplanation>,
}

/// One rep's line in the distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct RepShare {
    pub team: String,
    pub rep: String,
    pub assigned: usize,
    /// Share of the team's leads this rep got.
    pub actual: f64,
    /// Share the strategy aims for (weights under weighted round-robin, else equal).
    pub target: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimulationSummary {
    pub leads: usize,
    pub unqualified: usize,
    /// Leads left in a queue, per queue (nobody eligible, or no rule matched).
    pub stranded: BTreeMap<String, usize>,
    pub shares: Vec<RepShare>,
}

#[derive(Debug)]
pub struct Simulation<'a> {
    scoring: &'a ScoringModel,
    routing: &'a RoutingModel,
    states: BTreeMap<String, TeamState>,
    /// email -> rep, for sticky routing of repeat leads.
    contact_owners: BTreeMap<String, String>,
    decisions: Vec<SimulatedDecision>,
}

impl<'a> Simulation<'a> {
    /// Starts from empty state: no open leads, fresh rotations.
    pub fn new(scoring: &'a ScoringModel, routing: &'a RoutingModel) -> Self {
        Self {
            scoring,
            routing,
            states: BTreeMap::new(),
            contact_owners: BTreeMap::new(),
            decisions: Vec::new(),
        }
    }

    /// Scores and routes one lead at `now`, then applies the decision to the state as the
    /// router's commit would (rotation, open leads, today's count). Leads are never touched
    /// in a simulation, so open leads only grow: capacities bite as they would in a burst.
    pub fn route(&mut self, lead: &Lead, now: DateTime<Utc>) -> &SimulatedDecision {
        let score = self.scoring.score(lead);
        let decision = if !score.qualified {
            SimulatedDecision {
                lead_id: lead.id.to_string(),
                score,
                outcome: SimulatedOutcome::Unqualified,
                explanation: None,
            }
        } else {
            let mut matched = self.routing.match_rule(lead, &score);
            if let Some(rep) = self.contact_owners.get(&lead.contact.email) {
                matched = self.routing.with_prior_owner(matched, rep);
            }
            let decision = self.routing.choose(matched, &self.states, now);
            let outcome = match &decision.placement {
                Placement::Rep(rep) => {
                    let state = self.states.entry(decision.team.clone()).or_default();
                    state.rotation = decision.rotation_after.clone();
                    let rep_state = state.reps.entry(rep.clone()).or_default();
                    rep_state.open_leads = rep_state.open_leads.saturating_add(1);
                    rep_state.assigned_today = rep_state.assigned_today.saturating_add(1);
                    if self.routing.sticky_days() > 0 {
                        self.contact_owners
                            .insert(lead.contact.email.clone(), rep.clone());
                    }
                    SimulatedOutcome::Assigned {
                        team: decision.team.clone(),
                        rep: rep.clone(),
                    }
                }
                Placement::Queue(queue) => SimulatedOutcome::Queued {
                    team: decision.team.clone(),
                    queue: queue.clone(),
                },
            };
            SimulatedDecision {
                lead_id: lead.id.to_string(),
                score,
                outcome,
                explanation: Some(decision.explanation),
            }
        };
        self.decisions.push(decision);
        let last = self.decisions.len() - 1;
        &self.decisions[last]
    }

    pub fn summary(&self) -> SimulationSummary {
        let mut summary = SimulationSummary {
            leads: self.decisions.len(),
            ..SimulationSummary::default()
        };
        let mut per_rep: BTreeMap<(String, String), usize> = BTreeMap::new();
        for decision in &self.decisions {
            match &decision.outcome {
                SimulatedOutcome::Unqualified => summary.unqualified += 1,
                SimulatedOutcome::Queued { queue, .. } => {
                    *summary.stranded.entry(queue.clone()).or_default() += 1
                }
                SimulatedOutcome::Assigned { team, rep } => {
                    *per_rep.entry((team.clone(), rep.clone())).or_default() += 1
                }
            }
        }
        for team in self.routing.team_ids() {
            let team_total: usize = per_rep
                .iter()
                .filter(|((t, _), _)| t == team)
                .map(|(_, n)| n)
                .sum();
            if team_total == 0 {
                continue;
            }
            for (rep, target) in self.routing.target_shares(team) {
                let assigned = per_rep
                    .get(&(team.to_owned(), rep.clone()))
                    .copied()
                    .unwrap_or(0);
                summary.shares.push(RepShare {
                    team: team.to_owned(),
                    rep,
                    assigned,
                    actual: assigned as f64 / team_total as f64,
                    target,
                });
            }
        }
        summary
    }
}
