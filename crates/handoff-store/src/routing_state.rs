//! The router's state: who holds how many open leads, where each team's rotation stands,
//! runtime rep overrides; and the atomic step that commits one decision.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::Script;

use handoff_domain::routing::{RepState, TeamState};

use crate::keys::deadline_member;
use crate::{Store, StoreError};

static ASSIGN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/assign.lua")));
static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/enqueue.lua")));

/// One decision to commit.
#[derive(Debug, Clone)]
pub struct AssignmentCommit<'a> {
    pub lead_id: &'a str,
    pub team: &'a str,
    pub rep: &'a str,
    /// The rotation the decision was made from; the commit fails if it moved.
    pub rotation_before: &'a str,
    /// The rotation to store with the assignment.
    pub rotation_after: &'a str,
    /// The rep's effective capacity; the commit fails if the rep reached it meanwhile.
    pub capacity: u32,
    pub daily_cap: Option<u32>,
    /// The UTC day the daily cap counts in, `YYYY-MM-DD`.
    pub day: &'a str,
    /// The contact's email: the rep is remembered for it for `sticky_seconds` (0: not).
    pub contact_email: &'a str,
    pub sticky_seconds: u64,
    pub attempt: u32,
    pub assigned_ms: i64,
    pub due_ms: i64,
    /// The `lead.assigned` payload, kept so a redelivered lead republishes the same event.
    pub assigned_event: &'a str,
    pub retention_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Committed; the payload is the one given.
    Assigned,
    /// The lead was assigned before (a redelivery): here is the event recorded then.
    AlreadyAssigned(String),
    /// The state moved between read and commit (another router instance): decide again.
    Conflict(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    Queued(String),
    /// Assigned meanwhile (or before): here is the recorded event.
    AlreadyAssigned(String),
}

impl Store {
    /// Reads what a decision depends on for each `(team, members)`, in one round trip.
    /// `day` (`YYYY-MM-DD`, UTC) selects the daily-cap counters.
    pub async fn team_states(
        &self,
        teams: &[(&str, &[String])],
        day: &str,
    ) -> Result<BTreeMap<String, TeamState>, StoreError> {
        let mut reps: Vec<&String> = teams
            .iter()
            .flat_map(|(_, members)| members.iter())
            .collect();
        reps.sort();
        reps.dedup();
        let team_ids: Vec<&str> = teams.iter().map(|(team, _)| *team).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(self.keys.rotation()).arg(&team_ids);
        pipe.cmd("HMGET").arg(self.keys.open_leads()).arg(&reps);
        pipe.cmd("HMGET").arg(self.keys.assigned_on(day)).arg(&reps);
        for rep in &reps {
            pipe.hgetall(self.keys.rep(rep));
        }
        let mut connection = self.connection();
        let mut replies: Vec<redis::Value> = pipe.query_async(&mut connection).await?;
        if replies.len() != reps.len() + 3 || teams.is_empty() {
            return Ok(BTreeMap::new());
        }
        let overrides = replies.split_off(3);
        let rotations: Vec<Option<String>> = redis::from_redis_value(&replies[0])?;
        let open: Vec<Option<i64>> = redis::from_redis_value(&replies[1])?;
        let today: Vec<Option<i64>> = redis::from_redis_value(&replies[2])?;
        let count = |n: Option<i64>| u32::try_from(n.unwrap_or(0).max(0)).unwrap_or(u32::MAX);
        let mut rep_states = BTreeMap::new();
        for (((rep, open), today), overrides) in reps.iter().zip(open).zip(today).zip(overrides) {
            let fields: BTreeMap<String, String> = redis::from_redis_value(&overrides)?;
            rep_states.insert(
                (*rep).clone(),
                RepState {
                    open_leads: count(open),
                    assigned_today: count(today),
                    active: fields.get("active").and_then(|v| v.parse().ok()),
                    available: fields.get("available").and_then(|v| v.parse().ok()),
                    capacity: fields.get("capacity").and_then(|v| v.parse().ok()),
                },
            );
        }
        Ok(teams
            .iter()
            .zip(rotations)
            .map(|((team, members), rotation)| {
                let reps = members
                    .iter()
                    .filter_map(|m| rep_states.get(m).map(|s| (m.clone(), s.clone())))
                    .collect();
                (
                    (*team).to_owned(),
                    TeamState {
                        rotation: rotation.unwrap_or_default(),
                        reps,
                    },
                )
            })
            .collect())
    }

    /// Dedup, capacity, rotation, assignment and deadline in one atomic step.
    pub async fn commit_assignment(
        &self,
        commit: &AssignmentCommit<'_>,
    ) -> Result<CommitOutcome, StoreError> {
        let mut connection = self.connection();
        let (status, detail): (String, String) = ASSIGN
            .key(self.keys.lead(commit.lead_id))
            .key(self.keys.open_leads())
            .key(self.keys.rotation())
            .key(self.keys.deadlines())
            .key(self.keys.assigned_on(commit.day))
            .key(self.keys.contact_owner(commit.contact_email))
            .arg(commit.team)
            .arg(commit.rep)
            .arg(commit.rotation_before)
            .arg(commit.capacity)
            .arg(commit.due_ms)
            .arg(deadline_member(commit.lead_id, commit.attempt))
            .arg(commit.assigned_event)
            .arg(commit.retention_seconds)
            .arg(commit.attempt)
            .arg(commit.assigned_ms)
            .arg(commit.rotation_after)
            .arg(commit.daily_cap.map_or(-1, i64::from))
            .arg(commit.sticky_seconds)
            .invoke_async(&mut connection)
            .await?;
        Ok(match status.as_str() {
            "assigned" => CommitOutcome::Assigned,
            "existing" => CommitOutcome::AlreadyAssigned(detail),
            _ => CommitOutcome::Conflict(detail),
        })
    }

    /// Puts the lead in an overflow queue, once.
    pub async fn enqueue_overflow(
        &self,
        lead_id: &str,
        queue: &str,
        retention_seconds: u64,
    ) -> Result<QueueOutcome, StoreError> {
        let mut connection = self.connection();
        let (status, detail): (String, String) = ENQUEUE
            .key(self.keys.lead(lead_id))
            .key(self.keys.queue(queue))
            .arg(lead_id)
            .arg(queue)
            .arg(retention_seconds)
            .invoke_async(&mut connection)
            .await?;
        Ok(if status == "assigned" {
            QueueOutcome::AlreadyAssigned(detail)
        } else {
            QueueOutcome::Queued(detail)
        })
    }

    /// A rep's open leads and runtime overrides (`active`, `available`, `capacity`).
    pub async fn rep_runtime(
        &self,
        rep_id: &str,
    ) -> Result<(i64, BTreeMap<String, String>), StoreError> {
        let mut connection = self.connection();
        let (open, overrides): (Option<i64>, BTreeMap<String, String>) = redis::pipe()
            .hget(self.keys.open_leads(), rep_id)
            .hgetall(self.keys.rep(rep_id))
            .query_async(&mut connection)
            .await?;
        Ok((open.unwrap_or(0), overrides))
    }

    /// Sets and clears runtime overrides of a rep in one atomic step.
    pub async fn set_rep_overrides(
        &self,
        rep_id: &str,
        set: &[(&str, String)],
        clear: &[&str],
    ) -> Result<(), StoreError> {
        let key = self.keys.rep(rep_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (field, value) in set {
            pipe.hset(&key, *field, value).ignore();
        }
        if !clear.is_empty() {
            pipe.hdel(&key, clear).ignore();
        }
        let mut connection = self.connection();
        let _: () = pipe.query_async(&mut connection).await?;
        Ok(())
    }
}
