//! An arbitrary lead against the sample rules: bytes -> a lead as another producer would
//! put it on lead.created (any strings, any times, any counts; not normalized) or, failing
//! that, as a submission -> score + route, deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;

use handoff_domain::submission::LeadSubmission;
use handoff_domain::Lead;
use handoff_fuzz::{now, route, sample_rules};

fuzz_target!(|data: &[u8]| {
    let lead = match serde_json::from_slice::<Lead>(data) {
        Ok(lead) => lead,
        Err(_) => match serde_json::from_slice::<LeadSubmission>(data) {
            Ok(submission) => match submission.into_lead(now()) {
                Ok(lead) => lead,
                Err(_) => return,
            },
            Err(_) => return,
        },
    };
    route(sample_rules(), &lead);
});
