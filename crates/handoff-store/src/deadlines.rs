//! Deadlines (first touch per assignment attempt; attempt 0 for a lead waiting in a queue):
//! a sorted set the poller claims from with a lease (a crashed poller's claims come back
//! after the lease, with the same event id downstream). They are set and cleared by the
//! lifecycle steps (lifecycle.rs).

use std::sync::LazyLock;

use redis::Script;

use handoff_domain::{LeadId, RepId, TeamId};

use crate::{Store, StoreError};

static CLAIM_DUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/claim_due.lua")));

/// A claimed, missed deadline: what the breach event needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBreach {
    /// The member to complete once the breach is published.
    pub member: String,
    pub lead_id: LeadId,
    /// 0: the lead waited in a queue past its deadline.
    pub attempt: u32,
    pub team: Option<TeamId>,
    pub rep: Option<RepId>,
    pub due_ms: i64,
    /// The W3C `traceparent` of the lead's current assignment (or queue decision).
    pub trace: Option<String>,
}

impl Store {
    /// Claims up to `limit` due deadlines until `lease_until_ms`.
    pub async fn claim_due(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueBreach>, StoreError> {
        let mut connection = self.connection();
        let members: Vec<String> = CLAIM_DUE
            .key(self.keys.deadlines())
            .key(self.keys.claims())
            .arg(now_ms)
            .arg(lease_until_ms)
            .arg(limit)
            .invoke_async(&mut connection)
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        let mut parsed = Vec::with_capacity(members.len());
        for member in &members {
            let (lead_id, attempt) = member
                .rsplit_once('|')
                .and_then(|(lead, attempt)| Some((lead.to_owned(), attempt.parse::<u32>().ok()?)))
                .ok_or_else(|| StoreError::Corrupt {
                    key: self.keys.deadlines(),
                    message: format!("member {member:?} is not lead|attempt"),
                })?;
            pipe.cmd("HMGET")
                .arg(self.keys.lead(&lead_id))
                .arg(&["team", "rep", "due_ms", "trace"]);
            parsed.push((member.clone(), lead_id, attempt));
        }
        #[allow(clippy::type_complexity)]
        let details: Vec<(Option<String>, Option<String>, Option<i64>, Option<String>)> =
            pipe.query_async(&mut connection).await?;
        Ok(parsed
            .into_iter()
            .zip(details)
            .map(
                |((member, lead_id, attempt), (team, rep, due_ms, trace))| DueBreach {
                    member,
                    lead_id: LeadId::from(lead_id),
                    attempt,
                    team: team.filter(|t| !t.is_empty()).map(TeamId::from),
                    // A queue wait (attempt 0) has no rep, whatever the record says now.
                    rep: rep
                        .filter(|r| !r.is_empty() && attempt > 0)
                        .map(RepId::from),
                    due_ms: due_ms.unwrap_or(now_ms),
                    trace,
                },
            )
            .collect())
    }

    /// The breach is published: drop the claim.
    pub async fn complete_breach(&self, member: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = redis::cmd("ZREM")
            .arg(self.keys.claims())
            .arg(member)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Leads holding the given reps' capacity (awaiting their first touch; under
    /// `release_capacity_on = "close"`, every open lead), all reps together.
    pub async fn open_leads<'a>(
        &self,
        reps: impl IntoIterator<Item = &'a str>,
    ) -> Result<i64, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut pipe = redis::pipe();
        for rep in reps {
            pipe.zcount(self.keys.rep_open(rep), format!("({now_ms}"), "+inf");
        }
        let mut connection = self.connection();
        let counts: Vec<i64> = pipe.query_async(&mut connection).await?;
        Ok(counts.into_iter().map(|c| c.max(0)).sum())
    }
}
