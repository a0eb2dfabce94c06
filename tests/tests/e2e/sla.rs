use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff_domain::events::EventKind;
use handoff_e2e::contract::Contract;
use handoff_e2e::topics::Record;
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

/// A first touch made after the deadline, while no SLA tracker was running to fire it (both
/// down, or behind): the miss is still a breach once a tracker runs, and the lead stays
/// with the rep who is now working it (no reassignment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_after_the_deadline_does_not_erase_the_breach() {
    use handoff::services::{Service, ServiceSet};
    let options = StackOptions {
        first_touch_seconds: 1,
        ..StackOptions::default()
    };
    let stack = Stack::start(StackOptions {
        services: ServiceSet::of(&[Service::Ingest, Service::Router, Service::Notifier]),
        ..options.clone()
    })
    .await;
    let client = handoff_e2e::client();
    let lead = stack.post_lead(&client, &qualified_lead(1)).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let first = assigned
        .read_until(Duration::from_secs(30), "the assignment", |r| !r.is_empty())
        .await
        .to_vec();
    let due: DateTime<Utc> = first[0].json()["first_touch_due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    while Utc::now() <= due + chrono::Duration::milliseconds(200) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = post_json(
        &client,
        &format!("{}/v1/leads/{lead}/dispositions", stack.api()),
        &json!({ "outcome": "contacted", "actor": "rep", "actor_id": "a" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    let mut breaches = stack.reader(EventKind::SlaBreached);
    let tracker = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Sla),
        id: Some(stack.id.clone()),
        ..options
    })
    .await;
    let breached = breaches
        .read_until(Duration::from_secs(30), "the late touch's breach", |r| {
            !r.is_empty()
        })
        .await
        .to_vec();
    assert_eq!(breached[0].header("ce_subject"), Some(lead.as_str()));
    assert_eq!(breached[0].json()["attempt"], 1);
    // The rep working it keeps it: no second attempt, and the lead reads touched.
    let later = assigned.read_for(Duration::from_secs(3)).await;
    assert_eq!(later.len(), 1, "reassigned after a touch: {later:?}");
    assert_eq!(stack.lead_view(&lead).await["state"], "touched");
    tracker.stop().await.unwrap();
    stack.stop().await.unwrap();
}

/// Two SLA trackers on the same Redis and topics, claiming in small batches so both take
/// part: every (lead, attempt, sla) breaches exactly once and every reminder goes out
/// once, and no claim outlives its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trackers_racing_emit_each_breach_and_reminder_once() {
    let options = StackOptions {
        first_touch_seconds: 2,
        sla_config: "claim_batch = 2\n".to_owned(),
        ..StackOptions::default()
    };
    let stack = Stack::start(options.clone()).await;
    let second = Stack::start(StackOptions {
        services: handoff::services::ServiceSet::only(handoff::services::Service::Sla),
        id: Some(stack.id.clone()),
        ..options
    })
    .await;
    // Both readers join before anything is published (a group join can take seconds).
    let mut breaches = stack.reader(EventKind::SlaBreached);
    let mut reminders = stack.reader(EventKind::SlaReminder);
    let client = handoff_e2e::client();
    let leads = 30;
    let mut ids = BTreeSet::new();
    for n in 0..leads {
        ids.insert(stack.post_lead(&client, &qualified_lead(n)).await);
    }

    // Attempt 1 breaches, the lead is reassigned (attempt 2), which breaches too.
    let key = |r: &Record| {
        let e = r.json();
        (
            r.header("ce_subject").unwrap_or_default().to_owned(),
            e["attempt"].as_u64().unwrap_or_default(),
            e["sla"].as_str().unwrap_or_default().to_owned(),
        )
    };
    breaches
        .read_until(Duration::from_secs(60), "two breaches per lead", |r| {
            r.iter().map(key).collect::<BTreeSet<_>>().len() >= 2 * leads
        })
        .await;
    // A poll or two more, for any duplicate on its way.
    let breached = breaches.read_for(Duration::from_secs(2)).await.to_vec();
    let mut per_key: BTreeMap<_, usize> = BTreeMap::new();
    for record in &breached {
        *per_key.entry(key(record)).or_default() += 1;
    }
    let doubled: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "breached more than once: {doubled:?}");
    for lead in &ids {
        for attempt in [1, 2] {
            assert!(
                per_key.contains_key(&(lead.clone(), attempt, "FIRST_TOUCH".to_owned())),
                "{lead} attempt {attempt} never breached"
            );
        }
    }

    // Every reminder was due before the second breaches (one that a slow round finds
    // overdue is skipped: the breach says it then); whatever went out, went out once.
    let reminder_key = |r: &Record| (key(r), r.json()["fraction"].to_string());
    let reminded = reminders.read_for(Duration::from_secs(3)).await.to_vec();
    assert!(!reminded.is_empty(), "no reminder at all");
    let mut per_reminder: BTreeMap<_, usize> = BTreeMap::new();
    for record in &reminded {
        *per_reminder.entry(reminder_key(record)).or_default() += 1;
    }
    let doubled: Vec<_> = per_reminder.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "reminded more than once: {doubled:?}");

    // The two trackers emitted them between them, and neither lost a claim.
    let (first, other) = (
        stack.metric_sum("handoff_sla_breaches_total").await,
        second.metric_sum("handoff_sla_breaches_total").await,
    );
    assert_eq!(first + other, breached.len() as f64);
    assert!(
        first > 0.0 && other > 0.0,
        "both trackers should take part: {first} and {other} breaches"
    );
    for s in [&stack, &second] {
        assert_eq!(s.metric_sum("handoff_sla_claims_lost_total").await, 0.0);
    }
    second.stop().await.unwrap();
    stack.stop().await.unwrap();
}

/// A claim lease that a slow publish can outlast is refused at start-up, naming the file,
/// both keys and their values, before anything is claimed.
#[tokio::test]
async fn the_tracker_refuses_to_start_with_a_lease_not_longer_than_its_publish_timeout() {
    let env = handoff_e2e::TestEnv::from_env();
    let config =
        handoff_e2e::write_config(&env, &handoff_e2e::unique_id(), &StackOptions::default());
    let output = tokio::process::Command::new(handoff_e2e::handoff_binary())
        .args(["sla", "--config"])
        .arg(&config)
        // The test configuration publishes within 4000 ms; a 4 s lease is not longer.
        .env("HANDOFF_SLA_LEASE_SECONDS", "4")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started anyway: {stderr}");
    for needle in [
        "handoff.toml",
        "sla.lease_seconds = 4 (4000 ms)",
        "sla.publish_timeout_ms = 4000",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
}
