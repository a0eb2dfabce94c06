//! Clocks scheduled beside the lifecycle steps: reminders before a deadline, and the
//! disposition deadline. The first-touch deadline is set by the assignment itself
//! (lifecycle.rs), and the router's commit schedules its reminders (and, by policy, the
//! disposition clock) in the same script; the SLA tracker schedules them here for
//! assignments made elsewhere (and for reassignments). The disposition clock otherwise
//! starts at the first touch (report.lua).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::Script;
use serde::Serialize;

use handoff_domain::sla::{AssignmentClocks, Sla};
use handoff_domain::LeadId;

use crate::keys::{disposition_member, reminder_member};
use crate::{Store, StoreError};

static SCHEDULE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/schedule_clocks.lua")));

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

/// The clocks of one attempt as the scripts take them (schedule_clocks.lua, and
/// assign.lua for the router's own assignments): one shape for both.
#[derive(Serialize)]
pub(crate) struct ClockArgs {
    /// `reminders:<attempt>`: set once the attempt's clocks are scheduled.
    marker: String,
    reminders: Vec<(String, i64)>,
    disposition_member: String,
    disposition_due_ms: i64,
    disposition_reminders: Vec<(String, i64)>,
}

impl ClockArgs {
    pub(crate) fn new(lead_id: &str, attempt: u32, clocks: &AssignmentClocks) -> Self {
        Self {
            marker: reminders_marker(attempt),
            reminders: reminder_entries(
                lead_id,
                attempt,
                Sla::FirstTouch,
                &clocks.first_touch_reminders,
            ),
            disposition_member: disposition_member(lead_id, attempt),
            disposition_due_ms: clocks
                .disposition
                .as_ref()
                .map_or(0, |d| d.due.timestamp_millis()),
            disposition_reminders: clocks.disposition.as_ref().map_or_else(Vec::new, |d| {
                reminder_entries(lead_id, attempt, Sla::Disposition, &d.reminders)
            }),
        }
    }
}

/// The lead field saying an attempt's clocks are scheduled.
pub(crate) fn reminders_marker(attempt: u32) -> String {
    format!("reminders:{attempt}")
}

#[derive(Serialize)]
struct ScheduleArgs {
    attempt: String,
    #[serde(flatten)]
    clocks: ClockArgs,
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
    /// Whether `lead.assigned` for `attempt` needs nothing more from the SLA tracker: the
    /// router committed it with its clocks (the attempt's marker is set), or the lead has
    /// moved past it (a later attempt, or closed). One `HMGET`, instead of adopting and
    /// scheduling what the router's own commit already did.
    pub async fn assignment_settled(
        &self,
        lead_id: &LeadId,
        attempt: u32,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let (state, stored, marker): (Option<String>, Option<u32>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.keys.lead(lead_id.as_str()))
                .arg("state")
                .arg("attempt")
                .arg(reminders_marker(attempt))
                .query_async(&mut connection)
                .await?;
        Ok(match (state.as_deref(), stored) {
            (None | Some("waiting"), _) | (_, None) => false,
            (Some("closed"), _) => true,
            (Some(_), Some(stored)) => stored > attempt || (stored == attempt && marker.is_some()),
        })
    }

    /// Schedules the first-touch reminders of an assignment (once per attempt, only while
    /// it awaits its first touch) and, when given, its disposition clock (once, unless the
    /// lead was disposed of already).
    pub async fn schedule_clocks(
        &self,
        lead_id: &LeadId,
        attempt: u32,
        clocks: &AssignmentClocks,
    ) -> Result<Scheduled, StoreError> {
        let id = lead_id.as_str();
        let payload = ScheduleArgs {
            attempt: attempt.to_string(),
            clocks: ClockArgs::new(id, attempt, clocks),
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
