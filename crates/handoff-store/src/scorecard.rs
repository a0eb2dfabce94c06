//! The agreement scorecard's facts (handoff-domain's scorecard module): per UTC day, each
//! funnel count once more with its raw attribution (source kind, campaign, team and, for
//! revenue, currency), so a target can name any segment, not only the values the funnel's
//! metric labels keep. The funnel writes a fact only for a count it has just made (once
//! per lead and stage, see funnel.rs), so a redelivered event adds nothing.
//!
//! Key: `{prefix}:scorecard:day:<YYYY-MM-DD>`, a hash whose fields are the JSON array
//! `[measure, source_kind, campaign, team, currency]` and whose values are counts (revenue:
//! ten-thousandths of the currency). Aggregates only, no personal data. Each day expires
//! [`DAY_RETENTION_DAYS`] after its last write: long enough for the current and previous
//! quarter.

use chrono::{Duration, NaiveDate};

use handoff_domain::scorecard::{Fact, Measure};

use crate::{Store, StoreError};

/// How long a day's facts are kept after its last write.
pub const DAY_RETENTION_DAYS: i64 = 200;

/// The most days one read covers (two quarters and some).
pub const MAX_DAYS_READ: i64 = 200;

impl Store {
    fn scorecard_day(&self, day: NaiveDate) -> String {
        format!(
            "{}:scorecard:day:{}",
            self.keys.tag(),
            day.format("%Y-%m-%d")
        )
    }

    /// Adds `fact.value` to its day's count.
    pub async fn scorecard_add(&self, fact: &Fact) -> Result<(), StoreError> {
        let key = self.scorecard_day(fact.day);
        let field = serde_json::json!([
            fact.measure.as_str(),
            fact.source_kind,
            fact.campaign,
            fact.team,
            fact.currency
        ])
        .to_string();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hincr(&key, field, fact.value)
            .ignore()
            .expire(&key, DAY_RETENTION_DAYS * 86_400)
            .ignore();
        let mut connection = self.connection();
        let () = pipe.query_async(&mut connection).await?;
        Ok(())
    }

    /// Every fact of the days `from..until` (at most [`MAX_DAYS_READ`] days from `from`).
    /// A field this version cannot read (another version's measure) is left out.
    pub async fn scorecard_facts(
        &self,
        from: NaiveDate,
        until: NaiveDate,
    ) -> Result<Vec<Fact>, StoreError> {
        let last = until.min(from + Duration::days(MAX_DAYS_READ));
        let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d < last).collect();
        if days.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for day in &days {
            pipe.hgetall(self.scorecard_day(*day));
        }
        let mut connection = self.connection();
        let hashes: Vec<Vec<(String, i64)>> = pipe.query_async(&mut connection).await?;
        let mut facts = Vec::new();
        for (day, fields) in days.iter().zip(hashes) {
            for (field, value) in fields {
                if let Some(fact) = read_field(*day, &field, value) {
                    facts.push(fact);
                }
            }
        }
        Ok(facts)
    }
}

fn read_field(day: NaiveDate, field: &str, value: i64) -> Option<Fact> {
    let parts: Vec<String> = serde_json::from_str(field).ok()?;
    let [measure, source_kind, campaign, team, currency] = <[String; 5]>::try_from(parts).ok()?;
    Some(Fact {
        day,
        measure: Measure::parse(&measure)?,
        source_kind,
        campaign,
        team,
        currency,
        value,
    })
}
