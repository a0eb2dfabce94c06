//! `[tracing]`: optional export of spans to an OpenTelemetry collector over OTLP/HTTP
//! (docs/tracing.md). Off unless an endpoint is set.

use serde::{Deserialize, Deserializer, Serialize};

/// The standard OpenTelemetry variables honoured when the file (and its `HANDOFF_TRACING_*`
/// overrides) leave the key unset.
pub const OTEL_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSettings {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`); spans are posted
    /// to `{otlp_endpoint}/v1/traces` as protobuf. Unset (the default): nothing is exported.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The spans' `service.name`; unset: `handoff-<service>` (`handoff` for `handoff all`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// The share of new traces exported, from 0 to 1; a trace's later spans (other
    /// services) follow its first span's decision, carried in `traceparent`.
    #[serde(default = "default_sample_ratio", deserialize_with = "ratio")]
    pub sample_ratio: f64,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: default_sample_ratio(),
        }
    }
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl TracingSettings {
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(endpoint) = &self.otlp_endpoint {
            check_endpoint(endpoint).map_err(|why| format!("tracing.otlp_endpoint {why}"))?;
        }
        if self
            .service_name
            .as_ref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(
                "tracing.service_name must not be empty (leave it out for handoff-<service>)"
                    .to_owned(),
            );
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "tracing.sample_ratio = {} is out of range; allowed: a number from 0 to 1 (1: every trace)",
                self.sample_ratio
            ));
        }
        Ok(())
    }

    /// Takes the endpoint and service name from the standard OpenTelemetry variables when
    /// the configuration leaves them unset. `Err` names the variable.
    pub(crate) fn apply_otel_env(
        &mut self,
        vars: &[(String, String)],
    ) -> Result<(), crate::ConfigError> {
        let get = |name: &str| {
            vars.iter()
                .find(|(var, value)| var == name && !value.trim().is_empty())
                .map(|(_, value)| value.trim().to_owned())
        };
        if self.otlp_endpoint.is_none() {
            if let Some(endpoint) = get(OTEL_ENDPOINT_VAR) {
                check_endpoint(&endpoint).map_err(|why| crate::ConfigError::Env {
                    var: OTEL_ENDPOINT_VAR.to_owned(),
                    message: format!("{endpoint:?} {why}"),
                })?;
                self.otlp_endpoint = Some(endpoint);
            }
        }
        if self.service_name.is_none() {
            self.service_name = get(OTEL_SERVICE_NAME_VAR);
        }
        Ok(())
    }
}

/// `Err` completes "`<key>` ...": what is wrong and what is allowed.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let allowed = "allowed: the collector's OTLP/HTTP base URL, e.g. http://otel-collector:4318";
    let Some(rest) = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        return Err(format!(
            "must start with http:// or https:// (got {endpoint:?}); {allowed}"
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || endpoint.chars().any(char::is_whitespace) {
        return Err(format!(
            "has no host or contains spaces (got {endpoint:?}); {allowed}"
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(format!(
            "must not have a query or fragment (got {endpoint:?}); {allowed}"
        ));
    }
    if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        return Err(format!(
            "is the base URL: /v1/traces is added (got {endpoint:?}); {allowed}"
        ));
    }
    Ok(())
}

/// A number, or a string holding one (environment overrides arrive as text).
fn ratio<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ratio {
        Float(f64),
        Integer(i64),
        Text(String),
    }
    match Ratio::deserialize(deserializer)? {
        Ratio::Float(f) => Ok(f),
        Ratio::Integer(i) => Ok(i as f64),
        Ratio::Text(text) => text.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "tracing.sample_ratio {text:?} is not a number; allowed: a number from 0 to 1"
            ))
        }),
    }
}
