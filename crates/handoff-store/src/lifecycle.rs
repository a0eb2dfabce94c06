//! The lead lifecycle in Redis: every transition is one script, and this module is the only
//! place that knows the scripts' argument layouts (named, as one JSON object) and the
//! lead hash's field names.
//!
//! Lead hash fields (`{prefix}:lead:<id>`):
//! - `source`, `received_ms`: attribution, written once (ingest or the router).
//! - `state`: a [`LeadState`] name; absent means received.
//! - `decision`, `decision_kind`: the first decision's event (`assigned`: a `lead.assigned`;
//!   `disposition`: the UNQUALIFIED/OVERFLOWED `lead.disposition`), replayed on redelivery.
//! - `assigned`: the current assignment's `lead.assigned`.
//! - `team`, `rep`, `attempt`, `assigned_ms`, `due_ms`: the current assignment (attempt 0
//!   and `due_ms` of the wait while queued).
//! - `queue`, `queued_ms`, `lead`: while waiting, the queue and the lead itself (to route it
//!   later).
//! - `touched_ms`, `closed_ms`, `outcome`: reports; `d:<event id>`: a report applied.
//! - `disposition_due_ms`: when the disposition is due (its clock started);
//!   `disposed_ms`: a disposition marketing can use was reported (clocks.rs, report.lua);
//!   `reminders:<attempt>`: that attempt's reminders are scheduled.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use handoff_domain::disposition::ActorKind;
use handoff_domain::events::LeadDisposition;
use redis::Script;
use serde::{Deserialize, Serialize};

use handoff_domain::assignment::Assignment;
use handoff_domain::events::EventKind;
use handoff_domain::lifecycle::{CapacityRelease, LeadState, Transition};
use handoff_domain::sla::Sla;
use handoff_domain::{LeadId, QueueName, RepId, TeamId};

use crate::clocks::{reminder_entries, ClockArgs};
use crate::keys::{deadline_member, disposition_member};
use crate::{Store, StoreError};
use handoff_domain::sla::{AssignmentClocks, ClockPlan};

static ASSIGN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/assign.lua")));
static DECIDE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/decide.lua")));
static REPORT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/report.lua")));
static ADOPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/adopt.lua")));
static ESCALATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/escalate.lua")));

/// How often a step retries when the lead's rep or queue changed between reading them
/// (to name their keys) and the atomic step.
const MOVED_RETRIES: usize = 8;

/// One step of a lead's timeline (`GET /v1/leads/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// `received`, `unqualified`, `waiting`, `assigned`, `touched`, `touch_recorded`,
    /// `closed`, `breached`, `adopted`.
    pub step: String,
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl TimelineEntry {
    pub fn new(at: DateTime<Utc>, step: &str) -> Self {
        Self {
            at,
            step: step.to_owned(),
            detail: serde_json::Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }

    fn encode(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Encode(e.to_string()))
    }
}

/// A decision recorded for a lead before (replayed on redelivery, never re-decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDecision {
    pub kind: EventKind,
    /// The event's JSON payload, as published then.
    pub payload: String,
}

/// What committing an assignment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignOutcome {
    /// Committed. `touched_before`: a touch had been reported already, so no clock runs.
    Assigned { touched_before: bool },
    /// The lead was decided before: replay this.
    AlreadyDecided(RecordedDecision),
    /// The state moved between read and commit (rotation, capacity): decide again.
    Conflict(String),
    /// Routing from a queue: the lead no longer waits there (another instance took it, or
    /// it was closed).
    NoLongerWaiting,
    /// The lead was closed before anyone decided it.
    Closed,
}

/// What recording a nurture or queue decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    Recorded,
    AlreadyDecided(RecordedDecision),
    Closed,
}

/// The result of a reported outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Applied. `from`: the state before; `first_touch`: the lead's first touch.
    Applied {
        from: LeadState,
        first_touch: bool,
        assigned_ms: Option<i64>,
        team: Option<TeamId>,
        rep: Option<RepId>,
    },
    /// This report (event id) was applied before.
    Duplicate,
    /// Illegal in the lead's state (e.g. anything after closed): not applied.
    Refused { state: LeadState },
    /// No such lead (never seen, or expired).
    Unknown,
}

/// A lead waiting in a queue, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingLead {
    pub lead_id: LeadId,
    /// The lead's `lead.created` payload (JSON); `None` if the record expired.
    pub lead: Option<String>,
    /// When it arrived (the queue's order) and when it started waiting.
    pub received_ms: i64,
    pub queued_ms: Option<i64>,
    /// The trace its decision belonged to, for the assignment when it comes.
    pub trace: Option<String>,
}

/// A queue's current content, in order of arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    pub name: QueueName,
    pub depth: u64,
    /// When the lead at the head (the first to arrive) was received.
    pub oldest_received_ms: Option<i64>,
    /// Lead ids with their arrival times (ms), first come first (up to the limit asked for).
    pub leads: Vec<(LeadId, i64)>,
}

/// Preconditions and effects of an assignment commit that are not part of the decision.
#[derive(Debug, Clone)]
pub struct CommitContext<'a> {
    /// The `lead.assigned` payload: stored, replayed on redelivery.
    pub event: &'a str,
    /// The UTC day the daily cap counts in, `YYYY-MM-DD`.
    pub day: &'a str,
    /// The contact's email and how long the rep sticks to them (0: not).
    pub contact_email: Option<&'a str>,
    pub sticky_seconds: u64,
    pub release: CapacityRelease,
    pub retention_seconds: u64,
    pub now: DateTime<Utc>,
    /// The W3C `traceparent` of the assignment's event: the lead's later events (its
    /// breach, a reassignment) continue that trace.
    pub trace: &'a str,
    /// The reminders (and the disposition clock, by policy) the assignment starts,
    /// scheduled in the same step: the SLA tracker then has nothing to do for it.
    pub clocks: &'a AssignmentClocks,
}

#[derive(Serialize)]
struct AssignArgs<'a> {
    /// '' or the lead this one joins (`Assignment::joins`): committed only while that lead
    /// is still open with the rep; it then takes no capacity and no daily-cap unit
    /// (`Conflict` when it is no longer open).
    joins: &'a str,
    trace: &'a str,
    lead_id: &'a str,
    team: &'a str,
    rep: &'a str,
    rotation_before: &'a str,
    rotation_after: &'a str,
    capacity: u32,
    daily_cap: i64,
    attempt: u32,
    assigned_ms: i64,
    due_ms: i64,
    member: String,
    wait_member: String,
    event: &'a str,
    retention_seconds: u64,
    sticky_seconds: u64,
    from_queue: bool,
    release: &'static str,
    open_until_ms: i64,
    now_ms: i64,
    entry: String,
    #[serde(flatten)]
    clocks: ClockArgs,
}

#[derive(Serialize)]
struct DecideArgs<'a> {
    trace: &'a str,
    lead_id: &'a str,
    received_ms: i64,
    state: &'static str,
    event: &'a str,
    queue: &'a str,
    team: &'a str,
    lead: &'a str,
    now_ms: i64,
    wait_due_ms: i64,
    wait_member: String,
    retention_seconds: u64,
    entry: String,
}

#[derive(Serialize)]
struct ReportArgs<'a> {
    lead_id: &'a str,
    event_id: &'a str,
    transition: &'static str,
    outcome: &'a str,
    rep: &'a str,
    queue: &'a str,
    at_ms: i64,
    release: &'static str,
    closed_retention_seconds: u64,
    entry: String,
    /// The attempt the caller read (the disposition members name it).
    attempt: &'a str,
    disposes: bool,
    disposition_member: String,
    /// 0: no disposition clock starts with this report.
    disposition_due_ms: i64,
    disposition_reminders: Vec<(String, i64)>,
}

/// The clock a first touch starts, given the lead's team and rep.
pub type ClockStart<'a> =
    dyn Fn(Option<&TeamId>, Option<&RepId>) -> Option<ClockPlan> + Send + Sync + 'a;

/// The disposition clock a first touch at a time starts, given the lead's team and rep.
pub type DispositionStarts<'a> =
    dyn Fn(DateTime<Utc>, Option<&TeamId>, Option<&RepId>) -> Option<ClockPlan> + Send + Sync + 'a;

/// What a report does to the disposition clock.
pub struct DispositionClock<'a> {
    /// The outcome is a disposition marketing can use: the clock stops.
    pub disposes: bool,
    /// If this report is the first touch, the clock that starts then, for the lead's team
    /// and rep; `None`: none starts.
    pub starts: &'a ClockStart<'a>,
}

impl std::fmt::Debug for DispositionClock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispositionClock")
            .field("disposes", &self.disposes)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct AdoptArgs<'a> {
    /// '' or the lead this one joins: adopted without a unit of capacity.
    joins: &'a str,
    lead_id: &'a str,
    team: &'a str,
    rep: &'a str,
    previous_rep: &'a str,
    queue: &'a str,
    attempt: u32,
    assigned_ms: i64,
    due_ms: i64,
    member: String,
    wait_member: String,
    event: &'a str,
    release: &'static str,
    open_until_ms: i64,
    retention_seconds: u64,
    entry: String,
}

#[derive(Serialize)]
struct EscalateArgs<'a> {
    trace: &'a str,
    lead_id: &'a str,
    attempt: u32,
    new_attempt: u32,
    old_rep: &'a str,
    team: &'a str,
    rep: &'a str,
    rotation_before: &'a str,
    rotation_after: &'a str,
    capacity: u32,
    daily_cap: i64,
    assigned_ms: i64,
    due_ms: i64,
    old_member: String,
    new_member: String,
    event: &'a str,
    disposition: &'a str,
    open_until_ms: i64,
    now_ms: i64,
    retention_seconds: u64,
    entry: String,
}

/// What acting on a missed first touch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalateOutcome {
    /// Done now.
    Done,
    /// Done before (a redelivered breach): the disposition recorded then; the new
    /// attempt's `lead.assigned`, if there was one, is the lead's `assigned`.
    AlreadyDone { disposition: String },
    /// The lead was touched, closed or reassigned since: nothing to do.
    Stale,
    /// The new rep's state moved (rotation, capacity): decide again.
    Conflict(String),
}

/// A missed first touch and what to do about it.
#[derive(Debug, Clone)]
pub struct Escalation<'a> {
    pub lead_id: &'a LeadId,
    /// The attempt whose deadline passed, and its rep.
    pub attempt: u32,
    pub old_rep: &'a RepId,
    /// The new assignment (attempt + 1) and its `lead.assigned`; `None`: nobody can take
    /// the lead, it stays with its rep and the manager is told.
    pub reassignment: Option<(&'a Assignment, &'a str)>,
    /// The REASSIGNED or ESCALATED `lead.disposition`.
    pub disposition: &'a str,
    pub retention_seconds: u64,
    pub now: DateTime<Utc>,
    /// The trace the new attempt's events belong to.
    pub trace: &'a str,
}

/// A waiting lead being routed: where it waits.
#[derive(Debug, Clone, Copy)]
pub struct FromQueue<'a> {
    pub queue: &'a QueueName,
}

/// A decision that is not an assignment.
#[derive(Debug, Clone)]
pub enum Parked<'a> {
    /// Below the MQL threshold.
    Nurture,
    /// Waits in `queue` (team's when known); `lead` is the lead's JSON to route it later;
    /// the wait's own clock ends at `wait_due`.
    Waiting {
        queue: &'a QueueName,
        team: Option<&'a TeamId>,
        lead: &'a str,
        wait_due: DateTime<Utc>,
    },
}

fn args<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode(e.to_string()))
}

fn recorded(kind: &str, payload: String) -> RecordedDecision {
    RecordedDecision {
        kind: if kind == "assigned" {
            EventKind::LeadAssigned
        } else {
            EventKind::LeadDisposition
        },
        payload,
    }
}

impl Store {
    /// Commits an assignment (capacity, daily cap and rotation checked against the
    /// decision's preconditions), or replays the lead's first decision.
    pub async fn commit_assignment(
        &self,
        assignment: &Assignment,
        context: &CommitContext<'_>,
        from_queue: Option<FromQueue<'_>>,
    ) -> Result<AssignOutcome, StoreError> {
        let lead_id = assignment.lead_id.as_str();
        let entry = TimelineEntry::new(assignment.assigned_at, "assigned")
            .with("attempt", assignment.attempt)
            .with("team", assignment.team.as_str())
            .with("rep", assignment.rep.as_str())
            .with(
                "first_touch_due_at",
                assignment.first_touch_due_at.to_rfc3339(),
            )
            .with(
                "event",
                serde_json::from_str::<serde_json::Value>(context.event)
                    .map_err(|e| StoreError::Encode(e.to_string()))?,
            );
        let payload = AssignArgs {
            joins: assignment.joins.as_ref().map_or("", LeadId::as_str),
            trace: context.trace,
            lead_id,
            team: assignment.team.as_str(),
            rep: assignment.rep.as_str(),
            rotation_before: &assignment.rotation_before,
            rotation_after: &assignment.rotation_after,
            capacity: assignment.capacity,
            daily_cap: assignment.daily_cap.map_or(-1, i64::from),
            attempt: assignment.attempt,
            assigned_ms: assignment.assigned_at.timestamp_millis(),
            due_ms: assignment.first_touch_due_at.timestamp_millis(),
            member: deadline_member(lead_id, assignment.attempt),
            wait_member: deadline_member(lead_id, 0),
            event: context.event,
            retention_seconds: context.retention_seconds,
            sticky_seconds: if context.contact_email.is_some() {
                context.sticky_seconds
            } else {
                0
            },
            from_queue: from_queue.is_some(),
            release: context.release.as_str(),
            open_until_ms: open_until(context.now, context.retention_seconds),
            now_ms: context.now.timestamp_millis(),
            entry: entry.encode()?,
            clocks: ClockArgs::new(lead_id, assignment.attempt, context.clocks),
        };
        let queue_key =
            from_queue.map_or_else(|| self.keys.unused(), |q| self.keys.queue(q.queue.as_str()));
        let mut connection = self.connection();
        let reply: (String, String, String) = ASSIGN
            .key(self.keys.lead(lead_id))
            .key(self.keys.lead_log(lead_id))
            .key(self.keys.rep_open(assignment.rep.as_str()))
            .key(self.keys.rotation())
            .key(self.keys.assigned_on(context.day))
            .key(
                context
                    .contact_email
                    .map_or_else(|| self.keys.unused(), |e| self.keys.contact_owner(e)),
            )
            .key(self.keys.deadlines())
            .key(self.keys.claims())
            .key(queue_key)
            .key(self.keys.outbox())
            .key(self.keys.reminders())
            .arg(args(&payload)?)
            .invoke_async(&mut connection)
            .await?;
        Ok(match reply.0.as_str() {
            "assigned" => AssignOutcome::Assigned {
                touched_before: reply.1 == "touched",
            },
            "existing" => AssignOutcome::AlreadyDecided(recorded(&reply.1, reply.2)),
            "gone" => AssignOutcome::NoLongerWaiting,
            "closed" => AssignOutcome::Closed,
            _ => AssignOutcome::Conflict(reply.1),
        })
    }

    /// Records a nurture or queue decision (with its event, replayed on redelivery), once.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_decision(
        &self,
        lead_id: &LeadId,
        received_at: DateTime<Utc>,
        trace: &str,
        parked: &Parked<'_>,
        event: &str,
        now: DateTime<Utc>,
        retention_seconds: u64,
    ) -> Result<DecideOutcome, StoreError> {
        let id = lead_id.as_str();
        let (state, queue, team, lead, wait_due) = match parked {
            Parked::Nurture => (LeadState::Unqualified, None, None, "", now),
            Parked::Waiting {
                queue,
                team,
                lead,
                wait_due,
            } => (LeadState::Waiting, Some(*queue), *team, *lead, *wait_due),
        };
        let mut entry = TimelineEntry::new(now, state.as_str());
        if let Some(queue) = queue {
            entry = entry.with("queue", queue.as_str());
        }
        let payload = DecideArgs {
            trace,
            lead_id: id,
            received_ms: received_at.timestamp_millis(),
            state: state.as_str(),
            event,
            queue: queue.map_or("", QueueName::as_str),
            team: team.map_or("", TeamId::as_str),
            lead,
            now_ms: now.timestamp_millis(),
            wait_due_ms: wait_due.timestamp_millis(),
            wait_member: deadline_member(id, 0),
            retention_seconds,
            entry: entry
                .with(
                    "event",
                    serde_json::from_str::<serde_json::Value>(event)
                        .map_err(|e| StoreError::Encode(e.to_string()))?,
                )
                .encode()?,
        };
        let mut connection = self.connection();
        let reply: (String, String, String) = DECIDE
            .key(self.keys.lead(id))
            .key(self.keys.lead_log(id))
            .key(queue.map_or_else(|| self.keys.unused(), |q| self.keys.queue(q.as_str())))
            .key(self.keys.queues())
            .key(self.keys.deadlines())
            .arg(args(&payload)?)
            .invoke_async(&mut connection)
            .await?;
        Ok(match reply.0.as_str() {
            "existing" => DecideOutcome::AlreadyDecided(recorded(&reply.1, reply.2)),
            "closed" => DecideOutcome::Closed,
            _ => DecideOutcome::Recorded,
        })
    }

    /// Applies a reported outcome once per `event_id`: a touch stops the clock (and frees
    /// the rep under `release = first_touch`), or is recorded for an assignment still to
    /// come; a close ends the lead and frees the rep. The disposition clock starts with
    /// the first touch of an assigned lead and stops with a disposition, in the same step.
    #[allow(clippy::too_many_arguments)]
    pub async fn report(
        &self,
        lead_id: &LeadId,
        event_id: &str,
        transition: Transition,
        outcome: &str,
        at: DateTime<Utc>,
        release: CapacityRelease,
        closed_retention_seconds: u64,
        entry: TimelineEntry,
        disposition: DispositionClock<'_>,
    ) -> Result<ReportOutcome, StoreError> {
        let id = lead_id.as_str();
        let entry = entry.encode()?;
        let mut connection = self.connection();
        for _ in 0..MOVED_RETRIES {
            let (rep, queue, team, attempt): (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            ) = redis::cmd("HMGET")
                .arg(self.keys.lead(id))
                .arg(&["rep", "queue", "team", "attempt"])
                .query_async(&mut connection)
                .await?;
            let rep = rep.unwrap_or_default();
            let queue = queue.unwrap_or_default();
            let attempt = attempt.unwrap_or_default();
            let attempt_number: u32 = attempt.parse().unwrap_or(0);
            let plan = if disposition.disposes || attempt_number == 0 {
                None
            } else {
                (disposition.starts)(
                    team.filter(|t| !t.is_empty()).map(TeamId::from).as_ref(),
                    Some(rep.as_str())
                        .filter(|r| !r.is_empty())
                        .map(RepId::from)
                        .as_ref(),
                )
            };
            let payload = ReportArgs {
                lead_id: id,
                event_id,
                transition: transition.as_str(),
                outcome,
                rep: &rep,
                queue: &queue,
                at_ms: at.timestamp_millis(),
                release: release.as_str(),
                closed_retention_seconds,
                entry: entry.clone(),
                attempt: &attempt,
                disposes: disposition.disposes,
                disposition_member: disposition_member(id, attempt_number),
                disposition_due_ms: plan.as_ref().map_or(0, |p| p.due.timestamp_millis()),
                disposition_reminders: plan.as_ref().map_or_else(Vec::new, |p| {
                    reminder_entries(id, attempt_number, Sla::Disposition, &p.reminders)
                }),
            };
            let reply: Vec<String> = REPORT
                .key(self.keys.lead(id))
                .key(self.keys.lead_log(id))
                .key(if rep.is_empty() {
                    self.keys.unused()
                } else {
                    self.keys.rep_open(&rep)
                })
                .key(self.keys.deadlines())
                .key(self.keys.claims())
                .key(if queue.is_empty() {
                    self.keys.unused()
                } else {
                    self.keys.queue(&queue)
                })
                .key(self.keys.reminders())
                .arg(args(&payload)?)
                .invoke_async(&mut connection)
                .await?;
            let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or_default();
            let state = || LeadState::parse(field(1)).unwrap_or(LeadState::Received);
            return Ok(match field(0) {
                "moved" => continue,
                "unknown" => ReportOutcome::Unknown,
                "duplicate" => ReportOutcome::Duplicate,
                "refused" => ReportOutcome::Refused { state: state() },
                _ => ReportOutcome::Applied {
                    from: state(),
                    first_touch: field(2) == "1",
                    assigned_ms: field(3).parse().ok(),
                    team: Some(field(4)).filter(|t| !t.is_empty()).map(TeamId::from),
                    rep: Some(field(5)).filter(|r| !r.is_empty()).map(RepId::from),
                },
            });
        }
        Err(StoreError::Contended(format!(
            "lead {id} kept changing while a report was applied"
        )))
    }

    /// The lead's current rep and queue ("" for none): the keys a step must name.
    async fn rep_and_queue(&self, id: &str) -> Result<(String, String), StoreError> {
        let mut connection = self.connection();
        let (rep, queue): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.lead(id))
            .arg(&["rep", "queue"])
            .query_async(&mut connection)
            .await?;
        Ok((rep.unwrap_or_default(), queue.unwrap_or_default()))
    }

    /// Adopts an assignment another producer announced (its due time as announced),
    /// unless this attempt or a later one is known. `true` if adopted.
    pub async fn adopt_assignment(
        &self,
        assignment: &Assignment,
        event: &str,
        release: CapacityRelease,
        retention_seconds: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let id = assignment.lead_id.as_str();
        let entry = TimelineEntry::new(now, "adopted")
            .with("attempt", assignment.attempt)
            .with("team", assignment.team.as_str())
            .with("rep", assignment.rep.as_str())
            .encode()?;
        let mut connection = self.connection();
        for _ in 0..MOVED_RETRIES {
            let (previous_rep, queue) = self.rep_and_queue(id).await?;
            let payload = AdoptArgs {
                joins: assignment.joins.as_ref().map_or("", LeadId::as_str),
                lead_id: id,
                team: assignment.team.as_str(),
                rep: assignment.rep.as_str(),
                previous_rep: &previous_rep,
                queue: &queue,
                attempt: assignment.attempt,
                assigned_ms: assignment.assigned_at.timestamp_millis(),
                due_ms: assignment.first_touch_due_at.timestamp_millis(),
                member: deadline_member(id, assignment.attempt),
                wait_member: deadline_member(id, 0),
                event,
                release: release.as_str(),
                open_until_ms: open_until(now, retention_seconds),
                retention_seconds,
                entry: entry.clone(),
            };
            let reply: Vec<String> = ADOPT
                .key(self.keys.lead(id))
                .key(self.keys.lead_log(id))
                .key(self.keys.rep_open(assignment.rep.as_str()))
                .key(self.keys.deadlines())
                .key(self.keys.claims())
                .key(if previous_rep.is_empty() {
                    self.keys.unused()
                } else {
                    self.keys.rep_open(&previous_rep)
                })
                .key(if queue.is_empty() {
                    self.keys.unused()
                } else {
                    self.keys.queue(&queue)
                })
                .arg(args(&payload)?)
                .invoke_async(&mut connection)
                .await?;
            match reply.first().map(String::as_str) {
                Some("moved") => continue,
                Some("adopted") => return Ok(true),
                _ => return Ok(false),
            }
        }
        Err(StoreError::Contended(format!(
            "lead {id} kept changing while an assignment was adopted"
        )))
    }

    /// Applies a reported outcome from its `lead.disposition` (`None` for the system's own
    /// outcomes, which are not reports): ingest right after publishing it, so a touch counts
    /// before the deadline it beat, and the SLA tracker from the topic for every producer
    /// (then it is a duplicate for the API's).
    pub async fn report_disposition(
        &self,
        disposition: &LeadDisposition,
        event_id: &str,
        release: CapacityRelease,
        closed_retention_seconds: u64,
        starts: &DispositionStarts<'_>,
    ) -> Result<Option<ReportOutcome>, StoreError> {
        let Some(transition) = Transition::of(disposition.outcome) else {
            return Ok(None);
        };
        // A reporter's clock may run ahead; the lead cannot have been touched in the future.
        let at = disposition.occurred_at.min(self.now());
        let mut entry = TimelineEntry::new(at, disposition.outcome.as_str())
            .with("outcome", disposition.outcome.as_str())
            .with("event_id", event_id)
            .with("actor_kind", actor_kind(disposition.actor.kind));
        if !disposition.actor.id.is_empty() {
            entry = entry.with("actor", disposition.actor.id.as_str());
        }
        if !disposition.reason_code.is_empty() {
            entry = entry.with("reason_code", disposition.reason_code.as_str());
        }
        self.report(
            &disposition.lead_id,
            event_id,
            transition,
            disposition.outcome.as_str(),
            at,
            release,
            closed_retention_seconds,
            entry,
            DispositionClock {
                disposes: handoff_domain::sla::is_disposition(disposition.outcome),
                starts: &|team, rep| starts(at, team, rep),
            },
        )
        .await
        .map(Some)
    }

    /// Acts on a missed first touch of `attempt`, once per (lead, attempt).
    pub async fn escalate(&self, e: &Escalation<'_>) -> Result<EscalateOutcome, StoreError> {
        let id = e.lead_id.as_str();
        let mut entry = TimelineEntry::new(
            e.now,
            if e.reassignment.is_some() {
                "reassigned"
            } else {
                "escalated"
            },
        )
        .with("attempt", e.attempt)
        .with("from_rep", e.old_rep.as_str());
        if let Some((assignment, event)) = e.reassignment {
            entry = entry
                .with("to_rep", assignment.rep.as_str())
                .with("team", assignment.team.as_str())
                .with(
                    "event",
                    serde_json::from_str::<serde_json::Value>(event)
                        .map_err(|e| StoreError::Encode(e.to_string()))?,
                );
        }
        let new = e.reassignment.map(|(a, _)| a);
        let payload = EscalateArgs {
            trace: e.trace,
            lead_id: id,
            attempt: e.attempt,
            new_attempt: e.attempt.saturating_add(1),
            old_rep: e.old_rep.as_str(),
            team: new.map_or("", |a| a.team.as_str()),
            rep: new.map_or("", |a| a.rep.as_str()),
            rotation_before: new.map_or("", |a| a.rotation_before.as_str()),
            rotation_after: new.map_or("", |a| a.rotation_after.as_str()),
            capacity: new.map_or(0, |a| a.capacity),
            daily_cap: new.and_then(|a| a.daily_cap).map_or(-1, i64::from),
            assigned_ms: new.map_or(0, |a| a.assigned_at.timestamp_millis()),
            due_ms: new.map_or(0, |a| a.first_touch_due_at.timestamp_millis()),
            old_member: deadline_member(id, e.attempt),
            new_member: deadline_member(id, e.attempt.saturating_add(1)),
            event: e.reassignment.map_or("", |(_, event)| event),
            disposition: e.disposition,
            open_until_ms: open_until(e.now, e.retention_seconds),
            now_ms: e.now.timestamp_millis(),
            retention_seconds: e.retention_seconds,
            entry: entry.encode()?,
        };
        let day = e.now.format("%Y-%m-%d").to_string();
        let mut connection = self.connection();
        let reply: (String, String) = ESCALATE
            .key(self.keys.lead(id))
            .key(self.keys.lead_log(id))
            .key(self.keys.rep_open(e.old_rep.as_str()))
            .key(new.map_or_else(
                || self.keys.unused(),
                |a| self.keys.rep_open(a.rep.as_str()),
            ))
            .key(self.keys.rotation())
            .key(self.keys.assigned_on(&day))
            .key(self.keys.deadlines())
            .key(self.keys.claims())
            .arg(args(&payload)?)
            .invoke_async(&mut connection)
            .await?;
        Ok(match reply.0.as_str() {
            "done" => EscalateOutcome::Done,
            "existing" => EscalateOutcome::AlreadyDone {
                disposition: reply.1,
            },
            "conflict" => EscalateOutcome::Conflict(reply.1),
            _ => EscalateOutcome::Stale,
        })
    }

    /// Appends a step to a lead's timeline (for steps that change no state, e.g. a
    /// breach), if the lead is still known.
    pub async fn append_timeline(
        &self,
        lead_id: &LeadId,
        entry: &TimelineEntry,
    ) -> Result<(), StoreError> {
        // RPUSHX: the log exists exactly as long as the lead (written and expired together
        // by every step), so a forgotten lead gets no orphan log.
        let mut connection = self.connection();
        let _: i64 = redis::cmd("RPUSHX")
            .arg(self.keys.lead_log(lead_id.as_str()))
            .arg(entry.encode()?)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// The timeline of a lead, oldest first (entries that do not parse are skipped: they
    /// were written by a newer version).
    pub async fn timeline(&self, lead_id: &LeadId) -> Result<Vec<TimelineEntry>, StoreError> {
        let mut connection = self.connection();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.lead_log(lead_id.as_str()))
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await?;
        Ok(raw
            .iter()
            .filter_map(|entry| serde_json::from_str(entry).ok())
            .collect())
    }

    /// Names of every queue that held a lead.
    pub async fn queue_names(&self) -> Result<Vec<QueueName>, StoreError> {
        let mut connection = self.connection();
        let mut names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.queues())
            .query_async(&mut connection)
            .await?;
        names.sort();
        Ok(names.into_iter().map(QueueName::from).collect())
    }

    /// A queue's depth, oldest wait and its first `limit` leads.
    pub async fn queue(&self, name: &QueueName, limit: u32) -> Result<QueueView, StoreError> {
        let key = self.keys.queue(name.as_str());
        let mut connection = self.connection();
        let (depth, leads): (u64, Vec<(String, f64)>) = redis::pipe()
            .zcard(&key)
            .cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(i64::from(limit) - 1)
            .arg("WITHSCORES")
            .query_async(&mut connection)
            .await?;
        let leads: Vec<(LeadId, i64)> = leads
            .into_iter()
            .map(|(id, ms)| (LeadId::from(id), ms as i64))
            .collect();
        Ok(QueueView {
            name: name.clone(),
            depth,
            oldest_received_ms: leads.first().map(|(_, ms)| *ms),
            leads: if limit == 0 { Vec::new() } else { leads },
        })
    }

    /// The leads of `view` (read with [`Store::queue`]), with what routing them needs.
    pub async fn waiting_leads(&self, view: &QueueView) -> Result<Vec<WaitingLead>, StoreError> {
        if view.leads.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &view.leads {
            pipe.cmd("HMGET")
                .arg(self.keys.lead(id.as_str()))
                .arg(&["lead", "queued_ms", "trace"]);
        }
        let mut connection = self.connection();
        let leads: Vec<(Option<String>, Option<i64>, Option<String>)> =
            pipe.query_async(&mut connection).await?;
        Ok(view
            .leads
            .iter()
            .zip(leads)
            .map(
                |((lead_id, received_ms), (lead, queued_ms, trace))| WaitingLead {
                    lead_id: lead_id.clone(),
                    lead,
                    received_ms: *received_ms,
                    queued_ms,
                    trace,
                },
            )
            .collect())
    }

    /// Drops a queue entry whose lead record is gone (expired): nothing can route it.
    pub async fn drop_from_queue(
        &self,
        queue: &QueueName,
        lead_id: &LeadId,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let removed: i64 = redis::pipe()
            .zrem(self.keys.queue(queue.as_str()), lead_id.as_str())
            .zrem(self.keys.deadlines(), deadline_member(lead_id.as_str(), 0))
            .ignore()
            .query_async::<Vec<i64>>(&mut connection)
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        Ok(removed == 1)
    }
}

impl Store {
    /// Assignments from a queue recorded before `before` whose event is still unacknowledged,
    /// with the `lead.assigned` payload to publish again.
    pub async fn outbox_pending(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(LeadId, Option<String>)>, StoreError> {
        let mut connection = self.connection();
        let leads: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.outbox())
            .arg("-inf")
            .arg(before.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut connection)
            .await?;
        if leads.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for lead in &leads {
            pipe.hget(self.keys.lead(lead), "assigned");
        }
        let events: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        Ok(leads.into_iter().map(LeadId::from).zip(events).collect())
    }

    /// The assignment's event is acknowledged by the broker.
    pub async fn outbox_done(&self, lead_id: &LeadId) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = redis::cmd("ZREM")
            .arg(self.keys.outbox())
            .arg(lead_id.as_str())
            .query_async(&mut connection)
            .await?;
        Ok(())
    }
}

fn actor_kind(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Rep => "rep",
        ActorKind::Crm => "crm",
        ActorKind::System => "system",
    }
}

/// Until when an open lead holds capacity: as long as its record lives.
fn open_until(now: DateTime<Utc>, retention_seconds: u64) -> i64 {
    let retention_ms = i64::try_from(retention_seconds)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    now.timestamp_millis().saturating_add(retention_ms)
}
