use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// handoff: instant, fair, measured lead routing.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The configuration file. Every key, nested ones too, can be overridden by
    /// HANDOFF_<SECTION>_<KEY> (HANDOFF_SLA_ESCALATION_MAX_ATTEMPTS) or read from a file
    /// (HANDOFF_<SECTION>_<KEY>_FILE, HANDOFF_SECRETS_DIR): README.md, "Configuration".
    #[arg(
        long,
        short,
        env = "HANDOFF_CONFIG",
        default_value = "deploy/config/handoff.toml",
        global = true
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The HTTP API: lead submissions and dispositions.
    Ingest,
    /// Scores and routes lead.created into lead.assigned.
    Router,
    /// Tracks first-touch deadlines and publishes sla.breached.
    Sla,
    /// Delivers assignments and breaches to webhooks.
    Notifier,
    /// Every service in one process (small installs).
    All,
    /// Every service on an embedded Kafka, with demo traffic: a first look.
    Dev(DevArgs),
    /// Replays leads (and touches and roster edits, over time) through a rules file with
    /// in-memory state and explains every decision.
    Simulate {
        /// The rules file to try.
        #[arg(long)]
        rules: PathBuf,
        /// JSON lines: a lead (as POSTed to /v1/leads, with an optional `received_at`), a
        /// touch (`{"touch": "LEAD ID", "outcome": "contacted", "at": TIME}`) or a roster edit
        /// (`{"roster": {"rep": "ana", "active": false}, "at": TIME}`). See the README.
        #[arg(long)]
        leads: PathBuf,
        /// The moment to simulate (RFC 3339), for working hours and out-of-office; default now.
        /// Lines with their own time (`received_at`, `at`) happen then; the others at the
        /// time of the line before them, the first ones at this moment.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// Keeps the clock running after the last line until this moment (RFC 3339), so
        /// waiting leads can reach reps whose working hours begin later.
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Prints what happened in time order (arrivals, touches, roster edits, leads
        /// leaving their queue) and per-rep and per-queue figures, instead of lead by lead.
        #[arg(long)]
        timeline: bool,
        /// Leaves out lines that cannot be replayed (each reported at the end with its line,
        /// field and reason) instead of stopping at the first.
        #[arg(long)]
        skip_bad_lines: bool,
    },
    /// Make API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with rules files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Check a configuration file offline.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Inspect and repair the state kept in Redis.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Inspect and re-send dead letters (the `<prefix>deadletter` topic). See docs/runbooks.md.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// The sales–marketing agreement's scorecard (the rules file's `[agreement]` against the
    /// funnel's counts in Redis): each commitment's target, actual, pace and projection, for
    /// a period and the one before. See README.md, "The agreement's scorecard".
    Scorecard {
        /// A month (2026-12) or a quarter (2026-Q4); default the current month (UTC).
        #[arg(long)]
        period: Option<String>,
        /// text (for an e-mail or chat post), html, or json (as GET /v1/scorecard).
        #[arg(long, value_enum, default_value_t = handoff::scorecard::Format::Text)]
        format: handoff::scorecard::Format,
    },
    /// Erases one person's data from Redis (docs/personal-data.md): their leads, found by
    /// the contact's email address or named by id, and everything naming them. Prints
    /// counts, never the data.
    Erase {
        /// The contact's email address; repeat for several.
        #[arg(long = "email", value_name = "ADDRESS")]
        emails: Vec<String>,
        /// A lead id; repeat for several.
        #[arg(long = "lead", value_name = "LEAD_ID")]
        leads: Vec<String>,
        /// Count what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// One line per dead letter: PARTITION:OFFSET, time, origin topic[partition]@offset,
    /// reason, service, event id, lead id, error (no payload, no personal data).
    List(DlqSelection),
    /// One dead letter's headers and payload (personal data masked unless --reveal).
    Show {
        /// PARTITION:OFFSET, as `list` prints it.
        position: handoff::dlq::Position,
        /// Print the payload as stored, personal data included.
        #[arg(long)]
        reveal: bool,
    },
    /// Re-sends the selected dead letters to their origin topic with their original key,
    /// headers and event id (consumers de-duplicate), marked `handoff_replayed_from`.
    Replay {
        #[command(flatten)]
        selection: DlqSelection,
        /// Replay every dead letter (required when nothing else selects).
        #[arg(long)]
        all: bool,
        /// Print what would be replayed; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which dead letters; every option given must hold.
#[derive(Debug, Clone, Args)]
pub struct DlqSelection {
    /// Only these dead letters (PARTITION:OFFSET, as `list` prints them).
    pub positions: Vec<handoff::dlq::Position>,
    /// The reason (undecodable, contract_invalid, unexpected_type, delivery_failed,
    /// handler_panic, processing_failed).
    #[arg(long)]
    pub reason: Option<String>,
    /// The origin topic, with or without the deployment's prefix (lead.created).
    #[arg(long)]
    pub topic: Option<String>,
    /// Dead-lettered at or after: RFC 3339, or a time ago (30m, 2h, 7d).
    #[arg(long)]
    pub since: Option<handoff::dlq::Moment>,
    /// Dead-lettered before: RFC 3339, or a time ago.
    #[arg(long)]
    pub until: Option<handoff::dlq::Moment>,
}

impl DlqSelection {
    pub fn resolve(&self) -> handoff::dlq::Selection {
        let now = chrono::Utc::now();
        handoff::dlq::Selection {
            reason: self.reason.clone(),
            origin_topic: self.topic.clone(),
            since: self.since.map(|m| m.resolve(now)),
            until: self.until.map(|m| m.resolve(now)),
            positions: self.positions.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Checks reps' open-lead counts and the queues against the leads' states, repairs
    /// what drifted, and prints what it repaired (the router does this periodically too).
    Reconcile,
    /// Rebuilds the whole state (assignments and their deadlines, capacity, rotations,
    /// queues, sticky owners, idempotency marks) from the event log, fires the deadlines
    /// that passed meanwhile (marked late), and writes a new generation marker: waiting
    /// services resume by themselves. See docs/operations.md.
    Rebuild,
    /// Writes the generation marker if there is none, declaring the current state
    /// consistent with the log (for a deployment that predates markers).
    Init,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validates the configuration file (--config) and its rules file without connecting to
    /// anything, with the environment's overrides and secret files applied as the services
    /// apply them, and prints the effective configuration (defaults included) with every
    /// secret redacted.
    Check {
        /// The rules file to check instead of the one the configuration names.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Also the start-up checks of this service (all: every service), e.g. the
        /// notifier's signing secret.
        #[arg(long, value_enum)]
        service: Option<ServiceName>,
    },
}

/// A service, for `config check --service`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ServiceName {
    Ingest,
    Router,
    Sla,
    Notifier,
    All,
}

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Demo leads posted per second (0: no demo traffic).
    #[arg(long, default_value_t = 2.0)]
    pub leads_per_second: f64,
    /// First-touch window in dev mode, so breaches show up within a minute.
    #[arg(long, default_value_t = 30)]
    pub first_touch_seconds: u32,
    /// Where the dev webhook sink listens (the sample rules point their webhooks here).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub webhook_sink: std::net::SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validates rules files and prints a summary.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Prints a new random key and the `[[ingest.keys]]` entry (with its SHA-256) to paste
    /// into the configuration. The key itself is shown once and stored nowhere.
    New {
        /// The source or system the key belongs to (the actor of what it does).
        #[arg(long)]
        name: String,
        /// A scope it grants; repeat for several.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<handoff_config::Scope>,
        /// May set a lead's id and received_at (imports, CRM syncs).
        #[arg(long)]
        trusted: bool,
        /// A rep's own key: dispositions only for that rep's leads.
        #[arg(long)]
        rep: Option<String>,
    },
}

fn parse_scope(value: &str) -> Result<handoff_config::Scope, String> {
    value.parse()
}
