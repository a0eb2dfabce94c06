//! Runs any set of services in one process over shared dependencies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use handoff_config::{LoadedConfig, RulesHandle};
use handoff_ingest::{Ingest, IngestDeps};
use handoff_kafka::{ensure_topics, EventProducer, Topics};
use handoff_store::Store;
use handoff_telemetry::{admin_router, serve_admin, Metrics, Readiness, ReadinessCheck};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ingest,
    Router,
    Sla,
    Notifier,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Ingest => "ingest",
            Service::Router => "router",
            Service::Sla => "sla",
            Service::Notifier => "notifier",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceSet(Vec<Service>);

impl ServiceSet {
    pub fn only(service: Service) -> Self {
        Self(vec![service])
    }

    pub fn all() -> Self {
        Self(vec![
            Service::Ingest,
            Service::Router,
            Service::Sla,
            Service::Notifier,
        ])
    }

    pub fn of(services: &[Service]) -> Self {
        Self(services.to_vec())
    }

    pub fn has(&self, service: Service) -> bool {
        self.0.contains(&service)
    }
}

/// Services started and serving.
#[derive(Debug)]
pub struct Running {
    /// Where the public HTTP API listens, if ingest runs.
    pub ingest_addr: Option<SocketAddr>,
    /// The internal listener: `/metrics`, `/healthz`, `/readyz`, `/openapi.json` and,
    /// where ingest runs, rep administration.
    pub admin_addr: Option<SocketAddr>,
    pub metrics: Metrics,
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Running {
    /// Waits for every service to stop. The first to fail stops the others, and its error
    /// is returned (the process then exits non-zero and its supervisor restarts it).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            let (name, outcome) = match joined {
                Ok(done) => done,
                Err(e) => ("task", Err(anyhow::anyhow!(e))),
            };
            if let Err(e) = outcome {
                tracing::error!(
                    service = name,
                    error = format!("{e:#}"),
                    "service failed; stopping the others"
                );
                self.shutdown.cancel();
                first_error.get_or_insert(e.context(format!("{name} failed")));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Connects to Redis and Kafka (creating topics if configured), then starts the services.
/// Fails fast, naming the dependency, when one is unreachable at start-up.
/// `[sla.escalation]` names a team of the rules file and at least one attempt.
fn check_escalation(
    escalation: &handoff_config::EscalationSettings,
    rules: &handoff_config::Rules,
) -> anyhow::Result<()> {
    if escalation.max_attempts == 0 {
        anyhow::bail!("sla.escalation.max_attempts: must be at least 1");
    }
    if let Some(team) = &escalation.to_team {
        let teams: Vec<&str> = rules.routing.team_ids().collect();
        if !teams.contains(&team.as_str()) {
            anyhow::bail!(
                "sla.escalation.to_team: unknown team `{team}`, expected one of {}",
                teams.join(", ")
            );
        }
    }
    Ok(())
}

pub async fn start(
    set: ServiceSet,
    loaded: LoadedConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let LoadedConfig {
        settings,
        rules,
        rules_path,
    } = loaded;
    check_escalation(&settings.sla.escalation, &rules)?;
    let rules_version = rules.version.clone();
    let (rules, publisher) = RulesHandle::new(rules);
    let metrics = Metrics::new(prometheus::Registry::new()).context("cannot register metrics")?;
    handoff_telemetry::prime_known_series(
        &metrics,
        &rules.current().routing.team_ids().collect::<Vec<_>>(),
    );
    let store = Store::connect(&settings.redis.url, &settings.redis.key_prefix)
        .await
        .with_context(|| {
            format!(
                "cannot connect to Redis at {}",
                redact_url(&settings.redis.url)
            )
        })?;
    // Closed while the Redis state is lost (state/watch.rs): every producer carries it to
    // the consumers, pollers and ingest that use it.
    let gate = handoff_kafka::WorkGate::default();
    let topics = Topics::new(settings.kafka.topic_prefix.clone());
    let probe_topic = topics.of(handoff_domain::events::EventKind::LeadCreated);
    // First, so a refused password or certificate stops the start with its reason instead
    // of a topic creation that waits for a connection that never comes.
    handoff_kafka::check_connection(&settings.kafka, &probe_topic, Duration::from_secs(10))
        .await
        .with_context(|| {
            format!(
                "cannot connect to Kafka at {}",
                settings.kafka.bootstrap_servers
            )
        })?;
    if settings.kafka.create_topics {
        ensure_topics(&settings.kafka, &topics)
            .await
            .with_context(|| {
                format!(
                    "cannot create topics on {}",
                    settings.kafka.bootstrap_servers
                )
            })?;
    }
    let producer = EventProducer::new(&settings.kafka, "handoff")?.with_gate(gate.clone());
    producer
        .check_connectivity(&probe_topic, Duration::from_secs(10))
        .await
        .with_context(|| format!("cannot reach Kafka at {}", settings.kafka.bootstrap_servers))?;
    crate::state::persistence::check(&store, &settings).await?;
    let state_metrics = handoff_telemetry::StateMetrics::new(&metrics.registry)
        .context("cannot register the state's metrics")?;
    let watch = crate::state::watch::StateWatch::start(
        store.clone(),
        gate.clone(),
        state_metrics,
        settings.state.clone(),
        format!("{{{}}}:state:generation", settings.redis.key_prefix),
        crate::state::rebuild::RebuildDeps {
            store: store.clone(),
            settings: settings.clone(),
            rules: rules.clone(),
            producer: EventProducer::new(&settings.kafka, "state")?,
            metrics: metrics.clone(),
        },
    )
    .await
    .context("cannot check the state's generation marker")?;
    let readiness = readiness(store.clone(), producer.clone(), probe_topic);
    let drain = Duration::from_secs(settings.shutdown.drain_seconds);
    let lead_retention =
        Duration::from_secs(u64::from(settings.redis.lead_retention_days) * 86_400);
    let closed_retention =
        Duration::from_secs(u64::from(settings.redis.closed_lead_retention_days) * 86_400);
    let mut tasks = JoinSet::new();
    let (stop, reload_metrics) = (shutdown.clone(), metrics.clone());
    tasks.spawn(async move {
        crate::reload::watch_rules(rules_path, publisher, reload_metrics, stop).await;
        ("rules", Ok(()))
    });

    let mut ingest_addr = None;
    let mut internal_routes = axum::Router::new();
    if set.has(Service::Ingest) {
        // Ingest answers within its publish timeout, so its producer gives up then too:
        // a 503 must mean the event will not appear later.
        let mut kafka = settings.kafka.clone();
        kafka.message_timeout_ms =
            u32::try_from(settings.ingest.publish_timeout_ms).unwrap_or(u32::MAX);
        let ingest = Ingest::build(
            settings.ingest.clone(),
            IngestDeps {
                store: store.clone(),
                producer: EventProducer::new(&kafka, "ingest")?.with_gate(gate.clone()),
                metrics: metrics.clone(),
                readiness: readiness.clone(),
                lead_retention,
                closed_retention,
                release: settings.sla.release_capacity_on,
                rules: rules.clone(),
                clocks: handoff_sla::Clocks::new(&settings.sla, rules.clone()),
                actions: settings.actions.clone(),
            },
        )
        .await?;
        ingest_addr = ingest.local_addr();
        internal_routes = ingest.internal_routes();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            (
                "ingest",
                ingest.run_until_stopped(stop).await.map_err(Into::into),
            )
        });
    }
    if set.has(Service::Router) {
        let deps = handoff_router::RouterDeps {
            kafka: settings.kafka.clone(),
            store: store.clone(),
            producer: EventProducer::new(&settings.kafka, "router")?.with_gate(gate.clone()),
            metrics: metrics.clone(),
            rules: rules.clone(),
            sla: settings.sla.clocks(),
            lead_retention,
            settings: settings.router.clone(),
            release: settings.sla.release_capacity_on,
            escalation: settings.sla.escalation.clone(),
            drain,
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            (
                "router",
                handoff_router::run(deps, stop).await.map_err(Into::into),
            )
        });
    }
    if set.has(Service::Sla) {
        // A breach's publish gives up within the claim's lease (checked at start-up), so a
        // claim never lapses while its publish may still succeed.
        let mut sla_kafka = settings.kafka.clone();
        sla_kafka.message_timeout_ms =
            u32::try_from(settings.sla.publish_timeout_ms).unwrap_or(u32::MAX);
        let deps = handoff_sla::SlaDeps {
            kafka: settings.kafka.clone(),
            settings: settings.sla.clone(),
            store: store.clone(),
            producer: EventProducer::new(&sla_kafka, "sla")?.with_gate(gate.clone()),
            metrics: metrics.clone(),
            rules: rules.clone(),
            lead_retention,
            closed_retention,
            drain,
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            (
                "sla",
                handoff_sla::run(deps, stop).await.map_err(Into::into),
            )
        });
        // Marketing's funnel rides along with the SLA tracker: a consumer group of its own.
        let deps = handoff_funnel::FunnelDeps {
            kafka: settings.kafka.clone(),
            settings: settings.funnel.clone(),
            reason_codes: settings.ingest.reason_codes.clone(),
            store: store.clone(),
            producer: EventProducer::new(&settings.kafka, "funnel")?.with_gate(gate.clone()),
            metrics: metrics.clone(),
            funnel_metrics: handoff_telemetry::FunnelMetrics::new(&metrics.registry)
                .context("cannot register the funnel's metrics")?,
            rules: rules.clone(),
            lead_retention,
            drain,
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            (
                "funnel",
                handoff_funnel::run(deps, stop).await.map_err(Into::into),
            )
        });
    }
    if set.has(Service::Notifier) {
        let deps = handoff_notifier::NotifierDeps {
            kafka: settings.kafka.clone(),
            settings: settings.notifier.clone(),
            actions: settings.actions.clone(),
            store: store.clone(),
            producer: EventProducer::new(&settings.kafka, "notifier")?.with_gate(gate.clone()),
            metrics: metrics.clone(),
            rules: rules.clone(),
            drain,
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            (
                "notifier",
                handoff_notifier::run(deps, stop).await.map_err(Into::into),
            )
        });
    }

    let stop = shutdown.clone();
    tasks.spawn(async move {
        watch.run(stop).await;
        ("state", Ok(()))
    });

    let listener = TcpListener::bind(settings.admin.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin.listen)", settings.admin.listen))?;
    let admin_addr = listener.local_addr().ok();
    let internal = admin_router(metrics.clone(), readiness.clone()).merge(internal_routes);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let stopped = async move { stop.cancelled().await };
        (
            "admin",
            serve_admin(listener, internal, stopped)
                .await
                .map_err(Into::into),
        )
    });
    tracing::info!(
        services = ?set.0.iter().map(|s| s.name()).collect::<Vec<_>>(),
        ingest = ?ingest_addr,
        admin = ?admin_addr,
        %rules_version,
        "handoff started"
    );
    Ok(Running {
        ingest_addr,
        admin_addr,
        metrics,
        shutdown,
        tasks,
    })
}

fn readiness(store: Store, producer: EventProducer, probe_topic: String) -> Readiness {
    let redis: ReadinessCheck = Arc::new(move || {
        let store = store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }.boxed()
    });
    let kafka: ReadinessCheck = Arc::new(move || {
        let producer = producer.clone();
        let topic = probe_topic.clone();
        async move {
            producer
                .check_connectivity(&topic, Duration::from_secs(2))
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    });
    Readiness::default()
        .with("redis", redis)
        .with("kafka", kafka)
}

/// `redis://user:secret@host:6379/0` -> `redis://host:6379/0`: URLs may carry passwords.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}
