//! The accept/reject links of a rep's message: signed tokens (`handoff_domain::action_link`)
//! under the public listener's `/v1/actions/`, where ingest shows a confirmation page (GET)
//! and records the disposition (POST).

use chrono::{DateTime, Utc};

use handoff_config::ActionLinkSettings;
use handoff_domain::action_link::{sign, ActionClaim, LinkAction};
use handoff_domain::{LeadId, RepId};

/// Both links of one assignment attempt, and when they stop working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ActionLinks {
    pub(crate) accept: String,
    pub(crate) reject: String,
    pub(crate) expires_at: DateTime<Utc>,
}

/// Signs links; `None` when `[actions]` is off (no public URL or no key).
#[derive(Debug, Clone)]
pub(crate) struct LinkSigner {
    base: String,
    key: Vec<u8>,
    ttl: chrono::Duration,
}

impl LinkSigner {
    pub(crate) fn new(settings: &ActionLinkSettings) -> Option<Self> {
        if !settings.enabled() {
            return None;
        }
        let base = settings.public_url.as_deref()?.trim_end_matches('/');
        Some(Self {
            base: format!("{base}/v1/actions/"),
            key: settings.secret.expose().as_bytes().to_vec(),
            ttl: chrono::Duration::seconds(
                i64::try_from(settings.ttl_seconds).unwrap_or(i64::MAX / 2),
            ),
        })
    }

    /// The links that act as `rep` on `lead`'s assignment `attempt`.
    pub(crate) fn links(
        &self,
        lead: &LeadId,
        rep: &RepId,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Option<ActionLinks> {
        let expires_at = now.checked_add_signed(self.ttl)?;
        let url = |action| {
            let claim = ActionClaim::new(lead.clone(), rep.clone(), attempt, action, expires_at);
            sign(&claim, &self.key)
                .ok()
                .map(|token| format!("{}{token}", self.base))
        };
        Some(ActionLinks {
            accept: url(LinkAction::Accept)?,
            reject: url(LinkAction::Reject)?,
            expires_at,
        })
    }
}
