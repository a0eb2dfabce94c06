//! The shipped Grafana dashboard and alert rules, checked the only way Grafana-less
//! machines can: a real Prometheus scrapes a running stack, loads deploy/prometheus's
//! rules, and runs every panel query of deploy/grafana's dashboard.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use handoff_e2e::{eventually, qualified_lead, Stack, StackOptions};
use serde_json::{json, Value};
use tokio::process::Command;

fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// Prometheus's answer to an instant query; `Null` while it is not up yet.
async fn query(client: &reqwest::Client, base: &str, expr: &str) -> Value {
    let response = client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await;
    match response {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_rule_runs_against_real_metrics() {
    let stack = Stack::start(StackOptions {
        first_touch_seconds: 1,
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    for n in 0..5 {
        stack.post_lead(&client, &qualified_lead(n)).await;
    }
    let target = stack.internal().trim_start_matches("http://").to_owned();

    let dir = stack.config_path.parent().unwrap().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(deploy("prometheus/alerts.yml"), dir.join("alerts.yml")).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\nscrape_configs:\n  - job_name: handoff\n    static_configs:\n      - targets: [\"{target}\"]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is installed (make test installs it)");

    // Wait until Prometheus has scraped the stack after the leads were assigned.
    eventually(Duration::from_secs(60), "scraped assignments", || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let result = query(&client, &base, "sum(handoff_leads_assigned_total)").await;
            let value = result["data"]["result"][0]["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()?;
            (value >= 5.0).then_some(())
        }
    })
    .await;

    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/handoff-sla.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let answer = query(&client, &base, expr).await;
            assert_eq!(
                answer["status"], "success",
                "panel {:?}: {expr}: {answer}",
                panel["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} queries found");
    // The series behind the headline panels exist under the names the dashboard uses.
    for expr in [
        "handoff_leads_received_total",
        "handoff_leads_assigned_total",
        "handoff_lead_assignment_latency_seconds_bucket",
        "handoff_leads_awaiting_first_touch",
        "handoff_lead_score_points_bucket",
        "handoff_consumer_partitions_assigned",
    ] {
        let answer = query(&client, &base, expr).await;
        assert_ne!(answer["data"]["result"], json!([]), "no series {expr}");
    }

    let rules: Value = client
        .get(format!("{base}/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    assert_eq!(loaded.len(), 10, "{loaded:?}");
    assert!(
        loaded.iter().all(|(_, health)| *health != "err"),
        "{loaded:?}"
    );

    prometheus.start_kill().ok();
    prometheus.wait().await.ok();
    stack.stop().await.unwrap();
}
