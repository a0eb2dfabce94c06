//! Redis forgets (restarted without persistence, as `make run` and an asynchronous
//! failover do): the services notice, stop taking new work, and the state is rebuilt from
//! the event log — by `handoff state rebuild`, or by themselves. Afterwards every deadline
//! that passed meanwhile has fired once, marked late; no lead was assigned twice; reps'
//! open load matches their open assignments; queues keep their order; a retried post with
//! the same Idempotency-Key still gets the first lead id.
//!
//! Each test runs its own redis-server (never the shared one: restarting it would wipe
//! everyone's tests), without persistence, and restarts it empty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use serde_json::Value;

use handoff_domain::events::EventKind;
use handoff_e2e::prometheus::Prometheus;
use handoff_e2e::redis_server::{Persistence, RedisServer};
use handoff_e2e::topics::Record;
use handoff_e2e::{eventually, qualified_lead, Stack, StackOptions, TestEnv, RULES};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(60);

/// RULES with small capacities, so some leads wait in `sales-overflow`: `a` and `b` take
/// 2 open leads each, `c` one.
fn rules() -> String {
    RULES
        .replace("capacity = 100", "capacity = 2")
        .replace("capacity = 20", "capacity = 1")
}

fn options(auto_rebuild: bool) -> StackOptions {
    StackOptions {
        rules: rules(),
        first_touch_seconds: 6,
        sla_config: "reminder_fractions = []\n".to_owned(),
        extra_config: format!("[state]\ncheck_interval_ms = 200\nauto_rebuild = {auto_rebuild}\n"),
        ..StackOptions::default()
    }
}

/// Posts lead `n` with Idempotency-Key `key`; the status, the lead id (202) and whether it
/// was a replay.
async fn post_keyed(stack: &Stack, n: usize, key: &str) -> (u16, Option<String>, bool) {
    let response = handoff_e2e::client()
        .post(format!("{}/v1/leads", stack.api()))
        .header("Idempotency-Key", key)
        .json(&qualified_lead(n))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    if status == 503 {
        assert!(
            response.headers().get("retry-after").is_some(),
            "a 503 says when to retry"
        );
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let id = body["lead_id"].as_str().map(str::to_owned);
    (status, id, replayed)
}

/// Posts until accepted (a 503 while the state is lost is retried, same key).
async fn post_until_accepted(stack: &Stack, n: usize, key: &str) -> String {
    eventually(WAIT, "the post to be accepted", || async {
        match post_keyed(stack, n, key).await {
            (202, Some(id), _) => Some(id),
            (503, _, _) => None,
            (status, _, _) => panic!("unexpected status {status}"),
        }
    })
    .await
}

/// The lead's `state`, `rep` and `queue` as stored.
async fn stored(redis: &redis::Client, stack: &Stack, lead: &str) -> BTreeMap<String, String> {
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    connection
        .hgetall(stack.key(&format!("lead:{lead}")))
        .await
        .unwrap()
}

/// A stack on a redis-server of the test's own (without persistence: a restart comes back
/// empty, or from a snapshot the test saved), and a client of that server.
async fn stack_on_own_redis(auto_rebuild: bool) -> (RedisServer, redis::Client, Stack) {
    let redis = RedisServer::start(Persistence::None).await;
    let env = TestEnv {
        redis: redis.url(),
        ..TestEnv::from_env()
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let stack = Stack::start_with(env, options(auto_rebuild)).await;
    (redis, client, stack)
}

/// Waits until every lead is decided: assigned, waiting, or touched (some may have
/// breached and moved on).
async fn until_decided(redis: &redis::Client, stack: &Stack, leads: &[String]) {
    eventually(WAIT, "every lead decided", || async {
        for lead in leads {
            let state = stored(redis, stack, lead).await;
            if !matches!(
                state.get("state").map(String::as_str),
                Some("assigned" | "waiting" | "touched")
            ) {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Waits until a loss was seen and the automatic rebuild completed and was adopted.
async fn until_lost_and_rebuilt(stack: &Stack) {
    eventually(WAIT, "the loss seen and the state rebuilt", || async {
        (stack.metric("handoff_state_lost_total").await >= 1.0
            && stack
                .metric("handoff_state_rebuilds_total{outcome=\"completed\"}")
                .await
                >= 1.0
            && stack.metric("handoff_state_generation").await > 0.0)
            .then_some(())
    })
    .await;
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// Each (lead, attempt) was assigned to one rep only.
fn assert_no_double_assignment(assigned: &[Record]) {
    let mut reps: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    for record in assigned {
        let event = record.json();
        reps.entry((
            event["lead_id"].as_str().unwrap().to_owned(),
            event["attempt"].as_u64().unwrap(),
        ))
        .or_default()
        .insert(event["rep_id"].as_str().unwrap().to_owned());
    }
    for ((lead, attempt), reps) in reps {
        assert_eq!(
            reps.len(),
            1,
            "{lead} attempt {attempt} was assigned to {reps:?}"
        );
    }
}

/// Each rep's open set holds exactly the leads assigned to them and untouched.
async fn assert_open_load_matches(redis: &redis::Client, stack: &Stack, leads: &[String]) {
    eventually(WAIT, "open load to match open assignments", || async {
        let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for lead in leads {
            let fields = stored(redis, stack, lead).await;
            if fields.get("state").map(String::as_str) == Some("assigned") {
                if let Some(rep) = fields.get("rep") {
                    expected
                        .entry(rep.clone())
                        .or_default()
                        .insert(lead.clone());
                }
            }
        }
        let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
        for rep in ["a", "b", "c", "d"] {
            let open: BTreeSet<String> = connection
                .zrange(stack.key(&format!("rep:{rep}:open")), 0, -1)
                .await
                .unwrap();
            if open != expected.remove(rep).unwrap_or_default() {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Redis restarts empty; the services stop taking work and say so; `handoff state
/// rebuild` brings the state back from the log, fires the deadlines that passed in the
/// meantime (late, once), and the services resume by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_is_detected_and_rebuilt_from_the_log() {
    let (mut redis, redis_client, stack) = stack_on_own_redis(false).await;
    assert!(stack.metric("handoff_state_generation").await > 0.0);
    let mut assigned = stack.reader(EventKind::LeadAssigned);

    // Eight leads: five assigned (capacities 2 + 2 + 1), three waiting, in order.
    let mut leads = Vec::new();
    for n in 0..8 {
        leads.push(post_until_accepted(&stack, n, &format!("form-post-{n}")).await);
    }
    eventually(WAIT, "every lead decided", || async {
        let mut states = Vec::new();
        for lead in &leads {
            states.push(stack.lead_view(lead).await["state"].clone());
        }
        states
            .iter()
            .all(|s| s == "assigned" || s == "waiting")
            .then_some(())
    })
    .await;
    let queue_before: Vec<String> = stack.queue_view("sales-overflow").await["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lead_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queue_before.len(), 3, "{queue_before:?}");

    redis.restart().await;
    eventually(WAIT, "the loss to be noticed", || async {
        (stack.metric("handoff_state_lost_total").await >= 1.0
            && stack.metric("handoff_state_generation").await == 0.0)
            .then_some(())
    })
    .await;
    // No new work while the state is lost: writes are refused with Retry-After.
    let (status, _, _) = post_keyed(&stack, 100, "during-the-loss").await;
    assert_eq!(status, 503);

    // Every first-touch deadline of the assigned leads (6 s) passes during the loss.
    let records = assigned
        .read_until(WAIT, "five assignments", |r| r.len() >= 5)
        .await
        .to_vec();
    let latest_due = records
        .iter()
        .map(|r| time(&r.json()["first_touch_due_at"]))
        .max()
        .unwrap();
    while Utc::now() < latest_due + chrono::Duration::milliseconds(500) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let rebuilt = Command::new(handoff_e2e::handoff_binary())
        .args(["state", "rebuild", "--config"])
        .arg(&stack.config_path)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&rebuilt.stdout);
    assert!(
        rebuilt.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    assert!(report.contains("leads: 8 recorded"), "{report}");

    // The services resume by themselves.
    eventually(WAIT, "the services to resume", || async {
        (stack.metric("handoff_state_generation").await > 0.0).then_some(())
    })
    .await;

    // Every deadline that passed during the loss fired once, marked late: the five
    // assignments' and the three waiting leads' (their wait counts from receipt).
    let mut breached = stack.reader(EventKind::SlaBreached);
    let breaches = breached
        .read_until(WAIT, "eight late breaches", |r| {
            r.iter()
                .filter(|b| b.header("handoff_late_reason") == Some("state_rebuilt"))
                .count()
                >= 8
        })
        .await
        .to_vec();
    let late: BTreeSet<String> = breaches
        .iter()
        .filter(|b| b.header("handoff_late_reason") == Some("state_rebuilt"))
        .map(|b| b.json()["lead_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        late,
        leads.iter().cloned().collect(),
        "one late breach per lead"
    );
    // Once: no second breach of the same deadline (e.g. by the SLA tracker after resuming).
    let breaches = breached.read_for(Duration::from_secs(2)).await.to_vec();
    let mut per_deadline: BTreeMap<String, usize> = BTreeMap::new();
    for b in &breaches {
        *per_deadline
            .entry(b.header("ce_id").unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        per_deadline.values().all(|n| *n == 1),
        "a deadline fired twice: {per_deadline:?}"
    );
    for lead in &leads {
        let timeline = stack.lead_view(lead).await["timeline"].clone();
        assert!(
            timeline
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["step"] == "breached" && s["late_reason"] == "state_rebuilt"),
            "{lead}: {timeline}"
        );
    }

    // A retried form post gets the first answer, not a second lead.
    let (status, id, replayed) = post_keyed(&stack, 0, "form-post-0").await;
    assert_eq!(
        (status, id.as_deref(), replayed),
        (202, Some(leads[0].as_str()), true)
    );

    // Nobody was assigned a lead twice; load and queues are what the log says.
    let records = assigned.read_for(Duration::from_secs(1)).await.to_vec();
    assert_no_double_assignment(&records);
    assert_open_load_matches(&redis_client, &stack, &leads).await;
    let mut still_waiting = Vec::new();
    for lead in &queue_before {
        if stored(&redis_client, &stack, lead)
            .await
            .get("state")
            .map(String::as_str)
            == Some("waiting")
        {
            still_waiting.push(lead.clone());
        }
    }
    let queue_after: Vec<String> = stack.queue_view("sales-overflow").await["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lead_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queue_after, still_waiting, "the queue keeps its order");

    // New work flows again.
    let after = post_until_accepted(&stack, 200, "after-the-rebuild").await;
    eventually(WAIT, "the new lead decided", || async {
        let state = stack.lead_view(&after).await["state"].clone();
        (state == "assigned" || state == "waiting").then_some(())
    })
    .await;
    assert_eq!(stack.metric("handoff_state_lost_total").await, 1.0);
    stack.stop().await.unwrap();
}

/// With traffic flowing, Redis restarts empty; one instance rebuilds the state by itself
/// (`state.auto_rebuild`) and every lead posted before, during and after gets exactly one
/// decision, with reps' load matching their open assignments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_state_is_rebuilt_automatically_while_traffic_flows() {
    let (mut redis, redis_client, stack) = stack_on_own_redis(true).await;
    let stack = std::sync::Arc::new(stack);
    // Ops' view: a real Prometheus scraping the stack with the shipped alert rules. The
    // loss counter is scraped at zero first, as in a deployment whose Prometheus was there
    // before Redis forgot.
    let prometheus = Prometheus::start(
        &stack.config_path.parent().unwrap().join("prometheus"),
        stack.internal().trim_start_matches("http://"),
    )
    .await;
    prometheus
        .reaches("count_over_time(handoff_state_lost_total[1m])", 2.0)
        .await;
    assert_eq!(prometheus.alert_state("HandoffStateLost").await, None);

    let traffic = tokio::spawn({
        let stack = stack.clone();
        async move {
            let mut leads = Vec::new();
            for n in 0..30 {
                leads.push(post_until_accepted(&stack, n, &format!("traffic-{n}")).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            leads
        }
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.restart().await;
    let leads = traffic.await.unwrap();

    until_lost_and_rebuilt(&stack).await;
    // The page goes out, although the state was rebuilt: Redis lost acknowledged writes.
    prometheus
        .fires("HandoffStateLost", Duration::from_secs(30))
        .await;
    prometheus.stop().await;

    until_decided(&redis_client, &stack, &leads).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    let records = assigned.read_for(Duration::from_secs(2)).await.to_vec();
    assert_no_double_assignment(&records);
    assert_open_load_matches(&redis_client, &stack, &leads).await;
    for (n, lead) in leads.iter().enumerate().step_by(7) {
        let (status, id, replayed) = post_keyed(&stack, n, &format!("traffic-{n}")).await;
        assert_eq!(
            (status, id.as_deref(), replayed),
            (202, Some(lead.as_str()), true)
        );
    }
}

/// Redis comes back from a snapshot taken after the marker was written: the same marker,
/// but without the leads routed since. The services see the marker's tick go back, stop,
/// and one of them rebuilds: the leads routed after the snapshot are known again, their
/// reps' load counts them, and a retried post of one of them gets its first lead id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_a_snapshot_that_kept_the_marker_is_detected_and_rebuilt() {
    let (mut redis, redis_client, stack) = stack_on_own_redis(true).await;
    let mut connection = redis_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let marker = stack.key("state:generation");

    let mut leads = Vec::new();
    for n in 0..3 {
        leads.push(post_until_accepted(&stack, n, &format!("snapshot-{n}")).await);
    }
    until_decided(&redis_client, &stack, &leads).await;
    // The snapshot (dump.rdb in the server's folder, loaded when it starts again).
    let _: () = redis::cmd("SAVE")
        .query_async(&mut connection)
        .await
        .unwrap();
    let tick_at_snapshot: i64 = connection.hget(&marker, "tick").await.unwrap();
    eventually(
        WAIT,
        "the services to check the marker after the snapshot",
        || {
            let (mut connection, marker) = (connection.clone(), marker.clone());
            async move {
                let tick: i64 = connection.hget(&marker, "tick").await.ok()?;
                (tick > tick_at_snapshot + 4).then_some(())
            }
        },
    )
    .await;
    for n in 3..6 {
        leads.push(post_until_accepted(&stack, n, &format!("snapshot-{n}")).await);
    }
    until_decided(&redis_client, &stack, &leads).await;
    let generation_before = stack.metric("handoff_state_generation").await;

    redis.restart().await;
    let mut connection = redis_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    until_lost_and_rebuilt(&stack).await;
    let generation: Option<String> = connection.hget(&marker, "origin").await.unwrap();
    assert_eq!(generation.as_deref(), Some("rebuild"));
    assert!(stack.metric("handoff_state_generation").await >= generation_before);

    until_decided(&redis_client, &stack, &leads).await;
    let mut assigned = stack.reader(EventKind::LeadAssigned);
    assert_no_double_assignment(assigned.read_for(Duration::from_secs(2)).await);
    assert_open_load_matches(&redis_client, &stack, &leads).await;
    for (n, lead) in leads.iter().enumerate().skip(3) {
        let (status, id, replayed) = post_keyed(&stack, n, &format!("snapshot-{n}")).await;
        assert_eq!(
            (status, id.as_deref(), replayed),
            (202, Some(lead.as_str()), true)
        );
    }
    stack.stop().await.unwrap();
}

/// Reps' runtime overrides (`PUT /v1/reps/{id}`: a rep on leave, a capacity lowered) are
/// on the log too (`rep.state`): after Redis restarts empty the rebuild restores the latest
/// of each rep, instead of reps silently falling back to the rules file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reps_runtime_overrides_survive_a_lost_state() {
    let (mut redis, _, stack) = stack_on_own_redis(true).await;
    let client = handoff_e2e::client();
    let put = |rep: &'static str, body: Value| {
        let (client, url) = (&client, format!("{}/v1/reps/{rep}", stack.internal()));
        async move {
            let response = client.put(url).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200, "{body}");
        }
    };
    put("c", serde_json::json!({ "active": false, "capacity": 7 })).await;
    put("b", serde_json::json!({ "available": false })).await;
    put("b", serde_json::json!({ "available": null, "capacity": 3 })).await;
    let overrides = |rep: &'static str| {
        let url = format!("{}/v1/reps/{rep}", stack.internal());
        async move { handoff_e2e::get_json(&url).await["overrides"].clone() }
    };
    let before = (overrides("b").await, overrides("c").await);
    assert_eq!(
        before,
        (
            serde_json::json!({ "capacity": "3" }),
            serde_json::json!({ "active": "false", "capacity": "7" })
        )
    );

    // On the log: one record per change, keyed by rep, strict against proto/.
    let mut log = handoff_e2e::topics::TopicReader::new(
        &TestEnv::from_env().kafka,
        &stack.topics.rep_state(),
    );
    let records = log
        .read_until(WAIT, "three rep.state records", |r| r.len() >= 3)
        .await
        .to_vec();
    let contract = handoff_e2e::contract::Contract::load();
    for record in &records {
        contract
            .decode_as("handoff.v1.RepOverrides", &record.payload)
            .unwrap();
        assert_eq!(
            record.header("ce_type"),
            Some("io.handoff.rep.overrides.v1")
        );
        assert_eq!(record.key.as_deref(), record.json()["rep_id"].as_str());
    }

    redis.restart().await;
    until_lost_and_rebuilt(&stack).await;
    assert_eq!((overrides("b").await, overrides("c").await), before);
    let c = handoff_e2e::get_json(&format!("{}/v1/reps/c", stack.internal())).await;
    assert_eq!(
        (c["active"].clone(), c["capacity"].clone()),
        (false.into(), 7.into())
    );
    stack.stop().await.unwrap();
}

/// The production profile refuses a Redis that can lose acknowledged writes, naming the
/// setting that accepts it; with the AOF fsynced on every write it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_profile_refuses_a_redis_that_can_lose_writes() {
    use handoff::services::{self, Service, ServiceSet};
    let redis = RedisServer::start(Persistence::None).await;
    let env = TestEnv {
        redis: redis.url(),
        ..TestEnv::from_env()
    };
    let path = handoff_e2e::write_config(&env, &handoff_e2e::unique_id(), &options(true));
    let production = |accept: bool| {
        let mut vars = vec![("HANDOFF_PROFILE".to_owned(), "production".to_owned())];
        if accept {
            vars.push((
                "HANDOFF_STATE_ACCEPT_UNSAFE_PERSISTENCE".to_owned(),
                "true".to_owned(),
            ));
        }
        vars
    };
    let start = |accept: bool| {
        let loaded = handoff_config::load(&path, production(accept)).unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        async move {
            let running =
                services::start(ServiceSet::only(Service::Router), loaded, shutdown.clone())
                    .await?;
            shutdown.cancel();
            running.wait().await
        }
    };

    let refused = format!("{:#}", start(false).await.unwrap_err());
    assert!(
        refused.contains("appendonly no") && refused.contains("state.accept_unsafe_persistence"),
        "{refused}"
    );
    start(true).await.unwrap();

    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (key, value) in [("appendonly", "yes"), ("appendfsync", "always")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    start(false).await.unwrap();
}

/// A failover that loses a few writes rather than everything: single deadline and
/// capacity entries disappear under traffic. The router's reconciler puts them back
/// within its interval, and counts each repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_single_deadline_and_capacity_entries_are_repaired_by_the_reconciler() {
    let stack = std::sync::Arc::new(
        Stack::start(StackOptions {
            rules: rules(),
            first_touch_seconds: 120,
            sla_config: "reminder_fractions = []\n".to_owned(),
            router_config: "reconcile_interval_seconds = 1\n".to_owned(),
            ..StackOptions::default()
        })
        .await,
    );
    let redis = stack.env.redis_client();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let mut leads = Vec::new();
    for n in 0..3 {
        leads.push(post_until_accepted(&stack, n, &format!("partial-{n}")).await);
    }
    let assigned = eventually(WAIT, "three assignments", || async {
        let mut assigned = Vec::new();
        for lead in &leads {
            let fields = stored(&redis, &stack, lead).await;
            if fields.get("state").map(String::as_str) != Some("assigned") {
                return None;
            }
            assigned.push((
                lead.clone(),
                fields["rep"].clone(),
                fields["attempt"].clone(),
            ));
        }
        Some(assigned)
    })
    .await;
    // Traffic goes on meanwhile.
    let traffic = tokio::spawn({
        let stack = stack.clone();
        async move {
            for n in 3..8 {
                post_until_accepted(&stack, n, &format!("partial-{n}")).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let (lead, _, attempt) = &assigned[0];
    let member = format!("{lead}|{attempt}");
    let due: f64 = connection
        .zscore(stack.key("sla:due"), &member)
        .await
        .unwrap();
    let _: () = connection
        .zrem(stack.key("sla:due"), &member)
        .await
        .unwrap();
    let (other, other_rep, _) = &assigned[1];
    let _: () = connection
        .zrem(stack.key(&format!("rep:{other_rep}:open")), other)
        .await
        .unwrap();

    eventually(WAIT, "the deadline and the open entry put back", || async {
        let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
        let back: Option<f64> = connection
            .zscore(stack.key("sla:due"), &member)
            .await
            .unwrap();
        let open: Option<f64> = connection
            .zscore(stack.key(&format!("rep:{other_rep}:open")), other)
            .await
            .unwrap();
        (back == Some(due) && open.is_some()).then_some(())
    })
    .await;
    assert!(
        stack
            .metric("handoff_capacity_drift_total{kind=\"missing_deadline\"}")
            .await
            >= 1.0
    );
    assert!(
        stack
            .metric("handoff_capacity_drift_total{kind=\"missing_open\"}")
            .await
            >= 1.0
    );
    traffic.await.unwrap();
}

/// A sticky repeat that joined the contact's open lead took no capacity; rebuilt from the
/// log after Redis forgot, it still takes none (`lead.assigned` says which lead it joins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_sticky_repeat_holds_no_capacity_after_a_rebuild() {
    let (mut redis, redis_client, stack) = stack_on_own_redis(true).await;
    let first = post_until_accepted(&stack, 7, "first").await;
    until_decided(&redis_client, &stack, std::slice::from_ref(&first)).await;
    let repeat = post_until_accepted(&stack, 7, "repeat").await;
    until_decided(&redis_client, &stack, std::slice::from_ref(&repeat)).await;
    let rep = stored(&redis_client, &stack, &first).await["rep"].clone();
    let joined = stored(&redis_client, &stack, &repeat).await;
    assert_eq!(joined["rep"], rep);
    assert_eq!(joined.get("joins"), Some(&first));
    assert_eq!(stack.open_leads(&rep).await, 1);

    redis.restart().await;
    until_lost_and_rebuilt(&stack).await;
    until_decided(&redis_client, &stack, &[first.clone(), repeat.clone()]).await;
    let joined = stored(&redis_client, &stack, &repeat).await;
    assert_eq!(joined.get("joins"), Some(&first), "{joined:?}");
    assert_eq!(stack.open_leads(&rep).await, 1);
    // The rebuilt sticky mark still names the lead holding the capacity: a third submission
    // joins it too.
    let third = post_until_accepted(&stack, 7, "third").await;
    until_decided(&redis_client, &stack, std::slice::from_ref(&third)).await;
    let joined = stored(&redis_client, &stack, &third).await;
    assert_eq!(
        (joined["rep"].as_str(), joined.get("joins")),
        (rep.as_str(), Some(&first))
    );
    assert_eq!(stack.open_leads(&rep).await, 1);
}
