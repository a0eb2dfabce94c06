//! Redis down for 30 seconds while leads keep coming: ingest keeps taking leads (the log
//! holds them) and answers 503 with Retry-After for what needs Redis, readiness says which
//! dependency is missing, the consumers wait and retry (never skip), and when it is back
//! every lead — those that reached the topic during the outage too — is assigned exactly
//! once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use handoff_domain::events::EventKind;
use handoff_e2e::redis_server::{Persistence, RedisServer};
use handoff_e2e::{post_json, qualified_lead, Stack, StackOptions, TestEnv};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use serde_json::{json, Value};

const OUTAGE: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(90);

async fn readiness(stack: &Stack) -> (u16, Value) {
    let response = reqwest::get(format!("{}/readyz", stack.internal()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Another producer's lead, written straight to `lead.created` (no ingest, no Redis).
async fn publish_lead(kafka: &str, topic: &str, id: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .create()
        .unwrap();
    let lead = json!({
        "id": id,
        "contact": { "email": format!("{id}@acme.io"), "title": "VP Sales" },
        "company": { "name": "Acme", "country": "DE", "employees": 300 },
        "source": { "kind": "crm", "name": "crm-sync" }
    });
    producer
        .send(
            FutureRecord::to(topic)
                .key(id)
                .payload(&serde_json::to_vec(&lead).unwrap()),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Every lead of `expected` assigned, each by exactly one `lead.assigned` event.
async fn assert_assigned_once(stack: &Stack, expected: &BTreeSet<String>) {
    for lead in expected {
        handoff_e2e::eventually(WAIT, &format!("{lead} assigned"), || async {
            (stack.lead_view(lead).await["state"] == "assigned").then_some(())
        })
        .await;
    }
    let mut reader = stack.reader(EventKind::LeadAssigned);
    let records = reader
        .read_until(WAIT, "every lead assigned", |records| {
            let seen: BTreeSet<&str> = records
                .iter()
                .filter_map(|r| r.header("ce_subject"))
                .collect();
            expected.iter().all(|lead| seen.contains(lead.as_str()))
        })
        .await
        .to_vec();
    // Let any duplicate that was coming arrive.
    let records = reader
        .read_for(Duration::from_secs(2))
        .await
        .iter()
        .chain(records.iter())
        .cloned()
        .collect::<Vec<_>>();
    let mut per_lead: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for record in &records {
        if let Some(lead) = record.header("ce_subject") {
            per_lead
                .entry(lead)
                .or_default()
                .insert(record.json()["attempt"].to_string());
        }
    }
    for lead in expected {
        let attempts = per_lead.get(lead.as_str()).cloned().unwrap_or_default();
        assert_eq!(attempts.len(), 1, "{lead}: assignments {attempts:?}");
    }
    let assignments = records
        .iter()
        .filter(|r| {
            r.header("ce_subject")
                .is_some_and(|lead| expected.contains(lead))
        })
        .map(|r| r.header("ce_id").unwrap_or_default().to_owned())
        .collect::<BTreeSet<_>>();
    assert_eq!(
        assignments.len(),
        expected.len(),
        "one assignment event per lead (redeliveries keep the event id)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_for_30_seconds_loses_and_doubles_nothing() {
    let mut redis = RedisServer::start(Persistence::AofAlways).await;
    let env = TestEnv {
        redis: redis.url(),
        ..TestEnv::from_env()
    };
    let stack = Stack::start_with(env, StackOptions::default()).await;
    let client = handoff_e2e::client();
    let url = format!("{}/v1/leads", stack.api());
    let mut leads = BTreeSet::new();
    for n in 0..3 {
        leads.insert(stack.post_lead(&client, &qualified_lead(n)).await);
    }

    redis.kill().await;
    // A lead needs only the broker: ingest keeps taking them, the log holds them until the
    // router can route. What needs Redis (an idempotency key, a disposition) is refused
    // with 503 and Retry-After, never half done.
    let (status, body) = post_json(&client, &url, &qualified_lead(10)).await;
    assert_eq!(status, 202, "{body}");
    leads.insert(body["lead_id"].as_str().unwrap().to_owned());
    let keyed = client
        .post(&url)
        .header("Idempotency-Key", "outage-retry-1")
        .json(&qualified_lead(11))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status().as_u16(), 503);
    assert!(
        keyed.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
    let body: Value = keyed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let touched = leads.iter().next().unwrap().clone();
    let disposition_url = format!("{}/v1/leads/{touched}/dispositions", stack.api());
    let (status, body) =
        post_json(&client, &disposition_url, &json!({"outcome": "contacted"})).await;
    assert_eq!(status, 503, "{body}");
    let (status, report) = readiness(&stack).await;
    assert_eq!(status, 503, "{report}");
    assert!(report.to_string().contains("redis"), "{report}");
    let topic = stack.topics.of(EventKind::LeadCreated);
    for n in 0..3 {
        let id = format!("crm-during-outage-{}-{n}", stack.id);
        publish_lead(&stack.env.kafka, &topic, &id).await;
        leads.insert(id);
    }
    tokio::time::sleep(OUTAGE).await; // the outage itself: nothing to wait for

    redis.up().await;
    handoff_e2e::eventually(WAIT, "readiness back", || async {
        (readiness(&stack).await.0 == 200).then_some(())
    })
    .await;
    // The clients' retries after Retry-After now land.
    let keyed = client
        .post(&url)
        .header("Idempotency-Key", "outage-retry-1")
        .json(&qualified_lead(11))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status().as_u16(), 202);
    let body: Value = keyed.json().await.unwrap();
    leads.insert(body["lead_id"].as_str().unwrap().to_owned());
    assert_assigned_once(&stack, &leads).await;
    let (status, body) =
        post_json(&client, &disposition_url, &json!({"outcome": "contacted"})).await;
    assert_eq!(status, 202, "{body}");
    let mut open = 0;
    for rep in ["a", "b", "c"] {
        open += stack.open_leads(rep).await;
    }
    // Every lead holds its rep's capacity once, but the touched one, which freed it.
    assert_eq!(
        open,
        leads.len() as i64 - 1,
        "capacity charged once per lead"
    );
    stack.stop().await.unwrap();
}
