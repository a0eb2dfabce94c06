//! `[funnel]`: marketing's view of the pipeline (crates/handoff-funnel). Source kinds and
//! campaigns become metric labels, so both are bounded here: values outside the lists (and,
//! for campaigns, outside the `top_n` busiest) are counted as `other`.

use serde::{Deserialize, Serialize};

/// The longest list of named label values either key may hold: every value multiplies the
/// funnel's series (stages, reasons, histogram buckets).
pub const MAX_LABEL_VALUES: usize = 50;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelSettings {
    /// Source kinds counted under their own name (`source.kind` is free text on the wire).
    #[serde(default = "default_source_kinds")]
    pub source_kinds: Vec<String>,
    /// Campaigns always counted under their own name.
    #[serde(default)]
    pub campaigns: Vec<String>,
    /// Besides `campaigns`, the busiest campaigns by lead count keep their name too.
    #[serde(default = "default_top_n")]
    pub top_n: usize,
    /// Feedback overdue: an assigned lead without an outcome marketing can use (accepted,
    /// rejected, converted, recycled) this long after its first assignment counts in the
    /// backlog. Default 48 h, the feedback promise of the sales–marketing agreement.
    #[serde(default = "default_backlog_after_seconds")]
    pub backlog_after_seconds: u64,
    /// How often the backlog gauges and the busiest campaigns are read from Redis. Keep it
    /// at least the scrape interval: a campaign joining the busiest is named one refresh
    /// after its series are created at zero, so Prometheus sees the zero first.
    #[serde(default = "default_refresh_seconds")]
    pub refresh_seconds: u32,
}

impl Default for FunnelSettings {
    fn default() -> Self {
        Self {
            source_kinds: default_source_kinds(),
            campaigns: Vec::new(),
            top_n: default_top_n(),
            backlog_after_seconds: default_backlog_after_seconds(),
            refresh_seconds: default_refresh_seconds(),
        }
    }
}

fn default_source_kinds() -> Vec<String> {
    [
        "web_form", "api", "webhook", "import", "crm", "event", "chat", "partner",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}
fn default_top_n() -> usize {
    10
}
fn default_backlog_after_seconds() -> u64 {
    48 * 3600
}
fn default_refresh_seconds() -> u32 {
    15
}

/// Whether `value` may be a label value as configured: 1 to 64 of a-z, 0-9, `_`, `-`, `.`.
/// The busiest campaigns are admitted under the same rule.
pub fn is_label_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

/// Values the funnel uses itself, so a list may not name them.
const RESERVED: [&str; 2] = ["other", "none"];

impl FunnelSettings {
    pub(crate) fn check(&self) -> Result<(), String> {
        for (key, values) in [
            ("funnel.source_kinds", &self.source_kinds),
            ("funnel.campaigns", &self.campaigns),
        ] {
            if values.len() > MAX_LABEL_VALUES {
                return Err(format!(
                    "{key} lists {} values; at most {MAX_LABEL_VALUES} (each is a metric label value)",
                    values.len()
                ));
            }
            for value in values {
                if !is_label_value(value) {
                    return Err(format!(
                        "{key}: {value:?} must be 1 to 64 characters of a-z, 0-9, _, - and ."
                    ));
                }
                if RESERVED.contains(&value.as_str()) {
                    return Err(format!(
                        "{key}: {value:?} is reserved (values outside the list count as `other`, an empty one as `none`)"
                    ));
                }
            }
        }
        if self.top_n > MAX_LABEL_VALUES {
            return Err(format!(
                "funnel.top_n is {}; at most {MAX_LABEL_VALUES}",
                self.top_n
            ));
        }
        if self.backlog_after_seconds == 0 {
            return Err("funnel.backlog_after_seconds must be greater than 0".to_owned());
        }
        if self.refresh_seconds == 0 {
            return Err("funnel.refresh_seconds must be greater than 0".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_bounded_label_values() {
        assert_eq!(FunnelSettings::default().check(), Ok(()));
        let bad = FunnelSettings {
            campaigns: vec!["Spring Launch".into()],
            ..FunnelSettings::default()
        };
        assert_eq!(
            bad.check(),
            Err(r#"funnel.campaigns: "Spring Launch" must be 1 to 64 characters of a-z, 0-9, _, - and ."#.to_owned())
        );
        let reserved = FunnelSettings {
            source_kinds: vec!["other".into()],
            ..FunnelSettings::default()
        };
        assert!(reserved.check().is_err_and(|e| e.contains("reserved")));
        let many = FunnelSettings {
            top_n: 51,
            ..FunnelSettings::default()
        };
        assert_eq!(
            many.check(),
            Err("funnel.top_n is 51; at most 50".to_owned())
        );
    }
}
