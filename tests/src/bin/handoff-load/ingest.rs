//! `handoff-load … ingest`: ingest's requests per second against a hello-world axum handler
//! on the same box, in the same run, with the same load generator (`wrk`, Debian's
//! package). Ingest answers 202 only after the broker acknowledged the lead (idempotent
//! producer, acks=all) and runs alone (no router competing for the cores); the hello-world
//! handler reads nothing and answers a constant.

use std::io::Write;
use std::process::Command;

use anyhow::Context;
use handoff::services::{Service, ServiceSet};
use handoff_e2e::{qualified_lead, Stack, StackOptions, TestEnv};

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// How long each target is loaded.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Connections `wrk` keeps open.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// `wrk` threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
}

/// What `wrk` reported for one target.
#[derive(Debug)]
struct Measured {
    requests_per_second: f64,
    /// `Non-2xx or 3xx responses` (0 when wrk printed none).
    non_2xx: u64,
    /// The latency distribution block, as wrk printed it.
    latency: String,
}

/// `create_topics`: false on the embedded mock cluster, whose topics the caller made.
pub async fn run(
    env: TestEnv,
    id: String,
    create_topics: bool,
    args: IngestArgs,
) -> anyhow::Result<()> {
    let hello = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hello_url = format!("http://{}/", hello.local_addr()?);
    let app = axum::Router::new().route("/", axum::routing::any(|| async { "hello" }));
    let hello_server = tokio::spawn(async move { axum::serve(hello, app).await });

    let stack = Stack::start_with(
        env,
        StackOptions {
            services: ServiceSet::only(Service::Ingest),
            id: Some(id),
            create_topics,
            ..StackOptions::default()
        },
    )
    .await;
    let ingest_url = format!("{}/v1/leads", stack.api());

    let script = tempfile_with(&format!(
        "wrk.method = \"POST\"\nwrk.body = [[{}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {}\"\n",
        qualified_lead(0),
        handoff_e2e::TEST_KEY
    ))?;
    // Warm-up: the producer's id, connections, the allocator.
    wrk(&ingest_url, &script, 2, args.connections, args.threads)?;
    let floor = wrk(
        &hello_url,
        &script,
        args.seconds,
        args.connections,
        args.threads,
    )?;
    let ingest = wrk(
        &ingest_url,
        &script,
        args.seconds,
        args.connections,
        args.threads,
    )?;

    println!(
        "load generator: wrk -t{} -c{} -d{}s, POST of one qualified lead ({} bytes)",
        args.threads,
        args.connections,
        args.seconds,
        qualified_lead(0).to_string().len()
    );
    println!(
        "floor: hello-world axum handler  {:.0} requests/s (non-2xx: {})\n{}",
        floor.requests_per_second, floor.non_2xx, floor.latency
    );
    println!(
        "ingest POST /v1/leads (202 after the broker's ack)  {:.0} requests/s (non-2xx: {})\n{}",
        ingest.requests_per_second, ingest.non_2xx, ingest.latency
    );
    println!(
        "ratio: ingest / hello-world = {:.3} (target ≥ 0.30)",
        ingest.requests_per_second / floor.requests_per_second
    );
    hello_server.abort();
    std::fs::remove_file(&script).ok();
    stack.stop().await
}

fn tempfile_with(text: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!("handoff-load-{}.lua", std::process::id()));
    std::fs::File::create(&path)?.write_all(text.as_bytes())?;
    Ok(path)
}

fn wrk(
    url: &str,
    script: &std::path::Path,
    seconds: u32,
    connections: u32,
    threads: u32,
) -> anyhow::Result<Measured> {
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .context("wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "wrk failed: {text}");
    let number_after = |label: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.trim().parse().ok())
    };
    let latency = text
        .lines()
        .skip_while(|line| !line.contains("Latency Distribution"))
        .take(5)
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Measured {
        requests_per_second: number_after("Requests/sec:")
            .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?,
        non_2xx: number_after("Non-2xx or 3xx responses:").map_or(0, |n| n as u64),
        latency,
    })
}
