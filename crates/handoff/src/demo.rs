//! Demo traffic for `handoff dev` (and the load command): realistic leads posted over
//! HTTP, and first touches reported for most of them, so every path of the system shows.

use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal",
    "Lena",
];
const LAST: &[&str] = &[
    "Schmidt", "Okafor", "Dubois", "Ivanova", "García", "Tanaka", "Müller", "Smith", "Rossi",
    "Nowak",
];
const COMPANIES: &[(&str, &str, &str)] = &[
    ("Acme Robotics", "acme-robotics.de", "DE"),
    ("Alpenblick AG", "alpenblick.ch", "CH"),
    ("Wiener Logistik", "wiener-logistik.at", "AT"),
    ("Brightside Ltd", "brightside.co.uk", "GB"),
    ("Lumière SA", "lumiere.fr", "FR"),
    ("Northwind Inc", "northwind.com", "US"),
    ("Maple Analytics", "maple-analytics.ca", "CA"),
    ("Sakura Systems", "sakura-sys.jp", "JP"),
    ("Koala Cloud", "koalacloud.com.au", "AU"),
    ("Rio Data", "riodata.com.br", "BR"),
];
const TITLES: &[&str] = &[
    "VP Sales",
    "CTO",
    "Head of Marketing",
    "Marketing Manager",
    "Software Engineer",
    "Student",
    "Director of Operations",
    "CEO",
    "Analyst",
];
const INDUSTRIES: &[&str] = &[
    "software",
    "manufacturing",
    "finance",
    "retail",
    "healthcare",
    "education",
];
const CAMPAIGNS: &[&str] = &[
    "spring-launch",
    "webinar-series",
    "pricing-retargeting",
    "partner-referral",
];
const FREE_MAIL: &[&str] = &["gmail.com", "outlook.com", "yahoo.com"];

/// One realistic lead submission.
pub fn lead() -> Value {
    let mut rng = rand::rng();
    let first = FIRST.choose(&mut rng).copied().unwrap_or("Ana");
    let last = LAST.choose(&mut rng).copied().unwrap_or("Smith");
    let (company, domain, country) = COMPANIES.choose(&mut rng).copied().unwrap_or(COMPANIES[0]);
    let mail_domain = if rng.random_bool(0.15) {
        FREE_MAIL.choose(&mut rng).copied().unwrap_or("gmail.com")
    } else {
        domain
    };
    let employees = [12u32, 45, 180, 650, 2400, 12000]
        .choose(&mut rng)
        .copied()
        .unwrap_or(50);
    let local: String = format!("{first}.{last}")
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    json!({
        "source": {
            "kind": if rng.random_bool(0.7) { "web_form" } else { "webhook" },
            "name": "demo",
            "campaign": CAMPAIGNS.choose(&mut rng).copied().unwrap_or(""),
            "utm": { "source": "google", "medium": "cpc" }
        },
        "contact": {
            "email": format!("{local}{}@{mail_domain}", rng.random_range(1..999)),
            "first_name": first,
            "last_name": last,
            "title": TITLES.choose(&mut rng).copied().unwrap_or(""),
        },
        "company": {
            "name": company,
            "domain": domain,
            "country": country,
            "employees": employees,
            "industry": INDUSTRIES.choose(&mut rng).copied().unwrap_or(""),
        },
        "engagement": {
            "demo_request": rng.random_bool(0.2),
            "pricing_page_views": rng.random_range(0..6),
            "content_downloads": rng.random_range(0..4),
            "webinars_attended": rng.random_range(0..2),
        }
    })
}

/// HTTP clients that present the demo's API keys.
#[derive(Debug, Clone)]
pub struct Clients {
    /// With a `leads:write` key.
    pub leads: reqwest::Client,
    /// With a `dispositions:write` key.
    pub dispositions: reqwest::Client,
}

impl Clients {
    pub fn new(leads_key: &str, dispositions_key: &str) -> reqwest::Result<Self> {
        Ok(Self {
            leads: with_key(leads_key)?,
            dispositions: with_key(dispositions_key)?,
        })
    }
}

/// A client that sends `Authorization: Bearer <key>` with every request.
pub fn with_key(key: &str) -> reqwest::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")) {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    // Bounded: a request to an ingest that hangs fails instead of stopping the demo (or a
    // test) for ever.
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(60))
        .build()
}

/// Posts every lead of a JSONL file (one submission per line; `#` comments) once, in
/// order: `handoff dev` starts with the sample leads the simulator's tests use, so the
/// two can be compared. Returns how many were accepted.
pub async fn replay(clients: &Clients, base_url: &str, path: &std::path::Path) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let client = &clients.leads;
    let mut accepted = 0;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Ok(body) = serde_json::from_str::<Value>(line) else {
            tracing::warn!(path = %path.display(), "skipping a line that is not JSON");
            continue;
        };
        match client
            .post(format!("{base_url}/v1/leads"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => accepted += 1,
            Ok(r) => tracing::warn!(status = %r.status(), "sample lead refused"),
            Err(e) => tracing::warn!(error = %e, "sample lead not posted"),
        }
    }
    accepted
}

/// Rejection reasons the demo gives (all among the default `ingest.reason_codes`).
const REJECTION_REASONS: &[&str] = &["no_budget", "no_authority", "bad_timing", "competitor"];

/// Posts `per_second` leads until `shutdown`, and plays the reps: about 85 % of the leads
/// get a first touch at a random moment within 1.5x the SLA window (so some are in time,
/// some breach), and every lead is closed (converted, rejected with a reason, recycled) a
/// few windows later. Capacity comes back and queues drain: the demo reaches a steady state.
pub async fn traffic(
    clients: Clients,
    base_url: String,
    per_second: f64,
    sla: Duration,
    shutdown: CancellationToken,
) {
    let client = clients.leads;
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.01));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let response = client
            .post(format!("{base_url}/v1/leads"))
            .json(&lead())
            .send()
            .await;
        let lead_id = match response {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["lead_id"].as_str().map(str::to_owned)),
            Ok(r) => {
                tracing::warn!(status = %r.status(), "demo lead refused");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "demo lead not posted");
                None
            }
        };
        let Some(lead_id) = lead_id else { continue };
        tokio::spawn(work_the_lead(
            clients.dispositions.clone(),
            format!("{base_url}/v1/leads/{lead_id}/dispositions"),
            sla,
            shutdown.clone(),
        ));
    }
}

/// What a rep (or their CRM) reports about one lead over its life.
async fn work_the_lead(
    client: reqwest::Client,
    url: String,
    sla: Duration,
    shutdown: CancellationToken,
) {
    let (touch, touch_after, close_after, close) = {
        let mut rng = rand::rng();
        let touch = if rng.random_bool(0.5) {
            "accepted"
        } else {
            "contacted"
        };
        // Most leads get an outcome marketing can use; some touched ones none yet (the
        // feedback backlog); untouched ones are recycled in the end.
        let close = match rng.random_range(0..100) {
            0..25 => Some(json!({ "outcome": "converted" })),
            25..60 => {
                let reason = REJECTION_REASONS
                    .choose(&mut rng)
                    .copied()
                    .unwrap_or("no_need");
                Some(json!({ "outcome": "rejected", "reason_code": reason }))
            }
            60..80 => Some(json!({ "outcome": "recycled" })),
            _ => None,
        };
        (
            rng.random_bool(0.85).then_some(touch),
            sla.mul_f64(rng.random_range(0.1..1.5)),
            sla.mul_f64(rng.random_range(1.0..3.0)),
            close,
        )
    };
    let report = |body: Value| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            // 409 (already closed) and 404 (expired) are answers, not failures, here.
            if let Err(e) = client.post(url).json(&body).send().await {
                tracing::warn!(error = %e, "demo disposition not posted");
            }
        }
    };
    let wait = |delay: Duration| {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                () = shutdown.cancelled() => false,
                () = tokio::time::sleep(delay) => true,
            }
        }
    };
    let close = match touch {
        Some(outcome) => {
            if !wait(touch_after).await {
                return;
            }
            report(json!({ "outcome": outcome, "actor": "rep" })).await;
            close
        }
        // Nobody called: the rep cleans up their list in the end.
        None => Some(close.unwrap_or_else(|| json!({ "outcome": "recycled" }))),
    };
    if let Some(close) = close {
        if wait(close_after).await {
            report(close).await;
        }
    }
}
