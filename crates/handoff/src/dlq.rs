//! `handoff dlq list / show / replay`: the dead-letter topic (`<prefix>deadletter`) for
//! operators. A dead letter is the original record (key, payload, headers) plus headers
//! naming where it came from and why it failed (`handoff_dlq_*`, handoff_kafka::DLQ_HEADERS).
//!
//! Nothing here prints a person's details unless asked: `list` shows ids, reasons and
//! origins; `show` masks the payload (handoff_domain::privacy::mask_personal_data) unless
//! `--reveal`. Replay re-sends the original record to its origin topic, same key, same
//! event id, so consumers that applied it before recognise it: every effect in handoff is
//! idempotent per event (docs/delivery.md), which is what makes replaying twice harmless.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};

use handoff_config::KafkaSettings;
use handoff_kafka::{InboundEvent, Topics, DLQ_HEADERS};

/// How long a read may go without a record or a partition's end before it fails.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A dead letter's place: `PARTITION:OFFSET` on the dead-letter topic, as `list` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl FromStr for Position {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not PARTITION:OFFSET (as `handoff dlq list` prints it)");
        let (partition, offset) = text.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            partition: partition.trim().parse().map_err(|_| bad())?,
            offset: offset.trim().parse().map_err(|_| bad())?,
        })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

/// A moment given on the command line: RFC 3339 (`2026-12-07T10:00:00Z`), or a time ago
/// (`90s`, `30m`, `2h`, `7d`, `1w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    At(DateTime<Utc>),
    Ago(chrono::Duration),
}

impl Moment {
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::At(at) => at,
            Self::Ago(ago) => now - ago,
        }
    }
}

impl FromStr for Moment {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self::At(at.with_timezone(&Utc)));
        }
        let bad = || format!("{text:?} is neither RFC 3339 nor a time ago like 30m, 2h, 7d");
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| bad())?;
        let ago = match unit {
            "s" => chrono::Duration::try_seconds(number),
            "m" => chrono::Duration::try_minutes(number),
            "h" => chrono::Duration::try_hours(number),
            "d" => chrono::Duration::try_days(number),
            "w" => chrono::Duration::try_weeks(number),
            _ => None,
        }
        .ok_or_else(bad)?;
        Ok(Self::Ago(ago))
    }
}

/// Which dead letters a command is about; every given criterion must hold.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `handoff_dlq_reason` (undecodable, contract_invalid, delivery_failed, …).
    pub reason: Option<String>,
    /// The origin topic, by its full name or without the deployment's prefix
    /// (`lead.created`).
    pub origin_topic: Option<String>,
    /// Dead-lettered at or after (the dead letter's record time).
    pub since: Option<DateTime<Utc>>,
    /// Dead-lettered before.
    pub until: Option<DateTime<Utc>>,
    /// These dead letters only (none: any).
    pub positions: Vec<Position>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.reason.is_none()
            && self.origin_topic.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.positions.is_empty()
    }

    /// `topic_prefix`: the deployment's (`kafka.topic_prefix`), for origin topics given without it.
    pub fn matches(&self, topic_prefix: &str, record: &InboundEvent) -> bool {
        let header = |name: &str| record.header(name);
        let position = Position {
            partition: record.partition,
            offset: record.offset,
        };
        self.reason
            .as_deref()
            .is_none_or(|r| header(DLQ_HEADERS[3]) == Some(r))
            && self.origin_topic.as_deref().is_none_or(|t| {
                let origin = header(DLQ_HEADERS[0]);
                origin == Some(t) || origin == Some(format!("{topic_prefix}{t}").as_str())
            })
            && self
                .since
                .is_none_or(|since| record.timestamp.is_some_and(|at| at >= since))
            && self
                .until
                .is_none_or(|until| record.timestamp.is_some_and(|at| at < until))
            && (self.positions.is_empty() || self.positions.contains(&position))
    }
}

/// Every dead letter of the deployment, oldest first per partition.
pub async fn read(settings: &KafkaSettings) -> anyhow::Result<Vec<InboundEvent>> {
    let topic = topics(settings).dead_letter();
    handoff_kafka::read_to_end(settings, &topic, READ_TIMEOUT)
        .await
        .with_context(|| format!("cannot read the dead-letter topic {topic}"))
}

pub fn topics(settings: &KafkaSettings) -> Topics {
    Topics::new(settings.topic_prefix.clone())
}

/// One line per dead letter: where it is, when it was dead-lettered, where it came from,
/// why, and the ids that find it elsewhere. No payload: no personal data.
pub fn list_line(record: &InboundEvent) -> String {
    let header = |name: &str| record.header(name).unwrap_or("-");
    let time = record.timestamp.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let lead = record
        .header("ce_subject")
        .map(str::to_owned)
        .or_else(|| {
            record
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
        })
        .unwrap_or_else(|| "-".to_owned());
    let mut line = format!(
        "{}:{}  {time}  {}[{}]@{}  {}  service={}  event={}  lead={lead}  error={}",
        record.partition,
        record.offset,
        header(DLQ_HEADERS[0]),
        header(DLQ_HEADERS[1]),
        header(DLQ_HEADERS[2]),
        header(DLQ_HEADERS[3]),
        header(DLQ_HEADERS[5]),
        header("ce_id"),
        header(DLQ_HEADERS[4]),
    );
    if let Some(from) = record.header(handoff_kafka::REPLAYED_FROM_HEADER) {
        let _ = write!(line, "  replayed_from={from}");
    }
    line
}

/// A dead letter in full: its headers, then its payload, the person's details masked
/// unless `reveal`.
pub fn show(record: &InboundEvent, reveal: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "dead letter {}:{}", record.partition, record.offset);
    if let Some(time) = record.timestamp {
        let _ = writeln!(
            out,
            "time: {}",
            time.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
    }
    if let Some(key) = &record.key {
        let _ = writeln!(out, "key: {}", String::from_utf8_lossy(key));
    }
    out.push_str("headers:\n");
    for (key, value) in &record.headers {
        let _ = writeln!(out, "  {key}: {}", String::from_utf8_lossy(value));
    }
    let payload = record.payload.as_deref().unwrap_or_default();
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(mut json) => {
            if !reveal {
                handoff_domain::privacy::mask_personal_data(&mut json);
            }
            let label = if reveal {
                "payload:"
            } else {
                "payload (personal data masked; --reveal shows it as stored):"
            };
            let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
            let _ = writeln!(out, "{label}\n{pretty}");
        }
        Err(_) if reveal => {
            let _ = writeln!(
                out,
                "payload ({} bytes, not JSON):\n{}",
                payload.len(),
                String::from_utf8_lossy(payload)
            );
        }
        Err(_) => {
            let _ = writeln!(
                out,
                "payload: {} bytes, not JSON (not shown: it may hold personal data; --reveal shows it)",
                payload.len()
            );
        }
    }
    out
}

/// Re-sends the selected dead letters to their origin topics (or, `dry_run`, says what it
/// would send and sends nothing). Returns the report to print.
pub async fn replay(
    settings: &KafkaSettings,
    selected: &[InboundEvent],
    dry_run: bool,
) -> anyhow::Result<String> {
    let topics = topics(settings);
    let mut out = String::new();
    if dry_run {
        for record in selected {
            let _ = writeln!(
                out,
                "would replay {}:{} to {} (event {})",
                record.partition,
                record.offset,
                record.header(DLQ_HEADERS[0]).unwrap_or("-"),
                record.ce_id().unwrap_or("-"),
            );
        }
        let _ = writeln!(
            out,
            "dry run: {} dead letters would be replayed; nothing was sent",
            selected.len()
        );
        return Ok(out);
    }
    let replayed = handoff_kafka::replay(settings, &topics.dead_letter(), selected, &topics.all())
        .await
        .context("replay failed (records acknowledged before the failure stay sent; replaying them again is harmless)")?;
    for r in &replayed {
        let _ = writeln!(
            out,
            "replayed {}:{} to {}[{}]@{}",
            r.dead_letter.0, r.dead_letter.1, r.topic, r.partition, r.offset
        );
    }
    let _ = writeln!(out, "{} dead letters replayed", replayed.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_moments_parse_as_documented() {
        assert_eq!(
            "2:41".parse::<Position>(),
            Ok(Position {
                partition: 2,
                offset: 41
            })
        );
        assert!("41".parse::<Position>().is_err());
        let now = Utc::now();
        assert_eq!(
            "2h".parse::<Moment>().map(|m| m.resolve(now)),
            Ok(now - chrono::Duration::hours(2))
        );
        assert_eq!(
            "2026-12-07T10:00:00Z"
                .parse::<Moment>()
                .map(|m| m.resolve(now).to_rfc3339()),
            Ok("2026-12-07T10:00:00+00:00".to_owned())
        );
        assert!("2 hours".parse::<Moment>().is_err());
        assert!("h".parse::<Moment>().is_err());
    }
}
