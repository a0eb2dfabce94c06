//! Without an endpoint nothing changes: no exporter, no thread, and the ids of a hop are
//! left to the caller.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use handoff_telemetry::traces::{self, SpanIds, SPAN_TARGET};

#[test]
fn without_an_endpoint_no_exporter_runs_and_hop_spans_are_disabled() {
    handoff_telemetry::init_telemetry(false, "trace", None).unwrap();
    assert!(!traces::exporting());
    let span = tracing::info_span!(target: SPAN_TARGET, "router.lead_created");
    assert!(
        span.is_disabled(),
        "off even at level trace: never in the logs"
    );
    let parent = SpanIds {
        trace_id: 1,
        span_id: 2,
        sampled: true,
    };
    assert_eq!(traces::join_remote(&span, Some(parent)), None);
    traces::shutdown_traces();
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    assert!(
        !threads.iter().any(|name| name.starts_with("OpenTelemetry")),
        "{threads:?}"
    );
}
