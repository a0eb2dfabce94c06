//! Accept/reject links in a rep's notification: a token that says who may do what to which
//! assignment until when, signed so nobody can forge or alter one.
//!
//! ```text
//!  token = base64url(claim JSON) "." base64url(HMAC-SHA256(key, "handoff-action-v1." + claim part))
//! ```
//! The notifier signs, ingest verifies (the signature before anything else is read), both
//! with `actions.secret_env`'s key. Single use is ingest's business (a Redis mark on the
//! claim's `id`); a token for an attempt that is no longer the lead's is refused there too.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{LeadId, RepId};

/// Binds the signature to this use: a key shared with another purpose cannot mint links.
const CONTEXT: &[u8] = b"handoff-action-v1.";
/// Longer tokens are refused before decoding (a claim is ~200 bytes).
pub const MAX_TOKEN_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkAction {
    Accept,
    Reject,
}

impl LinkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkAction::Accept => "accept",
            LinkAction::Reject => "reject",
        }
    }
}

/// What a link lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionClaim {
    /// Names the (lead, attempt, action): every link for it shares one single-use mark.
    pub id: String,
    pub lead: LeadId,
    /// The rep the link acts as (the assignee when it was sent).
    pub rep: RepId,
    /// The assignment attempt it was sent for; a later attempt makes it stale.
    pub attempt: u32,
    pub action: LinkAction,
    /// Unix seconds after which it is refused.
    pub exp: i64,
}

impl ActionClaim {
    pub fn new(
        lead: LeadId,
        rep: RepId,
        attempt: u32,
        action: LinkAction,
        expires_at: DateTime<Utc>,
    ) -> Self {
        let digest = Sha256::digest(format!("{lead}\n{attempt}\n{}", action.as_str()).as_bytes());
        Self {
            id: hex::encode(digest.get(..16).unwrap_or_default()),
            lead,
            rep,
            attempt,
            action,
            exp: expires_at.timestamp(),
        }
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.exp, 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token, or one whose signature does not match: forged, altered or cut.
    #[error("the link is not valid (altered or incomplete)")]
    Invalid,
    #[error("the link has expired")]
    Expired,
}

/// The signed token of `claim`.
pub fn sign(claim: &ActionClaim, key: &[u8]) -> Result<String, LinkError> {
    let json = serde_json::to_vec(claim).map_err(|_| LinkError::Invalid)?;
    let body = URL_SAFE_NO_PAD.encode(json);
    let tag = URL_SAFE_NO_PAD.encode(mac(key, &body)?.finalize().into_bytes());
    Ok(format!("{body}.{tag}"))
}

/// The claim of a genuine, unexpired token.
pub fn verify(token: &str, key: &[u8], now: DateTime<Utc>) -> Result<ActionClaim, LinkError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(LinkError::Invalid);
    }
    let (body, tag) = token.split_once('.').ok_or(LinkError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| LinkError::Invalid)?;
    // Constant time: the comparison leaks nothing about the right tag.
    mac(key, body)?
        .verify_slice(&tag)
        .map_err(|_| LinkError::Invalid)?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| LinkError::Invalid)?;
    let claim: ActionClaim = serde_json::from_slice(&json).map_err(|_| LinkError::Invalid)?;
    if now.timestamp() >= claim.exp {
        return Err(LinkError::Expired);
    }
    Ok(claim)
}

fn mac(key: &[u8], body: &str) -> Result<Hmac<Sha256>, LinkError> {
    // Fails only for MACs with a fixed key size; HMAC takes any.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| LinkError::Invalid)?;
    mac.update(CONTEXT);
    mac.update(body.as_bytes());
    Ok(mac)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claim(exp: i64) -> ActionClaim {
        let mut c = ActionClaim::new(
            LeadId::from("lead-1"),
            RepId::from("ana"),
            2,
            LinkAction::Reject,
            Utc::now(),
        );
        c.exp = exp;
        c
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_signed_claim_verifies_until_it_expires() {
        let c = claim(1_800_000_100);
        let token = sign(&c, KEY).unwrap();
        assert_eq!(verify(&token, KEY, now()), Ok(c.clone()));
        let later = DateTime::from_timestamp(1_800_000_100, 0).unwrap_or_default();
        assert_eq!(verify(&token, KEY, later), Err(LinkError::Expired));
    }

    #[test]
    fn another_key_or_garbage_is_invalid() {
        let token = sign(&claim(1_800_000_100), KEY).unwrap();
        assert_eq!(
            verify(&token, b"another key, same length, 32 b..", now()),
            Err(LinkError::Invalid)
        );
        for bad in ["", ".", "abc", "abc.def", &"a".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(verify(bad, KEY, now()), Err(LinkError::Invalid), "{bad}");
        }
    }

    #[test]
    fn links_of_one_attempt_and_action_share_an_id() {
        let at = Utc::now();
        let a = ActionClaim::new("l".into(), "ana".into(), 1, LinkAction::Accept, at);
        let b = ActionClaim::new("l".into(), "ana".into(), 1, LinkAction::Accept, at);
        let c = ActionClaim::new("l".into(), "ana".into(), 2, LinkAction::Accept, at);
        let d = ActionClaim::new("l".into(), "ana".into(), 1, LinkAction::Reject, at);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_ne!(a.id, d.id);
    }

    proptest! {
        /// Any change to a token (a byte replaced, inserted or removed) is refused.
        #[test]
        fn any_tamper_fails(pos in any::<prop::sample::Index>(), byte in 0x21u8..0x7f, how in 0u8..3) {
            let token = sign(&claim(1_800_000_100), KEY).unwrap();
            let mut bytes = token.clone().into_bytes();
            let i = pos.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
            let tampered = String::from_utf8(bytes).unwrap_or_default();
            prop_assume!(tampered != token);
            prop_assert_eq!(verify(&tampered, KEY, now()), Err(LinkError::Invalid));
        }

        /// Whatever the claim, it survives signing and verifying unchanged.
        #[test]
        fn any_claim_round_trips(lead in "[ -~]{1,40}", rep in "[a-z0-9_-]{1,20}", attempt in 1u32..100, reject in any::<bool>()) {
            let action = if reject { LinkAction::Reject } else { LinkAction::Accept };
            let mut c = ActionClaim::new(LeadId::from(lead), RepId::from(rep), attempt, action, now());
            c.exp = 1_800_000_100;
            prop_assert_eq!(verify(&sign(&c, KEY).unwrap(), KEY, now()), Ok(c));
        }
    }
}
