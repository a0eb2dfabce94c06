//! The funnel's own state (crates/handoff-funnel), apart from the routing state: per lead,
//! which funnel stages were already counted (so a redelivered event is not counted twice)
//! and the times the funnel's durations are measured between; two sorted sets, of leads
//! awaiting feedback and of untouched leads by first-touch deadline, for the backlog gauges;
//! and lead counts per campaign, for the busiest campaigns. Every lead hash expires with the
//! lead's retention; the sorted sets are trimmed to it by [`Store::funnel_gauges`].
//!
//! Keys: `{prefix}:funnel:lead:<id>` (hash), `{prefix}:funnel:awaiting_feedback`,
//! `{prefix}:funnel:touch_due`, `{prefix}:funnel:campaigns` (sorted sets).

use std::sync::LazyLock;

use redis::Script;

use handoff_domain::LeadId;

use crate::{Store, StoreError};

fn with_settle(script: &str) -> Script {
    Script::new(&format!(
        "{}\n{script}",
        include_str!("scripts/funnel/settle.lua")
    ))
}

static CREATED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/funnel/created.lua")));
static ASSIGNED: LazyLock<Script> =
    LazyLock::new(|| with_settle(include_str!("scripts/funnel/assigned.lua")));
static TOUCHED: LazyLock<Script> =
    LazyLock::new(|| with_settle(include_str!("scripts/funnel/touched.lua")));
static OUTCOME: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/funnel/outcome.lua")));
static FEEDBACK_OVERDUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/funnel/feedback_overdue.lua")));
static BREACHED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/funnel/breached.lua")));

/// Distinct campaigns whose lead counts are kept (the rest are forgotten, lowest first).
const CAMPAIGNS_KEPT: u32 = 1000;

/// A lead's attribution as the funnel first recorded it (raw, not yet folded into labels).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FunnelSource {
    pub kind: String,
    pub campaign: String,
}

/// A lead's first touch, settled once both its assignment and the touch are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledTouch {
    pub received_ms: Option<i64>,
    pub touched_ms: i64,
    pub team: String,
    /// Whether the touch came within the attempt's window; `None` when the attempt already
    /// had a verdict (its breach was counted first).
    pub within_window: Option<bool>,
}

/// What an assignment changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelAssignment {
    pub source: FunnelSource,
    /// The lead's first assignment (counted as assigned).
    pub first: bool,
    /// The lead was not counted as qualified before.
    pub newly_qualified: bool,
    /// The touch came first (events of different topics may arrive out of order).
    pub settled: Option<SettledTouch>,
}

/// One assignment, as `lead.assigned` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignmentTimes<'a> {
    pub attempt: u32,
    pub team: &'a str,
    pub received_ms: i64,
    pub assigned_ms: i64,
    pub due_ms: i64,
}

/// One disposition, as `lead.disposition` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeReport<'a> {
    /// The outcome's stage name (`accepted`, `unqualified`, ...).
    pub outcome: &'a str,
    pub occurred_ms: i64,
    /// An outcome marketing can use: stops the feedback clock.
    pub feedback: bool,
    /// A stage the outcome implies, counted once too (`qualified` for an overflowed lead).
    pub implies: Option<&'a str>,
}

/// What a disposition changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelOutcome {
    pub source: FunnelSource,
    /// The lead was not counted with this outcome before.
    pub new: bool,
    /// This is the lead's first feedback: the time since its first assignment, if known.
    pub first_feedback: bool,
    pub assigned_ms: Option<i64>,
    /// The implied stage was not counted before.
    pub implied_new: bool,
    /// The lead's feedback window ended before this feedback and was counted missed then
    /// ([`Store::funnel_feedback_overdue`]).
    pub feedback_counted_missed: bool,
}

/// A lead whose feedback window ended without feedback, marked now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueFeedback {
    pub source: FunnelSource,
    pub team: String,
    pub assigned_ms: i64,
}

/// The most leads one [`Store::funnel_feedback_overdue`] call looks at.
const OVERDUE_BATCH: isize = 1000;

/// What a breach changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelBreach {
    pub source: FunnelSource,
    /// Not counted before (once per lead, SLA and attempt).
    pub new: bool,
    /// The breach is the attempt's first-touch verdict (no touch settled it first).
    pub verdict: bool,
}

/// The backlog gauges at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FunnelGauges {
    /// Awaiting feedback since before the backlog window.
    pub backlog: u64,
    pub awaiting_feedback: u64,
    /// Untouched past the first-touch deadline.
    pub overdue: u64,
}

impl Store {
    fn funnel_lead(&self, lead_id: &LeadId) -> String {
        format!("{}:funnel:lead:{lead_id}", self.keys.tag())
    }
    fn funnel_awaiting(&self) -> String {
        format!("{}:funnel:awaiting_feedback", self.keys.tag())
    }
    fn funnel_touch_due(&self) -> String {
        format!("{}:funnel:touch_due", self.keys.tag())
    }
    fn funnel_campaigns(&self) -> String {
        format!("{}:funnel:campaigns", self.keys.tag())
    }

    /// A lead's receipt; `Some` with its recorded attribution the first time only.
    pub async fn funnel_received(
        &self,
        lead_id: &LeadId,
        source: &FunnelSource,
        received_ms: i64,
        ttl_seconds: u64,
    ) -> Result<Option<FunnelSource>, StoreError> {
        let mut connection = self.connection();
        let (new, kind, campaign): (i64, String, String) = CREATED
            .key(self.funnel_lead(lead_id))
            .key(self.funnel_campaigns())
            .arg(&source.kind)
            .arg(&source.campaign)
            .arg(received_ms)
            .arg(ttl_seconds)
            .arg(CAMPAIGNS_KEPT)
            .invoke_async(&mut connection)
            .await?;
        Ok((new == 1).then_some(FunnelSource { kind, campaign }))
    }

    pub async fn funnel_assigned(
        &self,
        lead_id: &LeadId,
        source: &FunnelSource,
        times: AssignmentTimes<'_>,
        ttl_seconds: u64,
    ) -> Result<FunnelAssignment, StoreError> {
        let key = self.funnel_lead(lead_id);
        let mut connection = self.connection();
        let reply: Vec<redis::Value> = ASSIGNED
            .key(&key)
            .key(self.funnel_awaiting())
            .key(self.funnel_touch_due())
            .arg(lead_id.as_str())
            .arg(times.attempt)
            .arg(times.team)
            .arg(times.assigned_ms)
            .arg(times.due_ms)
            .arg(times.received_ms)
            .arg(&source.kind)
            .arg(&source.campaign)
            .arg(ttl_seconds)
            .invoke_async(&mut connection)
            .await?;
        let reply = Reply::new(&key, reply);
        Ok(FunnelAssignment {
            first: reply.flag(0)?,
            newly_qualified: reply.flag(1)?,
            source: FunnelSource {
                kind: reply.text(2)?,
                campaign: reply.text(3)?,
            },
            settled: reply.settled(4)?,
        })
    }

    /// A first touch; `Some` when it settles the lead's first touch (its assignment is known
    /// and no touch settled it before).
    pub async fn funnel_touched(
        &self,
        lead_id: &LeadId,
        touched_ms: i64,
        ttl_seconds: u64,
    ) -> Result<Option<SettledTouch>, StoreError> {
        let key = self.funnel_lead(lead_id);
        let mut connection = self.connection();
        let reply: Vec<redis::Value> = TOUCHED
            .key(&key)
            .key(self.funnel_touch_due())
            .arg(lead_id.as_str())
            .arg(touched_ms)
            .arg(ttl_seconds)
            .invoke_async(&mut connection)
            .await?;
        Reply::new(&key, reply).settled(0)
    }

    pub async fn funnel_outcome(
        &self,
        lead_id: &LeadId,
        source: &FunnelSource,
        report: OutcomeReport<'_>,
        ttl_seconds: u64,
    ) -> Result<FunnelOutcome, StoreError> {
        let key = self.funnel_lead(lead_id);
        let mut connection = self.connection();
        let reply: Vec<redis::Value> = OUTCOME
            .key(&key)
            .key(self.funnel_awaiting())
            .arg(lead_id.as_str())
            .arg(report.outcome)
            .arg(report.occurred_ms)
            .arg(if report.feedback { "1" } else { "0" })
            .arg(&source.kind)
            .arg(&source.campaign)
            .arg(ttl_seconds)
            .arg(report.implies.unwrap_or(""))
            .invoke_async(&mut connection)
            .await?;
        let reply = Reply::new(&key, reply);
        Ok(FunnelOutcome {
            new: reply.flag(0)?,
            source: FunnelSource {
                kind: reply.text(1)?,
                campaign: reply.text(2)?,
            },
            first_feedback: reply.flag(3)?,
            assigned_ms: reply.millis(4)?,
            implied_new: reply.flag(5)?,
            feedback_counted_missed: reply.flag(6).unwrap_or(false),
        })
    }

    fn funnel_feedback_checked(&self) -> String {
        format!("{}:funnel:feedback_checked_ms", self.keys.tag())
    }

    /// Marks, once each, the leads still awaiting feedback that were first assigned at or
    /// before `assigned_before_ms` (their window has ended), and returns them. A cursor
    /// (the last assignment time looked at) keeps each call to the leads new since the
    /// last, at most a batch at a time.
    pub async fn funnel_feedback_overdue(
        &self,
        assigned_before_ms: i64,
    ) -> Result<Vec<OverdueFeedback>, StoreError> {
        let mut connection = self.connection();
        let checked: Option<i64> = redis::cmd("GET")
            .arg(self.funnel_feedback_checked())
            .query_async(&mut connection)
            .await?;
        // Inclusive: leads sharing the last time looked at are looked at again (marked
        // ones are a no-op), so a batch ending among them skips none.
        let from = checked.map_or("-inf".to_owned(), |ms| ms.to_string());
        let due: Vec<(String, i64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.funnel_awaiting())
            .arg(&from)
            .arg(assigned_before_ms)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(OVERDUE_BATCH)
            .query_async(&mut connection)
            .await?;
        let mut marked = Vec::new();
        for (id, _) in &due {
            let key = self.funnel_lead(&LeadId::from(id.as_str()));
            let reply: Vec<redis::Value> = FEEDBACK_OVERDUE
                .key(&key)
                .invoke_async(&mut connection)
                .await?;
            if reply.is_empty() {
                continue;
            }
            let reply = Reply::new(&key, reply);
            marked.push(OverdueFeedback {
                source: FunnelSource {
                    kind: reply.text(0)?,
                    campaign: reply.text(1)?,
                },
                team: reply.text(2)?,
                assigned_ms: reply.millis(3)?.unwrap_or(assigned_before_ms),
            });
        }
        let full = due.len() >= usize::try_from(OVERDUE_BATCH).unwrap_or(usize::MAX);
        let next = match due.last() {
            Some((_, score)) if full => *score,
            _ => assigned_before_ms,
        };
        let () = redis::cmd("SET")
            .arg(self.funnel_feedback_checked())
            .arg(next)
            .query_async(&mut connection)
            .await?;
        Ok(marked)
    }

    /// A breach of `sla` (`first_touch`, `disposition`) for one attempt.
    pub async fn funnel_breached(
        &self,
        lead_id: &LeadId,
        sla: &str,
        attempt: u32,
        ttl_seconds: u64,
    ) -> Result<FunnelBreach, StoreError> {
        let key = self.funnel_lead(lead_id);
        let mut connection = self.connection();
        let reply: Vec<redis::Value> = BREACHED
            .key(&key)
            .arg(sla)
            .arg(attempt)
            .arg(ttl_seconds)
            .invoke_async(&mut connection)
            .await?;
        let reply = Reply::new(&key, reply);
        Ok(FunnelBreach {
            new: reply.flag(0)?,
            verdict: reply.flag(1)?,
            source: FunnelSource {
                kind: reply.text(2)?,
                campaign: reply.text(3)?,
            },
        })
    }

    /// The backlog gauges at `now_ms`, after forgetting entries older than `forget_before_ms`
    /// (their lead records have expired: nothing would ever remove them).
    pub async fn funnel_gauges(
        &self,
        now_ms: i64,
        backlog_before_ms: i64,
        forget_before_ms: i64,
    ) -> Result<FunnelGauges, StoreError> {
        let (awaiting, due) = (self.funnel_awaiting(), self.funnel_touch_due());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrembyscore(&awaiting, "-inf", format!("({forget_before_ms}"))
            .ignore()
            .zrembyscore(&due, "-inf", format!("({forget_before_ms}"))
            .ignore()
            .zcount(&awaiting, "-inf", backlog_before_ms)
            .zcard(&awaiting)
            .zcount(&due, "-inf", now_ms);
        let mut connection = self.connection();
        let (backlog, awaiting_feedback, overdue): (u64, u64, u64) =
            pipe.query_async(&mut connection).await?;
        Ok(FunnelGauges {
            backlog,
            awaiting_feedback,
            overdue,
        })
    }

    /// The `n` campaigns with the most leads, busiest first.
    pub async fn busiest_campaigns(&self, n: usize) -> Result<Vec<String>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let stop = isize::try_from(n).unwrap_or(isize::MAX).saturating_sub(1);
        let mut connection = self.connection();
        let campaigns: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.funnel_campaigns())
            .arg(0)
            .arg(stop)
            .query_async(&mut connection)
            .await?;
        Ok(campaigns)
    }
}

/// A script's array reply, read by position (the scripts above document the positions).
struct Reply<'a> {
    key: &'a str,
    values: Vec<redis::Value>,
}

impl<'a> Reply<'a> {
    fn new(key: &'a str, values: Vec<redis::Value>) -> Self {
        Self { key, values }
    }

    fn corrupt(&self, at: usize, what: &str) -> StoreError {
        StoreError::Corrupt {
            key: self.key.to_owned(),
            message: format!("funnel script reply item {at} is not {what}"),
        }
    }

    fn text(&self, at: usize) -> Result<String, StoreError> {
        match self.values.get(at) {
            Some(value) => redis::from_redis_value(value).map_err(|_| self.corrupt(at, "text")),
            None => Err(self.corrupt(at, "present")),
        }
    }

    fn flag(&self, at: usize) -> Result<bool, StoreError> {
        match self.values.get(at) {
            Some(value) => redis::from_redis_value::<i64>(value)
                .map(|v| v == 1)
                .map_err(|_| self.corrupt(at, "a flag")),
            None => Err(self.corrupt(at, "present")),
        }
    }

    /// An optional millisecond time: `''` is none.
    fn millis(&self, at: usize) -> Result<Option<i64>, StoreError> {
        let text = self.text(at)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| self.corrupt(at, "a time in ms"))
    }

    /// settle()'s answer from `at` on: nothing, or four items.
    fn settled(&self, at: usize) -> Result<Option<SettledTouch>, StoreError> {
        if self.values.len() <= at {
            return Ok(None);
        }
        let verdict = self.text(at + 3)?;
        Ok(Some(SettledTouch {
            received_ms: self.millis(at)?,
            touched_ms: self
                .millis(at + 1)?
                .ok_or_else(|| self.corrupt(at + 1, "a time in ms"))?,
            team: self.text(at + 2)?,
            within_window: match verdict.as_str() {
                "met" => Some(true),
                "missed" => Some(false),
                _ => None,
            },
        }))
    }
}
