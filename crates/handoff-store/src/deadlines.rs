//! Deadlines and reminders, each a sorted set the poller claims from with a lease (a
//! crashed poller's claims come back after the lease, with the same event id downstream).
//!
//! Deadline members: `lead|attempt` (first touch; attempt 0 for a lead waiting in a queue)
//! and `lead|attempt|disposition`. Reminder members: `lead|attempt|sla|permille` (e.g.
//! `l1|1|first_touch|500`). Deadlines are set and cleared by the lifecycle steps
//! (lifecycle.rs, clocks.rs); reminders are never cleared: a claimed reminder is checked
//! against the lead's state and attempt then, and dropped if it no longer applies.

use std::sync::LazyLock;

use redis::Script;

use handoff_domain::sla::Sla;
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

/// What a claim returned: the entries, and members that do not parse (written by another
/// version, or corrupt), already dropped so they cannot block the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed<T> {
    pub due: Vec<T>,
    pub unreadable: Vec<String>,
}

impl<T> Default for Claimed<T> {
    fn default() -> Self {
        Self {
            due: Vec::new(),
            unreadable: Vec::new(),
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

impl Store {
    async fn claim(
        &self,
        set: String,
        claims: String,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection();
        Ok(CLAIM_DUE
            .key(set)
            .key(claims)
            .arg(now_ms)
            .arg(lease_until_ms)
            .arg(limit)
            .invoke_async(&mut connection)
            .await?)
    }

    /// Claims up to `limit` due members of `set` into `claims` until `lease_until_ms`, reads
    /// the lead fields of those that `parse` (into the lead id and the rest) and drops those
    /// that do not, in one round trip after the claim.
    #[allow(clippy::too_many_arguments)]
    async fn claim_parsed<P>(
        &self,
        set: String,
        claims: String,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
        parse: impl Fn(&str) -> Option<(&str, P)>,
    ) -> Result<Claimed<(String, LeadId, P, ClaimFields)>, StoreError> {
        let members = self
            .claim(set, claims.clone(), now_ms, lease_until_ms, limit)
            .await?;
        if members.is_empty() {
            return Ok(Claimed::default());
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
            pipe.zrem(&claims, member).ignore();
        }
        let mut connection = self.connection();
        let details: Vec<ClaimFields> = pipe.query_async(&mut connection).await?;
        let due = parsed
            .into_iter()
            .zip(details)
            .map(|((member, lead, rest), fields)| (member, lead, rest, fields))
            .collect();
        Ok(Claimed { due, unreadable })
    }

    /// Claims up to `limit` due deadlines until `lease_until_ms`.
    pub async fn claim_due(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Claimed<DueBreach>, StoreError> {
        let claimed = self
            .claim_parsed(
                self.keys.deadlines(),
                self.keys.claims(),
                now_ms,
                lease_until_ms,
                limit,
                |m| parse_deadline(m).map(|(lead, attempt, sla)| (lead, (attempt, sla))),
            )
            .await?;
        let due = claimed
            .due
            .into_iter()
            .map(|(member, lead_id, (attempt, sla), fields)| {
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
            })
            .collect();
        Ok(Claimed {
            due,
            unreadable: claimed.unreadable,
        })
    }

    /// The breach is published: drop the claim.
    pub async fn complete_breach(&self, member: &str) -> Result<(), StoreError> {
        self.complete(self.keys.claims(), member).await
    }

    /// Claims up to `limit` due reminders until `lease_until_ms`, each checked against its
    /// lead's current state.
    pub async fn claim_reminders(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Claimed<DueReminder>, StoreError> {
        let claimed = self
            .claim_parsed(
                self.keys.reminders(),
                self.keys.reminder_claims(),
                now_ms,
                lease_until_ms,
                limit,
                |m| {
                    parse_reminder(m)
                        .map(|(lead, attempt, sla, permille)| (lead, (attempt, sla, permille)))
                },
            )
            .await?;
        let due = claimed
            .due
            .into_iter()
            .map(|(member, lead_id, (attempt, sla, permille), fields)| {
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
            })
            .collect();
        Ok(Claimed {
            due,
            unreadable: claimed.unreadable,
        })
    }

    /// The reminder is published (or skipped): drop the claim.
    pub async fn complete_reminder(&self, member: &str) -> Result<(), StoreError> {
        self.complete(self.keys.reminder_claims(), member).await
    }

    async fn complete(&self, claims: String, member: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = redis::cmd("ZREM")
            .arg(claims)
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
