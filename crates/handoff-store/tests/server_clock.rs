//! The services' "now" is the Redis server's clock (`TIME`), which the SLA tracker fires
//! deadlines on, measured against a real Redis (`HANDOFF_TEST_REDIS`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

mod common;

async fn server_ms(redis: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(redis).await.unwrap();
    seconds * 1000 + micros / 1000
}

#[tokio::test]
async fn now_is_the_redis_servers_clock_once_measured() {
    let (store, _) = common::store("tclock").await;
    let mut redis = common::redis().await;
    let offset = store.sync_clock().await.unwrap();
    // Same host: the clocks agree, up to the round trip.
    assert!(offset.abs() < 50, "offset {offset} ms on one host");
    let before = server_ms(&mut redis).await;
    let now = store.now().timestamp_millis();
    let after = server_ms(&mut redis).await;
    assert!(
        before - 1 <= now && now <= after + 1,
        "now {now} outside the server's [{before}, {after}]"
    );
}
