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
    /// What a conversion was worth: positive, at most 4 decimal places; only with the
    /// outcome `converted`, and then with `currency`.
    #[serde(default)]
    pub amount: Option<f64>,
    /// The amount's ISO 4217 code (`EUR`, `usd`: any case, kept upper case).
    #[serde(default)]
    pub currency: Option<String>,
}

/// Amounts are kept in ten-thousandths of the currency unit: exact for every ISO 4217
/// currency (none has more than 4 minor digits) and summable without float drift.
pub const AMOUNT_SCALE: i64 = 10_000;

/// The largest amount accepted (a lead worth more is a typo, not a deal).
pub const MAX_AMOUNT: f64 = 1e12;

/// A conversion's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// Ten-thousandths of the currency's unit ([`AMOUNT_SCALE`]).
    pub units: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
}

impl Money {
    /// The amount as a plain decimal string (`1250.5`, `99`), as events carry it.
    pub fn amount_text(&self) -> String {
        format_units(self.units)
    }

    /// Reads an event's `amount` and `currency` back; `None` when either is absent or the
    /// amount is not a positive decimal with at most 4 places.
    pub fn from_event(amount: &str, currency: &str) -> Option<Self> {
        let units = parse_units(amount)?;
        (units > 0 && is_currency_code(currency)).then(|| Money {
            units,
            currency: currency.to_owned(),
        })
    }
}

/// `units` (ten-thousandths) as a decimal without trailing zeros.
pub fn format_units(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    let scale = AMOUNT_SCALE.unsigned_abs();
    let (whole, fraction) = (abs / scale, abs % scale);
    if fraction == 0 {
        format!("{sign}{whole}")
    } else {
        let digits = format!("{fraction:04}");
        format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// A non-negative decimal with at most 4 places, in ten-thousandths.
pub fn parse_units(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || fraction.len() > 4 || !(fraction.is_empty() || digits(fraction)) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<4}").parse().ok()?;
    whole.checked_mul(AMOUNT_SCALE)?.checked_add(fraction)
}

/// Three ASCII letters, upper case: the shape of an ISO 4217 code. (The list of codes in
/// use changes; the shape does not, and a wrong but well-formed code shows as its own
/// currency in the funnel rather than being summed into another.)
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase())
}

/// `amount` in ten-thousandths, or why not.
fn amount_units(amount: f64) -> Result<i64, &'static str> {
    if !amount.is_finite() || amount <= 0.0 {
        return Err("amount must be a positive number");
    }
    if amount > MAX_AMOUNT {
        return Err("amount must be at most 1000000000000");
    }
    let scaled = amount * AMOUNT_SCALE as f64;
    let units = scaled.round();
    // Binary floats: 19.99 is 199899.99999999997 ten-thousandths; a fifth decimal is not.
    if (scaled - units).abs() > 1e-6 * scaled.max(1.0) || units < 1.0 {
        return Err("amount has at most 4 decimal places");
    }
    // In range: at most 1e16, below i64::MAX.
    Ok(units as i64)
}

/// A checked disposition report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    pub outcome: Outcome,
    pub reason_code: String,
    pub note: String,
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
    /// A conversion's value, when reported.
    pub value: Option<Money>,
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
        let value = self.value(outcome, &mut errors);
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
                value,
            }),
            _ => Err(ValidationErrors(errors)),
        }
    }

    /// `amount` and `currency`: both or neither, and only on a conversion.
    fn value(&self, outcome: Option<Outcome>, errors: &mut Vec<FieldError>) -> Option<Money> {
        let currency = self
            .currency
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if self.amount.is_none() && currency.is_none() {
            return None;
        }
        if outcome.is_some_and(|o| o != Outcome::Converted) {
            let field = if self.amount.is_some() {
                "amount"
            } else {
                "currency"
            };
            errors.push(FieldError::new(
                field,
                "invalid",
                format!("{field} is only allowed when the outcome is converted"),
            ));
            return None;
        }
        let units = match self.amount {
            None => {
                errors.push(FieldError::new(
                    "amount",
                    "required",
                    "amount is required with a currency",
                ));
                None
            }
            Some(amount) => match amount_units(amount) {
                Ok(units) => Some(units),
                Err(message) => {
                    errors.push(FieldError::new("amount", "invalid", message));
                    None
                }
            },
        };
        let currency = match currency.map(str::to_ascii_uppercase) {
            None => {
                errors.push(FieldError::new(
                    "currency",
                    "required",
                    "currency is required with an amount",
                ));
                None
            }
            Some(code) if is_currency_code(&code) => Some(code),
            Some(_) => {
                errors.push(FieldError::new(
                    "currency",
                    "invalid",
                    "currency must be an ISO 4217 code of three letters, e.g. EUR",
                ));
                None
            }
        };
        Some(Money {
            units: units?,
            currency: currency?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converted(amount: Option<f64>, currency: Option<&str>) -> DispositionSubmission {
        DispositionSubmission {
            outcome: Some("converted".into()),
            amount,
            currency: currency.map(str::to_owned),
            ..Default::default()
        }
    }

    fn fields(result: Result<Disposition, ValidationErrors>) -> Vec<(String, &'static str)> {
        result
            .err()
            .map(|e| e.0.iter().map(|f| (f.field.clone(), f.code)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_conversion_carries_a_positive_amount_in_an_iso_currency() {
        let value = converted(Some(1250.5), Some("eur"))
            .validate(Utc::now())
            .map(|d| d.value);
        assert_eq!(
            value,
            Ok(Some(Money {
                units: 12_505_000,
                currency: "EUR".into()
            }))
        );
        // Binary floats do not lose a cent.
        let cents = converted(Some(19.99), Some("USD")).validate(Utc::now());
        assert_eq!(
            cents.ok().and_then(|d| d.value).map(|m| m.amount_text()),
            Some("19.99".to_owned())
        );
        assert_eq!(
            converted(None, None).validate(Utc::now()).map(|d| d.value),
            Ok(None)
        );
        for (amount, currency, field, code) in [
            (Some(0.0), Some("EUR"), "amount", "invalid"),
            (Some(-5.0), Some("EUR"), "amount", "invalid"),
            (Some(1.23456), Some("EUR"), "amount", "invalid"),
            (Some(f64::INFINITY), Some("EUR"), "amount", "invalid"),
            (Some(10.0), Some("EURO"), "currency", "invalid"),
            (Some(10.0), Some("E1R"), "currency", "invalid"),
            (Some(10.0), None, "currency", "required"),
            (None, Some("EUR"), "amount", "required"),
        ] {
            assert_eq!(
                fields(converted(amount, currency).validate(Utc::now())),
                vec![(field.to_owned(), code)],
                "{amount:?} {currency:?}"
            );
        }
        let accepted = DispositionSubmission {
            outcome: Some("accepted".into()),
            amount: Some(10.0),
            currency: Some("EUR".into()),
            ..Default::default()
        };
        assert_eq!(
            fields(accepted.validate(Utc::now())),
            vec![("amount".to_owned(), "invalid")]
        );
    }

    #[test]
    fn amounts_round_trip_through_the_event_text() {
        for (units, text) in [(12_505_000, "1250.5"), (990_000, "99"), (1, "0.0001")] {
            assert_eq!(format_units(units), text);
            assert_eq!(parse_units(text), Some(units));
        }
        assert_eq!(parse_units("1.23456"), None);
        assert_eq!(parse_units("-1"), None);
        assert_eq!(parse_units("1e3"), None);
        assert_eq!(parse_units(""), None);
        assert_eq!(Money::from_event("10", "usd"), None);
        assert_eq!(Money::from_event("0", "USD"), None);
    }

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
