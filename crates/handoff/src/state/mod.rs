//! The state kept in Redis: `handoff state reconcile` (repairs drift between the derived
//! sets and the leads' own states — the same pass the router runs every
//! `router.reconcile_interval_seconds`, on demand), `handoff state rebuild` (the whole
//! state from the event log, rebuild.rs), `handoff state init` (the generation marker of a
//! deployment that predates it), the generation watch every service runs (watch.rs) and
//! the persistence check at start-up (persistence.rs). See docs/operations.md.

pub mod persistence;
pub mod rebuild;
pub mod watch;

use std::time::Duration;

use anyhow::Context;

use handoff_config::LoadedConfig;
use handoff_store::{ReconcileReport, Store};

pub async fn reconcile(loaded: &LoadedConfig) -> anyhow::Result<ReconcileReport> {
    let settings = &loaded.settings;
    let store = Store::connect(&settings.redis.url, &settings.redis.key_prefix)
        .await
        .with_context(|| {
            format!(
                "cannot reach Redis at {}",
                crate::services::redact_url(&settings.redis.url)
            )
        })?;
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
         entries removed (lead no longer waiting there), {} first-touch deadlines put back \
         ({})\n",
        report.total(),
        report.stale_open,
        report.missing_open,
        report.stale_queued,
        report.missing_deadline,
        report.deadline_leads.join(", ")
    )
}

/// What `handoff state rebuild` and `handoff state init` work with.
async fn deps(loaded: &LoadedConfig) -> anyhow::Result<rebuild::RebuildDeps> {
    let settings = &loaded.settings;
    let store = Store::connect(&settings.redis.url, &settings.redis.key_prefix)
        .await
        .with_context(|| {
            format!(
                "cannot reach Redis at {}",
                crate::services::redact_url(&settings.redis.url)
            )
        })?;
    let (rules, _publisher) = handoff_config::RulesHandle::new(loaded.rules.clone());
    Ok(rebuild::RebuildDeps {
        store,
        settings: settings.clone(),
        rules,
        producer: handoff_kafka::EventProducer::new(&settings.kafka, "state")?,
        metrics: handoff_telemetry::Metrics::new(prometheus::Registry::new())
            .context("cannot register metrics")?,
    })
}

/// `handoff state rebuild`: the whole state from the event log, under the rebuild lease
/// (so it never runs beside an automatic rebuild). Running services resume by themselves
/// when it writes the new marker.
pub async fn rebuild_now(loaded: &LoadedConfig) -> anyhow::Result<rebuild::RebuildReport> {
    let deps = deps(loaded).await?;
    let owner = format!("cli-{}", std::process::id());
    let lease_ms = loaded
        .settings
        .state
        .rebuild_lease_seconds
        .saturating_mul(1000);
    if !deps.store.lock_rebuild(&owner, lease_ms).await? {
        anyhow::bail!(
            "another instance is rebuilding the state (it holds the rebuild lease); its \
             marker resumes the services when it is done, or the lease expires within \
             state.rebuild_lease_seconds if it died"
        );
    }
    let renewal = tokio::spawn({
        let (store, owner) = (deps.store.clone(), owner.clone());
        async move {
            let every = Duration::from_millis((lease_ms / 3).max(100));
            loop {
                tokio::time::sleep(every).await;
                if !matches!(store.renew_rebuild(&owner, lease_ms).await, Ok(true)) {
                    return;
                }
            }
        }
    });
    let outcome = rebuild::rebuild(&deps).await;
    renewal.abort();
    deps.store.unlock_rebuild(&owner).await?;
    outcome
}

/// `handoff state init`: writes the generation marker if there is none, declaring the
/// current state consistent with the log as it is (a deployment that predates markers).
/// `false` if a marker existed.
pub async fn init(loaded: &LoadedConfig) -> anyhow::Result<bool> {
    let deps = deps(loaded).await?;
    let position = rebuild::current_position(&deps.settings, &deps.producer).await?;
    let generation = handoff_store::Generation::new(
        "init",
        serde_json::to_string(&position.topics).unwrap_or_default(),
    );
    Ok(deps.store.create_generation(&generation).await?)
}

/// The rebuild's report, for people.
pub fn describe_rebuild(report: &rebuild::RebuildReport) -> String {
    format!(
        "rebuilt the state from {records} records in {total:.1} s (read {read:.1} s, replay \
         {replay:.1} s; peak memory {memory})\n\
         leads: {leads} recorded, {expired} older than the retention skipped\n\
         assignments: {assignments}; nurture and queue decisions: {decisions}; reports: \
         {reports}\n\
         breaches already published: {breaches}; reminders already sent: {reminders}\n\
         deadlines passed during the loss, fired now (marked late): {late}\n\
         idempotency marks: {marks}; account owners: {owners}; rep overrides: \
         {rep_overrides}; rotations: {rotations}\n\
         capacity entries repaired after the replay: {repaired}; records not replayed: \
         {skipped}\n\
         new generation: {generation}\n",
        records = report.records,
        total = report.read_seconds + report.replay_seconds,
        read = report.read_seconds,
        replay = report.replay_seconds,
        memory = peak_memory().unwrap_or_else(|| "unknown".to_owned()),
        leads = report.leads,
        expired = report.expired,
        assignments = report.assignments,
        decisions = report.decisions,
        reports = report.reports,
        breaches = report.breaches,
        reminders = report.reminders,
        late = report.late_breaches,
        marks = report.idempotency_marks,
        owners = report.account_owners,
        rep_overrides = report.rep_overrides,
        rotations = report.rotations,
        repaired = report.repaired,
        skipped = report.skipped,
        generation = report.generation.as_deref().unwrap_or("none"),
    )
}

/// This process's peak resident memory (Linux), e.g. `183 MiB`.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(format!("{} MiB", kib / 1024))
}
