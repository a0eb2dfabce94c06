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

#[tokio::test]
async fn a_reading_held_up_in_a_queue_does_not_move_the_clock() {
    let (store, _) = common::store("tclockslow").await;
    store.sync_clock().await.unwrap();
    // Every client waits 300 ms (as behind a reconnect): the server reads its clock at the
    // end of the wait, a one-trip measurement would put it ~150 ms ahead of this host.
    let mut pauser = common::redis().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("ALL")
        .query_async(&mut pauser)
        .await
        .unwrap();
    let offset = store.sync_clock().await.unwrap();
    assert!(
        offset.abs() < 50,
        "offset {offset} ms on one host after a held-up reading"
    );
    let ahead = (store.now() - chrono::Utc::now()).num_milliseconds();
    assert!(ahead.abs() < 50, "now is {ahead} ms off this host's clock");
}
