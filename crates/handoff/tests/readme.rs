//! The README's promises, held to the binary: the commands it shows that run offline run as
//! shown, every `HANDOFF_*` variable it (or a deploy file) names is one the binary accepts,
//! and the defaults of its configuration tables are the code's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The binary, run from the repository root (where the README's relative paths start),
/// without the caller's `HANDOFF_*` variables.
fn handoff(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    for (name, _) in std::env::vars() {
        if name.starts_with("HANDOFF_") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(root())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The `handoff …` command lines of the README's `sh` blocks, continuation lines joined,
/// comments dropped.
fn commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sh = trimmed == "```sh";
            pending.clear();
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = trimmed.split(" #").next().unwrap_or_default().trim();
        if pending.is_empty() && !code.starts_with("handoff ") {
            continue;
        }
        match code.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(code);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    out
}

/// Commands in inline code (`` `handoff keys new --name …` ``) that are written out in
/// full: with options, and no placeholders (FILE, `…`, `<…>`, `[…]`).
fn inline_commands(readme: &str) -> Vec<String> {
    // Prose only: the fenced blocks are `commands`'.
    let mut in_block = false;
    let prose: String = readme
        .lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                return false;
            }
            !in_block
        })
        .collect::<Vec<_>>()
        .join("\n");
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("handoff ") && span.contains(" --"))
        .filter(|span| {
            !span.contains(['…', '<', '[', '$'])
                && !span
                    .split_whitespace()
                    .any(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_uppercase()))
        })
        .map(str::to_owned)
        .collect()
}

/// Commands that need nothing but files: the ones this test can run.
const OFFLINE: &[&str] = &[
    "handoff rules check",
    "handoff simulate",
    "handoff keys new",
    "handoff config check",
];

#[test]
fn the_readme_commands_that_run_offline_work_as_shown() {
    let readme = readme();
    let mut commands = commands(&readme);
    commands.extend(inline_commands(&readme));
    let runnable: Vec<&String> = commands
        .iter()
        .filter(|c| OFFLINE.iter().any(|prefix| c.starts_with(prefix)))
        .collect();
    assert!(runnable.len() >= 6, "too few commands found: {commands:#?}");
    assert!(
        runnable
            .iter()
            .any(|c| c.starts_with("handoff config check")),
        "{runnable:#?}"
    );
    for command in runnable {
        assert!(
            !command.contains('$'),
            "`{command}` uses a shell variable: show it runnable"
        );
        let args: Vec<String> = command
            .split_whitespace()
            .skip(1)
            .map(|arg| arg.trim_matches('\'').to_owned())
            .collect();
        let output = handoff(&args, &[]);
        assert!(
            output.status.success(),
            "`{command}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `HANDOFF_*` names in the README, whole (not a pattern such as `HANDOFF_<SECTION>_…`).
fn variables(readme: &str) -> Vec<String> {
    let mut vars: Vec<String> = Vec::new();
    let bytes = readme.as_bytes();
    let mut i = 0;
    while let Some(at) = readme[i..].find("HANDOFF_") {
        let start = i + at;
        let mut end = start + "HANDOFF_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_uppercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &readme[start..end];
        let pattern = end < bytes.len() && bytes[end] == b'<';
        if !pattern && !name.ends_with('_') && !vars.iter().any(|v| v == name) {
            vars.push(name.to_owned());
        }
        i = end;
    }
    vars
}

#[test]
fn every_variable_the_readme_names_is_accepted() {
    let vars = variables(&readme());
    assert!(
        vars.iter()
            .any(|v| v == "HANDOFF_KAFKA_CLIENT_SASL_PASSWORD_FILE"),
        "{vars:?}"
    );
    assert_accepted(vars);
}

#[test]
fn every_variable_the_deploy_files_set_is_accepted() {
    let mut files = vec![
        root().join("Dockerfile"),
        root().join("deploy/compose/compose.yaml"),
    ];
    for dir in [
        "deploy/k8s/base",
        "deploy/k8s/overlays/dev",
        "deploy/k8s/overlays/prod",
    ] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    let mut vars = Vec::new();
    for file in files {
        for var in variables(&std::fs::read_to_string(&file).unwrap()) {
            // The image tag compose substitutes itself; never in a container's environment.
            if var != "HANDOFF_IMAGE" && !vars.contains(&var) {
                vars.push(var);
            }
        }
    }
    assert!(vars.iter().any(|v| v == "HANDOFF_SECRETS_DIR"), "{vars:?}");
    assert_accepted(vars);
}

/// Runs `config check` on the sample configuration with each variable set.
fn assert_accepted(vars: Vec<String>) {
    let config = root().join("deploy/config/handoff.toml");
    let args: Vec<String> = vec![
        "config".into(),
        "check".into(),
        "--config".into(),
        config.to_str().unwrap().into(),
    ];
    for var in vars {
        // The README's example of the error.
        if readme().contains(&format!("{var}: not a configuration key")) {
            continue;
        }
        // A value of the wrong type is a different error: only an unknown name is looked for.
        let output = handoff(&args, &[(var.as_str(), "x")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("not a configuration key") && !stderr.contains("is a table"),
            "{var} is named, but the binary refuses it: {stderr}"
        );
    }
}

/// The rows of the README's tables whose second column is "default": (key, default) pairs
/// with the key as a full path. A cell `a.b` / `c` names `a.b` and `a.c`; a header
/// "key (`[x.y]`)" puts its keys under `x.y`.
fn documented_defaults(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut prefix: Option<String> = None;
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            prefix = None;
            continue;
        }
        let (key_cell, default_cell) = (cells[1], cells[2]);
        if default_cell == "default" {
            prefix = Some(
                key_cell
                    .split("`[")
                    .nth(1)
                    .and_then(|rest| rest.split("]`").next())
                    .unwrap_or_default()
                    .to_owned(),
            );
            continue;
        }
        let Some(prefix) = &prefix else { continue };
        let keys: Vec<String> = key_cell
            .split(" / ")
            .map(|k| k.trim().trim_matches('`').to_owned())
            .collect();
        let Some(first) = keys.first() else { continue };
        if first.contains(' ') || first.contains('*') || first.starts_with("---") {
            continue;
        }
        let section = |key: &str| -> String {
            if !prefix.is_empty() {
                format!("{prefix}.{key}")
            } else if key.contains('.') || !first.contains('.') {
                key.to_owned()
            } else {
                let (section, _) = first.rsplit_once('.').unwrap_or_default();
                format!("{section}.{key}")
            }
        };
        let defaults: Vec<&str> = default_cell.split(" / ").map(str::trim).collect();
        if defaults.len() == keys.len() {
            out.extend(
                keys.iter()
                    .zip(&defaults)
                    .map(|(k, d)| (section(k), (*d).to_owned())),
            );
        } else if defaults.len() == 1 {
            out.extend(keys.iter().map(|k| (section(k), defaults[0].to_owned())));
        }
    }
    out
}

/// A documented default as TOML, or `None` for prose ("none", "see …", "—").
fn as_value(default: &str) -> Option<toml::Value> {
    let quoted = default.len() > 1 && default.starts_with('`') && default.ends_with('`');
    let inner = default.trim_matches('`');
    if inner.contains('<')
        || (!quoted && (default.contains(' ') || default == "—" || default == "none"))
    {
        return None;
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {inner}"))
        .ok()
        .and_then(|t| t.get("v").cloned());
    Some(parsed.unwrap_or_else(|| toml::Value::String(inner.to_owned())))
}

fn at(table: &toml::Table, path: &str) -> Option<toml::Value> {
    let (first, rest) = path.split_once('.').unwrap_or((path, ""));
    let value = table.get(first)?;
    match (rest.is_empty(), value) {
        (true, _) => Some(value.clone()),
        (false, toml::Value::Table(inner)) => at(inner, rest),
        _ => None,
    }
}

#[test]
fn the_documented_defaults_are_the_code_s() {
    let dir = std::env::temp_dir().join(format!("handoff-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("minimal.toml");
    std::fs::write(
        &config,
        format!(
            "rules_file = {:?}\n[kafka]\nbootstrap_servers = \"b:9092\"\n[redis]\nurl = \"redis://r:6379\"\n",
            root().join("deploy/config/rules.toml").display().to_string()
        ),
    )
    .unwrap();
    let output = handoff(
        &[
            "config".into(),
            "check".into(),
            "--config".into(),
            config.to_str().unwrap().into(),
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let effective: toml::Table = toml::from_str(&String::from_utf8_lossy(&output.stdout)).unwrap();
    let mut compared = Vec::new();
    let mut wrong = Vec::new();
    for (key, default) in documented_defaults(&readme()) {
        let Some(documented) = as_value(&default) else {
            continue;
        };
        let Some(actual) = at(&effective, &key) else {
            wrong.push(format!(
                "{key}: documented, but not a key of the configuration"
            ));
            continue;
        };
        if actual != documented {
            wrong.push(format!("{key}: README {default}, code {actual}"));
        }
        compared.push(key);
    }
    assert!(
        wrong.is_empty(),
        "README defaults that are wrong: {wrong:#?}"
    );
    assert!(
        compared.iter().any(|k| k == "router.max_in_flight"),
        "{compared:?}"
    );
    assert!(
        compared.len() >= 50,
        "only {} compared: {compared:?}",
        compared.len()
    );
    std::fs::remove_dir_all(dir).ok();
}
