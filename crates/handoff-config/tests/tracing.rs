//! `[tracing]`: span export is off unless an endpoint is configured; bad values are
//! configuration errors naming the key (or the variable).

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use std::path::Path;

use handoff_config::{parse_settings, Settings, TracingSettings};

const BASE: &str = r#"
rules_file = "rules.toml"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[redis]
url = "redis://127.0.0.1:6379"
"#;

fn parse(text: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
    let vars = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<Vec<_>>();
    parse_settings(Path::new("handoff.toml"), text, vars).map_err(|e| e.to_string())
}

fn with_tracing(body: &str) -> String {
    format!("{BASE}\n[tracing]\n{body}\n")
}

#[test]
fn without_an_endpoint_nothing_is_exported() {
    let settings = parse(BASE, &[]).unwrap();
    assert_eq!(settings.tracing, TracingSettings::default());
    assert_eq!(settings.tracing.otlp_endpoint, None);
    assert_eq!(settings.tracing.sample_ratio, 1.0);
    // An empty section is the same.
    let settings = parse(&with_tracing(""), &[]).unwrap();
    assert_eq!(settings.tracing.otlp_endpoint, None);
}

#[test]
fn the_endpoint_service_name_and_ratio_are_read_from_file_and_environment() {
    let settings = parse(
        &with_tracing(
            "otlp_endpoint = \"http://collector:4318\"\nservice_name = \"leads\"\nsample_ratio = 0.25",
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        settings.tracing.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );
    assert_eq!(settings.tracing.service_name.as_deref(), Some("leads"));
    assert_eq!(settings.tracing.sample_ratio, 0.25);

    let settings = parse(
        BASE,
        &[
            (
                "HANDOFF_TRACING_OTLP_ENDPOINT",
                "https://otel.internal:4318/",
            ),
            ("HANDOFF_TRACING_SAMPLE_RATIO", "0.5"),
        ],
    )
    .unwrap();
    assert_eq!(
        settings.tracing.otlp_endpoint.as_deref(),
        Some("https://otel.internal:4318/")
    );
    assert_eq!(settings.tracing.sample_ratio, 0.5);
    let whole = parse(BASE, &[("HANDOFF_TRACING_SAMPLE_RATIO", "1")]).unwrap();
    assert_eq!(whole.tracing.sample_ratio, 1.0);
}

#[test]
fn the_standard_otel_variables_apply_when_the_configuration_is_silent() {
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://agent:4318"),
        ("OTEL_SERVICE_NAME", "handoff-eu"),
    ];
    let settings = parse(BASE, &env).unwrap();
    assert_eq!(
        settings.tracing.otlp_endpoint.as_deref(),
        Some("http://agent:4318")
    );
    assert_eq!(settings.tracing.service_name.as_deref(), Some("handoff-eu"));
    // The file (or HANDOFF_TRACING_*) wins.
    let settings = parse(
        &with_tracing("otlp_endpoint = \"http://collector:4318\"\nservice_name = \"mine\""),
        &env,
    )
    .unwrap();
    assert_eq!(
        settings.tracing.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );
    assert_eq!(settings.tracing.service_name.as_deref(), Some("mine"));
    let error = parse(BASE, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
    assert!(error.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{error}");
    assert!(error.contains("http://"), "{error}");
}

#[test]
fn a_bad_endpoint_is_a_configuration_error_naming_the_key() {
    for bad in [
        "collector:4318",
        "grpc://collector:4317",
        "http://",
        "http:///v1",
        "http://collector :4318",
        "http://collector:4318/v1/traces",
        "http://collector:4318?x=1",
    ] {
        let error = parse(&with_tracing(&format!("otlp_endpoint = {bad:?}")), &[]).unwrap_err();
        assert!(error.contains("handoff.toml"), "{bad}: {error}");
        assert!(error.contains("tracing.otlp_endpoint"), "{bad}: {error}");
        assert!(error.contains("allowed:"), "{bad}: {error}");
    }
    let error = parse(BASE, &[("HANDOFF_TRACING_OTLP_ENDPOINT", "localhost:4318")]).unwrap_err();
    assert!(error.contains("tracing.otlp_endpoint"), "{error}");
}

#[test]
fn a_ratio_outside_zero_to_one_or_an_empty_name_is_refused_naming_the_key() {
    for bad in ["1.5", "-0.1", "\"half\"", "nan"] {
        let error = parse(&with_tracing(&format!("sample_ratio = {bad}")), &[]).unwrap_err();
        assert!(error.contains("tracing.sample_ratio"), "{bad}: {error}");
    }
    let error = parse(BASE, &[("HANDOFF_TRACING_SAMPLE_RATIO", "often")]).unwrap_err();
    assert!(error.contains("tracing.sample_ratio"), "{error}");
    let error = parse(&with_tracing("service_name = \" \""), &[]).unwrap_err();
    assert!(error.contains("tracing.service_name"), "{error}");
    let error = parse(&with_tracing("endpoint = \"http://x:4318\""), &[]).unwrap_err();
    assert!(error.contains("endpoint"), "{error}");
}
