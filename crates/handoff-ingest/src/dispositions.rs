//! `POST /v1/leads/{id}/dispositions`: a rep's or CRM's outcome, published as
//! `lead.disposition` with the lead's attribution so marketing sees what became of it.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use handoff_domain::disposition::DispositionSubmission;
use handoff_domain::events::{stable_event_id, EventKind, LeadDisposition};
use handoff_domain::LeadId;
use handoff_kafka::{OutboundEvent, TraceParent};
use handoff_store::Reservation;

use crate::leads::idempotency_key;
use crate::request::{body_kind, json, read_body};
use crate::{publish_timeout, ApiError, AppState};

const IDEMPOTENCY_SCOPE: &str = "disposition";

pub(crate) async fn submit(
    State(state): State<AppState>,
    Path(lead_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, &lead_id, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn accept(
    state: &AppState,
    lead_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    body_kind(headers, false)?;
    let body = read_body(headers, body, state.settings.max_body_bytes).await?;
    let disposition = json::<DispositionSubmission>(&body)?
        .validate(Utc::now())
        .map_err(|e| ApiError::Validation(e.0))?;
    let record = state
        .store
        .lead(lead_id)
        .await
        .map_err(|e| unavailable(&e))?
        .ok_or(ApiError::NotFound("lead"))?;

    let key = idempotency_key(headers)?;
    let ttl = u64::from(state.settings.idempotency_ttl_seconds);
    let event_id = match &key {
        Some(key) => {
            let scoped = format!("{lead_id}/{key}");
            match state
                .store
                .reserve_idempotency(IDEMPOTENCY_SCOPE, &scoped, ttl)
                .await
                .map_err(|e| unavailable(&e))?
            {
                Reservation::Reserved => {}
                Reservation::Done(event_id) => return Ok(accepted(lead_id, &event_id)),
                Reservation::InFlight => return Err(ApiError::IdempotencyInFlight),
            }
            stable_event_id(EventKind::LeadDisposition, &[lead_id, "report", key])
        }
        None => uuid::Uuid::now_v7().to_string(),
    };

    let outcome = disposition.outcome;
    let event = LeadDisposition {
        lead_id: LeadId::from(lead_id),
        outcome,
        reason_code: disposition.reason_code,
        note: disposition.note,
        actor: disposition.actor,
        occurred_at: disposition.occurred_at,
        source: record.source,
        score: None,
        team_id: record.team,
        rep_id: record.rep,
        queue: String::new(),
    };
    let trace = TraceParent::child_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    let published = match OutboundEvent::new(
        EventKind::LeadDisposition,
        event_id.clone(),
        lead_id,
        Utc::now(),
        trace,
        &event,
    ) {
        Ok(outbound) => tokio::time::timeout(
            publish_timeout(&state.settings),
            state.producer.publish(&outbound),
        )
        .await
        .map_err(|_| "publish timed out".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string())),
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = published {
        if let Some(key) = &key {
            let scoped = format!("{lead_id}/{key}");
            if let Err(e) = state
                .store
                .release_idempotency(IDEMPOTENCY_SCOPE, &scoped)
                .await
            {
                tracing::warn!(error = %e, "cannot release an idempotency key; it expires on its own");
            }
        }
        tracing::warn!(%lead_id, %error, "disposition not published");
        return Err(ApiError::Unavailable {
            what: "the event broker",
        });
    }
    if let Some(key) = &key {
        let scoped = format!("{lead_id}/{key}");
        if let Err(e) = state
            .store
            .complete_idempotency(IDEMPOTENCY_SCOPE, &scoped, &event_id, ttl)
            .await
        {
            tracing::warn!(%lead_id, error = %e, "cannot complete an idempotency key");
        }
    }
    state
        .metrics
        .dispositions
        .with_label_values(&[outcome.as_str()])
        .inc();
    tracing::info!(%lead_id, outcome = outcome.as_str(), "disposition recorded");
    Ok(accepted(lead_id, &event_id))
}

fn unavailable(error: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(dependency = "redis", error = %error, "request failed: dependency unavailable");
    ApiError::Unavailable { what: "redis" }
}

fn accepted(lead_id: &str, event_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "lead_id": lead_id, "event_id": event_id })),
    )
        .into_response()
}
