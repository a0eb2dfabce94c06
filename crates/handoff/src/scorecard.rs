//! `handoff scorecard --period 2026-12`: the sales–marketing agreement's scorecard as plain
//! text (a weekly e-mail or chat post), HTML or JSON, computed as `GET /v1/scorecard` does:
//! the rules file's `[agreement]` against the facts the funnel keeps in Redis.

use std::fmt::Write as _;

use anyhow::Context;
use chrono::{DateTime, Utc};

use handoff_config::LoadedConfig;
use handoff_domain::agreement::PeriodKind;
use handoff_domain::scorecard::{scorecard, to_text, Period, Scorecard};
use handoff_store::Store;

/// How the scorecard is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Html,
    Json,
}

/// The scorecard of `period` (default: the current month) and the one before.
pub async fn run(
    loaded: &LoadedConfig,
    period: Option<&str>,
    format: Format,
) -> anyhow::Result<String> {
    let settings = &loaded.settings;
    let store = Store::connect(&settings.redis.url, &settings.redis.key_prefix)
        .await
        .context("cannot reach Redis (redis.url)")?;
    let card = compute(&store, loaded, period, Utc::now()).await?;
    render(&card, format)
}

/// The scorecard at `now`, for the command and the tests.
pub async fn compute(
    store: &Store,
    loaded: &LoadedConfig,
    period: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Scorecard> {
    let period = match period {
        Some(text) => Period::parse(text).map_err(|e| anyhow::anyhow!("--period: {e}"))?,
        None => Period::containing(PeriodKind::Month, now.date_naive())
            .context("the current month is out of range")?,
    };
    let from = period.previous().map_or(period.start, |p| p.start);
    let facts = store
        .scorecard_facts(from, period.end)
        .await
        .context("cannot read the scorecard's facts from Redis")?;
    let rules = &loaded.rules;
    Ok(scorecard(
        &rules.agreement,
        &rules.version,
        period,
        now,
        &facts,
    ))
}

pub fn render(card: &Scorecard, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Text => to_text(card),
        Format::Json => serde_json::to_string_pretty(card)? + "\n",
        Format::Html => html(card),
    })
}

/// The text form in a `<pre>` block, escaped: mail clients and chat tools show it as is.
fn html(card: &Scorecard) -> String {
    let text = to_text(card);
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Agreement scorecard</title></head><body>\n<pre>\n",
    );
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => {
                let _ = out.write_char(c);
            }
        }
    }
    out.push_str("</pre>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_domain::scorecard::PeriodCard;

    #[test]
    fn the_html_form_is_the_text_escaped_in_a_pre_block() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
        let card = Scorecard {
            rules_version: "<v&1>".into(),
            first_touch_window_minutes: 15,
            feedback_window_hours: 48,
            current: PeriodCard {
                period: "2026-12".into(),
                from: day,
                to: day,
                elapsed: 0.5,
                lines: Vec::new(),
            },
            previous: None,
        };
        let html = render(&card, Format::Html).unwrap_or_default();
        assert!(html.contains("<pre>\nSales-marketing agreement scorecard (rules &lt;v&amp;1&gt;;"));
        assert!(html.contains("no targets for this period in [agreement]"));
        assert!(!html.contains("<v&1>"));
        let json = render(&card, Format::Json).unwrap_or_default();
        assert!(json.contains("\"period\": \"2026-12\""), "{json}");
    }
}
