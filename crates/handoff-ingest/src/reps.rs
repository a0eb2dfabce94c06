//! `GET /v1/reps/{id}` and `PUT /v1/reps/{id}`: a rep's runtime state (active, available,
//! capacity override), stored in Redis and applied to the next routing decision. The rules
//! file holds the defaults; these override them until cleared (`null`).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Deserializer, Serialize};

use handoff_config::Scope;
use handoff_domain::validation::FieldError;

use crate::request::{body_kind, json, read_body};
use crate::{ApiError, AppState};

const MAX_CAPACITY: u64 = 100_000;

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
    /// Most open leads at once.
    /// A JSON number (`5` or `5.0`); whole numbers only.
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
        let changes: RepChanges = json(&body)?;
        if !state.rules.current().routing.has_rep(&rep) {
            return Err(ApiError::NotFound("rep"));
        }
        let Changes { set, clear } = parse_changes(&changes)?;
        state
            .store
            .set_rep_overrides(&rep, &set, &clear)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot store rep overrides");
                ApiError::Unavailable { what: "redis" }
            })?;
        tracing::info!(%rep, changes = ?changes, caller = %caller.name, "rep state changed");
        describe(&state, &rep).await
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

fn parse_changes(changes: &RepChanges) -> Result<Changes, ApiError> {
    let mut set = Vec::new();
    let mut clear = Vec::new();
    let flags = [("active", changes.active), ("available", changes.available)];
    for (field, change) in flags {
        match change {
            Some(Some(value)) => set.push((field, value.to_string())),
            Some(None) => clear.push(field),
            None => {}
        }
    }
    match &changes.capacity {
        Some(Some(n)) => match whole_number(n).filter(|n| *n <= MAX_CAPACITY) {
            Some(n) => set.push(("capacity", n.to_string())),
            None => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "capacity",
                    "invalid",
                    format!("capacity must be a whole number from 0 to {MAX_CAPACITY}, or null"),
                )]))
            }
        },
        Some(None) => clear.push("capacity"),
        None => {}
    }
    Ok(Changes { set, clear })
}

/// A JSON number that is a whole number ≥ 0: JSON Schema's `integer` includes `5.0`.
fn whole_number(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        let f = n.as_f64()?;
        // Exact for every value up to MAX_CAPACITY, the only ones that matter here.
        (f >= 0.0 && f.fract() == 0.0 && f <= MAX_CAPACITY as f64).then_some(f as u64)
    })
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

    fn changes(body: &str) -> Result<Vec<(&'static str, String)>, ApiError> {
        let changes: RepChanges = json(body.as_bytes())?;
        parse_changes(&changes).map(|c| c.set)
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
            let set = changes(body).ok();
            let capacity = set
                .as_ref()
                .and_then(|set| set.iter().find(|(f, _)| *f == "capacity"))
                .map(|(_, v)| v.as_str());
            assert_eq!(capacity, expected, "{body}");
        }
    }
}
