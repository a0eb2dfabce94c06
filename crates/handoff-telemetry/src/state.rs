//! Metrics of the state kept in Redis: which generation a process works on and how often
//! it found the state lost (docs/operations.md; the alert `HandoffStateLost` pages on them).

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone, Debug)]
pub struct StateMetrics {
    /// When the generation this process works on was created (Unix seconds); 0 while the
    /// state is lost (no marker, or an older one) and the process waits for a rebuild.
    pub generation: IntGauge,
    /// Times this process found the state lost.
    pub lost: IntCounter,
    /// Rebuilds from the log run by this process, by outcome (completed, failed).
    pub rebuilds: IntCounterVec,
    /// Deadlines a rebuild found already passed and fired late.
    pub late_breaches: IntCounter,
    /// The Redis server's clock minus this host's, in seconds, as last measured.
    pub clock_offset: Gauge,
}

impl StateMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let generation = IntGauge::new(
            "handoff_state_generation",
            "Creation time (Unix seconds) of the Redis state generation this process works on; 0 while the state is lost",
        )?;
        registry.register(Box::new(generation.clone()))?;
        let lost = IntCounter::new(
            "handoff_state_lost_total",
            "Times this process found the Redis state lost (generation marker missing or older than the one it knew)",
        )?;
        registry.register(Box::new(lost.clone()))?;
        let rebuilds = IntCounterVec::new(
            Opts::new(
                "handoff_state_rebuilds_total",
                "Rebuilds of the Redis state from the event log run by this process, by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(rebuilds.clone()))?;
        for outcome in ["completed", "failed"] {
            rebuilds.with_label_values(&[outcome]);
        }
        let late_breaches = IntCounter::new(
            "handoff_state_rebuild_late_breaches_total",
            "Deadlines that passed while the state was lost, fired late by the rebuild",
        )?;
        registry.register(Box::new(late_breaches.clone()))?;
        let clock_offset = Gauge::new(
            "handoff_redis_clock_offset_seconds",
            "The Redis server's clock minus this host's, as last measured; deadlines and assignment times are on Redis's clock",
        )?;
        registry.register(Box::new(clock_offset.clone()))?;
        Ok(Self {
            generation,
            lost,
            rebuilds,
            late_breaches,
            clock_offset,
        })
    }
}
