//! `handoff config check`: the configuration as a service would load it (file, defaults,
//! environment overrides, secret files, rules), checked without connecting to anything,
//! and printed with its secrets redacted.

use std::path::Path;

use anyhow::Context;
use handoff_config::{ConfigError, Settings};

/// `service_checks` adds the start-up checks of the services asked for.
pub fn run(
    config: &Path,
    rules: Option<&Path>,
    service_checks: impl FnOnce(&Settings) -> Result<(), ConfigError>,
) -> anyhow::Result<()> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let (settings, rules_path, rules) = match rules {
        None => {
            let loaded = handoff_config::load(config, vars)?;
            (loaded.settings, loaded.rules_path, loaded.rules)
        }
        Some(rules_path) => {
            let text = std::fs::read_to_string(config).map_err(|source| ConfigError::Read {
                path: config.to_owned(),
                source,
            })?;
            let settings = handoff_config::parse_settings(config, &text, vars)?;
            let rules = handoff_config::load_rules(rules_path)?;
            (settings, rules_path.to_owned(), rules)
        }
    };
    service_checks(&settings)?;
    let effective = handoff_config::effective_toml(&settings)
        .map_err(|e| anyhow::anyhow!(e))
        .context("cannot print the effective configuration")?;
    println!(
        "# {}: ok; rules {}: ok (version {}, {} teams, {} reps)",
        config.display(),
        rules_path.display(),
        rules.version,
        rules.routing.team_ids().count(),
        rules.routing.rep_ids().count(),
    );
    println!("# The effective configuration (defaults and environment applied; secrets redacted):");
    print!("{effective}");
    Ok(())
}
