//! A real webhook receiver on loopback: counts deliveries per `Handoff-Event-Id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio_util::sync::CancellationToken;

type Counts = Arc<Mutex<HashMap<String, usize>>>;

#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT` (webhooks go to `{base}/hooks/…`).
    pub base: String,
    counts: Counts,
    shutdown: CancellationToken,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let counts = Counts::default();
        let app = Router::new()
            .route("/hooks/{*path}", post(receive))
            .with_state(counts.clone());
        let (base, shutdown) = crate::serve_local(app).await?;
        Ok(Self {
            base,
            counts,
            shutdown,
        })
    }

    /// Deliveries so far, per event id.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn receive(State(counts): State<Counts>, headers: HeaderMap) -> StatusCode {
    let Some(id) = headers
        .get("handoff-event-id")
        .and_then(|v| v.to_str().ok())
    else {
        return StatusCode::BAD_REQUEST;
    };
    if let Ok(mut counts) = counts.lock() {
        *counts.entry(id.to_owned()).or_default() += 1;
    }
    StatusCode::OK
}
