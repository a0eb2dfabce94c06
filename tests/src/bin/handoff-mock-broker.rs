//! librdkafka's mock cluster in a process of its own: the Kafka protocol over TCP, in
//! memory, for tests that run services as separate processes (crash and rebalance tests)
//! and for trying the suite without Tansu. Prints `bootstrap=<host:port>` and serves until
//! SIGTERM/SIGINT or until its standard input closes.
//!
//! Standard input also takes one command a line, answered `ok` or `error: <why>` on
//! standard output (the chaos command's faults, `handoff_e2e::chaos::MockBroker`):
//!
//! ```text
//! create <topic> <partitions>        a topic (the mock answers no CreateTopics request)
//! down <broker id> | up <broker id>  take a broker off the network and back
//! rtt <broker id> <ms>               every round trip to that broker takes <ms>
//! errors <api key> <code> <count>    the next <count> requests of that API fail with <code>
//! clear <api key>                    drop the errors still queued for that API
//! consumer-group <session ms> <heartbeat ms>
//!                                    the broker-side session timeout and heartbeat interval
//!                                    of KIP-848 groups (`group.protocol=consumer`; the
//!                                    mock's defaults are 30000 and 3000), as a broker's
//!                                    `group.consumer.session.timeout.ms` and
//!                                    `group.consumer.heartbeat.interval.ms`
//! ```
//!
//! API keys and error codes are Kafka's numbers (Produce 0, Fetch 1, OffsetCommit 8,
//! JoinGroup 11; e.g. 7 REQUEST_TIMED_OUT, 6 NOT_LEADER_FOR_PARTITION).

use std::io::{BufRead as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use handoff_kafka::rdkafka::bindings as rdsys;
use handoff_kafka::rdkafka::config::ClientConfig;
use handoff_kafka::rdkafka::mocking::MockCluster;
use handoff_kafka::rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer as _};
use handoff_kafka::rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

fn main() -> anyhow::Result<()> {
    // librdkafka's own log lines (the mock reports its socket failures only there) on
    // standard error: standard output is the command channel.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let brokers = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    // The cluster of a client made for it (what `MockCluster::new` does too), so that its
    // native handle is at hand for the settings the rdkafka crate does not wrap.
    let owner: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", brokers.to_string())
        .create()?;
    let cluster = owner
        .client()
        .mock_cluster()
        .context("librdkafka made no mock cluster")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap={}", cluster.bootstrap_servers())?;
    out.flush()?;
    // Keep serving while the parent holds our stdin (or until we are killed).
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match command(&owner, &cluster, &line) {
            Ok(()) => writeln!(out, "ok")?,
            Err(e) => writeln!(out, "error: {e:#}")?,
        }
        out.flush()?;
    }
    drop(cluster);
    drop(owner);
    Ok(())
}

/// Brings broker `id` back and waits until it accepts a connection. librdkafka's mock
/// keeps the broker's port bound while it is down and listens on it again at `up`,
/// ignoring a failed `listen` in release builds: the broker would then refuse every
/// connection for the rest of the run. That is the mock's artifact, not the outage under
/// test, so a deaf broker is taken down and up again (a new socket), at most three times,
/// and then the command fails with the reason instead of leads that never get through.
fn up(cluster: &MockCluster<'_, DefaultProducerContext>, id: i32) -> anyhow::Result<()> {
    let bootstrap = cluster.bootstrap_servers();
    let index = usize::try_from(id - 1).context("broker ids start at 1")?;
    let address: std::net::SocketAddr = bootstrap
        .split(',')
        .nth(index)
        .with_context(|| format!("no broker {id} in {bootstrap}"))?
        .parse()
        .with_context(|| format!("broker {id}'s address in {bootstrap}"))?;
    const ATTEMPTS: u32 = 3;
    let mut refused = None;
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            eprintln!("handoff-mock-broker: broker {id} ({address}) deaf after `up`; taking it down and up again");
            cluster.broker_down(id)?;
        }
        cluster.broker_up(id)?;
        match accepts(address) {
            Ok(()) => return Ok(()),
            Err(e) => refused = Some(e),
        }
    }
    let why = refused.map(|e| e.to_string()).unwrap_or_default();
    anyhow::bail!("broker {id} ({address}) does not accept connections after `up` ({ATTEMPTS} attempts: {why}): the mock could not listen on its port again")
}

/// Whether `address` accepts a connection within 3 s; the last refusal if not.
fn accepts(address: std::net::SocketAddr) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn command(
    owner: &BaseProducer,
    cluster: &MockCluster<'_, DefaultProducerContext>,
    line: &str,
) -> anyhow::Result<()> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| -> anyhow::Result<i64> {
        words
            .get(i)
            .context("too few arguments")?
            .parse::<i64>()
            .with_context(|| format!("argument {i} is not a number"))
    };
    match words.first().copied() {
        Some("create") => {
            let topic = words.get(1).context("create <topic> <partitions>")?;
            cluster.create_topic(topic, i32::try_from(number(2)?)?, 1)?;
        }
        Some("down") => cluster.broker_down(i32::try_from(number(1)?)?)?,
        Some("up") => up(cluster, i32::try_from(number(1)?)?)?,
        Some("rtt") => cluster.broker_round_trip_time(
            i32::try_from(number(1)?)?,
            Duration::from_millis(u64::try_from(number(2)?)?),
        )?,
        Some("errors") => {
            let api = api_key(number(1)?)?;
            let code = RDKafkaRespErr::try_from(i32::try_from(number(2)?)?)
                .map_err(|_| anyhow::anyhow!("not a Kafka error code"))?;
            let count = usize::try_from(number(3)?)?;
            cluster.request_errors(api, &vec![code; count]);
        }
        Some("clear") => cluster.clear_request_errors(api_key(number(1)?)?),
        Some("consumer-group") => consumer_group_timeouts(
            owner,
            i32::try_from(number(1)?)?,
            i32::try_from(number(2)?)?,
        )?,
        _ => anyhow::bail!(
            "unknown command {line:?}: create, down, up, rtt, errors, clear, consumer-group"
        ),
    }
    Ok(())
}

fn api_key(number: i64) -> anyhow::Result<RDKafkaApiKey> {
    Ok(match number {
        0 => RDKafkaApiKey::Produce,
        1 => RDKafkaApiKey::Fetch,
        8 => RDKafkaApiKey::OffsetCommit,
        9 => RDKafkaApiKey::OffsetFetch,
        10 => RDKafkaApiKey::FindCoordinator,
        11 => RDKafkaApiKey::JoinGroup,
        12 => RDKafkaApiKey::Heartbeat,
        14 => RDKafkaApiKey::SyncGroup,
        other => anyhow::bail!("API key {other} is not one of 0, 1, 8, 9, 10, 11, 12, 14"),
    })
}

/// Sets the broker-side session timeout and heartbeat interval of the mock's KIP-848
/// groups. The rdkafka crate wraps neither, hence the two calls of librdkafka's mock API
/// (rdkafka_mock.h), the only unsafe code of the workspace, in this test tool.
#[allow(unsafe_code)]
fn consumer_group_timeouts(
    owner: &BaseProducer,
    session_ms: i32,
    heartbeat_ms: i32,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        session_ms > 0 && heartbeat_ms > 0 && heartbeat_ms < session_ms,
        "consumer-group <session ms> <heartbeat ms>: both positive, the heartbeat shorter"
    );
    // SAFETY: `owner` is alive for the call, so its handle is valid; the mock cluster it
    // owns lives as long as it does (checked non-null); both setters only store an int
    // under the cluster's own lock.
    unsafe {
        let mock = rdsys::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
        anyhow::ensure!(!mock.is_null(), "the client owns no mock cluster");
        rdsys::rd_kafka_mock_set_group_consumer_session_timeout_ms(mock, session_ms);
        rdsys::rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(mock, heartbeat_ms);
    }
    Ok(())
}
