//! Counts each event of the log into the funnel's metrics, once per lead and stage: the
//! per-lead markers in Redis (handoff-store's funnel module) turn the consumer's
//! at-least-once delivery into counting once. A count is lost only if the process dies
//! between the Redis step and the increment (the metrics live in memory anyway).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::FutureExt;

use handoff_config::RulesHandle;
use handoff_domain::disposition::{Money, AMOUNT_SCALE};
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition, SlaBreached};
use handoff_domain::lead::{LeadPayload, Source};
use handoff_domain::scorecard::{Fact, Measure};
use handoff_kafka::{Effects, EventHandler, HandleError, InboundEvent};
use handoff_store::{AssignmentTimes, FunnelSource, OutcomeReport, SettledTouch, Store};
use handoff_telemetry::FunnelMetrics;

use crate::labels::{self, LabelFolder, SourceLabels};
use crate::stages::{outcome_stage, sla_of};

#[derive(Debug)]
pub(crate) struct FunnelCounter {
    pub store: Store,
    pub metrics: FunnelMetrics,
    pub folder: Arc<LabelFolder>,
    pub rules: RulesHandle,
    /// How long the funnel remembers a lead (its record's retention).
    pub lead_retention: Duration,
}

fn raw(source: &Source) -> FunnelSource {
    FunnelSource {
        kind: source.kind.clone(),
        campaign: source.campaign.clone(),
    }
}

/// The UTC day of a time in milliseconds (out-of-range times count as today).
fn day_of(ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_else(Utc::now)
        .date_naive()
}

fn seconds_between(from_ms: i64, to_ms: i64) -> f64 {
    // Saturating: reported times come from outside and may precede the receipt.
    to_ms.saturating_sub(from_ms).max(0) as f64 / 1000.0
}

impl FunnelCounter {
    fn ttl(&self) -> u64 {
        self.lead_retention.as_secs().max(1)
    }

    fn labels(&self, source: &FunnelSource) -> SourceLabels {
        self.folder.source(&source.kind, &source.campaign)
    }

    fn count(&self, stage: &str, labels: &SourceLabels) {
        self.metrics
            .leads
            .with_label_values(&[stage, &labels.kind, &labels.campaign])
            .inc();
    }

    fn team_label(&self, team: &str) -> String {
        let rules = self.rules.current();
        labels::team(rules.routing.team_ids(), team).to_owned()
    }

    /// Records one count for the scorecard (handoff-store's scorecard module), with the
    /// raw attribution. Only called for a count just made once: a failure is logged, not
    /// retried, so a redelivery cannot count it twice (as with the metrics, a lost write
    /// is a count short).
    async fn fact(&self, measure: Measure, ms: i64, source: &FunnelSource, team: &str) {
        self.fact_with(measure, ms, source, team, "", 1).await;
    }

    async fn fact_with(
        &self,
        measure: Measure,
        ms: i64,
        source: &FunnelSource,
        team: &str,
        currency: &str,
        value: i64,
    ) {
        let fact = Fact {
            day: day_of(ms),
            measure,
            source_kind: source.kind.trim().to_owned(),
            campaign: source.campaign.trim().to_owned(),
            team: team.to_owned(),
            currency: currency.to_owned(),
            value,
        };
        if let Err(e) = self.store.scorecard_add(&fact).await {
            tracing::warn!(error = %e, measure = measure.as_str(), "cannot record a scorecard fact; the scorecard is a count short");
        }
    }

    async fn settle(&self, settled: SettledTouch, source: &FunnelSource) {
        let labels = self.labels(source);
        if let Some(received_ms) = settled.received_ms {
            self.metrics
                .time_to_first_touch
                .with_label_values(&[&labels.kind, &labels.campaign])
                .observe(seconds_between(received_ms, settled.touched_ms));
        }
        if let Some(within) = settled.within_window {
            let team = self.team_label(&settled.team);
            let result = if within { "met" } else { "missed" };
            self.metrics
                .first_touch_sla
                .with_label_values(&[&team, result])
                .inc();
            let measure = if within {
                Measure::FirstTouchMet
            } else {
                Measure::FirstTouchMissed
            };
            self.fact(measure, settled.touched_ms, source, &settled.team)
                .await;
        }
    }

    async fn on_created(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let Some(payload) = decode::<LeadPayload>(event, EventKind::LeadCreated) else {
            return Ok(());
        };
        // What the producer left unset comes from the record, as the router does.
        let Ok(lead) = payload.into_lead(&event.origin()) else {
            return Ok(());
        };
        let recorded = self
            .store
            .funnel_received(
                &lead.id,
                &raw(&lead.source),
                lead.received_at.timestamp_millis(),
                self.ttl(),
            )
            .await
            .map_err(HandleError::from_error)?;
        if let Some(source) = recorded {
            self.count("received", &self.labels(&source));
        }
        Ok(())
    }

    async fn on_assigned(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let Some(assigned) = decode::<LeadAssigned>(event, EventKind::LeadAssigned) else {
            return Ok(());
        };
        let change = self
            .store
            .funnel_assigned(
                &assigned.lead_id,
                &raw(&assigned.source),
                AssignmentTimes {
                    attempt: assigned.attempt,
                    team: assigned.team_id.as_str(),
                    received_ms: assigned.received_at.timestamp_millis(),
                    assigned_ms: assigned.assigned_at.timestamp_millis(),
                    due_ms: assigned.first_touch_due_at.timestamp_millis(),
                },
                self.ttl(),
            )
            .await
            .map_err(HandleError::from_error)?;
        let labels = self.labels(&change.source);
        let team = assigned.team_id.as_str();
        if change.newly_qualified {
            self.count("qualified", &labels);
            self.fact(
                Measure::Mql,
                times_assigned_ms(&assigned),
                &change.source,
                team,
            )
            .await;
        }
        if change.first {
            self.count("assigned", &labels);
        }
        if let Some(settled) = change.settled {
            self.settle(settled, &change.source).await;
        }
        Ok(())
    }

    async fn on_disposition(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let Some(disposition) = decode::<LeadDisposition>(event, EventKind::LeadDisposition) else {
            return Ok(());
        };
        let lead_id = &disposition.lead_id;
        let stage = outcome_stage(disposition.outcome);
        // As the SLA tracker does: a report from the future counts as now.
        let occurred_ms = disposition
            .occurred_at
            .timestamp_millis()
            .min(Utc::now().timestamp_millis());
        let settled = if stage.touch {
            self.store
                .funnel_touched(lead_id, occurred_ms, self.ttl())
                .await
                .map_err(HandleError::from_error)?
        } else {
            None
        };
        let change = self
            .store
            .funnel_outcome(
                lead_id,
                &raw(&disposition.source),
                OutcomeReport {
                    outcome: disposition.outcome.as_str(),
                    occurred_ms,
                    feedback: stage.feedback,
                    implies: stage.implies,
                },
                self.ttl(),
            )
            .await
            .map_err(HandleError::from_error)?;
        let labels = self.labels(&change.source);
        let team = disposition.team_id.as_ref().map_or("", |t| t.as_str());
        if let Some(settled) = settled {
            self.settle(settled, &change.source).await;
        }
        if let (Some(name), true) = (stage.stage, change.new) {
            self.count(name, &labels);
            let measure = match name {
                "accepted" => Some(Measure::Accepted),
                "rejected" => Some(Measure::Rejected),
                "converted" => Some(Measure::Converted),
                _ => None,
            };
            if let Some(measure) = measure {
                self.fact(measure, occurred_ms, &change.source, team).await;
            }
            if name == "converted" {
                self.revenue(&disposition, occurred_ms, &change.source, &labels)
                    .await;
            }
            if name == "rejected" {
                let reason = self.folder.reason(&disposition.reason_code);
                self.metrics
                    .rejections
                    .with_label_values(&[reason, &labels.kind, &labels.campaign])
                    .inc();
            }
        }
        if let (Some(implied), true) = (stage.implies, change.implied_new) {
            self.count(implied, &labels);
            if implied == "qualified" {
                self.fact(Measure::Mql, occurred_ms, &change.source, team)
                    .await;
            }
        }
        if let (true, Some(assigned_ms)) = (change.first_feedback, change.assigned_ms) {
            self.metrics
                .time_to_disposition
                .with_label_values(&[&labels.kind, &labels.campaign])
                .observe(seconds_between(assigned_ms, occurred_ms));
        }
        // Counted missed when its window ended (refresh.rs), not again now.
        if let (true, false, Some(assigned_ms)) = (
            change.first_feedback,
            change.feedback_counted_missed,
            change.assigned_ms,
        ) {
            let window = self.rules.current().agreement.feedback_window_ms();
            let within = occurred_ms.saturating_sub(assigned_ms) <= window;
            let (result, measure) = if within {
                ("met", Measure::FeedbackMet)
            } else {
                ("missed", Measure::FeedbackMissed)
            };
            self.metrics
                .feedback
                .with_label_values(&[&self.team_label(team), result])
                .inc();
            self.fact(measure, occurred_ms, &change.source, team).await;
        }
        Ok(())
    }

    /// A conversion's value, once (the caller counts the conversion the first time only).
    async fn revenue(
        &self,
        disposition: &LeadDisposition,
        occurred_ms: i64,
        source: &FunnelSource,
        labels: &SourceLabels,
    ) {
        let Some(money) = Money::from_event(&disposition.amount, &disposition.currency) else {
            return;
        };
        let team = disposition.team_id.as_ref().map_or("", |t| t.as_str());
        self.metrics
            .revenue
            .with_label_values(&[
                &labels.kind,
                &labels.campaign,
                &self.team_label(team),
                &money.currency,
            ])
            .inc_by(money.units as f64 / AMOUNT_SCALE as f64);
        self.fact_with(
            Measure::Revenue,
            occurred_ms,
            source,
            team,
            &money.currency,
            money.units,
        )
        .await;
    }

    async fn on_breached(&self, event: &InboundEvent) -> Result<(), HandleError> {
        let Some(breach) = decode::<SlaBreached>(event, EventKind::SlaBreached) else {
            return Ok(());
        };
        let sla = sla_of(&breach);
        let change = self
            .store
            .funnel_breached(&breach.lead_id, sla.as_str(), breach.attempt, self.ttl())
            .await
            .map_err(HandleError::from_error)?;
        let team = self.team_label(breach.team_id.as_ref().map_or("", |t| t.as_str()));
        let labels = self.labels(&change.source);
        if change.new {
            self.metrics
                .sla_breaches
                .with_label_values(&[sla.as_str(), &team, &labels.kind, &labels.campaign])
                .inc();
        }
        if change.verdict {
            self.metrics
                .first_touch_sla
                .with_label_values(&[&team, "missed"])
                .inc();
            let raw_team = breach.team_id.as_ref().map_or("", |t| t.as_str());
            self.fact(
                Measure::FirstTouchMissed,
                breach.breached_at.timestamp_millis(),
                &change.source,
                raw_team,
            )
            .await;
        }
        Ok(())
    }
}

fn times_assigned_ms(assigned: &LeadAssigned) -> i64 {
    assigned.assigned_at.timestamp_millis()
}

/// The payload, or `None` for one that does not decode. The funnel only watches: the
/// services that own these topics dead-letter what they cannot read, so a second
/// dead letter from here would only duplicate theirs.
fn decode<T: serde::de::DeserializeOwned>(event: &InboundEvent, kind: EventKind) -> Option<T> {
    match event.decode(kind) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::debug!(topic = %event.topic, offset = event.offset, error = %e, "funnel skips an event it cannot read");
            None
        }
    }
}

impl EventHandler for FunnelCounter {
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        match event.kind() {
            Some(EventKind::LeadCreated) => self.on_created(event).await?,
            Some(EventKind::LeadAssigned) => self.on_assigned(event).await?,
            Some(EventKind::LeadDisposition) => self.on_disposition(event).await?,
            Some(EventKind::SlaBreached) => self.on_breached(event).await?,
            // Reminders change no funnel stage (the funnel does not consume their topic).
            Some(EventKind::SlaReminder) | None => {}
        }
        // Every effect above is a Redis write that has already been acknowledged.
        Ok(async { Ok(()) }.boxed())
    }
}
