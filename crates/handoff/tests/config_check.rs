//! `handoff config check` as an operator runs it: the real binary, a configuration file in
//! a temporary folder, overrides and secret files from the environment.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A folder of its own per test.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "handoff-config-check-{name}-{}",
        std::process::id()
    ));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration file using the sample rules.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("handoff.toml");
    let rules = repo("deploy/config/rules.toml");
    std::fs::write(
        &path,
        format!(
            "rules_file = {:?}\n[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n{extra}",
            rules.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// The binary with no `HANDOFF_*` variable of the caller's environment, plus `env`.
fn handoff(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handoff"));
    for (name, _) in std::env::vars() {
        if name.starts_with("HANDOFF_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The value at a dotted path of a printed configuration.
fn at(table: &toml::Table, path: &str) -> Option<toml::Value> {
    let (first, rest) = path.split_once('.').unwrap_or((path, ""));
    let value = table.get(first)?;
    match (rest.is_empty(), value) {
        (true, _) => Some(value.clone()),
        (false, toml::Value::Table(inner)) => at(inner, rest),
        _ => None,
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const SIGNING: &str = "signing-secret-0123456789abcdef0123456789";

#[test]
fn a_good_configuration_prints_its_effective_settings_with_secrets_redacted() {
    let dir = folder("good");
    let password_file = dir.join("kafka-password");
    std::fs::write(&password_file, "kafka-secret-pw\n").unwrap();
    let config = config(
        &dir,
        "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n",
    );
    let output = handoff(
        &[
            "config",
            "check",
            "--config",
            config.to_str().unwrap(),
            "--service",
            "all",
        ],
        &[
            ("HANDOFF_NOTIFIER_SIGNING_SECRET", SIGNING),
            (
                "HANDOFF_KAFKA_CLIENT_SASL_PASSWORD_FILE",
                password_file.to_str().unwrap(),
            ),
            ("HANDOFF_REDIS_URL", "redis://:redis-secret-pw@cache:6379/0"),
            ("HANDOFF_SLA_ESCALATION_MAX_ATTEMPTS", "4"),
            ("HANDOFF_FUNNEL_TOP_N", "7"),
        ],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    for secret in ["kafka-secret-pw", "redis-secret-pw", SIGNING] {
        assert!(!stdout.contains(secret), "{secret} printed:\n{stdout}");
        assert!(!stderr.contains(secret), "{secret} printed:\n{stderr}");
    }
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(
        at(&printed, "sla.escalation.max_attempts"),
        Some(toml::Value::Integer(4))
    );
    assert_eq!(at(&printed, "funnel.top_n"), Some(toml::Value::Integer(7)));
    assert_eq!(
        printed["kafka"]["client"]["sasl.password"].as_str(),
        Some("[redacted]")
    );
    assert_eq!(
        printed["notifier"]["signing_secret"].as_str(),
        Some("[redacted]")
    );
    assert_eq!(
        printed["redis"]["url"].as_str(),
        Some("redis://:***@cache:6379/0")
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_nested_key_fails_naming_it() {
    let dir = folder("bad-key");
    let config = config(&dir, "[sla.escalation]\nmax_attempt = 3\n");
    let output = handoff(
        &["config", "check", "--config", config.to_str().unwrap()],
        &[],
    );
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("handoff.toml"), "{stderr}");
    assert!(stderr.contains("max_attempt"), "{stderr}");
    assert!(stderr.contains("max_attempts"), "{stderr}");

    let config = self::config(&dir, "");
    let output = handoff(
        &["config", "check", "--config", config.to_str().unwrap()],
        &[("HANDOFF_SLA_ESCALATION_MAX_ATEMPTS", "3")],
    );
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("HANDOFF_SLA_ESCALATION_MAX_ATEMPTS")
            && stderr.contains("HANDOFF_SLA_ESCALATION_MAX_ATTEMPTS (sla.escalation.max_attempts)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_service_check_fails_without_the_secret_that_service_needs() {
    let dir = folder("service");
    let config = config(&dir, "");
    let path = config.to_str().unwrap();
    let plain = handoff(&["config", "check", "--config", path], &[]);
    assert!(plain.status.success(), "{}", text(&plain).1);
    let notifier = handoff(
        &["config", "check", "--config", path, "--service", "notifier"],
        &[],
    );
    assert!(!notifier.status.success());
    assert!(
        text(&notifier)
            .1
            .contains("HANDOFF_NOTIFIER_SIGNING_SECRET"),
        "{}",
        text(&notifier).1
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_missing_secret_file_fails_naming_the_variable_and_the_file() {
    let dir = folder("missing");
    let config = config(&dir, "");
    let output = handoff(
        &["config", "check", "--config", config.to_str().unwrap()],
        &[("HANDOFF_REDIS_URL_FILE", "/nonexistent/redis-url")],
    );
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("HANDOFF_REDIS_URL_FILE") && stderr.contains("/nonexistent/redis-url"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn commands_that_read_no_configuration_refuse_an_explicit_one() {
    let rules = repo("deploy/config/rules.toml");
    let rules = rules.to_str().unwrap();
    for args in [
        vec!["rules", "check", "--config", "x.toml", rules],
        vec!["--config", "x.toml", "rules", "check", rules],
        vec![
            "-c",
            "x.toml",
            "keys",
            "new",
            "--name",
            "n",
            "--scope",
            "leads:read",
        ],
        vec![
            "simulate", "--config", "x.toml", "--rules", rules, "--leads", "x.jsonl",
        ],
    ] {
        let output = handoff(&args, &[]);
        let (_, stderr) = text(&output);
        assert!(!output.status.success(), "{args:?} accepted --config");
        assert!(
            stderr.contains("reads no configuration file"),
            "{args:?}: {stderr}"
        );
    }
    // HANDOFF_CONFIG (set for every command in the image and in Kubernetes) is no refusal.
    let output = handoff(
        &["rules", "check", rules],
        &[("HANDOFF_CONFIG", "/etc/handoff/handoff.toml")],
    );
    assert!(output.status.success(), "{}", text(&output).1);
}

/// An operator tool that cannot reach Redis says where it tried, without the password
/// the URL carries (error output ends up in CI logs and tickets).
#[test]
fn a_state_command_that_cannot_reach_redis_never_prints_its_password() {
    let dir = folder("redis-password");
    let path = config(&dir, "");
    // Nothing listens on port 1.
    let output = handoff(
        &["state", "reconcile", "--config", path.to_str().unwrap()],
        &[("HANDOFF_REDIS_URL", "redis://:hunter2-secret@127.0.0.1:1")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot reach Redis at"), "{stderr}");
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}
