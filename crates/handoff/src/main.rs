//! The `handoff` binary: parses the command line, loads the configuration, and hands over
//! to the services. Everything else lives in the library crates.

mod cli;
mod config_check;
mod rules_check;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use cli::{Cli, Command, ConfigCommand, DlqCommand, KeysCommand, RulesCommand, StateCommand};
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
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // A --config typed on the command line, as opposed to the default or HANDOFF_CONFIG:
    // commands that read no configuration refuse it rather than ignore it.
    let config_given = matches.value_source("config") == Some(ValueSource::CommandLine);
    let outcome = match refuse_config(&cli.command, config_given) {
        Ok(()) => run(cli).await,
        Err(e) => Err(e),
    };
    // The last spans, when traces are exported (a no-op otherwise).
    handoff_telemetry::traces::shutdown_traces();
    if let Err(error) = outcome {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// `Err` for a command that reads no configuration file when one is named.
fn refuse_config(command: &Command, config_given: bool) -> anyhow::Result<()> {
    let (name, reads) = match command {
        Command::Rules { .. } => ("rules check", "the rules files it is given"),
        Command::Simulate { .. } => (
            "simulate",
            "the rules file of --rules and the leads of --leads",
        ),
        Command::Keys { .. } => ("keys new", "nothing"),
        _ => return Ok(()),
    };
    if config_given {
        anyhow::bail!(
            "`handoff {name}` reads no configuration file (only {reads}), so --config would be ignored: leave it out, or check a configuration with `handoff config check --config FILE`"
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let set = match &cli.command {
        Command::Config {
            command: ConfigCommand::Check { rules, service },
        } => {
            let set = service.map(|service| match service {
                cli::ServiceName::Ingest => ServiceSet::only(Service::Ingest),
                cli::ServiceName::Router => ServiceSet::only(Service::Router),
                cli::ServiceName::Sla => ServiceSet::only(Service::Sla),
                cli::ServiceName::Notifier => ServiceSet::only(Service::Notifier),
                cli::ServiceName::All => ServiceSet::all(),
            });
            return config_check::run(&cli.config, rules.as_deref(), |settings| match &set {
                Some(set) => start_checks(set, settings, &cli.config),
                None => Ok(()),
            });
        }
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
        Command::Dlq { command } => {
            let loaded = load(&cli)?;
            return dlq(&loaded.settings.kafka, command).await;
        }
        Command::Erase {
            emails,
            leads,
            dry_run,
        } => {
            let loaded = load(&cli)?;
            let request = handoff::erase::EraseRequest {
                emails: emails.clone(),
                leads: leads.clone(),
                dry_run: *dry_run,
            };
            print!("{}", handoff::erase::run(&loaded, &request).await?);
            return Ok(());
        }
        Command::Scorecard { period, format } => {
            let loaded = load(&cli)?;
            print!(
                "{}",
                handoff::scorecard::run(&loaded, period.as_deref(), *format).await?
            );
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
    start_checks(&set, &loaded.settings, &cli.config)?;
    let shutdown = shutdown::on_signal();
    let running = services::start(set, loaded, shutdown).await?;
    running.wait().await
}

/// What the services of `set` need beyond a valid file: the secrets they sign with.
fn start_checks(
    set: &ServiceSet,
    settings: &handoff_config::Settings,
    path: &std::path::Path,
) -> Result<(), handoff_config::ConfigError> {
    if set.has(Service::Notifier) {
        settings.check_production(path)?;
    } else if set.has(Service::Ingest) {
        // Ingest verifies the links the notifier signs: the same key is required.
        settings.actions.check_secret().map_err(|message| {
            handoff_config::ConfigError::Invalid {
                path: path.to_owned(),
                message,
            }
        })?;
    }
    Ok(())
}

async fn dlq(kafka: &handoff_config::KafkaSettings, command: &DlqCommand) -> anyhow::Result<()> {
    use handoff::dlq;
    let prefix = &kafka.topic_prefix;
    let records = dlq::read(kafka).await?;
    match command {
        DlqCommand::List(selection) => {
            let selection = selection.resolve();
            let selected: Vec<_> = records
                .iter()
                .filter(|r| selection.matches(prefix, r))
                .collect();
            for record in &selected {
                println!("{}", dlq::list_line(record));
            }
            println!("{} of {} dead letters", selected.len(), records.len());
        }
        DlqCommand::Show { position, reveal } => {
            let record = records
                .iter()
                .find(|r| r.partition == position.partition && r.offset == position.offset)
                .with_context(|| format!("no dead letter at {position}"))?;
            print!("{}", dlq::show(record, *reveal));
        }
        DlqCommand::Replay {
            selection,
            all,
            dry_run,
        } => {
            let selection = selection.resolve();
            anyhow::ensure!(
                *all || !selection.is_empty(),
                "select what to replay (PARTITION:OFFSET, --reason, --topic, --since, --until) or say --all"
            );
            let selected: Vec<_> = records
                .into_iter()
                .filter(|r| selection.matches(prefix, r))
                .collect();
            print!("{}", dlq::replay(kafka, &selected, *dry_run).await?);
        }
    }
    Ok(())
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
        Command::Dlq { .. } => "handoff-dlq",
        Command::Erase { .. } => "handoff-erase",
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
