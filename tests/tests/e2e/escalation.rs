//! A missed first touch acts: the lead goes to another rep of the team, then to the
//! escalation team, then stays and the manager is told — exactly once each, also when a
//! breach is delivered again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handoff_domain::events::EventKind;
use handoff_e2e::topics::Record;
use handoff_e2e::{eventually, qualified_lead, Stack, StackOptions, RULES};

const WAIT: Duration = Duration::from_secs(40);

/// RULES plus a `managers` team of one rep, `m`, and the sales team's policy: two
/// attempts, then the managers.
fn rules() -> String {
    let sales = r#"members = ["a", "b", "c", "d"]"#;
    format!(
        "{}\n[[routing.teams]]\nid = \"managers\"\nmembers = [\"m\"]\n\n[[routing.reps]]\nid = \"m\"\ncapacity = 10\n",
        RULES.replacen(
            sales,
            &format!("{sales}\nescalation = {{ max_attempts = 2, to_team = \"managers\" }}"),
            1
        )
    )
}

fn of_lead<'a>(records: &'a [Record], lead: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.header("ce_subject") == Some(lead))
        .collect()
}

fn ids(records: &[&Record]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| r.header("ce_id").map(str::to_owned))
        .collect()
}

/// A local webhook receiver: every request's path and JSON body.
async fn start_receiver() -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let recorded = recorded.clone();
        async move {
            let body = serde_json::from_slice(&body).unwrap_or_default();
            recorded.lock().unwrap().push((uri.path().to_owned(), body));
            axum::http::StatusCode::OK
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_lead_is_reassigned_then_escalated_once_each() {
    let (base, hooks) = start_receiver().await;
    let stack = Stack::start(StackOptions {
        rules: rules(),
        first_touch_seconds: 2,
        // Reminders (their own steps in the timeline) are tested in clocks.rs.
        sla_config: "reminder_fractions = []\n".to_owned(),
        webhook_base: Some(base),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let lead = stack.post_lead(&client, &qualified_lead(1)).await;

    // Attempt 1 (a), missed → attempt 2 (another sales rep), missed → attempt 3 (m, the
    // managers team), missed → nobody else: it stays with m, ESCALATED in place.
    let mut breached = stack.reader(EventKind::SlaBreached);
    let breaches = breached
        .read_until(WAIT, "three breaches", |r| of_lead(r, &lead).len() >= 3)
        .await
        .to_vec();
    let mut dispositions = stack.reader(EventKind::LeadDisposition);
    let reports = dispositions
        .read_until(WAIT, "the reassignment and two escalations", |r| {
            of_lead(r, &lead).len() >= 3
        })
        .await
        .to_vec();
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let assignments = assigned
        .read_until(WAIT, "three assignments", |r| of_lead(r, &lead).len() >= 3)
        .await
        .to_vec();

    let by_attempt: BTreeMap<u64, serde_json::Value> = of_lead(&assignments, &lead)
        .iter()
        .map(|r| {
            let e = r.json();
            (e["attempt"].as_u64().unwrap(), e)
        })
        .collect();
    assert_eq!(by_attempt.len(), 3, "{by_attempt:?}");
    let first = by_attempt[&1]["rep_id"].as_str().unwrap().to_owned();
    let second = by_attempt[&2]["rep_id"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "never the same rep again");
    assert_eq!(by_attempt[&2]["team_id"], "sales");
    assert_eq!(by_attempt[&2]["explanation"]["rule"], "reassignment");
    assert!(by_attempt[&2]["explanation"]["reason"]
        .as_str()
        .unwrap()
        .contains(&format!("first touch missed by {first}")));
    assert_eq!(by_attempt[&3]["rep_id"], "m");
    assert_eq!(by_attempt[&3]["team_id"], "managers");
    assert_eq!(by_attempt[&3]["explanation"]["rule"], "escalation");

    let outcomes: Vec<(String, String)> = of_lead(&reports, &lead)
        .iter()
        .map(|r| {
            let e = r.json();
            (
                e["outcome"].as_str().unwrap().to_owned(),
                e["reason_code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let outcomes: BTreeSet<(String, String)> = outcomes.into_iter().collect();
    assert_eq!(
        outcomes,
        BTreeSet::from([
            ("REASSIGNED".into(), "first_touch_missed".into()),
            ("ESCALATED".into(), "attempts_exhausted".into()),
            ("ESCALATED".into(), "no_eligible_rep".into()),
        ])
    );
    let attempts: BTreeSet<u64> = of_lead(&breaches, &lead)
        .iter()
        .map(|r| r.json()["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, BTreeSet::from([1, 2, 3]));

    // A breach delivered again changes nothing and repeats the same events.
    let first_breach = of_lead(&breaches, &lead)
        .into_iter()
        .find(|r| r.json()["attempt"] == 1)
        .unwrap()
        .clone();
    stack.republish(EventKind::SlaBreached, &first_breach).await;
    let later = assigned.read_for(Duration::from_secs(3)).await.to_vec();
    let later_reports = dispositions.read_for(Duration::from_secs(1)).await.to_vec();
    assert_eq!(
        ids(&of_lead(&later, &lead)).len(),
        3,
        "one event per attempt"
    );
    assert_eq!(
        ids(&of_lead(&later_reports, &lead)).len(),
        3,
        "one per step"
    );

    // Capacity followed the lead: only m holds it now.
    for (rep, open) in [(first.as_str(), 0), (second.as_str(), 0), ("m", 1)] {
        assert_eq!(stack.open_leads(rep).await, open, "{rep}");
    }
    // The sales team's channel (its manager) heard of the escalation out of sales, once.
    let escalations = eventually(WAIT, "the manager told of the escalation", || async {
        let seen = hooks.lock().unwrap().clone();
        let escalations: Vec<serde_json::Value> = seen
            .into_iter()
            .filter(|(path, body)| path == "/hooks/team" && body["type"] == "lead.escalated")
            .map(|(_, body)| body)
            .collect();
        (!escalations.is_empty()).then_some(escalations)
    })
    .await;
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert_eq!(escalations[0]["lead_id"], lead.as_str());
    assert_eq!(escalations[0]["team_id"], "sales");
    assert_eq!(
        escalations[0]["rep_id"],
        second.as_str(),
        "the rep who missed"
    );

    let view = stack.lead_view(&lead).await;
    let steps: Vec<&str> = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "received",
            "assigned",
            "breached",
            "reassigned",
            "breached",
            "reassigned",
            "breached",
            "escalated"
        ],
        "{view}"
    );
    stack.stop().await.unwrap();
}

/// One W3C trace follows a lead from its POST through its assignment, its breach and its
/// reassignment, so a tracing backend shows the whole handoff as one trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_lead_through_breach_and_reassignment() {
    let stack = Stack::start(StackOptions {
        rules: rules(),
        first_touch_seconds: 2,
        ..StackOptions::default()
    })
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = handoff_e2e::client()
        .post(format!("{}/v1/leads", stack.api()))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&qualified_lead(1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let lead = body["lead_id"].as_str().unwrap().to_owned();

    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let assignments = assigned
        .read_until(WAIT, "the reassignment", |r| of_lead(r, &lead).len() >= 2)
        .await
        .to_vec();
    let mut breached = stack.reader(EventKind::SlaBreached);
    let breaches = breached
        .read_until(WAIT, "the first breach", |r| !of_lead(r, &lead).is_empty())
        .await
        .to_vec();
    let mut created = stack.reader(EventKind::LeadCreated);
    let creation = created
        .read_until(WAIT, "the lead", |r| !of_lead(r, &lead).is_empty())
        .await
        .to_vec();
    let trace_of = |record: &Record| -> String {
        let header = record.header("traceparent").unwrap_or_default();
        header.split('-').nth(1).unwrap_or_default().to_owned()
    };
    for record in of_lead(&creation, &lead)
        .into_iter()
        .chain(of_lead(&assignments, &lead))
        .chain(of_lead(&breaches, &lead).into_iter().take(1))
    {
        assert_eq!(
            trace_of(record),
            trace_id,
            "{:?} {:?}",
            record.header("ce_type"),
            record.header("traceparent")
        );
    }
    stack.stop().await.unwrap();
}
