use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use handoff_e2e::{eventually, post_json, qualified_lead, Stack, StackOptions};
use serde_json::Value;

#[derive(Clone, Default)]
struct Receiver {
    /// (path, headers, body) of every request, in arrival order.
    requests: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut requests = receiver.requests.lock().unwrap();
    requests.push((uri.path().to_owned(), headers, body));
    // The first two deliveries fail, as a flaky receiver would.
    if requests.len() <= 2 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// The rep's webhook receives a signed, Slack-readable message for the assignment; failed
/// deliveries are retried until the receiver takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_reach_the_rep_webhook_signed_and_retried() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hooks/{who}", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let stack = Stack::start(StackOptions {
        webhook_base: Some(base),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let (status, body) = post_json(
        &client,
        &format!("{}/v1/leads", stack.api()),
        &qualified_lead(1),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let lead_id = body["lead_id"].clone();

    let requests = receiver.requests.clone();
    let (headers, body) = eventually(Duration::from_secs(30), "a successful delivery", || {
        let requests = requests.clone();
        async move {
            let requests = requests.lock().unwrap();
            (requests.len() >= 3).then(|| (requests[2].1.clone(), requests[2].2.clone()))
        }
    })
    .await;
    let all = receiver.requests.lock().unwrap().clone();
    assert!(all.iter().all(|(path, _, _)| path == "/hooks/rep"));
    let event_ids: Vec<_> = all
        .iter()
        .map(|(_, h, _)| h["handoff-event-id"].clone())
        .collect();
    assert!(
        event_ids.iter().all(|id| *id == event_ids[0]),
        "retries carry the same event id"
    );

    let signature = headers["handoff-signature"].to_str().unwrap();
    assert!(
        handoff_notifier::verify("test-secret", signature, &body),
        "signature verifies"
    );
    assert!(!handoff_notifier::verify("wrong-secret", signature, &body));
    let message: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(message["type"], "lead.assigned");
    assert_eq!(message["lead_id"], lead_id);
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .starts_with("New lead for a"),
        "{message}"
    );
    stack.stop().await.unwrap();
}
