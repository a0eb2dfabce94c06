//! What is known of a lead: its attribution (for dispositions), where it is in its
//! lifecycle, and its current assignment or queue.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use redis::Script;

use handoff_domain::lead::Source;
use handoff_domain::lifecycle::LeadState;
use handoff_domain::{LeadId, QueueName, RepId, TeamId};

use crate::lifecycle::TimelineEntry;
use crate::{Store, StoreError};

static RECEIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/receive.lua")));

/// The rep who works a contact (sticky routing), and the contact's lead that holds their
/// capacity, when known: a repeat joins it while it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactOwner {
    pub rep: RepId,
    pub lead: Option<LeadId>,
}

impl ContactOwner {
    /// `rep|lead` as assign.lua stores it; a bare rep id (stored before leads were kept,
    /// or restored by a rebuild) has no lead. Rep ids never contain `|`.
    fn parse(stored: &str) -> Option<Self> {
        let (rep, lead) = match stored.split_once('|') {
            Some((rep, lead)) => (rep, Some(lead).filter(|l| !l.is_empty())),
            None => (stored, None),
        };
        (!rep.is_empty()).then(|| Self {
            rep: RepId::from(rep),
            lead: lead.map(LeadId::from),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRecord {
    pub source: Source,
    pub state: LeadState,
    pub team: Option<TeamId>,
    pub rep: Option<RepId>,
    /// The current assignment attempt (0: not assigned yet).
    pub attempt: u32,
    /// When ingest (or the router) first saw it.
    pub received_ms: Option<i64>,
    /// When the current assignment was made.
    pub assigned_ms: Option<i64>,
    /// The current clock: first touch of the current attempt, or the queue wait's.
    pub due_ms: Option<i64>,
    pub queue: Option<QueueName>,
    pub queued_ms: Option<i64>,
    pub touched_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    /// The closing outcome (`converted`, `rejected`, `recycled`).
    pub outcome: Option<String>,
    /// The first decision's event (JSON) and the current assignment's `lead.assigned`.
    pub decision: Option<String>,
    pub assigned: Option<String>,
    /// Every rep the lead was assigned to, in order (a reassignment never picks one again).
    pub had: Vec<RepId>,
}

const FIELDS: [&str; 16] = [
    "source",
    "state",
    "team",
    "rep",
    "attempt",
    "received_ms",
    "assigned_ms",
    "due_ms",
    "queue",
    "queued_ms",
    "touched_ms",
    "closed_ms",
    "outcome",
    "decision",
    "assigned",
    "had",
];

impl Store {
    /// Records a lead's arrival, keeping the first one recorded. Given the contact's email,
    /// it also returns the rep who works that contact (sticky routing) — in the same round
    /// trip, because the router needs both before it decides.
    pub async fn record_lead(
        &self,
        lead_id: &LeadId,
        source: &Source,
        received_at: DateTime<Utc>,
        retention_seconds: u64,
        contact_email: Option<&str>,
    ) -> Result<Option<ContactOwner>, StoreError> {
        let id = lead_id.as_str();
        let source =
            serde_json::to_string(source).map_err(|e| StoreError::Encode(e.to_string()))?;
        let entry = serde_json::to_string(&TimelineEntry::new(received_at, "received"))
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let mut connection = self.connection();
        let owner: Option<String> = RECEIVE
            .key(self.keys.lead(id))
            .key(self.keys.lead_log(id))
            .key(contact_email.map_or_else(|| self.keys.unused(), |e| self.keys.contact_owner(e)))
            .arg(source)
            .arg(received_at.timestamp_millis())
            .arg(retention_seconds)
            .arg(entry)
            .arg(if contact_email.is_some() { "1" } else { "0" })
            .invoke_async(&mut connection)
            .await?;
        Ok(owner.as_deref().and_then(ContactOwner::parse))
    }

    /// Whether the report with `event_id` was applied to the lead (its once-only marker,
    /// report.lua).
    pub async fn report_applied(&self, lead_id: &str, event_id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        Ok(redis::cmd("HEXISTS")
            .arg(self.keys.lead(lead_id))
            .arg(format!("d:{event_id}"))
            .query_async(&mut connection)
            .await?)
    }

    /// `None` for a lead this deployment has never seen (or has forgotten).
    pub async fn lead(&self, lead_id: &str) -> Result<Option<LeadRecord>, StoreError> {
        let key = self.keys.lead(lead_id);
        let mut connection = self.connection();
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&key)
            .arg(&FIELDS)
            .query_async(&mut connection)
            .await?;
        let mut fields: BTreeMap<&str, String> = FIELDS
            .iter()
            .zip(values)
            .filter_map(|(name, value)| Some((*name, value.filter(|v| !v.is_empty())?)))
            .collect();
        let Some(source) = fields.remove("source") else {
            return Ok(None);
        };
        let source = serde_json::from_str(&source).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            message: e.to_string(),
        })?;
        let ms = |fields: &BTreeMap<&str, String>, name: &str| {
            fields
                .get(name)
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v as i64)
        };
        Ok(Some(LeadRecord {
            source,
            state: fields
                .get("state")
                .and_then(|s| LeadState::parse(s))
                .unwrap_or(LeadState::Received),
            team: fields.remove("team").map(TeamId::from),
            rep: fields.remove("rep").map(RepId::from),
            attempt: ms(&fields, "attempt")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
            received_ms: ms(&fields, "received_ms"),
            assigned_ms: ms(&fields, "assigned_ms"),
            due_ms: ms(&fields, "due_ms"),
            queued_ms: ms(&fields, "queued_ms"),
            touched_ms: ms(&fields, "touched_ms"),
            closed_ms: ms(&fields, "closed_ms"),
            queue: fields.remove("queue").map(QueueName::from),
            outcome: fields.remove("outcome"),
            decision: fields.remove("decision"),
            assigned: fields.remove("assigned"),
            had: fields
                .remove("had")
                .unwrap_or_default()
                .split(',')
                .filter(|r| !r.is_empty())
                .map(RepId::from)
                .collect(),
        }))
    }
}
