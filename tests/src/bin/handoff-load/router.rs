//! `handoff-load … router`: the router alone, at saturation, and where its time goes.
//!
//! ```text
//!  backlog: N leads produced onto lead.created before the router starts (as after a
//!           campaign send, or a router outage)
//!  `handoff router` (in process, as the binary runs it) drains them ──► lead.assigned
//!  leads/s = N / (last assigned_at − first assigned_at)      (the group join is not in it)
//!  CPU per lead: Redis (INFO cpu), and this process's threads by name (/proc/self/task)
//!  floor: the commit script alone, pipelined (the ceiling), on the same Redis, same run
//! ```
//!
//! With the whole pipeline on one box (`handoff-load` without a mode) the router shares its
//! cores with ingest, the SLA tracker, the notifier and the load generator; this mode takes
//! them out, so the figure is the router's own, and the CPU split says whether a partition
//! waits on its round trips, on the router's CPU, or on Redis's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use handoff::services::{self, Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{StackOptions, TestEnv, RULES};
use handoff_kafka::{EventProducer, OutboundEvent};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct RouterArgs {
    /// Leads in the backlog the router drains.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// Teams the leads are spread over (each its own rotation; 1: every partition's
    /// commits contend on one rotation, as in the default load command).
    #[arg(long, default_value_t = 1)]
    teams: usize,
    /// `router.max_in_flight` (unset: the default).
    #[arg(long)]
    max_in_flight: Option<usize>,
}

pub async fn run(
    env: TestEnv,
    id: String,
    partitions: i32,
    create_topics: bool,
    floor: crate::process::FloorArgs,
    args: RouterArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.backlog >= 2 && (1..=COUNTRIES.len()).contains(&args.teams),
        "--backlog ≥ 2, --teams 1..={}",
        COUNTRIES.len()
    );
    let topics = handoff_kafka::Topics::new(format!("{id}."));
    if create_topics {
        crate::sla::create(&env.kafka, &topics.all(), partitions).await?;
    }
    let options = StackOptions {
        services: ServiceSet::only(Service::Router),
        id: Some(id.clone()),
        create_topics: false,
        rules: rules(args.teams),
        router_config: args
            .max_in_flight
            .map(|n| format!("max_in_flight = {n}\n"))
            .unwrap_or_default(),
        fetch_wait_max_ms: floor.fetch_wait_ms,
        ..StackOptions::default()
    };
    let config = handoff_e2e::write_config(&env, &id, &options);
    let mut vars = handoff_e2e::config_env(&options);
    vars.push(("HANDOFF_LOG_LEVEL".to_owned(), "warn".to_owned()));
    let loaded = handoff_config::load(&config, vars).context("bench config")?;
    // The generation marker an operator's `handoff state init` writes: without it, a router
    // that finds events on the log and no state takes it for a lost Redis and rebuilds.
    handoff::state::init(&loaded)
        .await
        .context("the state's generation marker")?;

    // 1. The backlog, acknowledged before the router starts.
    let producer = EventProducer::new(&loaded.settings.kafka, "load")?;
    let produced = Instant::now();
    let mut acks = Vec::with_capacity(args.backlog);
    for n in 0..args.backlog {
        acks.push(producer.enqueue(&lead_created(&id, n, args.teams)?).await?);
    }
    for ack in acks {
        ack.await?;
    }
    println!(
        "backlog: {} leads on lead.created ({partitions} partitions) in {:.1} s ({} team(s))",
        args.backlog,
        produced.elapsed().as_secs_f64(),
        args.teams
    );

    // 2. The router drains it; CPU is read around the drain.
    let mut redis = redis::Client::open(env.redis.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let redis_before = crate::redis_stats::cpu_seconds(&mut redis).await?;
    let threads_before = thread_cpu_seconds()?;
    let shutdown = CancellationToken::new();
    let running = services::start(ServiceSet::only(Service::Router), loaded, shutdown.clone())
        .await
        .context("starting the router")?;
    let metrics_url = running
        .admin_addr
        .map(|addr| format!("http://{addr}/metrics"))
        .context("the router's internal listener")?;
    let router = tokio::spawn(running.wait());
    let started = Instant::now();
    let mut reader = TopicReader::new(&env.kafka, &topics.of(EventKind::LeadAssigned));
    let (mut subjects, mut counted) = (BTreeSet::new(), 0);
    let records = reader
        .read_until(
            Duration::from_secs(900),
            "the backlog assigned",
            |records| {
                for record in records.get(counted..).unwrap_or_default() {
                    if let Some(subject) = record.header("ce_subject") {
                        subjects.insert(subject.to_owned());
                    }
                }
                counted = records.len();
                subjects.len() >= args.backlog
            },
        )
        .await
        .to_vec();
    let drained_in = started.elapsed();
    let redis_cpu = crate::redis_stats::cpu_seconds(&mut redis).await? - redis_before;
    let threads = thread_cpu_seconds()?;
    let handled = handle_seconds(&metrics_url).await?;
    shutdown.cancel();
    router.await??;

    let assigned_at: Vec<DateTime<Utc>> = records
        .iter()
        .filter_map(|r| r.json()["assigned_at"].as_str()?.parse().ok())
        .collect();
    let (Some(first), Some(last)) = (assigned_at.iter().min(), assigned_at.iter().max()) else {
        anyhow::bail!("no lead.assigned carried an assigned_at");
    };
    let span = (*last - *first).num_milliseconds().max(1) as f64 / 1000.0;
    let per_second = (args.backlog - 1) as f64 / span;
    let sample = records
        .first()
        .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
        .context("a lead.assigned payload")?;

    // 3. The floor, on the same Redis, after the drain (nothing else runs then).
    let script = crate::floor::commit_script(
        &env.redis,
        &format!("{id}-floor"),
        &sample,
        floor.scripts,
        64,
    )
    .await?;
    let (script_p50, script_p99) = crate::floor::p50_p99(&script.sequential_ms);
    println!(
        "floor: commit script     p50 {script_p50:.2} ms, p99 {script_p99:.2} ms (one at a time); ceiling {:.0} /s (64 in flight)",
        script.pipelined_per_second
    );

    let leads = args.backlog as f64;
    println!(
        "router alone: {} leads drained in {:.1} s from start (group join included); {per_second:.0} leads/s from the first assignment to the last ({span:.1} s)",
        args.backlog,
        drained_in.as_secs_f64(),
    );
    let (handle_sum, handle_count) = handled;
    println!(
        "  handling (handoff_consumer_handle_seconds): {:.2} ms an event on average ({handle_count:.0} events); a partition's time a lead: {:.2} ms",
        handle_sum / handle_count.max(1.0) * 1000.0,
        span * f64::from(partitions) / leads * 1000.0,
    );
    println!(
        "  Redis CPU: {:.0} µs a lead ({:.0} % of one core over the drain)",
        redis_cpu / leads * 1e6,
        redis_cpu / drained_in.as_secs_f64() * 100.0
    );
    let mut total = 0.0;
    for (name, seconds) in &threads {
        let used = seconds - threads_before.get(name).copied().unwrap_or_default();
        total += used;
        if used / leads * 1e6 >= 1.0 {
            println!(
                "  this process, threads {name:<18} {:>6.0} µs a lead",
                used / leads * 1e6
            );
        }
    }
    println!(
        "  this process, all threads       {:>6.0} µs a lead (router, its Kafka clients, the reader{})",
        total / leads * 1e6,
        if create_topics {
            ""
        } else {
            ", the mock broker"
        }
    );
    println!(
        "target: router throughput ≥ 50 % of the ceiling: {per_second:.0} / {:.0} = {:.3}",
        script.pipelined_per_second,
        per_second / script.pipelined_per_second
    );
    Ok(())
}

/// One territory per team, in the order `--teams` takes them.
const COUNTRIES: [&str; 8] = ["DE", "US", "FR", "GB", "JP", "BR", "IN", "AU"];

/// [`RULES`]' scoring, and `teams` teams of four reps with no capacity limit in reach, each
/// owning one country of [`COUNTRIES`].
fn rules(teams: usize) -> String {
    let scoring = RULES.split("[routing]").next().unwrap_or_default();
    let mut rules = format!("{scoring}[routing]\n");
    for (t, country) in COUNTRIES.iter().take(teams).enumerate() {
        let members: Vec<String> = (0..4).map(|r| format!("\"t{t}-r{r}\"")).collect();
        rules += &format!(
            "[[routing.teams]]\nid = \"t{t}\"\nmembers = [{}]\n\n",
            members.join(", ")
        );
        for r in 0..4 {
            rules += &format!("[[routing.reps]]\nid = \"t{t}-r{r}\"\ncapacity = 1000000\n\n");
        }
        rules += &format!(
            "[[routing.rules]]\nname = \"t{t}\"\nteam = \"t{t}\"\nwhen = {{ field = \"company.country\", in = [\"{country}\"] }}\n\n"
        );
    }
    rules
}

/// Lead `n` of the backlog, as a trusted integration produces it onto `lead.created`.
fn lead_created(id: &str, n: usize, teams: usize) -> anyhow::Result<OutboundEvent> {
    let mut body = handoff_e2e::qualified_lead(n);
    body["id"] = serde_json::json!(format!("{id}-backlog-{n}"));
    body["company"]["country"] = serde_json::json!(COUNTRIES[n % teams]);
    let (_, event) = handoff_e2e::lead_created_event(body, Utc::now())
        .with_context(|| format!("backlog lead {n}"))?;
    Ok(event)
}

/// `handoff_consumer_handle_seconds` of the router: (sum, count) from its /metrics.
async fn handle_seconds(url: &str) -> anyhow::Result<(f64, f64)> {
    let text = reqwest::get(url).await?.error_for_status()?.text().await?;
    let value = |name: &str| -> anyhow::Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{service=\"router\"}} ")))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("{name} of the router in its /metrics"))
    };
    Ok((
        value("handoff_consumer_handle_seconds_sum")?,
        value("handoff_consumer_handle_seconds_count")?,
    ))
}

/// CPU seconds of this process's live threads, summed by thread name with digits dropped
/// (`tokio-runtime-w`, `rdk:broker`, `rdk:main`, `rdk:mock`, ...).
fn thread_cpu_seconds() -> anyhow::Result<BTreeMap<String, f64>> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir("/proc/self/task").context("/proc/self/task")? {
        let tid = task?.file_name().to_string_lossy().into_owned();
        let Ok(comm) = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")) else {
            continue; // the thread ended meanwhile
        };
        let Ok(seconds) = crate::proc_stats::cpu_seconds(&format!("self/task/{tid}")) else {
            continue;
        };
        let name: String = comm
            .trim()
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect();
        *by_name.entry(name).or_insert(0.0) += seconds;
    }
    Ok(by_name)
}
