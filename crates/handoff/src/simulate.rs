//! `handoff simulate --rules FILE --leads LEADS.jsonl [--at TIME] [--until TIME] [--timeline]`:
//! the lines of the file (leads, touches, roster edits) replayed in time order through the
//! same scoring and routing code the router runs, with in-memory state. The replay itself
//! is `handoff_domain::simulation`; this module reads the files and writes the report.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use handoff_domain::routing::RoutingExplanation;
use handoff_domain::simulation::timeline::{Event, LeadEnd, LeadHistory, TouchEffect};
use handoff_domain::simulation::{
    max_span, replay as replay_scenario, ReplayReport, Scenario, SimulatedOutcome,
    SimulationSummary, MAX_SPAN_DAYS,
};

/// What to simulate and how to report it.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    pub rules: &'a Path,
    pub leads: &'a Path,
    /// The time of lines without their own.
    pub at: DateTime<Utc>,
    /// Run the clock on after the last line until then.
    pub until: Option<DateTime<Utc>>,
    /// Report in time order instead of lead by lead.
    pub timeline: bool,
    /// Leave out bad lines and list them at the end, instead of stopping at the first.
    pub skip_bad_lines: bool,
}

/// The plain what-if: every lead of the file at `at` (unless lines say otherwise), lead by
/// lead. Returns the printed report and the summary.
pub fn run(
    rules: &Path,
    leads: &Path,
    at: DateTime<Utc>,
) -> anyhow::Result<(String, SimulationSummary)> {
    let (out, report) = replay(&Options {
        rules,
        leads,
        at,
        until: None,
        timeline: false,
        skip_bad_lines: false,
    })?;
    Ok((out, report.summary))
}

/// Replays the file and returns the printed report and the replay's outcome.
pub fn replay(options: &Options<'_>) -> anyhow::Result<(String, ReplayReport)> {
    let rules = handoff_config::load_rules(options.rules)?;
    let text = std::fs::read_to_string(options.leads)
        .with_context(|| format!("cannot read {}", options.leads.display()))?;
    let (scenario, bad_lines) = if options.skip_bad_lines {
        Scenario::parse_skipping_bad_lines(&text, options.at, &rules.routing)
    } else {
        let scenario = Scenario::parse(&text, options.at, &rules.routing)
            .with_context(|| format!("{} is not a simulation file", options.leads.display()))?;
        (scenario, Vec::new())
    };
    if let Some(until) = options.until {
        if until < scenario.last_time() {
            anyhow::bail!(
                "--until {} is before the last line of {} ({})",
                time(until),
                options.leads.display(),
                time(scenario.last_time())
            );
        }
        if until.signed_duration_since(scenario.first_time()) > max_span() {
            anyhow::bail!(
                "--until {} is more than {MAX_SPAN_DAYS} days after the first line of {} ({}): a replay covers at most that",
                time(until),
                options.leads.display(),
                time(scenario.first_time())
            );
        }
    }
    let report = replay_scenario(&rules.scoring, &rules.routing, &scenario, options.until);
    let mut out = String::new();
    if scenario.is_plain() && options.until.is_none() {
        let _ = writeln!(
            out,
            "rules version {} at {}",
            rules.version,
            options.at.to_rfc3339()
        );
    } else {
        let _ = writeln!(
            out,
            "rules version {}, from {} to {}",
            rules.version,
            time(report.started_at),
            time(report.ended_at)
        );
    }
    if options.timeline {
        write_timeline(&mut out, &report);
    } else {
        for lead in &report.leads {
            write_lead(&mut out, lead);
        }
    }
    write_summary(&mut out, &report.summary);
    if options.timeline || !scenario.is_plain() || options.until.is_some() {
        write_flow(&mut out, &report);
    }
    if !options.timeline && !scenario.is_plain() {
        let _ = writeln!(
            out,
            "\n(lines with times, touches or roster edits: --timeline shows what happened when)"
        );
    }
    if options.skip_bad_lines {
        let _ = writeln!(
            out,
            "\n{} bad line(s) left out of {}",
            bad_lines.len(),
            options.leads.display()
        );
        for bad in &bad_lines {
            let _ = writeln!(out, "  {bad}");
        }
    }
    Ok((out, report))
}

/// One lead's block: its decision on arrival with score and explanation, and where it
/// went later if it had to wait.
fn write_lead(out: &mut String, lead: &LeadHistory) {
    let decision = &lead.decision;
    let score = format!(
        "score {:>4} ({})",
        decision.score.points, decision.score.band
    );
    let _ = writeln!(
        out,
        "{:<10} {score}  -> {}",
        decision.lead_id,
        outcome(&decision.outcome)
    );
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
        write_explanation(out, explanation, true);
    }
    if let (Some(wait), Some(assignment)) = (&lead.wait, &lead.assignment) {
        let _ = writeln!(
            out,
            "           then {} / {} at {}, after {} in {}",
            assignment.team,
            assignment.rep,
            time(assignment.at),
            duration(wait.duration(assignment.at)),
            wait.queue
        );
    }
}

fn outcome(outcome: &SimulatedOutcome) -> String {
    match outcome {
        SimulatedOutcome::Unqualified => "nurture (below the MQL threshold)".to_owned(),
        SimulatedOutcome::Assigned { team, rep } => format!("{team} / {rep}"),
        SimulatedOutcome::Queued { queue, .. } => format!("QUEUED in {queue}"),
    }
}

fn write_explanation(out: &mut String, explanation: &RoutingExplanation, misses: bool) {
    if !explanation.rule.is_empty() {
        let _ = writeln!(
            out,
            "           rule {} ({}): {}",
            explanation.rule, explanation.strategy, explanation.reason
        );
    } else {
        let _ = writeln!(out, "           {}", explanation.reason);
    }
    if misses {
        for miss in &explanation.rules_not_matched {
            let _ = writeln!(
                out,
                "           not {}: {}",
                miss.rule, miss.failed_condition
            );
        }
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

/// Everything in time order: arrivals, touches, roster edits, leads leaving queues.
fn write_timeline(out: &mut String, report: &ReplayReport) {
    for entry in &report.log {
        let cause = entry
            .line
            .map_or_else(|| "clock".to_owned(), |line| format!("line {line}"));
        let head = format!("{}  {cause:<9}", time(entry.at));
        let lead = |index: usize| report.leads.get(index);
        match &entry.event {
            Event::Received { lead: index } => {
                let Some(lead) = lead(*index) else { continue };
                let decision = &lead.decision;
                let _ = writeln!(
                    out,
                    "{head} lead {}  score {} ({})  -> {}",
                    decision.lead_id,
                    decision.score.points,
                    decision.score.band,
                    outcome(&decision.outcome)
                );
                if let Some(explanation) = &decision.explanation {
                    write_explanation(out, explanation, false);
                }
            }
            Event::Dequeued { lead: index } => {
                let Some(lead) = lead(*index) else { continue };
                if let (Some(wait), Some(assignment)) = (&lead.wait, &lead.assignment) {
                    let _ = writeln!(
                        out,
                        "{head} lead {}  -> {} / {} after {} in {}",
                        lead.decision.lead_id,
                        assignment.team,
                        assignment.rep,
                        duration(wait.duration(assignment.at)),
                        wait.queue
                    );
                    write_explanation(out, &assignment.explanation, false);
                }
            }
            Event::Touched { lead: index, touch } => {
                let Some(lead) = lead(*index) else { continue };
                let effect = match &touch.effect {
                    TouchEffect::Freed(rep) => format!("first touch: off {rep}'s open leads"),
                    TouchEffect::AlreadyTouched => "already touched".to_owned(),
                    TouchEffect::NotAssigned => "no rep has it: nothing changes".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{head} touch {} {}: {effect}",
                    lead.decision.lead_id,
                    touch.outcome.as_str()
                );
            }
            Event::Roster(edit) => {
                let _ = writeln!(out, "{head} roster {}: {}", edit.rep, edit.describe());
            }
        }
    }
}

fn write_summary(out: &mut String, summary: &SimulationSummary) {
    let assigned: usize = summary.shares.iter().map(|s| s.assigned).sum();
    // Waiting, not stranded: each waits in a named queue, as the service keeps it.
    let waiting: usize = summary.waiting.values().sum();
    let _ = writeln!(
        out,
        "\n{} leads: {assigned} assigned, {} unqualified, {waiting} waiting",
        summary.leads, summary.unqualified
    );
    for (queue, count) in &summary.waiting {
        let _ = writeln!(out, "  waiting in {queue}: {count}");
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
            share.team.as_str(),
            share.rep.as_str(),
            share.assigned,
            share.actual * 100.0,
            share.target * 100.0,
            (share.actual - share.target) * 100.0
        );
    }
}

/// Per rep and per queue over time, and the leads still waiting at the end.
fn write_flow(out: &mut String, report: &ReplayReport) {
    let _ = writeln!(
        out,
        "\n{:<18} {:>8} {:>11} {:>9} {:>8}",
        "rep", "assigned", "open at end", "peak open", "capacity"
    );
    // Reps who got leads or whose roster changed: the others did not take part.
    let edited: std::collections::BTreeSet<&str> = report
        .log
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::Roster(edit) => Some(edit.rep.as_str()),
            _ => None,
        })
        .collect();
    for rep in report
        .reps
        .iter()
        .filter(|r| r.assigned > 0 || edited.contains(r.rep.as_str()))
    {
        let _ = writeln!(
            out,
            "{:<18} {:>8} {:>11} {:>9} {:>8}",
            rep.rep.as_str(),
            rep.assigned,
            rep.open_at_end,
            rep.peak_open,
            rep.capacity
        );
    }
    if !report.queues.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<24} {:>7} {:>9} {:>12} {:>14}",
            "queue", "entered", "max depth", "longest wait", "waiting at end"
        );
        for queue in &report.queues {
            let _ = writeln!(
                out,
                "{:<24} {:>7} {:>9} {:>12} {:>14}",
                queue.queue.as_str(),
                queue.entered,
                queue.max_depth,
                duration(queue.longest_wait),
                queue.waiting_at_end
            );
        }
    }
    let waiting: Vec<String> = report
        .leads
        .iter()
        .filter_map(|lead| match (lead.end(), &lead.wait) {
            (LeadEnd::Waiting(queue), Some(wait)) => Some(format!(
                "{} in {queue} for {}",
                lead.decision.lead_id,
                duration(wait.duration(report.ended_at))
            )),
            _ => None,
        })
        .collect();
    if !waiting.is_empty() {
        let _ = writeln!(
            out,
            "\nstill waiting at {}: {}",
            time(report.ended_at),
            waiting.join(", ")
        );
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `45s`, `12m 05s`, `3h 02m`, `2d 4h 05m`.
fn duration(d: TimeDelta) -> String {
    let total = d.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total % 86_400 / 3_600,
        total % 3_600 / 60,
        total % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds:02}s"),
        (0, _, _) => format!("{hours}h {minutes:02}m"),
        _ => format!("{days}d {hours}h {minutes:02}m"),
    }
}
