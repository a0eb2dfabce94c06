//! `GET /v1/scorecard?period=2026-12`: the sales–marketing agreement's scorecard for a
//! month or quarter and the one before (handoff-domain's scorecard, from the facts the
//! funnel keeps per day; the rules file's `[agreement]` has the targets).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use handoff_config::Scope;
use handoff_domain::agreement::PeriodKind;
use handoff_domain::scorecard::{scorecard, Period, PeriodCard};
use handoff_domain::validation::FieldError;

use crate::{unavailable, ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ScorecardQuery {
    /// A month (`2026-12`) or quarter (`2026-Q4`) from 2000 on; default: this month (UTC).
    #[param(pattern = r"^\s*([2-9][0-9]{3}-(0[1-9]|1[0-2]|[Qq][1-4]))?\s*$")]
    period: Option<String>,
}

/// The scorecard: each commitment with its target, actual, pace and projection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ScorecardView {
    /// The rules version whose `[agreement]` this is.
    pub rules_version: String,
    pub first_touch_window_minutes: u32,
    pub feedback_window_hours: u32,
    /// The period asked for: `period`, `from`, `to`, `elapsed` (0 to 1) and `lines`, one
    /// per commitment and segment: `commitment`, `side` (marketing, sales, shared),
    /// `segment`, `currency`, `target`, `actual`, `counts` (rates: numerator and
    /// denominator), `expected_to_date`, `pace`, `projected`, `status` (`on_track`,
    /// `behind`, `no_data`, `not_started`) and `targets`: the days each target entry
    /// applies to (more than one when a target changed within the period).
    #[schema(value_type = Object)]
    pub current: PeriodCard,
    /// The period before, the same way.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<PeriodCard>,
}

/// The agreement's scorecard for a period and the one before.
#[utoipa::path(
    get,
    path = "/v1/scorecard",
    operation_id = "get_scorecard",
    tag = "public",
    params(ScorecardQuery),
    responses(
        (status = 200, description = "The scorecard.", body = ScorecardView),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 422, response = crate::openapi::UnprocessableEntity),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, response = crate::openapi::ServiceUnavailable),
    ),
    security(("api_key" = ["leads:read"])),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    query: Result<Query<ScorecardQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        state.access.admit(&headers, None, Scope::LeadsRead)?;
        let Query(query) = query.map_err(|e| {
            ApiError::Validation(vec![FieldError::new(
                "period",
                "invalid",
                format!("period must be a month (2026-12) or a quarter (2026-Q4): {e}"),
            )])
        })?;
        let now = Utc::now();
        let period = match query.period.as_deref().map(str::trim) {
            None | Some("") => Period::containing(PeriodKind::Month, now.date_naive()),
            Some(text) => Some(Period::parse(text).map_err(|message| {
                ApiError::Validation(vec![FieldError::new("period", "invalid", message)])
            })?),
        }
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                "period",
                "invalid",
                "period is out of range",
            )])
        })?;
        let from = period.previous().map_or(period.start, |p| p.start);
        let facts = state
            .store
            .scorecard_facts(from, period.end)
            .await
            .map_err(|e| unavailable("redis", &e))?;
        let rules = state.rules.current();
        let card = scorecard(&rules.agreement, &rules.version, period, now, &facts);
        Ok::<_, ApiError>(ScorecardView {
            rules_version: card.rules_version,
            first_touch_window_minutes: card.first_touch_window_minutes,
            feedback_window_hours: card.feedback_window_hours,
            current: card.current,
            previous: card.previous,
        })
    };
    match outcome.await {
        Ok(view) => (StatusCode::OK, Json(view)).into_response(),
        Err(e) => e.into_response(),
    }
}
