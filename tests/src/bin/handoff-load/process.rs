//! `handoff-load … process`: `handoff all` as a process of its own (the built binary,
//! `handoff all --config F`), against librdkafka's mock cluster in another process
//! (`handoff-mock-broker`, as the chaos command runs it) and the given Redis, with a
//! webhook receiver on loopback. Measures what only an outside view shows: the RSS of
//! `handoff all` alone (`/proc/<pid>/status`), its CPU time per lead, received → assigned
//! and received → notified, first with few open leads and again after filling up to many
//! (assigned and untouched: capacity unbounded, first touch a day away), so a cost that
//! grows with the open leads shows as the difference between the two phases.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use handoff_domain::events::EventKind;
use handoff_e2e::chaos::broker::MockBroker;
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{config_env, write_config, StackOptions, TestEnv, RULES};
use handoff_kafka::Topics;

use crate::notified::Receiver;
use crate::proc_stats::{self, mib, RssSampler};
use crate::sla::percentile;
use crate::{floor, post_all, post_at_rate, Posted};

#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Leads per second in each measured phase.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Open leads before the first phase (posted as fast as they go, then settled).
    #[arg(long, default_value_t = 1000)]
    start_open: usize,
    /// Open leads before the second phase (0: no second phase).
    #[arg(long, default_value_t = 100_000)]
    open: usize,
    /// Requests in flight while filling.
    #[arg(long, default_value_t = 32)]
    fill_concurrency: usize,
    /// Leads posted while filling before waiting for them to be assigned and notified.
    #[arg(long, default_value_t = 3000)]
    fill_chunk: usize,
}

/// What the floor is measured with (the load command's own flags).
#[derive(Debug, Clone, Copy)]
pub struct FloorArgs {
    pub hops: usize,
    pub scripts: usize,
    pub fetch_wait_ms: u32,
}

pub async fn run(
    redis: String,
    id: String,
    floor_args: FloorArgs,
    args: ProcessArgs,
) -> anyhow::Result<()> {
    let mut connection = redis::Client::open(redis.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let outcome = measure(redis, &id, floor_args, &args).await;
    // Every key of the run goes, measured or not (100k leads are ~0.5 GB of Redis).
    crate::sla::cleanup(&mut connection, &format!("{{{id}}}")).await?;
    outcome
}

async fn measure(
    redis: String,
    id: &str,
    floor_args: FloorArgs,
    args: &ProcessArgs,
) -> anyhow::Result<()> {
    let mut broker = MockBroker::start().await?;
    let topics = Topics::new(format!("{id}."));
    for topic in topics.all() {
        broker.command(&format!("create {topic} 3")).await?;
    }
    let env = TestEnv {
        kafka: broker.bootstrap.clone(),
        redis,
    };
    let receiver = Receiver::start().await?;
    let options = StackOptions {
        rules: RULES
            .replace("capacity = 100", "capacity = 1000000")
            .replace("capacity = 20", "capacity = 1000000"),
        webhook_base: Some(receiver.base.clone()),
        id: Some(id.to_owned()),
        create_topics: false,
        // Open leads stay open: nothing breaches or is reassigned during the run.
        first_touch_seconds: 86_400,
        fetch_wait_max_ms: floor_args.fetch_wait_ms,
        ..StackOptions::default()
    };
    let config = write_config(&env, id, &options);
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let log_path = config.with_file_name("handoff-all.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(handoff_e2e::chaos::binary("handoff")?)
        .arg("all")
        .arg("--config")
        .arg(&config)
        .envs(config_env(&options))
        .env("HANDOFF_INGEST_LISTEN", &listen)
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting handoff all")?;
    let pid = child.id().context("handoff all has no pid")?.to_string();
    let api = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("handoff all ended ({status}); see {}", log_path.display());
        }
        if reqwest::get(format!("{api}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "handoff all not healthy in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started_rss = proc_stats::memory(&pid)?;
    let settings = handoff_config::load(&config, config_env(&options))?.settings;

    let url = format!("{api}/v1/leads");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", handoff_e2e::TEST_KEY))?,
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.fill_concurrency.max(64))
        .default_headers(headers)
        .build()?;
    let mut assigned = Assigned::new(&env.kafka, &topics.of(EventKind::LeadAssigned));
    let sampler = RssSampler::start(pid.clone(), Duration::from_millis(100));

    // The first open leads (also the warm-up: producer ids, group joins, connections).
    let warm = post_all(&client, &url, args.start_open, args.fill_concurrency, 0).await?;
    settle(&mut assigned, &receiver, &warm).await?;
    let mut posted = warm.len();

    // The floor, on the same broker and Redis, before the traffic.
    let hop_ms = floor::hops(&settings.kafka, &topics.dead_letter(), floor_args.hops).await?;
    let sample = assigned
        .sample
        .clone()
        .context("a lead.assigned payload from the warm-up")?;
    let script = floor::commit_script(
        &env.redis,
        &format!("{id}-floor"),
        &sample,
        floor_args.scripts,
        64,
    )
    .await?;

    let count = usize::try_from(args.rate)? * usize::try_from(args.seconds)?;
    // A phase with few open leads, then, when asked, another once filled to `--open`.
    let mut phases = Vec::new();
    loop {
        phases.push(
            phase(
                &client,
                &url,
                &pid,
                &sampler,
                &mut assigned,
                &receiver,
                posted,
                count,
                args.rate,
            )
            .await?,
        );
        posted += count;
        if phases.len() > 1 || args.open <= posted {
            break;
        }
        let filled_at = Instant::now();
        // In chunks, each through before the next: the mock broker keeps only the last
        // ~5 MB of each partition, and a consumer that falls further behind is reset past
        // the records it had not read (librdkafka: "offset out of range").
        while posted < args.open {
            let chunk = (args.open - posted).min(args.fill_chunk);
            let fill = post_all(&client, &url, chunk, args.fill_concurrency, posted).await?;
            settle(&mut assigned, &receiver, &fill).await?;
            posted += chunk;
        }
        eprintln!(
            "filled to {} open leads in {:.0} s",
            args.open,
            filled_at.elapsed().as_secs_f64()
        );
    }
    let end = proc_stats::memory(&pid)?;
    stop(&mut child, &pid).await;

    println!(
        "handoff all:           pid {pid}, log {}",
        log_path.display()
    );
    println!(
        "broker:                librdkafka mock cluster (handoff-mock-broker, its own process)"
    );
    let floor_p99 = floor::print(&hop_ms, &script, settings.kafka.fetch_wait_max_ms);
    println!(
        "RSS after start-up:    {:.1} MiB (idle, before any lead)",
        mib(started_rss.rss_kib)
    );
    for phase in &phases {
        phase.print(floor_p99);
    }
    println!(
        "RSS at the end:        {:.1} MiB; peak over the whole run (VmHWM, filling included) {:.1} MiB (target ≤ 64 MB at 1,000 leads/s)",
        mib(end.rss_kib),
        mib(end.peak_kib)
    );
    Ok(())
}

/// One measured phase's figures.
#[derive(Debug)]
struct Phase {
    open_before: usize,
    leads: usize,
    rate: u32,
    kept_up: f64,
    rss_mean_kib: u64,
    rss_max_kib: u64,
    cpu_ms_per_lead: f64,
    http_ms: Vec<f64>,
    assigned_ms: Vec<f64>,
    notified_ms: Vec<f64>,
}

impl Phase {
    fn print(&self, floor_p99: f64) {
        println!(
            "— {} leads at {}/s with {} open before (end-to-end {:.0} leads/s kept up)",
            self.leads, self.rate, self.open_before, self.kept_up
        );
        println!(
            "  RSS of handoff all:  mean {:.1} MiB, max {:.1} MiB (sampled every 100 ms)",
            mib(self.rss_mean_kib),
            mib(self.rss_max_kib)
        );
        println!(
            "  CPU of handoff all:  {:.3} ms per lead (user + system, all services)",
            self.cpu_ms_per_lead
        );
        for (what, values) in [
            ("POST /v1/leads (202)", &self.http_ms),
            ("received → assigned", &self.assigned_ms),
            ("received → notified", &self.notified_ms),
        ] {
            println!(
                "  {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n = {})",
                percentile(values, 0.50),
                percentile(values, 0.99),
                values.last().copied().unwrap_or_default(),
                values.len()
            );
        }
        println!(
            "  ratio: received→assigned p99 / (hop p99 + script p99) = {:.2}",
            percentile(&self.assigned_ms, 0.99) / floor_p99
        );
    }
}

#[allow(clippy::too_many_arguments)] // one call site per phase; a struct would only rename them
async fn phase(
    client: &reqwest::Client,
    url: &str,
    pid: &str,
    sampler: &RssSampler,
    assigned: &mut Assigned,
    receiver: &Receiver,
    open_before: usize,
    count: usize,
    rate: u32,
) -> anyhow::Result<Phase> {
    sampler.take();
    let cpu_before = proc_stats::cpu_seconds(pid)?;
    let started = Instant::now();
    let posted = post_at_rate(client, url, count, rate, open_before).await?;
    settle(assigned, receiver, &posted).await?;
    let took = started.elapsed();
    let cpu = proc_stats::cpu_seconds(pid)? - cpu_before;
    let (rss_mean_kib, rss_max_kib) = sampler.take();
    let mut assigned_ms = Vec::with_capacity(count);
    let mut notified_ms = Vec::with_capacity(count);
    let arrivals: HashMap<&str, DateTime<Utc>> = receiver
        .arrivals_of(posted.iter().map(|p| p.lead_id.as_str()))
        .into_iter()
        .collect();
    for lead in &posted {
        let Some((received, at)) = assigned.times.get(&lead.lead_id) else {
            continue;
        };
        assigned_ms.push(ms_between(*received, *at));
        if let Some(notified) = arrivals.get(lead.lead_id.as_str()) {
            notified_ms.push(ms_between(*received, *notified));
        }
    }
    let mut http_ms: Vec<f64> = posted.iter().map(|p| p.ms).collect();
    for values in [&mut http_ms, &mut assigned_ms, &mut notified_ms] {
        values.sort_by(f64::total_cmp);
    }
    Ok(Phase {
        open_before,
        leads: count,
        rate,
        kept_up: count as f64 / took.as_secs_f64(),
        rss_mean_kib,
        rss_max_kib,
        cpu_ms_per_lead: cpu * 1000.0 / count.max(1) as f64,
        http_ms,
        assigned_ms,
        notified_ms,
    })
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or_default() as f64 / 1000.0
}

/// Waits until every lead of `posted` is assigned (on `lead.assigned`) and notified (at the
/// receiver): the leads of a phase are counted only once they are through.
async fn settle(
    assigned: &mut Assigned,
    receiver: &Receiver,
    posted: &[Posted],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assigned.read(Duration::from_millis(200)).await;
        let missing = posted
            .iter()
            .filter(|p| !assigned.times.contains_key(&p.lead_id))
            .count();
        let notified = receiver
            .arrivals_of(posted.iter().map(|p| p.lead_id.as_str()))
            .len();
        if missing == 0 && notified == posted.len() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after 3 minutes {missing} of {} leads unassigned, {} not notified ({} notified in all)",
            posted.len(),
            posted.len() - notified,
            receiver.count()
        );
    }
}

/// Each lead's received_at and assigned_at, as `lead.assigned` says them.
struct Assigned {
    reader: TopicReader,
    times: HashMap<String, (DateTime<Utc>, DateTime<Utc>)>,
    /// One payload, for the floor's commit script.
    sample: Option<String>,
}

impl Assigned {
    fn new(bootstrap: &str, topic: &str) -> Self {
        Self {
            reader: TopicReader::new(bootstrap, topic),
            times: HashMap::new(),
            sample: None,
        }
    }

    /// Reads for `window`, keeps each new lead's times and drops the records.
    async fn read(&mut self, window: Duration) {
        self.reader.read_for(window).await;
        for record in std::mem::take(&mut self.reader.records) {
            let event = record.json();
            let time =
                |field: &str| -> Option<DateTime<Utc>> { event[field].as_str()?.parse().ok() };
            let (Some(lead), Some(received), Some(at)) = (
                record.header("ce_subject"),
                time("received_at"),
                time("assigned_at"),
            ) else {
                continue;
            };
            self.times.entry(lead.to_owned()).or_insert((received, at));
            if self.sample.is_none() {
                self.sample = Some(String::from_utf8_lossy(&record.payload).into_owned());
            }
        }
    }
}

/// SIGTERM (drain and commit), then kill after 30 s.
async fn stop(child: &mut tokio::process::Child, pid: &str) {
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .await;
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
