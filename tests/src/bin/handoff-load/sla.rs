//! `handoff-load sla`: the SLA tracker's lateness with many open deadlines. A benchmark,
//! not a test (figures in docs/benchmarks.md).
//!
//! ```text
//!  fill: N open deadlines (far future) ──► INFO memory before/after: bytes per deadline
//!  floor: bare claim-script round trip on that set; bare produce → consume hop
//!  window: R entries/s come due for S seconds (half breaches, half reminders)
//!  tracker (`handoff sla`, in process) ──► sla.breached / sla.reminder ──► this consumer
//!  lateness = emitted_at (the event) − due, and received (here) − due
//! ```
//!
//! Every key is under a fresh prefix and removed at the end; the window's lead records
//! also expire after an hour in case the run is interrupted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use handoff::services::{self, Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_e2e::{StackOptions, TestEnv};
use handoff_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use handoff_kafka::rdkafka::message::{Headers, Message};
use handoff_kafka::rdkafka::ClientConfig;
use handoff_kafka::EventProducer;
use handoff_store::{ClaimRequest, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct SlaArgs {
    /// Open deadlines in the due set while the window runs (all but the window's far in
    /// the future).
    #[arg(long, default_value_t = 1_000_000)]
    open: usize,
    /// Entries coming due per second in the window (half breaches, half reminders).
    #[arg(long, default_value_t = 1000)]
    rate: usize,
    /// Length of the window, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// `sla.poll_interval_ms` of the tracker under test.
    #[arg(long, default_value_t = 200)]
    poll_interval_ms: u64,
    /// `sla.claim_batch` of the tracker under test.
    #[arg(long, default_value_t = 500)]
    claim_batch: u32,
}

/// One record the consumer saw, stamped when it arrived.
struct Seen {
    topic: String,
    id: String,
    subject: String,
    payload: serde_json::Value,
    received_ms: i64,
}

pub async fn run(
    env: TestEnv,
    id: String,
    create_topics: bool,
    args: SlaArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate >= 2 && args.seconds > 0,
        "--rate ≥ 2 and --seconds > 0"
    );
    let window = args.rate * usize::try_from(args.seconds)?;
    let breaches = window / 2;
    anyhow::ensure!(
        args.open >= breaches,
        "--open must cover the window's deadlines"
    );
    let mut redis = redis::Client::open(env.redis.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let tag = format!("{{{id}}}");
    let outcome = measure(&env, &id, create_topics, &args, &mut redis, &tag).await;
    cleanup(&mut redis, &tag).await?;
    outcome
}

async fn measure(
    env: &TestEnv,
    id: &str,
    create_topics: bool,
    args: &SlaArgs,
    redis: &mut redis::aio::MultiplexedConnection,
    tag: &str,
) -> anyhow::Result<()> {
    let window = args.rate * usize::try_from(args.seconds)?;
    let breaches = window / 2;

    // 1. The open deadlines, and what they cost.
    let before = used_memory(redis).await?;
    let far = args.open - breaches;
    let far_from = server_ms(redis).await? + 86_400_000;
    let filled = Instant::now();
    for chunk in (0..far).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(format!("{tag}:sla:due"));
        for n in chunk {
            zadd.arg(far_from + i64::try_from(*n)?)
                .arg(format!("far-{n:07}|1"));
        }
        pipe.add_command(zadd).ignore();
        let () = pipe.query_async(redis).await?;
    }
    let filled_in = filled.elapsed();
    let after = used_memory(redis).await?;
    let per_deadline = (after - before) as f64 / far as f64;

    // 2. The tracker, on its own, as `handoff sla` runs it. The topics are made here, with
    //    more patience than start-up has: a shared Tansu can take longer than its 10 s.
    if create_topics {
        create(
            &env.kafka,
            &handoff_kafka::Topics::new(format!("{id}.")).all(),
            3,
        )
        .await?;
    }
    let options = StackOptions {
        services: ServiceSet::only(Service::Sla),
        id: Some(id.to_owned()),
        create_topics: false,
        ..StackOptions::default()
    };
    let config = handoff_e2e::write_config(env, id, &options);
    let vars = [
        (
            "HANDOFF_SLA_POLL_INTERVAL_MS",
            args.poll_interval_ms.to_string(),
        ),
        ("HANDOFF_SLA_CLAIM_BATCH", args.claim_batch.to_string()),
        ("HANDOFF_SLA_LEASE_SECONDS", "30".to_owned()),
        ("HANDOFF_SLA_PUBLISH_TIMEOUT_MS", "10000".to_owned()),
        ("HANDOFF_LOG_LEVEL", "warn".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let loaded = handoff_config::load(&config, vars).context("bench config")?;
    let kafka = loaded.settings.kafka.clone();
    let shutdown = CancellationToken::new();
    let running = services::start(ServiceSet::only(Service::Sla), loaded, shutdown.clone()).await?;
    let tracker = tokio::spawn(running.wait());

    // 3. The consumer downstream, stamping each record on arrival.
    let topics = handoff_kafka::Topics::new(format!("{id}."));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consuming = CancellationToken::new();
    let consumer = tokio::spawn(consume(
        env.kafka.clone(),
        vec![
            topics.of(EventKind::SlaBreached),
            topics.of(EventKind::SlaReminder),
        ],
        tx,
        consuming.clone(),
    ));

    // 4. The floor, on the same set and broker: a claim that finds nothing due, and one
    //    produce → consume hop with the tracker's producer settings.
    let store = Store::connect(&env.redis, id).await?;
    let mut claim_rtt = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        let claimed = store
            .claim_due(&ClaimRequest {
                token: "floor",
                lease: Duration::from_secs(30),
                limit: args.claim_batch,
            })
            .await?;
        claim_rtt.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(claimed.due.is_empty(), "nothing should be due yet");
    }
    let mut floor_kafka = kafka.clone();
    floor_kafka.message_timeout_ms = 10_000;
    let producer = EventProducer::new(&floor_kafka, "bench")?;
    let floor_event = crate::floor::probe;
    // The consumer has joined and fetches: one record made it through.
    let mut seen: Vec<Seen> = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    'joined: loop {
        anyhow::ensure!(Instant::now() < until, "the bench consumer never received");
        producer.publish(&floor_event("floor-warm-up")?).await?;
        while let Ok(Some(record)) =
            tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
        {
            let arrived = record.subject == "floor-warm-up";
            seen.push(record);
            if arrived {
                break 'joined;
            }
        }
    }
    let hops = 200;
    let mut sent_ms = BTreeMap::new();
    for n in 0..hops {
        let subject = format!("floor-{n}");
        let event = floor_event(&subject)?;
        sent_ms.insert(subject, event.time.timestamp_millis());
        producer.publish(&event).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut hop_ms = Vec::new();
    let until = Instant::now() + Duration::from_secs(60);
    while hop_ms.len() < hops && Instant::now() < until {
        if let Ok(Some(record)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            if let Some(sent) = sent_ms.get(&record.subject) {
                hop_ms.push((record.received_ms - sent) as f64);
            }
            seen.push(record);
        }
    }

    // 5. The window: R entries per second come due, from a few seconds from now.
    let start = server_ms(redis).await? + 3000;
    let mut due_of = BTreeMap::new();
    let before_leads = used_memory(redis).await?;
    for chunk in (0..window).collect::<Vec<_>>().chunks(5000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let due = start + i64::try_from(*i * 1000 / args.rate)?;
            let reminder = i % 2 == 1;
            let lead = format!("bench-{i:07}");
            // A reminder's lead is due far later: the reminder, not the breach, is measured.
            let lead_due = if reminder { due + 86_400_000 } else { due };
            let key = format!("{tag}:lead:{lead}");
            pipe.cmd("HSET")
                .arg(&key)
                .arg(&[
                    ("state", "assigned".to_owned()),
                    ("attempt", "1".to_owned()),
                    ("team", "sales".to_owned()),
                    ("rep", "a".to_owned()),
                    ("assigned_ms", (due - 300_000).to_string()),
                    ("due_ms", lead_due.to_string()),
                ])
                .ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(3600).ignore();
            if reminder {
                pipe.zadd(
                    format!("{tag}:sla:remind"),
                    format!("{lead}|1|first_touch|500"),
                    due,
                )
                .ignore();
            } else {
                pipe.zadd(format!("{tag}:sla:due"), format!("{lead}|1"), due)
                    .ignore();
            }
            due_of.insert(lead, due);
        }
        let () = pipe.query_async(redis).await?;
    }
    let after_leads = used_memory(redis).await?;
    let open_now: usize = redis::cmd("ZCARD")
        .arg(format!("{tag}:sla:due"))
        .query_async(redis)
        .await?;
    anyhow::ensure!(
        server_ms(redis).await? < start,
        "filling the window took longer than its lead-in; lower --rate or --seconds"
    );

    let until = Instant::now()
        + Duration::from_millis(u64::try_from(start - server_ms(redis).await?).unwrap_or(0))
        + Duration::from_secs(args.seconds + 30);
    let mut got = BTreeSet::new();
    let mut duplicates = 0usize;
    while got.len() < window && Instant::now() < until {
        if let Ok(Some(record)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            if due_of.contains_key(&record.subject) && !got.insert(record.id.clone()) {
                duplicates += 1;
            }
            seen.push(record);
        }
    }
    consuming.cancel();
    shutdown.cancel();
    consumer.await?;
    tracker.await??;

    let breached = topics.of(EventKind::SlaBreached);
    let (mut emitted, mut received) = (
        BTreeMap::<&str, Vec<f64>>::new(),
        BTreeMap::<&str, Vec<f64>>::new(),
    );
    let (mut first_due, mut last_received) = (i64::MAX, i64::MIN);
    for record in &seen {
        let Some(due) = due_of.get(&record.subject) else {
            continue;
        };
        let (kind, at) = if record.topic == breached {
            ("breach", "breached_at")
        } else {
            ("reminder", "reminded_at")
        };
        let emitted_at = record.payload[at]
            .as_str()
            .and_then(|t| t.parse::<chrono::DateTime<Utc>>().ok())
            .map(|t| t.timestamp_millis());
        if let Some(emitted_at) = emitted_at {
            emitted
                .entry(kind)
                .or_default()
                .push((emitted_at - due) as f64);
        }
        received
            .entry(kind)
            .or_default()
            .push((record.received_ms - due) as f64);
        first_due = first_due.min(*due);
        last_received = last_received.max(record.received_ms);
    }

    println!("broker:                       {}", env.kafka);
    println!(
        "open deadlines:               {open_now} in the due set at the window's start ({far} filled in {:.1} s)",
        filled_in.as_secs_f64()
    );
    println!(
        "memory per open deadline:     {per_deadline:.0} bytes (used_memory {} → {} MB)",
        before / 1_000_000,
        after / 1_000_000
    );
    println!(
        "memory per window lead:       {:.0} bytes (lead hash of 6 fields + its deadline or reminder)",
        (after_leads - before_leads) as f64 / window as f64
    );
    println!(
        "tracker:                      poll_interval_ms {}, claim_batch {}",
        args.poll_interval_ms, args.claim_batch
    );
    sort(&mut claim_rtt);
    sort(&mut hop_ms);
    println!(
        "floor: empty claim round trip p50 {:.2} ms, p99 {:.2} ms (1000 calls on the {}-entry set)",
        percentile(&claim_rtt, 0.50),
        percentile(&claim_rtt, 0.99),
        far
    );
    println!(
        "floor: produce → consume hop  p50 {:.0} ms, p99 {:.0} ms ({} of {hops})",
        percentile(&hop_ms, 0.50),
        percentile(&hop_ms, 0.99),
        hop_ms.len()
    );
    println!(
        "window:                       {window} entries due over {} s ({} /s), {} received, {duplicates} duplicates",
        args.seconds,
        args.rate,
        got.len()
    );
    if last_received > first_due {
        println!(
            "throughput:                   {:.0} events/s (first due → last received)",
            got.len() as f64 / ((last_received - first_due) as f64 / 1000.0)
        );
    }
    for (what, table) in [
        ("emitted − due", &mut emitted),
        ("received − due", &mut received),
    ] {
        for (kind, values) in table.iter_mut() {
            sort(values);
            println!(
                "{what:<15} {kind:<9} p50 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms  (n = {})",
                percentile(values, 0.50),
                percentile(values, 0.99),
                values.last().copied().unwrap_or_default(),
                values.len()
            );
        }
    }
    anyhow::ensure!(
        got.len() == window,
        "{} of {window} events arrived",
        got.len()
    );
    Ok(())
}

/// Reads `topics` from their beginning until `stop`, sending each record with the time
/// it arrived. A short fetch wait: the consumer must not add its own latency.
async fn consume(
    bootstrap: String,
    topics: Vec<String>,
    tx: mpsc::UnboundedSender<Seen>,
    stop: CancellationToken,
) {
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("bench-{}", handoff_e2e::unique_id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench consumer: {e}");
            return;
        }
    };
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&names) {
        eprintln!("bench consumer: {e}");
        return;
    }
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            m = consumer.recv() => m,
        };
        let Ok(message) = message else { continue };
        let received_ms = Utc::now().timestamp_millis();
        let header = |name: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        let seen = Seen {
            topic: message.topic().to_owned(),
            id: header("ce_id").unwrap_or_default(),
            subject: header("ce_subject").unwrap_or_default(),
            payload: message
                .payload()
                .and_then(|p| serde_json::from_slice(p).ok())
                .unwrap_or_default(),
            received_ms,
        };
        if tx.send(seen).is_err() {
            return;
        }
    }
}

/// Creates `names` with `partitions` partitions each, waiting up to two minutes for the
/// broker.
pub async fn create(bootstrap: &str, names: &[String], partitions: i32) -> anyhow::Result<()> {
    use handoff_kafka::rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use handoff_kafka::rdkafka::client::DefaultClientContext;
    use handoff_kafka::rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("request.timeout.ms", "120000")
        .create()?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("cannot create {topic}: {code}"),
        }
    }
    Ok(())
}

pub async fn used_memory(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory without used_memory")
}

async fn server_ms(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(redis).await?;
    Ok(secs * 1000 + micros / 1000)
}

/// Removes every key of the run's prefix.
pub async fn cleanup(
    redis: &mut redis::aio::MultiplexedConnection,
    tag: &str,
) -> anyhow::Result<()> {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{tag}:*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(redis)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK").arg(&keys).query_async(redis).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn sort(values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
}

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted
        .get(index.min(sorted.len() - 1))
        .copied()
        .unwrap_or_default()
}
