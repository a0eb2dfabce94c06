//! The clocks the tracker starts beside the lifecycle: reminders before each deadline, and
//! the disposition deadline (at the first touch, or at the assignment by policy), on the
//! policy's clock (wall or the rep's working hours). The instants are the domain's
//! (`SlaClocks`), as the router computes them for the assignments it commits.

use chrono::{DateTime, Utc};

use handoff_config::{RulesHandle, SlaSettings};
use handoff_domain::events::LeadAssigned;
use handoff_domain::sla::{ClockPlan, DispositionStart, SlaClocks};
use handoff_domain::{RepId, TeamId};
use handoff_store::{Scheduled, Store, StoreError};

#[derive(Debug, Clone)]
pub struct Clocks {
    pub sla: SlaClocks,
    /// Teams' windows and reps' working hours, as currently loaded.
    pub rules: RulesHandle,
}

impl Clocks {
    pub fn new(settings: &SlaSettings, rules: RulesHandle) -> Self {
        Self {
            sla: settings.clocks(),
            rules,
        }
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
        self.sla.disposition(start, team_seconds, availability)
    }

    /// The disposition clock a first touch at `at` starts (by policy; none when it starts
    /// at the assignment).
    pub fn disposition_from_touch(
        &self,
        at: DateTime<Utc>,
        team: Option<&TeamId>,
        rep: Option<&RepId>,
    ) -> Option<ClockPlan> {
        (self.sla.policy.disposition_from == DispositionStart::FirstTouch)
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
        let clocks = {
            let rules = self.rules.current();
            let routing = &rules.routing;
            self.sla.at_assignment(
                assigned.assigned_at,
                assigned.first_touch_due_at,
                routing.team_sla(assigned.team_id.as_str()),
                routing.disposition_seconds(assigned.team_id.as_str()),
                routing.rep_availability(assigned.rep_id.as_str()),
            )
        };
        store
            .schedule_clocks(&assigned.lead_id, assigned.attempt, &clocks)
            .await
    }
}
