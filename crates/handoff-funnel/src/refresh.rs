//! Every `funnel.refresh_seconds`: the backlog gauges from Redis, and the busiest
//! campaigns (their series are created at zero as they join, so rate() sees their first
//! leads; see `FunnelMetrics::prime_source`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use handoff_config::{FunnelSettings, RulesHandle};
use handoff_domain::agreement::PeriodKind;
use handoff_domain::scorecard::{period_card, Fact, Measure, Period, Status};
use handoff_store::Store;
use handoff_telemetry::FunnelMetrics;

use crate::labels::LabelFolder;

#[derive(Debug)]
pub(crate) struct Refresher {
    pub store: Store,
    pub metrics: FunnelMetrics,
    pub folder: Arc<LabelFolder>,
    pub rules: RulesHandle,
    pub settings: FunnelSettings,
    pub lead_retention: Duration,
    pub gate: handoff_kafka::WorkGate,
}

impl Refresher {
    /// Creates every known series at zero: at start, and for teams a rules reload adds.
    pub fn prime(&self) {
        let reasons = self.folder.reasons();
        for source in self.folder.known_sources() {
            self.metrics
                .prime_source(&source.kind, &source.campaign, &reasons);
        }
        self.prime_teams();
    }

    fn prime_teams(&self) {
        let rules = self.rules.current();
        for team in rules.routing.team_ids().chain(["other", "none"]) {
            self.metrics.prime_team(team);
        }
    }

    async fn once(&self) {
        let now = Utc::now().timestamp_millis();
        let window = i64::try_from(self.settings.backlog_after_seconds)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        let retention = i64::try_from(self.lead_retention.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .funnel_gauges(
                now,
                now.saturating_sub(window),
                now.saturating_sub(retention),
            )
            .await
        {
            Ok(gauges) => {
                let set = |gauge: &prometheus::IntGauge, value: u64| {
                    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
                };
                set(&self.metrics.disposition_backlog, gauges.backlog);
                set(&self.metrics.awaiting_disposition, gauges.awaiting_feedback);
                set(&self.metrics.first_touch_overdue, gauges.overdue);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the funnel's backlog; gauges keep their last value")
            }
        }
        if self.settings.top_n > 0 {
            match self.store.busiest_campaigns(self.settings.top_n * 2).await {
                Ok(busiest) => {
                    let reasons = self.folder.reasons();
                    for campaign in self.folder.set_busiest(&busiest) {
                        for source in self.folder.known_sources() {
                            if source.campaign == campaign {
                                self.metrics.prime_source(&source.kind, &campaign, &reasons);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the busiest campaigns; labels stay as they were")
                }
            }
        }
        self.prime_teams();
        self.feedback_overdue(now).await;
        self.scorecard(Utc::now()).await;
    }

    /// Leads whose feedback window (the agreement's) ended without feedback count as
    /// missed feedback then, once: feedback completion is not only about the leads that
    /// got some.
    async fn feedback_overdue(&self, now_ms: i64) {
        let window = self.rules.current().agreement.feedback_window_ms();
        let overdue = match self
            .store
            .funnel_feedback_overdue(now_ms.saturating_sub(window))
            .await
        {
            Ok(overdue) => overdue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for leads past the feedback window; next refresh");
                return;
            }
        };
        for lead in overdue {
            let team = {
                let rules = self.rules.current();
                crate::labels::team(rules.routing.team_ids(), &lead.team).to_owned()
            };
            self.metrics
                .feedback
                .with_label_values(&[&team, "missed"])
                .inc();
            let ended = lead.assigned_ms.saturating_add(window);
            let fact = Fact {
                day: chrono::DateTime::from_timestamp_millis(ended)
                    .unwrap_or_else(Utc::now)
                    .date_naive(),
                measure: Measure::FeedbackMissed,
                source_kind: lead.source.kind.trim().to_owned(),
                campaign: lead.source.campaign.trim().to_owned(),
                team: lead.team,
                currency: String::new(),
                value: 1,
            };
            if let Err(e) = self.store.scorecard_add(&fact).await {
                tracing::warn!(error = %e, "cannot record a scorecard fact; the scorecard is a count short");
            }
        }
    }

    /// The current month's and quarter's scorecard as gauges (handoff-domain's scorecard,
    /// the same computation `GET /v1/scorecard` serves).
    async fn scorecard(&self, now: chrono::DateTime<Utc>) {
        let rules = self.rules.current();
        let agreement = &rules.agreement;
        let gauges = &self.metrics.scorecard;
        gauges.alert_below_pace.set(agreement.alert_below_pace);
        let mut cards = Vec::new();
        for kind in PeriodKind::ALL {
            if agreement.commitments(kind).is_empty() {
                continue;
            }
            let Some(period) = Period::containing(kind, now.date_naive()) else {
                continue;
            };
            match self.store.scorecard_facts(period.start, period.end).await {
                Ok(facts) => cards.push((kind, period_card(agreement, period, now, &facts))),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the scorecard's facts; its gauges keep their last values");
                    return;
                }
            }
        }
        // Targets removed from the rules file must not linger as series.
        gauges.reset();
        for (kind, card) in cards {
            for line in card.lines {
                let labels = [
                    kind.as_str(),
                    line.commitment.as_str(),
                    line.side,
                    line.segment.as_str(),
                    line.currency.as_str(),
                ];
                gauges.target.with_label_values(&labels).set(line.target);
                if let Some(actual) = line.actual {
                    gauges.actual.with_label_values(&labels).set(actual);
                }
                if let Some(expected) = line.expected_to_date {
                    gauges.expected.with_label_values(&labels).set(expected);
                }
                if let Some(projected) = line.projected {
                    gauges.projected.with_label_values(&labels).set(projected);
                }
                match line.status {
                    Status::OnTrack => gauges.on_track.with_label_values(&labels).set(1.0),
                    Status::Behind => gauges.on_track.with_label_values(&labels).set(0.0),
                    Status::NoData | Status::NotStarted => {}
                }
            }
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let period = Duration::from_secs(u64::from(self.settings.refresh_seconds));
        let mut ticker = tokio::time::interval(period);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                // While the Redis state is lost the gauges keep their last values
                // rather than read an empty state as "nothing overdue".
                _ = ticker.tick() => if self.gate.is_open() { self.once().await },
            }
        }
    }
}
