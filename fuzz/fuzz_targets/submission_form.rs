//! `POST /v1/leads` with an HTML form body: bytes -> urlencoded pairs -> LeadSubmission
//! (`from_form`) -> normalized Lead; an accepted lead is then routed.
#![no_main]

use libfuzzer_sys::fuzz_target;

use handoff_domain::submission::LeadSubmission;
use handoff_fuzz::{now, route, sample_rules};

fuzz_target!(|data: &[u8]| {
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return;
    };
    let Ok(submission) = LeadSubmission::from_form(pairs) else {
        return;
    };
    if let Ok(lead) = submission.into_lead(now()) {
        route(sample_rules(), &lead);
    }
});
