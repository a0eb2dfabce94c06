//! A real Prometheus of one test's own, scraping a running stack every second with the
//! shipped alert rules loaded: what checks that dashboards have data and that alerts fire
//! (Grafana itself is not installable here; its panels are Prometheus queries).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::eventually;

/// A file under deploy/.
pub fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

#[derive(Debug)]
pub struct Prometheus {
    base: String,
    client: reqwest::Client,
    child: Child,
}

impl Prometheus {
    /// Starts Prometheus in `dir` (its config, rules and data go there), scraping `target`
    /// (`host:port` of a `/metrics` endpoint) and evaluating deploy/prometheus/alerts.yml,
    /// both every second.
    pub async fn start(dir: &Path, target: &str) -> Self {
        std::fs::create_dir_all(dir).expect("prometheus's folder");
        std::fs::copy(deploy("prometheus/alerts.yml"), dir.join("alerts.yml"))
            .expect("the shipped alert rules");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\nscrape_configs:\n  - job_name: handoff\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let child = Command::new("prometheus")
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
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            child,
        }
    }

    /// The answer to an instant query; `Null` while Prometheus is not up yet.
    pub async fn query(&self, expr: &str) -> Value {
        self.get("/api/v1/query", &[("query", expr)]).await
    }

    /// The one value of a query that yields a single series (0 when it yields none).
    pub async fn scalar(&self, expr: &str) -> f64 {
        finite_values(&self.query(expr).await)
            .first()
            .copied()
            .unwrap_or(0.0)
    }

    /// Waits until `expr` (one series) reaches `at_least`.
    pub async fn reaches(&self, expr: &str, at_least: f64) {
        eventually(Duration::from_secs(60), expr, || async move {
            (self.scalar(expr).await >= at_least).then_some(())
        })
        .await;
    }

    /// `/api/v1/rules`.
    pub async fn rules(&self) -> Value {
        self.get("/api/v1/rules", &[]).await
    }

    /// The state of alert `name` as Prometheus evaluates it now: `pending`, `firing`, or
    /// `None` when it is inactive.
    pub async fn alert_state(&self, name: &str) -> Option<String> {
        let alerts = self.get("/api/v1/alerts", &[]).await;
        alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|alert| alert["labels"]["alertname"] == name)
            .and_then(|alert| alert["state"].as_str().map(str::to_owned))
    }

    /// Waits until alert `name` fires.
    pub async fn fires(&self, name: &str, within: Duration) {
        eventually(within, &format!("alert {name} firing"), || async move {
            (self.alert_state(name).await.as_deref() == Some("firing")).then_some(())
        })
        .await;
    }

    pub async fn stop(mut self) {
        self.child.start_kill().ok();
        self.child.wait().await.ok();
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await;
        match response {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
}

/// The finite values of an instant query's answer (NaN is no data: e.g. a quantile of
/// nothing).
pub fn finite_values(answer: &Value) -> Vec<f64> {
    answer["data"]["result"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .collect()
        })
        .unwrap_or_default()
}
