//! Rule conditions: on any lead field (custom attributes included) or on the score.
//!
//! Written in TOML as a table with one operator, e.g.
//! `{ field = "company.country", in = ["DE", "AT"] }`,
//! `{ all = [ ..., ... ] }`, `{ not = { field = "custom.partner", exists = true } }`.

use std::borrow::Cow;

use serde::Deserialize;

use crate::lead::Lead;
use crate::scoring::Score;

/// The condition as written, before it is checked: exactly one operator must be set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    #[serde(default)]
    pub all: Option<Vec<ConditionSpec>>,
    #[serde(default)]
    pub any: Option<Vec<ConditionSpec>>,
    #[serde(default)]
    pub not: Option<Box<ConditionSpec>>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default, rename = "in")]
    pub in_list: Option<Vec<String>>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub prefix: Option<Vec<String>>,
    #[serde(default)]
    pub exists: Option<bool>,
}

/// A lead field a condition can look at, resolved once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    SourceKind,
    SourceName,
    SourceCampaign,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    EmailDomain,
    Title,
    CompanyName,
    CompanyDomain,
    Employees,
    Industry,
    Country,
    Region,
    PostalCode,
    DemoRequest,
    PricingPageViews,
    ContentDownloads,
    WebinarsAttended,
    ScorePoints,
    ScoreBand,
    Custom(String),
}

/// Every field a condition can name (besides `custom.NAME`): the one table both parsing
/// and explanations read.
const FIELDS: &[(&str, FieldRef)] = &[
    ("source.kind", FieldRef::SourceKind),
    ("source.name", FieldRef::SourceName),
    ("source.campaign", FieldRef::SourceCampaign),
    ("source.utm.source", FieldRef::UtmSource),
    ("source.utm.medium", FieldRef::UtmMedium),
    ("source.utm.campaign", FieldRef::UtmCampaign),
    ("contact.email_domain", FieldRef::EmailDomain),
    ("contact.title", FieldRef::Title),
    ("company.name", FieldRef::CompanyName),
    ("company.domain", FieldRef::CompanyDomain),
    ("company.employees", FieldRef::Employees),
    ("company.industry", FieldRef::Industry),
    ("company.country", FieldRef::Country),
    ("company.region", FieldRef::Region),
    ("company.postal_code", FieldRef::PostalCode),
    ("engagement.demo_request", FieldRef::DemoRequest),
    ("engagement.pricing_page_views", FieldRef::PricingPageViews),
    ("engagement.content_downloads", FieldRef::ContentDownloads),
    ("engagement.webinars_attended", FieldRef::WebinarsAttended),
    ("score.points", FieldRef::ScorePoints),
    ("score.band", FieldRef::ScoreBand),
];

impl FieldRef {
    pub fn parse(path: &str) -> Result<Self, String> {
        if let Some((_, field)) = FIELDS.iter().find(|(name, _)| *name == path) {
            return Ok(field.clone());
        }
        match path.strip_prefix("custom.") {
            Some(name) if !name.is_empty() => Ok(FieldRef::Custom(name.to_owned())),
            _ => {
                let names: Vec<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
                Err(format!(
                    "unknown field `{path}`, expected one of {} or custom.NAME",
                    names.join(", ")
                ))
            }
        }
    }

    pub(crate) fn value<'a>(&self, lead: &'a Lead, score: &'a Score) -> Option<Cow<'a, str>> {
        use FieldRef::*;
        let text = |s: &'a str| (!s.is_empty()).then_some(Cow::Borrowed(s));
        let count = |n: u32| Some(Cow::Owned(n.to_string()));
        match self {
            SourceKind => text(&lead.source.kind),
            SourceName => text(&lead.source.name),
            SourceCampaign => text(&lead.source.campaign),
            UtmSource => text(&lead.source.utm.source),
            UtmMedium => text(&lead.source.utm.medium),
            UtmCampaign => text(&lead.source.utm.campaign),
            EmailDomain => lead.email_domain().map(Cow::Borrowed),
            Title => text(&lead.contact.title),
            CompanyName => text(&lead.company.name),
            CompanyDomain => text(&lead.company.domain),
            Employees => lead.company.employees.and_then(count),
            Industry => text(&lead.company.industry),
            Country => text(&lead.company.country),
            Region => text(&lead.company.region),
            PostalCode => text(&lead.company.postal_code),
            DemoRequest => Some(Cow::Borrowed(if lead.engagement.demo_request {
                "true"
            } else {
                "false"
            })),
            PricingPageViews => count(lead.engagement.pricing_page_views),
            ContentDownloads => count(lead.engagement.content_downloads),
            WebinarsAttended => count(lead.engagement.webinars_attended),
            ScorePoints => Some(Cow::Owned(score.points.to_string())),
            ScoreBand => text(&score.band),
            Custom(name) => lead.custom.get(name).map(|v| Cow::Borrowed(v.as_str())),
        }
    }

    /// The field as a number, for ranges: counts as they are (no text round trip on the
    /// hot path), any other field's text parsed.
    pub(crate) fn number(&self, lead: &Lead, score: &Score) -> Option<f64> {
        match self {
            FieldRef::Employees => lead.company.employees.map(f64::from),
            FieldRef::PricingPageViews => Some(f64::from(lead.engagement.pricing_page_views)),
            FieldRef::ContentDownloads => Some(f64::from(lead.engagement.content_downloads)),
            FieldRef::WebinarsAttended => Some(f64::from(lead.engagement.webinars_attended)),
            FieldRef::ScorePoints => Some(f64::from(score.points)),
            other => other.value(lead, score)?.parse().ok(),
        }
    }

    pub(crate) fn name(&self) -> Cow<'static, str> {
        match self {
            FieldRef::Custom(name) => Cow::Owned(format!("custom.{name}")),
            other => Cow::Borrowed(
                FIELDS
                    .iter()
                    .find(|(_, field)| field == other)
                    .map_or("?", |(name, _)| *name),
            ),
        }
    }
}

/// `value` starts with `prefix`, ASCII case ignored. Compares bytes: a prefix length that
/// falls inside a multi-byte character of `value` cannot match (the lead byte would differ),
/// and nothing is sliced at a byte index that may not be a character boundary.
fn starts_with_ignore_ascii_case(value: &str, prefix: &str) -> bool {
    value
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// A field's value for an explanation: quoted, or `missing`.
fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "missing".to_owned(), |v| format!("{v:?}"))
}

/// A checked condition, ready to evaluate. String comparisons ignore ASCII case.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Always,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Equals(FieldRef, String),
    In(FieldRef, Vec<String>),
    Range {
        field: FieldRef,
        min: Option<f64>,
        max: Option<f64>,
    },
    Prefix(FieldRef, Vec<String>),
    Exists(FieldRef, bool),
}

impl Condition {
    /// Checks a spec: exactly one operator, known fields. The error names the problem.
    pub fn from_spec(spec: &ConditionSpec) -> Result<Self, String> {
        let combinators = [spec.all.is_some(), spec.any.is_some(), spec.not.is_some()]
            .into_iter()
            .filter(|set| *set)
            .count();
        let comparisons = [
            spec.equals.is_some(),
            spec.in_list.is_some(),
            spec.min.is_some() || spec.max.is_some(),
            spec.prefix.is_some(),
            spec.exists.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if combinators + comparisons == 0 && spec.field.is_none() {
            return Ok(Condition::Always);
        }
        if combinators + comparisons != 1 {
            return Err(
                "a condition takes exactly one of: all, any, not, or a field with one of equals, in, min/max, prefix, exists"
                    .to_owned(),
            );
        }
        let list = |specs: &[ConditionSpec]| -> Result<Vec<Condition>, String> {
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| Self::from_spec(s).map_err(|e| format!("[{i}]: {e}")))
                .collect()
        };
        if let Some(specs) = &spec.all {
            return list(specs).map(Condition::All);
        }
        if let Some(specs) = &spec.any {
            return list(specs).map(Condition::Any);
        }
        if let Some(inner) = &spec.not {
            return Self::from_spec(inner).map(|c| Condition::Not(Box::new(c)));
        }
        let field = spec
            .field
            .as_deref()
            .ok_or_else(|| "a comparison needs `field`".to_owned())
            .and_then(FieldRef::parse)?;
        Ok(if let Some(value) = &spec.equals {
            Condition::Equals(field, value.clone())
        } else if let Some(values) = &spec.in_list {
            Condition::In(field, values.clone())
        } else if let Some(prefixes) = &spec.prefix {
            Condition::Prefix(field, prefixes.clone())
        } else if let Some(exists) = spec.exists {
            Condition::Exists(field, exists)
        } else {
            Condition::Range {
                field,
                min: spec.min,
                max: spec.max,
            }
        })
    }

    /// Whether the condition holds for the lead: what routing decides by. No text is made
    /// here; [`Self::check`] words a failure when an explanation needs it.
    pub fn holds(&self, lead: &Lead, score: &Score) -> bool {
        match self {
            Condition::Always => true,
            Condition::All(conditions) => conditions.iter().all(|c| c.holds(lead, score)),
            Condition::Any(conditions) => conditions.iter().any(|c| c.holds(lead, score)),
            Condition::Not(inner) => !inner.holds(lead, score),
            Condition::Equals(field, expected) => field
                .value(lead, score)
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case(expected)),
            Condition::In(field, options) => field
                .value(lead, score)
                .as_deref()
                .is_some_and(|v| options.iter().any(|o| o.eq_ignore_ascii_case(v))),
            Condition::Range { field, min, max } => field
                .number(lead, score)
                .is_some_and(|n| min.is_none_or(|min| n >= min) && max.is_none_or(|max| n <= max)),
            Condition::Prefix(field, prefixes) => field
                .value(lead, score)
                .as_deref()
                .is_some_and(|v| prefixes.iter().any(|p| starts_with_ignore_ascii_case(v, p))),
            Condition::Exists(field, expected) => field.value(lead, score).is_some() == *expected,
        }
    }

    /// `Ok(())` when the condition holds; otherwise the condition that failed, for the
    /// explanation.
    pub fn check(&self, lead: &Lead, score: &Score) -> Result<(), String> {
        if self.holds(lead, score) {
            Ok(())
        } else {
            Err(self.why_not(lead, score))
        }
    }

    /// Words why a condition that does not hold fails.
    fn why_not(&self, lead: &Lead, score: &Score) -> String {
        let value = |field: &FieldRef| shown(field.value(lead, score).as_deref());
        match self {
            // Never fails; worded as written should a caller ask anyway.
            Condition::Always => self.describe(),
            Condition::All(conditions) => conditions
                .iter()
                .find(|c| !c.holds(lead, score))
                .map(|c| c.why_not(lead, score))
                .unwrap_or_else(|| self.describe()),
            Condition::Any(conditions) => format!(
                "none of: {}",
                conditions
                    .iter()
                    .map(|c| c.why_not(lead, score))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Condition::Not(inner) => format!("not ({})", inner.describe()),
            Condition::Equals(field, expected) => {
                format!("{} = {}, not {expected:?}", field.name(), value(field))
            }
            Condition::In(field, options) => format!(
                "{} = {}, not in [{}]",
                field.name(),
                value(field),
                options.join(", ")
            ),
            Condition::Range { field, min, max } => format!(
                "{} = {}, outside {}..{}",
                field.name(),
                value(field),
                min.map(|m| m.to_string()).unwrap_or_default(),
                max.map(|m| m.to_string()).unwrap_or_default()
            ),
            Condition::Prefix(field, prefixes) => format!(
                "{} = {}, no prefix in [{}]",
                field.name(),
                value(field),
                prefixes.join(", ")
            ),
            Condition::Exists(field, true) => format!("{} is missing", field.name()),
            Condition::Exists(field, false) => format!("{} is present", field.name()),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Condition::Always => "always".to_owned(),
            Condition::All(c) => format!("all of {} conditions", c.len()),
            Condition::Any(c) => format!("any of {} conditions", c.len()),
            Condition::Not(c) => format!("not ({})", c.describe()),
            Condition::Equals(f, v) => format!("{} = {v:?}", f.name()),
            Condition::In(f, v) => format!("{} in [{}]", f.name(), v.join(", ")),
            Condition::Range { field, .. } => format!("{} in range", field.name()),
            Condition::Prefix(f, p) => format!("{} starts with [{}]", f.name(), p.join(", ")),
            Condition::Exists(f, e) => format!("{} exists = {e}", f.name()),
        }
    }
}
