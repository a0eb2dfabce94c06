//! A trace collector for tests: a real local HTTP server taking OTLP/HTTP protobuf
//! (`POST /v1/traces`, what `[tracing] otlp_endpoint` exports to) and keeping the spans.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One span as the collector received it; ids in lowercase hex, as in `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The `service.name` of the resource it came with.
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// String attributes (`lead_id`, ...).
    pub attributes: Vec<(String, String)>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The running collector.
#[derive(Debug, Clone)]
pub struct OtlpCollector {
    /// What `otlp_endpoint` is set to: `http://127.0.0.1:<port>`.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl OtlpCollector {
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("collector port");
        let endpoint = format!(
            "http://{}",
            listener.local_addr().expect("collector address")
        );
        let app = Router::new()
            .route("/v1/traces", post(collect))
            .with_state(spans.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, spans }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn collect(
    State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>,
    body: Bytes,
) -> Result<Vec<u8>, StatusCode> {
    let request = ExportTraceServiceRequest::decode(body).map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut received = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .map(|r| strings(r.attributes))
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v)
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            received.push(ReceivedSpan {
                service: service.clone(),
                name: span.name,
                trace_id: hex::encode(span.trace_id),
                span_id: hex::encode(span.span_id),
                parent_span_id: hex::encode(span.parent_span_id),
                attributes: strings(span.attributes),
            });
        }
    }
    spans
        .lock()
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .extend(received);
    Ok(ExportTraceServiceResponse::default().encode_to_vec())
}

fn strings(
    attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .filter_map(|a| match a.value?.value? {
            AnyValue::StringValue(s) => Some((a.key, s)),
            _ => None,
        })
        .collect()
}
