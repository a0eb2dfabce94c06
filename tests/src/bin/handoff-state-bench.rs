//! `handoff state rebuild` on a log of N leads (docs/operations.md, docs/benchmarks.md).
//!
//! Publishes, on fresh topics of the given broker, what N leads leave in the log — every
//! `lead.created` (half with an Idempotency-Key's headers), a `lead.assigned` for each,
//! a `contacted` report for half of them, a first-touch breach for a quarter
//! (handoff_e2e::routed_log) — then runs
//! the real `handoff state rebuild` (the binary beside this one) against a fresh Redis key
//! prefix and prints its report (time, peak memory). Nothing is flushed: the prefix is new.
//!
//!   cargo build --release --bin handoff -p handoff && \
//!   cargo run --release -p handoff-e2e --bin handoff-state-bench -- \
//!     --kafka 127.0.0.1:19092 --redis redis://127.0.0.1:16379 --leads 100000

use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use handoff_e2e::routed_log::{publish_routed_leads, MockLog};
use handoff_e2e::{StackOptions, TestEnv};
use handoff_kafka::EventProducer;

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
    let started = Instant::now();
    // The mock cluster lives in this process until the rebuild is done.
    let (_mock, id, config_path) = match args.mock_partitions {
        Some(partitions) => {
            let log = MockLog::start(&args.redis, partitions)?;
            log.publish_routed_leads(args.leads).await?;
            let (id, config_path) = (log.id.clone(), log.config_path.clone());
            (Some(log), id, config_path)
        }
        None => {
            let env = TestEnv {
                kafka: args.kafka.clone(),
                redis: args.redis.clone(),
            };
            let id = handoff_e2e::unique_id();
            let config_path = handoff_e2e::write_config(&env, &id, &StackOptions::default());
            let loaded = handoff_config::load(&config_path, Vec::new())?;
            if !args.no_create_topics {
                let topics = handoff_kafka::Topics::new(format!("{id}."));
                handoff_kafka::ensure_topics(&loaded.settings.kafka, &topics).await?;
            }
            let producer = EventProducer::new(&loaded.settings.kafka, "bench")?;
            publish_routed_leads(&producer, args.leads).await?;
            (None, id, config_path)
        }
    };
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
