//! The consume loop per partition, against librdkafka's mock cluster (a real Kafka
//! protocol over TCP): an event that keeps failing holds back only its own partition; after
//! its budget a permanent failure is dead-lettered and a transient one stops the consumer;
//! a second member joining the group takes partitions over without an event handled twice;
//! the lag metric shows a partition's backlog.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use handoff_config::KafkaSettings;
use handoff_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use handoff_kafka::rdkafka::message::Headers;
use handoff_kafka::rdkafka::mocking::MockCluster;
use handoff_kafka::rdkafka::producer::future_producer::OwnedDeliveryResult;
use handoff_kafka::rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use handoff_kafka::{
    run_consumer, ConsumerSpec, Effects, EventHandler, EventProducer, HandleError, InboundEvent,
    KafkaError, Topics,
};
use handoff_telemetry::Metrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One handled event: which member, which partition, which offset, what payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Handled {
    member: &'static str,
    partition: i32,
    offset: i64,
    payload: String,
}

/// Records every event it handles. Payload `stuck` fails transiently and `bad`
/// permanently, until `release` is set; `slow` makes handling take 50 ms and the effects
/// 20 ms more.
#[derive(Clone)]
struct Recorder {
    member: &'static str,
    handled: Arc<Mutex<Vec<Handled>>>,
    release: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    /// Every event fails transiently until `release` (nothing can be consumed).
    gate_all: bool,
}

impl Recorder {
    fn new(member: &'static str) -> Self {
        Self {
            member,
            handled: Arc::default(),
            release: Arc::default(),
            slow: Arc::default(),
            gate_all: false,
        }
    }

    fn handled(&self) -> Vec<Handled> {
        self.handled.lock().unwrap().clone()
    }
}

impl EventHandler for Recorder {
    fn handle(
        &self,
        event: &InboundEvent,
    ) -> impl Future<Output = Result<Effects, HandleError>> + Send {
        let payload =
            String::from_utf8_lossy(event.payload.as_deref().unwrap_or_default()).into_owned();
        let released = self.release.load(Ordering::SeqCst);
        let outcome = if !released && (self.gate_all || payload == "stuck") {
            Err(HandleError::transient("redis is unavailable"))
        } else if !released && payload == "bad" {
            Err(HandleError::permanent(
                "the stored assignment is unreadable",
            ))
        } else {
            let handled = Handled {
                member: self.member,
                partition: event.partition,
                offset: event.offset,
                payload,
            };
            let record = self.handled.clone();
            let slow = self.slow.load(Ordering::SeqCst);
            Ok(async move {
                if slow {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                record.lock().unwrap().push(handled);
                Ok(())
            }
            .boxed())
        };
        let slow = self.slow.load(Ordering::SeqCst);
        async move {
            if slow {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            outcome
        }
    }
}

fn settings(bootstrap: &str, prefix: &str, extra: serde_json::Value) -> KafkaSettings {
    let mut value = serde_json::json!({
        "bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "group_prefix": prefix,
        "create_topics": false,
        "session_timeout_ms": 6000,
        "fetch_wait_max_ms": 20,
        "statistics_interval_ms": 200,
    });
    for (key, v) in extra.as_object().unwrap() {
        value[key] = v.clone();
    }
    serde_json::from_value(value).unwrap()
}

/// A mock cluster with the topics of `prefix`, the lead topic with `partitions`.
fn cluster(
    prefix: &str,
    partitions: i32,
) -> (MockCluster<'static, DefaultProducerContext>, String) {
    let mock = MockCluster::new(1).unwrap();
    for topic in Topics::new(prefix).all() {
        mock.create_topic(&topic, partitions, 1).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    (mock, bootstrap)
}

async fn produce(bootstrap: &str, topic: &str, records: &[(i32, &str)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let sends: Vec<_> = records
        .iter()
        .map(|(partition, payload)| {
            producer.send(
                FutureRecord::to(topic)
                    .key("lead")
                    .partition(*partition)
                    .payload(*payload),
                Duration::from_secs(10),
            )
        })
        .collect();
    for sent in sends {
        let sent: OwnedDeliveryResult = sent.await;
        sent.map_err(|(e, _)| e).unwrap();
    }
}

fn start(
    kafka: &KafkaSettings,
    service: &'static str,
    topic: &str,
    handler: Recorder,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> JoinHandle<Result<(), KafkaError>> {
    let spec = ConsumerSpec {
        service,
        topics: vec![topic.to_owned()],
        max_in_flight: 16,
        drain: Duration::from_secs(5),
    };
    let kafka = kafka.clone();
    tokio::spawn(async move {
        let producer = EventProducer::new(&kafka, service).unwrap();
        run_consumer(&kafka, spec, handler, producer, metrics, shutdown).await
    })
}

async fn until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The group's committed offset of each partition of `topic` (none: nothing committed).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let answer = reader
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(
            |p| match answer.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
        .collect()
}

fn metrics() -> Metrics {
    Metrics::new(prometheus::Registry::new()).unwrap()
}

fn payloads_of(handled: &[Handled], partition: i32) -> Vec<String> {
    let mut events: Vec<&Handled> = handled
        .iter()
        .filter(|h| h.partition == partition)
        .collect();
    events.sort_by_key(|h| h.offset);
    events.iter().map(|h| h.payload.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_failing_on_one_partition_holds_back_only_that_partition() {
    let prefix = "stuck.";
    let (_mock, bootstrap) = cluster(prefix, 3);
    let topic = Topics::new(prefix).of(handoff_domain::events::EventKind::LeadCreated);
    let kafka = settings(&bootstrap, prefix, serde_json::json!({}));
    produce(
        &bootstrap,
        &topic,
        &[
            (0, "p0-a"),
            (0, "stuck"),
            (0, "p0-b"),
            (1, "p1-a"),
            (1, "p1-b"),
            (1, "p1-c"),
            (2, "p2-a"),
            (2, "p2-b"),
        ],
    )
    .await;

    let handler = Recorder::new("a");
    let metrics = metrics();
    let shutdown = CancellationToken::new();
    let consumer = start(
        &kafka,
        "stuck",
        &topic,
        handler.clone(),
        metrics.clone(),
        shutdown.clone(),
    );

    // The other partitions are handled and committed while partition 0 retries its event.
    let group = format!("{prefix}-stuck");
    until(
        "partitions 1 and 2 committed",
        Duration::from_secs(30),
        || {
            let offsets = committed(&bootstrap, &group, &topic, 3);
            (offsets[1] == Some(3) && offsets[2] == Some(2)).then_some(())
        },
    )
    .await;
    until("several retries", Duration::from_secs(10), || {
        (metrics
            .consumer_errors
            .with_label_values(&["stuck", "transient"])
            .get()
            >= 3)
            .then_some(())
    })
    .await;
    let handled = handler.handled();
    assert_eq!(payloads_of(&handled, 1), ["p1-a", "p1-b", "p1-c"]);
    assert_eq!(payloads_of(&handled, 2), ["p2-a", "p2-b"]);
    // Partition 0: the event before the failing one is done; nothing after it jumped ahead.
    assert_eq!(payloads_of(&handled, 0), ["p0-a"]);
    until(
        "partition 0 committed up to the failing event",
        Duration::from_secs(10),
        || (committed(&bootstrap, &group, &topic, 3)[0] == Some(1)).then_some(()),
    )
    .await;

    // The dependency is back: the same event is handled (never skipped), then the rest.
    handler.release.store(true, Ordering::SeqCst);
    until("partition 0 handled", Duration::from_secs(30), || {
        (payloads_of(&handler.handled(), 0).len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        payloads_of(&handler.handled(), 0),
        ["p0-a", "stuck", "p0-b"]
    );
    assert!(!consumer.is_finished());
    shutdown.cancel();
    consumer.await.unwrap().unwrap();
    assert_eq!(
        committed(&bootstrap, &group, &topic, 3),
        [Some(3), Some(3), Some(2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_dead_lettered_after_its_budget_and_the_partition_moves_on() {
    let prefix = "permanent.";
    let (_mock, bootstrap) = cluster(prefix, 1);
    let topics = Topics::new(prefix);
    let topic = topics.of(handoff_domain::events::EventKind::LeadCreated);
    let kafka = settings(
        &bootstrap,
        prefix,
        serde_json::json!({ "permanent_retry_budget_seconds": 1 }),
    );
    produce(&bootstrap, &topic, &[(0, "a"), (0, "bad"), (0, "b")]).await;

    let handler = Recorder::new("a");
    let metrics = metrics();
    let shutdown = CancellationToken::new();
    let started = tokio::time::Instant::now();
    let consumer = start(
        &kafka,
        "permanent",
        &topic,
        handler.clone(),
        metrics.clone(),
        shutdown.clone(),
    );

    until(
        "the events around the bad one",
        Duration::from_secs(30),
        || (handler.handled().len() == 2).then_some(()),
    )
    .await;
    assert_eq!(payloads_of(&handler.handled(), 0), ["a", "b"]);
    // Retried for its budget first, not dead-lettered on the first failure.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        metrics
            .consumer_errors
            .with_label_values(&["permanent", "permanent"])
            .get()
            >= 2
    );

    let dead: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "permanent-test-reader")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "20")
        .create()
        .unwrap();
    dead.subscribe(&[topics.dead_letter().as_str()]).unwrap();
    let letter = tokio::time::timeout(Duration::from_secs(30), dead.recv())
        .await
        .expect("a dead letter within 30 s")
        .unwrap();
    let header = |name: &str| {
        letter.headers().and_then(|h| {
            h.iter()
                .find(|header| header.key == name)
                .and_then(|header| header.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    assert_eq!(letter.payload(), Some(&b"bad"[..]));
    assert_eq!(
        header("handoff_dlq_reason").as_deref(),
        Some("processing_failed")
    );
    assert_eq!(header("handoff_dlq_origin_offset").as_deref(), Some("1"));
    let error = header("handoff_dlq_error").unwrap_or_default();
    assert!(
        error.contains("the stored assignment is unreadable"),
        "{error}"
    );
    assert_eq!(
        metrics
            .dead_lettered
            .with_label_values(&["permanent", "processing_failed"])
            .get(),
        1
    );

    shutdown.cancel();
    consumer.await.unwrap().unwrap();
    let group = format!("{prefix}-permanent");
    assert_eq!(committed(&bootstrap, &group, &topic, 1), [Some(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_past_its_budget_stops_the_consumer_without_skipping() {
    let prefix = "transient.";
    let (_mock, bootstrap) = cluster(prefix, 2);
    let topic = Topics::new(prefix).of(handoff_domain::events::EventKind::LeadCreated);
    let kafka = settings(
        &bootstrap,
        prefix,
        serde_json::json!({ "transient_retry_budget_seconds": 2 }),
    );
    produce(
        &bootstrap,
        &topic,
        &[(0, "a"), (0, "stuck"), (0, "b"), (1, "c"), (1, "d")],
    )
    .await;

    let handler = Recorder::new("a");
    let consumer = start(
        &kafka,
        "transient",
        &topic,
        handler.clone(),
        metrics(),
        CancellationToken::new(),
    );
    let stopped = tokio::time::timeout(Duration::from_secs(30), consumer)
        .await
        .expect("the consumer stops by itself")
        .unwrap();
    match stopped {
        Err(KafkaError::RetryBudgetExhausted {
            topic: failed_topic,
            partition: 0,
            offset: 1,
            detail,
            ..
        }) => {
            assert_eq!(failed_topic, topic);
            assert!(detail.contains("redis is unavailable"), "{detail}");
        }
        other => panic!("expected RetryBudgetExhausted for partition 0 offset 1, got {other:?}"),
    }
    let handled = handler.handled();
    assert_eq!(payloads_of(&handled, 0), ["a"]);
    assert_eq!(payloads_of(&handled, 1), ["c", "d"]);
    // What was done is committed; the failing event is not: a restart starts with it.
    let group = format!("{prefix}-transient");
    assert_eq!(committed(&bootstrap, &group, &topic, 2), [Some(1), Some(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_takes_partitions_over_without_handling_an_event_twice() {
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: usize = 300;
    let prefix = "rebalance.";
    let (_mock, bootstrap) = cluster(prefix, PARTITIONS);
    let topic = Topics::new(prefix).of(handoff_domain::events::EventKind::LeadCreated);
    let kafka = settings(&bootstrap, prefix, serde_json::json!({}));
    let payloads: Vec<(i32, String)> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |n| (p, format!("p{p}-{n}"))))
        .collect();
    let records: Vec<(i32, &str)> = payloads.iter().map(|(p, s)| (*p, s.as_str())).collect();
    produce(&bootstrap, &topic, &records).await;

    // Both members share one record, so the order of handling across them is kept.
    let first = Recorder::new("first");
    first.slow.store(true, Ordering::SeqCst);
    let second = Recorder {
        member: "second",
        ..first.clone()
    };
    let (first_metrics, second_metrics) = (metrics(), metrics());
    let shutdown = CancellationToken::new();
    let service = "rebalance";
    let a = start(
        &kafka,
        service,
        &topic,
        first.clone(),
        first_metrics.clone(),
        shutdown.clone(),
    );
    until("the first member at work", Duration::from_secs(30), || {
        (first.handled().len() >= 20).then_some(())
    })
    .await;
    let b = start(
        &kafka,
        service,
        &topic,
        second.clone(),
        second_metrics.clone(),
        shutdown.clone(),
    );
    until(
        "the second member assigned",
        Duration::from_secs(60),
        || {
            (second_metrics
                .consumer_partitions_assigned
                .with_label_values(&[service])
                .get()
                > 0)
            .then_some(())
        },
    )
    .await;
    first.slow.store(false, Ordering::SeqCst);
    until("every event handled", Duration::from_secs(60), || {
        (first.handled().len() >= payloads.len()).then_some(())
    })
    .await;

    // At-least-once allows an event to be handled again only if its effects were not yet
    // durable when its partition was revoked and the drain ran out. Here handling and
    // effects end within 70 ms, far inside the 5 s rebalance drain, so none may be handled
    // twice, and none may be missing.
    let handled = first.handled();
    let mut times: HashMap<(i32, i64), usize> = HashMap::new();
    for h in &handled {
        *times.entry((h.partition, h.offset)).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(times.len(), payloads.len());

    // Each moved partition went over once: the first member handled a prefix, the second
    // the rest, starting exactly where the first member's committed work ended.
    let mut members: BTreeMap<i32, Vec<&'static str>> = BTreeMap::new();
    for h in &handled {
        let seen = members.entry(h.partition).or_default();
        if seen.last() != Some(&h.member) {
            seen.push(h.member);
        }
    }
    let moved = members.values().filter(|m| m.len() == 2).count();
    assert!(moved >= 1, "no partition moved: {members:?}");
    for (partition, seen) in &members {
        assert!(
            *seen == ["first"] || *seen == ["first", "second"] || *seen == ["second"],
            "partition {partition} went back and forth: {seen:?}"
        );
    }
    // Cooperative: the first member gave up only what the second one took; it kept
    // consuming the rest without a stop.
    let revoked = first_metrics
        .consumer_rebalances
        .with_label_values(&[service, "revoked"])
        .get();
    let taken = second_metrics
        .consumer_partitions_assigned
        .with_label_values(&[service])
        .get();
    assert_eq!(revoked, u64::try_from(taken).unwrap(), "{members:?}");
    assert!(taken < i64::from(PARTITIONS));

    shutdown.cancel();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    let group = format!("{prefix}-{service}");
    assert_eq!(
        committed(&bootstrap, &group, &topic, PARTITIONS),
        vec![Some(PER_PARTITION as i64); PARTITIONS as usize]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_metric_shows_a_partitions_backlog() {
    const BACKLOG: i64 = 10;
    let prefix = "lag.";
    let (_mock, bootstrap) = cluster(prefix, 1);
    let topic = Topics::new(prefix).of(handoff_domain::events::EventKind::LeadCreated);
    let kafka = settings(&bootstrap, prefix, serde_json::json!({}));
    let payloads: Vec<String> = (0..BACKLOG).map(|n| format!("e{n}")).collect();
    let records: Vec<(i32, &str)> = payloads.iter().map(|s| (0, s.as_str())).collect();
    produce(&bootstrap, &topic, &records).await;

    // Nothing can be handled yet: the whole backlog is lag.
    let handler = Recorder {
        gate_all: true,
        ..Recorder::new("a")
    };
    let metrics = metrics();
    let shutdown = CancellationToken::new();
    let consumer = start(
        &kafka,
        "lagging",
        &topic,
        handler.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    let lag = || {
        metrics
            .consumer_lag
            .with_label_values(&["lagging", &topic, "0"])
            .get()
    };
    until("lag of the whole backlog", Duration::from_secs(30), || {
        (lag() == BACKLOG).then_some(())
    })
    .await;
    assert_eq!(
        metrics
            .consumer_partitions_assigned
            .with_label_values(&["lagging"])
            .get(),
        1
    );

    handler.release.store(true, Ordering::SeqCst);
    until("lag 0 once consumed", Duration::from_secs(30), || {
        (lag() == 0).then_some(())
    })
    .await;
    assert_eq!(handler.handled().len(), BACKLOG as usize);
    shutdown.cancel();
    consumer.await.unwrap().unwrap();
}
