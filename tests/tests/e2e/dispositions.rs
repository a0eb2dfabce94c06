use std::time::Duration;

use handoff_domain::events::EventKind;
use handoff_e2e::contract::Contract;
use handoff_e2e::{post_json, qualified_lead, Stack, StackOptions};
use serde_json::json;

/// A rep's disposition arrives on the disposition topic with the lead's source and
/// campaign, so marketing can attribute it; an unknown lead is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disposition_reaches_marketing_with_its_attribution() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let mut lead = qualified_lead(7);
    lead["source"] = json!({
        "kind": "web_form", "name": "pricing-page", "campaign": "spring-launch",
        "utm": { "source": "linkedin", "medium": "paid-social", "campaign": "q2-abm" }
    });
    let lead_id = stack.post_lead(&client, &lead).await;

    let url = format!("{}/v1/leads/{lead_id}/dispositions", stack.api());
    let report = json!({ "outcome": "rejected", "reason_code": "no_budget", "note": "call back in Q3", "actor": "crm", "actor_id": "sfdc" });
    let (status, body) = post_json(&client, &url, &report).await;
    assert_eq!(status, 202, "{body}");

    let mut reader = stack.reader(EventKind::LeadDisposition);
    let records = reader
        .read_until(Duration::from_secs(30), "the rejection", |r| {
            r.iter().any(|r| r.json()["outcome"] == "REJECTED")
        })
        .await
        .to_vec();
    let record = records
        .iter()
        .find(|r| r.json()["outcome"] == "REJECTED")
        .unwrap();
    Contract::load().check(record).unwrap();
    let event = record.json();
    assert_eq!(event["lead_id"], lead_id.as_str());
    assert_eq!(event["reason_code"], "no_budget");
    assert_eq!(event["actor"], json!({ "kind": "CRM", "id": "sfdc" }));
    assert_eq!(event["source"]["campaign"], "spring-launch");
    assert_eq!(event["source"]["utm"]["campaign"], "q2-abm");

    // Bad reports name the field; unknown leads are 404.
    let (status, body) = post_json(&client, &url, &json!({ "outcome": "rejected" })).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["fields"][0]["field"], "reason_code");
    let (status, body) = post_json(
        &client,
        &format!("{}/v1/leads/no-such-lead/dispositions", stack.api()),
        &json!({ "outcome": "contacted" }),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    stack.stop().await.unwrap();
}

/// Leads under the MQL threshold go to nurture with their score breakdown, so marketing
/// sees why; every system decision is a disposition too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unqualified_lead_goes_to_nurture_with_its_breakdown() {
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let lead = json!({
        "contact": { "email": "kid@gmail.com", "title": "Student" },
        "source": { "kind": "web_form", "campaign": "back-to-school" }
    });
    let lead_id = stack.post_lead(&client, &lead).await;
    let mut reader = stack.reader(EventKind::LeadDisposition);
    let records = reader
        .read_until(Duration::from_secs(30), "the nurture disposition", |r| {
            !r.is_empty()
        })
        .await
        .to_vec();
    Contract::load().check(&records[0]).unwrap();
    let event = records[0].json();
    assert_eq!(event["lead_id"], lead_id.as_str());
    assert_eq!(event["outcome"], "UNQUALIFIED");
    assert_eq!(event["actor"]["kind"], "SYSTEM");
    assert_eq!(event["score"]["points"], -40);
    assert_eq!(event["score"]["contributions"][0]["rule"], "student");
    assert_eq!(event["source"]["campaign"], "back-to-school");
    stack.stop().await.unwrap();
}

/// A close that was applied but whose Idempotency-Key was never marked done (ingest died
/// between the two) is retried: the retry hears the first answer, not "lead closed"; a
/// different close of the closed lead still hears 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_close_whose_key_was_never_marked_done_hears_its_first_answer() {
    use redis::AsyncCommands;
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let lead_id = stack.post_lead(&client, &qualified_lead(8)).await;
    let url = format!("{}/v1/leads/{lead_id}/dispositions", stack.api());
    let close = |key: &'static str| {
        let (client, url) = (&client, url.clone());
        async move {
            let response = client
                .post(url)
                .header("Idempotency-Key", key)
                .json(&json!({ "outcome": "converted", "actor": "crm", "actor_id": "sfdc" }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }
    };
    let (status, first) = close("close-1").await;
    assert_eq!(status, 202, "{first}");
    // What a kill between applying the close and marking its key done leaves behind.
    let mut redis = stack.redis().await;
    let marks: Vec<String> = redis.keys(stack.key("idem:disposition*")).await.unwrap();
    assert!(!marks.is_empty(), "the key's mark, as ingest writes it");
    let _: () = redis.del(&marks).await.unwrap();

    let (status, retry) = close("close-1").await;
    assert_eq!((status, &retry), (202, &first));
    let (status, other) = close("close-2").await;
    assert_eq!(status, 409, "{other}");
    assert_eq!(other["error"]["code"], "lead_closed");
    stack.stop().await.unwrap();
}

/// A touch reported without a time happened now, and "now" is never refused as before the
/// assignment: a router whose reading of Redis's clock was ahead of ingest's host (a slow
/// reading, a clock step) wrote an assignment time in ingest's future, and the chaos run's
/// reps heard 422 `too_early` for touching a lead they had just been given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touch_without_a_time_is_accepted_however_far_ahead_the_assignment_was_written() {
    use redis::AsyncCommands;
    let stack = Stack::start(StackOptions::default()).await;
    let client = handoff_e2e::client();
    let lead_id = stack.post_lead(&client, &qualified_lead(9)).await;
    handoff_e2e::eventually(Duration::from_secs(30), "the assignment", || async {
        (stack.lead_view(&lead_id).await["state"] == "assigned").then_some(())
    })
    .await;
    // The assignment as a router two seconds ahead of this host would have written it.
    let ahead = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut redis = stack.redis().await;
    let _: () = redis
        .hset(
            stack.key(&format!("lead:{lead_id}")),
            "assigned_ms",
            ahead.timestamp_millis(),
        )
        .await
        .unwrap();

    let url = format!("{}/v1/leads/{lead_id}/dispositions", stack.api());
    let (status, body) = post_json(&client, &url, &json!({ "outcome": "contacted" })).await;
    assert_eq!(status, 202, "{body}");
    let mut reader = stack.reader(EventKind::LeadDisposition);
    let records = reader
        .read_until(Duration::from_secs(30), "the touch", |r| {
            r.iter().any(|r| r.json()["outcome"] == "CONTACTED")
        })
        .await
        .to_vec();
    let touch = records
        .iter()
        .map(|r| r.json())
        .find(|d| d["outcome"] == "CONTACTED")
        .unwrap();
    let occurred: chrono::DateTime<chrono::Utc> =
        touch["occurred_at"].as_str().unwrap().parse().unwrap();
    assert!(
        occurred.timestamp_millis() >= ahead.timestamp_millis(),
        "the touch at {occurred} is before the assignment at {ahead}"
    );
    // A time the reporter states is still checked against the assignment.
    let before = (ahead - chrono::Duration::seconds(30)).to_rfc3339();
    let (status, body) = post_json(
        &client,
        &url,
        &json!({ "outcome": "contacted", "occurred_at": before }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["code"], "too_early");
    stack.stop().await.unwrap();
}
