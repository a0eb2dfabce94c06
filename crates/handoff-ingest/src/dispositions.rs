//! `POST /v1/leads/{id}/dispositions`: a rep's or CRM's outcome, published as
//! `lead.disposition` with the lead's attribution so marketing sees what became of it.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use handoff_config::Scope;
use handoff_domain::disposition::{Actor, ActorKind, Disposition, DispositionSubmission, Money};
use handoff_domain::events::{EventKind, LeadDisposition};
use handoff_domain::lifecycle::LeadState;
use handoff_domain::validation::FieldError;
use handoff_domain::LeadId;
use handoff_kafka::{OutboundEvent, TraceParent};
use handoff_store::LeadRecord;

use crate::access::Caller;
use crate::idempotency::{idempotency_key, Begin, IdempotentRequest};
use crate::request::{body_kind, json, read_body};
use crate::{publish, unavailable, ApiError, AppState};

const IDEMPOTENCY_SCOPE: &str = "disposition";
/// Clocks of reps' devices and CRMs drift; this much of the future is "now".
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Reports what became of a lead (accepted, contacted, rejected, converted, recycled).
///
/// A rep's own key reports only as that rep and only for leads assigned to them; a system
/// key (a CRM) may name the rep in `actor_id`. With an `Idempotency-Key`, a retry with the
/// same body answers with the first event.
#[utoipa::path(
    post,
    path = "/v1/leads/{id}/dispositions",
    operation_id = "submit_disposition",
    tag = "public",
    request_body(content = DispositionSubmission, content_type = "application/json",
        example = json!({"outcome": "contacted", "note": "left a voicemail"})),
    params(
        ("id" = String, Path, min_length = 1, description = "The lead's id."),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
            description = "Makes retries safe: 1 to 255 visible ASCII characters."),
        ("traceparent" = Option<String>, Header, nullable = false, description = "W3C trace context."),
    ),
    responses(
        (status = 202, description = "Accepted: `lead.disposition` is published.", body = DispositionAccepted),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 409, response = crate::openapi::Conflict),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::UnprocessableEntity),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["dispositions:write"])),
)]
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
    let caller = state
        .access
        .admit(headers, None, Scope::DispositionsWrite)?;
    body_kind(headers, false)?;
    let body = read_body(headers, body, state.settings.max_body_bytes).await?;
    let now = Utc::now();
    let submission = json::<DispositionSubmission>(&body)?;
    let stated = submission.occurred_at.is_some();
    let mut disposition = submission
        .validate(now)
        .map_err(|e| ApiError::Validation(e.0))?;
    check_reason_code(&disposition, &state.settings.reason_codes)?;
    let record = state
        .store
        .lead(lead_id)
        .await
        .map_err(|e| unavailable("redis", &e))?
        .ok_or(ApiError::NotFound("lead"))?;
    let key = idempotency_key(headers)?.map(|key| format!("{lead_id}/{key}"));
    let request = IdempotentRequest::new(IDEMPOTENCY_SCOPE, &caller, key.as_deref(), &body);
    let event_id = request.as_ref().map_or_else(
        || uuid::Uuid::now_v7().to_string(),
        IdempotentRequest::derived_id,
    );
    // The tracker refuses reports for a closed lead too (a race between two reports); the
    // reporter hears it here. Unless this is a retry of the very report that closed it
    // (applied, but its key never marked complete: the process died in between): that
    // hears its first answer, as any retry does.
    if record.state == LeadState::Closed {
        let applied = request.is_some()
            && state
                .store
                .report_applied(lead_id, &event_id)
                .await
                .map_err(|e| unavailable("redis", &e))?;
        if applied {
            return Ok(accepted(lead_id, &event_id));
        }
        return Err(ApiError::LeadClosed {
            outcome: record.outcome,
        });
    }
    disposition.actor = actor(&caller, &disposition.actor, &record)?;
    // A report without a time happened now: after the record just read. Taking the time
    // from before the read refused a touch whose lead was reassigned meanwhile as "before
    // the lead's assignment" (found by the chaos run under load). And never before what the
    // record says already happened: the assignment time is on the router's reading of
    // Redis's clock, which may be ahead of this host's by a few milliseconds (or more, after
    // a slow measurement); that difference is ours, not the reporter's mistake.
    let checked_at = if stated {
        now
    } else {
        disposition.occurred_at = reported_now(now, &record);
        disposition.occurred_at
    };
    check_occurred_at(disposition.occurred_at, checked_at, &record)?;

    let reservation = match request {
        Some(request) => match request.begin(state).await? {
            Begin::Proceed(reserved) => Some(reserved),
            Begin::Replay(event_id) => return Ok(accepted(lead_id, &event_id)),
        },
        None => None,
    };

    let event = disposition_event(lead_id, disposition, record);
    let trace = headers.get("traceparent").and_then(|v| v.to_str().ok());
    if let Err(error) = publish_disposition(state, &event, &event_id, trace).await {
        if let Some(reservation) = reservation {
            reservation.release(state).await;
        }
        return Err(error);
    }
    if let Some(reservation) = reservation {
        reservation.complete(state, &event_id).await;
    }
    apply_disposition(state, &event, &event_id, &caller.name).await;
    Ok(accepted(lead_id, &event_id))
}

/// The `lead.disposition` of a checked report, with the lead's attribution.
pub(crate) fn disposition_event(
    lead_id: &str,
    disposition: Disposition,
    record: LeadRecord,
) -> LeadDisposition {
    let value = disposition.value;
    LeadDisposition {
        lead_id: LeadId::from(lead_id),
        outcome: disposition.outcome,
        reason_code: disposition.reason_code,
        note: disposition.note,
        actor: disposition.actor,
        occurred_at: disposition.occurred_at,
        source: record.source,
        score: None,
        team_id: record.team,
        rep_id: record.rep,
        queue: record.queue,
        amount: value.as_ref().map(Money::amount_text).unwrap_or_default(),
        currency: value.map(|m| m.currency).unwrap_or_default(),
    }
}

/// Publishes a report (the API's and the action links' one path); `Err` means nothing
/// was published.
pub(crate) async fn publish_disposition(
    state: &AppState,
    event: &LeadDisposition,
    event_id: &str,
    traceparent: Option<&str>,
) -> Result<(), ApiError> {
    let trace = TraceParent::child_of(traceparent);
    match OutboundEvent::new(
        EventKind::LeadDisposition,
        event_id.to_owned(),
        event.lead_id.as_str(),
        Utc::now(),
        trace,
        event,
    ) {
        Ok(outbound) => publish(state, &outbound).await,
        Err(e) => Err(unavailable("encoder", &e)),
    }
}

/// Applies a published report to the lead's state. The event is durable; it is applied
/// now rather than when the SLA tracker reads it, so a touch reported before the deadline
/// stops the clock before the deadline (the tracker then finds it applied). If Redis fails
/// here, the tracker applies it from the topic.
pub(crate) async fn apply_disposition(
    state: &AppState,
    event: &LeadDisposition,
    event_id: &str,
    caller: &str,
) {
    let lead_id = &event.lead_id;
    match state
        .store
        .report_disposition(
            event,
            event_id,
            state.release,
            state.closed_retention.as_secs(),
            &|at, team, rep| state.clocks.disposition_from_touch(at, team, rep),
        )
        .await
    {
        Ok(Some(outcome)) => handoff_sla::record_report(&state.metrics, event, &outcome),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(%lead_id, error = %e, "report published; applying it is left to the SLA tracker");
        }
    }
    let outcome = event.outcome;
    state
        .metrics
        .dispositions
        .with_label_values(&[outcome.as_str()])
        .inc();
    tracing::info!(%lead_id, outcome = outcome.as_str(), %caller, "disposition recorded");
}

/// Rejection reasons come from one documented list, so marketing can count them.
pub(crate) fn check_reason_code(
    disposition: &Disposition,
    allowed: &[String],
) -> Result<(), ApiError> {
    if disposition.reason_code.is_empty() || allowed.contains(&disposition.reason_code) {
        return Ok(());
    }
    Err(ApiError::Validation(vec![FieldError::new(
        "reason_code",
        "not_allowed",
        format!("reason_code must be one of {}", allowed.join(", ")),
    )]))
}

/// Who reported it is the key's identity: a rep's own key acts only as that rep and only
/// for that rep's leads; a system key (a CRM) may act for any rep it names.
fn actor(caller: &Caller, claimed: &Actor, record: &LeadRecord) -> Result<Actor, ApiError> {
    match &caller.rep {
        Some(rep) => {
            if !claimed.id.is_empty() && claimed.id != *rep {
                return Err(ApiError::Forbidden(format!(
                    "this key reports only as rep {rep}"
                )));
            }
            if record.rep.as_ref().map(|r| r.as_str()) != Some(rep.as_str()) {
                return Err(ApiError::Forbidden(format!(
                    "this key reports only for leads assigned to rep {rep}"
                )));
            }
            Ok(Actor {
                kind: ActorKind::Rep,
                id: rep.clone(),
            })
        }
        None if claimed.id.is_empty() => Ok(Actor {
            kind: ActorKind::Crm,
            id: caller.name.clone(),
        }),
        None => Ok(claimed.clone()),
    }
}

/// The time of a report that states none: now, never before `read_at` (the clock may step),
/// nor before the assignment (or arrival) the record holds.
fn reported_now(read_at: DateTime<Utc>, record: &LeadRecord) -> DateTime<Utc> {
    let recorded = record
        .assigned_ms
        .or(record.received_ms)
        .and_then(DateTime::from_timestamp_millis);
    Utc::now().max(read_at).max(recorded.unwrap_or(read_at))
}

/// An outcome cannot come from the future, nor from before the lead was assigned (or,
/// while it waits for an assignment, before it arrived).
fn check_occurred_at(
    occurred_at: DateTime<Utc>,
    now: DateTime<Utc>,
    record: &LeadRecord,
) -> Result<(), ApiError> {
    let latest = now + CLOCK_SKEW;
    if occurred_at > latest {
        return Err(ApiError::Validation(vec![FieldError::new(
            "occurred_at",
            "in_future",
            "occurred_at must not be in the future",
        )]));
    }
    let (floor, what) = match (record.assigned_ms, record.received_ms) {
        (Some(ms), _) => (ms, "the lead's assignment"),
        (None, Some(ms)) => (ms, "the lead's arrival"),
        (None, None) => return Ok(()),
    };
    if occurred_at.timestamp_millis() < floor {
        return Err(ApiError::Validation(vec![FieldError::new(
            "occurred_at",
            "too_early",
            format!("occurred_at must not be before {what}"),
        )]));
    }
    Ok(())
}

/// The answer to an accepted disposition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DispositionAccepted {
    pub lead_id: String,
    /// The `lead.disposition` event's id; the same for every retry with one Idempotency-Key.
    pub event_id: String,
}

fn accepted(lead_id: &str, event_id: &str) -> Response {
    let body = DispositionAccepted {
        lead_id: lead_id.to_owned(),
        event_id: event_id.to_owned(),
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}
