//! `handoff state rebuild` on a log of N leads (docs/operations.md, docs/benchmarks.md).
//!
//! Publishes, on fresh topics of the given broker, what N leads leave in the log — every
//! `lead.created` (half with an Idempotency-Key's headers), a `lead.assigned` for each,
//! a `contacted` report for half of them, a first-touch breach for a quarter — then runs
//! the real `handoff state rebuild` (the binary beside this one) against a fresh Redis key
//! prefix and prints its report (time, peak memory). Nothing is flushed: the prefix is new.
//!
//!   cargo build --release --bin handoff -p handoff && \
//!   cargo run --release -p handoff-e2e --bin handoff-state-bench -- \
//!     --kafka 127.0.0.1:19092 --redis redis://127.0.0.1:16379 --leads 100000

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use futures::future::try_join_all;

use handoff_domain::disposition::{Actor, ActorKind, Outcome};
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition, SlaBreached};
use handoff_domain::routing::RoutingExplanation;
use handoff_domain::scoring::Score;
use handoff_domain::sla::Sla;
use handoff_e2e::{lead_created_event, qualified_lead, StackOptions, TestEnv};
use handoff_kafka::{EventProducer, OutboundEvent, TraceParent};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "")]
    kafka: String,
    #[arg(long)]
    redis: String,
    #[arg(long, default_value_t = 100_000)]
    leads: usize,
    /// The broker creates topics on first use and answers no CreateTopics (librdkafka's
    /// mock cluster, `handoff-mock-broker`).
    #[arg(long)]
    no_create_topics: bool,
    /// Runs librdkafka's mock cluster in this process instead of `--kafka`, with this many
    /// partitions per topic (it keeps a bounded number of bytes per partition: 32 hold
    /// 100,000 leads).
    #[arg(long)]
    mock_partitions: Option<i32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mock = match args.mock_partitions {
        Some(partitions) => {
            let cluster = handoff_kafka::rdkafka::mocking::MockCluster::new(1)?;
            Some((cluster, partitions))
        }
        None => None,
    };
    let env = TestEnv {
        kafka: mock
            .as_ref()
            .map_or_else(|| args.kafka.clone(), |(c, _)| c.bootstrap_servers()),
        redis: args.redis.clone(),
    };
    let id = handoff_e2e::unique_id();
    let config_path = handoff_e2e::write_config(&env, &id, &StackOptions::default());
    let loaded = handoff_config::load(&config_path, Vec::new())?;
    let topics = handoff_kafka::Topics::new(format!("{id}."));
    if let Some((cluster, partitions)) = &mock {
        for topic in topics.all() {
            cluster.create_topic(&topic, *partitions, 1)?;
        }
    } else if !args.no_create_topics {
        handoff_kafka::ensure_topics(&loaded.settings.kafka, &topics).await?;
    }
    let producer = EventProducer::new(&loaded.settings.kafka, "bench")?;

    let started = Instant::now();
    let reps = ["a", "b", "c"];
    let now = Utc::now();
    let mut acks = Vec::new();
    for n in 0..args.leads {
        // Two hours ago, a millisecond apart.
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
    println!(
        "published {} leads' events to {id}.* in {:.1} s",
        args.leads,
        started.elapsed().as_secs_f64()
    );

    // target/<profile>/handoff-state-bench -> target/<profile>/handoff
    let binary = std::env::current_exe()?.with_file_name("handoff");
    let started = Instant::now();
    let output = tokio::process::Command::new(&binary)
        .args(["state", "rebuild", "--config"])
        .arg(&config_path)
        .env("HANDOFF_LOG_LEVEL", "error")
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    println!(
        "`handoff state rebuild` took {:.1} s (wall, process start to exit)",
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(output.status.success(), "the rebuild failed");
    Ok(())
}
