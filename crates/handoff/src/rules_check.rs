use std::path::PathBuf;

use anyhow::Context;

/// `handoff rules check FILES`: loads each rules file with the same code the router uses.
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
