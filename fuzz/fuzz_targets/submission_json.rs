//! `POST /v1/leads` with a JSON body: bytes -> LeadSubmission (as ingest parses it, with
//! field paths) -> normalized Lead; an accepted lead is then routed like the router would.
#![no_main]

use libfuzzer_sys::fuzz_target;

use handoff_domain::submission::LeadSubmission;
use handoff_fuzz::{now, route, sample_rules};

fuzz_target!(|data: &[u8]| {
    let deserializer = &mut serde_json::Deserializer::from_slice(data);
    let Ok(submission) = serde_path_to_error::deserialize::<_, LeadSubmission>(deserializer) else {
        return;
    };
    if let Ok(lead) = submission.into_lead(now()) {
        route(sample_rules(), &lead);
    }
});
