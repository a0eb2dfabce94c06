//! A simulation file: JSON lines, each a lead, a touch or a roster edit, with its time.
//!
//! ```text
//! {"contact": {...}, "company": {...}, "received_at": "2026-11-30T08:10:00+01:00"}
//! {"touch": "line-1", "outcome": "contacted", "at": "2026-11-30T08:40:00+01:00"}
//! {"roster": {"rep": "ana", "active": false}, "at": "2026-11-30T00:00:00+01:00"}
//! {"roster": {"rep": "zoe", "team": "emea", "capacity": 3}, "at": "2026-12-02T09:00:00+01:00"}
//! ```
//!
//! A lead is a `POST /v1/leads` body; without an `id` it is called `line-N` after its line.
//! A line without a time (`received_at` for a lead, `at` otherwise) happens at the time of
//! the line before it (the start time for the first). Lines are user input: every problem is
//! an error naming the line and the field, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::disposition::Outcome;
use crate::ids::{RepId, TeamId, Transience};
use crate::lead::{Lead, LeadId};
use crate::routing::{is_valid_rep_id, DateRangeSpec, RoutingModel};
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

/// The team memberships roster lines add, in file order: rep -> the teams they join.
#[derive(Debug, Default)]
struct Joins(BTreeMap<String, Vec<String>>);

impl Joins {
    /// A rep the rules file does not know, added by an earlier line.
    fn knows(&self, rep: &str) -> bool {
        self.0.contains_key(rep)
    }

    fn is_member(&self, rep: &str, team: &str) -> bool {
        self.0
            .get(rep)
            .is_some_and(|teams| teams.iter().any(|t| t == team))
    }

    /// The team a rep the rules file does not know took their hours from.
    fn first_team(&self, rep: &str) -> Option<&str> {
        self.0.get(rep)?.first().map(String::as_str)
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
        let mut joins = Joins::default();
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let line = match parse_line(number, trimmed, previous, routing, &joins) {
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
            if let LineKind::Roster(RosterEdit {
                rep,
                join: Some(team),
                ..
            }) = &line.what
            {
                joins
                    .0
                    .entry(rep.to_string())
                    .or_default()
                    .push(team.to_string());
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
        // Reps the rules file does not know, once their joining line has run: when line
        // times put a line about them before it.
        let mut joined: BTreeMap<String, usize> = BTreeMap::new();
        let mut kept = Vec::with_capacity(lines.len());
        for line in lines {
            match &line.what {
                LineKind::Roster(edit) if !routing.has_rep(edit.rep.as_str()) => {
                    let rep = edit.rep.to_string();
                    if edit.join.is_some() {
                        joined.entry(rep).or_insert(line.line);
                    } else if !joined.contains_key(&rep) {
                        bad.push(LineError {
                            line: line.line,
                            field: Some("at".to_owned()),
                            message: format!(
                                "rep `{rep}` is not in the rules file and has not joined a team yet at {}: give this line a time after the line where they join",
                                line.at.to_rfc3339()
                            ),
                        });
                        if stop {
                            return empty(bad);
                        }
                        continue;
                    }
                }
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
    joins: &Joins,
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
            Some(Value::Object(fields)) => parse_roster(fields, routing, joins),
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
    joins: &Joins,
) -> Result<RosterEdit, FieldProblem> {
    const FIELDS: [&str; 6] = [
        "rep",
        "team",
        "active",
        "available",
        "capacity",
        "out_of_office",
    ];
    allow_only(&fields, &FIELDS, Some("roster"))?;
    let problem = |field: &str, message: String| (format!("roster.{field}"), message);
    let join = match fields.remove("team") {
        None => None,
        Some(Value::String(team)) if routing.members(team.trim()).is_empty() => {
            let known: Vec<&str> = routing.team_ids().collect();
            return Err(problem(
                "team",
                format!(
                    "unknown team `{team}`, expected one of {}",
                    known.join(", ")
                ),
            ));
        }
        Some(Value::String(team)) => Some(TeamId::from(team.trim())),
        Some(_) => {
            return Err(problem(
                "team",
                "expected the id of a team in the rules file, which the rep joins".to_owned(),
            ))
        }
    };
    let rep = match fields.remove("rep") {
        Some(Value::String(rep))
            if routing.has_rep(rep.trim())
                || joins.knows(rep.trim())
                || (join.is_some() && is_valid_rep_id(rep.trim())) =>
        {
            RepId::from(rep.trim())
        }
        Some(Value::String(rep)) if join.is_some() => {
            return Err(problem(
                "rep",
                format!("invalid rep id `{rep}`, expected letters, digits, _ - . @"),
            ))
        }
        Some(Value::String(rep)) => {
            let known: Vec<&str> = routing.rep_ids().collect();
            return Err(problem(
                "rep",
                format!(
                    "unknown rep `{rep}`, expected one of {} (a new rep joins with \"team\" and \"capacity\")",
                    known.join(", ")
                ),
            ));
        }
        _ => {
            return Err(problem(
                "rep",
                "required: the id of a rep in the rules file, or of one joining a team".to_owned(),
            ))
        }
    };
    let new_rep = !routing.has_rep(rep.as_str()) && !joins.knows(rep.as_str());
    if let Some(team) = &join {
        let member = routing
            .members(team.as_str())
            .iter()
            .any(|m| *m == *rep.as_str())
            || joins.is_member(rep.as_str(), team.as_str());
        if member {
            return Err(problem(
                "team",
                format!("`{rep}` is already a member of team `{team}`"),
            ));
        }
    }
    // Local dates and times of an out-of-office span are the rep's: their own zone, or the
    // team's they joined with.
    let zone = routing
        .rep_availability(rep.as_str())
        .map(|a| a.time_zone())
        .or_else(|| {
            let team = join
                .as_ref()
                .map(TeamId::as_str)
                .or_else(|| joins.first_team(rep.as_str()))?;
            routing.team_availability(team).map(|a| a.time_zone())
        })
        .unwrap_or(Tz::UTC);
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
        Some(Value::Object(span)) => {
            allow_only(&span, &["from", "to"], Some("roster.out_of_office"))?;
            let end = |key: &str| match span.get(key) {
                Some(Value::String(text)) => Ok(text.clone()),
                None | Some(Value::Null) => Err(problem(
                    &format!("out_of_office.{key}"),
                    "required: a date (2026-12-21), a local date-time (2026-12-21T13:00) or an RFC 3339 time".to_owned(),
                )),
                Some(_) => Err(problem(
                    &format!("out_of_office.{key}"),
                    "expected a string: a date (2026-12-21), a local date-time (2026-12-21T13:00) or an RFC 3339 time".to_owned(),
                )),
            };
            let range = DateRangeSpec {
                from: end("from")?,
                to: end("to")?,
            };
            // As in the rules file; an entry that ends too early is `to`'s fault.
            let (from, to) = range.resolve(zone).map_err(|(key, message)| {
                let key = if key.is_empty() { "to" } else { key };
                problem(&format!("out_of_office.{key}"), message)
            })?;
            Some(Some(Span { from, to }))
        }
        Some(_) => {
            return Err(problem(
                "out_of_office",
                "expected {\"from\": ..., \"to\": ...} (as in the rules file: dates are whole days in the rep's zone, both included; date-times are local or RFC 3339, `to` excluded) or null (clears the spans of earlier lines)".to_owned(),
            ))
        }
    };
    if new_rep && !matches!(capacity, Some(Some(_))) {
        return Err(problem(
            "capacity",
            format!("required: `{rep}` is not in the rules file, so joining a team needs a capacity (0 to {MAX_CAPACITY})"),
        ));
    }
    if join.is_none()
        && active.is_none()
        && available.is_none()
        && capacity.is_none()
        && out_of_office.is_none()
    {
        return Err((
            "roster".to_owned(),
            "nothing to change: give team, active, available, capacity or out_of_office".to_owned(),
        ));
    }
    Ok(RosterEdit {
        rep,
        join,
        active,
        available,
        capacity,
        out_of_office,
    })
}
