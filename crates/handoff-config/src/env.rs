//! Overrides from the environment and secrets from files, applied to the parsed file before
//! it is checked, so they get the same validation and messages as the file.
//!
//! The naming rule (README.md, "Configuration"): a key's variable is `HANDOFF_` followed by
//! its path with `_` between the parts, in capitals: `kafka.bootstrap_servers` is
//! `HANDOFF_KAFKA_BOOTSTRAP_SERVERS`, `sla.escalation.max_attempts` is
//! `HANDOFF_SLA_ESCALATION_MAX_ATTEMPTS`, `rules_file` is `HANDOFF_RULES_FILE`. A name is
//! read against the settings' own shape (crate::schema): part by part, the longest key
//! name that matches wins. In a table of free keys (`[kafka.client]`) the rest of the name
//! is the key with `.` for `_` (`HANDOFF_KAFKA_CLIENT_SASL_PASSWORD` is
//! `kafka.client."sasl.password"`), unless the file already has a key written that way.
//!
//! Secrets from files: `<VARIABLE>_FILE=/path` sets the key to the file's content, and
//! every file in the folder `HANDOFF_SECRETS_DIR` names is a variable with its content (its
//! name is the variable's, or the key path: `kafka.client.sasl.password`); in the
//! configuration file, `<key>_file = "/path"` in place of `<key>`. A trailing newline is
//! dropped. An unknown `HANDOFF_*` variable is an error naming the nearest keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::schema::{self, Kind, Shape};
use crate::ConfigError;

const PREFIX: &str = "HANDOFF_";
const FILE_SUFFIX: &str = "_FILE";
/// The folder of secret files (one file per key).
pub const SECRETS_DIR_VAR: &str = "HANDOFF_SECRETS_DIR";

/// `HANDOFF_*` variables that are not configuration keys: read by the binary itself
/// (`HANDOFF_CONFIG`, the file's path), by this module (the secrets folder), or by the test
/// suite (`HANDOFF_TEST_*`). Webhook intake secrets are named `HANDOFF_INTAKE_SECRET_*` by
/// convention and one Kubernetes Secret holds them all, so an instance may see secrets of
/// sources it does not configure. Variables the file names (`actions.secret_env`,
/// `ingest.webhooks[].secret_env`) are accepted too.
const NOT_KEYS: &[&str] = &["HANDOFF_CONFIG", SECRETS_DIR_VAR];
const NOT_KEY_PREFIXES: &[&str] = &["HANDOFF_TEST_", "HANDOFF_INTAKE_SECRET_"];

/// Where an override came from, for messages (never its value).
#[derive(Debug, Clone)]
struct Origin {
    /// The variable (`HANDOFF_X`, `HANDOFF_X_FILE`) or the secrets folder's file.
    name: String,
    /// A key set from a file: the file (for a read error).
    file: Option<PathBuf>,
}

/// Applies the overrides in `vars` (and the secret files they point to) to `table`; returns
/// the names of the variables and files applied. `config_dir` is where relative `*_file`
/// paths in the file start.
pub(crate) fn apply_overrides(
    table: &mut toml::Table,
    vars: &[(String, String)],
    config_dir: &Path,
) -> Result<Vec<String>, ConfigError> {
    let shape = schema::settings();
    file_keys(table, shape, config_dir, "")?;

    let mut overrides: BTreeMap<Vec<String>, (Origin, String, Kind)> = BTreeMap::new();
    let mut unknown = Vec::new();
    let mut insert = |path: Vec<String>, origin: Origin, value: String, kind: Kind| {
        if let Some((first, _, _)) = overrides.get(&path) {
            return Err(ConfigError::Env {
                var: origin.name.clone(),
                message: format!(
                    "{} is set by {} too; set it once",
                    path.join("."),
                    first.name
                ),
            });
        }
        overrides.insert(path, (origin, value, kind));
        Ok(())
    };

    for (var, value) in vars {
        if !var.starts_with(PREFIX) || is_not_a_key(var) {
            continue;
        }
        match name_to_key(shape, table, var) {
            Ok((path, kind)) => insert(
                path,
                Origin {
                    name: var.clone(),
                    file: None,
                },
                value.clone(),
                kind,
            )?,
            Err(Unresolved::FileOf(path, kind)) => {
                let file = PathBuf::from(value.trim());
                let content = read_secret_file(var, &file)?;
                insert(
                    path,
                    Origin {
                        name: var.clone(),
                        file: Some(file),
                    },
                    content,
                    kind,
                )?;
            }
            Err(Unresolved::Table(path)) => {
                return Err(ConfigError::Env {
                    var: var.clone(),
                    message: format!("{} is a table; set its keys ({var}_<KEY>)", path.join(".")),
                })
            }
            Err(Unresolved::Unknown) => unknown.push(var.clone()),
        }
    }

    if let Some((_, dir)) = vars.iter().find(|(var, _)| var == SECRETS_DIR_VAR) {
        for (file, var) in secret_files(Path::new(dir.trim()))? {
            let origin = Origin {
                name: format!("{SECRETS_DIR_VAR} file {}", file.display()),
                file: Some(file.clone()),
            };
            match name_to_key(shape, table, &var) {
                Ok((path, kind)) => {
                    let content = read_secret_file(&origin.name, &file)?;
                    insert(path, origin, content, kind)?;
                }
                Err(_) => {
                    return Err(ConfigError::Env {
                        var: origin.name,
                        message: format!(
                            "the file name (read as {var}) is not a configuration key{}",
                            suggestions(shape, &var)
                        ),
                    })
                }
            }
        }
    }

    let mut applied = Vec::new();
    for (path, (origin, value, kind)) in overrides {
        let typed = typed_value(&kind, &value).map_err(|message| ConfigError::Env {
            var: origin.name.clone(),
            message: format!("{}: {message}", path.join(".")),
        })?;
        set(table, &path, typed).map_err(|message| ConfigError::Env {
            var: origin.name.clone(),
            message,
        })?;
        applied.push(match origin.file {
            Some(file) if !origin.name.contains(SECRETS_DIR_VAR) => {
                format!("{} ({})", origin.name, file.display())
            }
            _ => origin.name,
        });
    }

    // Variables the file names for its secrets are read later, by the keys that name them.
    let named = named_variables(table);
    if let Some(var) = unknown.iter().find(|var| !named.contains(var)) {
        return Err(ConfigError::Env {
            var: var.clone(),
            message: format!(
                "not a configuration key (the rule: README.md, \"Configuration reference\"){}",
                suggestions(shape, var)
            ),
        });
    }
    Ok(applied)
}

fn is_not_a_key(var: &str) -> bool {
    NOT_KEYS.contains(&var) || NOT_KEY_PREFIXES.iter().any(|p| var.starts_with(p))
}

/// Why a name is not a key.
#[derive(Debug, PartialEq)]
enum Unresolved {
    /// `<VARIABLE>_FILE`: the key, to be read from the file the value names.
    FileOf(Vec<String>, Kind),
    /// The name stops at a table.
    Table(Vec<String>),
    Unknown,
}

/// The key a variable sets, with what it holds.
fn name_to_key(
    shape: &Shape,
    table: &toml::Table,
    var: &str,
) -> Result<(Vec<String>, Kind), Unresolved> {
    let words = words_of(var);
    let direct = resolve(shape, table, &words);
    match direct {
        // A declared key wins over `_FILE` (`rules_file`); in a table of free keys any name
        // is a key, so there `_FILE` means a file.
        Some(Resolution::Key(path, kind, Declared::Yes)) => return Ok((path, kind)),
        Some(Resolution::Table(path)) => return Err(Unresolved::Table(path)),
        _ => {}
    }
    if let Some(base) = var.strip_suffix(FILE_SUFFIX) {
        if let Some(Resolution::Key(path, kind, _)) = resolve(shape, table, &words_of(base)) {
            return Err(Unresolved::FileOf(path, kind));
        }
    }
    match direct {
        Some(Resolution::Key(path, kind, _)) => Ok((path, kind)),
        _ => Err(Unresolved::Unknown),
    }
}

fn words_of(var: &str) -> Vec<String> {
    var.strip_prefix(PREFIX)
        .unwrap_or(var)
        .to_ascii_lowercase()
        .split('_')
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Declared {
    /// A field of a settings struct.
    Yes,
    /// A key of a table of free keys.
    No,
}

#[derive(Debug)]
enum Resolution {
    Key(Vec<String>, Kind, Declared),
    Table(Vec<String>),
}

/// Matches `words` against the keys under `shape`: the longest key name first, so the
/// result does not depend on the order of the fields. `table` is the file at this level,
/// for free keys it already spells.
fn resolve(shape: &Shape, table: &toml::Table, words: &[String]) -> Option<Resolution> {
    let Shape::Table(fields) = shape else {
        return None;
    };
    let mut fields: Vec<&(&str, Shape)> = fields.iter().collect();
    fields.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, field) in fields {
        let n = name.split('_').count();
        if words.len() < n || words[..n].join("_") != *name {
            continue;
        }
        let rest = &words[n..];
        let child = table.get(*name).and_then(toml::Value::as_table);
        let empty = toml::Table::new();
        let child = child.unwrap_or(&empty);
        let found = match field {
            Shape::Value(kind) if rest.is_empty() => {
                Some(Resolution::Key(Vec::new(), kind.clone(), Declared::Yes))
            }
            Shape::Value(_) => None,
            Shape::Table(_) if rest.is_empty() => Some(Resolution::Table(Vec::new())),
            Shape::Table(_) => resolve(field, child, rest),
            Shape::Map if rest.is_empty() => Some(Resolution::Table(Vec::new())),
            Shape::Map => {
                let wanted = rest.join("_");
                // A key the file already has, however it is written; else `.` for `_`.
                let key = child
                    .keys()
                    .find(|key| key.to_ascii_lowercase().replace(['.', '-'], "_") == wanted)
                    .cloned()
                    .unwrap_or_else(|| rest.join("."));
                Some(Resolution::Key(vec![key], Kind::Text, Declared::No))
            }
        };
        match found {
            Some(Resolution::Key(mut path, kind, declared)) => {
                path.insert(0, (*name).to_owned());
                return Some(Resolution::Key(path, kind, declared));
            }
            Some(Resolution::Table(mut path)) => {
                path.insert(0, (*name).to_owned());
                return Some(Resolution::Table(path));
            }
            None => {}
        }
    }
    None
}

/// A secret file's content without its trailing newline (what `echo` and most editors
/// add). `name` is the variable or file the error names; the content is never shown.
fn read_secret_file(name: &str, file: &Path) -> Result<String, ConfigError> {
    let content = std::fs::read_to_string(file).map_err(|e| ConfigError::Env {
        var: name.to_owned(),
        message: format!("cannot read {}: {e}", file.display()),
    })?;
    Ok(content.trim_end_matches(['\n', '\r']).to_owned())
}

/// The files of the secrets folder, each with the variable its name stands for. Names
/// starting with `.` are skipped: Kubernetes keeps its own `..data` links there.
fn secret_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, ConfigError> {
    let error = |e: std::io::Error| ConfigError::Env {
        var: SECRETS_DIR_VAR.to_owned(),
        message: format!("cannot read the folder {}: {e}", dir.display()),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(error)? {
        let path = entry.map_err(error)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Follows links, as Kubernetes' secret files are links.
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let var = name.to_ascii_uppercase().replace(['.', '-'], "_");
        let var = if var.starts_with(PREFIX) {
            var
        } else {
            format!("{PREFIX}{var}")
        };
        files.push((path, var));
    }
    files.sort();
    Ok(files)
}

/// `<key>_file = "/path"` in the file: the key, read from that file.
fn file_keys(
    table: &mut toml::Table,
    shape: &Shape,
    config_dir: &Path,
    at: &str,
) -> Result<(), ConfigError> {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let here = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        let declared = shape.field(&key);
        match (shape, declared) {
            (_, Some(child @ Shape::Table(_))) => {
                if let Some(toml::Value::Table(inner)) = table.get_mut(&key) {
                    file_keys(inner, child, config_dir, &here)?;
                }
                continue;
            }
            (_, Some(Shape::Map)) => {
                if let Some(toml::Value::Table(inner)) = table.get_mut(&key) {
                    file_keys(inner, &Shape::Map, config_dir, &here)?;
                }
                continue;
            }
            (_, Some(Shape::Value(_))) => continue,
            _ => {}
        }
        let Some(base) = key.strip_suffix("_file") else {
            continue;
        };
        let takes_it = match shape {
            Shape::Table(_) => matches!(shape.field(base), Some(Shape::Value(_))),
            Shape::Map => true,
            Shape::Value(_) => false,
        };
        if !takes_it {
            continue;
        }
        let name = format!("{here} in the configuration file");
        let Some(toml::Value::String(file)) = table.get(&key) else {
            return Err(ConfigError::Env {
                var: name,
                message: "must be a file path (a string)".to_owned(),
            });
        };
        if table.contains_key(base) {
            return Err(ConfigError::Env {
                var: name,
                message: format!("{base} is set too; set one of them"),
            });
        }
        let file = config_dir.join(file);
        let content = read_secret_file(&name, &file)?;
        table.remove(&key);
        table.insert(base.to_owned(), toml::Value::String(content));
    }
    Ok(())
}

/// The variables the file names for secrets it reads itself.
fn named_variables(table: &toml::Table) -> Vec<String> {
    let mut named = Vec::new();
    let actions = table
        .get("actions")
        .and_then(|a| a.get("secret_env"))
        .and_then(toml::Value::as_str);
    // The default of `actions.secret_env` (settings.rs).
    named.push(actions.unwrap_or("HANDOFF_ACTION_LINK_SECRET").to_owned());
    if let Some(hooks) = table
        .get("ingest")
        .and_then(|i| i.get("webhooks"))
        .and_then(toml::Value::as_array)
    {
        named.extend(
            hooks
                .iter()
                .filter_map(|h| h.get("secret_env").and_then(toml::Value::as_str))
                .map(str::to_owned),
        );
    }
    named
}

/// Writes `value` at `path`, making the tables on the way.
fn set(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut here = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = here
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{}` in the file is not a table", path[..=i].join(".")))?;
    }
    here.insert(last.clone(), value);
    Ok(())
}

/// The text of a variable as the key's type. `Err` says what the key takes (not the value:
/// it may be a secret in the wrong variable).
fn typed_value(kind: &Kind, raw: &str) -> Result<toml::Value, String> {
    Ok(match kind {
        Kind::Text | Kind::Secret | Kind::Any => toml::Value::String(raw.to_owned()),
        Kind::Integer => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| "takes a whole number".to_owned())?,
        ),
        Kind::Float => toml::Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| "takes a number".to_owned())?,
        ),
        Kind::Bool => toml::Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| "takes true or false".to_owned())?,
        ),
        Kind::List(element) => {
            let raw = raw.trim();
            if raw.starts_with('[') {
                // A TOML array, for lists of tables or strings with commas.
                let parsed: toml::Table = toml::from_str(&format!("v = {raw}"))
                    .map_err(|_| "takes a list: a,b,c or a TOML array".to_owned())?;
                parsed
                    .get("v")
                    .cloned()
                    .unwrap_or(toml::Value::Array(Vec::new()))
            } else if **element == Kind::Table {
                return Err("takes a TOML array of inline tables ([{…}, {…}])".to_owned());
            } else {
                toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| typed_value(element, item))
                        .collect::<Result<_, _>>()?,
                )
            }
        }
        Kind::Table => return Err("is a table".to_owned()),
    })
}

/// `; closest: HANDOFF_X (x), …`: the keys whose variables are nearest to `var`.
fn suggestions(shape: &Shape, var: &str) -> String {
    let var = var.strip_suffix(FILE_SUFFIX).unwrap_or(var);
    let mut scored: Vec<(f64, String)> = shape
        .keys()
        .into_iter()
        .map(|(path, key)| {
            let name = format!("{PREFIX}{}", path.join("_").to_ascii_uppercase());
            let (candidate, shown) = match key {
                Shape::Map => (
                    format!("{name}_{}", var.split('_').next_back().unwrap_or_default()),
                    format!("{name}_<PROPERTY> ({}.<property>)", path.join(".")),
                ),
                _ => (name.clone(), format!("{name} ({})", path.join("."))),
            };
            (
                strsim::normalized_damerau_levenshtein(var, &candidate),
                shown,
            )
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let closest: Vec<String> = scored.into_iter().take(3).map(|(_, shown)| shown).collect();
    format!("; closest: {}", closest.join(", "))
}

/// The variable that sets the key at `path` (for documentation and tests).
pub fn variable_of(path: &[&str]) -> String {
    format!("{PREFIX}{}", path.join("_").to_ascii_uppercase())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests
mod tests {
    use super::*;

    fn apply(file: &str, vars: &[(&str, &str)]) -> Result<toml::Table, ConfigError> {
        let mut table: toml::Table = toml::from_str(file).unwrap();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        apply_overrides(&mut table, &vars, Path::new(".")).map(|_| table)
    }

    fn get<'t>(table: &'t toml::Table, path: &[&str]) -> Option<&'t toml::Value> {
        let (last, parents) = path.split_last()?;
        let mut here = table;
        for part in parents {
            here = here.get(*part)?.as_table()?;
        }
        here.get(*last)
    }

    #[test]
    fn every_key_is_reachable_by_its_variable_and_no_two_keys_share_one() {
        let shape = schema::settings();
        let empty = toml::Table::new();
        for (path, key) in shape.keys() {
            if *key == Shape::Map {
                continue;
            }
            let var = variable_of(&path);
            match name_to_key(shape, &empty, &var) {
                Ok((found, _)) => assert_eq!(found, path, "{var}"),
                Err(e) => panic!("{var}: {e:?}"),
            }
        }
    }

    #[test]
    fn nested_keys_and_single_level_ones_are_set_with_their_type() {
        let table = apply(
            "[sla]\nfirst_touch_seconds = 60",
            &[
                ("HANDOFF_SLA_ESCALATION_MAX_ATTEMPTS", "3"),
                ("HANDOFF_SLA_ESCALATION_TO_TEAM", "managers"),
                ("HANDOFF_KAFKA_BOOTSTRAP_SERVERS", "b:9092"),
                ("HANDOFF_INGEST_LIMITS_TRUST_FORWARDED_FOR", "true"),
                ("HANDOFF_TRACING_SAMPLE_RATIO", "0.25"),
                ("HANDOFF_SLA_REMINDER_FRACTIONS", "0.25, 0.75"),
                ("HANDOFF_RULES_FILE", "/etc/rules.toml"),
                // A text key whose value looks like a number stays text.
                ("HANDOFF_REDIS_KEY_PREFIX", "12345"),
            ],
        )
        .unwrap();
        let int = |p: &[&str]| get(&table, p).and_then(toml::Value::as_integer);
        assert_eq!(int(&["sla", "escalation", "max_attempts"]), Some(3));
        assert_eq!(int(&["sla", "first_touch_seconds"]), Some(60));
        assert_eq!(
            get(&table, &["sla", "escalation", "to_team"]).and_then(toml::Value::as_str),
            Some("managers")
        );
        assert_eq!(
            get(&table, &["ingest", "limits", "trust_forwarded_for"]),
            Some(&toml::Value::Boolean(true))
        );
        assert_eq!(
            get(&table, &["sla", "reminder_fractions"]),
            Some(&toml::Value::Array(vec![
                toml::Value::Float(0.25),
                toml::Value::Float(0.75)
            ]))
        );
        assert_eq!(
            get(&table, &["rules_file"]).and_then(toml::Value::as_str),
            Some("/etc/rules.toml")
        );
        assert_eq!(
            get(&table, &["redis", "key_prefix"]).and_then(toml::Value::as_str),
            Some("12345")
        );
    }

    #[test]
    fn funnel_keys_are_applied() {
        let table = apply(
            "",
            &[
                ("HANDOFF_FUNNEL_TOP_N", "5"),
                ("HANDOFF_FUNNEL_CAMPAIGNS", "spring,fall"),
            ],
        )
        .unwrap();
        assert_eq!(
            get(&table, &["funnel", "top_n"]).and_then(toml::Value::as_integer),
            Some(5)
        );
        assert_eq!(
            get(&table, &["funnel", "campaigns"]),
            Some(&toml::Value::Array(vec!["spring".into(), "fall".into()]))
        );
    }

    #[test]
    fn free_keys_take_dots_for_underscores_unless_the_file_spells_them() {
        let table = apply(
            "[kafka.client]\n\"enable_idempotence_x\" = \"a\"",
            &[
                ("HANDOFF_KAFKA_CLIENT_SASL_PASSWORD", "pw"),
                ("HANDOFF_KAFKA_CLIENT_SASL_OAUTHBEARER_CLIENT_SECRET", "cs"),
                ("HANDOFF_KAFKA_CLIENT_ENABLE_IDEMPOTENCE_X", "b"),
            ],
        )
        .unwrap();
        let client = get(&table, &["kafka", "client"])
            .and_then(toml::Value::as_table)
            .unwrap();
        assert_eq!(client.get("sasl.password"), Some(&"pw".into()));
        assert_eq!(
            client.get("sasl.oauthbearer.client.secret"),
            Some(&"cs".into())
        );
        assert_eq!(client.get("enable_idempotence_x"), Some(&"b".into()));
    }

    #[test]
    fn an_unknown_variable_is_an_error_naming_it_and_the_nearest_keys() {
        let Err(ConfigError::Env { var, message }) =
            apply("", &[("HANDOFF_SLA_ESCALATION_MAX_ATEMPTS", "3")])
        else {
            panic!("accepted");
        };
        assert_eq!(var, "HANDOFF_SLA_ESCALATION_MAX_ATEMPTS");
        assert!(
            message.contains("HANDOFF_SLA_ESCALATION_MAX_ATTEMPTS (sla.escalation.max_attempts)"),
            "{message}"
        );
        let Err(ConfigError::Env { message, .. }) = apply("", &[("HANDOFF_FUNEL_TOP_N", "3")])
        else {
            panic!("accepted");
        };
        assert!(message.contains("HANDOFF_FUNNEL_TOP_N"), "{message}");
    }

    #[test]
    fn variables_that_are_not_keys_are_left_alone() {
        apply(
            "[actions]\nsecret_env = \"HANDOFF_LINKS\"\n[[ingest.webhooks]]\nsource = \"x\"\nsecret_env = \"HANDOFF_HOOK_X\"",
            &[
                ("HANDOFF_CONFIG", "/etc/handoff.toml"),
                ("HANDOFF_TEST_REDIS", "redis://x"),
                ("HANDOFF_INTAKE_SECRET_PARTNER", "whsec_x"),
                ("HANDOFF_LINKS", "k"),
                ("HANDOFF_HOOK_X", "k"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        // The default name of the links' key.
        apply("", &[("HANDOFF_ACTION_LINK_SECRET", "k")]).unwrap();
    }

    #[test]
    fn a_bad_value_names_the_key_and_what_it_takes_not_the_value() {
        let Err(ConfigError::Env { var, message }) =
            apply("", &[("HANDOFF_KAFKA_PARTITIONS", "s3cret")])
        else {
            panic!("accepted");
        };
        assert_eq!(var, "HANDOFF_KAFKA_PARTITIONS");
        assert_eq!(message, "kafka.partitions: takes a whole number");
        let Err(ConfigError::Env { message, .. }) = apply("", &[("HANDOFF_SLA_ESCALATION", "3")])
        else {
            panic!("accepted");
        };
        assert!(message.contains("sla.escalation is a table"), "{message}");
    }

    fn secret_file(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "handoff-env-{name}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn uuid_like() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }

    #[test]
    fn file_variables_read_the_secret_without_its_trailing_newline() {
        let dir = temp_dir("file");
        let password = secret_file(&dir, "kafka-password", "p@ss word\n");
        let signing = secret_file(&dir, "signing", "0123456789abcdef\r\n");
        let table = apply(
            "",
            &[
                (
                    "HANDOFF_KAFKA_CLIENT_SASL_PASSWORD_FILE",
                    password.to_str().unwrap(),
                ),
                (
                    "HANDOFF_NOTIFIER_SIGNING_SECRET_FILE",
                    signing.to_str().unwrap(),
                ),
                // A key whose own name ends in _file stays that key.
                ("HANDOFF_RULES_FILE", "rules.toml"),
            ],
        )
        .unwrap();
        assert_eq!(
            get(&table, &["kafka", "client", "sasl.password"]),
            Some(&"p@ss word".into())
        );
        assert_eq!(
            get(&table, &["notifier", "signing_secret"]),
            Some(&"0123456789abcdef".into())
        );
        assert_eq!(get(&table, &["rules_file"]), Some(&"rules.toml".into()));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_missing_secret_file_is_an_error_naming_the_variable_and_the_file() {
        let Err(ConfigError::Env { var, message }) = apply(
            "",
            &[(
                "HANDOFF_NOTIFIER_SIGNING_SECRET_FILE",
                "/nonexistent/handoff/signing",
            )],
        ) else {
            panic!("accepted");
        };
        assert_eq!(var, "HANDOFF_NOTIFIER_SIGNING_SECRET_FILE");
        assert!(
            message.contains("cannot read /nonexistent/handoff/signing"),
            "{message}"
        );
    }

    #[test]
    fn a_key_set_twice_is_refused() {
        let dir = temp_dir("twice");
        let file = secret_file(&dir, "s", "x");
        let Err(ConfigError::Env { message, .. }) = apply(
            "",
            &[
                ("HANDOFF_NOTIFIER_SIGNING_SECRET", "y"),
                (
                    "HANDOFF_NOTIFIER_SIGNING_SECRET_FILE",
                    file.to_str().unwrap(),
                ),
            ],
        ) else {
            panic!("accepted");
        };
        assert!(message.contains("set it once"), "{message}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_secrets_folder_names_keys_by_variable_or_path() {
        let dir = temp_dir("dir");
        secret_file(&dir, "HANDOFF_NOTIFIER_SIGNING_SECRET", "sig\n");
        secret_file(&dir, "kafka.client.sasl.password", "pw\n");
        secret_file(&dir, "..data", "ignored");
        let table = apply("", &[(SECRETS_DIR_VAR, dir.to_str().unwrap())]).unwrap();
        assert_eq!(
            get(&table, &["notifier", "signing_secret"]),
            Some(&"sig".into())
        );
        assert_eq!(
            get(&table, &["kafka", "client", "sasl.password"]),
            Some(&"pw".into())
        );
        secret_file(&dir, "notifier.signing_secrte", "x");
        let Err(ConfigError::Env { var, message }) =
            apply("", &[(SECRETS_DIR_VAR, dir.to_str().unwrap())])
        else {
            panic!("accepted");
        };
        assert!(var.contains("notifier.signing_secrte"), "{var}");
        assert!(
            message.contains("HANDOFF_NOTIFIER_SIGNING_SECRET"),
            "{message}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn file_keys_in_the_configuration_read_their_file() {
        let dir = temp_dir("inline");
        secret_file(&dir, "signing", "from-file\n");
        secret_file(&dir, "pw", "kafka-pw\n");
        let mut table: toml::Table = toml::from_str(
            "[notifier]\nsigning_secret_file = \"signing\"\n[kafka.client]\n\"sasl.password_file\" = \"pw\"",
        )
        .unwrap();
        apply_overrides(&mut table, &[], &dir).unwrap();
        assert_eq!(
            get(&table, &["notifier", "signing_secret"]),
            Some(&"from-file".into())
        );
        assert_eq!(get(&table, &["notifier", "signing_secret_file"]), None);
        assert_eq!(
            get(&table, &["kafka", "client", "sasl.password"]),
            Some(&"kafka-pw".into())
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
