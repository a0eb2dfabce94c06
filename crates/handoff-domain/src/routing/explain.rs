//! What a routing explanation may show of the lead. A rule that did not match is explained
//! with the condition that failed, and by default with the lead's value of the field it
//! looked at (`company.country = "FR", not in [DE, AT]`): what an operator needs to see why.
//! `lead.assigned` and webhook bodies carry these explanations, so the rules file chooses
//! (`routing.explain_values`): the values of fields the rules name, or none at all.
//!
//! Emails and phone numbers are never shown: no condition can name `contact.email` or
//! `contact.phone`, and any other value that looks like one (a custom attribute, a company
//! name someone typed an address into) is redacted too.

use serde::Deserialize;

use super::condition::{Condition, FieldRef};
use crate::lead::Lead;
use crate::privacy::{looks_like_email, looks_like_phone};
use crate::scoring::Score;

/// `routing.explain_values` in the rules file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExplainValues {
    /// The lead's values of the fields rules name; never an email address or phone number.
    #[default]
    RuleFields,
    /// No lead values: which condition failed, and whether the field was missing.
    None,
}

/// Shown in place of a value that may not be shown.
const REDACTED: &str = "[redacted]";

/// Why `condition` does not hold for the lead, shown as `values` allows; `None` when it holds.
/// Whether a condition holds is [`Condition::check`]'s call alone; this only words it.
pub(crate) fn failed_condition(
    condition: &Condition,
    lead: &Lead,
    score: &Score,
    values: ExplainValues,
) -> Option<String> {
    match condition {
        Condition::Always => None,
        Condition::All(conditions) => conditions
            .iter()
            .find_map(|c| failed_condition(c, lead, score, values)),
        Condition::Any(conditions) => conditions
            .iter()
            .map(|c| failed_condition(c, lead, score, values))
            .collect::<Option<Vec<String>>>()
            .map(|failures| format!("none of: {}", failures.join("; "))),
        // The inner condition held; it is described as written in the rules, no lead value.
        Condition::Not(_) => condition.check(lead, score).err(),
        leaf => {
            let as_checked = leaf.check(lead, score).err()?;
            let field = leaf_field(leaf)?;
            let value = field.value(lead, score);
            match (values, value.as_deref()) {
                (_, None) => Some(as_checked),
                (ExplainValues::RuleFields, Some(v)) if !is_contact_detail(field, v) => {
                    Some(as_checked)
                }
                (_, Some(_)) => Some(redacted(leaf)),
            }
        }
    }
}

fn leaf_field(condition: &Condition) -> Option<&FieldRef> {
    match condition {
        Condition::Equals(field, _)
        | Condition::In(field, _)
        | Condition::Range { field, .. }
        | Condition::Prefix(field, _)
        | Condition::Exists(field, _) => Some(field),
        Condition::Always | Condition::All(_) | Condition::Any(_) | Condition::Not(_) => None,
    }
}

/// The failure of a comparison whose field is present, with the value left out.
fn redacted(condition: &Condition) -> String {
    match condition {
        Condition::Equals(field, expected) => {
            format!("{} = {REDACTED}, not {expected:?}", field.name())
        }
        Condition::In(field, options) => format!(
            "{} = {REDACTED}, not in [{}]",
            field.name(),
            options.join(", ")
        ),
        Condition::Range { field, min, max } => format!(
            "{} = {REDACTED}, outside {}..{}",
            field.name(),
            min.map(|m| m.to_string()).unwrap_or_default(),
            max.map(|m| m.to_string()).unwrap_or_default()
        ),
        Condition::Prefix(field, prefixes) => format!(
            "{} = {REDACTED}, no prefix in [{}]",
            field.name(),
            prefixes.join(", ")
        ),
        // `is present` shows no value.
        Condition::Exists(field, _) => format!("{} is present", field.name()),
        Condition::Always | Condition::All(_) | Condition::Any(_) | Condition::Not(_) => {
            condition.describe()
        }
    }
}

/// Text that looks like an email address or a phone number. Numeric fields (counts, the
/// score) are numbers, not phone numbers.
fn is_contact_detail(field: &FieldRef, value: &str) -> bool {
    use FieldRef::*;
    if matches!(
        field,
        Employees
            | PricingPageViews
            | ContentDownloads
            | WebinarsAttended
            | ScorePoints
            | DemoRequest
    ) {
        return false;
    }
    looks_like_email(value) || looks_like_phone(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::ConditionSpec;

    fn condition(spec: serde_json::Value) -> Condition {
        let spec: ConditionSpec = match serde_json::from_value(spec) {
            Ok(spec) => spec,
            Err(e) => panic!("{e}"),
        };
        match Condition::from_spec(&spec) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn score() -> Score {
        Score {
            points: 10,
            band: "C".to_owned(),
            qualified: true,
            fast_lane: false,
            contributions: Vec::new(),
            model_version: String::new(),
        }
    }

    fn lead(json: serde_json::Value) -> Lead {
        let mut base = serde_json::json!({ "id": "l1", "received_at": "2026-01-01T00:00:00Z" });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), json.as_object()) {
            base.extend(extra.clone());
        }
        match serde_json::from_value(base) {
            Ok(lead) => lead,
            Err(e) => panic!("{e}"),
        }
    }

    fn explain(c: &Condition, l: &Lead, values: ExplainValues) -> Option<String> {
        failed_condition(c, l, &score(), values)
    }

    #[test]
    fn by_default_the_values_of_rule_fields_are_shown_as_the_rule_engine_words_them() {
        let c = condition(
            serde_json::json!({ "all": [{ "field": "company.country", "in": ["US", "CA"] }] }),
        );
        let l = lead(serde_json::json!({ "company": { "country": "DE" } }));
        assert_eq!(
            explain(&c, &l, ExplainValues::RuleFields),
            c.check(&l, &score()).err()
        );
        assert_eq!(
            explain(&c, &l, ExplainValues::RuleFields).as_deref(),
            Some("company.country = \"DE\", not in [US, CA]")
        );
    }

    #[test]
    fn with_none_no_lead_value_is_shown() {
        let c = condition(serde_json::json!({ "any": [
            { "field": "company.country", "in": ["US"] },
            { "field": "company.employees", "min": 500 },
            { "field": "company.region", "exists": true },
        ] }));
        let l = lead(serde_json::json!({ "company": { "country": "DE", "employees": 42 } }));
        assert_eq!(
            explain(&c, &l, ExplainValues::None).as_deref(),
            Some("none of: company.country = [redacted], not in [US]; company.employees = [redacted], outside 500..; company.region is missing")
        );
    }

    #[test]
    fn a_holding_condition_has_no_explanation_in_either_mode() {
        let c =
            condition(serde_json::json!({ "not": { "field": "company.country", "in": ["US"] } }));
        let l = lead(serde_json::json!({ "company": { "country": "DE" } }));
        for values in [ExplainValues::RuleFields, ExplainValues::None] {
            assert_eq!(explain(&c, &l, values), None);
        }
        let us = lead(serde_json::json!({ "company": { "country": "US" } }));
        assert_eq!(
            explain(&c, &us, ExplainValues::None).as_deref(),
            Some("not (company.country in [US])"),
            "a negation shows the rule's values, not the lead's"
        );
    }

    #[test]
    fn emails_and_phone_numbers_are_never_shown_even_from_rule_fields() {
        let c = condition(serde_json::json!({ "field": "custom.contact", "equals": "x" }));
        for (value, hidden) in [
            ("jane.doe@example.com", true),
            ("+49 (0)30 1234-5678", true),
            ("030/12345678", true),
            ("partner-gold", false),
            ("100-0001", false),
        ] {
            let l = lead(serde_json::json!({ "custom": { "contact": value } }));
            let shown = explain(&c, &l, ExplainValues::RuleFields).unwrap_or_default();
            assert_eq!(shown.contains(value), !hidden, "{value}: {shown}");
            if hidden {
                assert_eq!(shown, "custom.contact = [redacted], not \"x\"");
            }
        }
        let big = condition(serde_json::json!({ "field": "company.employees", "max": 10 }));
        let l = lead(serde_json::json!({ "company": { "employees": 12345678 } }));
        assert_eq!(
            explain(&big, &l, ExplainValues::RuleFields).as_deref(),
            Some("company.employees = \"12345678\", outside ..10"),
            "a count is not a phone number"
        );
    }

    #[test]
    fn the_rules_file_option_reaches_the_explanation_of_every_miss() {
        use crate::routing::{RoutingConfig, RoutingModel};
        let misses = |explain_values: &str| {
            let config: RoutingConfig = match serde_json::from_value(serde_json::json!({
                "explain_values": explain_values,
                "teams": [{ "id": "t", "members": ["a"] }],
                "reps": [{ "id": "a", "capacity": 1 }],
                "rules": [
                    { "name": "na", "team": "t", "when": { "field": "company.country", "in": ["US"] } },
                    { "name": "rest", "team": "t" },
                ],
            })) {
                Ok(c) => c,
                Err(e) => panic!("{e}"),
            };
            let model = match RoutingModel::new(config, "v") {
                Ok(m) => m,
                Err(e) => panic!("{e:?}"),
            };
            let l = lead(serde_json::json!({ "company": { "country": "DE" } }));
            let matched = model.match_rule(&l, &score());
            let mut decision = model.choose(
                matched,
                &std::collections::BTreeMap::new(),
                chrono::Utc::now(),
            );
            model.explain_misses(&mut decision, &l, &score());
            decision
                .explanation
                .rules_not_matched
                .into_iter()
                .map(|m| m.failed_condition)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            misses("rule_fields"),
            ["company.country = \"DE\", not in [US]"]
        );
        assert_eq!(
            misses("none"),
            ["company.country = [redacted], not in [US]"]
        );
    }

    #[test]
    fn the_option_is_written_in_snake_case() {
        #[derive(Deserialize)]
        struct Holder {
            v: ExplainValues,
        }
        let parsed: Result<Holder, _> = serde_json::from_value(serde_json::json!({ "v": "none" }));
        assert_eq!(parsed.map(|h| h.v).ok(), Some(ExplainValues::None));
        let bad: Result<Holder, _> = serde_json::from_value(serde_json::json!({ "v": "all" }));
        let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("expected `rule_fields` or `none`"),
            "{message}"
        );
    }
}
