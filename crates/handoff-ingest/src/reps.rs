//! `GET /v1/reps/{id}` and `PUT /v1/reps/{id}`: a rep's runtime state (active, available,
//! capacity override), stored in Redis and applied to the next routing decision. The rules
//! file holds the defaults; these override them until cleared (`null`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use handoff_config::Scope;
use handoff_domain::validation::FieldError;

use crate::request::{body_kind, json, read_body};
use crate::{ApiError, AppState};

const FIELDS: [&str; 3] = ["active", "available", "capacity"];
const MAX_CAPACITY: u64 = 100_000;

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
        let changes: Map<String, Value> = json(&body)?;
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

/// `{"active": false}` sets, `{"active": null}` clears; every problem is named.
fn parse_changes(changes: &Map<String, Value>) -> Result<Changes, ApiError> {
    let mut set = Vec::new();
    let mut clear = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in changes {
        let Some(field) = FIELDS.iter().copied().find(|f| f == key) else {
            errors.push(FieldError::new(
                key.clone(),
                "unknown_field",
                format!(
                    "unknown field `{key}`, expected one of {}",
                    FIELDS.join(", ")
                ),
            ));
            continue;
        };
        match (field, value) {
            (_, Value::Null) => clear.push(field),
            ("active" | "available", Value::Bool(b)) => set.push((field, b.to_string())),
            ("capacity", Value::Number(n)) if n.as_u64().is_some_and(|n| n <= MAX_CAPACITY) => {
                set.push((field, n.to_string()))
            }
            ("capacity", _) => errors.push(FieldError::new(
                field,
                "invalid",
                format!("capacity must be a whole number from 0 to {MAX_CAPACITY}, or null"),
            )),
            _ => errors.push(FieldError::new(
                field,
                "invalid",
                format!("{field} must be true, false or null"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(Changes { set, clear })
    } else {
        Err(ApiError::Validation(errors))
    }
}

async fn describe(state: &AppState, rep: &str) -> Result<Value, ApiError> {
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
    Ok(json!({
        "id": rep,
        "active": flag("active", rules.routing.rep_active(rep)),
        "available": flag("available", true),
        "capacity": capacity,
        "open_leads": open,
        "overrides": overrides,
    }))
}
