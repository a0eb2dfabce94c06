//! The routing decision as one value: what the router commits (atomically, with its
//! capacity and rotation preconditions), what the SLA tracker adopts, and what
//! `lead.assigned` is built from — so none of them recomputes a due time or a capacity.

use chrono::{DateTime, Utc};

use crate::events::LeadAssigned;
use crate::ids::{QueueName, RepId, TeamId};
use crate::lead::{Lead, LeadId};
use crate::routing::RoutingExplanation;
use crate::scoring::Score;

/// The first assignment of a lead; reassignments count up from here.
pub const FIRST_ATTEMPT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub lead_id: LeadId,
    /// 1 for the first assignment, n + 1 for a reassignment.
    pub attempt: u32,
    pub team: TeamId,
    pub rep: RepId,
    /// The rep's effective capacity (rules file or runtime override) when decided; the
    /// commit refuses the assignment if the rep holds this many open leads meanwhile.
    pub capacity: u32,
    pub daily_cap: Option<u32>,
    pub assigned_at: DateTime<Utc>,
    pub first_touch_due_at: DateTime<Utc>,
    /// The team's rotation the decision was made from, and the one it leaves behind. The
    /// commit refuses if the rotation moved meanwhile (another router instance).
    pub rotation_before: String,
    pub rotation_after: String,
    /// Set when the lead waited in a queue before this assignment.
    pub waited: Option<QueueWait>,
    /// A sticky repeat of the contact's lead still open with the rep: the lead it joins.
    /// It takes no unit of capacity or of the daily cap, when committed and when adopted.
    pub joins: Option<LeadId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueWait {
    pub queue: QueueName,
    pub since: DateTime<Utc>,
}

impl Assignment {
    /// The `lead.assigned` event of this assignment.
    pub fn event(
        &self,
        lead: &Lead,
        score: Score,
        explanation: RoutingExplanation,
    ) -> LeadAssigned {
        LeadAssigned {
            lead_id: self.lead_id.clone(),
            attempt: self.attempt,
            team_id: self.team.clone(),
            rep_id: self.rep.clone(),
            received_at: lead.received_at,
            assigned_at: self.assigned_at,
            first_touch_due_at: self.first_touch_due_at,
            score,
            explanation,
            source: lead.source.clone(),
            queue: self.waited.as_ref().map(|w| w.queue.clone()),
            queued_at: self.waited.as_ref().map(|w| w.since),
            lead: Some(crate::events::LeadSummary::of(lead)),
            joins: self.joins.clone(),
        }
    }

    /// An assignment another producer made, as announced on `lead.assigned`: adopted as
    /// it is (its due time included); there is no capacity or rotation to check.
    pub fn adopted(event: &LeadAssigned) -> Self {
        Self {
            lead_id: event.lead_id.clone(),
            attempt: event.attempt,
            team: event.team_id.clone(),
            rep: event.rep_id.clone(),
            capacity: u32::MAX,
            daily_cap: None,
            assigned_at: event.assigned_at,
            first_touch_due_at: event.first_touch_due_at,
            rotation_before: String::new(),
            rotation_after: String::new(),
            waited: event.queue.clone().map(|queue| QueueWait {
                queue,
                since: event.queued_at.unwrap_or(event.received_at),
            }),
            joins: event.joins.clone(),
        }
    }

    /// How long the lead waited for this assignment since it arrived.
    pub fn wait_seconds(&self, received_at: DateTime<Utc>) -> f64 {
        (self.assigned_at - received_at).num_milliseconds().max(0) as f64 / 1000.0
    }
}
