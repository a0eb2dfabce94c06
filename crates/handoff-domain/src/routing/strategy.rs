//! Choosing a rep inside a team. Round-robin remembers the last rep it chose (by id, not
//! by position), so editing the roster does not reset everybody's turn.

use std::collections::BTreeMap;

use super::model::{RoutingModel, StrategyKind, Team};
use super::SkippedRep;

/// Runtime state of one rep, as the router last read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepState {
    /// Leads assigned to the rep and still awaiting first touch.
    pub open_leads: u32,
    /// Runtime override of `active` (set over the API).
    pub active: Option<bool>,
    /// `false` while the rep is marked unavailable (out of office, sick, ...).
    pub available: Option<bool>,
    /// Runtime override of the configured capacity.
    pub capacity: Option<u32>,
}

/// The part of the runtime state a decision for one team depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamState {
    /// The rep the rotation chose last in this team.
    pub last_assigned: Option<String>,
    pub reps: BTreeMap<String, RepState>,
}

pub(super) struct Pick {
    pub rep: Option<String>,
    pub reason: String,
    pub skipped: Vec<SkippedRep>,
}

pub(super) fn pick(
    strategy: StrategyKind,
    model: &RoutingModel,
    team: &Team,
    state: &TeamState,
) -> Pick {
    match strategy {
        StrategyKind::RoundRobin => round_robin(model, team, state),
    }
}

fn round_robin(model: &RoutingModel, team: &Team, state: &TeamState) -> Pick {
    let members = &team.members;
    let start = state
        .last_assigned
        .as_ref()
        .and_then(|last| members.iter().position(|m| m == last))
        .map_or(0, |i| i + 1);
    let mut skipped = Vec::new();
    for offset in 0..members.len() {
        let rep_id = &members[(start + offset) % members.len()];
        match ineligibility(model, rep_id, state.reps.get(rep_id)) {
            None => {
                let reason = if skipped.is_empty() {
                    format!("round-robin: next in turn in team {}", team.id)
                } else {
                    format!(
                        "round-robin: next eligible in team {} after skipping {}",
                        team.id,
                        skipped.len()
                    )
                };
                return Pick {
                    rep: Some(rep_id.clone()),
                    reason,
                    skipped,
                };
            }
            Some(reason) => skipped.push(SkippedRep {
                rep_id: rep_id.clone(),
                reason: reason.to_owned(),
            }),
        }
    }
    Pick {
        rep: None,
        reason: String::new(),
        skipped,
    }
}

/// Why a rep cannot take a lead now, or `None` if they can.
fn ineligibility(
    model: &RoutingModel,
    rep_id: &str,
    state: Option<&RepState>,
) -> Option<&'static str> {
    let rep = model.rep(rep_id);
    let default = RepState::default();
    let state = state.unwrap_or(&default);
    if !state.active.unwrap_or(rep.active) {
        return Some("inactive");
    }
    if state.available == Some(false) {
        return Some("unavailable");
    }
    if state.open_leads >= state.capacity.unwrap_or(rep.capacity) {
        return Some("at_capacity");
    }
    None
}
