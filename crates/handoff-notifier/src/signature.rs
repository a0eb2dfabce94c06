//! Webhook signatures, Stripe-style: `Handoff-Signature: t=<unix seconds>,v1=<hex>` where
//! the hex is HMAC-SHA256(secret, "<t>.<body>"). The timestamp lets receivers refuse
//! replays; see docs/webhooks.md for verifying.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "handoff-signature";

/// How far a signature's timestamp may be from the receiver's clock, either way: old
/// ones are replays, future ones are forged or from a badly wrong clock.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    #[error("the signature does not match the body and secret")]
    Mismatch,
    #[error("the signature is older than the tolerance (a replay?)")]
    TooOld,
    #[error("the signature is dated in the future beyond the tolerance")]
    FromTheFuture,
}

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

/// Checks a header value against `body` and the clock now, with [`TOLERANCE`]. For receivers
/// and tests.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> Result<(), SignatureError> {
    verify_at(
        secret,
        header,
        body,
        chrono::Utc::now().timestamp(),
        TOLERANCE,
    )
}

/// [`verify`] at `now` (unix seconds) with a chosen tolerance. The comparison is constant-time;
/// several `v1=` entries are accepted (any may match), as Stripe's scheme allows for rotation.
pub fn verify_at(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.extend(hex::decode(s).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(SignatureError::Malformed);
    };
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let Some(expected) = mac(secret, timestamp, body) else {
        return Err(SignatureError::Mismatch);
    };
    if !signatures
        .iter()
        .any(|sig| expected.clone().verify_slice(sig).is_ok())
    {
        return Err(SignatureError::Mismatch);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    let age = now.saturating_sub(timestamp);
    if age > tolerance {
        Err(SignatureError::TooOld)
    } else if age < tolerance.saturating_neg() {
        Err(SignatureError::FromTheFuture)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = b"{\"a\":1}";

    fn check(header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
        verify_at("s3cret", header, body, now, TOLERANCE)
    }

    #[test]
    fn a_fresh_signature_verifies_for_its_body_and_secret() {
        let header = sign("s3cret", NOW, BODY);
        assert_eq!(check(&header, BODY, NOW), Ok(()));
        assert_eq!(check(&header, BODY, NOW + 300), Ok(()), "at the edge");
        assert_eq!(
            verify_at("other", &header, BODY, NOW, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_tampered_body_or_timestamp_is_refused() {
        let header = sign("s3cret", NOW, BODY);
        assert_eq!(
            check(&header, b"{\"a\":2}", NOW),
            Err(SignatureError::Mismatch)
        );
        // A replayer cannot refresh the timestamp: it is signed.
        let refreshed = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 600));
        assert_eq!(
            check(&refreshed, BODY, NOW + 600),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_old_signature_is_refused_as_a_replay() {
        let header = sign("s3cret", NOW, BODY);
        assert_eq!(check(&header, BODY, NOW + 301), Err(SignatureError::TooOld));
        assert_eq!(
            check(&header, BODY, NOW + 86_400),
            Err(SignatureError::TooOld)
        );
    }

    #[test]
    fn a_signature_from_the_future_is_refused() {
        let header = sign("s3cret", NOW + 301, BODY);
        assert_eq!(
            check(&header, BODY, NOW),
            Err(SignatureError::FromTheFuture)
        );
        let near = sign("s3cret", NOW + 60, BODY);
        assert_eq!(check(&near, BODY, NOW), Ok(()), "small clock skew is fine");
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in ["garbage", "t=1700000000", "v1=abcd", "t=x,v1=abcd", ""] {
            assert_eq!(
                check(header, BODY, NOW),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        let extreme = sign("s3cret", i64::MIN, BODY);
        assert_eq!(check(&extreme, BODY, i64::MAX), Err(SignatureError::TooOld));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let header = sign("s3cret", NOW, BODY);
        let rotated = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(check(&rotated, BODY, NOW), Ok(()));
        assert_eq!(
            verify(
                "s3cret",
                &sign("s3cret", chrono::Utc::now().timestamp(), BODY),
                BODY
            ),
            Ok(())
        );
    }
}
