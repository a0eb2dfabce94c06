//! `handoff-load … memory`: what one lead costs Redis in memory while it is open and once
//! it is closed (docs/sizing.md). Posts N leads over HTTP to the real services, waits until
//! every one is assigned and reads `used_memory`; then reports every lead `converted` (as a
//! CRM would), waits until every one is closed (its deadlines, capacity entry and funnel
//! attention marks gone) and reads it again. Needs a Redis of its own (the figure is the
//! server's whole `used_memory`): scripts/redis-cost.sh shows how to start one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use handoff_domain::events::EventKind;
use handoff_e2e::Stack;
use tokio::sync::Semaphore;

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    /// Leads measured (after the warm-up of the command).
    #[arg(long, default_value_t = 5000)]
    pub leads: usize,
}

async fn used_memory(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("used_memory in INFO memory")
}

/// Leads among `ids` whose state is `state`.
async fn in_state(
    redis: &mut redis::aio::MultiplexedConnection,
    stack: &Stack,
    ids: &[String],
    state: &str,
) -> anyhow::Result<usize> {
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HGET")
            .arg(stack.key(&format!("lead:{id}")))
            .arg("state");
    }
    let states: Vec<Option<String>> = pipe.query_async(redis).await?;
    Ok(states
        .iter()
        .filter(|s| s.as_deref() == Some(state))
        .count())
}

async fn wait_for_state(
    redis: &mut redis::aio::MultiplexedConnection,
    stack: &Stack,
    ids: &[String],
    state: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let count = in_state(redis, stack, ids, state).await?;
        if count == ids.len() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {count} of {} leads {state} after 10 minutes",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Bytes per lead, and the key families of one sample lead (`MEMORY USAGE`).
pub async fn run(
    stack: &Stack,
    client: &reqwest::Client,
    args: &MemoryArgs,
    concurrency: usize,
    offset: usize,
) -> anyhow::Result<()> {
    let mut redis = stack.redis().await;
    let url = format!("{}/v1/leads", stack.api());
    let before = used_memory(&mut redis).await?;
    let posted = crate::post_all(client, &url, args.leads, concurrency, offset).await?;
    let ids: Vec<String> = posted.into_iter().map(|p| p.lead_id).collect();
    wait_for_state(&mut redis, stack, &ids, "assigned").await?;
    let open = used_memory(&mut redis).await?;

    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(ids.len());
    for id in &ids {
        let permit = permits.clone().acquire_owned().await?;
        let (client, url) = (
            client.clone(),
            format!("{}/v1/leads/{id}/dispositions", stack.api()),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let response = client
                .post(&url)
                .json(&serde_json::json!({"outcome": "converted", "actor": "crm", "actor_id": "sfdc"}))
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "disposition answered {}",
                response.status()
            );
            Ok(())
        }));
    }
    for task in tasks {
        task.await.context("disposition task")??;
    }
    wait_for_state(&mut redis, stack, &ids, "closed").await?;
    let closed = used_memory(&mut redis).await?;

    let n = ids.len() as f64;
    println!("leads measured:              {}", ids.len());
    println!(
        "redis memory per open lead:   {:.0} bytes (assigned, first-touch and feedback clocks running; used_memory delta)",
        (open - before) as f64 / n
    );
    println!(
        "redis memory per closed lead: {:.0} bytes (converted; kept redis.closed_lead_retention_days)",
        (closed - before) as f64 / n
    );
    // What the same leads occupy on the topics (key, headers and payload of each record;
    // the broker adds its batch and record framing, ~70 bytes a record uncompressed).
    let total = offset + ids.len();
    for (kind, expected) in [
        (EventKind::LeadCreated, total),
        (EventKind::LeadAssigned, total),
        (EventKind::LeadDisposition, ids.len()),
    ] {
        let mut reader = stack.reader(kind);
        let records = reader
            .read_until(Duration::from_secs(300), "the topic's records", |r| {
                r.len() >= expected
            })
            .await;
        let bytes: usize = records
            .iter()
            .map(|r| {
                r.payload.len()
                    + r.key.as_ref().map_or(0, String::len)
                    + r.headers
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        println!(
            "{:<28} {:.0} bytes a record ({} records: key, headers, payload)",
            format!("{}:", kind.topic_suffix()),
            bytes as f64 / records.len().max(1) as f64,
            records.len()
        );
    }
    if let Some(sample) = ids.first() {
        println!("one closed lead's own keys (MEMORY USAGE):");
        for suffix in [
            format!("lead:{sample}"),
            format!("lead:{sample}:log"),
            format!("funnel:lead:{sample}"),
        ] {
            let bytes: Option<i64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(stack.key(&suffix))
                .query_async(&mut redis)
                .await?;
            println!("  {{p}}:{suffix}: {} bytes", bytes.unwrap_or(0));
        }
    }
    Ok(())
}
