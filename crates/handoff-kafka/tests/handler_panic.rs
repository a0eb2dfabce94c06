//! A panic while handling one event (in the call, in its future, or in its effects) is
//! caught by the consume loop: the event goes to the dead-letter topic with reason
//! `handler_panic` and the panic message, and the events behind it on the same partition
//! are handled. Against librdkafka's mock cluster: a real Kafka protocol over TCP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use handoff_config::KafkaSettings;
use handoff_domain::events::EventKind;
use handoff_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use handoff_kafka::rdkafka::message::Headers;
use handoff_kafka::rdkafka::mocking::MockCluster;
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use handoff_kafka::{
    run_consumer, ConsumerSpec, Effects, EventHandler, EventProducer, HandleError, InboundEvent,
    Topics,
};
use handoff_telemetry::Metrics;
use tokio_util::sync::CancellationToken;

const SERVICE: &str = "panicky";

/// Panics on three kinds of payload, records every other one.
#[derive(Clone, Default)]
struct PanickyHandler {
    handled: Arc<Mutex<Vec<String>>>,
}

impl EventHandler for PanickyHandler {
    fn handle(
        &self,
        event: &InboundEvent,
    ) -> impl Future<Output = Result<Effects, HandleError>> + Send {
        let payload =
            String::from_utf8_lossy(event.payload.as_deref().unwrap_or_default()).into_owned();
        if payload == "panic-on-call" {
            panic!("panicked before returning a future");
        }
        let handled = self.handled.clone();
        async move {
            match payload.as_str() {
                "panic-in-handler" => {
                    // The crash of issue 6: a byte slice inside a multi-byte character.
                    let postal_code = std::hint::black_box("8é");
                    let prefix = &postal_code[..2];
                    Err(HandleError::transient(prefix))
                }
                "panic-in-effects" => Ok(async {
                    if std::hint::black_box(true) {
                        panic!("the effect blew up");
                    }
                    Ok(())
                }
                .boxed()),
                _ => {
                    handled.lock().unwrap().push(payload);
                    Ok(async { Ok(()) }.boxed())
                }
            }
        }
    }
}

fn settings(bootstrap: String, prefix: &str) -> KafkaSettings {
    serde_json::from_value(serde_json::json!({
        "bootstrap_servers": bootstrap,
        "topic_prefix": prefix,
        "group_prefix": prefix,
        "partitions": 1,
        "create_topics": false,
        "session_timeout_ms": 6000,
        "fetch_wait_max_ms": 50,
    }))
    .unwrap()
}

async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_event_is_dead_lettered_and_the_partition_moves_on() {
    let mock = MockCluster::new(1).unwrap();
    let prefix = "panic.";
    let topics = Topics::new(prefix);
    for topic in topics.all() {
        mock.create_topic(&topic, 1, 1).unwrap();
    }
    let kafka = settings(mock.bootstrap_servers(), prefix);
    let source = topics.of(EventKind::LeadCreated);

    // One partition, one key: the events behind each panic wait for it to be dealt with.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .create()
        .unwrap();
    let payloads = [
        "panic-on-call",
        "first",
        "panic-in-handler",
        "panic-in-effects",
        "second",
    ];
    for payload in payloads {
        producer
            .send(
                FutureRecord::to(&source).key("lead-1").payload(payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let handler = PanickyHandler::default();
    let metrics = Metrics::new(prometheus::Registry::new()).unwrap();
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn({
        let (kafka, handler, metrics, shutdown) = (
            kafka.clone(),
            handler.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let spec = ConsumerSpec {
            service: SERVICE,
            topics: vec![source.clone()],
            max_in_flight: 16,
            drain: Duration::from_secs(5),
        };
        let producer = EventProducer::new(&kafka, SERVICE).unwrap();
        async move { run_consumer(&kafka, spec, handler, producer, metrics, shutdown).await }
    });

    let handled = until("the events behind the panics", || {
        let handled = handler.handled.lock().unwrap().clone();
        (handled.len() >= 2).then_some(handled)
    })
    .await;
    assert_eq!(handled, ["first", "second"]);

    let dead: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", "panic-test-reader")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    dead.subscribe(&[topics.dead_letter().as_str()]).unwrap();
    let mut letters = Vec::new();
    while letters.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(30), dead.recv())
            .await
            .expect("three dead letters within 30 s")
            .unwrap();
        let header = |name: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|header| header.key == name)
                    .and_then(|header| header.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        letters.push((
            String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            header("handoff_dlq_reason"),
            header("handoff_dlq_error").unwrap_or_default(),
            header("handoff_dlq_origin_offset"),
        ));
    }
    let summary: Vec<(&str, Option<&str>, Option<&str>)> = letters
        .iter()
        .map(|(payload, reason, _, offset)| {
            (payload.as_str(), reason.as_deref(), offset.as_deref())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("panic-on-call", Some("handler_panic"), Some("0")),
            ("panic-in-handler", Some("handler_panic"), Some("2")),
            ("panic-in-effects", Some("handler_panic"), Some("3")),
        ]
    );
    // The panic message is the detail, so whoever reads the dead letter can find the bug.
    assert!(
        letters[0].2.contains("panicked before returning a future"),
        "{}",
        letters[0].2
    );
    assert!(
        letters[1].2.contains("is not a char boundary"),
        "{}",
        letters[1].2
    );
    assert!(
        letters[2].2.contains("the effect blew up"),
        "{}",
        letters[2].2
    );
    assert_eq!(
        metrics
            .dead_lettered
            .with_label_values(&[SERVICE, "handler_panic"])
            .get(),
        3
    );

    assert!(!consumer.is_finished(), "the consumer is still running");
    shutdown.cancel();
    consumer.await.unwrap().unwrap();

    // Every offset was stored, the panicked ones included: a restart would not see them again.
    let group: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", format!("{prefix}-{SERVICE}"))
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(&source, 0);
    let committed = group
        .committed_offsets(partitions, Duration::from_secs(10))
        .unwrap();
    let offset = committed.find_partition(&source, 0).map(|p| p.offset());
    assert_eq!(offset, Some(Offset::Offset(payloads.len() as i64)));
}
