use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use handoff_domain::events::EventKind;
use handoff_e2e::contract::Contract;
use handoff_e2e::{post_json, qualified_lead, Stack, StackOptions};

/// 200 leads posted over HTTP are each assigned exactly once, to eligible reps only, in
/// round-robin order within the capacity caps, and every assignment honours the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_leads_are_each_assigned_once_within_rotation_and_capacity() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());
    let mut lead_ids = BTreeSet::new();
    for n in 0..200 {
        let (status, body) = post_json(&client, &url, &qualified_lead(n)).await;
        assert_eq!(status, 202, "{body}");
        lead_ids.insert(body["lead_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(lead_ids.len(), 200, "every lead gets its own id");

    let mut reader = stack.reader(EventKind::LeadAssigned);
    let records = reader
        .read_until(Duration::from_secs(60), "200 assignments", |records| {
            records
                .iter()
                .filter_map(|r| r.header("ce_subject"))
                .collect::<BTreeSet<_>>()
                .len()
                >= 200
        })
        .await
        .to_vec();

    let contract = Contract::load();
    let mut rep_of: BTreeMap<String, String> = BTreeMap::new();
    for record in &records {
        contract.check(record).unwrap();
        let event = record.json();
        let lead = event["lead_id"].as_str().unwrap().to_owned();
        let rep = event["rep_id"].as_str().unwrap().to_owned();
        assert_eq!(event["explanation"]["rule"], "everyone");
        assert!(event["score"]["contributions"]
            .as_array()
            .is_some_and(|c| !c.is_empty()));
        if let Some(previous) = rep_of.insert(lead.clone(), rep.clone()) {
            assert_eq!(previous, rep, "lead {lead} assigned to two reps");
        }
    }
    assert_eq!(rep_of.keys().cloned().collect::<BTreeSet<_>>(), lead_ids);

    // Round-robin over a, b, c until c reaches its cap of 20, then a and b alternate;
    // d is deactivated and never chosen.
    let mut per_rep: BTreeMap<&str, usize> = BTreeMap::new();
    for rep in rep_of.values() {
        *per_rep.entry(rep.as_str()).or_default() += 1;
    }
    assert_eq!(per_rep, BTreeMap::from([("a", 90), ("b", 90), ("c", 20)]));

    // Capacity is charged once per lead.
    let mut open = BTreeMap::new();
    for rep in ["a", "b", "c", "d"] {
        open.insert(rep, stack.open_leads(rep).await);
    }
    assert_eq!(
        open,
        BTreeMap::from([("a", 90), ("b", 90), ("c", 20), ("d", 0)])
    );
    stack.stop().await.unwrap();
}

/// When nobody in the team can take a lead, it waits in the team's overflow queue and a
/// disposition says where and why: never dropped silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_nobody_can_take_waits_in_overflow_with_a_disposition() {
    let stack = Stack::start(StackOptions {
        rules: handoff_e2e::RULES
            .replace("capacity = 100", "capacity = 0")
            .replace("capacity = 20", "capacity = 0"),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let lead_id = stack.post_lead(&client, &qualified_lead(1)).await;

    let mut reader = stack.reader(EventKind::LeadDisposition);
    let records = reader
        .read_until(Duration::from_secs(30), "the overflow disposition", |r| {
            !r.is_empty()
        })
        .await
        .to_vec();
    Contract::load().check(&records[0]).unwrap();
    let event = records[0].json();
    assert_eq!(event["outcome"], "OVERFLOWED");
    assert_eq!(event["reason_code"], "no_eligible_rep");
    assert_eq!(event["queue"], "sales-overflow");
    assert_eq!(event["team_id"], "sales");

    let queue = stack.queue_view("sales-overflow").await;
    assert_eq!(queue["depth"], 1, "{queue}");
    assert_eq!(queue["leads"][0]["lead_id"], lead_id.as_str(), "{queue}");
    let lead = stack.lead_view(&lead_id).await;
    assert_eq!(lead["state"], "waiting", "{lead}");
    assert_eq!(lead["queue"], "sales-overflow", "{lead}");
    stack.stop().await.unwrap();
}

/// Leads arriving on every partition at once for one team are decided in turn inside one
/// router instance: no commit finds the team's state moved under it (each such conflict
/// costs a re-read and a second decision, and sixteen in a row a backoff), and each lead is
/// assigned once, in round-robin order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_decides_a_teams_leads_in_turn_without_conflicts() {
    let stack = Stack::start(StackOptions {
        rules: handoff_e2e::RULES
            .replace("capacity = 100", "capacity = 1000")
            .replace("capacity = 20", "capacity = 1000"),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());
    let leads = 300;
    // All posted at once: every partition has a backlog for the one team.
    let mut posts = tokio::task::JoinSet::new();
    for n in 0..leads {
        let (client, url) = (client.clone(), url.clone());
        posts.spawn(async move { post_json(&client, &url, &qualified_lead(n)).await });
    }
    while let Some(posted) = posts.join_next().await {
        let (status, body) = posted.expect("post task");
        assert_eq!(status, 202, "{body}");
    }

    let mut reader = stack.reader(EventKind::LeadAssigned);
    let records = reader
        .read_until(Duration::from_secs(60), "every assignment", |records| {
            records
                .iter()
                .filter_map(|r| r.header("ce_subject"))
                .collect::<BTreeSet<_>>()
                .len()
                >= leads
        })
        .await
        .to_vec();
    let mut per_rep: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        *per_rep
            .entry(
                record.json()["rep_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    assert_eq!(records.len(), leads, "each lead assigned once");
    assert_eq!(
        per_rep,
        BTreeMap::from([
            ("a".to_owned(), 100),
            ("b".to_owned(), 100),
            ("c".to_owned(), 100)
        ]),
        "round-robin over the active reps"
    );
    assert_eq!(
        stack.metric_sum("handoff_routing_conflicts_total").await,
        0.0,
        "a commit of this instance conflicted with another of its own decisions"
    );
}
