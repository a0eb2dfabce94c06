//! A simulation file: JSON lines, each a lead, a touch or a roster edit, with its time.
//!
//! ```text
//! {"contact": {...}, "company": {...}, "received_at": "2026-11-30T08:10:00+01:00"}
//! {"touch": "line-1", "outcome": "contacted", "at": "2026-11-30T08:40:00+01:00"}
//! {"roster": {"rep": "ana", "active": false}, "at": "2026-11-30T00:00:00+01:00"}
//! ```
//!
//! A lead is a `POST /v1/leads` body; without an `id` it is called `line-N` after its line.
//! A line without a time (`received_at` for a lead, `at` otherwise) happens at the time of
//! the line before it (the start time for the first). Lines are user input: every problem is
//! an error naming the line and the field, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::disposition::Outcome;
use crate::ids::{RepId, Transience};
use crate::lead::{Lead, LeadId};
use crate::routing::RoutingModel;
use crate::submission::LeadSubmission;

use super::roster::{RosterEdit, Span};

/// The same bound as `PUT /v1/reps/{id}`.
const MAX_CAPACITY: u64 = 100_000;

/// The longest stretch of time a replay covers, first line to last (or to `until`): a year
/// of leads is the most a what-if needs, and it bounds the work a file can ask for.
pub const MAX_SPAN_DAYS: i64 = 366;

pub fn max_span() -> TimeDelta {
    TimeDelta::days(MAX_SPAN_DAYS)
}

/// A problem with one line of a simulation file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LineError {
    /// 1-based, as editors count.
    pub line: usize,
    /// The field at fault (`roster.capacity`, `company.employees`), if one is.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}, field `{field}`: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl Transience for LineError {
    /// The file is wrong; reading it again will not help.
    fn is_transient(&self) -> bool {
        false
    }
}

/// What reading a file does with a line it cannot replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadLines {
    /// It is the error; nothing is replayed.
    Stop,
    /// It is left out and reported; the rest is replayed.
    Skip,
}

/// What one line does.
#[derive(Debug, Clone, PartialEq)]
pub enum LineKind {
    /// A lead arrives (its `received_at` is the line's time).
    Lead(Box<Lead>),
    /// The lead's rep reports an outcome: the first one takes the lead off their capacity.
    Touch {
        lead: LeadId,
        outcome: Outcome,
    },
    Roster(RosterEdit),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub at: DateTime<Utc>,
    pub what: LineKind,
}

/// A checked simulation file, its lines in time order (file order among equal times).
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The time of lines before the first timed one.
    pub start: DateTime<Utc>,
    pub lines: Vec<ScenarioLine>,
}

impl Scenario {
    /// Reads a file's text; reps named by roster lines must be in `routing`. The first bad
    /// line (in file order, then the time and touch checks) is the error.
    pub fn parse(
        text: &str,
        start: DateTime<Utc>,
        routing: &RoutingModel,
    ) -> Result<Self, LineError> {
        let (scenario, mut bad) = Self::read(text, start, routing, BadLines::Stop);
        if bad.is_empty() {
            Ok(scenario)
        } else {
            Err(bad.swap_remove(0))
        }
    }

    /// Reads a file's text, leaving out the lines that cannot be replayed: the scenario of
    /// the others, and each line left out with its error, in file order. A week of real
    /// leads always has a few bad ones; they should not hide what the rest do. A line left
    /// out takes no time (the line after it without its own takes the time before), and a
    /// touch of a lead left out is left out too.
    pub fn parse_skipping_bad_lines(
        text: &str,
        start: DateTime<Utc>,
        routing: &RoutingModel,
    ) -> (Self, Vec<LineError>) {
        let (scenario, mut bad) = Self::read(text, start, routing, BadLines::Skip);
        bad.sort_by_key(|e| e.line);
        (scenario, bad)
    }

    fn read(
        text: &str,
        start: DateTime<Utc>,
        routing: &RoutingModel,
        mode: BadLines,
    ) -> (Self, Vec<LineError>) {
        let mut bad = Vec::new();
        let stop = mode == BadLines::Stop;
        let empty = |bad| {
            (
                Self {
                    start,
                    lines: Vec::new(),
                },
                bad,
            )
        };
        let mut lines = Vec::new();
        let mut previous = start;
        let mut lead_lines: BTreeMap<LeadId, (usize, DateTime<Utc>)> = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let line = match parse_line(number, trimmed, previous, routing) {
                Ok(line) => line,
                Err(e) => {
                    bad.push(e);
                    if stop {
                        return empty(bad);
                    }
                    continue;
                }
            };
            if let LineKind::Lead(lead) = &line.what {
                if let Some(&(first, _)) = lead_lines.get(&lead.id) {
                    bad.push(LineError {
                        line: number,
                        field: Some("id".to_owned()),
                        message: format!("lead id `{}` is already used on line {first}", lead.id),
                    });
                    if stop {
                        return empty(bad);
                    }
                    continue;
                }
                lead_lines.insert(lead.id.clone(), (number, line.at));
            }
            previous = line.at;
            lines.push(line);
        }
        // Stable: lines at the same time keep their file order.
        lines.sort_by_key(|l| l.at);
        if let Some(first) = lines.first() {
            let (first_line, first_at) = (first.line, first.at);
            let (kept, too_late): (Vec<_>, Vec<_>) = lines
                .into_iter()
                .partition(|l| l.at.signed_duration_since(first_at) <= max_span());
            lines = kept;
            for line in too_late {
                let field = match line.what {
                    LineKind::Lead(_) => "received_at",
                    LineKind::Touch { .. } | LineKind::Roster(_) => "at",
                };
                if let LineKind::Lead(lead) = &line.what {
                    lead_lines.remove(&lead.id);
                }
                bad.push(LineError {
                    line: line.line,
                    field: Some(field.to_owned()),
                    message: format!(
                        "{} is more than {MAX_SPAN_DAYS} days after the first line (line {first_line}, {}): a replay covers at most that",
                        line.at.to_rfc3339(),
                        first_at.to_rfc3339()
                    ),
                });
                if stop {
                    return empty(bad);
                }
            }
        }
        let mut received = BTreeSet::new();
        let mut kept = Vec::with_capacity(lines.len());
        for line in lines {
            match &line.what {
                LineKind::Lead(lead) => {
                    received.insert(lead.id.clone());
                }
                LineKind::Touch { lead, .. } if !received.contains(lead) => {
                    bad.push(match lead_lines.get(lead) {
                        Some((lead_line, lead_at)) => LineError {
                            line: line.line,
                            field: Some("at".to_owned()),
                            message: format!(
                                "the touch ({}) comes before lead `{lead}` is received (line {lead_line}, {}): give it a later time, or put it after that line",
                                line.at.to_rfc3339(),
                                lead_at.to_rfc3339()
                            ),
                        },
                        None => LineError {
                            line: line.line,
                            field: Some("touch".to_owned()),
                            message: format!(
                                "no lead `{lead}` in this file (a lead without an id is called line-N after its line)"
                            ),
                        },
                    });
                    if stop {
                        return empty(bad);
                    }
                    continue;
                }
                LineKind::Touch { .. } | LineKind::Roster(_) => {}
            }
            kept.push(line);
        }
        (Self { start, lines: kept }, bad)
    }

    /// The time of the first line (the start time for an empty file).
    pub fn first_time(&self) -> DateTime<Utc> {
        self.lines.first().map_or(self.start, |l| l.at)
    }

    /// The time of the last line (the start time for an empty file).
    pub fn last_time(&self) -> DateTime<Utc> {
        self.lines.last().map_or(self.start, |l| l.at)
    }

    /// Only leads, all at the start time: the file of a plain what-if.
    pub fn is_plain(&self) -> bool {
        self.lines
            .iter()
            .all(|l| matches!(l.what, LineKind::Lead(_)) && l.at == self.start)
    }
}

fn parse_line(
    number: usize,
    text: &str,
    previous: DateTime<Utc>,
    routing: &RoutingModel,
) -> Result<ScenarioLine, LineError> {
    let error = |field: Option<&str>, message: String| LineError {
        line: number,
        field: field.map(str::to_owned),
        message,
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| error(None, format!("not JSON: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(error(
            None,
            "expected a JSON object: a lead, a touch ({\"touch\": ...}) or a roster edit ({\"roster\": ...})"
                .to_owned(),
        ));
    };
    if map.contains_key("touch") {
        allow_only(&map, &["touch", "outcome", "at"], None).map_err(|(f, m)| error(Some(&f), m))?;
        let at = take_time(&mut map, "at")
            .map_err(|(f, m)| error(Some(&f), m))?
            .unwrap_or(previous);
        let lead = match map.get("touch") {
            Some(Value::String(id)) if !id.trim().is_empty() => LeadId::from(id.trim().to_owned()),
            _ => {
                return Err(error(
                    Some("touch"),
                    "expected the id of a lead in this file (line-N for a lead without an id)"
                        .to_owned(),
                ))
            }
        };
        let outcome = parse_outcome(map.get("outcome")).map_err(|m| error(Some("outcome"), m))?;
        return Ok(ScenarioLine {
            line: number,
            at,
            what: LineKind::Touch { lead, outcome },
        });
    }
    if map.contains_key("roster") {
        allow_only(&map, &["roster", "at"], None).map_err(|(f, m)| error(Some(&f), m))?;
        let at = take_time(&mut map, "at")
            .map_err(|(f, m)| error(Some(&f), m))?
            .unwrap_or(previous);
        let edit = match map.remove("roster") {
            Some(Value::Object(fields)) => parse_roster(fields, routing),
            _ => Err((
                "roster".to_owned(),
                "expected an object such as {\"rep\": \"ana\", \"active\": false}".to_owned(),
            )),
        }
        .map_err(|(f, m)| error(Some(&f), m))?;
        return Ok(ScenarioLine {
            line: number,
            at,
            what: LineKind::Roster(edit),
        });
    }
    // A lead: `received_at` is the line's time; the rest is a `POST /v1/leads` body.
    let at = take_time(&mut map, "received_at")
        .map_err(|(f, m)| error(Some(&f), m))?
        .unwrap_or(previous);
    let mut submission: LeadSubmission = serde_path_to_error::deserialize(Value::Object(map))
        .map_err(|e| {
            let path = e.path().to_string();
            let field = (path != ".").then_some(path);
            LineError {
                line: number,
                field,
                message: format!("not a lead: {}", e.inner()),
            }
        })?;
    if submission
        .id
        .as_deref()
        .is_none_or(|id| id.trim().is_empty())
    {
        submission.id = Some(format!("line-{number}"));
    }
    let lead = submission.into_lead(at).map_err(|errors| LineError {
        line: number,
        field: errors.0.first().map(|e| e.field.clone()),
        message: errors
            .0
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    Ok(ScenarioLine {
        line: number,
        at,
        what: LineKind::Lead(Box::new(lead)),
    })
}

type FieldProblem = (String, String);

fn allow_only(
    map: &Map<String, Value>,
    allowed: &[&str],
    prefix: Option<&str>,
) -> Result<(), FieldProblem> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err((
            prefix.map_or_else(|| key.clone(), |p| format!("{p}.{key}")),
            format!("unknown field, expected one of {}", allowed.join(", ")),
        )),
    }
}

/// Removes `key` and reads it as an RFC 3339 time; absent or `null`: `None`.
fn take_time(
    map: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<DateTime<Utc>>, FieldProblem> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => time(&value).map(Some).map_err(|m| (key.to_owned(), m)),
    }
}

fn time(value: &Value) -> Result<DateTime<Utc>, String> {
    let expected = "expected an RFC 3339 time such as 2026-11-30T09:00:00+01:00";
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("`{text}` is not a time ({e}); {expected}")),
        _ => Err(expected.to_owned()),
    }
}

fn parse_outcome(value: Option<&Value>) -> Result<Outcome, String> {
    let allowed: Vec<&str> = Outcome::REPORTABLE.iter().map(|o| o.as_str()).collect();
    let expected = format!("expected one of {}", allowed.join(", "));
    match value {
        None => Err(format!("required; {expected}")),
        Some(Value::String(raw)) => Outcome::REPORTABLE
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| format!("unknown outcome `{raw}`, {expected}")),
        Some(_) => Err(expected),
    }
}

fn parse_roster(
    mut fields: Map<String, Value>,
    routing: &RoutingModel,
) -> Result<RosterEdit, FieldProblem> {
    const FIELDS: [&str; 5] = ["rep", "active", "available", "capacity", "out_of_office"];
    allow_only(&fields, &FIELDS, Some("roster"))?;
    let problem = |field: &str, message: String| (format!("roster.{field}"), message);
    let rep = match fields.remove("rep") {
        Some(Value::String(rep)) if routing.has_rep(rep.trim()) => RepId::from(rep.trim()),
        Some(Value::String(rep)) => {
            let known: Vec<&str> = routing.rep_ids().collect();
            return Err(problem(
                "rep",
                format!("unknown rep `{rep}`, expected one of {}", known.join(", ")),
            ));
        }
        _ => {
            return Err(problem(
                "rep",
                "required: the id of a rep in the rules file".to_owned(),
            ))
        }
    };
    let flag = |field: &str, value: Option<Value>| match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Bool(b)) => Ok(Some(Some(b))),
        Some(_) => Err(problem(
            field,
            "expected true, false or null (back to the rules file)".to_owned(),
        )),
    };
    let active = flag("active", fields.remove("active"))?;
    let available = flag("available", fields.remove("available"))?;
    let capacity = match fields.remove("capacity") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => match n.as_u64().filter(|c| *c <= MAX_CAPACITY) {
            Some(c) => Some(u32::try_from(c).ok()),
            None => {
                return Err(problem(
                    "capacity",
                    format!("expected a whole number from 0 to {MAX_CAPACITY}, got {n}"),
                ))
            }
        },
        Some(_) => {
            return Err(problem(
                "capacity",
                format!("expected a whole number from 0 to {MAX_CAPACITY}, or null (back to the rules file)"),
            ))
        }
    };
    let out_of_office = match fields.remove("out_of_office") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Object(mut span)) => {
            allow_only(&span, &["from", "to"], Some("roster.out_of_office"))?;
            let mut end = |key: &str| {
                let field = format!("roster.out_of_office.{key}");
                take_time(&mut span, key)
                    .map_err(|(_, m)| (field.clone(), m))?
                    .ok_or((field, "required: an RFC 3339 time".to_owned()))
            };
            let from = end("from")?;
            let to = end("to")?;
            if to <= from {
                return Err(problem("out_of_office.to", "must be after `from`".to_owned()));
            }
            Some(Some(Span { from, to }))
        }
        Some(_) => {
            return Err(problem(
                "out_of_office",
                "expected {\"from\": TIME, \"to\": TIME} (RFC 3339; `to` excluded) or null (clears the spans of earlier lines)".to_owned(),
            ))
        }
    };
    if active.is_none() && available.is_none() && capacity.is_none() && out_of_office.is_none() {
        return Err((
            "roster".to_owned(),
            "nothing to change: give active, available, capacity or out_of_office".to_owned(),
        ));
    }
    Ok(RosterEdit {
        rep,
        active,
        available,
        capacity,
        out_of_office,
    })
}
