//! The simulator over the sample rules and leads in deploy/config (the same files
//! `handoff dev` and the README use), and the real binary replaying the timeline examples
//! in docs/examples/simulate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/config")
        .join(name)
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples/simulate")
        .join(name)
}

/// Runs `handoff simulate` with these arguments after `--rules RULES --leads LEADS`.
fn simulate(rules: &Path, leads: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("simulate")
        .arg("--rules")
        .arg(rules)
        .arg("--leads")
        .arg(leads)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The lines of a report that start with the time and cause of a timeline entry about `lead`.
fn about<'a>(report: &'a str, lead: &str) -> Vec<&'a str> {
    let needle = format!(" lead {lead} ");
    report.lines().filter(|l| l.contains(&needle)).collect()
}

/// A temporary file with these lines, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, lines: &[&str]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "handoff-simulate-{name}-{}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, lines.join("\n")).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_sample_leads_route_as_the_sample_rules_say() {
    // A Tuesday morning in Europe, while Bruno is out of office.
    let at = "2026-12-22T09:30:00Z".parse().unwrap();
    let (report, summary) =
        handoff::simulate::run(&sample("rules.toml"), &sample("leads.sample.jsonl"), at).unwrap();

    assert_eq!(summary.leads, 24);
    let assigned: usize = summary.shares.iter().map(|s| s.assigned).sum();
    let stranded: usize = summary.waiting.values().sum();
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
            .find(|s| s.team.as_str() == team && s.rep.as_str() == rep)
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
        .find(|s| s.rep.as_str() == "ana")
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

#[test]
fn the_plain_report_is_unchanged_by_the_timeline() {
    let output = simulate(
        &sample("rules.toml"),
        &sample("leads.sample.jsonl"),
        &["--at", "2026-12-22T09:30:00Z"],
    );
    let report = stdout(&output);
    assert!(
        report.starts_with("rules version ") && report.contains(" at 2026-12-22T09:30:00+00:00\n"),
        "{report}"
    );
    assert!(
        report.contains("\n24 leads: 16 assigned, 8 unqualified, 0 waiting\n"),
        "{report}"
    );
    // No timeline figures for a file of leads all at one moment.
    assert!(!report.contains("open at end"), "{report}");
    assert!(!report.contains("--timeline"), "{report}");
}

/// Issue 7: Ana goes on leave Monday. Her leave is entered on Friday; on Monday her leads go
/// to Bruno and Chiara, a queue builds when both are full, and drains as they call leads back.
#[test]
fn ana_goes_on_leave_monday() {
    let output = simulate(
        &example("rules.toml"),
        &example("leave-monday.jsonl"),
        &["--timeline"],
    );
    let report = stdout(&output);

    // Friday, before the leave: Ana takes her turn.
    assert!(
        about(&report, "fri-1")[0].ends_with("-> emea / ana"),
        "{report}"
    );
    assert!(
        report.contains(
            "line 11   roster ana: out of office 2026-11-29T23:00:00Z to 2026-12-06T23:00:00Z"
        ),
        "{report}"
    );
    // Monday: nothing for Ana; she is skipped as out of office.
    for lead in [
        "mon-1", "mon-2", "mon-3", "mon-4", "mon-5", "mon-6", "mon-7",
    ] {
        let lines = about(&report, lead);
        assert!(!lines.is_empty(), "{lead}: {report}");
        assert!(
            lines.iter().all(|l| !l.contains("/ ana")),
            "{lead} went to Ana: {report}"
        );
    }
    assert!(
        report.contains("skipped: ana (out_of_office), bruno (at_capacity), chiara (at_capacity)"),
        "{report}"
    );
    // The queue builds once both are full...
    assert!(
        about(&report, "mon-5")[0].starts_with(
            "2026-11-30T08:20:00Z  line 17   lead mon-5  score 0 (D)  -> QUEUED in emea-overflow"
        ),
        "{report}"
    );
    assert!(
        about(&report, "mon-6")[0].ends_with("-> QUEUED in emea-overflow"),
        "{report}"
    );
    // ...and drains, oldest first, as soon as a touch frees room: at the touch's time.
    assert!(
        report.contains(
            "2026-11-30T08:45:00Z  line 20   touch mon-1 contacted: first touch: off bruno's open leads\n\
             2026-11-30T08:45:00Z  line 20   lead mon-5  -> emea / bruno after 25m 00s in emea-overflow\n"
        ),
        "{report}"
    );
    assert!(
        report.contains("2026-11-30T09:00:00Z  line 21   lead mon-6  -> emea / chiara after 35m 00s in emea-overflow"),
        "{report}"
    );
    // More room for Chiara takes the late lead out of the queue.
    assert!(
        report.contains("2026-11-30T10:00:00Z  line 24   lead mon-7  -> emea / chiara after 30m 00s in emea-overflow"),
        "{report}"
    );
    // Per rep and per queue.
    assert!(
        report.contains("\n10 leads: 10 assigned, 0 unqualified, 0 waiting\n"),
        "{report}"
    );
    let row = |name: &str| {
        report
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    // assigned, open at end, peak open, capacity
    assert_eq!(row("ana").as_deref(), Some("1 0 1 2"), "{report}");
    assert_eq!(row("bruno").as_deref(), Some("4 2 2 2"), "{report}");
    assert_eq!(row("chiara").as_deref(), Some("5 3 3 3"), "{report}");
    // entered, max depth, longest wait, waiting at end
    assert_eq!(
        row("emea-overflow").as_deref(),
        Some("3 2 35m 00s 0"),
        "{report}"
    );

    // Without --timeline: lead by lead, with where each waiting lead went.
    let report = stdout(&simulate(
        &example("rules.toml"),
        &example("leave-monday.jsonl"),
        &[],
    ));
    assert!(
        report.contains(
            "           then emea / bruno at 2026-11-30T08:45:00Z, after 25m 00s in emea-overflow"
        ),
        "{report}"
    );
    assert!(
        report.contains("--timeline shows what happened when"),
        "{report}"
    );
}

/// Leads that arrive overnight wait in the team's queue and go out at 09:00 Berlin time
/// (08:00 UTC in winter), when the reps' working hours begin: the clock drains the queue.
#[test]
fn working_hours_opening_drains_the_overnight_queue() {
    let rules = example("rules.toml");
    let leads = example("overnight.jsonl");
    let report = stdout(&simulate(
        &rules,
        &leads,
        &["--timeline", "--until", "2026-12-01T12:00:00+01:00"],
    ));
    for (lead, rep, waited) in [
        ("eve-1", "ana", "13h 30m"),
        ("night-1", "bruno", "9h 50m"),
        ("night-2", "chiara", "5h 15m"),
        ("early-1", "ana", "30s"),
    ] {
        let expected = format!(
            "2026-12-01T08:00:00Z  clock     lead {lead}  -> emea / {rep} after {waited} in emea-overflow"
        );
        assert!(report.contains(&expected), "{expected}\n{report}");
    }
    assert!(
        report.contains("skipped: ana (outside_working_hours), bruno (outside_working_hours), chiara (outside_working_hours)"),
        "{report}"
    );
    assert!(!report.contains("still waiting"), "{report}");

    // The replay ends at the last line unless told to go on: then they are still waiting.
    let report = stdout(&simulate(&rules, &leads, &["--timeline"]));
    assert!(
        report.contains(
            "still waiting at 2026-12-01T07:59:30Z: eve-1 in emea-overflow for 13h 29m, night-1"
        ),
        "{report}"
    );
    assert!(report.contains("  waiting in emea-overflow: 4"), "{report}");

    // --until before the last line is refused.
    let output = simulate(&rules, &leads, &["--until", "2026-12-01T00:00:00Z"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--until 2026-12-01T00:00:00Z is before the last line"),
        "{stderr}"
    );
}

/// Lines are user input: a bad one is an error naming the file, the line and the field, and
/// the exit status says so; nothing panics.
#[test]
fn a_malformed_line_is_a_clear_error() {
    let good_lead = r#"{"id": "a", "contact": {"email": "a@acme.de"}, "received_at": "2026-11-30T09:00:00+01:00"}"#;
    let cases = [
        (
            r#"{"roster": {"rep": "ana", "capacity": "three"}}"#,
            "line 3, field `roster.capacity`: expected a whole number from 0 to 100000",
        ),
        (
            r#"{"roster": {"rep": "anna", "active": false}}"#,
            "line 3, field `roster.rep`: unknown rep `anna`, expected one of ana, bruno, chiara",
        ),
        (
            r#"{"touch": "b", "outcome": "contacted"}"#,
            "line 3, field `touch`: no lead `b` in this file",
        ),
        (
            r#"{"contact": {"email": "c@acme.de"}, "received_at": "Monday 9am"}"#,
            "line 3, field `received_at`: `Monday 9am` is not a time",
        ),
        (r#"{"contact": {"email": "c@acme.de"}"#, "line 3: not JSON"),
    ];
    for (bad, expected) in cases {
        let file = TempFile::new("malformed", &[good_lead, "# a comment", bad]);
        let output = simulate(&example("rules.toml"), &file.0, &["--timeline"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains(&file.0.display().to_string()), "{stderr}");
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
        assert!(!stderr.contains("panic"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

/// Issue 24 (10): a week of real leads has bad lines; `--skip-bad-lines` replays the rest
/// and lists each left out with its line, field and reason, at the end. Without it the
/// first bad line still stops the run.
#[test]
fn bad_lines_can_be_left_out_and_listed_at_the_end() {
    let file = TempFile::new(
        "skip",
        &[
            r#"{"id": "a", "contact": {"email": "a@acme.de"}, "received_at": "2026-11-30T10:00:00+01:00"}"#,
            r#"{"roster": {"rep": "ana", "capacity": "three"}}"#,
            r#"{"id": "b", "contact": {"email": "b@acme.de"}, "company": {"employees": "many"}}"#,
            r#"{"touch": "b", "outcome": "contacted"}"#,
            r#"{"id": "c", "contact": {"email": "c@acme.de"}}"#,
            r#"{"contact": {"email": "d@acme.de"}"#,
        ],
    );
    let report = stdout(&simulate(
        &example("rules.toml"),
        &file.0,
        &["--skip-bad-lines"],
    ));
    assert!(report.contains("\n2 leads: 2 assigned"), "{report}");
    let tail = report
        .split_once("\n4 bad line(s) left out of ")
        .map(|(_, tail)| tail)
        .unwrap_or_else(|| panic!("{report}"));
    let listed: Vec<&str> = tail.lines().skip(1).map(str::trim).collect();
    assert_eq!(listed.len(), 4, "{report}");
    assert!(
        listed[0].starts_with("line 2, field `roster.capacity`: expected a whole number"),
        "{report}"
    );
    assert!(
        listed[1].starts_with("line 3, field `company.employees`"),
        "{report}"
    );
    assert!(
        listed[2].starts_with("line 4, field `touch`: no lead `b` in this file"),
        "{report}"
    );
    assert!(listed[3].starts_with("line 6: not JSON"), "{report}");

    let output = simulate(&example("rules.toml"), &file.0, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2, field `roster.capacity`"));
}

/// Issue 24 (10): a lead still waiting at the end is "waiting in QUEUE", not "stranded".
#[test]
fn leads_waiting_at_the_end_are_reported_waiting_in_their_queue() {
    let file = TempFile::new(
        "waiting",
        &[
            r#"{"id": "late", "contact": {"email": "l@acme.de"}, "received_at": "2026-11-30T20:00:00+01:00"}"#,
        ],
    );
    let report = stdout(&simulate(&example("rules.toml"), &file.0, &[]));
    assert!(
        report.contains(
            "\n1 leads: 0 assigned, 0 unqualified, 1 waiting\n  waiting in emea-overflow: 1\n"
        ),
        "{report}"
    );
    assert!(!report.contains("stranded"), "{report}");
}
