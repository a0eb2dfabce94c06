use std::collections::BTreeSet;
use std::time::Duration;

use handoff::services::{Service, ServiceSet};
use handoff_domain::events::EventKind;
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{Stack, StackOptions};
use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use handoff_kafka::rdkafka::ClientConfig;
use serde_json::json;

/// Undecodable and contract-invalid events land on the dead-letter topic with the reason
/// and their origin; the leads behind them on the same partition are still routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letter_topic_and_the_partition_moves_on() {
    let stack = Stack::start(StackOptions {
        services: ServiceSet::only(Service::Router),
        ..StackOptions::default()
    })
    .await;
    // Another producer (a CRM sync, say) writing to lead.created without our headers.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.env.kafka)
        .create()
        .unwrap();
    let topic = stack.topics.of(EventKind::LeadCreated);
    let key = "same-partition";
    let valid = json!({
        "id": "crm-0001",
        "received_at": "2026-11-22T10:00:00Z",
        "contact": { "email": "Buyer@Example.com", "title": "VP Sales" },
        "company": { "country": "FR" }
    });
    let invalid = json!({ "id": "crm-0002", "received_at": "2026-11-22T10:00:00Z", "favourite_colour": "red" });
    for payload in [
        b"\x00\x01not json at all".to_vec(),
        serde_json::to_vec(&invalid).unwrap(),
        serde_json::to_vec(&valid).unwrap(),
    ] {
        producer
            .send(
                FutureRecord::to(&topic).key(key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let mut dead = TopicReader::new(&stack.env.kafka, &stack.topics.dead_letter());
    let records = dead
        .read_until(Duration::from_secs(30), "two dead letters", |r| {
            r.len() >= 2
        })
        .await
        .to_vec();
    let reasons: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.header("handoff_dlq_reason"))
        .collect();
    assert_eq!(reasons, BTreeSet::from(["undecodable", "contract_invalid"]));
    for record in &records {
        assert_eq!(
            record.header("handoff_dlq_origin_topic"),
            Some(topic.as_str())
        );
        assert_eq!(record.header("handoff_dlq_service"), Some("router"));
        assert!(record.header("handoff_dlq_origin_partition").is_some());
        assert!(record.header("handoff_dlq_origin_offset").is_some());
        assert_eq!(record.key.as_deref(), Some(key), "the original key is kept");
    }
    let invalid_record = records
        .iter()
        .find(|r| r.header("handoff_dlq_reason") == Some("contract_invalid"))
        .unwrap();
    assert!(invalid_record
        .header("handoff_dlq_error")
        .unwrap()
        .contains("favourite_colour"));
    assert_eq!(
        invalid_record.json(),
        invalid,
        "the original payload is kept"
    );

    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned
        .read_until(
            Duration::from_secs(30),
            "the valid lead behind the poison",
            |r| !r.is_empty(),
        )
        .await;
    assert_eq!(records[0].json()["lead_id"], "crm-0001");
    stack.stop().await.unwrap();
}
