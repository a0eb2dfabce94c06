//! Configuration: one TOML file (sample: deploy/config/handoff.toml) whose every key can be
//! overridden by an environment variable or read from a secret file (crate::env has the
//! naming rule), plus the rules file it points to (scoring model,
//! teams, reps, routing rules). Everything is checked at start-up; an error names the file,
//! the key and what is allowed.

mod access;
mod address_block;
mod effective;
mod env;
mod funnel;
mod handle;
mod kafka_security;
mod redis_url;
mod rules;
mod schema;
mod secret;
mod settings;
mod state;
mod trace_export;

use std::path::{Path, PathBuf};

pub use access::{
    key_digest, ApiKeySettings, FormSettings, LimitSettings, Scope, WebhookSourceSettings,
};
pub use address_block::AddressBlock;
pub use effective::{effective_toml, looks_secret};
pub use env::{variable_of, SECRETS_DIR_VAR};
pub use funnel::{is_label_value, FunnelSettings, MAX_LABEL_VALUES};
pub use handle::{RulesHandle, RulesPublisher};
pub use kafka_security::{ClientProperty, KafkaSecurity, SaslMechanism, SecurityProtocol};
pub use redis_url::{RedisTopology, SentinelTarget};
pub use rules::{load_rules, parse_rules, Rules};
pub use secret::{Secret, REDACTED};
pub use settings::*;
pub use state::{Profile, StateSettings};
pub use trace_export::{TracingSettings, OTEL_ENDPOINT_VAR, OTEL_SERVICE_NAME_VAR};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("invalid environment override {var}: {message}")]
    Env { var: String, message: String },
}

/// A service's whole configuration, with its rules loaded.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub settings: Settings,
    pub rules: Rules,
    /// The rules file, for reloads.
    pub rules_path: PathBuf,
}

/// Reads `path`, applies `HANDOFF_*` overrides from `vars`, and loads the rules file
/// (a relative `rules_file` is relative to the config file's folder).
pub fn load(
    path: &Path,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let settings = parse_settings(path, &text, vars)?;
    let rules_path = match path.parent() {
        Some(dir) if settings.rules_file.is_relative() => dir.join(&settings.rules_file),
        _ => settings.rules_file.clone(),
    };
    let rules = load_rules(&rules_path)?;
    Ok(LoadedConfig {
        settings,
        rules,
        rules_path,
    })
}

/// Parses settings text (`path` is only for messages) with env overrides applied.
pub fn parse_settings(
    path: &Path,
    text: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let config_dir = path.parent().unwrap_or(Path::new(""));
    let applied = env::apply_overrides(&mut table, &vars, config_dir)?;
    let mut settings: Settings =
        Settings::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: if applied.is_empty() {
                e.to_string()
            } else {
                format!("{e} (after environment overrides {})", applied.join(", "))
            },
        })?;
    settings.tracing.apply_otel_env(&vars)?;
    settings.check().map_err(|message| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    })?;
    // The links' key, from the variable the file names (never the file itself).
    if let Some((_, value)) = vars
        .iter()
        .find(|(name, _)| *name == settings.actions.secret_env)
    {
        settings.actions.secret = Secret::new(value.trim());
    }
    access::resolve_intake_secrets(&mut settings.ingest.webhooks, &vars).map_err(|message| {
        ConfigError::Invalid {
            path: path.to_owned(),
            message,
        }
    })?;
    Ok(settings)
}

use serde::Deserialize as _;
