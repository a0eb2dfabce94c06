//! The effective configuration (the file, its defaults and the environment's overrides) as
//! TOML with every secret redacted: what `handoff config check` prints.

use crate::schema::{self, Shape};
use crate::secret::REDACTED;
use crate::Settings;

/// Parts of a free key's name (`[kafka.client]`) that mark its value as a secret:
/// `sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`, `ssl.key.pem`,
/// `sasl.oauthbearer.config` (may carry a client secret), JAAS configurations.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "secret",
    "token",
    "credential",
    "key.pem",
    "oauthbearer.config",
    "jaas",
];

/// Whether a free key's value is to be kept out of print.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// `settings` as TOML: [`crate::Secret`] keys, free keys that look secret and passwords in
/// URLs (`redis.url`) show as redacted.
pub fn effective_toml(settings: &Settings) -> Result<String, String> {
    let mut value = toml::Value::try_from(settings).map_err(|e| e.to_string())?;
    redact(&mut value, Some(schema::settings()));
    toml::to_string_pretty(&value).map_err(|e| e.to_string())
}

fn redact(value: &mut toml::Value, shape: Option<&Shape>) {
    match value {
        toml::Value::Table(table) => {
            for (key, inner) in table.iter_mut() {
                if matches!(shape, Some(Shape::Map)) && looks_secret(key) {
                    *inner = toml::Value::String(REDACTED.to_owned());
                    continue;
                }
                redact(inner, shape.and_then(|s| s.field(key)));
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                redact(item, None);
            }
        }
        toml::Value::String(text) if text.contains("://") => {
            *text = crate::redis_url::redact(text);
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests
mod tests {
    use std::path::Path;

    #[test]
    fn secrets_never_print_and_everything_else_does() {
        let text = r#"
rules_file = "rules.toml"
[kafka]
bootstrap_servers = "b:9092"
[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.username" = "svc"
"sasl.password" = "kafka-pw-1"
"ssl.key.password" = "key-pw-2"
"sasl.oauthbearer.client.secret" = "oidc-3"
[redis]
url = "rediss://default:redis-pw-4@cache:6380/0"
[notifier]
signing_secret = "signing-5-0123456789abcdef0123456789"
"#;
        let settings = crate::parse_settings(Path::new("h.toml"), text, Vec::new()).unwrap();
        let printed = super::effective_toml(&settings).unwrap();
        for secret in [
            "kafka-pw-1",
            "key-pw-2",
            "oidc-3",
            "redis-pw-4",
            "signing-5",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        for shown in [
            "SASL_SSL",
            "\"sasl.username\" = \"svc\"",
            "rediss://default:***@cache:6380/0",
            "max_in_flight = 2048",
            "[sla.escalation]",
        ] {
            assert!(printed.contains(shown), "{shown} not in {printed}");
        }
    }
}
