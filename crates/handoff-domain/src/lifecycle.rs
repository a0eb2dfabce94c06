//! One lead's lifecycle, as every service moves it forward:
//!
//! ```text
//! received ─┬─> unqualified (nurture)
//!           ├─> waiting (in a queue) ──> assigned
//!           └─> assigned (attempt n) ──> touched ──> closed
//!                                   └──────────────> closed
//! ```
//!
//! The store applies these transitions in atomic Redis steps (crates/handoff-store); this
//! module names the states and says which outcome moves a lead where, so the rules live in
//! one place that tests can read.

use serde::{Deserialize, Serialize};

use crate::disposition::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadState {
    /// Seen by ingest (or the router), not decided yet.
    Received,
    /// Below the MQL threshold: sent to nurture. Final for routing.
    Unqualified,
    /// Nobody could take it: waiting in a queue that drains by itself.
    Waiting,
    /// With a rep, first touch not yet reported.
    Assigned,
    /// The rep accepted or contacted it.
    Touched,
    /// Converted, rejected or recycled.
    Closed,
}

impl LeadState {
    pub const ALL: [LeadState; 6] = [
        LeadState::Received,
        LeadState::Unqualified,
        LeadState::Waiting,
        LeadState::Assigned,
        LeadState::Touched,
        LeadState::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadState::Received => "received",
            LeadState::Unqualified => "unqualified",
            LeadState::Waiting => "waiting",
            LeadState::Assigned => "assigned",
            LeadState::Touched => "touched",
            LeadState::Closed => "closed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// What a reported outcome does to a lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A human looked at it (accepted, contacted): stops the first-touch clock.
    Touch,
    /// The lead's story with sales ends (converted, rejected, recycled): stops every clock
    /// and frees the rep, whatever the capacity policy.
    Close,
}

impl Transition {
    /// `None` for the outcomes the system decides itself (they are not reports).
    pub fn of(outcome: Outcome) -> Option<Self> {
        match outcome {
            Outcome::Accepted | Outcome::Contacted => Some(Transition::Touch),
            Outcome::Converted | Outcome::Rejected | Outcome::Recycled => Some(Transition::Close),
            Outcome::Unqualified
            | Outcome::Overflowed
            | Outcome::Reassigned
            | Outcome::Escalated => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Touch => "touch",
            Transition::Close => "close",
        }
    }
}

/// When a rep's capacity comes back: capacity counts the leads a rep holds open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityRelease {
    /// On the first touch (default: capacity limits leads waiting for a first call).
    #[default]
    FirstTouch,
    /// Only when the lead is closed (capacity limits leads a rep works at once).
    Close,
}

impl CapacityRelease {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityRelease::FirstTouch => "first_touch",
            CapacityRelease::Close => "close",
        }
    }
}

/// Why the store refused a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub state: LeadState,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in LeadState::ALL {
            assert_eq!(LeadState::parse(state.as_str()), Some(state));
        }
        assert_eq!(LeadState::parse("bogus"), None);
    }

    #[test]
    fn every_reportable_outcome_moves_a_lead_and_system_outcomes_do_not() {
        for outcome in Outcome::REPORTABLE {
            assert!(Transition::of(outcome).is_some(), "{outcome:?}");
        }
        assert_eq!(Transition::of(Outcome::Unqualified), None);
        assert_eq!(Transition::of(Outcome::Overflowed), None);
    }
}
