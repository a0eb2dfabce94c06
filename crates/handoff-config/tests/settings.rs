use std::path::Path;

use handoff_config::{parse_settings, ConfigError};

const BASE: &str = r#"
rules_file = "rules.toml"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[redis]
url = "redis://127.0.0.1:6379"
"#;

fn vars(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn env_overrides_every_connection_setting() {
    let settings = parse_settings(
        Path::new("handoff.toml"),
        BASE,
        vars(&[
            ("HANDOFF_KAFKA_BOOTSTRAP_SERVERS", "broker:9093"),
            ("HANDOFF_REDIS_URL", "redis://cache:6380/2"),
            ("HANDOFF_INGEST_LISTEN", "0.0.0.0:9000"),
            ("HANDOFF_SLA_FIRST_TOUCH_SECONDS", "120"),
            ("HANDOFF_NOTIFIER_SIGNING_SECRET", "12345"),
            ("UNRELATED", "x"),
        ]),
    );
    let settings = match settings {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(settings.kafka.bootstrap_servers, "broker:9093");
    assert_eq!(settings.redis.url, "redis://cache:6380/2");
    assert_eq!(settings.ingest.listen.port(), 9000);
    assert_eq!(settings.sla.first_touch_seconds, 120);
    assert_eq!(settings.notifier.signing_secret.expose(), "12345");
    assert_eq!(
        format!("{:?}", settings.notifier.signing_secret),
        "Secret([redacted])"
    );
}

#[test]
fn an_unknown_key_fails_naming_file_key_and_allowed_values() {
    let text = BASE.replace("[redis]", "[redis]\nport = 6379");
    let err = parse_settings(Path::new("handoff.toml"), &text, vars(&[]));
    let message = match err {
        Err(ConfigError::Invalid { message, path }) => {
            assert_eq!(path, Path::new("handoff.toml"));
            message
        }
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(message.contains("unknown field `port`"), "{message}");
    assert!(message.contains("`url`, `key_prefix`"), "{message}");
}

#[test]
fn a_bad_enum_value_lists_the_allowed_ones() {
    let text = format!("{BASE}\n[log]\nformat = \"xml\"\n");
    let err = parse_settings(Path::new("handoff.toml"), &text, vars(&[])).err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("unknown variant `xml`, expected `text` or `json`"),
        "{message}"
    );
}

#[test]
fn a_bad_env_value_names_the_variable() {
    let err = parse_settings(
        Path::new("handoff.toml"),
        BASE,
        vars(&[("HANDOFF_SLA_POLL_INTERVAL_MS", "soon")]),
    )
    .err();
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("HANDOFF_SLA_POLL_INTERVAL_MS"),
        "{message}"
    );
}

#[test]
fn zero_where_a_positive_number_is_needed_is_rejected() {
    let text = format!("{BASE}\n[sla]\nlease_seconds = 0\n");
    let err = parse_settings(Path::new("handoff.toml"), &text, vars(&[])).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("invalid configuration in handoff.toml: sla.lease_seconds must be greater than 0")
    );
}

fn error_of(text: &str, env: &[(&str, &str)]) -> String {
    parse_settings(Path::new("handoff.toml"), text, vars(env))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn an_unknown_scope_lists_the_allowed_ones() {
    let text = format!(
        "{BASE}\n[[ingest.keys]]\nname = \"crm\"\nsha256 = \"{}\"\nscopes = [\"leads:delete\"]\n",
        "a".repeat(64)
    );
    let message = error_of(&text, &[]);
    assert!(message.contains("handoff.toml"), "{message}");
    assert!(
        message.contains("unknown variant `leads:delete`"),
        "{message}"
    );
    assert!(message.contains("`dispositions:write`"), "{message}");
}

#[test]
fn keys_are_configured_as_digests_never_in_clear() {
    let text = format!(
        "{BASE}\n[[ingest.keys]]\nname = \"crm\"\nsha256 = \"hk_my_secret_key\"\nscopes = [\"leads:write\"]\n"
    );
    let message = error_of(&text, &[]);
    assert!(
        message.contains("ingest.keys[0].sha256 must be 64 hex characters"),
        "{message}"
    );
}

#[test]
fn a_webhook_source_needs_its_secret_in_the_environment() {
    let text = format!(
        "{BASE}\n[[ingest.webhooks]]\nsource = \"leadgen\"\nsecret_env = \"LEADGEN_SECRET\"\n"
    );
    let message = error_of(&text, &[]);
    assert!(
        message.contains("ingest.webhooks[0] (source \"leadgen\"): environment variable LEADGEN_SECRET is not set"),
        "{message}"
    );
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let settings = parse_settings(
        Path::new("handoff.toml"),
        &text,
        vars(&[("LEADGEN_SECRET", secret)]),
    );
    assert_eq!(
        settings
            .map(|s| s.ingest.webhooks[0].secret.expose().to_owned())
            .ok(),
        Some(secret.to_owned())
    );
}
