//! The clocks the tracker starts beside the lifecycle: reminders before each deadline, and
//! the disposition deadline (at the first touch, or at the assignment by policy), on the
//! policy's clock (wall or the rep's working hours).

use chrono::{DateTime, Utc};

use handoff_config::{RulesHandle, SlaSettings};
use handoff_domain::events::LeadAssigned;
use handoff_domain::routing::Availability;
use handoff_domain::sla::{permille, reminder_at, DispositionStart, Sla, SlaClock, SlaPolicy};
use handoff_domain::{RepId, TeamId};
use handoff_store::{ClockPlan, Scheduled, Store, StoreError};

#[derive(Debug, Clone)]
pub struct Clocks {
    pub policy: SlaPolicy,
    /// Fractions of each window at which the rep is reminded (checked: 0 < f < 1).
    pub reminder_fractions: Vec<f64>,
    /// Teams' windows and reps' working hours, as currently loaded.
    pub rules: RulesHandle,
}

impl Clocks {
    pub fn new(settings: &SlaSettings, rules: RulesHandle) -> Self {
        Self {
            policy: settings.policy(),
            reminder_fractions: settings.reminder_fractions.clone(),
            rules,
        }
    }

    fn reminders(
        &self,
        clock: SlaClock,
        start: DateTime<Utc>,
        due: DateTime<Utc>,
        availability: Option<&Availability>,
    ) -> Vec<(u32, DateTime<Utc>)> {
        self.reminder_fractions
            .iter()
            .map(|f| {
                (
                    permille(*f),
                    reminder_at(clock, start, due, *f, availability),
                )
            })
            .collect()
    }

    fn disposition(
        &self,
        start: DateTime<Utc>,
        team: Option<&TeamId>,
        rep: Option<&RepId>,
    ) -> ClockPlan {
        let rules = self.rules.current();
        let availability = rep.and_then(|r| rules.routing.rep_availability(r.as_str()));
        let team_seconds = team.and_then(|t| rules.routing.disposition_seconds(t.as_str()));
        let due = self
            .policy
            .disposition_due_at(start, team_seconds, availability);
        ClockPlan {
            due,
            reminders: self.reminders(
                self.policy.clock(Sla::Disposition),
                start,
                due,
                availability,
            ),
        }
    }

    /// The disposition clock a first touch at `at` starts (by policy; none when it starts
    /// at the assignment).
    pub fn disposition_from_touch(
        &self,
        at: DateTime<Utc>,
        team: Option<&TeamId>,
        rep: Option<&RepId>,
    ) -> Option<ClockPlan> {
        (self.policy.disposition_from == DispositionStart::FirstTouch)
            .then(|| self.disposition(at, team, rep))
    }

    /// Schedules an assignment's reminders (and its disposition clock when that starts at
    /// the assignment). Idempotent per attempt.
    pub async fn schedule(
        &self,
        store: &Store,
        assigned: &LeadAssigned,
    ) -> Result<Scheduled, StoreError> {
        // The team's own first-touch clock (rules file) counts the reminders as it counted
        // the deadline.
        let (availability, clock) = {
            let rules = self.rules.current();
            (
                rules
                    .routing
                    .rep_availability(assigned.rep_id.as_str())
                    .cloned(),
                self.policy
                    .first_touch_clock(rules.routing.team_sla(assigned.team_id.as_str())),
            )
        };
        let reminders = self.reminders(
            clock,
            assigned.assigned_at,
            assigned.first_touch_due_at,
            availability.as_ref(),
        );
        let disposition =
            (self.policy.disposition_from == DispositionStart::Assignment).then(|| {
                self.disposition(
                    assigned.assigned_at,
                    Some(&assigned.team_id),
                    Some(&assigned.rep_id),
                )
            });
        store
            .schedule_clocks(
                &assigned.lead_id,
                assigned.attempt,
                &reminders,
                disposition.as_ref(),
            )
            .await
    }
}
