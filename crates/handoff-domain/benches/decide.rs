//! Score + route for one lead: the engine's cost per lead, without Redis or Kafka.

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use handoff_domain::lead::{Company, Contact, Engagement, Lead, LeadId};
use handoff_domain::routing::{RoutingConfig, RoutingModel};
use handoff_domain::scoring::{ScoringConfig, ScoringModel};

/// 100 rules over 50 teams of 10 reps (500 reps); the lead matches the last rule.
fn models() -> Result<(ScoringModel, RoutingModel), String> {
    let mut reps = Vec::new();
    let mut teams = Vec::new();
    let mut rules = Vec::new();
    for t in 0..50 {
        let members: Vec<String> = (0..10).map(|r| format!("rep-{t}-{r}")).collect();
        for m in &members {
            reps.push(serde_json::json!({"id": m, "capacity": 50}));
        }
        teams.push(serde_json::json!({"id": format!("team-{t}"), "members": members}));
    }
    for r in 0..99 {
        rules.push(serde_json::json!({
            "name": format!("rule-{r}"),
            "team": format!("team-{}", r % 50),
            "when": {"all": [
                {"field": "company.country", "in": ["DE", "AT", "CH", format!("X{r}")]},
                {"field": "company.employees", "min": 100000 + r},
            ]}
        }));
    }
    rules.push(serde_json::json!({"name": "catch-all", "team": "team-49"}));
    let routing: RoutingConfig =
        serde_json::from_value(serde_json::json!({"teams": teams, "reps": reps, "rules": rules}))
            .map_err(|e| e.to_string())?;
    let scoring: ScoringConfig = serde_json::from_value(serde_json::json!({
        "mql_threshold": 10,
        "free_mail_domains": ["gmail.com", "yahoo.com", "outlook.com"],
        "rules": [
            {"name": "senior", "points": 20, "when": {"title_contains": ["vp", "director", "head", "chief"]}},
            {"name": "mid_market", "points": 15, "when": {"employees": {"min": 200, "max": 5000}}},
            {"name": "pricing", "points": 10, "when": {"pricing_page_views": {"at_least": 2}}},
            {"name": "free_mail", "points": -30, "when": "free_mail"}
        ]
    }))
    .map_err(|e| e.to_string())?;
    let routing = RoutingModel::new(routing, "bench").map_err(|e| format!("{e:?}"))?;
    Ok((ScoringModel::new(scoring, "bench"), routing))
}

fn bench(c: &mut Criterion) {
    let (scoring, routing) = match models() {
        Ok(models) => models,
        Err(e) => panic!("bench models: {e}"),
    };
    let lead = Lead {
        id: LeadId::from("bench"),
        received_at: Utc::now(),
        source: Default::default(),
        contact: Contact {
            email: "jane@acme.io".into(),
            title: "VP Sales".into(),
            ..Contact::default()
        },
        company: Company {
            employees: Some(800),
            country: "DE".into(),
            ..Company::default()
        },
        engagement: Engagement {
            pricing_page_views: 3,
            ..Engagement::default()
        },
        custom: Default::default(),
    };
    let states = std::collections::BTreeMap::new();
    let now = Utc::now();
    // The same lead matching the first rule: what falling through 99 rules costs.
    let mut first_rule_lead = lead.clone();
    first_rule_lead.company.employees = Some(100_000);
    c.bench_function("score_and_route/first_of_100_rules", |b| {
        b.iter(|| {
            let score = scoring.score(black_box(&first_rule_lead));
            let matched = routing.match_rule(&first_rule_lead, &score);
            black_box(routing.choose(matched, &states, now))
        })
    });
    c.bench_function("score_and_route/100_rules_500_reps", |b| {
        b.iter(|| {
            let score = scoring.score(black_box(&lead));
            let matched = routing.match_rule(&lead, &score);
            black_box(routing.choose(matched, &states, now))
        })
    });
    // The same, plus wording the 99 misses for the event (`rules_not_matched`), as the
    // router does once per decision when it builds `lead.assigned`.
    c.bench_function("score_route_and_explain/100_rules_500_reps", |b| {
        b.iter(|| {
            let score = scoring.score(black_box(&lead));
            let matched = routing.match_rule(&lead, &score);
            let mut decision = routing.choose(matched, &states, now);
            routing.explain_misses(&mut decision, &lead, &score);
            black_box(decision)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
