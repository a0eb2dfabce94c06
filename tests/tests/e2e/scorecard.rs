//! The agreement's scorecard end to end: leads, acceptances, a rejection with its reason,
//! touches and conversions with amounts through the real services; the scorecard from
//! `GET /v1/scorecard`, from `handoff scorecard` and from a real Prometheus's recording
//! rules (fed by the funnel's gauges) must be the hand-computed one, and agree.

use std::time::Duration;

use chrono::Utc;
use handoff_e2e::prometheus::Prometheus;
use handoff_e2e::{
    client, client_with_key, eventually, handoff_binary, post_json, qualified_lead, Stack,
    StackOptions, LEADS_KEY, RULES,
};
use serde_json::{json, Value};

const AGREEMENT: &str = r#"
[agreement]
feedback_window_hours = 48
[[agreement.targets]]
commitment = "mqls"
target = 100
[[agreement.targets]]
commitment = "acceptance_rate"
target = 0.8
[[agreement.targets]]
commitment = "first_touch_attainment"
team = "sales"
target = 0.9
[[agreement.targets]]
commitment = "feedback_completion"
target = 0.9
[[agreement.targets]]
commitment = "revenue"
source_kind = "web_form"
currency = "EUR"
target = 10000
"#;

async fn report(stack: &Stack, lead: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/v1/leads/{lead}/dispositions", stack.api());
    post_json(&client(), &url, &body).await
}

fn line<'a>(card: &'a Value, commitment: &str) -> &'a Value {
    card["current"]["lines"]
        .as_array()
        .and_then(|lines| lines.iter().find(|l| l["commitment"] == commitment))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_computed_period_agrees_in_the_api_the_cli_and_prometheus() {
    let stack = Stack::start(StackOptions {
        first_touch_seconds: 300,
        rules: format!("{RULES}{AGREEMENT}"),
        extra_config: "[funnel]\nrefresh_seconds = 1\n".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let target = stack.internal().trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(
        &stack.config_path.parent().unwrap().join("prometheus"),
        &target,
    )
    .await;
    let http = client();

    // Six MQLs: five from web forms, one from the API.
    let mut leads = Vec::new();
    for n in 0..6 {
        let mut lead = qualified_lead(n);
        if n == 5 {
            lead["source"]["kind"] = json!("api");
        }
        leads.push(stack.post_lead(&http, &lead).await);
    }
    eventually(Duration::from_secs(60), "six leads assigned", || async {
        let mut assigned = 0;
        for lead in &leads {
            if stack.lead_view(lead).await["assigned_at"].is_string() {
                assigned += 1;
            }
        }
        (assigned == leads.len()).then_some(())
    })
    .await;

    // A value only on a conversion, positive, in an ISO 4217 currency: 422 naming the field.
    for (body, field) in [
        (
            json!({ "outcome": "accepted", "amount": 10, "currency": "EUR" }),
            "amount",
        ),
        (
            json!({ "outcome": "converted", "amount": -5, "currency": "EUR" }),
            "amount",
        ),
        (
            json!({ "outcome": "converted", "amount": 5, "currency": "euro" }),
            "currency",
        ),
        (json!({ "outcome": "converted", "amount": 5 }), "currency"),
    ] {
        let (status, answer) = report(&stack, &leads[0], body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer.to_string().contains(field), "{body}: {answer}");
    }

    // 3 accepted, 1 rejected (75%); every report is a first touch in time (6 of 6) and
    // the first feedback within 48 h (6 of 6); 1250.5 EUR from web forms (the USD deal
    // and the API lead's EUR deal are other segments).
    for (lead, body) in [
        (0, json!({ "outcome": "accepted" })),
        (
            0,
            json!({ "outcome": "converted", "amount": 1250.5, "currency": "eur" }),
        ),
        (1, json!({ "outcome": "accepted" })),
        (
            2,
            json!({ "outcome": "rejected", "reason_code": "no_budget" }),
        ),
        (3, json!({ "outcome": "accepted" })),
        (
            4,
            json!({ "outcome": "converted", "amount": 99.5, "currency": "USD", "actor": "crm" }),
        ),
        (
            5,
            json!({ "outcome": "converted", "amount": 1000, "currency": "EUR" }),
        ),
    ] {
        let (status, answer) = report(&stack, &leads[lead], body.clone()).await;
        assert_eq!(status, 202, "{body}: {answer}");
    }

    // Scoped like the other read routes; a bad period names the field.
    let period = Utc::now().format("%Y-%m").to_string();
    let url = format!("{}/v1/scorecard?period={period}", stack.api());
    let status = client_with_key(LEADS_KEY)
        .get(&url)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 403);
    let bad = http
        .get(format!("{}/v1/scorecard?period=2026-13", stack.api()))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    assert!(bad.text().await.unwrap().contains("period"));

    let card = eventually(
        Duration::from_secs(60),
        "the scorecard's counts",
        || async {
            let card: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let done = line(&card, "mqls")["actual"] == json!(6.0)
                && line(&card, "acceptance_rate")["counts"] == json!([3, 4])
                && line(&card, "first_touch_attainment")["counts"] == json!([6, 6])
                && line(&card, "feedback_completion")["counts"] == json!([6, 6])
                && line(&card, "revenue")["actual"] == json!(1250.5);
            done.then_some(card)
        },
    )
    .await;
    assert_eq!(card["current"]["period"], json!(period));
    assert_eq!(line(&card, "acceptance_rate")["actual"], json!(0.75));
    assert_eq!(line(&card, "acceptance_rate")["status"], "behind");
    assert_eq!(line(&card, "first_touch_attainment")["status"], "on_track");
    assert_eq!(
        line(&card, "first_touch_attainment")["segment"],
        "team=sales"
    );
    assert_eq!(line(&card, "feedback_completion")["status"], "on_track");
    assert_eq!(line(&card, "revenue")["currency"], "EUR");
    assert_eq!(line(&card, "revenue")["segment"], "source_kind=web_form");
    assert_eq!(line(&card, "mqls")["side"], "marketing");
    assert!(card["previous"]["lines"].is_array());

    // The recording rules say the same (the funnel's gauges, every second).
    for commitment in [
        "mqls",
        "acceptance_rate",
        "first_touch_attainment",
        "feedback_completion",
        "revenue",
    ] {
        let api = line(&card, commitment);
        for (series, field) in [
            ("handoff:scorecard_target", "target"),
            ("handoff:scorecard_actual", "actual"),
        ] {
            let expr = format!("{series}{{period=\"month\",commitment=\"{commitment}\"}}");
            let want = api[field].as_f64().unwrap();
            let (prometheus, expr) = (&prometheus, &expr);
            eventually(Duration::from_secs(60), expr, || async move {
                let got = prometheus.scalar(expr).await;
                ((got - want).abs() < 1e-9).then_some(())
            })
            .await;
        }
        // The projection moves with the clock: the same within a thousandth.
        if let Some(want) = api["projected"].as_f64() {
            let expr = format!(
                "handoff:scorecard_projected{{period=\"month\",commitment=\"{commitment}\"}}"
            );
            let got = prometheus.scalar(&expr).await;
            assert!(
                (got - want).abs() <= want.abs() * 1e-3,
                "{commitment}: prometheus {got}, api {want}"
            );
        }
    }
    let on_track = prometheus
        .scalar(r#"handoff:scorecard_on_track{period="month",commitment="acceptance_rate"}"#)
        .await;
    assert_eq!(on_track, 0.0);
    let pace = prometheus
        .scalar(r#"handoff:scorecard_pace:ratio{period="month",commitment="mqls"}"#)
        .await;
    let want = line(&card, "mqls")["pace"].as_f64().unwrap();
    assert!((pace - want).abs() <= want * 1e-3, "{pace} vs {want}");
    // Revenue by source, campaign, team and currency, in currency units.
    assert_eq!(
        prometheus
            .scalar(r#"sum(handoff_funnel_revenue_total{source_kind="web_form",team="sales",currency="EUR"})"#)
            .await,
        1250.5
    );
    assert_eq!(
        prometheus
            .scalar(r#"sum(handoff_funnel_revenue_total{currency="USD"})"#)
            .await,
        99.5
    );

    // The weekly summary: the same figures as plain text.
    let output = tokio::process::Command::new(handoff_binary())
        .arg("--config")
        .arg(&stack.config_path)
        .args(["scorecard", "--period", &period])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run handoff scorecard");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    for expected in [
        "mqls (marketing, all): 6 of target 100",
        "[behind] acceptance_rate (marketing, all): 75.0% of target 80.0% (3 of 4)",
        "[on track] first_touch_attainment (sales, team=sales): 100.0% of target 90.0% (6 of 6)",
        "[on track] feedback_completion (sales, all): 100.0% of target 90.0% (6 of 6)",
        "revenue (shared, source_kind=web_form): 1250.5 EUR of target 10000 EUR",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    // A new target in the rules file: reloaded and versioned like the rules, no restart.
    let rules_path = stack.config_path.with_file_name("rules.toml");
    let rules = std::fs::read_to_string(&rules_path).unwrap();
    let before = card["rules_version"].as_str().unwrap().to_owned();
    std::fs::write(
        &rules_path,
        rules.replace(
            "commitment = \"mqls\"\ntarget = 100",
            "commitment = \"mqls\"\ntarget = 200",
        ),
    )
    .unwrap();
    let reloaded = eventually(Duration::from_secs(60), "the new target", || async {
        let card: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (line(&card, "mqls")["target"] == json!(200.0)).then_some(card)
    })
    .await;
    assert_ne!(reloaded["rules_version"].as_str(), Some(before.as_str()));
    prometheus
        .reaches(
            r#"handoff:scorecard_target{period="month",commitment="mqls"}"#,
            200.0,
        )
        .await;
    prometheus.stop().await;
    stack.stop().await.unwrap();
}
