use rdkafka::ClientConfig;

use handoff_config::KafkaSettings;

fn base(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("client.id", client_id);
    for (key, value) in &settings.client {
        config.set(key, value);
    }
    config
}

/// Idempotent, acks=all: an event is acknowledged only once every in-sync replica has it,
/// and retries cannot duplicate or reorder it.
pub fn producer_config(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut config = base(settings, client_id);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        );
    config
}

/// At-least-once: offsets are stored by the consume loop after effects are durable
/// (`enable.auto.offset.store=false`) and committed in the background, on revoke and on
/// shutdown. Partitions are assigned cooperatively by default (`kafka.partition_assignment`),
/// so a member joining or leaving moves only the partitions that change owner instead of
/// stopping the whole group; an explicit `partition.assignment.strategy` under
/// `[kafka.client]` wins.
pub fn consumer_config(settings: &KafkaSettings, group: &str, client_id: &str) -> ClientConfig {
    let mut config = base(settings, client_id);
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
    config
}

/// A reader outside any consumer group's work: partitions assigned by hand, nothing
/// committed (the operator tools: `handoff dlq`). librdkafka still needs a group id to
/// assign; a fresh one per reader, so no earlier reader (killed, say) holds this one up at
/// the coordinator. `enable.partition.eof` reports each partition's end as the broker saw
/// it when the fetch answered, which is how a tool knows it read everything there was
/// without asking for watermarks (Tansu's ListOffsets is incomplete: architecture.md).
pub fn reader_config(settings: &KafkaSettings, client_id: &str) -> ClientConfig {
    let mut config = base(settings, client_id);
    config
        .set(
            "group.id",
            format!("{client_id}-reader-{:016x}", rand::random::<u64>()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string());
    config
}
