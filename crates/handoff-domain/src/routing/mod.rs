//! Routing: which team a lead belongs to (first matching rule) and which rep in that team
//! gets it (a strategy over the team's eligible reps). Pure: the caller supplies the
//! runtime state (open leads, rotation position, overrides) and persists the outcome.

mod condition;
mod model;
mod strategy;

pub use condition::{Condition, ConditionSpec, FieldRef};
pub use model::{
    ModelError, RepConfig, RoutingConfig, RoutingModel, RuleConfig, StrategyKind, TeamConfig,
};
pub use strategy::{RepState, TeamState};

use serde::{Deserialize, Serialize};

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
    /// The team of the matched rule; empty when no rule matched.
    pub team: String,
    pub placement: Placement,
    pub explanation: RoutingExplanation,
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

    /// The team a match sends the lead to, if any: what the caller loads state for.
    pub fn team_of(&self, matched: &RuleMatch) -> Option<&str> {
        matched.rule.map(|i| self.rules()[i].team.as_str())
    }

    /// Picks a rep for a matched lead given the team's current state.
    pub fn choose(&self, matched: RuleMatch, state: &TeamState) -> RoutingDecision {
        // A checked model's rules only name known teams; the `None` arm is belt and braces.
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
            };
        };
        let pick = strategy::pick(rule.strategy, self, team, state);
        let (placement, reason) = match pick.rep {
            Some(rep) => (Placement::Rep(rep), pick.reason),
            None => (
                Placement::Queue(team.overflow_queue.clone()),
                format!(
                    "no eligible rep in team {}; queued in {}",
                    team.id, team.overflow_queue
                ),
            ),
        };
        RoutingDecision {
            team: team.id.clone(),
            placement,
            explanation: RoutingExplanation {
                rule: rule.name.clone(),
                strategy: rule.strategy.as_str().to_owned(),
                reason,
                skipped: pick.skipped,
                rules_version: self.version().to_owned(),
                rules_not_matched: matched.misses,
            },
        }
    }
}
