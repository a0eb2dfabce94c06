//! `[tracing] otlp_endpoint`: the real `handoff all` exports the spans of a lead's steps to
//! an OTLP/HTTP collector (a real local server decoding the protobuf), in the trace the
//! lead came with, each span the parent of the next hop's, as the Kafka headers say.

use std::process::Stdio;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use handoff_domain::events::EventKind;
use handoff_e2e::otlp::{OtlpCollector, ReceivedSpan};
use handoff_e2e::topics::{Record, TopicReader};
use handoff_e2e::{
    eventually, handoff_binary, qualified_lead, unique_id, write_config, StackOptions, TestEnv,
};
use handoff_kafka::Topics;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(60);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// `handoff all` as its own process, exporting to `collector`.
struct Running {
    child: Child,
    api: String,
    topics: Topics,
    kafka: String,
    stdout: JoinHandle<Vec<u8>>,
}

/// Starts `handoff all` with `[tracing] otlp_endpoint` set; the batch exporter sends every
/// `export_delay_ms` (`OTEL_BSP_SCHEDULE_DELAY`, read by the OpenTelemetry SDK).
async fn start(collector: &OtlpCollector, export_delay_ms: u64) -> Running {
    let env = TestEnv::from_env();
    let id = unique_id();
    let webhooks = start_webhook_receiver().await;
    let options = StackOptions {
        first_touch_seconds: 2,
        webhook_base: Some(webhooks),
        extra_config: format!("[tracing]\notlp_endpoint = \"{}\"\n", collector.endpoint),
        ..StackOptions::default()
    };
    let config = write_config(&env, &id, &options);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut child = Command::new(handoff_binary())
        .args(["all", "--config"])
        .arg(&config)
        .env("HANDOFF_INGEST_LISTEN", format!("127.0.0.1:{port}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", export_delay_ms.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("handoff all starts");
    let stdout = handoff_e2e::collect_output(child.stdout.take().unwrap());
    let api = format!("http://127.0.0.1:{port}");
    handoff_e2e::until_ready(&api, WAIT).await;
    Running {
        child,
        api,
        topics: Topics::new(format!("{id}.")),
        kafka: env.kafka,
        stdout,
    }
}

impl Running {
    /// Posts a lead in the trace [`TRACE_ID`] (from the client's span [`CLIENT_SPAN`]);
    /// returns the lead id and the `traceparent` of the answer.
    async fn post_traced_lead(&self) -> (String, String) {
        let response = handoff_e2e::client()
            .post(format!("{}/v1/leads", self.api))
            .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
            .json(&qualified_lead(1))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let traceparent = response
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap()
            .to_owned();
        let body: serde_json::Value = response.json().await.unwrap();
        (body["lead_id"].as_str().unwrap().to_owned(), traceparent)
    }

    /// The first record of `lead` on the `kind` topic.
    async fn first_record(&self, kind: EventKind, lead: &str) -> Record {
        let mut reader = TopicReader::new(&self.kafka, &self.topics.of(kind));
        let records = reader
            .read_until(WAIT, kind.topic_suffix(), |r| {
                r.iter().any(|r| r.key.as_deref() == Some(lead))
            })
            .await;
        records
            .iter()
            .find(|r| r.key.as_deref() == Some(lead))
            .cloned()
            .unwrap()
    }

    /// SIGTERM, as a supervisor stops it; returns what it logged.
    async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let stopped = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(stopped.success());
        let exit = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("handoff all stops on SIGTERM")
            .unwrap();
        assert!(exit.success(), "handoff all exited with {exit}");
        String::from_utf8_lossy(&self.stdout.await.unwrap()).into_owned()
    }
}

/// A webhook receiver that takes everything.
async fn start_webhook_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(|| async { StatusCode::OK });
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The span id a `traceparent` names.
fn span_of(traceparent: &str) -> String {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], TRACE_ID, "{traceparent}: the lead's trace");
    parts[2].to_owned()
}

/// The spans of the lead's trace named `name` whose parent is `parent`.
fn children<'a>(spans: &'a [ReceivedSpan], name: &str, parent: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.trace_id == TRACE_ID && s.name == name && s.parent_span_id == parent)
        .collect()
}

/// The hops link up: the client's span → ingest → router → the notifier's delivery and the
/// SLA tracker's breach → the router's reassignment; each exported span's id is the one the
/// next hop's `traceparent` (Kafka header, HTTP answer) carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leads_steps_are_exported_as_one_linked_trace() {
    let collector = OtlpCollector::start().await;
    let running = start(&collector, 100).await;
    let (lead, answered) = running.post_traced_lead().await;
    let ingest_span = span_of(&answered);
    let created = running.first_record(EventKind::LeadCreated, &lead).await;
    assert_eq!(
        created.header("traceparent"),
        Some(answered.as_str()),
        "lead.created carries the span of ingest's request"
    );
    let assigned = running.first_record(EventKind::LeadAssigned, &lead).await;
    let router_span = span_of(assigned.header("traceparent").unwrap());

    let spans = eventually(WAIT, "every hop's span at the collector", || {
        let spans = collector.spans();
        let done = !children(&spans, "ingest.lead", CLIENT_SPAN).is_empty()
            && !children(&spans, "router.lead_created", &ingest_span).is_empty()
            && !children(&spans, "notifier.deliver", &router_span).is_empty()
            && spans.iter().any(|s| s.name == "router.sla_breached");
        async move { done.then_some(spans) }
    })
    .await;
    let ingest = children(&spans, "ingest.lead", CLIENT_SPAN);
    assert_eq!(ingest.len(), 1, "{spans:#?}");
    assert_eq!(ingest[0].span_id, ingest_span);
    assert_eq!(ingest[0].attribute("lead_id"), Some(lead.as_str()));
    assert!(
        children(&spans, "router.lead_created", &ingest_span)
            .iter()
            .any(|s| s.span_id == router_span && s.attribute("lead_id") == Some(lead.as_str())),
        "the router's span is the one lead.assigned names: {spans:#?}"
    );
    assert_eq!(
        children(&spans, "notifier.deliver", &router_span)[0].attribute("lead_id"),
        Some(lead.as_str())
    );
    let breach = children(&spans, "sla.breached", &router_span);
    assert!(!breach.is_empty(), "the SLA tracker's breach: {spans:#?}");
    assert!(
        breach
            .iter()
            .any(|b| !children(&spans, "router.sla_breached", &b.span_id).is_empty()),
        "the reassignment follows the breach: {spans:#?}"
    );
    for span in spans.iter().filter(|s| s.trace_id == TRACE_ID) {
        assert_eq!(span.service, "handoff", "{span:?}");
    }

    let logs = running.stop().await;
    assert!(logs.contains(TRACE_ID), "the logs carry the trace id");
    for name in ["ingest.lead", "router.lead_created", "notifier.deliver"] {
        assert!(!logs.contains(name), "spans stay out of the logs: {name}");
    }
}

/// Spans still waiting for the next export when `handoff all` is stopped are sent before it
/// exits (the export interval here is longer than the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_spans_are_flushed_when_handoff_stops() {
    let collector = OtlpCollector::start().await;
    let running = start(&collector, 600_000).await;
    let (lead, answered) = running.post_traced_lead().await;
    running.first_record(EventKind::LeadAssigned, &lead).await;
    assert!(
        collector.spans().is_empty(),
        "nothing exported before the interval or the stop"
    );
    running.stop().await;
    let spans = collector.spans();
    assert_eq!(
        children(&spans, "ingest.lead", CLIENT_SPAN).len(),
        1,
        "{spans:#?}"
    );
    assert!(
        !children(&spans, "router.lead_created", &span_of(&answered)).is_empty(),
        "{spans:#?}"
    );
}
