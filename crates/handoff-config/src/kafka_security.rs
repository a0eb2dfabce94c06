//! `[kafka.security]`: how the Kafka clients reach a managed or secured cluster (TLS, client
//! certificates, SASL PLAIN / SCRAM / OAUTHBEARER with OIDC), as typed keys checked at
//! start-up. Each key stands for one or more librdkafka properties
//! ([`KafkaSecurity::client_properties`]); `[kafka.client]` remains the escape hatch for
//! everything else, and may not set a property a key here already sets.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` (librdkafka's `security.protocol`);
    /// unset: librdkafka's default (plaintext) or whatever `[kafka.client]` says.
    #[serde(default)]
    pub protocol: Option<SecurityProtocol>,
    /// `plain`, `scram-sha-256`, `scram-sha-512` or `oauthbearer`; required with `sasl_*`.
    #[serde(default)]
    pub mechanism: Option<SaslMechanism>,
    /// The SASL user (PLAIN, SCRAM); Confluent Cloud's API key.
    #[serde(default)]
    pub username: Option<String>,
    /// The SASL password (PLAIN, SCRAM); Confluent Cloud's API secret. From the environment
    /// or a secret file, never the file the ConfigMap ships.
    #[serde(default)]
    pub password: Secret,
    /// PEM file (or directory) of the CAs that signed the brokers' certificates; unset: the
    /// system's roots (what a public managed service needs).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The client certificate (PEM) for mutual TLS, with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM), with `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The passphrase of an encrypted `key_file`.
    #[serde(default)]
    pub key_password: Secret,
    /// Check that a broker's certificate names the host it was reached at (default true);
    /// turn off only for brokers whose certificates name something else.
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
    /// OAUTHBEARER with OIDC (client credentials): the identity provider's token endpoint.
    #[serde(default)]
    pub oauth_token_url: Option<String>,
    #[serde(default)]
    pub oauth_client_id: Option<String>,
    #[serde(default)]
    pub oauth_client_secret: Secret,
    /// Space-separated scopes the token is requested for (optional).
    #[serde(default)]
    pub oauth_scope: Option<String>,
    /// SASL extensions sent with the token, `key=value` comma-separated (Confluent Cloud:
    /// `logicalCluster=lkc-…,identityPoolId=pool-…`).
    #[serde(default)]
    pub oauth_extensions: Option<String>,
}

impl Default for KafkaSecurity {
    fn default() -> Self {
        Self {
            protocol: None,
            mechanism: None,
            username: None,
            password: Secret::default(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            key_password: Secret::default(),
            verify_hostname: true,
            oauth_token_url: None,
            oauth_client_id: None,
            oauth_client_secret: Secret::default(),
            oauth_scope: None,
            oauth_extensions: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALLOWED: &'static str = "plaintext, ssl, sasl_plaintext, sasl_ssl";

    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl TryFrom<String> for SecurityProtocol {
    type Error = String;

    /// Our spelling (`sasl_ssl`) or Kafka's (`SASL_SSL`).
    fn try_from(value: String) -> Result<Self, String> {
        match value.to_ascii_lowercase().replace('-', "_").as_str() {
            "plaintext" => Ok(Self::Plaintext),
            "ssl" => Ok(Self::Ssl),
            "sasl_plaintext" => Ok(Self::SaslPlaintext),
            "sasl_ssl" => Ok(Self::SaslSsl),
            _ => Err(format!(
                "kafka.security.protocol: unknown value {value:?}, expected one of {}",
                Self::ALLOWED
            )),
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        })
    }
}

/// librdkafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OauthBearer,
}

impl SaslMechanism {
    const ALLOWED: &'static str = "plain, scram-sha-256, scram-sha-512, oauthbearer";

    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OauthBearer => "OAUTHBEARER",
        }
    }
}

impl TryFrom<String> for SaslMechanism {
    type Error = String;

    /// Our spelling (`scram-sha-512`) or Kafka's (`SCRAM-SHA-512`).
    fn try_from(value: String) -> Result<Self, String> {
        match value.to_ascii_lowercase().replace('_', "-").as_str() {
            "plain" => Ok(Self::Plain),
            "scram-sha-256" => Ok(Self::ScramSha256),
            "scram-sha-512" => Ok(Self::ScramSha512),
            "oauthbearer" => Ok(Self::OauthBearer),
            _ => Err(format!(
                "kafka.security.mechanism: unknown value {value:?}, expected one of {}",
                Self::ALLOWED
            )),
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SaslMechanism::Plain => "plain",
            SaslMechanism::ScramSha256 => "scram-sha-256",
            SaslMechanism::ScramSha512 => "scram-sha-512",
            SaslMechanism::OauthBearer => "oauthbearer",
        })
    }
}

/// A librdkafka property set from `[kafka.security]`, with the key it came from.
#[derive(Clone)]
pub struct ClientProperty {
    pub name: &'static str,
    /// May be a secret (`sasl.password`): never log it.
    pub value: String,
    pub key: &'static str,
}

impl fmt::Debug for ClientProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientProperty")
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl KafkaSecurity {
    fn tls(&self) -> bool {
        self.protocol.is_some_and(SecurityProtocol::uses_tls)
    }

    /// The librdkafka properties these keys stand for, in the order they are set.
    pub fn client_properties(&self) -> Vec<ClientProperty> {
        let mut properties = Vec::new();
        let mut set = |name: &'static str, value: String, key: &'static str| {
            properties.push(ClientProperty { name, value, key });
        };
        if let Some(protocol) = self.protocol {
            set(
                "security.protocol",
                protocol.as_librdkafka().to_owned(),
                "kafka.security.protocol",
            );
        }
        if let Some(mechanism) = self.mechanism {
            set(
                "sasl.mechanism",
                mechanism.as_librdkafka().to_owned(),
                "kafka.security.mechanism",
            );
        }
        if let Some(username) = &self.username {
            set("sasl.username", username.clone(), "kafka.security.username");
        }
        if !self.password.is_empty() {
            set(
                "sasl.password",
                self.password.expose().to_owned(),
                "kafka.security.password",
            );
        }
        if self.tls() {
            // Unset: the system's roots. `probe` finds them where the OpenSSL build's own
            // default does not point at them (a distroless image has the bundle in
            // /etc/ssl/certs but no /usr/lib/ssl).
            let ca = self
                .ca_file
                .as_ref()
                .map_or_else(|| "probe".to_owned(), |p| p.display().to_string());
            set("ssl.ca.location", ca, "kafka.security.ca_file");
            set(
                "ssl.endpoint.identification.algorithm",
                if self.verify_hostname {
                    "https"
                } else {
                    "none"
                }
                .to_owned(),
                "kafka.security.verify_hostname",
            );
        }
        if let Some(cert) = &self.cert_file {
            set(
                "ssl.certificate.location",
                cert.display().to_string(),
                "kafka.security.cert_file",
            );
        }
        if let Some(key) = &self.key_file {
            set(
                "ssl.key.location",
                key.display().to_string(),
                "kafka.security.key_file",
            );
        }
        if !self.key_password.is_empty() {
            set(
                "ssl.key.password",
                self.key_password.expose().to_owned(),
                "kafka.security.key_password",
            );
        }
        if self.mechanism == Some(SaslMechanism::OauthBearer) {
            set(
                "sasl.oauthbearer.method",
                "oidc".to_owned(),
                "kafka.security.mechanism",
            );
        }
        if let Some(url) = &self.oauth_token_url {
            set(
                "sasl.oauthbearer.token.endpoint.url",
                url.clone(),
                "kafka.security.oauth_token_url",
            );
        }
        if let Some(id) = &self.oauth_client_id {
            set(
                "sasl.oauthbearer.client.id",
                id.clone(),
                "kafka.security.oauth_client_id",
            );
        }
        if !self.oauth_client_secret.is_empty() {
            set(
                "sasl.oauthbearer.client.secret",
                self.oauth_client_secret.expose().to_owned(),
                "kafka.security.oauth_client_secret",
            );
        }
        if let Some(scope) = &self.oauth_scope {
            set(
                "sasl.oauthbearer.scope",
                scope.clone(),
                "kafka.security.oauth_scope",
            );
        }
        if let Some(extensions) = &self.oauth_extensions {
            set(
                "sasl.oauthbearer.extensions",
                extensions.clone(),
                "kafka.security.oauth_extensions",
            );
        }
        properties
    }

    /// The relations between keys, offline (no file is read): what each protocol and
    /// mechanism needs, and what it cannot use.
    pub(crate) fn check(&self) -> Result<(), String> {
        let protocol = self.protocol.unwrap_or(SecurityProtocol::Plaintext);
        let protocol_name = self
            .protocol
            .map_or_else(|| "unset (plaintext)".to_owned(), |p| p.to_string());
        match (protocol.uses_sasl(), self.mechanism) {
            (true, None) => {
                return Err(format!(
                    "kafka.security.mechanism is required with protocol {protocol}: one of {}",
                    SaslMechanism::ALLOWED
                ))
            }
            (false, Some(mechanism)) => {
                return Err(format!(
                    "kafka.security.mechanism = {mechanism:?} needs protocol sasl_ssl or sasl_plaintext (kafka.security.protocol is {protocol_name})",
                    mechanism = mechanism.to_string()
                ))
            }
            _ => {}
        }
        let tls_only = [
            ("ca_file", self.ca_file.is_some()),
            ("cert_file", self.cert_file.is_some()),
            ("key_file", self.key_file.is_some()),
            ("key_password", !self.key_password.is_empty()),
            ("verify_hostname", !self.verify_hostname),
        ];
        if !protocol.uses_tls() {
            if let Some((key, _)) = tls_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "kafka.security.{key} needs protocol ssl or sasl_ssl (kafka.security.protocol is {protocol_name})"
                ));
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err(
                    "kafka.security.cert_file is set without kafka.security.key_file: a client certificate needs its key".to_owned(),
                )
            }
            (None, Some(_)) => {
                return Err(
                    "kafka.security.key_file is set without kafka.security.cert_file".to_owned(),
                )
            }
            _ => {}
        }
        let oauth = [
            ("oauth_token_url", self.oauth_token_url.is_some()),
            ("oauth_client_id", self.oauth_client_id.is_some()),
            ("oauth_client_secret", !self.oauth_client_secret.is_empty()),
            ("oauth_scope", self.oauth_scope.is_some()),
            ("oauth_extensions", self.oauth_extensions.is_some()),
        ];
        let password = [
            ("username", self.username.is_some()),
            ("password", !self.password.is_empty()),
        ];
        match self.mechanism {
            Some(
                mechanism @ (SaslMechanism::Plain
                | SaslMechanism::ScramSha256
                | SaslMechanism::ScramSha512),
            ) => {
                if self.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    return Err(format!(
                        "kafka.security.username is required with mechanism {mechanism}"
                    ));
                }
                if self.password.is_empty() {
                    return Err(format!(
                        "kafka.security.password is empty: mechanism {mechanism} needs it (set it from the environment, HANDOFF_KAFKA_SECURITY_PASSWORD, or a secret file; never in this file)"
                    ));
                }
                if let Some((key, _)) = oauth.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "kafka.security.{key} is used only with mechanism oauthbearer (kafka.security.mechanism is {mechanism})"
                    ));
                }
            }
            Some(SaslMechanism::OauthBearer) => {
                let url = self.oauth_token_url.as_deref().unwrap_or_default();
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    return Err(format!(
                        "kafka.security.oauth_token_url must be the identity provider's http(s) token endpoint with mechanism oauthbearer (got {url:?})"
                    ));
                }
                if self
                    .oauth_client_id
                    .as_deref()
                    .is_none_or(|id| id.trim().is_empty())
                {
                    return Err(
                        "kafka.security.oauth_client_id is required with mechanism oauthbearer"
                            .to_owned(),
                    );
                }
                if self.oauth_client_secret.is_empty() {
                    return Err(
                        "kafka.security.oauth_client_secret is empty: mechanism oauthbearer needs it (set it from the environment, HANDOFF_KAFKA_SECURITY_OAUTH_CLIENT_SECRET, or a secret file)".to_owned(),
                    );
                }
                if let Some((key, _)) = password.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "kafka.security.{key} is not used with mechanism oauthbearer (the token comes from kafka.security.oauth_token_url)"
                    ));
                }
            }
            None => {
                if let Some((key, _)) = password.iter().chain(oauth.iter()).find(|(_, set)| *set) {
                    return Err(format!(
                        "kafka.security.{key} needs kafka.security.mechanism (one of {})",
                        SaslMechanism::ALLOWED
                    ));
                }
            }
        }
        Ok(())
    }

    /// That every file the keys name can be read, at start-up (not offline: a configuration
    /// may be checked where the pod's mounted secrets are not). The error names the key.
    pub fn check_files(&self) -> Result<(), String> {
        let files = [
            ("kafka.security.ca_file", &self.ca_file),
            ("kafka.security.cert_file", &self.cert_file),
            ("kafka.security.key_file", &self.key_file),
        ];
        for (key, path) in files {
            if let Some(path) = path {
                readable(path)
                    .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }
}

/// A file that opens, or (`ca_file` may be one) a directory that lists.
fn readable(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::read_dir(path).map(|_| ())
    } else {
        std::fs::File::open(path).map(|_| ())
    }
}
