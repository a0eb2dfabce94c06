use rdkafka::ClientConfig;

use handoff_config::{GroupProtocol, KafkaSettings};

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
///
/// `instance_id` makes the member static (`group.instance.id`): restarted with the same id
/// it is given its partitions back without a rebalance. Under the KIP-848 protocol
/// (`kafka.group_protocol = "consumer"`) the broker owns the session timeout, heartbeat and
/// assignor, and librdkafka refuses those properties, so they are left out.
pub fn consumer_config(
    settings: &KafkaSettings,
    group: &str,
    client_id: &str,
    instance_id: Option<&str>,
) -> Result<ClientConfig, KafkaError> {
    let mut config = base_config(settings, client_id)?;
    match settings.group_protocol {
        GroupProtocol::Classic => {
            if !settings
                .client
                .contains_key("partition.assignment.strategy")
            {
                config.set(
                    "partition.assignment.strategy",
                    settings.partition_assignment.as_str(),
                );
            }
            config
                .set(
                    "session.timeout.ms",
                    settings.session_timeout_ms.to_string(),
                )
                .set(
                    "heartbeat.interval.ms",
                    (settings.session_timeout_ms / 4).max(100).to_string(),
                );
        }
        GroupProtocol::Consumer => {
            config.set("group.protocol", GroupProtocol::Consumer.as_str());
        }
    }
    if let Some(id) = instance_id {
        config.set("group.instance.id", id);
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
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string());
    Ok(config)
}

/// A reader outside any consumer group's work: partitions assigned by hand, nothing
/// committed (the operator tools: `handoff dlq`). librdkafka still needs a group id to
/// assign; a fresh one per reader, so no earlier reader (killed, say) holds this one up at
/// the coordinator. `enable.partition.eof` reports each partition's end as the broker saw
/// it when the fetch answered, which is how a tool knows it read everything there was
/// without asking for watermarks (Tansu's ListOffsets is incomplete: architecture.md).
/// `purpose` names the client (`handoff-<purpose>`) and the group
/// (`<group prefix>-<purpose>-reader-…`, under the prefix the README's ACLs grant).
pub fn reader_config(settings: &KafkaSettings, purpose: &str) -> Result<ClientConfig, KafkaError> {
    let mut config = base_config(settings, &format!("handoff-{purpose}"))?;
    config
        .set(
            "group.id",
            format!(
                "{}-{purpose}-reader-{:016x}",
                settings.group_prefix,
                rand::random::<u64>()
            ),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
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
        let error = consumer_config(&settings, "g", "c", None)
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

#[cfg(test)]
mod membership_tests {
    use super::*;

    fn settings(protocol: &str) -> KafkaSettings {
        let json = serde_json::json!({
            "bootstrap_servers": "127.0.0.1:9092",
            "group_protocol": protocol,
        });
        match serde_json::from_value(json) {
            Ok(settings) => settings,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn by_default_a_consumer_is_a_dynamic_classic_member_as_before() {
        let config =
            consumer_config(&settings("classic"), "g", "c", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        assert_eq!(config.get("session.timeout.ms"), Some("10000"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("2500"));
        assert_eq!(config.get("group.instance.id"), None);
        assert_eq!(config.get("group.protocol"), None);
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
    }

    #[test]
    fn a_static_member_carries_its_instance_id() {
        let config = consumer_config(&settings("classic"), "g", "c", Some("router-0-router"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.get("group.instance.id"), Some("router-0-router"));
        assert_eq!(config.get("session.timeout.ms"), Some("10000"));
    }

    /// librdkafka refuses the classic protocol's session, heartbeat and assignor properties
    /// under KIP-848 (the broker owns them).
    #[test]
    fn the_kip_848_protocol_leaves_the_brokers_settings_to_the_broker() {
        let config = consumer_config(&settings("consumer"), "g", "c", None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.get("group.protocol"), Some("consumer"));
        for key in [
            "partition.assignment.strategy",
            "session.timeout.ms",
            "heartbeat.interval.ms",
        ] {
            assert_eq!(config.get(key), None, "{key}");
        }
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
    }
}
