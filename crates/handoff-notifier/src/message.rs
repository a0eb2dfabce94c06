//! What a webhook receives. Slack reads `text`; everything else is there for machines.

use serde_json::{json, Value};

use handoff_domain::events::{LeadAssigned, LeadDisposition, SlaBreached, SlaReminder};
use handoff_domain::sla::Sla;

pub(crate) fn assigned(event: &LeadAssigned) -> Value {
    let text = format!(
        "New lead for {rep} (team {team}): score {points} ({band}). First touch due by {due} UTC. Why: {reason}",
        rep = event.rep_id,
        team = event.team_id,
        points = event.score.points,
        band = event.score.band,
        due = event.first_touch_due_at.format("%H:%M:%S"),
        reason = event.explanation.reason,
    );
    json!({
        "type": "lead.assigned",
        "event_id": event.event_id(),
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "attempt": event.attempt,
        "first_touch_due_at": event.first_touch_due_at,
        "score": event.score,
        "explanation": event.explanation,
        "source": event.source,
    })
}

pub(crate) fn breached(event: &SlaBreached) -> Value {
    let team = event.team_id.as_ref().map_or("none", |t| t.as_str());
    let text = match (&event.rep_id, event.sla) {
        (Some(rep), Sla::Disposition) => format!(
            ":warning: Disposition SLA missed: lead {lead} with {rep} (team {team}) had no outcome reported by {due} UTC.",
            lead = event.lead_id,
            due = event.due_at.format("%Y-%m-%d %H:%M:%S"),
        ),
        (Some(rep), Sla::FirstTouch) => format!(
            ":warning: First-touch SLA missed: lead {lead} assigned to {rep} (team {team}) was due at {due} UTC.",
            lead = event.lead_id,
            due = event.due_at.format("%H:%M:%S"),
        ),
        (None, _) => format!(
            ":warning: First-touch SLA missed: lead {lead} is still waiting in a queue of team {team}; it was due at {due} UTC.",
            lead = event.lead_id,
            due = event.due_at.format("%H:%M:%S"),
        ),
    };
    json!({
        "type": "sla.breached",
        "event_id": event.event_id(),
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "attempt": event.attempt,
        "due_at": event.due_at,
        "breached_at": event.breached_at,
        "sla": event.sla,
    })
}

pub(crate) fn reminder(event: &SlaReminder) -> Value {
    let what = match event.sla {
        Sla::FirstTouch => "First touch",
        Sla::Disposition => "An outcome (accepted, converted, rejected with a reason, recycled)",
    };
    let text = format!(
        ":alarm_clock: Reminder: {what} for lead {lead} is due by {due} UTC ({percent}% of the time gone).",
        lead = event.lead_id,
        due = event.due_at.format("%Y-%m-%d %H:%M:%S"),
        percent = (event.fraction * 100.0).round(),
    );
    json!({
        "type": "sla.reminder",
        "event_id": event.event_id(),
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "attempt": event.attempt,
        "sla": event.sla,
        "due_at": event.due_at,
        "reminded_at": event.reminded_at,
        "fraction": event.fraction,
    })
}

/// A missed first touch the team's policy escalated: for the manager.
pub(crate) fn escalated(event: &LeadDisposition) -> Value {
    let team = event.team_id.as_ref().map_or("none", |t| t.as_str());
    let text = format!(
        ":rotating_light: Lead {lead} escalated out of team {team}: {note}",
        lead = event.lead_id,
        note = event.note,
    );
    json!({
        "type": "lead.escalated",
        "text": text,
        "lead_id": event.lead_id,
        "team_id": event.team_id,
        "rep_id": event.rep_id,
        "reason_code": event.reason_code,
        "note": event.note,
        "occurred_at": event.occurred_at,
        "source": event.source,
    })
}
