//! The routing model as written in the rules file (`[routing]`), and its checked form.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::availability::{
    parse_holidays, parse_out_of_office, parse_time_zone, Availability, DateRangeSpec,
    WeeklySchedule, WeeklyScheduleSpec,
};
use super::condition::{Condition, ConditionSpec};
use super::explain::ExplainValues;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Where leads go when no rule matches.
    #[serde(default = "default_unrouted_queue")]
    pub unrouted_queue: String,
    pub teams: Vec<TeamConfig>,
    pub reps: Vec<RepConfig>,
    pub rules: Vec<RuleConfig>,
    /// Known accounts: their leads go to the account owner, before any rule.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// A repeat lead of the same person within this long goes to the rep who has them
    /// already: a duration such as `"12h"`, `"30d"`, `"90m"` (`"0s"`: off). Default 30 days.
    #[serde(default)]
    pub sticky: Option<String>,
    /// The same in whole days (the older form); one of the two at most.
    #[serde(default)]
    pub sticky_days: Option<u32>,
    /// What explanations (in `lead.assigned` and webhooks) show of the lead: `rule_fields`
    /// (the values of fields rules name, never emails or phone numbers) or `none`.
    #[serde(default)]
    pub explain_values: ExplainValues,
    /// Shared holiday calendars (`[routing.calendars.de] holidays = [...]`), named by a
    /// rep's or team's `holiday_calendar`.
    #[serde(default)]
    pub calendars: BTreeMap<String, CalendarConfig>,
}

/// A named list of local dates off, shared by the reps and teams that name it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    /// Local dates, `"YYYY-MM-DD"`, each in the zone of the rep who takes the calendar.
    pub holidays: Vec<String>,
}

/// How long a contact sticks to their rep when the rules file does not say.
const DEFAULT_STICKY_SECONDS: u64 = 30 * 86_400;

/// The longest sticky window written as a duration: a year (beyond it a contact is a new
/// contact).
const MAX_STICKY_SECONDS: u64 = 366 * 86_400;

/// `sticky` or `sticky_days` as seconds (0: off), or why not.
fn sticky_seconds(config: &RoutingConfig) -> Result<u64, (&'static str, String)> {
    match (&config.sticky, config.sticky_days) {
        (Some(_), Some(_)) => Err((
            "sticky",
            "set `sticky` (a duration such as \"12h\") or `sticky_days`, not both".to_owned(),
        )),
        (None, None) => Ok(DEFAULT_STICKY_SECONDS),
        // Unbounded, as it always was (u32 days fit u64 seconds).
        (None, Some(days)) => Ok(u64::from(days).saturating_mul(86_400)),
        (Some(text), None) => {
            let duration = humantime::parse_duration(text.trim()).map_err(|e| {
                (
                    "sticky",
                    format!("`{text}` is not a duration ({e}), expected e.g. \"12h\", \"30d\", \"90m\" or \"0s\" (off)"),
                )
            })?;
            if duration.subsec_nanos() != 0 {
                return Err(("sticky", format!("`{text}` is not whole seconds")));
            }
            if duration.as_secs() > MAX_STICKY_SECONDS {
                return Err(("sticky", format!("`{text}` is longer than 366 days")));
            }
            Ok(duration.as_secs())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub name: String,
    /// Email or company domains of the account; subdomains match too.
    pub domains: Vec<String>,
    /// The rep who owns the account.
    pub owner: String,
}

fn default_unrouted_queue() -> String {
    "unrouted".to_owned()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Rep ids, in rotation order.
    pub members: Vec<String>,
    /// The queue a lead waits in when no member is eligible. Default: `<id>-overflow`.
    #[serde(default)]
    pub overflow_queue: Option<String>,
    /// Overrides the SLA's default first-touch window for this team.
    #[serde(default)]
    pub first_touch_seconds: Option<u32>,
    /// Overrides `sla.first_touch_clock` for this team: `"wall"` (every second counts) or
    /// `"business_hours"` (only the assigned rep's working hours count).
    #[serde(default)]
    pub first_touch_clock: Option<crate::sla::SlaClock>,
    /// Overrides the SLA's default disposition window for this team.
    #[serde(default)]
    pub disposition_seconds: Option<u32>,
    /// The team channel: team-level notifications, and notifications for reps without a
    /// channel of their own. A URL, or `{ url, format, contact_details }`.
    #[serde(default)]
    pub webhook_url: Option<ChannelConfig>,
    /// The manager channel: breaches and escalations (default: the team channel).
    #[serde(default)]
    pub manager_webhook_url: Option<ChannelConfig>,
    /// What happens when a first touch is missed (defaults: `[sla.escalation]`).
    #[serde(default)]
    pub escalation: Option<EscalationConfig>,
    /// Defaults for members that do not set their own (each key on its own): the zone of
    /// `working_hours` and `holidays`.
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub working_hours: Option<WeeklyScheduleSpec>,
    #[serde(default)]
    pub holidays: Option<Vec<String>>,
    /// A calendar of `[routing.calendars]`, on top of `holidays`.
    #[serde(default)]
    pub holiday_calendar: Option<String>,
    /// Under least-loaded, how a rep with fewer open leads than the others (back from
    /// leave, newly added) catches up: `{ max_in_a_row = N }` (default 2), `"none"` or
    /// `"full"`. See [`CatchUp`].
    #[serde(default)]
    pub catch_up: Option<CatchUpConfig>,
}

/// `catch_up` as written: a name or `{ max_in_a_row = N }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CatchUpConfig {
    Named(String),
    Limit { max_in_a_row: u32 },
}

/// How least-loaded treats a rep who has fewer open leads than the rest of the team: pure
/// least-loaded handed a rep back from 100 leads of leave the next 8 leads in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// The fewest open leads always win: the rep takes every lead until level.
    Full,
    /// Load decides, but one rep takes at most this many leads of the team in a row while a
    /// teammate could take one.
    MaxInARow(u32),
    /// Load is ignored: eligible reps take leads in turn (capacity still caps them), so a
    /// returning rep gets the team's normal pace.
    None,
}

/// The catch-up a team has when the rules file does not say: bounded, so a returning rep
/// gets more than their share, but never the whole backlog at once.
pub const DEFAULT_CATCH_UP: CatchUp = CatchUp::MaxInARow(2);

impl CatchUpConfig {
    fn check(&self) -> Result<CatchUp, String> {
        match self {
            CatchUpConfig::Named(name) => match name.as_str() {
                "full" => Ok(CatchUp::Full),
                "none" => Ok(CatchUp::None),
                other => Err(format!(
                    "unknown catch-up `{other}`, expected \"full\", \"none\" or {{ max_in_a_row = N }}"
                )),
            },
            CatchUpConfig::Limit { max_in_a_row: 0 } => {
                Err("max_in_a_row must be at least 1".to_owned())
            }
            CatchUpConfig::Limit { max_in_a_row } => Ok(CatchUp::MaxInARow(*max_in_a_row)),
        }
    }
}

/// A team's escalation policy, as written in the rules file; unset keys take the
/// configuration's `[sla.escalation]` defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Assignment attempts before escalating (1: escalate at the first miss).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The team escalated leads go to; none: the lead stays with its rep and the
    /// manager is told.
    #[serde(default)]
    pub to_team: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepConfig {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Most leads awaiting first touch the rep may hold at once.
    pub capacity: u32,
    /// Most leads the rep may be assigned per (UTC) day; none: no daily cap.
    #[serde(default)]
    pub daily_cap: Option<u32>,
    /// Share under weighted round-robin (2 gets twice the leads of 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default = "default_true")]
    pub active: bool,
    /// IANA time zone of `working_hours`, `holidays` and `out_of_office` (default: the
    /// team's, else UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `{ mon = ["09:00-17:00"], fri = ["22:00-06:00"] }` (a shift past midnight belongs
    /// to the day it starts); none: the team's, else always working.
    #[serde(default)]
    pub working_hours: Option<WeeklyScheduleSpec>,
    /// Local dates, `"YYYY-MM-DD"`; none: the team's.
    #[serde(default)]
    pub holidays: Option<Vec<String>>,
    /// A calendar of `[routing.calendars]`, on top of `holidays`; none: the team's.
    #[serde(default)]
    pub holiday_calendar: Option<String>,
    /// Whole local days (`"2026-12-21"`, both ends included), local date-times
    /// (`"2026-12-21T13:00"`) or times with an offset; a date-time `to` is excluded.
    #[serde(default)]
    pub out_of_office: Vec<DateRangeSpec>,
    /// The rep's own channel: their assignments and reminders, with the lead's contact
    /// details and the accept/reject links. A URL, or `{ url, format }`.
    #[serde(default)]
    pub webhook_url: Option<ChannelConfig>,
}

/// A notification channel as the rules file writes it: a bare URL (a JSON webhook) or a
/// table saying what kind of receiver it is and whether it may see contact details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelConfig {
    Url(String),
    Table(ChannelTable),
}

// By hand rather than `untagged`, so a wrong table key is named with the allowed ones.
impl<'de> Deserialize<'de> for ChannelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ChannelConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a webhook URL or a table { url, format = \"json\" | \"slack\", contact_details }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ChannelConfig::Url(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                ChannelTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ChannelConfig::Table)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelTable {
    pub url: String,
    #[serde(default)]
    pub format: ChannelFormat,
    /// Team and manager channels only: whether messages there carry the lead's email and
    /// phone (default: no; a rep's own channel always does).
    #[serde(default)]
    pub contact_details: bool,
}

/// What a receiver understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelFormat {
    /// handoff's signed JSON (docs/webhooks.md), with a `text` line for simple chat hooks.
    #[default]
    Json,
    /// A Slack-compatible incoming webhook: Block Kit (`blocks`) with a `text` fallback.
    Slack,
}

/// Whose channel a message goes to: decides what it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// The assignee's own: contact details and accept/reject links.
    Rep,
    Team,
    Manager,
}

/// A resolved destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub kind: ChannelKind,
    pub url: String,
    pub format: ChannelFormat,
    /// Whether messages here may carry the lead's email and phone.
    pub contact_details: bool,
}

impl ChannelConfig {
    fn resolve(&self, kind: ChannelKind) -> Channel {
        let (url, format, contact_details) = match self {
            ChannelConfig::Url(url) => (url.clone(), ChannelFormat::Json, false),
            ChannelConfig::Table(t) => (t.url.clone(), t.format, t.contact_details),
        };
        Channel {
            kind,
            url,
            format,
            contact_details: kind == ChannelKind::Rep || contact_details,
        }
    }
}

fn default_weight() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    #[default]
    RoundRobin,
    /// Shares proportional to rep weights, exact over every cycle of sum(weights) leads.
    WeightedRoundRobin,
    /// The eligible rep with the fewest leads awaiting first touch (ties: rotation order).
    LeastLoaded,
}

impl StrategyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round_robin",
            StrategyKind::WeightedRoundRobin => "weighted_round_robin",
            StrategyKind::LeastLoaded => "least_loaded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// The team the rule routes to (one of `team` and `rep`).
    #[serde(default)]
    pub team: Option<String>,
    /// One named rep the rule routes to, instead of a team: the lead is theirs when they
    /// can take it; otherwise `fallback`, then their (first) team's overflow queue, where it
    /// waits for them (queue `<rep>-waiting`). It counts in their first team.
    #[serde(default)]
    pub rep: Option<String>,
    #[serde(default)]
    pub strategy: StrategyKind,
    /// Where leads go when nobody in `team` (or `rep`) is eligible (before the overflow queue).
    #[serde(default)]
    pub fallback: Option<String>,
    /// Omitted: the rule matches every lead (a catch-all).
    #[serde(default)]
    pub when: ConditionSpec,
}

/// A problem in the routing model: the key it is at and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ModelError {
    pub key: String,
    pub message: String,
}

/// Something in the routing model that is allowed but almost surely not what was meant
/// (`rules check` prints it; the services load the file anyway): the key and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ModelWarning {
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Team {
    pub id: String,
    pub members: Vec<String>,
    pub overflow_queue: String,
    pub first_touch_seconds: Option<u32>,
    pub first_touch_clock: Option<crate::sla::SlaClock>,
    pub disposition_seconds: Option<u32>,
    pub webhook_url: Option<ChannelConfig>,
    pub manager_webhook_url: Option<ChannelConfig>,
    pub escalation: EscalationConfig,
    pub catch_up: CatchUp,
    /// Whether the rules file set `catch_up` (a warning when least-loaded never uses it).
    pub catch_up_written: bool,
    /// When a member who sets none of their own hours works (a rep added to the team in a
    /// replay takes it).
    pub availability: Availability,
}

#[derive(Debug, Clone)]
pub(crate) struct Rep {
    pub capacity: u32,
    pub daily_cap: Option<u32>,
    pub weight: u32,
    pub active: bool,
    pub availability: Availability,
    pub webhook_url: Option<ChannelConfig>,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: String,
    /// The team routed to; for a rule naming one rep, the rep's first team.
    pub team: String,
    /// The one rep the rule routes to, if it names one.
    pub rep: Option<String>,
    /// Where a lead of a rule naming one rep waits for them (`<rep>-waiting`): a queue of its
    /// own, so leads waiting for one rep never hold up their team's overflow queue.
    pub queue: Option<String>,
    pub strategy: StrategyKind,
    pub fallback: Option<String>,
    pub condition: Condition,
}

/// Rep ids are letters, digits, `_ - . @` (they appear in keys, URLs and metrics).
pub(crate) fn is_valid_rep_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

/// How an error names an entry of a list: by its id (or name), which is what the person
/// fixing the file searches for; by position only when it has none.
fn entry(list: &str, position: usize, id: &str) -> String {
    if id.trim().is_empty() {
        format!("{list}[{position}]")
    } else {
        format!("{list}[{id}]")
    }
}

/// Why a rule with this condition, after `earlier`, can never match (first match wins), or
/// `None` when it can (or that cannot be shown: see coverage.rs).
fn never_matches(condition: &Condition, earlier: &[Rule]) -> Option<String> {
    if condition.matches_no_lead() {
        return Some("its condition matches no lead".to_owned());
    }
    if let Some(all) = earlier.iter().find(|r| r.condition.matches_every_lead()) {
        return Some(format!(
            "the earlier rule `{}` matches every lead",
            all.name
        ));
    }
    if let Some(wider) = earlier.iter().find(|r| condition.implies(&r.condition)) {
        return Some(format!(
            "every lead it matches is matched by the earlier rule `{}`",
            wider.name
        ));
    }
    // Covered by several earlier rules together: name the fewest that still cover it.
    let covers = |rules: &[&Rule]| {
        condition.implies(&Condition::Any(
            rules.iter().map(|r| r.condition.clone()).collect(),
        ))
    };
    let mut cover: Vec<&Rule> = earlier.iter().collect();
    if !covers(&cover) {
        return None;
    }
    let mut at = 0;
    while at < cover.len() {
        let mut without = cover.clone();
        without.remove(at);
        if covers(&without) {
            cover = without;
        } else {
            at += 1;
        }
    }
    let names: Vec<String> = cover.iter().map(|r| format!("`{}`", r.name)).collect();
    Some(format!(
        "every lead it matches is matched by the earlier rules {}",
        names.join(", ")
    ))
}

/// The calendars, checked (a bad date is reported and left out).
fn read_calendars(
    calendars: &BTreeMap<String, CalendarConfig>,
    error: &mut impl FnMut(String, String),
) -> BTreeMap<String, Vec<NaiveDate>> {
    calendars
        .iter()
        .map(|(name, calendar)| {
            let dates = parse_holidays(&calendar.holidays).unwrap_or_else(|(key, message)| {
                error(format!("calendars[{name}].{key}"), message);
                Vec::new()
            });
            (name.clone(), dates)
        })
        .collect()
}

/// The dates of a named calendar, or an error naming the known ones.
fn calendar_dates(
    name: &str,
    calendars: &BTreeMap<String, Vec<NaiveDate>>,
) -> Result<Vec<NaiveDate>, String> {
    calendars.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = calendars.keys().map(String::as_str).collect();
        if known.is_empty() {
            format!("unknown calendar `{name}`: no [routing.calendars.{name}] in the file")
        } else {
            format!(
                "unknown calendar `{name}`, expected one of {}",
                known.join(", ")
            )
        }
    })
}

/// A team's defaults for the hours of members that set none of their own, checked.
struct TeamDefaults {
    id: String,
    time_zone: Option<Tz>,
    weekly: Option<WeeklySchedule>,
    holidays: Option<Vec<NaiveDate>>,
    /// The calendar's name, and its dates.
    calendar: Option<(String, Vec<NaiveDate>)>,
}

impl TeamDefaults {
    fn read(
        i: usize,
        team: &TeamConfig,
        calendars: &BTreeMap<String, Vec<NaiveDate>>,
        error: &mut impl FnMut(String, String),
    ) -> Self {
        let at = |key: &str| format!("{}.{key}", entry("teams", i, &team.id));
        let time_zone = team
            .time_zone
            .as_deref()
            .and_then(|name| match parse_time_zone(name) {
                Ok(zone) => Some(zone),
                Err(message) => {
                    error(at("time_zone"), message);
                    None
                }
            });
        let weekly =
            team.working_hours
                .as_ref()
                .and_then(|spec| match WeeklySchedule::parse(spec) {
                    Ok(weekly) => Some(weekly),
                    Err((key, message)) => {
                        error(at(&key), message);
                        None
                    }
                });
        let holidays = team
            .holidays
            .as_deref()
            .and_then(|dates| match parse_holidays(dates) {
                Ok(dates) => Some(dates),
                Err((key, message)) => {
                    error(at(&key), message);
                    None
                }
            });
        let calendar =
            team.holiday_calendar
                .as_ref()
                .and_then(|name| match calendar_dates(name, calendars) {
                    Ok(dates) => Some((name.clone(), dates)),
                    Err(message) => {
                        error(at("holiday_calendar"), message);
                        None
                    }
                });
        Self {
            id: team.id.clone(),
            time_zone,
            weekly,
            holidays,
            calendar,
        }
    }

    /// The hours of a member who sets none of their own.
    fn availability(&self) -> Availability {
        let mut holidays = self.holidays.clone().unwrap_or_default();
        holidays.extend(self.calendar.iter().flat_map(|(_, d)| d.iter().copied()));
        Availability::new(
            self.time_zone.unwrap_or(Tz::UTC),
            self.weekly.clone(),
            holidays,
            Vec::new(),
        )
    }
}

/// A key the rep does not set, from the teams that do: one value, or an error when the
/// rep's teams set it differently (which one would be a guess).
fn inherited<T: Clone + PartialEq>(
    rep: &str,
    key: &str,
    teams: &[&TeamDefaults],
    value: impl Fn(&TeamDefaults) -> Option<&T>,
) -> Result<Option<T>, (String, String)> {
    let set: Vec<(&str, &T)> = teams
        .iter()
        .filter_map(|t| Some((t.id.as_str(), value(t)?)))
        .collect();
    match set.split_first() {
        None => Ok(None),
        Some(((_, first), rest)) if rest.iter().all(|(_, v)| v == first) => {
            Ok(Some((*first).clone()))
        }
        Some(_) => {
            let ids: Vec<&str> = set.iter().map(|(id, _)| *id).collect();
            Err((
                key.to_owned(),
                format!(
                    "rep `{rep}` sets no `{key}` and is in teams {} whose `{key}` differ: set the rep's own, or make the teams' the same",
                    ids.join(", ")
                ),
            ))
        }
    }
}

/// A rep's hours: each of `time_zone`, `working_hours`, `holidays` and `holiday_calendar`
/// is the rep's when set, else the one of their teams (`teams`, in file order); holidays
/// are the dates of `holidays` and of the calendar together. The error's key is relative
/// to the rep.
fn rep_availability(
    rep: &RepConfig,
    teams: &[&TeamDefaults],
    calendars: &BTreeMap<String, Vec<NaiveDate>>,
) -> Result<Availability, (String, String)> {
    let id = rep.id.as_str();
    let time_zone = match &rep.time_zone {
        Some(name) => parse_time_zone(name).map_err(|m| ("time_zone".to_owned(), m))?,
        None => inherited(id, "time_zone", teams, |t| t.time_zone.as_ref())?.unwrap_or(Tz::UTC),
    };
    let weekly = match &rep.working_hours {
        Some(spec) => Some(WeeklySchedule::parse(spec)?),
        None => inherited(id, "working_hours", teams, |t| t.weekly.as_ref())?,
    };
    let mut holidays = match &rep.holidays {
        Some(dates) => parse_holidays(dates)?,
        None => inherited(id, "holidays", teams, |t| t.holidays.as_ref())?.unwrap_or_default(),
    };
    let calendar = match &rep.holiday_calendar {
        Some(name) => {
            calendar_dates(name, calendars).map_err(|m| ("holiday_calendar".to_owned(), m))?
        }
        None => inherited(id, "holiday_calendar", teams, |t| {
            t.calendar.as_ref().map(|(name, _)| name)
        })?
        .and_then(|name| calendars.get(&name).cloned())
        .unwrap_or_default(),
    };
    holidays.extend(calendar);
    let out_of_office = parse_out_of_office(&rep.out_of_office, time_zone)?;
    Ok(Availability::new(
        time_zone,
        weekly,
        holidays,
        out_of_office,
    ))
}

/// A checked routing model: every team, rep and rule reference resolves.
#[derive(Debug, Clone)]
pub struct RoutingModel {
    version: String,
    unrouted_queue: String,
    /// Account domain -> (account name, owner).
    accounts: BTreeMap<String, (String, String)>,
    /// Free-mail domains: never matched to an account.
    free_mail: BTreeSet<String>,
    /// The team a rep's owner-routed leads count in: the first team listing them.
    home_team: BTreeMap<String, String>,
    /// How long a contact sticks to their rep, in seconds (0: off).
    sticky_seconds: u64,
    /// Warnings found while reading the rules (country values read as codes, or none).
    notes: Vec<ModelWarning>,
    explain_values: ExplainValues,
    teams: BTreeMap<String, Team>,
    reps: BTreeMap<String, Rep>,
    rules: Vec<Rule>,
}

impl RoutingModel {
    /// Checks the config; every problem is reported, each with the key it is at.
    pub fn new(config: RoutingConfig, version: impl Into<String>) -> Result<Self, Vec<ModelError>> {
        let mut errors = Vec::new();
        let mut error = |key: String, message: String| errors.push(ModelError { key, message });

        let calendars = read_calendars(&config.calendars, &mut error);
        let defaults: Vec<TeamDefaults> = config
            .teams
            .iter()
            .enumerate()
            .map(|(i, team)| TeamDefaults::read(i, team, &calendars, &mut error))
            .collect();

        let mut reps = BTreeMap::new();
        for (i, rep) in config.reps.iter().enumerate() {
            if !is_valid_rep_id(&rep.id) {
                error(
                    format!("{}.id", entry("reps", i, &rep.id)),
                    format!(
                        "invalid rep id `{}`, expected letters, digits, _ - . @",
                        rep.id
                    ),
                );
            }
            if rep.weight == 0 {
                error(
                    format!("{}.weight", entry("reps", i, &rep.id)),
                    "must be at least 1".to_owned(),
                );
            }
            let teams: Vec<&TeamDefaults> = config
                .teams
                .iter()
                .zip(&defaults)
                .filter(|(team, _)| team.members.contains(&rep.id))
                .map(|(_, d)| d)
                .collect();
            let availability =
                rep_availability(rep, &teams, &calendars).unwrap_or_else(|(key, message)| {
                    error(format!("{}.{key}", entry("reps", i, &rep.id)), message);
                    Availability::always()
                });
            let previous = reps.insert(
                rep.id.clone(),
                Rep {
                    capacity: rep.capacity,
                    daily_cap: rep.daily_cap,
                    weight: rep.weight.max(1),
                    active: rep.active,
                    availability,
                    webhook_url: rep.webhook_url.clone(),
                },
            );
            if previous.is_some() {
                error(
                    format!("{}.id", entry("reps", i, &rep.id)),
                    format!("duplicate rep id `{}`", rep.id),
                );
            }
        }
        let rep_ids: Vec<&str> = reps.keys().map(String::as_str).collect();

        let mut teams = BTreeMap::new();
        for (i, team) in config.teams.iter().enumerate() {
            if team.members.is_empty() {
                error(
                    format!("{}.members", entry("teams", i, &team.id)),
                    "a team needs at least one rep".to_owned(),
                );
            }
            let mut seen = BTreeSet::new();
            for member in &team.members {
                if !reps.contains_key(member) {
                    error(
                        format!("{}.members", entry("teams", i, &team.id)),
                        format!(
                            "unknown rep `{member}`, expected one of {}",
                            rep_ids.join(", ")
                        ),
                    );
                }
                if !seen.insert(member) {
                    error(
                        format!("{}.members", entry("teams", i, &team.id)),
                        format!("rep `{member}` is listed twice"),
                    );
                }
            }
            let catch_up = match team.catch_up.as_ref().map(CatchUpConfig::check) {
                None => DEFAULT_CATCH_UP,
                Some(Ok(catch_up)) => catch_up,
                Some(Err(message)) => {
                    error(format!("{}.catch_up", entry("teams", i, &team.id)), message);
                    DEFAULT_CATCH_UP
                }
            };
            let previous = teams.insert(
                team.id.clone(),
                Team {
                    id: team.id.clone(),
                    members: team.members.clone(),
                    overflow_queue: team
                        .overflow_queue
                        .clone()
                        .unwrap_or_else(|| format!("{}-overflow", team.id)),
                    first_touch_seconds: team.first_touch_seconds,
                    first_touch_clock: team.first_touch_clock,
                    disposition_seconds: team.disposition_seconds,
                    webhook_url: team.webhook_url.clone(),
                    manager_webhook_url: team.manager_webhook_url.clone(),
                    escalation: team.escalation.clone().unwrap_or_default(),
                    catch_up,
                    catch_up_written: team.catch_up.is_some(),
                    availability: defaults
                        .get(i)
                        .map_or_else(Availability::always, TeamDefaults::availability),
                },
            );
            if previous.is_some() {
                error(
                    format!("{}.id", entry("teams", i, &team.id)),
                    format!("duplicate team id `{}`", team.id),
                );
            }
        }
        let team_ids: Vec<&str> = teams.keys().map(String::as_str).collect();
        for (i, team) in config.teams.iter().enumerate() {
            let Some(escalation) = &team.escalation else {
                continue;
            };
            if escalation.max_attempts == Some(0) {
                error(
                    format!("{}.escalation.max_attempts", entry("teams", i, &team.id)),
                    "must be at least 1".to_owned(),
                );
            }
            if let Some(to) = &escalation.to_team {
                if !teams.contains_key(to) {
                    error(
                        format!("{}.escalation.to_team", entry("teams", i, &team.id)),
                        format!(
                            "unknown team `{to}`, expected one of {}",
                            team_ids.join(", ")
                        ),
                    );
                }
            }
        }

        let sticky = sticky_seconds(&config).unwrap_or_else(|(key, message)| {
            error(key.to_owned(), message);
            0
        });

        let mut rules: Vec<Rule> = Vec::new();
        // Warnings found while reading (kept for `warnings`).
        let mut notes: Vec<ModelWarning> = Vec::new();
        let mut home_team = BTreeMap::new();
        for team in &config.teams {
            for member in &team.members {
                home_team
                    .entry(member.clone())
                    .or_insert_with(|| team.id.clone());
            }
        }
        for (i, rule) in config.rules.iter().enumerate() {
            let team = match (&rule.team, &rule.rep) {
                (Some(team), None) => {
                    if !teams.contains_key(team) {
                        error(
                            format!("{}.team", entry("rules", i, &rule.name)),
                            format!(
                                "unknown team `{team}`, expected one of {}",
                                team_ids.join(", ")
                            ),
                        );
                    }
                    team.clone()
                }
                (None, Some(rep)) => match home_team.get(rep) {
                    Some(team) => team.clone(),
                    None => {
                        error(
                            format!("{}.rep", entry("rules", i, &rule.name)),
                            format!(
                                "`{rep}` is not a rep of any team, expected one of {}",
                                home_team.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        );
                        String::new()
                    }
                },
                (Some(_), Some(_)) => {
                    error(
                        entry("rules", i, &rule.name),
                        "set `team` or `rep`, not both".to_owned(),
                    );
                    String::new()
                }
                (None, None) => {
                    error(
                        entry("rules", i, &rule.name),
                        "missing `team` (or `rep`): where the rule routes to".to_owned(),
                    );
                    String::new()
                }
            };
            if let Some(fallback) = &rule.fallback {
                if !teams.contains_key(fallback) {
                    error(
                        format!("{}.fallback", entry("rules", i, &rule.name)),
                        format!(
                            "unknown team `{fallback}`, expected one of {}",
                            team_ids.join(", ")
                        ),
                    );
                } else if *fallback == team && rule.rep.is_none() {
                    error(
                        format!("{}.fallback", entry("rules", i, &rule.name)),
                        "a team cannot be its own fallback".to_owned(),
                    );
                }
            }
            match Condition::from_spec(&rule.when) {
                Ok(mut condition) => {
                    for note in condition.normalise_countries() {
                        notes.push(ModelWarning {
                            key: format!("{}.when", entry("rules", i, &rule.name)),
                            message: note,
                        });
                    }
                    if let Some(why) = never_matches(&condition, &rules) {
                        error(
                            entry("rules", i, &rule.name),
                            format!("rule `{}` can never match: {why}", rule.name),
                        );
                    }
                    rules.push(Rule {
                        name: rule.name.clone(),
                        team,
                        rep: rule.rep.clone(),
                        queue: rule.rep.as_ref().map(|rep| format!("{rep}-waiting")),
                        strategy: rule.strategy,
                        fallback: rule.fallback.clone(),
                        condition,
                    });
                }
                Err(message) => error(format!("{}.when", entry("rules", i, &rule.name)), message),
            }
        }

        let mut accounts = BTreeMap::new();
        for (i, account) in config.accounts.iter().enumerate() {
            if !home_team.contains_key(&account.owner) {
                error(
                    format!("{}.owner", entry("accounts", i, &account.name)),
                    format!(
                        "`{}` is not a rep of any team, expected one of {}",
                        account.owner,
                        rep_ids.join(", ")
                    ),
                );
            }
            for domain in &account.domains {
                let domain = domain.trim().to_lowercase();
                if !domain.contains('.') {
                    error(
                        format!("{}.domains", entry("accounts", i, &account.name)),
                        format!("`{domain}` is not a domain"),
                    );
                }
                if let Some((other, _)) = accounts.insert(
                    domain.clone(),
                    (account.name.clone(), account.owner.clone()),
                ) {
                    error(
                        format!("{}.domains", entry("accounts", i, &account.name)),
                        format!("`{domain}` already belongs to account `{other}`"),
                    );
                }
            }
        }

        if errors.is_empty() {
            Ok(Self {
                version: version.into(),
                unrouted_queue: config.unrouted_queue,
                accounts,
                free_mail: BTreeSet::new(),
                notes,
                home_team,
                sticky_seconds: sticky,
                explain_values: config.explain_values,
                teams,
                reps,
                rules,
            })
        } else {
            Err(errors)
        }
    }

    /// Free-mail domains (from the scoring model): never an account match.
    pub fn with_free_mail_domains<I: IntoIterator<Item = String>>(mut self, domains: I) -> Self {
        self.free_mail = domains.into_iter().map(|d| d.to_lowercase()).collect();
        self
    }

    /// What is allowed but almost surely a mistake, each named: an account domain that is
    /// free mail (no lead from it ever matches an account), a weight no strategy reads, a
    /// rep in no team (never routed to), a team no rule routes to.
    pub fn warnings(&self) -> Vec<ModelWarning> {
        let mut warnings = self.notes.clone();
        let weighted_team = |team: &str| {
            self.rules
                .iter()
                .any(|r| r.team == team && r.strategy == StrategyKind::WeightedRoundRobin)
        };
        for (id, rep) in &self.reps {
            let teams: Vec<&str> = self
                .teams
                .values()
                .filter(|t| t.members.contains(id))
                .map(|t| t.id.as_str())
                .collect();
            if teams.is_empty() {
                warnings.push(ModelWarning {
                    key: format!("reps[{id}]"),
                    message: format!("rep `{id}` is in no team: no lead is ever routed to them"),
                });
            } else if rep.weight != 1 && !teams.iter().any(|t| weighted_team(t)) {
                warnings.push(ModelWarning {
                    key: format!("reps[{id}].weight"),
                    message: format!(
                        "weight {} is ignored: no rule routes to {} with strategy = \"weighted_round_robin\"",
                        rep.weight,
                        teams.join(", ")
                    ),
                });
            }
        }
        for team in self.teams.values() {
            let used = self
                .rules
                .iter()
                .any(|r| r.team == team.id || r.fallback.as_deref() == Some(team.id.as_str()))
                || self
                    .teams
                    .values()
                    .any(|t| t.escalation.to_team.as_deref() == Some(team.id.as_str()));
            if !used {
                warnings.push(ModelWarning {
                    key: format!("teams[{}]", team.id),
                    message: format!(
                        "no rule routes to team `{}` (as its team, fallback or escalation target): its reps get leads only as account owners or by stickiness",
                        team.id
                    ),
                });
            }
        }
        for team in self.teams.values().filter(|t| t.catch_up_written) {
            let least_loaded = self.rules.iter().any(|r| {
                (r.team == team.id || r.fallback.as_deref() == Some(team.id.as_str()))
                    && r.strategy == StrategyKind::LeastLoaded
            });
            if !least_loaded {
                warnings.push(ModelWarning {
                    key: format!("teams[{}].catch_up", team.id),
                    message: format!(
                        "catch_up is ignored: no rule routes to `{}` with strategy = \"least_loaded\"",
                        team.id
                    ),
                });
            }
        }
        for (domain, (account, _)) in &self.accounts {
            if self.free_mail.contains(domain) {
                warnings.push(ModelWarning {
                    key: format!("accounts[{account}].domains"),
                    message: format!(
                        "`{domain}` is a free-mail domain (scoring.free_mail_domains): no lead from it ever matches an account"
                    ),
                });
            }
        }
        warnings
    }

    /// Whether a (lowercase) domain is free mail: never an account's.
    pub(crate) fn is_free_mail(&self, domain: &str) -> bool {
        self.free_mail.contains(domain)
    }

    /// The account a domain belongs to (subdomains included): (account, owner).
    pub fn account_of(&self, domain: &str) -> Option<(&str, &str)> {
        let domain = domain.to_lowercase();
        if domain.is_empty() || self.free_mail.contains(&domain) {
            return None;
        }
        let mut candidate = domain.as_str();
        loop {
            if let Some((name, owner)) = self.accounts.get(candidate) {
                return Some((name, owner));
            }
            candidate = candidate.split_once('.')?.1;
            if !candidate.contains('.') {
                return None;
            }
        }
    }

    /// The team a rep's owner-routed leads count in.
    pub fn home_team(&self, rep: &str) -> Option<&str> {
        self.home_team.get(rep).map(String::as_str)
    }

    /// How long a contact sticks to their rep, in seconds (0: never).
    pub fn sticky_seconds(&self) -> u64 {
        self.sticky_seconds
    }

    /// How long a contact sticks to their rep (zero: never).
    pub fn sticky_window(&self) -> chrono::TimeDelta {
        i64::try_from(self.sticky_seconds)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .unwrap_or(chrono::TimeDelta::MAX)
    }

    /// What explanations show of the lead.
    pub fn explain_values(&self) -> ExplainValues {
        self.explain_values
    }

    /// Content hash of the rules this model was built from.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn unrouted_queue(&self) -> &str {
        &self.unrouted_queue
    }

    /// Every queue a lead can wait in under these rules: the unrouted queue and each
    /// team's overflow queue, sorted, without repeats.
    pub fn queue_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = std::iter::once(self.unrouted_queue.as_str())
            .chain(self.teams.values().map(|t| t.overflow_queue.as_str()))
            .chain(self.rules.iter().filter_map(|r| r.queue.as_deref()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Team ids, sorted.
    pub fn team_ids(&self) -> impl Iterator<Item = &str> {
        self.teams.keys().map(String::as_str)
    }

    /// Members of a team in rotation order (empty for an unknown team).
    pub fn members(&self, team: &str) -> &[String] {
        self.teams.get(team).map_or(&[], |t| t.members.as_slice())
    }

    /// Rule names in evaluation order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// The team's rotation after `rep` took a turn, as the router stores it: derivable
    /// for round-robin and least-loaded (the rep chosen last and the next member), not
    /// for weighted round-robin (its credits depend on who was eligible at each turn):
    /// `None` when a rule routes to the team by weight, or the team is unknown.
    pub fn rotation_after(&self, team: &str, rep: &str) -> Option<String> {
        let members = &self.teams.get(team)?.members;
        let weighted = self
            .rules
            .iter()
            .any(|r| r.team == team && r.strategy == StrategyKind::WeightedRoundRobin);
        (!weighted && members.iter().any(|m| m == rep))
            .then(|| super::strategy::last_and_next(members, rep))
    }

    pub fn rep_ids(&self) -> impl Iterator<Item = &str> {
        self.reps.keys().map(String::as_str)
    }

    pub fn has_rep(&self, rep: &str) -> bool {
        self.reps.contains_key(rep)
    }

    /// The configured capacity of a rep (0 for an unknown rep: never eligible).
    pub fn rep_capacity(&self, rep: &str) -> u32 {
        self.reps.get(rep).map_or(0, |r| r.capacity)
    }

    /// The team's escalation policy as the rules file writes it (unset keys: defaults).
    pub fn escalation(&self, team: &str) -> EscalationConfig {
        self.teams
            .get(team)
            .map(|t| t.escalation.clone())
            .unwrap_or_default()
    }

    /// A team's own first-touch terms (window and clock), as the SLA policy takes them.
    pub fn team_sla(&self, team: &str) -> crate::sla::TeamSla {
        self.teams
            .get(team)
            .map(|t| crate::sla::TeamSla {
                first_touch_seconds: t.first_touch_seconds,
                first_touch_clock: t.first_touch_clock,
            })
            .unwrap_or_default()
    }

    pub fn disposition_seconds(&self, team: &str) -> Option<u32> {
        self.teams.get(team).and_then(|t| t.disposition_seconds)
    }

    /// When a rep works (`None` for a rep the rules do not know): business-hours clocks
    /// count their hours.
    pub fn rep_availability(&self, rep: &str) -> Option<&Availability> {
        self.reps.get(rep).map(|r| &r.availability)
    }

    /// Where a rep's notifications go: the rep's own channel, else their team's.
    pub fn rep_channel(&self, team: &str, rep: &str) -> Option<Channel> {
        self.reps
            .get(rep)
            .and_then(|r| r.webhook_url.as_ref())
            .map(|c| c.resolve(ChannelKind::Rep))
            .or_else(|| self.team_channel(team))
    }

    pub fn team_channel(&self, team: &str) -> Option<Channel> {
        self.teams
            .get(team)
            .and_then(|t| t.webhook_url.as_ref())
            .map(|c| c.resolve(ChannelKind::Team))
    }

    /// Where breaches and escalations go: the team's manager channel, else the team's.
    pub fn manager_channel(&self, team: &str) -> Option<Channel> {
        self.teams
            .get(team)
            .and_then(|t| t.manager_webhook_url.as_ref())
            .map(|c| c.resolve(ChannelKind::Manager))
            .or_else(|| self.team_channel(team))
    }

    pub(crate) fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub(crate) fn team(&self, id: &str) -> Option<&Team> {
        self.teams.get(id)
    }

    pub(crate) fn rep(&self, id: &str) -> Option<&Rep> {
        self.reps.get(id)
    }

    /// The model with `rep` added at the end of `team`'s rotation, as a replay's roster line
    /// adds a member mid-way. A rep the rules file does not know comes with `capacity`,
    /// weight 1, active, no channel of their own, and the team's hours (its `time_zone`,
    /// `working_hours`, `holidays` and `holiday_calendar`); a rep it knows keeps their own.
    /// Already a member: unchanged. The error says what is wrong.
    pub fn with_member(&self, team: &str, rep: &str, capacity: u32) -> Result<Self, String> {
        let mut model = self.clone();
        let Some(joined) = model.teams.get_mut(team) else {
            let known: Vec<&str> = self.team_ids().collect();
            return Err(format!(
                "unknown team `{team}`, expected one of {}",
                known.join(", ")
            ));
        };
        if joined.members.iter().any(|m| m == rep) {
            return Ok(model);
        }
        joined.members.push(rep.to_owned());
        let availability = joined.availability.clone();
        model.reps.entry(rep.to_owned()).or_insert_with(|| Rep {
            capacity,
            daily_cap: None,
            weight: 1,
            active: true,
            availability,
            webhook_url: None,
        });
        model
            .home_team
            .entry(rep.to_owned())
            .or_insert_with(|| team.to_owned());
        Ok(model)
    }

    /// The hours of a member of `team` who sets none of their own (`None`: unknown team).
    pub fn team_availability(&self, team: &str) -> Option<&Availability> {
        self.teams.get(team).map(|t| &t.availability)
    }

    /// Whether the rules file has the rep active (runtime overrides aside).
    pub fn rep_active(&self, rep: &str) -> bool {
        self.reps.get(rep).is_some_and(|r| r.active)
    }

    /// A rep's weight under weighted round-robin (1 for an unknown rep).
    pub fn rep_weight(&self, rep: &str) -> u32 {
        self.reps.get(rep).map_or(1, |r| r.weight)
    }

    /// The share of a team's leads each member should get: by weight when a
    /// weighted round-robin rule routes to the team, else equal. Inactive reps get none.
    pub fn target_shares(&self, team: &str) -> Vec<(String, f64)> {
        self.target_shares_when(team, |rep| self.rep_active(rep))
    }

    /// [`Self::target_shares`] with `active` saying who is active (runtime overrides).
    pub fn target_shares_when(
        &self,
        team: &str,
        active: impl Fn(&str) -> bool,
    ) -> Vec<(String, f64)> {
        let weighted = self
            .rules
            .iter()
            .any(|r| r.team == team && r.strategy == StrategyKind::WeightedRoundRobin);
        let members = self.members(team);
        let weight = |rep: &str| -> f64 {
            match self.reps.get(rep) {
                Some(r) if active(rep) => {
                    if weighted {
                        f64::from(r.weight)
                    } else {
                        1.0
                    }
                }
                _ => 0.0,
            }
        };
        let total: f64 = members.iter().map(|m| weight(m)).sum();
        members
            .iter()
            .map(|m| (m.clone(), if total > 0.0 { weight(m) / total } else { 0.0 }))
            .collect()
    }

    /// A rep's daily cap, if any.
    pub fn rep_daily_cap(&self, rep: &str) -> Option<u32> {
        self.reps.get(rep).and_then(|r| r.daily_cap)
    }
}
