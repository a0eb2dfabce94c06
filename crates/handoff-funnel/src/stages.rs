//! What each disposition outcome means for the funnel, and which SLA a breach missed.

use handoff_domain::disposition::Outcome;
use handoff_domain::events::SlaBreached;
use handoff_domain::sla::is_first_touch;
use handoff_domain::sla::Sla;

/// How one outcome moves a lead through the funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeStage {
    /// The stage it counts in (`None`: a touch only, e.g. contacted).
    pub stage: Option<&'static str>,
    /// A human looked at the lead: its first touch, if none came before.
    pub touch: bool,
    /// An outcome marketing can use: ends the wait for feedback.
    pub feedback: bool,
    /// A stage it implies (an overflowed lead qualified; nobody could take it).
    pub implies: Option<&'static str>,
}

pub fn outcome_stage(outcome: Outcome) -> OutcomeStage {
    let (stage, feedback, implies) = match outcome {
        Outcome::Accepted => (Some("accepted"), true, None),
        Outcome::Rejected => (Some("rejected"), true, None),
        Outcome::Converted => (Some("converted"), true, None),
        Outcome::Recycled => (Some("recycled"), true, None),
        Outcome::Contacted => (None, false, None),
        Outcome::Unqualified => (Some("unqualified"), false, None),
        Outcome::Overflowed => (None, false, Some("qualified")),
        // The system acting on a missed first touch: neither a touch nor feedback.
        Outcome::Reassigned | Outcome::Escalated => (None, false, None),
    };
    OutcomeStage {
        stage,
        touch: is_first_touch(outcome),
        feedback,
        implies,
    }
}

/// Which SLA a breach missed (label `sla`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaKind {
    FirstTouch,
    Disposition,
}

impl SlaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SlaKind::FirstTouch => "first_touch",
            SlaKind::Disposition => "disposition",
        }
    }
}

/// The SLA a breach missed, as the event says.
pub fn sla_of(breach: &SlaBreached) -> SlaKind {
    match breach.sla {
        Sla::FirstTouch => SlaKind::FirstTouch,
        Sla::Disposition => SlaKind::Disposition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_is_what_marketing_can_use_and_every_reported_outcome_is_a_touch() {
        for outcome in Outcome::REPORTABLE {
            let stage = outcome_stage(outcome);
            assert!(stage.touch, "{outcome:?}");
            assert_eq!(stage.feedback, outcome != Outcome::Contacted, "{outcome:?}");
        }
        let overflowed = outcome_stage(Outcome::Overflowed);
        assert_eq!(
            (overflowed.stage, overflowed.touch, overflowed.implies),
            (None, false, Some("qualified"))
        );
        assert_eq!(
            outcome_stage(Outcome::Unqualified).stage,
            Some("unqualified")
        );
    }

    #[test]
    fn every_stage_an_outcome_counts_in_is_exported() {
        for outcome in Outcome::REPORTABLE
            .into_iter()
            .chain([Outcome::Unqualified, Outcome::Overflowed])
        {
            let stage = outcome_stage(outcome);
            for name in stage.stage.into_iter().chain(stage.implies) {
                assert!(handoff_telemetry::STAGES.contains(&name), "{name}");
            }
        }
    }
}
