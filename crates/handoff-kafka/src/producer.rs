use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use handoff_config::KafkaSettings;

use crate::{producer_config, InboundEvent, KafkaError, OutboundEvent, Topics};
use crate::{PoisonReason, WorkGate};

/// Resolves when the broker acknowledged an enqueued event.
pub type Ack = BoxFuture<'static, Result<(), KafkaError>>;

/// Publishes events: idempotent, acks=all. Cheap to clone.
#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer,
    /// `ce_source` of everything this producer sends, e.g. `/handoff/router`.
    source: Arc<str>,
    topics: Topics,
    /// Whether this process may take new work (closed while the Redis state is lost);
    /// shared by every producer the process makes it with [`Self::with_gate`].
    gate: WorkGate,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl EventProducer {
    pub fn new(settings: &KafkaSettings, service: &str) -> Result<Self, KafkaError> {
        let producer: FutureProducer =
            producer_config(settings, &format!("handoff-{service}"))?.create()?;
        Ok(Self {
            producer,
            source: Arc::from(format!("/handoff/{service}")),
            topics: Topics::new(settings.topic_prefix.clone()),
            gate: WorkGate::default(),
        })
    }

    /// This producer, under the process's work gate: the consumers it serves wait at the
    /// gate, and so do the pollers and ingest that publish with it.
    pub fn with_gate(mut self, gate: WorkGate) -> Self {
        self.gate = gate;
        self
    }

    pub fn gate(&self) -> &WorkGate {
        &self.gate
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Hands the event to the client now (so events enqueued one after another keep their
    /// order) and returns the acknowledgement to await.
    pub async fn enqueue(&self, event: &OutboundEvent) -> Result<Ack, KafkaError> {
        let topic = self.topics.of(event.kind);
        let headers = event.headers(&self.source);
        self.enqueue_record(topic, &event.subject, &event.payload, headers)
            .await
    }

    /// Enqueues and waits for the broker's acknowledgement.
    pub async fn publish(&self, event: &OutboundEvent) -> Result<(), KafkaError> {
        self.enqueue(event).await?.await
    }

    /// Publishes a rep's overrides on `rep.state` (keyed by rep id, so compaction keeps
    /// the latest) and waits for the broker's acknowledgement.
    pub async fn publish_rep_overrides(
        &self,
        overrides: &handoff_domain::rep_overrides::RepOverrides,
    ) -> Result<(), KafkaError> {
        let payload = serde_json::to_vec(overrides).map_err(KafkaError::Encode)?;
        let time = overrides
            .updated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let headers = [
            ("ce_specversion", "1.0"),
            ("ce_source", &*self.source),
            (
                "ce_type",
                handoff_domain::rep_overrides::REP_OVERRIDES_CE_TYPE,
            ),
            ("ce_time", time.as_str()),
            ("ce_subject", overrides.rep_id.as_str()),
            ("content-type", "application/json"),
        ]
        .into_iter()
        .fold(
            rdkafka::message::OwnedHeaders::new(),
            |headers, (key, value)| {
                headers.insert(rdkafka::message::Header {
                    key,
                    value: Some(value),
                })
            },
        );
        self.enqueue_record(
            self.topics.rep_state(),
            overrides.rep_id.as_str(),
            &payload,
            headers,
        )
        .await?
        .await
    }

    /// Sends a record that cannot be processed to the dead-letter topic.
    pub async fn dead_letter(
        &self,
        event: &InboundEvent,
        reason: PoisonReason,
        detail: &str,
        service: &str,
    ) -> Result<Ack, KafkaError> {
        let headers = event.dead_letter_headers(reason, detail, service);
        let key = event.key.clone().unwrap_or_default();
        let payload = event.payload.clone().unwrap_or_default();
        self.enqueue_record(self.topics.dead_letter(), &key, &payload, headers)
            .await
    }

    async fn enqueue_record<K: rdkafka::message::ToBytes + ?Sized>(
        &self,
        topic: String,
        key: &K,
        payload: &[u8],
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<Ack, KafkaError> {
        let mut record = FutureRecord::to(&topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    let topic = topic.clone();
                    return Ok(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((source, _))) => Err(KafkaError::Delivery { topic, source }),
                            Err(_) => Err(KafkaError::DeliveryCancelled { topic }),
                        }
                    }
                    .boxed());
                }
                // The client's queue is full: wait for deliveries to drain it, then retry.
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Asks the cluster for one topic's metadata: `Ok` when a broker answers. One topic,
    /// not all: a shared cluster has thousands, and readiness probes ask every few seconds.
    pub async fn check_connectivity(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(|_| ())
                .map_err(|e| KafkaError::Unreachable(e.to_string()))
        })
        .await
        .map_err(|e| KafkaError::Unreachable(e.to_string()))?
    }
}
