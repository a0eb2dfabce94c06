//! One hop of a lead's trace as a span: when traces are exported
//! (`handoff_telemetry::traces`), the span a service opens for a lead's step is the child of
//! the `traceparent` it was given, and the events it writes carry the span's own ids, so a
//! trace viewer links the hops. When they are not, the ids are made here as before.

use handoff_telemetry::traces::{self, SpanIds};

use crate::{InboundEvent, TraceParent};

impl TraceParent {
    /// The `traceparent` of the step `span` stands for, continuing `parent` (an incoming
    /// header; unset or invalid: a new trace). Exported: `span` becomes the child of
    /// `parent` and its own ids are returned; otherwise, as [`TraceParent::child_of`]. Call
    /// it before `span` is first entered.
    pub fn for_span(span: &tracing::Span, parent: Option<&str>) -> Self {
        let parent = parent.and_then(Self::parse);
        let remote = parent.map(|p| {
            let (trace_id, span_id, sampled) = p.parts();
            SpanIds {
                trace_id,
                span_id,
                sampled,
            }
        });
        traces::join_remote(span, remote)
            .and_then(|own| Self::from_parts(own.trace_id, own.span_id, own.sampled))
            .unwrap_or_else(|| parent.map_or_else(Self::new_root, |p| p.child()))
    }
}

impl InboundEvent {
    /// The trace this event belongs to, continued by `span` (see [`TraceParent::for_span`]).
    pub fn trace_for(&self, span: &tracing::Span) -> TraceParent {
        TraceParent::for_span(span, self.header("traceparent"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_export_a_span_gets_a_new_span_id_in_the_same_trace() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(header);
        let hop = TraceParent::for_span(&tracing::Span::none(), Some(header));
        assert_eq!(hop.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(Some(hop), parent);
        let fresh = TraceParent::for_span(&tracing::Span::none(), Some("garbage"));
        assert_ne!(fresh.trace_id(), hop.trace_id());
    }
}
