//! Telemetry shared by every service: the metrics (named in one place, following
//! docs/metrics.md), structured logging, optional trace export (OTLP), and the `/metrics`,
//! `/healthz`, `/readyz` routes.

mod admin;
mod funnel;
mod logging;
mod metrics;
mod state;
pub mod traces;

pub use admin::{
    admin_router, health_router, serve_admin, Readiness, ReadinessCheck, ReadinessReport,
};
pub use funnel::{
    prime_known_series, FunnelMetrics, ScorecardGauges, SCORECARD_LABELS, SLA_KINDS, SLA_RESULTS,
    STAGES,
};
pub use logging::{init_logging, init_telemetry};
pub use metrics::Metrics;
pub use state::StateMetrics;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("invalid log filter `{filter}`: {message}")]
    LogFilter { filter: String, message: String },
    #[error("tracing.otlp_endpoint: cannot export traces to {endpoint}: {message}")]
    TraceExport { endpoint: String, message: String },
    #[error("admin server: {0}")]
    Serve(#[from] std::io::Error),
}
