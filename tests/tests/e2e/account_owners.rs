//! Issue 7: account owners that stay current. A CRM connector publishes `account.owner`
//! records (key: the account's domain; value: proto `handoff.v1.AccountOwner` as canonical
//! proto3 JSON; null: tombstone) and the next routing decision follows them.

use std::collections::BTreeSet;
use std::time::Duration;

use handoff::services::{Service, ServiceSet};
use handoff_domain::accounts::ACCOUNT_OWNER_MESSAGE;
use handoff_domain::events::EventKind;
use handoff_e2e::contract::Contract;
use handoff_e2e::topics::{Record, TopicReader};
use handoff_e2e::{post_json, Stack, StackOptions};
use handoff_kafka::rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use handoff_kafka::rdkafka::client::DefaultClientContext;
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use serde_json::{json, Value};

fn stack_options() -> StackOptions {
    StackOptions {
        services: ServiceSet::of(&[Service::Ingest, Service::Router]),
        ..StackOptions::default()
    }
}

/// A CRM connector's producer.
struct Connector {
    producer: FutureProducer,
    topic: String,
}

impl Connector {
    fn new(stack: &Stack) -> Self {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &stack.env.kafka)
            .create()
            .unwrap();
        Self {
            producer,
            topic: stack.topics.account_owner(),
        }
    }

    /// Publishes `value` (checked against proto/ first: this is what a connector generated
    /// from it writes), or a tombstone for `None`.
    async fn publish(&self, key: &str, value: Option<&Value>) {
        let record = FutureRecord::<str, [u8]>::to(&self.topic).key(key);
        let payload = value.map(|v| serde_json::to_vec(v).unwrap());
        let record = match &payload {
            Some(payload) => record.payload(payload.as_slice()),
            None => record,
        };
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// An `account.owner` value as a producer generated from proto/ writes it: lowerCamelCase,
/// and strictly valid against proto/.
fn owner_value(account: &str, rep: &str, updated_at: &str) -> Value {
    let value = json!({ "accountName": account, "ownerRepId": rep, "updatedAt": updated_at });
    Contract::load()
        .decode_as(ACCOUNT_OWNER_MESSAGE, &serde_json::to_vec(&value).unwrap())
        .unwrap();
    value
}

/// Waits until `/metrics` counts `n` account.owner records with `outcome`.
async fn records_reach(stack: &Stack, outcome: &str, n: u64) {
    let line = format!("handoff_account_owner_records_total{{outcome=\"{outcome}\"}} {n}");
    let url = format!("{}/metrics", stack.internal());
    let client = reqwest::Client::new();
    handoff_e2e::eventually(Duration::from_secs(60), &line, || {
        let (client, url, line) = (client.clone(), url.clone(), line.clone());
        async move {
            let text = client.get(url).send().await.ok()?.text().await.ok()?;
            text.lines().any(|l| l == line).then_some(())
        }
    })
    .await;
}

/// Posts a qualified lead from `email` and returns its `lead.assigned` event.
async fn assign(stack: &Stack, reader: &mut TopicReader, email: &str) -> Value {
    let lead = json!({
        "contact": { "email": email, "title": "VP Sales" },
        "company": { "name": "BigCorp", "country": "DE", "employees": 300 },
        "source": { "kind": "web_form", "name": "pricing-page" }
    });
    let (status, body) = post_json(
        &handoff_e2e::client(),
        &format!("{}/v1/leads", stack.api()),
        &lead,
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
    let record = records
        .iter()
        .find(|r| r.header("ce_subject") == Some(id.as_str()))
        .unwrap();
    Contract::load().check(record).unwrap();
    record.json()
}

/// The topic's `cleanup.policy`, as the broker reports it.
async fn cleanup_policy(stack: &Stack, topic: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.env.kafka)
        .create()
        .unwrap();
    let results = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    let resource = results.into_iter().next()?.ok()?;
    resource.get("cleanup.policy")?.value.clone()
}

/// Done-when of issue 7: an `account.owner` record changes the next routing decision (over
/// the rules' round-robin), an older record replayed after it changes nothing, and a
/// tombstone hands the account's leads back to the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_owner_record_routes_the_next_lead_and_a_tombstone_removes_it() {
    let stack = Stack::start(stack_options()).await;
    if std::env::var("HANDOFF_TEST_CREATE_TOPICS").as_deref() != Ok("false") {
        assert_eq!(
            cleanup_policy(&stack, &stack.topics.account_owner())
                .await
                .as_deref(),
            Some("compact"),
            "account.owner is created compacted"
        );
    }
    let connector = Connector::new(&stack);
    let mut assigned = stack.reader(EventKind::LeadAssigned);

    // c would be third in the rotation; the CRM says c owns BigCorp.
    connector
        .publish(
            "bigcorp.de",
            Some(&owner_value("BigCorp", "c", "2026-11-23T10:00:00Z")),
        )
        .await;
    records_reach(&stack, "applied", 1).await;
    let event = assign(&stack, &mut assigned, "ada@eu.bigcorp.de").await;
    assert_eq!(event["rep_id"], "c", "{event}");
    assert_eq!(event["explanation"]["strategy"], "account_owner", "{event}");
    assert_eq!(
        event["explanation"]["reason"],
        "c: owner of account BigCorp (bigcorp.de, from account.owner)"
    );

    // A snapshot older than the owner applied (a connector replaying, a late record): kept.
    connector
        .publish(
            "bigcorp.de",
            Some(&owner_value("BigCorp", "b", "2026-11-23T09:00:00Z")),
        )
        .await;
    records_reach(&stack, "stale", 1).await;
    let event = assign(&stack, &mut assigned, "bo@bigcorp.de").await;
    assert_eq!(event["rep_id"], "c", "{event}");

    // The tombstone: BigCorp has no owner any more, so its next lead goes by the rules.
    connector.publish("bigcorp.de", None).await;
    records_reach(&stack, "removed", 1).await;
    let event = assign(&stack, &mut assigned, "cy@bigcorp.de").await;
    assert_eq!(event["explanation"]["rule"], "everyone", "{event}");
    assert_eq!(event["explanation"]["strategy"], "round_robin", "{event}");
    assert_eq!(event["rep_id"], "a", "the rotation starts at its first rep");
    stack.stop().await.unwrap();
}

/// Records the router cannot use go to the dead-letter topic with the reason; an owner who
/// is not a rep of the rules is stored but passed over, and the explanation says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_account_owner_records_are_dead_lettered_or_explained() {
    let stack = Stack::start(stack_options()).await;
    let connector = Connector::new(&stack);
    let valid = owner_value("BigCorp", "c", "2026-11-23T10:00:00Z");
    // Keyed by an email address instead of the domain.
    connector.publish("ana@bigcorp.de", Some(&valid)).await;
    // No owner: removing one takes a tombstone.
    connector
        .publish(
            "bigcorp.de",
            Some(&json!({ "accountName": "BigCorp", "updatedAt": "2026-11-23T10:00:00Z" })),
        )
        .await;
    let mut dead = TopicReader::new(&stack.env.kafka, &stack.topics.dead_letter());
    let records: Vec<Record> = dead
        .read_until(Duration::from_secs(30), "two dead letters", |r| {
            r.len() >= 2
        })
        .await
        .to_vec();
    let errors: BTreeSet<String> = records
        .iter()
        .map(|r| {
            assert_eq!(r.header("handoff_dlq_service"), Some("account_owners"));
            assert_eq!(r.header("handoff_dlq_reason"), Some("contract_invalid"));
            assert_eq!(
                r.header("handoff_dlq_origin_topic"),
                Some(stack.topics.account_owner().as_str())
            );
            r.header("handoff_dlq_error").unwrap().to_owned()
        })
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("record key: not a domain")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("owner_rep_id")),
        "{errors:?}"
    );
    assert!(
        errors.iter().all(|e| !e.contains("ana@")),
        "the key is not quoted: it may be an email address"
    );

    // zoe is no rep of the rules: the lead goes by the rules, and the explanation says why.
    connector
        .publish(
            "zoe-corp.com",
            Some(&owner_value("Zoe Corp", "zoe", "2026-11-23T10:00:00Z")),
        )
        .await;
    records_reach(&stack, "applied", 1).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let event = assign(&stack, &mut assigned, "ada@zoe-corp.com").await;
    assert_eq!(event["explanation"]["rule"], "everyone", "{event}");
    assert_eq!(
        event["explanation"]["skipped"][0],
        json!({
            "rep_id": "zoe",
            "reason": "account_owner (owner of account Zoe Corp (zoe-corp.com, from account.owner)), not a rep of any team in the rules"
        })
    );
    stack.stop().await.unwrap();
}
