//! The one place API errors become HTTP: a stable `code`, a clear `message`, and for
//! validation every offending field. Internal detail stays in the log.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use handoff_domain::validation::FieldError;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `validation_failed`, `malformed_body`,
    /// `unsupported_media_type`, `body_too_large`, `not_found`, `idempotency_key_in_use`,
    /// `idempotency_key_reused`, `unavailable`, `unauthorized`, `forbidden`, `rate_limited`,
    /// `request_timeout`, `overloaded`, `lead_closed`; action links: `link_invalid`,
    /// `link_expired`, `link_used`, `link_superseded`.
    #[schema(example = "validation_failed")]
    pub code: &'static str,
    /// A sentence for people; may change between versions.
    pub message: String,
    /// Every offending field (`validation_failed` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid fields")]
    Validation(Vec<FieldError>),
    #[error("malformed body: {0}")]
    MalformedBody(String),
    #[error("unsupported content type {0:?}")]
    UnsupportedMediaType(String),
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInFlight,
    #[error("{what} is unavailable")]
    Unavailable { what: &'static str },
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("the Idempotency-Key was used with a different request body")]
    IdempotencyKeyReused,
    #[error("the request took too long")]
    Timeout,
    #[error("too many requests in progress")]
    Overloaded,
    #[error("the lead is closed")]
    LeadClosed { outcome: Option<String> },
    #[error("the action link is not valid")]
    LinkInvalid,
    #[error("the action link has expired")]
    LinkExpired,
    #[error("the action link was used already")]
    LinkUsed,
    #[error("the action link is for an earlier assignment")]
    LinkSuperseded,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::IdempotencyInFlight => StatusCode::CONFLICT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::LeadClosed { .. } => StatusCode::CONFLICT,
            ApiError::LinkInvalid => StatusCode::FORBIDDEN,
            ApiError::LinkExpired | ApiError::LinkUsed => StatusCode::GONE,
            ApiError::LinkSuperseded => StatusCode::CONFLICT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::NotFound(_) => "not_found",
            ApiError::IdempotencyInFlight => "idempotency_key_in_use",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::Timeout => "request_timeout",
            ApiError::Overloaded => "overloaded",
            ApiError::LeadClosed { .. } => "lead_closed",
            ApiError::LinkInvalid => "link_invalid",
            ApiError::LinkExpired => "link_expired",
            ApiError::LinkUsed => "link_used",
            ApiError::LinkSuperseded => "link_superseded",
        }
    }

    /// The `reason` label of `handoff_leads_rejected_total`.
    pub fn rejection_reason(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "invalid",
            ApiError::MalformedBody(_) => "malformed",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::NotFound(_) => "not_found",
            ApiError::IdempotencyInFlight => "conflict",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::IdempotencyKeyReused => "conflict",
            ApiError::Timeout => "timeout",
            ApiError::Overloaded => "overloaded",
            ApiError::LeadClosed { .. } => "conflict",
            ApiError::LinkInvalid => "forbidden",
            ApiError::LinkExpired | ApiError::LinkUsed | ApiError::LinkSuperseded => "conflict",
        }
    }

    /// Seconds a client should wait before retrying, for the answers worth retrying.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Unavailable { .. } => Some(5),
            ApiError::IdempotencyInFlight | ApiError::Overloaded => Some(1),
            ApiError::RateLimited { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        }
    }

    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::Validation(fields) => format!(
                "{} field(s) are invalid; see `fields`",
                fields.len()
            ),
            ApiError::MalformedBody(detail) => format!("the body could not be parsed: {detail}"),
            ApiError::UnsupportedMediaType(got) => format!(
                "Content-Type {got:?} is not supported; send application/json or application/x-www-form-urlencoded"
            ),
            ApiError::TooLarge { limit } => format!("the body is larger than {limit} bytes"),
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::IdempotencyInFlight => {
                "a request with this Idempotency-Key is still in progress; retry shortly".to_owned()
            }
            ApiError::Unavailable { what } => {
                format!("{what} is unavailable; nothing was recorded, retry later")
            }
            ApiError::Unauthorized(why) => (*why).to_owned(),
            ApiError::Forbidden(why) => why.clone(),
            ApiError::RateLimited { .. } => {
                "too many requests; retry after the time in Retry-After".to_owned()
            }
            ApiError::IdempotencyKeyReused => {
                "this Idempotency-Key was already used with a different request body".to_owned()
            }
            ApiError::Timeout => "the request was not completed in time".to_owned(),
            ApiError::Overloaded => {
                "the server is handling too many requests; retry shortly".to_owned()
            }
            ApiError::LeadClosed { outcome } => format!(
                "the lead is closed ({}); no further outcome can be reported",
                outcome.as_deref().unwrap_or("closed")
            ),
            ApiError::LinkInvalid => {
                "this link is not valid: it was altered or cut short; open the one in your message"
                    .to_owned()
            }
            ApiError::LinkExpired => {
                "this link has expired; report the outcome in your CRM or through the API".to_owned()
            }
            ApiError::LinkUsed => "this link was used already: the outcome is recorded".to_owned(),
            ApiError::LinkSuperseded => {
                "the lead was reassigned since this link was sent; it no longer acts for you"
                    .to_owned()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
                fields: match &self {
                    ApiError::Validation(fields) => fields.clone(),
                    _ => Vec::new(),
                },
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"handoff\""),
            );
        }
        response
    }
}
