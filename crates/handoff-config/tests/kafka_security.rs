//! `[kafka.security]`: the librdkafka properties each key becomes, and the errors a
//! setting that cannot work gets, naming the key and what is allowed.

use std::path::Path;

use handoff_config::{parse_settings, Settings};

const BASE: &str = r#"
rules_file = "rules.toml"
[kafka]
bootstrap_servers = "broker:9093"
[redis]
url = "redis://127.0.0.1:6379"
"#;

fn parse(security: &str) -> Result<Settings, String> {
    parse_settings(
        Path::new("handoff.toml"),
        &format!("{BASE}[kafka.security]\n{security}"),
        Vec::new(),
    )
    .map_err(|e| e.to_string())
}

fn properties(security: &str) -> Vec<(String, String)> {
    match parse(security) {
        Ok(settings) => settings
            .kafka
            .security
            .client_properties()
            .into_iter()
            .map(|p| (p.name.to_owned(), p.value))
            .collect(),
        Err(e) => panic!("{e}"),
    }
}

fn error(security: &str) -> String {
    match parse(security) {
        Ok(_) => panic!("accepted: {security}"),
        Err(e) => e,
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn scram_over_tls_with_a_private_ca_maps_onto_librdkafka() {
    let got = properties(
        r#"protocol = "sasl_ssl"
mechanism = "scram-sha-512"
username = "handoff-router"
password = "s3cret"
ca_file = "/etc/handoff/kafka-ca.pem"
"#,
    );
    assert_eq!(
        got,
        pairs(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "handoff-router"),
            ("sasl.password", "s3cret"),
            ("ssl.ca.location", "/etc/handoff/kafka-ca.pem"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ])
    );
}

#[test]
fn tls_without_a_ca_file_uses_the_system_roots() {
    let got = properties("protocol = \"SASL_SSL\"\nmechanism = \"PLAIN\"\nusername = \"KEY\"\npassword = \"SECRET\"\n");
    assert!(got.contains(&("security.protocol".to_owned(), "SASL_SSL".to_owned())));
    assert!(got.contains(&("sasl.mechanism".to_owned(), "PLAIN".to_owned())));
    assert!(got.contains(&("ssl.ca.location".to_owned(), "probe".to_owned())));
}

#[test]
fn mutual_tls_maps_the_client_certificate_and_key() {
    let got = properties(
        r#"protocol = "ssl"
ca_file = "/ca.pem"
cert_file = "/client.pem"
key_file = "/client.key"
key_password = "k"
verify_hostname = false
"#,
    );
    assert_eq!(
        got,
        pairs(&[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", "/ca.pem"),
            ("ssl.endpoint.identification.algorithm", "none"),
            ("ssl.certificate.location", "/client.pem"),
            ("ssl.key.location", "/client.key"),
            ("ssl.key.password", "k"),
        ])
    );
}

#[test]
fn oauthbearer_is_the_oidc_client_credentials_flow() {
    let got = properties(
        r#"protocol = "sasl_ssl"
mechanism = "oauthbearer"
oauth_token_url = "https://idp.example.com/oauth2/token"
oauth_client_id = "handoff"
oauth_client_secret = "cs"
oauth_scope = "kafka"
oauth_extensions = "logicalCluster=lkc-1,identityPoolId=pool-1"
"#,
    );
    for expected in pairs(&[
        ("sasl.mechanism", "OAUTHBEARER"),
        ("sasl.oauthbearer.method", "oidc"),
        (
            "sasl.oauthbearer.token.endpoint.url",
            "https://idp.example.com/oauth2/token",
        ),
        ("sasl.oauthbearer.client.id", "handoff"),
        ("sasl.oauthbearer.client.secret", "cs"),
        ("sasl.oauthbearer.scope", "kafka"),
        (
            "sasl.oauthbearer.extensions",
            "logicalCluster=lkc-1,identityPoolId=pool-1",
        ),
    ]) {
        assert!(got.contains(&expected), "{expected:?} not in {got:?}");
    }
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let settings = parse(
        "protocol = \"sasl_ssl\"\nmechanism = \"plain\"\nusername = \"u\"\npassword = \"hunter2-password\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{:?}", settings.kafka);
    assert!(!debug.contains("hunter2-password"), "{debug}");
    let properties = format!("{:?}", settings.kafka.security.client_properties());
    assert!(!properties.contains("hunter2-password"), "{properties}");
}

#[test]
fn no_security_section_sets_nothing() {
    let settings = parse_settings(Path::new("handoff.toml"), BASE, Vec::new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(settings.kafka.security.client_properties().is_empty());
}

#[test]
fn misconfigurations_name_the_key_and_what_is_allowed() {
    let cases = [
        (
            "protocol = \"tls\"\n",
            "kafka.security.protocol: unknown value \"tls\", expected one of plaintext, ssl, sasl_plaintext, sasl_ssl",
        ),
        (
            "protocol = \"sasl_ssl\"\nmechanism = \"gssapi\"\n",
            "kafka.security.mechanism: unknown value \"gssapi\", expected one of plain, scram-sha-256, scram-sha-512, oauthbearer",
        ),
        (
            "protocol = \"sasl_ssl\"\n",
            "kafka.security.mechanism is required with protocol sasl_ssl",
        ),
        (
            "protocol = \"sasl_ssl\"\nmechanism = \"scram-sha-256\"\nusername = \"u\"\n",
            "kafka.security.password is empty: mechanism scram-sha-256 needs it",
        ),
        (
            "protocol = \"sasl_ssl\"\nmechanism = \"plain\"\npassword = \"p\"\n",
            "kafka.security.username is required with mechanism plain",
        ),
        (
            "protocol = \"ssl\"\nmechanism = \"plain\"\n",
            "kafka.security.mechanism = \"plain\" needs protocol sasl_ssl or sasl_plaintext",
        ),
        (
            "protocol = \"sasl_plaintext\"\nmechanism = \"plain\"\nusername = \"u\"\npassword = \"p\"\nca_file = \"/ca.pem\"\n",
            "kafka.security.ca_file needs protocol ssl or sasl_ssl",
        ),
        (
            "protocol = \"ssl\"\ncert_file = \"/c.pem\"\n",
            "kafka.security.cert_file is set without kafka.security.key_file",
        ),
        (
            "protocol = \"sasl_ssl\"\nmechanism = \"oauthbearer\"\noauth_client_id = \"c\"\noauth_client_secret = \"s\"\n",
            "kafka.security.oauth_token_url must be the identity provider's http(s) token endpoint",
        ),
        (
            "protocol = \"sasl_ssl\"\nmechanism = \"oauthbearer\"\noauth_token_url = \"https://idp/t\"\noauth_client_id = \"c\"\n",
            "kafka.security.oauth_client_secret is empty",
        ),
        (
            "protocol = \"sasl_ssl\"\nmechanism = \"plain\"\nusername = \"u\"\npassword = \"p\"\noauth_scope = \"x\"\n",
            "kafka.security.oauth_scope is used only with mechanism oauthbearer",
        ),
        ("username = \"u\"\n", "kafka.security.username needs kafka.security.mechanism"),
        ("port = 1\n", "unknown field `port`"),
    ];
    for (security, expected) in cases {
        let message = error(security);
        assert!(message.contains(expected), "{security:?}: {message}");
        assert!(message.contains("handoff.toml"), "{message}");
    }
}

#[test]
fn the_same_property_in_kafka_client_is_refused() {
    let text = format!(
        "{BASE}[kafka.security]\nprotocol = \"ssl\"\n[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n"
    );
    let message = parse_settings(Path::new("handoff.toml"), &text, Vec::new())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message
            .contains("kafka.client.\"security.protocol\" conflicts with kafka.security.protocol"),
        "{message}"
    );
    // Without [kafka.security], [kafka.client] still carries them as before.
    let text = format!("{BASE}[kafka.client]\n\"security.protocol\" = \"SSL\"\n");
    assert!(parse_settings(Path::new("handoff.toml"), &text, Vec::new()).is_ok());
}
