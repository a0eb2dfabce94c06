//! `handoff simulate --rules FILE --leads LEADS.jsonl [--at TIME]`: every lead of the file
//! through the same scoring and routing code the router runs, with in-memory state.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};

use handoff_domain::simulation::{SimulatedOutcome, Simulation, SimulationSummary};
use handoff_domain::submission::LeadSubmission;

/// Runs the simulation and returns the printed report and the summary.
pub fn run(
    rules: &Path,
    leads: &Path,
    at: DateTime<Utc>,
) -> anyhow::Result<(String, SimulationSummary)> {
    let rules = handoff_config::load_rules(rules)?;
    let text = std::fs::read_to_string(leads)
        .with_context(|| format!("cannot read {}", leads.display()))?;
    let mut simulation = Simulation::new(&rules.scoring, &rules.routing);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rules version {} at {}",
        rules.version,
        at.to_rfc3339()
    );
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let place = || format!("{}:{}", leads.display(), number + 1);
        let submission: LeadSubmission =
            serde_json::from_str(line).with_context(|| format!("{}: not a lead", place()))?;
        let mut lead = submission
            .into_lead(at)
            .map_err(|e| anyhow::anyhow!("{}: {e}", place()))?;
        if lead.id.as_str().len() == 36 {
            // Generated ids are noise in a report; number the leads instead.
            lead.id = format!("line-{}", number + 1).into();
        }
        let decision = simulation.route(&lead, at);
        let score = format!(
            "score {:>4} ({})",
            decision.score.points, decision.score.band
        );
        let _ = match &decision.outcome {
            SimulatedOutcome::Unqualified => writeln!(
                out,
                "{:<10} {score}  -> nurture (below the MQL threshold)",
                decision.lead_id
            ),
            SimulatedOutcome::Assigned { team, rep } => {
                writeln!(out, "{:<10} {score}  -> {team} / {rep}", decision.lead_id)
            }
            SimulatedOutcome::Queued { queue, .. } => writeln!(
                out,
                "{:<10} {score}  -> QUEUED in {queue}",
                decision.lead_id
            ),
        };
        let contributions: Vec<String> = decision
            .score
            .contributions
            .iter()
            .map(|c| format!("{} {:+}", c.rule, c.points))
            .collect();
        if !contributions.is_empty() {
            let _ = writeln!(out, "           score: {}", contributions.join(", "));
        }
        if let Some(explanation) = &decision.explanation {
            if !explanation.rule.is_empty() {
                let _ = writeln!(
                    out,
                    "           rule {} ({}): {}",
                    explanation.rule, explanation.strategy, explanation.reason
                );
            } else {
                let _ = writeln!(out, "           {}", explanation.reason);
            }
            for miss in &explanation.rules_not_matched {
                let _ = writeln!(
                    out,
                    "           not {}: {}",
                    miss.rule, miss.failed_condition
                );
            }
            if !explanation.skipped.is_empty() {
                let skipped: Vec<String> = explanation
                    .skipped
                    .iter()
                    .map(|s| format!("{} ({})", s.rep_id, s.reason))
                    .collect();
                let _ = writeln!(out, "           skipped: {}", skipped.join(", "));
            }
        }
    }
    let summary = simulation.summary();
    let assigned: usize = summary.shares.iter().map(|s| s.assigned).sum();
    let stranded: usize = summary.stranded.values().sum();
    let _ = writeln!(
        out,
        "\n{} leads: {assigned} assigned, {} unqualified, {stranded} stranded",
        summary.leads, summary.unqualified
    );
    for (queue, count) in &summary.stranded {
        let _ = writeln!(out, "  queued in {queue}: {count}");
    }
    let _ = writeln!(
        out,
        "\n{:<18} {:<10} {:>8} {:>8} {:>8} {:>8}",
        "team", "rep", "assigned", "share", "target", "off by"
    );
    for share in &summary.shares {
        let _ = writeln!(
            out,
            "{:<18} {:<10} {:>8} {:>7.1}% {:>7.1}% {:>+7.1}",
            share.team,
            share.rep,
            share.assigned,
            share.actual * 100.0,
            share.target * 100.0,
            (share.actual - share.target) * 100.0
        );
    }
    Ok((out, summary))
}
