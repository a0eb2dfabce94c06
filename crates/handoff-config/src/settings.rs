//! The service configuration file's shape. Every section is optional except `kafka` and
//! `redis`; defaults are what a single-machine install wants.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use handoff_domain::lifecycle::CapacityRelease;
use handoff_domain::sla::{DispositionStart, SlaClock, SlaPolicy};

use crate::access::{self, ApiKeySettings, FormSettings, LimitSettings, WebhookSourceSettings};
use crate::{AddressBlock, ConfigError, FunnelSettings, Secret};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The rules file: scoring model, teams, reps, routing rules.
    pub rules_file: PathBuf,
    pub kafka: KafkaSettings,
    pub redis: RedisSettings,
    #[serde(default)]
    pub ingest: IngestSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub router: RouterSettings,
    #[serde(default)]
    pub sla: SlaSettings,
    #[serde(default)]
    pub notifier: NotifierSettings,
    /// Accept/reject links in reps' notifications (signed by the notifier, served by ingest).
    #[serde(default)]
    pub actions: ActionLinkSettings,
    #[serde(default)]
    pub funnel: FunnelSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    /// `dev` (default) or `production`: see [`crate::Profile`].
    #[serde(default)]
    pub profile: crate::Profile,
    #[serde(default)]
    pub state: crate::StateSettings,
    /// Span export to an OpenTelemetry collector; off by default.
    #[serde(default)]
    pub tracing: crate::TracingSettings,
}

impl Settings {
    /// Checks that serde cannot express: ranges and relations between keys.
    pub(crate) fn check(&self) -> Result<(), String> {
        let positive = [
            ("kafka.partitions", u64::from(self.kafka.partitions)),
            (
                "kafka.transient_retry_budget_seconds",
                u64::from(self.kafka.transient_retry_budget_seconds),
            ),
            ("ingest.max_body_bytes", self.ingest.max_body_bytes as u64),
            (
                "sla.first_touch_seconds",
                u64::from(self.sla.first_touch_seconds),
            ),
            ("sla.poll_interval_ms", self.sla.poll_interval_ms),
            ("sla.lease_seconds", u64::from(self.sla.lease_seconds)),
            ("sla.publish_timeout_ms", self.sla.publish_timeout_ms),
            ("sla.claim_batch", u64::from(self.sla.claim_batch)),
            (
                "sla.disposition_seconds",
                u64::from(self.sla.disposition_seconds),
            ),
            (
                "notifier.max_attempts",
                u64::from(self.notifier.max_attempts),
            ),
            ("notifier.timeout_ms", self.notifier.timeout_ms),
            ("notifier.concurrency", self.notifier.concurrency as u64),
            (
                "notifier.per_destination_concurrency",
                self.notifier.per_destination_concurrency as u64,
            ),
            (
                "notifier.initial_backoff_ms",
                self.notifier.initial_backoff_ms,
            ),
            ("notifier.max_age_seconds", self.notifier.max_age_seconds),
            (
                "notifier.breaker_threshold",
                u64::from(self.notifier.breaker_threshold),
            ),
            (
                "notifier.breaker_cooldown_ms",
                self.notifier.breaker_cooldown_ms,
            ),
            (
                "notifier.dedup_window_seconds",
                self.notifier.dedup_window_seconds,
            ),
            (
                "notifier.retry_poll_interval_ms",
                self.notifier.retry_poll_interval_ms,
            ),
            ("notifier.claim_lease_ms", self.notifier.claim_lease_ms),
            ("state.check_interval_ms", self.state.check_interval_ms),
            (
                "state.rebuild_lease_seconds",
                self.state.rebuild_lease_seconds,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be greater than 0"));
            }
        }
        self.sla.check()?;
        self.notifier.check_relations()?;
        self.actions.check()?;
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err("kafka.bootstrap_servers must not be empty".to_owned());
        }
        self.kafka.check_membership()?;
        self.kafka.check_security()?;
        crate::RedisTopology::parse(&self.redis.url)?;
        access::check(
            &self.ingest.keys,
            &self.ingest.forms,
            &self.ingest.webhooks,
            &self.ingest.limits,
            &self.ingest.reason_codes,
        )?;
        self.funnel.check()?;
        self.tracing.check()?;
        if self.redis.key_prefix.contains(['{', '}']) {
            return Err(
                "redis.key_prefix must not contain { or } (it becomes the hash tag)".to_owned(),
            );
        }
        Ok(())
    }

    /// What a deployment needs and `handoff dev` does not: a real webhook signing secret.
    /// The binary calls it for every mode that runs the notifier, except `handoff dev`
    /// (which makes a random secret per run). `path` is the configuration file, for the
    /// message.
    pub fn check_production(&self, path: &Path) -> Result<(), ConfigError> {
        self.notifier
            .check_signing_secret()
            .and_then(|()| self.actions.check_secret())
            .map_err(|message| ConfigError::Invalid {
                path: path.to_owned(),
                message,
            })
    }
}

/// `[actions]`: the accept/reject links of a rep's notifications. The notifier signs them
/// with the key in `secret_env`; ingest serves them on the public listener
/// (`/v1/actions/{token}`) and verifies them with the same key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActionLinkSettings {
    /// The public listener as reps' browsers reach it (`https://leads.example.com`); the
    /// links are `{public_url}/v1/actions/{token}`. Unset: messages carry no links.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The environment variable holding the HMAC-SHA256 key (at least 32 bytes). Required
    /// when `public_url` is set, outside `handoff dev` (which makes one per run).
    #[serde(default = "default_action_secret_env")]
    pub secret_env: String,
    /// Read from `secret_env` at start-up.
    #[serde(skip)]
    pub secret: Secret,
    /// How long a link works after its message was sent (default 7 days).
    #[serde(default = "default_action_ttl_seconds")]
    pub ttl_seconds: u64,
}

impl Default for ActionLinkSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            secret_env: default_action_secret_env(),
            secret: Secret::default(),
            ttl_seconds: default_action_ttl_seconds(),
        }
    }
}

fn default_action_secret_env() -> String {
    "HANDOFF_ACTION_LINK_SECRET".to_owned()
}
fn default_action_ttl_seconds() -> u64 {
    7 * 86_400
}

impl ActionLinkSettings {
    /// Whether links are on: a public URL and a key.
    pub fn enabled(&self) -> bool {
        self.public_url.is_some() && !self.secret.is_empty()
    }

    fn check(&self) -> Result<(), String> {
        if self.ttl_seconds == 0 {
            return Err("actions.ttl_seconds must be greater than 0".to_owned());
        }
        if let Some(url) = &self.public_url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(format!(
                    "actions.public_url must start with http:// or https:// (got {url:?})"
                ));
            }
        }
        if self.secret_env.trim().is_empty() {
            return Err("actions.secret_env must name an environment variable".to_owned());
        }
        Ok(())
    }

    /// `Err` names the key and its variable when links are on and their key is missing or
    /// too short; never the key itself.
    pub fn check_secret(&self) -> Result<(), String> {
        if self.public_url.is_none() {
            return Ok(());
        }
        let var = &self.secret_env;
        let how = format!(
            "set {var} to a random value of at least {MIN_SIGNING_SECRET_BYTES} bytes, e.g. `openssl rand -hex 32` (actions.secret_env names the variable; actions.public_url turns the links on)"
        );
        let secret = self.secret.expose();
        if secret.trim().is_empty() {
            Err(format!("actions.secret_env: {var} is not set: {how}"))
        } else if secret.len() < MIN_SIGNING_SECRET_BYTES {
            Err(format!(
                "actions.secret_env: {var} holds {} bytes, too short to sign links: {how}",
                secret.len()
            ))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated host:port list.
    pub bootstrap_servers: String,
    /// Prepended to every topic name: `<prefix>lead.created`, ...
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Prepended to every consumer group: `<prefix>-router`, ...
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
    /// Partitions of topics created at start-up.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    #[serde(default = "default_replication")]
    pub replication_factor: u32,
    /// Create missing topics at start-up (brokers such as Tansu do not auto-create).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// How long the group coordinator waits for a silent member (a killed instance) before
    /// its partitions go to the others (classic protocol; under `group_protocol = "consumer"`
    /// the broker decides it). With `group_instance_id` it is also how long a static member
    /// may be away and still take its partitions back without a rebalance.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u32,
    /// Static group membership (Kafka's `group.instance.id`, KIP-345): a stable name of this
    /// instance, e.g. its pod name. Each consumer uses `<group_instance_id>-<service>`, so a
    /// restarted instance rejoins as the same member and the coordinator hands its partitions
    /// straight back, with no rebalance of the group. Unset (the default): dynamic membership.
    /// Must be unique among running instances: two processes with one id fence each other
    /// (docs/chaos.md, "Recovery after a kill").
    #[serde(default)]
    pub group_instance_id: Option<String>,
    /// The consumer group protocol (see the enum).
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// Longest a fetch waits at the broker for new events. Kafka answers a waiting fetch as
    /// soon as data arrives, so its default (500) costs no latency there; brokers that do
    /// not (Tansu, librdkafka's mock cluster) add up to this much to every hop, so lower it
    /// for them (`handoff dev` uses 50): see docs/benchmarks.md.
    #[serde(default = "default_fetch_wait_max_ms")]
    pub fetch_wait_max_ms: u32,
    /// How long a produced event may wait for the broker before it counts as failed.
    #[serde(default = "default_message_timeout_ms")]
    pub message_timeout_ms: u32,
    /// How partitions are spread over a group's members (see the enum).
    #[serde(default)]
    pub partition_assignment: PartitionAssignment,
    /// How long an event whose processing keeps failing with an infrastructure error
    /// (Redis or the broker unavailable) is retried, blocking its partition, before the
    /// service stops with an error so its supervisor restarts it (the event is redelivered).
    #[serde(default = "default_transient_retry_budget_seconds")]
    pub transient_retry_budget_seconds: u32,
    /// How long an event whose processing keeps failing with a permanent error (stored
    /// data unreadable, an event the broker refuses) is retried before it is dead-lettered
    /// (reason `processing_failed`) and its partition moves on.
    #[serde(default = "default_permanent_retry_budget_seconds")]
    pub permanent_retry_budget_seconds: u32,
    /// On a rebalance, how long a consumer waits for the effects of events already handled
    /// on its revoked partitions before it commits what is done and lets them go. Keep it
    /// well under `session_timeout_ms`.
    #[serde(default = "default_rebalance_drain_ms")]
    pub rebalance_drain_ms: u32,
    /// How often librdkafka reports statistics (consumer lag per partition); 0 turns them
    /// (and the lag metric) off.
    #[serde(default = "default_statistics_interval_ms")]
    pub statistics_interval_ms: u32,
    /// TLS and SASL: typed keys mapped onto librdkafka's properties (see the module).
    #[serde(default)]
    pub security: crate::KafkaSecurity,
    /// Extra librdkafka properties, passed as-is: the escape hatch for what
    /// `[kafka.security]` does not cover. May not set a property `security` sets.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

/// The consumer group protocol (librdkafka's `group.protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup (every Kafka, Tansu): a membership change makes every member
    /// rejoin before anyone is assigned again.
    #[default]
    Classic,
    /// KIP-848 (`group.protocol=consumer`, Kafka 4.0 and later): the broker assigns, each
    /// member reconciles on its own heartbeat with no group-wide barrier. Session timeout,
    /// heartbeat interval and assignor are the broker's (`group.consumer.*`), so
    /// `session_timeout_ms` and `partition_assignment` do not apply.
    Consumer,
}

impl GroupProtocol {
    /// librdkafka's `group.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// The consumer group's assignment protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionAssignment {
    /// Incremental: a member joining or leaving moves only the partitions that change owner.
    #[default]
    CooperativeSticky,
    /// Eager (librdkafka's default `range,roundrobin`): every rebalance revokes every
    /// partition of every member first. For brokers that keep a crashed member in its group
    /// (Tansu 0.6): under the cooperative protocol its partitions stay with it, while an
    /// eager rebalance hands them to the member that replaced it.
    Eager,
}

impl PartitionAssignment {
    /// librdkafka's `partition.assignment.strategy`.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionAssignment::CooperativeSticky => "cooperative-sticky",
            PartitionAssignment::Eager => "range,roundrobin",
        }
    }
}

impl KafkaSettings {
    /// `[kafka.security]` on its own, then against `[kafka.client]`: one property, one place.
    fn check_security(&self) -> Result<(), String> {
        self.security.check()?;
        for property in self.security.client_properties() {
            if self.client.contains_key(property.name) {
                return Err(format!(
                    "kafka.client.\"{}\" conflicts with {}: set it in one place ([kafka.security] for the keys it has)",
                    property.name, property.key
                ));
            }
        }
        Ok(())
    }

    pub fn transient_retry_budget(&self) -> Duration {
        Duration::from_secs(u64::from(self.transient_retry_budget_seconds))
    }

    pub fn permanent_retry_budget(&self) -> Duration {
        Duration::from_secs(u64::from(self.permanent_retry_budget_seconds))
    }

    pub fn rebalance_drain(&self) -> Duration {
        Duration::from_millis(u64::from(self.rebalance_drain_ms))
    }

    /// Static membership under the KIP-848 protocol is refused: a broker answers the
    /// restarted instance of a killed static member UNRELEASED_INSTANCE_ID until the old
    /// member's session expires, and librdkafka treats that answer as fatal, so the new
    /// process would crash-loop for a whole session instead of waiting.
    fn check_membership(&self) -> Result<(), String> {
        let Some(id) = self.group_instance_id.as_deref() else {
            return Ok(());
        };
        if id.trim().is_empty() {
            return Err(
                "kafka.group_instance_id must not be empty (leave it out for dynamic membership)"
                    .to_owned(),
            );
        }
        if self.group_protocol == GroupProtocol::Consumer {
            return Err("kafka.group_instance_id cannot be used with kafka.group_protocol = \"consumer\": a killed instance's replacement is refused (UNRELEASED_INSTANCE_ID, fatal in librdkafka) until the old session expires; use one or the other (docs/chaos.md, \"Recovery after a kill\")".to_owned());
        }
        Ok(())
    }

    /// The `group.instance.id` of the consumer of `service`: `<group_instance_id>-<service>`,
    /// so the roles of `handoff all` (and a router's second consumer) never share one.
    /// `None` without `group_instance_id` (dynamic membership).
    pub fn group_instance_id_for(&self, service: &str) -> Option<String> {
        self.group_instance_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| format!("{id}-{service}"))
    }
}

fn default_topic_prefix() -> String {
    "handoff.".to_owned()
}
fn default_group_prefix() -> String {
    "handoff".to_owned()
}
fn default_partitions() -> u32 {
    6
}
fn default_replication() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_session_timeout_ms() -> u32 {
    10_000
}
fn default_fetch_wait_max_ms() -> u32 {
    500
}
fn default_message_timeout_ms() -> u32 {
    120_000
}
fn default_transient_retry_budget_seconds() -> u32 {
    300
}
fn default_permanent_retry_budget_seconds() -> u32 {
    30
}
fn default_rebalance_drain_ms() -> u32 {
    5_000
}
fn default_statistics_interval_ms() -> u32 {
    5_000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    /// Namespace and Redis Cluster hash tag of every key: `{<prefix>}:...`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How long a lead's record (attribution, assignment) is kept for dispositions.
    #[serde(default = "default_lead_retention_days")]
    pub lead_retention_days: u32,
    /// How long a closed lead (converted, rejected, recycled) stays readable.
    #[serde(default = "default_closed_lead_retention_days")]
    pub closed_lead_retention_days: u32,
}

fn default_key_prefix() -> String {
    "handoff".to_owned()
}
fn default_lead_retention_days() -> u32 {
    90
}
fn default_closed_lead_retention_days() -> u32 {
    30
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// The public listener: lead intake (API keys, forms, signed webhooks) and health.
    #[serde(default = "default_ingest_listen")]
    pub listen: SocketAddr,
    /// Larger request bodies get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a completed `Idempotency-Key` is remembered.
    #[serde(default = "default_idempotency_ttl")]
    pub idempotency_ttl_seconds: u32,
    /// How long a request may wait for the broker's acknowledgement before 503.
    #[serde(default = "default_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    /// API keys (stored as SHA-256 digests) and their scopes.
    #[serde(default)]
    pub keys: Vec<ApiKeySettings>,
    /// Web forms and their public tokens.
    #[serde(default)]
    pub forms: Vec<FormSettings>,
    /// Signed webhook intake sources.
    #[serde(default)]
    pub webhooks: Vec<WebhookSourceSettings>,
    /// Browser origins allowed to `POST /v1/leads` from JavaScript (CORS); empty: none.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// `reason_code`s a rejection may give.
    #[serde(default = "access::default_reason_codes")]
    pub reason_codes: Vec<String>,
    #[serde(default)]
    pub limits: LimitSettings,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            listen: default_ingest_listen(),
            max_body_bytes: default_max_body_bytes(),
            idempotency_ttl_seconds: default_idempotency_ttl(),
            publish_timeout_ms: default_publish_timeout_ms(),
            keys: Vec::new(),
            forms: Vec::new(),
            webhooks: Vec::new(),
            cors_allowed_origins: Vec::new(),
            reason_codes: access::default_reason_codes(),
            limits: LimitSettings::default(),
        }
    }
}

fn default_ingest_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_idempotency_ttl() -> u32 {
    86_400
}
fn default_publish_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// The internal listener of every service: `/metrics`, `/healthz`, `/readyz`,
    /// `/openapi.json`, and (where ingest runs) rep administration. Never expose it publicly.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
        }
    }
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSettings {
    /// Events of a partition waiting to be handled before its fetching pauses (as many
    /// again may wait for their acknowledgements).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How often waiting leads are offered to reps again (capacity freed, a rep back,
    /// working hours begun, rules reloaded): a queued lead waits at most this much longer
    /// than it must.
    #[serde(default = "default_queue_poll_ms")]
    pub queue_poll_ms: u64,
    /// Which waiting lead goes first: `arrival` (oldest first) or `score` (highest score
    /// first, then oldest; among the first `queue_scan` leads of a queue).
    #[serde(default)]
    pub queue_order: QueueOrder,
    /// How many leads at the head of each queue one drain pass looks at.
    #[serde(default = "default_queue_scan")]
    pub queue_scan: u32,
    /// How often reps' open-lead sets are checked against the leads' states (drift is
    /// repaired and counted in `handoff_capacity_drift_total`); 0: never.
    #[serde(default = "default_reconcile_interval")]
    pub reconcile_interval_seconds: u64,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            max_in_flight: default_max_in_flight(),
            queue_poll_ms: default_queue_poll_ms(),
            queue_order: QueueOrder::default(),
            queue_scan: default_queue_scan(),
            reconcile_interval_seconds: default_reconcile_interval(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    #[default]
    Arrival,
    Score,
}

fn default_queue_poll_ms() -> u64 {
    1000
}
fn default_queue_scan() -> u32 {
    100
}
fn default_reconcile_interval() -> u64 {
    300
}

/// A pause and resume of a partition's fetching costs a re-fetch (100–300 ms on the mock
/// cluster): the backlog left when fetching resumes (half of this) must outlast it at the
/// router's speed (~3k leads/s a partition, docs/benchmarks.md "The router alone").
fn default_max_in_flight() -> usize {
    2048
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSettings {
    /// Default first-touch window; a team may set its own in the rules file.
    #[serde(default = "default_first_touch")]
    pub first_touch_seconds: u32,
    /// How often due deadlines are claimed: the breach is emitted at most this late.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// A claimed breach not acknowledged within the lease is claimed again (same event id).
    /// Must be longer than `publish_timeout_ms`, so a claim outlives the slowest publish.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u32,
    /// How long the tracker's producer waits for the broker's acknowledgement of a breach
    /// or reminder (its `message.timeout.ms`) before the round fails and the claim lapses.
    #[serde(default = "default_sla_publish_timeout_ms")]
    pub publish_timeout_ms: u64,
    #[serde(default = "default_claim_batch")]
    pub claim_batch: u32,
    /// When a rep's capacity comes back: `first_touch` (capacity bounds leads awaiting a
    /// first call) or `close` (capacity bounds the leads a rep works at once).
    #[serde(default)]
    pub release_capacity_on: CapacityRelease,
    /// What the first-touch window counts: `wall` (every second) or `business_hours` (the
    /// assignee's working hours).
    #[serde(default)]
    pub first_touch_clock: SlaClock,
    /// Default disposition window (an outcome marketing can use); a team may set its own.
    #[serde(default = "default_disposition")]
    pub disposition_seconds: u32,
    /// When the disposition clock starts: `first_touch` or `assignment`.
    #[serde(default)]
    pub disposition_from: DispositionStart,
    /// What the disposition window counts: `wall` or `business_hours`.
    #[serde(default)]
    pub disposition_clock: SlaClock,
    /// Reminders to the rep before a deadline, as fractions of the window (each strictly
    /// between 0 and 1, ascending); empty: none.
    #[serde(default = "default_reminder_fractions")]
    pub reminder_fractions: Vec<f64>,
    /// What a missed first touch sets off; a team's `escalation` in the rules file
    /// overrides these.
    #[serde(default)]
    pub escalation: EscalationSettings,
}

impl SlaSettings {
    /// The policy the services compute deadlines with.
    pub fn policy(&self) -> SlaPolicy {
        SlaPolicy {
            first_touch_seconds: self.first_touch_seconds,
            first_touch_clock: self.first_touch_clock,
            disposition_seconds: self.disposition_seconds,
            disposition_clock: self.disposition_clock,
            disposition_from: self.disposition_from,
        }
    }

    /// The policy with its reminders: every clock an assignment starts.
    pub fn clocks(&self) -> handoff_domain::sla::SlaClocks {
        handoff_domain::sla::SlaClocks {
            policy: self.policy(),
            reminder_fractions: self.reminder_fractions.clone(),
        }
    }

    fn check(&self) -> Result<(), String> {
        // A lease that can run out while the publish is still pending lets a second poller
        // claim and publish the same deadline while the first one's publish is in flight.
        let lease_ms = u64::from(self.lease_seconds) * 1000;
        if lease_ms <= self.publish_timeout_ms {
            return Err(format!(
                "sla.lease_seconds = {} ({lease_ms} ms) must be longer than \
                 sla.publish_timeout_ms = {}; allowed: lease_seconds * 1000 > publish_timeout_ms \
                 (e.g. lease_seconds = {} with this publish timeout)",
                self.lease_seconds,
                self.publish_timeout_ms,
                self.publish_timeout_ms.div_ceil(1000) * 3,
            ));
        }
        let allowed = "numbers strictly between 0 and 1 in ascending order, e.g. [0.5, 0.8]";
        for (i, f) in self.reminder_fractions.iter().enumerate() {
            if !(*f > 0.0 && *f < 1.0) {
                return Err(format!(
                    "sla.reminder_fractions[{i}] = {f} is out of range; allowed: {allowed}"
                ));
            }
        }
        if self
            .reminder_fractions
            .windows(2)
            .any(|w| matches!(w, [a, b] if a >= b))
        {
            return Err(format!(
                "sla.reminder_fractions must be ascending without repeats; allowed: {allowed}"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSettings {
    /// Assignment attempts before escalating: 2 means one reassignment to another rep of
    /// the team, then escalation.
    #[serde(default = "default_escalation_attempts")]
    pub max_attempts: u32,
    /// The team escalated leads go to; none: the lead stays with its rep and the team's
    /// manager channel is told.
    #[serde(default)]
    pub to_team: Option<String>,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            max_attempts: default_escalation_attempts(),
            to_team: None,
        }
    }
}

fn default_escalation_attempts() -> u32 {
    2
}

impl Default for SlaSettings {
    fn default() -> Self {
        Self {
            first_touch_seconds: default_first_touch(),
            poll_interval_ms: default_poll_interval_ms(),
            lease_seconds: default_lease_seconds(),
            publish_timeout_ms: default_sla_publish_timeout_ms(),
            claim_batch: default_claim_batch(),
            release_capacity_on: CapacityRelease::default(),
            first_touch_clock: SlaClock::default(),
            disposition_seconds: default_disposition(),
            disposition_from: DispositionStart::default(),
            disposition_clock: SlaClock::default(),
            reminder_fractions: default_reminder_fractions(),
            escalation: EscalationSettings::default(),
        }
    }
}

fn default_disposition() -> u32 {
    handoff_domain::sla::DEFAULT_DISPOSITION_SECONDS
}
fn default_reminder_fractions() -> Vec<f64> {
    handoff_domain::sla::DEFAULT_REMINDER_FRACTIONS.to_vec()
}

fn default_first_touch() -> u32 {
    handoff_domain::sla::DEFAULT_FIRST_TOUCH_SECONDS
}
fn default_poll_interval_ms() -> u64 {
    200
}
fn default_lease_seconds() -> u32 {
    30
}
fn default_sla_publish_timeout_ms() -> u64 {
    10_000
}
fn default_claim_batch() -> u32 {
    500
}

/// The shortest signing secret a deployment accepts: HMAC-SHA256's block of entropy.
pub const MIN_SIGNING_SECRET_BYTES: usize = 32;

/// Secrets that were shipped in samples: public, so never a deployment's.
const SAMPLE_SIGNING_SECRETS: &[&str] = &["dev-only-secret"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierSettings {
    /// HMAC-SHA256 key of the `Handoff-Signature` header. Required outside `handoff dev`
    /// ([`Settings::check_production`]); set it through `HANDOFF_NOTIFIER_SIGNING_SECRET`.
    #[serde(default)]
    pub signing_secret: Secret,
    /// Private, loopback, link-local (and other non-public) addresses webhooks may still
    /// go to: IP addresses or CIDR blocks. Empty: only public addresses.
    #[serde(default, deserialize_with = "crate::address_block::list")]
    pub allowed_private_targets: Vec<AddressBlock>,
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Webhook attempts in flight at once, all destinations together.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts in flight to one webhook URL at most; more wait in the delayed set, so a
    /// slow receiver cannot take every slot from the others.
    #[serde(default = "default_per_destination_concurrency")]
    pub per_destination_concurrency: usize,
    /// A delivery not made within this long after the event was first seen is given up
    /// (dead-lettered), however few attempts it had (an open circuit defers without
    /// counting attempts).
    #[serde(default = "default_max_age_seconds")]
    pub max_age_seconds: u64,
    /// Consecutive failed attempts to one webhook URL that open its circuit.
    #[serde(default = "default_breaker_threshold")]
    pub breaker_threshold: u32,
    /// How long an open circuit sends nothing before one probe may try again.
    #[serde(default = "default_breaker_cooldown_ms")]
    pub breaker_cooldown_ms: u64,
    /// How long a delivered (event, webhook) pair is remembered, so a redelivered event
    /// is not sent twice. At least `max_age_seconds`.
    #[serde(default = "default_dedup_window_seconds")]
    pub dedup_window_seconds: u64,
    /// How often the delayed set is polled for due retries: a retry is at most this late.
    #[serde(default = "default_retry_poll_interval_ms")]
    pub retry_poll_interval_ms: u64,
    /// How long a claimed delivery belongs to the instance attempting it; after that (the
    /// instance died) another claims it. More than `timeout_ms`.
    #[serde(default = "default_claim_lease_ms")]
    pub claim_lease_ms: u64,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            signing_secret: Secret::default(),
            allowed_private_targets: Vec::new(),
            timeout_ms: default_webhook_timeout_ms(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            concurrency: default_concurrency(),
            per_destination_concurrency: default_per_destination_concurrency(),
            max_age_seconds: default_max_age_seconds(),
            breaker_threshold: default_breaker_threshold(),
            breaker_cooldown_ms: default_breaker_cooldown_ms(),
            dedup_window_seconds: default_dedup_window_seconds(),
            retry_poll_interval_ms: default_retry_poll_interval_ms(),
            claim_lease_ms: default_claim_lease_ms(),
        }
    }
}

impl NotifierSettings {
    /// Relations between keys; each message names both keys and their values.
    fn check_relations(&self) -> Result<(), String> {
        if self.claim_lease_ms <= self.timeout_ms {
            return Err(format!(
                "notifier.claim_lease_ms ({}) must be more than notifier.timeout_ms ({}): an attempt must end within its claim, or another instance attempts the same delivery",
                self.claim_lease_ms, self.timeout_ms
            ));
        }
        if self.dedup_window_seconds < self.max_age_seconds {
            return Err(format!(
                "notifier.dedup_window_seconds ({}) must be at least notifier.max_age_seconds ({}): an event redelivered while its delivery may still be retried would be sent again",
                self.dedup_window_seconds, self.max_age_seconds
            ));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(format!(
                "notifier.max_backoff_ms ({}) must be at least notifier.initial_backoff_ms ({})",
                self.max_backoff_ms, self.initial_backoff_ms
            ));
        }
        if self.per_destination_concurrency > self.concurrency {
            return Err(format!(
                "notifier.per_destination_concurrency ({}) must be at most notifier.concurrency ({})",
                self.per_destination_concurrency, self.concurrency
            ));
        }
        Ok(())
    }

    /// `Err` says what is wrong with the signing secret for a deployment, naming the key
    /// and its variable; never the secret.
    pub fn check_signing_secret(&self) -> Result<(), String> {
        let secret = self.signing_secret.expose();
        let how = format!(
            "set HANDOFF_NOTIFIER_SIGNING_SECRET to a random value of at least {MIN_SIGNING_SECRET_BYTES} bytes, e.g. `openssl rand -hex 32`"
        );
        if secret.trim().is_empty() {
            Err(format!("notifier.signing_secret is not set: {how}"))
        } else if SAMPLE_SIGNING_SECRETS.contains(&secret) {
            Err(format!(
                "notifier.signing_secret is a published sample value: {how}"
            ))
        } else if secret.len() < MIN_SIGNING_SECRET_BYTES {
            Err(format!(
                "notifier.signing_secret is {} bytes, too short to sign webhooks: {how}",
                secret.len()
            ))
        } else {
            Ok(())
        }
    }
}

fn default_webhook_timeout_ms() -> u64 {
    5_000
}
fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    60_000
}
fn default_concurrency() -> usize {
    64
}
fn default_per_destination_concurrency() -> usize {
    8
}
fn default_max_age_seconds() -> u64 {
    3_600
}
fn default_breaker_threshold() -> u32 {
    5
}
fn default_breaker_cooldown_ms() -> u64 {
    30_000
}
fn default_dedup_window_seconds() -> u64 {
    2 * 86_400
}
fn default_retry_poll_interval_ms() -> u64 {
    200
}
fn default_claim_lease_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,handoff_router=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long in-flight work may take to finish after SIGTERM before it is abandoned
    /// (uncommitted, so it is redelivered).
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            drain_seconds: default_drain_seconds(),
        }
    }
}

fn default_drain_seconds() -> u64 {
    20
}
