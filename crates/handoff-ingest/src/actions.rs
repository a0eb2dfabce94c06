//! `/v1/actions/{token}`: the accept/reject links of a rep's notification.
//!
//! ```text
//!  GET  → verify token → used? → lead open, still this rep's attempt? → confirmation page
//!  POST → same checks → mark used (SET NX) → publish lead.disposition (actor: the rep)
//!         → apply it to the store          (the dispositions API's path, `dispositions`)
//! ```
//! GET never changes anything: chat apps unfurl links and mail scanners fetch them before a
//! person does, so following a link only shows a page whose button POSTs. The token is the
//! credential (signed, expiring, naming lead, rep, attempt and action:
//! `handoff_domain::action_link`); single use is a Redis mark on its id, released again if
//! nothing could be published. Browsers get HTML, also for refusals; a client asking for
//! `application/json` gets JSON and the usual error body.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use handoff_config::ActionLinkSettings;
use handoff_domain::action_link::{self, ActionClaim, LinkAction, LinkError};
use handoff_domain::disposition::{Actor, ActorKind, DispositionSubmission, Outcome};
use handoff_domain::events::{stable_event_id, EventKind, LeadAssigned};
use handoff_domain::lifecycle::LeadState;
use handoff_store::LeadRecord;

use crate::dispositions::{
    apply_disposition, check_reason_code, disposition_event, publish_disposition,
    DispositionAccepted,
};
use crate::request::{body_kind, json, read_body, BodyKind};
use crate::{unavailable, ApiError, AppState, ErrorBody};

/// The key links are verified with, and how long a used link's mark is kept.
#[derive(Clone)]
pub(crate) struct ActionKeys {
    key: Vec<u8>,
    /// A link lives at most this long after it was sent, so its mark need not outlive it.
    mark_ttl: Duration,
}

impl ActionKeys {
    /// `None` when links are off (no public URL or no key): the routes answer 404.
    pub(crate) fn new(settings: &ActionLinkSettings) -> Option<Self> {
        settings.enabled().then(|| Self {
            key: settings.secret.expose().as_bytes().to_vec(),
            mark_ttl: Duration::from_secs(settings.ttl_seconds),
        })
    }
}

impl std::fmt::Debug for ActionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActionKeys([redacted])")
    }
}

/// What the confirmation page offers, for clients that ask for JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ActionView {
    pub lead_id: String,
    /// `accept` or `reject`.
    pub action: &'static str,
    /// The rep the link acts as.
    pub rep_id: String,
    pub attempt: u32,
    pub expires_at: Option<DateTime<Utc>>,
    /// The reason codes a rejection may give (`reject` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
}

/// The confirmation form's fields (a rejection needs `reason_code`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionSubmission {
    /// One of `ingest.reason_codes`; required to reject.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "bad_timing")]
    pub reason_code: Option<String>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// Shows what following the link would record, and a button that does it. Changes nothing.
#[utoipa::path(
    get,
    path = "/v1/actions/{token}",
    operation_id = "show_action",
    tag = "public",
    params(("token" = String, Path, min_length = 1, description = "The signed link token from the rep's message.")),
    responses(
        (status = 200, description = "The confirmation page (HTML for browsers; JSON when asked for).",
            content((String = "text/html"), (ActionView = "application/json"))),
        (status = 403, description = "`link_invalid`: altered or incomplete.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 404, description = "`not_found`: the lead is unknown, or links are off.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 409, description = "`lead_closed`, or `link_superseded`: the lead was reassigned since.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 410, description = "`link_expired` or `link_used`.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, description = "Redis is unavailable, or the server is overloaded.", content((String = "text/html"), (ErrorBody = "application/json"))),
    ),
    security(()),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let shown = async {
        let link = checked(&state, &token).await?;
        if used(&state, &link.claim).await? {
            return Err(ApiError::LinkUsed);
        }
        link.still_current()?;
        Ok(link)
    };
    match shown.await {
        Ok(link) if json => Json(link.view(&state.settings.reason_codes)).into_response(),
        Ok(link) => html(StatusCode::OK, &link.page(&state.settings.reason_codes)),
        Err(error) => refuse(error, json),
    }
}

/// Records the link's outcome as the rep, exactly as `POST /v1/leads/{id}/dispositions`
/// does; once.
#[utoipa::path(
    post,
    path = "/v1/actions/{token}",
    operation_id = "record_action",
    tag = "public",
    params(("token" = String, Path, min_length = 1, description = "The signed link token from the rep's message.")),
    request_body(content(
        (ActionSubmission = "application/x-www-form-urlencoded"),
        (ActionSubmission = "application/json"),
    )),
    responses(
        (status = 200, description = "Recorded (the page for browsers).", body = String, content_type = "text/html"),
        (status = 202, description = "Recorded: `lead.disposition` is published (JSON clients).", body = DispositionAccepted),
        (status = 400, description = "`malformed_body`.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 403, description = "`link_invalid`: altered or incomplete.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 404, description = "`not_found`: the lead is unknown, or links are off.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 408, response = crate::openapi::RequestTimeout),
        (status = 409, description = "`lead_closed`, or `link_superseded`: the lead was reassigned since.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 410, description = "`link_expired` or `link_used`.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 413, description = "`body_too_large`.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 415, description = "`unsupported_media_type`.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 422, description = "`validation_failed`: e.g. a rejection without an allowed `reason_code`.", content((String = "text/html"), (ErrorBody = "application/json"))),
        (status = 429, response = crate::openapi::TooManyRequests),
        (status = 503, description = "Redis or the broker is unavailable: nothing was recorded, the link still works.", content((String = "text/html"), (ErrorBody = "application/json"))),
    ),
    security(()),
)]
pub(crate) async fn record(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let json = wants_json(&headers);
    match recorded(&state, &token, &headers, body).await {
        Ok((link, event_id)) if json => (
            StatusCode::ACCEPTED,
            Json(DispositionAccepted {
                lead_id: link.claim.lead.to_string(),
                event_id,
            }),
        )
            .into_response(),
        Ok((link, _)) => html(StatusCode::OK, &link.done()),
        Err(error) => refuse(error, json),
    }
}

async fn recorded(
    state: &AppState,
    token: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Link, String), ApiError> {
    let link = checked(state, token).await?;
    let body = read_body(headers, body, state.settings.max_body_bytes).await?;
    let form: ActionSubmission = if body.is_empty() {
        ActionSubmission::default()
    } else {
        match body_kind(headers, true)? {
            BodyKind::Json => json(&body)?,
            BodyKind::Form => serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::MalformedBody(e.to_string()))?,
        }
    };
    let outcome = match link.claim.action {
        LinkAction::Accept => Outcome::Accepted,
        LinkAction::Reject => Outcome::Rejected,
    };
    let mut disposition = DispositionSubmission {
        outcome: Some(outcome.as_str().to_owned()),
        reason_code: form.reason_code,
        note: form.note,
        ..DispositionSubmission::default()
    }
    .validate(Utc::now())
    .map_err(|e| ApiError::Validation(e.0))?;
    check_reason_code(&disposition, &state.settings.reason_codes)?;
    // Used before closed: a second click on a rejection must hear "used", not "closed".
    if used(state, &link.claim).await? {
        return Err(ApiError::LinkUsed);
    }
    link.still_current()?;
    disposition.actor = Actor {
        kind: ActorKind::Rep,
        id: link.claim.rep.to_string(),
    };
    let keys = state
        .actions
        .as_ref()
        .ok_or(ApiError::NotFound("action link"))?;
    let id = &link.claim.id;
    if !state
        .store
        .use_action_link(id, keys.mark_ttl)
        .await
        .map_err(|e| unavailable("redis", &e))?
    {
        return Err(ApiError::LinkUsed);
    }
    // One event id per link: a retry after a failed publish names the same report.
    let event_id = stable_event_id(EventKind::LeadDisposition, &["action", id]);
    let lead_id = link.claim.lead.to_string();
    let event = disposition_event(&lead_id, disposition, link.record.clone());
    let trace = headers.get("traceparent").and_then(|v| v.to_str().ok());
    if let Err(error) = publish_disposition(state, &event, &event_id, trace).await {
        // Nothing was published: the rep may try again.
        if let Err(e) = state.store.release_action_link(id).await {
            tracing::warn!(%lead_id, error = %e, "cannot release an action link after a failed publish; it stays used");
        }
        return Err(error);
    }
    let caller = format!("action link of rep {}", link.claim.rep);
    apply_disposition(state, &event, &event_id, &caller).await;
    Ok((link, event_id))
}

/// A genuine, unexpired link and the lead it is about.
struct Link {
    claim: ActionClaim,
    record: LeadRecord,
}

async fn checked(state: &AppState, token: &str) -> Result<Link, ApiError> {
    let keys = state
        .actions
        .as_ref()
        .ok_or(ApiError::NotFound("action link"))?;
    let claim = action_link::verify(token, &keys.key, Utc::now()).map_err(|e| match e {
        LinkError::Invalid => ApiError::LinkInvalid,
        LinkError::Expired => ApiError::LinkExpired,
    })?;
    let record = state
        .store
        .lead(claim.lead.as_str())
        .await
        .map_err(|e| unavailable("redis", &e))?
        .ok_or(ApiError::NotFound("lead"))?;
    Ok(Link { claim, record })
}

async fn used(state: &AppState, claim: &ActionClaim) -> Result<bool, ApiError> {
    state
        .store
        .action_link_used(&claim.id)
        .await
        .map_err(|e| unavailable("redis", &e))
}

impl Link {
    /// The lead is open and still on the attempt (and rep) the link was sent for.
    fn still_current(&self) -> Result<(), ApiError> {
        if self.record.state == LeadState::Closed {
            return Err(ApiError::LeadClosed {
                outcome: self.record.outcome.clone(),
            });
        }
        let same_rep = self.record.rep.as_ref() == Some(&self.claim.rep);
        if self.record.attempt != self.claim.attempt || !same_rep {
            return Err(ApiError::LinkSuperseded);
        }
        Ok(())
    }

    fn view(&self, reason_codes: &[String]) -> ActionView {
        ActionView {
            lead_id: self.claim.lead.to_string(),
            action: self.claim.action.as_str(),
            rep_id: self.claim.rep.to_string(),
            attempt: self.claim.attempt,
            expires_at: self.claim.expires_at(),
            reason_codes: match self.claim.action {
                LinkAction::Accept => Vec::new(),
                LinkAction::Reject => reason_codes.to_vec(),
            },
        }
    }

    /// Who the lead is, for the page: name and company, never how to reach them.
    fn who(&self) -> String {
        let summary = self
            .record
            .assigned
            .as_deref()
            .and_then(|a| serde_json::from_str::<LeadAssigned>(a).ok())
            .and_then(|a| a.lead);
        let mut parts = Vec::new();
        if let Some(s) = &summary {
            parts.extend(s.name());
            if !s.company.is_empty() {
                parts.push(s.company.clone());
            }
        }
        if parts.is_empty() {
            format!("lead {}", self.claim.lead)
        } else {
            format!("{} (lead {})", parts.join(", "), self.claim.lead)
        }
    }

    fn page(&self, reason_codes: &[String]) -> String {
        let who = escape(&self.who());
        let form = match self.claim.action {
            LinkAction::Accept => format!(
                "<h1>Accept this lead?</h1><p>{who}</p>\
                 <form method=\"post\"><button type=\"submit\">Accept lead</button></form>"
            ),
            LinkAction::Reject => {
                let options: String = reason_codes
                    .iter()
                    .map(|code| {
                        let code = escape(code);
                        format!("<option value=\"{code}\">{code}</option>")
                    })
                    .collect();
                format!(
                    "<h1>Reject this lead?</h1><p>{who}</p>\
                     <form method=\"post\">\
                     <p><label>Reason <select name=\"reason_code\" required>{options}</select></label></p>\
                     <p><label>Note (optional)<br><textarea name=\"note\" rows=\"3\" cols=\"40\"></textarea></label></p>\
                     <button type=\"submit\">Reject lead</button></form>"
                )
            }
        };
        let note = match self.claim.expires_at() {
            Some(at) => format!(
                "<p><small>Recorded as rep {} · this link works once, until {}.</small></p>",
                escape(self.claim.rep.as_str()),
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            None => String::new(),
        };
        document("Lead action", &format!("{form}{note}"))
    }

    fn done(&self) -> String {
        let what = match self.claim.action {
            LinkAction::Accept => "accepted",
            LinkAction::Reject => "rejected",
        };
        document(
            "Recorded",
            &format!(
                "<h1>Recorded</h1><p>You {what} {}. Marketing sees it now.</p>",
                escape(&self.who())
            ),
        )
    }
}

/// Browsers get pages; a client that asks for JSON (and not HTML) gets JSON.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    accept.contains("application/json") && !accept.contains("text/html")
}

fn refuse(error: ApiError, json: bool) -> Response {
    if json {
        return error.into_response();
    }
    let status = error.status();
    let body = document(
        "Not recorded",
        &format!(
            "<h1>Not recorded</h1><p>{}</p><p><small>{}</small></p>",
            escape(&error_message(&error)),
            error.code()
        ),
    );
    // The one place errors become HTTP decides Retry-After; the page keeps it.
    let retry_after = error
        .into_response()
        .headers()
        .get(header::RETRY_AFTER)
        .cloned();
    let mut response = html(status, &body);
    if let Some(value) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn error_message(error: &ApiError) -> String {
    match error {
        ApiError::Validation(fields) => fields
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        other => other.message(),
    }
}

fn html(status: StatusCode, body: &str) -> Response {
    let mut response = (status, body.to_owned()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The token is in the URL: keep it out of caches and other sites' Referer.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · handoff</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         button{{font-size:1rem;padding:.5rem 1rem}}</style></head><body>{body}</body></html>"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
