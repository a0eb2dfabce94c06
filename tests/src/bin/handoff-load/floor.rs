//! The floor the routing path is measured against, in the same run, on the same broker and
//! Redis: one produce → consume hop with the services' own client settings, and the
//! router's commit script (the one atomic step of an assignment) alone, one at a time and
//! with many in flight (the multiplexed connection pipelines them): the ceiling a router
//! could reach on this Redis.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use handoff_config::KafkaSettings;
use handoff_domain::assignment::Assignment;
use handoff_domain::events::EventKind;
use handoff_domain::lead::{LeadId, Source};
use handoff_domain::lifecycle::CapacityRelease;
use handoff_domain::{RepId, TeamId};
use handoff_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use handoff_kafka::rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::util::Timeout;
use handoff_kafka::{OutboundEvent, TraceParent};
use handoff_store::{AssignOutcome, CommitContext, Store};

use crate::sla::percentile;

/// Produce → consume hops, one at a time at ~100/s, over `topic` (one no service consumes:
/// the records go straight onto it, not by event kind, or a service would handle them and
/// the hop would be two), with the producer and consumer settings the services use.
/// Milliseconds, sorted.
pub async fn hops(kafka: &KafkaSettings, topic: &str, count: usize) -> anyhow::Result<Vec<f64>> {
    let producer: FutureProducer = handoff_kafka::producer_config(kafka, "floor")?.create()?;
    let send = |subject: &str| {
        let producer = producer.clone();
        let topic = topic.to_owned();
        let subject = subject.to_owned();
        async move {
            let record = FutureRecord::to(&topic)
                .key(&subject)
                .payload("{}")
                .headers(OwnedHeaders::new().insert(Header {
                    key: "ce_subject",
                    value: Some(subject.as_str()),
                }));
            producer
                .send(record, Timeout::After(Duration::from_secs(10)))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("floor hop not acknowledged: {e}"))
        }
    };
    let consumer: StreamConsumer = handoff_kafka::consumer_config(
        kafka,
        &format!("floor-{}", handoff_e2e::unique_id()),
        "floor",
        None,
    )?
    .create()?;
    consumer.subscribe(&[topic])?;
    let subject_of = |message: &handoff_kafka::rdkafka::message::BorrowedMessage<'_>| {
        message.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == "ce_subject")
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    // Joined and fetching: a record made it through (the producer is warm too).
    let until = Instant::now() + Duration::from_secs(60);
    'joined: loop {
        anyhow::ensure!(Instant::now() < until, "the floor consumer never received");
        send("floor-warm-up").await?;
        while let Ok(Ok(message)) =
            tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        {
            if subject_of(&message).as_deref() == Some("floor-warm-up") {
                break 'joined;
            }
        }
    }
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut hop_ms = Vec::with_capacity(count);
    for n in 0..count {
        let subject = format!("floor-{n}");
        // Timed from the send, like a service's produce: the acknowledgement is part of it.
        let started = Instant::now();
        send(&subject).await?;
        sent.insert(subject, started);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Each hop is received before the next is sent: nothing queues behind it.
        while let Ok(Ok(message)) = tokio::time::timeout_at(deadline.into(), consumer.recv()).await
        {
            if let Some(at) = subject_of(&message).and_then(|s| sent.remove(&s)) {
                hop_ms.push(at.elapsed().as_secs_f64() * 1000.0);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hop_ms.sort_by(f64::total_cmp);
    Ok(hop_ms)
}

/// Prints the floor's two lines, as every mode of the load command does; returns the
/// floor a lead's p99 is held to: hop p99 + script p99 (ms).
pub fn print(hop_ms: &[f64], script: &ScriptFloor, fetch_wait_max_ms: u32) -> f64 {
    let (hop_p50, hop_p99) = p50_p99(hop_ms);
    let (script_p50, script_p99) = p50_p99(&script.sequential_ms);
    println!(
        "floor: hop               p50 {hop_p50:.1} ms, p99 {hop_p99:.1} ms ({} produce → consume, fetch.wait.max.ms {fetch_wait_max_ms})",
        hop_ms.len(),
    );
    println!(
        "floor: commit script     p50 {script_p50:.2} ms, p99 {script_p99:.2} ms (one at a time); ceiling {:.0} /s (64 in flight)",
        script.pipelined_per_second
    );
    hop_p99 + script_p99
}

/// A small event that only the floor's consumer looks at.
pub fn probe(subject: &str) -> Result<OutboundEvent, serde_json::Error> {
    OutboundEvent::new(
        EventKind::SlaBreached,
        subject.to_owned(),
        subject,
        Utc::now(),
        TraceParent::child_of(None),
        &serde_json::json!({}),
    )
}

/// The commit script alone: `count` assignments one at a time (latencies, ms, sorted),
/// then `count` more with `in_flight` at once (assignments per second). Uses its own key
/// prefix, removed afterwards. `event` is a real `lead.assigned` payload (what the
/// script stores).
pub struct ScriptFloor {
    pub sequential_ms: Vec<f64>,
    pub pipelined_per_second: f64,
}

pub async fn commit_script(
    redis_url: &str,
    prefix: &str,
    event: &str,
    count: usize,
    in_flight: usize,
) -> anyhow::Result<ScriptFloor> {
    let store = Store::connect(redis_url, prefix).await?;
    let record = |n: usize| {
        let store = store.clone();
        async move {
            let lead_id = LeadId::from(format!("floor-{n}"));
            store
                .record_lead(&lead_id, &Source::default(), Utc::now(), 86_400, None)
                .await
        }
    };
    let assign = |n: usize| {
        let store = store.clone();
        let event = event.to_owned();
        async move {
            let lead_id = LeadId::from(format!("floor-{n}"));
            let now = Utc::now();
            let assignment = Assignment {
                lead_id,
                attempt: 1,
                team: TeamId::from("floor"),
                rep: RepId::from(format!("rep-{}", n % 10)),
                capacity: u32::MAX,
                daily_cap: None,
                assigned_at: now,
                first_touch_due_at: now + chrono::Duration::minutes(5),
                // The rotation is not what is measured: every commit leaves it as found.
                rotation_before: String::new(),
                rotation_after: String::new(),
                waited: None,
                joins: None,
            };
            // The reminders the default policy schedules with each assignment, as the
            // router's commit does.
            let clocks = handoff_domain::sla::SlaClocks {
                reminder_fractions: handoff_domain::sla::DEFAULT_REMINDER_FRACTIONS.to_vec(),
                ..Default::default()
            }
            .at_assignment(
                now,
                now + chrono::Duration::minutes(5),
                Default::default(),
                None,
                None,
            );
            let context = CommitContext {
                event: &event,
                day: "2026-01-01",
                contact_email: None,
                sticky_seconds: 0,
                release: CapacityRelease::FirstTouch,
                retention_seconds: 86_400,
                now,
                trace: "",
                clocks: &clocks,
            };
            let started = Instant::now();
            let outcome = store.commit_assignment(&assignment, &context, None).await?;
            anyhow::ensure!(
                matches!(outcome, AssignOutcome::Assigned { .. }),
                "the floor's commit did not assign: {outcome:?}"
            );
            Ok::<f64, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
        }
    };
    // Every lead recorded first (as the router does before it decides): only the
    // commits are timed.
    for n in 0..2 * count {
        record(n).await?;
    }
    let mut sequential_ms = Vec::with_capacity(count);
    for n in 0..count {
        sequential_ms.push(assign(n).await?);
    }
    sequential_ms.sort_by(f64::total_cmp);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for n in count..2 * count {
        let permit = permits.clone().acquire_owned().await?;
        let task = assign(n);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            task.await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let pipelined_per_second = count as f64 / started.elapsed().as_secs_f64();
    cleanup(redis_url, prefix).await?;
    Ok(ScriptFloor {
        sequential_ms,
        pipelined_per_second,
    })
}

async fn cleanup(redis_url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut redis = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}}}*"))
        .query_async(&mut redis)
        .await?;
    for chunk in keys.chunks(500) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut redis).await?;
    }
    Ok(())
}

/// `p50 / p99` of sorted milliseconds, for the report.
pub fn p50_p99(sorted: &[f64]) -> (f64, f64) {
    (percentile(sorted, 0.50), percentile(sorted, 0.99))
}
