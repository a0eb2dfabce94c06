//! `handoff state reconcile`: checks the derived routing state (reps' open leads, queues)
//! against the leads' own states and repairs what drifted — the same pass the router runs
//! every `router.reconcile_interval_seconds`, on demand.

use std::time::Duration;

use anyhow::Context;

use handoff_config::LoadedConfig;
use handoff_store::{ReconcileReport, Store};

pub async fn reconcile(loaded: &LoadedConfig) -> anyhow::Result<ReconcileReport> {
    let settings = &loaded.settings;
    let store = Store::connect(&settings.redis.url, &settings.redis.key_prefix)
        .await
        .with_context(|| format!("cannot reach Redis at {}", settings.redis.url))?;
    let retention = Duration::from_secs(u64::from(settings.redis.lead_retention_days) * 86_400);
    let report = store
        .reconcile(
            loaded.rules.routing.rep_ids(),
            settings.sla.release_capacity_on,
            retention.as_secs(),
        )
        .await
        .context("reconciliation failed")?;
    Ok(report)
}

/// The report, for people.
pub fn describe(report: &ReconcileReport) -> String {
    if report.total() == 0 {
        return "routing state is consistent: nothing to repair\n".to_owned();
    }
    format!(
        "repaired {} entries: {} open-lead entries removed (lead gone, closed, touched or \
         another rep's), {} added (assigned leads their rep's count missed), {} queue \
         entries removed (lead no longer waiting there)\n",
        report.total(),
        report.stale_open,
        report.missing_open,
        report.stale_queued
    )
}
