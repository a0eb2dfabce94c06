//! Table tests of the routing engine and property tests over random rosters.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::lead::{Company, Contact, Lead, LeadId};
use crate::scoring::Score;

fn model(value: Value) -> RoutingModel {
    let config: RoutingConfig = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    match RoutingModel::new(config, "test") {
        Ok(m) => m,
        Err(e) => panic!("model: {e:?}"),
    }
}

fn team_model(strategy: &str, reps: Value, fallback: Option<Value>) -> RoutingModel {
    let members: Vec<Value> = reps
        .as_array()
        .map_or(vec![], |r| r.iter().map(|r| r["id"].clone()).collect());
    let mut teams = vec![json!({"id": "t", "members": members})];
    let mut all_reps = reps.as_array().cloned().unwrap_or_default();
    let mut rule = json!({"name": "all", "team": "t", "strategy": strategy});
    if let Some(fallback) = fallback {
        let ids: Vec<Value> = fallback
            .as_array()
            .map_or(vec![], |r| r.iter().map(|r| r["id"].clone()).collect());
        teams.push(json!({"id": "f", "members": ids}));
        all_reps.extend(fallback.as_array().cloned().unwrap_or_default());
        rule["fallback"] = json!("f");
    }
    model(json!({"teams": teams, "reps": all_reps, "rules": [rule]}))
}

fn lead() -> Lead {
    Lead {
        id: LeadId::from("l"),
        received_at: Utc::now(),
        source: Default::default(),
        contact: Contact {
            email: "a@acme.io".into(),
            ..Contact::default()
        },
        company: Company {
            country: "DE".into(),
            postal_code: "80331".into(),
            employees: Some(250),
            ..Company::default()
        },
        engagement: Default::default(),
        custom: [("plan".to_owned(), "enterprise".to_owned())].into(),
    }
}

fn score() -> Score {
    Score {
        points: 50,
        band: "B".into(),
        qualified: true,
        fast_lane: false,
        contributions: vec![],
        model_version: String::new(),
    }
}

fn now() -> DateTime<Utc> {
    match "2026-11-23T10:00:00Z".parse() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// Routes `n` leads in a row, carrying rotation and open counts forward like the store does.
fn run(model: &RoutingModel, states: &mut BTreeMap<String, TeamState>, n: usize) -> Vec<String> {
    let mut picks = Vec::new();
    for _ in 0..n {
        let matched = model.match_rule(&lead(), &score());
        let decision = model.choose(matched, states, now());
        let Placement::Rep(rep) = decision.placement else {
            picks.push("-".to_owned());
            continue;
        };
        let team = decision.team.as_ref().map_or("", |t| t.as_str()).to_owned();
        let state = states.entry(team).or_default();
        state.rotation = decision.rotation_after;
        let rep_state = state.reps.entry(rep.to_string()).or_default();
        rep_state.open_leads += 1;
        rep_state.assigned_today += 1;
        picks.push(rep.into_string());
    }
    picks
}

#[test]
fn round_robin_skips_ineligible_reps_and_says_why() {
    let m = team_model(
        "round_robin",
        json!([
            {"id": "a", "capacity": 5},
            {"id": "b", "capacity": 5, "active": false},
            {"id": "c", "capacity": 1},
            {"id": "d", "capacity": 5, "out_of_office": [{"from": "2026-11-20", "to": "2026-11-30"}]},
            {"id": "e", "capacity": 5, "daily_cap": 1},
        ]),
        None,
    );
    let mut states = BTreeMap::new();
    assert_eq!(run(&m, &mut states, 5), ["a", "c", "e", "a", "a"]);
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    let reasons: Vec<(String, String)> = decision
        .explanation
        .skipped
        .iter()
        .map(|s| (s.rep_id.clone(), s.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("b", "inactive"),
            ("c", "at_capacity"),
            ("d", "out_of_office"),
            ("e", "daily_cap_reached")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(decision.rep(), Some("a"));
}

#[test]
fn weighted_round_robin_gives_exact_shares_per_cycle() {
    let m = team_model(
        "weighted_round_robin",
        json!([{"id": "a", "capacity": 1000, "weight": 2}, {"id": "b", "capacity": 1000}, {"id": "c", "capacity": 1000}]),
        None,
    );
    let mut states = BTreeMap::new();
    let picks = run(&m, &mut states, 4);
    let mut counts = BTreeMap::new();
    for p in &picks {
        *counts.entry(p.as_str()).or_insert(0) += 1;
    }
    assert_eq!(counts, BTreeMap::from([("a", 2), ("b", 1), ("c", 1)]));
    // Smooth: a's two leads are not back to back.
    assert_eq!(picks, ["a", "b", "c", "a"]);
}

/// Credits come back from the store: extreme ones saturate instead of overflowing.
#[test]
fn weighted_round_robin_survives_extreme_credits() {
    let m = team_model(
        "weighted_round_robin",
        json!([{"id": "a", "capacity": 10, "weight": 4294967295u32}, {"id": "b", "capacity": 10}]),
        None,
    );
    let mut states = BTreeMap::from([(
        "t".to_owned(),
        TeamState {
            rotation: format!("a={};b={}", i64::MAX, i64::MIN),
            ..TeamState::default()
        },
    )]);
    let picks = run(&m, &mut states, 3);
    assert_eq!(picks[0], "a");
    assert_eq!(picks.len(), 3);
}

/// A match from another model (a rules reload between match and choose) must not index
/// past the rules: it reads as no match.
#[test]
fn a_rule_index_out_of_range_reads_as_no_match() {
    let m = team_model("round_robin", json!([{"id": "a", "capacity": 1}]), None);
    let matched = RuleMatch {
        rule: Some(7),
        missed: 7,
        owner: None,
        passed_over: vec![],
    };
    assert!(m.teams_for(&matched).is_empty());
    let decision = m.choose(matched, &BTreeMap::new(), now());
    assert_eq!(decision.placement, Placement::Queue("unrouted".into()));
}

#[test]
fn least_loaded_picks_the_fewest_open_leads_then_rotation_order() {
    let m = team_model(
        "least_loaded",
        json!([{"id": "a", "capacity": 9}, {"id": "b", "capacity": 9}, {"id": "c", "capacity": 9}]),
        None,
    );
    let mut states = BTreeMap::from([(
        "t".to_owned(),
        TeamState {
            rotation: "a".into(),
            reps: [("a", 1), ("b", 3), ("c", 1)]
                .into_iter()
                .map(|(r, open)| {
                    (
                        r.to_owned(),
                        RepState {
                            open_leads: open,
                            ..RepState::default()
                        },
                    )
                })
                .collect(),
        },
    )]);
    // a and c tie at 1; after a (the last chosen) comes c.
    assert_eq!(run(&m, &mut states, 3), ["c", "a", "c"]);
}

/// Three least-loaded reps with `catch_up` as given; `c` away while 30 leads go to the
/// others, then back: the picks after the return.
fn after_a_return(catch_up: Option<Value>) -> Vec<String> {
    let mut team = json!({"id": "t", "members": ["a", "b", "c"]});
    if let Some(catch_up) = catch_up {
        team["catch_up"] = catch_up;
    }
    let reps: Vec<Value> = ["a", "b", "c"]
        .iter()
        .map(|id| json!({"id": id, "capacity": 100}))
        .collect();
    let m = model(json!({
        "teams": [team], "reps": reps,
        "rules": [{"name": "all", "team": "t", "strategy": "least_loaded"}]
    }));
    let mut states = BTreeMap::new();
    let away = RepState {
        available: Some(false),
        ..RepState::default()
    };
    states
        .entry("t".to_owned())
        .or_insert_with(TeamState::default)
        .reps
        .insert("c".to_owned(), away);
    let before = run(&m, &mut states, 30);
    assert!(!before.contains(&"c".to_owned()), "{before:?}");
    if let Some(c) = states.get_mut("t").and_then(|t| t.reps.get_mut("c")) {
        c.available = None;
    }
    run(&m, &mut states, 12)
}

fn longest_streak(picks: &[String], rep: &str) -> usize {
    picks
        .split(|p| p != rep)
        .map(<[String]>::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn least_loaded_hands_a_returning_rep_at_most_two_in_a_row_by_default() {
    let picks = after_a_return(None);
    assert_eq!(longest_streak(&picks, "c"), 2, "{picks:?}");
    // Still a catch-up: c gets more than a third while behind.
    assert!(picks.iter().filter(|p| *p == "c").count() > 4, "{picks:?}");
    let picks = after_a_return(Some(json!({"max_in_a_row": 3})));
    assert_eq!(longest_streak(&picks, "c"), 3, "{picks:?}");
}

#[test]
fn least_loaded_catch_up_full_gives_the_whole_backlog_and_none_gives_turns() {
    // a and b hold 15 each: a full catch-up gives c the next 12 (it stays the least loaded).
    let picks = after_a_return(Some(json!("full")));
    assert_eq!(longest_streak(&picks, "c"), 12, "{picks:?}");
    // No catch-up: turns, as if the loads were equal.
    let picks = after_a_return(Some(json!("none")));
    assert_eq!(longest_streak(&picks, "c"), 1, "{picks:?}");
    assert_eq!(picks.iter().filter(|p| *p == "c").count(), 4, "{picks:?}");
}

#[test]
fn the_catch_up_limit_says_why_the_least_loaded_rep_was_passed() {
    let mut m_states = BTreeMap::new();
    let m = model(json!({
        "teams": [{"id": "t", "members": ["a", "b"], "catch_up": {"max_in_a_row": 1}}],
        "reps": [{"id": "a", "capacity": 9}, {"id": "b", "capacity": 9}],
        "rules": [{"name": "all", "team": "t", "strategy": "least_loaded"}]
    }));
    m_states.insert(
        "t".to_owned(),
        TeamState {
            rotation: "a|b|1".into(),
            reps: [(
                "b".to_owned(),
                RepState {
                    open_leads: 4,
                    ..RepState::default()
                },
            )]
            .into(),
        },
    );
    let decision = m.choose(m.match_rule(&lead(), &score()), &m_states, now());
    assert_eq!(decision.placement, Placement::Rep(RepId::from("b")));
    assert!(
        decision
            .explanation
            .reason
            .contains("a took the last 1 in a row"),
        "{}",
        decision.explanation.reason
    );
    assert_eq!(decision.rotation_after, "b|a|1");
}

#[test]
fn a_catch_up_that_is_not_a_policy_is_refused_and_one_least_loaded_never_uses_is_a_warning() {
    for (catch_up, words) in [
        (json!("some"), "unknown catch-up `some`"),
        (json!({"max_in_a_row": 0}), "at least 1"),
    ] {
        let config: RoutingConfig = serde_json::from_value(json!({
            "teams": [{"id": "t", "members": ["a"], "catch_up": catch_up}],
            "reps": [{"id": "a", "capacity": 1}],
            "rules": [{"name": "all", "team": "t", "strategy": "least_loaded"}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let errors = RoutingModel::new(config, "v").err().unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "teams[t].catch_up");
        assert!(errors[0].message.contains(words), "{}", errors[0].message);
    }
    let m = model(json!({
        "teams": [{"id": "t", "members": ["a"], "catch_up": "full"}],
        "reps": [{"id": "a", "capacity": 1}],
        "rules": [{"name": "all", "team": "t"}]
    }));
    let warnings = m.warnings();
    assert!(
        warnings.iter().any(|w| w.key == "teams[t].catch_up"),
        "{warnings:?}"
    );
}

#[test]
fn a_fallback_team_takes_over_then_the_overflow_queue() {
    let m = team_model(
        "round_robin",
        json!([{"id": "a", "capacity": 1}]),
        Some(json!([{"id": "z", "capacity": 1}])),
    );
    let mut states = BTreeMap::new();
    assert_eq!(run(&m, &mut states, 3), ["a", "z", "-"]);
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    assert_eq!(decision.placement, Placement::Queue("t-overflow".into()));
    assert!(
        decision.explanation.reason.contains("queued in t-overflow"),
        "{}",
        decision.explanation.reason
    );
}

#[test]
fn every_condition_operator() {
    let cases: Vec<(Value, bool)> = vec![
        (json!({"field": "company.country", "equals": "de"}), true),
        (
            json!({"field": "company.country", "in": ["AT", "CH"]}),
            false,
        ),
        (
            json!({"field": "company.employees", "min": 200, "max": 500}),
            true,
        ),
        (json!({"field": "company.employees", "min": 1000}), false),
        (
            json!({"field": "company.postal_code", "prefix": ["80", "81"]}),
            true,
        ),
        (
            json!({"field": "company.postal_code", "prefix": ["10"]}),
            false,
        ),
        (
            json!({"field": "custom.plan", "equals": "enterprise"}),
            true,
        ),
        (json!({"field": "custom.partner", "exists": true}), false),
        (json!({"field": "custom.partner", "exists": false}), true),
        (
            json!({"field": "contact.email_domain", "equals": "acme.io"}),
            true,
        ),
        (json!({"field": "score.band", "in": ["A", "B"]}), true),
        (
            json!({"all": [{"field": "company.country", "equals": "DE"}, {"field": "custom.plan", "equals": "free"}]}),
            false,
        ),
        (
            json!({"any": [{"field": "company.country", "equals": "FR"}, {"field": "custom.plan", "equals": "enterprise"}]}),
            true,
        ),
        (
            json!({"not": {"field": "company.country", "equals": "DE"}}),
            false,
        ),
    ];
    for (spec, expected) in cases {
        let spec: ConditionSpec = match serde_json::from_value(spec.clone()) {
            Ok(s) => s,
            Err(e) => panic!("{spec}: {e}"),
        };
        let condition = match Condition::from_spec(&spec) {
            Ok(c) => c,
            Err(e) => panic!("{spec:?}: {e}"),
        };
        assert_eq!(
            condition.check(&lead(), &score()).is_ok(),
            expected,
            "{spec:?}"
        );
    }
}

/// The crash of issue 6: `8é` against the prefix `80` sliced the value at byte 2, inside
/// the `é`, and panicked. A prefix that ends inside a character of the value cannot match.
#[test]
fn a_prefix_never_splits_a_character() {
    let check = |postal_code: &str, prefixes: &[&str]| {
        let mut lead = lead();
        lead.company.postal_code = postal_code.to_owned();
        let condition = Condition::Prefix(
            FieldRef::PostalCode,
            prefixes.iter().map(|p| (*p).to_owned()).collect(),
        );
        condition.check(&lead, &score()).is_ok()
    };
    assert!(!check("8é", &["80", "81"]));
    assert!(!check("é", &["e"]));
    assert!(!check("8", &["80"]));
    assert!(check("8é1", &["8é"]));
    assert!(check("SW1A 1AA", &["sw1"]), "ASCII case is ignored");
    assert!(
        !check("É1", &["é"]),
        "only ASCII case is ignored, as for equals"
    );
    assert!(check("😀80", &["😀"]));
    assert!(check("anything", &[""]));
}

#[test]
fn misses_name_the_failing_condition() {
    let m = model(json!({
        "teams": [{"id": "t", "members": ["a"]}],
        "reps": [{"id": "a", "capacity": 1}],
        "rules": [
            {"name": "us", "team": "t", "when": {"field": "company.country", "in": ["US", "CA"]}},
            {"name": "rest", "team": "t"}
        ]
    }));
    let matched = m.match_rule(&lead(), &score());
    assert_eq!((matched.rule, matched.missed), (Some(1), 1));
    let mut decision = m.choose(matched, &BTreeMap::new(), now());
    assert!(
        decision.explanation.rules_not_matched.is_empty(),
        "worded only when asked"
    );
    m.explain_misses(&mut decision, &lead(), &score());
    assert_eq!(
        decision.explanation.rules_not_matched,
        [RuleMiss {
            rule: "us".into(),
            failed_condition: "company.country = \"DE\", not in [US, CA]".into()
        }]
    );
}

/// With no rule matching, every rule is worded, in order.
#[test]
fn a_lead_no_rule_takes_explains_every_rule() {
    let m = model(json!({
        "teams": [{"id": "t", "members": ["a"]}],
        "reps": [{"id": "a", "capacity": 1}],
        "rules": [
            {"name": "us", "team": "t", "when": {"field": "company.country", "in": ["US"]}},
            {"name": "big", "team": "t", "when": {"field": "company.employees", "min": 1000000}}
        ]
    }));
    let matched = m.match_rule(&lead(), &score());
    assert_eq!((matched.rule, matched.missed), (None, 2));
    let mut decision = m.choose(matched, &BTreeMap::new(), now());
    m.explain_misses(&mut decision, &lead(), &score());
    let rules: Vec<&str> = decision
        .explanation
        .rules_not_matched
        .iter()
        .map(|m| m.rule.as_str())
        .collect();
    assert_eq!(rules, ["us", "big"]);
}

#[test]
fn rule_file_errors_name_the_key_and_the_allowed_values() {
    let errors = |value: Value| -> Vec<String> {
        let config: RoutingConfig = match serde_json::from_value(value) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        match RoutingModel::new(config, "v") {
            Ok(_) => vec![],
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    };
    assert_eq!(
        errors(
            json!({"teams": [{"id": "t", "members": ["a", "x"]}], "reps": [{"id": "a", "capacity": 1}], "rules": [{"name": "r", "team": "t"}]})
        ),
        ["teams[t].members: unknown rep `x`, expected one of a"]
    );
    assert_eq!(
        errors(
            json!({"teams": [{"id": "t", "members": ["a"]}], "reps": [{"id": "a", "capacity": 1}],
                      "rules": [{"name": "all", "team": "t"}, {"name": "dead", "team": "t", "when": {"field": "company.country", "equals": "DE"}}]})
        ),
        ["rules[dead]: rule `dead` can never match: the earlier rule `all` matches every lead"]
    );
    assert_eq!(
        errors(json!({"teams": [{"id": "t", "members": ["a"]}], "reps": [{"id": "a", "capacity": 1, "time_zone": "Europe/Atlantis"}],
                      "rules": [{"name": "r", "team": "t", "fallback": "nope"}]})),
        [
            "reps[a].time_zone: invalid time zone `Europe/Atlantis`, expected an IANA name such as Europe/Berlin or America/New_York",
            "rules[r].fallback: unknown team `nope`, expected one of t"
        ]
    );
    assert_eq!(
        errors(json!({"teams": [{"id": "t", "members": ["a"]}], "reps": [{"id": "a", "capacity": 1, "weight": 0}], "rules": [{"name": "r", "team": "t", "when": {"field": "company.colour", "equals": "red"}}]})).len(),
        2
    );
}

/// Issue 24 (16): errors name the rep, team, rule or account, not its position; an entry
/// without an id is still found by its position.
#[test]
fn errors_name_entries_by_id_not_position() {
    let errors = load_errors(json!({
        "teams": [{"id": "emea", "members": ["ana", "bob"]}],
        "reps": [{"id": "ana", "capacity": 1}, {"id": "bob", "capacity": 1, "weight": 0}, {"id": " ", "capacity": 1}],
        "rules": [{"name": "all", "team": "emea", "fallback": "apac"}],
        "accounts": [{"name": "BigCorp", "domains": ["bigcorp"], "owner": "ana"}]}));
    assert_eq!(
        errors,
        [
            "reps[bob].weight: must be at least 1",
            "reps[2].id: invalid rep id ` `, expected letters, digits, _ - . @",
            "rules[all].fallback: unknown team `apac`, expected one of emea",
            "accounts[BigCorp].domains: `bigcorp` is not a domain",
        ]
    );
}

/// A random rep: (active, available, capacity, open leads, daily cap, assigned today, weight).
type RandomRep = (bool, bool, u32, u32, Option<u32>, u32, u32);

fn rep_strategy() -> impl Strategy<Value = RandomRep> {
    (
        any::<bool>(),
        prop::bool::weighted(0.8),
        0u32..4,
        0u32..5,
        prop::option::of(0u32..3),
        0u32..4,
        1u32..5,
    )
}

fn random_model(reps: &[RandomRep], strategy: &str) -> (RoutingModel, BTreeMap<String, TeamState>) {
    let configs: Vec<Value> = reps
        .iter()
        .enumerate()
        .map(|(i, (active, _, capacity, _, daily_cap, _, weight))| {
            json!({"id": format!("r{i}"), "capacity": capacity, "active": active, "daily_cap": daily_cap, "weight": weight})
        })
        .collect();
    let m = team_model(strategy, Value::Array(configs), None);
    let state = TeamState {
        rotation: String::new(),
        reps: reps
            .iter()
            .enumerate()
            .map(|(i, (_, available, _, open, _, today, _))| {
                (
                    format!("r{i}"),
                    RepState {
                        open_leads: *open,
                        assigned_today: *today,
                        available: Some(*available),
                        ..RepState::default()
                    },
                )
            })
            .collect(),
    };
    (m, BTreeMap::from([("t".to_owned(), state)]))
}

proptest! {
    /// Never an inactive, unavailable, over-capacity or over-daily-cap rep; a lead nobody
    /// can take lands in a named queue; the same state and lead give the same decision.
    #[test]
    fn only_eligible_reps_are_chosen(reps in prop::collection::vec(rep_strategy(), 1..8), strategy in prop::sample::select(vec!["round_robin", "weighted_round_robin", "least_loaded"])) {
        let (m, states) = random_model(&reps, strategy);
        let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
        prop_assert_eq!(&decision, &m.choose(m.match_rule(&lead(), &score()), &states, now()));
        let eligible = |(active, available, capacity, open, daily_cap, today, _): &RandomRep| {
            *active && *available && open < capacity && daily_cap.is_none_or(|cap| *today < cap)
        };
        match &decision.placement {
            Placement::Rep(rep) => {
                let index: usize = rep.as_str()[1..].parse().unwrap_or(usize::MAX);
                prop_assert!(reps.get(index).is_some_and(eligible), "chose {} from {:?}", rep, reps);
            }
            Placement::Queue(queue) => {
                prop_assert!(!queue.as_str().is_empty());
                prop_assert!(!reps.iter().any(eligible), "queued although someone was eligible: {:?}", reps);
            }
        }
    }

    /// With everyone eligible, weighted round-robin gives each rep exactly its weight in
    /// every full cycle of sum(weights) leads.
    #[test]
    fn weighted_shares_are_exact_over_every_cycle(weights in prop::collection::vec(1u32..6, 1..6), cycles in 1usize..4) {
        let configs: Vec<Value> = weights.iter().enumerate().map(|(i, w)| json!({"id": format!("r{i}"), "capacity": 10_000, "weight": w})).collect();
        let m = team_model("weighted_round_robin", Value::Array(configs), None);
        let total: u32 = weights.iter().sum();
        let mut states = BTreeMap::new();
        for _ in 0..cycles {
            let picks = run(&m, &mut states, total as usize);
            for (i, w) in weights.iter().enumerate() {
                let rep = format!("r{i}");
                prop_assert_eq!(picks.iter().filter(|p| **p == rep).count(), *w as usize, "weights {:?}: {:?}", weights, picks);
            }
        }
    }

    /// Removing a rep from a round-robin roster moves nobody else: the others keep their
    /// turns in the same order.
    #[test]
    fn a_roster_edit_moves_no_one_elses_turn(size in 2usize..8, removed in 0usize..8, already in 0usize..8) {
        let removed = removed % size;
        let reps: Vec<Value> = (0..size).map(|i| json!({"id": format!("r{i}"), "capacity": 10_000})).collect();
        let before = team_model("round_robin", Value::Array(reps.clone()), None);
        let mut states = BTreeMap::new();
        run(&before, &mut states, already);
        let mut expected = run(&before, &mut states.clone(), size);
        expected.retain(|r| *r != format!("r{removed}"));
        let kept: Vec<Value> = reps.into_iter().filter(|r| r["id"] != format!("r{removed}")).collect();
        let after = team_model("round_robin", Value::Array(kept), None);
        let picks = run(&after, &mut states, size - 1);
        // The removed rep may have been next: then everyone moves up by exactly that one turn.
        prop_assert_eq!(picks, expected);
    }
}

proptest! {
    /// Adding a rep to a round-robin roster moves nobody else: the others keep their
    /// turns in the same order, with the newcomer slotted in at their roster position.
    #[test]
    fn adding_a_rep_moves_no_one_elses_turn(size in 1usize..7, at in 0usize..8, already in 0usize..8) {
        let at = at % (size + 1);
        let reps: Vec<Value> = (0..size).map(|i| json!({"id": format!("r{i}"), "capacity": 10_000})).collect();
        let before = team_model("round_robin", Value::Array(reps.clone()), None);
        let mut states = BTreeMap::new();
        run(&before, &mut states, already);
        let expected = run(&before, &mut states.clone(), size);
        let mut with_new = reps;
        with_new.insert(at, json!({"id": "new", "capacity": 10_000}));
        let after = team_model("round_robin", Value::Array(with_new), None);
        let mut picks = run(&after, &mut states, size + 1);
        picks.retain(|r| r != "new");
        prop_assert_eq!(picks.len(), size);
        prop_assert_eq!(picks, expected);
    }
}

/// Found by `a_roster_edit_moves_no_one_elses_turn`: removing the rep chosen last used to
/// restart the rotation at the top, so the rep after them lost their turn.
#[test]
fn removing_the_rep_chosen_last_keeps_the_next_reps_turn() {
    let roster = |ids: &[&str]| {
        Value::Array(
            ids.iter()
                .map(|id| json!({"id": id, "capacity": 100}))
                .collect(),
        )
    };
    let mut states = BTreeMap::new();
    assert_eq!(
        run(
            &team_model("round_robin", roster(&["a", "b", "c"]), None),
            &mut states,
            2
        ),
        ["a", "b"]
    );
    assert_eq!(
        run(
            &team_model("round_robin", roster(&["a", "c"]), None),
            &mut states,
            3
        ),
        ["c", "a", "c"]
    );
}

fn account_model() -> RoutingModel {
    model(json!({
        "teams": [{"id": "t", "members": ["a", "b"]}],
        "reps": [{"id": "a", "capacity": 5}, {"id": "b", "capacity": 5}],
        "rules": [{"name": "all", "team": "t"}],
        "accounts": [{"name": "Acme", "domains": ["acme.io"], "owner": "b"}]
    }))
    .with_free_mail_domains(["gmail.com".to_owned()])
}

#[test]
fn an_account_lead_goes_to_its_owner_without_taking_a_turn() {
    let m = account_model();
    let mut states = BTreeMap::new();
    // lead() is from acme.io: b owns it, twice, and the rotation does not move.
    assert_eq!(run(&m, &mut states, 2), ["b", "b"]);
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    assert_eq!(decision.explanation.strategy, "account_owner");
    assert_eq!(
        decision.explanation.reason,
        "b: owner of account Acme (acme.io)"
    );
    assert_eq!(decision.rotation_after, decision.rotation_before);
    // Subdomains belong to the account; free mail never does.
    assert_eq!(m.account_of("eu.sales.acme.io"), Some(("Acme", "b")));
    assert_eq!(m.account_of("gmail.com"), None);
    assert_eq!(m.account_of("notacme.io"), None);
}

#[test]
fn an_ineligible_owner_falls_back_to_the_rules_and_says_so() {
    let m = account_model();
    let states = BTreeMap::from([(
        "t".to_owned(),
        TeamState {
            rotation: String::new(),
            reps: [(
                "b".to_owned(),
                RepState {
                    available: Some(false),
                    ..RepState::default()
                },
            )]
            .into(),
        },
    )]);
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    assert_eq!(decision.rep(), Some("a"));
    assert_eq!(decision.explanation.skipped[0].rep_id, "b");
    assert_eq!(
        decision.explanation.skipped[0].reason,
        "account_owner (owner of account Acme (acme.io)), unavailable"
    );
}

#[test]
fn a_repeat_contact_sticks_to_their_rep() {
    let m = team_model(
        "round_robin",
        json!([{"id": "a", "capacity": 5}, {"id": "b", "capacity": 5}]),
        None,
    );
    let mut states = BTreeMap::new();
    assert_eq!(run(&m, &mut states, 1), ["a"]);
    let matched = m.with_prior_owner(m.match_rule(&lead(), &score()), "a");
    let decision = m.choose(matched, &states, now());
    assert_eq!(decision.rep(), Some("a"));
    assert_eq!(decision.explanation.strategy, "sticky");
}

fn ownership(domain: &str, account: &str, rep: &str) -> crate::accounts::AccountOwnership {
    crate::accounts::AccountOwnership {
        domain: match crate::accounts::AccountDomain::parse(domain) {
            Ok(d) => d,
            Err(e) => panic!("{domain}: {e}"),
        },
        account_name: Some(account.to_owned()),
        owner: crate::RepId::from(rep),
        updated_at: Utc::now(),
    }
}

#[test]
fn a_lead_s_account_domains_are_its_email_then_company_domain_with_parents() {
    let m = account_model();
    let mut l = lead();
    l.contact.email = "ada@eu.Acme.io".into();
    l.company.domain = "acme-group.com".into();
    let domains: Vec<String> = m
        .account_domains(&l)
        .into_iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(domains, ["eu.acme.io", "acme.io", "acme-group.com"]);
    // Free mail belongs to no account; a company domain that is no domain is skipped.
    l.contact.email = "ada@gmail.com".into();
    l.company.domain = "not a domain".into();
    assert!(m.account_domains(&l).is_empty());
}

#[test]
fn an_owner_from_account_owner_wins_over_the_rules_file_s_accounts() {
    let m = account_model();
    let states = BTreeMap::new();
    // The rules file says b owns Acme; the CRM says a does now.
    let matched = m.with_account_owner(
        m.match_rule(&lead(), &score()),
        &ownership("acme.io", "Acme Corp", "a"),
    );
    let decision = m.choose(matched, &states, now());
    assert_eq!(decision.rep(), Some("a"));
    assert_eq!(decision.explanation.strategy, "account_owner");
    assert_eq!(
        decision.explanation.reason,
        "a: owner of account Acme Corp (acme.io, from account.owner)"
    );
    assert!(decision.explanation.skipped.is_empty());
    assert_eq!(decision.rotation_after, decision.rotation_before);
}

#[test]
fn a_contact_s_rep_wins_over_an_owner_from_account_owner() {
    let m = account_model();
    let matched = m.with_account_owner(
        m.match_rule(&lead(), &score()),
        &ownership("acme.io", "Acme", "a"),
    );
    let matched = m.with_prior_owner(matched, "b");
    let decision = m.choose(matched, &BTreeMap::new(), now());
    assert_eq!(decision.rep(), Some("b"));
    assert_eq!(decision.explanation.strategy, "sticky");
}

#[test]
fn an_owner_who_is_not_in_the_rules_is_passed_over_and_said_so() {
    let m = account_model();
    let matched = m.with_account_owner(
        m.match_rule(&lead(), &score()),
        &ownership("acme.io", "Acme", "zoe"),
    );
    // The rules file's owner still applies, and the explanation names who was ignored.
    let decision = m.choose(matched, &BTreeMap::new(), now());
    assert_eq!(decision.rep(), Some("b"));
    assert_eq!(
        decision.explanation.reason,
        "b: owner of account Acme (acme.io)"
    );
    assert_eq!(
        decision.explanation.skipped,
        [SkippedRep {
            rep_id: "zoe".into(),
            reason: "account_owner (owner of account Acme (acme.io, from account.owner)), not a rep of any team in the rules".into(),
        }]
    );

    // Without a static owner the rules decide, and still say why zoe did not get it.
    let m = team_model(
        "round_robin",
        json!([{"id": "a", "capacity": 5}, {"id": "b", "capacity": 5}]),
        None,
    );
    let matched = m.with_account_owner(
        m.match_rule(&lead(), &score()),
        &ownership("acme.io", "Acme", "zoe"),
    );
    let decision = m.choose(matched, &BTreeMap::new(), now());
    assert_eq!(decision.explanation.rule, "all");
    assert_eq!(decision.explanation.skipped.len(), 1);
    assert_eq!(decision.explanation.skipped[0].rep_id, "zoe");
}

#[test]
fn an_ineligible_owner_from_account_owner_falls_back_to_the_rules() {
    let m = account_model();
    let states = BTreeMap::from([(
        "t".to_owned(),
        TeamState {
            rotation: String::new(),
            reps: [(
                "a".to_owned(),
                RepState {
                    active: Some(false),
                    ..RepState::default()
                },
            )]
            .into(),
        },
    )]);
    let matched = m.with_account_owner(
        m.match_rule(&lead(), &score()),
        &ownership("acme.io", "Acme", "a"),
    );
    let decision = m.choose(matched, &states, now());
    assert_eq!(decision.explanation.rule, "all");
    assert_eq!(decision.explanation.skipped[0].rep_id, "a");
    assert!(decision.explanation.skipped[0]
        .reason
        .starts_with("account_owner (owner of account Acme (acme.io, from account.owner)), "));
}

/// The errors a routing config gets (empty when it loads).
fn load_errors(value: Value) -> Vec<String> {
    let config: RoutingConfig = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    match RoutingModel::new(config, "v") {
        Ok(_) => vec![],
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn with_rules(rules: Value) -> Value {
    json!({"teams": [{"id": "t", "members": ["a"]}], "reps": [{"id": "a", "capacity": 1}], "rules": rules})
}

#[test]
fn every_form_of_catch_all_is_seen_and_the_rules_after_it_refused() {
    for catch_all in [
        json!({"all": []}),
        json!({"not": {"any": []}}),
        json!({"any": [{"field": "company.country", "equals": "DE"}, {"all": []}]}),
    ] {
        let errors = load_errors(with_rules(json!([
            {"name": "everyone", "team": "t", "when": catch_all},
            {"name": "germany", "team": "t", "when": {"field": "company.country", "equals": "DE"}},
        ])));
        assert_eq!(
            errors,
            ["rules[germany]: rule `germany` can never match: the earlier rule `everyone` matches every lead"],
            "{catch_all}"
        );
    }
    let errors = load_errors(with_rules(json!([
        {"name": "nobody", "team": "t", "when": {"any": []}},
    ])));
    assert_eq!(
        errors,
        ["rules[nobody]: rule `nobody` can never match: its condition matches no lead"]
    );
}

#[test]
fn a_rule_whose_leads_earlier_rules_take_is_refused_naming_them() {
    let big = json!({"field": "company.employees", "min": 1000});
    let errors = load_errors(with_rules(json!([
        {"name": "dach", "team": "t", "when": {"all": [{"field": "company.country", "in": ["DE", "AT", "CH"]}, big]}},
        {"name": "germany", "team": "t", "when": {"all": [{"field": "company.country", "equals": "de"}, {"field": "company.employees", "min": 5000}]}},
    ])));
    assert_eq!(
        errors,
        ["rules[germany]: rule `germany` can never match: every lead it matches is matched by the earlier rule `dach`"]
    );
    // Covered only by two earlier rules together: both are named, and only those.
    let errors = load_errors(with_rules(json!([
        {"name": "de", "team": "t", "when": {"field": "company.country", "in": ["DE"]}},
        {"name": "fr", "team": "t", "when": {"field": "company.country", "in": ["FR"]}},
        {"name": "at", "team": "t", "when": {"field": "company.country", "in": ["AT"]}},
        {"name": "de-at", "team": "t", "when": {"field": "company.country", "in": ["AT", "DE"]}},
    ])));
    assert_eq!(
        errors,
        ["rules[de-at]: rule `de-at` can never match: every lead it matches is matched by the earlier rules `de`, `at`"]
    );
    // Narrower first, wider after: both can match.
    assert!(load_errors(with_rules(json!([
        {"name": "germany", "team": "t", "when": {"all": [{"field": "company.country", "equals": "DE"}, big]}},
        {"name": "dach", "team": "t", "when": {"all": [{"field": "company.country", "in": ["DE", "AT", "CH"]}, big]}},
        {"name": "dach-small", "team": "t", "when": {"all": [{"field": "company.country", "in": ["DE", "AT", "CH"]}, {"field": "company.employees", "max": 999}]}},
    ])))
    .is_empty());
}

#[test]
fn an_account_listing_a_free_mail_domain_is_warned_about() {
    let m = model(
        json!({"teams": [{"id": "t", "members": ["a"]}], "reps": [{"id": "a", "capacity": 1}],
        "rules": [{"name": "all", "team": "t"}],
        "accounts": [{"name": "BigCorp", "domains": ["bigcorp.de", "Gmail.com"], "owner": "a"}]}),
    )
    .with_free_mail_domains(["gmail.com".to_owned()]);
    let warnings: Vec<String> = m.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["accounts[BigCorp].domains: `gmail.com` is a free-mail domain (scoring.free_mail_domains): no lead from it ever matches an account"]
    );
}

#[test]
fn country_names_are_read_as_the_codes_leads_carry_and_non_countries_warned_about() {
    let m = model(with_rules(json!([
        {"name": "na", "team": "t", "when": {"field": "company.country", "in": ["United States", "Canada", "de", "MX"]}},
        {"name": "uk", "team": "t", "when": {"any": [{"field": "company.country", "equals": "uk"}, {"field": "company.country", "equals": "Atlantis"}]}},
    ])));
    let warnings: Vec<String> = m.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "rules[na].when: company.country `United States` is read as `US`, the ISO 3166-1 code leads carry: write `US`",
            "rules[na].when: company.country `Canada` is read as `CA`, the ISO 3166-1 code leads carry: write `CA`",
            "rules[uk].when: company.country `uk` is read as `GB`, the ISO 3166-1 code leads carry: write `GB`",
            "rules[uk].when: company.country `Atlantis` never matches: it is no country, leads carry ISO 3166-1 codes such as `DE`, `US`, `GB`",
        ]
    );
    // A US lead (ingest made its "United States" US) now matches the rule, not a later one.
    let mut us = lead();
    us.company.country = "US".into();
    assert_eq!(m.match_rule(&us, &score()).rule, Some(0));
    let mut gb = lead();
    gb.company.country = "GB".into();
    assert_eq!(m.match_rule(&gb, &score()).rule, Some(1));
}

#[test]
fn an_unread_weight_a_rep_in_no_team_and_a_team_no_rule_uses_are_warned_about() {
    let m = model(json!({
        "teams": [{"id": "t", "members": ["a", "b"]}, {"id": "spare", "members": ["b"]}],
        "reps": [{"id": "a", "capacity": 1, "weight": 3}, {"id": "b", "capacity": 1}, {"id": "c", "capacity": 1}],
        "rules": [{"name": "all", "team": "t", "strategy": "round_robin"}]}));
    let warnings: Vec<String> = m.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "reps[a].weight: weight 3 is ignored: no rule routes to t with strategy = \"weighted_round_robin\"",
            "reps[c]: rep `c` is in no team: no lead is ever routed to them",
            "teams[spare]: no rule routes to team `spare` (as its team, fallback or escalation target): its reps get leads only as account owners or by stickiness",
        ]
    );
    // Read by a weighted rule, and a team used as a fallback: nothing to say.
    let m = model(json!({
        "teams": [{"id": "t", "members": ["a"]}, {"id": "spare", "members": ["b"]}],
        "reps": [{"id": "a", "capacity": 1, "weight": 3}, {"id": "b", "capacity": 1}],
        "rules": [{"name": "all", "team": "t", "strategy": "weighted_round_robin", "fallback": "spare"}]}));
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
}

/// The number in `... after skipping N` (0 when the reason has none).
fn skipped_in_reason(reason: &str) -> usize {
    reason
        .split_once("after skipping ")
        .and_then(|(_, n)| n.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

proptest! {
    /// "after skipping N" counts the reps whose turn came before the chosen one's and who
    /// could not take the lead, not every rep who could not.
    #[test]
    fn after_skipping_counts_the_reps_passed_over_in_turn(eligible in prop::collection::vec(any::<bool>(), 2..8), last in 0usize..8) {
        let reps: Vec<Value> = eligible
            .iter()
            .enumerate()
            .map(|(i, ok)| json!({"id": format!("r{i}"), "capacity": 5, "active": ok}))
            .collect();
        let m = team_model("round_robin", Value::Array(reps), None);
        let members = m.members("t").to_vec();
        let last = last % members.len();
        let states = BTreeMap::from([(
            "t".to_owned(),
            TeamState { rotation: format!("{}|", members[last]), reps: BTreeMap::new() },
        )]);
        let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
        if let Some(rep) = decision.rep() {
            let chosen = members.iter().position(|m| m == rep).unwrap_or(0);
            let in_between = (chosen + members.len() - last - 1) % members.len();
            prop_assert_eq!(skipped_in_reason(&decision.explanation.reason), in_between, "{}", decision.explanation.reason);
        }
    }
}

#[test]
fn a_rep_skipped_as_owner_and_in_their_team_is_listed_once() {
    let m = account_model();
    let inactive = RepState {
        active: Some(false),
        ..RepState::default()
    };
    let states = BTreeMap::from([(
        "t".to_owned(),
        TeamState {
            rotation: String::new(),
            reps: [("b".to_owned(), inactive)].into(),
        },
    )]);
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    let skipped: Vec<&str> = decision
        .explanation
        .skipped
        .iter()
        .map(|s| s.rep_id.as_str())
        .collect();
    assert_eq!(skipped, ["b"], "{:?}", decision.explanation.skipped);
    assert_eq!(
        decision.explanation.skipped[0].reason,
        "account_owner (owner of account Acme (acme.io)), inactive"
    );
}

#[test]
fn a_fallback_team_tried_with_nobody_is_named_in_the_queue_reason() {
    let m = team_model(
        "round_robin",
        json!([{"id": "a", "capacity": 0}]),
        Some(json!([{"id": "z", "capacity": 0}])),
    );
    let decision = m.choose(m.match_rule(&lead(), &score()), &BTreeMap::new(), now());
    assert_eq!(
        decision.explanation.reason,
        "no eligible rep in team t nor in its fallback team f; queued in t-overflow"
    );
}

#[test]
fn a_rule_can_route_to_one_named_rep_then_its_fallback_then_a_queue_of_its_own() {
    let config = |fallback: Option<&str>| {
        let mut rule = json!({"name": "vip", "rep": "b"});
        if let Some(fallback) = fallback {
            rule["fallback"] = json!(fallback);
        }
        model(json!({
            "teams": [{"id": "t", "members": ["a", "b"]}, {"id": "f", "members": ["z"]}],
            "reps": [{"id": "a", "capacity": 5}, {"id": "b", "capacity": 1}, {"id": "z", "capacity": 5}],
            "rules": [rule]
        }))
    };
    let m = config(Some("f"));
    let mut states = BTreeMap::new();
    // b takes it, takes no turn of team t, and the lead counts in b's team.
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    assert_eq!(decision.placement, Placement::Rep(RepId::from("b")));
    assert_eq!(decision.team, Some(TeamId::from("t")));
    assert_eq!(decision.explanation.strategy, "named_rep");
    assert_eq!(decision.explanation.reason, "rule vip routes to b");
    assert_eq!(decision.rotation_after, decision.rotation_before);
    // b full (capacity 1): never a, but the fallback team.
    assert_eq!(run(&m, &mut states, 2), ["b", "z"]);
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    assert!(
        decision
            .explanation
            .reason
            .starts_with("b cannot take it; fallback team f:"),
        "{}",
        decision.explanation.reason
    );
    assert_eq!(decision.explanation.skipped[0].rep_id, "b");
    assert_eq!(decision.explanation.skipped[0].reason, "at_capacity");
    // No fallback: the lead waits for b in a queue of its own, which is drained.
    let m = config(None);
    let mut states = BTreeMap::new();
    assert_eq!(run(&m, &mut states, 2), ["b", "-"]);
    let decision = m.choose(m.match_rule(&lead(), &score()), &states, now());
    assert_eq!(decision.placement, Placement::Queue("b-waiting".into()));
    assert_eq!(
        decision.explanation.reason,
        "b cannot take it; queued in b-waiting"
    );
    assert!(m.queue_names().contains(&"b-waiting"));
}

#[test]
fn a_rule_names_a_team_or_a_rep_of_a_team_never_both_nor_neither() {
    for (rule, key, words) in [
        (
            json!({"name": "r", "team": "t", "rep": "a"}),
            "rules[r]",
            "not both",
        ),
        (
            json!({"name": "r"}),
            "rules[r]",
            "missing `team` (or `rep`)",
        ),
        (
            json!({"name": "r", "rep": "loner"}),
            "rules[r].rep",
            "`loner` is not a rep of any team",
        ),
    ] {
        let config: RoutingConfig = serde_json::from_value(json!({
            "teams": [{"id": "t", "members": ["a"]}],
            "reps": [{"id": "a", "capacity": 1}, {"id": "loner", "capacity": 1}],
            "rules": [rule]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let errors = RoutingModel::new(config, "v").err().unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e.key == key && e.message.contains(words)),
            "{errors:?}"
        );
    }
}
