//! `[kafka.security]` against a broker that asks for it, as a managed Kafka does: TLS
//! (through stunnel, with a private CA, and mutual TLS), SASL SCRAM-SHA-256/512 (Tansu's
//! own), and what the start-up check says when the password or the CA is wrong. Each test
//! starts a broker of its own (`SecureBroker`), since it turns authentication on.
//!
//! No broker here speaks SASL PLAIN or OAUTHBEARER: for those the tests go as far as a
//! client can without one (the broker refusing the mechanism is reported as such; the OIDC
//! client-credentials request reaches a local token endpoint with the configured client).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use handoff_domain::events::EventKind;
use handoff_e2e::secure_broker::{BrokerSecurity, ScramUser, SecureBroker};
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{
    config_env, handoff_binary, qualified_lead, unique_id, write_config, StackOptions, TestEnv,
};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::{check_connection, KafkaError, Topics};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(90);
const PASSWORD: &str = "correct-horse-battery-staple";

fn user(mechanism: &'static str, name: &str) -> ScramUser {
    ScramUser {
        mechanism,
        name: name.to_owned(),
        password: PASSWORD.to_owned(),
    }
}

/// `[kafka.security]` as the README's managed-Kafka example has it (SCRAM over TLS with a
/// private CA), for `broker`.
fn sasl_ssl(broker: &SecureBroker, username: &str, password: &str) -> String {
    format!(
        "[kafka.security]\nprotocol = \"sasl_ssl\"\nmechanism = \"scram-sha-512\"\nusername = \"{username}\"\npassword = \"{password}\"\nca_file = \"{}\"\n",
        broker.ca_file().display()
    )
}

/// A test's configuration file against `bootstrap`, with `security` appended.
fn config(bootstrap: &str, security: &str) -> (String, PathBuf, StackOptions) {
    let env = TestEnv {
        kafka: bootstrap.to_owned(),
        ..TestEnv::from_env()
    };
    let id = unique_id();
    let options = StackOptions {
        extra_config: security.to_owned(),
        ..StackOptions::default()
    };
    let path = write_config(&env, &id, &options);
    (id, path, options)
}

fn spawn_handoff(config: &Path, port: u16) -> Child {
    Command::new(handoff_binary())
        .args(["all", "--config"])
        .arg(config)
        .env("HANDOFF_INGEST_LISTEN", format!("127.0.0.1:{port}"))
        .envs(config_env(&StackOptions::default()))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("handoff all starts")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Runs `handoff all` with `config`, which must not start: returns its exit code and what
/// it printed.
async fn failed_start(config: &Path) -> (Option<i32>, String) {
    let mut child = spawn_handoff(config, free_port());
    let stdout = handoff_e2e::collect_output(child.stdout.take().unwrap());
    let stderr = handoff_e2e::collect_output(child.stderr.take().unwrap());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("handoff all gave up within the deadline")
        .unwrap();
    let mut output = String::from_utf8_lossy(&stderr.await.unwrap()).into_owned();
    output.push_str(&String::from_utf8_lossy(&stdout.await.unwrap()));
    (status.code(), output)
}

/// `handoff all` with `config` takes a lead over HTTP and assigns it: `lead.assigned` is
/// read back through the same secured broker by a consumer made from the same settings.
async fn lead_flows(config: &Path, id: &str, options: &StackOptions) {
    let port = free_port();
    let mut child = spawn_handoff(config, port);
    let stderr = handoff_e2e::collect_output(child.stderr.take().unwrap());
    let api = format!("http://127.0.0.1:{port}");
    let ready = tokio::time::timeout(WAIT, handoff_e2e::until_ready(&api, WAIT)).await;
    if ready.is_err() || child.try_wait().unwrap().is_some() {
        child.kill().await.ok();
        panic!(
            "handoff all did not become ready: {}",
            String::from_utf8_lossy(&stderr.await.unwrap())
        );
    }
    let response = handoff_e2e::client()
        .post(format!("{api}/v1/leads"))
        .json(&qualified_lead(1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let lead = body["lead_id"].as_str().unwrap().to_owned();
    let loaded = handoff_config::load(config, config_env(options)).unwrap();
    let topics = Topics::new(format!("{id}."));
    let mut reader =
        TopicReader::with_settings(&loaded.settings.kafka, &topics.of(EventKind::LeadAssigned));
    reader
        .read_until(WAIT, "lead.assigned over the secured broker", |records| {
            records
                .iter()
                .any(|r| r.key.as_deref() == Some(lead.as_str()))
        })
        .await;
    let pid = child.id().unwrap().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "handoff all stopped with {status}");
}

#[tokio::test]
async fn sasl_scram_over_tls_as_in_the_readme_carries_a_lead() {
    let broker = SecureBroker::start(BrokerSecurity {
        users: vec![user("scram512", "handoff")],
        tls: true,
        ..BrokerSecurity::default()
    })
    .await;
    let (id, path, options) = config(&broker.bootstrap(), &sasl_ssl(&broker, "handoff", PASSWORD));
    lead_flows(&path, &id, &options).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_wrong_password_stops_start_up_saying_authentication_failed() {
    let broker = SecureBroker::start(BrokerSecurity {
        users: vec![user("scram512", "handoff")],
        tls: true,
        ..BrokerSecurity::default()
    })
    .await;
    let (_, path, _) = config(
        &broker.bootstrap(),
        &sasl_ssl(&broker, "handoff", "not-the-password"),
    );
    let (code, output) = failed_start(&path).await;
    assert_eq!(code, Some(1), "{output}");
    let expected = format!("authentication failed at broker {}", broker.bootstrap());
    assert!(output.contains(&expected), "{expected:?} not in: {output}");
    assert!(
        !output.contains("not-the-password"),
        "the password was printed: {output}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_broker_certificate_from_another_ca_stops_start_up_saying_tls_failed() {
    let broker = SecureBroker::start(BrokerSecurity {
        tls: true,
        ..BrokerSecurity::default()
    })
    .await;
    let security = format!(
        "[kafka.security]\nprotocol = \"ssl\"\nca_file = \"{}\"\n",
        broker.other_ca_file().display()
    );
    let (_, path, _) = config(&broker.bootstrap(), &security);
    let (code, output) = failed_start(&path).await;
    assert_eq!(code, Some(1), "{output}");
    let expected = format!("TLS handshake failed with broker {}", broker.bootstrap());
    assert!(output.contains(&expected), "{expected:?} not in: {output}");
    assert!(output.contains("certificate verify failed"), "{output}");
    broker.stop().await;
}

#[tokio::test]
async fn an_unreadable_ca_file_stops_start_up_naming_the_key() {
    let (_, path, _) = config(
        &TestEnv::from_env().kafka,
        "[kafka.security]\nprotocol = \"ssl\"\nca_file = \"/nonexistent/ca.pem\"\n",
    );
    let (code, output) = failed_start(&path).await;
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("kafka.security.ca_file: cannot read /nonexistent/ca.pem"),
        "{output}"
    );
}

#[tokio::test]
async fn mutual_tls_with_a_client_certificate_carries_a_lead() {
    let broker = SecureBroker::start(BrokerSecurity {
        tls: true,
        require_client_cert: true,
        ..BrokerSecurity::default()
    })
    .await;
    let security = format!(
        "[kafka.security]\nprotocol = \"ssl\"\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        broker.ca_file().display(),
        broker.client_cert_file().display(),
        broker.client_key_file().display(),
    );
    let (id, path, options) = config(&broker.bootstrap(), &security);
    lead_flows(&path, &id, &options).await;

    // Without a certificate the broker refuses the session (after the TLS 1.3 handshake,
    // with an alert): the start-up check says so instead of "unreachable".
    let kafka = kafka_settings(
        &broker.bootstrap(),
        &format!(
            "[kafka.security]\nprotocol = \"ssl\"\nca_file = \"{}\"\n",
            broker.ca_file().display()
        ),
    );
    let error = check_connection(&kafka, "handoff.lead.created", Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(
        matches!(error, KafkaError::TlsHandshakeFailed { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("certificate required"),
        "{error}"
    );
    broker.stop().await;
}

/// The Kafka settings of a configuration with `security` against `bootstrap`.
fn kafka_settings(bootstrap: &str, security: &str) -> handoff_config::KafkaSettings {
    let (_, path, options) = config(bootstrap, security);
    handoff_config::load(&path, config_env(&options))
        .unwrap()
        .settings
        .kafka
}

#[tokio::test]
async fn scram_sha_256_without_tls_creates_topics_produces_and_consumes() {
    let broker = SecureBroker::start(BrokerSecurity {
        users: vec![user("scram256", "router")],
        ..BrokerSecurity::default()
    })
    .await;
    let security = |mechanism: &str, password: &str| {
        format!(
            "[kafka.security]\nprotocol = \"sasl_plaintext\"\nmechanism = \"{mechanism}\"\nusername = \"router\"\npassword = \"{password}\"\n"
        )
    };
    let kafka = kafka_settings(&broker.bootstrap(), &security("scram-sha-256", PASSWORD));
    let topics = Topics::new(kafka.topic_prefix.clone());
    let topic = topics.of(EventKind::LeadCreated);
    check_connection(&kafka, &topic, Duration::from_secs(20))
        .await
        .unwrap();
    // The admin client (topic creation), a producer and a consumer, all from `kafka`.
    handoff_kafka::ensure_topics(&kafka, &topics).await.unwrap();
    let producer: FutureProducer = handoff_kafka::producer_config(&kafka, "test")
        .unwrap()
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("lead-1").payload("{}"),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let mut reader = TopicReader::with_settings(&kafka, &topic);
    reader
        .read_until(WAIT, "the record back", |records| !records.is_empty())
        .await;

    // A wrong password, and a mechanism the broker does not offer, are both named.
    for (mechanism, password) in [("scram-sha-256", "wrong"), ("plain", PASSWORD)] {
        let kafka = kafka_settings(&broker.bootstrap(), &security(mechanism, password));
        let error = check_connection(&kafka, &topic, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(
            matches!(error, KafkaError::AuthenticationFailed { ref broker, .. } if broker.ends_with(&kafka.bootstrap_servers)),
            "{mechanism}: {error}"
        );
    }
    broker.stop().await;
}

/// What the token endpoint was asked.
#[derive(Debug, Clone, Default)]
struct TokenRequest {
    authorization: String,
    body: String,
}

#[tokio::test]
async fn oauthbearer_asks_the_token_endpoint_with_the_client_credentials() {
    let seen: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/oauth2/token",
        post(move |headers: HeaderMap, body: String| {
            let record = record.clone();
            async move {
                let authorization = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                record.lock().unwrap().push(TokenRequest {
                    authorization,
                    body,
                });
                // An unsigned JWT (librdkafka reads its `exp` and `sub`, it does not
                // verify it: the broker does).
                let part = |json: &str| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
                };
                let exp = chrono::Utc::now().timestamp() + 3600;
                let token = format!(
                    "{}.{}.",
                    part(r#"{"alg":"none"}"#),
                    part(&format!(r#"{{"sub":"handoff","exp":{exp}}}"#))
                );
                axum::Json(serde_json::json!({
                    "access_token": token, "token_type": "bearer", "expires_in": 3600
                }))
            }
        }),
    );
    let (idp, stop_idp) = handoff_e2e::serve_local(app).await.unwrap();
    // The broker authenticates (SCRAM only): it refuses the OAUTHBEARER handshake.
    let broker = SecureBroker::start(BrokerSecurity {
        users: vec![user("scram512", "someone")],
        ..BrokerSecurity::default()
    })
    .await;
    let security = format!(
        "[kafka.security]\nprotocol = \"sasl_plaintext\"\nmechanism = \"oauthbearer\"\noauth_token_url = \"{idp}/oauth2/token\"\noauth_client_id = \"handoff-client\"\noauth_client_secret = \"client-secret-1\"\noauth_scope = \"kafka\"\n"
    );
    let (_, path, _) = config(&broker.bootstrap(), &security);
    let (code, output) = failed_start(&path).await;
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("authentication failed"), "{output}");
    assert!(!output.contains("client-secret-1"), "{output}");
    let requests = seen.lock().unwrap().clone();
    let first = requests.first().expect("a token request");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("handoff-client:client-secret-1");
    assert_eq!(first.authorization, format!("Basic {basic}"));
    assert!(
        first.body.contains("grant_type=client_credentials"),
        "{first:?}"
    );
    assert!(first.body.contains("scope=kafka"), "{first:?}");
    stop_idp.cancel();
    broker.stop().await;
}
