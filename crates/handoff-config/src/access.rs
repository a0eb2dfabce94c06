//! Who may call the HTTP API and how hard: API keys with scopes, public form tokens,
//! signed webhook intake sources, CORS origins and request limits (`[ingest]`).
//!
//! Keys are configured as SHA-256 digests, never in clear: the file can live in a
//! ConfigMap or a repository. Webhook intake secrets are secrets, so the file names the
//! environment variable that holds each one, and [`resolve_intake_secrets`] reads it at
//! start-up.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Secret;

/// What a key may do. A closed set: unknown scopes in the file are start-up errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Scope {
    /// Submit leads (`POST /v1/leads`).
    #[serde(rename = "leads:write")]
    LeadsWrite,
    /// Read lead state.
    #[serde(rename = "leads:read")]
    LeadsRead,
    /// Report outcomes (`POST /v1/leads/{id}/dispositions`).
    #[serde(rename = "dispositions:write")]
    DispositionsWrite,
    /// Read reps' runtime state.
    #[serde(rename = "reps:read")]
    RepsRead,
    /// Change reps' runtime state (active, available, capacity).
    #[serde(rename = "reps:write")]
    RepsWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::LeadsWrite,
        Scope::LeadsRead,
        Scope::DispositionsWrite,
        Scope::RepsRead,
        Scope::RepsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::LeadsWrite => "leads:write",
            Scope::LeadsRead => "leads:read",
            Scope::DispositionsWrite => "dispositions:write",
            Scope::RepsRead => "reps:read",
            Scope::RepsWrite => "reps:write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let allowed: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown scope {s:?}, expected one of {}",
                    allowed.join(", ")
                )
            })
    }
}

/// One API key (`[[ingest.keys]]`). Two entries with the same `name` are how a key is
/// rotated: both are valid until the old one is removed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// The source or system the key belongs to; it becomes the actor of what it does.
    pub name: String,
    /// Hex SHA-256 of the key (`handoff keys new` prints both).
    pub sha256: String,
    pub scopes: BTreeSet<Scope>,
    /// May set a lead's `id` and `received_at` (imports, CRM syncs); others get them assigned.
    #[serde(default)]
    pub trusted: bool,
    /// A rep's own key: dispositions only for leads assigned to this rep.
    #[serde(default)]
    pub rep: Option<String>,
}

/// A web form (`[[ingest.forms]]`): its token is public (it sits in the page), so it
/// grants only lead submission, and names the source of what it submits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FormSettings {
    /// Sent as the `form_token` field (or query parameter).
    pub token: String,
    /// `source.name` of the leads this form submits.
    pub source: String,
    /// Where a browser's plain form POST is sent after acceptance (303); none: JSON answer.
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// A signed webhook intake source (`[[ingest.webhooks]]`, `POST /v1/webhooks/{source}`),
/// verified per the Standard Webhooks scheme.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSourceSettings {
    /// The path segment and `source.name` of its leads.
    pub source: String,
    /// The environment variable holding the signing secret (`whsec_<base64>`).
    pub secret_env: String,
    /// Read from `secret_env` at start-up.
    #[serde(skip)]
    pub secret: Secret,
}

/// Request limits of the HTTP listeners (`[ingest.limits]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Sustained requests per minute per API key (or form token / webhook source).
    #[serde(default = "default_per_key")]
    pub per_key_per_minute: u32,
    /// Sustained requests per minute per client address.
    #[serde(default = "default_per_address")]
    pub per_address_per_minute: u32,
    /// Requests above the sustained rate that may arrive at once.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Requests served at once; more are refused with 503 rather than queued.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
    /// A client must send its request headers within this.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A whole request (body included) must be answered within this (408 otherwise).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Take the client address from the last `X-Forwarded-For` hop (behind a proxy you run).
    #[serde(default)]
    pub trust_forwarded_for: bool,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_key_per_minute: default_per_key(),
            per_address_per_minute: default_per_address(),
            burst: default_burst(),
            max_concurrent_requests: default_max_concurrent(),
            header_timeout_ms: default_header_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            trust_forwarded_for: false,
        }
    }
}

fn default_per_key() -> u32 {
    6_000
}
fn default_per_address() -> u32 {
    600
}
fn default_burst() -> u32 {
    50
}
fn default_max_concurrent() -> usize {
    512
}
fn default_header_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    30_000
}

/// Reasons a rejection may give, when the file does not list its own.
pub fn default_reason_codes() -> Vec<String> {
    [
        "no_budget",
        "no_authority",
        "no_need",
        "bad_timing",
        "competitor",
        "existing_customer",
        "duplicate",
        "invalid_contact",
        "spam",
        "other",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Hex SHA-256 of a presented key: what `[[ingest.keys]].sha256` holds.
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Checks the access settings; `Err` names the key and the problem.
pub(crate) fn check(
    keys: &[ApiKeySettings],
    forms: &[FormSettings],
    webhooks: &[WebhookSourceSettings],
    limits: &LimitSettings,
    reason_codes: &[String],
) -> Result<(), String> {
    for (i, key) in keys.iter().enumerate() {
        let at = format!("ingest.keys[{i}]");
        if key.name.trim().is_empty() {
            return Err(format!("{at}.name must not be empty"));
        }
        if key.sha256.len() != 64 || !key.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "{at}.sha256 must be 64 hex characters (the SHA-256 of the key; `handoff keys new` prints it)"
            ));
        }
        if key.scopes.is_empty() {
            return Err(format!("{at}.scopes must name at least one scope"));
        }
    }
    let mut digests = BTreeSet::new();
    for key in keys {
        if !digests.insert(key.sha256.to_ascii_lowercase()) {
            return Err(format!(
                "ingest.keys: two entries have the same sha256 (key {:?})",
                key.name
            ));
        }
    }
    let mut tokens = BTreeSet::new();
    for (i, form) in forms.iter().enumerate() {
        let at = format!("ingest.forms[{i}]");
        if form.token.trim().len() < 8 {
            return Err(format!("{at}.token must be at least 8 characters"));
        }
        if form.source.trim().is_empty() {
            return Err(format!("{at}.source must not be empty"));
        }
        if !tokens.insert(form.token.as_str()) {
            return Err(format!("{at}.token is used by another form"));
        }
        if let Some(url) = &form.redirect_url {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(format!("{at}.redirect_url must be an http(s) URL"));
            }
        }
    }
    let mut sources = BTreeSet::new();
    for (i, hook) in webhooks.iter().enumerate() {
        let at = format!("ingest.webhooks[{i}]");
        let valid = !hook.source.is_empty()
            && hook
                .source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "{at}.source must be 1 or more of a-z, A-Z, 0-9, - and _ (it is a URL path segment)"
            ));
        }
        if !sources.insert(hook.source.as_str()) {
            return Err(format!("{at}.source {:?} is configured twice", hook.source));
        }
        if hook.secret_env.trim().is_empty() {
            return Err(format!("{at}.secret_env must name an environment variable"));
        }
    }
    let positive = [
        (
            "ingest.limits.per_key_per_minute",
            limits.per_key_per_minute as u64,
        ),
        (
            "ingest.limits.per_address_per_minute",
            limits.per_address_per_minute as u64,
        ),
        ("ingest.limits.burst", limits.burst as u64),
        (
            "ingest.limits.max_concurrent_requests",
            limits.max_concurrent_requests as u64,
        ),
        ("ingest.limits.header_timeout_ms", limits.header_timeout_ms),
        (
            "ingest.limits.request_timeout_ms",
            limits.request_timeout_ms,
        ),
    ];
    if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(format!("{key} must be greater than 0"));
    }
    for code in reason_codes {
        let valid = !code.is_empty()
            && code.len() <= 64
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            return Err(format!(
                "ingest.reason_codes: {code:?} must be 1 to 64 characters of a-z, 0-9, _ and -"
            ));
        }
    }
    Ok(())
}

/// Reads each intake source's secret from the environment variable it names. Missing or
/// malformed secrets are start-up errors naming the setting.
pub(crate) fn resolve_intake_secrets(
    webhooks: &mut [WebhookSourceSettings],
    vars: &[(String, String)],
) -> Result<(), String> {
    for (i, hook) in webhooks.iter_mut().enumerate() {
        let value = vars
            .iter()
            .find(|(name, _)| *name == hook.secret_env)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                format!(
                    "ingest.webhooks[{i}] (source {:?}): environment variable {} is not set (it holds the signing secret, whsec_<base64>)",
                    hook.source, hook.secret_env
                )
            })?;
        if value.strip_prefix("whsec_").unwrap_or(value).len() < 24 {
            return Err(format!(
                "ingest.webhooks[{i}] (source {:?}): the secret in {} is too short (expected whsec_<base64> of at least 24 characters)",
                hook.source, hook.secret_env
            ));
        }
        hook.secret = Secret::new(value);
    }
    Ok(())
}
