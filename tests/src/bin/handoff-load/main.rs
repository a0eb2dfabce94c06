//! `handoff-load`: pushes N leads through ingest → Kafka → router → lead.assigned on a local
//! stack and prints throughput and received→assigned latency; `handoff-load … sla` measures
//! the SLA tracker's lateness with many open deadlines (sla.rs); `handoff-load … ingest`
//! ingest against a hello-world handler (ingest.rs); `handoff-load … process` runs
//! `handoff all` as a process of its own and measures its RSS and received → notified
//! (process.rs); `handoff-load … memory` Redis memory per open and closed lead (memory.rs).
//! The throughput and latency ones print their floor, measured in the same run (floor.rs), and the ratio
//! to it. A benchmark, not a test:
//! `make load` (figures in docs/benchmarks.md).

#[path = "floor.rs"]
mod floor;
#[path = "ingest.rs"]
mod ingest;
#[path = "memory.rs"]
mod memory;
#[path = "notified.rs"]
mod notified;
#[path = "proc_stats.rs"]
mod proc_stats;
#[path = "process.rs"]
mod process;
#[path = "redis_stats.rs"]
mod redis_stats;
#[path = "router.rs"]
mod router;
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
    /// HTTP requests in flight at once (without --rate).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Post at this many leads per second instead of as fast as --concurrency allows:
    /// latency at a sustained rate, below saturation.
    #[arg(long)]
    rate: Option<u32>,
    /// Produce → consume hops and commit scripts measured for the floor.
    #[arg(long, default_value_t = 200)]
    floor_hops: usize,
    #[arg(long, default_value_t = 2000)]
    floor_scripts: usize,
    /// `kafka.fetch_wait_max_ms` of the services (and of the floor's hop).
    #[arg(long, default_value_t = 100)]
    fetch_wait_ms: u32,
    /// Partitions of each topic the command creates (the router works them concurrently).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Also print what the measured leads cost Redis, from the server's own counters: reset
    /// after the warm-up and the floor, read once the services are quiet (so the figures
    /// are the services' alone; scripts/redis-cost.sh).
    #[arg(long)]
    redis_cost: bool,
    #[command(subcommand)]
    bench: Option<Bench>,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// The SLA tracker: lateness of breaches and reminders with many open deadlines.
    Sla(sla::SlaArgs),
    /// Ingest's requests/s against a hello-world axum handler, with `wrk`.
    Ingest(ingest::IngestArgs),
    /// `handoff all` as its own process against the mock broker in another (both built
    /// binaries): its RSS and CPU per lead, received → assigned and → notified, with few
    /// and with many open leads. Ignores --kafka and --embedded.
    Process(process::ProcessArgs),
    /// The router alone draining a backlog of `lead.created`: leads/s at saturation and
    /// the CPU a lead costs Redis and the router, against the commit script's ceiling.
    Router(router::RouterArgs),
    /// Redis memory per open and per closed lead (`used_memory`; a Redis of its own).
    Memory(memory::MemoryArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    handoff_telemetry::init_logging(false, "warn")?;
    let id = handoff_e2e::unique_id();
    if let Some(Bench::Process(bench)) = args.bench {
        let floor = process::FloorArgs {
            hops: args.floor_hops,
            scripts: args.floor_scripts,
            fetch_wait_ms: args.fetch_wait_ms,
        };
        return process::run(args.redis, id, floor, bench).await;
    }
    // Kept alive until the end of main: dropping it stops the embedded broker.
    let _mock = if args.embedded {
        let mock = handoff_kafka::rdkafka::mocking::MockCluster::new(1)?;
        for topic in handoff_kafka::Topics::new(format!("{id}.")).all() {
            mock.create_topic(&topic, args.partitions, 1)?;
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
    match args.bench {
        Some(Bench::Sla(bench)) => return sla::run(env, id, !args.embedded, bench).await,
        Some(Bench::Ingest(bench)) => return ingest::run(env, id, !args.embedded, bench).await,
        Some(Bench::Router(bench)) => {
            let floor = process::FloorArgs {
                hops: args.floor_hops,
                scripts: args.floor_scripts,
                fetch_wait_ms: args.fetch_wait_ms,
            };
            return router::run(env, id, args.partitions, !args.embedded, floor, bench).await;
        }
        Some(Bench::Process(_) | Bench::Memory(_)) | None => {}
    }
    let options = StackOptions {
        rules: RULES
            .replace("capacity = 100", "capacity = 1000000")
            .replace("capacity = 20", "capacity = 1000000"),
        id: Some(id.clone()),
        create_topics: !args.embedded,
        fetch_wait_max_ms: args.fetch_wait_ms,
        ..StackOptions::default()
    };
    let stack = Stack::start_with(env, options.clone()).await;
    let settings =
        handoff_config::load(&stack.config_path, handoff_e2e::config_env(&options))?.settings;
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

    if let Some(Bench::Memory(bench)) = &args.bench {
        memory::run(&stack, &client, bench, args.concurrency, warm_up).await?;
        return stack.stop().await;
    }

    // The floor, on the same broker and Redis, before the traffic.
    let hop_ms = floor::hops(
        &settings.kafka,
        &stack.topics.dead_letter(),
        args.floor_hops,
    )
    .await?;
    let sample = reader
        .read_for(Duration::from_millis(1))
        .await
        .first()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .context("a lead.assigned payload from the warm-up")?;
    let script = floor::commit_script(
        &args.redis,
        &format!("{id}-floor"),
        &sample,
        args.floor_scripts,
        64,
    )
    .await?;

    let mut redis_cost = match args.redis_cost {
        true => {
            let mut redis = redis::Client::open(args.redis.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            let idle = redis_stats::idle(&mut redis, Duration::from_secs(3)).await?;
            let phase = redis_stats::Phase::start(&mut redis).await?;
            Some((redis, idle, phase))
        }
        false => None,
    };
    let started = Instant::now();
    let http = match args.rate {
        Some(rate) => post_at_rate(&client, &url, args.leads, rate, warm_up).await?,
        None => post_all(&client, &url, args.leads, args.concurrency, warm_up).await?,
    };
    let posted_in = started.elapsed();
    let total = warm_up + args.leads;
    // The leads seen so far, kept as records arrive: rebuilding the set on every record
    // made this reader a third of the process's CPU at saturation (perf, benchmarks.md),
    // taken from the services on the same two cores.
    let (mut subjects, mut counted) = (BTreeSet::new(), 0);
    let records = reader
        .read_until(Duration::from_secs(600), "every lead assigned", |records| {
            for record in records.get(counted..).unwrap_or_default() {
                if let Some(subject) = record.header("ce_subject") {
                    subjects.insert(subject.to_owned());
                }
            }
            counted = records.len();
            subjects.len() >= total
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
    let mut http: Vec<f64> = http.iter().map(|p| p.ms).collect();
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
    match args.rate {
        Some(rate) => println!("HTTP rate:             {rate} leads/s"),
        None => println!("HTTP concurrency:      {}", args.concurrency),
    }
    let floor_p99 = floor::print(&hop_ms, &script, settings.kafka.fetch_wait_max_ms);
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
    let assigned_p99 = percentile(&latencies, 0.99);
    println!(
        "received → assigned:   p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50),
        assigned_p99,
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or_default()
    );
    let throughput = args.leads as f64 / assigned_in.as_secs_f64();
    println!(
        "ratio: router throughput / commit-script ceiling = {:.3} (target ≥ 0.5; meaningful at saturation, without --rate)",
        throughput / script.pipelined_per_second
    );
    println!(
        "ratio: received→assigned p99 / (hop p99 + script p99) = {:.2} (target ≤ 1.5 at 1,000 leads/s)",
        assigned_p99 / floor_p99
    );
    if let Some((redis, idle, phase)) = redis_cost.as_mut() {
        let cost = phase.finish(redis, idle, Duration::from_secs(60)).await?;
        let per = |n: u64| n as f64 / args.leads as f64;
        println!(
            "redis per lead (the services alone, idle polling taken out; created → assigned → notified, no touch): {:.1} commands (script-internal included), {:.1} script calls, {:.0} us CPU",
            per(cost.commands.all),
            per(cost.commands.scripts),
            cost.cpu_seconds * 1e6 / args.leads as f64
        );
        println!(
            "redis idle (polling, per second): {:.0} commands, {:.0} us CPU",
            idle.commands.all as f64 / idle.seconds,
            idle.cpu_seconds * 1e6 / idle.seconds
        );
    }
    if let Ok(memory) = proc_stats::memory("self") {
        println!(
            "memory (this process: the whole stack, the load generator and its reader): RSS {:.0} MiB, peak {:.0} MiB (`process` measures `handoff all` alone)",
            proc_stats::mib(memory.rss_kib),
            proc_stats::mib(memory.peak_kib)
        );
    }
    stack.stop().await
}

/// Posts `count` leads at `rate` per second, each on its own task (a slow answer does not
/// hold the next post back); returns each lead's id and request latency.
pub async fn post_at_rate(
    client: &reqwest::Client,
    url: &str,
    count: usize,
    rate: u32,
    offset: usize,
) -> anyhow::Result<Vec<Posted>> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        ticker.tick().await;
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            post_one(&client, &url, offset + n).await
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.push(task.await.context("post task")??);
    }
    Ok(latencies)
}

/// One accepted lead: its id and how long the POST took (ms).
#[derive(Debug)]
pub struct Posted {
    pub ms: f64,
    pub lead_id: String,
}

async fn post_one(client: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<Posted> {
    let sent = Instant::now();
    let response = client.post(url).json(&qualified_lead(n)).send().await?;
    let status = response.status();
    let ms = sent.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.as_u16() == 202, "ingest answered {status}");
    let body: serde_json::Value = response.json().await?;
    let lead_id = body["lead_id"]
        .as_str()
        .context("a 202 without lead_id")?
        .to_owned();
    Ok(Posted { ms, lead_id })
}

/// Posts `count` leads with `concurrency` in flight; returns each lead's id and request
/// latency.
pub async fn post_all(
    client: &reqwest::Client,
    url: &str,
    count: usize,
    concurrency: usize,
    offset: usize,
) -> anyhow::Result<Vec<Posted>> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(count);
    for n in 0..count {
        let permit = permits.clone().acquire_owned().await?;
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            post_one(&client, &url, offset + n).await
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.push(task.await.context("post task")??);
    }
    Ok(latencies)
}

use sla::percentile;
