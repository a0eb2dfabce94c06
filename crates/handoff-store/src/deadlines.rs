//! Deadlines and reminders, each a sorted set the poller claims from with a lease (a
//! crashed poller's claims come back after the lease, with the same event id downstream).
//! Claim protocol (docs/sla-claims.md): a claim moves due members into a claims set scored
//! by lease expiry and records the round's random token per member; due and lease are on
//! the Redis server's clock (`TIME`); only the token's holder completes a claim.
//!
//! Deadline members: `lead|attempt` (first touch; attempt 0 for a lead waiting in a queue)
//! and `lead|attempt|disposition`. Reminder members: `lead|attempt|sla|permille` (e.g.
//! `l1|1|first_touch|500`). Deadlines are set and cleared by the lifecycle steps
//! (lifecycle.rs, clocks.rs); reminders are never cleared: a claimed reminder is checked
//! against the lead's state and attempt then, and dropped if it no longer applies.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Script;

use handoff_domain::sla::Sla;
use handoff_domain::{LeadId, RepId, TeamId};

use crate::{Store, StoreError};

static CLAIM_DUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/claim_due.lua")));
static COMPLETE_CLAIMS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/complete_claims.lua")));

/// One claim round: entries due now (by the Redis server's clock), held for `lease` by
/// the poller that knows `token`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    /// Random per round: only its holder completes the claims (complete_claims.lua).
    pub token: &'a str,
    /// How long the claims are the caller's; longer than the slowest publish.
    pub lease: Duration,
    /// At most this many entries.
    pub limit: u32,
}

/// A claimed, missed deadline: what the breach event needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBreach {
    /// The member to complete once the breach is published.
    pub member: String,
    pub lead_id: LeadId,
    /// 0: the lead waited in a queue past its deadline.
    pub attempt: u32,
    pub sla: Sla,
    pub team: Option<TeamId>,
    pub rep: Option<RepId>,
    pub due_ms: i64,
    /// The deadline no longer applies (a disposition deadline of an attempt that is not
    /// the lead's current one, or of a lead disposed of or gone): complete it, emit nothing.
    pub stale: bool,
    /// The W3C `traceparent` of the lead's current assignment (or queue decision).
    pub trace: Option<String>,
}

/// A claimed reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReminder {
    /// The member to complete once the reminder is published (or skipped).
    pub member: String,
    pub lead_id: LeadId,
    pub attempt: u32,
    pub sla: Sla,
    /// The fraction of the window, in thousandths.
    pub permille: u32,
    pub team: Option<TeamId>,
    pub rep: Option<RepId>,
    pub due_ms: i64,
    /// The lead still waits for what the SLA asks, in this attempt: remind. Otherwise
    /// (touched, disposed, closed, reassigned, gone) complete it without a word.
    pub current: bool,
    /// The W3C `traceparent` of the lead's current assignment.
    pub trace: Option<String>,
}

/// What a claim returned: the entries, members that do not parse (written by another
/// version, or corrupt), already dropped so they cannot block the set, and the Redis
/// server's time the claim was made at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed<T> {
    pub due: Vec<T>,
    pub unreadable: Vec<String>,
    /// The server's clock at the claim: what "due" was measured against.
    pub now: DateTime<Utc>,
}

impl<T> Claimed<T> {
    fn empty(now: DateTime<Utc>) -> Self {
        Self {
            due: Vec::new(),
            unreadable: Vec::new(),
            now,
        }
    }

    /// The same claim with each due entry turned into what the caller needs.
    fn map<U>(self, f: impl FnMut(T) -> U) -> Claimed<U> {
        Claimed {
            due: self.due.into_iter().map(f).collect(),
            unreadable: self.unreadable,
            now: self.now,
        }
    }
}

/// `lead|attempt` or `lead|attempt|disposition`.
pub(crate) fn parse_deadline(member: &str) -> Option<(&str, u32, Sla)> {
    let (rest, sla) = match member.strip_suffix("|disposition") {
        Some(rest) => (rest, Sla::Disposition),
        None => (member, Sla::FirstTouch),
    };
    let (lead, attempt) = rest.rsplit_once('|')?;
    Some((lead, attempt.parse().ok()?, sla)).filter(|(lead, _, _)| !lead.is_empty())
}

/// `lead|attempt|sla|permille`.
pub(crate) fn parse_reminder(member: &str) -> Option<(&str, u32, Sla, u32)> {
    let (rest, permille) = member.rsplit_once('|')?;
    let (rest, sla) = rest.rsplit_once('|')?;
    let (lead, attempt) = rest.rsplit_once('|')?;
    Some((
        lead,
        attempt.parse().ok()?,
        Sla::parse(sla)?,
        permille.parse().ok()?,
    ))
    .filter(|(lead, ..)| !lead.is_empty())
}

/// The lead fields a claimed entry is checked against.
const CLAIM_FIELDS: [&str; 8] = [
    "team",
    "rep",
    "due_ms",
    "disposition_due_ms",
    "state",
    "attempt",
    "disposed_ms",
    "trace",
];

type ClaimFields = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<u32>,
    Option<i64>,
    Option<String>,
);

/// Whether the lead, as read, still waits for what `sla` asks in `attempt`.
fn still_waiting(fields: &ClaimFields, attempt: u32, sla: Sla) -> bool {
    let (_, _, _, disposition_due, state, current, disposed, _) = fields;
    let state = state.as_deref().unwrap_or_default();
    if *current != Some(attempt) {
        return false;
    }
    match sla {
        Sla::FirstTouch => state == "assigned",
        Sla::Disposition => {
            matches!(state, "assigned" | "touched")
                && disposed.is_none()
                && disposition_due.is_some()
        }
    }
}

/// The lead's team, rep and the due time of `sla`'s clock, as read with a claim.
fn assignment_of(
    fields: ClaimFields,
    sla: Sla,
    now_ms: i64,
) -> (Option<TeamId>, Option<RepId>, i64) {
    let (team, rep, due_ms, disposition_due_ms, ..) = fields;
    let due_ms = match sla {
        Sla::FirstTouch => due_ms,
        Sla::Disposition => disposition_due_ms,
    };
    (
        team.filter(|t| !t.is_empty()).map(TeamId::from),
        rep.filter(|r| !r.is_empty()).map(RepId::from),
        due_ms.unwrap_or(now_ms),
    )
}

/// The sets one kind of entry (deadlines or reminders) is claimed through.
struct ClaimSets {
    due: String,
    claims: String,
    owners: String,
}

impl Store {
    fn deadline_sets(&self) -> ClaimSets {
        ClaimSets {
            due: self.keys.deadlines(),
            claims: self.keys.claims(),
            owners: self.keys.claim_owners(),
        }
    }

    fn reminder_sets(&self) -> ClaimSets {
        ClaimSets {
            due: self.keys.reminders(),
            claims: self.keys.reminder_claims(),
            owners: self.keys.reminder_claim_owners(),
        }
    }

    /// Claims up to `limit` due members of `sets` for `lease` as `token`, reads the lead
    /// fields of those that `parse` (into the lead id and the rest) and drops those that
    /// do not, in one round trip after the claim.
    async fn claim_parsed<P>(
        &self,
        sets: ClaimSets,
        claim: &ClaimRequest<'_>,
        parse: impl Fn(&str) -> Option<(&str, P)>,
    ) -> Result<Claimed<(String, LeadId, P, ClaimFields)>, StoreError> {
        let mut connection = self.connection();
        let reply: Vec<String> = CLAIM_DUE
            .key(&sets.due)
            .key(&sets.claims)
            .key(&sets.owners)
            .arg(u64::try_from(claim.lease.as_millis()).unwrap_or(u64::MAX))
            .arg(claim.limit)
            .arg(claim.token)
            .invoke_async(&mut connection)
            .await?;
        let mut reply = reply.into_iter();
        let now = reply
            .next()
            .and_then(|now| now.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| StoreError::Corrupt {
                key: sets.claims.clone(),
                message: "the claim script returned no server time".to_owned(),
            })?;
        let members: Vec<String> = reply.collect();
        if members.is_empty() {
            return Ok(Claimed::empty(now));
        }
        let mut parsed = Vec::with_capacity(members.len());
        let mut unreadable = Vec::new();
        for member in &members {
            match parse(member) {
                Some((lead, rest)) => parsed.push((member.clone(), LeadId::from(lead), rest)),
                None => unreadable.push(member.clone()),
            }
        }
        let mut pipe = redis::pipe();
        for (_, lead, _) in &parsed {
            pipe.cmd("HMGET")
                .arg(self.keys.lead(lead.as_str()))
                .arg(&CLAIM_FIELDS);
        }
        for member in &unreadable {
            pipe.zrem(&sets.claims, member).ignore();
            pipe.hdel(&sets.owners, member).ignore();
        }
        let details: Vec<ClaimFields> = pipe.query_async(&mut connection).await?;
        let due = parsed
            .into_iter()
            .zip(details)
            .map(|((member, lead, rest), fields)| (member, lead, rest, fields))
            .collect();
        Ok(Claimed {
            due,
            unreadable,
            now,
        })
    }

    /// Claims up to `limit` missed deadlines (due by the Redis server's clock) for `lease`.
    /// When the earliest deadline or reminder not yet claimed falls due, on the Redis
    /// server's clock (ms), if any: the SLA tracker sleeps until then rather than a whole
    /// poll interval.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        let mut connection = self.connection();
        // Each: the head of the set as (member, score), or nothing.
        type Head = Vec<(String, f64)>;
        let (deadline, reminder): (Head, Head) = redis::pipe()
            .cmd("ZRANGE")
            .arg(self.keys.deadlines())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .cmd("ZRANGE")
            .arg(self.keys.reminders())
            .arg(0)
            .arg(0)
            .arg("WITHSCORES")
            .query_async(&mut connection)
            .await?;
        Ok(deadline
            .into_iter()
            .chain(reminder)
            .map(|(_, due)| due as i64)
            .min())
    }

    pub async fn claim_due(
        &self,
        claim: &ClaimRequest<'_>,
    ) -> Result<Claimed<DueBreach>, StoreError> {
        let claimed = self
            .claim_parsed(self.deadline_sets(), claim, |m| {
                parse_deadline(m).map(|(lead, attempt, sla)| (lead, (attempt, sla)))
            })
            .await?;
        let now_ms = claimed.now.timestamp_millis();
        Ok(claimed.map(|(member, lead_id, (attempt, sla), fields)| {
            let stale = sla == Sla::Disposition && !still_waiting(&fields, attempt, sla);
            let trace = fields.7.clone();
            let (team, rep, due_ms) = assignment_of(fields, sla, now_ms);
            DueBreach {
                member,
                lead_id,
                attempt,
                sla,
                team,
                // A queue wait (attempt 0) has no rep, whatever the record says now.
                rep: rep.filter(|_| attempt > 0),
                due_ms,
                stale,
                trace,
            }
        }))
    }

    /// The breaches are published: drop their claims, each only if still `token`'s. Returns,
    /// per member, whether it was (`false`: its lease ran out and another poller has it).
    pub async fn complete_breaches(
        &self,
        token: &str,
        members: &[&str],
    ) -> Result<Vec<bool>, StoreError> {
        self.complete(self.deadline_sets(), token, members).await
    }

    /// Claims up to `limit` due reminders (by the Redis server's clock) for `lease`, each
    /// checked against its lead's current state.
    pub async fn claim_reminders(
        &self,
        claim: &ClaimRequest<'_>,
    ) -> Result<Claimed<DueReminder>, StoreError> {
        let claimed = self
            .claim_parsed(self.reminder_sets(), claim, |m| {
                parse_reminder(m)
                    .map(|(lead, attempt, sla, permille)| (lead, (attempt, sla, permille)))
            })
            .await?;
        let now_ms = claimed.now.timestamp_millis();
        Ok(
            claimed.map(|(member, lead_id, (attempt, sla, permille), fields)| {
                let current = attempt > 0 && still_waiting(&fields, attempt, sla);
                let trace = fields.7.clone();
                let (team, rep, due_ms) = assignment_of(fields, sla, now_ms);
                DueReminder {
                    member,
                    lead_id,
                    attempt,
                    sla,
                    permille,
                    team,
                    rep,
                    due_ms,
                    current,
                    trace,
                }
            }),
        )
    }

    /// The reminders are published (or skipped): drop their claims, each only if still
    /// `token`'s. Returns, per member, whether it was.
    pub async fn complete_reminders(
        &self,
        token: &str,
        members: &[&str],
    ) -> Result<Vec<bool>, StoreError> {
        self.complete(self.reminder_sets(), token, members).await
    }

    async fn complete(
        &self,
        sets: ClaimSets,
        token: &str,
        members: &[&str],
    ) -> Result<Vec<bool>, StoreError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection();
        let done: Vec<i64> = COMPLETE_CLAIMS
            .key(&sets.claims)
            .key(&sets.owners)
            .arg(token)
            .arg(members)
            .invoke_async(&mut connection)
            .await?;
        Ok(done.into_iter().map(|d| d == 1).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_members_of_both_slas_parse() {
        assert_eq!(parse_deadline("l1|2"), Some(("l1", 2, Sla::FirstTouch)));
        assert_eq!(
            parse_deadline("l1|2|disposition"),
            Some(("l1", 2, Sla::Disposition))
        );
        assert_eq!(parse_deadline("a|b|0"), Some(("a|b", 0, Sla::FirstTouch)));
        for bad in ["", "l1", "l1|x", "|1", "l1|1|other", "l1|disposition"] {
            assert_eq!(parse_deadline(bad), None, "{bad}");
        }
    }

    #[test]
    fn reminder_members_parse() {
        assert_eq!(
            parse_reminder("l1|1|first_touch|500"),
            Some(("l1", 1, Sla::FirstTouch, 500))
        );
        assert_eq!(
            parse_reminder("l|x|3|disposition|800"),
            Some(("l|x", 3, Sla::Disposition, 800))
        );
        for bad in [
            "",
            "l1|1|first_touch",
            "l1|1|nope|500",
            "l1|a|first_touch|5",
        ] {
            assert_eq!(parse_reminder(bad), None, "{bad}");
        }
    }
}
