//! `GET /v1/reps/{id}` and `PUT /v1/reps/{id}`: a rep's runtime state (active, available,
//! capacity override), stored in Redis and applied to the next routing decision. The rules
//! file holds the defaults; these override them until cleared (`null`). Every change is
//! also published on the compacted `rep.state` topic (proto/handoff/v1/reps.proto): the
//! log is the durable copy a rebuild of the Redis state restores them from.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use handoff_config::Scope;
use handoff_domain::rep_overrides::RepOverrides;
use handoff_domain::validation::FieldError;
use handoff_domain::RepId;

use crate::request::{body_kind, json, read_body};
use crate::{ApiError, AppState};

const FIELDS: [&str; 3] = ["active", "available", "capacity"];
const MAX_CAPACITY: u32 = 100_000;

/// A rep's state as routing sees it: the rules file's defaults with the overrides applied.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RepState {
    pub id: String,
    pub active: bool,
    pub available: bool,
    pub capacity: u32,
    /// Leads assigned to the rep and not yet closed.
    pub open_leads: i64,
    /// The overrides in force (field → value), as stored.
    pub overrides: BTreeMap<String, String>,
}

/// The body of `PUT /v1/reps/{id}`: a field overrides the rules file's default, `null`
/// clears the override, an absent field is left as it is.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepChanges {
    /// Takes part in routing at all.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    active: Option<Option<bool>>,
    /// Available right now (not on a break, not out of office).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    available: Option<Option<bool>>,
    /// Most open leads at once: a whole number (`5` or `5.0`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 100000)]
    capacity: Option<Option<serde_json::Number>>,
}

/// Tells an explicit `null` (`Some(None)`) from an absent field (`None`, the default).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl RepChanges {
    /// Every problem is named at once (serde stops at the first), then the body is read.
    fn parse(body: Map<String, Value>) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        for (key, value) in &body {
            let valid = match key.as_str() {
                "active" | "available" => value.is_null() || value.is_boolean(),
                "capacity" => match value {
                    Value::Null => true,
                    Value::Number(n) => whole_number(n).is_some(),
                    _ => false,
                },
                _ => {
                    errors.push(FieldError::new(
                        key.clone(),
                        "unknown_field",
                        format!(
                            "unknown field `{key}`, expected one of {}",
                            FIELDS.join(", ")
                        ),
                    ));
                    continue;
                }
            };
            if !valid && key == "capacity" {
                errors.push(FieldError::new(
                    "capacity",
                    "invalid",
                    format!("capacity must be a whole number from 0 to {MAX_CAPACITY}, or null"),
                ));
            } else if !valid {
                errors.push(FieldError::new(
                    key.clone(),
                    "invalid",
                    format!("{key} must be true, false or null"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        serde_json::from_value(Value::Object(body)).map_err(|e| {
            ApiError::Validation(vec![FieldError::new("body", "invalid", e.to_string())])
        })
    }
}

/// A rep's runtime state.
#[utoipa::path(
    get,
    path = "/v1/reps/{id}",
    operation_id = "get_rep",
    tag = "internal",
    params(("id" = String, Path, min_length = 1, description = "The rep's id in the rules file.")),
    responses(
        (status = 200, description = "The rep's state.", body = RepState),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["reps:read"])),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(rep): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        state.access.admit(&headers, None, Scope::RepsRead)?;
        describe(&state, &rep).await
    };
    match outcome.await {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Overrides (or, with `null`, clears) a rep's runtime state; applies to the next
/// routing decision.
#[utoipa::path(
    put,
    path = "/v1/reps/{id}",
    operation_id = "put_rep",
    tag = "internal",
    request_body(content = RepChanges, content_type = "application/json",
        example = json!({"available": false, "capacity": null})),
    params(("id" = String, Path, min_length = 1, description = "The rep's id in the rules file.")),
    responses(
        (status = 200, description = "The rep's state after the change.", body = RepState),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::UnprocessableEntity),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["reps:write"])),
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(rep): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        let caller = state.access.admit(&headers, None, Scope::RepsWrite)?;
        body_kind(&headers, false)?;
        let body = read_body(&headers, body, state.settings.max_body_bytes).await?;
        let changes = RepChanges::parse(json(&body)?)?;
        if !state.rules.current().routing.has_rep(&rep) {
            return Err(ApiError::NotFound("rep"));
        }
        let Changes { set, clear } = Changes::from(&changes);
        state
            .store
            .set_rep_overrides(&rep, &set, &clear)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot store rep overrides");
                ApiError::Unavailable { what: "redis" }
            })?;
        tracing::info!(%rep, changes = ?changes, caller = %caller.name, "rep state changed");
        let described = describe(&state, &rep).await?;
        // The durable copy, from which a rebuild restores the overrides after Redis lost
        // them. Answered only once it is on the log: a failure here is a 503, and the
        // same PUT again (idempotent) publishes it.
        let overrides = RepOverrides::from_stored(
            RepId::new(rep.as_str()),
            &described.overrides,
            chrono::Utc::now(),
            Some(caller.name.to_string()),
        );
        state
            .producer
            .publish_rep_overrides(&overrides)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot publish rep overrides");
                ApiError::Unavailable { what: "kafka" }
            })?;
        Ok(described)
    }
    .await;
    match outcome {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Overrides to set (field, value) and to clear.
struct Changes {
    set: Vec<(&'static str, String)>,
    clear: Vec<&'static str>,
}

impl From<&RepChanges> for Changes {
    fn from(changes: &RepChanges) -> Self {
        let mut set = Vec::new();
        let mut clear = Vec::new();
        let fields = [
            ("active", changes.active.map(|v| v.map(|b| b.to_string()))),
            (
                "available",
                changes.available.map(|v| v.map(|b| b.to_string())),
            ),
            (
                "capacity",
                // Checked by `parse`: a capacity that is not a whole number is not here.
                changes
                    .capacity
                    .as_ref()
                    .map(|v| v.as_ref().and_then(whole_number).map(|n| n.to_string())),
            ),
        ];
        for (field, change) in fields {
            match change {
                Some(Some(value)) => set.push((field, value)),
                Some(None) => clear.push(field),
                None => {}
            }
        }
        Self { set, clear }
    }
}

/// A capacity: a whole number from 0 to [`MAX_CAPACITY`], whether written `5` or `5.0`
/// (JSON Schema's `integer` includes both).
fn whole_number(n: &serde_json::Number) -> Option<u32> {
    let value = match n.as_u64() {
        Some(n) => n,
        None => {
            let f = n.as_f64()?;
            if !(f >= 0.0 && f.fract() == 0.0 && f <= f64::from(MAX_CAPACITY)) {
                return None;
            }
            // In range and whole: exact.
            f as u64
        }
    };
    u32::try_from(value).ok().filter(|n| *n <= MAX_CAPACITY)
}

async fn describe(state: &AppState, rep: &str) -> Result<RepState, ApiError> {
    let rules = state.rules.current();
    if !rules.routing.has_rep(rep) {
        return Err(ApiError::NotFound("rep"));
    }
    let (open, overrides) = state.store.rep_runtime(rep).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read rep state");
        ApiError::Unavailable { what: "redis" }
    })?;
    let flag = |field: &str, default: bool| {
        overrides
            .get(field)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let capacity = overrides
        .get("capacity")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or_else(|| rules.routing.rep_capacity(rep));
    Ok(RepState {
        id: rep.to_owned(),
        active: flag("active", rules.routing.rep_active(rep)),
        available: flag("available", true),
        capacity,
        open_leads: open,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(body: &str) -> Result<Changes, ApiError> {
        RepChanges::parse(json(body.as_bytes())?).map(|c| Changes::from(&c))
    }

    fn fields(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation(fields) => fields.into_iter().map(|f| f.field).collect(),
            other => vec![other.code().to_owned()],
        }
    }

    #[test]
    fn capacity_is_any_json_number_that_is_a_whole_number_in_range() {
        for (body, expected) in [
            (r#"{"capacity": 5}"#, Some("5")),
            (r#"{"capacity": 67.0}"#, Some("67")),
            (r#"{"capacity": 100000}"#, Some("100000")),
            (r#"{"capacity": 100001}"#, None),
            (r#"{"capacity": 1.5}"#, None),
            (r#"{"capacity": -1}"#, None),
        ] {
            let set = changes(body).ok().map(|c| c.set);
            let capacity = set
                .as_ref()
                .and_then(|set| set.iter().find(|(f, _)| *f == "capacity"))
                .map(|(_, v)| v.as_str());
            assert_eq!(capacity, expected, "{body}");
        }
    }

    #[test]
    fn null_clears_absent_keeps_and_every_problem_is_named() {
        let parsed = changes(r#"{"available": false, "capacity": null}"#).ok();
        let parsed = parsed.map(|c| (c.set, c.clear));
        assert_eq!(
            parsed,
            Some((vec![("available", "false".to_owned())], vec!["capacity"]))
        );
        let error = changes(r#"{"active": 1, "capacity": -1, "colour": "red"}"#).err();
        assert_eq!(
            error.map(fields),
            Some(vec!["active".into(), "capacity".into(), "colour".into()])
        );
        assert_eq!(
            changes("[null, null]").err().map(fields),
            Some(vec!["body".to_owned()])
        );
    }
}
