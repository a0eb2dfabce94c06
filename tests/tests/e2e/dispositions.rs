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
