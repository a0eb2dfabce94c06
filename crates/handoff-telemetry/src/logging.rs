use tracing_subscriber::EnvFilter;

use crate::TelemetryError;

/// Installs the global subscriber: text for people, JSON for log pipelines. `RUST_LOG`
/// wins over `level` when set. A second call (tests, `handoff all`) is a no-op.
pub fn init_logging(json: bool, level: &str) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(&from_env),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| TelemetryError::LogFilter {
        filter: level.to_owned(),
        message: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    // try_init fails only when a subscriber is already installed, which is fine.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}
