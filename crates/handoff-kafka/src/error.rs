/// Errors of the Kafka adapter.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("the broker did not acknowledge an event for {topic}: {source}")]
    Delivery {
        topic: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("the producer shut down before an event for {topic} was acknowledged")]
    DeliveryCancelled { topic: String },
    #[error("cannot create topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the broker is unreachable: {0}")]
    Unreachable(String),
    #[error("an effect of an earlier message failed, so its offset was not stored: {0}")]
    EffectFailed(String),
}
