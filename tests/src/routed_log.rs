//! What N routed leads leave in the event log, published to librdkafka's mock cluster:
//! the input of `handoff state rebuild` for the state bench (`handoff-state-bench`) and
//! the rebuild's memory test (e2e `rebuild_memory`). Per lead: its `lead.created` (half
//! with an Idempotency-Key's headers), a `lead.assigned`, a `contacted` report for half,
//! a first-touch breach for a quarter: 2.75 records per lead.

use std::path::PathBuf;

use chrono::Utc;
use futures::future::try_join_all;

use handoff_domain::disposition::{Actor, ActorKind, Outcome};
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition, SlaBreached};
use handoff_domain::routing::RoutingExplanation;
use handoff_domain::scoring::Score;
use handoff_domain::sla::Sla;
use handoff_kafka::rdkafka::mocking::MockCluster;
use handoff_kafka::rdkafka::producer::DefaultProducerContext;
use handoff_kafka::{EventProducer, OutboundEvent, TraceParent};

use crate::{lead_created_event, qualified_lead, StackOptions, TestEnv};

/// A deployment whose log lives in librdkafka's mock cluster (in this process: it lives as
/// long as this value), which takes 100,000 leads' events in seconds where a real test
/// broker takes minutes.
#[allow(missing_debug_implementations)] // MockCluster has no Debug
pub struct MockLog {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    /// The configuration of a deployment on the mock cluster and `redis`, with a fresh
    /// topic prefix and Redis key prefix.
    pub config_path: PathBuf,
    pub id: String,
    producer: EventProducer,
}

impl MockLog {
    /// Starts the cluster and creates the deployment's topics with `partitions` each (it
    /// keeps a bounded number of bytes per partition: 32 hold 100,000 leads).
    pub fn start(redis: &str, partitions: i32) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(1)?;
        let env = TestEnv {
            kafka: cluster.bootstrap_servers(),
            redis: redis.to_owned(),
        };
        let id = crate::unique_id();
        let config_path = crate::write_config(&env, &id, &StackOptions::default());
        let loaded = handoff_config::load(&config_path, Vec::new())?;
        for topic in handoff_kafka::Topics::new(format!("{id}.")).all() {
            cluster.create_topic(&topic, partitions, 1)?;
        }
        let producer = EventProducer::new(&loaded.settings.kafka, "routed-log")?;
        Ok(Self {
            cluster,
            config_path,
            id,
            producer,
        })
    }

    /// Publishes what `leads` routed leads leave in the log (see the module's doc),
    /// received two hours ago, a millisecond apart.
    pub async fn publish_routed_leads(&self, leads: usize) -> anyhow::Result<()> {
        publish_routed_leads(&self.producer, leads).await
    }
}

/// [`MockLog::publish_routed_leads`] on any broker.
pub async fn publish_routed_leads(producer: &EventProducer, leads: usize) -> anyhow::Result<()> {
    let reps = ["a", "b", "c"];
    let now = Utc::now();
    let mut acks = Vec::new();
    for n in 0..leads {
        let received_at =
            now - chrono::Duration::hours(2) + chrono::Duration::milliseconds(i64::try_from(n)?);
        let (lead, mut created) = lead_created_event(qualified_lead(n), received_at)?;
        if n % 2 == 0 {
            created = created
                .with_header(handoff_kafka::IDEMPOTENCY_KEY_HEADER, format!("{n:064x}"))
                .with_header(
                    handoff_kafka::IDEMPOTENCY_FINGERPRINT_HEADER,
                    format!("{n:x}"),
                );
        }
        acks.push(producer.enqueue(&created).await?);
        let assigned_at = received_at + chrono::Duration::milliseconds(50);
        let assigned = LeadAssigned {
            lead_id: lead.id.clone(),
            attempt: 1,
            team_id: "sales".into(),
            rep_id: reps[n % reps.len()].into(),
            received_at,
            assigned_at,
            // Open deadlines lie ahead (an outage's late ones are the e2e test's matter);
            // the breached quarter's passed long ago.
            first_touch_due_at: if n % 4 == 1 {
                assigned_at + chrono::Duration::minutes(5)
            } else {
                now + chrono::Duration::minutes(10)
            },
            score: Score {
                points: 20,
                band: "B".to_owned(),
                qualified: true,
                fast_lane: false,
                contributions: Vec::new(),
                model_version: String::new(),
            },
            explanation: RoutingExplanation {
                rule: "everyone".to_owned(),
                strategy: "round_robin".to_owned(),
                reason: "bench".to_owned(),
                ..RoutingExplanation::default()
            },
            source: lead.source.clone(),
            queue: None,
            queued_at: None,
            lead: None,
            joins: None,
        };
        acks.push(
            producer
                .enqueue(&OutboundEvent::new(
                    EventKind::LeadAssigned,
                    assigned.event_id(),
                    lead.id.as_str(),
                    assigned_at,
                    TraceParent::new_root(),
                    &assigned,
                )?)
                .await?,
        );
        if n % 2 == 0 {
            let touch = LeadDisposition {
                lead_id: lead.id.clone(),
                outcome: Outcome::Contacted,
                reason_code: String::new(),
                note: String::new(),
                actor: Actor {
                    kind: ActorKind::Rep,
                    id: assigned.rep_id.as_str().to_owned(),
                },
                occurred_at: assigned_at + chrono::Duration::seconds(30),
                source: lead.source.clone(),
                score: None,
                team_id: Some(assigned.team_id.clone()),
                rep_id: Some(assigned.rep_id.clone()),
                queue: None,
                amount: String::new(),
                currency: String::new(),
            };
            acks.push(
                producer
                    .enqueue(&OutboundEvent::new(
                        EventKind::LeadDisposition,
                        format!("bench-touch-{n}"),
                        lead.id.as_str(),
                        touch.occurred_at,
                        TraceParent::new_root(),
                        &touch,
                    )?)
                    .await?,
            );
        } else if n % 4 == 1 {
            let breach = SlaBreached {
                lead_id: lead.id.clone(),
                attempt: 1,
                team_id: Some(assigned.team_id.clone()),
                rep_id: Some(assigned.rep_id.clone()),
                due_at: assigned.first_touch_due_at,
                breached_at: assigned.first_touch_due_at,
                sla: Sla::FirstTouch,
            };
            acks.push(
                producer
                    .enqueue(&OutboundEvent::new(
                        EventKind::SlaBreached,
                        breach.event_id(),
                        lead.id.as_str(),
                        breach.breached_at,
                        TraceParent::new_root(),
                        &breach,
                    )?)
                    .await?,
            );
        }
        if acks.len() >= 10_000 {
            try_join_all(acks.drain(..)).await?;
        }
    }
    try_join_all(acks).await?;
    Ok(())
}

/// The peak resident memory `handoff state rebuild` reports for itself (its `VmHWM` when
/// the rebuild is done: `peak memory 62 MiB`), in MiB.
pub fn reported_peak_mib(report: &str) -> Option<u64> {
    let (_, rest) = report.split_once("peak memory ")?;
    let (mib, _) = rest.split_once(" MiB")?;
    mib.trim().parse().ok()
}
