//! Folding raw values into the funnel's bounded label values. Source kinds and campaigns
//! are free text on the wire; as labels, only the configured ones (and, for campaigns, the
//! busiest `top_n`) keep their name, anything else is `other` and an empty value is `none`.
//! Reason codes outside `ingest.reason_codes` (another producer's) are `other`; teams
//! outside the rules file are `other`.

use std::collections::BTreeSet;
use std::sync::RwLock;

use handoff_config::{is_label_value, FunnelSettings};

/// The label value of anything outside a configured list.
pub const OTHER: &str = "other";
/// The label value of an empty source kind or campaign.
pub const NONE: &str = "none";

/// A lead's source as labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceLabels {
    pub kind: String,
    pub campaign: String,
}

/// A campaign that joins the busiest is first only primed (its series created at zero) and
/// named from the next refresh on, so Prometheus can scrape the zero before the first
/// increment: a series whose first sample is already 1 shows rate() no increase.
/// (Hence `funnel.refresh_seconds` should be at least the scrape interval.)
#[derive(Debug, Default)]
struct Busiest {
    named: BTreeSet<String>,
    primed: BTreeSet<String>,
}

#[derive(Debug)]
pub struct LabelFolder {
    kinds: BTreeSet<String>,
    campaigns: BTreeSet<String>,
    top_n: usize,
    /// The busiest campaigns as last read from Redis (shared by every instance).
    busiest: RwLock<Busiest>,
    reasons: BTreeSet<String>,
}

impl LabelFolder {
    pub fn new(settings: &FunnelSettings, reason_codes: &[String]) -> Self {
        Self {
            kinds: settings.source_kinds.iter().cloned().collect(),
            campaigns: settings.campaigns.iter().cloned().collect(),
            top_n: settings.top_n,
            busiest: RwLock::new(Busiest::default()),
            reasons: reason_codes.iter().cloned().collect(),
        }
    }

    pub fn source(&self, kind: &str, campaign: &str) -> SourceLabels {
        let kind = kind.trim();
        let kind = if kind.is_empty() {
            NONE
        } else if self.kinds.contains(kind) {
            kind
        } else {
            OTHER
        };
        let campaign = campaign.trim();
        let campaign = if campaign.is_empty() {
            NONE.to_owned()
        } else if self.campaigns.contains(campaign) || self.is_busiest(campaign) {
            campaign.to_owned()
        } else {
            OTHER.to_owned()
        };
        SourceLabels {
            kind: kind.to_owned(),
            campaign,
        }
    }

    fn is_busiest(&self, campaign: &str) -> bool {
        self.busiest
            .read()
            .map(|busiest| busiest.named.contains(campaign))
            .unwrap_or(false)
    }

    /// Takes the busiest campaigns (busiest first, as many as there are); of the first
    /// `top_n` that are valid label values, names those primed at the previous call and
    /// primes the others. Returns the newly primed ones, whose series the caller creates at
    /// zero now.
    pub fn set_busiest(&self, busiest: &[String]) -> Vec<String> {
        let next: BTreeSet<String> = busiest
            .iter()
            .filter(|c| is_label_value(c) && c.as_str() != OTHER && c.as_str() != NONE)
            // A listed campaign keeps its name anyway: it takes no place among the busiest.
            .filter(|c| !self.campaigns.contains(*c))
            .take(self.top_n)
            .cloned()
            .collect();
        let Ok(mut current) = self.busiest.write() else {
            return Vec::new();
        };
        let named: BTreeSet<String> = next
            .iter()
            .filter(|c| current.named.contains(*c) || current.primed.contains(*c))
            .cloned()
            .collect();
        let primed: BTreeSet<String> = next.difference(&named).cloned().collect();
        let added = primed.difference(&current.primed).cloned().collect();
        *current = Busiest { named, primed };
        added
    }

    pub fn reason<'a>(&self, code: &'a str) -> &'a str {
        if self.reasons.contains(code) {
            code
        } else {
            OTHER
        }
    }

    pub fn reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self.reasons.iter().cloned().collect();
        if !self.reasons.contains(OTHER) {
            reasons.push(OTHER.to_owned());
        }
        reasons
    }

    /// Every source label pair known now: the series to create at zero.
    pub fn known_sources(&self) -> Vec<SourceLabels> {
        let mut kinds: Vec<&str> = self.kinds.iter().map(String::as_str).collect();
        kinds.extend([OTHER, NONE]);
        let mut campaigns: Vec<String> = self.campaigns.iter().cloned().collect();
        if let Ok(busiest) = self.busiest.read() {
            campaigns.extend(busiest.named.iter().cloned());
            campaigns.extend(busiest.primed.iter().cloned());
        }
        campaigns.extend([OTHER.to_owned(), NONE.to_owned()]);
        campaigns.sort();
        campaigns.dedup();
        kinds
            .iter()
            .flat_map(|kind| {
                campaigns.iter().map(|campaign| SourceLabels {
                    kind: (*kind).to_owned(),
                    campaign: campaign.clone(),
                })
            })
            .collect()
    }
}

/// A team as a label: one of the rules file's teams, `none` for none, else `other`.
pub fn team<'a>(known: impl IntoIterator<Item = &'a str>, team: &'a str) -> &'a str {
    if team.is_empty() {
        NONE
    } else if known.into_iter().any(|t| t == team) {
        team
    } else {
        OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(campaigns: &[&str], top_n: usize) -> LabelFolder {
        let settings = FunnelSettings {
            campaigns: campaigns.iter().map(|c| (*c).to_owned()).collect(),
            top_n,
            ..FunnelSettings::default()
        };
        LabelFolder::new(&settings, &["spam".to_owned(), "no_budget".to_owned()])
    }

    fn labels(kind: &str, campaign: &str) -> SourceLabels {
        SourceLabels {
            kind: kind.to_owned(),
            campaign: campaign.to_owned(),
        }
    }

    #[test]
    fn unlisted_kinds_and_campaigns_fold_into_other_and_empty_ones_into_none() {
        let f = folder(&["spring-launch"], 0);
        assert_eq!(
            f.source("web_form", "spring-launch"),
            labels("web_form", "spring-launch")
        );
        assert_eq!(
            f.source("carrier-pigeon", "summer-sale"),
            labels("other", "other")
        );
        assert_eq!(f.source("", " "), labels("none", "none"));
        // Case matters: label values are what the lists say, exactly.
        assert_eq!(
            f.source("Web_Form", "Spring-Launch"),
            labels("other", "other")
        );
    }

    #[test]
    fn the_busiest_campaigns_keep_their_name_up_to_top_n() {
        let f = folder(&["spring-launch"], 2);
        let busiest = [
            "Black Friday!".to_owned(), // not a label value: never named
            "webinar".to_owned(),
            "spring-launch".to_owned(), // listed anyway: takes no place
            "partner".to_owned(),
            "retargeting".to_owned(), // third: beyond top_n
        ];
        let added = f.set_busiest(&busiest);
        assert_eq!(added, vec!["partner".to_owned(), "webinar".to_owned()]);
        // Primed, not yet named: their zeros must reach Prometheus first.
        assert_eq!(f.source("api", "webinar"), labels("api", "other"));
        assert!(f.known_sources().contains(&labels("api", "webinar")));
        assert_eq!(f.set_busiest(&busiest), Vec::<String>::new());
        assert_eq!(f.source("api", "webinar"), labels("api", "webinar"));
        assert_eq!(f.source("api", "partner"), labels("api", "partner"));
        assert_eq!(f.source("api", "retargeting"), labels("api", "other"));
        assert_eq!(f.source("api", "Black Friday!"), labels("api", "other"));
        // A campaign that drops out of the busiest folds into other again.
        assert_eq!(
            f.set_busiest(&["retargeting".to_owned()]),
            vec!["retargeting".to_owned()]
        );
        assert_eq!(f.source("api", "webinar"), labels("api", "other"));
        assert_eq!(f.source("api", "retargeting"), labels("api", "other"));
        assert_eq!(
            f.source("api", "spring-launch"),
            labels("api", "spring-launch")
        );
    }

    #[test]
    fn known_sources_are_every_kind_with_every_named_campaign() {
        let f = folder(&["spring-launch"], 1);
        f.set_busiest(&["webinar".to_owned()]);
        let known = f.known_sources();
        // 8 default kinds + other + none, times spring-launch, webinar, other, none.
        assert_eq!(known.len(), 10 * 4);
        assert!(known.contains(&labels("web_form", "webinar")));
        assert!(known.contains(&labels("none", "other")));
    }

    #[test]
    fn unknown_reasons_and_teams_fold_into_other() {
        let f = folder(&[], 0);
        assert_eq!(f.reason("spam"), "spam");
        assert_eq!(f.reason("free text from a crm"), "other");
        assert_eq!(f.reasons(), vec!["no_budget", "spam", "other"]);
        assert_eq!(team(["sales", "emea"], "emea"), "emea");
        assert_eq!(team(["sales"], "ghost"), "other");
        assert_eq!(team(["sales"], ""), "none");
    }
}
