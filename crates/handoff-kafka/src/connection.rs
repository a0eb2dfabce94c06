//! The start-up check of the way to the cluster. librdkafka never gives up on a broker: a
//! refused password or an untrusted certificate becomes an error event and another attempt,
//! so a service whose first request only waits would report "unreachable" after its
//! timeout, or hang. This check listens to those events and stops at the first
//! authentication or TLS failure, naming the broker and what it said.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};

use handoff_config::KafkaSettings;

use crate::{base_config, KafkaError};

/// How long one metadata request may take before the events are looked at again.
const ATTEMPT: Duration = Duration::from_millis(500);

/// Asks for `topic`'s metadata until a broker answers (`Ok`), a broker refuses the
/// credentials or the TLS handshake fails (at once, with that error), or `timeout` passes.
pub async fn check_connection(
    settings: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<(), KafkaError> {
    // Not the idempotent producer's settings: this client sends nothing, so it needs no
    // producer id (and no IdempotentWrite permission) to answer.
    let mut config = base_config(settings, "handoff-check")?;
    // It runs before the topics are created: a broker that auto-creates topics must not
    // make `topic` from this request, with its defaults instead of ours.
    config.set("allow.auto.create.topics", "false");
    let bootstrap = settings.bootstrap_servers.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let client: BaseProducer<ConnectionWatch> =
            config.create_with_context(ConnectionWatch::new(bootstrap))?;
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = client
                .client()
                .fetch_metadata(Some(&topic), ATTEMPT.min(timeout));
            // Serves the error events raised meanwhile (they reach `ConnectionWatch::error`).
            client.poll(Duration::ZERO);
            match attempt {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if let Some(failure) = client.context().take_failure() {
                        return Err(failure);
                    }
                    if Instant::now() >= deadline {
                        return Err(KafkaError::Unreachable(e.to_string()));
                    }
                }
            }
        }
    })
    .await
    .map_err(|e| KafkaError::Unreachable(e.to_string()))?
}

/// Remembers the first authentication or TLS failure librdkafka reports.
pub(crate) struct ConnectionWatch {
    bootstrap: String,
    failure: Mutex<Option<KafkaError>>,
}

impl ConnectionWatch {
    fn new(bootstrap: String) -> Self {
        Self {
            bootstrap,
            failure: Mutex::new(None),
        }
    }

    fn take_failure(&self) -> Option<KafkaError> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

impl ConnectionWatch {
    fn record(&self, failure: KafkaError) {
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(failure);
        }
    }
}

impl ClientContext for ConnectionWatch {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        match classify(error.rdkafka_error_code(), reason, &self.bootstrap) {
            Some(failure) => self.record(failure),
            None => {
                tracing::warn!(error = %error, %reason, "kafka client error during the start-up check")
            }
        }
    }

    /// A broker that asks for a client certificate refuses one that is missing or untrusted
    /// after the TLS 1.3 handshake, with an alert: librdkafka reports a transport failure
    /// (no error event, only this log line), so the line is where the reason is.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "FAIL" && is_tls_refusal(log_message) {
            let (broker, detail) =
                split_broker(log_message).unwrap_or((self.bootstrap.as_str(), log_message));
            self.record(KafkaError::TlsHandshakeFailed {
                broker: broker.to_owned(),
                detail: detail.to_owned(),
            });
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "librdkafka: {fac} {log_message}")
            }
        }
    }
}

/// OpenSSL's own words for a refused TLS session (`…: SSL routines::tlsv13 alert
/// certificate required: SSL alert number 116`).
fn is_tls_refusal(message: &str) -> bool {
    message.contains("SSL routines::") || message.contains("SSL alert number")
}

impl ProducerContext for ConnectionWatch {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// An authentication or TLS failure, from an error event's code and text. librdkafka's
/// text starts with the broker (`sasl_ssl://host:9093/bootstrap: SASL authentication
/// error: …`); an error of no broker (the OAuth token could not be had) names the
/// bootstrap list.
fn classify(code: Option<RDKafkaErrorCode>, reason: &str, bootstrap: &str) -> Option<KafkaError> {
    let (broker, detail) = split_broker(reason).unwrap_or((bootstrap, reason));
    let (broker, detail) = (broker.to_owned(), detail.to_owned());
    match code? {
        RDKafkaErrorCode::Authentication
        | RDKafkaErrorCode::SaslAuthenticationFailed
        | RDKafkaErrorCode::UnsupportedSASLMechanism
        | RDKafkaErrorCode::IllegalSASLState => {
            Some(KafkaError::AuthenticationFailed { broker, detail })
        }
        RDKafkaErrorCode::SSL => Some(KafkaError::TlsHandshakeFailed { broker, detail }),
        _ => None,
    }
}

/// `ssl://host:9093/bootstrap: text` -> (`host:9093`, `text`).
fn split_broker(reason: &str) -> Option<(&str, &str)> {
    let (prefix, detail) = reason.split_once(": ")?;
    let (_, address) = prefix.split_once("://")?;
    let broker = address.rsplit_once('/').map_or(address, |(host, _)| host);
    Some((broker, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authentication_error_names_the_broker_and_keeps_the_reason() {
        let failure = classify(
            Some(RDKafkaErrorCode::Authentication),
            "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed",
            "b:1",
        )
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            failure.starts_with(
                "authentication failed at broker 127.0.0.1:9093: SASL authentication error"
            ),
            "{failure}"
        );
    }

    #[test]
    fn a_tls_error_without_a_broker_names_the_bootstrap_list() {
        let failure = classify(
            Some(RDKafkaErrorCode::SSL),
            "certificate verify failed",
            "b:1",
        )
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            failure.starts_with("TLS handshake failed with broker b:1: certificate verify failed"),
            "{failure}"
        );
    }

    #[test]
    fn a_refused_client_certificate_is_a_tls_failure() {
        assert!(is_tls_refusal(
            "ssl://b:9093/bootstrap: Receive failed: error:0A00045C:SSL routines::tlsv13 alert certificate required: SSL alert number 116"
        ));
        assert!(!is_tls_refusal(
            "ssl://b:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused"
        ));
    }

    #[test]
    fn other_errors_are_left_to_the_retries() {
        assert!(classify(
            Some(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
            "b:1"
        )
        .is_none());
    }
}
