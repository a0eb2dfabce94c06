//! The chaos oracle: after a run has drained, it reads every topic from its beginning and
//! the lead records in Redis, and says what went wrong, as one line (docs/chaos.md has the
//! definitions):
//!
//! `leads=N assigned_once=… lost=0 double_assigned=0 capacity_drift=0 missed_breaches=0
//! duplicate_breaches=0 breaches_for_touched=0 duplicate_notifications=… dlq=… p99_assign_ms=…`

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use handoff_domain::events::EventKind;
use handoff_domain::lifecycle::LeadState;
use handoff_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use handoff_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use handoff_kafka::Topics;
use handoff_store::Store;

use crate::topics::Record;

/// A deadline passes this long before the oracle looks, or it is not counted as missed
/// (the tracker polls, publishing takes a moment).
const BREACH_GRACE: Duration = Duration::from_secs(5);

/// What the run left behind, as the oracle counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub leads: usize,
    pub assigned_once: usize,
    pub lost: usize,
    pub double_assigned: usize,
    pub capacity_drift: i64,
    pub missed_breaches: usize,
    pub duplicate_breaches: usize,
    pub breaches_for_touched: usize,
    pub duplicate_notifications: usize,
    pub dlq: usize,
    pub p99_assign_ms: i64,
    /// A few examples of each failure, for the log (not part of the line).
    pub examples: Vec<String>,
}

impl Report {
    /// The counts that must be zero for a run to pass.
    pub fn failures(&self) -> Vec<&'static str> {
        [
            ("lost", self.lost != 0),
            ("double_assigned", self.double_assigned != 0),
            ("capacity_drift", self.capacity_drift != 0),
            ("missed_breaches", self.missed_breaches != 0),
            ("duplicate_breaches", self.duplicate_breaches != 0),
        ]
        .into_iter()
        .filter_map(|(name, bad)| bad.then_some(name))
        .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "leads={} assigned_once={} lost={} double_assigned={} capacity_drift={} \
             missed_breaches={} duplicate_breaches={} breaches_for_touched={} \
             duplicate_notifications={} dlq={} p99_assign_ms={}",
            self.leads,
            self.assigned_once,
            self.lost,
            self.double_assigned,
            self.capacity_drift,
            self.missed_breaches,
            self.duplicate_breaches,
            self.breaches_for_touched,
            self.duplicate_notifications,
            self.dlq,
            self.p99_assign_ms
        )
    }
}

/// Everything the oracle reads.
#[derive(Debug, Default)]
pub struct Observed {
    /// Leads the traffic had accepted (202 or acknowledged by the broker).
    pub accepted: BTreeSet<String>,
    pub created: Vec<Record>,
    pub assigned: Vec<Record>,
    pub breached: Vec<Record>,
    pub dispositions: Vec<Record>,
    pub dead_letters: Vec<Record>,
    /// The lead records in Redis, by lead id (absent: no record).
    pub leads: HashMap<String, LeadFacts>,
    /// Each rep's open count in Redis.
    pub open_in_redis: BTreeMap<String, i64>,
    /// Webhook deliveries per `Handoff-Event-Id`.
    pub notifications: HashMap<String, usize>,
    pub now: DateTime<Utc>,
}

/// What the oracle needs of a lead's record in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadFacts {
    pub state: LeadState,
    pub touched_ms: Option<i64>,
}

/// Reads every topic of `topics` on `bootstrap` from its beginning to its end (as it is
/// when the read starts).
pub async fn read_topics(bootstrap: &str, topics: &Topics) -> anyhow::Result<Observed> {
    let read = |topic: String| {
        let bootstrap = bootstrap.to_owned();
        tokio::task::spawn_blocking(move || read_topic_retrying(&bootstrap, &topic))
    };
    Ok(Observed {
        created: read(topics.of(EventKind::LeadCreated)).await??,
        assigned: read(topics.of(EventKind::LeadAssigned)).await??,
        breached: read(topics.of(EventKind::SlaBreached)).await??,
        dispositions: read(topics.of(EventKind::LeadDisposition)).await??,
        dead_letters: read(topics.dead_letter()).await??,
        now: Utc::now(),
        ..Observed::default()
    })
}

/// Fills in what Redis holds of every lead seen (on a topic or accepted) and the reps' open
/// counts.
pub async fn read_redis(
    observed: &mut Observed,
    redis_url: &str,
    key_prefix: &str,
    reps: &[&str],
) -> anyhow::Result<()> {
    let store = Store::connect(redis_url, key_prefix).await?;
    let ids: BTreeSet<String> = observed
        .accepted
        .iter()
        .cloned()
        .chain(
            observed
                .created
                .iter()
                .filter_map(|r| r.header("ce_subject").map(str::to_owned)),
        )
        .collect();
    for id in ids {
        if let Some(record) = store.lead(&id).await? {
            observed.leads.insert(
                id,
                LeadFacts {
                    state: record.state,
                    touched_ms: record.touched_ms,
                },
            );
        }
    }
    let client = redis::Client::open(redis_url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let now_ms = Utc::now().timestamp_millis();
    for rep in reps {
        // Members are scored by until when they may count (ADR 0006).
        let open: i64 = redis::cmd("ZCOUNT")
            .arg(format!("{{{key_prefix}}}:rep:{rep}:open"))
            .arg(now_ms)
            .arg("+inf")
            .query_async(&mut connection)
            .await?;
        observed.open_in_redis.insert((*rep).to_owned(), open);
    }
    Ok(())
}

/// High watermarks summed over every partition of `topics`: it stops moving when the
/// system is quiet.
pub fn log_end(bootstrap: &str, topics: &[String]) -> anyhow::Result<i64> {
    let consumer = reader(bootstrap)?;
    let mut total = 0;
    for topic in topics {
        for partition in partitions(&consumer, topic)? {
            let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
            total += high;
        }
    }
    Ok(total)
}

fn reader(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("oracle-{}", crate::unique_id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?)
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// [`read_topic`], read again (by a new client) after a failure, three times in all: a
/// metadata or watermark request that times out on a loaded box must not turn a run's
/// verdict into "no verdict".
fn read_topic_retrying(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<Record>> {
    let mut attempt = 1;
    loop {
        match read_topic(bootstrap, topic) {
            Ok(records) => return Ok(records),
            Err(e) if attempt < 3 => {
                eprintln!(
                    "oracle: reading {topic} failed (attempt {attempt}): {e:#}; reading again"
                );
                attempt += 1;
            }
            Err(e) => return Err(e.context(format!("reading {topic}, {attempt} attempts"))),
        }
    }
}

pub fn read_topic(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<Record>> {
    use handoff_kafka::rdkafka::message::Message as _;
    let consumer = reader(bootstrap)?;
    let mut ends = BTreeMap::new();
    let mut list = TopicPartitionList::new();
    for partition in partitions(&consumer, topic)? {
        let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        if high > low {
            ends.insert(partition, high);
            list.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&list)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut last_error = None;
    while !ends.is_empty() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "reading {topic}: partitions {:?} did not reach their end within 2 minutes (last client error: {last_error:?})",
            ends.keys().collect::<Vec<_>>()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        // librdkafka reports a broker it lost touch with (a transport failure on a busy
        // box) as an error event and reconnects by itself: keep reading, as the services'
        // consume loop does (handoff-kafka's consumer.rs).
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                last_error = Some(e.to_string());
                continue;
            }
        };
        let partition = message.partition();
        records.push(crate::topics::to_record(&message));
        if ends
            .get(&partition)
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&partition);
        }
    }
    Ok(records)
}

fn time_of(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    value.as_str()?.parse().ok()
}

/// One assignment as the oracle needs it.
struct Assigned {
    event_id: String,
    rep: String,
    due: Option<DateTime<Utc>>,
    assign_ms: Option<i64>,
}

/// Counts what went wrong (docs/chaos.md, "What the oracle counts").
pub fn judge(observed: &Observed) -> Report {
    let mut report = Report::default();
    let example = |report: &mut Report, what: String| {
        if report.examples.len() < 20 {
            report.examples.push(what);
        }
    };

    // lead -> attempt -> its assignments (a redelivery repeats the same event id).
    let mut assignments: BTreeMap<String, BTreeMap<u64, Vec<Assigned>>> = BTreeMap::new();
    for record in &observed.assigned {
        let event = record.json();
        let (Some(lead), Some(attempt)) = (event["lead_id"].as_str(), event["attempt"].as_u64())
        else {
            continue;
        };
        let assign_ms = match (
            time_of(&event["received_at"]),
            time_of(&event["assigned_at"]),
        ) {
            (Some(received), Some(assigned)) => Some((assigned - received).num_milliseconds()),
            _ => None,
        };
        assignments
            .entry(lead.to_owned())
            .or_default()
            .entry(attempt)
            .or_default()
            .push(Assigned {
                event_id: record.header("ce_id").unwrap_or_default().to_owned(),
                rep: event["rep_id"].as_str().unwrap_or_default().to_owned(),
                due: time_of(&event["first_touch_due_at"]),
                assign_ms,
            });
    }
    // Leads whose first decision was nurture or a queue.
    let decided: BTreeSet<&str> = observed
        .dispositions
        .iter()
        .filter(|r| {
            let outcome = r.json()["outcome"].clone();
            outcome == "UNQUALIFIED" || outcome == "OVERFLOWED"
        })
        .filter_map(|r| r.header("ce_subject"))
        .collect();
    // Breaches: (lead, attempt, sla) -> distinct event ids.
    let mut breaches: BTreeMap<(String, u64, String), BTreeSet<String>> = BTreeMap::new();
    for record in &observed.breached {
        let event = record.json();
        let (Some(lead), Some(attempt)) = (event["lead_id"].as_str(), event["attempt"].as_u64())
        else {
            continue;
        };
        let sla = event["sla"].as_str().unwrap_or("FIRST_TOUCH").to_owned();
        breaches
            .entry((lead.to_owned(), attempt, sla))
            .or_default()
            .insert(record.header("ce_id").unwrap_or_default().to_owned());
    }

    let created: BTreeSet<&str> = observed
        .created
        .iter()
        .filter_map(|r| r.header("ce_subject"))
        .collect();
    let leads: BTreeSet<&str> = observed
        .accepted
        .iter()
        .map(String::as_str)
        .chain(
            observed
                .created
                .iter()
                .filter_map(|r| r.header("ce_subject")),
        )
        .collect();
    report.leads = leads.len();
    let mut assign_ms = Vec::new();
    let mut expected_open: BTreeMap<String, i64> = BTreeMap::new();
    for lead in &leads {
        let facts = observed.leads.get(*lead);
        let attempts = assignments.get(*lead);
        let waiting_or_nurtured =
            facts.is_some_and(|f| matches!(f.state, LeadState::Waiting | LeadState::Unqualified));
        if attempts.is_none() && !decided.contains(lead) && !waiting_or_nurtured {
            report.lost += 1;
            example(
                &mut report,
                format!(
                    "lost: {lead} (redis: {:?}; on lead.created: {}; accepted: {})",
                    facts.map(|f| f.state),
                    created.contains(lead),
                    observed.accepted.contains(*lead)
                ),
            );
        }
        let Some(attempts) = attempts else { continue };
        for (attempt, records) in attempts {
            let ids: BTreeSet<&str> = records.iter().map(|a| a.event_id.as_str()).collect();
            let reps: BTreeSet<&str> = records.iter().map(|a| a.rep.as_str()).collect();
            if ids.len() > 1 || reps.len() > 1 {
                report.double_assigned += 1;
                example(
                    &mut report,
                    format!("double: {lead} attempt {attempt} to {reps:?} as {ids:?}"),
                );
            } else if *attempt == 1 {
                report.assigned_once += 1;
            }
            if *attempt == 1 {
                assign_ms.extend(records.first().and_then(|a| a.assign_ms));
            }
            let Some(due) = records.first().and_then(|a| a.due) else {
                continue;
            };
            let touched_in_time = facts
                .and_then(|f| f.touched_ms)
                .is_some_and(|t| t <= due.timestamp_millis());
            let breach = breaches.get(&((*lead).to_owned(), *attempt, "FIRST_TOUCH".to_owned()));
            if touched_in_time && breach.is_some() {
                report.breaches_for_touched += 1;
            }
            let overdue = due + BREACH_GRACE < observed.now;
            if overdue && !touched_in_time && breach.is_none() {
                report.missed_breaches += 1;
                example(
                    &mut report,
                    format!(
                        "missed breach: {lead} attempt {attempt} due {due}; redis: {facts:?}; attempts: {:?}",
                        attempts.keys().collect::<Vec<_>>()
                    ),
                );
            }
        }
        // The current assignment holds capacity until the first touch (or a close).
        if let (Some(rep), Some(LeadState::Assigned)) = (
            attempts
                .last_key_value()
                .and_then(|(_, r)| r.first())
                .map(|a| a.rep.clone()),
            facts.map(|f| f.state),
        ) {
            *expected_open.entry(rep).or_default() += 1;
        }
    }
    for ((lead, attempt, sla), ids) in &breaches {
        if ids.len() > 1 {
            report.duplicate_breaches += 1;
            example(
                &mut report,
                format!("duplicate breach: {lead} attempt {attempt} {sla}: {ids:?}"),
            );
        }
    }
    for (rep, open) in &observed.open_in_redis {
        let expected = expected_open.get(rep).copied().unwrap_or(0);
        if *open != expected {
            example(
                &mut report,
                format!("capacity drift: rep {rep} holds {open} in Redis, events say {expected}"),
            );
        }
        report.capacity_drift += (open - expected).abs();
    }
    report.duplicate_notifications = observed
        .notifications
        .values()
        .map(|n| n.saturating_sub(1))
        .sum();
    report.dlq = observed.dead_letters.len();
    assign_ms.sort_unstable();
    report.p99_assign_ms = percentile(&assign_ms, 0.99);
    report
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank.
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_count_in_order() {
        let line = Report {
            leads: 3,
            assigned_once: 2,
            p99_assign_ms: 40,
            ..Report::default()
        }
        .to_string();
        assert_eq!(
            line,
            "leads=3 assigned_once=2 lost=0 double_assigned=0 capacity_drift=0 missed_breaches=0 \
             duplicate_breaches=0 breaches_for_touched=0 duplicate_notifications=0 dlq=0 p99_assign_ms=40"
        );
    }

    #[test]
    fn the_99th_percentile_is_the_nearest_rank() {
        let values: Vec<i64> = (1..=200).collect();
        assert_eq!(percentile(&values, 0.99), 198);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.99), 0);
    }
}
