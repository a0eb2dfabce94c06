//! Routing: which team a lead belongs to (first matching rule) and which rep in that team
//! gets it (a strategy over the team's eligible reps). Pure: the caller supplies the
//! runtime state (open leads, rotation position, overrides) and persists the outcome.

mod availability;
mod condition;
mod model;
mod strategy;
#[cfg(test)]
mod tests;

pub use availability::{Availability, DateRangeSpec, Unavailable, WeeklyScheduleSpec};
pub use condition::{Condition, ConditionSpec, FieldRef};
pub use model::{
    ModelError, RepConfig, RoutingConfig, RoutingModel, RuleConfig, StrategyKind, TeamConfig,
};
pub use strategy::{RepState, TeamState};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::lead::Lead;
use crate::scoring::Score;

/// A rule that did not match, and the condition that failed: part of the explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMiss {
    pub rule: String,
    pub failed_condition: String,
}

/// A rep the strategy passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedRep {
    pub rep_id: String,
    pub reason: String,
}

/// Why a lead went where it went (proto: `handoff.v1.RoutingExplanation`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingExplanation {
    pub rule: String,
    pub strategy: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedRep>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules_not_matched: Vec<RuleMiss>,
}

/// The first rule that matched a lead (or none), with the misses before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Index into the model's rules; `None` when no rule matched.
    pub rule: Option<usize>,
    pub misses: Vec<RuleMiss>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The lead goes to this rep.
    Rep(String),
    /// Nobody eligible (or no rule matched): the lead waits in this queue.
    Queue(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingDecision {
    /// The team the lead went to (the rule's, or its fallback); empty when no rule matched.
    pub team: String,
    pub placement: Placement,
    pub explanation: RoutingExplanation,
    /// The team's rotation the decision was made from, and the one to store with it.
    pub rotation_before: String,
    pub rotation_after: String,
}

impl RoutingDecision {
    pub fn rep(&self) -> Option<&str> {
        match &self.placement {
            Placement::Rep(rep) => Some(rep),
            Placement::Queue(_) => None,
        }
    }
}

impl RoutingModel {
    /// First match wins; every rule before it is reported with the condition that failed.
    pub fn match_rule(&self, lead: &Lead, score: &Score) -> RuleMatch {
        let mut misses = Vec::new();
        for (index, rule) in self.rules().iter().enumerate() {
            match rule.condition.check(lead, score) {
                Ok(()) => {
                    return RuleMatch {
                        rule: Some(index),
                        misses,
                    }
                }
                Err(failed_condition) => misses.push(RuleMiss {
                    rule: rule.name.clone(),
                    failed_condition,
                }),
            }
        }
        RuleMatch { rule: None, misses }
    }

    /// The teams whose state a decision for this match may need: the rule's team, then
    /// its fallback. The caller loads them (in one round trip) before [`Self::choose`].
    pub fn teams_for(&self, matched: &RuleMatch) -> Vec<&str> {
        let Some(rule) = matched.rule.map(|i| &self.rules()[i]) else {
            return Vec::new();
        };
        std::iter::once(rule.team.as_str())
            .chain(rule.fallback.as_deref())
            .collect()
    }

    /// Picks a rep for a matched lead given the state of the teams from [`Self::teams_for`]
    /// (a missing team state reads as a fresh one) at `now`.
    pub fn choose(
        &self,
        matched: RuleMatch,
        states: &BTreeMap<String, TeamState>,
        now: DateTime<Utc>,
    ) -> RoutingDecision {
        let empty = TeamState::default();
        let rule_and_team = matched
            .rule
            .map(|i| &self.rules()[i])
            .and_then(|rule| self.team(&rule.team).map(|team| (rule, team)));
        let Some((rule, team)) = rule_and_team else {
            return RoutingDecision {
                team: String::new(),
                placement: Placement::Queue(self.unrouted_queue().to_owned()),
                explanation: RoutingExplanation {
                    rule: String::new(),
                    strategy: String::new(),
                    reason: "no routing rule matched".to_owned(),
                    skipped: Vec::new(),
                    rules_version: self.version().to_owned(),
                    rules_not_matched: matched.misses,
                },
                rotation_before: String::new(),
                rotation_after: String::new(),
            };
        };
        let explanation =
            |reason: String, skipped: Vec<SkippedRep>, misses: Vec<RuleMiss>| RoutingExplanation {
                rule: rule.name.clone(),
                strategy: rule.strategy.as_str().to_owned(),
                reason,
                skipped,
                rules_version: self.version().to_owned(),
                rules_not_matched: misses,
            };
        let state = states.get(&team.id).unwrap_or(&empty);
        let primary = strategy::pick(rule.strategy, self, team, state, now);
        if let Some(rep) = primary.rep {
            return RoutingDecision {
                team: team.id.clone(),
                placement: Placement::Rep(rep),
                explanation: explanation(primary.reason, primary.skipped, matched.misses),
                rotation_before: state.rotation.clone(),
                rotation_after: primary.rotation_after,
            };
        }
        let mut skipped = primary.skipped;
        if let Some(fallback) = rule.fallback.as_deref().and_then(|f| self.team(f)) {
            let fallback_state = states.get(&fallback.id).unwrap_or(&empty);
            let pick = strategy::pick(rule.strategy, self, fallback, fallback_state, now);
            skipped.extend(pick.skipped);
            if let Some(rep) = pick.rep {
                return RoutingDecision {
                    team: fallback.id.clone(),
                    placement: Placement::Rep(rep),
                    explanation: explanation(
                        format!(
                            "no eligible rep in team {}; fallback team {}: {}",
                            team.id, fallback.id, pick.reason
                        ),
                        skipped,
                        matched.misses,
                    ),
                    rotation_before: fallback_state.rotation.clone(),
                    rotation_after: pick.rotation_after,
                };
            }
        }
        RoutingDecision {
            team: team.id.clone(),
            placement: Placement::Queue(team.overflow_queue.clone()),
            explanation: explanation(
                format!(
                    "no eligible rep in team {}; queued in {}",
                    team.id, team.overflow_queue
                ),
                skipped,
                matched.misses,
            ),
            rotation_before: state.rotation.clone(),
            rotation_after: state.rotation.clone(),
        }
    }
}
