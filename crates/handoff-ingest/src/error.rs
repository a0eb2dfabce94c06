//! The one place API errors become HTTP: a stable `code`, a clear `message`, and for
//! validation every offending field. Internal detail stays in the log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use handoff_domain::validation::FieldError;

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
        }
    }

    fn message(&self) -> String {
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code(), "message": self.message() } });
        if let ApiError::Validation(fields) = &self {
            body["error"]["fields"] = json!(fields);
        }
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::IdempotencyInFlight
        ) {
            let seconds = if matches!(self, ApiError::IdempotencyInFlight) {
                "1"
            } else {
                "5"
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}
