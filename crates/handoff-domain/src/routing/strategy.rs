//! Choosing a rep inside a team.
//!
//! Every strategy keeps its position in one opaque string per team (the "rotation"),
//! which the router reads with the team's state and the commit script compare-and-sets,
//! so a decision is atomic with the state it was made from. Positions are kept by rep id,
//! never by index, so editing the roster moves nobody else's turn.
//!
//! - round-robin: the rotation is the rep chosen last and the member after them
//!   (`last|next`); the next eligible member after `last` in roster order gets the lead. If
//!   `last` has left the roster, the turn resumes at `next`, so nobody loses theirs.
//! - weighted round-robin: smooth weighted round-robin (as in nginx). The rotation holds
//!   each rep's running credit; every decision adds each eligible rep's weight to its
//!   credit, picks the highest, and takes the eligible total from the winner. Shares are
//!   exact over every cycle of sum(weights) decisions; a paused rep's credit is frozen,
//!   so coming back does not hand them a burst; a new rep starts at zero.
//! - least-loaded: the eligible rep with the fewest open leads; ties in round-robin order.
//!   The team's catch-up policy (model.rs `CatchUp`) bounds how many leads in a row a rep
//!   with fewer open leads than the rest takes: the rotation is `last|next|streak`, the
//!   streak counting the leads `last` took in a row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::model::{CatchUp, RoutingModel, StrategyKind, Team};
use super::SkippedRep;

/// Runtime state of one rep, as the router last read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepState {
    /// Leads assigned to the rep and still awaiting first touch.
    pub open_leads: u32,
    /// Leads assigned to the rep today (UTC), for the daily cap.
    pub assigned_today: u32,
    /// Runtime override of `active` (set over the API).
    pub active: Option<bool>,
    /// `false` while the rep is marked unavailable (sick, in a meeting, ...).
    pub available: Option<bool>,
    /// Runtime override of the configured capacity.
    pub capacity: Option<u32>,
}

/// The part of the runtime state a decision for one team depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamState {
    /// The team's rotation (see the module doc); empty for a team never routed to.
    pub rotation: String,
    pub reps: BTreeMap<String, RepState>,
}

pub(super) struct Pick {
    pub rep: Option<String>,
    pub reason: String,
    pub skipped: Vec<SkippedRep>,
    /// The rotation to store if the pick is committed.
    pub rotation_after: String,
}

pub(super) fn pick(
    strategy: StrategyKind,
    model: &RoutingModel,
    team: &Team,
    state: &TeamState,
    now: DateTime<Utc>,
    exclude: &[&str],
) -> Pick {
    let mut skipped = Vec::new();
    let mut eligible = Vec::new();
    // Reps whose turn came before the first eligible one: those round-robin passed over.
    let mut passed_over_in_turn = 0;
    // Roster order, starting after the rep chosen last (round-robin order).
    let members = &team.members;
    let start = turn_start(members, &state.rotation);
    for offset in 0..members.len() {
        if eligible.is_empty() {
            passed_over_in_turn = skipped.len();
        }
        let rep = &members[(start + offset) % members.len()];
        if exclude.contains(&rep.as_str()) {
            skipped.push(SkippedRep {
                rep_id: rep.clone(),
                reason: "already had this lead".to_owned(),
            });
            continue;
        }
        match ineligibility(model, rep, state.reps.get(rep), now) {
            None => eligible.push(rep.as_str()),
            Some(reason) => skipped.push(SkippedRep {
                rep_id: rep.clone(),
                reason: reason.to_owned(),
            }),
        }
    }
    let Some(first) = eligible.first().copied() else {
        return Pick {
            rep: None,
            reason: String::new(),
            skipped,
            rotation_after: state.rotation.clone(),
        };
    };
    match strategy {
        StrategyKind::RoundRobin => Pick {
            rep: Some(first.to_owned()),
            reason: format!(
                "round-robin: next in turn in team {}{}",
                team.id,
                skipped_note(passed_over_in_turn)
            ),
            skipped,
            rotation_after: last_and_next(members, first),
        },
        StrategyKind::LeastLoaded => {
            let open = |rep: &str| state.reps.get(rep).map_or(0, |s| s.open_leads);
            // min_by_key keeps the first of equals: ties go in round-robin order.
            let by_load = eligible
                .iter()
                .copied()
                .min_by_key(|r| open(r))
                .unwrap_or(first);
            let (last, streak) = last_and_streak(&state.rotation);
            let (chosen, how) = match team.catch_up {
                CatchUp::Full => (by_load, String::new()),
                CatchUp::None => (first, " (catch_up = \"none\": next in turn)".to_owned()),
                CatchUp::MaxInARow(limit)
                    if by_load == last && streak >= limit && eligible.len() > 1 =>
                {
                    let other = eligible
                        .iter()
                        .copied()
                        .filter(|r| *r != last)
                        .min_by_key(|r| open(r))
                        .unwrap_or(first);
                    (
                        other,
                        format!(
                            " ({last} took the last {streak} in a row, the most catch_up allows)"
                        ),
                    )
                }
                CatchUp::MaxInARow(_) => (by_load, String::new()),
            };
            let streak_after = if chosen == last {
                streak.saturating_add(1)
            } else {
                1
            };
            Pick {
                rep: Some(chosen.to_owned()),
                reason: format!(
                    "least-loaded: {} open lead(s), the fewest among {} eligible in team {}{how}",
                    open(chosen),
                    eligible.len(),
                    team.id
                ),
                skipped,
                rotation_after: format!("{}|{streak_after}", last_and_next(members, chosen)),
            }
        }
        StrategyKind::WeightedRoundRobin => {
            let mut credits = parse_credits(&state.rotation);
            // Keep only current members: a removed rep's credit goes with them.
            credits.retain(|rep, _| members.contains(rep));
            let total: i64 = eligible
                .iter()
                .map(|r| i64::from(model.rep_weight(r)))
                .sum();
            // Saturating: the credits come back from the store, and a corrupt one must not
            // overflow (a panic in debug builds, a wrapped credit in release).
            for rep in &eligible {
                let credit = credits.entry((*rep).to_owned()).or_default();
                *credit = credit.saturating_add(i64::from(model.rep_weight(rep)));
            }
            // Highest credit wins; ties go to the earlier member in roster order.
            let chosen = members
                .iter()
                .filter(|m| eligible.contains(&m.as_str()))
                .max_by(|a, b| {
                    let (ca, cb) = (
                        credits.get(*a).copied().unwrap_or(0),
                        credits.get(*b).copied().unwrap_or(0),
                    );
                    ca.cmp(&cb).then_with(|| {
                        let ia = members.iter().position(|m| m == *a);
                        let ib = members.iter().position(|m| m == *b);
                        ib.cmp(&ia)
                    })
                })
                .map_or(first, String::as_str);
            // Passed over: the reps who could not take it but whose credit, had they been
            // eligible, would have won (the rest were not due a lead yet).
            let winning = credits.get(chosen).copied().unwrap_or(0);
            let chosen_at = members.iter().position(|m| m == chosen);
            let passed_over = skipped
                .iter()
                .filter(|s| {
                    let theirs = credits
                        .get(&s.rep_id)
                        .copied()
                        .unwrap_or(0)
                        .saturating_add(i64::from(model.rep_weight(&s.rep_id)));
                    let earlier = members.iter().position(|m| *m == s.rep_id) < chosen_at;
                    theirs > winning || (theirs == winning && earlier)
                })
                .count();
            if let Some(credit) = credits.get_mut(chosen) {
                *credit = credit.saturating_sub(total);
            }
            Pick {
                rep: Some(chosen.to_owned()),
                reason: format!(
                    "weighted round-robin: highest credit in team {} (weight {} of {}){}",
                    team.id,
                    model.rep_weight(chosen),
                    total,
                    skipped_note(passed_over)
                ),
                skipped,
                rotation_after: format_credits(&credits),
            }
        }
    }
}

/// A rule naming one rep: theirs when they can take it (no turn is taken: the team's
/// rotation stays), otherwise nobody, with why.
pub(super) fn named(
    model: &RoutingModel,
    rule: &str,
    rep: &str,
    state: &TeamState,
    now: DateTime<Utc>,
) -> Pick {
    match ineligibility(model, rep, state.reps.get(rep), now) {
        None => Pick {
            rep: Some(rep.to_owned()),
            reason: format!("rule {rule} routes to {rep}"),
            skipped: Vec::new(),
            rotation_after: state.rotation.clone(),
        },
        Some(why) => Pick {
            rep: None,
            reason: String::new(),
            skipped: vec![SkippedRep {
                rep_id: rep.to_owned(),
                reason: why.to_owned(),
            }],
            rotation_after: state.rotation.clone(),
        },
    }
}

/// Where round-robin order starts: after the last rep, or at their successor if they
/// left the roster. A weighted rotation (credits) has no `|` and starts at the top.
fn turn_start(members: &[String], rotation: &str) -> usize {
    let mut parts = rotation.split('|');
    let (last, next) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    members
        .iter()
        .position(|m| m == last)
        .map(|i| i + 1)
        .or_else(|| members.iter().position(|m| m == next))
        .unwrap_or(0)
}

/// The rep chosen last and how many leads in a row they took (`last|next|streak`; a
/// rotation written before streaks, or by round-robin, counts one).
fn last_and_streak(rotation: &str) -> (&str, u32) {
    let mut parts = rotation.splitn(3, '|');
    let last = parts.next().unwrap_or("");
    let streak = parts.nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    (last, if last.is_empty() { 0 } else { streak })
}

pub(super) fn last_and_next(members: &[String], chosen: &str) -> String {
    let next = members
        .iter()
        .position(|m| m == chosen)
        .map_or("", |i| members[(i + 1) % members.len()].as_str());
    format!("{chosen}|{next}")
}

/// `after skipping N`: N is the reps passed over in turn, not every rep who could not take
/// the lead (a rep whose turn had not come was not skipped).
fn skipped_note(passed_over: usize) -> String {
    if passed_over == 0 {
        String::new()
    } else {
        format!(" after skipping {passed_over}")
    }
}

/// `ana=3;bob=-2` <-> {ana: 3, bob: -2}. Anything unparsable reads as no credit.
fn parse_credits(rotation: &str) -> BTreeMap<String, i64> {
    rotation
        .split(';')
        .filter_map(|pair| {
            let (rep, credit) = pair.split_once('=')?;
            Some((rep.to_owned(), credit.parse().ok()?))
        })
        .collect()
}

fn format_credits(credits: &BTreeMap<String, i64>) -> String {
    credits
        .iter()
        .map(|(rep, credit)| format!("{rep}={credit}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Why a rep cannot take a lead now, or `None` if they can.
pub(super) fn ineligibility(
    model: &RoutingModel,
    rep_id: &str,
    state: Option<&RepState>,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    ineligibility_apart_from_load(model, rep_id, state, now).or_else(|| {
        let rep = model.rep(rep_id)?;
        let default = RepState::default();
        let state = state.unwrap_or(&default);
        if state.open_leads >= state.capacity.unwrap_or(rep.capacity) {
            return Some("at_capacity");
        }
        if rep.daily_cap.is_some_and(|cap| state.assigned_today >= cap) {
            return Some("daily_cap_reached");
        }
        None
    })
}

/// Why a rep cannot take a lead now whatever their load (capacity, daily cap): a repeat
/// of a lead still open with them adds none.
pub(super) fn ineligibility_apart_from_load(
    model: &RoutingModel,
    rep_id: &str,
    state: Option<&RepState>,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    let Some(rep) = model.rep(rep_id) else {
        return Some("unknown");
    };
    let default = RepState::default();
    let state = state.unwrap_or(&default);
    if !state.active.unwrap_or(rep.active) {
        return Some("inactive");
    }
    if state.available == Some(false) {
        return Some("unavailable");
    }
    if let Err(why) = rep.availability.check(now) {
        return Some(why.as_str());
    }
    None
}
