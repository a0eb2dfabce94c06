//! `HANDOFF_<SECTION>_<KEY>` overrides, e.g. `HANDOFF_KAFKA_BOOTSTRAP_SERVERS`,
//! `HANDOFF_REDIS_URL`, `HANDOFF_NOTIFIER_SIGNING_SECRET`; top-level keys too
//! (`HANDOFF_RULES_FILE`). Values are applied to the parsed file before it is checked, so
//! they get the same validation and messages as the file.

use crate::ConfigError;

const SECTIONS: &[&str] = &[
    "kafka", "redis", "ingest", "admin", "router", "sla", "notifier", "log", "shutdown", "actions",
    "state", "tracing",
];
const TOP_LEVEL: &[&str] = &["rules_file", "profile"];
/// Free-text keys: their values stay strings even when they look like numbers ("12345").
const TEXT_KEYS: &[&str] = &[
    "notifier.signing_secret",
    "notifier.allowed_private_targets",
    "kafka.bootstrap_servers",
    "kafka.topic_prefix",
    "kafka.group_prefix",
    "kafka.group_instance_id",
    "redis.url",
    "redis.key_prefix",
    "log.level",
    "actions.public_url",
    "actions.secret_env",
    "tracing.otlp_endpoint",
    "tracing.service_name",
];

/// Applies the overrides; returns the names of the variables applied.
pub(crate) fn apply_overrides(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix("HANDOFF_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        if TOP_LEVEL.contains(&lower.as_str()) {
            let typed = typed_value(table.get(&lower), &value);
            table.insert(lower, typed);
            applied.push(var);
            continue;
        }
        let Some((section, key)) = lower.split_once('_') else {
            continue;
        };
        if !SECTIONS.contains(&section) {
            continue;
        }
        let entry = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(ConfigError::Env {
                var,
                message: format!("`{section}` in the file is not a table"),
            });
        };
        let typed = if TEXT_KEYS.contains(&format!("{section}.{key}").as_str()) {
            toml::Value::String(value)
        } else {
            typed_value(section_table.get(key), &value)
        };
        section_table.insert(key.to_owned(), typed);
        applied.push(var);
    }
    Ok(applied)
}

/// Keeps the type the file uses for the key; for a key the file does not set, guesses
/// (integer, boolean, else string).
fn typed_value(existing: Option<&toml::Value>, raw: &str) -> toml::Value {
    match existing {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        Some(toml::Value::Integer(_)) | None if raw.parse::<i64>().is_ok() => {
            toml::Value::Integer(raw.parse::<i64>().unwrap_or_default())
        }
        Some(toml::Value::Boolean(_)) | None if raw.parse::<bool>().is_ok() => {
            toml::Value::Boolean(raw.parse::<bool>().unwrap_or_default())
        }
        _ => toml::Value::String(raw.to_owned()),
    }
}
