use std::time::Duration;

use handoff_domain::events::EventKind;
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{post_json, qualified_lead, Stack, StackOptions};
use serde_json::{json, Value};

/// Posts a lead and returns its `lead.assigned` event.
async fn assign_one(
    stack: &Stack,
    reader: &mut TopicReader,
    client: &reqwest::Client,
    n: usize,
) -> Value {
    let (status, body) = post_json(
        client,
        &format!("{}/v1/leads", stack.api()),
        &qualified_lead(n),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["lead_id"].as_str().unwrap().to_owned();
    let records = reader
        .read_until(Duration::from_secs(30), "the assignment", |r| {
            r.iter()
                .any(|r| r.header("ce_subject") == Some(id.as_str()))
        })
        .await;
    records
        .iter()
        .find(|r| r.header("ce_subject") == Some(id.as_str()))
        .unwrap()
        .json()
}

/// Runtime rep state set over HTTP applies to the next decision, and can be cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rep_state_set_over_the_api_applies_to_the_next_decision() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let rep_url = |rep: &str| format!("{}/v1/reps/{rep}", stack.internal());

    let a: Value = client
        .get(rep_url("a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        a,
        json!({"id": "a", "active": true, "available": true, "capacity": 100, "open_leads": 0, "overrides": {}})
    );

    for rep in ["a", "b"] {
        let response = client
            .put(rep_url(rep))
            .json(&json!({"available": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let mut reader = stack.reader(EventKind::LeadAssigned);
    let event = assign_one(&stack, &mut reader, &client, 1).await;
    assert_eq!(event["rep_id"], "c");
    let skipped: Vec<(&str, &str)> = event["explanation"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["rep_id"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("a", "unavailable"),
            ("b", "unavailable"),
            ("d", "inactive")
        ]
    );

    let response = client
        .put(rep_url("a"))
        .json(&json!({"available": null, "capacity": 5}))
        .send()
        .await
        .unwrap();
    let a: Value = response.json().await.unwrap();
    assert_eq!(
        (a["available"].clone(), a["capacity"].clone()),
        (json!(true), json!(5))
    );
    assert_eq!(a["overrides"], json!({"capacity": "5"}));
    let event = assign_one(&stack, &mut reader, &client, 2).await;
    assert_eq!(event["rep_id"], "a", "a is back, next in turn after c");

    let response = client
        .put(rep_url("zed"))
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let response = client
        .put(rep_url("a"))
        .json(&json!({"capacity": -1, "colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    let fields = handoff_e2e::error_fields(&body);
    assert_eq!(fields, ["capacity", "colour"]);
    stack.stop().await.unwrap();
}

/// A changed rules file takes effect without a restart; an invalid one is rejected and the
/// rules in force stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reload_live_and_an_invalid_file_changes_nothing() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let mut reader = stack.reader(EventKind::LeadAssigned);
    let first = assign_one(&stack, &mut reader, &client, 1).await;
    assert_eq!(first["explanation"]["rule"], "everyone");
    let v1 = first["explanation"]["rules_version"]
        .as_str()
        .unwrap()
        .to_owned();

    let rules_path = stack.config_path.with_file_name("rules.toml");
    let text = std::fs::read_to_string(&rules_path).unwrap();
    std::fs::write(
        &rules_path,
        text.replace("name = \"everyone\"", "name = \"everyone-v2\""),
    )
    .unwrap();
    reloads_reach(&stack, &client, "applied").await;
    let event = assign_one(&stack, &mut reader, &client, 2).await;
    assert_eq!(event["explanation"]["rule"], "everyone-v2");
    let v2 = event["explanation"]["rules_version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(v1, v2);

    std::fs::write(&rules_path, "[scoring]\nmql_threshold = \"high\"\n").unwrap();
    reloads_reach(&stack, &client, "rejected").await;
    let event = assign_one(&stack, &mut reader, &client, 3).await;
    assert_eq!(
        event["explanation"]["rules_version"],
        v2.as_str(),
        "the rules in force stay"
    );
    stack.stop().await.unwrap();
}

/// Waits until `/metrics` counts one reload with `outcome`.
async fn reloads_reach(stack: &Stack, client: &reqwest::Client, outcome: &str) {
    let line = format!("handoff_rules_reloads_total{{outcome=\"{outcome}\"}} 1");
    let url = format!("{}/metrics", stack.internal());
    handoff_e2e::eventually(Duration::from_secs(15), &line, || {
        let (client, url, line) = (client.clone(), url.clone(), line.clone());
        async move {
            let text = client.get(url).send().await.ok()?.text().await.ok()?;
            text.lines().any(|l| l == line).then_some(())
        }
    })
    .await;
}

/// A repeat lead of the same person goes to the rep who has them already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_contact_goes_to_the_same_rep() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let mut reader = stack.reader(EventKind::LeadAssigned);
    let first = assign_one(&stack, &mut reader, &client, 7).await;
    let other = assign_one(&stack, &mut reader, &client, 8).await;
    assert_ne!(first["rep_id"], other["rep_id"], "round-robin moved on");
    let again = assign_one(&stack, &mut reader, &client, 7).await;
    assert_eq!(again["rep_id"], first["rep_id"]);
    assert_eq!(again["explanation"]["strategy"], "sticky");
    stack.stop().await.unwrap();
}

/// Issue 24 (1): a repeat of a lead still open with the contact's rep goes to that rep
/// without a second unit of capacity: with capacity 1 the rep takes the repeat, the
/// explanation says it joins the open lead, and their open count stays 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_repeat_of_an_open_lead_takes_no_second_unit_of_capacity() {
    let stack = Stack::start(StackOptions {
        rules: handoff_e2e::RULES
            .replace("capacity = 100", "capacity = 1")
            .replace("capacity = 20", "capacity = 1"),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let mut reader = stack.reader(EventKind::LeadAssigned);
    let first = assign_one(&stack, &mut reader, &client, 7).await;
    let rep = first["rep_id"].as_str().unwrap().to_owned();
    let again = assign_one(&stack, &mut reader, &client, 7).await;
    assert_eq!(again["rep_id"], rep.as_str(), "{again}");
    assert_eq!(again["explanation"]["strategy"], "sticky");
    let reason = again["explanation"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "whose lead {} is still open with them: this repeat joins it and takes no capacity",
            first["lead_id"].as_str().unwrap()
        )),
        "{reason}"
    );
    assert_eq!(stack.open_leads(&rep).await, 1);
    // Someone else finds the rep full: the repeat did not free or take anything.
    let other = assign_one(&stack, &mut reader, &client, 8).await;
    assert_ne!(other["rep_id"], rep.as_str(), "{other}");
    stack.stop().await.unwrap();
}

/// Least-loaded with the default catch-up, live: a rep back from being away takes at most
/// two leads in a row, and the lead that passes them over says why (issue 24, point 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_rep_takes_at_most_two_in_a_row_under_least_loaded() {
    let stack = Stack::start(StackOptions {
        rules: handoff_e2e::RULES
            .replace("capacity = 20", "capacity = 100")
            .replace(
                "name = \"everyone\"\nteam = \"sales\"",
                "name = \"everyone\"\nteam = \"sales\"\nstrategy = \"least_loaded\"",
            ),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let set_available = |available: bool| {
        let (client, url) = (&client, format!("{}/v1/reps/c", stack.internal()));
        async move {
            let response = client
                .put(url)
                .json(&json!({ "available": available }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
        }
    };
    set_available(false).await;
    let mut reader = stack.reader(EventKind::LeadAssigned);
    for n in 0..8 {
        let event = assign_one(&stack, &mut reader, &client, 100 + n).await;
        assert_ne!(event["rep_id"], "c", "{event}");
    }
    set_available(true).await;
    let mut events = Vec::new();
    for n in 0..6 {
        events.push(assign_one(&stack, &mut reader, &client, 200 + n).await);
    }
    let reps: Vec<&str> = events
        .iter()
        .map(|e| e["rep_id"].as_str().unwrap_or_default())
        .collect();
    // a and b hold 4 open leads each, c none: c catches up, two at a time.
    assert_eq!(reps.iter().filter(|r| **r == "c").count(), 4, "{reps:?}");
    assert!(!reps.windows(3).any(|w| w == ["c", "c", "c"]), "{reps:?}");
    assert_eq!(&reps[..2], ["c", "c"], "{reps:?}");
    let reason = events[2]["explanation"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("c took the last 2 in a row, the most catch_up allows"),
        "{reason}"
    );
    stack.stop().await.unwrap();
}

/// The explanation says what the first-touch clock does (issue 24, point 4) on the team's
/// own clock from the rules file (point 15): an assignment says which clock counts and
/// when the touch is due, the same time as the event's `first_touch_due_at`; a lead nobody
/// can take says its clock runs while it waits, and until when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explanations_say_which_first_touch_clock_runs_and_when_it_is_due() {
    let every_day = r#"working_hours = { mon = ["00:00-23:59"], tue = ["00:00-23:59"], wed = ["00:00-23:59"], thu = ["00:00-23:59"], fri = ["00:00-23:59"], sat = ["00:00-23:59"], sun = ["00:00-23:59"] }"#;
    let rules = handoff_e2e::RULES
        .replace(
            "members = [\"a\", \"b\", \"c\", \"d\"]",
            "members = [\"a\", \"b\", \"c\", \"d\"]\nfirst_touch_clock = \"business_hours\"",
        )
        .replacen(
            "id = \"a\"\ncapacity = 100",
            &format!("id = \"a\"\ncapacity = 100\n{every_day}"),
            1,
        );
    let stack = Stack::start(StackOptions {
        rules,
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let mut reader = stack.reader(EventKind::LeadAssigned);
    let event = assign_one(&stack, &mut reader, &client, 31).await;
    assert_eq!(event["rep_id"], "a", "{event}");
    let clock = &event["explanation"]["first_touch"];
    assert_eq!(clock["clock"], "BUSINESS_HOURS", "{event}");
    assert_eq!(clock["due_at"], event["first_touch_due_at"]);
    assert_eq!(clock["started_at"], event["assigned_at"]);
    let summary = clock["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("of a's working hours, counted from the assignment"),
        "{summary}"
    );
    // b has no hours: the business clock is the wall's, and the explanation says so.
    let event = assign_one(&stack, &mut reader, &client, 32).await;
    assert_eq!(event["rep_id"], "b", "{event}");
    let summary = event["explanation"]["first_touch"]["summary"]
        .as_str()
        .unwrap_or_default();
    assert!(
        summary.contains("5m on the wall clock (b has no working hours in the rules)"),
        "{summary}"
    );

    // Nobody can take the next lead: it waits, and says its clock is running.
    for rep in ["a", "b", "c"] {
        let response = client
            .put(format!("{}/v1/reps/{rep}", stack.internal()))
            .json(&json!({ "available": false }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let (status, body) = post_json(
        &client,
        &format!("{}/v1/leads", stack.api()),
        &qualified_lead(33),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["lead_id"].as_str().unwrap().to_owned();
    let mut dispositions = stack.reader(EventKind::LeadDisposition);
    let records = dispositions
        .read_until(Duration::from_secs(30), "the queue decision", |r| {
            r.iter()
                .any(|r| r.header("ce_subject") == Some(id.as_str()))
        })
        .await;
    let queued = records
        .iter()
        .find(|r| r.header("ce_subject") == Some(id.as_str()))
        .unwrap()
        .json();
    assert_eq!(queued["outcome"], "OVERFLOWED", "{queued}");
    let note = queued["note"].as_str().unwrap_or_default();
    let view = stack.lead_view(&id).await;
    let received: chrono::DateTime<chrono::Utc> = view["received_at"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("received_at in {view}: {e}"));
    let due = (received + chrono::Duration::seconds(300)).format("%Y-%m-%d %H:%M:%S UTC");
    assert!(
        note.contains(&format!(
            "first-touch clock running while it waits: 5m on the wall clock from its arrival, due by {due}"
        )),
        "{note}"
    );
    stack.stop().await.unwrap();
}
