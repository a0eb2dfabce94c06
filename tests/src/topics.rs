//! Reading what the services published, as a downstream consumer would.

use std::collections::BTreeMap;
use std::time::Duration;

use handoff_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use handoff_kafka::rdkafka::message::{Headers, Message};
use handoff_kafka::rdkafka::ClientConfig;
use serde_json::Value;

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// A consumer of one topic from its beginning, in a group of its own.
pub struct TopicReader {
    consumer: StreamConsumer,
    pub records: Vec<Record>,
}

impl std::fmt::Debug for TopicReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicReader")
            .field("records", &self.records.len())
            .finish()
    }
}

impl TopicReader {
    pub fn new(bootstrap: &str, topic: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("reader-{}", crate::unique_id()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .expect("reader consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        Self {
            consumer,
            records: Vec::new(),
        }
    }

    /// A reader made as the services make their consumers, from `[kafka]` settings: what
    /// a test of a secured broker (TLS, SASL) reads with.
    pub fn with_settings(kafka: &handoff_config::KafkaSettings, topic: &str) -> Self {
        let consumer: StreamConsumer = handoff_kafka::consumer_config(
            kafka,
            &format!("reader-{}", crate::unique_id()),
            "reader",
            None,
        )
        .expect("reader settings")
        .create()
        .expect("reader consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        Self {
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads until `done(records so far)` holds; panics after `timeout`.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&[Record]) -> bool,
    ) -> &[Record] {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(&self.records) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; got {} records",
                self.records.len()
            );
            if let Ok(Ok(message)) =
                tokio::time::timeout(left.min(Duration::from_millis(500)), self.consumer.recv())
                    .await
            {
                self.records.push(to_record(&message));
            }
        }
        &self.records
    }

    /// Reads whatever arrives until `until` passes: for asserting that something does
    /// *not* happen within a window.
    pub async fn read_for(&mut self, window: Duration) -> &[Record] {
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return &self.records;
            }
            if let Ok(Ok(message)) = tokio::time::timeout(left, self.consumer.recv()).await {
                self.records.push(to_record(&message));
            }
        }
    }
}

pub(crate) fn to_record(message: &handoff_kafka::rdkafka::message::BorrowedMessage<'_>) -> Record {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| {
                    (
                        header.key.to_owned(),
                        header
                            .value
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
    }
}
