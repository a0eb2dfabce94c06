//! The SLA tracker's claim protocol against a real Redis (`HANDOFF_TEST_REDIS`, which
//! `make test` and `scripts/test-env.sh up` provide). Each test has its own key prefix.
//! Deadlines are written straight into the due set, as the lifecycle scripts write them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use handoff_store::{ClaimRequest, Store};

struct Fixture {
    store: Store,
    redis: redis::aio::MultiplexedConnection,
    prefix: String,
}

async fn fixture() -> Fixture {
    let (store, prefix) = common::store("tclaim").await;
    Fixture {
        store,
        redis: common::redis().await,
        prefix,
    }
}

impl Fixture {
    fn key(&self, suffix: &str) -> String {
        format!("{{{}}}:{suffix}", self.prefix)
    }

    /// The Redis server's clock (ms).
    async fn server_ms(&mut self) -> i64 {
        let (secs, micros): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.redis)
            .await
            .unwrap();
        secs * 1000 + micros / 1000
    }

    async fn add_deadlines(&mut self, due_ms: i64, members: impl IntoIterator<Item = String>) {
        let mut pipe = redis::pipe();
        for member in members {
            pipe.zadd(self.key("sla:due"), member, due_ms).ignore();
        }
        let () = pipe.query_async(&mut self.redis).await.unwrap();
    }

    async fn owners(&mut self) -> usize {
        redis::cmd("HLEN")
            .arg(self.key("sla:claimed:owner"))
            .query_async(&mut self.redis)
            .await
            .unwrap()
    }

    async fn claimed(&mut self) -> usize {
        redis::cmd("ZCARD")
            .arg(self.key("sla:claimed"))
            .query_async(&mut self.redis)
            .await
            .unwrap()
    }
}

fn claim(token: &str, lease: Duration, limit: u32) -> ClaimRequest<'_> {
    ClaimRequest {
        token,
        lease,
        limit,
    }
}

/// Due is reckoned on the Redis server's clock, which the caller does not pass: a host
/// whose clock runs ahead or behind cannot make a deadline fire early or late.
#[tokio::test]
async fn a_deadline_fires_by_the_redis_servers_clock() {
    let mut f = fixture().await;
    let due = f.server_ms().await + 1500;
    f.add_deadlines(due, ["l1|1".to_owned()]).await;

    let early = f
        .store
        .claim_due(&claim("t", Duration::from_secs(5), 10))
        .await
        .unwrap();
    assert!(early.due.is_empty(), "claimed before it was due");
    assert!(early.now.timestamp_millis() < due);

    let started = tokio::time::Instant::now();
    let claimed = loop {
        let claimed = f
            .store
            .claim_due(&claim("t", Duration::from_secs(5), 10))
            .await
            .unwrap();
        if !claimed.due.is_empty() {
            break claimed;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(claimed.due[0].member, "l1|1");
    let now = claimed.now.timestamp_millis();
    assert!(
        (due..due + 1000).contains(&now),
        "claimed at server time {now}, due {due}"
    );
}

/// A poller that stalls past its lease loses the claim to the next poller and cannot
/// complete it; the new owner can, and nothing of the claim is left after.
#[tokio::test]
async fn a_poller_stalled_past_its_lease_cannot_complete() {
    let mut f = fixture().await;
    let due = f.server_ms().await - 10;
    f.add_deadlines(due, ["l1|1".to_owned()]).await;

    let stalled = f
        .store
        .claim_due(&claim("stalled", Duration::from_millis(200), 10))
        .await
        .unwrap();
    assert_eq!(stalled.due.len(), 1);
    // While the lease runs, nobody else gets it.
    let during = f
        .store
        .claim_due(&claim("other", Duration::from_secs(5), 10))
        .await
        .unwrap();
    assert!(during.due.is_empty(), "a live claim was taken");

    let started = tokio::time::Instant::now();
    let taken = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let taken = f
            .store
            .claim_due(&claim("other", Duration::from_secs(5), 10))
            .await
            .unwrap();
        if !taken.due.is_empty() {
            break taken;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never re-claimed"
        );
    };
    assert_eq!(taken.due[0].member, "l1|1");

    let late = f
        .store
        .complete_breaches("stalled", &["l1|1"])
        .await
        .unwrap();
    assert_eq!(
        late,
        vec![false],
        "the stalled poller completed a claim it lost"
    );
    assert_eq!(f.claimed().await, 1, "the new owner's claim must stay");

    let done = f.store.complete_breaches("other", &["l1|1"]).await.unwrap();
    assert_eq!(done, vec![true]);
    assert_eq!((f.claimed().await, f.owners().await), (0, 0));
}

/// Two pollers claiming the same due set at once each get a disjoint share, and together
/// every deadline exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_pollers_claim_each_deadline_once() {
    let mut f = fixture().await;
    let due = f.server_ms().await - 10;
    let total = 3000;
    f.add_deadlines(due, (0..total).map(|n| format!("lead-{n}|1")))
        .await;

    let poll = |store: Store, token: &'static str| async move {
        let mut mine = Vec::new();
        loop {
            let claimed = store
                .claim_due(&claim(token, Duration::from_secs(30), 64))
                .await
                .unwrap();
            if claimed.due.is_empty() {
                return mine;
            }
            let members: Vec<&str> = claimed.due.iter().map(|d| d.member.as_str()).collect();
            let done = store.complete_breaches(token, &members).await.unwrap();
            assert!(
                done.iter().all(|d| *d),
                "{token} lost a claim with a 30 s lease"
            );
            mine.extend(claimed.due.into_iter().map(|d| d.member));
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(poll(f.store.clone(), "a")),
        tokio::spawn(poll(f.store.clone(), "b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let a_set: BTreeSet<_> = a.iter().collect();
    let b_set: BTreeSet<_> = b.iter().collect();
    assert_eq!(
        a.len() + b.len(),
        total,
        "claimed {} + {}",
        a.len(),
        b.len()
    );
    assert!(a_set.is_disjoint(&b_set), "a deadline claimed twice");
    assert_eq!(a_set.union(&b_set).count(), total);
    assert_eq!((f.claimed().await, f.owners().await), (0, 0));
}

/// A claim the lifecycle removed while its poller published (the lead was touched
/// meanwhile) still completes for its owner, and leaves nothing behind.
#[tokio::test]
async fn a_claim_removed_by_the_lifecycle_still_completes_for_its_owner() {
    let mut f = fixture().await;
    let due = f.server_ms().await - 10;
    f.add_deadlines(due, ["l1|1".to_owned()]).await;
    let claimed = f
        .store
        .claim_due(&claim("owner", Duration::from_secs(5), 10))
        .await
        .unwrap();
    assert_eq!(claimed.due.len(), 1);
    let () = redis::cmd("ZREM")
        .arg(f.key("sla:claimed"))
        .arg("l1|1")
        .query_async(&mut f.redis)
        .await
        .map(|_: i64| ())
        .unwrap();
    let done = f.store.complete_breaches("owner", &["l1|1"]).await.unwrap();
    assert_eq!(done, vec![true]);
    assert_eq!((f.claimed().await, f.owners().await), (0, 0));
}
