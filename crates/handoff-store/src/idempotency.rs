//! `Idempotency-Key`: a retried request gets the first request's answer, and no second
//! event. The key is reserved before publishing and released if publishing fails, so
//! nothing is half-written. The reservation remembers a fingerprint of the request, so a
//! key reused for a different request is told apart from a retry.

use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is ours: publish, then `complete_idempotency` (or `release_idempotency`).
    Reserved,
    /// An earlier request with this key and fingerprint finished with this result.
    Done(String),
    /// An earlier request with this key is still in flight.
    InFlight,
    /// The key was used for a request with another fingerprint.
    Mismatch,
}

impl Store {
    fn idempotency_key(&self, scope: &str, key: &str) -> String {
        // Hashed: the client's key may be long or carry data we do not want in Redis keys.
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        self.keys.idempotency(scope, &digest)
    }

    /// Reserves `key` for a request with `fingerprint` (no `:` in it) for `pending_seconds`:
    /// long enough for one attempt to publish, short enough that a crashed attempt does not
    /// block the client's retry for long.
    pub async fn reserve_idempotency(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        pending_seconds: u64,
    ) -> Result<Reservation, StoreError> {
        let redis_key = self.idempotency_key(scope, key);
        let mut connection = self.connection();
        let reserved: Option<String> = redis::cmd("SET")
            .arg(&redis_key)
            .arg(format!("pending:{fingerprint}"))
            .arg("NX")
            .arg("EX")
            .arg(pending_seconds.max(1))
            .query_async(&mut connection)
            .await?;
        if reserved.is_some() {
            return Ok(Reservation::Reserved);
        }
        let existing: Option<String> = redis::cmd("GET")
            .arg(&redis_key)
            .query_async(&mut connection)
            .await?;
        Ok(classify(existing.as_deref(), fingerprint))
    }

    pub async fn complete_idempotency(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        result: &str,
        ttl_seconds: u64,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: () = redis::cmd("SET")
            .arg(self.idempotency_key(scope, key))
            .arg(format!("done:{fingerprint}:{result}"))
            .arg("EX")
            .arg(ttl_seconds.max(1))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn release_idempotency(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = redis::cmd("DEL")
            .arg(self.idempotency_key(scope, key))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }
}

/// What a stored reservation means for a request with `fingerprint`.
fn classify(stored: Option<&str>, fingerprint: &str) -> Reservation {
    let Some(stored) = stored else {
        // Released or expired between our SET and GET: the client may retry at once.
        return Reservation::InFlight;
    };
    if let Some(done) = stored.strip_prefix("done:") {
        return match done.split_once(':') {
            Some((fp, result)) if fp == fingerprint => Reservation::Done(result.to_owned()),
            _ => Reservation::Mismatch,
        };
    }
    match stored.strip_prefix("pending:") {
        Some(fp) if fp == fingerprint => Reservation::InFlight,
        _ => Reservation::Mismatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_tells_a_retry_from_a_reused_key() {
        assert_eq!(
            classify(Some("done:abc:lead-1"), "abc"),
            Reservation::Done("lead-1".into())
        );
        assert_eq!(
            classify(Some("done:abc:lead-1"), "xyz"),
            Reservation::Mismatch
        );
        assert_eq!(classify(Some("pending:abc"), "abc"), Reservation::InFlight);
        assert_eq!(classify(Some("pending:abc"), "xyz"), Reservation::Mismatch);
        assert_eq!(classify(None, "abc"), Reservation::InFlight);
    }
}
