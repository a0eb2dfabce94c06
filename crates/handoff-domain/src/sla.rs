//! The first-touch SLA: when an assignment's first touch is due, and which outcomes stop
//! the clock.

use chrono::{DateTime, Duration, Utc};

use crate::disposition::Outcome;

/// Default first-touch window: the five minutes that decide whether a lead qualifies.
pub const DEFAULT_FIRST_TOUCH_SECONDS: u32 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaPolicy {
    pub first_touch_seconds: u32,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            first_touch_seconds: DEFAULT_FIRST_TOUCH_SECONDS,
        }
    }
}

impl SlaPolicy {
    /// When the first touch of an assignment made at `assigned_at` is due; a team's own
    /// window, when it has one, wins over the default.
    pub fn due_at(&self, assigned_at: DateTime<Utc>, team_seconds: Option<u32>) -> DateTime<Utc> {
        let seconds = team_seconds.unwrap_or(self.first_touch_seconds);
        // `assigned_at` may come off a topic: a time near the end of chrono's range must
        // not overflow (`+` panics), it is due at the end of time instead.
        assigned_at
            .checked_add_signed(Duration::seconds(i64::from(seconds)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// Whether a disposition counts as the first touch (stops the clock and frees the rep's
/// capacity). Everything a rep or CRM reports means a human looked at the lead; system
/// outcomes do not.
pub fn is_first_touch(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Accepted
            | Outcome::Contacted
            | Outcome::Rejected
            | Outcome::Converted
            | Outcome::Recycled
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_window_overrides_the_default() {
        let t0 = Utc::now();
        let policy = SlaPolicy::default();
        assert_eq!(policy.due_at(t0, None), t0 + Duration::seconds(300));
        assert_eq!(policy.due_at(t0, Some(60)), t0 + Duration::seconds(60));
    }

    #[test]
    fn an_assignment_at_the_end_of_time_does_not_overflow() {
        let policy = SlaPolicy::default();
        assert_eq!(
            policy.due_at(DateTime::<Utc>::MAX_UTC, Some(u32::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn only_human_outcomes_stop_the_clock() {
        assert!(is_first_touch(Outcome::Contacted));
        assert!(!is_first_touch(Outcome::Unqualified));
        assert!(!is_first_touch(Outcome::Overflowed));
    }
}
