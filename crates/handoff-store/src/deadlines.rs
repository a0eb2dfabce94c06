//! First-touch deadlines: a sorted set the poller claims from with a lease (a crashed
//! poller's claims come back after the lease, with the same event id downstream).

use std::sync::LazyLock;

use redis::Script;

use crate::keys::deadline_member;
use crate::{Store, StoreError};

static CLAIM_DUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/claim_due.lua")));
static FIRST_TOUCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/first_touch.lua")));
static ADOPT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/adopt.lua")));

/// A claimed, missed deadline: what the breach event needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBreach {
    /// The member to complete once the breach is published.
    pub member: String,
    pub lead_id: String,
    pub attempt: u32,
    pub team: String,
    pub rep: String,
    pub due_ms: i64,
}

/// The assignment a first touch stopped the clock of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstTouch {
    pub rep: String,
    pub team: String,
    pub assigned_ms: i64,
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
                .arg(&["team", "rep", "due_ms"]);
            parsed.push((member.clone(), lead_id, attempt));
        }
        let details: Vec<(Option<String>, Option<String>, Option<i64>)> =
            pipe.query_async(&mut connection).await?;
        Ok(parsed
            .into_iter()
            .zip(details)
            .map(
                |((member, lead_id, attempt), (team, rep, due_ms))| DueBreach {
                    member,
                    lead_id,
                    attempt,
                    team: team.unwrap_or_default(),
                    rep: rep.unwrap_or_default(),
                    due_ms: due_ms.unwrap_or(now_ms),
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

    /// Stops the clock of the lead's current attempt and frees the rep's capacity, once.
    pub async fn record_first_touch(
        &self,
        lead_id: &str,
        touched_ms: i64,
    ) -> Result<Option<FirstTouch>, StoreError> {
        let mut connection = self.connection();
        let reply: Vec<Option<String>> = FIRST_TOUCH
            .key(self.keys.lead(lead_id))
            .key(self.keys.open_leads())
            .key(self.keys.deadlines())
            .key(self.keys.claims())
            .arg(lead_id)
            .arg(touched_ms)
            .invoke_async(&mut connection)
            .await?;
        Ok(match reply.as_slice() {
            [rep, team, assigned_ms] => Some(FirstTouch {
                rep: rep.clone().unwrap_or_default(),
                team: team.clone().unwrap_or_default(),
                assigned_ms: assigned_ms
                    .as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(touched_ms),
            }),
            _ => None,
        })
    }

    /// Records an assignment made by another producer and schedules its deadline, unless
    /// this attempt (or a later one) is already known. `true` if adopted.
    #[allow(clippy::too_many_arguments)]
    pub async fn adopt_assignment(
        &self,
        lead_id: &str,
        team: &str,
        rep: &str,
        attempt: u32,
        assigned_ms: i64,
        due_ms: i64,
        retention_seconds: u64,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let adopted: i64 = ADOPT
            .key(self.keys.lead(lead_id))
            .key(self.keys.open_leads())
            .key(self.keys.deadlines())
            .arg(team)
            .arg(rep)
            .arg(attempt)
            .arg(due_ms)
            .arg(deadline_member(lead_id, attempt))
            .arg(assigned_ms)
            .arg(retention_seconds)
            .invoke_async(&mut connection)
            .await?;
        Ok(adopted == 1)
    }

    /// Leads awaiting first touch, all reps together.
    pub async fn awaiting_first_touch(&self) -> Result<i64, StoreError> {
        let mut connection = self.connection();
        let counts: Vec<i64> = redis::cmd("HVALS")
            .arg(self.keys.open_leads())
            .query_async(&mut connection)
            .await?;
        Ok(counts.into_iter().map(|c| c.max(0)).sum())
    }
}
