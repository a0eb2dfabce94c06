//! Rebuilding the Redis state from the event log (docs/operations.md).
//!
//! ```text
//!  end offsets ──► index every retained record up to them (one reader, no group):
//!                   its place in the order below, not the record
//!      ──► order by record time (lead.created before what follows it)
//!      ──► read the records again in that order, a few per partition at a time
//!      ──► replay through the lifecycle's own idempotent steps:
//!            lead.created      record the lead; its idempotency mark (headers)
//!            lead.assigned     adopt (capacity, deadline, reminders); daily count,
//!                              sticky owner, the team's turn
//!            lead.disposition  nurture / queue decision, touch or close, escalation
//!            sla.breached      that deadline fired already: forget it
//!            sla.reminder      that reminder went out already: forget it
//!            account.owner     the account's owner
//!            rep.state         a rep's runtime overrides (the latest wins)
//!      ──► deadlines already passed: fire now, marked late, once
//!      ──► reconcile capacity, write the new generation marker
//! ```
//! Every step is idempotent, so a rebuild over a state that survived in part (a failover
//! that lost some writes, an old snapshot) brings it forward instead of doubling it, and a
//! rebuild that died half-way can simply run again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};

use handoff_config::{RulesHandle, Settings};
use handoff_domain::assignment::Assignment;
use handoff_domain::disposition::Outcome;
use handoff_domain::events::{EventKind, LeadAssigned, LeadDisposition, SlaBreached, SlaReminder};
use handoff_domain::lead::LeadPayload;
use handoff_domain::rep_overrides::RepOverrides;
use handoff_domain::submission::check_lead;
use handoff_domain::{LeadId, RepId, TeamId, Transience};
use handoff_kafka::{
    index_log, log_position, read_in_order, EventHandler, EventProducer, HandleError, InboundEvent,
    LogPosition, LogRecord, OutboundEvent, RecordAt, TraceParent, IDEMPOTENCY_FINGERPRINT_HEADER,
    IDEMPOTENCY_KEY_HEADER, LATE_REASON_HEADER,
};
use handoff_store::{
    ClaimRequest, DueBreach, Generation, Parked, Store, StoreError, TimelineEntry,
};
use handoff_telemetry::Metrics;

/// The idempotency scope of lead submissions (ingest's `leads.rs`).
const LEAD_IDEMPOTENCY_SCOPE: &str = "lead";
/// Why a breach fired by the rebuild is late (the `handoff_late_reason` header).
pub const LATE_REASON: &str = "state_rebuilt";
/// Deadlines claimed per round when firing the passed ones.
const LATE_BATCH: u32 = 500;

/// What a rebuild needs: the deployment's configuration and its connections.
#[derive(Debug, Clone)]
pub struct RebuildDeps {
    pub store: Store,
    pub settings: Settings,
    pub rules: RulesHandle,
    /// Publishes the breaches that passed while the state was lost.
    pub producer: EventProducer,
    pub metrics: Metrics,
}

/// What a rebuild did, for people and for docs/operations.md's figures.
#[derive(Debug, Default, Clone)]
pub struct RebuildReport {
    /// Records read from the log.
    pub records: usize,
    /// Leads recorded, and leads skipped as older than `redis.lead_retention_days`.
    pub leads: usize,
    pub expired: usize,
    /// Assignments adopted (open or not), nurture and queue decisions recorded.
    pub assignments: usize,
    pub decisions: usize,
    /// Touches and closes applied.
    pub reports: usize,
    /// Breaches and reminders already published (their deadlines forgotten).
    pub breaches: usize,
    pub reminders: usize,
    /// Deadlines that passed while the state was lost, fired now (marked late).
    pub late_breaches: usize,
    pub idempotency_marks: usize,
    pub account_owners: usize,
    /// Reps' runtime overrides restored (records applied; the latest per rep wins).
    pub rep_overrides: usize,
    /// Team rotations restored.
    pub rotations: usize,
    /// Records that could not be replayed (undecodable, or refused by a step for good).
    pub skipped: usize,
    /// Capacity entries the final reconciliation repaired.
    pub repaired: u64,
    pub read_seconds: f64,
    pub replay_seconds: f64,
    /// The log position the rebuilt state is consistent with.
    pub position: LogPosition,
    /// The new generation.
    pub generation: Option<String>,
}

/// Why one record could not be replayed.
enum Skip {
    /// Undecodable or refused for good: counted, logged, the rebuild goes on.
    Record(String),
    /// Redis or the broker failed: the rebuild stops (and can be run again).
    Fatal(anyhow::Error),
}

impl From<HandleError> for Skip {
    fn from(error: HandleError) -> Self {
        Skip::Record(error.to_string())
    }
}

impl From<StoreError> for Skip {
    fn from(error: StoreError) -> Self {
        if error.is_transient() {
            Skip::Fatal(error.into())
        } else {
            Skip::Record(error.to_string())
        }
    }
}

/// A lead seen in `lead.created` whose routing is not over yet: what a later step needs.
struct Pending {
    received_at: DateTime<Utc>,
    /// The lead as the router stores it while it waits in a queue.
    json: String,
    /// The contact's email, when sticky routing is on.
    email: Option<String>,
}

/// The topics a rebuild reads.
fn topics(producer: &EventProducer) -> Vec<String> {
    let topics = producer.topics();
    let mut names: Vec<String> = [
        EventKind::LeadCreated,
        EventKind::LeadAssigned,
        EventKind::LeadDisposition,
        EventKind::SlaBreached,
        EventKind::SlaReminder,
    ]
    .into_iter()
    .map(|kind| topics.of(kind))
    .collect();
    names.push(topics.account_owner());
    names.push(topics.rep_state());
    names
}

/// The end offsets of the topics a rebuild reads (what a fresh deployment checks for
/// emptiness, and what a generation records).
pub async fn current_position(
    settings: &Settings,
    producer: &EventProducer,
) -> anyhow::Result<LogPosition> {
    log_position(&settings.kafka, &topics(producer), Duration::from_secs(10))
        .await
        .with_context(|| {
            format!(
                "cannot read the topics' offsets from {}",
                settings.kafka.bootstrap_servers
            )
        })
}

/// Rebuilds the state from the log and writes the new generation marker. The caller holds
/// the rebuild lease and has stopped new work.
///
/// The log is read twice (handoff-kafka's `index_log`, then `read_in_order`): first only
/// each record's place in the replay's order, then the records themselves in that order, so
/// memory holds 32 bytes per record and a few records per partition, not the log
/// (docs/operations.md has the figures).
pub async fn rebuild(deps: &RebuildDeps) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    let position = current_position(&deps.settings, &deps.producer).await?;
    let read_timeout = Duration::from_secs(30);
    let mut index = index_log(&deps.settings.kafka, &position, read_timeout, order)
        .await
        .context("cannot read the event log")?;
    index.sort_unstable_by_key(|(key, at)| (*key, at.partition, at.offset, at.topic));
    let order: Vec<RecordAt> = index.into_iter().map(|(_, at)| at).collect();
    let mut report = RebuildReport {
        records: order.len(),
        read_seconds: started.elapsed().as_secs_f64(),
        ..RebuildReport::default()
    };
    tracing::info!(
        records = order.len(),
        "indexed the event log; replaying it into Redis in record-time order"
    );
    let replay_started = Instant::now();
    let mut records = read_in_order(&deps.settings.kafka, &position, order, read_timeout);
    let mut replay = Replay::new(deps);
    while let Some(record) = records.recv().await {
        let event = match record.context("cannot read the event log")? {
            LogRecord::Read(event) => event,
            LogRecord::Gone {
                topic,
                partition,
                offset,
            } => {
                report.skipped += 1;
                tracing::warn!(%topic, partition, offset, "record not replayed: retention or compaction removed it during the rebuild");
                continue;
            }
        };
        match replay.apply(&event, &mut report).await {
            Ok(()) => {}
            Err(Skip::Record(why)) => {
                report.skipped += 1;
                tracing::warn!(topic = %event.topic, partition = event.partition, offset = event.offset, reason = %why, "record not replayed");
            }
            Err(Skip::Fatal(e)) => {
                return Err(e.context(format!(
                    "rebuild stopped at {}[{}] offset {} (run it again: every step is idempotent)",
                    event.topic, event.partition, event.offset
                )))
            }
        }
    }
    replay.restore_rotations(&mut report).await?;
    fire_late(deps, &mut report).await?;
    let rules = deps.rules.current();
    report.repaired = deps
        .store
        .reconcile(
            rules.routing.rep_ids(),
            deps.settings.sla.release_capacity_on,
            lead_retention(&deps.settings).as_secs(),
        )
        .await
        .context("reconciling capacity after the replay")?
        .total();
    report.replay_seconds = replay_started.elapsed().as_secs_f64();
    let generation = Generation::new(
        "rebuild",
        serde_json::to_string(&position.topics).unwrap_or_default(),
    );
    deps.store
        .replace_generation(&generation)
        .await
        .context("cannot write the new generation marker")?;
    report.position = position;
    report.generation = Some(generation.id);
    Ok(report)
}

/// Log order: account owners and rep overrides first (they depend on nothing; a rep's
/// records in offset order, so the latest wins), then the lead events by
/// record time, a lead's creation before what follows it in the same millisecond. Ties are
/// broken by partition, offset and topic (the index sort).
fn order(event: &InboundEvent) -> (u8, i64, u8) {
    let (group, rank) = match event.kind() {
        Some(EventKind::LeadCreated) => (1, 0),
        Some(EventKind::LeadAssigned) => (1, 1),
        Some(EventKind::LeadDisposition) => (1, 2),
        Some(EventKind::SlaBreached) => (1, 3),
        Some(EventKind::SlaReminder) => (1, 4),
        None => (0, 0),
    };
    let at = event.timestamp.map_or(0, |t| t.timestamp_millis());
    (group, at, rank)
}

fn lead_retention(settings: &Settings) -> Duration {
    Duration::from_secs(u64::from(settings.redis.lead_retention_days) * 86_400)
}

fn closed_retention(settings: &Settings) -> Duration {
    Duration::from_secs(u64::from(settings.redis.closed_lead_retention_days) * 86_400)
}

struct Replay<'a> {
    deps: &'a RebuildDeps,
    clocks: handoff_sla::Clocks,
    owners: handoff_router::AccountOwnerHandler,
    now: DateTime<Utc>,
    pending: HashMap<LeadId, Pending>,
    /// Leads older than the retention: nothing of theirs is restored.
    expired: HashSet<LeadId>,
    /// Each team's latest turn (round-robin and least-loaded), in log order.
    turns: BTreeMap<TeamId, RepId>,
}

impl<'a> Replay<'a> {
    fn new(deps: &'a RebuildDeps) -> Self {
        Self {
            deps,
            clocks: handoff_sla::Clocks::new(&deps.settings.sla, deps.rules.clone()),
            owners: handoff_router::AccountOwnerHandler::new(
                deps.store.clone(),
                deps.metrics.clone(),
            ),
            now: Utc::now(),
            pending: HashMap::new(),
            expired: HashSet::new(),
            turns: BTreeMap::new(),
        }
    }

    async fn apply(
        &mut self,
        event: &InboundEvent,
        report: &mut RebuildReport,
    ) -> Result<(), Skip> {
        match event.kind() {
            Some(EventKind::LeadCreated) => self.created(event, report).await,
            Some(EventKind::LeadAssigned) => self.assigned(event, report).await,
            Some(EventKind::LeadDisposition) => self.disposition(event, report).await,
            Some(EventKind::SlaBreached) => {
                let breach: SlaBreached = event.decode(EventKind::SlaBreached)?;
                if self.expired.contains(&breach.lead_id) {
                    return Ok(());
                }
                let store = &self.deps.store;
                store
                    .forget_deadline(&breach.lead_id, breach.attempt, breach.sla)
                    .await?;
                let entry = TimelineEntry::new(breach.breached_at, "breached")
                    .with("attempt", breach.attempt)
                    .with("sla", breach.sla.as_str())
                    .with("due_at", breach.due_at.to_rfc3339());
                store.append_timeline(&breach.lead_id, &entry).await?;
                report.breaches += 1;
                Ok(())
            }
            Some(EventKind::SlaReminder) => {
                let reminder: SlaReminder = event.decode(EventKind::SlaReminder)?;
                self.deps
                    .store
                    .forget_reminder(
                        &reminder.lead_id,
                        reminder.attempt,
                        reminder.sla,
                        handoff_domain::sla::permille(reminder.fraction),
                    )
                    .await?;
                report.reminders += 1;
                Ok(())
            }
            None if event.topic == self.deps.producer.topics().rep_state() => {
                let overrides: RepOverrides =
                    serde_json::from_slice(event.payload.as_deref().unwrap_or_default())
                        .map_err(|e| Skip::Record(format!("not a rep's overrides: {e}")))?;
                let (set, clear) = overrides.to_stored();
                self.deps
                    .store
                    .set_rep_overrides(overrides.rep_id.as_str(), &set, &clear)
                    .await?;
                report.rep_overrides += 1;
                Ok(())
            }
            None => {
                // account.owner: the router's own handler, as when it consumes the topic.
                let effects = self.owners.handle(event).await?;
                effects.await.map_err(|e| Skip::Fatal(e.into()))?;
                report.account_owners += 1;
                Ok(())
            }
        }
    }

    async fn created(
        &mut self,
        event: &InboundEvent,
        report: &mut RebuildReport,
    ) -> Result<(), Skip> {
        let payload: LeadPayload = event.decode(EventKind::LeadCreated)?;
        let lead = payload
            .into_lead(&event.origin())
            .map_err(|e| Skip::Record(e.to_string()))?;
        let lead = check_lead(&lead).map_err(|e| Skip::Record(e.to_string()))?;
        let settings = &self.deps.settings;
        let age = (self.now - lead.received_at).num_seconds().max(0);
        let age = u64::try_from(age).unwrap_or(0);
        let retention = lead_retention(settings).as_secs();
        if age >= retention {
            self.expired.insert(lead.id.clone());
            report.expired += 1;
            return Ok(());
        }
        let store = &self.deps.store;
        store
            .record_lead(
                &lead.id,
                &lead.source,
                lead.received_at,
                retention - age,
                None,
            )
            .await?;
        report.leads += 1;
        if let (Some(digest), Some(fingerprint)) = (
            event.header(IDEMPOTENCY_KEY_HEADER),
            event.header(IDEMPOTENCY_FINGERPRINT_HEADER),
        ) {
            let ttl = u64::from(settings.ingest.idempotency_ttl_seconds);
            if age < ttl {
                store
                    .restore_idempotency(
                        LEAD_IDEMPOTENCY_SCOPE,
                        digest,
                        fingerprint,
                        lead.id.as_str(),
                        ttl - age,
                    )
                    .await?;
                report.idempotency_marks += 1;
            }
        }
        let sticky = self.deps.rules.current().routing.sticky_seconds() > 0;
        let json = serde_json::to_string(&lead).map_err(|e| Skip::Record(e.to_string()))?;
        self.pending.insert(
            lead.id.clone(),
            Pending {
                received_at: lead.received_at,
                json,
                email: (sticky && !lead.contact.email.is_empty())
                    .then(|| lead.contact.email.clone()),
            },
        );
        Ok(())
    }

    async fn assigned(
        &mut self,
        event: &InboundEvent,
        report: &mut RebuildReport,
    ) -> Result<(), Skip> {
        let assigned: LeadAssigned = event.decode(EventKind::LeadAssigned)?;
        if self.expired.contains(&assigned.lead_id) {
            return Ok(());
        }
        let payload = raw(event)?;
        let store = &self.deps.store;
        let settings = &self.deps.settings;
        let adopted = store
            .adopt_assignment(
                &Assignment::adopted(&assigned),
                &payload,
                settings.sla.release_capacity_on,
                lead_retention(settings).as_secs(),
                self.now,
            )
            .await?;
        self.clocks.schedule(store, &assigned).await?;
        let pending = self.pending.remove(&assigned.lead_id);
        if !adopted {
            // This attempt (or a later one) is known already: nothing of it to count.
            return Ok(());
        }
        report.assignments += 1;
        // Daily counts are kept two days (assign.lua); a joining repeat takes no unit.
        if (self.now - assigned.assigned_at) < chrono::Duration::days(2) && assigned.joins.is_none()
        {
            let day = assigned.assigned_at.format("%Y-%m-%d").to_string();
            store.restore_assigned_on(&day, &assigned.rep_id).await?;
        }
        if matches!(
            assigned.explanation.strategy.as_str(),
            "round_robin" | "least_loaded"
        ) {
            self.turns
                .insert(assigned.team_id.clone(), assigned.rep_id.clone());
        }
        let sticky_seconds =
            i64::try_from(self.deps.rules.current().routing.sticky_seconds()).unwrap_or(i64::MAX);
        let left = sticky_seconds - (self.now - assigned.assigned_at).num_seconds();
        if let (Some(email), true) = (pending.and_then(|p| p.email), left > 0) {
            store
                .restore_contact_owner(
                    &email,
                    &assigned.rep_id,
                    assigned.joins.as_ref().unwrap_or(&assigned.lead_id),
                    u64::try_from(left).unwrap_or(1),
                )
                .await?;
        }
        Ok(())
    }

    async fn disposition(
        &mut self,
        event: &InboundEvent,
        report: &mut RebuildReport,
    ) -> Result<(), Skip> {
        let disposition: LeadDisposition = event.decode(EventKind::LeadDisposition)?;
        let lead_id = &disposition.lead_id;
        if self.expired.contains(lead_id) {
            return Ok(());
        }
        let store = &self.deps.store;
        let settings = &self.deps.settings;
        let retention = lead_retention(settings).as_secs();
        match disposition.outcome {
            Outcome::Unqualified => {
                let received_at = self
                    .pending
                    .remove(lead_id)
                    .map_or(disposition.occurred_at, |p| p.received_at);
                store
                    .record_decision(
                        lead_id,
                        received_at,
                        "",
                        &Parked::Nurture,
                        &raw(event)?,
                        disposition.occurred_at,
                        retention,
                    )
                    .await?;
                report.decisions += 1;
            }
            Outcome::Overflowed => {
                let (Some(queue), Some(pending)) =
                    (disposition.queue.as_ref(), self.pending.get(lead_id))
                else {
                    return Err(Skip::Record(format!(
                        "queue decision for {lead_id} without its queue or its lead.created"
                    )));
                };
                let rules = self.deps.rules.current();
                let team = disposition.team_id.as_ref();
                let wait_due = settings.sla.policy().due_at(
                    pending.received_at,
                    rules
                        .routing
                        .team_sla(team.map_or("", TeamId::as_str))
                        .first_touch_seconds,
                );
                store
                    .record_decision(
                        lead_id,
                        pending.received_at,
                        "",
                        &Parked::Waiting {
                            queue,
                            team,
                            lead: &pending.json,
                            wait_due,
                        },
                        &raw(event)?,
                        disposition.occurred_at,
                        retention,
                    )
                    .await?;
                report.decisions += 1;
            }
            // The next attempt's lead.assigned moves the lead; a redelivered breach of the
            // old attempt finds it stale.
            Outcome::Reassigned => {}
            Outcome::Escalated => {
                // Nobody could take it: it stays at its attempt, which must not escalate
                // again on a redelivered breach.
                if let Some(attempt) = store.lead_current_attempt(lead_id).await? {
                    store
                        .restore_escalation(lead_id, attempt, &raw(event)?)
                        .await?;
                }
            }
            Outcome::Accepted
            | Outcome::Contacted
            | Outcome::Rejected
            | Outcome::Converted
            | Outcome::Recycled => {
                let event_id = event.ce_id().map_or_else(
                    || format!("{}/{}/{}", event.topic, event.partition, event.offset),
                    str::to_owned,
                );
                let clocks = &self.clocks;
                store
                    .report_disposition(
                        &disposition,
                        &event_id,
                        settings.sla.release_capacity_on,
                        closed_retention(settings).as_secs(),
                        &|at, team, rep| clocks.disposition_from_touch(at, team, rep),
                    )
                    .await?;
                report.reports += 1;
            }
        }
        Ok(())
    }

    /// Each team's rotation after its latest turn in the log (weighted round-robin's
    /// credits cannot be derived: they start again from zero).
    async fn restore_rotations(&self, report: &mut RebuildReport) -> anyhow::Result<()> {
        let rules = self.deps.rules.current();
        for (team, rep) in &self.turns {
            if let Some(rotation) = rules.routing.rotation_after(team.as_str(), rep.as_str()) {
                self.deps.store.restore_rotation(team, &rotation).await?;
                report.rotations += 1;
            }
        }
        Ok(())
    }
}

/// The record's payload as published (stored byte for byte, replayed on redelivery).
fn raw(event: &InboundEvent) -> Result<String, Skip> {
    event
        .payload
        .as_deref()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .ok_or_else(|| Skip::Record("no payload".to_owned()))
}

/// Fires every deadline that passed while the state was lost, once: each is claimed like
/// the SLA tracker claims it, published with `handoff_late_reason: state_rebuilt`, written
/// on the lead's timeline with the reason, and completed.
async fn fire_late(deps: &RebuildDeps, report: &mut RebuildReport) -> anyhow::Result<()> {
    let lease = Duration::from_secs(u64::from(deps.settings.sla.lease_seconds));
    loop {
        // Claimed like the SLA tracker claims (by Redis's clock, under a token only this
        // round knows), so a tracker already running cannot fire the same deadline.
        let token = format!("{:032x}", rand::random::<u128>());
        let claimed = deps
            .store
            .claim_due(&ClaimRequest {
                token: &token,
                lease,
                limit: LATE_BATCH,
            })
            .await?;
        if claimed.due.is_empty() {
            return Ok(());
        }
        let now = claimed.now;
        for due in claimed.due {
            if !due.stale {
                fire_one(deps, &due, now).await?;
                report.late_breaches += 1;
            }
            deps.store
                .complete_breaches(&token, &[due.member.as_str()])
                .await?;
        }
    }
}

async fn fire_one(deps: &RebuildDeps, due: &DueBreach, now: DateTime<Utc>) -> anyhow::Result<()> {
    let due_at = DateTime::from_timestamp_millis(due.due_ms).unwrap_or(now);
    let event = SlaBreached {
        lead_id: due.lead_id.clone(),
        attempt: due.attempt,
        team_id: due.team.clone(),
        rep_id: due.rep.clone(),
        due_at,
        breached_at: now,
        sla: due.sla,
    };
    let outbound = OutboundEvent::new(
        EventKind::SlaBreached,
        event.event_id(),
        due.lead_id.as_str(),
        now,
        TraceParent::child_of(due.trace.as_deref()),
        &event,
    )?
    .with_header(LATE_REASON_HEADER, LATE_REASON.to_owned());
    deps.producer
        .publish(&outbound)
        .await
        .context("cannot publish a late breach")?;
    let late_ms = (now.timestamp_millis() - due.due_ms).max(0);
    let entry = TimelineEntry::new(now, "breached")
        .with("attempt", due.attempt)
        .with("sla", due.sla.as_str())
        .with("due_at", due_at.to_rfc3339())
        .with("late_ms", late_ms)
        .with("late_reason", LATE_REASON);
    deps.store.append_timeline(&due.lead_id, &entry).await?;
    let team = due.team.as_ref().map_or("unrouted", TeamId::as_str);
    deps.metrics
        .sla_breaches
        .with_label_values(&[team, due.sla.as_str()])
        .inc();
    tracing::warn!(lead_id = %due.lead_id, attempt = due.attempt, sla = due.sla.as_str(), late_ms, reason = LATE_REASON, "deadline passed while the Redis state was lost; breach fired late");
    Ok(())
}
