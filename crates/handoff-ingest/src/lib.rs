//! ingest: the HTTP front door, on two listeners.
//!
//! ```text
//!  public (ingest.listen)                      internal (admin.listen, never exposed)
//!   POST /v1/leads            leads:write        GET/PUT /v1/reps/{id}   reps:read/write
//!        (API key, or a form token; CORS)        /metrics /healthz /readyz /openapi.json
//!   POST /v1/webhooks/{source} signed (Standard Webhooks)
//!   POST /v1/leads/{id}/dispositions  dispositions:write
//!   GET/POST /v1/actions/{token}  a rep's accept/reject link (the token is the credential)
//!   GET  /healthz /readyz
//! ```
//! Every public request passes, in order: a bound on concurrent requests (503), a
//! per-address rate limit (429), a whole-request timeout (408); then the handler checks
//! the caller's key and scope (401/403) and its per-key rate limit (429).
//!
//! Like zero-to-production's `Application`: [`Ingest::build`] binds (port 0 works),
//! [`Ingest::local_addr`] reports the port, [`Ingest::run_until_stopped`] serves.

mod access;
mod actions;
mod dispositions;
mod error;
mod idempotency;
mod intake;
mod leads;
mod lookup;
mod openapi;
mod reps;
mod request;
mod scorecard;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use handoff_config::{ActionLinkSettings, IngestSettings, RulesHandle};
use handoff_domain::lifecycle::CapacityRelease;
use handoff_kafka::EventProducer;
use handoff_store::Store;
use handoff_telemetry::{Metrics, Readiness};

use crate::access::Access;
pub use error::{ApiError, ErrorBody};
pub use intake::{verify as verify_webhook, TOLERANCE as WEBHOOK_TOLERANCE};
pub use openapi::document_json as openapi_document;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("ingest.cors_allowed_origins: {origin:?} is not a valid origin")]
    CorsOrigin { origin: String },
}

/// What ingest talks to, built by the binary (or a test) and shared with other services.
#[derive(Debug, Clone)]
pub struct IngestDeps {
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: Metrics,
    /// Checks served at `/readyz`.
    pub readiness: Readiness,
    /// How long a lead's record is kept for dispositions (redis.lead_retention_days).
    pub lead_retention: Duration,
    /// How long a closed lead stays readable, and when a rep's capacity comes back: for
    /// applying reports as soon as they are published.
    pub closed_retention: Duration,
    pub release: CapacityRelease,
    /// The rules in force (which reps exist, their defaults).
    pub rules: RulesHandle,
    /// The disposition clock a first touch starts (applied with the report).
    pub clocks: handoff_sla::Clocks,
    /// The accept/reject links' key (links are off without `actions.public_url`).
    pub actions: ActionLinkSettings,
}

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub settings: Arc<IngestSettings>,
    pub lead_retention: Duration,
    pub closed_retention: Duration,
    pub release: CapacityRelease,
    pub rules: RulesHandle,
    pub clocks: handoff_sla::Clocks,
    pub access: Access,
    pub actions: Option<actions::ActionKeys>,
}

#[derive(Debug)]
pub struct Ingest {
    listener: TcpListener,
    public: Router,
    internal: Router,
    access: Access,
    header_timeout: Duration,
}

impl Ingest {
    /// Binds the public listener and assembles both listeners' routes.
    pub async fn build(settings: IngestSettings, deps: IngestDeps) -> Result<Self, IngestError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| IngestError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let cors = cors(&settings.cors_allowed_origins)?;
        let access = Access::new(&settings);
        let limits = settings.limits.clone();
        let state = AppState {
            store: deps.store,
            producer: deps.producer,
            metrics: deps.metrics.clone(),
            settings: Arc::new(settings),
            lead_retention: deps.lead_retention,
            closed_retention: deps.closed_retention,
            release: deps.release,
            rules: deps.rules,
            clocks: deps.clocks,
            access: access.clone(),
            actions: actions::ActionKeys::new(&deps.actions),
        };
        let guard = Guard {
            gate: state.producer.gate().clone(),
            access: access.clone(),
            slots: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            request_timeout: Duration::from_millis(limits.request_timeout_ms),
            trust_forwarded_for: limits.trust_forwarded_for,
        };
        // Behind an Arc: the middleware's state is cloned for every request, and `Metrics`
        // is ~35 handles, each an atomic count (2 % of ingest's CPU under wrk, perf).
        let request_metrics = Arc::new(deps.metrics.clone());
        let public = Router::new()
            .route("/v1/leads", post(leads::submit).layer(cors))
            .route("/v1/leads/{id}", get(lookup::lead))
            .route("/v1/leads/{id}/dispositions", post(dispositions::submit))
            .route("/v1/queues", get(lookup::queues))
            .route("/v1/queues/{name}", get(lookup::queue))
            .route("/v1/scorecard", get(scorecard::get))
            .route("/v1/webhooks/{source}", post(intake::submit))
            .route(
                "/v1/actions/{token}",
                get(actions::show).post(actions::record),
            )
            .with_state(state.clone())
            .layer(from_fn_with_state(guard, guard_request))
            .layer(from_fn_with_state(request_metrics.clone(), count_requests))
            .merge(handoff_telemetry::health_router(deps.readiness));
        let internal = Router::new()
            .route("/v1/reps/{id}", get(reps::get).put(reps::put))
            .route("/openapi.json", get(openapi::document))
            .with_state(state)
            .layer(from_fn_with_state(request_metrics, count_requests));
        Ok(Self {
            listener,
            public,
            internal,
            access,
            header_timeout: Duration::from_millis(limits.header_timeout_ms),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The routes ingest serves on the internal listener, which the caller runs (it is
    /// shared with the other services' `/metrics` and health).
    pub fn internal_routes(&self) -> Router {
        self.internal.clone()
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish (each is
    /// bounded by the request timeout).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let access = self.access.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            // Rate-limiter state of callers not seen lately is dropped: memory stays bounded
            // however many addresses knock.
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => access.forget_idle(),
                }
            }
        });
        server::serve(self.listener, self.public, self.header_timeout, shutdown).await;
        Ok(())
    }
}

/// CORS for browsers posting leads from JavaScript on the configured origins. Plain HTML
/// form posts need no CORS; their form token is what is checked.
fn cors(origins: &[String]) -> Result<CorsLayer, IngestError> {
    let origins = origins
        .iter()
        .map(|origin| {
            HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                IngestError::CorsOrigin {
                    origin: origin.clone(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([HeaderName::from_static("idempotent-replayed")])
        .max_age(Duration::from_secs(600)))
}

/// The limits every public request passes before its handler.
#[derive(Clone)]
struct Guard {
    /// Closed while the Redis state is lost: writes answer 503 (docs/operations.md).
    gate: handoff_kafka::WorkGate,
    access: Access,
    /// Requests in progress; none free means 503 at once (queueing would only hide overload).
    slots: Arc<Semaphore>,
    request_timeout: Duration,
    trust_forwarded_for: bool,
}

async fn guard_request(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let Ok(_slot) = guard.slots.clone().try_acquire_owned() else {
        return ApiError::Overloaded.into_response();
    };
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if writes && !guard.gate.is_open() {
        // Deciding on an empty Redis would lose idempotency marks and dedup: the client
        // retries (Retry-After) once the state is rebuilt.
        return ApiError::Unavailable {
            what: "lead routing (its state is being rebuilt)",
        }
        .into_response();
    }
    let address = server::client_address(&request, guard.trust_forwarded_for);
    if let Err(limited) = guard.access.check_address(address) {
        return limited.into_response();
    }
    match tokio::time::timeout(guard.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Counts requests by route template (never the raw path: lead ids would explode the
/// label set) and status code.
async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics
        .http_requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

/// Publishes `event`, waiting at most `ingest.publish_timeout_ms` for the broker's
/// acknowledgement; any failure is a 503 (nothing will appear later: ingest's producer
/// gives up at the same deadline).
pub(crate) async fn publish(
    state: &AppState,
    event: &handoff_kafka::OutboundEvent,
) -> Result<(), ApiError> {
    let wait = Duration::from_millis(state.settings.publish_timeout_ms);
    match tokio::time::timeout(wait, state.producer.publish(event)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(unavailable("the event broker", &e)),
        Err(_) => Err(unavailable("the event broker", &"publish timed out")),
    }
}

/// Logs why a dependency failed (the client only learns which one) and answers 503.
pub(crate) fn unavailable(what: &'static str, error: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(dependency = what, error = %error, "request failed: dependency unavailable");
    ApiError::Unavailable { what }
}
