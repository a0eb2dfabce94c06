//! funnel: marketing's view of the pipeline, computed from the event log (it reads
//! `lead.created`, `lead.assigned`, `lead.disposition` and `sla.breached` in a consumer
//! group of its own and changes nothing the other services read).
//!
//! - Leads by stage (received, qualified, unqualified, assigned, accepted, rejected,
//!   converted, recycled), source kind and campaign, counted once per lead and stage;
//!   rejections by reason code; time to first touch (from receipt) and to disposition
//!   (from the first assignment to the first outcome marketing can use).
//! - First-touch SLA attainment by team: each assignment attempt's first touch is `met`
//!   (within its window) or `missed` (breached, or touched late).
//! - Gauges: the feedback backlog (assigned longer than `funnel.backlog_after_seconds` with no
//!   usable outcome), everything still awaiting feedback, and the leads overdue for a first
//!   touch right now.
//!
//! Labels stay bounded (labels.rs): unlisted source kinds and campaigns count as `other`.
//! The `sla` role runs it (crates/handoff/src/services.rs).

mod counting;
mod labels;
mod refresh;
mod stages;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use handoff_config::{FunnelSettings, KafkaSettings, RulesHandle};
use handoff_domain::events::EventKind;
use handoff_kafka::{run_consumer, ConsumerSpec, EventProducer, KafkaError};
use handoff_store::Store;
use handoff_telemetry::{FunnelMetrics, Metrics};

pub use labels::{LabelFolder, SourceLabels, NONE, OTHER};
pub use stages::{outcome_stage, sla_of, OutcomeStage, SlaKind};

#[derive(Debug, thiserror::Error)]
pub enum FunnelError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

#[derive(Debug, Clone)]
pub struct FunnelDeps {
    pub kafka: KafkaSettings,
    pub settings: FunnelSettings,
    /// `ingest.reason_codes`: the rejection reasons that keep their name.
    pub reason_codes: Vec<String>,
    pub store: Store,
    /// Only for the consumer loop's plumbing: the funnel publishes nothing.
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub funnel_metrics: FunnelMetrics,
    pub rules: RulesHandle,
    pub lead_retention: Duration,
    pub drain: Duration,
}

/// Runs the consumer and the gauge refresher until `shutdown`; the consumer failing stops
/// the refresher too.
pub async fn run(deps: FunnelDeps, shutdown: CancellationToken) -> Result<(), FunnelError> {
    let topics = deps.producer.topics().clone();
    let spec = ConsumerSpec {
        service: "funnel",
        topics: [
            EventKind::LeadCreated,
            EventKind::LeadAssigned,
            EventKind::LeadDisposition,
            EventKind::SlaBreached,
        ]
        .into_iter()
        .map(|kind| topics.of(kind))
        .collect(),
        max_in_flight: 1024,
        drain: deps.drain,
    };
    let folder = Arc::new(LabelFolder::new(&deps.settings, &deps.reason_codes));
    let refresher = refresh::Refresher {
        store: deps.store.clone(),
        metrics: deps.funnel_metrics.clone(),
        folder: folder.clone(),
        rules: deps.rules.clone(),
        settings: deps.settings.clone(),
        lead_retention: deps.lead_retention,
        gate: deps.producer.gate().clone(),
    };
    refresher.prime();
    let counter = counting::FunnelCounter {
        store: deps.store,
        metrics: deps.funnel_metrics,
        folder,
        rules: deps.rules,
        lead_retention: deps.lead_retention,
    };
    let stop = shutdown.child_token();
    let refreshing = tokio::spawn(refresher.run(stop.clone()));
    let consumed = run_consumer(
        &deps.kafka,
        spec,
        counter,
        deps.producer,
        deps.metrics,
        stop.clone(),
    )
    .await;
    stop.cancel();
    if let Err(e) = refreshing.await {
        tracing::error!(error = %e, "funnel refresher task failed");
    }
    consumed?;
    Ok(())
}
