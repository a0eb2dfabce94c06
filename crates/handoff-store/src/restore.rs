//! The writes that rebuilding the state from the event log makes besides the lifecycle's
//! own transitions (which it replays through lifecycle.rs): what the router keeps beside a
//! lead (rotation, daily counts, sticky owners), ingest's idempotency marks, and the
//! deadlines and reminders whose events were already published.

use handoff_domain::sla::Sla;
use handoff_domain::{LeadId, RepId, TeamId};

use crate::keys::{deadline_member, disposition_member, reminder_member};
use crate::{Store, StoreError};

impl Store {
    /// Sets a team's rotation (the position after its latest assignment in the log).
    pub async fn restore_rotation(&self, team: &TeamId, rotation: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys.rotation())
            .arg(team.as_str())
            .arg(rotation)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Counts an assignment on its UTC day (`YYYY-MM-DD`), for daily caps.
    pub async fn restore_assigned_on(&self, day: &str, rep: &RepId) -> Result<(), StoreError> {
        let key = self.keys.assigned_on(day);
        let mut connection = self.connection();
        let _: () = redis::pipe()
            .hincr(&key, rep.as_str(), 1)
            .ignore()
            .expire(&key, 172_800)
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// The rep who works a contact, for the rest of its sticky period.
    pub async fn restore_contact_owner(
        &self,
        email: &str,
        rep: &RepId,
        holding: &LeadId,
        ttl_seconds: u64,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        // `rep|lead` as assign.lua writes it: the lead holding the rep's capacity, which a
        // repeat joins while it is open.
        let _: () = redis::cmd("SET")
            .arg(self.keys.contact_owner(email))
            .arg(format!("{}|{}", rep.as_str(), holding.as_str()))
            .arg("EX")
            .arg(ttl_seconds.max(1))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// A finished idempotent request, from the digest of its key (as ingest stores it) and
    /// its fingerprint, for the rest of its time to live.
    pub async fn restore_idempotency(
        &self,
        scope: &str,
        key_digest: &str,
        fingerprint: &str,
        result: &str,
        ttl_seconds: u64,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: () = redis::cmd("SET")
            .arg(self.keys.idempotency(scope, key_digest))
            .arg(format!("done:{fingerprint}:{result}"))
            .arg("EX")
            .arg(ttl_seconds.max(1))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Records that a missed first touch of `attempt` was escalated (nobody could take the
    /// lead), so a redelivered breach is not escalated again.
    pub async fn restore_escalation(
        &self,
        lead_id: &LeadId,
        attempt: u32,
        disposition: &str,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = redis::cmd("HSETNX")
            .arg(self.keys.lead(lead_id.as_str()))
            .arg(format!("x:{attempt}"))
            .arg(disposition)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// A breach that was published: its deadline must not fire again.
    pub async fn forget_deadline(
        &self,
        lead_id: &LeadId,
        attempt: u32,
        sla: Sla,
    ) -> Result<(), StoreError> {
        let member = match sla {
            Sla::FirstTouch => deadline_member(lead_id.as_str(), attempt),
            Sla::Disposition => disposition_member(lead_id.as_str(), attempt),
        };
        let mut connection = self.connection();
        let _: () = redis::pipe()
            .zrem(self.keys.deadlines(), &member)
            .ignore()
            .zrem(self.keys.claims(), &member)
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// A reminder that was published: it must not be sent again.
    pub async fn forget_reminder(
        &self,
        lead_id: &LeadId,
        attempt: u32,
        sla: Sla,
        permille: u32,
    ) -> Result<(), StoreError> {
        let member = reminder_member(lead_id.as_str(), attempt, sla.as_str(), permille);
        let mut connection = self.connection();
        let _: () = redis::pipe()
            .zrem(self.keys.reminders(), &member)
            .ignore()
            .zrem(self.keys.reminder_claims(), &member)
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// The lead's current attempt (`None`: unknown lead, or never assigned nor queued).
    pub async fn lead_current_attempt(&self, lead_id: &LeadId) -> Result<Option<u32>, StoreError> {
        let mut connection = self.connection();
        let attempt: Option<u32> = redis::cmd("HGET")
            .arg(self.keys.lead(lead_id.as_str()))
            .arg("attempt")
            .query_async(&mut connection)
            .await?;
        Ok(attempt)
    }
}
