//! The one shared MQL definition: a points model over fit, intent and negative signals.
//! Every score carries the rules that fired, so sales and marketing argue about the model
//! and not about mysteries.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::lead::Lead;

/// The scoring model as written in the rules file (`[scoring]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// Leads scoring at or above this are marketing-qualified.
    pub mql_threshold: i32,
    /// A demo request qualifies a lead whatever its score (hand-raisers never wait in nurture).
    #[serde(default)]
    pub demo_request_fast_lane: bool,
    /// Bands from best to worst; a lead gets the first band whose `min` it reaches.
    #[serde(default = "default_bands")]
    pub bands: Vec<Band>,
    /// Domains of free-mail providers (a negative signal, and never an account match).
    #[serde(default)]
    pub free_mail_domains: Vec<String>,
    #[serde(default)]
    pub rules: Vec<ScoringRule>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub name: String,
    pub min: i32,
}

fn default_bands() -> Vec<Band> {
    [("A", 80), ("B", 60), ("C", 40), ("D", i32::MIN)]
        .into_iter()
        .map(|(name, min)| Band {
            name: name.to_owned(),
            min,
        })
        .collect()
}

/// One line of the points model: when `when` holds, add `points` (negative for penalties).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringRule {
    pub name: String,
    pub points: i32,
    pub when: Signal,
}

/// What a scoring rule looks at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Signal {
    /// The job title contains any of these words (case-insensitive).
    TitleContains(Vec<String>),
    /// Company size within a band (either end open).
    Employees {
        #[serde(default)]
        min: Option<u32>,
        #[serde(default)]
        max: Option<u32>,
    },
    IndustryIn(Vec<String>),
    CountryIn(Vec<String>),
    DemoRequest,
    PricingPageViews {
        at_least: u32,
    },
    ContentDownloads {
        at_least: u32,
    },
    WebinarsAttended {
        at_least: u32,
    },
    /// The email domain is one of `free_mail_domains`.
    FreeMail,
    EmailDomainIn(Vec<String>),
    /// The part of the email before `@` is one of these (test/spam patterns: test, asdf, noreply).
    EmailLocalIn(Vec<String>),
    SourceKindIn(Vec<String>),
    /// Intent with recency decay: each activity of `kind` is worth the rule's points
    /// halved every `half_life_days` before the lead's receipt (rounded; capped at 10
    /// activities so one busy visitor cannot dominate).
    Activity {
        kind: String,
        half_life_days: f64,
    },
}

/// A lead's score, with its breakdown. Travels in `lead.assigned` and in nurture
/// dispositions (proto: `handoff.v1.Score`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Score {
    pub points: i32,
    pub band: String,
    #[serde(default)]
    pub qualified: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fast_lane: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributions: Vec<ScoreContribution>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreContribution {
    pub rule: String,
    pub points: i32,
}

/// A loaded, ready-to-evaluate model: keywords lower-cased once, lists as sets.
#[derive(Debug, Clone)]
pub struct ScoringModel {
    config: ScoringConfig,
    free_mail: BTreeSet<String>,
    version: String,
}

impl ScoringModel {
    /// `version` identifies the model's content (a hash of the file) and is stamped on scores.
    pub fn new(mut config: ScoringConfig, version: impl Into<String>) -> Self {
        for rule in &mut config.rules {
            match &mut rule.when {
                Signal::TitleContains(words)
                | Signal::IndustryIn(words)
                | Signal::EmailDomainIn(words)
                | Signal::EmailLocalIn(words)
                | Signal::SourceKindIn(words) => {
                    words.iter_mut().for_each(|w| *w = w.to_lowercase())
                }
                Signal::CountryIn(codes) => codes.iter_mut().for_each(|c| *c = c.to_uppercase()),
                _ => {}
            }
        }
        config.bands.sort_by_key(|b| std::cmp::Reverse(b.min));
        let free_mail = config
            .free_mail_domains
            .iter()
            .map(|d| d.to_lowercase())
            .collect();
        Self {
            config,
            free_mail,
            version: version.into(),
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn is_free_mail(&self, domain: &str) -> bool {
        self.free_mail.contains(domain)
    }

    pub fn score(&self, lead: &Lead) -> Score {
        let mut points = 0i32;
        let mut contributions = Vec::new();
        for rule in &self.config.rules {
            let earned = match &rule.when {
                Signal::Activity {
                    kind,
                    half_life_days,
                } => decayed(lead, kind, *half_life_days, rule.points),
                signal => {
                    if self.fires(signal, lead) {
                        rule.points
                    } else {
                        0
                    }
                }
            };
            if earned != 0 {
                points = points.saturating_add(earned);
                contributions.push(ScoreContribution {
                    rule: rule.name.clone(),
                    points: earned,
                });
            }
        }
        let band = self
            .config
            .bands
            .iter()
            .find(|b| points >= b.min)
            .map(|b| b.name.clone())
            .unwrap_or_default();
        let fast_lane = self.config.demo_request_fast_lane
            && lead.engagement.demo_request
            && points < self.config.mql_threshold;
        Score {
            points,
            band,
            qualified: points >= self.config.mql_threshold || fast_lane,
            fast_lane,
            contributions,
            model_version: self.version.clone(),
        }
    }

    fn fires(&self, signal: &Signal, lead: &Lead) -> bool {
        let engagement = &lead.engagement;
        match signal {
            Signal::TitleContains(words) => {
                let title = lead.contact.title.to_lowercase();
                !title.is_empty() && words.iter().any(|w| contains_word(&title, w))
            }
            Signal::Employees { min, max } => lead
                .company
                .employees
                .is_some_and(|n| min.is_none_or(|min| n >= min) && max.is_none_or(|max| n <= max)),
            Signal::IndustryIn(industries) => {
                let industry = lead.company.industry.to_lowercase();
                industries.contains(&industry)
            }
            Signal::CountryIn(codes) => codes.contains(&lead.company.country),
            Signal::DemoRequest => engagement.demo_request,
            Signal::PricingPageViews { at_least } => engagement.pricing_page_views >= *at_least,
            Signal::ContentDownloads { at_least } => engagement.content_downloads >= *at_least,
            Signal::WebinarsAttended { at_least } => engagement.webinars_attended >= *at_least,
            Signal::FreeMail => lead.email_domain().is_some_and(|d| self.is_free_mail(d)),
            Signal::EmailDomainIn(domains) => lead
                .email_domain()
                .is_some_and(|d| domains.iter().any(|x| x == d)),
            Signal::EmailLocalIn(locals) => lead
                .contact
                .email
                .split_once('@')
                .is_some_and(|(local, _)| locals.iter().any(|l| l == local)),
            Signal::SourceKindIn(kinds) => kinds.contains(&lead.source.kind.to_lowercase()),
            Signal::Activity { .. } => false,
        }
    }
}

/// Sum of `points × 0.5^(age / half_life)` over the lead's activities of `kind`.
fn decayed(lead: &Lead, kind: &str, half_life_days: f64, points: i32) -> i32 {
    let half_life = half_life_days.max(0.01);
    let total: f64 = lead
        .engagement
        .activities
        .iter()
        .filter(|a| a.kind.eq_ignore_ascii_case(kind))
        .take(10)
        .map(|a| {
            let age_days = (lead.received_at - a.at).num_seconds().max(0) as f64 / 86_400.0;
            f64::from(points) * 0.5f64.powf(age_days / half_life)
        })
        .sum();
    total.round() as i32
}

/// Word-boundary match, so "cto" matches "CTO & co-founder" but not "director".
fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(start, found)| {
        let before = haystack.get(..start).and_then(|s| s.chars().next_back());
        let after = haystack
            .get(start + found.len()..)
            .and_then(|s| s.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::{Company, Contact, Engagement, LeadId};
    use chrono::Utc;

    fn model() -> ScoringModel {
        let config: ScoringConfig = match serde_json::from_value(serde_json::json!({
            "mql_threshold": 40,
            "demo_request_fast_lane": true,
            "free_mail_domains": ["gmail.com"],
            "rules": [
                {"name": "senior_title", "points": 25, "when": {"title_contains": ["VP", "cto"]}},
                {"name": "mid_market", "points": 20, "when": {"employees": {"min": 200, "max": 5000}}},
                {"name": "pricing_interest", "points": 15, "when": {"pricing_page_views": {"at_least": 2}}},
                {"name": "free_mail", "points": -30, "when": "free_mail"}
            ]
        })) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        ScoringModel::new(config, "v1")
    }

    fn lead(email: &str, title: &str, employees: Option<u32>, demo: bool) -> Lead {
        Lead {
            id: LeadId::from("l1"),
            received_at: Utc::now(),
            source: Default::default(),
            contact: Contact {
                email: email.into(),
                title: title.into(),
                ..Contact::default()
            },
            company: Company {
                employees,
                ..Company::default()
            },
            engagement: Engagement {
                demo_request: demo,
                pricing_page_views: 3,
                ..Engagement::default()
            },
            custom: Default::default(),
        }
    }

    #[test]
    fn score_lists_every_rule_that_fired() {
        let score = model().score(&lead("a@acme.io", "VP Sales", Some(300), false));
        assert_eq!(score.points, 60);
        assert_eq!(score.band, "B");
        assert!(score.qualified);
        let rules: Vec<&str> = score
            .contributions
            .iter()
            .map(|c| c.rule.as_str())
            .collect();
        assert_eq!(rules, ["senior_title", "mid_market", "pricing_interest"]);
        assert_eq!(score.model_version, "v1");
    }

    #[test]
    fn free_mail_is_penalised_and_titles_match_whole_words() {
        let score = model().score(&lead("a@gmail.com", "Director", None, false));
        assert_eq!(score.points, -15);
        assert!(!score.qualified);
        assert_eq!(score.band, "D");
    }

    #[test]
    fn intent_decays_with_its_half_life_and_spam_patterns_are_penalised() {
        let config: ScoringConfig = match serde_json::from_value(serde_json::json!({
            "mql_threshold": 10,
            "rules": [
                {"name": "pricing_views", "points": 8, "when": {"activity": {"kind": "pricing_page_view", "half_life_days": 7}}},
                {"name": "test_address", "points": -50, "when": {"email_local_in": ["test", "asdf"]}}
            ]
        })) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let model = ScoringModel::new(config, "v");
        let mut l = lead("Test@acme.io", "", None, false);
        l.contact.email = l.contact.email.to_lowercase();
        let view = |days: i64| crate::lead::Activity {
            kind: "pricing_page_view".into(),
            at: l.received_at - chrono::Duration::days(days),
            detail: String::new(),
        };
        // Today: 8; a week ago: 4; four weeks ago: 0.5 -> together 12.5, rounded 13.
        l.engagement.activities = vec![view(0), view(7), view(28)];
        let score = model.score(&l);
        let rules: Vec<(&str, i32)> = score
            .contributions
            .iter()
            .map(|c| (c.rule.as_str(), c.points))
            .collect();
        assert_eq!(rules, [("pricing_views", 13), ("test_address", -50)]);
    }

    #[test]
    fn a_demo_request_takes_the_fast_lane() {
        let score = model().score(&lead("a@gmail.com", "", None, true));
        assert!(score.qualified && score.fast_lane);
    }
}
