//! The simulator over the sample rules and leads in deploy/config: the same files
//! `handoff dev` and the README use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/config")
        .join(name)
}

#[test]
fn the_sample_leads_route_as_the_sample_rules_say() {
    // A Tuesday morning in Europe, while Bruno is out of office.
    let at = "2026-12-22T09:30:00Z".parse().unwrap();
    let (report, summary) =
        handoff::simulate::run(&sample("rules.toml"), &sample("leads.sample.jsonl"), at).unwrap();

    assert_eq!(summary.leads, 24);
    let assigned: usize = summary.shares.iter().map(|s| s.assigned).sum();
    let stranded: usize = summary.stranded.values().sum();
    assert_eq!(
        assigned + summary.unqualified + stranded,
        summary.leads,
        "every lead ends somewhere named"
    );
    assert_eq!(summary.unqualified, 8);

    let count = |team: &str, rep: &str| {
        summary
            .shares
            .iter()
            .find(|s| s.team == team && s.rep == rep)
            .map_or(0, |s| s.assigned)
    };
    assert_eq!(count("emea-enterprise", "bruno"), 0, "out of office");
    assert_eq!(count("americas", "hana"), 0, "deactivated");
    assert_eq!(
        count("partners", "kai"),
        1,
        "partner referrals go to the partner desk"
    );
    // Weighted 2:1, exact over the cycle.
    assert_eq!(
        (count("emea-smb", "dara"), count("emea-smb", "emil")),
        (2, 1)
    );

    assert!(
        report.contains("skipped: bruno (out_of_office)"),
        "{report}"
    );
    assert!(
        report.contains("not partner-referrals: custom.partner is missing"),
        "{report}"
    );
    // The imported list is kept out of the americas team by a `not` condition.
    assert!(
        report.contains("not americas: not (source.kind = \"import\")"),
        "{report}"
    );
}

#[test]
fn working_hours_follow_the_clock() {
    // 03:00 in Berlin: Ana is off; the enterprise leads go to the others.
    let at = "2026-11-24T02:00:00Z".parse().unwrap();
    let (report, summary) =
        handoff::simulate::run(&sample("rules.toml"), &sample("leads.sample.jsonl"), at).unwrap();
    let ana = summary
        .shares
        .iter()
        .find(|s| s.rep == "ana")
        .map_or(0, |s| s.assigned);
    assert_eq!(ana, 0);
    assert!(report.contains("ana (outside_working_hours)"), "{report}");
}

/// Issue 6: this web-form lead panicked the `prefix` condition of the sample rules (its
/// postal code was sliced inside the `é`). The simulator now prints its decision, and the
/// lead behind it is routed too.
#[test]
fn the_crash_lead_of_issue_6_gets_a_decision() {
    let leads = std::env::temp_dir().join(format!(
        "handoff-simulate-crash-lead-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(
        &leads,
        concat!(
            r#"{"contact":{"email":"a@b.de"},"company":{"country":"DE","postal_code":"8é"},"engagement":{"demo_request":true}}"#,
            "\n",
            r#"{"contact":{"email":"lea@munich-startup.de","title":"CTO"},"company":{"country":"DE","postal_code":"80331"},"engagement":{"demo_request":true}}"#,
            "\n",
        ),
    )
    .unwrap();
    let at = "2026-11-24T10:00:00Z".parse().unwrap();
    let outcome = handoff::simulate::run(&sample("rules.toml"), &leads, at);
    std::fs::remove_file(&leads).unwrap();
    let (report, summary) = outcome.unwrap();

    assert_eq!(summary.leads, 2);
    // A demo request takes the fast lane; `8é` does not start with 80 or 81, so the lead
    // misses the Munich rule and lands in EMEA SMB.
    assert!(report.contains("line-1"), "{report}");
    assert!(
        report.contains(
            "not emea-enterprise: none of: company.employees = missing, outside 1000..; company.postal_code = \"8é\", no prefix in [80, 81]"
        ),
        "{report}"
    );
    assert!(report.contains("-> emea-smb / dara"), "{report}");
    // The Munich lead behind it still matches the prefix.
    assert!(report.contains("-> emea-enterprise / ana"), "{report}");
}
