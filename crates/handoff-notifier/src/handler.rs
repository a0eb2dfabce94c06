use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use reqwest::StatusCode;
use tokio::sync::Semaphore;

use handoff_config::{NotifierSettings, RulesHandle, Secret};
use handoff_domain::events::{EventKind, LeadAssigned, SlaBreached, SlaReminder};
use handoff_kafka::{
    Effects, EventHandler, EventProducer, HandleError, InboundEvent, PoisonReason,
};
use handoff_telemetry::Metrics;

use crate::egress::{self, EgressPolicy, GuardedResolver};
use crate::{message, sign, NotifierError, SIGNATURE_HEADER};

#[derive(Debug)]
pub(crate) struct NotifierHandler {
    delivery: Arc<Delivery>,
    rules: RulesHandle,
    producer: EventProducer,
}

/// One webhook POST with its retry policy; shared by every delivery task.
#[derive(Debug)]
struct Delivery {
    client: reqwest::Client,
    /// Where webhooks may go; the client's resolver enforces it for host names.
    egress: Arc<EgressPolicy>,
    secret: Secret,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// Bounds deliveries in flight, so a burst cannot open thousands of connections.
    permits: Semaphore,
    metrics: Metrics,
}

struct Notification {
    url: String,
    event_id: String,
    event_type: &'static str,
    body: Vec<u8>,
}

impl NotifierHandler {
    pub(crate) fn new(
        settings: &NotifierSettings,
        rules: RulesHandle,
        producer: EventProducer,
        metrics: Metrics,
    ) -> Result<Self, NotifierError> {
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
            delivery: Arc::new(Delivery {
                client,
                egress,
                secret: settings.signing_secret.clone(),
                max_attempts: settings.max_attempts,
                initial_backoff: Duration::from_millis(settings.initial_backoff_ms),
                max_backoff: Duration::from_millis(settings.max_backoff_ms),
                permits: Semaphore::new(settings.concurrency.max(1)),
                metrics,
            }),
            rules,
            producer,
        })
    }

    fn notification(&self, event: &InboundEvent) -> Result<Option<Notification>, HandleError> {
        let kind = event.kind();
        let (team, rep, event_id, event_type, body) = match kind {
            Some(EventKind::LeadAssigned) => {
                let e: LeadAssigned = event.decode(EventKind::LeadAssigned)?;
                (
                    Some(e.team_id.clone()),
                    Some(e.rep_id.clone()),
                    e.event_id(),
                    "lead.assigned",
                    message::assigned(&e),
                )
            }
            Some(EventKind::SlaBreached) => {
                let e: SlaBreached = event.decode(EventKind::SlaBreached)?;
                (
                    e.team_id.clone(),
                    e.rep_id.clone(),
                    e.event_id(),
                    "sla.breached",
                    message::breached(&e),
                )
            }
            Some(EventKind::SlaReminder) => {
                let e: SlaReminder = event.decode(EventKind::SlaReminder)?;
                (
                    e.team_id.clone(),
                    e.rep_id.clone(),
                    e.event_id(),
                    "sla.reminder",
                    message::reminder(&e),
                )
            }
            _ => {
                return Err(HandleError::poison(
                    PoisonReason::UnexpectedType,
                    format!("unexpected event type {:?}", event.header("ce_type")),
                ))
            }
        };
        // Breaches go to the team channel (the manager's), assignments and reminders to
        // the rep.
        let rep_for_url = rep
            .as_ref()
            .filter(|_| matches!(event_type, "lead.assigned" | "sla.reminder"))
            .map(|r| r.as_str());
        let rules = self.rules.current();
        let team = team.as_ref().map_or("", |t| t.as_str());
        let Some(url) = rules.routing.webhook_for(team, rep_for_url) else {
            return Ok(None);
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| HandleError::transient(format!("cannot encode webhook body: {e}")))?;
        Ok(Some(Notification {
            url: url.to_owned(),
            event_id,
            event_type,
            body,
        }))
    }
}

impl EventHandler for NotifierHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        let Some(notification) = self.notification(event)? else {
            return Ok(async { Ok(()) }.boxed());
        };
        let delivery = self.delivery.clone();
        let producer = self.producer.clone();
        let event = event.clone();
        Ok(async move {
            match delivery.deliver(&notification).await {
                Ok(()) => Ok(()),
                Err(detail) => {
                    // Never dropped silently: the event waits on the dead-letter topic.
                    let ack = producer
                        .dead_letter(&event, PoisonReason::DeliveryFailed, &detail, "notifier")
                        .await?;
                    delivery
                        .metrics
                        .dead_lettered
                        .with_label_values(&["notifier", PoisonReason::DeliveryFailed.as_str()])
                        .inc();
                    ack.await
                }
            }
        }
        .boxed())
    }
}

impl Delivery {
    /// POSTs until a 2xx, a permanent refusal, or the last attempt. `Err` says why it gave up.
    async fn deliver(&self, n: &Notification) -> Result<(), String> {
        if let Err(refused) = self.egress.check_url(&n.url) {
            return Err(self.refused(n, &refused));
        }
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let mut backoff = self.initial_backoff;
        let mut last_error = String::new();
        for attempt in 1..=self.max_attempts {
            let mut request = self
                .client
                .post(&n.url)
                .header("content-type", "application/json")
                .header("handoff-event-id", &n.event_id)
                .header("handoff-event-type", n.event_type)
                .body(n.body.clone());
            if !self.secret.is_empty() {
                let timestamp = chrono::Utc::now().timestamp();
                request = request.header(
                    SIGNATURE_HEADER,
                    sign(self.secret.expose(), timestamp, &n.body),
                );
            }
            let mut wait = backoff;
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    self.metrics
                        .webhook_deliveries
                        .with_label_values(&["delivered"])
                        .inc();
                    tracing::debug!(event_id = %n.event_id, attempt, "webhook delivered");
                    return Ok(());
                }
                Ok(response) if response.status().is_redirection() => {
                    // Permanent: the receiver moved, and only a new URL in the rules fixes that.
                    last_error = format!(
                        "webhook answered {}: redirects are not followed (set the webhook URL to where it redirects)",
                        response.status()
                    );
                    break;
                }
                Ok(response) => {
                    let status = response.status();
                    last_error = format!("webhook answered {status}");
                    if !retryable(status) {
                        break;
                    }
                    if let Some(after) = retry_after(&response) {
                        wait = after.min(self.max_backoff);
                    }
                }
                Err(e) => {
                    if let Some(refused) = egress::refusal(&e) {
                        return Err(self.refused(n, &refused));
                    }
                    // The URL is never logged: it often embeds a token (Slack webhooks do).
                    last_error = format!("webhook request failed: {}", e.without_url());
                }
            }
            if attempt == self.max_attempts {
                break;
            }
            self.metrics
                .webhook_deliveries
                .with_label_values(&["retried"])
                .inc();
            tracing::info!(event_id = %n.event_id, attempt, error = %last_error, "webhook delivery failed; retrying");
            tokio::time::sleep(jitter(wait)).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
        self.metrics
            .webhook_deliveries
            .with_label_values(&["failed"])
            .inc();
        tracing::warn!(event_id = %n.event_id, error = %last_error, "webhook delivery gave up; event dead-lettered");
        Err(last_error)
    }

    /// A target the egress policy refuses: permanent, so no retries.
    fn refused(&self, n: &Notification, refused: &egress::RefusedTarget) -> String {
        self.metrics
            .webhook_deliveries
            .with_label_values(&["refused"])
            .inc();
        tracing::warn!(event_id = %n.event_id, error = %refused, "webhook target refused; event dead-lettered");
        refused.to_string()
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
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// ±20 %, so receivers recovering from an outage are not hit by every retry at once.
fn jitter(delay: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    delay.mul_f64(factor)
}
