//! The state's generation marker against a real Redis (`HANDOFF_TEST_REDIS`): observing
//! it advances its tick, never creates it, and a Redis that goes back in time hands out a
//! tick that is not above the last one (how a restore that brings the same marker back
//! is told from a Redis that kept its writes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

mod common;

use handoff_store::{Generation, Store};

async fn store() -> (Store, redis::aio::MultiplexedConnection, String) {
    let (store, prefix) = common::store("tgen").await;
    (store, common::redis().await, prefix)
}

#[tokio::test]
async fn observing_the_marker_advances_its_tick_and_never_creates_it() {
    let (store, mut redis, prefix) = store().await;
    assert_eq!(store.observe_generation().await.unwrap(), None);
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{{{prefix}}}:state:generation"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!exists, "observing an absent marker must not create one");

    let generation = Generation::new("init", "{}".to_owned());
    assert!(store.create_generation(&generation).await.unwrap());
    let (seen, first) = store.observe_generation().await.unwrap().unwrap();
    assert_eq!(seen, generation);
    let (_, second) = store.observe_generation().await.unwrap().unwrap();
    assert!(second > first);

    // A Redis restored to before `second` (the tick as it was at `first`).
    let _: () = redis::cmd("HSET")
        .arg(format!("{{{prefix}}}:state:generation"))
        .arg("tick")
        .arg(first - 1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let (seen, after_restore) = store.observe_generation().await.unwrap().unwrap();
    assert_eq!(
        seen.id, generation.id,
        "the marker came back with the restore"
    );
    assert!(after_restore <= second, "the restore shows in the tick");

    // A rebuild replaces the marker: its tick starts again.
    let rebuilt = Generation::new("rebuild", "{}".to_owned());
    store.replace_generation(&rebuilt).await.unwrap();
    let (seen, tick) = store.observe_generation().await.unwrap().unwrap();
    assert_eq!((seen, tick), (rebuilt, 1));
}
