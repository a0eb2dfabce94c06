use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff::services::{self, Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_domain::lead::{LeadId, RecordOrigin};
use handoff_e2e::contract::Contract;
use handoff_e2e::topics::{Record, TopicReader};
use handoff_e2e::{post_json, Stack, StackOptions};
use handoff_kafka::rdkafka::message::{Header, OwnedHeaders};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Rules under which leads fall through several rules and skip reps before they land, so
/// every explanation field is populated: `dach` has one inactive rep and one without room
/// (its leads go to the fallback team), `partners` has nobody with room (overflow), and
/// `enterprise` breaches its one-second first-touch window.
const FALL_THROUGH_RULES: &str = r#"
[scoring]
mql_threshold = 10
demo_request_fast_lane = true
free_mail_domains = ["gmail.com"]

[[scoring.rules]]
name = "senior_title"
points = 20
when = { title_contains = ["vp", "director"] }

[[scoring.rules]]
name = "big_company"
points = 5
when = { employees = { min = 200 } }

[[scoring.rules]]
name = "pricing_intent"
points = 8
when = { activity = { kind = "pricing_page_view", half_life_days = 7 } }

[[scoring.rules]]
name = "student"
points = -40
when = { title_contains = ["student"] }

[routing]
[[routing.teams]]
id = "enterprise"
members = ["e1"]
first_touch_seconds = 3

[[routing.teams]]
id = "partners"
members = ["p1"]

[[routing.teams]]
id = "dach"
members = ["d1", "d2"]

[[routing.teams]]
id = "sales"
members = ["s1", "s2"]

[[routing.reps]]
id = "e1"
capacity = 10

[[routing.reps]]
id = "p1"
capacity = 0

[[routing.reps]]
id = "d1"
capacity = 10
active = false

[[routing.reps]]
id = "d2"
capacity = 0

[[routing.reps]]
id = "s1"
capacity = 100

[[routing.reps]]
id = "s2"
capacity = 100

[[routing.rules]]
name = "enterprise"
team = "enterprise"
when = { field = "company.employees", min = 10000 }

[[routing.rules]]
name = "partner"
team = "partners"
when = { field = "custom.partner", exists = true }

[[routing.rules]]
name = "dach"
team = "dach"
fallback = "sales"
when = { field = "company.country", in = ["DE", "AT", "CH"] }

[[routing.rules]]
name = "everyone"
team = "sales"
"#;

/// A lead with every field ingest takes filled in.
fn full_lead(n: usize, country: &str, employees: u32, title: &str, email: &str) -> Value {
    json!({
        "contact": {
            "email": email, "first_name": "Ada", "last_name": format!("Lead{n}"),
            "phone": "+49 30 1234567", "title": title
        },
        "company": {
            "name": "Acme", "domain": "acme.io", "employees": employees, "industry": "software",
            "country": country, "region": "BE", "postal_code": "10115"
        },
        "source": {
            "kind": "web_form", "name": "pricing-page", "campaign": "spring-launch",
            "utm": { "source": "linkedin", "medium": "paid-social", "campaign": "q2-abm",
                     "term": "lead routing", "content": "banner-a" }
        },
        "engagement": {
            "demo_request": false, "pricing_page_views": 3, "content_downloads": 1,
            "webinars_attended": 1,
            "activities": [{ "kind": "pricing_page_view", "at": Utc::now(), "detail": "/pricing" }]
        },
        "custom": { "plan": "enterprise" }
    })
}

/// Every record on the stack's event topics, read as a downstream consumer would.
struct EventLog {
    readers: Vec<(EventKind, TopicReader)>,
}

impl EventLog {
    fn new(stack: &Stack) -> Self {
        Self {
            readers: EventKind::ALL
                .into_iter()
                .map(|kind| (kind, stack.reader(kind)))
                .collect(),
        }
    }

    async fn read_until(
        &mut self,
        kind: EventKind,
        what: &str,
        done: impl FnMut(&[Record]) -> bool,
    ) {
        let reader = self
            .readers
            .iter_mut()
            .find_map(|(k, r)| (*k == kind).then_some(r))
            .expect("a reader per kind");
        reader.read_until(Duration::from_secs(60), what, done).await;
    }

    fn records(&self) -> impl Iterator<Item = (EventKind, &Record)> {
        self.readers
            .iter()
            .flat_map(|(kind, reader)| reader.records.iter().map(move |r| (*kind, r)))
    }
}

/// The fields a strict consumer must have seen set at least once in this run, so a run
/// that never produced them cannot pass as proof.
const EXPECT_SET: &[&str] = &[
    "handoff.v1.RoutingExplanation.rules_not_matched",
    "handoff.v1.RoutingExplanation.skipped",
    "handoff.v1.RoutingExplanation.rules_version",
    "handoff.v1.RuleMiss.rule",
    "handoff.v1.RuleMiss.failed_condition",
    "handoff.v1.SkippedRep.reason",
    "handoff.v1.Score.contributions",
    "handoff.v1.Score.fast_lane",
    "handoff.v1.Score.model_version",
    "handoff.v1.LeadAssigned.first_touch_due_at",
    "handoff.v1.SlaBreached.breached_at",
    "handoff.v1.SlaBreached.sla",
    "handoff.v1.SlaReminder.fraction",
    "handoff.v1.SlaReminder.rep_id",
    "handoff.v1.LeadDisposition.score",
    "handoff.v1.LeadDisposition.queue",
    "handoff.v1.LeadDisposition.note",
    "handoff.v1.LeadDisposition.reason_code",
    "handoff.v1.LeadDisposition.actor",
    "handoff.v1.Lead.custom",
    "handoff.v1.Engagement.activities",
    "handoff.v1.Utm.term",
    "handoff.v1.Company.employees",
];

/// Done-when of issue 10: a consumer generated from proto/ by protobuf's own tooling
/// (Python `protobuf`, compiled by `grpc_tools.protoc`, strict JSON parsing) reads every
/// event of a run in which leads fall through rules, skip reps, go to a fallback team, to
/// nurture and to overflow, get dispositions, and breach their SLA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_generated_from_proto_by_protobuf_reads_every_event_of_a_run() {
    let stack = Stack::start(StackOptions {
        rules: FALL_THROUGH_RULES.to_owned(),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let mut topics = EventLog::new(&stack);

    // dach: misses enterprise and partner; d1 inactive, d2 full: fallback team sales.
    let dach = stack
        .post_lead(
            &client,
            &full_lead(1, "DE", 300, "VP Sales", "ada1@acme.io"),
        )
        .await;
    // everyone: misses three rules.
    let elsewhere = stack
        .post_lead(
            &client,
            &full_lead(2, "FR", 300, "Director IT", "ada2@acme.io"),
        )
        .await;
    // enterprise: its three-second window runs out (reminded at 50% and 80% before).
    let enterprise = stack
        .post_lead(
            &client,
            &full_lead(3, "US", 20_000, "VP Ops", "ada3@acme.io"),
        )
        .await;
    // partner: nobody in the team has room, so it waits in overflow.
    let mut partner = full_lead(4, "FR", 300, "VP Sales", "ada4@acme.io");
    partner["custom"]["partner"] = json!("reseller-7");
    stack.post_lead(&client, &partner).await;
    // A student on free-mail: nurture, with the score breakdown.
    stack
        .post_lead(&client, &full_lead(5, "FR", 3, "Student", "ada5@gmail.com"))
        .await;
    // A hand-raiser below the threshold: the fast lane.
    let mut hand_raiser = full_lead(6, "FR", 3, "Engineer", "ada6@acme.io");
    hand_raiser["engagement"] = json!({ "demo_request": true });
    let fast = stack.post_lead(&client, &hand_raiser).await;

    let assigned = [&dach, &elsewhere, &enterprise, &fast];
    topics
        .read_until(EventKind::LeadAssigned, "four assignments", |records| {
            let leads: BTreeSet<String> = records
                .iter()
                .filter_map(|r| r.json()["lead_id"].as_str().map(str::to_owned))
                .collect();
            assigned.iter().all(|id| leads.contains(id.as_str()))
        })
        .await;
    for (lead, report) in [
        (
            &elsewhere,
            json!({ "outcome": "contacted", "note": "left a voicemail", "actor": "crm", "actor_id": "sfdc" }),
        ),
        (
            &dach,
            json!({ "outcome": "rejected", "reason_code": "no_budget", "note": "call back in Q3" }),
        ),
    ] {
        let url = format!("{}/v1/leads/{lead}/dispositions", stack.api());
        let (status, body) = post_json(&client, &url, &report).await;
        assert_eq!(status, 202, "{body}");
    }
    topics
        .read_until(
            EventKind::LeadDisposition,
            "nurture, overflow and two reports",
            |records| {
                let outcomes: BTreeSet<String> = records
                    .iter()
                    .filter_map(|r| r.json()["outcome"].as_str().map(str::to_owned))
                    .collect();
                ["UNQUALIFIED", "OVERFLOWED", "CONTACTED", "REJECTED"]
                    .iter()
                    .all(|o| outcomes.contains(*o))
            },
        )
        .await;
    topics
        .read_until(
            EventKind::SlaReminder,
            "the enterprise reminders",
            |records| {
                records
                    .iter()
                    .filter(|r| r.json()["lead_id"] == enterprise.as_str())
                    .count()
                    >= 2
            },
        )
        .await;
    topics
        .read_until(EventKind::SlaBreached, "the enterprise breach", |records| {
            records
                .iter()
                .any(|r| r.json()["lead_id"] == enterprise.as_str())
        })
        .await;
    topics
        .read_until(EventKind::LeadCreated, "six leads", |records| {
            records.len() >= 6
        })
        .await;

    // The Rust-side strict check, then protobuf's own.
    let contract = Contract::load();
    let dir = std::env::temp_dir().join("handoff-e2e").join(&stack.id);
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("events.jsonl");
    let mut file = std::fs::File::create(&dump).unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, record) in topics.records() {
        contract.check(record).unwrap();
        let line = json!({
            "topic": kind.topic_suffix(),
            "ce_type": record.header("ce_type"),
            "payload": String::from_utf8(record.payload.clone()).expect("UTF-8 payload"),
        });
        writeln!(file, "{line}").unwrap();
        *counts.entry(kind.topic_suffix()).or_default() += 1;
    }
    drop(file);
    assert!(
        counts.values().all(|n| *n > 0) && counts.len() == EventKind::ALL.len(),
        "{counts:?}"
    );
    let explanation = topics
        .records()
        .filter(|(kind, _)| *kind == EventKind::LeadAssigned)
        .map(|(_, r)| r.json())
        .find(|e| e["lead_id"] == dach.as_str())
        .unwrap()["explanation"]
        .clone();
    assert_eq!(
        explanation["rules_not_matched"].as_array().map(Vec::len),
        Some(2),
        "{explanation}"
    );
    assert_eq!(
        explanation["skipped"].as_array().map(Vec::len),
        Some(2),
        "{explanation}"
    );

    run_strict_consumer(&dump);
    stack.stop().await.unwrap();
}

/// Runs tests/contract/strict_consumer.py over a dump; it installs its own requirements.
fn run_strict_consumer(dump: &std::path::Path) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contract/strict_consumer.py");
    let python = std::env::var("HANDOFF_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg(dump)
        .arg("--expect-set")
        .args(EXPECT_SET)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (Python 3 with pip is needed): {e}"));
    assert!(
        output.status.success(),
        "the strict consumer generated from proto/ rejected an event of the run ({}):\n{}{}",
        dump.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A producer that follows proto/ but leaves `id` and `received_at` unset, and sets no
/// CloudEvents headers, gets its lead assigned: the id is derived from the record and the
/// receipt time is the record's timestamp. Reading the same records again (a replay from
/// the start of the topic) assigns nobody a second time, and a producer's retry with the
/// same `ce_id` is the same lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_without_id_or_receipt_time_is_assigned_once_however_often_it_is_read() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Router),
        ..StackOptions::default()
    })
    .await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.env.kafka)
        .create()
        .unwrap();
    let topic = stack.topics.of(EventKind::LeadCreated);
    // Canonical proto3 JSON, as a generated producer writes it: lowerCamelCase, no id,
    // no receivedAt.
    let lead = |n: usize| {
        serde_json::to_vec(&json!({
            "contact": { "email": format!("buyer{n}@example.com"), "firstName": "Bo", "title": "VP Sales" },
            "company": { "country": "FR", "postalCode": "75001" },
            "source": { "kind": "crm", "name": "crm-sync" }
        }))
        .unwrap()
    };
    let created_at = DateTime::parse_from_rfc3339("2026-11-22T09:30:00.123Z")
        .unwrap()
        .with_timezone(&Utc);
    let bare = lead(1);
    let delivery = producer
        .send(
            FutureRecord::<(), _>::to(&topic)
                .payload(&bare)
                .timestamp(created_at.timestamp_millis()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    // The same event twice, as a producer retrying after a timeout would send it.
    let retried = lead(2);
    for _ in 0..2 {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "ce_id",
                value: Some("crm-evt-42"),
            })
            .insert(Header {
                key: "ce_source",
                value: Some("crm-sync"),
            });
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .payload(&retried)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let bare_id = LeadId::derived_from(&RecordOrigin {
        ce_source: None,
        ce_id: None,
        topic: &topic,
        partition: delivery.partition,
        offset: delivery.offset,
        timestamp: Some(created_at),
    });
    let retried_id = LeadId::derived_from(&RecordOrigin {
        ce_source: Some("crm-sync"),
        ce_id: Some("crm-evt-42"),
        topic: &topic,
        partition: 0,
        offset: 0,
        timestamp: None,
    });

    // Three records, two leads: the retry is published again under the same event id.
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    assigned
        .read_until(Duration::from_secs(30), "three lead.assigned", |r| {
            r.len() >= 3
        })
        .await;
    let check = |records: &[Record]| {
        let mut lead_of_event: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for record in records {
            lead_of_event
                .entry(record.header("ce_id").unwrap().to_owned())
                .or_default()
                .insert(record.json()["lead_id"].as_str().unwrap().to_owned());
        }
        let leads: BTreeSet<String> = lead_of_event.values().flatten().cloned().collect();
        assert_eq!(
            leads,
            BTreeSet::from([bare_id.to_string(), retried_id.to_string()]),
            "one lead per record identity"
        );
        assert_eq!(
            lead_of_event.len(),
            2,
            "one assignment event per lead: {lead_of_event:?}"
        );
    };
    check(&assigned.records);
    let bare_event = assigned
        .records
        .iter()
        .map(Record::json)
        .find(|e| e["lead_id"] == bare_id.as_str())
        .unwrap();
    assert_eq!(
        bare_event["received_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        Some(created_at),
        "received_at is the record's timestamp"
    );
    let (config_path, id) = (stack.config_path.clone(), stack.id.clone());
    stack.stop().await.unwrap();

    // A router in a fresh consumer group reads the topic again from its start: the same
    // records, delivered again, against the same Redis.
    let loaded = handoff_config::load(
        &config_path,
        [(
            "HANDOFF_KAFKA_GROUP_PREFIX".to_owned(),
            format!("{id}-replay"),
        )],
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let running = services::start(ServiceSet::only(Service::Router), loaded, shutdown.clone())
        .await
        .unwrap();
    let replay = tokio::spawn(running.wait());
    assigned
        .read_until(Duration::from_secs(30), "the replayed records", |r| {
            r.len() >= 6
        })
        .await;
    check(&assigned.records);
    shutdown.cancel();
    replay.await.unwrap().unwrap();
}
