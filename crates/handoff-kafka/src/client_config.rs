use rdkafka::ClientConfig;

use handoff_config::KafkaSettings;

use crate::KafkaError;

/// What every client the services and tools make starts from: the brokers, TLS and SASL
/// (`[kafka.security]`), then `[kafka.client]` as given. Fails, naming the key, when a file
/// `[kafka.security]` names cannot be read: librdkafka would only name its own property.
pub fn base_config(settings: &KafkaSettings, client_id: &str) -> Result<ClientConfig, KafkaError> {
    settings
        .security
        .check_files()
        .map_err(KafkaError::Security)?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", client_id);
    for property in settings.security.client_properties() {
        config.set(property.name, property.value);
    }
    for (key, value) in &settings.client {
        config.set(key, value);
    }
    Ok(config)
}

/// Idempotent, acks=all: an event is acknowledged only once every in-sync replica has it,
/// and retries cannot duplicate or reorder it.
pub fn producer_config(
    settings: &KafkaSettings,
    client_id: &str,
) -> Result<ClientConfig, KafkaError> {
    let mut config = base_config(settings, client_id)?;
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        );
    Ok(config)
}

/// At-least-once: offsets are stored by the consume loop after effects are durable
/// (`enable.auto.offset.store=false`) and committed in the background, on revoke and on
/// shutdown. Partitions are assigned cooperatively by default (`kafka.partition_assignment`),
/// so a member joining or leaving moves only the partitions that change owner instead of
/// stopping the whole group; an explicit `partition.assignment.strategy` under
/// `[kafka.client]` wins.
pub fn consumer_config(
    settings: &KafkaSettings,
    group: &str,
    client_id: &str,
) -> Result<ClientConfig, KafkaError> {
    let mut config = base_config(settings, client_id)?;
    if !settings
        .client
        .contains_key("partition.assignment.strategy")
    {
        config.set(
            "partition.assignment.strategy",
            settings.partition_assignment.as_str(),
        );
    }
    if settings.statistics_interval_ms > 0 {
        config.set(
            "statistics.interval.ms",
            settings.statistics_interval_ms.to_string(),
        );
    }
    config
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (settings.session_timeout_ms / 4).max(100).to_string(),
        )
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string());
    Ok(config)
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::BaseProducer;

    use super::*;

    fn settings(security: serde_json::Value) -> KafkaSettings {
        serde_json::from_value(serde_json::json!({
            "bootstrap_servers": "127.0.0.1:1",
            "security": security,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// librdkafka checks its configuration when a client is made: each mechanism's
    /// settings, as `[kafka.security]` maps them, make a client (no broker needed).
    #[test]
    fn librdkafka_accepts_every_mechanism() {
        let cases = [
            serde_json::json!({"protocol": "sasl_ssl", "mechanism": "plain", "username": "key", "password": "secret"}),
            serde_json::json!({"protocol": "sasl_ssl", "mechanism": "scram-sha-256", "username": "u", "password": "p"}),
            serde_json::json!({"protocol": "sasl_plaintext", "mechanism": "scram-sha-512", "username": "u", "password": "p"}),
            serde_json::json!({"protocol": "sasl_ssl", "mechanism": "oauthbearer",
                "oauth_token_url": "http://127.0.0.1:1/token", "oauth_client_id": "c",
                "oauth_client_secret": "s", "oauth_scope": "kafka"}),
            serde_json::json!({"protocol": "ssl", "verify_hostname": false}),
        ];
        for security in cases {
            let config = producer_config(&settings(security.clone()), "test")
                .unwrap_or_else(|e| panic!("{security}: {e}"));
            if let Err(e) = config.create::<BaseProducer>() {
                // "OAuth/OIDC depends on libcurl ...": librdkafka was built without the
                // libcurl headers (scripts/ensure-build-deps.sh, then
                // `cargo clean -p rdkafka-sys`).
                panic!("librdkafka refused {security}: {e}");
            }
        }
    }

    #[test]
    fn an_unreadable_certificate_file_is_named_by_its_key() {
        let settings = settings(serde_json::json!({
            "protocol": "ssl",
            "cert_file": "/nonexistent/client.pem",
            "key_file": "/nonexistent/client.key",
        }));
        let error = consumer_config(&settings, "g", "c")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("kafka.security.cert_file: cannot read /nonexistent/client.pem"),
            "{error}"
        );
    }

    #[test]
    fn kafka_client_comes_after_the_security_keys() {
        let mut settings = settings(serde_json::json!({"protocol": "ssl"}));
        settings
            .client
            .insert("ssl.cipher.suites".to_owned(), "HIGH".to_owned());
        let config = base_config(&settings, "c").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.get("security.protocol"), Some("SSL"));
        assert_eq!(config.get("ssl.cipher.suites"), Some("HIGH"));
    }
}
