//! Clocks scheduled beside the lifecycle steps: reminders before a deadline, and the
//! disposition deadline. The first-touch deadline is set by the assignment itself
//! (lifecycle.rs); reminders are scheduled when the SLA tracker sees the assignment, and
//! the disposition clock starts at the first touch (report.lua) or, by policy, at the
//! assignment (here).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::Script;
use serde::Serialize;

use handoff_domain::sla::Sla;
use handoff_domain::LeadId;

use crate::keys::{disposition_member, reminder_member};
use crate::{Store, StoreError};

static SCHEDULE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/schedule_clocks.lua")));

/// A deadline and the reminders before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockPlan {
    pub due: DateTime<Utc>,
    /// (fraction of the window in thousandths, when).
    pub reminders: Vec<(u32, DateTime<Utc>)>,
}

/// What scheduling an assignment's clocks did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// Nothing new (scheduled before, or nothing to wait for any more).
    Nothing,
    Reminders,
    /// The disposition deadline (and any first-touch reminders).
    Disposition,
    /// The lead is in another attempt now.
    Moved,
    Unknown,
}

#[derive(Serialize)]
struct ScheduleArgs {
    attempt: String,
    marker: String,
    reminders: Vec<(String, i64)>,
    disposition_member: String,
    disposition_due_ms: i64,
    disposition_reminders: Vec<(String, i64)>,
}

/// Reminder members with their times.
pub(crate) fn reminder_entries(
    lead_id: &str,
    attempt: u32,
    sla: Sla,
    reminders: &[(u32, DateTime<Utc>)],
) -> Vec<(String, i64)> {
    reminders
        .iter()
        .map(|(permille, at)| {
            (
                reminder_member(lead_id, attempt, sla.as_str(), *permille),
                at.timestamp_millis(),
            )
        })
        .collect()
}

impl Store {
    /// Schedules the first-touch reminders of an assignment (once per attempt, only while
    /// it awaits its first touch) and, when given, its disposition clock (once, unless the
    /// lead was disposed of already).
    pub async fn schedule_clocks(
        &self,
        lead_id: &LeadId,
        attempt: u32,
        first_touch_reminders: &[(u32, DateTime<Utc>)],
        disposition: Option<&ClockPlan>,
    ) -> Result<Scheduled, StoreError> {
        let id = lead_id.as_str();
        let payload = ScheduleArgs {
            attempt: attempt.to_string(),
            marker: format!("reminders:{attempt}"),
            reminders: reminder_entries(id, attempt, Sla::FirstTouch, first_touch_reminders),
            disposition_member: disposition_member(id, attempt),
            disposition_due_ms: disposition.map_or(0, |d| d.due.timestamp_millis()),
            disposition_reminders: disposition.map_or_else(Vec::new, |d| {
                reminder_entries(id, attempt, Sla::Disposition, &d.reminders)
            }),
        };
        let args =
            serde_json::to_string(&payload).map_err(|e| StoreError::Encode(e.to_string()))?;
        let mut connection = self.connection();
        let reply: String = SCHEDULE
            .key(self.keys.lead(id))
            .key(self.keys.deadlines())
            .key(self.keys.reminders())
            .arg(args)
            .invoke_async(&mut connection)
            .await?;
        Ok(match reply.as_str() {
            "reminders" => Scheduled::Reminders,
            "disposition" => Scheduled::Disposition,
            "moved" => Scheduled::Moved,
            "unknown" => Scheduled::Unknown,
            _ => Scheduled::Nothing,
        })
    }
}
