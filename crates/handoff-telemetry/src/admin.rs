//! `/metrics`, `/healthz` (the process answers) and `/readyz` (its dependencies answer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::{Metrics, TelemetryError};

/// A named dependency check: `Ok` when the dependency answers.
pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The checks `/readyz` runs, each bounded by a timeout so a hung dependency reads as
/// "not ready" instead of hanging the probe.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, ReadinessCheck)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    pub fn with(mut self, name: &'static str, check: ReadinessCheck) -> Self {
        self.checks.push((name, check));
        self
    }

    async fn run(&self) -> ReadinessReport {
        let mut ready = true;
        let mut checks = BTreeMap::new();
        for (name, check) in &self.checks {
            let outcome = tokio::time::timeout(Duration::from_secs(2), check()).await;
            let status = match outcome {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(e)) => {
                    ready = false;
                    e
                }
                Err(_) => {
                    ready = false;
                    "timed out".to_owned()
                }
            };
            checks.insert((*name).to_owned(), status);
        }
        ReadinessReport { ready, checks }
    }
}

/// The body of `/readyz`.
#[derive(Debug, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadinessReport {
    /// Every check passed.
    pub ready: bool,
    /// Check name → `ok`, or why it failed.
    pub checks: BTreeMap<String, String>,
}

/// The internal listener's operations routes: `/metrics`, `/healthz`, `/readyz`.
pub fn admin_router<S: Clone + Send + Sync + 'static>(
    metrics: Metrics,
    readiness: Readiness,
) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics)
        .merge(health_router(readiness))
}

/// `/healthz` and `/readyz`, for a listener that must not serve metrics (the public one).
pub fn health_router<S: Clone + Send + Sync + 'static>(readiness: Readiness) -> Router<S> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness_handler))
        .with_state(Arc::new(readiness))
}

/// Serves the internal listener's routes until `shutdown` resolves.
pub async fn serve_admin(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), TelemetryError> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn metrics_handler(State(metrics): State<Metrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

async fn readiness_handler(State(readiness): State<Arc<Readiness>>) -> Response {
    let report = readiness.run().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}
