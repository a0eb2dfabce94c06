//! The end-to-end harness: every test gets its own topics, consumer groups, Redis key
//! prefix and ports, and talks to the real broker and Redis that `make test` starts
//! (`HANDOFF_TEST_KAFKA`, `HANDOFF_TEST_REDIS`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed set-up should fail loudly

pub mod chaos;
pub mod contract;
pub mod otlp;
pub mod prometheus;
pub mod redis_server;
pub mod routed_log;
pub mod secure_broker;
pub mod topics;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use handoff::services::{self, ServiceSet};
use handoff_kafka::Topics;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where the test dependencies listen.
#[derive(Debug, Clone)]
pub struct TestEnv {
    pub kafka: String,
    pub redis: String,
}

impl TestEnv {
    pub fn from_env() -> Self {
        let get = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the suite with `make test`, which starts Redis and the Tansu broker")
            })
        };
        Self {
            kafka: get("HANDOFF_TEST_KAFKA"),
            redis: get("HANDOFF_TEST_REDIS"),
        }
    }

    pub fn redis_client(&self) -> redis::Client {
        redis::Client::open(self.redis.as_str()).expect("redis url")
    }
}

/// An API key with every scope, trusted (may set lead ids): what most tests call with.
pub const TEST_KEY: &str = "hk_test_all_scopes_0000000000000000";
/// `leads:write` only, untrusted: a typical lead source.
pub const LEADS_KEY: &str = "hk_test_leads_only_000000000000000";
/// `dispositions:write` for any rep: a CRM (named `sfdc`).
pub const CRM_KEY: &str = "hk_test_crm_00000000000000000000000";
/// `dispositions:write` as rep `a` only.
pub const REP_A_KEY: &str = "hk_test_rep_a_000000000000000000000";
/// `reps:read` only.
pub const REPS_READ_KEY: &str = "hk_test_reps_read_0000000000000000";
/// A web form's public token; its plain form posts are redirected to [`FORM_THANKS`].
pub const FORM_TOKEN: &str = "test-landing-page-form";
pub const FORM_THANKS: &str = "https://www.example.com/thanks";
/// The one browser origin allowed to post leads from JavaScript.
pub const CORS_ORIGIN: &str = "https://www.example.com";
/// The signed webhook intake source `leadgen` (with [`StackOptions::webhook_intake`]).
pub const WEBHOOK_SOURCE: &str = "leadgen";
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WEBHOOK_SECRET_ENV: &str = "HANDOFF_TEST_LEADGEN_SECRET";

/// An HTTP client that presents [`TEST_KEY`].
pub fn client() -> reqwest::Client {
    client_with_key(TEST_KEY)
}

/// An HTTP client that presents `key` as `Authorization: Bearer`.
pub fn client_with_key(key: &str) -> reqwest::Client {
    handoff::demo::with_key(key).expect("http client")
}

/// A short random id: topic prefix, group prefix and Redis key prefix of one test.
pub fn unique_id() -> String {
    format!("t{:08x}", rand::random::<u32>())
}

/// The rules most tests use: one team `sales` of four reps. `a` and `b` have room for
/// 100 open leads, `c` for 20, `d` is deactivated. Leads with a senior title qualify;
/// students on free-mail do not.
pub const RULES: &str = r#"
[scoring]
mql_threshold = 10
free_mail_domains = ["gmail.com"]

[[scoring.rules]]
name = "senior_title"
points = 20
when = { title_contains = ["vp", "director", "chief"] }

[[scoring.rules]]
name = "student"
points = -40
when = { title_contains = ["student"] }

[routing]
[[routing.teams]]
id = "sales"
members = ["a", "b", "c", "d"]
webhook_url = "WEBHOOK_TEAM"

[[routing.reps]]
id = "a"
capacity = 100
webhook_url = "WEBHOOK_REP"

[[routing.reps]]
id = "b"
capacity = 100
webhook_url = "WEBHOOK_REP"

[[routing.reps]]
id = "c"
capacity = 20
webhook_url = "WEBHOOK_REP"

[[routing.reps]]
id = "d"
capacity = 100
active = false

[[routing.rules]]
name = "everyone"
team = "sales"
"#;

/// The webhook signing secret of every test stack (long enough for a deployment).
pub const TEST_SIGNING_SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// The accept/reject links' key of every test stack, in the variable `[actions]` names by
/// default (links are on only where a test sets `actions.public_url`).
pub const TEST_ACTION_SECRET: &str = "test-action-links-0123456789abcdef0123";
pub const ACTION_SECRET_ENV: &str = "HANDOFF_ACTION_LINK_SECRET";

/// How a test wants its stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub services: ServiceSet,
    pub first_touch_seconds: u32,
    pub rules: String,
    /// Where webhooks go; `None`: nowhere (no webhook configured).
    pub webhook_base: Option<String>,
    /// The test's id (topic, group and key prefix); `None`: a fresh random one.
    pub id: Option<String>,
    /// Create topics at start-up (off when the caller made them, e.g. on a mock cluster).
    pub create_topics: bool,
    /// Configure the signed webhook intake source [`WEBHOOK_SOURCE`] (its secret comes
    /// from an environment variable, which a child process must then be given).
    pub webhook_intake: bool,
    /// More TOML appended to the configuration file (tables only).
    pub extra_config: String,
    /// More keys of the `[sla]` table (lines `key = value`).
    pub sla_config: String,
    /// The body of `[ingest.limits]`; by default high enough that no test is throttled.
    pub ingest_limits: String,
    /// Allow webhooks to loopback (the tests' receivers); off: the default egress policy.
    pub allow_loopback_webhooks: bool,
    /// `[notifier]` keys besides the secret and the allowlist: retries and circuits.
    pub notifier: String,
    /// More keys of the `[router]` table (lines `key = value`).
    pub router_config: String,
    /// `kafka.fetch_wait_max_ms`: how long a fetch waits for data (the mock cluster and
    /// Tansu answer only when it runs out: architecture.md).
    pub fetch_wait_max_ms: u32,
}

/// The notifier's retry settings of most tests: quick retries, a quick retry poll.
pub const TEST_NOTIFIER: &str =
    "max_attempts = 4\ninitial_backoff_ms = 50\nmax_backoff_ms = 200\nretry_poll_interval_ms = 50\n";

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            services: ServiceSet::all(),
            first_touch_seconds: 300,
            rules: RULES.to_owned(),
            webhook_base: None,
            id: None,
            create_topics: true,
            webhook_intake: false,
            extra_config: String::new(),
            sla_config: String::new(),
            ingest_limits:
                "per_key_per_minute = 10000000\nper_address_per_minute = 10000000\nburst = 100000\n"
                    .to_owned(),
            allow_loopback_webhooks: true,
            notifier: TEST_NOTIFIER.to_owned(),
            router_config: String::new(),
            fetch_wait_max_ms: 100,
        }
    }
}

/// How long a stack may take to start or to stop (drain and commit) before the test fails.
const STACK_DEADLINE: Duration = Duration::from_secs(120);

/// A running set of services, in this process, on real ports.
#[derive(Debug)]
pub struct Stack {
    pub id: String,
    pub env: TestEnv,
    /// The configuration file (and rules file beside it), for child processes.
    pub config_path: PathBuf,
    pub api: Option<String>,
    /// The internal listener (`/metrics`, rep administration).
    pub internal: Option<String>,
    pub topics: Topics,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Stack {
    pub async fn start(options: StackOptions) -> Self {
        Self::start_with(TestEnv::from_env(), options).await
    }

    pub async fn start_with(env: TestEnv, options: StackOptions) -> Self {
        let id = options.id.clone().unwrap_or_else(unique_id);
        let config_path = write_config(&env, &id, &options);
        let loaded = handoff_config::load(&config_path, config_env(&options)).expect("test config");
        let shutdown = CancellationToken::new();
        // A start that never ends (a dependency that accepts connections but never
        // answers) fails the test with a reason instead of hanging the suite.
        let running = tokio::time::timeout(
            STACK_DEADLINE,
            services::start(options.services, loaded, shutdown.clone()),
        )
        .await
        .expect("the services did not start within 2 minutes")
        .expect("services start");
        let api = running.ingest_addr.map(|a| format!("http://{a}"));
        let internal = running.admin_addr.map(|a| format!("http://{a}"));
        let task = tokio::spawn(running.wait());
        Self {
            topics: Topics::new(format!("{id}.")),
            id,
            env,
            config_path,
            api,
            internal,
            shutdown,
            task,
        }
    }

    pub fn api(&self) -> &str {
        self.api.as_deref().expect("this stack runs ingest")
    }

    pub fn internal(&self) -> &str {
        self.internal
            .as_deref()
            .expect("every stack has an internal listener")
    }

    /// Stops every service (drain and commit) and returns how they ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(STACK_DEADLINE, self.task)
            .await
            .map_err(|_| anyhow::anyhow!("the services did not stop within 2 minutes"))??
    }

    /// Posts a lead to this stack's ingest, expects 202, returns the lead id.
    pub async fn post_lead(&self, client: &reqwest::Client, lead: &Value) -> String {
        let (status, body) = post_json(client, &format!("{}/v1/leads", self.api()), lead).await;
        assert_eq!(status, 202, "{body}");
        body["lead_id"].as_str().expect("lead_id").to_owned()
    }

    /// A reader of one of this stack's topics, from its beginning.
    pub fn reader(&self, kind: handoff_domain::events::EventKind) -> topics::TopicReader {
        topics::TopicReader::new(&self.env.kafka, &self.topics.of(kind))
    }

    /// A rep's open leads (those holding capacity), as the reps API reports them.
    pub async fn open_leads(&self, rep: &str) -> i64 {
        let body = get_json(&format!("{}/v1/reps/{rep}", self.internal())).await;
        body["open_leads"]
            .as_i64()
            .unwrap_or_else(|| panic!("open_leads of {rep}: {body}"))
    }

    /// Publishes `record` to this stack's `kind` topic again, headers and all, as a
    /// redelivery or a producer's retry would.
    pub async fn republish(
        &self,
        kind: handoff_domain::events::EventKind,
        record: &topics::Record,
    ) {
        use handoff_kafka::rdkafka::message::{Header, OwnedHeaders};
        use handoff_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = handoff_kafka::rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.env.kafka)
            .create()
            .expect("producer");
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        producer
            .send(
                FutureRecord::to(&self.topics.of(kind))
                    .key(record.key.as_deref().unwrap_or_default())
                    .payload(&record.payload)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("republished");
    }

    /// The internal listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.internal()))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics text")
    }

    /// The value of the first sample whose line starts with `line_prefix` (a metric name,
    /// or a name with its labels); 0 when there is none.
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// The sum of every series of the metric `name`.
    pub async fn metric_sum(&self, name: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    /// `GET /v1/leads/{id}`: the lead's lifecycle (`Value::Null` for 404).
    pub async fn lead_view(&self, lead_id: &str) -> Value {
        get_json(&format!("{}/v1/leads/{lead_id}", self.api())).await
    }

    /// `GET /v1/queues/{name}`.
    pub async fn queue_view(&self, name: &str) -> Value {
        get_json(&format!("{}/v1/queues/{name}", self.api())).await
    }

    pub fn key(&self, suffix: &str) -> String {
        format!("{{{}}}:{suffix}", self.id)
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        self.env
            .redis_client()
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }
}

/// Serves `app` on a free loopback port until the returned token is cancelled; returns
/// its base URL (`http://127.0.0.1:PORT`). For the tools' receivers (webhooks, OTLP).
pub async fn serve_local(
    app: axum::Router,
) -> std::io::Result<(String, tokio_util::sync::CancellationToken)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok((base, shutdown))
}

/// Writes `handoff.toml` and `rules.toml` for one test into a fresh folder.
pub fn write_config(env: &TestEnv, id: &str, options: &StackOptions) -> PathBuf {
    let dir = std::env::temp_dir().join("handoff-e2e").join(id);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let webhook = options.webhook_base.clone().unwrap_or_default();
    let mut rules = options
        .rules
        .replace("WEBHOOK_TEAM", &format!("{webhook}/hooks/team"))
        .replace("WEBHOOK_REP", &format!("{webhook}/hooks/rep"));
    if options.webhook_base.is_none() {
        rules = rules
            .lines()
            .filter(|l| !l.starts_with("webhook_url"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    std::fs::write(dir.join("rules.toml"), rules).expect("write rules");
    let settings = format!(
        r#"
rules_file = "rules.toml"
[kafka]
bootstrap_servers = "{kafka}"
topic_prefix = "{id}."
group_prefix = "{id}"
partitions = 3
create_topics = {create_topics}
session_timeout_ms = 6000
fetch_wait_max_ms = {fetch_wait}
# Tansu 0.6 never evicts a SIGKILLed member: under the cooperative protocol a restarted
# service would get none of its partitions (docs/delivery.md, "Brokers").
partition_assignment = "eager"
[redis]
url = "{redis}"
key_prefix = "{id}"
[ingest]
listen = "127.0.0.1:0"
max_body_bytes = 65536
publish_timeout_ms = 10000
cors_allowed_origins = ["{CORS_ORIGIN}"]
[ingest.limits]
{limits}[admin]
listen = "127.0.0.1:0"
[router]
queue_poll_ms = 200
{router_extra}
[sla]
first_touch_seconds = {sla}
poll_interval_ms = 100
lease_seconds = 5
publish_timeout_ms = 4000
{sla_extra}
[notifier]
signing_secret = "{secret}"
allowed_private_targets = [{allowed}]
{notifier}[log]
level = "warn,handoff=info"
[shutdown]
drain_seconds = 5
{keys}
{extra}
"#,
        keys = access_config(options),
        notifier = options.notifier,
        limits = options.ingest_limits,
        extra = options.extra_config,
        sla_extra = options.sla_config,
        router_extra = options.router_config,
        fetch_wait = options.fetch_wait_max_ms,
        kafka = env.kafka,
        redis = env.redis,
        sla = options.first_touch_seconds,
        // The mock cluster (`handoff-mock-broker`) creates topics on first use but answers no
        // CreateTopics request: HANDOFF_TEST_CREATE_TOPICS=false lets the suite run on it.
        create_topics = options.create_topics
            && std::env::var("HANDOFF_TEST_CREATE_TOPICS").as_deref() != Ok("false"),
        secret = TEST_SIGNING_SECRET,
        allowed = if options.allow_loopback_webhooks {
            "\"127.0.0.0/8\""
        } else {
            ""
        },
    );
    let path = dir.join("handoff.toml");
    std::fs::write(&path, settings).expect("write config");
    path
}

/// The environment a stack's configuration needs (secrets it names).
pub fn config_env(options: &StackOptions) -> Vec<(String, String)> {
    let mut vars = vec![(ACTION_SECRET_ENV.to_owned(), TEST_ACTION_SECRET.to_owned())];
    if options.webhook_intake {
        vars.push((WEBHOOK_SECRET_ENV.to_owned(), WEBHOOK_SECRET.to_owned()));
    }
    vars
}

/// The test keys, form and (optionally) webhook source, as configuration.
fn access_config(options: &StackOptions) -> String {
    let key = |name: &str, key: &str, scopes: &str, extra: &str| {
        format!(
            "[[ingest.keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nscopes = [{scopes}]\n{extra}\n",
            handoff_config::key_digest(key)
        )
    };
    let all = r#""leads:write", "leads:read", "dispositions:write", "reps:read", "reps:write""#;
    let mut config = [
        key("test", TEST_KEY, all, "trusted = true"),
        key("website", LEADS_KEY, r#""leads:write""#, ""),
        key("sfdc", CRM_KEY, r#""dispositions:write""#, ""),
        key(
            "rep-a",
            REP_A_KEY,
            r#""dispositions:write""#,
            r#"rep = "a""#,
        ),
        key("dashboard", REPS_READ_KEY, r#""reps:read""#, ""),
    ]
    .concat();
    config.push_str(&format!(
        "[[ingest.forms]]\ntoken = \"{FORM_TOKEN}\"\nsource = \"landing-page\"\nredirect_url = \"{FORM_THANKS}\"\n"
    ));
    if options.webhook_intake {
        config.push_str(&format!(
            "[[ingest.webhooks]]\nsource = \"{WEBHOOK_SOURCE}\"\nsecret_env = \"{WEBHOOK_SECRET_ENV}\"\n"
        ));
    }
    config
}

/// A lead that qualifies under [`RULES`].
pub fn qualified_lead(n: usize) -> Value {
    serde_json::json!({
        "contact": { "email": format!("lead{n}@acme.io"), "title": "VP Sales" },
        "company": { "name": "Acme", "country": "DE", "employees": 300 },
        "source": { "kind": "web_form", "name": "pricing-page", "campaign": "spring-launch" }
    })
}

/// A submission body as ingest would turn it into a lead at `received_at`, and its
/// `lead.created` event with a new trace: for the tools that write leads straight onto
/// the topic, as any producer may.
pub fn lead_created_event(
    body: Value,
    received_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(handoff_domain::Lead, handoff_kafka::OutboundEvent)> {
    let submission: handoff_domain::submission::LeadSubmission = serde_json::from_value(body)?;
    let lead = submission
        .into_lead(received_at)
        .map_err(|e| anyhow::anyhow!("not a valid lead: {e:?}"))?;
    let event =
        handoff_kafka::OutboundEvent::lead_created(&lead, handoff_kafka::TraceParent::new_root())?;
    Ok((lead, event))
}

/// Posts a lead as JSON; returns the status and the body.
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// GETs `url` with the test key; the JSON body of a 200, `Value::Null` for a 404.
pub async fn get_json(url: &str) -> Value {
    let response = client().get(url).send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    match status {
        200 => body,
        404 => Value::Null,
        other => panic!("GET {url}: {other} {body}"),
    }
}

/// The fields an API error body names, in order (`error.fields[].field`).
pub fn error_fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a child's pipe to its end on a task of its own (so the child never blocks on a
/// full pipe); the task yields what was read.
pub fn collect_output<R>(mut pipe: R) -> tokio::task::JoinHandle<Vec<u8>>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::AsyncReadExt;
    tokio::spawn(async move {
        let mut text = Vec::new();
        pipe.read_to_end(&mut text).await.ok();
        text
    })
}

/// Waits until the service at `api` answers `/readyz` with success.
pub async fn until_ready(api: &str, timeout: Duration) {
    let client = client();
    eventually(timeout, "the service to be ready", || {
        let (client, url) = (client.clone(), format!("{api}/readyz"));
        async move {
            let response = client.get(url).send().await.ok()?;
            response.status().is_success().then_some(())
        }
    })
    .await;
}

/// Polls `check` until it yields a value or `timeout` passes (then panics with `what`).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The built `handoff` binary (the Makefile builds it before the suite).
pub fn handoff_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/handoff
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let binary = dir.join("handoff");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --bin handoff` (make test does)",
        binary.display()
    );
    binary
}
