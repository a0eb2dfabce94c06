use handoff_domain::Transience;
use rdkafka::error::RDKafkaErrorCode;

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
    #[error("refusing to re-send a dead letter to {0}: not a topic of this deployment")]
    ReplayRefused(String),
    #[error("the broker is unreachable: {0}")]
    Unreachable(String),
    /// A `[kafka.security]` setting that cannot work (the message names the key).
    #[error("invalid Kafka security setting: {0}")]
    Security(String),
    #[error(
        "authentication failed at broker {broker}: {detail} (check kafka.security.mechanism, username and password, or the OAuth client)"
    )]
    AuthenticationFailed { broker: String, detail: String },
    #[error(
        "TLS handshake failed with broker {broker}: {detail} (check kafka.security.protocol, ca_file, cert_file and key_file)"
    )]
    TlsHandshakeFailed { broker: String, detail: String },
    #[error("an effect of an earlier message failed, so its offset was not stored: {0}")]
    EffectFailed(String),
    #[error(
        "{topic}[{partition}] offset {offset} kept failing for {seconds} s (kafka.transient_retry_budget_seconds); stopping so the service is restarted and the event redelivered: {detail}"
    )]
    RetryBudgetExhausted {
        topic: String,
        partition: i32,
        offset: i64,
        seconds: u64,
        detail: String,
    },
}

impl Transience for KafkaError {
    fn is_transient(&self) -> bool {
        match self {
            KafkaError::Client(e) | KafkaError::Delivery { source: e, .. } => {
                !e.rdkafka_error_code().is_some_and(refused_for_good)
            }
            KafkaError::Encode(_)
            | KafkaError::ReplayRefused(_)
            | KafkaError::Security(_)
            | KafkaError::AuthenticationFailed { .. }
            | KafkaError::TlsHandshakeFailed { .. } => false,
            KafkaError::DeliveryCancelled { .. }
            | KafkaError::CreateTopic { .. }
            | KafkaError::Unreachable(_)
            | KafkaError::EffectFailed(_)
            | KafkaError::RetryBudgetExhausted { .. } => true,
        }
    }
}

/// Codes with which a broker (or the client, before sending) refuses a record because of
/// the record itself: sending it again can never succeed.
fn refused_for_good(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidArgument
    )
}
