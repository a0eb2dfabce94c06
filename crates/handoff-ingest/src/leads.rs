//! `POST /v1/leads`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use handoff_domain::events::{stable_event_id, EventKind};
use handoff_domain::privacy::mask_email;
use handoff_domain::submission::LeadSubmission;
use handoff_domain::validation::FieldError;
use handoff_domain::Lead;
use handoff_kafka::{OutboundEvent, TraceParent};
use handoff_store::Reservation;

use crate::request::{body_kind, json, read_body, BodyKind};
use crate::{publish_timeout, ApiError, AppState};

const IDEMPOTENCY_SCOPE: &str = "lead";

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, &headers, body).await {
        Ok(response) => response,
        Err(error) => {
            state
                .metrics
                .leads_rejected
                .with_label_values(&[error.rejection_reason()])
                .inc();
            error.into_response()
        }
    }
}

async fn accept(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let kind = body_kind(headers, true)?;
    let body = read_body(headers, body, state.settings.max_body_bytes).await?;
    let submission = match kind {
        BodyKind::Json => json::<LeadSubmission>(&body)?,
        BodyKind::Form => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::MalformedBody(e.to_string()))?;
            LeadSubmission::from_form(pairs).map_err(|e| ApiError::Validation(e.0))?
        }
    };
    let lead = submission
        .into_lead(Utc::now())
        .map_err(|e| ApiError::Validation(e.0))?;

    let idempotency_key = idempotency_key(headers)?;
    let ttl = u64::from(state.settings.idempotency_ttl_seconds);
    if let Some(key) = &idempotency_key {
        match state
            .store
            .reserve_idempotency(IDEMPOTENCY_SCOPE, key, ttl)
            .await
            .map_err(|e| unavailable("redis", &e))?
        {
            Reservation::Reserved => {}
            Reservation::Done(lead_id) => return Ok(accepted(&lead_id, None, true)),
            Reservation::InFlight => return Err(ApiError::IdempotencyInFlight),
        }
    }

    let trace = TraceParent::child_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    let published = publish(state, &lead, trace).await;
    if let Err(error) = published {
        if let Some(key) = &idempotency_key {
            // Nothing was written: let the client's retry start afresh.
            if let Err(e) = state
                .store
                .release_idempotency(IDEMPOTENCY_SCOPE, key)
                .await
            {
                tracing::warn!(error = %e, "cannot release an idempotency key; it expires on its own");
            }
        }
        return Err(error);
    }

    if let Err(e) = state
        .store
        .record_lead(
            lead.id.as_str(),
            &lead.source,
            lead.received_at.timestamp_millis(),
            state.lead_retention.as_secs(),
            None,
        )
        .await
    {
        // The router records it too when it routes the lead; log and carry on.
        tracing::warn!(lead_id = %lead.id, error = %e, "cannot record the lead's attribution");
    }
    if let Some(key) = &idempotency_key {
        if let Err(e) = state
            .store
            .complete_idempotency(IDEMPOTENCY_SCOPE, key, lead.id.as_str(), ttl)
            .await
        {
            tracing::warn!(lead_id = %lead.id, error = %e, "cannot complete an idempotency key");
        }
    }
    state.metrics.leads_received.inc();
    tracing::info!(
        lead_id = %lead.id,
        email = %mask_email(&lead.contact.email),
        source = %lead.source.kind,
        trace_id = %trace.trace_id(),
        "lead accepted"
    );
    Ok(accepted(lead.id.as_str(), Some(trace), false))
}

async fn publish(state: &AppState, lead: &Lead, trace: TraceParent) -> Result<(), ApiError> {
    let event = OutboundEvent::new(
        EventKind::LeadCreated,
        stable_event_id(EventKind::LeadCreated, &[lead.id.as_str()]),
        lead.id.as_str(),
        lead.received_at,
        trace,
        lead,
    )
    .map_err(|e| unavailable("encoder", &e))?;
    let sent = tokio::time::timeout(publish_timeout(&state.settings), async {
        state.producer.publish(&event).await
    })
    .await;
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(unavailable("the event broker", &e)),
        Err(_) => Err(unavailable("the event broker", &"publish timed out")),
    }
}

fn unavailable(what: &'static str, error: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(dependency = what, error = %error, "request failed: dependency unavailable");
    ApiError::Unavailable { what }
}

/// The `Idempotency-Key` header, if any (at most 255 visible ASCII characters).
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.trim().is_empty() && key.len() <= 255 => Ok(Some(key.trim().to_owned())),
        _ => Err(ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "invalid",
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
        )])),
    }
}

fn accepted(lead_id: &str, trace: Option<TraceParent>, replayed: bool) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(json!({ "lead_id": lead_id }))).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(value) = trace.and_then(|t| HeaderValue::from_str(&t.to_string()).ok()) {
        response.headers_mut().insert("traceparent", value);
    }
    response
}
