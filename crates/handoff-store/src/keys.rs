//! Key names. `{prefix}` is the hash tag: all keys of one deployment share a slot, because
//! one routing step touches the lead, the rep counters, the rotation and the deadlines.

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    tag: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            tag: format!("{{{prefix}}}"),
        }
    }

    /// `{prefix}`: the hash tag every key starts with.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Hash: a lead's attribution, lifecycle state, decisions and clocks (fields: see
    /// lifecycle.rs).
    pub fn lead(&self, lead_id: &str) -> String {
        format!("{}:lead:{lead_id}", self.tag)
    }

    /// List: the lead's timeline, one JSON entry per step, oldest first.
    pub fn lead_log(&self, lead_id: &str) -> String {
        format!("{}:lead:{lead_id}:log", self.tag)
    }

    /// Sorted set lead id -> until when (ms) it holds the rep's capacity (its record's
    /// expiry): a rep's open leads. Expired members are pruned, so a forgotten lead cannot
    /// hold capacity for ever.
    pub fn rep_open(&self, rep_id: &str) -> String {
        format!("{}:rep:{rep_id}:open", self.tag)
    }

    /// A key nothing ever writes: passed for a script's optional key (no rep yet, no queue)
    /// so every key stays declared. Scripts only read it or remove from it, which works
    /// on a missing key whatever the operation's type.
    pub fn unused(&self) -> String {
        format!("{}:unused", self.tag)
    }

    /// Set of the names of queues that ever held a lead (bounded by the rules' queues).
    pub fn queues(&self) -> String {
        format!("{}:queues", self.tag)
    }

    /// Hash rep id -> leads assigned on one UTC day (`YYYY-MM-DD`), for daily caps.
    pub fn assigned_on(&self, day: &str) -> String {
        format!("{}:reps:day:{day}", self.tag)
    }

    /// Hash team id -> the team's rotation state (see the domain's strategy module).
    pub fn rotation(&self) -> String {
        format!("{}:rotation", self.tag)
    }

    /// Hash of a rep's runtime overrides (active, available, capacity).
    pub fn rep(&self, rep_id: &str) -> String {
        format!("{}:rep:{rep_id}", self.tag)
    }

    /// Sorted set lead id -> when the lead arrived (ms): a queue, first come first.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}:queue:{queue}", self.tag)
    }

    /// Sorted set lead id -> when (ms): assignments made from a queue whose `lead.assigned`
    /// is not yet acknowledged by the broker (republished if their publisher died).
    pub fn outbox(&self) -> String {
        format!("{}:outbox", self.tag)
    }

    /// Sorted set `lead|attempt` (first touch) or `lead|attempt|disposition` -> deadline
    /// (ms).
    pub fn deadlines(&self) -> String {
        format!("{}:sla:due", self.tag)
    }

    /// Sorted set of deadline members -> lease expiry (ms) of a claimed breach.
    pub fn claims(&self) -> String {
        format!("{}:sla:claimed", self.tag)
    }

    /// Hash deadline member -> the token of the poller round that holds its claim.
    pub fn claim_owners(&self) -> String {
        format!("{}:sla:claimed:owner", self.tag)
    }

    /// Sorted set `lead|attempt|sla|permille` -> when the reminder is due (ms).
    pub fn reminders(&self) -> String {
        format!("{}:sla:remind", self.tag)
    }

    /// Sorted set of reminder members -> lease expiry (ms) of a claimed reminder.
    pub fn reminder_claims(&self) -> String {
        format!("{}:sla:remind:claimed", self.tag)
    }

    /// Hash reminder member -> the token of the poller round that holds its claim.
    pub fn reminder_claim_owners(&self) -> String {
        format!("{}:sla:remind:claimed:owner", self.tag)
    }

    /// The rep working a contact (keyed by a hash of the email: no address in key names).
    pub fn contact_owner(&self, email: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(Sha256::digest(email.as_bytes()));
        format!("{}:contact:{digest}", self.tag)
    }

    /// Hash of a domain's account owner from `account.owner`: `owner` (AccountOwner JSON)
    /// and `updated_ms`. Domains are checked (letters, digits, `-`, `.`): safe in a key.
    pub fn account(&self, domain: &handoff_domain::accounts::AccountDomain) -> String {
        format!("{}:account:{domain}", self.tag)
    }

    /// A used accept/reject link (its claim id: hex), kept as long as such a link lives.
    pub fn action_link(&self, id_hex: &str) -> String {
        format!("{}:action:{id_hex}", self.tag)
    }

    /// Hash: the state's generation marker (generation.rs): created once per deployment,
    /// replaced by each rebuild; its absence means the state was lost.
    pub fn generation(&self) -> String {
        format!("{}:state:generation", self.tag)
    }

    /// String: the lease of the instance rebuilding the state from the log.
    pub fn rebuild_lock(&self) -> String {
        format!("{}:state:rebuild", self.tag)
    }

    pub fn idempotency(&self, scope: &str, key_digest: &str) -> String {
        format!("{}:idem:{scope}:{key_digest}", self.tag)
    }
}

/// The member of the deadline sets for one assignment attempt (0: waiting in a queue).
pub(crate) fn deadline_member(lead_id: &str, attempt: u32) -> String {
    format!("{lead_id}|{attempt}")
}

/// The member of the deadline sets for an attempt's disposition.
pub(crate) fn disposition_member(lead_id: &str, attempt: u32) -> String {
    format!("{lead_id}|{attempt}|disposition")
}

/// The member of the reminder sets for one reminder (`permille`: the fraction of the
/// window, in thousandths).
pub(crate) fn reminder_member(lead_id: &str, attempt: u32, sla: &str, permille: u32) -> String {
    format!("{lead_id}|{attempt}|{sla}|{permille}")
}
