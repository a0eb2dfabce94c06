//! Reading request bodies: content type, size limit, JSON with field paths in errors.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use handoff_domain::validation::FieldError;

use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Json,
    Form,
}

pub(crate) fn body_kind(headers: &HeaderMap, form_allowed: bool) -> Result<BodyKind, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" if form_allowed => Ok(BodyKind::Form),
        _ => Err(ApiError::UnsupportedMediaType(content_type.to_owned())),
    }
}

/// The body, or 413 when it is over the limit.
pub(crate) fn bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge { limit }
        } else {
            ApiError::MalformedBody(rejection.body_text())
        }
    })
}

/// JSON syntax errors are 400; a well-formed body with a wrong field is 422 naming it.
pub(crate) fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::MalformedBody(inner.to_string());
        }
        let message = inner.to_string();
        let (field, code) = match message.strip_prefix("unknown field `") {
            Some(rest) => {
                // The path already ends at the unknown key, except at the top level.
                let name = rest.split('`').next().unwrap_or("");
                let field = if path == "." || path.is_empty() {
                    name.to_owned()
                } else {
                    path
                };
                (field, "unknown_field")
            }
            None => (path, "invalid_type"),
        };
        // serde's message ends with " at line L column C": useful for people, noise in a field error.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m)
            .to_owned();
        ApiError::Validation(vec![FieldError::new(field, code, message)])
    })
}
