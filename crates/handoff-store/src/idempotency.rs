//! `Idempotency-Key`: a retried request gets the first request's answer, and no second
//! event. The key is reserved before publishing and released if publishing fails, so
//! nothing is half-written.

use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key is ours: publish, then `complete_idempotency` (or `release_idempotency`).
    Reserved,
    /// An earlier request with this key finished with this result.
    Done(String),
    /// An earlier request with this key is still in flight.
    InFlight,
}

impl Store {
    fn idempotency_key(&self, scope: &str, key: &str) -> String {
        // Hashed: the client's key may be long or carry data we do not want in Redis keys.
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        self.keys.idempotency(scope, &digest)
    }

    pub async fn reserve_idempotency(
        &self,
        scope: &str,
        key: &str,
        ttl_seconds: u64,
    ) -> Result<Reservation, StoreError> {
        let redis_key = self.idempotency_key(scope, key);
        let mut connection = self.connection();
        let reserved: Option<String> = redis::cmd("SET")
            .arg(&redis_key)
            .arg("pending")
            .arg("NX")
            .arg("EX")
            .arg(ttl_seconds)
            .query_async(&mut connection)
            .await?;
        if reserved.is_some() {
            return Ok(Reservation::Reserved);
        }
        let existing: Option<String> = redis::cmd("GET")
            .arg(&redis_key)
            .query_async(&mut connection)
            .await?;
        Ok(
            match existing.as_deref().and_then(|v| v.strip_prefix("done:")) {
                Some(result) => Reservation::Done(result.to_owned()),
                None => Reservation::InFlight,
            },
        )
    }

    pub async fn complete_idempotency(
        &self,
        scope: &str,
        key: &str,
        result: &str,
        ttl_seconds: u64,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: () = redis::cmd("SET")
            .arg(self.idempotency_key(scope, key))
            .arg(format!("done:{result}"))
            .arg("EX")
            .arg(ttl_seconds)
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
