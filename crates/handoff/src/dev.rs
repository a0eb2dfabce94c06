//! `handoff dev`: every service on an embedded Kafka (librdkafka's mock cluster, in
//! memory) and the local Redis, with demo traffic, a webhook sink, and a summary line.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::post;
use axum::Router;
use handoff_kafka::rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

use handoff_config::{AddressBlock, FormSettings, IngestSettings, LoadedConfig, Scope, Secret};
use handoff_kafka::Topics;
use handoff_telemetry::Metrics;

use crate::services::{self, ServiceSet};
use crate::{demo, shutdown};

#[derive(Debug, Clone)]
pub struct DevOptions {
    pub leads_per_second: f64,
    pub first_touch_seconds: u32,
    pub webhook_sink: SocketAddr,
}

pub async fn run(mut loaded: LoadedConfig, options: DevOptions) -> anyhow::Result<()> {
    let kafka = &mut loaded.settings.kafka;
    let mock = MockCluster::new(1).context("cannot start the embedded Kafka (mock cluster)")?;
    for topic in Topics::new(kafka.topic_prefix.clone()).all() {
        mock.create_topic(&topic, i32::try_from(kafka.partitions).unwrap_or(1), 1)
            .with_context(|| format!("cannot create topic {topic} on the embedded Kafka"))?;
    }
    kafka.bootstrap_servers = mock.bootstrap_servers();
    kafka.create_topics = false;
    // A consumer that left uncleanly holds its partitions until the session times out.
    kafka.session_timeout_ms = 6_000;
    // The mock cluster answers a waiting fetch only when its wait runs out.
    kafka.fetch_wait_max_ms = 50;
    loaded.settings.sla.first_touch_seconds = options.first_touch_seconds;
    // The feedback window shrinks with it (48 h would never show): four first-touch windows.
    loaded.settings.funnel.backlog_after_seconds = u64::from(options.first_touch_seconds) * 4;
    let backlog_after = loaded.settings.funnel.backlog_after_seconds;
    let notifier = &mut loaded.settings.notifier;
    // Dev ships no secret and needs none from the user: one per run, unless a real one is set.
    let random_secret = notifier.check_signing_secret().is_err();
    if random_secret {
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        notifier.signing_secret = Secret::new(hex);
    }
    // Accept/reject links: a key per run unless a real one is set, pointing at dev's API.
    let actions = &mut loaded.settings.actions;
    if actions.check_secret().is_err() || actions.secret.is_empty() {
        let bytes: [u8; 32] = rand::random();
        actions.secret = Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    if actions.public_url.is_none() {
        actions.public_url = Some(format!("http://{}", loaded.settings.ingest.listen));
    }
    let notifier = &mut loaded.settings.notifier;
    // The sample rules notify the local sink: the one private target dev may reach.
    notifier.allowed_private_targets.push(AddressBlock::from(
        if options.webhook_sink.ip().is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            options.webhook_sink.ip()
        },
    ));
    // The embedded broker starts empty, so dev's Redis state must too: its own namespace,
    // cleared at start (production keys under the configured prefix are never touched).
    let redis = &mut loaded.settings.redis;
    redis.key_prefix = format!("{}-dev", redis.key_prefix);
    handoff_store::Store::connect(&redis.url, &redis.key_prefix)
        .await
        .context("cannot connect to Redis (make run starts it)")?
        .clear_namespace()
        .await
        .context("cannot clear the dev namespace in Redis")?;
    let bootstrap = kafka.bootstrap_servers.clone();
    let topic_prefix = kafka.topic_prefix.clone();
    let keys = dev_keys(&mut loaded.settings.ingest);
    let teams: Vec<String> = loaded.rules.routing.team_ids().map(str::to_owned).collect();
    let queues: Vec<String> = loaded
        .rules
        .routing
        .queue_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let sample_leads = loaded.rules_path.with_file_name("leads.sample.jsonl");

    let shutdown = shutdown::on_signal();
    let deliveries = Arc::new(AtomicU64::new(0));
    let sink = start_webhook_sink(options.webhook_sink, deliveries.clone(), shutdown.clone()).await;
    let running = services::start(ServiceSet::all(), loaded, shutdown.clone()).await?;
    let api = running
        .ingest_addr
        .map_or_else(|| "?".to_owned(), |a| format!("http://{a}"));
    let internal = running
        .admin_addr
        .map_or_else(|| "?".to_owned(), |a| format!("http://{a}"));
    println!("handoff dev is running");
    println!("  public API:       {api}/v1/leads   (POST JSON with a key, or a form with form_token={DEV_FORM_TOKEN})");
    println!("  internal:         {internal}/metrics  {internal}/v1/reps/{{id}}  health: {api}/healthz  {api}/readyz");
    println!("  embedded Kafka:   {bootstrap}   (topics {topic_prefix}*)");
    println!("  dev API keys (this run only; Authorization: Bearer <key>):");
    for (scope, key) in &keys {
        println!("    {:<20} {key}", scope.as_str());
    }
    match sink {
        Some(addr) => {
            println!("  webhook sink:     http://{addr}/hooks/…   (the sample rules notify here)")
        }
        None => println!(
            "  webhook sink:     not started ({} is busy)",
            options.webhook_sink
        ),
    }
    if random_secret {
        println!("  webhook signing:  a random secret for this run (set HANDOFF_NOTIFIER_SIGNING_SECRET to verify signatures)");
    }
    println!(
        "  demo traffic:     {} leads/s; first-touch SLA {} s; feedback due after {backlog_after} s; Ctrl-C stops",
        options.leads_per_second, options.first_touch_seconds
    );
    let demo_clients = demo::Clients::new(
        key_for(&keys, Scope::LeadsWrite),
        key_for(&keys, Scope::DispositionsWrite),
    )?;
    if let Some(addr) = running.ingest_addr {
        let replayed = demo::replay(&demo_clients, &format!("http://{addr}"), &sample_leads).await;
        if replayed > 0 {
            println!(
                "  sample leads:     {replayed} posted from {} (compare: handoff simulate --rules … --leads …)",
                sample_leads.display()
            );
        }
    }
    if options.leads_per_second > 0.0 {
        if let Some(addr) = running.ingest_addr {
            tokio::spawn(demo::traffic(
                demo_clients,
                format!("http://{addr}"),
                options.leads_per_second,
                Duration::from_secs(u64::from(options.first_touch_seconds)),
                shutdown.clone(),
            ));
        }
    }
    tokio::spawn(summary(
        running.metrics.clone(),
        teams,
        queues,
        deliveries,
        shutdown.clone(),
    ));
    let outcome = running.wait().await;
    drop(mock);
    outcome
}

/// The public token of dev's sample web form.
const DEV_FORM_TOKEN: &str = "dev-website-form";

/// One fresh key per scope for this run (printed, and used by the demo traffic), and a
/// sample web form: `make run` works with no set-up, and nothing dev makes outlives it.
fn dev_keys(ingest: &mut IngestSettings) -> Vec<(Scope, String)> {
    let mut keys = Vec::new();
    for scope in Scope::ALL {
        let name = format!("dev-{}", scope.as_str().replace(':', "-"));
        let (key, settings) = crate::keys::new_key(&name, [scope].into(), false, None);
        ingest.keys.push(settings);
        keys.push((scope, key));
    }
    if !ingest.forms.iter().any(|f| f.token == DEV_FORM_TOKEN) {
        ingest.forms.push(FormSettings {
            token: DEV_FORM_TOKEN.to_owned(),
            source: "dev-website".to_owned(),
            redirect_url: None,
        });
    }
    keys
}

fn key_for(keys: &[(Scope, String)], scope: Scope) -> &str {
    keys.iter()
        .find(|(s, _)| *s == scope)
        .map_or("", |(_, key)| key.as_str())
}

/// A local stand-in for Slack and CRM webhooks: counts what it receives.
async fn start_webhook_sink(
    addr: SocketAddr,
    deliveries: Arc<AtomicU64>,
    shutdown: CancellationToken,
) -> Option<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.ok()?;
    let local = listener.local_addr().ok();
    let app = Router::new().route(
        "/hooks/{channel}",
        post(move || {
            let deliveries = deliveries.clone();
            async move {
                deliveries.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let stopped = async move { shutdown.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "webhook sink stopped");
        }
    });
    local
}

/// One line every five seconds: what an operator would look at first.
async fn summary(
    metrics: Metrics,
    teams: Vec<String>,
    queues: Vec<String>,
    deliveries: Arc<AtomicU64>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let per_team: Vec<String> = teams
            .iter()
            .map(|t| {
                format!(
                    "{t}={}",
                    metrics
                        .leads_assigned
                        .with_label_values(&[t.as_str()])
                        .get()
                )
            })
            .collect();
        let breaches: u64 = teams
            .iter()
            .map(|t| {
                metrics
                    .sla_breaches
                    .with_label_values(&[t.as_str(), "first_touch"])
                    .get()
            })
            .sum();
        let acted = |outcome: &str| -> u64 {
            teams
                .iter()
                .map(|t| {
                    metrics
                        .escalations
                        .with_label_values(&[t.as_str(), outcome])
                        .get()
                })
                .sum()
        };
        let (reassigned, escalated) = (acted("reassigned"), acted("escalated"));
        let waiting: i64 = queues
            .iter()
            .map(|q| metrics.queue_depth.with_label_values(&[q.as_str()]).get())
            .sum();
        let oldest_wait = queues
            .iter()
            .map(|q| {
                metrics
                    .queue_oldest_wait_seconds
                    .with_label_values(&[q.as_str()])
                    .get()
            })
            .fold(0.0_f64, f64::max);
        // The funnel's gauges live in the same registry, read by name (docs/metrics.md).
        let funnel = |name: &str| {
            metrics
                .registry
                .gather()
                .iter()
                .find(|family| family.name() == name)
                .and_then(|family| {
                    family
                        .get_metric()
                        .first()
                        .map(|m| m.get_gauge().get_value())
                })
                .unwrap_or(0.0)
        };
        println!(
            "received={} assigned[{}] unqualified={} overflowed={} waiting={waiting} oldest_wait={oldest_wait:.0}s open={} breaches={} reassigned={reassigned} escalated={escalated} awaiting_feedback={} feedback_backlog={} webhooks={}",
            metrics.leads_received.get(),
            per_team.join(" "),
            metrics.leads_unqualified.get(),
            teams
                .iter()
                .map(|t| metrics.leads_overflowed.with_label_values(&[t.as_str()]).get())
                .sum::<u64>()
                + metrics.leads_overflowed.with_label_values(&["unrouted"]).get(),
            metrics.awaiting_first_touch.get(),
            breaches,
            funnel("handoff_funnel_awaiting_disposition"),
            funnel("handoff_funnel_disposition_backlog"),
            deliveries.load(Ordering::Relaxed),
        );
    }
}
