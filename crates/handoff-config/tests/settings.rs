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

#[test]
fn a_claim_lease_not_longer_than_the_publish_timeout_is_refused() {
    // A lease that can run out while a breach's publish is pending lets a second poller
    // publish it again; the default pair (30 s over 10 s) is fine.
    for sla in [
        "lease_seconds = 10\npublish_timeout_ms = 10000",
        "lease_seconds = 5\npublish_timeout_ms = 120000",
    ] {
        let message = error_of(&format!("{BASE}\n[sla]\n{sla}\n"), &[]);
        assert!(
            message.starts_with("invalid configuration in handoff.toml: sla.lease_seconds = "),
            "{message}"
        );
        assert!(message.contains("sla.publish_timeout_ms = "), "{message}");
        assert!(
            message.contains("allowed: lease_seconds * 1000 > publish_timeout_ms"),
            "{message}"
        );
    }
    let ok = format!("{BASE}\n[sla]\nlease_seconds = 11\npublish_timeout_ms = 10000\n");
    assert_eq!(error_of(&ok, &[]), "");
    assert_eq!(error_of(BASE, &[]), "", "the defaults pass");
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

const STRONG_SECRET: &str = "0123456789abcdef0123456789abcdef";

fn production_error(text: &str, env: &[(&str, &str)]) -> Option<String> {
    let settings = match parse_settings(Path::new("handoff.toml"), text, vars(env)) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    settings
        .check_production(Path::new("handoff.toml"))
        .err()
        .map(|e| e.to_string())
}

#[test]
fn a_missing_signing_secret_stops_a_deployment_naming_the_setting() {
    let message = production_error(BASE, &[]).unwrap_or_default();
    assert!(
        message.starts_with(
            "invalid configuration in handoff.toml: notifier.signing_secret is not set"
        ),
        "{message}"
    );
    assert!(
        message.contains("HANDOFF_NOTIFIER_SIGNING_SECRET"),
        "{message}"
    );
    let blank = format!("{BASE}\n[notifier]\nsigning_secret = \"  \"\n");
    assert!(production_error(&blank, &[]).is_some_and(|m| m.contains("is not set")));
}

#[test]
fn the_old_sample_secret_or_a_short_one_stops_a_deployment() {
    let sample = format!("{BASE}\n[notifier]\nsigning_secret = \"dev-only-secret\"\n");
    let message = production_error(&sample, &[]).unwrap_or_default();
    assert!(
        message.contains("notifier.signing_secret is a published sample value"),
        "{message}"
    );
    assert!(
        !message.contains("dev-only-secret"),
        "the secret is never echoed: {message}"
    );

    let short = production_error(
        BASE,
        &[("HANDOFF_NOTIFIER_SIGNING_SECRET", "s3cret-but-short")],
    )
    .unwrap_or_default();
    assert!(
        short.contains("notifier.signing_secret is 16 bytes"),
        "{short}"
    );
    assert!(short.contains("HANDOFF_NOTIFIER_SIGNING_SECRET"), "{short}");
    assert!(
        !short.contains("s3cret"),
        "the secret is never echoed: {short}"
    );
}

#[test]
fn a_strong_secret_from_the_environment_passes_the_shipped_config() {
    let shipped = include_str!("../../../deploy/config/handoff.toml");
    let message = production_error(shipped, &[]).unwrap_or_default();
    assert!(
        message.contains("notifier.signing_secret is not set"),
        "the sample ships no secret: {message}"
    );
    assert_eq!(
        production_error(
            shipped,
            &[("HANDOFF_NOTIFIER_SIGNING_SECRET", STRONG_SECRET)]
        ),
        None
    );
}

#[test]
fn private_webhook_targets_are_allowed_by_address_or_block_from_file_or_env() {
    let text =
        format!("{BASE}\n[notifier]\nallowed_private_targets = [\"127.0.0.1\", \"10.1.2.0/24\"]\n");
    let settings = match parse_settings(Path::new("handoff.toml"), &text, vars(&[])) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let shown: Vec<String> = settings
        .notifier
        .allowed_private_targets
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["127.0.0.1/32", "10.1.2.0/24"]);

    let from_env = parse_settings(
        Path::new("handoff.toml"),
        &text,
        vars(&[(
            "HANDOFF_NOTIFIER_ALLOWED_PRIVATE_TARGETS",
            "fd00::/8, 192.168.0.0/16",
        )]),
    );
    let blocks = from_env.map(|s| s.notifier.allowed_private_targets.len());
    assert_eq!(blocks.map_err(|e| e.to_string()), Ok(2));

    let bad = text.replace("10.1.2.0/24", "hooks.internal:8090");
    let message = parse_settings(Path::new("handoff.toml"), &bad, vars(&[]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("`hooks.internal:8090` is not an IP address or CIDR block"),
        "{message}"
    );
}

#[test]
fn sla_clocks_and_reminders_are_read_and_checked() {
    let text = format!(
        "{BASE}\n[sla]\nfirst_touch_clock = \"business_hours\"\ndisposition_from = \"assignment\"\ndisposition_seconds = 3600\nreminder_fractions = [0.25, 0.9]\n"
    );
    let settings = match parse_settings(Path::new("handoff.toml"), &text, vars(&[])) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let policy = settings.sla.policy();
    assert_eq!(
        policy.first_touch_clock,
        handoff_domain::sla::SlaClock::BusinessHours
    );
    assert_eq!(
        policy.disposition_clock,
        handoff_domain::sla::SlaClock::Wall
    );
    assert_eq!(policy.disposition_seconds, 3600);
    assert_eq!(settings.sla.reminder_fractions, vec![0.25, 0.9]);
    // Defaults: 48 hours from the first touch, reminders at half and 80%.
    let defaults = handoff_config::SlaSettings::default();
    assert_eq!(defaults.disposition_seconds, 48 * 3600);
    assert_eq!(defaults.reminder_fractions, vec![0.5, 0.8]);

    for (fractions, key) in [
        ("[0.5, 1.0]", "sla.reminder_fractions[1] = 1"),
        ("[0.0]", "sla.reminder_fractions[0] = 0"),
        ("[0.8, 0.5]", "sla.reminder_fractions must be ascending"),
    ] {
        let message = error_of(
            &format!("{BASE}\n[sla]\nreminder_fractions = {fractions}\n"),
            &[],
        );
        assert!(message.contains("handoff.toml"), "{message}");
        assert!(message.contains(key), "{message}");
        assert!(message.contains("strictly between 0 and 1"), "{message}");
    }
    let message = error_of(
        &format!("{BASE}\n[sla]\ndisposition_clock = \"lunar\"\n"),
        &[],
    );
    assert!(
        message.contains("unknown variant `lunar`, expected `wall` or `business_hours`"),
        "{message}"
    );
}

#[test]
fn notifier_retry_and_circuit_settings_have_defaults_and_are_read() {
    let defaults = parse_settings(Path::new("handoff.toml"), BASE, vars(&[]))
        .unwrap_or_else(|e| panic!("{e}"))
        .notifier;
    assert_eq!(defaults.max_age_seconds, 3_600);
    assert_eq!(defaults.breaker_threshold, 5);
    assert_eq!(defaults.per_destination_concurrency, 8);
    assert!(defaults.claim_lease_ms > defaults.timeout_ms);
    assert!(defaults.dedup_window_seconds >= defaults.max_age_seconds);

    let text = format!(
        "{BASE}\n[notifier]\nmax_age_seconds = 600\nbreaker_threshold = 3\nbreaker_cooldown_ms = 10000\ndedup_window_seconds = 86400\nretry_poll_interval_ms = 100\nclaim_lease_ms = 20000\nper_destination_concurrency = 4\n"
    );
    let notifier = parse_settings(Path::new("handoff.toml"), &text, vars(&[]))
        .unwrap_or_else(|e| panic!("{e}"))
        .notifier;
    assert_eq!(notifier.max_age_seconds, 600);
    assert_eq!(notifier.breaker_threshold, 3);
    assert_eq!(notifier.breaker_cooldown_ms, 10_000);
    assert_eq!(notifier.claim_lease_ms, 20_000);
    assert_eq!(notifier.per_destination_concurrency, 4);
}

#[test]
fn notifier_settings_that_contradict_each_other_are_rejected_naming_both_keys() {
    let cases = [
        (
            "breaker_threshold = 0",
            "notifier.breaker_threshold must be greater than 0",
        ),
        (
            "timeout_ms = 5000\nclaim_lease_ms = 5000",
            "notifier.claim_lease_ms (5000) must be more than notifier.timeout_ms (5000)",
        ),
        (
            "max_age_seconds = 7200\ndedup_window_seconds = 3600",
            "notifier.dedup_window_seconds (3600) must be at least notifier.max_age_seconds (7200)",
        ),
        (
            "initial_backoff_ms = 2000\nmax_backoff_ms = 1000",
            "notifier.max_backoff_ms (1000) must be at least notifier.initial_backoff_ms (2000)",
        ),
        (
            "concurrency = 4\nper_destination_concurrency = 8",
            "notifier.per_destination_concurrency (8) must be at most notifier.concurrency (4)",
        ),
    ];
    for (keys, expected) in cases {
        let message = error_of(&format!("{BASE}\n[notifier]\n{keys}\n"), &[]);
        assert!(
            message.starts_with("invalid configuration in handoff.toml: ")
                && message.contains(expected),
            "{keys}: {message}"
        );
    }
}

#[test]
fn action_links_need_their_key_from_the_variable_the_file_names() {
    let signing = ("HANDOFF_NOTIFIER_SIGNING_SECRET", STRONG_SECRET);
    // Off (no public URL): nothing is needed.
    assert_eq!(production_error(BASE, &[signing]), None);
    let on = format!("{BASE}\n[actions]\npublic_url = \"https://leads.example.com\"\n");
    let message = production_error(&on, &[signing]).unwrap_or_default();
    assert!(
        message.contains("actions.secret_env: HANDOFF_ACTION_LINK_SECRET is not set"),
        "{message}"
    );
    assert_eq!(
        production_error(
            &on,
            &[signing, ("HANDOFF_ACTION_LINK_SECRET", STRONG_SECRET)]
        ),
        None
    );
    let named = format!("{on}secret_env = \"LINKS_KEY\"\nttl_seconds = 3600\n");
    let short = production_error(&named, &[signing, ("LINKS_KEY", "tiny-key")]).unwrap_or_default();
    assert!(
        short.contains("LINKS_KEY holds 8 bytes") && !short.contains("tiny-key"),
        "{short}"
    );
    assert_eq!(
        production_error(&named, &[signing, ("LINKS_KEY", STRONG_SECRET)]),
        None
    );
    let bad = format!("{BASE}\n[actions]\npublic_url = \"leads.example.com\"\n");
    assert!(error_of(&bad, &[]).contains("actions.public_url must start with http:// or https://"));
}

#[test]
fn a_static_member_id_from_the_environment_names_each_role_apart() {
    let settings = match parse_settings(
        Path::new("handoff.toml"),
        BASE,
        vars(&[("HANDOFF_KAFKA_GROUP_INSTANCE_ID", "router-7f9c-x2")]),
    ) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        settings.kafka.group_instance_id_for("router").as_deref(),
        Some("router-7f9c-x2-router")
    );
    assert_eq!(
        settings.kafka.group_instance_id_for("sla").as_deref(),
        Some("router-7f9c-x2-sla")
    );
    // A number-looking pod name stays a name.
    let numeric = parse_settings(
        Path::new("handoff.toml"),
        BASE,
        vars(&[("HANDOFF_KAFKA_GROUP_INSTANCE_ID", "12345")]),
    )
    .map(|s| s.kafka.group_instance_id_for("router"));
    assert_eq!(numeric.ok().flatten().as_deref(), Some("12345-router"));
}

#[test]
fn without_a_static_member_id_membership_stays_dynamic() {
    let settings = match parse_settings(Path::new("handoff.toml"), BASE, vars(&[])) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(settings.kafka.group_instance_id_for("router"), None);
    assert_eq!(
        settings.kafka.group_protocol,
        handoff_config::GroupProtocol::Classic
    );
}

#[test]
fn a_static_member_id_under_the_kip_848_protocol_is_refused() {
    let text = BASE.replace(
        "[redis]",
        "group_instance_id = \"router-0\"\ngroup_protocol = \"consumer\"\n[redis]",
    );
    let message = error_of(&text, &[]);
    assert!(
        message.contains("kafka.group_instance_id cannot be used with kafka.group_protocol"),
        "{message}"
    );
    let empty = BASE.replace("[redis]", "group_instance_id = \" \"\n[redis]");
    assert!(error_of(&empty, &[]).contains("kafka.group_instance_id must not be empty"));
}
