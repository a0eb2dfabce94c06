//! Tests of the simulation file and the replay engine, and property tests over random
//! interleavings of leads, touches and roster edits.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::timeline::{Event, LeadEnd, TouchEffect};
use super::*;
use crate::routing::{RoutingConfig, RoutingModel};
use crate::scoring::{ScoringConfig, ScoringModel};

fn scoring() -> ScoringModel {
    match serde_json::from_value::<ScoringConfig>(json!({"mql_threshold": 0})) {
        Ok(config) => ScoringModel::new(config, "test"),
        Err(e) => panic!("scoring: {e}"),
    }
}

fn routing(value: Value) -> RoutingModel {
    let config: RoutingConfig = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    match RoutingModel::new(config, "test") {
        Ok(m) => m,
        Err(e) => panic!("model: {e:?}"),
    }
}

fn weekdays(hours: &str) -> Value {
    json!({"mon": [hours], "tue": [hours], "wed": [hours], "thu": [hours], "fri": [hours]})
}

/// One team of three in Berlin, capacity 2 each, round-robin.
fn team(working_hours: Option<Value>) -> RoutingModel {
    let rep = |id: &str| {
        let mut rep = json!({"id": id, "capacity": 2, "time_zone": "Europe/Berlin"});
        if let Some(hours) = &working_hours {
            rep["working_hours"] = hours.clone();
        }
        rep
    };
    routing(json!({
        "sticky_days": 0,
        "teams": [{"id": "emea", "members": ["ana", "bruno", "chiara"]}],
        "reps": [rep("ana"), rep("bruno"), rep("chiara")],
        "rules": [{"name": "emea", "team": "emea"}],
    }))
}

fn at(text: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("{text}: {e}"),
    }
}

fn lead_line(id: &str, received_at: Option<&str>) -> String {
    let mut lead = json!({"id": id, "contact": {"email": format!("{id}@acme.io")}});
    if let Some(time) = received_at {
        lead["received_at"] = json!(time);
    }
    lead.to_string()
}

fn parse(routing: &RoutingModel, lines: &[String]) -> Result<Scenario, LineError> {
    Scenario::parse(&lines.join("\n"), at("2026-11-30T08:00:00Z"), routing)
}

fn run(routing: &RoutingModel, lines: &[String], until: Option<&str>) -> ReplayReport {
    let scenario = match parse(routing, lines) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    replay(&scoring(), routing, &scenario, until.map(at))
}

fn assigned(report: &ReplayReport, id: &str) -> Option<(String, DateTime<Utc>)> {
    let assignment = report.lead(id)?.assignment.as_ref()?;
    Some((assignment.rep.to_string(), assignment.at))
}

#[test]
fn every_bad_line_names_its_line_and_field() {
    let model = team(None);
    let good = lead_line("a", None);
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("{not json", None, "not JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        (
            r#"{"contact": {"email": "x@acme.io"}, "received_at": "monday"}"#,
            Some("received_at"),
            "`monday` is not a time",
        ),
        (
            r#"{"contact": {"email": "x@acme.io"}, "company": {"employees": "many"}}"#,
            Some("company.employees"),
            "not a lead: invalid type",
        ),
        (
            r#"{"contact": {"email": ""}}"#,
            Some("contact.email"),
            "required",
        ),
        (
            r#"{"touch": "a", "outcome": "called"}"#,
            Some("outcome"),
            "unknown outcome `called`, expected one of accepted, contacted",
        ),
        (r#"{"touch": "a"}"#, Some("outcome"), "required"),
        (
            r#"{"touch": "a", "outcome": "contacted", "by": "ana"}"#,
            Some("by"),
            "unknown field, expected one of touch, outcome, at",
        ),
        (
            r#"{"touch": "zz", "outcome": "contacted"}"#,
            Some("touch"),
            "no lead `zz` in this file",
        ),
        (
            r#"{"touch": "a", "outcome": "contacted", "at": "2026-11-29T08:00:00Z"}"#,
            Some("at"),
            "comes before lead `a` is received (line 1",
        ),
        (
            r#"{"roster": {"rep": "dora", "active": false}}"#,
            Some("roster.rep"),
            "unknown rep `dora`, expected one of ana, bruno, chiara",
        ),
        (
            r#"{"roster": {"rep": "ana", "capacity": -1}}"#,
            Some("roster.capacity"),
            "expected a whole number from 0 to 100000, got -1",
        ),
        (
            r#"{"roster": {"rep": "ana", "capacity": "three"}}"#,
            Some("roster.capacity"),
            "expected a whole number",
        ),
        (
            r#"{"roster": {"rep": "ana", "active": "no"}}"#,
            Some("roster.active"),
            "expected true, false or null",
        ),
        (
            r#"{"roster": {"rep": "ana", "sick": true}}"#,
            Some("roster.sick"),
            "unknown field",
        ),
        (
            r#"{"roster": {"rep": "ana"}}"#,
            Some("roster"),
            "nothing to change",
        ),
        (
            r#"{"roster": {"rep": "ana", "out_of_office": {"from": "2026-12-01T00:00:00Z", "to": "2026-11-30T00:00:00Z"}}}"#,
            Some("roster.out_of_office.to"),
            "must be after `from`",
        ),
        (
            r#"{"roster": {"rep": "ana", "out_of_office": {"from": "2026-12-01T00:00:00Z"}}}"#,
            Some("roster.out_of_office.to"),
            "required",
        ),
        (
            r#"{"roster": {"rep": "ana", "available": false}, "at": 5}"#,
            Some("at"),
            "expected an RFC 3339 time",
        ),
        (
            r#"{"id": "a", "contact": {"email": "y@acme.io"}}"#,
            Some("id"),
            "already used on line 1",
        ),
        (
            r#"{"contact": {"email": "y@acme.io"}, "received_at": "2028-01-01T00:00:00Z"}"#,
            Some("received_at"),
            "more than 366 days after the first line (line 1, 2026-11-30T08:00:00+00:00)",
        ),
    ];
    for (bad, field, message) in cases {
        let lines = [good.clone(), bad.to_owned()];
        match parse(&model, &lines) {
            Ok(_) => panic!("accepted: {bad}"),
            Err(e) => {
                assert_eq!(e.line, 2, "{bad}: {e}");
                assert_eq!(e.field.as_deref(), field, "{bad}: {e}");
                assert!(e.message.contains(message), "{bad}: {e}");
                assert!(e.to_string().starts_with("line 2"), "{e}");
            }
        }
    }
}

#[test]
fn untimed_lines_happen_at_the_time_of_the_line_before_and_lines_run_in_time_order() {
    let model = team(None);
    let lines = [
        "# a comment".to_owned(),
        lead_line("first", None),
        lead_line("late", Some("2026-11-30T12:00:00+01:00")),
        lead_line("also-late", None),
        lead_line("early", Some("2026-11-30T07:00:00Z")),
        String::new(),
        lead_line("after-early", None),
    ];
    let scenario = match parse(&model, &lines) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let order: Vec<(usize, String)> = scenario
        .lines
        .iter()
        .map(|l| (l.line, l.at.to_rfc3339()))
        .collect();
    assert_eq!(
        order,
        [
            (5, "2026-11-30T07:00:00+00:00".to_owned()),
            (7, "2026-11-30T07:00:00+00:00".to_owned()),
            (2, "2026-11-30T08:00:00+00:00".to_owned()),
            (3, "2026-11-30T11:00:00+00:00".to_owned()),
            (4, "2026-11-30T11:00:00+00:00".to_owned()),
        ]
    );
    assert!(!scenario.is_plain());
    let plain = parse(&model, &[lead_line("x", None), lead_line("y", None)]);
    assert!(plain.is_ok_and(|s| s.is_plain()));
}

#[test]
fn leads_without_an_id_are_called_after_their_line() {
    let model = team(None);
    let lines = [
        r#"{"contact": {"email": "a@acme.io"}}"#.to_owned(),
        r#"{"touch": "line-1", "outcome": "CONTACTED"}"#.to_owned(),
    ];
    let report = run(&model, &lines, None);
    assert_eq!(report.leads.len(), 1);
    assert_eq!(report.leads[0].decision.lead_id, "line-1");
    assert_eq!(
        report.leads[0].touches[0].effect,
        TouchEffect::Freed(RepId::from("ana"))
    );
}

#[test]
fn a_full_team_queues_and_touches_drain_the_queue_oldest_first() {
    let model = team(None);
    let mut lines: Vec<String> = (1..=8)
        .map(|i| lead_line(&format!("l{i}"), Some(&format!("2026-11-30T08:0{i}:00Z"))))
        .collect();
    lines.push(
        r#"{"touch": "l1", "outcome": "contacted", "at": "2026-11-30T08:30:00Z"}"#.to_owned(),
    );
    lines.push(
        r#"{"touch": "l1", "outcome": "converted", "at": "2026-11-30T08:31:00Z"}"#.to_owned(),
    );
    lines.push(
        r#"{"touch": "l8", "outcome": "contacted", "at": "2026-11-30T08:32:00Z"}"#.to_owned(),
    );
    let report = run(&model, &lines, None);
    // Six fit (three reps, two each); l7 and l8 wait.
    assert_eq!(
        assigned(&report, "l6").map(|a| a.0),
        Some("chiara".to_owned())
    );
    let l7 = report.lead("l7").and_then(|l| l.wait.clone());
    assert!(l7.is_some_and(|w| w.queue.as_str() == "emea-overflow"));
    // ana's first touch frees room for the oldest waiting lead, at the touch's time.
    assert_eq!(
        assigned(&report, "l7"),
        Some(("ana".to_owned(), at("2026-11-30T08:30:00Z")))
    );
    let l1 = report.lead("l1").map(|l| {
        l.touches
            .iter()
            .map(|t| t.effect.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(
        l1,
        Some(vec![
            TouchEffect::Freed(RepId::from("ana")),
            TouchEffect::AlreadyTouched
        ])
    );
    // A touch on a waiting lead changes nothing; l8 still waits.
    let l8 = report.lead("l8");
    assert_eq!(
        l8.map(|l| l.touches[0].effect.clone()),
        Some(TouchEffect::NotAssigned)
    );
    assert!(
        matches!(l8.map(|l| l.end()), Some(LeadEnd::Waiting(q)) if q.as_str() == "emea-overflow")
    );
    let queue = &report.queues[0];
    assert_eq!(
        (queue.entered, queue.max_depth, queue.waiting_at_end),
        (2, 2, 1)
    );
    // l8 arrived 08:08 and still waits at the end (08:32).
    assert_eq!(queue.longest_wait, TimeDelta::minutes(24));
    assert_eq!(
        report
            .summary
            .waiting
            .get(&QueueName::from("emea-overflow")),
        Some(&1)
    );
}

#[test]
fn a_rep_on_leave_gets_nothing_and_coming_back_drains_the_queue() {
    let model = team(None);
    let lines = [
        r#"{"roster": {"rep": "ana", "active": false}, "at": "2026-11-30T08:00:00Z"}"#.to_owned(),
        r#"{"roster": {"rep": "bruno", "capacity": 0}}"#.to_owned(),
        r#"{"roster": {"rep": "chiara", "available": false}}"#.to_owned(),
        lead_line("waits", Some("2026-11-30T09:00:00Z")),
        r#"{"roster": {"rep": "ana", "active": null}, "at": "2026-11-30T10:00:00Z"}"#.to_owned(),
    ];
    let report = run(&model, &lines, None);
    let first = report
        .lead("waits")
        .and_then(|l| l.decision.explanation.clone());
    let skipped: Vec<String> = first
        .map(|e| {
            e.skipped
                .iter()
                .map(|s| format!("{} ({})", s.rep_id, s.reason))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        skipped,
        [
            "ana (inactive)",
            "bruno (at_capacity)",
            "chiara (unavailable)"
        ]
    );
    assert_eq!(
        assigned(&report, "waits"),
        Some(("ana".to_owned(), at("2026-11-30T10:00:00Z")))
    );
    assert!(matches!(
        report.log.last().map(|e| &e.event),
        Some(Event::Dequeued { .. })
    ));
}

#[test]
fn an_out_of_office_span_reads_as_such_and_ends_at_its_exact_time() {
    let model = team(None);
    let away = |rep: &str| {
        format!(
            r#"{{"roster": {{"rep": "{rep}", "out_of_office": {{"from": "2026-11-30T00:00:00Z", "to": "2026-11-30T10:00:30Z"}}}}, "at": "2026-11-29T12:00:00Z"}}"#
        )
    };
    let lines = [
        away("ana"),
        away("bruno"),
        away("chiara"),
        lead_line("waits", Some("2026-11-30T09:00:00Z")),
    ];
    let report = run(&model, &lines, Some("2026-11-30T12:00:00Z"));
    let skipped = report
        .lead("waits")
        .and_then(|l| l.decision.explanation.as_ref())
        .map(|e| {
            e.skipped
                .iter()
                .map(|s| s.reason.as_str())
                .collect::<Vec<_>>()
        });
    assert_eq!(skipped, Some(vec!["out_of_office"; 3]));
    assert_eq!(
        assigned(&report, "waits"),
        Some(("ana".to_owned(), at("2026-11-30T10:00:30Z")))
    );
    // The clock, not a line, drained it.
    assert!(report
        .log
        .iter()
        .any(|e| e.line.is_none() && matches!(e.event, Event::Dequeued { .. })));
}

#[test]
fn working_hours_opening_drains_the_overnight_queue_at_nine_local() {
    let model = team(Some(weekdays("09:00-17:00")));
    let lines = [
        lead_line("evening", Some("2026-11-30T18:30:00+01:00")),
        lead_line("night", Some("2026-12-01T02:00:00+01:00")),
        lead_line("early", Some("2026-12-01T08:59:59+01:00")),
    ];
    let report = run(&model, &lines, Some("2026-12-01T10:00:00+01:00"));
    for (id, rep) in [("evening", "ana"), ("night", "bruno"), ("early", "chiara")] {
        assert_eq!(
            assigned(&report, id),
            Some((rep.to_owned(), at("2026-12-01T09:00:00+01:00"))),
            "{id}"
        );
    }
    let evening = report.lead("evening").and_then(|l| l.wait.as_ref());
    assert_eq!(
        evening.map(|w| w.duration(report.ended_at)),
        Some(TimeDelta::minutes(14 * 60 + 30))
    );
    // Without --until the replay ends at the last line: they are still waiting.
    let report = run(&model, &lines, None);
    assert_eq!(report.summary.waiting.values().sum::<usize>(), 3);
}

#[test]
fn daily_caps_count_per_utc_day() {
    let model = routing(json!({
        "sticky_days": 0,
        "teams": [{"id": "t", "members": ["solo"]}],
        "reps": [{"id": "solo", "capacity": 100, "daily_cap": 2}],
        "rules": [{"name": "all", "team": "t"}],
    }));
    let lines: Vec<String> = (1..=3)
        .map(|i| lead_line(&format!("l{i}"), Some(&format!("2026-11-30T22:0{i}:00Z"))))
        .collect();
    let report = run(&model, &lines, Some("2026-12-01T01:00:00Z"));
    assert_eq!(
        assigned(&report, "l3"),
        Some(("solo".to_owned(), at("2026-12-01T00:00:00Z")))
    );
    let reason = report
        .lead("l3")
        .and_then(|l| l.decision.explanation.as_ref())
        .map(|e| e.skipped[0].reason.clone());
    assert_eq!(reason.as_deref(), Some("daily_cap_reached"));
}

#[test]
fn the_one_at_a_time_simulation_routes_like_the_router() {
    let model = team(None);
    let scoring = scoring();
    let mut simulation = Simulation::new(&scoring, &model);
    let now = at("2026-11-30T10:00:00Z");
    let reps: Vec<String> = (0..7)
        .map(|i| {
            let submission = crate::submission::LeadSubmission {
                id: Some(format!("l{i}")),
                contact: crate::lead::Contact {
                    email: format!("l{i}@acme.io"),
                    ..Default::default()
                },
                ..Default::default()
            };
            let lead = match submission.into_lead(now) {
                Ok(l) => l,
                Err(e) => panic!("{e}"),
            };
            match simulation.route(&lead, now).map(|d| d.outcome.clone()) {
                Some(SimulatedOutcome::Assigned { rep, .. }) => rep.to_string(),
                Some(SimulatedOutcome::Queued { queue, .. }) => queue.to_string(),
                other => format!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        reps,
        [
            "ana",
            "bruno",
            "chiara",
            "ana",
            "bruno",
            "chiara",
            "emea-overflow"
        ]
    );
    let summary = simulation.summary();
    assert_eq!(summary.leads, 7);
    assert_eq!(summary.waiting.values().sum::<usize>(), 1);
}

// Random interleavings: a team of three (one with working hours) with a fallback rep who
// has a daily cap, an account owner, and roster edits of every kind.

fn property_model() -> RoutingModel {
    routing(json!({
        "sticky_days": 1,
        "teams": [
            {"id": "t", "members": ["a", "b", "c"]},
            {"id": "f", "members": ["d"]},
        ],
        "reps": [
            {"id": "a", "capacity": 1},
            {"id": "b", "capacity": 2},
            {"id": "c", "capacity": 3, "time_zone": "Europe/Berlin", "working_hours": weekdays("09:00-12:00")},
            {"id": "d", "capacity": 2, "daily_cap": 3},
        ],
        "accounts": [{"name": "Acme", "domains": ["acme.io"], "owner": "b"}],
        "rules": [{"name": "all", "team": "t", "fallback": "f"}],
    }))
}

/// `e` is not in the rules file: a roster line adds them to team `t` (once, mid-way).
const REPS: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Debug, Clone)]
enum Op {
    Lead { acme: bool, contact: u8 },
    Touch { pick: usize, outcome: usize },
    Roster { rep: usize, change: Value },
    Join,
}

fn op() -> impl Strategy<Value = (u32, bool, Op)> {
    let change = prop_oneof![
        any::<Option<bool>>().prop_map(|v| json!({ "active": v })),
        any::<Option<bool>>().prop_map(|v| json!({ "available": v })),
        proptest::option::of(0u32..4).prop_map(|v| json!({ "capacity": v })),
        (0i64..600, 1i64..600).prop_map(|(from, length)| json!({"out_of_office": {
            "from": (at("2026-11-30T06:00:00Z") + TimeDelta::minutes(from)).to_rfc3339(),
            "to": (at("2026-11-30T06:00:00Z") + TimeDelta::minutes(from + length)).to_rfc3339(),
        }})),
        Just(json!({ "out_of_office": null })),
    ];
    let what = prop_oneof![
        4 => (any::<bool>(), 0u8..6).prop_map(|(acme, contact)| Op::Lead { acme, contact }),
        3 => (any::<usize>(), 0usize..5).prop_map(|(pick, outcome)| Op::Touch { pick, outcome }),
        2 => (0usize..4, change).prop_map(|(rep, change)| Op::Roster { rep, change }),
        1 => Just(Op::Join),
    ];
    // Minutes since the line before (0: the same time), and whether the line says its time.
    (0u32..120, any::<bool>(), what)
}

/// The file text for the operations: times always move forward, so every touch names a
/// lead received before it.
fn file(ops: &[(u32, bool, Op)]) -> String {
    let mut clock = at("2026-11-30T06:00:00Z");
    let mut leads = 0usize;
    let mut lines = Vec::new();
    let mut joined = false;
    for (gap, timed, op) in ops {
        clock += TimeDelta::minutes(i64::from(*gap));
        let time = json!(clock.to_rfc3339());
        let mut line = match op {
            Op::Lead { acme, contact } => {
                leads += 1;
                let domain = if *acme { "acme.io" } else { "example.org" };
                let mut lead = json!({"id": format!("l{leads}"), "contact": {"email": format!("p{contact}@{domain}")}});
                if *timed {
                    lead["received_at"] = time.clone();
                }
                lead
            }
            Op::Touch { .. } if leads == 0 => continue,
            Op::Touch { pick, outcome } => {
                let outcome =
                    ["contacted", "accepted", "converted", "rejected", "recycled"][*outcome];
                json!({"touch": format!("l{}", pick % leads + 1), "outcome": outcome})
            }
            Op::Roster { rep, change } => {
                let mut roster = change.clone();
                roster["rep"] = json!(REPS[*rep]);
                json!({ "roster": roster })
            }
            Op::Join if joined => continue,
            Op::Join => {
                joined = true;
                json!({"roster": {"rep": "e", "team": "t", "capacity": 2}})
            }
        };
        if *timed && !matches!(op, Op::Lead { .. }) {
            line["at"] = time;
        }
        lines.push(line.to_string());
    }
    lines.join("\n")
}

proptest! {
    /// Whatever the interleaving: no rep ever holds more open leads than their capacity in
    /// force, nobody inactive, away or past the daily cap gets a lead, and every lead ends
    /// with a rep or in exactly one queue.
    #[test]
    fn capacity_holds_and_no_lead_is_lost(ops in proptest::collection::vec(op(), 0..40)) {
        let model = property_model();
        let text = file(&ops);
        let scenario = Scenario::parse(&text, at("2026-11-30T06:00:00Z"), &model)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let leads_in_file = scenario.lines.iter().filter(|l| matches!(l.what, LineKind::Lead(_))).count();
        let scoring = scoring();
        let mut engine = Replay::new(&scoring, &model);
        for line in &scenario.lines {
            engine.apply(line);
            let stuck = engine.routable_but_waiting();
            prop_assert!(stuck.is_empty(), "{:?} wait while a rep could take them (after line {})\n{}", stuck, line.line, text);
        }
        let report = engine.finish(at("2026-11-30T06:00:00Z"), at("2026-12-03T12:00:00Z"));

        // Replay the log independently of the engine's bookkeeping.
        let mut open: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        // Sticky repeats that joined a lead open with the same rep: they hold no capacity.
        let mut joined: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        let mut capacity: BTreeMap<&str, Option<u32>> = BTreeMap::new();
        let mut active: BTreeMap<&str, bool> = BTreeMap::new();
        let mut spans: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
        let mut per_day: BTreeMap<(&str, chrono::NaiveDate), u32> = BTreeMap::new();
        for entry in &report.log {
            let lead_index = match &entry.event {
                Event::Received { lead } | Event::Dequeued { lead } => *lead,
                Event::Touched { lead, touch } => {
                    if let TouchEffect::Freed(rep) = &touch.effect {
                        let was_joined = joined.entry(rep.as_str()).or_default().remove(lead);
                        let was_open = open.entry(rep.as_str()).or_default().remove(lead);
                        prop_assert!(was_open || was_joined, "freed a lead that was not open");
                    }
                    continue;
                }
                Event::Roster(edit) => {
                    let rep = REPS.iter().copied().find(|r| *r == edit.rep.as_str()).unwrap_or("?");
                    if let Some(c) = edit.capacity { capacity.insert(rep, c); }
                    if let Some(a) = edit.active { active.insert(rep, a.unwrap_or(true)); }
                    match edit.out_of_office {
                        Some(Some(span)) => spans.entry(rep).or_default().push(span),
                        Some(None) => { spans.remove(rep); }
                        None => {}
                    }
                    continue;
                }
            };
            let lead = &report.leads[lead_index];
            let Some(assignment) = &lead.assignment else { continue };
            if matches!(entry.event, Event::Received { .. }) && lead.wait.is_some() {
                continue;
            }
            prop_assert_eq!(assignment.at, entry.at);
            let rep = assignment.rep.as_str();
            let rep = REPS.iter().copied().find(|r| *r == rep).unwrap_or("?");
            prop_assert!(active.get(rep).copied().unwrap_or(true), "{} is inactive\n{}", rep, text);
            prop_assert!(!spans.get(rep).is_some_and(|s| s.iter().any(|s| s.contains(entry.at))), "{} is away\n{}", rep, text);
            if let Some(earlier) = assignment.joins {
                // Only onto a lead of the same contact still open with the same rep.
                prop_assert!(open.get(rep).is_some_and(|held| held.contains(&earlier)), "{} joined a lead not open with {}\n{}", lead_index, rep, text);
                prop_assert_eq!(assignment.open_after, open.get(rep).map_or(0, BTreeSet::len));
                prop_assert!(joined.entry(rep).or_default().insert(lead_index), "assigned twice");
                continue;
            }
            let held = open.entry(rep).or_default();
            prop_assert!(held.insert(lead_index), "assigned twice");
            let limit = capacity.get(rep).copied().flatten().unwrap_or_else(|| model.rep_capacity(rep));
            prop_assert!(held.len() <= limit as usize, "{} holds {} > {}\n{}", rep, held.len(), limit, text);
            prop_assert_eq!(assignment.open_after, held.len());
            let today = per_day.entry((rep, entry.at.date_naive())).or_default();
            *today += 1;
            if let Some(cap) = model.rep_daily_cap(rep) {
                prop_assert!(*today <= cap, "{} over the daily cap", rep);
            }
        }

        prop_assert_eq!(report.leads.len(), leads_in_file);
        let mut waiting = 0;
        for lead in &report.leads {
            match lead.end() {
                LeadEnd::Waiting(_) => {
                    waiting += 1;
                    prop_assert!(lead.wait.as_ref().is_some_and(|w| w.until.is_none()));
                }
                LeadEnd::Open(rep) => prop_assert!(open.get(rep.as_str()).into_iter().chain(joined.get(rep.as_str())).any(|s| s.iter().any(|i| report.leads[*i].decision.lead_id == lead.decision.lead_id))),
                LeadEnd::Touched(_) => {}
                LeadEnd::Unqualified => prop_assert!(false, "every lead qualifies here"),
            }
        }
        let queued: usize = report.queues.iter().map(|q| q.waiting_at_end).sum();
        prop_assert_eq!(queued, waiting);
        prop_assert_eq!(report.summary.waiting.values().sum::<usize>(), waiting);
        let open_at_end: usize = report.reps.iter().map(|r| r.open_at_end).sum();
        prop_assert_eq!(open_at_end, open.values().map(BTreeSet::len).sum::<usize>());
    }
}

/// A value a user might put anywhere in a line: the right kind, the wrong kind, the ends of
/// time, ids that exist and ids that do not.
fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("0000-01-01T00:00:00Z"),
            Just("9999-12-31T23:59:59Z"),
            Just("9999-12-31T23:59:59-23:59"),
            Just("2026-03-29T01:30:00+01:00"),
            Just("2026-11-30T09:00:00+01:00"),
            Just("2026-12-01T09:00:00+01:00"),
            Just("l1"),
            Just("line-1"),
            Just("ana"),
            Just("zoe"),
            Just("emea"),
            Just("2026-11-30"),
            Just("2026-11-30T13:00"),
            Just("contacted"),
            Just("a@acme.io"),
            Just("b@acme.io"),
            Just(""),
        ]
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(json!({"from": "2026-11-30T00:00:00Z", "to": "2026-12-01T00:00:00Z"})),
        Just(json!({"from": "9999-12-31T00:00:00Z", "to": "9999-12-31T23:59:59Z"})),
        Just(json!({"from": "2026-11-30", "to": "2026-11-30T13:00"})),
        Just(json!({"from": "9999-12-31", "to": "9999-12-31"})),
        Just(json!({"email": "a@acme.io"})),
    ]
}

fn any_line() -> impl Strategy<Value = String> {
    let keys = || {
        prop_oneof![
            Just("touch"),
            Just("outcome"),
            Just("at"),
            Just("received_at"),
            Just("id"),
            Just("contact"),
            Just("rep"),
            Just("team"),
            Just("active"),
            Just("capacity"),
            Just("out_of_office"),
        ]
    };
    let object = || proptest::collection::btree_map(keys(), any_value(), 0..4);
    let time = || {
        prop_oneof![
            3 => Just(Value::Null),
            1 => Just(json!("0000-01-01T00:00:00Z")),
            1 => Just(json!("9999-12-31T23:59:59-23:59")),
            1 => Just(json!("2026-03-29T01:30:00+01:00")),
            8 => (0i64..4000).prop_map(|m| json!((at("2026-11-30T06:00:00Z") + TimeDelta::minutes(m)).to_rfc3339())),
        ]
    };
    let id = || {
        prop_oneof![
            Just("l1"),
            Just("l2"),
            Just("line-1"),
            Just("line-3"),
            Just("nope")
        ]
    };
    // Mostly good lines, so that many files replay; now and then a broken one.
    prop_oneof![
        1 => ".{0,40}",
        1 => Just(String::new()),
        1 => object().prop_map(|map| json!(map).to_string()),
        1 => (object(), object()).prop_map(|(outer, inner)| {
            let mut value = json!(outer);
            value["roster"] = json!(inner);
            value.to_string()
        }),
        12 => (proptest::option::weighted(0.1, Just("x1")), time(), prop_oneof![Just("a@acme.io"), Just("b@acme.io")]).prop_map(|(id, received_at, email)| {
            json!({"id": id, "received_at": received_at, "contact": {"email": email}}).to_string()
        }),
        6 => (id(), prop_oneof![3 => Just(Value::Null), 1 => time()], prop_oneof![Just("contacted"), Just("REJECTED"), Just("recycled")]).prop_map(|(id, at, outcome)| {
            json!({"touch": id, "at": at, "outcome": outcome}).to_string()
        }),
        2 => (prop_oneof![Just("zoe"), Just("ana")], prop_oneof![Just(Value::Null), Just(json!(0)), Just(json!(2))], time()).prop_map(|(rep, capacity, at)| {
            json!({"roster": {"rep": rep, "team": "emea", "capacity": capacity}, "at": at}).to_string()
        }),
        6 => (prop_oneof![Just("ana"), Just("bruno"), Just("chiara"), Just("zoe")], prop_oneof![Just("active"), Just("available"), Just("capacity"), Just("out_of_office")], prop_oneof![1 => any_value(), 3 => Just(Value::Null)], time()).prop_map(|(rep, field, value, at)| {
            let mut roster = json!({"rep": rep});
            roster[field] = value;
            json!({"roster": roster, "at": at}).to_string()
        }),
    ]
}

proptest! {
    /// Lines are user input: any file is an error naming a line of it, or a replay; never
    /// a panic, never a hang (the ends of time included).
    #[test]
    fn any_file_is_an_error_or_a_replay(
        lines in proptest::collection::vec(any_line(), 0..12),
        until in proptest::option::of(any_value()),
    ) {
        let model = team(Some(weekdays("09:00-17:00")));
        let text = lines.join("\n");
        match Scenario::parse(&text, at("2026-11-30T08:00:00Z"), &model) {
            Err(e) => {
                prop_assert!(e.line >= 1 && e.line <= lines.len().max(1), "{e}");
            }
            Ok(scenario) => {
                let until = until.and_then(|u| u.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()));
                let report = replay(&scoring(), &model, &scenario, until.map(|t| t.with_timezone(&Utc)));
                let leads = scenario.lines.iter().filter(|l| matches!(l.what, LineKind::Lead(_))).count();
                prop_assert_eq!(report.leads.len(), leads);
                prop_assert!(report.ended_at >= report.started_at);
            }
        }
    }
}

#[test]
fn the_target_share_follows_roster_edits() {
    // chiara starts switched off and is switched on halfway; ana is switched off then.
    let model = routing(json!({
        "sticky_days": 0,
        "teams": [{"id": "emea", "members": ["ana", "bruno", "chiara"]}],
        "reps": [{"id": "ana", "capacity": 100}, {"id": "bruno", "capacity": 100}, {"id": "chiara", "capacity": 100, "active": false}],
        "rules": [{"name": "emea", "team": "emea"}],
    }));
    let mut lines: Vec<String> = (0..4).map(|i| lead_line(&format!("a{i}"), None)).collect();
    lines.push(r#"{"roster": {"rep": "chiara", "active": true}}"#.to_owned());
    lines.push(r#"{"roster": {"rep": "ana", "active": false}}"#.to_owned());
    lines.extend((0..4).map(|i| lead_line(&format!("b{i}"), None)));
    let report = run(&model, &lines, None);
    let shares: Vec<(String, usize, f64)> = report
        .summary
        .shares
        .iter()
        .map(|s| {
            (
                s.rep.to_string(),
                s.assigned,
                (s.target * 1000.0).round() / 1000.0,
            )
        })
        .collect();
    // Four leads shared by ana and bruno, then four by bruno and chiara.
    assert_eq!(
        shares,
        [
            ("ana".to_owned(), 2, 0.25),
            ("bruno".to_owned(), 4, 0.5),
            ("chiara".to_owned(), 2, 0.25)
        ]
    );
}

/// Issue 24 (1): the same person submitting again while their first lead is still open
/// with their rep reaches that rep without taking a second unit of capacity, and the
/// explanation says so; once the first lead is touched, a repeat is new work again.
#[test]
fn a_sticky_repeat_of_an_open_lead_joins_it_without_taking_capacity() {
    let model = routing(json!({
        "sticky_days": 30,
        "teams": [{"id": "emea", "members": ["ana", "bruno"]}],
        "reps": [{"id": "ana", "capacity": 1}, {"id": "bruno", "capacity": 5}],
        "rules": [{"name": "emea", "team": "emea"}],
    }));
    let same_person = |id: &str, time: &str| {
        json!({"id": id, "contact": {"email": "pat@acme.io"}, "received_at": time}).to_string()
    };
    let lines = [
        same_person("first", "2026-11-30T09:00:00Z"),
        same_person("again", "2026-11-30T09:10:00Z"),
        same_person("third", "2026-11-30T09:20:00Z"),
        r#"{"touch": "first", "outcome": "contacted", "at": "2026-11-30T09:30:00Z"}"#.to_owned(),
        same_person("later", "2026-11-30T09:40:00Z"),
    ];
    let report = run(&model, &lines, None);
    for id in ["first", "again", "third"] {
        assert_eq!(
            assigned(&report, id).map(|(rep, _)| rep).as_deref(),
            Some("ana"),
            "{id}"
        );
    }
    let again = report
        .lead("again")
        .and_then(|l| l.assignment.as_ref())
        .map(|a| (a.open_after, a.explanation.reason.clone()));
    assert_eq!(
        again,
        Some((
            1,
            "ana: already works this contact, whose lead first is still open with them: this repeat joins it and takes no capacity".to_owned()
        ))
    );
    let ana = report.reps.iter().find(|r| r.rep.as_str() == "ana");
    assert_eq!(ana.map(|r| (r.assigned, r.peak_open)), Some((4, 1)));
    // After the first lead's touch, the next repeat is a lead of its own again (capacity 1,
    // now free): it goes to ana and holds her capacity.
    let later = report.lead("later").and_then(|l| l.assignment.as_ref());
    assert_eq!(
        later.map(|a| (a.rep.as_str(), a.open_after, a.explanation.reason.as_str())),
        Some(("ana", 1, "ana: already works this contact"))
    );
}

/// Issue 24 (8): the sticky window is a duration (`sticky = "12h"`); `sticky_days` still
/// works, and the two together, or a duration that is none, are refused.
#[test]
fn the_sticky_window_is_a_duration() {
    let model = |sticky: Value| {
        let mut config = json!({
            "teams": [{"id": "emea", "members": ["ana", "bruno"]}],
            "reps": [{"id": "ana", "capacity": 5}, {"id": "bruno", "capacity": 5}],
            "rules": [{"name": "emea", "team": "emea"}],
        });
        if let Value::Object(fields) = sticky {
            for (key, value) in fields {
                config[key] = value;
            }
        }
        config
    };
    let twelve_hours = routing(model(json!({"sticky": "12h"})));
    let person = |id: &str, time: &str| {
        json!({"id": id, "contact": {"email": "pat@acme.io"}, "received_at": time}).to_string()
    };
    let lines = [
        person("p1", "2026-11-30T00:00:00Z"),
        r#"{"touch": "p1", "outcome": "contacted", "at": "2026-11-30T00:10:00Z"}"#.to_owned(),
        person("p2", "2026-11-30T11:00:00Z"),
        r#"{"touch": "p2", "outcome": "contacted", "at": "2026-11-30T11:10:00Z"}"#.to_owned(),
        person("p3", "2026-11-30T23:30:00Z"),
    ];
    let report = run(&twelve_hours, &lines, None);
    let strategy = |id: &str| {
        report
            .lead(id)
            .and_then(|l| l.assignment.as_ref())
            .map(|a| (a.rep.to_string(), a.explanation.strategy.clone()))
    };
    assert_eq!(
        strategy("p2"),
        Some(("ana".to_owned(), "sticky".to_owned()))
    );
    // 12h30m after p2 went to ana: a new contact, routed by the rule.
    assert_eq!(
        strategy("p3").map(|(_, s)| s).as_deref(),
        Some("round_robin")
    );
    assert_eq!(twelve_hours.sticky_seconds(), 12 * 3600);
    assert_eq!(
        routing(model(json!({"sticky_days": 2}))).sticky_seconds(),
        2 * 86_400
    );
    assert_eq!(routing(model(json!({}))).sticky_seconds(), 30 * 86_400);
    assert_eq!(routing(model(json!({"sticky": "0s"}))).sticky_seconds(), 0);

    let errors = |sticky: Value| -> Vec<String> {
        let config: RoutingConfig = match serde_json::from_value(model(sticky)) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        RoutingModel::new(config, "v")
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        errors(json!({"sticky": "12h", "sticky_days": 1})),
        ["sticky: set `sticky` (a duration such as \"12h\") or `sticky_days`, not both"]
    );
    let bad = errors(json!({"sticky": "twelve hours"}));
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].starts_with("sticky: `twelve hours` is not a duration"),
        "{bad:?}"
    );
    assert_eq!(
        errors(json!({"sticky": "400d"})),
        ["sticky: `400d` is longer than 366 days"]
    );
}

/// The simulator follows the team's catch-up policy as the router does: a least-loaded rep
/// back from leave gets at most two leads in a row by default, all of them with "full".
#[test]
fn a_rep_back_from_leave_catches_up_as_the_team_policy_says() {
    let model = |catch_up: Option<&str>| {
        let mut team = json!({"id": "emea", "members": ["ana", "bruno", "chiara"]});
        if let Some(catch_up) = catch_up {
            team["catch_up"] = json!(catch_up);
        }
        let rep = |id: &str| json!({"id": id, "capacity": 100});
        routing(json!({
            "sticky_days": 0,
            "teams": [team],
            "reps": [rep("ana"), rep("bruno"), rep("chiara")],
            "rules": [{"name": "emea", "team": "emea", "strategy": "least_loaded"}],
        }))
    };
    let mut lines = vec![
        r#"{"roster": {"rep": "chiara", "available": false}, "at": "2026-11-30T08:00:00Z"}"#
            .to_owned(),
    ];
    for n in 0..20 {
        lines.push(lead_line(&format!("l{n:02}"), Some("2026-11-30T09:00:00Z")));
    }
    lines.push(
        r#"{"roster": {"rep": "chiara", "available": null}, "at": "2026-11-30T10:00:00Z"}"#
            .to_owned(),
    );
    for n in 20..30 {
        lines.push(lead_line(&format!("l{n:02}"), Some("2026-11-30T11:00:00Z")));
    }
    let picks = |catch_up: Option<&str>| -> Vec<String> {
        let report = run(&model(catch_up), &lines, None);
        (20..30)
            .filter_map(|n| assigned(&report, &format!("l{n:02}")).map(|(rep, _)| rep))
            .collect()
    };
    let streak = |picks: &[String]| {
        picks
            .split(|p| p != "chiara")
            .map(<[String]>::len)
            .max()
            .unwrap_or(0)
    };
    let default = picks(None);
    assert_eq!(default.len(), 10);
    assert_eq!(streak(&default), 2, "{default:?}");
    let full = picks(Some("full"));
    assert_eq!(streak(&full), 10, "{full:?}");
}

/// A rule naming one rep in a replay: the lead waits for them in its own queue while they
/// are away, and is theirs when they come back (the rest of the team never takes it).
#[test]
fn a_lead_for_one_named_rep_waits_for_them() {
    let model = routing(json!({
        "sticky_days": 0,
        "teams": [{"id": "emea", "members": ["ana", "bruno"]}],
        "reps": [{"id": "ana", "capacity": 5}, {"id": "bruno", "capacity": 5}],
        "rules": [{"name": "vip", "rep": "ana"}],
    }));
    let lines = [
        r#"{"roster": {"rep": "ana", "available": false}, "at": "2026-11-30T08:00:00Z"}"#
            .to_owned(),
        lead_line("waits", Some("2026-11-30T09:00:00Z")),
        r#"{"roster": {"rep": "ana", "available": null}, "at": "2026-11-30T10:00:00Z"}"#.to_owned(),
    ];
    let report = run(&model, &lines, None);
    let first = report
        .lead("waits")
        .and_then(|l| l.decision.explanation.clone())
        .map(|e| e.reason)
        .unwrap_or_default();
    assert_eq!(first, "ana cannot take it; queued in ana-waiting");
    assert_eq!(
        assigned(&report, "waits"),
        Some(("ana".to_owned(), at("2026-11-30T10:00:00Z")))
    );
}

fn out_of_office_span(scenario: &Scenario, line: usize) -> Option<Span> {
    scenario.lines.iter().find_map(|l| match &l.what {
        LineKind::Roster(edit) if l.line == line => edit.out_of_office.flatten(),
        _ => None,
    })
}

/// Issue 24 (7): a roster line's out-of-office takes the rules file's forms, in the rep's
/// zone: a date is the whole local day (both ends included), a local date-time is the
/// rep's clock, an offset is exact; a date-time `to` is excluded.
#[test]
fn a_roster_out_of_office_reads_like_the_rules_file_in_the_reps_zone() {
    let model = team(None);
    let lines = [
        r#"{"roster": {"rep": "ana", "out_of_office": {"from": "2026-11-30", "to": "2026-11-30"}}, "at": "2026-11-29T12:00:00Z"}"#.to_owned(),
        r#"{"roster": {"rep": "bruno", "out_of_office": {"from": "2026-11-30T13:00", "to": "2026-11-30T15:00"}}}"#.to_owned(),
        r#"{"roster": {"rep": "chiara", "out_of_office": {"from": "2026-11-30T13:00", "to": "2026-12-01"}}}"#.to_owned(),
        r#"{"roster": {"rep": "chiara", "out_of_office": {"from": "2026-12-02T10:00:00Z", "to": "2026-12-02T12:00:00+01:00"}}}"#.to_owned(),
        lead_line("l1", Some("2026-11-30T12:30:00Z")),
        lead_line("l2", Some("2026-11-30T14:00:00Z")),
    ];
    let scenario = match parse(&model, &lines) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let span = |from: &str, to: &str| {
        Some(Span {
            from: at(from),
            to: at(to),
        })
    };
    // Berlin is UTC+1 in winter.
    assert_eq!(
        out_of_office_span(&scenario, 1),
        span("2026-11-29T23:00:00Z", "2026-11-30T23:00:00Z")
    );
    assert_eq!(
        out_of_office_span(&scenario, 2),
        span("2026-11-30T12:00:00Z", "2026-11-30T14:00:00Z")
    );
    assert_eq!(
        out_of_office_span(&scenario, 3),
        span("2026-11-30T12:00:00Z", "2026-12-01T23:00:00Z")
    );
    assert_eq!(
        out_of_office_span(&scenario, 4),
        span("2026-12-02T10:00:00Z", "2026-12-02T11:00:00Z")
    );
    let report = replay(&scoring(), &model, &scenario, None);
    // At 13:30 Berlin all three are away; at 15:00 Berlin bruno is back, to the second.
    let skipped = report
        .lead("l1")
        .and_then(|l| l.decision.explanation.as_ref())
        .map(|e| {
            e.skipped
                .iter()
                .map(|s| s.reason.as_str())
                .collect::<Vec<_>>()
        });
    assert_eq!(skipped, Some(vec!["out_of_office"; 3]));
    assert_eq!(
        assigned(&report, "l1"),
        Some(("bruno".to_owned(), at("2026-11-30T14:00:00Z")))
    );
    assert_eq!(
        assigned(&report, "l2"),
        Some(("bruno".to_owned(), at("2026-11-30T14:00:00Z")))
    );
}

/// A team whose hours are the team's: ana and bruno set none of their own.
fn team_with_default_hours() -> RoutingModel {
    routing(json!({
        "sticky_days": 0,
        "teams": [{
            "id": "emea",
            "members": ["ana", "bruno"],
            "time_zone": "Europe/Berlin",
            "working_hours": weekdays("09:00-17:00"),
        }],
        "reps": [{"id": "ana", "capacity": 10}, {"id": "bruno", "capacity": 10}],
        "rules": [{"name": "emea", "team": "emea"}],
    }))
}

/// Issue 24 (9): a roster line adds a rep the rules file does not know to a team
/// mid-replay: they join the rotation at its end with the line's capacity and the team's
/// hours, and the `target` column and shares count them from then on.
#[test]
fn a_roster_line_adds_a_new_member_mid_replay() {
    let model = team_with_default_hours();
    let mut lines: Vec<String> = (0..4)
        .map(|i| lead_line(&format!("a{i}"), Some("2026-11-30T09:00:00Z")))
        .collect();
    lines.push(
        r#"{"roster": {"rep": "zoe", "team": "emea", "capacity": 3}, "at": "2026-11-30T10:00:00Z"}"#
            .to_owned(),
    );
    lines.extend((0..6).map(|i| lead_line(&format!("b{i}"), None)));
    // 18:30 Berlin: nobody works, zoe included (the team's hours are hers).
    lines.push(lead_line("evening", Some("2026-11-30T17:30:00Z")));
    let report = run(&model, &lines, Some("2026-12-01T12:00:00Z"));
    let got: Vec<String> = (0..6)
        .filter_map(|i| assigned(&report, &format!("b{i}")).map(|(rep, _)| rep))
        .collect();
    // After bruno (chosen last) comes the member added after him.
    assert_eq!(got, ["zoe", "ana", "bruno", "zoe", "ana", "bruno"]);
    let skipped = report
        .lead("evening")
        .and_then(|l| l.decision.explanation.as_ref())
        .map(|e| {
            e.skipped
                .iter()
                .map(|s| format!("{} ({})", s.rep_id, s.reason))
                .collect::<Vec<_>>()
        });
    assert_eq!(
        skipped,
        Some(vec![
            "zoe (outside_working_hours)".to_owned(),
            "ana (outside_working_hours)".to_owned(),
            "bruno (outside_working_hours)".to_owned(),
        ])
    );
    assert_eq!(
        assigned(&report, "evening"),
        Some(("zoe".to_owned(), at("2026-12-01T08:00:00Z")))
    );
    // Shares: 4 leads split by two, then 7 by three.
    let shares: Vec<(String, usize, f64)> = report
        .summary
        .shares
        .iter()
        .map(|s| {
            (
                s.rep.to_string(),
                s.assigned,
                (s.target * 1000.0).round() / 1000.0,
            )
        })
        .collect();
    let third = |whole: f64| ((whole + 7.0 / 3.0) / 11.0 * 1000.0).round() / 1000.0;
    assert_eq!(
        shares,
        [
            ("ana".to_owned(), 4, third(2.0)),
            ("bruno".to_owned(), 4, third(2.0)),
            ("zoe".to_owned(), 3, third(0.0)),
        ]
    );
    let zoe = report.reps.iter().find(|r| r.rep.as_str() == "zoe");
    assert_eq!(zoe.map(|r| (r.assigned, r.capacity)), Some((3, 3)));
    // The timeline says what the line did.
    assert!(report.log.iter().any(|e| matches!(&e.event,
        Event::Roster(edit) if edit.describe() == "joins emea, capacity 3")));
}

/// A rep the rules file knows can join a further team too, keeping their own hours.
#[test]
fn a_known_rep_joins_another_team_with_their_own_hours() {
    let model = routing(json!({
        "sticky_days": 0,
        "teams": [
            {"id": "emea", "members": ["ana"], "time_zone": "Europe/Berlin", "working_hours": weekdays("09:00-17:00")},
            {"id": "us", "members": ["bob"]},
        ],
        "reps": [
            {"id": "ana", "capacity": 5, "time_zone": "Europe/Berlin", "working_hours": {"mon": ["00:00-24:00"]}},
            {"id": "bob", "capacity": 0},
        ],
        "rules": [{"name": "us", "team": "us"}],
    }));
    let lines = [
        lead_line("early", Some("2026-11-30T06:00:00Z")),
        r#"{"roster": {"rep": "ana", "team": "us"}, "at": "2026-11-30T06:30:00Z"}"#.to_owned(),
    ];
    let report = run(&model, &lines, None);
    // 07:30 Berlin, outside the team's hours but inside her own: she takes the waiting lead.
    assert_eq!(
        assigned(&report, "early"),
        Some(("ana".to_owned(), at("2026-11-30T06:30:00Z")))
    );
}

#[test]
fn a_joining_line_names_its_line_and_field_when_wrong() {
    let model = team(None);
    let join = r#"{"roster": {"rep": "zoe", "team": "emea", "capacity": 1}, "at": "2026-11-30T10:00:00Z"}"#;
    let cases: Vec<(Vec<&str>, usize, &str, &str)> = vec![
        (
            vec![r#"{"roster": {"rep": "zoe", "team": "apac", "capacity": 3}}"#],
            1,
            "roster.team",
            "unknown team `apac`, expected one of emea",
        ),
        (
            vec![r#"{"roster": {"rep": "zoe", "team": 5, "capacity": 3}}"#],
            1,
            "roster.team",
            "expected the id of a team",
        ),
        (
            vec![r#"{"roster": {"rep": "zoe", "team": "emea"}}"#],
            1,
            "roster.capacity",
            "required: `zoe` is not in the rules file",
        ),
        (
            vec![r#"{"roster": {"rep": "ana", "team": "emea"}}"#],
            1,
            "roster.team",
            "`ana` is already a member of team `emea`",
        ),
        (
            vec![join, join],
            2,
            "roster.team",
            "`zoe` is already a member of team `emea`",
        ),
        (
            vec![r#"{"roster": {"rep": "zoe smith", "team": "emea", "capacity": 1}}"#],
            1,
            "roster.rep",
            "invalid rep id `zoe smith`",
        ),
        (
            vec![r#"{"roster": {"rep": "zoe", "active": false}}"#, join],
            1,
            "roster.rep",
            "a new rep joins with \"team\" and \"capacity\"",
        ),
        (
            vec![
                join,
                r#"{"roster": {"rep": "zoe", "available": false}, "at": "2026-11-30T09:00:00Z"}"#,
            ],
            2,
            "at",
            "has not joined a team yet",
        ),
    ];
    for (lines, line, field, message) in cases {
        let lines: Vec<String> = lines.into_iter().map(str::to_owned).collect();
        match parse(&model, &lines) {
            Ok(_) => panic!("accepted: {lines:?}"),
            Err(e) => {
                assert_eq!(e.line, line, "{e}");
                assert_eq!(e.field.as_deref(), Some(field), "{e}");
                assert!(e.message.contains(message), "{e}");
            }
        }
    }
    // Later lines may edit the new rep like any other.
    let lines = [
        join.to_owned(),
        r#"{"roster": {"rep": "zoe", "out_of_office": {"from": "2026-12-01", "to": "2026-12-01"}, "capacity": 4}}"#.to_owned(),
    ];
    assert!(parse(&model, &lines).is_ok());
}

/// The roster lines README.md shows in "Replay a week" parse as they are written.
#[test]
fn the_readme_roster_lines_parse() {
    let readme = include_str!("../../../../README.md");
    let examples: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with("| a roster edit |") || l.starts_with("| a new member |"))
        .filter_map(|l| l.split('`').nth(1))
        .map(|example| example.replace("TIME", "\"2026-11-30T10:00:00Z\""))
        .collect();
    assert_eq!(examples.len(), 2, "{examples:?}");
    let model = team(None);
    let scenario = match parse(&model, &examples) {
        Ok(s) => s,
        Err(e) => panic!("{e}: {examples:?}"),
    };
    let joined = scenario.lines.iter().any(|l| {
        matches!(&l.what, LineKind::Roster(edit)
            if edit.rep.as_str() == "zoe" && edit.join.as_ref().map(|t| t.as_str()) == Some("emea"))
    });
    assert!(joined, "{scenario:?}");
}
