//! librdkafka's mock cluster in a process of its own: the Kafka protocol over TCP, in
//! memory, for tests that run services as separate processes (crash and rebalance tests)
//! and for trying the suite without Tansu. Prints `bootstrap=<host:port>` and serves until
//! SIGTERM/SIGINT or until its standard input closes.

use std::io::Read as _;

use handoff_kafka::rdkafka::mocking::MockCluster;

fn main() -> anyhow::Result<()> {
    let brokers = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let cluster = MockCluster::new(brokers)?;
    println!("bootstrap={}", cluster.bootstrap_servers());
    // Keep serving while the parent holds our stdin (or until we are killed).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(cluster);
    Ok(())
}
