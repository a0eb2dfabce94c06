//! What every store test starts from: the shared test Redis (`HANDOFF_TEST_REDIS`, which
//! `make test` and `scripts/test-env.sh up` provide) and a key prefix of the test's own.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use handoff_store::Store;

pub fn redis_url() -> String {
    std::env::var("HANDOFF_TEST_REDIS").expect(
        "HANDOFF_TEST_REDIS is not set: run with `make test` or `eval \"$(scripts/test-env.sh up)\"`",
    )
}

/// A prefix no other test (or run) uses: `tag`, the process and the time.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}{}-{nanos}", std::process::id())
}

/// A store on its own prefix, and the prefix.
pub async fn store(tag: &str) -> (Store, String) {
    let prefix = unique_prefix(tag);
    (Store::connect(&redis_url(), &prefix).await.unwrap(), prefix)
}

/// A plain connection to the test Redis, to look at keys as stored.
pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
