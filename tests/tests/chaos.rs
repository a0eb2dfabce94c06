//! The chaos suite (docs/chaos.md): handoff's services as separate processes on
//! librdkafka's mock cluster (in a process of its own) and a private Redis with AOF, under
//! faults; the oracle must find nothing lost, nothing assigned twice, no capacity drift,
//! no breach missed or doubled.
//!
//! Needs Redis (`redis-server` on the PATH) and the built `handoff` binary (`make test`
//! builds it); not the shared broker.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up should fail loudly

use std::process::Stdio;
use std::time::Duration;

use handoff_e2e::chaos::oracle::Report;
use handoff_e2e::chaos::run::{run, Outcome, Plan};

/// Fails with the oracle's line and the counts that are not zero.
fn assert_clean(report: &Report) {
    assert!(
        report.failures().is_empty(),
        "{report}\nfailed: {:?}\nexamples: {:#?}",
        report.failures(),
        report.examples
    );
    assert!(report.assigned_once > 0, "nothing was assigned: {report}");
}

/// `handoff-chaos` at the size of `make test`: 300 leads at 10/s, a SIGKILL every 4 s,
/// a third router and tracker joining and leaving, Redis killed and restarted, the broker
/// off the network for 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_command_loses_nothing_doubles_nothing_and_misses_no_breach() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_handoff-chaos"))
        .args(["--leads", "300", "--rate", "10", "--kill-every", "4"])
        // An error's own words, not a backtrace, in the tail shown when the test fails.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("handoff-chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The run's progress and the oracle's examples, shown when the test fails.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("drain:"))
        .rev()
        .take(40)
        .collect();
    eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    let line = stdout
        .lines()
        .find(|l| l.starts_with("leads="))
        .unwrap_or_else(|| panic!("no oracle line in {stdout:?}"));
    let count = |name: &str| -> i64 {
        line.split_whitespace()
            .find_map(|field| field.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {line}"))
    };
    for name in [
        "lost",
        "double_assigned",
        "capacity_drift",
        "missed_breaches",
        "duplicate_breaches",
    ] {
        assert_eq!(count(name), 0, "{name}: {line}");
    }
    // 300, and the one lead the run posts to probe ingest during the broker outage.
    assert!((300..=301).contains(&count("leads")), "{line}");
    assert!(count("assigned_once") > 250, "{line}");
    assert!(output.status.success(), "{line}");
}

/// A fault-injection run: 150 leads at 15/s, no kills, the given mock broker commands.
async fn with_broker_faults(commands: &[(f64, &str)], rebalance: bool) -> Outcome {
    let plan = Plan {
        broker_commands: commands
            .iter()
            .map(|(at, c)| (*at, (*c).to_owned()))
            .collect(),
        rebalance,
        ..Plan::calm(150, 15.0)
    };
    run(plan).await.expect("the run")
}

// Kafka error codes: 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT, 19
// NOT_ENOUGH_REPLICAS, 15
// COORDINATOR_NOT_AVAILABLE, 16 NOT_COORDINATOR. API keys: Produce 0, Fetch 1,
// OffsetCommit 8, JoinGroup 11.

/// Produce errors the clients retry: ingest answers 202 only after the acknowledgement, the
/// router stores an offset only after its `lead.assigned` is acknowledged, so nothing is lost
/// or doubled. The producers send one request at a time here: the mock cluster checks
/// producer sequences only for transactional producers (`rd_kafka_mock_validate_records`),
/// so a batch accepted after a failed one makes the idempotent producer conclude the failed
/// one was written (a real broker would have refused the later batch with
/// OUT_OF_ORDER_SEQUENCE_NUMBER) and acknowledge records the mock never stored —
/// reproduced with plain rdkafka producers and no handoff code (docs/chaos.md, "Broker
/// artifacts"). One request in flight leaves no later batch to be accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_lose_and_double_nothing() {
    let plan = Plan {
        broker_commands: vec![
            (0.2, "errors 0 6 40".to_owned()),
            (0.5, "errors 0 19 40".to_owned()),
        ],
        kafka_client: vec![(
            "max.in.flight.requests.per.connection".to_owned(),
            "1".to_owned(),
        )],
        ..Plan::calm(150, 15.0)
    };
    let outcome = run(plan).await.expect("the run");
    assert_clean(&outcome.report);
}

/// OffsetCommit requests time out (twice 30 in a row): commits fail and are retried; what
/// was not committed is redelivered and recognised. (NOT_COORDINATOR here made the mock's
/// group coordinator abort in one run of `make test` — `rdkafka_mock_cgrp.c:
/// rd_kafka_mock_cgrp_classic_member_add: Assertion '!member->resp' failed` — taking the
/// broker down with it: docs/chaos.md, "Broker artifacts".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_errors_lose_and_double_nothing() {
    let outcome =
        with_broker_faults(&[(0.2, "errors 8 7 30"), (0.5, "errors 8 7 30")], false).await;
    assert_clean(&outcome.report);
}

/// JoinGroup errors while a third router and tracker join (at 25 %) and leave (at 60 %).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_group_errors_during_rebalances_lose_and_double_nothing() {
    let outcome =
        with_broker_faults(&[(0.2, "errors 11 15 10"), (0.55, "errors 11 16 10")], true).await;
    assert_clean(&outcome.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_errors_lose_and_double_nothing() {
    let outcome =
        with_broker_faults(&[(0.2, "errors 1 6 40"), (0.5, "errors 1 7 40")], false).await;
    assert_clean(&outcome.report);
}

/// Every round trip to the broker takes 500 ms for most of the traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_second_round_trips_lose_and_double_nothing() {
    let outcome = with_broker_faults(&[(0.1, "rtt 1 500"), (0.9, "rtt 1 0")], false).await;
    assert_clean(&outcome.report);
}

/// The broker off the network for 30 s (longer than the consumers' session timeout):
/// ingest's readiness names the broker, and once it is back every lead is assigned once.
/// The consumers' sessions time out during it, so each must serve the new assignment that
/// waits behind the outage's error events on its queue (it once sat there for minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_away_for_30_seconds_loses_nothing() {
    let plan = Plan {
        broker_outage: Some(Duration::from_secs(30)),
        drain_deadline: Duration::from_secs(180),
        ..Plan::calm(150, 15.0)
    };
    let outcome = run(plan).await.expect("the run");
    assert_clean(&outcome.report);
    let probe = outcome.during_outage.expect("the outage was probed");
    assert_eq!(probe.readyz.0, 503, "{probe:?}");
    assert!(
        probe.readyz.1.contains("kafka") || probe.readyz.1.contains("broker"),
        "{probe:?}"
    );
}

/// The make-test run (kills every 4 s, a third router and tracker joining and leaving,
/// Redis restarted, the broker away 5 s) under the KIP-848 consumer group protocol with a
/// 3 s broker-side session: the protocol that recovers a killed router's partitions in
/// seconds (docs/chaos.md, "Recovery after a kill") must keep every effect exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_under_the_kip_848_protocol_lose_and_double_nothing() {
    let plan = Plan {
        group_protocol: handoff_config::GroupProtocol::Consumer,
        session_timeout: Some(Duration::from_secs(3)),
        ..Plan::small()
    };
    let outcome = run(plan).await.expect("the run");
    assert_clean(&outcome.report);
}
