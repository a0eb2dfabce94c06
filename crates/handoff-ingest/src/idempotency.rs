//! The one idempotency protocol of every write endpoint (leads, dispositions, webhook
//! intake):
//!
//! ```text
//!  begin ──► Replay(result)            a finished request with this key and body: same answer
//!    │  ──► 409 in flight / 422 reused  (another body under the same key)
//!    ▼
//!  Proceed ──► publish ──► complete(result)   remembered for idempotency_ttl_seconds
//!                  └─────► release            nothing was published: the retry starts afresh
//! ```
//! Keys are namespaced by the caller (two sources never share keys). The pending
//! reservation lives only as long as one publish attempt can take, so a crashed attempt
//! does not block the client's retry for a day; and because the caller derives its event
//! or lead id from the key ([`IdempotentRequest::derived_id`]), a retry after an
//! unknown broker answer republishes the same id, which the router de-duplicates.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use handoff_domain::validation::FieldError;
use handoff_store::Reservation;

use crate::access::Caller;
use crate::{ApiError, AppState};

/// Derived ids are name-based UUIDs in this namespace (a fixed random UUID).
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6b1f_3c2e_9d4a_4f7b_8e21_5a0c_d3e4_f5a6);

/// A request that carries an idempotency key, reserved for this attempt.
#[derive(Debug)]
pub(crate) struct IdempotentRequest {
    scope: &'static str,
    /// The caller's namespace and the client's key.
    key: String,
    fingerprint: String,
}

pub(crate) enum Begin {
    /// Go ahead, then complete or release the reservation.
    Proceed(IdempotentRequest),
    /// A request with this key and body already finished with this result.
    Replay(String),
}

impl IdempotentRequest {
    /// The request's reservation-to-be, if the client sent a key.
    pub(crate) fn new(
        scope: &'static str,
        caller: &Caller,
        key: Option<&str>,
        body: &[u8],
    ) -> Option<Self> {
        Some(Self {
            scope,
            key: format!("{}\n{}", caller.namespace(), key?),
            fingerprint: hex::encode(Sha256::digest(body)),
        })
    }

    /// A stable id for what this request creates: the same for every retry with this key.
    pub(crate) fn derived_id(&self) -> String {
        uuid::Uuid::new_v5(
            &ID_NAMESPACE,
            format!("{}\n{}", self.scope, self.key).as_bytes(),
        )
        .to_string()
    }

    /// The headers that let a rebuild of Redis from the log restore this request's mark
    /// (the key's digest as the mark is named, never the key; docs/operations.md).
    pub(crate) fn rebuild_headers(&self) -> [(&'static str, String); 2] {
        [
            (
                handoff_kafka::IDEMPOTENCY_KEY_HEADER,
                hex::encode(Sha256::digest(self.key.as_bytes())),
            ),
            (
                handoff_kafka::IDEMPOTENCY_FINGERPRINT_HEADER,
                self.fingerprint.clone(),
            ),
        ]
    }

    /// Reserves the key for this attempt.
    pub(crate) async fn begin(self, state: &AppState) -> Result<Begin, ApiError> {
        // One publish attempt is bounded by the publish timeout; a little slack for Redis.
        let pending = state.settings.publish_timeout_ms.div_ceil(1000) + 5;
        let reservation = state
            .store
            .reserve_idempotency(self.scope, &self.key, &self.fingerprint, pending)
            .await
            .map_err(|e| crate::unavailable("redis", &e))?;
        match reservation {
            Reservation::Reserved => Ok(Begin::Proceed(self)),
            Reservation::Done(result) => Ok(Begin::Replay(result)),
            Reservation::InFlight => Err(ApiError::IdempotencyInFlight),
            Reservation::Mismatch => Err(ApiError::IdempotencyKeyReused),
        }
    }

    /// Remembers the result for `idempotency_ttl_seconds`. A failure here only means a
    /// retry will publish again under the same derived id, so it is logged, not returned.
    pub(crate) async fn complete(self, state: &AppState, result: &str) {
        let ttl = u64::from(state.settings.idempotency_ttl_seconds);
        if let Err(e) = state
            .store
            .complete_idempotency(self.scope, &self.key, &self.fingerprint, result, ttl)
            .await
        {
            tracing::warn!(error = %e, "cannot complete an idempotency key");
        }
    }

    /// Nothing was published: lets the client's retry start afresh.
    pub(crate) async fn release(self, state: &AppState) {
        if let Err(e) = state.store.release_idempotency(self.scope, &self.key).await {
            tracing::warn!(error = %e, "cannot release an idempotency key; it expires on its own");
        }
    }
}

/// The `Idempotency-Key` header, if any (1 to 255 visible ASCII characters).
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str().map(str::trim) {
        Ok(key)
            if !key.is_empty()
                && key.len() <= 255
                && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "invalid",
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
        )])),
    }
}
