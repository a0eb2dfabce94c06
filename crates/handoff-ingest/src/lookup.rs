//! Reading the lifecycle: `GET /v1/leads/{id}` (what happened to this lead, step by step)
//! and `GET /v1/queues`, `GET /v1/queues/{name}` (who is waiting, and for how long).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use handoff_config::Scope;
use handoff_domain::lead::Source;
use handoff_domain::{LeadId, QueueName};
use handoff_store::{LeadRecord, QueueView, StoreError, TimelineEntry};

use crate::{unavailable, ApiError, AppState};

/// Lead ids listed per queue unless `limit` says otherwise.
const DEFAULT_QUEUE_LIMIT: u32 = 100;
const MAX_QUEUE_LIMIT: u32 = 1000;

/// A lead's lifecycle: where it is now, its first decision, and every step with its time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LeadView {
    pub lead_id: String,
    /// `received`, `unqualified`, `waiting`, `assigned`, `touched` or `closed`.
    pub state: String,
    #[schema(value_type = Object)]
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rep_id: Option<String>,
    /// The current assignment attempt (0: not assigned).
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<DateTime<Utc>>,
    /// The running clock: the current attempt's first touch, or the queue wait's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub touched_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The score with its breakdown, as the first decision saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub score: Option<serde_json::Value>,
    /// The first decision's event (`lead.assigned`, or the UNQUALIFIED / OVERFLOWED
    /// `lead.disposition`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub decision: Option<serde_json::Value>,
    /// Every step, oldest first: `received`, `unqualified`, `waiting`, `assigned` (with the
    /// `lead.assigned` event: explanation, rules version), `adopted`, `breached`,
    /// reported outcomes (`accepted`, `contacted`, `converted`, ...).
    #[schema(value_type = Vec<Object>)]
    pub timeline: Vec<TimelineEntry>,
}

fn time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

impl LeadView {
    fn new(lead_id: &str, record: LeadRecord, timeline: Vec<TimelineEntry>) -> Self {
        let decision: Option<serde_json::Value> = record
            .decision
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        Self {
            lead_id: lead_id.to_owned(),
            state: record.state.as_str().to_owned(),
            source: record.source,
            received_at: time(record.received_ms),
            team_id: record.team.map(|t| t.into_string()),
            rep_id: record.rep.map(|r| r.into_string()),
            attempt: record.attempt,
            assigned_at: time(record.assigned_ms),
            due_at: time(record.due_ms).filter(|_| {
                matches!(
                    record.state,
                    handoff_domain::lifecycle::LeadState::Assigned
                        | handoff_domain::lifecycle::LeadState::Waiting
                )
            }),
            queue: record.queue.map(|q| q.into_string()),
            queued_at: time(record.queued_ms),
            touched_at: time(record.touched_ms),
            closed_at: time(record.closed_ms),
            outcome: record.outcome,
            score: decision.as_ref().and_then(|d| d.get("score").cloned()),
            decision,
            timeline,
        }
    }
}

fn store_failed(e: StoreError) -> ApiError {
    unavailable("redis", &e)
}

/// What happened to a lead.
#[utoipa::path(
    get,
    path = "/v1/leads/{id}",
    operation_id = "get_lead",
    tag = "public",
    params(("id" = String, Path, min_length = 1, description = "The lead's id.")),
    responses(
        (status = 200, description = "The lead's lifecycle.", body = LeadView),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["leads:read"])),
)]
pub(crate) async fn lead(
    State(state): State<AppState>,
    Path(lead_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        state.access.admit(&headers, None, Scope::LeadsRead)?;
        let record = state
            .store
            .lead(&lead_id)
            .await
            .map_err(store_failed)?
            .ok_or(ApiError::NotFound("lead"))?;
        let timeline = state
            .store
            .timeline(&LeadId::from(lead_id.as_str()))
            .await
            .map_err(store_failed)?;
        Ok::<_, ApiError>(LeadView::new(&lead_id, record, timeline))
    };
    match outcome.await {
        Ok(view) => (StatusCode::OK, Json(view)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A queue: how many wait, since when, and who (oldest first).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QueueSummary {
    pub name: String,
    pub depth: u64,
    /// How long the first-come lead has waited since it arrived, in seconds (0 when empty).
    pub oldest_wait_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_received_at: Option<DateTime<Utc>>,
    /// Waiting leads, first come first (`GET /v1/queues/{name}` only; up to `limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leads: Option<Vec<WaitingLeadView>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WaitingLeadView {
    pub lead_id: String,
    pub received_at: Option<DateTime<Utc>>,
    /// Since it arrived.
    pub wait_seconds: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct QueueList {
    pub queues: Vec<QueueSummary>,
}

fn wait_seconds(since_ms: i64, now: DateTime<Utc>) -> f64 {
    (now.timestamp_millis() - since_ms).max(0) as f64 / 1000.0
}

impl QueueSummary {
    fn new(view: QueueView, with_leads: bool, now: DateTime<Utc>) -> Self {
        Self {
            name: view.name.into_string(),
            depth: view.depth,
            oldest_wait_seconds: view
                .oldest_received_ms
                .map_or(0.0, |ms| wait_seconds(ms, now)),
            oldest_received_at: time(view.oldest_received_ms),
            leads: with_leads.then(|| {
                view.leads
                    .into_iter()
                    .map(|(id, ms)| WaitingLeadView {
                        lead_id: id.to_string(),
                        received_at: time(Some(ms)),
                        wait_seconds: wait_seconds(ms, now),
                    })
                    .collect()
            }),
        }
    }
}

/// Every queue of the current rules (and any other that holds leads).
#[utoipa::path(
    get,
    path = "/v1/queues",
    operation_id = "list_queues",
    tag = "public",
    responses(
        (status = 200, description = "Every queue with its depth and oldest wait.", body = QueueList),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["leads:read"])),
)]
pub(crate) async fn queues(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let outcome = async {
        state.access.admit(&headers, None, Scope::LeadsRead)?;
        let mut names: Vec<QueueName> = state.store.queue_names().await.map_err(store_failed)?;
        let rules = state.rules.current();
        names.extend(rules.routing.queue_names().into_iter().map(QueueName::from));
        names.sort();
        names.dedup();
        let now = Utc::now();
        let mut queues = Vec::with_capacity(names.len());
        for name in names {
            let view = state.store.queue(&name, 1).await.map_err(store_failed)?;
            queues.push(QueueSummary::new(view, false, now));
        }
        Ok::<_, ApiError>(QueueList { queues })
    };
    match outcome.await {
        Ok(list) => (StatusCode::OK, Json(list)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QueueQuery {
    /// How many waiting leads to list, oldest first (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// One queue with its waiting leads, oldest first.
#[utoipa::path(
    get,
    path = "/v1/queues/{name}",
    operation_id = "get_queue",
    tag = "public",
    params(("name" = String, Path, min_length = 1, description = "The queue's name."), QueueQuery),
    responses(
        (status = 200, description = "The queue.", body = QueueSummary),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 422, response = crate::openapi::UnprocessableEntity),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["leads:read"])),
)]
pub(crate) async fn queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        state.access.admit(&headers, None, Scope::LeadsRead)?;
        let Query(query) = query.map_err(|e| {
            ApiError::Validation(vec![handoff_domain::validation::FieldError::new(
                "limit",
                "invalid",
                format!("limit must be a whole number from 1 to {MAX_QUEUE_LIMIT}: {e}"),
            )])
        })?;
        let limit = query.limit.unwrap_or(DEFAULT_QUEUE_LIMIT);
        if !(1..=MAX_QUEUE_LIMIT).contains(&limit) {
            return Err(ApiError::Validation(vec![
                handoff_domain::validation::FieldError::new(
                    "limit",
                    "out_of_range",
                    format!("limit must be from 1 to {MAX_QUEUE_LIMIT}"),
                ),
            ]));
        }
        let name = QueueName::from(name.as_str());
        let known_by_rules = state
            .rules
            .current()
            .routing
            .queue_names()
            .contains(&name.as_str());
        let view = state
            .store
            .queue(&name, limit)
            .await
            .map_err(store_failed)?;
        if view.depth == 0 && !known_by_rules {
            let known = state.store.queue_names().await.map_err(store_failed)?;
            if !known.contains(&name) {
                return Err(ApiError::NotFound("queue"));
            }
        }
        Ok(QueueSummary::new(view, true, Utc::now()))
    };
    match outcome.await {
        Ok(summary) => (StatusCode::OK, Json(summary)).into_response(),
        Err(e) => e.into_response(),
    }
}
