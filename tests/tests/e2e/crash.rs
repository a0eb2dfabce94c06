use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use handoff::services::{Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_e2e::{handoff_binary, post_json, qualified_lead, Stack, StackOptions, RULES};
use tokio::process::{Child, Command};

const LEADS: usize = 150;

fn spawn_router(stack: &Stack) -> Child {
    Command::new(handoff_binary())
        .args(["router", "--config"])
        .arg(&stack.config_path)
        .env("HANDOFF_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("router process starts")
}

/// `kill -9` of the router while leads are flowing, then a restart: every lead is assigned
/// exactly once — none lost, none assigned to a second rep, no capacity charged twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_stream_loses_and_duplicates_nothing() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Ingest),
        // Room for every lead, so capacity never decides and double charging would show.
        rules: RULES
            .replace("capacity = 20", "capacity = 1000")
            .replace("capacity = 100", "capacity = 1000"),
        ..StackOptions::default()
    })
    .await;
    let mut router = spawn_router(&stack);

    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());
    let poster = tokio::spawn(async move {
        let mut ids = BTreeSet::new();
        for n in 0..LEADS {
            let (status, body) = post_json(&client, &url, &qualified_lead(n)).await;
            assert_eq!(status, 202, "{body}");
            ids.insert(body["lead_id"].as_str().unwrap().to_owned());
        }
        ids
    });

    let mut assigned = stack.reader(EventKind::LeadAssigned);
    assigned
        .read_until(Duration::from_secs(60), "the first assignments", |r| {
            r.len() >= 20
        })
        .await;
    router.start_kill().expect("SIGKILL the router");
    let status = router.wait().await.unwrap();
    assert!(!status.success(), "the router was killed, not stopped");

    let lead_ids = poster.await.unwrap();
    let mut router = spawn_router(&stack);
    let records = assigned
        .read_until(
            Duration::from_secs(90),
            "every lead assigned after the restart",
            |records| {
                records
                    .iter()
                    .filter_map(|r| r.header("ce_subject"))
                    .collect::<BTreeSet<_>>()
                    .len()
                    >= LEADS
            },
        )
        .await
        .to_vec();

    let mut rep_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    for record in &records {
        let event = record.json();
        let lead = event["lead_id"].as_str().unwrap().to_owned();
        let seen = (
            event["rep_id"].as_str().unwrap().to_owned(),
            record.header("ce_id").unwrap().to_owned(),
        );
        if let Some(previous) = rep_of.insert(lead.clone(), seen.clone()) {
            // A redelivered lead republishes the same assignment with the same event id.
            assert_eq!(previous, seen, "lead {lead} was assigned twice");
        }
    }
    assert_eq!(
        rep_of.keys().cloned().collect::<BTreeSet<_>>(),
        lead_ids,
        "no lead lost"
    );

    let mut open = BTreeMap::new();
    for rep in ["a", "b", "c", "d"] {
        open.insert(rep, stack.open_leads(rep).await);
    }
    assert_eq!(
        open.values().sum::<i64>(),
        LEADS as i64,
        "capacity charged once per lead: {open:?}"
    );

    router.start_kill().ok();
    router.wait().await.ok();
    stack.stop().await.unwrap();
}
