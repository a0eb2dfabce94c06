//! Issue 6, "never a crash from input": the web-form lead that crash-looped the router, and
//! control characters in submitted fields.

use std::collections::BTreeMap;
use std::time::Duration;

use handoff::services::{Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_e2e::{error_fields, post_json, Stack, StackOptions};
use serde_json::{json, Value};

/// Like the sample rules: the Munich office's postal area (`prefix` on
/// company.postal_code) goes to its own team, everything else to the rest.
const PREFIX_RULES: &str = r#"
[scoring]
mql_threshold = 40
demo_request_fast_lane = true

[[scoring.rules]]
name = "senior_title"
points = 50
when = { title_contains = ["vp", "cto"] }

[routing]
[[routing.teams]]
id = "munich"
members = ["m1"]

[[routing.teams]]
id = "rest"
members = ["r1", "r2"]

[[routing.reps]]
id = "m1"
capacity = 100

[[routing.reps]]
id = "r1"
capacity = 100

[[routing.reps]]
id = "r2"
capacity = 100

[[routing.rules]]
name = "munich"
team = "munich"
when = { all = [
  { field = "company.country", in = ["DE"] },
  { field = "company.postal_code", prefix = ["80", "81"] },
] }

[[routing.rules]]
name = "rest"
team = "rest"
"#;

/// The crash lead of issue 6, as JSON and as a form, is routed, and every lead posted behind
/// it is assigned: the router neither panics nor stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crash_lead_is_routed_and_the_leads_behind_it_are_assigned() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::of(&[Service::Ingest, Service::Router]),
        rules: PREFIX_RULES.to_owned(),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let crash_json = stack
        .post_lead(
            &client,
            &json!({"contact":{"email":"a@b.de"},"company":{"country":"DE","postal_code":"8é"},"engagement":{"demo_request":true}}),
        )
        .await;
    let response = client
        .post(format!("{}/v1/leads", stack.api()))
        .header("content-type", "application/x-www-form-urlencoded")
        // Another address: the same one would stick to the first lead's rep (sticky routing).
        .body("email=b%40b.de&country=DE&postal_code=8%C3%A9&demo_request=on")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let crash_form = response.json::<Value>().await.unwrap()["lead_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut expected = BTreeMap::from([(crash_json.clone(), "rest"), (crash_form.clone(), "rest")]);
    for n in 0..6 {
        let (postal_code, team) = if n % 2 == 0 {
            ("80331", "munich")
        } else {
            ("10115", "rest")
        };
        let id = stack
            .post_lead(
                &client,
                &json!({
                    "contact": {"email": format!("behind{n}@acme.de"), "title": "VP Sales"},
                    "company": {"country": "DE", "postal_code": postal_code}
                }),
            )
            .await;
        expected.insert(id, team);
    }

    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(
            Duration::from_secs(60),
            "every lead assigned, the crash leads included",
            |records| records.len() >= expected.len(),
        )
        .await
        .to_vec();
    let teams: BTreeMap<String, String> = records
        .iter()
        .map(|r| {
            let event = r.json();
            (
                event["lead_id"].as_str().unwrap().to_owned(),
                event["team_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = expected
        .into_iter()
        .map(|(id, team)| (id, team.to_owned()))
        .collect();
    assert_eq!(teams, expected);
    let crash = records
        .iter()
        .map(|r| r.json())
        .find(|e| e["lead_id"] == crash_json.as_str())
        .unwrap();
    assert!(
        crash["explanation"]["rules_not_matched"][0]["failed_condition"]
            .as_str()
            .unwrap()
            .contains("no prefix in [80, 81]"),
        "{crash}"
    );
    stack.stop().await.unwrap();
}

/// A NUL byte (or any other control character) in a submitted field is refused with a 422
/// naming the field, as JSON and as a form, and publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_naming_the_field() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Ingest),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());

    let (status, body) = post_json(
        &client,
        &url,
        &json!({"contact": {"email": "a\u{0}@b.de", "first_name": "Ada\u{1b}[2J"}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_fields(&body), ["contact.email", "contact.first_name"]);
    for field in body["error"]["fields"].as_array().unwrap() {
        assert_eq!(field["code"], "control_character", "{body}");
    }

    let response = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a%00%40b.de&company=Acme%07")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body = response.json::<Value>().await.unwrap();
    assert_eq!(error_fields(&body), ["contact.email", "company.name"]);

    // Free text may span lines: a form's message lands in a custom attribute.
    let accepted = stack
        .post_lead(
            &client,
            &json!({"contact": {"email": "ada@acme.io"}, "custom": {"message": "Hello,\r\nplease call me."}}),
        )
        .await;
    let mut created = stack.reader(EventKind::LeadCreated);
    created
        .read_until(Duration::from_secs(30), "the accepted lead", |r| {
            !r.is_empty()
        })
        .await;
    // The refused leads were posted first; give them a moment to show up if they were sent.
    let records = created.read_for(Duration::from_secs(1)).await.to_vec();
    assert_eq!(records.len(), 1, "the refused leads published nothing");
    assert_eq!(records[0].json()["id"], accepted.as_str());
    assert_eq!(
        records[0].json()["custom"]["message"],
        "Hello,\r\nplease call me."
    );
    stack.stop().await.unwrap();
}
