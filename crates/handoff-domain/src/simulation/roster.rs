//! The roster as a simulation changes it: the runtime overrides roster lines set (as
//! `PUT /v1/reps/{id}` sets them in the service), out-of-office spans added on the way, and
//! each rep's open leads and count for the (UTC) day. The rules file stays the default.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::ids::{RepId, TeamId};
use crate::routing::{RepState, RoutingModel, TeamState};

/// A span of time a rep is away, `from` included, `to` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Span {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

/// One roster line. Each field: absent leaves it as it is, `Some(None)` clears the override
/// (the rules file's value applies again), `Some(Some(v))` sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEdit {
    pub rep: RepId,
    /// The team the rep joins from this line on, at the end of its rotation (a rep the
    /// rules file does not know takes the team's hours and the line's capacity).
    pub join: Option<TeamId>,
    pub active: Option<Option<bool>>,
    pub available: Option<Option<bool>>,
    pub capacity: Option<Option<u32>>,
    /// `Some(None)` clears every span added by earlier roster lines (not the rules file's).
    pub out_of_office: Option<Option<Span>>,
}

impl RosterEdit {
    /// `active false, capacity 3`: what the line changes, for reports.
    pub fn describe(&self) -> String {
        fn value<T: ToString>(v: &Option<T>) -> String {
            v.as_ref()
                .map_or_else(|| "back to the rules file".to_owned(), T::to_string)
        }
        let mut parts = Vec::new();
        if let Some(team) = &self.join {
            parts.push(format!("joins {team}"));
        }
        if let Some(v) = &self.active {
            parts.push(format!("active {}", value(v)));
        }
        if let Some(v) = &self.available {
            parts.push(format!("available {}", value(v)));
        }
        if let Some(v) = &self.capacity {
            parts.push(format!("capacity {}", value(v)));
        }
        match &self.out_of_office {
            Some(Some(span)) => parts.push(format!(
                "out of office {} to {}",
                span.from.to_rfc3339_opts(SecondsFormat::Secs, true),
                span.to.to_rfc3339_opts(SecondsFormat::Secs, true)
            )),
            Some(None) => parts.push("out of office cleared".to_owned()),
            None => {}
        }
        parts.join(", ")
    }
}

/// One rep's runtime state in the simulation.
#[derive(Debug, Clone, Default)]
pub(super) struct RepRuntime {
    active: Option<bool>,
    available: Option<bool>,
    capacity: Option<u32>,
    away: Vec<Span>,
    /// The leads assigned to the rep and not yet touched (by index): capacity is this set.
    open: BTreeSet<usize>,
    /// Repeats that joined one of `open` (same contact, lead still open): not yet touched,
    /// holding no capacity.
    joined: BTreeSet<usize>,
    /// The UTC day `assigned_on_day` counts, for the daily cap.
    day: Option<NaiveDate>,
    assigned_on_day: u32,
    pub assigned: usize,
    pub peak_open: usize,
}

impl RepRuntime {
    fn apply(&mut self, edit: &RosterEdit) {
        if let Some(v) = edit.active {
            self.active = v;
        }
        if let Some(v) = edit.available {
            self.available = v;
        }
        if let Some(v) = edit.capacity {
            self.capacity = v;
        }
        match edit.out_of_office {
            Some(Some(span)) => self.away.push(span),
            Some(None) => self.away.clear(),
            None => {}
        }
    }

    /// Away on a span from a roster line (the rules file's out-of-office is the model's).
    pub fn away_at(&self, at: DateTime<Utc>) -> bool {
        self.away.iter().any(|s| s.contains(at))
    }

    /// The state routing reads. A span from a roster line reads as "unavailable": the
    /// model's own out-of-office is fixed by the rules file.
    fn state_at(&self, at: DateTime<Utc>) -> RepState {
        RepState {
            open_leads: u32::try_from(self.open.len()).unwrap_or(u32::MAX),
            assigned_today: if self.day == Some(at.date_naive()) {
                self.assigned_on_day
            } else {
                0
            },
            active: self.active,
            available: if self.away_at(at) {
                Some(false)
            } else {
                self.available
            },
            capacity: self.capacity,
        }
    }

    pub fn open_leads(&self) -> usize {
        self.open.len()
    }
}

/// Every rep's runtime state, by rep id.
#[derive(Debug, Clone, Default)]
pub(super) struct Roster {
    reps: BTreeMap<String, RepRuntime>,
}

impl Roster {
    pub fn apply(&mut self, edit: &RosterEdit) {
        self.reps
            .entry(edit.rep.as_str().to_owned())
            .or_default()
            .apply(edit);
    }

    pub fn rep(&self, rep: &str) -> Option<&RepRuntime> {
        self.reps.get(rep)
    }

    /// What a team's decision reads: the rotation and its members' states at `at`.
    pub fn team_state(
        &self,
        routing: &RoutingModel,
        team: &str,
        rotation: &str,
        at: DateTime<Utc>,
    ) -> TeamState {
        let reps = routing
            .members(team)
            .iter()
            .filter_map(|rep| Some((rep.clone(), self.reps.get(rep)?.state_at(at))))
            .collect();
        TeamState {
            rotation: rotation.to_owned(),
            reps,
        }
    }

    /// The capacity in force for a rep: the override, else the rules file's.
    pub fn capacity(&self, routing: &RoutingModel, rep: &str) -> u32 {
        self.reps
            .get(rep)
            .and_then(|r| r.capacity)
            .unwrap_or_else(|| routing.rep_capacity(rep))
    }

    /// Whether the rep is active: the override, else the rules file's.
    pub fn active(&self, routing: &RoutingModel, rep: &str) -> bool {
        self.reps
            .get(rep)
            .and_then(|r| r.active)
            .unwrap_or_else(|| routing.rep_active(rep))
    }

    /// Whether the rep was set unavailable by a roster line itself (not by a span).
    pub fn marked_unavailable(&self, rep: &str) -> bool {
        self.reps
            .get(rep)
            .is_some_and(|r| r.available == Some(false))
    }

    /// Opens a lead on the rep and counts it for the day of `at`; returns the open leads.
    pub fn assign(&mut self, rep: &str, lead: usize, at: DateTime<Utc>) -> usize {
        let runtime = self.reps.entry(rep.to_owned()).or_default();
        let today = at.date_naive();
        if runtime.day != Some(today) {
            runtime.day = Some(today);
            runtime.assigned_on_day = 0;
        }
        runtime.assigned_on_day = runtime.assigned_on_day.saturating_add(1);
        runtime.assigned += 1;
        runtime.open.insert(lead);
        runtime.peak_open = runtime.peak_open.max(runtime.open.len());
        runtime.open.len()
    }

    /// Gives the rep a repeat of a lead still open with them: counted as assigned, but
    /// neither in their open leads (capacity) nor for the day (daily cap).
    pub fn join(&mut self, rep: &str, lead: usize) -> usize {
        let runtime = self.reps.entry(rep.to_owned()).or_default();
        runtime.assigned += 1;
        runtime.joined.insert(lead);
        runtime.open.len()
    }

    /// Whether the lead is open with the rep (holding capacity).
    pub fn is_open(&self, rep: &str, lead: usize) -> bool {
        self.reps.get(rep).is_some_and(|r| r.open.contains(&lead))
    }

    /// Takes a lead off the rep's open leads (or joined repeats); `false` if it was not open.
    pub fn close(&mut self, rep: &str, lead: usize) -> bool {
        self.reps.get_mut(rep).is_some_and(|runtime| {
            let open = runtime.open.remove(&lead);
            runtime.joined.remove(&lead) || open
        })
    }

    /// The ends of the spans added by roster lines after `at`: when a rep may come back.
    pub fn next_span_edge(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.reps
            .values()
            .flat_map(|r| r.away.iter())
            .flat_map(|s| [s.from, s.to])
            .filter(|edge| *edge > at)
            .min()
    }
}
