//! The consume loop on the real broker (Tansu): partitions are assigned cooperatively, so
//! a second member joining takes some partitions over while the first keeps the rest,
//! the moved partitions' finished work is committed on revoke (no event handled twice),
//! and the lag metric shows a partition's backlog. The fault cases (retry budgets, a
//! failing partition) run on librdkafka's mock cluster in crates/handoff-kafka/tests.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use handoff_config::KafkaSettings;
use handoff_domain::events::EventKind;
use handoff_e2e::{eventually, unique_id, TestEnv};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use handoff_kafka::{
    ensure_topics, run_consumer, ConsumerSpec, Effects, EventHandler, EventProducer, HandleError,
    InboundEvent, KafkaError, Topics,
};
use handoff_telemetry::Metrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;

/// Which member handled which partition's offset.
type Handled = (&'static str, i32, i64);

/// Records (member, partition, offset) of every event whose effects ran; handling takes
/// 30 ms while `slow`; nothing is handled while `closed`.
#[derive(Clone)]
struct Recorder {
    member: &'static str,
    handled: Arc<Mutex<Vec<Handled>>>,
    slow: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl EventHandler for Recorder {
    fn handle(
        &self,
        event: &InboundEvent,
    ) -> impl Future<Output = Result<Effects, HandleError>> + Send {
        let entry = (self.member, event.partition, event.offset);
        let (handled, slow, closed) = (
            self.handled.clone(),
            self.slow.load(Ordering::SeqCst),
            self.closed.load(Ordering::SeqCst),
        );
        async move {
            if closed {
                return Err(HandleError::transient("closed"));
            }
            if slow {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            Ok(async move {
                handled.lock().unwrap().push(entry);
                Ok(())
            }
            .boxed())
        }
    }
}

async fn setup() -> (KafkaSettings, String) {
    let env = TestEnv::from_env();
    let id = unique_id();
    let kafka: KafkaSettings = serde_json::from_value(serde_json::json!({
        "bootstrap_servers": env.kafka,
        "topic_prefix": format!("{id}."),
        "group_prefix": id,
        "partitions": PARTITIONS,
        "session_timeout_ms": 6000,
        "fetch_wait_max_ms": 20,
        "statistics_interval_ms": 200,
    }))
    .unwrap();
    let topics = Topics::new(kafka.topic_prefix.clone());
    ensure_topics(&kafka, &topics).await.unwrap();
    let topic = topics.of(EventKind::LeadCreated);
    (kafka, topic)
}

async fn produce(kafka: &KafkaSettings, topic: &str, per_partition: i64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let records: Vec<(i32, String)> = (0..PARTITIONS)
        .flat_map(|p| (0..per_partition).map(move |n| (p, n.to_string())))
        .collect();
    let sends: Vec<_> = records
        .iter()
        .map(|(p, payload)| {
            producer.send(
                FutureRecord::to(topic)
                    .key("lead")
                    .partition(*p)
                    .payload(payload),
                Duration::from_secs(30),
            )
        })
        .collect();
    for sent in sends {
        sent.await.map_err(|(e, _)| e).unwrap();
    }
}

fn start(
    kafka: &KafkaSettings,
    topic: &str,
    handler: Recorder,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> JoinHandle<Result<(), KafkaError>> {
    let spec = ConsumerSpec {
        service: "rebalance",
        topics: vec![topic.to_owned()],
        max_in_flight: 16,
        drain: Duration::from_secs(5),
    };
    let kafka = kafka.clone();
    tokio::spawn(async move {
        let producer = EventProducer::new(&kafka, "rebalance").unwrap();
        run_consumer(&kafka, spec, handler, producer, metrics, shutdown).await
    })
}

fn metrics() -> Metrics {
    Metrics::new(prometheus::Registry::new()).unwrap()
}

// Tansu 0.6 stalls the joins of every group while one group waits for a member that died
// (measured: a fresh one-member group took 10 s instead of 0.1 s). While the harness used the
// cooperative protocol or `range` alone, the crash test's killed router stalled joins long
// enough to time this test out (2 of 2 full runs); with `eager` (range,roundrobin) the full
// suite passed with it 2 of 2 (2026-11-23). If it times out waiting for a join, check the
// group's assignment before suspecting the consume loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_takes_partitions_over_cooperatively_without_handling_an_event_twice() {
    const PER_PARTITION: i64 = 150;
    let (kafka, topic) = setup().await;
    produce(&kafka, &topic, PER_PARTITION).await;

    let first = Recorder {
        member: "first",
        handled: Arc::default(),
        slow: Arc::new(AtomicBool::new(true)),
        closed: Arc::default(),
    };
    let second = Recorder {
        member: "second",
        ..first.clone()
    };
    let (first_metrics, second_metrics) = (metrics(), metrics());
    let shutdown = CancellationToken::new();
    let a = start(
        &kafka,
        &topic,
        first.clone(),
        first_metrics.clone(),
        shutdown.clone(),
    );
    eventually(Duration::from_secs(60), "the first member at work", || {
        let n = first.handled.lock().unwrap().len();
        async move { (n >= 20).then_some(()) }
    })
    .await;
    let b = start(
        &kafka,
        &topic,
        second.clone(),
        second_metrics.clone(),
        shutdown.clone(),
    );
    let assigned = |m: &Metrics| {
        m.consumer_partitions_assigned
            .with_label_values(&["rebalance"])
            .get()
    };
    eventually(
        Duration::from_secs(60),
        "the second member assigned",
        || {
            let n = assigned(&second_metrics);
            async move { (n > 0).then_some(()) }
        },
    )
    .await;
    first.slow.store(false, Ordering::SeqCst);
    let total = (PER_PARTITION * i64::from(PARTITIONS)) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let handled = first.handled.lock().unwrap().clone();
        if handled.len() >= total {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let mut last: BTreeMap<i32, (&str, i64, usize)> = BTreeMap::new();
            for (m, p, o) in &handled {
                let e = last.entry(*p).or_insert((m, *o, 0));
                *e = (m, *o, e.2 + 1);
            }
            panic!(
                "not every event handled: {} of {total}; per partition (last member, last offset, count): {last:?}; assigned first {} second {}",
                handled.len(),
                assigned(&first_metrics),
                assigned(&second_metrics)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Handling and effects end within 30 ms, far inside the 5 s rebalance drain: at-least-
    // once allows no second handling here, and nothing may be missing.
    let handled = first.handled.lock().unwrap().clone();
    let mut times: HashMap<(i32, i64), usize> = HashMap::new();
    for (_, partition, offset) in &handled {
        *times.entry((*partition, *offset)).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(times.len(), total);
    let mut members: BTreeMap<i32, Vec<&'static str>> = BTreeMap::new();
    for (member, partition, _) in &handled {
        let seen = members.entry(*partition).or_default();
        if seen.last() != Some(member) {
            seen.push(member);
        }
    }
    assert!(
        members.values().any(|m| *m == ["first", "second"]),
        "no partition moved: {members:?}"
    );
    // Cooperative: the first member gives up only what the second takes (revoked == taken,
    // asserted on the mock cluster in crates/handoff-kafka/tests/partitions.rs). Tansu under
    // load sometimes drops a member's whole assignment on top (measured: 6 revoked for 2
    // taken while the crash test ran alongside), so here only the lower bound holds.
    let revoked = first_metrics
        .consumer_rebalances
        .with_label_values(&["rebalance", "revoked"])
        .get();
    let taken = assigned(&second_metrics);
    assert!(revoked >= u64::try_from(taken).unwrap(), "{members:?}");
    assert!(taken < i64::from(PARTITIONS), "{members:?}");

    shutdown.cancel();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_metric_shows_a_partitions_backlog_on_the_real_broker() {
    const BACKLOG: i64 = 7;
    let (kafka, topic) = setup().await;
    produce(&kafka, &topic, BACKLOG).await;
    let handler = Recorder {
        member: "only",
        handled: Arc::default(),
        slow: Arc::default(),
        closed: Arc::new(AtomicBool::new(true)),
    };
    let metrics = metrics();
    let shutdown = CancellationToken::new();
    let consumer = start(
        &kafka,
        &topic,
        handler.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    let lags = || -> Vec<i64> {
        (0..PARTITIONS)
            .map(|p| {
                metrics
                    .consumer_lag
                    .with_label_values(&["rebalance", &topic, &p.to_string()])
                    .get()
            })
            .collect()
    };
    eventually(Duration::from_secs(60), "the backlog as lag", || {
        let lags = lags();
        async move { lags.iter().all(|l| *l == BACKLOG).then_some(()) }
    })
    .await;
    handler.closed.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(60), "lag 0 once consumed", || {
        let lags = lags();
        async move { lags.iter().all(|l| *l == 0).then_some(()) }
    })
    .await;
    shutdown.cancel();
    consumer.await.unwrap().unwrap();
}
