//! The events handoff emits, as they appear on the wire (proto3 JSON of the messages in
//! proto/handoff/v1). tests/tests/contract.rs builds each of them with arbitrary values and
//! every field populated and decodes it strictly against the proto descriptors, both ways,
//! so these types and the contract cannot drift (docs/adr/0004-contract-drift.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::disposition::{Actor, Outcome};
use crate::ids::{empty_as_none, QueueName, RepId, TeamId};
use crate::lead::{LeadId, Source};
use crate::routing::RoutingExplanation;
use crate::scoring::Score;
use crate::sla::Sla;

/// Every kind of event, with its CloudEvents type and proto message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    LeadCreated,
    LeadAssigned,
    SlaBreached,
    SlaReminder,
    LeadDisposition,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::LeadCreated,
        EventKind::LeadAssigned,
        EventKind::SlaBreached,
        EventKind::SlaReminder,
        EventKind::LeadDisposition,
    ];

    /// The `ce_type` header.
    pub fn ce_type(self) -> &'static str {
        match self {
            EventKind::LeadCreated => "io.handoff.lead.created.v1",
            EventKind::LeadAssigned => "io.handoff.lead.assigned.v1",
            EventKind::SlaBreached => "io.handoff.sla.breached.v1",
            EventKind::SlaReminder => "io.handoff.sla.reminder.v1",
            EventKind::LeadDisposition => "io.handoff.lead.disposition.v1",
        }
    }

    pub fn from_ce_type(ce_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.ce_type() == ce_type)
    }

    /// The fully-qualified proto message of the payload.
    pub fn proto_message(self) -> &'static str {
        match self {
            EventKind::LeadCreated => "handoff.v1.Lead",
            EventKind::LeadAssigned => "handoff.v1.LeadAssigned",
            EventKind::SlaBreached => "handoff.v1.SlaBreached",
            EventKind::SlaReminder => "handoff.v1.SlaReminder",
            EventKind::LeadDisposition => "handoff.v1.LeadDisposition",
        }
    }

    /// The topic's name without the deployment prefix.
    pub fn topic_suffix(self) -> &'static str {
        match self {
            EventKind::LeadCreated => "lead.created",
            EventKind::LeadAssigned => "lead.assigned",
            EventKind::SlaBreached => "sla.breached",
            EventKind::SlaReminder => "sla.reminder",
            EventKind::LeadDisposition => "lead.disposition",
        }
    }
}

/// Namespace of handoff's name-based (v5) event ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a0d_0ff0_5e1d_4c8a_9b1e_4ad0_ff00_1ead);

/// A stable event id: the same fact always gets the same id, so a re-emitted event (after a
/// crash or a redelivery) can be de-duplicated downstream.
pub fn stable_event_id(kind: EventKind, parts: &[&str]) -> String {
    let name = format!("{}/{}", kind.topic_suffix(), parts.join("/"));
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// proto: `handoff.v1.LeadAssigned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadAssigned {
    pub lead_id: LeadId,
    pub attempt: u32,
    pub team_id: TeamId,
    pub rep_id: RepId,
    pub received_at: DateTime<Utc>,
    pub assigned_at: DateTime<Utc>,
    pub first_touch_due_at: DateTime<Utc>,
    pub score: Score,
    pub explanation: RoutingExplanation,
    #[serde(default)]
    pub source: Source,
    /// The queue the lead waited in before this assignment, if it waited.
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue: Option<QueueName>,
    /// When it started waiting there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<DateTime<Utc>>,
    /// Who the lead is, for the rep's notification (and a CRM's task). Absent on events
    /// from before it existed and from producers that do not know the lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<LeadSummary>,
    /// A sticky repeat's open lead with the same rep, which this one joins: it takes no
    /// capacity (see assignment.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joins: Option<LeadId>,
}

/// proto: `handoff.v1.LeadSummary`. What a rep needs to act on a lead, copied from the lead
/// by the router when it assigns it. It rides on `lead.assigned` (rather than the notifier
/// reading `lead.created` or a Redis copy) so the assignment is self-contained: the stored
/// current assignment then serves reminders and breaches too, and no consumer races the
/// lead's other topic. Contact details are personal data: `Debug` hides them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadSummary {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub company: String,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
}

impl LeadSummary {
    pub fn of(lead: &crate::lead::Lead) -> Self {
        Self {
            first_name: lead.contact.first_name.clone(),
            last_name: lead.contact.last_name.clone(),
            title: lead.contact.title.clone(),
            company: lead.company.name.clone(),
            country: lead.company.country.clone(),
            email: lead.contact.email.clone(),
            phone: lead.contact.phone.clone(),
        }
    }

    /// "First Last", or `None` when neither is known.
    pub fn name(&self) -> Option<String> {
        let name = format!("{} {}", self.first_name, self.last_name);
        let name = name.trim();
        (!name.is_empty()).then(|| name.to_owned())
    }
}

impl std::fmt::Debug for LeadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |value: &str| if value.is_empty() { "" } else { "[redacted]" };
        f.debug_struct("LeadSummary")
            .field("first_name", &hidden(&self.first_name))
            .field("last_name", &hidden(&self.last_name))
            .field("title", &self.title)
            .field("company", &self.company)
            .field("country", &self.country)
            .field("email", &crate::privacy::mask_email(&self.email))
            .field("phone", &hidden(&self.phone))
            .finish()
    }
}

impl LeadAssigned {
    pub fn event_id(&self) -> String {
        stable_event_id(
            EventKind::LeadAssigned,
            &[self.lead_id.as_str(), &self.attempt.to_string()],
        )
    }
}

/// proto: `handoff.v1.SlaBreached`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaBreached {
    pub lead_id: LeadId,
    /// The assignment attempt whose deadline passed; 0 while the lead waited in a queue.
    pub attempt: u32,
    /// Unset for a lead waiting in the unrouted queue.
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub team_id: Option<TeamId>,
    /// Unset while the lead waited in a queue (attempt 0).
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub rep_id: Option<RepId>,
    pub due_at: DateTime<Utc>,
    pub breached_at: DateTime<Utc>,
    /// Which promise was missed (absent in events from before it was said: first touch).
    #[serde(default)]
    pub sla: Sla,
}

impl SlaBreached {
    /// One breach per (lead, attempt, sla), whoever emits it and however often. (A
    /// first-touch breach keeps the id it had before the SLA was named.)
    pub fn event_id(&self) -> String {
        let attempt = self.attempt.to_string();
        match self.sla {
            Sla::FirstTouch => {
                stable_event_id(EventKind::SlaBreached, &[self.lead_id.as_str(), &attempt])
            }
            Sla::Disposition => stable_event_id(
                EventKind::SlaBreached,
                &[self.lead_id.as_str(), &attempt, self.sla.as_str()],
            ),
        }
    }
}

/// proto: `handoff.v1.SlaReminder`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaReminder {
    pub lead_id: LeadId,
    pub attempt: u32,
    pub sla: Sla,
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub team_id: Option<TeamId>,
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub rep_id: Option<RepId>,
    pub due_at: DateTime<Utc>,
    pub reminded_at: DateTime<Utc>,
    /// How much of the window had elapsed, strictly between 0 and 1.
    pub fraction: f64,
}

impl SlaReminder {
    /// One reminder per (lead, attempt, sla, fraction).
    pub fn event_id(&self) -> String {
        stable_event_id(
            EventKind::SlaReminder,
            &[
                self.lead_id.as_str(),
                &self.attempt.to_string(),
                self.sla.as_str(),
                &crate::sla::permille(self.fraction).to_string(),
            ],
        )
    }
}

/// proto: `handoff.v1.LeadDisposition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadDisposition {
    pub lead_id: LeadId,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
    #[serde(default)]
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub team_id: Option<TeamId>,
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub rep_id: Option<RepId>,
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub queue: Option<QueueName>,
    /// CONVERTED: what the deal was worth, a decimal with at most 4 places (`1250.5`), and
    /// its ISO 4217 currency; both empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub amount: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = stable_event_id(EventKind::SlaBreached, &["lead-1", "1"]);
        assert_eq!(a, stable_event_id(EventKind::SlaBreached, &["lead-1", "1"]));
        assert_ne!(a, stable_event_id(EventKind::SlaBreached, &["lead-1", "2"]));
        assert_ne!(
            a,
            stable_event_id(EventKind::LeadAssigned, &["lead-1", "1"])
        );
    }

    #[test]
    fn ce_types_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_ce_type(kind.ce_type()), Some(kind));
        }
    }
}
