//! The funnel's Redis steps against a real Redis (`HANDOFF_TEST_REDIS`, which `make test`
//! starts): each stage counts once per lead however often its event is delivered, a touch
//! settles the first touch whichever of it and the assignment comes first, and the backlog
//! gauges count what they say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use handoff_domain::LeadId;
use handoff_store::{AssignmentTimes, FunnelGauges, FunnelSource, OutcomeReport, Store};

const TTL: u64 = 600;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

async fn store() -> Store {
    store_with_prefix().await.0
}

async fn store_with_prefix() -> (Store, String) {
    common::store("funnel-test-").await
}

fn web(campaign: &str) -> FunnelSource {
    FunnelSource {
        kind: "web_form".to_owned(),
        campaign: campaign.to_owned(),
    }
}

fn times(attempt: u32, assigned_ms: i64) -> AssignmentTimes<'static> {
    AssignmentTimes {
        attempt,
        team: "sales",
        received_ms: 1_000,
        assigned_ms,
        due_ms: assigned_ms + 5 * MINUTE,
    }
}

fn report(outcome: &str, occurred_ms: i64, feedback: bool) -> OutcomeReport<'_> {
    OutcomeReport {
        outcome,
        occurred_ms,
        feedback,
        implies: None,
    }
}

#[tokio::test]
async fn every_stage_counts_once_per_lead_under_redelivery() {
    let store = store().await;
    let first = store
        .funnel_received(&LeadId::from("l1"), &web("spring"), 1_000, TTL)
        .await
        .unwrap();
    assert_eq!(first, Some(web("spring")));
    assert_eq!(
        store
            .funnel_received(&LeadId::from("l1"), &web("other-attribution"), 1_000, TTL)
            .await
            .unwrap(),
        None,
        "a redelivered lead.created is not counted again"
    );

    let assigned = store
        .funnel_assigned(&LeadId::from("l1"), &web("spring"), times(1, 2_000), TTL)
        .await
        .unwrap();
    assert!(assigned.first && assigned.newly_qualified);
    let again = store
        .funnel_assigned(&LeadId::from("l1"), &web("spring"), times(1, 2_000), TTL)
        .await
        .unwrap();
    assert!(!again.first && !again.newly_qualified && again.settled.is_none());

    let accepted = store
        .funnel_outcome(
            &LeadId::from("l1"),
            &web("spring"),
            report("accepted", 3_000, true),
            TTL,
        )
        .await
        .unwrap();
    assert!(accepted.new && accepted.first_feedback);
    assert_eq!(accepted.assigned_ms, Some(2_000));
    let redelivered = store
        .funnel_outcome(
            &LeadId::from("l1"),
            &web("spring"),
            report("accepted", 3_000, true),
            TTL,
        )
        .await
        .unwrap();
    assert!(!redelivered.new && !redelivered.first_feedback);
    // A later, different outcome counts in its own stage; the feedback clock stopped already.
    let converted = store
        .funnel_outcome(
            &LeadId::from("l1"),
            &web("spring"),
            report("converted", 9_000, true),
            TTL,
        )
        .await
        .unwrap();
    assert!(converted.new && !converted.first_feedback);
    assert_eq!(
        converted.source,
        web("spring"),
        "the first attribution stays"
    );
    store.clear_namespace().await.unwrap();
}

#[tokio::test]
async fn a_touch_settles_once_whichever_of_it_and_the_assignment_comes_first() {
    let store = store().await;
    // In time, assignment first.
    store
        .funnel_assigned(&LeadId::from("a"), &web(""), times(1, 10_000), TTL)
        .await
        .unwrap();
    let settled = store
        .funnel_touched(&LeadId::from("a"), 70_000, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (settled.received_ms, settled.touched_ms),
        (Some(1_000), 70_000)
    );
    assert_eq!(
        (settled.team.as_str(), settled.within_window),
        ("sales", Some(true))
    );
    assert_eq!(
        store
            .funnel_touched(&LeadId::from("a"), 80_000, TTL)
            .await
            .unwrap(),
        None
    );

    // Late, touch first (the disposition topic ran ahead of lead.assigned).
    assert_eq!(
        store
            .funnel_touched(&LeadId::from("b"), 10_000 + 6 * MINUTE, TTL)
            .await
            .unwrap(),
        None
    );
    let assigned = store
        .funnel_assigned(&LeadId::from("b"), &web(""), times(1, 10_000), TTL)
        .await
        .unwrap();
    let settled = assigned
        .settled
        .expect("the assignment settles the earlier touch");
    assert_eq!(settled.within_window, Some(false));

    // Breached first: the breach is the attempt's verdict, the late touch adds none.
    store
        .funnel_assigned(&LeadId::from("c"), &web(""), times(1, 10_000), TTL)
        .await
        .unwrap();
    let breach = store
        .funnel_breached(&LeadId::from("c"), "first_touch", 1, TTL)
        .await
        .unwrap();
    assert!(breach.new && breach.verdict);
    let again = store
        .funnel_breached(&LeadId::from("c"), "first_touch", 1, TTL)
        .await
        .unwrap();
    assert!(!again.new && !again.verdict);
    let settled = store
        .funnel_touched(&LeadId::from("c"), 10_000 + 9 * MINUTE, TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settled.within_window, None);
    store.clear_namespace().await.unwrap();
}

#[tokio::test]
async fn the_gauges_count_the_feedback_backlog_and_overdue_first_touches() {
    let (store, prefix) = store_with_prefix().await;
    let now = 100 * HOUR;
    // Assigned 50 h ago, never touched: in the backlog and overdue.
    store
        .funnel_assigned(
            &LeadId::from("old"),
            &web(""),
            times(1, now - 50 * HOUR),
            TTL,
        )
        .await
        .unwrap();
    // Assigned 50 h ago, touched (contacted) but no usable outcome: in the backlog only.
    store
        .funnel_assigned(
            &LeadId::from("called"),
            &web(""),
            times(1, now - 50 * HOUR),
            TTL,
        )
        .await
        .unwrap();
    store
        .funnel_touched(&LeadId::from("called"), now - 49 * HOUR, TTL)
        .await
        .unwrap();
    store
        .funnel_outcome(
            &LeadId::from("called"),
            &web(""),
            report("contacted", now - 49 * HOUR, false),
            TTL,
        )
        .await
        .unwrap();
    // Assigned 50 h ago and rejected: neither.
    store
        .funnel_assigned(
            &LeadId::from("done"),
            &web(""),
            times(1, now - 50 * HOUR),
            TTL,
        )
        .await
        .unwrap();
    store
        .funnel_touched(&LeadId::from("done"), now - 49 * HOUR, TTL)
        .await
        .unwrap();
    store
        .funnel_outcome(
            &LeadId::from("done"),
            &web(""),
            report("rejected", now - 49 * HOUR, true),
            TTL,
        )
        .await
        .unwrap();
    // Assigned a minute ago: awaiting feedback, not yet overdue.
    store
        .funnel_assigned(&LeadId::from("new"), &web(""), times(1, now - MINUTE), TTL)
        .await
        .unwrap();

    let gauges = store.funnel_gauges(now, now - 48 * HOUR, 0).await.unwrap();
    assert_eq!(
        gauges,
        FunnelGauges {
            backlog: 2,
            awaiting_feedback: 3,
            overdue: 1
        }
    );
    // Nothing stays without a bound life: the sets expire with their newest lead.
    let url = std::env::var("HANDOFF_TEST_REDIS").unwrap();
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for set in ["awaiting_feedback", "touch_due"] {
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{{{prefix}}}:funnel:{set}"))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= TTL as i64, "{set}: TTL {ttl}");
    }
    // Entries older than the leads' retention are forgotten.
    let gauges = store
        .funnel_gauges(now, now - 48 * HOUR, now - 10 * HOUR)
        .await
        .unwrap();
    assert_eq!(
        (gauges.backlog, gauges.awaiting_feedback, gauges.overdue),
        (0, 1, 0)
    );
    store.clear_namespace().await.unwrap();
}

#[tokio::test]
async fn the_busiest_campaigns_come_first() {
    let store = store().await;
    for (i, campaign) in ["a", "b", "b", "c", "c", "c"].iter().enumerate() {
        store
            .funnel_received(
                &LeadId::from(format!("lead{i}")),
                &web(campaign),
                1_000,
                TTL,
            )
            .await
            .unwrap();
    }
    // A redelivery does not make a campaign busier.
    store
        .funnel_received(&LeadId::from("lead0"), &web("a"), 1_000, TTL)
        .await
        .unwrap();
    assert_eq!(store.busiest_campaigns(2).await.unwrap(), vec!["c", "b"]);
    assert_eq!(
        store.busiest_campaigns(0).await.unwrap(),
        Vec::<String>::new()
    );
    store.clear_namespace().await.unwrap();
}

#[tokio::test]
async fn a_lead_past_its_feedback_window_is_marked_missed_once_and_not_again_at_its_feedback() {
    let store = store().await;
    let (late, prompt, never) = (
        LeadId::from("late"),
        LeadId::from("prompt"),
        LeadId::from("never"),
    );
    for (lead, assigned_ms) in [(&late, HOUR), (&prompt, HOUR), (&never, 10 * HOUR)] {
        store
            .funnel_assigned(lead, &web("spring"), times(1, assigned_ms), TTL)
            .await
            .unwrap();
    }
    // `prompt` gives feedback in time: never overdue.
    let answered = store
        .funnel_outcome(
            &prompt,
            &web("spring"),
            report("accepted", 2 * HOUR, true),
            TTL,
        )
        .await
        .unwrap();
    assert!(answered.first_feedback && !answered.feedback_counted_missed);

    // Windows ending by 5 h: `late` only (`never` was assigned at 10 h).
    let overdue = store.funnel_feedback_overdue(5 * HOUR).await.unwrap();
    assert_eq!(
        overdue,
        vec![handoff_store::OverdueFeedback {
            source: web("spring"),
            team: "sales".to_owned(),
            assigned_ms: HOUR,
        }]
    );
    // Once: another instance's refresh, or the next, finds nothing new.
    assert!(store
        .funnel_feedback_overdue(5 * HOUR)
        .await
        .unwrap()
        .is_empty());

    // Its feedback, late, says it was counted missed already.
    let late_answer = store
        .funnel_outcome(
            &late,
            &web("spring"),
            report("rejected", 6 * HOUR, true),
            TTL,
        )
        .await
        .unwrap();
    assert!(late_answer.first_feedback && late_answer.feedback_counted_missed);
    store.clear_namespace().await.unwrap();
}
