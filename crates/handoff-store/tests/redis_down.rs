//! A Redis that goes away: every call fails soon, as a transient error its caller retries
//! (ingest answers 503, consumers back off), and the same `Store` works again once Redis
//! is back. The redis crate's default reconnect backoff made a call wait 210 s here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use handoff_domain::Transience;
use handoff_store::Store;

fn redis_server(port: u16) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (make test installs it)")
}

async fn answers(port: u16) -> bool {
    match redis::Client::open(format!("redis://127.0.0.1:{port}")) {
        Ok(client) => client.get_multiplexed_async_connection().await.is_ok(),
        Err(_) => false,
    }
}

async fn until_answers(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers(port).await {
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn calls_to_a_dead_redis_fail_soon_and_the_store_recovers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = redis_server(port);
    until_answers(port).await;
    let store = Store::connect(&format!("redis://127.0.0.1:{port}"), "down")
        .await
        .unwrap();
    store.ping().await.unwrap();

    server.kill().unwrap();
    server.wait().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let error = store.ping().await.expect_err("Redis is down");
        assert!(error.is_transient(), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a call to a dead Redis took {:?}",
            started.elapsed()
        );
    }

    let mut server = redis_server(port);
    until_answers(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
