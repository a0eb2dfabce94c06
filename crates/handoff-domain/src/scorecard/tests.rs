//! A month computed by hand, and the pace in the middle of a period, before any data and
//! across a change of target.

use chrono::TimeZone;

use super::*;
use crate::agreement::AgreementConfig;

fn agreement(text: &str) -> Agreement {
    let config: Result<AgreementConfig, _> = toml::from_str(text);
    let Ok(config) = config else {
        panic!("{config:?}");
    };
    let agreement = Agreement::new(config, ["emea", "na"]);
    let Ok(agreement) = agreement else {
        panic!("{agreement:?}");
    };
    agreement
}

fn day(d: &str) -> NaiveDate {
    NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap_or(NaiveDate::MIN)
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .unwrap_or_default()
}

fn fact(d: &str, measure: Measure, kind: &str, team: &str, value: i64) -> Fact {
    Fact {
        day: day(d),
        measure,
        source_kind: kind.into(),
        campaign: "spring".into(),
        team: team.into(),
        currency: String::new(),
        value,
    }
}

fn revenue(d: &str, kind: &str, currency: &str, units: i64) -> Fact {
    Fact {
        currency: currency.into(),
        ..fact(d, Measure::Revenue, kind, "emea", units)
    }
}

fn december() -> Period {
    Period::parse("2026-12").unwrap_or(Period {
        kind: PeriodKind::Month,
        start: NaiveDate::MIN,
        end: NaiveDate::MIN,
    })
}

fn find(card: &PeriodCard, commitment: Commitment) -> &Line {
    let line = card.lines.iter().find(|l| l.commitment == commitment);
    let Some(line) = line else {
        panic!("no {commitment:?} in {card:?}");
    };
    line
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

const AGREEMENT: &str = r#"
[[targets]]
commitment = "mqls"
target = 310
[[targets]]
commitment = "acceptance_rate"
target = 0.8
[[targets]]
commitment = "first_touch_attainment"
team = "emea"
target = 0.9
[[targets]]
commitment = "feedback_completion"
target = 0.9
[[targets]]
commitment = "revenue"
source_kind = "web_form"
currency = "EUR"
target = 10000
"#;

#[test]
fn a_hand_computed_month_gives_exactly_the_expected_scorecard() {
    let facts = vec![
        // 150 MQLs in the first half of December; 200 in November.
        fact("2026-12-01", Measure::Mql, "web_form", "emea", 100),
        fact("2026-12-10", Measure::Mql, "api", "na", 50),
        fact("2026-11-30", Measure::Mql, "web_form", "emea", 200),
        // 40 accepted, 10 rejected: 80%.
        fact("2026-12-02", Measure::Accepted, "web_form", "emea", 30),
        fact("2026-12-11", Measure::Accepted, "api", "na", 10),
        fact("2026-12-03", Measure::Rejected, "web_form", "emea", 8),
        fact("2026-12-12", Measure::Rejected, "api", "na", 2),
        // emea: 45 of 50 first touches in time; na's do not count for emea's target.
        fact("2026-12-02", Measure::FirstTouchMet, "web_form", "emea", 45),
        fact(
            "2026-12-02",
            Measure::FirstTouchMissed,
            "web_form",
            "emea",
            5,
        ),
        fact("2026-12-02", Measure::FirstTouchMet, "api", "na", 10),
        // 36 of 50 first feedbacks within 48 h: 72%.
        fact("2026-12-05", Measure::FeedbackMet, "web_form", "emea", 36),
        fact("2026-12-05", Measure::FeedbackMissed, "api", "na", 14),
        // 2500.5 EUR from web forms; the USD deal and the API's EUR deal are not in it.
        revenue("2026-12-08", "web_form", "EUR", 25_005_000),
        revenue("2026-12-09", "web_form", "USD", 9_990_000),
        revenue("2026-12-09", "api", "EUR", 10_000_000),
    ];
    // Half-way: 15 of 31 days passed.
    let card = scorecard(
        &agreement(AGREEMENT),
        "abc",
        december(),
        at(2026, 12, 16, 0),
        &facts,
    );
    let now = &card.current;
    assert_eq!(
        (now.period.as_str(), now.from, now.to),
        ("2026-12", day("2026-12-01"), day("2026-12-31"))
    );
    assert!(close(Some(now.elapsed), 15.0 / 31.0));

    let mqls = find(now, Commitment::Mqls);
    assert_eq!((mqls.side, mqls.segment.as_str()), ("marketing", "all"));
    assert!(close(Some(mqls.target), 310.0));
    assert!(close(mqls.actual, 150.0));
    assert!(close(mqls.expected_to_date, 150.0));
    assert!(close(mqls.pace, 1.0));
    assert!(close(mqls.projected, 310.0));
    assert_eq!(mqls.status, Status::OnTrack);

    let acceptance = find(now, Commitment::AcceptanceRate);
    assert_eq!(acceptance.counts, Some((40, 50)));
    assert!(close(acceptance.actual, 0.8));
    assert_eq!(acceptance.status, Status::OnTrack);

    let touch = find(now, Commitment::FirstTouchAttainment);
    assert_eq!(
        (touch.side, touch.segment.as_str(), touch.counts),
        ("sales", "team=emea", Some((45, 50)))
    );
    assert_eq!(touch.status, Status::OnTrack);

    let feedback = find(now, Commitment::FeedbackCompletion);
    assert_eq!(feedback.counts, Some((36, 50)));
    assert!(close(feedback.actual, 0.72));
    assert_eq!(feedback.status, Status::Behind);

    let money = find(now, Commitment::Revenue);
    assert_eq!(
        (money.segment.as_str(), money.currency.as_str()),
        ("source_kind=web_form", "EUR")
    );
    assert!(close(money.actual, 2500.5));
    assert!(close(money.expected_to_date, 10000.0 * 15.0 / 31.0));
    assert!(close(money.projected, 2500.5 * 31.0 / 15.0));
    assert_eq!(money.status, Status::Behind);

    // November is over: its actual is final.
    let Some(november) = &card.previous else {
        panic!("no previous period");
    };
    assert_eq!(november.period, "2026-11");
    assert!(close(Some(november.elapsed), 1.0));
    let before = find(november, Commitment::Mqls);
    assert!(close(before.actual, 200.0));
    assert!(close(before.projected, 200.0));
    assert_eq!(before.status, Status::Behind);
    assert_eq!(
        find(november, Commitment::AcceptanceRate).status,
        Status::NoData
    );

    let text = to_text(&card);
    assert!(
        text.contains(
            "[on track] mqls (marketing, all): 150 of target 310; projected 310; pace 100% of plan"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "[behind] feedback_completion (sales, all): 72.0% of target 90.0% (36 of 50)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "[behind] revenue (shared, source_kind=web_form): 2500.5 EUR of target 10000 EUR"
        ),
        "{text}"
    );
}

#[test]
fn the_pace_mid_period_extends_the_actual_at_its_rate() {
    // 9.5 days of 31 passed, 95 MQLs: exactly the plan.
    let facts = vec![fact("2026-12-05", Measure::Mql, "web_form", "emea", 95)];
    let card = period_card(
        &agreement(AGREEMENT),
        december(),
        at(2026, 12, 10, 12),
        &facts,
    );
    let mqls = find(&card, Commitment::Mqls);
    assert!(close(mqls.expected_to_date, 95.0));
    assert!(close(mqls.pace, 1.0));
    assert!(close(mqls.projected, 310.0));
    assert_eq!(mqls.status, Status::OnTrack);
    // One short of the plan is behind.
    let fewer = vec![fact("2026-12-05", Measure::Mql, "web_form", "emea", 94)];
    let card = period_card(
        &agreement(AGREEMENT),
        december(),
        at(2026, 12, 10, 12),
        &fewer,
    );
    let mqls = find(&card, Commitment::Mqls);
    assert!(close(mqls.projected, 94.0 * 31.0 / 9.5));
    assert_eq!(mqls.status, Status::Behind);
}

#[test]
fn a_period_with_no_data_yet_is_behind_on_counts_and_without_data_on_rates() {
    // Six hours into December, nothing yet.
    let card = period_card(&agreement(AGREEMENT), december(), at(2026, 12, 1, 6), &[]);
    let mqls = find(&card, Commitment::Mqls);
    assert!(close(mqls.actual, 0.0));
    assert!(close(mqls.expected_to_date, 310.0 * 0.25 / 31.0));
    assert!(close(mqls.projected, 0.0));
    assert_eq!(mqls.status, Status::Behind);
    let acceptance = find(&card, Commitment::AcceptanceRate);
    assert_eq!(
        (acceptance.actual, acceptance.projected, acceptance.status),
        (None, None, Status::NoData)
    );
    // A period that has not begun projects nothing.
    let january = Period::parse("2027-01").unwrap_or(december());
    let card = period_card(&agreement(AGREEMENT), january, at(2026, 12, 16, 0), &[]);
    let mqls = find(&card, Commitment::Mqls);
    assert_eq!(
        (mqls.projected, mqls.pace, mqls.status),
        (None, None, Status::NotStarted)
    );
    assert!(close(Some(card.elapsed), 0.0));
}

#[test]
fn a_target_changed_mid_period_applies_to_its_own_days() {
    let text = r#"
[[targets]]
commitment = "mqls"
target = 310
[[targets]]
commitment = "mqls"
target = 620
from = "2026-12-16"
[[targets]]
commitment = "acceptance_rate"
target = 0.8
[[targets]]
commitment = "acceptance_rate"
target = 0.9
from = "2026-12-16"
"#;
    let facts = vec![
        fact("2026-12-10", Measure::Mql, "web_form", "emea", 150),
        fact("2026-12-18", Measure::Mql, "web_form", "emea", 100),
        // 80% before the change (on target), 80% after (under the new 90%).
        fact("2026-12-05", Measure::Accepted, "web_form", "emea", 8),
        fact("2026-12-05", Measure::Rejected, "web_form", "emea", 2),
        fact("2026-12-18", Measure::Accepted, "web_form", "emea", 8),
        fact("2026-12-18", Measure::Rejected, "web_form", "emea", 2),
    ];
    // 20 days passed: 15 under the old target, 5 under the new one.
    let card = period_card(&agreement(text), december(), at(2026, 12, 21, 0), &facts);
    let mqls = find(&card, Commitment::Mqls);
    // 15/31 of 310 plus 16/31 of 620.
    assert!(close(Some(mqls.target), 150.0 + 320.0));
    // 15/31 of 310 plus 5/31 of 620.
    assert!(close(mqls.expected_to_date, 250.0));
    assert!(close(mqls.actual, 250.0));
    assert!(close(mqls.pace, 1.0));
    assert!(close(mqls.projected, 470.0));
    assert_eq!(mqls.status, Status::OnTrack);
    let spans: Vec<(NaiveDate, NaiveDate, f64, Option<f64>, Status)> = mqls
        .targets
        .iter()
        .map(|s| (s.from, s.to, s.target, s.actual, s.status))
        .collect();
    assert_eq!(
        spans,
        vec![
            (
                day("2026-12-01"),
                day("2026-12-15"),
                310.0,
                Some(150.0),
                Status::OnTrack
            ),
            (
                day("2026-12-16"),
                day("2026-12-31"),
                620.0,
                Some(100.0),
                Status::OnTrack
            ),
        ]
    );
    assert!(close(Some(mqls.targets[0].applies), 150.0));
    assert!(close(Some(mqls.targets[1].applies), 320.0));

    let acceptance = find(&card, Commitment::AcceptanceRate);
    let statuses: Vec<(f64, Option<f64>, Status)> = acceptance
        .targets
        .iter()
        .map(|s| (s.target, s.actual, s.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (0.8, Some(0.8), Status::OnTrack),
            (0.9, Some(0.8), Status::Behind)
        ]
    );
    assert_eq!(acceptance.status, Status::Behind);
    assert!(close(
        Some(acceptance.target),
        (0.8 * 15.0 + 0.9 * 16.0) / 31.0
    ));
    let text = to_text(&Scorecard {
        rules_version: "v".into(),
        first_touch_window_minutes: 15,
        feedback_window_hours: 48,
        current: card,
        previous: None,
    });
    assert!(
        text.contains("target 90.0% from 2026-12-16 to 2026-12-31: 80.0% (behind)"),
        "{text}"
    );

    // Before the change's day, the new target is not started.
    let early = period_card(
        &agreement(text_of_change()),
        december(),
        at(2026, 12, 3, 0),
        &[],
    );
    let mqls = find(&early, Commitment::Mqls);
    assert_eq!(mqls.targets[1].status, Status::NotStarted);
}

#[test]
fn a_target_from_a_later_day_is_not_in_earlier_periods() {
    let text = "[[targets]]\ncommitment = \"mqls\"\ntarget = 620\nfrom = \"2026-12-16\"\n";
    let card = scorecard(&agreement(text), "v", december(), at(2026, 12, 21, 0), &[]);
    let mqls = find(&card.current, Commitment::Mqls);
    // From the 16th only: 16/31 of the target, nothing expected before.
    assert!(close(Some(mqls.target), 320.0));
    assert!(close(mqls.expected_to_date, 100.0));
    assert_eq!(card.previous.map(|p| p.lines.len()), Some(0));
}

fn text_of_change() -> &'static str {
    "[[targets]]\ncommitment = \"mqls\"\ntarget = 310\n[[targets]]\ncommitment = \"mqls\"\ntarget = 620\nfrom = \"2026-12-16\"\n"
}

#[test]
fn periods_are_months_or_quarters() {
    let q4 = Period::parse("2026-q4");
    assert_eq!(
        q4.as_ref().map(|p| (p.name(), p.start, p.days())),
        Ok(("2026-Q4".to_owned(), day("2026-10-01"), 92))
    );
    assert_eq!(
        q4.ok().and_then(|p| p.previous()).map(|p| p.name()),
        Some("2026-Q3".to_owned())
    );
    assert_eq!(
        Period::parse("2027-01")
            .ok()
            .and_then(|p| p.previous())
            .map(|p| p.name()),
        Some("2026-12".to_owned())
    );
    for bad in [
        "2026-13", "2026-Q5", "2026", "26-12", "2026-1", "december", "+2026-12", "2026-+1",
        "2026-Q+1", "2026-Q01", "1999-12",
    ] {
        assert!(Period::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        Period::containing(PeriodKind::Quarter, day("2026-12-07")).map(|p| p.name()),
        Some("2026-Q4".to_owned())
    );
}
