//! A webhook receiver on loopback that stamps each delivery on arrival: the end of
//! received → notified. The rules' team and rep webhooks point here; the first delivery
//! of a lead (either audience) is when it was notified.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

type Arrivals = Arc<Mutex<HashMap<String, DateTime<Utc>>>>;

#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT` (webhooks go to `{base}/hooks/…`).
    pub base: String,
    arrivals: Arrivals,
    shutdown: CancellationToken,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let arrivals = Arrivals::default();
        let app = Router::new()
            .route("/hooks/{*path}", post(receive))
            .with_state(arrivals.clone());
        let (base, shutdown) = handoff_e2e::serve_local(app).await?;
        Ok(Self {
            base,
            arrivals,
            shutdown,
        })
    }

    /// When each lead's first `lead.assigned` delivery arrived, of those in `leads`.
    pub fn arrivals_of<'a>(
        &self,
        leads: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(&'a str, DateTime<Utc>)> {
        let Ok(arrivals) = self.arrivals.lock() else {
            return Vec::new();
        };
        leads
            .into_iter()
            .filter_map(|lead| Some((lead, *arrivals.get(lead)?)))
            .collect()
    }

    /// Leads notified so far.
    pub fn count(&self) -> usize {
        self.arrivals.lock().map(|a| a.len()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn receive(State(arrivals): State<Arrivals>, body: axum::body::Bytes) -> StatusCode {
    let arrived = Utc::now();
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    if body["type"].as_str() != Some("lead.assigned") {
        return StatusCode::OK;
    }
    let Some(lead) = body["lead_id"].as_str() else {
        return StatusCode::BAD_REQUEST;
    };
    if let Ok(mut arrivals) = arrivals.lock() {
        arrivals.entry(lead.to_owned()).or_insert(arrived);
    }
    StatusCode::OK
}
