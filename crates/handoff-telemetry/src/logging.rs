use tracing_subscriber::filter::{filter_fn, Directive};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::traces::{self, TraceExport, SPAN_TARGET};
use crate::TelemetryError;

/// Installs the global subscriber: text for people, JSON for log pipelines. `RUST_LOG`
/// wins over `level` when set. A second call (tests, `handoff all`) is a no-op.
pub fn init_logging(json: bool, level: &str) -> Result<(), TelemetryError> {
    init_telemetry(json, level, None)
}

/// [`init_logging`], plus trace export when `export` is set (see [`crate::traces`]). The
/// exported spans never reach the logs, so log lines are the same either way.
pub fn init_telemetry(
    json: bool,
    level: &str,
    export: Option<&TraceExport>,
) -> Result<(), TelemetryError> {
    let filter = log_filter(level)?;
    let Some(export) = export else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(true);
        // try_init fails only when a subscriber is already installed, which is fine.
        let _ = if json {
            builder.json().flatten_event(true).try_init()
        } else {
            builder.try_init()
        };
        return Ok(());
    };
    if tracing::dispatcher::has_been_set() {
        // Installed already: a second exporter would have no spans to export.
        return Ok(());
    }
    let provider = traces::provider(export)?;
    let fmt = tracing_subscriber::fmt::layer().with_target(true);
    let fmt = if json {
        fmt.json().flatten_event(true).with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    // Spans only: log lines stay in the logs, not also in the trace as span events.
    let exported = filter_fn(|metadata| metadata.is_span() && metadata.target() == SPAN_TARGET);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(traces::install(provider).with_filter(exported))
        .try_init();
    Ok(())
}

/// `RUST_LOG` or `level`, with the exported spans turned off: disabled at their call sites
/// when nothing exports them, and never in log lines (as context) when something does.
fn log_filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(&from_env),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| TelemetryError::LogFilter {
        filter: level.to_owned(),
        message: e.to_string(),
    })?;
    let off: Directive = format!("{SPAN_TARGET}=off").parse().map_err(
        |e: tracing_subscriber::filter::ParseError| TelemetryError::LogFilter {
            filter: level.to_owned(),
            message: e.to_string(),
        },
    )?;
    Ok(filter.add_directive(off))
}
