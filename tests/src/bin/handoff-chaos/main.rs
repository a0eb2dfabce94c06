//! `handoff-chaos`: handoff's services as separate processes under faults (kills,
//! rebalances, a Redis restart, a broker outage), then the oracle's one line
//! (docs/chaos.md). Exits non-zero when anything was lost, assigned twice, charged
//! wrongly, or a breach was missed or doubled.

use std::time::Duration;

use clap::Parser;
use handoff_config::GroupProtocol;
use handoff_e2e::chaos::run::{run, Plan};

#[derive(Debug, Parser)]
#[command(about = "handoff under faults: nothing lost, nothing doubled, nothing stalled")]
struct Args {
    /// Leads to send.
    #[arg(long, default_value_t = 300)]
    leads: usize,
    /// Leads per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// SIGKILL a random service instance every this many seconds (0: never).
    #[arg(long, default_value_t = 4.0)]
    kill_every: f64,
    /// The first-touch SLA, in seconds (short, so breaches happen during the run).
    #[arg(long, default_value_t = 6)]
    first_touch_seconds: u32,
    /// How long the broker is off the network (at 75 % of the traffic; 0: never).
    #[arg(long, default_value_t = 5.0)]
    broker_outage: f64,
    /// No Redis restart.
    #[arg(long)]
    no_redis_restart: bool,
    /// No third router and SLA tracker joining and leaving.
    #[arg(long)]
    no_rebalance: bool,
    /// A mock broker command at a fraction of the traffic: `FRACTION:COMMAND`, e.g.
    /// `0.3:errors 0 7 20` (repeatable; handoff-mock-broker's protocol).
    #[arg(long = "broker-command")]
    broker_commands: Vec<String>,
    /// How long the system may take to become quiet after the traffic, in seconds.
    #[arg(long, default_value_t = 180)]
    drain_seconds: u64,
    /// librdkafka debug contexts for every service, e.g. `cgrp,consumer` (their lines go to
    /// each instance's log).
    #[arg(long)]
    kafka_debug: Option<String>,
    /// The services' consumer group protocol: `classic` or `consumer` (KIP-848).
    #[arg(long, default_value = "classic", value_parser = ["classic", "consumer"])]
    group_protocol: String,
    /// Static group membership: each instance's name is its `kafka.group_instance_id`,
    /// kept when it is restarted after a kill.
    #[arg(long)]
    static_membership: bool,
    /// Group session timeout in ms: the services' `kafka.session_timeout_ms` (classic), the
    /// mock broker's KIP-848 session (consumer). Default: 6000 (classic), 30000 (consumer).
    #[arg(long)]
    session_timeout_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let broker_commands = args
        .broker_commands
        .iter()
        .map(|c| {
            let (at, command) = c
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--broker-command {c:?}: FRACTION:COMMAND"))?;
            Ok((at.parse::<f64>()?, command.to_owned()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let positive = |seconds: f64| (seconds > 0.0).then(|| Duration::from_secs_f64(seconds));
    let plan = Plan {
        leads: args.leads,
        rate: args.rate,
        kill_every: positive(args.kill_every),
        rebalance: !args.no_rebalance,
        redis_restart: !args.no_redis_restart,
        broker_outage: positive(args.broker_outage),
        broker_commands,
        first_touch_seconds: args.first_touch_seconds,
        drain_deadline: Duration::from_secs(args.drain_seconds),
        verbose: true,
        kafka_client: args
            .kafka_debug
            .map(|contexts| vec![("debug".to_owned(), contexts)])
            .unwrap_or_default(),
        group_protocol: if args.group_protocol == "consumer" {
            GroupProtocol::Consumer
        } else {
            GroupProtocol::Classic
        },
        static_membership: args.static_membership,
        session_timeout: args.session_timeout_ms.map(Duration::from_millis),
    };
    let outcome = run(plan).await?;
    if let Some(probe) = &outcome.during_outage {
        eprintln!(
            "chaos: during the broker outage: /readyz {} {}; POST /v1/leads {:?}",
            probe.readyz.0, probe.readyz.1, probe.post
        );
    }
    let report = outcome.report;
    println!("{report}");
    let failures = report.failures();
    if !failures.is_empty() {
        eprintln!("chaos: failed: {}", failures.join(", "));
        std::process::exit(1);
    }
    Ok(())
}
