//! The shipped Grafana dashboards and Prometheus rules, checked the only way Grafana-less
//! machines can: a real Prometheus scrapes a running stack, loads deploy/prometheus's
//! rules, and runs every panel query of both dashboards in deploy/grafana; each must return
//! data, rate() panels included.
//!
//! Why an earlier version saw a single raw sample in its windows despite a 1 s scrape
//! interval: the leads were posted before Prometheus started, and the test queried as soon
//! as a scrape showed them, which was the very first scrape. And a counter that first
//! appears at its first increment gives rate() and increase() nothing even with more
//! samples (its first sample is already 1). So Prometheus starts first and scrapes the
//! idle stack, and every series whose label values are known at start-up exists at zero
//! (`handoff_telemetry::prime_known_series`, `FunnelMetrics::prime_*`, the consume loop).

use std::time::Duration;

use handoff_e2e::prometheus::{deploy, finite_values, Prometheus};
use handoff_e2e::{post_json, qualified_lead, Stack, StackOptions, RULES};
use serde_json::{json, Value};

/// [`RULES`] plus a team with a one-second first-touch window (its untouched leads breach)
/// and one whose only rep is inactive (its leads wait in a queue), and an agreement with a
/// target for every commitment (the scorecard row's panels).
fn rules() -> String {
    let agreement = r#"
[agreement]
[[agreement.targets]]
commitment = "mqls"
target = 1000
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
    RULES.replace(
        "[[routing.rules]]\nname = \"everyone\"",
        r#"[[routing.reps]]
id = "e"
capacity = 100

[[routing.teams]]
id = "france"
members = ["e"]
first_touch_seconds = 1

[[routing.teams]]
id = "apac"
members = ["d"]

[[routing.rules]]
name = "france"
team = "france"
when = { field = "company.country", in = ["FR"] }

[[routing.rules]]
name = "japan"
team = "apac"
when = { field = "company.country", in = ["JP"] }

[[routing.rules]]
name = "everyone""#,
    ) + agreement
}

/// Every panel query of a dashboard: (dashboard, panel title, expression).
fn panel_queries(file: &str) -> Vec<(String, String, String)> {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy(file)).unwrap()).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap().to_owned();
            panel["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| {
                    (
                        file.to_owned(),
                        title.clone(),
                        t["expr"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn post_disposition(stack: &Stack, client: &reqwest::Client, lead: &str, body: Value) {
    let url = format!("{}/v1/leads/{lead}/dispositions", stack.api());
    let (status, answer) = post_json(client, &url, &body).await;
    assert_eq!(status, 202, "{body} for {lead}: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_and_rule_has_data_from_a_real_run() {
    let stack = Stack::start(StackOptions {
        // sales: 5 minutes to touch (the test's touches are in time); france: 1 s (rules()).
        first_touch_seconds: 300,
        rules: rules(),
        extra_config: "[funnel]\ncampaigns = [\"spring-launch\"]\ntop_n = 2\nbacklog_after_seconds = 1\nrefresh_seconds = 2\n".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let target = stack.internal().trim_start_matches("http://").to_owned();

    let prometheus = Prometheus::start(
        &stack.config_path.parent().unwrap().join("prometheus"),
        &target,
    )
    .await;
    let client = &client;

    // The idle stack first: every known series at zero, scraped at least twice, as in a
    // deployment whose Prometheus was there before the traffic.
    prometheus.reaches(r#"count_over_time(handoff_funnel_leads_total{stage="received",source_kind="web_form",campaign="spring-launch"}[1m])"#,
        2.0,
    )
    .await;

    // A rules file that does not load: rejected, the rules in force stay.
    let rules_path = stack.config_path.with_file_name("rules.toml");
    let good_rules = std::fs::read_to_string(&rules_path).unwrap();
    std::fs::write(&rules_path, "[routing\n").unwrap();
    prometheus
        .reaches(
            r#"sum(handoff_rules_reloads_total{outcome="rejected"})"#,
            1.0,
        )
        .await;
    std::fs::write(&rules_path, &good_rules).unwrap();

    // Traffic: sales leads from three campaigns (one not a valid label value), a lead of an
    // unlisted kind without a campaign, two for france (they breach), one for apac (it
    // queues), one that does not qualify, and a refused submission.
    let mut leads = Vec::new();
    for (n, country, kind, campaign) in [
        (0, "DE", "web_form", "spring-launch"),
        (1, "DE", "web_form", "spring-launch"),
        (2, "DE", "web_form", "webinar"),
        (3, "DE", "api", "webinar"),
        (4, "DE", "web_form", "Summer Sale!"),
        (5, "DE", "carrier-pigeon", ""),
        (6, "FR", "web_form", "spring-launch"),
        (7, "FR", "web_form", "webinar"),
        (8, "JP", "web_form", "spring-launch"),
    ] {
        let mut lead = qualified_lead(n);
        lead["company"]["country"] = json!(country);
        lead["source"] = json!({ "kind": kind, "name": "test", "campaign": campaign });
        leads.push(stack.post_lead(client, &lead).await);
    }
    stack
        .post_lead(
            client,
            &json!({
                "contact": { "email": "kid@gmail.com", "title": "Student" },
                "source": { "kind": "web_form", "campaign": "spring-launch" }
            }),
        )
        .await;
    let (status, _) = post_json(client, &format!("{}/v1/leads", stack.api()), &json!({})).await;
    assert_eq!(status, 422);

    // Outcomes once the leads are assigned (8: all but the queued and the unqualified one).
    prometheus
        .reaches(r#"sum(handoff_funnel_leads_total{stage="assigned"})"#, 8.0)
        .await;
    let report = |outcome: &str| json!({ "outcome": outcome, "actor": "rep" });
    post_disposition(&stack, client, &leads[0], report("accepted")).await;
    post_disposition(
        &stack,
        client,
        &leads[0],
        json!({ "outcome": "converted", "actor": "rep", "amount": 1250.5, "currency": "EUR" }),
    )
    .await;
    post_disposition(
        &stack,
        client,
        &leads[1],
        json!({ "outcome": "rejected", "reason_code": "no_budget", "actor": "rep" }),
    )
    .await;
    post_disposition(&stack, client, &leads[2], report("accepted")).await;
    post_disposition(&stack, client, &leads[3], report("recycled")).await;
    post_disposition(&stack, client, &leads[4], report("contacted")).await;
    prometheus
        .reaches(
            r#"sum(handoff_funnel_first_touch_sla_total{result="missed"})"#,
            2.0,
        )
        .await;
    prometheus
        .reaches(r#"sum(handoff_funnel_leads_total{stage="converted"})"#, 1.0)
        .await;

    // Every panel of both dashboards returns data: polled, since rates need a second sample
    // after the increments and the recording rules an evaluation after that.
    let mut queries = panel_queries("grafana/handoff-sla.json");
    let ops = queries.len();
    queries.extend(panel_queries("grafana/handoff-funnel.json"));
    assert!(ops >= 20, "only {ops} queries on the ops dashboard");
    assert!(
        queries.len() - ops >= 16,
        "only {} queries on the marketing dashboard",
        queries.len() - ops
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut missing = Vec::new();
        for (file, title, expr) in &queries {
            let answer = prometheus.query(expr).await;
            assert_eq!(
                answer["status"], "success",
                "{file} {title:?}: {expr}: {answer}"
            );
            if finite_values(&answer).is_empty() {
                missing.push(format!("{file} {title:?}: {expr}: {answer}"));
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "panels without data:\n{}",
            missing.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The funnel counted what happened, once per lead and stage, with bounded labels.
    let count = |selector: &str| {
        let (prometheus, expr) = (
            &prometheus,
            format!("sum(handoff_funnel_leads_total{{{selector}}})"),
        );
        async move { prometheus.scalar(&expr).await }
    };
    for (stage, expected) in [
        ("received", 10.0),
        ("qualified", 9.0),
        ("unqualified", 1.0),
        ("assigned", 8.0),
        ("accepted", 2.0),
        ("rejected", 1.0),
        ("converted", 1.0),
        ("recycled", 1.0),
    ] {
        assert_eq!(
            count(&format!("stage=\"{stage}\"")).await,
            expected,
            "{stage}"
        );
    }
    assert_eq!(
        count(r#"stage="received",campaign="spring-launch""#).await,
        5.0
    );
    assert_eq!(
        count(r#"stage="received",source_kind="other",campaign="none""#).await,
        1.0
    );
    assert_eq!(count(r#"campaign="Summer Sale!""#).await, 0.0);
    assert_eq!(
        prometheus
            .scalar(r#"sum(handoff_funnel_rejections_total{reason="no_budget"})"#)
            .await,
        1.0
    );
    assert_eq!(
        prometheus
            .scalar(r#"sum(handoff_funnel_first_touch_sla_total{team="sales",result="met"})"#)
            .await,
        5.0
    );
    assert_eq!(
        prometheus
            .scalar(r#"sum(handoff_funnel_first_touch_sla_total{team="france",result="missed"})"#)
            .await,
        2.0
    );
    // No outcome yet for leads 4 (contacted only), 5, 6 and 7: past the (1 s) window.
    prometheus
        .reaches("max(handoff_funnel_disposition_backlog)", 4.0)
        .await;
    assert_eq!(
        prometheus
            .scalar("max(handoff_funnel_first_touch_overdue)")
            .await,
        2.0
    );
    // The headline figure sees every lead, the first included: the series existed at zero.
    let received = prometheus
        .scalar(r#"sum(increase(handoff_funnel_leads_total{stage="received"}[24h]))"#)
        .await;
    if !(10.0..11.5).contains(&received) {
        // Which series lost its first increment (one that appeared at 1, not 0).
        let per_series = prometheus
            .query(r#"increase(handoff_funnel_leads_total{stage="received"}[24h]) > 0"#)
            .await;
        panic!("received (24h): {received}; per series: {per_series}");
    }

    // Every rule of the file is loaded and healthy.
    let file = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let in_file = file
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("- alert:") || l.starts_with("- record:")
        })
        .count();
    let rules = prometheus.rules().await;
    let loaded: Vec<(&str, &str)> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["health"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(loaded.len(), in_file, "{loaded:?}");
    assert!(
        loaded.iter().all(|(_, health)| *health != "err"),
        "{loaded:?}"
    );

    prometheus.stop().await;
    stack.stop().await.unwrap();
}
