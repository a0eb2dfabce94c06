//! The Rust event types and proto/ cannot drift. Every event the services emit is built
//! here with arbitrary values, encoded by the production encoder (`OutboundEvent::new`, what
//! every producer publishes) and decoded strictly against the descriptors compiled from
//! proto/, as a consumer generated from proto/ would:
//! - a field the Rust side emits that proto/ does not define fails (unknown field);
//! - with every optional field populated, every field of every message the event reaches in
//!   proto/ must be set: a field added to proto/, or renamed, but never emitted fails;
//! - every message and enum value of proto/ is emitted by some event;
//! - what a producer generated from proto/ writes on `lead.created` (canonical proto3 JSON:
//!   lowerCamelCase names, default values left out, `id`/`received_at` unset) is the same
//!   lead to the router's decoder.
//!
//! `account.owner` (proto/handoff/v1/accounts.proto) is consumed, not emitted: other
//! systems produce it, so it is checked both ways too: what the Rust type writes (as the
//! router stores it) is a strict `handoff.v1.AccountOwner`, and what a producer generated
//! from proto/ writes is the same owner to the router's decoder.
//!
//! `rep.state` (proto/handoff/v1/reps.proto) is written by ingest and read back by a
//! rebuild: what the Rust type writes is a strict `handoff.v1.RepOverrides`, and the proto
//! form reads back as the same overrides.
//!
//! No broker, no Redis: this runs in every `cargo test`. docs/adr/0004-contract-drift.md
//! says why a test and not generated types.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use handoff_domain::accounts::{AccountOwner, ACCOUNT_OWNER_MESSAGE};
use handoff_domain::disposition::{Actor, ActorKind, Outcome};
use handoff_domain::events::{
    EventKind, LeadAssigned, LeadDisposition, LeadSummary, SlaBreached, SlaReminder,
};
use handoff_domain::lead::{
    Activity, Company, Contact, Engagement, Lead, LeadId, LeadPayload, RecordOrigin, Source, Utm,
};
use handoff_domain::rep_overrides::{RepOverrides, REP_OVERRIDES_MESSAGE};
use handoff_domain::routing::{RoutingExplanation, RuleMiss, SkippedRep};
use handoff_domain::scoring::{Score, ScoreContribution};
use handoff_domain::sla::{FirstTouchClock, Sla, SlaClock};
use handoff_domain::{QueueName, RepId, TeamId};
use handoff_e2e::contract::Contract;
use handoff_kafka::{OutboundEvent, TraceParent};
use proptest::prelude::*;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};

/// The package of handoff's own messages (the well-known types are protobuf's business).
const PACKAGE: &str = "handoff.v1";

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(Contract::load)
}

/// One event as a service emits it.
#[derive(Debug, Clone)]
enum Emitted {
    LeadCreated(Lead),
    LeadAssigned(Box<LeadAssigned>),
    SlaBreached(SlaBreached),
    SlaReminder(SlaReminder),
    LeadDisposition(LeadDisposition),
}

impl Emitted {
    fn kind(&self) -> EventKind {
        match self {
            Emitted::LeadCreated(_) => EventKind::LeadCreated,
            Emitted::LeadAssigned(_) => EventKind::LeadAssigned,
            Emitted::SlaBreached(_) => EventKind::SlaBreached,
            Emitted::SlaReminder(_) => EventKind::SlaReminder,
            Emitted::LeadDisposition(_) => EventKind::LeadDisposition,
        }
    }

    /// The payload the producers put on the wire.
    fn encode(&self) -> Vec<u8> {
        match self {
            Emitted::LeadCreated(e) => encode(self.kind(), e),
            Emitted::LeadAssigned(e) => encode(self.kind(), e),
            Emitted::SlaBreached(e) => encode(self.kind(), e),
            Emitted::SlaReminder(e) => encode(self.kind(), e),
            Emitted::LeadDisposition(e) => encode(self.kind(), e),
        }
    }
}

fn encode<T: serde::Serialize>(kind: EventKind, data: &T) -> Vec<u8> {
    OutboundEvent::new(
        kind,
        "event-id".to_owned(),
        "lead-id",
        Utc::now(),
        TraceParent::new_root(),
        data,
    )
    .expect("every event encodes")
    .payload
}

// Strategies. `full`: every optional field populated (strings and lists non-empty, numbers
// non-zero, flags true, options `Some`), so that every field proto/ defines must show up.

fn text(full: bool) -> BoxedStrategy<String> {
    // Any char, control characters and astral planes included: the encoder must escape them.
    proptest::collection::vec(any::<char>(), usize::from(full)..12)
        .prop_map(|chars| chars.into_iter().collect())
        .boxed()
}

fn count(full: bool) -> BoxedStrategy<u32> {
    if full {
        (1..=u32::MAX).boxed()
    } else {
        any::<u32>().boxed()
    }
}

fn points(full: bool) -> BoxedStrategy<i32> {
    if full {
        prop_oneof![i32::MIN..0, 1..=i32::MAX].boxed()
    } else {
        any::<i32>().boxed()
    }
}

fn flag(full: bool) -> BoxedStrategy<bool> {
    if full {
        Just(true).boxed()
    } else {
        any::<bool>().boxed()
    }
}

/// Any instant a `google.protobuf.Timestamp` can hold (years 1 to 9999), to the nanosecond.
fn time() -> BoxedStrategy<DateTime<Utc>> {
    (-62_135_596_800_i64..=253_402_300_799, 0_u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in range"))
        .boxed()
}

fn list<T: std::fmt::Debug + 'static>(item: BoxedStrategy<T>, full: bool) -> BoxedStrategy<Vec<T>> {
    proptest::collection::vec(item, usize::from(full)..4).boxed()
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    value: BoxedStrategy<T>,
    full: bool,
) -> BoxedStrategy<Option<T>> {
    if full {
        value.prop_map(Some).boxed()
    } else {
        proptest::option::of(value).boxed()
    }
}

/// Every outcome. A new variant is a compile error in `listed` until it is added here too.
fn outcomes() -> Vec<Outcome> {
    fn listed(outcome: Outcome) {
        match outcome {
            Outcome::Accepted
            | Outcome::Contacted
            | Outcome::Rejected
            | Outcome::Converted
            | Outcome::Recycled
            | Outcome::Unqualified
            | Outcome::Overflowed
            | Outcome::Reassigned
            | Outcome::Escalated => {}
        }
    }
    let all = vec![
        Outcome::Accepted,
        Outcome::Contacted,
        Outcome::Rejected,
        Outcome::Converted,
        Outcome::Recycled,
        Outcome::Unqualified,
        Outcome::Overflowed,
        Outcome::Reassigned,
        Outcome::Escalated,
    ];
    all.iter().copied().for_each(listed);
    all
}

/// Every SLA; see [`outcomes`].
fn slas() -> Vec<Sla> {
    fn listed(sla: Sla) {
        match sla {
            Sla::FirstTouch | Sla::Disposition => {}
        }
    }
    let all = vec![Sla::FirstTouch, Sla::Disposition];
    all.iter().copied().for_each(listed);
    all
}

/// Every SLA clock; see [`outcomes`].
fn sla_clocks() -> Vec<SlaClock> {
    fn listed(clock: SlaClock) {
        match clock {
            SlaClock::Wall | SlaClock::BusinessHours => {}
        }
    }
    let all = vec![SlaClock::Wall, SlaClock::BusinessHours];
    all.iter().copied().for_each(listed);
    all
}

fn first_touch_clock(full: bool) -> BoxedStrategy<FirstTouchClock> {
    (
        proptest::sample::select(sla_clocks()),
        time(),
        time(),
        text(full),
    )
        .prop_map(|(clock, started_at, due_at, summary)| FirstTouchClock {
            clock,
            started_at,
            due_at,
            summary,
        })
        .boxed()
}

/// Every actor kind; see [`outcomes`].
fn actor_kinds() -> Vec<ActorKind> {
    fn listed(kind: ActorKind) {
        match kind {
            ActorKind::Rep | ActorKind::Crm | ActorKind::System => {}
        }
    }
    let all = vec![ActorKind::Rep, ActorKind::Crm, ActorKind::System];
    all.iter().copied().for_each(listed);
    all
}

fn utm(full: bool) -> BoxedStrategy<Utm> {
    (text(full), text(full), text(full), text(full), text(full))
        .prop_map(|(source, medium, campaign, term, content)| Utm {
            source,
            medium,
            campaign,
            term,
            content,
        })
        .boxed()
}

fn source(full: bool) -> BoxedStrategy<Source> {
    (text(full), text(full), text(full), utm(full))
        .prop_map(|(kind, name, campaign, utm)| Source {
            kind,
            name,
            campaign,
            utm,
        })
        .boxed()
}

fn contact(full: bool) -> BoxedStrategy<Contact> {
    (text(full), text(full), text(full), text(full), text(full))
        .prop_map(|(email, first_name, last_name, phone, title)| Contact {
            email,
            first_name,
            last_name,
            phone,
            title,
        })
        .boxed()
}

fn company(full: bool) -> BoxedStrategy<Company> {
    (
        text(full),
        text(full),
        // Explicit presence: `Some(0)` is a value too.
        maybe(any::<u32>().boxed(), full),
        text(full),
        text(full),
        text(full),
        text(full),
    )
        .prop_map(
            |(name, domain, employees, industry, country, region, postal_code)| Company {
                name,
                domain,
                employees,
                industry,
                country,
                region,
                postal_code,
            },
        )
        .boxed()
}

fn activity(full: bool) -> BoxedStrategy<Activity> {
    (text(full), time(), text(full))
        .prop_map(|(kind, at, detail)| Activity { kind, at, detail })
        .boxed()
}

fn engagement(full: bool) -> BoxedStrategy<Engagement> {
    (
        flag(full),
        count(full),
        count(full),
        count(full),
        list(activity(full), full),
    )
        .prop_map(
            |(
                demo_request,
                pricing_page_views,
                content_downloads,
                webinars_attended,
                activities,
            )| {
                Engagement {
                    demo_request,
                    pricing_page_views,
                    content_downloads,
                    webinars_attended,
                    activities,
                }
            },
        )
        .boxed()
}

fn lead(full: bool) -> BoxedStrategy<Lead> {
    (
        text(full),
        time(),
        source(full),
        contact(full),
        company(full),
        engagement(full),
        proptest::collection::btree_map(text(false), text(false), usize::from(full)..4),
    )
        .prop_map(
            |(id, received_at, source, contact, company, engagement, custom)| Lead {
                id: LeadId::from(id),
                received_at,
                source,
                contact,
                company,
                engagement,
                custom,
            },
        )
        .boxed()
}

fn score(full: bool) -> BoxedStrategy<Score> {
    let contribution = (text(full), points(full))
        .prop_map(|(rule, points)| ScoreContribution { rule, points })
        .boxed();
    (
        points(full),
        text(full),
        flag(full),
        flag(full),
        list(contribution, full),
        text(full),
    )
        .prop_map(
            |(points, band, qualified, fast_lane, contributions, model_version)| Score {
                points,
                band,
                qualified,
                fast_lane,
                contributions,
                model_version,
            },
        )
        .boxed()
}

fn explanation(full: bool) -> BoxedStrategy<RoutingExplanation> {
    let skipped = (text(full), text(full))
        .prop_map(|(rep_id, reason)| SkippedRep { rep_id, reason })
        .boxed();
    let miss = (text(full), text(full))
        .prop_map(|(rule, failed_condition)| RuleMiss {
            rule,
            failed_condition,
        })
        .boxed();
    (
        text(full),
        text(full),
        text(full),
        list(skipped, full),
        text(full),
        list(miss, full),
        maybe(first_touch_clock(full), full),
    )
        .prop_map(
            |(rule, strategy, reason, skipped, rules_version, rules_not_matched, first_touch)| {
                RoutingExplanation {
                    rule,
                    strategy,
                    reason,
                    skipped,
                    rules_version,
                    rules_not_matched,
                    first_touch,
                }
            },
        )
        .boxed()
}

/// An optional id: `Some` when `full`.
fn id<T: From<String> + std::fmt::Debug + Clone + 'static>(full: bool) -> BoxedStrategy<Option<T>> {
    maybe(text(full).prop_map(T::from).boxed(), full)
}

fn lead_assigned(full: bool) -> BoxedStrategy<LeadAssigned> {
    (
        text(full),
        count(full),
        text(full),
        text(full),
        (time(), time(), time()),
        score(full),
        explanation(full),
        source(full),
        (id::<QueueName>(full), maybe(time(), full)),
        (maybe(lead_summary(full), full), id::<LeadId>(full)),
    )
        .prop_map(
            |(
                lead_id,
                attempt,
                team_id,
                rep_id,
                (received_at, assigned_at, first_touch_due_at),
                score,
                explanation,
                source,
                (queue, queued_at),
                (lead, joins),
            )| LeadAssigned {
                lead_id: LeadId::from(lead_id),
                attempt,
                team_id: TeamId::from(team_id),
                rep_id: RepId::from(rep_id),
                received_at,
                assigned_at,
                first_touch_due_at,
                score,
                explanation,
                source,
                queue,
                queued_at,
                lead,
                joins,
            },
        )
        .boxed()
}

fn lead_summary(full: bool) -> BoxedStrategy<LeadSummary> {
    (
        (text(full), text(full), text(full)),
        (text(full), text(full), text(full), text(full)),
    )
        .prop_map(
            |((first_name, last_name, title), (company, country, email, phone))| LeadSummary {
                first_name,
                last_name,
                title,
                company,
                country,
                email,
                phone,
            },
        )
        .boxed()
}

fn sla_breached(full: bool) -> BoxedStrategy<SlaBreached> {
    (
        text(full),
        count(full),
        id::<TeamId>(full),
        id::<RepId>(full),
        time(),
        time(),
        proptest::sample::select(slas()),
    )
        .prop_map(
            |(lead_id, attempt, team_id, rep_id, due_at, breached_at, sla)| SlaBreached {
                lead_id: LeadId::from(lead_id),
                attempt,
                team_id,
                rep_id,
                due_at,
                breached_at,
                sla,
            },
        )
        .boxed()
}

fn sla_reminder(full: bool) -> BoxedStrategy<SlaReminder> {
    (
        text(full),
        count(full),
        proptest::sample::select(slas()),
        id::<TeamId>(full),
        id::<RepId>(full),
        time(),
        time(),
        0.001_f64..0.999,
    )
        .prop_map(
            |(lead_id, attempt, sla, team_id, rep_id, due_at, reminded_at, fraction)| SlaReminder {
                lead_id: LeadId::from(lead_id),
                attempt,
                sla,
                team_id,
                rep_id,
                due_at,
                reminded_at,
                fraction,
            },
        )
        .boxed()
}

fn lead_disposition(full: bool) -> BoxedStrategy<LeadDisposition> {
    let actor = (proptest::sample::select(actor_kinds()), text(full))
        .prop_map(|(kind, id)| Actor { kind, id })
        .boxed();
    (
        text(full),
        proptest::sample::select(outcomes()),
        text(full),
        text(full),
        actor,
        time(),
        source(full),
        maybe(score(full), full),
        (id::<TeamId>(full), id::<RepId>(full), id::<QueueName>(full)),
        (text(full), text(full)),
    )
        .prop_map(
            |(
                lead_id,
                outcome,
                reason_code,
                note,
                actor,
                occurred_at,
                source,
                score,
                (team_id, rep_id, queue),
                (amount, currency),
            )| LeadDisposition {
                lead_id: LeadId::from(lead_id),
                outcome,
                reason_code,
                note,
                actor,
                occurred_at,
                source,
                score,
                team_id,
                rep_id,
                queue,
                amount,
                currency,
            },
        )
        .boxed()
}

fn account_owner(full: bool) -> BoxedStrategy<AccountOwner> {
    (
        maybe(text(full), full),
        maybe(text(full), full),
        text(full),
        time(),
    )
        .prop_map(
            |(domain, account_name, owner_rep_id, updated_at)| AccountOwner {
                domain,
                account_name,
                owner_rep_id: RepId::from(owner_rep_id),
                updated_at,
            },
        )
        .boxed()
}

fn rep_overrides(full: bool) -> BoxedStrategy<RepOverrides> {
    (
        text(true),
        maybe(flag(full), full),
        maybe(flag(full), full),
        maybe(count(full), full),
        time(),
        maybe(text(full), full),
    )
        .prop_map(
            |(rep_id, active, available, capacity, updated_at, changed_by)| RepOverrides {
                rep_id: RepId::from(rep_id),
                active,
                available,
                capacity,
                updated_at,
                changed_by,
            },
        )
        .boxed()
}

/// The events of one kind. Exhaustive: a new kind is a compile error until it is built here.
fn events_of(kind: EventKind, full: bool) -> BoxedStrategy<Emitted> {
    match kind {
        EventKind::LeadCreated => lead(full).prop_map(Emitted::LeadCreated).boxed(),
        EventKind::LeadAssigned => lead_assigned(full)
            .prop_map(|e| Emitted::LeadAssigned(Box::new(e)))
            .boxed(),
        EventKind::SlaBreached => sla_breached(full).prop_map(Emitted::SlaBreached).boxed(),
        EventKind::SlaReminder => sla_reminder(full).prop_map(Emitted::SlaReminder).boxed(),
        EventKind::LeadDisposition => lead_disposition(full)
            .prop_map(Emitted::LeadDisposition)
            .boxed(),
    }
}

fn any_event(full: bool) -> BoxedStrategy<Emitted> {
    proptest::strategy::Union::new(EventKind::ALL.into_iter().map(|kind| events_of(kind, full)))
        .boxed()
}

/// Walks a decoded event: every handoff message it contains (`seen`), and every field of
/// those messages that is not set (`unset`, as `Message.field`).
fn walk(message: &DynamicMessage, seen: &mut BTreeSet<String>, unset: &mut BTreeSet<String>) {
    let descriptor = message.descriptor();
    if descriptor.package_name() != PACKAGE {
        return;
    }
    seen.insert(descriptor.full_name().to_owned());
    for field in descriptor.fields() {
        if !message.has_field(&field) {
            unset.insert(format!("{}.{}", descriptor.full_name(), field.name()));
            continue;
        }
        let nested: Vec<DynamicMessage> = match &*message.get_field(&field) {
            Value::Message(m) => vec![m.clone()],
            Value::List(items) => items
                .iter()
                .filter_map(|v| v.as_message().cloned())
                .collect(),
            Value::Map(entries) => entries
                .values()
                .filter_map(|v| v.as_message().cloned())
                .collect(),
            _ => Vec::new(),
        };
        for m in &nested {
            walk(m, seen, unset);
        }
    }
}

/// The handoff messages an event's payload can contain, by the descriptors.
fn reachable(descriptor: &MessageDescriptor, out: &mut BTreeSet<String>) {
    if descriptor.package_name() != PACKAGE || !out.insert(descriptor.full_name().to_owned()) {
        return;
    }
    for field in descriptor.fields() {
        if let Kind::Message(nested) = field.kind() {
            if nested.is_map_entry() {
                if let Kind::Message(value) = nested.map_entry_value_field().kind() {
                    reachable(&value, out);
                }
            } else {
                reachable(&nested, out);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever values the services put in an event, a strict consumer generated from
    /// proto/ reads it: every field the Rust side emits is in proto/, with its type.
    #[test]
    fn every_event_the_services_emit_decodes_strictly(event in any_event(false)) {
        let payload = event.encode();
        contract().decode(event.kind(), &payload).map_err(TestCaseError::fail)?;
    }

    /// The reverse: with everything populated, every field proto/ defines is emitted, so a
    /// field added to proto/ (or renamed on one side) but not produced fails here.
    #[test]
    fn with_every_field_populated_every_field_proto_defines_is_emitted(event in any_event(true)) {
        let kind = event.kind();
        let message = contract().decode(kind, &event.encode()).map_err(TestCaseError::fail)?;
        let (mut seen, mut unset) = (BTreeSet::new(), BTreeSet::new());
        walk(&message, &mut seen, &mut unset);
        prop_assert!(
            unset.is_empty(),
            "{} fields defined in proto/ but not emitted by the Rust type: {:?}",
            kind.proto_message(),
            unset
        );
        let mut expected = BTreeSet::new();
        reachable(&contract().message(kind).map_err(TestCaseError::fail)?, &mut expected);
        prop_assert_eq!(seen, expected);
    }

    /// A producer generated from proto/ writes canonical proto3 JSON (lowerCamelCase names,
    /// defaults left out) and may leave `id` and `received_at` unset: the router's decoder
    /// reads the same lead, with the id and receipt time the record gives it.
    #[test]
    fn a_lead_from_a_producer_generated_from_proto_is_the_same_lead_to_the_router(
        lead in lead(false),
        leave_unset in any::<bool>(),
        record_time in time(),
        offset in 0_i64..i64::MAX,
    ) {
        let payload = Emitted::LeadCreated(lead.clone()).encode();
        let mut message = contract()
            .decode(EventKind::LeadCreated, &payload)
            .map_err(TestCaseError::fail)?;
        if leave_unset {
            message.clear_field_by_name("id");
            message.clear_field_by_name("received_at");
        }
        let canonical = serde_json::to_vec(&message).unwrap();
        let decoded: LeadPayload = serde_json::from_slice(&canonical).map_err(|e| {
            TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&canonical)))
        })?;
        let origin = RecordOrigin {
            ce_source: None,
            ce_id: None,
            topic: "prod.lead.created",
            partition: 0,
            offset,
            timestamp: Some(record_time),
        };
        let expected = if leave_unset || lead.id.as_str().is_empty() {
            Lead {
                id: LeadId::derived_from(&origin),
                received_at: if leave_unset { record_time } else { lead.received_at },
                ..lead
            }
        } else {
            lead
        };
        prop_assert_eq!(decoded.into_lead(&origin), Ok(expected));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What the Rust type writes (the router stores owners in this form) is a strict
    /// `handoff.v1.AccountOwner`; with every field populated, every field proto/ defines is
    /// written.
    #[test]
    fn account_owners_written_by_the_rust_type_decode_strictly(
        owner in account_owner(false),
        full in account_owner(true),
    ) {
        let payload = serde_json::to_vec(&owner).unwrap();
        contract().decode_as(ACCOUNT_OWNER_MESSAGE, &payload).map_err(TestCaseError::fail)?;
        let message = contract()
            .decode_as(ACCOUNT_OWNER_MESSAGE, &serde_json::to_vec(&full).unwrap())
            .map_err(TestCaseError::fail)?;
        let (mut seen, mut unset) = (BTreeSet::new(), BTreeSet::new());
        walk(&message, &mut seen, &mut unset);
        prop_assert!(unset.is_empty(), "AccountOwner fields not written: {:?}", unset);
    }

    /// A CRM connector generated from proto/ writes canonical proto3 JSON (lowerCamelCase,
    /// defaults left out): the router's decoder reads the same owner. (An empty
    /// `owner_rep_id`, left out, is refused: a tombstone removes an owner.)
    #[test]
    fn an_account_owner_from_a_producer_generated_from_proto_is_the_same_owner_to_the_router(
        owner in account_owner(false),
        owner_rep_id in text(true),
    ) {
        let owner = AccountOwner { owner_rep_id: RepId::from(owner_rep_id), ..owner };
        let message = contract()
            .decode_as(ACCOUNT_OWNER_MESSAGE, &serde_json::to_vec(&owner).unwrap())
            .map_err(TestCaseError::fail)?;
        let canonical = serde_json::to_vec(&message).unwrap();
        let decoded: AccountOwner = serde_json::from_slice(&canonical).map_err(|e| {
            TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&canonical)))
        })?;
        // proto3 has no "set but empty" for a string: "" and unset are both none.
        let expected = AccountOwner {
            domain: owner.domain.clone().filter(|d| !d.is_empty()),
            account_name: owner.account_name.clone().filter(|n| !n.is_empty()),
            ..owner
        };
        prop_assert_eq!(decoded, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// What ingest publishes on `rep.state` is a strict `handoff.v1.RepOverrides` (with
    /// every field populated, every field proto/ defines is written), and its canonical
    /// proto3 JSON form reads back as the same overrides (what a rebuild applies).
    #[test]
    fn rep_overrides_decode_strictly_and_read_back_the_same(
        overrides in rep_overrides(false),
        full in rep_overrides(true),
    ) {
        let message = contract()
            .decode_as(REP_OVERRIDES_MESSAGE, &serde_json::to_vec(&full).unwrap())
            .map_err(TestCaseError::fail)?;
        let (mut seen, mut unset) = (BTreeSet::new(), BTreeSet::new());
        walk(&message, &mut seen, &mut unset);
        prop_assert!(unset.is_empty(), "RepOverrides fields not written: {:?}", unset);

        let message = contract()
            .decode_as(REP_OVERRIDES_MESSAGE, &serde_json::to_vec(&overrides).unwrap())
            .map_err(TestCaseError::fail)?;
        let canonical = serde_json::to_vec(&message).unwrap();
        let decoded: RepOverrides = serde_json::from_slice(&canonical).map_err(|e| {
            TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&canonical)))
        })?;
        let expected = RepOverrides {
            changed_by: overrides.changed_by.clone().filter(|n| !n.is_empty()),
            ..overrides
        };
        prop_assert_eq!(decoded, expected);
    }
}

/// Every message proto/ defines is carried by some event (or is `account.owner`'s or
/// `rep.state`'s), and
/// every enum value (but the `_UNSPECIFIED` zero) is a variant the Rust side emits, and
/// nothing else.
#[test]
fn every_message_and_enum_value_of_proto_is_emitted() {
    let pool = contract().pool();
    let mut carried = BTreeSet::new();
    for kind in EventKind::ALL {
        reachable(&contract().message(kind).unwrap(), &mut carried);
    }
    for message in [ACCOUNT_OWNER_MESSAGE, REP_OVERRIDES_MESSAGE] {
        reachable(&contract().message_named(message).unwrap(), &mut carried);
    }
    let defined: BTreeSet<String> = pool
        .all_messages()
        .filter(|m| m.package_name() == PACKAGE && !m.is_map_entry())
        .map(|m| m.full_name().to_owned())
        .collect();
    assert_eq!(defined, carried, "messages in proto/ that no event carries");

    let names = |values: Vec<serde_json::Value>| -> BTreeSet<String> {
        values
            .into_iter()
            .map(|v| v.as_str().expect("enums are strings").to_owned())
            .collect()
    };
    let rust: BTreeMap<&str, BTreeSet<String>> = BTreeMap::from([
        (
            "handoff.v1.LeadDisposition.Outcome",
            names(outcomes().iter().map(|o| serde_json::json!(o)).collect()),
        ),
        (
            "handoff.v1.LeadDisposition.ActorKind",
            names(actor_kinds().iter().map(|k| serde_json::json!(k)).collect()),
        ),
        (
            "handoff.v1.Sla",
            names(slas().iter().map(|s| serde_json::json!(s)).collect()),
        ),
        (
            // On the wire only inside FirstTouchClock (the configuration spells it in
            // lower case).
            "handoff.v1.SlaClock",
            names(
                sla_clocks()
                    .into_iter()
                    .map(|clock| {
                        serde_json::json!(FirstTouchClock {
                            clock,
                            started_at: Utc::now(),
                            due_at: Utc::now(),
                            summary: String::new(),
                        })["clock"]
                            .clone()
                    })
                    .collect(),
            ),
        ),
    ]);
    let proto: BTreeMap<String, BTreeSet<String>> = pool
        .all_enums()
        .filter(|e| e.package_name() == PACKAGE)
        .map(|e| {
            let values = e
                .values()
                .filter(|v| v.number() != 0)
                .map(|v| v.name().to_owned())
                .collect();
            (e.full_name().to_owned(), values)
        })
        .collect();
    let rust: BTreeMap<String, BTreeSet<String>> = rust
        .into_iter()
        .map(|(name, values)| (name.to_owned(), values))
        .collect();
    assert_eq!(proto, rust, "enum values of proto/ and of the Rust types");
}
