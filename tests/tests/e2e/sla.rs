use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff_domain::events::EventKind;
use handoff_e2e::contract::Contract;
use handoff_e2e::{post_json, qualified_lead, Stack, StackOptions};
use serde_json::json;

/// With a 2-second window: an untouched lead breaches exactly once, within a second of its
/// deadline; a lead marked contacted in time never breaches, and its rep's capacity is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_lead_breaches_once_and_a_contacted_one_never() {
    let stack = Stack::start(StackOptions {
        first_touch_seconds: 2,
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());
    let (_, untouched) = post_json(&client, &url, &qualified_lead(1)).await;
    let (_, contacted) = post_json(&client, &url, &qualified_lead(2)).await;
    let untouched = untouched["lead_id"].as_str().unwrap().to_owned();
    let contacted = contacted["lead_id"].as_str().unwrap().to_owned();

    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(Duration::from_secs(30), "both assignments", |r| {
            r.len() >= 2
        })
        .await
        .to_vec();
    let due_of = |lead: &str| -> DateTime<Utc> {
        let record = records
            .iter()
            .find(|r| r.header("ce_subject") == Some(lead))
            .unwrap();
        record.json()["first_touch_due_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let contacted_due = due_of(&contacted);
    let untouched_due = due_of(&untouched);

    let (status, body) = post_json(
        &client,
        &format!("{}/v1/leads/{contacted}/dispositions", stack.api()),
        &json!({ "outcome": "contacted", "actor": "rep", "actor_id": "a" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert!(
        Utc::now() < contacted_due,
        "the test posted the touch too late to mean anything"
    );

    let mut breaches = stack.reader(EventKind::SlaBreached);
    breaches
        .read_until(
            Duration::from_secs(20),
            "the untouched lead's breach",
            |r| {
                r.iter()
                    .any(|r| r.header("ce_subject") == Some(untouched.as_str()))
            },
        )
        .await;
    // Then watch well past the contacted lead's deadline and a poll or two beyond.
    let quiet_until =
        (contacted_due - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(2);
    let records = breaches.read_for(quiet_until).await.to_vec();

    let contract = Contract::load();
    // Once per (lead, attempt): the missed lead is then reassigned (attempt 2, its own
    // clock; tests/tests/e2e/escalation.rs follows it further).
    let for_untouched: Vec<_> = records
        .iter()
        .filter(|r| r.header("ce_subject") == Some(untouched.as_str()))
        .filter(|r| r.json()["attempt"] == 1)
        .collect();
    assert_eq!(
        for_untouched.len(),
        1,
        "exactly one breach for the untouched lead's first attempt"
    );
    let breach = for_untouched[0];
    contract.check(breach).unwrap();
    let event = breach.json();
    assert_eq!(event["attempt"], 1);
    let breached_at: DateTime<Utc> = event["breached_at"].as_str().unwrap().parse().unwrap();
    assert!(
        breached_at >= untouched_due,
        "no breach before the deadline"
    );
    assert!(
        breached_at - untouched_due < chrono::Duration::seconds(1),
        "breach emitted {} ms after the deadline",
        (breached_at - untouched_due).num_milliseconds()
    );
    assert!(
        records
            .iter()
            .all(|r| r.header("ce_subject") != Some(contacted.as_str())),
        "a lead contacted in time must not breach"
    );

    // The touch freed one unit of capacity; the breached lead still holds its unit.
    let mut open = 0;
    for rep in ["a", "b", "c", "d"] {
        open += stack.open_leads(rep).await;
    }
    assert_eq!(open, 1);
    stack.stop().await.unwrap();
}
