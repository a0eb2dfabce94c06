//! What is known of a lead after ingest: its attribution (for dispositions) and its
//! current assignment.

use handoff_domain::lead::Source;

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadRecord {
    pub source: Source,
    pub team: String,
    pub rep: String,
    pub attempt: u32,
    /// When ingest (or the router) first saw it.
    pub received_ms: Option<i64>,
    /// When the current assignment was made.
    pub assigned_ms: Option<i64>,
}

impl Store {
    /// Records a lead's attribution, keeping the first one recorded (ingest and the router
    /// both call this; whichever comes first wins, and they agree). Given the contact's
    /// email, it also returns the rep who works that contact (sticky routing) — in the same
    /// round trip, because the router needs both before it decides.
    pub async fn record_lead(
        &self,
        lead_id: &str,
        source: &Source,
        received_ms: i64,
        retention_seconds: u64,
        contact_email: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let key = self.keys.lead(lead_id);
        let source = serde_json::to_string(source).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            message: e.to_string(),
        })?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSETNX")
            .arg(&key)
            .arg("source")
            .arg(source)
            .ignore()
            .cmd("HSETNX")
            .arg(&key)
            .arg("received_ms")
            .arg(received_ms)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(retention_seconds)
            .ignore();
        if let Some(email) = contact_email {
            pipe.get(self.keys.contact_owner(email));
        }
        let mut connection = self.connection();
        let replies: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        Ok(replies.into_iter().next().flatten())
    }

    /// `None` for a lead this deployment has never seen (or has forgotten).
    pub async fn lead(&self, lead_id: &str) -> Result<Option<LeadRecord>, StoreError> {
        let key = self.keys.lead(lead_id);
        let mut connection = self.connection();
        #[allow(clippy::type_complexity)]
        let (source, team, rep, attempt, received_ms, assigned_ms): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<u32>,
            Option<i64>,
            Option<i64>,
        ) = redis::cmd("HMGET")
            .arg(&key)
            .arg(&[
                "source",
                "team",
                "rep",
                "attempt",
                "received_ms",
                "assigned_ms",
            ])
            .query_async(&mut connection)
            .await?;
        let Some(source) = source else {
            return Ok(None);
        };
        let source = serde_json::from_str(&source).map_err(|e| StoreError::Corrupt {
            key,
            message: e.to_string(),
        })?;
        Ok(Some(LeadRecord {
            source,
            team: team.unwrap_or_default(),
            rep: rep.unwrap_or_default(),
            attempt: attempt.unwrap_or(0),
            received_ms,
            assigned_ms,
        }))
    }
}
