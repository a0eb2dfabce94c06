//! Webhook signatures, Stripe-style: `Handoff-Signature: t=<unix seconds>,v1=<hex>` where
//! the hex is HMAC-SHA256(secret, "<t>.<body>"). The timestamp lets receivers refuse
//! replays; see docs/webhooks.md for verifying.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "handoff-signature";

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The header value for `body` signed at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={timestamp},v1={digest}")
}

/// Checks a header value against `body` (constant-time comparison). For receivers and tests.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signature = hex::decode(s).ok(),
            _ => {}
        }
    }
    match (timestamp, signature) {
        (Some(t), Some(sig)) => mac(secret, t, body).is_some_and(|m| m.verify_slice(&sig).is_ok()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let header = sign("s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(verify("s3cret", &header, b"{\"a\":1}"));
        assert!(!verify("s3cret", &header, b"{\"a\":2}"));
        assert!(!verify("other", &header, b"{\"a\":1}"));
        assert!(!verify("s3cret", "garbage", b"{\"a\":1}"));
    }
}
