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

    /// `Ok(())` when the condition holds; otherwise the condition that failed, for the
    /// explanation.
    pub fn check(&self, lead: &Lead, score: &Score) -> Result<(), String> {
        match self {
            Condition::Always => Ok(()),
            Condition::All(conditions) => conditions.iter().try_for_each(|c| c.check(lead, score)),
            Condition::Any(conditions) => {
                let mut failures = Vec::new();
                for c in conditions {
                    match c.check(lead, score) {
                        Ok(()) => return Ok(()),
                        Err(e) => failures.push(e),
                    }
                }
                Err(format!("none of: {}", failures.join("; ")))
            }
            Condition::Not(inner) => match inner.check(lead, score) {
                Ok(()) => Err(format!("not ({})", inner.describe())),
                Err(_) => Ok(()),
            },
            Condition::Equals(field, expected) => {
                let value = field.value(lead, score);
                if value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case(expected))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "{} = {}, not {expected:?}",
                        field.name(),
                        shown(value.as_deref())
                    ))
                }
            }
            Condition::In(field, options) => {
                let value = field.value(lead, score);
                if value
                    .as_deref()
                    .is_some_and(|v| options.iter().any(|o| o.eq_ignore_ascii_case(v)))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "{} = {}, not in [{}]",
                        field.name(),
                        shown(value.as_deref()),
                        options.join(", ")
                    ))
                }
            }
            Condition::Range { field, min, max } => {
                let value = field.value(lead, score);
                let number = value.as_deref().and_then(|v| v.parse::<f64>().ok());
                let inside = number.is_some_and(|n| {
                    min.is_none_or(|min| n >= min) && max.is_none_or(|max| n <= max)
                });
                if inside {
                    Ok(())
                } else {
                    Err(format!(
                        "{} = {}, outside {}..{}",
                        field.name(),
                        shown(value.as_deref()),
                        min.map(|m| m.to_string()).unwrap_or_default(),
                        max.map(|m| m.to_string()).unwrap_or_default()
                    ))
                }
            }
            Condition::Prefix(field, prefixes) => {
                let value = field.value(lead, score);
                let matches = value
                    .as_deref()
                    .is_some_and(|v| prefixes.iter().any(|p| starts_with_ignore_ascii_case(v, p)));
                if matches {
                    Ok(())
                } else {
                    Err(format!(
                        "{} = {}, no prefix in [{}]",
                        field.name(),
                        shown(value.as_deref()),
                        prefixes.join(", ")
                    ))
                }
            }
            Condition::Exists(field, expected) => {
                let present = field.value(lead, score).is_some();
                if present == *expected {
                    Ok(())
                } else if *expected {
                    Err(format!("{} is missing", field.name()))
                } else {
                    Err(format!("{} is present", field.name()))
                }
            }
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
