//! router: consumes `lead.created`, scores the lead against the shared MQL definition,
//! picks a rep with the routing rules, and commits the decision in one atomic Redis step
//! before publishing `lead.assigned` (or a `lead.disposition` for nurture and queueing).
//! Queued leads are routed by the drainer as soon as someone can take them.
//!
//! Redelivery is safe: a lead decided before replays its first decision (same event id)
//! and charges no capacity again.
//!
//! Beside it, a second consumer keeps account owners current from `account.owner`
//! (accounts.rs): records a CRM connector publishes, applied to Redis for every instance.

mod accounts;
mod drain;
mod escalation;
mod handler;
mod placement;
mod team_locks;

use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use handoff_config::{EscalationSettings, KafkaSettings, RouterSettings, RulesHandle};
use handoff_domain::events::EventKind;
use handoff_domain::lifecycle::CapacityRelease;
use handoff_domain::sla::SlaClocks;
use handoff_kafka::{run_consumer, ConsumerSpec, EventProducer, KafkaError};
use handoff_store::Store;
use handoff_telemetry::Metrics;

pub use accounts::AccountOwnerHandler;
pub use handler::RouterHandler;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

#[derive(Debug, Clone)]
pub struct RouterDeps {
    pub kafka: KafkaSettings,
    pub settings: RouterSettings,
    pub store: Store,
    pub producer: EventProducer,
    pub metrics: Metrics,
    pub rules: RulesHandle,
    /// The SLA policy with its reminders: every clock an assignment starts.
    pub sla: SlaClocks,
    pub release: CapacityRelease,
    pub escalation: EscalationSettings,
    pub lead_retention: Duration,
    pub drain: Duration,
}

/// Routes leads (new ones from the topic, waiting ones from the queues) and applies
/// account owners until `shutdown` is cancelled; then drains and commits. If either
/// consumer fails, everything is stopped and the error returned: the process restarts whole.
pub async fn run(deps: RouterDeps, shutdown: CancellationToken) -> Result<(), RouterError> {
    let topics = deps.producer.topics().clone();
    let stop = shutdown.child_token();
    let spec = ConsumerSpec {
        service: "router",
        topics: vec![topics.of(EventKind::LeadCreated)],
        max_in_flight: deps.settings.max_in_flight,
        drain: deps.drain,
    };
    let placer = placement::Placer {
        store: deps.store.clone(),
        metrics: deps.metrics.clone(),
        rules: deps.rules,
        sla: deps.sla,
        retention: deps.lead_retention,
        release: deps.release,
        team_locks: team_locks::TeamLocks::default(),
    };
    for kind in ["assign", "reassign"] {
        placer.metrics.routing_conflicts.with_label_values(&[kind]);
    }
    let drainer = drain::QueueDrainer {
        placer: placer.clone(),
        producer: deps.producer.clone(),
        interval: Duration::from_millis(deps.settings.queue_poll_ms.max(10)),
        scan: deps.settings.queue_scan,
        order: deps.settings.queue_order,
        reconcile_every: (deps.settings.reconcile_interval_seconds > 0)
            .then(|| Duration::from_secs(deps.settings.reconcile_interval_seconds)),
    };
    let escalations = escalation::EscalationHandler {
        placer: placer.clone(),
        producer: deps.producer.clone(),
        defaults: deps.escalation,
    };
    let handler = RouterHandler::new(placer, deps.producer.clone());
    let draining = tokio::spawn(drainer.run(stop.clone()));
    let leads = run_consumer(
        &deps.kafka,
        spec,
        handler,
        deps.producer.clone(),
        deps.metrics.clone(),
        stop.clone(),
    );
    // A group of its own: an owner update does not wait behind a backlog of leads, and a
    // router started later reads the compacted topic from its start (auto.offset.reset).
    let owners_spec = ConsumerSpec {
        service: "account_owners",
        topics: vec![topics.account_owner()],
        max_in_flight: deps.settings.max_in_flight,
        drain: deps.drain,
    };
    let owners = run_consumer(
        &deps.kafka,
        owners_spec,
        AccountOwnerHandler::new(deps.store, deps.metrics.clone()),
        deps.producer.clone(),
        deps.metrics.clone(),
        stop.clone(),
    );
    // Its own group too: acting on a missed deadline must not wait behind new leads.
    let breaches_spec = ConsumerSpec {
        service: "escalation",
        topics: vec![topics.of(EventKind::SlaBreached)],
        max_in_flight: deps.settings.max_in_flight,
        drain: deps.drain,
    };
    let breaches = run_consumer(
        &deps.kafka,
        breaches_spec,
        escalations,
        deps.producer.clone(),
        deps.metrics.clone(),
        stop.clone(),
    );
    let stop_on_exit = |outcome: Result<(), KafkaError>| {
        stop.cancel();
        outcome
    };
    let (leads, owners, breaches) = tokio::join!(
        leads.map(stop_on_exit),
        owners.map(stop_on_exit),
        breaches.map(stop_on_exit)
    );
    stop.cancel();
    if let Err(e) = draining.await {
        tracing::error!(error = %e, "queue drainer task failed");
    }
    leads?;
    owners?;
    breaches?;
    Ok(())
}
