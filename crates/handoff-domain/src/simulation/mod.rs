//! What-if routing: the exact decision code the router runs, over in-memory state, so a
//! RevOps person can see what a rules change does before deploying it
//! (`handoff simulate --rules FILE --leads LEADS.jsonl`), and what a week of leads, touches
//! and roster changes does to queues and reps ([`timeline`], `--timeline`).
//!
//! - [`input`]: the file (leads, touches, roster edits, each with its time), checked.
//! - [`timeline`]: the replay engine: clock, queues, the lead lifecycle, the report.
//! - [`roster`]: runtime overrides and each rep's open leads.
//! - [`Simulation`]: leads routed one by one at given times (the fuzzers' and tests' entry).

pub mod input;
pub mod roster;
#[cfg(test)]
mod tests;
pub mod timeline;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::ids::{QueueName, RepId, TeamId};
use crate::lead::Lead;
use crate::routing::{RoutingExplanation, RoutingModel};
use crate::scoring::{Score, ScoringModel};

pub use input::{max_span, LineError, LineKind, Scenario, ScenarioLine, MAX_SPAN_DAYS};
pub use roster::{RosterEdit, Span};
pub use timeline::{replay, Replay, ReplayReport};

/// Where one lead went on arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimulatedOutcome {
    Unqualified,
    Assigned {
        team: TeamId,
        rep: RepId,
    },
    /// `team` is `None` when no rule matched (the unrouted queue).
    Queued {
        team: Option<TeamId>,
        queue: QueueName,
    },
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
    pub team: TeamId,
    pub rep: RepId,
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
    /// Leads still waiting at the end, per queue (nobody eligible, or no rule matched).
    pub waiting: BTreeMap<QueueName, usize>,
    /// Every lead a rep got, on arrival or later from a queue.
    pub shares: Vec<RepShare>,
}

/// Leads routed one at a time, each at a given moment, over one evolving state. Nothing
/// touches them, so open leads only grow: capacities bite as they would in a burst.
#[derive(Debug)]
pub struct Simulation<'a> {
    replay: Replay<'a>,
}

impl<'a> Simulation<'a> {
    /// Starts from empty state: no open leads, fresh rotations.
    pub fn new(scoring: &'a ScoringModel, routing: &'a RoutingModel) -> Self {
        Self {
            replay: Replay::new(scoring, routing),
        }
    }

    /// Scores and routes one lead at `now` (the simulation's clock if that is later),
    /// then applies the decision as the router's commit would (rotation, open leads,
    /// today's count).
    pub fn route(&mut self, lead: &Lead, now: DateTime<Utc>) -> Option<&SimulatedDecision> {
        let index = self.replay.receive(lead.clone(), None, now);
        self.replay.decision(index)
    }

    pub fn summary(&self) -> SimulationSummary {
        self.replay.summary()
    }
}
