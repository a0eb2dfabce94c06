//! Replaying a scenario over time with the router's decision code and the lead lifecycle.
//!
//! ```text
//!   line (lead | touch | roster edit), in time order
//!     │
//!     ├─ advance the clock to the line's time ── while leads wait: from one possible change
//!     │                                          to the next (working hours begin or end,
//!     │                                          a local or UTC day turns, a roster span
//!     │                                          begins or ends); when who-works-now or
//!     │                                          the UTC day changed, drain the queues
//!     ├─ lead:   score, match, choose ──► a rep (open lead, counted for the UTC day)
//!     │                               └─► a queue (waits, oldest first)
//!     ├─ touch:  the first one takes the lead off its rep's open leads ──► drain
//!     └─ roster: apply the override ──► drain
//! ```
//!
//! Capacity is the set of a rep's open leads, as in the service. Draining tries every waiting
//! lead, oldest first, once: an assignment only takes eligibility away, so a lead that
//! finds nobody cannot be helped by a later one in the same pass. Since every change that can
//! make a rep eligible drains, a waiting lead never sits behind an eligible rep, and a new lead
//! can be routed at once without jumping the queue. The clock stops at every moment a rep's
//! availability may change (`Availability::next_change`), so each opening is found at its
//! exact time, and a quiet weekend costs a few steps, not thousands of minutes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};

use crate::disposition::Outcome;
use crate::ids::{QueueName, RepId, TeamId};
use crate::lead::{Lead, LeadId};
use crate::routing::{Placement, RoutingDecision, RoutingExplanation, RoutingModel, RuleMatch};
use crate::scoring::ScoringModel;

use super::input::{LineKind, Scenario, ScenarioLine};
use super::roster::{Roster, RosterEdit};
use super::{RepShare, SimulatedDecision, SimulatedOutcome, SimulationSummary};

/// A lead's time in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub queue: QueueName,
    pub since: DateTime<Utc>,
    /// When a rep got it; `None` while it waits.
    pub until: Option<DateTime<Utc>>,
}

impl Wait {
    /// How long it waited, or has waited by `end`.
    pub fn duration(&self, end: DateTime<Utc>) -> TimeDelta {
        self.until.unwrap_or(end).signed_duration_since(self.since)
    }
}

/// A lead going to a rep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub team: TeamId,
    pub rep: RepId,
    pub at: DateTime<Utc>,
    /// The rep's open leads with this one (without it when it joined one), and the
    /// capacity in force then.
    pub open_after: usize,
    /// A sticky repeat: the lead (index) still open with the same rep that this one joined;
    /// it took no capacity and no daily-cap unit.
    pub joins: Option<usize>,
    pub capacity: u32,
    pub explanation: RoutingExplanation,
}

/// What a touch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TouchEffect {
    /// The first touch: the lead left the rep's open leads.
    Freed(RepId),
    /// A later touch: nothing changes.
    AlreadyTouched,
    /// The lead has no rep (it waits, or went to nurture): nothing changes.
    NotAssigned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    pub effect: TouchEffect,
}

/// Everything that happened to one lead.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadHistory {
    /// The file line it came from (`None` through [`super::Simulation`]).
    pub line: Option<usize>,
    pub received_at: DateTime<Utc>,
    /// The decision on arrival, exactly as the router makes it.
    pub decision: SimulatedDecision,
    /// Set when it had to wait.
    pub wait: Option<Wait>,
    /// Set when a rep got it: on arrival, or later from its queue.
    pub assignment: Option<Assignment>,
    pub touches: Vec<Touch>,
}

/// Where a lead is at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadEnd<'a> {
    Unqualified,
    Waiting(&'a QueueName),
    /// With its rep, not yet touched.
    Open(&'a RepId),
    Touched(&'a RepId),
}

impl LeadHistory {
    pub fn end(&self) -> LeadEnd<'_> {
        match (&self.assignment, &self.wait) {
            (Some(a), _)
                if self
                    .touches
                    .iter()
                    .any(|t| t.effect == TouchEffect::Freed(a.rep.clone())) =>
            {
                LeadEnd::Touched(&a.rep)
            }
            (Some(a), _) => LeadEnd::Open(&a.rep),
            (None, Some(wait)) => LeadEnd::Waiting(&wait.queue),
            (None, None) => LeadEnd::Unqualified,
        }
    }
}

/// One line of the chronological log.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    /// The file line that caused it; `None` when the clock did (a queue drained as someone
    /// started work, or as a new UTC day reset the daily caps).
    pub line: Option<usize>,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A lead arrived: its `decision` says where it went.
    Received {
        lead: usize,
    },
    /// A waiting lead got a rep: its `wait` and `assignment` say which and after how long.
    Dequeued {
        lead: usize,
    },
    Touched {
        lead: usize,
        touch: Touch,
    },
    Roster(RosterEdit),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepSummary {
    pub rep: RepId,
    pub assigned: usize,
    pub open_at_end: usize,
    /// The most open leads at once.
    pub peak_open: usize,
    /// The capacity in force at the end.
    pub capacity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSummary {
    pub queue: QueueName,
    /// Leads that waited in it.
    pub entered: usize,
    /// The most leads waiting at once.
    pub max_depth: usize,
    /// The longest wait, counting those still waiting up to the end.
    pub longest_wait: TimeDelta,
    pub waiting_at_end: usize,
}

/// The outcome of a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// In arrival order; `Event`s index into it.
    pub leads: Vec<LeadHistory>,
    pub log: Vec<Entry>,
    pub reps: Vec<RepSummary>,
    pub queues: Vec<QueueSummary>,
    pub summary: SimulationSummary,
}

impl ReplayReport {
    pub fn lead(&self, id: &str) -> Option<&LeadHistory> {
        self.leads.iter().find(|l| l.decision.lead_id == id)
    }
}

/// Replays a scenario; the clock runs on to `until` (when later than the last line, and
/// at most [`super::MAX_SPAN_DAYS`] after the first), so queues can drain after the last line.
pub fn replay(
    scoring: &ScoringModel,
    routing: &RoutingModel,
    scenario: &Scenario,
    until: Option<DateTime<Utc>>,
) -> ReplayReport {
    let mut engine = Replay::new(scoring, routing);
    for line in &scenario.lines {
        engine.apply(line);
    }
    let started_at = scenario.first_time();
    // The file is checked against the span; `until` is held to it here.
    let limit = started_at
        .checked_add_signed(super::max_span())
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let end = until.map_or(scenario.last_time(), |u| {
        u.min(limit).max(scenario.last_time())
    });
    engine.finish(started_at, end)
}

#[derive(Debug, Clone)]
struct Tracked {
    lead: Lead,
    /// The rule match, kept to decide again while it waits; `None` when unqualified.
    matched: Option<RuleMatch>,
    history: LeadHistory,
}

#[derive(Debug, Clone, Default)]
struct QueueStats {
    entered: usize,
    depth: usize,
    max_depth: usize,
    longest_wait: TimeDelta,
}

/// The replay engine: in-memory state the router would keep in Redis.
#[derive(Debug)]
pub struct Replay<'a> {
    scoring: &'a ScoringModel,
    /// The rules file's model; its own copy once a roster line adds a member to a team.
    routing: Cow<'a, RoutingModel>,
    clock: Option<DateTime<Utc>>,
    /// Team -> rotation (see routing's strategy module).
    rotations: BTreeMap<String, String>,
    roster: Roster,
    /// Email -> the rep who got the contact's last lead, when, and the lead (index) that
    /// holds the rep's capacity for the contact: sticky routing.
    contact_owners: BTreeMap<String, (String, DateTime<Utc>, usize)>,
    leads: Vec<Tracked>,
    /// Lead id -> index of the last lead with it, for touches.
    by_id: BTreeMap<LeadId, usize>,
    /// Waiting leads (indexes), oldest first.
    waiting: Vec<usize>,
    queues: BTreeMap<QueueName, QueueStats>,
    log: Vec<Entry>,
    /// (team, rep) -> the sum, over the team's leads so far, of the share the rep was due
    /// when each went out (by who was active then): divided by the team's leads, the target
    /// that follows roster edits.
    due_shares: BTreeMap<(String, String), f64>,
}

impl<'a> Replay<'a> {
    /// Empty state: no open leads, fresh rotations, the rules file's roster.
    pub fn new(scoring: &'a ScoringModel, routing: &'a RoutingModel) -> Self {
        Self {
            scoring,
            routing: Cow::Borrowed(routing),
            clock: None,
            rotations: BTreeMap::new(),
            roster: Roster::default(),
            contact_owners: BTreeMap::new(),
            leads: Vec::new(),
            by_id: BTreeMap::new(),
            waiting: Vec::new(),
            queues: BTreeMap::new(),
            log: Vec::new(),
            due_shares: BTreeMap::new(),
        }
    }

    /// Runs the clock to `to`, draining queues whenever who can work changes. A time
    /// before the clock's is taken as the clock's: simulated time never runs back.
    pub fn advance_to(&mut self, to: DateTime<Utc>) -> DateTime<Utc> {
        let Some(mut now) = self.clock else {
            self.clock = Some(to);
            return to;
        };
        if to <= now {
            return now;
        }
        let mut seen = self.working_now(now);
        while !self.waiting.is_empty() && now < to {
            let next = self.next_change(now).map_or(to, |next| next.min(to));
            if next <= now {
                break;
            }
            now = next;
            let working = self.working_now(now);
            if working != seen {
                self.clock = Some(now);
                self.drain(now, None);
                seen = working;
            }
        }
        self.clock = Some(to);
        to
    }

    /// Plays one line of a scenario.
    pub fn apply(&mut self, line: &ScenarioLine) {
        match &line.what {
            LineKind::Lead(lead) => {
                self.receive((**lead).clone(), Some(line.line), line.at);
            }
            LineKind::Touch { lead, outcome } => {
                self.touch(lead, *outcome, Some(line.line), line.at);
            }
            LineKind::Roster(edit) => self.edit_roster(edit.clone(), Some(line.line), line.at),
        }
    }

    /// Waiting leads a rep could take right now: always none, since every change that can
    /// make a rep eligible drains the queues (the tests hold the engine to it).
    #[cfg(test)]
    pub(super) fn routable_but_waiting(&self) -> Vec<String> {
        let Some(now) = self.clock else {
            return Vec::new();
        };
        self.waiting
            .iter()
            .filter_map(|index| {
                let tracked = self.leads.get(*index)?;
                let decision = self.decide(&tracked.lead, tracked.matched.clone()?, now);
                matches!(decision.placement, Placement::Rep(_))
                    .then(|| tracked.history.decision.lead_id.clone())
            })
            .collect()
    }

    /// A lead arrives at `at`: routed at once, or queued. Returns its index.
    pub fn receive(&mut self, lead: Lead, line: Option<usize>, at: DateTime<Utc>) -> usize {
        let now = self.advance_to(at);
        let index = self.leads.len();
        let score = self.scoring.score(&lead);
        let matched = score
            .qualified
            .then(|| self.routing.match_rule(&lead, &score));
        let decision = matched
            .clone()
            .map(|matched| self.decide(&lead, matched, now));
        let (outcome, explanation) = match &decision {
            None => (SimulatedOutcome::Unqualified, None),
            Some(d) => (
                match &d.placement {
                    Placement::Rep(rep) => SimulatedOutcome::Assigned {
                        team: TeamId::from(d.team_str()),
                        rep: rep.clone(),
                    },
                    Placement::Queue(queue) => SimulatedOutcome::Queued {
                        team: d.team.clone(),
                        queue: queue.clone(),
                    },
                },
                Some(d.explanation.clone()),
            ),
        };
        self.by_id.insert(lead.id.clone(), index);
        self.leads.push(Tracked {
            history: LeadHistory {
                line,
                received_at: now,
                decision: SimulatedDecision {
                    lead_id: lead.id.to_string(),
                    score,
                    outcome,
                    explanation,
                },
                wait: None,
                assignment: None,
                touches: Vec::new(),
            },
            lead,
            matched,
        });
        self.log.push(Entry {
            at: now,
            line,
            event: Event::Received { lead: index },
        });
        if let Some(decision) = decision {
            match &decision.placement {
                Placement::Rep(_) => self.assign(index, decision, now),
                Placement::Queue(queue) => {
                    self.enqueue(index, QueueName::from(queue.as_str()), now)
                }
            }
        }
        index
    }

    /// The rep reports an outcome for the lead with this id; `false` if no such lead.
    pub fn touch(
        &mut self,
        lead: &LeadId,
        outcome: Outcome,
        line: Option<usize>,
        at: DateTime<Utc>,
    ) -> bool {
        let now = self.advance_to(at);
        let Some(&index) = self.by_id.get(lead) else {
            return false;
        };
        let rep = self
            .leads
            .get(index)
            .and_then(|t| t.history.assignment.as_ref())
            .map(|a| a.rep.clone());
        let effect = match rep {
            None => TouchEffect::NotAssigned,
            Some(rep) if self.roster.close(rep.as_str(), index) => TouchEffect::Freed(rep),
            Some(_) => TouchEffect::AlreadyTouched,
        };
        let touch = Touch {
            at: now,
            outcome,
            effect,
        };
        if let Some(tracked) = self.leads.get_mut(index) {
            tracked.history.touches.push(touch.clone());
        }
        let freed = matches!(touch.effect, TouchEffect::Freed(_));
        self.log.push(Entry {
            at: now,
            line,
            event: Event::Touched { lead: index, touch },
        });
        if freed {
            self.drain(now, line);
        }
        true
    }

    /// A roster line: the override applies to the next decision (a rep joining a team is in
    /// its rotation from now on); waiting leads get a chance.
    pub fn edit_roster(&mut self, edit: RosterEdit, line: Option<usize>, at: DateTime<Utc>) {
        let now = self.advance_to(at);
        if let Some(team) = &edit.join {
            let capacity = edit
                .capacity
                .flatten()
                .unwrap_or_else(|| self.routing.rep_capacity(edit.rep.as_str()));
            // The file was checked against the rules: the team exists.
            if let Ok(model) = self
                .routing
                .with_member(team.as_str(), edit.rep.as_str(), capacity)
            {
                self.routing = Cow::Owned(model);
            }
        }
        self.roster.apply(&edit);
        self.log.push(Entry {
            at: now,
            line,
            event: Event::Roster(edit),
        });
        self.drain(now, line);
    }

    /// The decision a lead got on arrival.
    pub fn decision(&self, index: usize) -> Option<&SimulatedDecision> {
        self.leads.get(index).map(|t| &t.history.decision)
    }

    /// Who got how many leads, and what still waits (the plain what-if's summary).
    pub fn summary(&self) -> SimulationSummary {
        let mut summary = SimulationSummary {
            leads: self.leads.len(),
            ..SimulationSummary::default()
        };
        let mut per_rep: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for tracked in &self.leads {
            let history = &tracked.history;
            match (&history.assignment, &history.wait) {
                (Some(a), _) => {
                    *per_rep
                        .entry((a.team.as_str(), a.rep.as_str()))
                        .or_default() += 1
                }
                (None, Some(wait)) => *summary.waiting.entry(wait.queue.clone()).or_default() += 1,
                (None, None) => summary.unqualified += 1,
            }
        }
        for team in self.routing.team_ids() {
            let team_total: usize = per_rep
                .iter()
                .filter(|((t, _), _)| *t == team)
                .map(|(_, n)| n)
                .sum();
            if team_total == 0 {
                continue;
            }
            for rep in self.routing.members(team) {
                let assigned = per_rep.get(&(team, rep.as_str())).copied().unwrap_or(0);
                let due = self
                    .due_shares
                    .get(&(team.to_owned(), rep.clone()))
                    .copied()
                    .unwrap_or(0.0);
                let target = due / team_total as f64;
                summary.shares.push(RepShare {
                    team: TeamId::from(team),
                    rep: RepId::from(rep.as_str()),
                    assigned,
                    actual: assigned as f64 / team_total as f64,
                    target,
                });
            }
        }
        summary
    }

    /// Runs the clock to `end` and reports.
    pub fn finish(mut self, started_at: DateTime<Utc>, end: DateTime<Utc>) -> ReplayReport {
        let end = self.advance_to(end);
        let summary = self.summary();
        let reps = self
            .routing
            .rep_ids()
            .map(|rep| {
                let runtime = self.roster.rep(rep);
                RepSummary {
                    rep: RepId::from(rep),
                    assigned: runtime.map_or(0, |r| r.assigned),
                    open_at_end: runtime.map_or(0, |r| r.open_leads()),
                    peak_open: runtime.map_or(0, |r| r.peak_open),
                    capacity: self.roster.capacity(&self.routing, rep),
                }
            })
            .collect();
        let mut queues = self.queues;
        for tracked in &self.leads {
            if let Some(wait) = &tracked.history.wait {
                if let Some(stats) = queues.get_mut(&wait.queue) {
                    stats.longest_wait = stats.longest_wait.max(wait.duration(end));
                }
            }
        }
        let queues = queues
            .into_iter()
            .map(|(queue, stats)| QueueSummary {
                queue,
                entered: stats.entered,
                max_depth: stats.max_depth,
                longest_wait: stats.longest_wait,
                waiting_at_end: stats.depth,
            })
            .collect();
        ReplayReport {
            started_at: started_at.min(end),
            ended_at: end,
            leads: self.leads.into_iter().map(|t| t.history).collect(),
            log: self.log,
            reps,
            queues,
            summary,
        }
    }

    /// The router's decision for a qualified lead at `now`, over the simulated state.
    fn decide(&self, lead: &Lead, mut matched: RuleMatch, now: DateTime<Utc>) -> RoutingDecision {
        let sticky = self.routing.sticky_window();
        if let Some((rep, since, earlier)) = self.contact_owners.get(&lead.contact.email) {
            if now.signed_duration_since(*since) < sticky {
                let open = self
                    .leads
                    .get(*earlier)
                    .filter(|_| self.roster.is_open(rep, *earlier))
                    .map(|t| t.lead.id.as_str());
                matched = self.routing.with_prior_owner_of(matched, rep, open);
            }
        }
        let states = self
            .routing
            .teams_for(&matched)
            .into_iter()
            .map(|team| {
                let rotation = self.rotations.get(team).map_or("", String::as_str);
                (
                    team.to_owned(),
                    self.roster.team_state(&self.routing, team, rotation, now),
                )
            })
            .collect();
        let mut decision = self.routing.choose(matched, &states, now);
        self.routing
            .explain_misses(&mut decision, lead, &self.scoring.score(lead));
        // A span from a roster line reaches routing as "unavailable"; say what it is.
        for skipped in &mut decision.explanation.skipped {
            let away = self
                .roster
                .rep(&skipped.rep_id)
                .is_some_and(|r| r.away_at(now))
                && !self.roster.marked_unavailable(&skipped.rep_id);
            if away {
                if let Some(rest) = skipped.reason.strip_suffix("unavailable") {
                    skipped.reason = format!("{rest}out_of_office");
                }
            }
        }
        decision
    }

    fn assign(&mut self, index: usize, decision: RoutingDecision, now: DateTime<Utc>) {
        let Placement::Rep(rep) = &decision.placement else {
            return;
        };
        if let Some(team) = &decision.team {
            self.rotations
                .insert(team.to_string(), decision.rotation_after.clone());
            let shares = self
                .routing
                .target_shares_when(team.as_str(), |rep| self.roster.active(&self.routing, rep));
            for (rep, share) in shares {
                *self.due_shares.entry((team.to_string(), rep)).or_default() += share;
            }
        }
        let rep = rep.as_str();
        // A repeat joining an open lead takes no capacity; that lead keeps holding it.
        let joined = decision
            .joins
            .as_ref()
            .and_then(|id| self.by_id.get(&LeadId::from(id.as_str())).copied());
        let open_after = match joined {
            Some(_) => self.roster.join(rep, index),
            None => self.roster.assign(rep, index, now),
        };
        let capacity = self.roster.capacity(&self.routing, rep);
        let Some(tracked) = self.leads.get_mut(index) else {
            return;
        };
        if self.routing.sticky_seconds() > 0 {
            self.contact_owners.insert(
                tracked.lead.contact.email.clone(),
                (rep.to_owned(), now, joined.unwrap_or(index)),
            );
        }
        tracked.history.assignment = Some(Assignment {
            team: TeamId::from(decision.team_str()),
            rep: RepId::from(rep),
            at: now,
            open_after,
            capacity,
            joins: joined,
            explanation: decision.explanation,
        });
    }

    fn enqueue(&mut self, index: usize, queue: QueueName, now: DateTime<Utc>) {
        let stats = self.queues.entry(queue.clone()).or_default();
        stats.entered += 1;
        stats.depth += 1;
        stats.max_depth = stats.max_depth.max(stats.depth);
        if let Some(tracked) = self.leads.get_mut(index) {
            tracked.history.wait = Some(Wait {
                queue,
                since: now,
                until: None,
            });
        }
        self.waiting.push(index);
    }

    /// Offers every waiting lead, oldest first, to the reps who can take it now.
    fn drain(&mut self, now: DateTime<Utc>, line: Option<usize>) {
        let waiting = std::mem::take(&mut self.waiting);
        let mut still = Vec::with_capacity(waiting.len());
        for index in waiting {
            let decision = self.leads.get(index).and_then(|tracked| {
                let matched = tracked.matched.clone()?;
                Some(self.decide(&tracked.lead, matched, now))
            });
            match decision {
                Some(decision) if matches!(decision.placement, Placement::Rep(_)) => {
                    self.dequeue(index, now);
                    self.assign(index, decision, now);
                    self.log.push(Entry {
                        at: now,
                        line,
                        event: Event::Dequeued { lead: index },
                    });
                }
                _ => still.push(index),
            }
        }
        self.waiting = still;
    }

    fn dequeue(&mut self, index: usize, now: DateTime<Utc>) {
        let Some(wait) = self
            .leads
            .get_mut(index)
            .and_then(|t| t.history.wait.as_mut())
        else {
            return;
        };
        wait.until = Some(now);
        if let Some(stats) = self.queues.get_mut(&wait.queue) {
            stats.depth = stats.depth.saturating_sub(1);
            stats.longest_wait = stats.longest_wait.max(wait.duration(now));
        }
    }

    /// The next moment who-works-now may change: a rep's working hours begin or end, a
    /// local day or the UTC day (daily caps) turns, a roster span begins or ends.
    fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let utc_midnight = now
            .date_naive()
            .succ_opt()
            .map(|day| day.and_time(NaiveTime::MIN).and_utc());
        self.routing
            .rep_ids()
            .filter_map(|rep| self.routing.rep(rep)?.availability.next_change(now))
            .chain(utc_midnight)
            .chain(self.roster.next_span_edge(now))
            .min()
    }

    /// Who works at `now` by the clock (schedules, holidays, out-of-office in the rules
    /// file and spans from roster lines), and the UTC day (daily caps): when this changes,
    /// someone may have become eligible.
    fn working_now(&self, now: DateTime<Utc>) -> (NaiveDate, Vec<bool>) {
        let working = self
            .routing
            .rep_ids()
            .map(|rep| {
                let by_schedule = self
                    .routing
                    .rep(rep)
                    .is_some_and(|r| r.availability.check(now).is_ok());
                let away = self.roster.rep(rep).is_some_and(|r| r.away_at(now));
                by_schedule && !away
            })
            .collect();
        (now.date_naive(), working)
    }
}
