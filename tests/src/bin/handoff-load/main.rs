//! `handoff-load`: pushes N leads through ingest → Kafka → router → lead.assigned on a local
//! stack and prints throughput and received→assigned latency; `handoff-load … sla` measures
//! the SLA tracker's lateness with many open deadlines (sla.rs). A benchmark, not a test:
//! `make load` (figures in docs/benchmarks.md).

#[path = "sla.rs"]
mod sla;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use handoff_domain::events::EventKind;
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{qualified_lead, Stack, StackOptions, TestEnv, RULES};
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
struct Args {
    /// Kafka bootstrap servers (ignored with --embedded).
    #[arg(long, default_value = "")]
    kafka: String,
    /// Use an in-process librdkafka mock cluster instead of a broker: shows what handoff
    /// itself can do when the broker is not the bottleneck.
    #[arg(long)]
    embedded: bool,
    /// Redis URL.
    #[arg(long)]
    redis: String,
    /// Leads to push (after a warm-up of 100).
    #[arg(long, default_value_t = 5000)]
    leads: usize,
    /// HTTP requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[command(subcommand)]
    bench: Option<Bench>,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// The SLA tracker: lateness of breaches and reminders with many open deadlines.
    Sla(sla::SlaArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    handoff_telemetry::init_logging(false, "warn")?;
    // Kept alive until the end of main: dropping it stops the embedded broker.
    let id = handoff_e2e::unique_id();
    let _mock = if args.embedded {
        let mock = handoff_kafka::rdkafka::mocking::MockCluster::new(1)?;
        for topic in handoff_kafka::Topics::new(format!("{id}.")).all() {
            mock.create_topic(&topic, 3, 1)?;
        }
        args.kafka = mock.bootstrap_servers();
        Some(mock)
    } else {
        None
    };
    anyhow::ensure!(!args.kafka.is_empty(), "give --kafka or --embedded");
    let env = TestEnv {
        kafka: args.kafka.clone(),
        redis: args.redis.clone(),
    };
    if let Some(Bench::Sla(bench)) = args.bench {
        return sla::run(env, id, !args.embedded, bench).await;
    }
    let stack = Stack::start_with(
        env,
        StackOptions {
            rules: RULES
                .replace("capacity = 100", "capacity = 1000000")
                .replace("capacity = 20", "capacity = 1000000"),
            id: Some(id),
            create_topics: !args.embedded,
            ..StackOptions::default()
        },
    )
    .await;
    let url = format!("{}/v1/leads", stack.api());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", handoff_e2e::TEST_KEY))?,
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .default_headers(headers)
        .build()?;
    let mut reader = TopicReader::new(&args.kafka, &stack.topics.of(EventKind::LeadAssigned));

    // Warm-up: producers acquire their ids, consumers join their groups, connections open.
    let warm_up = 100;
    post_all(&client, &url, warm_up, args.concurrency, 0).await?;
    reader
        .read_until(Duration::from_secs(120), "warm-up", |r| r.len() >= warm_up)
        .await;

    let started = Instant::now();
    let http = post_all(&client, &url, args.leads, args.concurrency, warm_up).await?;
    let posted_in = started.elapsed();
    let total = warm_up + args.leads;
    let records = reader
        .read_until(Duration::from_secs(600), "every lead assigned", |records| {
            records
                .iter()
                .filter_map(|r| r.header("ce_subject"))
                .collect::<BTreeSet<_>>()
                .len()
                >= total
        })
        .await
        .to_vec();
    let assigned_in = started.elapsed();

    let mut latencies: Vec<f64> = records
        .iter()
        .skip(warm_up)
        .filter_map(|r| {
            let event = r.json();
            let received: chrono::DateTime<chrono::Utc> =
                event["received_at"].as_str()?.parse().ok()?;
            let assigned: chrono::DateTime<chrono::Utc> =
                event["assigned_at"].as_str()?.parse().ok()?;
            Some((assigned - received).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut http = http;
    http.sort_by(f64::total_cmp);

    println!(
        "broker:                {}",
        if args.embedded {
            "librdkafka mock cluster (in-process)"
        } else {
            args.kafka.as_str()
        }
    );
    println!("leads:                 {}", args.leads);
    println!("HTTP concurrency:      {}", args.concurrency);
    println!(
        "ingest throughput:     {:.0} leads/s (all 202s in {:.2} s)",
        args.leads as f64 / posted_in.as_secs_f64(),
        posted_in.as_secs_f64()
    );
    println!(
        "end-to-end throughput: {:.0} leads/s (all assigned in {:.2} s)",
        args.leads as f64 / assigned_in.as_secs_f64(),
        assigned_in.as_secs_f64()
    );
    println!(
        "POST /v1/leads (202):  p50 {:.1} ms, p99 {:.1} ms",
        percentile(&http, 0.50),
        percentile(&http, 0.99)
    );
    println!(
        "received → assigned:   p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    stack.stop().await
}

/// Posts `count` leads with `concurrency` in flight; returns each request's latency (ms).
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    count: usize,
    concurrency: usize,
    offset: usize,
) -> anyhow::Result<Vec<f64>> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let permit = permits.clone().acquire_owned().await?;
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            let response = client
                .post(url)
                .json(&qualified_lead(offset + n))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().as_u16() == 202,
                "ingest answered {}",
                response.status()
            );
            Ok(sent.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.push(task.await.context("post task")??);
    }
    Ok(latencies)
}

use sla::percentile;
