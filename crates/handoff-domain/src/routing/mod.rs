//! Routing: which team a lead belongs to (first matching rule) and which rep in that team
//! gets it (a strategy over the team's eligible reps). Pure: the caller supplies the
//! runtime state (open leads, rotation position, overrides) and persists the outcome.

mod availability;
mod condition;
mod coverage;
mod explain;
mod model;
mod strategy;
#[cfg(test)]
mod tests;

pub use availability::{
    Availability, DateRangeSpec, Unavailable, WeeklySchedule, WeeklyScheduleSpec,
};
pub use condition::{Condition, ConditionSpec, FieldRef};
pub use explain::ExplainValues;
pub(crate) use model::is_valid_rep_id;
pub use model::{
    AccountConfig, CalendarConfig, CatchUp, CatchUpConfig, Channel, ChannelConfig, ChannelFormat,
    ChannelKind, ChannelTable, EscalationConfig, ModelError, ModelWarning, RepConfig,
    RoutingConfig, RoutingModel, RuleConfig, StrategyKind, TeamConfig,
};
pub use strategy::{RepState, TeamState};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::accounts::{AccountDomain, AccountOwnership};
use crate::ids::{QueueName, RepId, TeamId};
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
    /// The first-touch clock the assignment started (set by the router with the SLA
    /// policy; the engine itself knows no clocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_touch: Option<crate::sla::FirstTouchClock>,
}

/// The first rule that matched a lead (or none), with the misses before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// Index into the model's rules; `None` when no rule matched.
    pub rule: Option<usize>,
    /// How many rules, from the first, the lead failed: those before `rule`, or all of
    /// them when none matched. A count, not text: wording why each failed is most of a
    /// decision's cost, so it is done once, when the event is built
    /// ([`RoutingModel::explain_misses`]).
    pub missed: usize,
    /// A rep who should get the lead before any rule: the account owner, or the rep who
    /// already works this contact. Used when eligible; otherwise the rules decide.
    pub owner: Option<Owner>,
    /// Owners that could not be used (e.g. an `account.owner` naming nobody in the rules),
    /// reported first in the explanation's `skipped` list.
    pub passed_over: Vec<SkippedRep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub rep: String,
    pub team: String,
    /// `account_owner` or `sticky`.
    pub kind: &'static str,
    /// "owner of account BigCorp (bigcorp.de)", "already works this contact".
    pub why: String,
    /// Sticky only: the contact's earlier lead, still open with this rep. A repeat of it
    /// joins it: the rep gets it whatever their load, and it takes no capacity.
    pub open_lead: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The lead goes to this rep.
    Rep(RepId),
    /// Nobody eligible (or no rule matched): the lead waits in this queue.
    Queue(QueueName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingDecision {
    /// The team the lead went to (the rule's, or its fallback); `None` when no rule matched.
    pub team: Option<TeamId>,
    pub placement: Placement,
    /// `rules_not_matched` is left empty by [`RoutingModel::choose`]; fill it with
    /// [`RoutingModel::explain_misses`] before the explanation is published.
    pub explanation: RoutingExplanation,
    /// The team's rotation the decision was made from, and the one to store with it.
    pub rotation_before: String,
    pub rotation_after: String,
    /// The rules, from the first, the lead failed before the decision's rule (0 when an
    /// owner took the lead: no rule was needed).
    pub missed_rules: usize,
    /// A sticky repeat: the contact's earlier lead, still open with the same rep, that this
    /// one joins. Committing it takes no unit of capacity and none of the daily cap: it is
    /// the same person in the same open conversation, not new work.
    pub joins: Option<String>,
}

/// A rep found for a reassignment (see [`RoutingModel::reassign`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub rep: String,
    pub strategy: &'static str,
    pub reason: String,
    pub skipped: Vec<SkippedRep>,
    pub rotation_before: String,
    pub rotation_after: String,
}

impl RoutingDecision {
    pub fn rep(&self) -> Option<&str> {
        match &self.placement {
            Placement::Rep(rep) => Some(rep.as_str()),
            Placement::Queue(_) => None,
        }
    }

    /// The team and rep the lead goes to; `None` when it waits in a queue. (The domain
    /// places a rep only within a team: owner, rule or fallback.)
    pub fn assignee(&self) -> Option<(&TeamId, &RepId)> {
        match (&self.team, &self.placement) {
            (Some(team), Placement::Rep(rep)) => Some((team, rep)),
            _ => None,
        }
    }

    /// The team's id, `""` when no rule matched (for lookups keyed by team).
    pub fn team_str(&self) -> &str {
        self.team.as_ref().map_or("", TeamId::as_str)
    }
}

impl RoutingModel {
    /// First match wins; the rules before it are counted as missed (worded later, by
    /// [`Self::explain_misses`]).
    pub fn match_rule(&self, lead: &Lead, score: &Score) -> RuleMatch {
        let owner = [
            lead.email_domain().unwrap_or_default(),
            lead.company.domain.as_str(),
        ]
        .into_iter()
        .find_map(|domain| {
            let (account, rep) = self.account_of(domain)?;
            Some(Owner {
                rep: rep.to_owned(),
                team: self.home_team(rep)?.to_owned(),
                kind: "account_owner",
                why: format!("owner of account {account} ({domain})"),
                open_lead: None,
            })
        });
        let mut matched = self.match_rules_only(lead, score);
        matched.owner = owner;
        matched
    }

    /// The domains whose `account.owner` records apply to a lead, nearest first: the email
    /// domain and its parents, then the company domain and its parents. Free-mail domains
    /// belong to no account. The caller looks them up and passes the first owner found to
    /// [`Self::with_account_owner`].
    pub fn account_domains(&self, lead: &Lead) -> Vec<AccountDomain> {
        let mut domains: Vec<AccountDomain> = Vec::new();
        for raw in [
            lead.email_domain().unwrap_or_default(),
            lead.company.domain.as_str(),
        ] {
            let Ok(domain) = AccountDomain::parse(raw.trim()) else {
                continue;
            };
            if self.is_free_mail(domain.as_str()) {
                continue;
            }
            for candidate in domain.with_parents() {
                if !domains.contains(&candidate) {
                    domains.push(candidate);
                }
            }
        }
        domains
    }

    /// Prefers the owner an `account.owner` record names over the rules and over the rules
    /// file's `accounts` list: the record is the CRM's current word, the list is only as
    /// fresh as the last reload. An owner who is not a rep of any team in these rules (not
    /// yet added, or removed) is passed over, and the explanation says so. Apply
    /// [`Self::with_prior_owner`] after this: a contact already worked by a rep stays with them.
    pub fn with_account_owner(
        &self,
        mut matched: RuleMatch,
        owner: &AccountOwnership,
    ) -> RuleMatch {
        let rep = owner.owner.as_str();
        let why = format!(
            "owner of account {} ({}, from account.owner)",
            owner.account(),
            owner.domain
        );
        match self.home_team(rep) {
            Some(team) => {
                matched.owner = Some(Owner {
                    rep: rep.to_owned(),
                    team: team.to_owned(),
                    kind: "account_owner",
                    why,
                    open_lead: None,
                })
            }
            None => matched.passed_over.push(SkippedRep {
                rep_id: rep.to_owned(),
                reason: format!("account_owner ({why}), not a rep of any team in the rules"),
            }),
        }
        matched
    }

    /// Prefers `rep` (who already works this contact) over the rules and any account
    /// owner, static or from `account.owner`: the person keeps talking to one rep while a
    /// conversation is open; an account handed to a new owner reaches its known contacts
    /// once their sticky window (`sticky_days`) has passed, and its new contacts at once.
    pub fn with_prior_owner(&self, matched: RuleMatch, rep: &str) -> RuleMatch {
        self.with_prior_owner_of(matched, rep, None)
    }

    /// [`Self::with_prior_owner`], knowing whether the contact's earlier lead (`open_lead`)
    /// is still open with `rep`: then this lead is a repeat of an open one and joins it. The
    /// rep gets it even when at capacity or at the daily cap (still not when away, inactive
    /// or off work), and the decision's [`RoutingDecision::joins`] says to charge nothing.
    pub fn with_prior_owner_of(
        &self,
        mut matched: RuleMatch,
        rep: &str,
        open_lead: Option<&str>,
    ) -> RuleMatch {
        if let Some(team) = self.home_team(rep) {
            matched.owner = Some(Owner {
                rep: rep.to_owned(),
                team: team.to_owned(),
                kind: "sticky",
                why: match open_lead {
                    Some(lead) => format!(
                        "already works this contact, whose lead {lead} is still open with them: this repeat joins it and takes no capacity"
                    ),
                    None => "already works this contact".to_owned(),
                },
                open_lead: open_lead.map(str::to_owned),
            });
        }
        matched
    }

    fn match_rules_only(&self, lead: &Lead, score: &Score) -> RuleMatch {
        let rule = self
            .rules()
            .iter()
            .position(|rule| rule.condition.holds(lead, score));
        RuleMatch {
            rule,
            missed: rule.unwrap_or(self.rules().len()),
            owner: None,
            passed_over: Vec::new(),
        }
    }

    /// Words why each rule the decision passed over failed (`rules_not_matched`), as
    /// `routing.explain_values` allows. Call it with the lead and score the decision was
    /// made for, before the explanation is published.
    pub fn explain_misses(&self, decision: &mut RoutingDecision, lead: &Lead, score: &Score) {
        decision.explanation.rules_not_matched =
            self.rules()
                .iter()
                .take(decision.missed_rules)
                .filter_map(|rule| {
                    explain::failed_condition(&rule.condition, lead, score, self.explain_values())
                        .map(|failed_condition| RuleMiss {
                            rule: rule.name.clone(),
                            failed_condition,
                        })
                })
                .collect();
    }

    /// The teams whose state a decision for this match may need: the rule's team, then
    /// its fallback. The caller loads them (in one round trip) before [`Self::choose`].
    pub fn teams_for<'a>(&'a self, matched: &'a RuleMatch) -> Vec<&'a str> {
        let mut teams: Vec<&str> = matched.owner.iter().map(|o| o.team.as_str()).collect();
        if let Some(rule) = matched.rule.and_then(|i| self.rules().get(i)) {
            teams.push(rule.team.as_str());
            teams.extend(rule.fallback.as_deref());
        }
        let mut seen = std::collections::BTreeSet::new();
        teams.retain(|team| seen.insert(*team));
        teams
    }

    /// Picks a rep for a matched lead given the state of the teams from [`Self::teams_for`]
    /// (a missing team state reads as a fresh one) at `now`.
    pub fn choose(
        &self,
        mut matched: RuleMatch,
        states: &BTreeMap<String, TeamState>,
        now: DateTime<Utc>,
    ) -> RoutingDecision {
        let empty = TeamState::default();
        let mut owner_skipped = std::mem::take(&mut matched.passed_over);
        if let Some(owner) = &matched.owner {
            let state = states.get(&owner.team).unwrap_or(&empty);
            let rep_state = state.reps.get(&owner.rep);
            let ineligible = match owner.open_lead {
                Some(_) => {
                    strategy::ineligibility_apart_from_load(self, &owner.rep, rep_state, now)
                }
                None => strategy::ineligibility(self, &owner.rep, rep_state, now),
            };
            match ineligible {
                None => {
                    return RoutingDecision {
                        team: Some(TeamId::from(owner.team.as_str())),
                        placement: Placement::Rep(RepId::from(owner.rep.as_str())),
                        explanation: RoutingExplanation {
                            rule: owner.kind.to_owned(),
                            strategy: owner.kind.to_owned(),
                            reason: format!("{}: {}", owner.rep, owner.why),
                            skipped: owner_skipped,
                            rules_version: self.version().to_owned(),
                            rules_not_matched: Vec::new(),
                            first_touch: None,
                        },
                        // Owner routing takes no turn: the rotation stays where it is.
                        rotation_before: state.rotation.clone(),
                        rotation_after: state.rotation.clone(),
                        missed_rules: 0,
                        joins: owner.open_lead.clone(),
                    };
                }
                Some(reason) => owner_skipped.push(SkippedRep {
                    rep_id: owner.rep.clone(),
                    reason: format!("{} ({}), {reason}", owner.kind, owner.why),
                }),
            }
        }
        let mut decision = self.choose_by_rules(matched, states, now);
        let by_rules = std::mem::take(&mut decision.explanation.skipped);
        decision.explanation.skipped = merge_skipped(owner_skipped, by_rules);
        decision
    }

    /// A new rep for a lead whose first touch was missed: the team's strategy (that of the
    /// first rule routing to it), never a rep in `exclude` (who had the lead already).
    /// `None` when nobody in the team can take it now.
    pub fn reassign(
        &self,
        team: &str,
        states: &BTreeMap<String, TeamState>,
        now: DateTime<Utc>,
        exclude: &[&str],
    ) -> Option<Reassignment> {
        let team = self.team(team)?;
        let strategy = self
            .rules()
            .iter()
            .find(|r| r.team == team.id)
            .map(|r| r.strategy)
            .unwrap_or_default();
        let empty = TeamState::default();
        let state = states.get(&team.id).unwrap_or(&empty);
        let pick = strategy::pick(strategy, self, team, state, now, exclude);
        Some(Reassignment {
            rep: pick.rep?,
            strategy: strategy.as_str(),
            reason: pick.reason,
            skipped: pick.skipped,
            rotation_before: state.rotation.clone(),
            rotation_after: pick.rotation_after,
        })
    }

    fn choose_by_rules(
        &self,
        matched: RuleMatch,
        states: &BTreeMap<String, TeamState>,
        now: DateTime<Utc>,
    ) -> RoutingDecision {
        let empty = TeamState::default();
        let rule_and_team = matched
            .rule
            .and_then(|i| self.rules().get(i))
            .and_then(|rule| self.team(&rule.team).map(|team| (rule, team)));
        let Some((rule, team)) = rule_and_team else {
            return RoutingDecision {
                team: None,
                placement: Placement::Queue(QueueName::from(self.unrouted_queue())),
                explanation: RoutingExplanation {
                    rule: String::new(),
                    strategy: String::new(),
                    reason: "no routing rule matched".to_owned(),
                    skipped: Vec::new(),
                    rules_version: self.version().to_owned(),
                    rules_not_matched: Vec::new(),
                    first_touch: None,
                },
                rotation_before: String::new(),
                rotation_after: String::new(),
                missed_rules: matched.missed,
                joins: None,
            };
        };
        let explanation =
            |strategy: &str, reason: String, skipped: Vec<SkippedRep>| RoutingExplanation {
                rule: rule.name.clone(),
                strategy: strategy.to_owned(),
                reason,
                skipped,
                rules_version: self.version().to_owned(),
                rules_not_matched: Vec::new(),
                first_touch: None,
            };
        let state = states.get(&team.id).unwrap_or(&empty);
        let (primary, strategy) = match &rule.rep {
            Some(rep) => (
                strategy::named(self, &rule.name, rep, state, now),
                NAMED_REP,
            ),
            None => (
                strategy::pick(rule.strategy, self, team, state, now, &[]),
                rule.strategy.as_str(),
            ),
        };
        // Who could not take it, in words: the named rep, or the team.
        let nobody = match &rule.rep {
            Some(rep) => format!("{rep} cannot take it"),
            None => format!("no eligible rep in team {}", team.id),
        };
        if let Some(rep) = primary.rep {
            return RoutingDecision {
                team: Some(TeamId::from(team.id.as_str())),
                placement: Placement::Rep(RepId::from(rep)),
                explanation: explanation(strategy, primary.reason, primary.skipped),
                rotation_before: state.rotation.clone(),
                rotation_after: primary.rotation_after,
                missed_rules: matched.missed,
                joins: None,
            };
        }
        let mut skipped = primary.skipped;
        let fallback = rule.fallback.as_deref().and_then(|f| self.team(f));
        if let Some(fallback) = fallback {
            let fallback_state = states.get(&fallback.id).unwrap_or(&empty);
            let pick = strategy::pick(rule.strategy, self, fallback, fallback_state, now, &[]);
            skipped = merge_skipped(skipped, pick.skipped);
            if let Some(rep) = pick.rep {
                return RoutingDecision {
                    team: Some(TeamId::from(fallback.id.as_str())),
                    placement: Placement::Rep(RepId::from(rep)),
                    explanation: explanation(
                        rule.strategy.as_str(),
                        format!("{nobody}; fallback team {}: {}", fallback.id, pick.reason),
                        skipped,
                    ),
                    rotation_before: fallback_state.rotation.clone(),
                    rotation_after: pick.rotation_after,
                    missed_rules: matched.missed,
                    joins: None,
                };
            }
        }
        let queue = rule.queue.as_deref().unwrap_or(&team.overflow_queue);
        RoutingDecision {
            team: Some(TeamId::from(team.id.as_str())),
            placement: Placement::Queue(QueueName::from(queue)),
            explanation: explanation(
                strategy,
                match fallback {
                    Some(fallback) => format!(
                        "{nobody} nor {} its fallback team {}; queued in {queue}",
                        if rule.rep.is_some() {
                            "anyone in"
                        } else {
                            "in"
                        },
                        fallback.id,
                    ),
                    None => format!("{nobody}; queued in {queue}"),
                },
                skipped,
            ),
            rotation_before: state.rotation.clone(),
            rotation_after: state.rotation.clone(),
            missed_rules: matched.missed,
            joins: None,
        }
    }
}

/// The strategy an explanation names for a rule routing to one named rep.
pub const NAMED_REP: &str = "named_rep";

/// One entry per rep, the first kept: a rep skipped as owner (with the why) and again in
/// their team, or in a team and its fallback, is one rep passed over, not two.
fn merge_skipped(mut first: Vec<SkippedRep>, then: Vec<SkippedRep>) -> Vec<SkippedRep> {
    for entry in then {
        if !first.iter().any(|s| s.rep_id == entry.rep_id) {
            first.push(entry);
        }
    }
    first
}
