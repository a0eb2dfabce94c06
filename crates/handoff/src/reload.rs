//! Rules hot-reload: the rules file is checked every couple of seconds and on SIGHUP. A
//! valid new file is published to every service at once (each decision reads one
//! snapshot); an invalid one is rejected with its error logged, and the rules in force
//! stay in force.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::{parse_rules, RulesPublisher};
use handoff_telemetry::Metrics;

/// How often the file is looked at (a stat-free read: files are small).
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

pub async fn watch_rules(
    path: PathBuf,
    publisher: RulesPublisher,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    let mut last_text = std::fs::read_to_string(&path).unwrap_or_default();
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        let forced = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => false,
            () = hup => true,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the rules file; the rules in force stay");
                continue;
            }
        };
        if text == last_text && !forced {
            continue;
        }
        last_text.clone_from(&text);
        let in_force = publisher.current().version.clone();
        match parse_rules(&path, &text) {
            Ok(rules) if rules.version == in_force => {}
            Ok(rules) => {
                tracing::info!(from = %in_force, to = %rules.version, "rules reloaded");
                publisher.publish(rules);
                metrics.rules_reloads.with_label_values(&["applied"]).inc();
            }
            Err(e) => {
                tracing::error!(error = %e, in_force = %in_force, "new rules rejected; the rules in force stay");
                metrics.rules_reloads.with_label_values(&["rejected"]).inc();
            }
        }
    }
}
