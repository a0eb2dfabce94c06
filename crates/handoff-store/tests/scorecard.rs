//! The scorecard's daily facts against a real Redis (`HANDOFF_TEST_REDIS`): counts add up
//! per day and attribution, and a read returns exactly the days asked for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::NaiveDate;
use handoff_domain::scorecard::{Fact, Measure};

fn fact(day: &str, measure: Measure, team: &str, currency: &str, value: i64) -> Fact {
    Fact {
        day: NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap(),
        measure,
        source_kind: "web_form".into(),
        campaign: "spring \"launch\"|x".into(),
        team: team.into(),
        currency: currency.into(),
        value,
    }
}

#[tokio::test]
async fn facts_add_up_per_day_and_attribution() {
    let (store, _) = common::store("scorecard-test-").await;
    for f in [
        fact("2026-11-30", Measure::Mql, "emea", "", 1),
        fact("2026-12-01", Measure::Mql, "emea", "", 1),
        fact("2026-12-01", Measure::Mql, "emea", "", 1),
        fact("2026-12-01", Measure::Mql, "na", "", 1),
        fact("2026-12-31", Measure::Revenue, "emea", "EUR", 12_505_000),
        fact("2026-12-31", Measure::Revenue, "emea", "EUR", 5_000),
        fact("2027-01-01", Measure::Accepted, "emea", "", 1),
    ] {
        store.scorecard_add(&f).await.unwrap();
    }
    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let mut facts = store
        .scorecard_facts(day("2026-12-01"), day("2027-01-01"))
        .await
        .unwrap();
    facts.sort_by(|a, b| (a.day, a.measure, &a.team).cmp(&(b.day, b.measure, &b.team)));
    assert_eq!(
        facts,
        vec![
            fact("2026-12-01", Measure::Mql, "emea", "", 2),
            fact("2026-12-01", Measure::Mql, "na", "", 1),
            fact("2026-12-31", Measure::Revenue, "emea", "EUR", 12_510_000),
        ]
    );
}
