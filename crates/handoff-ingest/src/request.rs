//! Reading request bodies: content type, size limit, JSON with field paths in errors.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures::StreamExt;
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

/// Beyond this many bytes an oversized body is not read to its end: the connection is
/// dropped instead. Below it, the rest is read and discarded so the client, still
/// uploading, receives the 413 rather than a reset connection.
const DRAIN_CAP: usize = 8 * 1024 * 1024;

/// The body, or 413 when it is over `limit`.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut stream = body.into_data_stream();
    let mut kept = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::MalformedBody(e.to_string()))?;
        total += chunk.len();
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if total > DRAIN_CAP {
            break;
        }
    }
    if total > limit {
        return Err(ApiError::TooLarge { limit });
    }
    Ok(Bytes::from(kept))
}

/// A JSON object into `T`: JSON syntax errors are 400; a well-formed body of another shape,
/// or with a wrong field, is 422 naming it.
pub(crate) fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedBody(e.to_string()))?;
    // serde's derived structs also read a JSON array as the fields in order: `[null, null]`
    // would be taken for an object. Every body of this API is an object.
    if !value.is_object() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "invalid_type",
            "the body must be a JSON object",
        )]));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
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

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_domain::submission::LeadSubmission;

    fn rejection(body: &str) -> Option<(u16, String)> {
        json::<LeadSubmission>(body.as_bytes()).err().map(|e| {
            let field = match &e {
                ApiError::Validation(fields) => fields.first().map(|f| f.field.clone()),
                _ => None,
            };
            (e.status().as_u16(), field.unwrap_or_default())
        })
    }

    #[test]
    fn only_a_json_object_is_a_body() {
        assert_eq!(rejection(r#"{"contact": {"email": "a@b.co"}}"#), None);
        assert_eq!(
            rejection("[null, null, {}]"),
            Some((422, "body".to_owned()))
        );
        assert_eq!(rejection("null"), Some((422, "body".to_owned())));
        assert_eq!(rejection("{"), Some((400, String::new())));
        assert_eq!(
            rejection(r#"{"contact": {"email": 1}}"#),
            Some((422, "contact.email".to_owned()))
        );
        assert_eq!(rejection(r#"{"nope": 1}"#), Some((422, "nope".to_owned())));
    }
}
