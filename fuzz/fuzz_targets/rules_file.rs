//! The rules file as `handoff rules check` and every service load it: bytes as TOML ->
//! parse + check; a rule set that loads then scores and routes the sample leads (weights,
//! capacities, half-lives and bands come from the input here).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use handoff_domain::submission::LeadSubmission;
use handoff_domain::Lead;
use handoff_fuzz::{now, route};

const SAMPLE_LEADS: &str = include_str!("../../deploy/config/leads.sample.jsonl");
const CRASH_LEAD: &str = r#"{"contact":{"email":"a@b.de"},"company":{"country":"DE","postal_code":"8é"},"engagement":{"demo_request":true}}"#;

fn leads() -> &'static [Lead] {
    static LEADS: OnceLock<Vec<Lead>> = OnceLock::new();
    LEADS.get_or_init(|| {
        SAMPLE_LEADS
            .lines()
            .chain([CRASH_LEAD])
            .filter(|line| line.trim_start().starts_with('{'))
            .filter_map(|line| serde_json::from_str::<LeadSubmission>(line).ok())
            .filter_map(|submission| submission.into_lead(now()).ok())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = handoff_config::parse_rules(Path::new("rules.toml"), text) else {
        return;
    };
    for lead in leads() {
        route(&rules, lead);
    }
});
