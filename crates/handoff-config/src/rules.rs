//! The rules file: `[scoring]` (the MQL points model), `[routing]` (teams, reps, rules) and
//! `[agreement]` (the sales–marketing agreement's targets, optional).

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use handoff_domain::agreement::{Agreement, AgreementConfig};
use handoff_domain::routing::{RoutingConfig, RoutingModel};
use handoff_domain::scoring::{ScoringConfig, ScoringModel};

use crate::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    scoring: ScoringConfig,
    routing: RoutingConfig,
    #[serde(default)]
    agreement: AgreementConfig,
}

/// A loaded, checked rule set; `version` (a content hash) is stamped on every decision.
#[derive(Debug, Clone)]
pub struct Rules {
    pub version: String,
    pub scoring: ScoringModel,
    pub routing: RoutingModel,
    pub agreement: Agreement,
}

pub fn load_rules(path: &Path) -> Result<Rules, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_rules(path, &text)
}

pub fn parse_rules(path: &Path, text: &str) -> Result<Rules, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    };
    let file: RulesFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let version = hex::encode(&Sha256::digest(text.as_bytes())[..6]);
    let free_mail = file.scoring.free_mail_domains.clone();
    let routing = RoutingModel::new(file.routing, version.clone())
        .map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| format!("routing.{e}")).collect();
            invalid(lines.join("; "))
        })?
        .with_free_mail_domains(free_mail);
    let agreement = Agreement::new(file.agreement, routing.team_ids()).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("agreement.{e}")).collect();
        invalid(lines.join("; "))
    })?;
    Ok(Rules {
        agreement,
        scoring: ScoringModel::new(file.scoring, version.clone()),
        routing,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
[scoring]
mql_threshold = 10

[routing]
teams = [{ id = "emea", members = ["ana"] }]
reps = [{ id = "ana", capacity = 5 }]
rules = [{ name = "all", team = "emea" }]
"#;

    #[test]
    fn a_valid_file_loads_with_a_version() {
        let rules = parse_rules(Path::new("rules.toml"), VALID).map_err(|e| e.to_string());
        assert_eq!(rules.map(|r| r.version.len()), Ok(12));
    }

    #[test]
    fn the_agreement_is_checked_with_the_rules_and_versioned_with_them() {
        let with = format!(
            "{VALID}\n[agreement]\nfeedback_window_hours = 24\n[[agreement.targets]]\ncommitment = \"mqls\"\nteam = \"emea\"\ntarget = 300\n"
        );
        let rules = parse_rules(Path::new("rules.toml"), &with).map_err(|e| e.to_string());
        let Ok(rules) = rules else {
            panic!("{rules:?}");
        };
        assert_eq!(rules.agreement.feedback_window_hours, 24);
        assert_eq!(rules.agreement.targets.len(), 1);
        let without = parse_rules(Path::new("rules.toml"), VALID).map(|r| r.version);
        assert_ne!(
            without.ok(),
            Some(rules.version),
            "a new target is a new rules version"
        );
        let bad = with.replace("team = \"emea\"\ntarget", "team = \"apac\"\ntarget");
        let err = parse_rules(Path::new("rules.toml"), &bad)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid configuration in rules.toml: agreement.targets[0].team: unknown team `apac`, expected one of emea")
        );
    }

    #[test]
    fn an_unknown_rep_is_named_with_the_allowed_ones() {
        let text = VALID.replace(r#"members = ["ana"]"#, r#"members = ["bob"]"#);
        let err = parse_rules(Path::new("rules.toml"), &text)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid configuration in rules.toml: routing.teams[emea].members: unknown rep `bob`, expected one of ana")
        );
    }

    #[test]
    fn an_unknown_key_names_the_line_and_the_allowed_keys() {
        let text = VALID.replace("mql_threshold = 10", "mql_threshold = 10\nthreshold = 3");
        let err = parse_rules(Path::new("rules.toml"), &text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("rules.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("unknown field `threshold`"), "{err}");
        assert!(err.contains("mql_threshold"), "{err}");
    }

    #[test]
    fn channels_are_urls_or_tables_and_the_reps_own_carries_contact_details() {
        use handoff_domain::routing::{ChannelFormat, ChannelKind};
        let text = VALID
            .replace(
                r#"teams = [{ id = "emea", members = ["ana"] }]"#,
                r#"teams = [{ id = "emea", members = ["ana"], webhook_url = "https://t.example/team", manager_webhook_url = { url = "https://hooks.slack.com/m", format = "slack", contact_details = true } }]"#,
            )
            .replace(
                r#"reps = [{ id = "ana", capacity = 5 }]"#,
                r#"reps = [{ id = "ana", capacity = 5, webhook_url = { url = "https://hooks.slack.com/ana", format = "slack" } }, { id = "bob", capacity = 5 }]"#,
            );
        let rules = parse_rules(Path::new("rules.toml"), &text).map_err(|e| e.to_string());
        let Ok(rules) = rules else {
            panic!("{rules:?}");
        };
        let routing = &rules.routing;
        let ana = routing.rep_channel("emea", "ana");
        assert_eq!(
            ana.as_ref().map(|c| (c.kind, c.format, c.contact_details)),
            Some((ChannelKind::Rep, ChannelFormat::Slack, true))
        );
        // A rep without a channel is told through the team's, which gets no contact.
        let bob = routing.rep_channel("emea", "bob");
        assert_eq!(
            bob.as_ref()
                .map(|c| (c.kind, c.url.as_str(), c.contact_details)),
            Some((ChannelKind::Team, "https://t.example/team", false))
        );
        let manager = routing.manager_channel("emea");
        assert_eq!(
            manager
                .as_ref()
                .map(|c| (c.kind, c.format, c.contact_details)),
            Some((ChannelKind::Manager, ChannelFormat::Slack, true))
        );
        let bad = text.replace(
            r#"format = "slack", contact"#,
            r#"format = "teams", contact"#,
        );
        let err = parse_rules(Path::new("rules.toml"), &bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("unknown variant `teams`, expected `json` or `slack`"),
            "{err}"
        );
    }
}
