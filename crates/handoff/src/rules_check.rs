use std::path::PathBuf;

use anyhow::Context;

/// `handoff rules check FILES`: loads each rules file with the same code the router uses,
/// then prints what loads but is almost surely a mistake (warnings: they do not fail it).
pub fn run(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        match handoff_config::load_rules(file) {
            Ok(rules) => {
                let teams: Vec<&str> = rules.routing.team_ids().collect();
                let reps = rules.routing.rep_ids().count();
                println!(
                    "{}: ok (version {}): {} teams ({}), {} reps, {} routing rules",
                    file.display(),
                    rules.version,
                    teams.len(),
                    teams.join(", "),
                    reps,
                    rules.routing.rule_names().count()
                );
                let targets = &rules.agreement.targets;
                if !targets.is_empty() {
                    let mut commitments: Vec<&str> =
                        targets.iter().map(|t| t.commitment.as_str()).collect();
                    commitments.dedup();
                    println!(
                        "{}: agreement: {} targets ({})",
                        file.display(),
                        targets.len(),
                        commitments.join(", ")
                    );
                }
                // Allowed, so the services load the file; almost surely not what was meant.
                for warning in rules.routing.warnings() {
                    println!("{}: warning: routing.{warning}", file.display());
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        return Err(anyhow::anyhow!("{failed} rules file(s) invalid"))
            .context("rules check failed");
    }
    Ok(())
}
