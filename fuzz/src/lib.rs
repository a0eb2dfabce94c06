//! What the fuzz targets share: the sample rules (loaded once) and the router's path for
//! one lead (check, score, match, choose), run twice to check it is deterministic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use handoff_config::{parse_rules, Rules};
use handoff_domain::routing::{RepState, TeamState};
use handoff_domain::simulation::Simulation;
use handoff_domain::submission::check_lead;
use handoff_domain::Lead;

/// deploy/config/rules.toml: every feature of the rules file, including the `prefix`
/// condition that crashed on `8é` (issue 6).
pub const SAMPLE_RULES: &str = include_str!("../../deploy/config/rules.toml");

pub fn sample_rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(
        || match parse_rules(Path::new("rules.toml"), SAMPLE_RULES) {
            Ok(rules) => rules,
            Err(e) => panic!("the sample rules do not load: {e}"),
        },
    )
}

/// A fixed instant (a Tuesday, 10:30 UTC: most reps at work), so runs are reproducible.
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_516_200, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The router's path for a lead from lead.created: validation (as for other producers),
/// then score and route; a lead that fails validation is still scored and routed raw, so
/// the rule engine is exercised on unnormalized input too. Twice, with the same result.
pub fn route(rules: &Rules, lead: &Lead) {
    if let Ok(normalized) = check_lead(lead) {
        // Normalizing is idempotent: what ingest publishes, the router accepts unchanged.
        assert_eq!(
            check_lead(&normalized).as_ref(),
            Ok(&normalized),
            "normalization is not idempotent"
        );
        decide_twice(rules, &normalized);
    }
    decide_twice(rules, lead);
}

fn decide_twice(rules: &Rules, lead: &Lead) {
    let first = decide(rules, lead);
    assert_eq!(
        first,
        decide(rules, lead),
        "the decision is not deterministic"
    );
    // The simulator: the same code over in-memory state, three times in a row (rotation,
    // capacity and stickiness move on), and its summary arithmetic.
    let mut simulation = Simulation::new(&rules.scoring, &rules.routing);
    for _ in 0..3 {
        simulation.route(lead, now());
    }
    let _ = simulation.summary();
}

fn decide(rules: &Rules, lead: &Lead) -> String {
    let score = rules.scoring.score(lead);
    let matched = rules.routing.match_rule(lead, &score);
    let mut states = BTreeMap::new();
    // A busy state: everyone near capacity, a weighted rotation with extreme credits.
    for team in rules.routing.teams_for(&matched) {
        let members = rules.routing.members(team);
        let state = TeamState {
            rotation: members
                .iter()
                .enumerate()
                .map(|(i, m)| format!("{m}={}", if i % 2 == 0 { i64::MAX } else { i64::MIN }))
                .collect::<Vec<_>>()
                .join(";"),
            reps: members
                .iter()
                .map(|m| {
                    (
                        m.clone(),
                        RepState {
                            open_leads: u32::MAX,
                            assigned_today: u32::MAX,
                            ..RepState::default()
                        },
                    )
                })
                .collect(),
        };
        states.insert(team.to_owned(), state);
    }
    let busy = rules.routing.choose(matched.clone(), &states, now());
    let fresh = rules.routing.choose(matched, &BTreeMap::new(), now());
    format!("{score:?} {busy:?} {fresh:?}")
}
