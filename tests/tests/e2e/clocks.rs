//! Reminders and clocks: reminders before a deadline (none once the lead is touched), the
//! disposition SLA (a breach when no outcome comes, none when one does), and business-hours
//! clocks (the window pauses outside the rep's working hours).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Datelike, Duration as Span, Timelike, Utc};
use handoff_domain::events::EventKind;
use handoff_e2e::contract::Contract;
use handoff_e2e::topics::Record;
use handoff_e2e::{eventually, post_json, qualified_lead, Stack, StackOptions, RULES};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

fn of_lead<'a>(records: &'a [Record], lead: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.header("ce_subject") == Some(lead))
        .collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn report(stack: &Stack, lead: &str, body: Value) {
    let url = format!("{}/v1/leads/{lead}/dispositions", stack.api());
    let (status, answer) = post_json(&handoff_e2e::client(), &url, &body).await;
    assert_eq!(status, 202, "{answer}");
}

/// Every webhook request: (path, JSON body).
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    body: Bytes,
) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver
        .requests
        .lock()
        .unwrap()
        .push((uri.path().to_owned(), body));
    StatusCode::OK
}

async fn start_receiver() -> (String, Receiver) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hooks/{who}", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, receiver)
}

/// With a 6-second window and the default reminders (50% and 80%): the untouched lead's
/// rep is reminded twice, at those fractions and before the breach, on their own webhook;
/// a lead touched before the first reminder gets none (and no breach).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_arrive_before_the_breach_and_not_after_a_touch() {
    // Long enough that a loaded machine still touches the second lead before its first
    // reminder (at half of it) is due.
    const SLA_SECONDS: u32 = 10;
    let (base, receiver) = start_receiver().await;
    let stack = Stack::start(StackOptions {
        first_touch_seconds: SLA_SECONDS,
        webhook_base: Some(base),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let untouched = stack.post_lead(&client, &qualified_lead(1)).await;
    let touched = stack.post_lead(&client, &qualified_lead(2)).await;
    // Touched as soon as it is assigned (the store's view is quicker than a new consumer).
    eventually(WAIT, "the second lead assigned", || async {
        (stack.lead_view(&touched).await["state"] == "assigned").then_some(())
    })
    .await;
    report(
        &stack,
        &touched,
        json!({ "outcome": "contacted", "actor": "rep", "actor_id": "a" }),
    )
    .await;
    let touched_at = Utc::now();
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(WAIT, "both assignments", |r| {
            !of_lead(r, &untouched).is_empty() && !of_lead(r, &touched).is_empty()
        })
        .await
        .to_vec();
    let assignment = |lead: &str| of_lead(&records, lead)[0].json();
    let touched_assignment = assignment(&touched);
    // Before the first reminder (half the SLA) was due, else a reminder would be right.
    assert!(
        touched_at
            < time(&touched_assignment["assigned_at"])
                + Span::milliseconds(i64::from(SLA_SECONDS) * 500),
        "the touch came too late to mean anything: touched at {touched_at}, {touched_assignment}"
    );
    let untouched_assignment = assignment(&untouched);
    let assigned_at = time(&untouched_assignment["assigned_at"]);
    let due = time(&untouched_assignment["first_touch_due_at"]);

    let mut breaches = stack.reader(EventKind::SlaBreached);
    let breach = breaches
        .read_until(WAIT, "the untouched lead's breach", |r| {
            !of_lead(r, &untouched).is_empty()
        })
        .await
        .to_vec();
    let breach = of_lead(&breach, &untouched)[0].json();
    assert_eq!(breach["sla"], "FIRST_TOUCH");
    let breached_at = time(&breach["breached_at"]);

    let mut reminders = stack.reader(EventKind::SlaReminder);
    reminders
        .read_until(WAIT, "the untouched lead's two reminders", |r| {
            of_lead(r, &untouched).len() >= 2
        })
        .await;
    // Watch past the touched lead's deadline and a poll or two beyond.
    let quiet = (time(&touched_assignment["first_touch_due_at"]) - Utc::now())
        .to_std()
        .unwrap_or_default()
        + Duration::from_secs(2);
    let records = reminders.read_for(quiet).await.to_vec();
    assert!(
        of_lead(&records, &touched).is_empty(),
        "a touched lead is not reminded"
    );
    let contract = Contract::load();
    let mut mine = of_lead(&records, &untouched);
    // Delivery is at least once with stable ids (a claim whose publish outlived its lease
    // is published again): one event id per fraction, however often it was published.
    let mut ids = BTreeSet::new();
    mine.retain(|r| ids.insert(r.header("ce_id").map(str::to_owned)));
    if ids.len()
        != records
            .iter()
            .filter(|r| r.header("ce_subject") == Some(untouched.as_str()))
            .count()
    {
        eprintln!("a reminder was published more than once (same event id)");
    }
    assert_eq!(
        mine.len(),
        2,
        "one reminder per fraction: {:?}",
        mine.iter()
            .map(|r| (r.header("ce_id").map(str::to_owned), r.json()))
            .collect::<Vec<_>>()
    );
    mine.sort_by(|a, b| {
        a.json()["fraction"]
            .as_f64()
            .partial_cmp(&b.json()["fraction"].as_f64())
            .unwrap()
    });
    for (record, fraction) in mine.iter().zip([0.5, 0.8]) {
        contract.check(record).unwrap();
        let reminder = record.json();
        assert_eq!(reminder["sla"], "FIRST_TOUCH");
        assert_eq!(reminder["attempt"], 1);
        assert_eq!(reminder["rep_id"], untouched_assignment["rep_id"]);
        assert_eq!(reminder["fraction"], fraction);
        // The store keeps deadlines to the millisecond.
        assert_eq!(
            time(&reminder["due_at"]).timestamp_millis(),
            due.timestamp_millis()
        );
        let reminded_at = time(&reminder["reminded_at"]);
        let planned =
            assigned_at + Span::milliseconds((f64::from(SLA_SECONDS) * 1000.0 * fraction) as i64);
        assert!(
            reminded_at >= planned - Span::milliseconds(1),
            "reminded early: {reminder}"
        );
        // Promptness is measured in benchmarks (docs/benchmarks.md); here a reminder must
        // come before the next one was planned, even on a loaded machine.
        assert!(
            reminded_at - planned < Span::milliseconds(i64::from(SLA_SECONDS) * 300),
            "reminded {} ms late",
            (reminded_at - planned).num_milliseconds()
        );
        assert!(reminded_at < breached_at, "reminded after the breach");
    }
    // Its deadline passed during the quiet window: a breach would be on the topic by now.
    let breaches = breaches.read_for(Duration::from_secs(1)).await;
    assert!(
        of_lead(breaches, &touched).is_empty(),
        "the touched lead breached"
    );

    // The rep's own webhook carries both reminders.
    let requests = receiver.requests.clone();
    let delivered = eventually(WAIT, "both reminders delivered to the rep", || {
        let requests = requests.clone();
        let untouched = untouched.clone();
        async move {
            let delivered: Vec<(String, Value)> = requests
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, body)| body["type"] == "sla.reminder")
                .cloned()
                .collect();
            (delivered
                .iter()
                .filter(|(_, b)| b["lead_id"] == untouched.as_str())
                .count()
                >= 2)
                .then_some(delivered)
        }
    })
    .await;
    for (path, body) in &delivered {
        assert_eq!(path, "/hooks/rep", "{body}");
        assert!(
            body["text"].as_str().unwrap().contains("Reminder"),
            "{body}"
        );
    }
    stack.stop().await.unwrap();
}

/// A 3-second disposition window from the first touch: a lead only contacted is reminded
/// at half the window and then breaches the disposition SLA (once); a lead accepted in
/// time does neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disposition_sla_breaches_without_an_outcome_and_not_with_one() {
    let stack = Stack::start(StackOptions {
        sla_config: "disposition_seconds = 3\nreminder_fractions = [0.5]\n".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let mut reminders = stack.reader(EventKind::SlaReminder);
    let client = handoff_e2e::client();
    let silent = stack.post_lead(&client, &qualified_lead(1)).await;
    let accepted = stack.post_lead(&client, &qualified_lead(2)).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(WAIT, "both assignments", |r| {
            !of_lead(r, &silent).is_empty() && !of_lead(r, &accepted).is_empty()
        })
        .await
        .to_vec();
    let rep_of = |lead: &str| of_lead(&records, lead)[0].json()["rep_id"].clone();
    let before_touch = Utc::now();
    for lead in [&silent, &accepted] {
        report(
            &stack,
            lead,
            json!({ "outcome": "contacted", "actor": "rep", "actor_id": rep_of(lead) }),
        )
        .await;
    }
    report(
        &stack,
        &accepted,
        json!({ "outcome": "accepted", "actor": "rep", "actor_id": rep_of(&accepted) }),
    )
    .await;
    let after_reports = Utc::now();
    assert!(
        after_reports < before_touch + Span::seconds(3),
        "the outcome came too late to mean anything"
    );

    let mut breaches = stack.reader(EventKind::SlaBreached);
    breaches
        .read_until(WAIT, "the silent lead's disposition breach", |r| {
            !of_lead(r, &silent).is_empty()
        })
        .await;
    // Well past the accepted lead's would-be deadline.
    let quiet = (after_reports + Span::seconds(5) - Utc::now())
        .to_std()
        .unwrap_or_default();
    let records = breaches.read_for(quiet).await.to_vec();
    let contract = Contract::load();
    let silent_breaches = of_lead(&records, &silent);
    assert_eq!(silent_breaches.len(), 1, "exactly one breach");
    contract.check(silent_breaches[0]).unwrap();
    let breach = silent_breaches[0].json();
    assert_eq!(breach["sla"], "DISPOSITION");
    assert_eq!(breach["attempt"], 1);
    assert_eq!(breach["rep_id"], rep_of(&silent));
    let due = time(&breach["due_at"]);
    assert!(
        due >= before_touch + Span::seconds(3) - Span::milliseconds(5)
            && due <= after_reports + Span::seconds(3),
        "due {due}: 3 s after the first touch"
    );
    let breached_at = time(&breach["breached_at"]);
    assert!(breached_at >= due && breached_at - due < Span::seconds(1));
    assert!(
        of_lead(&records, &accepted).is_empty(),
        "an accepted lead has its disposition"
    );

    let records = reminders
        .read_until(WAIT, "the silent lead's reminder", |r| {
            !of_lead(r, &silent).is_empty()
        })
        .await
        .to_vec();
    let silent_reminders = of_lead(&records, &silent);
    assert_eq!(silent_reminders.len(), 1, "one reminder at half the window");
    let reminder = silent_reminders[0].json();
    assert_eq!(reminder["sla"], "DISPOSITION");
    assert_eq!(reminder["fraction"], 0.5);
    assert!(time(&reminder["reminded_at"]) < breached_at);
    assert!(of_lead(&records, &accepted).is_empty());

    // The lead's timeline tells it.
    let view = stack.lead_view(&silent).await;
    let steps: Vec<Value> = view["timeline"].as_array().cloned().unwrap_or_default();
    assert!(
        steps
            .iter()
            .any(|s| s["step"] == "breached" && s["sla"] == "disposition"),
        "{view}"
    );
    stack.stop().await.unwrap();
}

/// On the business-hours clock, a window that outlasts the rep's working hours pauses
/// until they open again: the reps stop working at the next minute boundary and start
/// again a minute later, so a 2-minute window is due a minute later than on the wall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_hours_deadline_resumes_at_the_next_opening() {
    // The next minute boundary at least 10 s away: schedules are written in minutes.
    let now = Utc::now();
    let mut close = (now + Span::seconds(60 - i64::from(now.second())))
        .with_nanosecond(0)
        .unwrap();
    if close - now < Span::seconds(10) {
        close += Span::minutes(1);
    }
    let reopen = close + Span::minutes(1);
    assert!(
        close.date_naive() == now.date_naive() && (reopen.hour(), reopen.minute()) < (23, 58),
        "too close to midnight for this test"
    );
    let day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [now.weekday().num_days_from_monday() as usize];
    let hours = format!(
        "working_hours = {{ {day} = [\"00:00-{:02}:{:02}\", \"{:02}:{:02}-23:59\"] }}",
        close.hour(),
        close.minute(),
        reopen.hour(),
        reopen.minute(),
    );
    let stack = Stack::start(StackOptions {
        first_touch_seconds: 120,
        sla_config: "first_touch_clock = \"business_hours\"\n".to_owned(),
        rules: RULES
            .replace("capacity = 100\n", &format!("capacity = 100\n{hours}\n"))
            .replace("capacity = 20\n", &format!("capacity = 20\n{hours}\n")),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let lead = stack.post_lead(&client, &qualified_lead(1)).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(WAIT, "the assignment", |r| !of_lead(r, &lead).is_empty())
        .await;
    let event = of_lead(records, &lead)[0].json();
    let assigned_at = time(&event["assigned_at"]);
    assert!(assigned_at < close, "assigned after closing: {event}");
    let due = time(&event["first_touch_due_at"]);
    // Before closing: close - assigned_at of the window; the rest after reopening.
    assert_eq!(
        due,
        reopen + (Span::seconds(120) - (close - assigned_at)),
        "{event}"
    );
    assert_eq!(due - assigned_at, Span::seconds(180));
    stack.stop().await.unwrap();
}

/// `sla.disposition_from = "assignment"`: the disposition clock runs from the assignment,
/// touched or not; the first-touch clock (5 minutes here) is not the one that breaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disposition_clock_may_start_at_the_assignment() {
    let stack = Stack::start(StackOptions {
        sla_config:
            "disposition_seconds = 2\ndisposition_from = \"assignment\"\nreminder_fractions = []\n"
                .to_owned(),
        ..StackOptions::default()
    })
    .await;
    let mut breaches = stack.reader(EventKind::SlaBreached);
    let mut reminders = stack.reader(EventKind::SlaReminder);
    let client = handoff_e2e::client();
    let lead = stack.post_lead(&client, &qualified_lead(1)).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(WAIT, "the assignment", |r| !of_lead(r, &lead).is_empty())
        .await;
    let assignment = of_lead(records, &lead)[0].json();
    let assigned_at = time(&assignment["assigned_at"]);
    let records = breaches
        .read_until(WAIT, "the disposition breach", |r| {
            !of_lead(r, &lead).is_empty()
        })
        .await
        .to_vec();
    let breach = of_lead(&records, &lead)[0].json();
    assert_eq!(breach["sla"], "DISPOSITION", "{breach}");
    assert_eq!(
        time(&breach["due_at"]).timestamp_millis(),
        (assigned_at + Span::seconds(2)).timestamp_millis(),
        "{breach}"
    );
    assert!(
        of_lead(reminders.read_for(Duration::from_secs(2)).await, &lead).is_empty(),
        "no reminders configured, none sent"
    );
    stack.stop().await.unwrap();
}
