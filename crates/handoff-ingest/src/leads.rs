//! `POST /v1/leads`: JSON from API keys and browsers, HTML form posts with a form token.
//! [`accept_lead`] is shared with signed webhook intake.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Serialize;

use handoff_config::Scope;
use handoff_domain::privacy::mask_email;
use handoff_domain::submission::{LeadForm, LeadSubmission};
use handoff_domain::Lead;
use handoff_kafka::{OutboundEvent, TraceParent};
use handoff_telemetry::traces::SPAN_TARGET;
use tracing::Instrument;

use crate::access::{Caller, CallerKind};
use crate::idempotency::{idempotency_key, Begin, IdempotentRequest};
use crate::request::{body_kind, json, read_body, BodyKind};
use crate::{publish, unavailable, ApiError, AppState};

const IDEMPOTENCY_SCOPE: &str = "lead";
/// The form field (or query parameter) carrying a form's public token.
const FORM_TOKEN: &str = "form_token";

/// Submits a lead: JSON from integrations and browsers, or a plain HTML form post
/// (`application/x-www-form-urlencoded`) carrying its form token.
///
/// With an `Idempotency-Key`, a retry with the same body answers with the first lead
/// (and `idempotent-replayed: true`). Only trusted keys may set `id` and `received_at`.
#[utoipa::path(
    post,
    path = "/v1/leads",
    operation_id = "submit_lead",
    tag = "public",
    request_body(content(
        (LeadSubmission = "application/json", example = json!({"contact": {"email": "ana@example.com", "first_name": "Ana", "title": "VP Sales", "phone": "+49 30 1234567"}, "company": {"name": "Acme", "domain": "acme.example", "country": "DE", "employees": 250}, "source": {"kind": "web_form", "utm": {"campaign": "spring"}}, "engagement": {"demo_request": true}, "custom": {"plan": "enterprise"}})),
        (LeadForm = "application/x-www-form-urlencoded",
            example = json!({"email": "ana@example.com", "company": "Acme", "country": "Germany", "form_token": "ft_landing"})),
    )),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
            description = "Makes retries safe: 1 to 255 visible ASCII characters."),
        ("traceparent" = Option<String>, Header, nullable = false,
            description = "W3C trace context; the lead's events continue the trace."),
        ("form_token" = Option<String>, Query, nullable = false,
            description = "A form's token, when not sent as a form field."),
    ),
    responses(
        (status = 202, description = "Accepted: the lead is published.", body = LeadAccepted,
            headers(
                ("idempotent-replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key."),
                ("traceparent" = String, description = "The trace of the lead's events."),
            )),
        (status = 303, description = "A form post of a form with a `redirect_url`: go to its thank-you page.",
            headers(("Location" = String, description = "The form's redirect_url."))),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::UnprocessableEntity),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["leads:write"]), ("form_token" = [])),
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        let kind = body_kind(&headers, true)?;
        let body = read_body(&headers, body, state.settings.max_body_bytes).await?;
        let query_token = query.as_deref().and_then(form_token_in_query);
        let (submission, body_token) = match kind {
            BodyKind::Json => (None, None),
            BodyKind::Form => {
                let mut pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                    .map_err(|e| ApiError::MalformedBody(e.to_string()))?;
                let token = pairs
                    .iter()
                    .position(|(k, _)| k == FORM_TOKEN)
                    .map(|i| pairs.swap_remove(i).1);
                let submission =
                    LeadSubmission::from_form(pairs).map_err(|e| ApiError::Validation(e.0));
                (Some(submission), token)
            }
        };
        let token = body_token.or(query_token);
        let caller = state
            .access
            .admit(&headers, token.as_deref(), Scope::LeadsWrite)?;
        let submission = match submission {
            Some(parsed) => parsed?,
            None => json::<LeadSubmission>(&body)?,
        };
        let key = idempotency_key(&headers)?;
        let accepted =
            accept_lead(&state, &caller, &headers, &body, key.as_deref(), submission).await?;
        Ok(answer(kind, &caller, accepted))
    }
    .await;
    outcome.unwrap_or_else(|error| refused(&state, error))
}

/// The answer to an accepted lead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LeadAccepted {
    /// The lead's id (a UUIDv7 unless a trusted caller brought its own).
    pub lead_id: String,
}

/// A refused lead submission: counted by reason, answered with the error body.
pub(crate) fn refused(state: &AppState, error: ApiError) -> Response {
    state
        .metrics
        .leads_rejected
        .with_label_values(&[error.rejection_reason()])
        .inc();
    error.into_response()
}

/// A lead that was published (or had been, for a replayed request).
#[derive(Debug)]
pub(crate) struct Accepted {
    pub lead_id: String,
    pub replayed: bool,
    pub trace: Option<TraceParent>,
}

/// Validates, publishes and records one lead submitted by `caller`. `body` is what the
/// idempotency fingerprint covers; `key` the client's idempotency key, if any.
pub(crate) async fn accept_lead(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Bytes,
    key: Option<&str>,
    submission: LeadSubmission,
) -> Result<Accepted, ApiError> {
    // This request's step of the lead's trace, exported when tracing is on (docs/tracing.md).
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "ingest.lead",
        otel.kind = "server",
        caller = %caller.name,
        lead_id = tracing::field::Empty,
    );
    let trace = TraceParent::for_span(
        &span,
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    );
    accept(state, caller, body, key, submission, trace)
        .instrument(span)
        .await
}

async fn accept(
    state: &AppState,
    caller: &Caller,
    body: &Bytes,
    key: Option<&str>,
    mut submission: LeadSubmission,
    trace: TraceParent,
) -> Result<Accepted, ApiError> {
    let now = Utc::now();
    let mut received_at = now;
    if caller.trusted {
        received_at = submission.received_at.take().unwrap_or(now);
    } else {
        // Only trusted systems may name a lead or date it: an id chosen by anyone else could
        // shadow another lead behind the router's de-duplication.
        submission.id = None;
        submission.received_at = None;
    }
    match caller.kind {
        CallerKind::Form => {
            submission.source.name.clone_from(&caller.name);
        }
        CallerKind::Webhook => {
            submission.source.kind = "webhook".to_owned();
            submission.source.name.clone_from(&caller.name);
        }
        CallerKind::ApiKey => {}
    }
    let request = IdempotentRequest::new(IDEMPOTENCY_SCOPE, caller, key, body);
    if let (Some(request), None) = (&request, &submission.id) {
        // A retry after an unknown broker answer then carries the same lead id, and the
        // router's de-duplication makes it the same lead.
        submission.id = Some(request.derived_id());
    }
    let lead = submission
        .into_lead(received_at)
        .map_err(|e| ApiError::Validation(e.0))?;

    let reservation = match request {
        Some(request) => match request.begin(state).await? {
            Begin::Proceed(reserved) => Some(reserved),
            Begin::Replay(lead_id) => {
                return Ok(Accepted {
                    lead_id,
                    replayed: true,
                    trace: None,
                })
            }
        },
        None => None,
    };

    tracing::Span::current().record("lead_id", tracing::field::display(&lead.id));
    if let Err(error) = publish_lead(state, &lead, trace, reservation.as_ref()).await {
        if let Some(reservation) = reservation {
            reservation.release(state).await;
        }
        return Err(error);
    }
    if let Err(e) = state
        .store
        .record_lead(
            &lead.id,
            &lead.source,
            lead.received_at,
            state.lead_retention.as_secs(),
            None,
        )
        .await
    {
        // The router records it too when it routes the lead; log and carry on.
        tracing::warn!(lead_id = %lead.id, error = %e, "cannot record the lead's attribution");
    }
    if let Some(reservation) = reservation {
        reservation.complete(state, lead.id.as_str()).await;
    }
    state.metrics.leads_received.inc();
    tracing::info!(
        lead_id = %lead.id,
        email = %mask_email(&lead.contact.email),
        source = %lead.source.kind,
        caller = %caller.name,
        trace_id = %trace.trace_id(),
        "lead accepted"
    );
    Ok(Accepted {
        lead_id: lead.id.as_str().to_owned(),
        replayed: false,
        trace: Some(trace),
    })
}

async fn publish_lead(
    state: &AppState,
    lead: &Lead,
    trace: TraceParent,
    reservation: Option<&IdempotentRequest>,
) -> Result<(), ApiError> {
    let mut event =
        OutboundEvent::lead_created(lead, trace).map_err(|e| unavailable("encoder", &e))?;
    for (key, value) in reservation
        .map(IdempotentRequest::rebuild_headers)
        .into_iter()
        .flatten()
    {
        event = event.with_header(key, value);
    }
    publish(state, &event).await
}

fn form_token_in_query(query: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == FORM_TOKEN)
        .map(|(_, v)| v)
}

/// A browser's plain form post goes on to the form's thank-you page; everyone else gets
/// the lead id.
fn answer(kind: BodyKind, caller: &Caller, accepted: Accepted) -> Response {
    if let (BodyKind::Form, Some(url)) = (kind, &caller.redirect_url) {
        if let Ok(location) = HeaderValue::from_str(url) {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
        }
    }
    accepted_response(&accepted)
}

pub(crate) fn accepted_response(accepted: &Accepted) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        Json(LeadAccepted {
            lead_id: accepted.lead_id.clone(),
        }),
    )
        .into_response();
    if accepted.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Some(value) = accepted
        .trace
        .and_then(|t| HeaderValue::from_str(&t.to_string()).ok())
    {
        response.headers_mut().insert("traceparent", value);
    }
    response
}
