use std::time::Duration;

use handoff::services::{Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_e2e::{qualified_lead, Stack, StackOptions};
use serde_json::{json, Value};

/// Bad input gets the documented 4xx with a body naming the problem, and produces no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_publishes_nothing() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Ingest),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());
    let send = |content_type: &'static str, body: Vec<u8>| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let (status, body) = send("application/json", b"{\"contact\": {".to_vec()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_body")),
        "{body}"
    );

    let (status, body) = send(
        "application/json",
        br#"{"contact": {"first_name": "Ada"}}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(
        body["error"]["fields"][0],
        json!({
            "field": "contact.email", "code": "required", "message": "contact.email is required"
        })
    );

    let (status, body) = send(
        "application/json",
        br#"{"contact": {"email": "a@b.io"}, "colour": "red"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "colour");
    assert_eq!(body["error"]["fields"][0]["code"], "unknown_field");

    let (status, body) = send(
        "application/x-www-form-urlencoded",
        b"email=not-an-email&country=Atlantis".to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields = handoff_e2e::error_fields(&body);
    assert_eq!(fields, ["contact.email", "company.country"]);

    let mut huge = serde_json::to_vec(&qualified_lead(1)).unwrap();
    huge.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    let (status, body) = send("application/json", huge).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );

    let (status, body) = send("text/plain", b"email=a@b.io".to_vec()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{body}"
    );

    // Nothing above was published: the only event on the topic is the good lead sent last.
    let (status, good) = send(
        "application/x-www-form-urlencoded",
        b"email=Grace%40Navy.mil&title=Director&country=us&utm_campaign=fleet".to_vec(),
    )
    .await;
    assert_eq!(status, 202, "{good}");
    let mut reader = stack.reader(EventKind::LeadCreated);
    let records = reader
        .read_until(Duration::from_secs(30), "the good lead", |r| !r.is_empty())
        .await;
    assert_eq!(records.len(), 1);
    handoff_e2e::contract::Contract::load()
        .check(&records[0])
        .unwrap();
    let lead = records[0].json();
    assert_eq!(lead["id"], good["lead_id"]);
    assert_eq!(lead["contact"]["email"], "grace@navy.mil");
    assert_eq!(lead["company"]["country"], "US");
    assert_eq!(lead["source"]["utm"]["campaign"], "fleet");
    stack.stop().await.unwrap();
}

/// A retried request with the same Idempotency-Key returns the same lead id, and only one
/// event is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_retries_safe() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Ingest),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = client
            .post(&url)
            .header("idempotency-key", "form-submission-42")
            .json(&qualified_lead(42))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        ids.push(response.json::<Value>().await.unwrap()["lead_id"].clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // A different key is a different lead.
    let response = client
        .post(&url)
        .header("idempotency-key", "another")
        .json(&qualified_lead(43))
        .send()
        .await
        .unwrap();
    let other = response.json::<Value>().await.unwrap()["lead_id"].clone();
    assert_ne!(other, ids[0]);
    let mut reader = stack.reader(EventKind::LeadCreated);
    reader
        .read_until(Duration::from_secs(30), "both leads", |r| {
            r.iter().any(|r| r.json()["id"] == other) && r.iter().any(|r| r.json()["id"] == ids[0])
        })
        .await;
    // Every retry was answered before this point, so a duplicate would already be on the
    // topic; a short extra read catches one still in flight to this reader.
    let records = reader.read_for(Duration::from_secs(1)).await;
    let first: Vec<_> = records
        .iter()
        .filter(|r| r.json()["id"] == ids[0])
        .collect();
    assert_eq!(first.len(), 1, "one event for three retries");
    stack.stop().await.unwrap();
}
