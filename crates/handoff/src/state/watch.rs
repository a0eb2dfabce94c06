//! Every service watches the state's generation marker (handoff-store's generation.rs): at
//! start, then every `state.check_interval_ms` — which also covers every reconnect, since
//! the connection re-establishes itself underneath. On a lost state the process stops
//! taking new work (its work gate closes: consumers wait, pollers skip, ingest answers 503
//! to writes), logs one error saying what happened and what comes next, and sets
//! `handoff_state_generation` to 0 and counts `handoff_state_lost_total`. With
//! `state.auto_rebuild`, the instance that takes the rebuild lease rebuilds the state from
//! the log; every process resumes by itself once a newer marker appears.
//!
//! A restore that brings back the *same* marker (a snapshot or a lagging replica taken
//! after the marker was written) is told by the marker's tick: each check advances it, so
//! a tick not above the last one this process got means Redis lost writes it had
//! acknowledged, and counts as a loss like the others.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::StateSettings;
use handoff_kafka::WorkGate;
use handoff_store::{Generation, Store};
use handoff_telemetry::StateMetrics;

use super::rebuild::{current_position, rebuild, RebuildDeps};

/// Why the state counts as lost.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// No marker: Redis restarted without persistence, was flushed, or failed over to a
    /// replica that never had it.
    Missing,
    /// A marker older than the one this process worked on: a restore from an old snapshot.
    Older,
    /// The same marker, but its tick went back: Redis was restored from a snapshot (or
    /// failed over to a replica) taken after the marker was written, losing what came
    /// after.
    RolledBack,
    /// No marker at start-up, but the event log has events: the state they built is gone.
    MissingAtStart,
}

impl Loss {
    fn what(self) -> &'static str {
        match self {
            Loss::Missing => {
                "the generation marker is gone: Redis restarted without persistence, was flushed, or failed over and lost writes"
            }
            Loss::Older => {
                "the generation marker is older than the one this process worked on: Redis was restored from an old snapshot"
            }
            Loss::RolledBack => {
                "Redis went back in time (the generation marker's tick is below what this process saw): it was restored from a snapshot or failed over to a replica that lagged, and lost what was written after"
            }
            Loss::MissingAtStart => {
                "there is no generation marker although the event log has events: the state built from them is gone (or this deployment predates markers: see `handoff state init`)"
            }
        }
    }
}

/// A host clock this far off Redis's is worth a warning (NTP keeps them within milliseconds).
const CLOCK_DRIFT_MS: i64 = 1000;

#[derive(Debug)]
pub struct StateWatch {
    store: Store,
    gate: WorkGate,
    metrics: StateMetrics,
    settings: StateSettings,
    /// The marker's key, for the log.
    marker: String,
    /// Set when this instance may rebuild (`state.auto_rebuild`).
    rebuild: Option<RebuildDeps>,
    /// This process, as the holder of the rebuild lease.
    owner: String,
    /// The generation this process works on.
    known: Option<Generation>,
    /// The highest tick of `known` this process has observed (0: none yet).
    last_tick: i64,
    lost: bool,
    /// After a failed rebuild, not before this (one lease): a broker or Redis that is down
    /// is not hammered, nor the log flooded.
    retry_after: Option<tokio::time::Instant>,
}

impl StateWatch {
    /// Reads the marker once (creating it on a fresh deployment, whose log is empty) and
    /// sets the gate accordingly.
    pub async fn start(
        store: Store,
        gate: WorkGate,
        metrics: StateMetrics,
        settings: StateSettings,
        marker: String,
        deps: RebuildDeps,
    ) -> anyhow::Result<Self> {
        let mut watch = Self {
            store,
            gate,
            metrics,
            rebuild: settings.auto_rebuild.then(|| deps.clone()),
            settings,
            marker,
            owner: format!("{}-{}", hostname(), uuid_like()),
            known: None,
            last_tick: 0,
            lost: false,
            retry_after: None,
        };
        watch.sync_clock().await;
        match watch.store.generation().await? {
            Some(generation) => watch.adopt(generation, 0),
            None => {
                let position = current_position(&deps.settings, &deps.producer).await?;
                if position.ever_written() {
                    watch.lose(Loss::MissingAtStart);
                } else {
                    let fresh = Generation::new(
                        "init",
                        serde_json::to_string(&position.topics).unwrap_or_default(),
                    );
                    watch.store.create_generation(&fresh).await?;
                    // Another instance may have created one first: work on whichever won.
                    match watch.store.generation().await? {
                        Some(generation) => watch.adopt(generation, 0),
                        None => watch.lose(Loss::Missing),
                    }
                }
            }
        }
        Ok(watch)
    }

    /// Measures the offset to the Redis server's clock, which deadlines are written in
    /// (handoff-store's server_clock.rs), and says so when this host's clock drifted.
    pub async fn sync_clock(&self) {
        match self.store.sync_clock().await {
            Ok(offset_ms) => {
                let before = self.metrics.clock_offset.get();
                self.metrics.clock_offset.set(offset_ms as f64 / 1000.0);
                if offset_ms.abs() >= CLOCK_DRIFT_MS
                    && (before * 1000.0).abs() < CLOCK_DRIFT_MS as f64
                {
                    tracing::warn!(offset_ms, "this host's clock is off the Redis server's; deadlines and assignment times use the server's clock");
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the Redis server's clock"),
        }
    }

    /// Checks every `state.check_interval_ms` until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker =
            tokio::time::interval(Duration::from_millis(self.settings.check_interval_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.check().await;
        }
    }

    async fn check(&mut self) {
        self.sync_clock().await;
        let observed = match self.store.observe_generation().await {
            Ok(observed) => observed,
            Err(e) => {
                // Redis down is the services' own error to report; the marker is checked
                // again once it answers.
                tracing::debug!(error = %e, "cannot read the state's generation marker");
                return;
            }
        };
        if self.lost {
            // Only a newer marker (a rebuild's) ends a loss.
            match observed {
                Some((current, tick)) if self.is_newer(&current) => self.adopt(current, tick),
                _ => self.try_rebuild().await,
            }
            return;
        }
        let loss = match observed {
            None => Loss::Missing,
            Some((current, tick)) => match &self.known {
                Some(known) if current.id == known.id => {
                    if tick > self.last_tick {
                        self.last_tick = tick;
                        return;
                    }
                    Loss::RolledBack
                }
                _ if self.is_newer(&current) => {
                    // Lost and rebuilt between two checks (by `handoff state rebuild` or
                    // another instance): it still happened.
                    self.metrics.lost.inc();
                    tracing::error!(marker = %self.marker, generation = %current.id, "the Redis state was lost and rebuilt from the event log between two checks; working on the rebuilt state");
                    self.adopt(current, tick);
                    return;
                }
                _ => Loss::Older,
            },
        };
        self.lose(loss);
        self.try_rebuild().await;
    }

    /// A marker written after the one this process knows (a rebuild's).
    fn is_newer(&self, current: &Generation) -> bool {
        self.known
            .as_ref()
            .is_none_or(|known| current.id != known.id && current.created_ms > known.created_ms)
    }

    /// Works on `generation` from now on, whose tick this process last saw at `tick` (0:
    /// not observed yet).
    fn adopt(&mut self, generation: Generation, tick: i64) {
        self.metrics
            .generation
            .set(generation.created_ms.div_euclid(1000));
        if self.lost {
            tracing::info!(marker = %self.marker, generation = %generation.id, origin = %generation.origin, "the Redis state is back (rebuilt from the event log); taking new work again");
        }
        self.known = Some(generation);
        self.last_tick = tick;
        self.lost = false;
        self.gate.open();
    }

    /// The one error a loss logs.
    fn lose(&mut self, loss: Loss) {
        self.lost = true;
        self.gate.close();
        self.metrics.generation.set(0);
        self.metrics.lost.inc();
        let next = if self.rebuild.is_some() {
            "one instance rebuilds it from the event log now (state.auto_rebuild); this process resumes by itself when the rebuild writes a new marker"
        } else {
            "run `handoff state rebuild` (state.auto_rebuild is off); this process resumes by itself when the rebuild writes a new marker"
        };
        tracing::error!(
            marker = %self.marker,
            known_generation = self.known.as_ref().map(|g| g.id.as_str()),
            "Redis state lost: {}. Deadlines, capacity counts, rotations, queues and idempotency marks kept there are gone. Stopped taking new work (consumers paused, ingest answers 503 to writes). Next: {next}.",
            loss.what()
        );
    }

    /// Rebuilds if this instance may and gets the lease; another instance's rebuild is
    /// waited for (its marker resumes this process).
    async fn try_rebuild(&mut self) {
        let Some(deps) = &self.rebuild else {
            return;
        };
        if self
            .retry_after
            .is_some_and(|at| tokio::time::Instant::now() < at)
        {
            return;
        }
        let lease_ms = self.settings.rebuild_lease_seconds.saturating_mul(1000);
        match self.store.lock_rebuild(&self.owner, lease_ms).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the rebuild lease; trying again");
                return;
            }
        }
        // Renewed while the rebuild runs, so a long one keeps its lease and a dead one
        // loses it within `state.rebuild_lease_seconds`.
        let renewal = tokio::spawn({
            let (store, owner) = (self.store.clone(), self.owner.clone());
            async move {
                let every = Duration::from_millis((lease_ms / 3).max(100));
                loop {
                    tokio::time::sleep(every).await;
                    if !matches!(store.renew_rebuild(&owner, lease_ms).await, Ok(true)) {
                        tracing::warn!("lost the rebuild lease; another instance may take over");
                        return;
                    }
                }
            }
        });
        tracing::info!(owner = %self.owner, "rebuilding the Redis state from the event log");
        let outcome = rebuild(deps).await;
        renewal.abort();
        if let Err(e) = self.store.unlock_rebuild(&self.owner).await {
            tracing::warn!(error = %e, "cannot release the rebuild lease; it expires by itself");
        }
        match outcome {
            Ok(report) => {
                self.metrics
                    .rebuilds
                    .with_label_values(&["completed"])
                    .inc();
                self.metrics
                    .late_breaches
                    .inc_by(u64::try_from(report.late_breaches).unwrap_or(0));
                tracing::info!(
                    records = report.records,
                    leads = report.leads,
                    assignments = report.assignments,
                    late_breaches = report.late_breaches,
                    seconds = report.read_seconds + report.replay_seconds,
                    "rebuilt the Redis state from the event log"
                );
                match self.store.generation().await {
                    Ok(Some(generation)) => self.adopt(generation, 0),
                    Ok(None) => tracing::warn!("the rebuilt state's marker is gone already"),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the rebuilt state's marker; checking again")
                    }
                }
            }
            Err(e) => {
                self.metrics.rebuilds.with_label_values(&["failed"]).inc();
                self.retry_after = Some(
                    tokio::time::Instant::now()
                        + Duration::from_secs(self.settings.rebuild_lease_seconds),
                );
                tracing::error!(
                    error = format!("{e:#}"),
                    retry_in_seconds = self.settings.rebuild_lease_seconds,
                    "rebuilding the Redis state failed; trying again (every step is idempotent)"
                );
            }
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "handoff".to_owned())
}

/// Tells two processes on one host apart.
fn uuid_like() -> String {
    format!("{}-{}", std::process::id(), rand::random::<u32>())
}
