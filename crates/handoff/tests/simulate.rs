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
