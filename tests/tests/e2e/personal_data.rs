use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use handoff_domain::events::EventKind;
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{
    eventually, handoff_binary, post_json, unique_id, write_config, StackOptions, TestEnv,
};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use handoff_kafka::Topics;
use serde_json::{json, Value};
use tokio::process::Command;

/// The person every request below is about. Distinctive, so a hit is never a coincidence.
const FIRST_NAME: &str = "Zephyrine";
const LAST_NAME: &str = "Quillfeather";
const EMAIL: &str = "zephyrine.quillfeather@acme-probe.io";
const PHONE: &str = "+49 170 7731 9468";
/// What must never appear in a log line, in any spelling ingest or a serializer may produce.
const NEVER_LOGGED: &[&str] = &[
    FIRST_NAME,
    LAST_NAME,
    EMAIL,
    "zephyrine.quillfeather",
    PHONE,
    "77319468",
    "7731 9468",
    "1707731",
];

/// Every service of `handoff all`, at debug level, in text and in JSON, through the suite's
/// kinds of traffic: leads as JSON and as form posts, leads refused with 400 and 422,
/// dispositions (valid, invalid, for an unknown lead), webhook deliveries (retried, and
/// refused by the receiver: dead-lettered), poison and contract-invalid events from another
/// producer (dead-lettered), and an SLA breach. No log line carries the person's email,
/// phone number or names in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_email_phone_or_name_reaches_the_text_logs() {
    assert_logs_hold_no_personal_data("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_email_phone_or_name_reaches_the_json_logs() {
    assert_logs_hold_no_personal_data("json").await;
}

async fn assert_logs_hold_no_personal_data(format: &str) {
    let logs = run_traffic(format).await;
    // Not vacuous: the lines about this traffic are there.
    for expected in [
        "lead accepted",
        "lead assigned",
        "first-touch SLA breached",
        "event dead-lettered",
        "webhook delivery failed; retrying",
        "webhook delivery gave up",
        "disposition recorded",
        // A debug line: the permissive level is in force.
        "webhook delivered",
    ] {
        assert!(
            logs.contains(expected),
            "the {format} logs lack `{expected}`:\n{logs}"
        );
    }
    let lower = logs.to_lowercase();
    let leaks: Vec<String> = logs
        .lines()
        .filter(|line| {
            let line = line.to_lowercase();
            NEVER_LOGGED
                .iter()
                .any(|pii| line.contains(&pii.to_lowercase()))
        })
        .map(str::to_owned)
        .collect();
    assert!(
        leaks.is_empty(),
        "personal data in the {format} logs ({} of {} lines):\n{}",
        leaks.len(),
        lower.lines().count(),
        leaks.join("\n")
    );
}

/// A receiver that fails a rep's first delivery (retried) and refuses every team delivery
/// (the breach: permanent, dead-lettered).
async fn start_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = received.clone();
    let app = Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let mut seen = seen.lock().unwrap();
            seen.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            if uri.path() == "/hooks/team" {
                StatusCode::GONE
            } else if seen.len() == 1 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Runs `handoff all` through the traffic; returns everything it wrote (stdout and stderr).
async fn run_traffic(format: &str) -> String {
    let env = TestEnv::from_env();
    let id = unique_id();
    let (webhooks, received) = start_receiver().await;
    let options = StackOptions {
        first_touch_seconds: 2,
        webhook_base: Some(webhooks),
        ..StackOptions::default()
    };
    let config = write_config(&env, &id, &options);
    let port = free_port();
    let level = "debug,rdkafka=info";
    let mut child = Command::new(handoff_binary())
        .args(["all", "--config"])
        .arg(&config)
        .env("HANDOFF_INGEST_LISTEN", format!("127.0.0.1:{port}"))
        .env("HANDOFF_LOG_FORMAT", format)
        .env("HANDOFF_LOG_LEVEL", level)
        .env("RUST_LOG", level)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("handoff all starts");
    let out = handoff_e2e::collect_output(child.stdout.take().unwrap());
    let err = handoff_e2e::collect_output(child.stderr.take().unwrap());

    let api = format!("http://127.0.0.1:{port}");
    let client = handoff_e2e::client();
    handoff_e2e::until_ready(&api, Duration::from_secs(60)).await;
    let topics = Topics::new(format!("{id}."));

    // Leads over HTTP: JSON and a form post.
    let lead = json!({
        "contact": { "email": EMAIL, "first_name": FIRST_NAME, "last_name": LAST_NAME,
                     "phone": PHONE, "title": "VP Sales" },
        "company": { "name": "Acme", "country": "DE", "employees": 300 },
        "custom": { "assistant": format!("{FIRST_NAME} {LAST_NAME}") },
    });
    let (status, body) = post_json(&client, &format!("{api}/v1/leads"), &lead).await;
    assert_eq!(status, 202, "{body}");
    let lead_id = body["lead_id"].as_str().unwrap().to_owned();
    let form = [
        ("email", EMAIL.replace("zephyrine", "zephyrine.form")),
        ("first_name", FIRST_NAME.to_owned()),
        ("last_name", LAST_NAME.to_owned()),
        ("phone", PHONE.to_owned()),
        ("title", "Director".to_owned()),
        ("country", "DE".to_owned()),
    ];
    let response = client
        .post(format!("{api}/v1/leads"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // Refused leads whose errors could echo the values.
    let refused: [(&str, Vec<u8>); 6] = [
        (
            "application/json",
            serde_json::to_vec(&json!({ "contact": { "email": format!("{FIRST_NAME} {LAST_NAME} <{EMAIL}"), "phone": format!("call {PHONE} {FIRST_NAME}") } }))
                .unwrap(),
        ),
        (
            "application/json",
            serde_json::to_vec(&json!({ "contact": { "email": EMAIL }, "company": { "employees": format!("{LAST_NAME} {PHONE}") } }))
                .unwrap(),
        ),
        (
            "application/json",
            serde_json::to_vec(&json!({ "contact": { "email": EMAIL, "phone": 4917077319468_u64 } }))
                .unwrap(),
        ),
        (
            "application/json",
            format!("{{\"contact\": {{\"email\": \"{EMAIL}\"}}, \"{LAST_NAME}\": \"{FIRST_NAME}\"}}")
                .into_bytes(),
        ),
        (
            "application/json",
            format!("{{\"contact\": {{\"email\": \"{EMAIL}\", \"first_name\": {FIRST_NAME}").into_bytes(),
        ),
        (
            "application/x-www-form-urlencoded",
            format!("email={FIRST_NAME}&phone={LAST_NAME}&employees={PHONE}").into_bytes(),
        ),
    ];
    for (content_type, body) in refused {
        let response = client
            .post(format!("{api}/v1/leads"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status == 400 || status == 422,
            "a bad lead is refused: {status}"
        );
    }

    // Poison from another producer: not JSON, the wrong type, a lead ingest would refuse.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka)
        .create()
        .unwrap();
    let poison = [
        format!("{EMAIL} {PHONE} is not json").into_bytes(),
        serde_json::to_vec(
            &json!({ "id": "crm-pii-1", "received_at": "2026-11-22T10:00:00Z",
            "contact": { "email": EMAIL, "phone": 4917077319468_u64 } }),
        )
        .unwrap(),
        serde_json::to_vec(
            &json!({ "id": "crm-pii-2", "received_at": "2026-11-22T10:00:00Z",
            "contact": { "email": format!("{FIRST_NAME} {LAST_NAME}"), "phone": PHONE } }),
        )
        .unwrap(),
        serde_json::to_vec(
            &json!({ "id": "crm-pii-3", "received_at": "2026-11-22T10:00:00Z",
            "contact": { "email": EMAIL }, "engagement": { "demo_request": LAST_NAME } }),
        )
        .unwrap(),
    ];
    for payload in &poison {
        producer
            .send(
                FutureRecord::to(&topics.of(EventKind::LeadCreated))
                    .key("crm-pii")
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    // Dispositions: a note naming the person, a bad one, one for an unknown lead.
    let dispositions = format!("{api}/v1/leads/{lead_id}/dispositions");
    eventually(Duration::from_secs(30), "the lead's assignment", || {
        let received = received.clone();
        async move {
            let received = received.lock().unwrap();
            received
                .iter()
                .any(|m| m["type"] == "lead.assigned")
                .then_some(())
        }
    })
    .await;
    let note = format!("spoke to {FIRST_NAME} {LAST_NAME} on {PHONE}, {EMAIL}");
    let (status, body) = post_json(
        &client,
        &dispositions,
        &json!({ "outcome": "accepted", "note": note, "actor": "rep", "actor_id": "a" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = post_json(
        &client,
        &dispositions,
        &json!({ "outcome": EMAIL, "note": note, "actor": LAST_NAME }),
    )
    .await;
    assert!(status == 400 || status == 422, "{status}");
    let (status, _) = post_json(
        &client,
        &format!("{api}/v1/leads/{EMAIL}/dispositions"),
        &json!({ "outcome": "contacted", "note": note }),
    )
    .await;
    assert_eq!(status, 404);

    // The form lead is never touched: it breaches, and the team's webhook refuses the breach.
    let mut dead = TopicReader::new(&env.kafka, &topics.dead_letter());
    dead.read_until(
        Duration::from_secs(60),
        "three poison events and the refused breach",
        |records| {
            let from = |service: &str| {
                records
                    .iter()
                    .filter(|r| r.header("handoff_dlq_service") == Some(service))
                    .count()
            };
            from("router") >= 3 && from("notifier") >= 1
        },
    )
    .await;
    let mut breaches = TopicReader::new(&env.kafka, &topics.of(EventKind::SlaBreached));
    breaches
        .read_until(Duration::from_secs(30), "a breach", |r| !r.is_empty())
        .await;

    // SIGTERM: the drain and shutdown lines are part of the logs too.
    let pid = child.id().unwrap().to_string();
    let stopped = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(stopped.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("handoff all stops on SIGTERM")
        .unwrap();
    assert!(exit.success(), "handoff all exited with {exit}");
    let mut logs = String::from_utf8_lossy(&out.await.unwrap()).into_owned();
    logs.push_str(&String::from_utf8_lossy(&err.await.unwrap()));
    logs
}
