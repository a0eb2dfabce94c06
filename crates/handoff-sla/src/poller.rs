use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use handoff_config::{RulesHandle, SlaSettings};
use handoff_domain::events::{EventKind, SlaBreached, SlaReminder};
use handoff_domain::sla::Sla;
use handoff_domain::LeadId;
use handoff_kafka::{EventProducer, OutboundEvent, TraceParent};
use handoff_store::{ClaimRequest, DueBreach, DueReminder, Store, TimelineEntry};

/// The shortest sleep before the next poll: an entry due this very instant (written
/// between a claim and the read of the next due time) must not spin the loop.
const MIN_WAKE: Duration = Duration::from_millis(5);
use handoff_telemetry::traces::SPAN_TARGET;
use handoff_telemetry::Metrics;
use tracing::Instrument;

/// Why a poll round stopped (retried on the next tick: claims not completed come back
/// after their lease).
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Store(#[from] handoff_store::StoreError),
    #[error(transparent)]
    Kafka(#[from] handoff_kafka::KafkaError),
    #[error("cannot encode an SLA event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Claims missed deadlines and due reminders, and publishes one `sla.breached` per
/// (lead, attempt, sla) and one `sla.reminder` per (lead, attempt, sla, fraction).
#[derive(Debug)]
pub struct SlaPoller {
    store: Store,
    rules: RulesHandle,
    producer: EventProducer,
    metrics: Metrics,
    interval: Duration,
    lease: Duration,
    batch: u32,
}

impl SlaPoller {
    pub fn new(
        store: Store,
        rules: RulesHandle,
        producer: EventProducer,
        metrics: Metrics,
        settings: &SlaSettings,
    ) -> Self {
        Self {
            store,
            rules,
            producer,
            metrics,
            interval: Duration::from_millis(settings.poll_interval_ms),
            lease: Duration::from_secs(u64::from(settings.lease_seconds)),
            batch: settings.claim_batch,
        }
    }

    /// Polls until `shutdown`: at every poll interval, and sooner when a deadline or
    /// reminder falls due before the next one (the tracker sleeps until it instead of
    /// finding it up to a whole interval late). Redis or broker trouble is logged and
    /// retried on the next poll: a claim not completed comes back after its lease.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut wake = tokio::time::Instant::now();
        let mut gauge_tick = 0u32;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
            let polled = tokio::time::Instant::now();
            wake = polled + self.interval;
            if !self.producer.gate().is_open() {
                // The state is lost: its deadlines are rebuilt (and the passed ones fired,
                // marked late) before polling resumes (docs/operations.md).
                continue;
            }
            loop {
                match self.tick().await {
                    // A full batch: there may be more due right now.
                    Ok(claimed) if claimed == self.batch as usize => continue,
                    Ok(_) => break,
                    Err(e) => {
                        self.metrics
                            .consumer_errors
                            .with_label_values(&["sla", "transient"])
                            .inc();
                        tracing::warn!(error = %e, "SLA poll failed; retrying next tick");
                        break;
                    }
                }
            }
            if let Ok(Some(due_ms)) = self.store.next_due_ms().await {
                let until = due_ms.saturating_sub(self.store.now().timestamp_millis());
                let until = Duration::from_millis(u64::try_from(until).unwrap_or(0));
                wake = wake.min(tokio::time::Instant::now() + until.max(MIN_WAKE));
            }
            gauge_tick = gauge_tick.wrapping_add(1);
            if gauge_tick % 5 == 0 {
                let rules = self.rules.current();
                if let Ok(open) = self.store.open_leads(rules.routing.rep_ids()).await {
                    self.metrics.awaiting_first_touch.set(open);
                }
            }
        }
    }

    /// One claim-publish-complete round of breaches and of reminders; returns the larger
    /// count claimed (a full batch of either: poll again at once).
    async fn tick(&self) -> Result<usize, PollError> {
        let breaches = self.breach_round().await?;
        let reminders = self.reminder_round().await?;
        Ok(breaches.max(reminders))
    }

    /// A fresh claim for this round: a random token only this round knows.
    fn claim<'a>(&self, token: &'a str) -> ClaimRequest<'a> {
        ClaimRequest {
            token,
            lease: self.lease,
            limit: self.batch,
        }
    }

    async fn breach_round(&self) -> Result<usize, PollError> {
        let token = round_token();
        let claimed = self.store.claim_due(&self.claim(&token)).await?;
        for member in &claimed.unreadable {
            tracing::warn!(
                member,
                "dropped a deadline that does not parse (lead|attempt[|disposition])"
            );
        }
        let now = claimed.now;
        let count = claimed.due.len();
        let outcomes = join_all(claimed.due.iter().map(|d| self.breach(d, now))).await;
        let (published, failure) = settled(&claimed.due, outcomes, |d| d.member.as_str());
        let completed = self.store.complete_breaches(&token, &published).await?;
        self.account_lost("breach", &published, &completed);
        failure.map_or(Ok(count), Err)
    }

    async fn reminder_round(&self) -> Result<usize, PollError> {
        let token = round_token();
        let claimed = self.store.claim_reminders(&self.claim(&token)).await?;
        for member in &claimed.unreadable {
            tracing::warn!(
                member,
                "dropped a reminder that does not parse (lead|attempt|sla|permille)"
            );
        }
        let now = claimed.now;
        let count = claimed.due.len();
        let outcomes = join_all(claimed.due.iter().map(|d| self.remind(d, now))).await;
        let (published, failure) = settled(&claimed.due, outcomes, |d| d.member.as_str());
        let completed = self.store.complete_reminders(&token, &published).await?;
        self.account_lost("reminder", &published, &completed);
        failure.map_or(Ok(count), Err)
    }

    /// Claims this round published but could no longer complete: it stalled past its
    /// lease and another poller took them, so the event goes out twice (same event id).
    fn account_lost(&self, kind: &'static str, members: &[&str], completed: &[bool]) {
        let lost: Vec<&str> = members
            .iter()
            .zip(completed)
            .filter(|(_, done)| !**done)
            .map(|(member, _)| *member)
            .collect();
        if lost.is_empty() {
            return;
        }
        self.metrics
            .sla_claims_lost
            .with_label_values(&[kind])
            .inc_by(lost.len() as u64);
        tracing::warn!(
            kind,
            lost = lost.len(),
            first = lost.first().copied(),
            lease_seconds = self.lease.as_secs(),
            "SLA claims outlived their lease: another poller re-claimed them and publishes them again (same event ids)"
        );
    }

    /// Publishes an SLA event, then writes it on the lead's timeline. In this order: a
    /// crash between the two repeats the event (same id) and at worst its entry; the other
    /// way round could lose the entry. The caller completes the claim after.
    async fn announce<T: serde::Serialize>(
        &self,
        kind: EventKind,
        id: String,
        lead_id: &LeadId,
        trace: Option<&str>,
        event: &T,
        entry: TimelineEntry,
    ) -> Result<(), PollError> {
        // The lead's trace goes on: POST → lead.created → lead.assigned → sla.*; this step
        // is a span of it when tracing is on.
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "sla.announce",
            otel.name = kind.topic_suffix(),
            otel.kind = "producer",
            lead_id = %lead_id,
        );
        let outbound = OutboundEvent::new(
            kind,
            id,
            lead_id.as_str(),
            entry.at,
            TraceParent::for_span(&span, trace),
            event,
        )?;
        async {
            self.producer.publish(&outbound).await?;
            self.store.append_timeline(lead_id, &entry).await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Publishes a due reminder (or nothing, when it no longer applies); the round
    /// completes the claim.
    async fn remind(&self, due: &DueReminder, now: DateTime<Utc>) -> Result<(), PollError> {
        if !due.current || now.timestamp_millis() >= due.due_ms {
            // Touched, disposed of, closed or reassigned since, or already overdue (the
            // breach tells it then): nothing to remind of.
            return Ok(());
        }
        let event = SlaReminder {
            lead_id: due.lead_id.clone(),
            attempt: due.attempt,
            sla: due.sla,
            team_id: due.team.clone(),
            rep_id: due.rep.clone(),
            due_at: DateTime::from_timestamp_millis(due.due_ms).unwrap_or(now),
            reminded_at: now,
            fraction: f64::from(due.permille) / 1000.0,
        };
        let entry = TimelineEntry::new(now, "reminded")
            .with("attempt", due.attempt)
            .with("sla", due.sla.as_str())
            .with("fraction", event.fraction)
            .with("due_at", event.due_at.to_rfc3339());
        self.announce(
            EventKind::SlaReminder,
            event.event_id(),
            &due.lead_id,
            due.trace.as_deref(),
            &event,
            entry,
        )
        .await?;
        self.metrics
            .sla_reminders
            .with_label_values(&[due.sla.as_str()])
            .inc();
        tracing::info!(lead_id = %due.lead_id, attempt = due.attempt, sla = due.sla.as_str(), permille = due.permille, rep = due.rep.as_ref().map(|r| r.as_str()), "SLA reminder sent");
        Ok(())
    }

    /// Publishes a missed deadline's breach (or nothing, when it is stale); the round
    /// completes the claim.
    async fn breach(&self, due: &DueBreach, now: DateTime<Utc>) -> Result<(), PollError> {
        if due.stale {
            // A disposition deadline of an attempt that is over, or of a lead disposed of.
            return Ok(());
        }
        let event = SlaBreached {
            lead_id: due.lead_id.clone(),
            attempt: due.attempt,
            team_id: due.team.clone(),
            rep_id: due.rep.clone(),
            due_at: DateTime::from_timestamp_millis(due.due_ms).unwrap_or(now),
            breached_at: now,
            sla: due.sla,
        };
        let late_ms = (now.timestamp_millis() - due.due_ms).max(0);
        let mut entry = TimelineEntry::new(now, "breached")
            .with("attempt", due.attempt)
            .with("sla", due.sla.as_str())
            .with("due_at", event.due_at.to_rfc3339())
            .with("late_ms", late_ms);
        if let Some(rep) = &due.rep {
            entry = entry.with("rep", rep.as_str());
        }
        self.announce(
            EventKind::SlaBreached,
            event.event_id(),
            &due.lead_id,
            due.trace.as_deref(),
            &event,
            entry,
        )
        .await?;
        let team = due.team.as_ref().map_or("unrouted", |t| t.as_str());
        self.metrics
            .sla_breaches
            .with_label_values(&[team, due.sla.as_str()])
            .inc();
        let what = match (due.sla, due.attempt) {
            (Sla::Disposition, _) => "disposition SLA breached: no outcome reported in time",
            (Sla::FirstTouch, 0) => "lead waited in its queue past its first-touch deadline",
            (Sla::FirstTouch, _) => "first-touch SLA breached",
        };
        // A breach is the tracker doing its job (an event, a metric, an alert on the rate),
        // not trouble of the system's own: info, so warn stays for what operators must fix.
        tracing::info!(lead_id = %due.lead_id, attempt = due.attempt, rep = due.rep.as_ref().map(|r| r.as_str()), team, late_ms, "{what}");
        Ok(())
    }
}

/// The entries of a batch whose events went out (theirs to complete) and the first
/// failure (the rest lapse with their lease and are claimed again).
fn settled<'a, T>(
    due: &'a [T],
    outcomes: Vec<Result<(), PollError>>,
    member: impl Fn(&'a T) -> &'a str,
) -> (Vec<&'a str>, Option<PollError>) {
    let mut published = Vec::with_capacity(due.len());
    let mut failure = None;
    for (entry, outcome) in due.iter().zip(outcomes) {
        match outcome {
            Ok(()) => published.push(member(entry)),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    (published, failure)
}

/// 128 random bits: the claims of one round, which only that round may complete.
fn round_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}
