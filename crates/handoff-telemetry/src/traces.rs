//! Optional trace export over OTLP/HTTP (protobuf), off unless `tracing.otlp_endpoint` is
//! set (docs/tracing.md). When on, the spans services open for one lead's step (target
//! [`SPAN_TARGET`]) go to the collector through a batch exporter on its own thread, each the
//! child of the remote span its event's `traceparent` names: the exported trace id is the
//! one in the Kafka headers and the logs. When off, those spans are disabled at their call
//! sites and nothing else changes: no exporter, no thread.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::TelemetryError;

/// The target of the spans that are exported (and kept out of the logs): one per lead's
/// step in a service, e.g. `tracing::info_span!(target: SPAN_TARGET, "router.lead_created")`.
pub const SPAN_TARGET: &str = "handoff::trace";

/// The path OTLP/HTTP collectors take traces on, below `otlp_endpoint`.
const TRACES_PATH: &str = "/v1/traces";

/// How long the last spans may take to go out at exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceExport {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to
    /// `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// The share of new traces (leads arriving without a sampled `traceparent`) exported;
    /// a trace's later spans follow its first one's decision.
    pub sample_ratio: f64,
}

impl TraceExport {
    /// Where spans are posted.
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.endpoint.trim_end_matches('/'))
    }
}

/// The exporting provider, once installed: flushed by [`shutdown_traces`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (an exporter was installed by `init_telemetry`).
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// A span's W3C ids, as `traceparent` carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

/// Makes `span` the child of the remote span `parent` (from an incoming `traceparent`;
/// `None`: `span` starts a trace) and returns `span`'s own ids as exported. `None` when
/// spans are not exported, or `span` is disabled: the caller keeps its own ids then.
/// Call it before `span` is first entered: its parent cannot change after.
pub fn join_remote(span: &tracing::Span, parent: Option<SpanIds>) -> Option<SpanIds> {
    if !exporting() || span.is_disabled() {
        return None;
    }
    if let Some(parent) = parent {
        let flags = if parent.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            TraceId::from(parent.trace_id),
            SpanId::from(parent.span_id),
            flags,
            true,
            TraceState::default(),
        );
        let context = opentelemetry::Context::new().with_remote_span_context(remote);
        if let Err(error) = span.set_parent(context) {
            tracing::debug!(%error, "cannot set a span's remote parent; it starts a trace");
        }
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then(|| SpanIds {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        sampled: own.is_sampled(),
    })
}

/// Builds the exporting provider; nothing is installed yet.
pub(crate) fn provider(export: &TraceExport) -> Result<SdkTracerProvider, TelemetryError> {
    let invalid = |message: String| TelemetryError::TraceExport {
        endpoint: export.endpoint.clone(),
        message,
    };
    if !(0.0..=1.0).contains(&export.sample_ratio) {
        return Err(invalid(format!(
            "sample ratio {} is not between 0 and 1",
            export.sample_ratio
        )));
    }
    // One export's timeout: OTEL_EXPORTER_OTLP_TIMEOUT, else the SDK's 10 s.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(export.traces_url())
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(export.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            export.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The layer that hands [`SPAN_TARGET`] spans to `provider`; the provider is kept for
/// [`shutdown_traces`]. A second provider (a second `init_telemetry`) is shut down at once.
pub(crate) fn install<S>(
    provider: SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let tracer = provider.tracer("handoff");
    if let Err(unused) = PROVIDER.set(provider) {
        let _ = unused.shutdown();
    }
    tracing_opentelemetry::layer().with_tracer(tracer)
}

/// Exports the spans still queued and stops the exporter's thread; call once, at exit. A
/// no-op when nothing is exported. Blocks for at most [`SHUTDOWN_TIMEOUT`].
pub fn shutdown_traces() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "cannot flush the last spans to the trace collector");
        }
    }
}
