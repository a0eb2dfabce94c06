//! One webhook attempt: a signed POST and what its answer means for the next step.
//! It knows nothing of retries, circuits or Redis (`delivery` decides with the outcome).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use handoff_config::{NotifierSettings, Secret};
use handoff_store::PendingDelivery;

use crate::egress::{self, EgressPolicy, GuardedResolver, RefusedTarget};
use crate::{sign, SIGNATURE_HEADER};

/// What one attempt ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Worth another attempt (5xx, 408, 425, 429, no answer); `after` is the receiver's
    /// `Retry-After`, if it sent one.
    Failed {
        error: String,
        after: Option<Duration>,
    },
    /// The receiver refuses this request (4xx, a redirect): another attempt gets the same.
    Rejected { error: String },
    /// The egress policy forbids the target: no connection was made.
    NotAllowed(RefusedTarget),
}

/// Sends webhooks: the HTTP client, the address policy and the signing key.
#[derive(Debug)]
pub(crate) struct Sender {
    client: reqwest::Client,
    /// Where webhooks may go; the client's resolver enforces it for host names.
    egress: Arc<EgressPolicy>,
    secret: Secret,
}

impl Sender {
    pub(crate) fn new(settings: &NotifierSettings) -> Result<Self, reqwest::Error> {
        let egress = Arc::new(EgressPolicy::new(settings.allowed_private_targets.clone()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .user_agent(concat!("handoff-notifier/", env!("CARGO_PKG_VERSION")))
            // A redirect would lead past the address check to wherever the receiver says.
            .redirect(reqwest::redirect::Policy::none())
            // Through a proxy the connection's address is the proxy's, not the target's.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(egress.clone())))
            .build()?;
        Ok(Self {
            client,
            egress,
            secret: settings.signing_secret.clone(),
        })
    }

    /// One POST of the delivery, signed now.
    pub(crate) async fn send(&self, delivery: &PendingDelivery) -> Outcome {
        if let Err(refused) = self.egress.check_url(&delivery.url) {
            return Outcome::NotAllowed(refused);
        }
        let mut request = self
            .client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("handoff-event-id", &delivery.event_id)
            .header("handoff-event-type", &delivery.event_type)
            .body(delivery.body.clone());
        if !self.secret.is_empty() {
            let timestamp = chrono::Utc::now().timestamp();
            request = request.header(
                SIGNATURE_HEADER,
                sign(self.secret.expose(), timestamp, delivery.body.as_bytes()),
            );
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            // Permanent: the receiver moved, and only a new URL in the rules fixes that.
            Ok(response) if response.status().is_redirection() => Outcome::Rejected {
                error: format!(
                    "webhook answered {}: redirects are not followed (set the webhook URL to where it redirects)",
                    response.status()
                ),
            },
            Ok(response) => {
                let status = response.status();
                let error = format!("webhook answered {status}");
                if retryable(status) {
                    Outcome::Failed {
                        error,
                        after: retry_after(&response),
                    }
                } else {
                    Outcome::Rejected { error }
                }
            }
            Err(e) => match egress::refusal(&e) {
                Some(refused) => Outcome::NotAllowed(refused),
                // The URL is never logged: it often embeds a token (Slack webhooks do).
                None => Outcome::Failed {
                    error: format!("webhook request failed: {}", e.without_url()),
                    after: None,
                },
            },
        }
    }
}

/// 408, 425, 429 and 5xx are worth retrying; other 4xx mean the receiver refuses the request.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429)
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_retried_other_client_errors_are_not() {
        for code in [500, 502, 503, 504, 408, 425, 429] {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            assert!(retryable(status), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            assert!(!retryable(status), "{code}");
        }
    }
}
