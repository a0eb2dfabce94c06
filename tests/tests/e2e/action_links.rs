//! Notifications a rep can act on: the assignment at the rep's own channel carries the
//! lead's details and accept/reject links; team and manager channels get no contact
//! details; Slack channels get Block Kit, JSON channels the signed format. Following a
//! link (GET) only shows a page; its form (POST) records the disposition as the rep,
//! once; expired, altered and superseded links are refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use chrono::Utc;
use handoff_domain::action_link::{sign, ActionClaim, LinkAction};
use handoff_domain::events::EventKind;
use handoff_e2e::topics::Record;
use handoff_e2e::{eventually, Stack, StackOptions, TEST_ACTION_SECRET, TEST_SIGNING_SECRET};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(40);
/// Where links point in messages; the test sends them to the stack's own listener.
const PUBLIC_URL: &str = "https://leads.example.test";
const EMAIL: &str = "jane.doe@acme.io";
const PHONE: &str = "+4915112345678";

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A local webhook receiver: every request's path, headers and body.
async fn start_receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let recorded = recorded.clone();
            async move {
                recorded
                    .lock()
                    .unwrap()
                    .push((uri.path().to_owned(), headers, body));
                axum::http::StatusCode::OK
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// Team `sales` (a: Slack channel, b: JSON channel; a JSON team channel and a Slack
/// manager channel) and team `inbound` (c, no channel of their own: the team's). French
/// leads go to `inbound`.
fn rules(base: &str, escalation: &str) -> String {
    format!(
        r#"
[scoring]
mql_threshold = 10

[[scoring.rules]]
name = "senior_title"
points = 20
when = {{ title_contains = ["vp", "director", "chief"] }}

[[scoring.rules]]
name = "demo_request"
points = 30
when = "demo_request"

[routing]
[[routing.teams]]
id = "sales"
members = ["a", "b"]
webhook_url = "{base}/hooks/sales-team"
manager_webhook_url = {{ url = "{base}/hooks/sales-manager", format = "slack" }}
{escalation}

[[routing.teams]]
id = "inbound"
members = ["c"]
webhook_url = "{base}/hooks/inbound-team"

[[routing.reps]]
id = "a"
capacity = 100
webhook_url = {{ url = "{base}/hooks/a", format = "slack" }}

[[routing.reps]]
id = "b"
capacity = 100
webhook_url = "{base}/hooks/b"

[[routing.reps]]
id = "c"
capacity = 100

[[routing.rules]]
name = "france"
team = "inbound"
when = {{ field = "company.country", in = ["FR"] }}

[[routing.rules]]
name = "everyone"
team = "sales"
"#
    )
}

async fn start(base: &str, first_touch_seconds: u32, escalation: &str) -> Stack {
    Stack::start(StackOptions {
        webhook_base: Some(base.to_owned()),
        rules: rules(base, escalation),
        first_touch_seconds,
        extra_config: format!("[actions]\npublic_url = \"{PUBLIC_URL}\"\n"),
        ..StackOptions::default()
    })
    .await
}

fn lead(n: usize, country: &str) -> Value {
    json!({
        "contact": {
            "email": EMAIL.replace("jane", &format!("jane{n}")),
            "first_name": "Jane", "last_name": format!("Doe{n}"),
            "phone": PHONE, "title": "VP Sales"
        },
        "company": { "name": "Acme GmbH", "country": country, "employees": 300 },
        "engagement": { "demo_request": true },
        "source": { "kind": "web_form", "name": "pricing-page", "campaign": "spring-launch" }
    })
}

/// The message bodies received at `path` so far.
fn at(seen: &Seen, path: &str) -> Vec<(HeaderMap, Bytes)> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == path)
        .map(|(_, h, b)| (h.clone(), b.clone()))
        .collect()
}

async fn first_at(seen: &Seen, path: &str, what: &str) -> (HeaderMap, Bytes) {
    eventually(WAIT, what, || {
        let found = at(seen, path).into_iter().next();
        async move { found }
    })
    .await
}

/// The link's path and query on the stack's own listener.
fn local(stack: &Stack, link: &str) -> String {
    let rest = link
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{link} is not under {PUBLIC_URL}"));
    format!("{}{rest}", stack.api())
}

fn text_of(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The Slack message's action buttons: (action_id, url).
fn buttons(message: &Value) -> Vec<(String, String)> {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().clone())
        .map(|e| {
            assert_eq!(e["type"], "button", "{e}");
            (
                e["action_id"].as_str().unwrap().to_owned(),
                e["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A Block Kit message as Slack accepts it: a text fallback and known block types, each
/// with the parts that type needs.
fn assert_block_kit(message: &Value) {
    assert!(
        message["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{message}"
    );
    let blocks = message["blocks"].as_array().expect("blocks array");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 150),
            "section" => {
                let fields = block["fields"].as_array().map_or(0, Vec::len);
                assert!(block["text"]["type"] == "mrkdwn" || fields > 0, "{block}");
                assert!(fields <= 10, "{block}");
                for f in block["fields"].as_array().into_iter().flatten() {
                    assert_eq!(f["type"], "mrkdwn");
                }
            }
            "actions" => {
                for e in block["elements"].as_array().unwrap() {
                    assert_eq!(e["type"], "button");
                    assert_eq!(e["text"]["type"], "plain_text");
                    assert!(e["url"].as_str().unwrap().starts_with("https://"));
                }
            }
            "context" => assert!(!block["elements"].as_array().unwrap().is_empty()),
            other => panic!("unexpected block type {other}"),
        }
    }
}

async fn get(url: &str, accept: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

async fn post(url: &str, accept: &str, form: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("accept", accept)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

fn code(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    value["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `lead.disposition` records of `lead` seen so far.
fn dispositions_of(records: &[Record], lead: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r.header("ce_subject") == Some(lead))
        .map(Record::json)
        .collect()
}

fn timeline_steps(view: &Value) -> Vec<String> {
    view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reps_message_carries_the_lead_and_links_that_record_once_and_teams_see_no_contact() {
    let (base, seen) = start_receiver().await;
    let stack = start(&base, 300, "").await;
    let client = handoff_e2e::client();
    // Round robin in member order: the first sales lead goes to a, the second to b.
    let lead_a = stack.post_lead(&client, &lead(1, "DE")).await;
    let (_, slack) = first_at(&seen, "/hooks/a", "rep a's assignment").await;
    let lead_b = stack.post_lead(&client, &lead(2, "DE")).await;
    let lead_c = stack.post_lead(&client, &lead(3, "FR")).await;

    // Rep a's own channel is Slack: Block Kit with the details, contact and link buttons.
    let slack: Value = serde_json::from_slice(&slack).unwrap();
    assert_block_kit(&slack);
    let all = slack.to_string();
    for detail in [
        "Jane Doe1",
        "VP Sales",
        "Acme GmbH",
        "DE",
        "spring-launch",
        "web_form",
        EMAIL.replace("jane", "jane1").as_str(),
        PHONE,
        "demo_request (+30)",
        "senior_title (+20)",
        lead_a.as_str(),
    ] {
        assert!(all.contains(detail), "{detail} missing from {slack:#}");
    }
    let buttons = buttons(&slack);
    assert_eq!(
        buttons
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        ["accept", "reject"]
    );
    let (a_accept, a_reject) = (buttons[0].1.clone(), buttons[1].1.clone());
    assert!(a_accept.starts_with(&format!("{PUBLIC_URL}/v1/actions/")));

    // Rep b's channel is JSON: the signed format, with the lead, reasons and links.
    let (headers, body) = first_at(&seen, "/hooks/b", "rep b's assignment").await;
    let signature = headers["handoff-signature"].to_str().unwrap();
    assert_eq!(
        handoff_notifier::verify(TEST_SIGNING_SECRET, signature, &body),
        Ok(()),
        "the JSON message's signature verifies"
    );
    let message: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(message["type"], "lead.assigned");
    assert_eq!(message["lead_id"], lead_b.as_str());
    assert_eq!(
        message["lead"],
        json!({"name": "Jane Doe2", "title": "VP Sales", "company": "Acme GmbH", "country": "DE",
               "email": EMAIL.replace("jane", "jane2"), "phone": PHONE})
    );
    assert_eq!(message["source"]["campaign"], "spring-launch");
    assert_eq!(
        message["top_reasons"][0],
        json!({"rule": "demo_request", "points": 30})
    );
    assert!(message["first_touch_due_at"].is_string());
    let b_accept = message["links"]["accept"].as_str().unwrap().to_owned();
    assert!(message["links"]["reject"].is_string() && message["links"]["expires_at"].is_string());

    // Rep c has no channel: the team's gets the message, without contact details or links.
    let (_, team) = first_at(&seen, "/hooks/inbound-team", "team inbound's message").await;
    let team_text = text_of(&team);
    let team: Value = serde_json::from_slice(&team).unwrap();
    assert_eq!(team["lead_id"], lead_c.as_str());
    assert_eq!(team["lead"]["name"], "Jane Doe3");
    assert!(
        !team_text.contains("jane3") && !team_text.contains(PHONE),
        "{team_text}"
    );
    assert!(team.get("links").is_none(), "{team}");

    // GET shows a page and changes nothing, however often (a chat app's unfurl, a scanner).
    let mut dispositions = stack.reader(EventKind::LeadDisposition);
    for _ in 0..2 {
        let (status, kind, page) = get(&local(&stack, &b_accept), "text/html").await;
        assert_eq!(status, 200, "{page}");
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(
            page.contains("<form method=\"post\"") && page.contains("Jane Doe2"),
            "{page}"
        );
        assert!(!page.contains("jane2@"), "no contact details on the page");
    }
    let (status, _, view) = get(&local(&stack, &b_accept), "application/json").await;
    assert_eq!(status, 200);
    let view: Value = serde_json::from_str(&view).unwrap();
    assert_eq!(
        (view["action"].as_str(), view["rep_id"].as_str()),
        (Some("accept"), Some("b"))
    );
    dispositions.read_for(Duration::from_secs(2)).await;
    assert!(
        dispositions_of(&dispositions.records, &lead_b).is_empty(),
        "GET recorded something"
    );
    assert!(!timeline_steps(&stack.lead_view(&lead_b).await).contains(&"accepted".to_owned()));

    // POST records it: lead.disposition with the rep as actor, and the lead's view shows it.
    let (status, kind, page) = post(&local(&stack, &b_accept), "text/html", "").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        kind.starts_with("text/html") && page.contains("Recorded"),
        "{page}"
    );
    let records = dispositions
        .read_until(WAIT, "the accepted disposition", |r| {
            !dispositions_of(r, &lead_b).is_empty()
        })
        .await;
    let accepted = dispositions_of(records, &lead_b);
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["outcome"], "ACCEPTED");
    assert_eq!(accepted[0]["actor"], json!({"kind": "REP", "id": "b"}));
    assert_eq!(accepted[0]["rep_id"], "b");
    let view = stack.lead_view(&lead_b).await;
    let entry = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["step"] == "accepted")
        .unwrap_or_else(|| panic!("no accepted step in {view:#}"))
        .clone();
    assert_eq!(entry["actor"], "b");

    // A second use is refused, as a page and as JSON; nothing more is recorded.
    let (status, kind, page) = post(&local(&stack, &b_accept), "text/html", "").await;
    assert_eq!(status, 410, "{page}");
    assert!(
        kind.starts_with("text/html") && page.contains("link_used"),
        "{page}"
    );
    let (status, _, body) = post(&local(&stack, &b_accept), "application/json", "").await;
    assert_eq!(
        (status, code(&body)),
        (410, "link_used".to_owned()),
        "{body}"
    );
    let (status, _, body) = get(&local(&stack, &b_accept), "application/json").await;
    assert_eq!(
        (status, code(&body)),
        (410, "link_used".to_owned()),
        "{body}"
    );

    // Reject: the page offers the reason codes; without one it is refused, with one recorded.
    let (status, _, page) = get(&local(&stack, &a_reject), "text/html").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<select name=\"reason_code\"") && page.contains("value=\"bad_timing\""),
        "{page}"
    );
    let (status, _, body) = post(&local(&stack, &a_reject), "application/json", "").await;
    assert_eq!(
        (status, code(&body)),
        (422, "validation_failed".to_owned()),
        "{body}"
    );
    let (status, _, body) = post(
        &local(&stack, &a_reject),
        "application/json",
        "reason_code=not_a_reason",
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (422, "validation_failed".to_owned()),
        "{body}"
    );
    let (status, _, body) = post(
        &local(&stack, &a_reject),
        "application/json",
        "reason_code=bad_timing&note=back+in+Q3",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let records = dispositions
        .read_until(WAIT, "the rejection", |r| {
            !dispositions_of(r, &lead_a).is_empty()
        })
        .await;
    let rejected = dispositions_of(records, &lead_a);
    assert_eq!(rejected[0]["outcome"], "REJECTED");
    assert_eq!(rejected[0]["reason_code"], "bad_timing");
    assert_eq!(rejected[0]["actor"], json!({"kind": "REP", "id": "a"}));
    let view = stack.lead_view(&lead_a).await;
    assert_eq!(
        (view["state"].as_str(), view["outcome"].as_str()),
        (Some("closed"), Some("rejected")),
        "{view:#}"
    );
    // The rejection closed the lead: its accept link now hears so (409, as the API says).
    let (status, _, body) = post(&local(&stack, &a_accept), "application/json", "").await;
    assert_eq!(
        (status, code(&body)),
        (409, "lead_closed".to_owned()),
        "{body}"
    );

    // Altered: any changed character is refused (403), as JSON and as a page.
    let tampered = {
        let mut t = b_accept.clone().into_bytes();
        let i = t.len() - 5;
        t[i] = if t[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(t).unwrap()
    };
    let (status, _, body) = get(&local(&stack, &tampered), "application/json").await;
    assert_eq!(
        (status, code(&body)),
        (403, "link_invalid".to_owned()),
        "{body}"
    );
    let (status, kind, page) = post(&local(&stack, &tampered), "text/html", "").await;
    assert_eq!(status, 403);
    assert!(
        kind.starts_with("text/html") && page.contains("link_invalid"),
        "{page}"
    );

    // Expired: a genuine link (signed with the deployment's key) past its time.
    let claim = ActionClaim::new(
        lead_c.as_str().into(),
        "c".into(),
        1,
        LinkAction::Accept,
        Utc::now() - chrono::Duration::seconds(1),
    );
    let expired = format!(
        "{}/v1/actions/{}",
        stack.api(),
        sign(&claim, TEST_ACTION_SECRET.as_bytes()).unwrap()
    );
    let (status, _, body) = post(&expired, "application/json", "").await;
    assert_eq!(
        (status, code(&body)),
        (410, "link_expired".to_owned()),
        "{body}"
    );
    let (status, kind, _) = get(&expired, "text/html").await;
    assert_eq!(status, 410);
    assert!(kind.starts_with("text/html"));
    stack.stop().await.unwrap();
}

/// Rep a misses the first touch: the lead goes to b (attempt 2). a's links are refused
/// from then on; the manager channel (Slack) hears of the breach without contact details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_for_a_superseded_attempt_is_refused_and_managers_get_no_contact() {
    let (base, seen) = start_receiver().await;
    let stack = start(&base, 2, "escalation = { max_attempts = 2 }").await;
    let client = handoff_e2e::client();
    let lead_id = stack.post_lead(&client, &lead(7, "DE")).await;
    let (_, slack) = first_at(&seen, "/hooks/a", "rep a's assignment").await;
    let slack: Value = serde_json::from_slice(&slack).unwrap();
    let accept = buttons(&slack)[0].1.clone();

    // Before the breach the link works for a (GET only: nothing recorded).
    let (status, _, body) = get(&local(&stack, &accept), "application/json").await;
    assert_eq!(status, 200, "{body}");

    let (_, reassigned) = first_at(&seen, "/hooks/b", "the reassignment to b").await;
    let reassigned: Value = serde_json::from_slice(&reassigned).unwrap();
    assert_eq!(
        (
            reassigned["attempt"].as_u64(),
            reassigned["lead_id"].as_str()
        ),
        (Some(2), Some(lead_id.as_str()))
    );
    assert_eq!(
        reassigned["lead"]["email"],
        EMAIL.replace("jane", "jane7"),
        "the new assignee gets the contact"
    );
    eventually(WAIT, "attempt 2 in the lead's view", || {
        let stack = &stack;
        let lead_id = lead_id.clone();
        async move { (stack.lead_view(&lead_id).await["attempt"] == 2).then_some(()) }
    })
    .await;

    for (status, _, body) in [
        get(&local(&stack, &accept), "application/json").await,
        post(&local(&stack, &accept), "application/json", "").await,
    ] {
        assert_eq!(
            (status, code(&body)),
            (409, "link_superseded".to_owned()),
            "{body}"
        );
    }
    let (status, kind, page) = get(&local(&stack, &accept), "text/html").await;
    assert_eq!(status, 409);
    assert!(
        kind.starts_with("text/html") && page.contains("reassigned"),
        "{page}"
    );

    // The manager channel is Slack: the breach in Block Kit, who the lead is, no contact.
    let (_, breach) = first_at(&seen, "/hooks/sales-manager", "the breach at the manager").await;
    let breach_text = text_of(&breach);
    let breach: Value = serde_json::from_slice(&breach).unwrap();
    assert_block_kit(&breach);
    assert!(
        breach_text.contains("First-touch SLA missed") && breach_text.contains("Jane Doe7"),
        "{breach:#}"
    );
    assert!(
        !breach_text.contains("jane7@") && !breach_text.contains(PHONE),
        "{breach:#}"
    );
    assert!(
        buttons(&breach).is_empty(),
        "no links outside the rep's channel"
    );
    assert!(at(&seen, "/hooks/sales-team")
        .iter()
        .all(|(_, b)| !text_of(b).contains(PHONE)));
    stack.stop().await.unwrap();
}
