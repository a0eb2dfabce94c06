use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use handoff_e2e::topics::{Record, TopicReader};
use handoff_e2e::{
    eventually, post_json, qualified_lead, Stack, StackOptions, TEST_SIGNING_SECRET,
};
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
    assert_eq!(
        handoff_notifier::verify(TEST_SIGNING_SECRET, signature, &body),
        Ok(()),
        "signature verifies, within the timestamp window"
    );
    assert!(handoff_notifier::verify("wrong-secret", signature, &body).is_err());
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

/// A local receiver that records every request and answers each with `answer`.
async fn start_receiver(answer: fn() -> axum::response::Response) -> (String, Receiver) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorded = receiver.clone();
    let app = Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            async move {
                recorded
                    .requests
                    .lock()
                    .unwrap()
                    .push((uri.path().to_owned(), headers, body));
                answer()
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("127.0.0.1:{port}"), receiver)
}

fn ok() -> axum::response::Response {
    axum::response::IntoResponse::into_response(StatusCode::OK)
}

/// Posts one lead and waits for the notifier's dead letter of its assignment.
async fn dead_letter_of_one_lead(stack: &Stack) -> Record {
    let lead_id = stack
        .post_lead(&handoff_e2e::client(), &qualified_lead(1))
        .await;
    let mut dead = TopicReader::new(&stack.env.kafka, &stack.topics.dead_letter());
    let records = dead
        .read_until(Duration::from_secs(30), "the webhook's dead letter", |r| {
            !r.is_empty()
        })
        .await;
    let record = records[0].clone();
    assert_eq!(record.header("handoff_dlq_service"), Some("notifier"));
    assert_eq!(record.header("handoff_dlq_reason"), Some("delivery_failed"));
    assert_eq!(
        record.header("ce_subject"),
        Some(lead_id.as_str()),
        "the assignment of the lead is what waits"
    );
    record
}

/// Without an allowlist, a webhook to 127.0.0.1 (here, a real receiver) is refused before
/// any connection: the event is dead-lettered with the reason, the receiver sees nothing,
/// and the URL (which may carry a token) is not in the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_loopback_is_refused_and_dead_lettered_by_default() {
    let (addr, receiver) = start_receiver(ok).await;
    let stack = Stack::start(StackOptions {
        webhook_base: Some(format!("http://{addr}")),
        allow_loopback_webhooks: false,
        ..StackOptions::default()
    })
    .await;
    let record = dead_letter_of_one_lead(&stack).await;
    let error = record.header("handoff_dlq_error").unwrap();
    assert_eq!(
        error,
        "webhook target 127.0.0.1 is a private, loopback or link-local address not in notifier.allowed_private_targets"
    );
    assert!(!error.contains("/hooks"), "no URL in the reason: {error}");
    assert!(
        receiver.requests.lock().unwrap().is_empty(),
        "never received"
    );
    stack.stop().await.unwrap();
}

/// A host name is judged by what it resolves to: `localhost` is loopback, so it is refused
/// the same way (this is what stops DNS rebinding too: the address checked is the one
/// connected to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_resolving_to_loopback_is_refused() {
    let (addr, receiver) = start_receiver(ok).await;
    let port = addr.rsplit_once(':').unwrap().1;
    let stack = Stack::start(StackOptions {
        webhook_base: Some(format!("http://localhost:{port}")),
        allow_loopback_webhooks: false,
        ..StackOptions::default()
    })
    .await;
    let record = dead_letter_of_one_lead(&stack).await;
    let error = record.header("handoff_dlq_error").unwrap();
    assert!(
        error.starts_with(
            "webhook host resolves only to private, loopback or link-local addresses (127.0.0.1"
        ) || error.starts_with(
            "webhook host resolves only to private, loopback or link-local addresses (::1"
        ),
        "{error}"
    );
    assert!(
        !error.contains("localhost"),
        "no host or URL in the reason: {error}"
    );
    assert!(
        receiver.requests.lock().unwrap().is_empty(),
        "never received"
    );
    stack.stop().await.unwrap();
}

/// With the loopback allowlisted, the same host name is delivered to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlisted_private_target_is_delivered_to_by_name() {
    let (addr, receiver) = start_receiver(ok).await;
    let port = addr.rsplit_once(':').unwrap().1;
    let stack = Stack::start(StackOptions {
        webhook_base: Some(format!("http://localhost:{port}")),
        ..StackOptions::default()
    })
    .await;
    stack
        .post_lead(&handoff_e2e::client(), &qualified_lead(1))
        .await;
    let requests = receiver.requests.clone();
    eventually(Duration::from_secs(30), "the delivery", || {
        let requests = requests.clone();
        async move { (!requests.lock().unwrap().is_empty()).then_some(()) }
    })
    .await;
    stack.stop().await.unwrap();
}

/// A receiver answering 302 is not followed: the redirect's target sees no request, the
/// 302 is not retried, and the event is dead-lettered saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let (target_addr, target) = start_receiver(ok).await;
    static TARGET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TARGET.set(format!("http://{target_addr}/stolen")).unwrap();
    let (addr, redirector) = start_receiver(|| {
        axum::response::IntoResponse::into_response((
            StatusCode::FOUND,
            [(axum::http::header::LOCATION, TARGET.get().unwrap().as_str())],
        ))
    })
    .await;
    let stack = Stack::start(StackOptions {
        webhook_base: Some(format!("http://{addr}")),
        ..StackOptions::default()
    })
    .await;
    let record = dead_letter_of_one_lead(&stack).await;
    let error = record.header("handoff_dlq_error").unwrap();
    assert!(
        error.starts_with("webhook answered 302 Found: redirects are not followed"),
        "{error}"
    );
    assert_eq!(
        redirector.requests.lock().unwrap().len(),
        1,
        "a redirect is permanent: not retried"
    );
    assert!(
        target.requests.lock().unwrap().is_empty(),
        "the redirect target never sees a request"
    );
    stack.stop().await.unwrap();
}
