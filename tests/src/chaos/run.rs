//! One chaos run: a private Redis (AOF fsynced on every write, as production runs it), the
//! mock broker in a process of its own, handoff's services as processes (one ingest, two
//! routers, two SLA trackers, one notifier), a webhook receiver; traffic at a fixed rate
//! while faults land; then drain and the oracle (docs/chaos.md).
//!
//! ```text
//!  traffic ──HTTP──► ingest ─► lead.created ─► router ×2(+1) ─► lead.assigned ─► notifier ─► receiver
//!     └─produce──────────────────┘  touches ─► lead.disposition ─► sla ×2(+1) ─► sla.breached
//!  faults: SIGKILL a random instance every few s · add/remove a router and a tracker ·
//!          Redis kill -9 + restart (AOF) · broker down/up · mock request errors / latency
//! ```

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use handoff_config::GroupProtocol;
use handoff_kafka::{EventProducer, Topics};
use rand::Rng as _;
use serde_json::{json, Value};
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use super::broker::MockBroker;
use super::fleet::Fleet;
use super::oracle::{self, Report};
use super::receiver::Receiver;
use crate::redis_server::{Persistence, RedisServer};
use crate::{config_env, write_config, StackOptions, TestEnv};

/// The reps of the chaos rules.
pub const REPS: [&str; 4] = ["a", "b", "c", "d"];

/// The suite's rules ([`crate::RULES`]) with every rep active and room for every lead:
/// capacity never decides, so charging twice shows.
fn rules() -> String {
    crate::RULES
        .replace("capacity = 100\n", "capacity = 1000000\n")
        .replace("capacity = 20\n", "capacity = 1000000\n")
        .replace("active = false\n", "webhook_url = \"WEBHOOK_REP\"\n")
}

/// Partitions of every topic: room for three members of a group.
const PARTITIONS: u32 = 6;

/// What a run saw: the oracle's report, and what ingest answered while the broker was away.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: Report,
    pub during_outage: Option<OutageProbe>,
}

/// Ingest's answers halfway through a broker outage.
#[derive(Debug, Clone)]
pub struct OutageProbe {
    /// `GET /readyz`: status and body.
    pub readyz: (u16, String),
    /// One `POST /v1/leads` (one attempt): status, or `None` when it got no answer.
    pub post: Option<u16>,
}

/// What to do to the system while the traffic runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub leads: usize,
    /// Leads per second.
    pub rate: f64,
    /// SIGKILL a random instance this often (then restart it); `None`: no kills.
    pub kill_every: Option<Duration>,
    /// Add a third router and SLA tracker at a quarter of the traffic, stop them (SIGTERM)
    /// at 60 %.
    pub rebalance: bool,
    /// `kill -9` Redis at 40 % of the traffic and start it again (AOF: nothing lost).
    pub redis_restart: bool,
    /// Take the broker off the network at 75 % of the traffic for this long.
    pub broker_outage: Option<Duration>,
    /// Mock broker commands at a fraction of the traffic (`handoff-mock-broker`'s
    /// protocol), e.g. `(0.3, "errors 0 7 20")`.
    pub broker_commands: Vec<(f64, String)>,
    pub first_touch_seconds: u32,
    /// How long the system may take to become quiet after the traffic.
    pub drain_deadline: Duration,
    /// Print progress to stderr.
    pub verbose: bool,
    /// librdkafka properties for every service's clients (`[kafka.client]`), e.g.
    /// `debug = cgrp` (its lines go to each instance's log, at debug level).
    pub kafka_client: Vec<(String, String)>,
    /// The services' consumer group protocol (`kafka.group_protocol`).
    pub group_protocol: GroupProtocol,
    /// Static membership: each instance's name is its `kafka.group_instance_id`, kept
    /// across its restarts.
    pub static_membership: bool,
    /// The group session timeout: the services' `kafka.session_timeout_ms` under the
    /// classic protocol, the mock broker's KIP-848 session (heartbeat a quarter of it)
    /// under the consumer protocol. `None`: 6 s (classic), the mock's 30 s (consumer).
    pub session_timeout: Option<Duration>,
}

impl Plan {
    /// Group settings of the run, for its log.
    fn membership(&self) -> String {
        format!(
            "group protocol {}, {} membership, session {}",
            self.group_protocol.as_str(),
            if self.static_membership {
                "static"
            } else {
                "dynamic"
            },
            self.session_timeout
                .map(|s| format!("{} ms", s.as_millis()))
                .unwrap_or_else(|| "default".to_owned())
        )
    }
}

/// The `[kafka.client]` table of the services' configuration (nothing when empty).
fn kafka_client_table(properties: &[(String, String)]) -> String {
    if properties.is_empty() {
        return String::new();
    }
    let mut table = toml::Table::new();
    for (key, value) in properties {
        table.insert(key.clone(), toml::Value::String(value.clone()));
    }
    format!("[kafka.client]\n{table}")
}

impl Plan {
    /// The small run of `make test`.
    pub fn small() -> Self {
        Self {
            leads: 300,
            rate: 10.0,
            kill_every: Some(Duration::from_secs(4)),
            rebalance: true,
            redis_restart: true,
            broker_outage: Some(Duration::from_secs(5)),
            broker_commands: Vec::new(),
            first_touch_seconds: 6,
            drain_deadline: Duration::from_secs(120),
            verbose: true,
            kafka_client: Vec::new(),
            group_protocol: GroupProtocol::Classic,
            static_membership: false,
            session_timeout: None,
        }
    }

    /// The same traffic without any fault (a baseline; fault tests add their own).
    pub fn calm(leads: usize, rate: f64) -> Self {
        Self {
            leads,
            rate,
            kill_every: None,
            rebalance: false,
            redis_restart: false,
            broker_outage: None,
            broker_commands: Vec::new(),
            first_touch_seconds: 6,
            drain_deadline: Duration::from_secs(120),
            verbose: true,
            kafka_client: Vec::new(),
            group_protocol: GroupProtocol::Classic,
            static_membership: false,
            session_timeout: None,
        }
    }

    fn traffic_duration(&self) -> Duration {
        Duration::from_secs_f64(self.leads as f64 / self.rate.max(0.001))
    }
}

macro_rules! say {
    ($plan:expr, $($arg:tt)*) => {
        if $plan.verbose {
            eprintln!("chaos {}: {}", Utc::now().format("%H:%M:%S%.3f"), format!($($arg)*));
        }
    };
}

/// Runs `plan` and judges the result.
pub async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    let id = crate::unique_id();
    let receiver = Receiver::start().await?;
    let mut redis = RedisServer::start(Persistence::AofAlways).await;
    let broker = MockBroker::start().await?;
    let bootstrap = broker.bootstrap.clone();
    let broker = Arc::new(AsyncMutex::new(broker));
    if let (GroupProtocol::Consumer, Some(session)) = (plan.group_protocol, plan.session_timeout) {
        let session_ms = session.as_millis();
        broker
            .lock()
            .await
            .command(&format!(
                "consumer-group {session_ms} {}",
                (session_ms / 4).max(100)
            ))
            .await?;
    }
    let topics = Topics::new(format!("{id}."));
    for topic in topics.all() {
        broker
            .lock()
            .await
            .command(&format!("create {topic} {PARTITIONS}"))
            .await?;
    }
    let env = TestEnv {
        kafka: bootstrap.clone(),
        redis: redis.url(),
    };
    let options = StackOptions {
        first_touch_seconds: plan.first_touch_seconds,
        rules: rules(),
        webhook_base: Some(receiver.base.clone()),
        id: Some(id.clone()),
        create_topics: false,
        extra_config: kafka_client_table(&plan.kafka_client),
        ..StackOptions::default()
    };
    let config = write_config(&env, &id, &options);
    let log_dir = config
        .parent()
        .context("the config's folder")?
        .to_path_buf();
    say!(plan, "run {id}: logs in {}", log_dir.display());
    let mut vars = config_env(&options);
    // The mock cluster evicts a killed member: run the production protocol on it.
    vars.push((
        "HANDOFF_KAFKA_PARTITION_ASSIGNMENT".to_owned(),
        "cooperative-sticky".to_owned(),
    ));
    vars.push((
        "HANDOFF_KAFKA_GROUP_PROTOCOL".to_owned(),
        plan.group_protocol.as_str().to_owned(),
    ));
    if let (GroupProtocol::Classic, Some(session)) = (plan.group_protocol, plan.session_timeout) {
        vars.push((
            "HANDOFF_KAFKA_SESSION_TIMEOUT_MS".to_owned(),
            session.as_millis().to_string(),
        ));
    }
    if plan.kafka_client.iter().any(|(key, _)| key == "debug") {
        vars.push((
            "HANDOFF_LOG_LEVEL".to_owned(),
            "warn,handoff=info,handoff_kafka=debug,rdkafka=debug,librdkafka=debug".to_owned(),
        ));
    }
    let ingest_listen = format!("127.0.0.1:{}", free_port()?);
    let mut fleet = Fleet::new(config.clone(), vars, log_dir, ingest_listen.clone())?;
    fleet.static_ids = plan.static_membership;
    say!(plan, "{}", plan.membership());
    let mut core = vec![fleet.add("ingest", "ingest")?];
    for name in ["router-1", "router-2"] {
        core.push(fleet.add("router", name)?);
    }
    for name in ["sla-1", "sla-2"] {
        core.push(fleet.add("sla", name)?);
    }
    core.push(fleet.add("notifier", "notifier")?);
    let api = format!("http://{ingest_listen}");
    wait_healthy(&api).await?;
    say!(
        plan,
        "services up; traffic: {} leads at {}/s",
        plan.leads,
        plan.rate
    );

    let loaded = handoff_config::load(&config, config_env(&options))?;
    let producer = EventProducer::new(&loaded.settings.kafka, "chaos")?;
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let traffic = tokio::spawn(traffic(
        plan.clone(),
        api.clone(),
        id.clone(),
        producer,
        accepted.clone(),
    ));

    // Faults, while the traffic runs.
    let started = Instant::now();
    let length = plan.traffic_duration();
    let at = |fraction: f64| started + length.mul_f64(fraction);
    let mut events: Vec<(Instant, Fault)> = Vec::new();
    if plan.rebalance {
        events.push((at(0.25), Fault::AddMembers));
        events.push((at(0.6), Fault::RemoveMembers));
    }
    if plan.redis_restart {
        events.push((at(0.4), Fault::RedisRestart));
    }
    if let Some(outage) = plan.broker_outage {
        events.push((at(0.75), Fault::BrokerDown));
        events.push((at(0.75) + outage, Fault::BrokerUp));
    }
    for (fraction, command) in &plan.broker_commands {
        events.push((at(*fraction), Fault::Broker(command.clone())));
    }
    events.sort_by_key(|(when, _)| *when);
    let mut events = events.into_iter().peekable();
    let mut next_kill = plan.kill_every.map(|every| started + every);
    let mut extra: Vec<usize> = Vec::new();
    let mut kills = 0usize;
    let mut probe = None;
    while !traffic.is_finished() || events.peek().is_some() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A service that ended by itself (e.g. started while Redis was down) is started
        // again, as an orchestrator would.
        let wanted: Vec<usize> = core.iter().chain(&extra).copied().collect();
        let restarted = fleet.ensure_running(&wanted)?;
        if !restarted.is_empty() {
            say!(plan, "restarted (had ended by itself): {restarted:?}");
        }
        let now = Instant::now();
        if let Some(when) = next_kill.filter(|when| *when <= now) {
            let pool: Vec<usize> = core.iter().chain(&extra).copied().collect();
            let victim = pool
                .get(rand::rng().random_range(0..pool.len().max(1)))
                .copied();
            if let Some(victim) = victim {
                let name = fleet.instances.get(victim).map(|i| i.name.clone());
                say!(plan, "kill -9 {}", name.unwrap_or_default());
                fleet.kill(victim).await?;
                kills += 1;
                // Down for a moment, as a crash-looping pod would be.
                tokio::time::sleep(Duration::from_millis(rand::rng().random_range(200..2000)))
                    .await;
                fleet.start(victim)?;
            }
            next_kill = plan.kill_every.map(|every| when + every);
        }
        while let Some((_, fault)) = events.next_if(|(when, _)| *when <= now) {
            say!(plan, "{fault:?}");
            match fault {
                Fault::AddMembers => {
                    extra.push(fleet.add("router", "router-3")?);
                    extra.push(fleet.add("sla", "sla-3")?);
                }
                Fault::RemoveMembers => {
                    for index in extra.drain(..) {
                        fleet.stop(index, Duration::from_secs(20)).await?;
                    }
                }
                Fault::RedisRestart => {
                    redis.kill().await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    redis.up().await;
                }
                Fault::BrokerDown => {
                    broker.lock().await.command("down 1").await?;
                    let wait = plan.broker_outage.unwrap_or_default() / 2;
                    probe = Some(tokio::spawn(probe_outage(api.clone(), wait)));
                }
                Fault::BrokerUp => broker.lock().await.command("up 1").await?,
                Fault::Broker(command) => broker.lock().await.command(&command).await?,
            }
        }
        if traffic.is_finished() && events.peek().is_none() {
            break;
        }
    }
    let traffic_outcome = traffic.await?;
    let restarted = fleet.ensure_running(&core)?;
    if !restarted.is_empty() {
        say!(
            plan,
            "restarted after the traffic (had died): {restarted:?}"
        );
    }
    say!(
        plan,
        "traffic done in {:.0?} ({kills} kills); draining",
        started.elapsed()
    );
    traffic_outcome?;

    let accepted_now: Vec<String> = accepted
        .lock()
        .map(|a| a.iter().cloned().collect())
        .unwrap_or_default();
    let quiet = drain(&plan, &bootstrap, &topics, &redis.url(), &id, &accepted_now).await?;
    if !quiet {
        say!(
            plan,
            "not quiet within {:?}: judging anyway",
            plan.drain_deadline
        );
    }
    let mut observed = oracle::read_topics(&bootstrap, &topics).await?;
    observed.accepted = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    oracle::read_redis(&mut observed, &redis.url(), &id, &REPS).await?;
    observed.notifications = receiver.counts();
    let report = oracle::judge(&observed);
    for example in &report.examples {
        say!(plan, "{example}");
    }
    fleet.stop_all().await;
    drop(broker);
    let during_outage = match probe {
        Some(probe) => Some(probe.await?),
        None => None,
    };
    Ok(Outcome {
        report,
        during_outage,
    })
}

/// Halfway through a broker outage: what `/readyz` says and what a lead post gets.
async fn probe_outage(api: String, wait: Duration) -> OutageProbe {
    tokio::time::sleep(wait).await;
    let readyz = match reqwest::get(format!("{api}/readyz")).await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    };
    let post = crate::client()
        .post(format!("{api}/v1/leads"))
        .timeout(Duration::from_secs(30))
        .json(&crate::qualified_lead(999_999))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());
    OutageProbe { readyz, post }
}

#[derive(Debug)]
enum Fault {
    AddMembers,
    RemoveMembers,
    RedisRestart,
    BrokerDown,
    BrokerUp,
    Broker(String),
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_healthy(api: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = reqwest::get(format!("{api}/healthz")).await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "ingest not healthy within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The traffic: `plan.leads` leads at `plan.rate`; every tenth straight onto
/// `lead.created`, every twentieth unqualified (nurture); four in five touched
/// (`contacted`) a moment later, one in ten of those then converted. The rest are left
/// untouched so that first touches are missed, breached and reassigned during the run.
async fn traffic(
    plan: Plan,
    api: String,
    id: String,
    producer: EventProducer,
    accepted: Arc<Mutex<BTreeSet<String>>>,
) -> anyhow::Result<()> {
    let client = crate::client();
    let producer = Arc::new(producer);
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate.max(0.001)));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..plan.leads {
        pace.tick().await;
        let (client, api, id, producer, accepted) = (
            client.clone(),
            api.clone(),
            id.clone(),
            producer.clone(),
            accepted.clone(),
        );
        tasks.spawn(async move {
            let lead = lead_body(n);
            let lead_id = if n % 10 == 5 {
                produce_lead(&producer, &format!("{id}-direct-{n}"), lead).await?
            } else {
                post_until_accepted(
                    &client,
                    &format!("{api}/v1/leads"),
                    &format!("{id}-lead-{n}"),
                    &lead,
                )
                .await?["lead_id"]
                    .as_str()
                    .context("202 without a lead_id")?
                    .to_owned()
            };
            if let Ok(mut accepted) = accepted.lock() {
                accepted.insert(lead_id.clone());
            }
            // A rep touches a lead once it is theirs: after its assignment.
            let touched = n % 5 != 0 && n % 20 != 7;
            if touched && wait_assigned(&client, &api, &lead_id).await {
                tokio::time::sleep(Duration::from_millis(200 + (n as u64 % 10) * 100)).await;
                let url = format!("{api}/v1/leads/{lead_id}/dispositions");
                let report = json!({ "outcome": "contacted", "actor": "crm", "actor_id": "sfdc" });
                post_until_accepted(&client, &url, &format!("{id}-touch-{n}"), &report).await?;
                if n % 10 == 3 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let close =
                        json!({ "outcome": "converted", "actor": "crm", "actor_id": "sfdc" });
                    post_until_accepted(&client, &url, &format!("{id}-close-{n}"), &close).await?;
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Polls `GET /v1/leads/{id}` until the lead is assigned (`true`), or for a minute. The
/// poll backs off (0.5 s doubling to 4 s): while the routers lag behind a kill, thousands
/// of pollers would otherwise fill ingest's request slots (503 `overloaded`) and starve the
/// traffic itself.
async fn wait_assigned(client: &reqwest::Client, api: &str, lead_id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pause = Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{api}/v1/leads/{lead_id}")).send().await {
            if let Ok(view) = response.json::<Value>().await {
                if view["state"] == "assigned" {
                    return true;
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(4));
    }
    false
}

/// Lead `n`: qualified, except every twentieth (a student on free mail: nurture).
fn lead_body(n: usize) -> Value {
    if n % 20 == 7 {
        json!({
            "contact": { "email": format!("kid{n}@gmail.com"), "title": "Student" },
            "source": { "kind": "web_form", "campaign": "back-to-school" }
        })
    } else {
        crate::qualified_lead(n)
    }
}

/// Produces lead `lead_id` straight onto `lead.created` (as a trusted integration would),
/// retrying until the broker acknowledges it.
async fn produce_lead(
    producer: &EventProducer,
    lead_id: &str,
    mut body: Value,
) -> anyhow::Result<String> {
    body["id"] = json!(lead_id);
    let (lead, event) =
        crate::lead_created_event(body, Utc::now()).with_context(|| format!("lead {lead_id}"))?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match producer.publish(&event).await {
            Ok(()) => return Ok(lead.id.as_str().to_owned()),
            // Retries under faults are expected; the oracle says whether anything was lost.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context(format!("producing {lead_id}")),
        }
    }
}

/// Posts `body` with `Idempotency-Key: key` until it is accepted (202): through ingest
/// being killed (connection refused), 503 (a dependency down) and 409 (the same key still
/// in flight). Gives up after three minutes.
async fn post_until_accepted(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let closing = body["outcome"] == "converted";
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    while Instant::now() < deadline {
        match client
            .post(url)
            .header("Idempotency-Key", key)
            .timeout(Duration::from_secs(15))
            .json(body)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status().as_u16();
                let answer = response.json::<Value>().await.unwrap_or(Value::Null);
                match status {
                    202 => return Ok(answer),
                    // A close whose first attempt was applied but not answered (ingest
                    // killed between publishing and recording the key): its retry hears
                    // that the lead is closed — by this very report.
                    409 if closing && answer["error"]["code"] == "lead_closed" => {
                        return Ok(answer)
                    }
                    // Transient: a dependency down, a key in flight, the lead not yet
                    // known (a directly produced lead before the router saw it).
                    404 | 409 | 429 | 500..=599 => last = format!("{status} {answer}"),
                    _ => anyhow::bail!("POST {url}: {status} {answer}"),
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!("POST {url} not accepted within 3 minutes; last: {last}")
}

/// Waits until the system is quiet: every accepted lead decided, every first-touch
/// deadline resolved, no claim held, the outbox empty, and the logs' ends unchanged for 6 s. `false` after the deadline.
async fn drain(
    plan: &Plan,
    bootstrap: &str,
    topics: &Topics,
    redis_url: &str,
    id: &str,
    accepted: &[String],
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + plan.drain_deadline;
    let all = topics.all();
    let mut last_end = -1;
    let mut stable_since = Instant::now();
    let client = redis::Client::open(redis_url)?;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (bootstrap_owned, all_owned) = (bootstrap.to_owned(), all.clone());
        let end =
            tokio::task::spawn_blocking(move || oracle::log_end(&bootstrap_owned, &all_owned))
                .await?
                .unwrap_or(-1);
        if end != last_end {
            last_end = end;
            stable_since = Instant::now();
        }
        let Ok(mut redis) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let due: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{{{id}}}:sla:due"))
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await
            .unwrap_or_default();
        // `lead|attempt` is a first-touch deadline; longer members are other clocks.
        let first_touch = due.iter().filter(|m| m.matches('|').count() == 1).count();
        let claimed: usize = redis::cmd("ZCARD")
            .arg(format!("{{{id}}}:sla:claimed"))
            .query_async(&mut redis)
            .await
            .unwrap_or(usize::MAX);
        let outbox: usize = redis::cmd("ZCARD")
            .arg(format!("{{{id}}}:outbox"))
            .query_async(&mut redis)
            .await
            .unwrap_or(usize::MAX);
        // Leads nobody decided yet (no record, or still `received`): a stalled partition
        // leaves the logs quiet and no deadline behind, so this is what shows it.
        let mut pipe = redis::pipe();
        for lead in accepted {
            pipe.hget(format!("{{{id}}}:lead:{lead}"), "state");
        }
        let states: Vec<Option<String>> = pipe.query_async(&mut redis).await.unwrap_or_default();
        let undecided = if states.len() == accepted.len() {
            states
                .iter()
                .filter(|s| s.as_deref().is_none_or(|s| s == "received"))
                .count()
        } else {
            usize::MAX
        };
        say!(
            plan,
            "drain: log end {end}, undecided leads {undecided}, first-touch deadlines {first_touch}, claims {claimed}, outbox {outbox}"
        );
        if undecided == 0
            && first_touch == 0
            && claimed == 0
            && outbox == 0
            && end >= 0
            && stable_since.elapsed() >= Duration::from_secs(6)
        {
            return Ok(true);
        }
    }
    Ok(false)
}
