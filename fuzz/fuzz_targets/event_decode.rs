//! A record off a topic: bytes -> headers + payload of an InboundEvent -> what the services
//! do with it: kind (ce_type or topic), ce_id, traceparent, decoding as each kind, and for
//! lead.created / lead.assigned / lead.disposition the domain steps that follow.
//!
//! Input layout: the first byte picks the topic; then header lines `name:value` up to an
//! empty line; the rest is the payload. (Seeds in seeds/event_decode show the shape.)
#![no_main]

use libfuzzer_sys::fuzz_target;

use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition, SlaBreached, SlaReminder};
use handoff_domain::sla::{is_first_touch, SlaPolicy};
use handoff_domain::lead::LeadPayload;
use handoff_domain::submission::check_lead;
use handoff_fuzz::{now, route, sample_rules};
use handoff_kafka::InboundEvent;

fn split(data: &[u8]) -> (Vec<(String, Vec<u8>)>, &[u8]) {
    let mut headers = Vec::new();
    let mut rest = data;
    while let Some(end) = rest.iter().position(|b| *b == b'\n') {
        let (line, after) = rest.split_at(end);
        rest = after.get(1..).unwrap_or_default();
        if line.is_empty() {
            break;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => (
                line.get(..colon).unwrap_or_default(),
                line.get(colon + 1..).unwrap_or_default(),
            ),
            None => (line, &[][..]),
        };
        headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    (headers, rest)
}

/// Stands in for the assignment time the SLA tracker reads from Redis: any i64.
fn assigned_ms(event: &InboundEvent) -> i64 {
    let bytes = event.key.as_deref().unwrap_or_default();
    bytes
        .iter()
        .fold(0i64, |acc, b| acc.rotate_left(8) ^ i64::from(*b))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let kind = EventKind::ALL[usize::from(selector) % EventKind::ALL.len()];
    let (headers, payload) = split(rest);
    let event = InboundEvent {
        topic: format!("handoff.{}", kind.topic_suffix()),
        partition: 0,
        offset: 0,
        key: Some(b"lead-1".to_vec()),
        payload: (selector & 0x80 == 0).then(|| payload.to_vec()),
        headers,
        // Another producer's record may carry any time, or (pre-0.10 format) none.
        timestamp: (selector & 0x40 == 0)
            .then(|| chrono::DateTime::from_timestamp_millis(i64::from(selector) << 36))
            .flatten(),
    };
    let _ = event.kind();
    let _ = event.ce_id();
    let _ = event.child_trace().to_string();
    match kind {
        EventKind::LeadCreated => {
            // As the router reads it: fields a producer left unset come from the record.
            if let Ok(payload) = event.decode::<LeadPayload>(kind) {
                if let Ok(lead) = payload.into_lead(&event.origin()) {
                    if let Ok(lead) = check_lead(&lead) {
                        route(sample_rules(), &lead);
                    }
                }
            }
        }
        EventKind::LeadAssigned => {
            if let Ok(assigned) = event.decode::<LeadAssigned>(kind) {
                // The SLA tracker's arithmetic on an assignment made elsewhere.
                let due = SlaPolicy::default().due_at(
                    assigned.assigned_at,
                    sample_rules()
                        .routing
                        .team_sla(assigned.team_id.as_str())
                        .first_touch_seconds,
                );
                let _ = assigned.first_touch_due_at.min(due).timestamp_millis();
                let _ = assigned.assigned_at.timestamp_millis();
                let _ = assigned.event_id();
            }
        }
        EventKind::LeadDisposition => {
            if let Ok(disposition) = event.decode::<LeadDisposition>(kind) {
                // The SLA tracker's first-touch arithmetic.
                let _ = is_first_touch(disposition.outcome);
                let touched = disposition
                    .occurred_at
                    .timestamp_millis()
                    .min(now().timestamp_millis());
                let _ = touched.saturating_sub(assigned_ms(&event));
            }
        }
        EventKind::SlaBreached => {
            if let Ok(breach) = event.decode::<SlaBreached>(kind) {
                let _ = breach.event_id();
            }
        }
        EventKind::SlaReminder => {
            if let Ok(reminder) = event.decode::<SlaReminder>(kind) {
                let _ = reminder.event_id();
            }
        }
    }
});
