//! ingest: the HTTP front door. `POST /v1/leads` validates, normalizes and publishes
//! `lead.created` (answering 202 only once the broker acknowledged it);
//! `POST /v1/leads/{id}/dispositions` publishes a rep's or CRM's outcome.
//!
//! Like zero-to-production's `Application`: [`Ingest::build`] binds (port 0 works),
//! [`Ingest::local_addr`] reports the port, [`Ingest::run_until_stopped`] serves.

mod dispositions;
mod error;
mod leads;
mod reps;
mod request;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use handoff_config::{IngestSettings, RulesHandle};
use handoff_kafka::EventProducer;
use handoff_store::Store;
use handoff_telemetry::{admin_router, Metrics, Readiness};

pub use error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Serve(#[source] std::io::Error),
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
    /// The rules in force (which reps exist, their defaults).
    pub rules: RulesHandle,
}

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub settings: Arc<IngestSettings>,
    pub lead_retention: Duration,
    pub rules: RulesHandle,
}

#[derive(Debug)]
pub struct Ingest {
    listener: TcpListener,
    app: Router,
}

impl Ingest {
    /// Binds the listener and assembles the routes. `readiness` is served at `/readyz`.
    pub async fn build(settings: IngestSettings, deps: IngestDeps) -> Result<Self, IngestError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| IngestError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let state = AppState {
            store: deps.store,
            producer: deps.producer,
            metrics: deps.metrics.clone(),
            settings: Arc::new(settings),
            lead_retention: deps.lead_retention,
            rules: deps.rules,
        };
        let api = Router::new()
            .route("/v1/leads", post(leads::submit))
            .route("/v1/leads/{id}/dispositions", post(dispositions::submit))
            .route(
                "/v1/reps/{id}",
                axum::routing::get(reps::get).put(reps::put),
            )
            .with_state(state)
            .layer(axum::middleware::from_fn_with_state(
                deps.metrics.clone(),
                count_requests,
            ));
        let app = api.merge(admin_router(deps.metrics, deps.readiness));
        Ok(Self { listener, app })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish (each is
    /// bounded by the publish timeout).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(IngestError::Serve)
    }
}

/// Counts requests by route template (never the raw path: lead ids would explode the
/// label set) and status code.
async fn count_requests(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
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

/// How long a request waits for the broker before answering 503.
pub(crate) fn publish_timeout(settings: &IngestSettings) -> Duration {
    Duration::from_millis(settings.publish_timeout_ms)
}
