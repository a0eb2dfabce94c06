//! With an endpoint, the spans of [`SPAN_TARGET`] reach a real OTLP/HTTP receiver (a local
//! server decoding the protobuf), as children of the remote parent they were given.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use handoff_telemetry::traces::{self, SpanIds, TraceExport, SPAN_TARGET};

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    events: usize,
}

type Spans = Arc<Mutex<Vec<Received>>>;

async fn collect(State(spans): State<Spans>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let mut spans = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    events: span.events.len(),
                });
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn batch_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with("OpenTelemetry"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_as_children_of_their_remote_parent() {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let export = TraceExport {
        endpoint,
        service_name: "handoff-test".to_owned(),
        sample_ratio: 1.0,
    };
    handoff_telemetry::init_telemetry(false, "info", Some(&export)).unwrap();
    assert!(traces::exporting());
    // The thread names itself once it runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while batch_threads() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(batch_threads(), 1, "one exporter thread");

    let parent = SpanIds {
        trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
        span_id: 0x00f0_67aa_0ba9_02b7,
        sampled: true,
    };
    let span = tracing::info_span!(target: SPAN_TARGET, "router.lead_created", lead_id = "L1");
    let own = traces::join_remote(&span, Some(parent)).expect("exported spans have ids");
    assert_eq!(own.trace_id, parent.trace_id, "the trace goes on");
    assert_ne!(own.span_id, parent.span_id, "a span of its own");
    assert!(own.sampled);
    span.in_scope(|| tracing::info!("a log line, not a span"));
    drop(span);
    // Not a hop: neither exported nor a parent of anything.
    drop(tracing::info_span!("some_library_span"));
    let root = tracing::info_span!(target: SPAN_TARGET, "ingest.lead");
    let root_ids = traces::join_remote(&root, None).expect("a new trace");
    assert_ne!(root_ids.trace_id, parent.trace_id);
    drop(root);
    tokio::task::spawn_blocking(traces::shutdown_traces)
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let received = loop {
        let received = spans.lock().unwrap().clone();
        if received.len() >= 2 || Instant::now() > deadline {
            break received;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(received.len(), 2, "{received:?}");
    let hop = received
        .iter()
        .find(|s| s.name == "router.lead_created")
        .expect("the hop's span");
    assert_eq!(hop.trace_id, parent.trace_id.to_be_bytes());
    assert_eq!(hop.parent_span_id, parent.span_id.to_be_bytes());
    assert_eq!(hop.span_id, own.span_id.to_be_bytes());
    assert!(hop.service.contains("handoff-test"), "{}", hop.service);
    assert_eq!(hop.events, 0, "log lines stay in the logs");
    let new = received.iter().find(|s| s.name == "ingest.lead").unwrap();
    assert_eq!(new.trace_id, root_ids.trace_id.to_be_bytes());
    assert!(new.parent_span_id.is_empty(), "a root span");
}
