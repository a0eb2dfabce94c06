//! `POST /v1/webhooks/{source}`: leads from lead providers and ad platforms, signed per the
//! Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
//! `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, secret `whsec_<base64>`).
//!
//! A timestamp outside the tolerance window is refused, so a captured request cannot be
//! replayed later; within the window, the `webhook-id` is the idempotency key, so a
//! replayed (or retried) delivery answers with the first lead and publishes nothing new.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use handoff_config::Scope;
use handoff_domain::submission::LeadSubmission;

use crate::access::Caller;
use crate::leads::{accept_lead, accepted_response, refused};
use crate::request::{body_kind, json, read_body};
use crate::{ApiError, AppState};

/// How far a delivery's timestamp may be from our clock, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A lead from a lead provider or ad platform, signed per Standard Webhooks with the
/// source's secret (`[[ingest.webhooks]]`). A redelivery (same `webhook-id`, same body)
/// answers with the first lead.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{source}",
    operation_id = "submit_webhook",
    tag = "public",
    request_body(content = LeadSubmission, content_type = "application/json",
        example = json!({"contact": {"email": "ana@example.com"}, "source": {"campaign": "partner-list"}})),
    params(
        ("source" = String, Path, min_length = 1, description = "The configured intake source."),
        ("traceparent" = Option<String>, Header, nullable = false, description = "W3C trace context."),
    ),
    responses(
        (status = 202, description = "Accepted: the lead is published.", body = crate::leads::LeadAccepted,
            headers(
                ("idempotent-replayed" = String, description = "`true` for a redelivery of an accepted webhook-id."),
                ("traceparent" = String, description = "The trace of the lead's events."),
            )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 404, response = crate::openapi::NotFound),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::UnprocessableEntity),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("webhook-id" = [], "webhook-timestamp" = [], "webhook-signature" = [])),
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        let secret = state
            .settings
            .webhooks
            .iter()
            .find(|hook| hook.source == source)
            .map(|hook| hook.secret.clone())
            .ok_or(ApiError::NotFound("webhook source"))?;
        body_kind(&headers, false)?;
        let body = read_body(&headers, body, state.settings.max_body_bytes).await?;
        let webhook_id = verify(secret.expose(), &headers, &body, Utc::now())?;
        let caller = Caller::webhook(&source);
        state.access.authorize(&caller, Scope::LeadsWrite)?;
        let submission = json::<LeadSubmission>(&body)?;
        let accepted = accept_lead(
            &state,
            &caller,
            &headers,
            &body,
            Some(&webhook_id),
            submission,
        )
        .await?;
        Ok(accepted_response(&accepted))
    }
    .await;
    outcome.unwrap_or_else(|error| refused(&state, error))
}

/// Checks a delivery's signature and timestamp; returns its `webhook-id`.
pub fn verify(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String, ApiError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or(ApiError::Unauthorized(
                "webhook-id, webhook-timestamp and webhook-signature headers are required",
            ))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    if id.len() > 255 {
        return Err(ApiError::Unauthorized("webhook-id is too long"));
    }
    let sent = timestamp
        .parse::<i64>()
        .map_err(|_| ApiError::Unauthorized("webhook-timestamp must be Unix seconds"))?;
    let skew = now.timestamp().abs_diff(sent);
    if skew > TOLERANCE.as_secs() {
        return Err(ApiError::Unauthorized(
            "webhook-timestamp is outside the 5-minute tolerance window",
        ));
    }
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| ApiError::Unavailable {
            what: "the webhook source's secret",
        })?;
    let valid = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|signature| STANDARD.decode(signature).ok())
        .any(|signature| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
                return false;
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            // Constant-time comparison.
            mac.verify_slice(&signature).is_ok()
        });
    if valid {
        Ok(id.to_owned())
    } else {
        Err(ApiError::Unauthorized(
            "the webhook signature does not match",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed(id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let key = STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", format!("v1,bogus v1,{signature}")),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        headers
    }

    #[test]
    fn a_signed_delivery_within_the_window_is_accepted() {
        let now = Utc::now();
        let headers = signed("msg_1", now.timestamp(), b"{}");
        assert_eq!(
            verify(SECRET, &headers, b"{}", now).ok(),
            Some("msg_1".into())
        );
    }

    #[test]
    fn a_tampered_body_or_an_old_or_future_timestamp_is_refused() {
        let now = Utc::now();
        let headers = signed("msg_1", now.timestamp(), b"{}");
        assert!(verify(SECRET, &headers, b"{\"x\":1}", now).is_err());
        let old = signed("msg_1", now.timestamp() - 301, b"{}");
        assert!(verify(SECRET, &old, b"{}", now).is_err());
        let future = signed("msg_1", now.timestamp() + 301, b"{}");
        assert!(verify(SECRET, &future, b"{}", now).is_err());
        assert!(verify(SECRET, &HeaderMap::new(), b"{}", now).is_err());
    }
}
