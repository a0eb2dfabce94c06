//! The notifier's delivery schedule against a real Redis (`HANDOFF_TEST_REDIS`, which
//! `make test` and `scripts/test-env.sh up` provide). Each test has its own key prefix.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

mod common;

use std::future::Future;
use std::time::Duration;

use handoff_store::{Begun, OriginEvent, PendingDelivery, Start, Store};

async fn store() -> Store {
    common::store("tdeliv").await.0
}

fn delivery(id: &str) -> PendingDelivery {
    PendingDelivery {
        id: id.to_owned(),
        url: "https://hooks.example.com/services/T/B/token".to_owned(),
        event_id: format!("event-{id}"),
        event_type: "lead.assigned".to_owned(),
        body: "{\"text\":\"hi\"}".to_owned(),
        attempts: 0,
        first_seen_ms: 1_700_000_000_000,
        last_error: None,
        origin: OriginEvent {
            topic: "handoff.lead.assigned".to_owned(),
            partition: 1,
            offset: 7,
            key_hex: Some(hex_of("lead-1")),
            payload_hex: Some(hex_of("{}")),
            headers_hex: vec![("ce_id".to_owned(), hex_of("event"))],
            timestamp_ms: Some(1_700_000_000_000),
        },
    }
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Polls until `check` yields a value (or panics after `timeout`).
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_delivery_is_begun_once_and_not_again_after_it_was_sent() {
    let store = store().await;
    let d = delivery("a");
    let claim = Start::Claim {
        token: "owner-1",
        lease: LONG,
    };
    assert_eq!(
        store.begin_delivery(&d, claim).await.unwrap(),
        Begun::Claimed
    );
    assert_eq!(
        store.begin_delivery(&d, claim).await.unwrap(),
        Begun::AlreadyPending,
        "a redelivered event while the first is in flight"
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);

    assert!(store
        .finish_delivery(&d.id, "owner-1", true, Duration::from_secs(60))
        .await
        .unwrap());
    assert!(store.delivery_sent(&d.id).await.unwrap());
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert_eq!(
        store.begin_delivery(&d, claim).await.unwrap(),
        Begun::AlreadySent,
        "a redelivered event after the delivery"
    );
    assert!(
        store
            .claim_deliveries("poller", LONG, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing left to retry"
    );
}

#[tokio::test]
async fn a_deferred_delivery_is_claimed_when_due_with_its_record() {
    let store = store().await;
    let d = delivery("b");
    let after = Duration::from_secs(2);
    assert_eq!(
        store
            .begin_delivery(&d, Start::Defer { after })
            .await
            .unwrap(),
        Begun::Deferred
    );
    assert!(
        store
            .claim_deliveries("poller", LONG, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let claimed = eventually(Duration::from_secs(10), "the due delivery", || {
        let store = store.clone();
        async move {
            let claimed = store.claim_deliveries("poller", LONG, 10).await.unwrap();
            (!claimed.is_empty()).then_some(claimed)
        }
    })
    .await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery, d, "the record round-trips");
    assert_eq!(claimed[0].token, "poller");
}

/// An owner that dies mid-attempt: after its lease another poller claims the delivery, and
/// the late owner can neither reschedule nor remove it (its delivered mark still counts).
#[tokio::test]
async fn an_expired_claim_passes_to_another_poller_and_only_the_owner_finishes() {
    let store = store().await;
    let mut d = delivery("c");
    let lease = Duration::from_secs(2);
    store
        .begin_delivery(
            &d,
            Start::Claim {
                token: "dead",
                lease,
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries("other", LONG, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed and leased"
    );
    let taken = eventually(Duration::from_secs(10), "the expired claim", || {
        let store = store.clone();
        async move {
            let claimed = store.claim_deliveries("other", LONG, 10).await.unwrap();
            (!claimed.is_empty()).then_some(claimed)
        }
    })
    .await;
    assert_eq!(taken[0].delivery.id, d.id);

    d.attempts = 1;
    assert!(!store
        .reschedule_delivery(&d, "dead", Duration::ZERO)
        .await
        .unwrap());
    assert!(
        !store
            .finish_delivery(&d.id, "dead", false, Duration::from_secs(60))
            .await
            .unwrap(),
        "not the owner any more"
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);

    assert!(store
        .reschedule_delivery(&d, "other", Duration::ZERO)
        .await
        .unwrap());
    let again = store.claim_deliveries("third", LONG, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].delivery.attempts, 1,
        "the updated record was stored"
    );
    assert!(store
        .finish_delivery(&d.id, "third", false, Duration::from_secs(60))
        .await
        .unwrap());
    assert_eq!(store.pending_deliveries().await.unwrap(), 0);
    assert!(
        !store.delivery_sent(&d.id).await.unwrap(),
        "given up, not delivered: no mark"
    );
}
