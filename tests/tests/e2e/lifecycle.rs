//! One lifecycle per lead, moved forward by every service: queues that drain by
//! themselves, capacity that comes back, decisions that are never made twice, touches that
//! count whenever they arrive, and a timeline that tells what happened.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Datelike, Duration as Span, Timelike, Utc};
use handoff::services::{Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_e2e::topics::{Record, TopicReader};
use handoff_e2e::{eventually, post_json, qualified_lead, Stack, StackOptions, RULES};
use handoff_kafka::rdkafka::message::{Header, OwnedHeaders};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// RULES with every rep's capacity set: `a`, `b` (and the inactive `d`) to `ab`, `c` to `c`.
fn capacities(ab: u32, c: u32) -> String {
    RULES
        .replace("capacity = 100", &format!("capacity = {ab}"))
        .replace("capacity = 20", &format!("capacity = {c}"))
}

async fn report(stack: &Stack, lead: &str, body: Value) {
    let url = format!("{}/v1/leads/{lead}/dispositions", stack.api());
    let (status, answer) = post_json(&handoff_e2e::client(), &url, &body).await;
    assert_eq!(status, 202, "{answer}");
}

fn of_lead<'a>(records: &'a [Record], lead: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.header("ce_subject") == Some(lead))
        .collect()
}

async fn assignment_of(reader: &mut TopicReader, lead: &str) -> Value {
    let records = reader
        .read_until(WAIT, &format!("the assignment of {lead}"), |r| {
            !of_lead(r, lead).is_empty()
        })
        .await;
    of_lead(records, lead)[0].json()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// A full team's lead waits in the team's queue and is assigned, with its wait, as soon as
/// a rep's first touch frees capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_teams_lead_waits_and_is_assigned_when_a_rep_touches_a_lead() {
    let stack = Stack::start(StackOptions {
        rules: capacities(1, 0),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let first = stack.post_lead(&client, &qualified_lead(1)).await;
    let second = stack.post_lead(&client, &qualified_lead(2)).await;
    let first_rep = assignment_of(&mut assigned, &first).await["rep_id"].clone();
    assignment_of(&mut assigned, &second).await;

    let waiting = stack.post_lead(&client, &qualified_lead(3)).await;
    let view = eventually(WAIT, "the third lead waiting", || async {
        let view = stack.lead_view(&waiting).await;
        (view["state"] == "waiting").then_some(view)
    })
    .await;
    assert_eq!(view["queue"], "sales-overflow");
    let queue = stack.queue_view("sales-overflow").await;
    assert_eq!(queue["depth"], 1, "{queue}");
    assert_eq!(queue["leads"][0]["lead_id"], waiting.as_str());
    assert!(of_lead(assigned.read_for(Duration::from_secs(1)).await, &waiting).is_empty());

    report(&stack, &first, json!({"outcome": "contacted"})).await;
    let event = assignment_of(&mut assigned, &waiting).await;
    assert_eq!(
        event["rep_id"], first_rep,
        "the rep whose capacity came back"
    );
    assert_eq!(event["attempt"], 1);
    assert_eq!(event["queue"], "sales-overflow");
    assert!(time(&event["queued_at"]) <= time(&event["assigned_at"]));
    let queue = stack.queue_view("sales-overflow").await;
    assert_eq!(queue["depth"], 0, "{queue}");
    stack.stop().await.unwrap();
}

/// The rules with every rep working only from `open` (UTC) on that day.
fn hours_from(open: DateTime<Utc>) -> String {
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [open.weekday().num_days_from_monday() as usize];
    let hours = format!(
        "working_hours = {{ {day} = [\"{:02}:{:02}-23:59\"] }}",
        open.hour(),
        open.minute()
    );
    RULES
        .replace("capacity = 100\n", &format!("capacity = 100\n{hours}\n"))
        .replace("capacity = 20\n", &format!("capacity = 20\n{hours}\n"))
}

/// A lead that arrives before working hours waits, and is assigned when they begin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_hours_lead_waits_and_is_assigned_when_hours_open() {
    // The next minute boundary at least 10 s away: schedules are written in minutes.
    let now = Utc::now();
    let mut open = now + Span::seconds(60 - i64::from(now.second()));
    open = open.with_nanosecond(0).unwrap();
    if open - now < Span::seconds(10) {
        open += Span::minutes(1);
    }
    assert!(
        open.hour() < 23 || open.minute() < 58,
        "too close to midnight for this test"
    );
    let stack = Stack::start(StackOptions {
        rules: hours_from(open),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let lead = stack.post_lead(&client, &qualified_lead(1)).await;
    eventually(WAIT, "the lead waiting for working hours", || async {
        (stack.lead_view(&lead).await["state"] == "waiting").then_some(())
    })
    .await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(Duration::from_secs(100), "the assignment at opening", |r| {
            !of_lead(r, &lead).is_empty()
        })
        .await;
    let event = of_lead(records, &lead)[0].json();
    let assigned_at = time(&event["assigned_at"]);
    assert!(assigned_at >= open, "assigned before hours opened: {event}");
    assert!(
        assigned_at - open < Span::seconds(5),
        "assigned {} ms after opening",
        (assigned_at - open).num_milliseconds()
    );
    assert_eq!(event["queue"], "sales-overflow");
    stack.stop().await.unwrap();
}

/// A rep reactivated over the API drains their team's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_reactivated_over_the_api_drains_the_teams_queue() {
    // Only `d` could take leads, and `d` is deactivated.
    let stack = Stack::start(StackOptions {
        rules: RULES
            .replace("capacity = 100\nwebhook_url", "capacity = 0\nwebhook_url")
            .replace("capacity = 20", "capacity = 0"),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let leads = [
        stack.post_lead(&client, &qualified_lead(1)).await,
        stack.post_lead(&client, &qualified_lead(2)).await,
    ];
    eventually(WAIT, "two leads waiting", || async {
        (stack.queue_view("sales-overflow").await["depth"] == 2).then_some(())
    })
    .await;
    let response = client
        .put(format!("{}/v1/reps/d", stack.internal()))
        .json(&json!({"active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let mut assigned_at = Vec::new();
    for lead in &leads {
        let event = assignment_of(&mut assigned, lead).await;
        assert_eq!(event["rep_id"], "d");
        assigned_at.push(time(&event["assigned_at"]));
    }
    // Oldest first (events of different leads may sit on different partitions: compare
    // their times, not their order on the topic).
    assert!(assigned_at[0] <= assigned_at[1], "{assigned_at:?}");
    assert_eq!(stack.open_leads("d").await, 2);
    stack.stop().await.unwrap();
}

/// A redelivered lead whose first handling nurtured or queued it is not decided again —
/// not after capacity frees, not after a rules reload — and its first decision's event is
/// replayed with the same id; the queued one is then routed once, from its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_queued_or_nurtured_lead_is_not_decided_again() {
    let stack = Stack::start(StackOptions {
        rules: capacities(0, 0),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let queued = stack.post_lead(&client, &qualified_lead(1)).await;
    let mut student = qualified_lead(2);
    student["contact"]["title"] = json!("Student");
    student["contact"]["email"] = json!("student@gmail.com");
    let nurtured = stack.post_lead(&client, &student).await;
    let mut dispositions = stack.reader(EventKind::LeadDisposition);
    dispositions
        .read_until(WAIT, "OVERFLOWED and UNQUALIFIED", |r| {
            !of_lead(r, &queued).is_empty() && !of_lead(r, &nurtured).is_empty()
        })
        .await;

    // Now everyone qualifies, and a rep has room, but the router must not re-decide.
    let rules_path = stack.config_path.with_file_name("rules.toml");
    let rules = std::fs::read_to_string(&rules_path)
        .unwrap()
        .replace("mql_threshold = 10", "mql_threshold = -100");
    std::fs::write(&rules_path, rules).unwrap();
    eventually(WAIT, "the rules reload", || async {
        let text = client
            .get(format!("{}/metrics", stack.internal()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("handoff_rules_reloads_total{outcome=\"applied\"} 1")
            .then_some(())
    })
    .await;
    let mut created = stack.reader(EventKind::LeadCreated);
    let originals = created
        .read_until(WAIT, "both leads", |r| r.len() >= 2)
        .await
        .to_vec();
    let nurtured_record = of_lead(&originals, &nurtured)[0].clone();
    stack
        .republish(EventKind::LeadCreated, &nurtured_record)
        .await;
    let records = dispositions
        .read_until(WAIT, "the replayed UNQUALIFIED", |r| {
            of_lead(r, &nurtured).len() >= 2
        })
        .await
        .to_vec();
    let ids: BTreeSet<&str> = of_lead(&records, &nurtured)
        .iter()
        .filter_map(|r| r.header("ce_id"))
        .collect();
    assert_eq!(ids.len(), 1, "the same event, replayed");
    assert_eq!(
        of_lead(&records, &nurtured)[1].json()["outcome"],
        "UNQUALIFIED"
    );

    let queued_record = of_lead(&originals, &queued)[0].clone();
    stack
        .republish(EventKind::LeadCreated, &queued_record)
        .await;
    let records = dispositions
        .read_until(WAIT, "the replayed OVERFLOWED", |r| {
            of_lead(r, &queued).len() >= 2
        })
        .await
        .to_vec();
    let ids: BTreeSet<&str> = of_lead(&records, &queued)
        .iter()
        .filter_map(|r| r.header("ce_id"))
        .collect();
    assert_eq!(ids.len(), 1, "the same event, replayed");

    // Room for one: the queued lead is routed once, from its queue; the nurtured never.
    let response = client
        .put(format!("{}/v1/reps/a", stack.internal()))
        .json(&json!({"capacity": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let event = assignment_of(&mut assigned, &queued).await;
    assert_eq!(event["queue"], "sales-overflow");
    stack
        .republish(EventKind::LeadCreated, &queued_record)
        .await;
    let records = assigned.read_for(Duration::from_secs(3)).await.to_vec();
    let assignments: BTreeSet<&str> = of_lead(&records, &queued)
        .iter()
        .filter_map(|r| r.header("ce_id"))
        .collect();
    assert_eq!(assignments.len(), 1, "assigned once");
    assert!(
        of_lead(&records, &nurtured).is_empty(),
        "a nurtured lead stays nurtured"
    );
    assert_eq!(stack.lead_view(&nurtured).await["state"], "unqualified");
    stack.stop().await.unwrap();
}

/// A rep who calls before the router has assigned the lead: the touch is recorded, the
/// assignment that comes later sees it, no clock runs, no breach comes, and the rep's
/// capacity is not held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_before_the_assignment_prevents_the_breach_and_frees_capacity() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::of(&[Service::Ingest, Service::Sla]),
        first_touch_seconds: 2,
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let lead = stack.post_lead(&client, &qualified_lead(1)).await;
    report(
        &stack,
        &lead,
        json!({"outcome": "contacted", "actor": "crm", "actor_id": "sfdc"}),
    )
    .await;
    eventually(
        WAIT,
        "the touch recorded on a lead not yet assigned",
        || async {
            let view = stack.lead_view(&lead).await;
            (view["touched_at"].is_string() && view["state"] == "received").then_some(())
        },
    )
    .await;

    let router = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Router),
        id: Some(stack.id.clone()),
        first_touch_seconds: 2,
        ..StackOptions::default()
    })
    .await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let event = assignment_of(&mut assigned, &lead).await;
    let rep = event["rep_id"].as_str().unwrap().to_owned();
    let view = stack.lead_view(&lead).await;
    assert_eq!(view["state"], "touched", "{view}");
    assert_eq!(stack.open_leads(&rep).await, 0, "capacity is not held");
    // Past the window (2 s) and the poller's interval: no breach.
    let mut breached = stack.reader(EventKind::SlaBreached);
    let records = breached.read_for(Duration::from_secs(4)).await;
    assert!(
        of_lead(records, &lead).is_empty(),
        "no breach for a touched lead"
    );
    router.stop().await.unwrap();
    stack.stop().await.unwrap();
}

/// After a run with touches, closes and reassignments, every rep's capacity count is
/// exactly the leads that are theirs and open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_equals_the_open_leads_after_touches_reassignments_and_closes() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let mut leads = Vec::new();
    for n in 0..24 {
        leads.push(stack.post_lead(&client, &qualified_lead(n)).await);
    }
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(WAIT, "24 assignments", |r| r.len() >= 24)
        .await
        .to_vec();
    let events: BTreeMap<String, Value> = records
        .iter()
        .map(|r| (r.header("ce_subject").unwrap().to_owned(), r.json()))
        .collect();
    // Touch a third, close a third (some touched first), reassign four elsewhere.
    for (i, lead) in leads.iter().enumerate() {
        match i % 3 {
            0 => report(&stack, lead, json!({"outcome": "contacted"})).await,
            1 => {
                if i % 2 == 0 {
                    report(&stack, lead, json!({"outcome": "accepted"})).await;
                }
                report(&stack, lead, json!({"outcome": "converted"})).await;
            }
            _ => {}
        }
    }
    // Another producer (a CRM's own assignment rules) reassigns four untouched leads to
    // `b`: the previous rep's capacity goes with them.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.env.kafka)
        .create()
        .unwrap();
    let reassigned: Vec<&String> = leads.iter().skip(2).step_by(3).take(4).collect();
    for lead in &reassigned {
        let mut event = events[lead.as_str()].clone();
        event["attempt"] = json!(2);
        event["rep_id"] = json!("b");
        event["assigned_at"] = json!(Utc::now().to_rfc3339());
        let payload = serde_json::to_vec(&event).unwrap();
        producer
            .send(
                FutureRecord::to(&stack.topics.of(EventKind::LeadAssigned))
                    .key(lead.as_str())
                    .payload(&payload)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "ce_type",
                        value: Some(EventKind::LeadAssigned.ce_type()),
                    })),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let expected_states = |i: usize| match i % 3 {
        0 => "touched",
        1 => "closed",
        _ => "assigned",
    };
    let views = eventually(WAIT, "every report applied", || async {
        let mut views = Vec::new();
        for (i, lead) in leads.iter().enumerate() {
            let view = stack.lead_view(lead).await;
            let reassigned_here = reassigned.contains(&lead);
            if view["state"] != expected_states(i) || (reassigned_here && view["attempt"] != 2) {
                return None;
            }
            views.push(view);
        }
        Some(views)
    })
    .await;
    let mut expected: BTreeMap<&str, i64> =
        ["a", "b", "c", "d"].into_iter().map(|r| (r, 0)).collect();
    for view in &views {
        if view["state"] == "assigned" {
            *expected.get_mut(view["rep_id"].as_str().unwrap()).unwrap() += 1;
        }
    }
    let mut actual = BTreeMap::new();
    for rep in ["a", "b", "c", "d"] {
        actual.insert(rep, stack.open_leads(rep).await);
    }
    assert_eq!(actual, expected);
    assert_eq!(expected.values().sum::<i64>(), 8);
    stack.stop().await.unwrap();
}

/// `GET /v1/leads/{id}` tells a lead's story: every step, in order, with its time; the
/// assignment with its explanation and rules version; a report after close is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_of_a_lead_shows_every_step() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let lead = stack.post_lead(&client, &qualified_lead(1)).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    assignment_of(&mut assigned, &lead).await;
    report(&stack, &lead, json!({"outcome": "contacted"})).await;
    eventually(WAIT, "the touch applied", || async {
        (stack.lead_view(&lead).await["state"] == "touched").then_some(())
    })
    .await;
    report(&stack, &lead, json!({"outcome": "converted"})).await;
    let view = eventually(WAIT, "the close applied", || async {
        let view = stack.lead_view(&lead).await;
        (view["state"] == "closed").then_some(view)
    })
    .await;
    let steps: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["received", "assigned", "contacted", "converted"],
        "{view}"
    );
    let times: Vec<DateTime<Utc>> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| time(&s["at"]))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in order: {times:?}"
    );
    let assignment = &view["timeline"][1];
    assert_eq!(assignment["attempt"], 1);
    assert!(assignment["event"]["explanation"]["rules_version"].is_string());
    assert_eq!(assignment["event"]["explanation"]["rule"], "everyone");
    assert_eq!(view["outcome"], "converted");
    assert!(view["score"]["contributions"].is_array(), "{view}");
    assert!(view["touched_at"].is_string() && view["closed_at"].is_string());

    // Closed: nothing more can be reported.
    let url = format!("{}/v1/leads/{lead}/dispositions", stack.api());
    let (status, body) = post_json(&client, &url, &json!({"outcome": "contacted"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "lead_closed");
    // Unknown leads are 404.
    assert!(stack.lead_view("no-such-lead").await.is_null());
    stack.stop().await.unwrap();
}

/// Leads nobody was assigned can be closed too (a CRM recycles a nurtured lead, rejects a
/// waiting one): the report applies once, and a closed waiting lead leaves its queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassigned_leads_can_be_closed_and_leave_their_queue() {
    let stack = Stack::start(StackOptions {
        rules: capacities(0, 0),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let waiting = stack.post_lead(&client, &qualified_lead(1)).await;
    let mut student = qualified_lead(2);
    student["contact"]["title"] = json!("Student");
    let nurtured = stack.post_lead(&client, &student).await;
    for (lead, state) in [(&waiting, "waiting"), (&nurtured, "unqualified")] {
        eventually(WAIT, state, || async {
            (stack.lead_view(lead).await["state"] == state).then_some(())
        })
        .await;
    }
    report(
        &stack,
        &waiting,
        json!({"outcome": "rejected", "reason_code": "duplicate", "actor": "crm", "actor_id": "sfdc"}),
    )
    .await;
    report(
        &stack,
        &nurtured,
        json!({"outcome": "recycled", "actor": "crm", "actor_id": "sfdc"}),
    )
    .await;
    for lead in [&waiting, &nurtured] {
        eventually(WAIT, "closed", || async {
            (stack.lead_view(lead).await["state"] == "closed").then_some(())
        })
        .await;
    }
    assert_eq!(stack.queue_view("sales-overflow").await["depth"], 0);
    // Closed means closed: the API refuses a later report.
    let url = format!("{}/v1/leads/{nurtured}/dispositions", stack.api());
    let (status, _) = post_json(&client, &url, &json!({"outcome": "accepted"})).await;
    assert_eq!(status, 409);
    stack.stop().await.unwrap();
}
