//! Repairs drift between the derived sets (reps' open leads, queues) and the leads' own
//! states, which are the truth: a lead holds a rep's capacity exactly while it is that
//! rep's and open; it is in a queue exactly while it waits there. Every atomic step keeps
//! them in line; drift comes from outside (a partial restore, a bug, a manual edit).

use std::sync::LazyLock;

use redis::Script;

use handoff_domain::lifecycle::{CapacityRelease, LeadState};

use handoff_domain::sla::Sla;

use crate::deadlines::parse_deadline;
use crate::keys::deadline_member;
use crate::{Store, StoreError};

static FIX_OPEN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/fix_open.lua")));
static FIX_DEADLINE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/fix_deadline.lua")));

/// Members looked at per round trip.
const CHUNK: isize = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Open-lead entries removed: the lead is gone, no longer that rep's, or not open.
    pub stale_open: u64,
    /// Open-lead entries added: an assigned lead its rep's set did not count.
    pub missing_open: u64,
    /// Queue entries removed: the lead no longer waits there.
    pub stale_queued: u64,
    /// First-touch deadlines put back: an open assignment whose deadline entry was gone
    /// (and still ahead).
    pub missing_deadline: u64,
    /// The leads whose deadline was put back (for the log).
    pub deadline_leads: Vec<String>,
}

impl ReconcileReport {
    pub fn total(&self) -> u64 {
        self.stale_open + self.missing_open + self.stale_queued + self.missing_deadline
    }
}

fn holds_capacity(state: Option<&str>, release: CapacityRelease) -> bool {
    match state.and_then(LeadState::parse) {
        Some(LeadState::Assigned) => true,
        Some(LeadState::Touched) => release == CapacityRelease::Close,
        _ => false,
    }
}

impl Store {
    /// Checks the open sets of `reps`, the leads awaiting a first touch, and every queue.
    pub async fn reconcile<'a>(
        &self,
        reps: impl IntoIterator<Item = &'a str>,
        release: CapacityRelease,
        retention_seconds: u64,
    ) -> Result<ReconcileReport, StoreError> {
        let mut report = ReconcileReport::default();
        let mut connection = self.connection();
        let until = chrono::Utc::now().timestamp_millis().saturating_add(
            i64::try_from(retention_seconds)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        );
        for rep in reps {
            let members = self.members_with(&self.keys.rep_open(rep), "rep").await?;
            for (lead, state, owner) in members {
                if holds_capacity(state.as_deref(), release) && owner.as_deref() == Some(rep) {
                    // Open and this rep's: its first-touch deadline must be there.
                    if state.as_deref() == Some(LeadState::Assigned.as_str())
                        && self.fix_deadline(&lead).await? > 0
                    {
                        report.missing_deadline += 1;
                        report.deadline_leads.push(lead);
                    }
                    continue;
                }
                // Checked again atomically: the lead may have moved since it was read.
                if self.fix_open(&lead, rep, release, until).await? < 0 {
                    report.stale_open += 1;
                }
            }
        }
        // Leads whose first touch is awaited must count against their rep.
        let mut start: isize = 0;
        loop {
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.keys.deadlines())
                .arg(start)
                .arg(start + CHUNK - 1)
                .query_async(&mut connection)
                .await?;
            if members.is_empty() {
                break;
            }
            start += CHUNK;
            // First-touch clocks of assignments (not queue waits, not disposition clocks).
            let leads: Vec<(String, u32)> = members
                .iter()
                .filter_map(|m| parse_deadline(m))
                .filter(|(_, attempt, sla)| *attempt > 0 && *sla == Sla::FirstTouch)
                .map(|(lead, attempt, _)| (lead.to_owned(), attempt))
                .collect();
            let mut pipe = redis::pipe();
            for (lead, _) in &leads {
                pipe.cmd("HMGET")
                    .arg(self.keys.lead(lead))
                    .arg(&["state", "rep", "attempt"]);
            }
            let states: Vec<(Option<String>, Option<String>, Option<u32>)> =
                pipe.query_async(&mut connection).await?;
            for ((lead, attempt), (state, rep, current)) in leads.iter().zip(states) {
                let Some(rep) = rep.filter(|_| {
                    state.as_deref() == Some(LeadState::Assigned.as_str())
                        && current == Some(*attempt)
                }) else {
                    continue;
                };
                if self.fix_open(lead, &rep, release, until).await? > 0 {
                    report.missing_open += 1;
                }
            }
        }
        for queue in self.queue_names().await? {
            let key = self.keys.queue(queue.as_str());
            for (lead, state, waiting_in) in self.members_with(&key, "queue").await? {
                let waits_here = state.as_deref() == Some(LeadState::Waiting.as_str())
                    && waiting_in.as_deref() == Some(queue.as_str());
                if !waits_here {
                    let removed: (u64, u64) = redis::pipe()
                        .zrem(&key, &lead)
                        .zrem(self.keys.deadlines(), deadline_member(&lead, 0))
                        .query_async(&mut connection)
                        .await?;
                    report.stale_queued += removed.0;
                }
            }
        }
        Ok(report)
    }

    /// Every lead of the sorted set `key`, with its state and one more field of its hash
    /// (read in chunks of [`CHUNK`]).
    async fn members_with(
        &self,
        key: &str,
        field: &str,
    ) -> Result<Vec<(String, Option<String>, Option<String>)>, StoreError> {
        let mut connection = self.connection();
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await?;
        let mut out = Vec::with_capacity(members.len());
        for chunk in members.chunks(CHUNK as usize) {
            let mut pipe = redis::pipe();
            for lead in chunk {
                pipe.cmd("HMGET")
                    .arg(self.keys.lead(lead))
                    .arg(&["state", field]);
            }
            let fields: Vec<(Option<String>, Option<String>)> =
                pipe.query_async(&mut connection).await?;
            out.extend(
                chunk
                    .iter()
                    .zip(fields)
                    .map(|(lead, (state, other))| (lead.clone(), state, other)),
            );
        }
        Ok(out)
    }

    /// 1: the lead's first-touch deadline was put back.
    async fn fix_deadline(&self, lead: &str) -> Result<i64, StoreError> {
        let mut connection = self.connection();
        Ok(FIX_DEADLINE
            .key(self.keys.lead(lead))
            .key(self.keys.deadlines())
            .key(self.keys.claims())
            .arg(lead)
            .arg(chrono::Utc::now().timestamp_millis())
            .invoke_async(&mut connection)
            .await?)
    }

    /// +1: added to the rep's open set, -1: removed, 0: it was right.
    async fn fix_open(
        &self,
        lead: &str,
        rep: &str,
        release: CapacityRelease,
        until: i64,
    ) -> Result<i64, StoreError> {
        let mut connection = self.connection();
        Ok(FIX_OPEN
            .key(self.keys.lead(lead))
            .key(self.keys.rep_open(rep))
            .arg(lead)
            .arg(rep)
            .arg(release.as_str())
            .arg(until)
            .invoke_async(&mut connection)
            .await?)
    }
}
