//! The `handoff` binary: parses the command line, loads the configuration, and hands over
//! to the services. Everything else lives in the library crates.

mod cli;
mod rules_check;

use anyhow::Context;
use clap::Parser;

use cli::{Cli, Command, KeysCommand, RulesCommand, StateCommand};
use handoff::services::{self, Service, ServiceSet};
use handoff::{dev, shutdown};

#[tokio::main]
async fn main() {
    // A panic's message may quote the input that caused it (a lead's fields): log where it
    // happened, never the message. The consume loop dead-letters the event with the message.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        tracing::error!(%location, "a task panicked (message withheld from the log: it may quote input)");
        eprintln!("panic at {location} (message withheld: it may quote input)");
    }));
    // Errors reach people: print the cause chain, not a backtrace, and exit non-zero.
    let outcome = run(Cli::parse()).await;
    // The last spans, when traces are exported (a no-op otherwise).
    handoff_telemetry::traces::shutdown_traces();
    if let Err(error) = outcome {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let set = match &cli.command {
        Command::Rules {
            command: RulesCommand::Check { files },
        } => return rules_check::run(files),
        Command::Keys {
            command:
                KeysCommand::New {
                    name,
                    scopes,
                    trusted,
                    rep,
                },
        } => {
            let (key, entry) = handoff::keys::new_key(
                name,
                scopes.iter().copied().collect(),
                *trusted,
                rep.clone(),
            );
            println!("key (shown once; give it to {name}): {key}\n");
            println!("# add to the configuration file:");
            print!("{}", handoff::keys::config_entry(&entry));
            return Ok(());
        }
        Command::Simulate {
            rules,
            leads,
            at,
            until,
            timeline,
            skip_bad_lines,
        } => {
            let (report, _) = handoff::simulate::replay(&handoff::simulate::Options {
                rules,
                leads,
                at: at.unwrap_or_else(chrono::Utc::now),
                until: *until,
                timeline: *timeline,
                skip_bad_lines: *skip_bad_lines,
            })?;
            print!("{report}");
            return Ok(());
        }
        Command::State {
            command: StateCommand::Reconcile,
        } => {
            let loaded = load(&cli)?;
            let report = handoff::state::reconcile(&loaded).await?;
            print!("{}", handoff::state::describe(&report));
            return Ok(());
        }
        Command::State {
            command: StateCommand::Rebuild,
        } => {
            let loaded = load(&cli)?;
            let report = handoff::state::rebuild_now(&loaded).await?;
            print!("{}", handoff::state::describe_rebuild(&report));
            return Ok(());
        }
        Command::State {
            command: StateCommand::Init,
        } => {
            let loaded = load(&cli)?;
            if handoff::state::init(&loaded).await? {
                println!("generation marker written: the current state is generation 1");
            } else {
                println!("a generation marker exists already: nothing to do");
            }
            return Ok(());
        }
        Command::Ingest => ServiceSet::only(Service::Ingest),
        Command::Router => ServiceSet::only(Service::Router),
        Command::Sla => ServiceSet::only(Service::Sla),
        Command::Notifier => ServiceSet::only(Service::Notifier),
        Command::All => ServiceSet::all(),
        Command::Dev(args) => {
            let loaded = load(&cli)?;
            return dev::run(
                loaded,
                dev::DevOptions {
                    leads_per_second: args.leads_per_second,
                    first_touch_seconds: args.first_touch_seconds,
                    webhook_sink: args.webhook_sink,
                },
            )
            .await;
        }
    };
    let loaded = load(&cli)?;
    if set.has(Service::Notifier) {
        loaded.settings.check_production(&cli.config)?;
    } else if set.has(Service::Ingest) {
        // Ingest verifies the links the notifier signs: the same key is required.
        loaded.settings.actions.check_secret().map_err(|message| {
            handoff_config::ConfigError::Invalid {
                path: cli.config.clone(),
                message,
            }
        })?;
    }
    let shutdown = shutdown::on_signal();
    let running = services::start(set, loaded, shutdown).await?;
    running.wait().await
}

fn load(cli: &Cli) -> anyhow::Result<handoff_config::LoadedConfig> {
    let loaded = handoff_config::load(&cli.config, std::env::vars())
        .with_context(|| format!("cannot start with configuration {}", cli.config.display()))?;
    let log = &loaded.settings.log;
    let export = trace_export(&cli.command, &loaded.settings.tracing);
    handoff_telemetry::init_telemetry(
        log.format == handoff_config::LogFormat::Json,
        &log.level,
        export.as_ref(),
    )?;
    Ok(loaded)
}

/// Where spans go, if anywhere (`[tracing]`, docs/tracing.md); named for the command's
/// service unless the configuration names it.
fn trace_export(
    command: &Command,
    settings: &handoff_config::TracingSettings,
) -> Option<handoff_telemetry::traces::TraceExport> {
    let service = match command {
        Command::Ingest => "handoff-ingest",
        Command::Router => "handoff-router",
        Command::Sla => "handoff-sla",
        Command::Notifier => "handoff-notifier",
        Command::State { .. } => "handoff-state",
        _ => "handoff",
    };
    Some(handoff_telemetry::traces::TraceExport {
        endpoint: settings.otlp_endpoint.clone()?,
        service_name: settings
            .service_name
            .clone()
            .unwrap_or_else(|| service.to_owned()),
        sample_ratio: settings.sample_ratio,
    })
}
