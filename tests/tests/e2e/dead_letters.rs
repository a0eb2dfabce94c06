//! `handoff dlq list / show / replay` (the real binary) against the real broker: dead
//! letters listed with their reason and origin and without personal data, a dry run that
//! sends nothing, and a replay after the cause was fixed that takes effect once, however
//! often it is run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use handoff_domain::events::EventKind;
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{handoff_binary, serve_local, Stack, StackOptions};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use serde_json::json;

/// Runs `handoff --config <stack's> dlq ARGS`; returns its stdout, failing on a non-zero exit.
async fn dlq(stack: &Stack, args: &[&str]) -> String {
    let output = tokio::process::Command::new(handoff_binary())
        .arg("--config")
        .arg(&stack.config_path)
        .arg("dlq")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run handoff dlq");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "handoff dlq {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// (path, event id) of every request the receiver answered with 2xx.
type Delivered = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver that answers 503 until `fixed` is set, then 200.
async fn receiver(fixed: Arc<AtomicBool>, delivered: Delivered) -> String {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
        let (fixed, delivered) = (fixed.clone(), delivered.clone());
        async move {
            if !fixed.load(Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let event = headers
                .get("handoff-event-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if let Ok(mut delivered) = delivered.lock() {
                delivered.push((uri.path().to_owned(), event));
            }
            StatusCode::OK
        }
    });
    serve_local(app).await.expect("receiver").0
}

fn deliveries_of(delivered: &Delivered, event_id: &str) -> Vec<String> {
    let mut paths: Vec<String> = delivered
        .lock()
        .map(|d| {
            d.iter()
                .filter(|(_, e)| e == event_id)
                .map(|(p, _)| p.clone())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
}

/// The rep's webhook is down while a lead is assigned: the notifier gives up and
/// dead-letters `lead.assigned`; another producer's garbage on `lead.created` is
/// dead-lettered by the router. `dlq list` shows both with their reasons (filters work, no
/// email in the output), `show` masks the contact, `replay --dry-run` sends nothing; once
/// the webhook is fixed, `replay --reason delivery_failed` delivers the assignment once to
/// each receiver, and replaying again changes nothing (same event id: the notifier's
/// de-duplication, the tracker's idempotent adoption; the rep still holds one lead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_a_fixed_delivery_is_replayed_once() {
    let fixed = Arc::new(AtomicBool::new(false));
    let delivered: Delivered = Arc::default();
    let base = receiver(fixed.clone(), delivered.clone()).await;
    let stack = Stack::start(StackOptions {
        webhook_base: Some(base),
        notifier: "max_attempts = 2\ninitial_backoff_ms = 50\nmax_backoff_ms = 100\nretry_poll_interval_ms = 50\nbreaker_threshold = 10\n"
            .to_owned(),
        ..StackOptions::default()
    })
    .await;
    let email = "dora.dead-letter@acme.io";
    let lead_id = stack
        .post_lead(
            &handoff_e2e::client(),
            &json!({
                "contact": { "email": email, "first_name": "Dora", "title": "VP Sales" },
                "company": { "name": "Acme", "country": "DE", "employees": 300 },
                "source": { "kind": "web_form", "campaign": "spring-launch" }
            }),
        )
        .await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.env.kafka)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&stack.topics.of(EventKind::LeadCreated))
                .key("crm-garbage")
                .payload(&b"\x00\x01not json"[..]),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    // Both dead letters arrive (the assignment's once per failing destination).
    let mut dead = TopicReader::new(&stack.env.kafka, &stack.topics.dead_letter());
    let records = dead
        .read_until(Duration::from_secs(60), "the dead letters", |r| {
            r.iter()
                .any(|r| r.header("handoff_dlq_reason") == Some("undecodable"))
                && r.iter()
                    .any(|r| r.header("handoff_dlq_reason") == Some("delivery_failed"))
        })
        .await
        .to_vec();
    let assigned_id = records
        .iter()
        .find(|r| r.header("handoff_dlq_reason") == Some("delivery_failed"))
        .and_then(|r| r.header("ce_id"))
        .unwrap()
        .to_owned();

    let listed = dlq(&stack, &["list"]).await;
    assert!(
        listed.lines().any(|l| l.contains("undecodable")
            && l.contains(&format!("{}[", stack.topics.of(EventKind::LeadCreated)))
            && l.contains("service=router")),
        "{listed}"
    );
    assert!(
        listed.lines().any(|l| l.contains("delivery_failed")
            && l.contains(&format!("lead={lead_id}"))
            && l.contains(&format!("event={assigned_id}"))),
        "{listed}"
    );
    assert!(
        !listed.contains(email) && !listed.contains("Dora"),
        "{listed}"
    );
    let undecodable = dlq(
        &stack,
        &["list", "--reason", "undecodable", "--since", "1h"],
    )
    .await;
    assert_eq!(
        undecodable
            .lines()
            .filter(|l| l.contains("undecodable"))
            .count(),
        1,
        "{undecodable}"
    );
    assert!(!undecodable.contains("delivery_failed"), "{undecodable}");
    let none = dlq(&stack, &["list", "--topic", "sla.breached"]).await;
    assert!(none.lines().any(|l| l.starts_with("0 of ")), "{none}");

    let position = listed
        .lines()
        .find(|l| l.contains("delivery_failed"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let shown = dlq(&stack, &["show", &position]).await;
    assert!(
        shown.contains("handoff_dlq_reason: delivery_failed"),
        "{shown}"
    );
    assert!(shown.contains(&lead_id), "{shown}");
    assert!(!shown.contains(email) && !shown.contains("Dora"), "{shown}");
    assert!(shown.contains("d***@acme.io"), "{shown}");
    let revealed = dlq(&stack, &["show", &position, "--reveal"]).await;
    assert!(revealed.contains(email), "{revealed}");

    // The receiver is fixed; a dry run first.
    fixed.store(true, Ordering::SeqCst);
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    assigned
        .read_until(Duration::from_secs(30), "the assignment", |r| !r.is_empty())
        .await;
    let dry = dlq(
        &stack,
        &["replay", "--reason", "delivery_failed", "--dry-run"],
    )
    .await;
    assert!(dry.contains("nothing was sent"), "{dry}");
    assert_eq!(
        assigned.read_for(Duration::from_secs(2)).await.len(),
        1,
        "a dry run sends nothing"
    );
    assert!(deliveries_of(&delivered, &assigned_id).is_empty());

    let rep = assigned.records[0].json()["rep_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replayed = dlq(&stack, &["replay", "--reason", "delivery_failed"]).await;
    let copies = replayed
        .lines()
        .filter(|l| l.starts_with("replayed "))
        .count();
    assert!(copies >= 1, "{replayed}");
    let records = assigned
        .read_until(Duration::from_secs(30), "the replayed assignment", |r| {
            r.len() > copies
        })
        .await
        .to_vec();
    for copy in &records[1..] {
        assert_eq!(
            copy.header("ce_id"),
            Some(assigned_id.as_str()),
            "same event id"
        );
        assert_eq!(copy.key.as_deref(), Some(lead_id.as_str()), "same key");
        assert!(copy
            .header("handoff_replayed_from")
            .is_some_and(|from| from.starts_with(&stack.topics.dead_letter())));
        assert!(copy.header("handoff_dlq_reason").is_none());
    }
    let once = handoff_e2e::eventually(
        Duration::from_secs(30),
        "the replayed assignment delivered to the rep",
        || {
            let got = deliveries_of(&delivered, &assigned_id);
            async move { got.contains(&"/hooks/rep".to_owned()).then_some(got) }
        },
    )
    .await;
    let mut distinct = once.clone();
    distinct.dedup();
    assert_eq!(once, distinct, "one delivery per receiver: {once:?}");

    // Again: a second copy of each, no second delivery, no second lead on the rep.
    let duplicates = "handoff_webhook_deliveries_total{outcome=\"duplicate\"}";
    let duplicates_before = stack.metric(duplicates).await;
    dlq(&stack, &["replay", "--reason", "delivery_failed"]).await;
    assigned
        .read_until(Duration::from_secs(30), "the second replay", |r| {
            r.len() > 2 * copies
        })
        .await;
    handoff_e2e::eventually(
        Duration::from_secs(30),
        "the second replay recognised as a duplicate",
        || {
            let stack = &stack;
            async move { (stack.metric(duplicates).await > duplicates_before).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        deliveries_of(&delivered, &assigned_id),
        once,
        "each receiver got the assignment once"
    );
    assert_eq!(
        stack.open_leads(&rep).await,
        1,
        "the rep holds the lead once"
    );
    stack.stop().await.unwrap();
}
