//! Outcomes reps and CRMs report (`POST /v1/leads/{id}/dispositions`), and the ones the
//! system decides itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validation::{has_control_character, limits, FieldError, Lines, ValidationErrors};

/// proto: `handoff.v1.LeadDisposition.Outcome` (JSON: the enum value names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Accepted,
    Contacted,
    Rejected,
    Converted,
    Recycled,
    Unqualified,
    Overflowed,
    /// A missed first touch: the lead went to another rep of the team.
    Reassigned,
    /// Attempts exhausted: the lead went to the escalation team, or stays and the
    /// manager is told.
    Escalated,
}

impl Outcome {
    /// Outcomes a rep or CRM may report; the others are the system's.
    pub const REPORTABLE: [Outcome; 5] = [
        Outcome::Accepted,
        Outcome::Contacted,
        Outcome::Rejected,
        Outcome::Converted,
        Outcome::Recycled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Contacted => "contacted",
            Outcome::Rejected => "rejected",
            Outcome::Converted => "converted",
            Outcome::Recycled => "recycled",
            Outcome::Unqualified => "unqualified",
            Outcome::Overflowed => "overflowed",
            Outcome::Reassigned => "reassigned",
            Outcome::Escalated => "escalated",
        }
    }
}

/// proto: `handoff.v1.LeadDisposition.ActorKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActorKind {
    Rep,
    Crm,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub kind: ActorKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

/// The JSON body of `POST /v1/leads/{id}/dispositions`. Strings are accepted in any case
/// (`contacted`, `CONTACTED`).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DispositionSubmission {
    /// One of `accepted`, `contacted`, `rejected`, `converted`, `recycled` (any case).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub outcome: Option<String>,
    /// Required when the outcome is `rejected`; one of `ingest.reason_codes`.
    #[serde(default)]
    pub reason_code: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// `rep` (default) or `crm`.
    #[serde(default)]
    pub actor: Option<String>,
    /// The rep or CRM user reporting.
    #[serde(default)]
    pub actor_id: Option<String>,
    /// When it happened (default now); not in the future, not before the assignment.
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A checked disposition report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    pub outcome: Outcome,
    pub reason_code: String,
    pub note: String,
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
}

impl DispositionSubmission {
    pub fn validate(self, now: DateTime<Utc>) -> Result<Disposition, ValidationErrors> {
        let mut errors = Vec::new();
        let allowed: Vec<&str> = Outcome::REPORTABLE.iter().map(|o| o.as_str()).collect();
        let outcome = match self.outcome.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push(FieldError::required("outcome"));
                None
            }
            Some(raw) => {
                let found = Outcome::REPORTABLE
                    .into_iter()
                    .find(|o| o.as_str().eq_ignore_ascii_case(raw));
                if found.is_none() {
                    errors.push(FieldError::new(
                        "outcome",
                        "invalid",
                        format!("outcome must be one of {}", allowed.join(", ")),
                    ));
                }
                found
            }
        };
        let reason_code = self.reason_code.unwrap_or_default().trim().to_lowercase();
        if outcome == Some(Outcome::Rejected) && reason_code.is_empty() {
            errors.push(FieldError::new(
                "reason_code",
                "required",
                "reason_code is required when the outcome is rejected",
            ));
        }
        if !reason_code.is_empty()
            && (reason_code.len() > 64
                || !reason_code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            errors.push(FieldError::new(
                "reason_code",
                "invalid",
                "reason_code is 1 to 64 characters of a-z, 0-9, _ and -",
            ));
        }
        let note = self.note.unwrap_or_default().trim().to_owned();
        if has_control_character(&note, Lines::Many) {
            errors.push(FieldError::control_character("note", Lines::Many));
        } else if note.chars().count() > limits::NOTE {
            errors.push(FieldError::too_long("note", limits::NOTE));
        }
        let kind = match self.actor.as_deref().map(str::trim) {
            None | Some("") => Some(ActorKind::Rep),
            Some(a) if a.eq_ignore_ascii_case("rep") => Some(ActorKind::Rep),
            Some(a) if a.eq_ignore_ascii_case("crm") => Some(ActorKind::Crm),
            Some(_) => {
                errors.push(FieldError::new(
                    "actor",
                    "invalid",
                    "actor must be one of rep, crm",
                ));
                None
            }
        };
        let actor_id = self.actor_id.unwrap_or_default().trim().to_owned();
        if has_control_character(&actor_id, Lines::One) {
            errors.push(FieldError::control_character("actor_id", Lines::One));
        } else if actor_id.len() > limits::ID {
            errors.push(FieldError::too_long("actor_id", limits::ID));
        }
        match (outcome, kind, errors.is_empty()) {
            (Some(outcome), Some(kind), true) => Ok(Disposition {
                outcome,
                reason_code,
                note,
                actor: Actor { kind, id: actor_id },
                occurred_at: self.occurred_at.unwrap_or(now),
            }),
            _ => Err(ValidationErrors(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_case_insensitive_and_rejections_need_a_reason() {
        let ok = DispositionSubmission {
            outcome: Some("Contacted".into()),
            ..Default::default()
        }
        .validate(Utc::now());
        assert_eq!(ok.map(|d| d.outcome), Ok(Outcome::Contacted));

        let missing_reason = DispositionSubmission {
            outcome: Some("rejected".into()),
            ..Default::default()
        }
        .validate(Utc::now());
        assert_eq!(
            missing_reason.map_err(|e| e.0[0].field.clone()),
            Err("reason_code".to_owned())
        );

        let system_outcome = DispositionSubmission {
            outcome: Some("unqualified".into()),
            ..Default::default()
        }
        .validate(Utc::now());
        assert!(
            system_outcome.is_err(),
            "reps cannot report system outcomes"
        );
    }

    #[test]
    fn a_note_may_span_lines_but_holds_no_other_control_character() {
        let report = |note: &str, actor_id: &str| {
            DispositionSubmission {
                outcome: Some("contacted".into()),
                note: Some(note.into()),
                actor_id: Some(actor_id.into()),
                ..Default::default()
            }
            .validate(Utc::now())
            .map(|d| d.note)
            .map_err(|e| {
                e.0.iter()
                    .map(|f| (f.field.clone(), f.code))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            report("called\r\nleft a message\tretry", "ana"),
            Ok("called\r\nleft a message\tretry".to_owned())
        );
        assert_eq!(
            report("called\0", "ana\u{1b}[2J"),
            Err(vec![
                ("note".to_owned(), "control_character"),
                ("actor_id".to_owned(), "control_character")
            ])
        );
    }
}
