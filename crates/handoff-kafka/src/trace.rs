//! W3C Trace Context `traceparent` (version 00): one trace id follows a lead through
//! every service; each hop gets its own span id.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl TraceParent {
    /// The start of a new trace (a lead entering the system).
    pub fn new_root() -> Self {
        Self {
            trace_id: rand::random::<u128>().max(1),
            span_id: rand::random::<u64>().max(1),
            sampled: true,
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        Self {
            span_id: rand::random::<u64>().max(1),
            ..*self
        }
    }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; anything else is `None` (and a new trace
    /// starts, as the spec asks).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        // from_str_radix also takes a leading `+`, which the spec does not.
        let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
        if !(hex(trace) && hex(span) && hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The trace id as it appears in logs.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The ids, as an exporter names them (`None` for the all-zero ids W3C forbids).
    pub(crate) fn from_parts(trace_id: u128, span_id: u64, sampled: bool) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// The trace id, span id and sampled flag.
    pub(crate) fn parts(&self) -> (u128, u64, bool) {
        (self.trace_id, self.span_id, self.sampled)
    }

    /// Continues the trace of `parent` when it parses, else starts a new one.
    pub fn child_of(parent: Option<&str>) -> Self {
        parent
            .and_then(Self::parse)
            .map_or_else(Self::new_root, |p| p.child())
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_children_keep_the_trace() {
        let root = TraceParent::new_root();
        let parsed = TraceParent::parse(&root.to_string());
        assert_eq!(parsed, Some(root));
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.to_string(), root.to_string());
        assert_eq!(TraceParent::parse("garbage"), None);
        assert_eq!(
            TraceParent::parse("00-00000000000000000000000000000000-0000000000000001-01"),
            None
        );
        assert_eq!(
            TraceParent::parse("00-+0000000000000000000000000000001-+000000000000001-01"),
            None
        );
        assert_eq!(
            TraceParent::parse("00-000000000000000000000000000000é-0000000000000001-01"),
            None
        );
    }
}
