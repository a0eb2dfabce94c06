//! The notifier under failing receivers: a dead webhook costs nobody else time, retries
//! survive a `kill -9` of the notifier, a redelivered event is sent once, and a delivery
//! that cannot be made lands on the dead-letter topic with the reason.
//!
//! Events are published straight onto the topics (as the router and SLA tracker would),
//! so each test decides exactly which event reaches which receiver, and when.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use handoff::services::{Service, ServiceSet};
use handoff_domain::events::{EventKind, SlaBreached};
use handoff_e2e::topics::TopicReader;
use handoff_e2e::{eventually, handoff_binary, Stack, StackOptions};
use handoff_kafka::{EventProducer, OutboundEvent, TraceParent};
use redis::AsyncCommands;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How a receiver answers the n-th request (1-based) to a path.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers within the notifier's timeout: a receiver that hangs.
    Hang,
}

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    event_id: String,
    status: Option<u16>,
    at: Instant,
}

type Behaviour = Arc<dyn Fn(&str, usize) -> Answer + Send + Sync>;

/// A real local HTTP server recording every request.
#[derive(Clone)]
struct Receiver {
    base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let recorded = hits.clone();
        let app = Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, _body: Bytes| {
                let (hits, counts, behaviour) =
                    (recorded.clone(), counts.clone(), behaviour.clone());
                async move {
                    let path = uri.path().to_owned();
                    let nth = {
                        let mut counts = counts.lock().unwrap();
                        let n = counts.entry(path.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    let answer = behaviour(&path, nth);
                    let status = match answer {
                        Answer::Status(code) => Some(code),
                        Answer::Hang => None,
                    };
                    hits.lock().unwrap().push(Hit {
                        path,
                        event_id: headers
                            .get("handoff-event-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                        status,
                        at: Instant::now(),
                    });
                    match answer {
                        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
                        Answer::Hang => {
                            // The receiver's behaviour, not synchronization: it never answers.
                            tokio::time::sleep(Duration::from_secs(300)).await;
                            StatusCode::OK
                        }
                    }
                }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn to(&self, event_id: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.event_id == event_id)
            .collect()
    }

    /// Waits until `event_id` (`what`, for the failure message) got a 2xx; returns when it
    /// arrived.
    async fn delivered(&self, what: &str, event_id: &str, within: Duration) -> Instant {
        let this = self.clone();
        let what = format!(
            "delivery of {what} ({event_id}); received {:?}",
            self.hits().len()
        );
        eventually(within, &what, || {
            let this = this.clone();
            async move {
                this.to(event_id)
                    .into_iter()
                    .find(|h| h.status.is_some_and(|s| (200..300).contains(&s)))
                    .map(|h| h.at)
            }
        })
        .await
    }
}

/// Two teams, each with its own webhook: `alpha` → `/hooks/alpha`, `beta` → `/hooks/beta`.
fn two_team_rules(base: &str) -> String {
    format!(
        r#"
[scoring]
mql_threshold = 10

[routing]
[[routing.teams]]
id = "alpha"
members = ["a1"]
webhook_url = "{base}/hooks/alpha"

[[routing.teams]]
id = "beta"
members = ["b1"]
webhook_url = "{base}/hooks/beta"

[[routing.reps]]
id = "a1"
capacity = 10

[[routing.reps]]
id = "b1"
capacity = 10

[[routing.rules]]
name = "everyone"
team = "alpha"
"#
    )
}

async fn notifier_stack(receiver: &Receiver, services: ServiceSet, notifier: &str) -> Stack {
    Stack::start(StackOptions {
        services,
        rules: two_team_rules(&receiver.base),
        webhook_base: Some(receiver.base.clone()),
        notifier: notifier.to_owned(),
        ..StackOptions::default()
    })
    .await
}

/// Publishes breaches onto the stack's topic, as the SLA tracker does.
struct Publisher {
    producer: EventProducer,
}

impl Publisher {
    async fn new(stack: &Stack) -> Self {
        let loaded = handoff_config::load(&stack.config_path, Vec::new()).unwrap();
        Self {
            producer: EventProducer::new(&loaded.settings.kafka, "test").unwrap(),
        }
    }

    /// A breach of `lead` (attempt `attempt`) for `team`; returns its event id.
    async fn breach(&self, team: &str, lead: &str, attempt: u32) -> String {
        let now = chrono::Utc::now();
        let event = SlaBreached {
            lead_id: lead.into(),
            attempt,
            team_id: Some(team.into()),
            rep_id: Some(if team == "alpha" { "a1" } else { "b1" }.into()),
            due_at: now,
            breached_at: now,
            sla: handoff_domain::sla::Sla::FirstTouch,
        };
        let outbound = OutboundEvent::new(
            EventKind::SlaBreached,
            event.event_id(),
            lead,
            now,
            TraceParent::new_root(),
            &event,
        )
        .unwrap();
        self.producer.publish(&outbound).await.unwrap();
        event.event_id()
    }
}

async fn pending_deliveries(stack: &Stack) -> i64 {
    let mut redis = stack.redis().await;
    redis.hlen(stack.key("notify:pending")).await.unwrap()
}

/// Team alpha's webhook hangs (never answers within the timeout) while team beta's works:
/// every beta message arrives within a second of the notifier reading it, and no more than
/// a second later than beta messages did before alpha failed, however many alpha
/// deliveries are failing; alpha's circuit opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_of_one_team_does_not_delay_another_teams_messages() {
    let receiver = Receiver::start(Arc::new(|path: &str, _| {
        if path == "/hooks/alpha" {
            Answer::Hang
        } else {
            Answer::Status(200)
        }
    }))
    .await;
    // Four permits, at most two per URL; the old notifier held a permit through every
    // backoff, so twenty alpha events took all four for minutes.
    let stack = notifier_stack(
        &receiver,
        ServiceSet::only(Service::Notifier),
        "timeout_ms = 2000\nclaim_lease_ms = 5000\nconcurrency = 4\nper_destination_concurrency = 2\nbreaker_threshold = 2\nbreaker_cooldown_ms = 3000\nmax_attempts = 20\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000\nretry_poll_interval_ms = 50\n",
    )
    .await;
    let publisher = Publisher::new(&stack).await;
    // Warm up: the consumer has joined and the producer has its id before anything is timed.
    let warm = publisher.breach("beta", "warm-up", 1).await;
    receiver
        .delivered("the warm-up", &warm, Duration::from_secs(60))
        .await;
    // What a beta message takes with nothing failing: the broker's hops on this machine.
    let mut baseline = Duration::ZERO;
    for n in 0..5 {
        let published = Instant::now();
        let id = publisher.breach("beta", &format!("beta-calm-{n}"), 1).await;
        let arrived = receiver
            .delivered("the message", &id, Duration::from_secs(30))
            .await;
        baseline = baseline.max(arrived.saturating_duration_since(published));
    }

    for n in 0..20 {
        publisher.breach("alpha", &format!("alpha-{n}"), 1).await;
    }
    let alpha_seen = receiver.clone();
    eventually(Duration::from_secs(30), "alpha's webhook failing", || {
        let alpha_seen = alpha_seen.clone();
        async move {
            (alpha_seen
                .hits()
                .iter()
                .filter(|h| h.path == "/hooks/alpha")
                .count()
                >= 2)
                .then_some(())
        }
    })
    .await;

    let mut worst = Duration::ZERO;
    for n in 0..10 {
        // Alpha keeps failing meanwhile: more of its events keep arriving.
        publisher
            .breach("alpha", &format!("alpha-more-{n}"), 1)
            .await;
        let published = Instant::now();
        let id = publisher.breach("beta", &format!("beta-{n}"), 1).await;
        let arrived = receiver
            .delivered("the message", &id, Duration::from_secs(30))
            .await;
        worst = worst.max(arrived.saturating_duration_since(published));
    }
    assert!(
        worst < baseline + Duration::from_secs(1),
        "a beta message took {worst:?} while alpha's webhook was dead, against {baseline:?} before"
    );
    // The notifier's own share, without the broker: every delivery made (all of them beta's)
    // reached its webhook within a second of the notifier reading the event.
    let within_a_second = stack
        .metric("handoff_webhook_delivery_latency_seconds_bucket{le=\"1\"}")
        .await;
    let deliveries = stack
        .metric("handoff_webhook_delivery_latency_seconds_count")
        .await;
    assert_eq!(deliveries, 16.0, "warm-up, 5 calm and 10 beta messages");
    assert_eq!(
        within_a_second, deliveries,
        "every beta delivery within 1 s of the notifier reading it"
    );
    let alpha_attempts = receiver
        .hits()
        .iter()
        .filter(|h| h.path == "/hooks/alpha")
        .count();
    assert!(
        alpha_attempts < 30,
        "alpha's circuit opened: {alpha_attempts} attempts for 30 events"
    );
    let stack_ref = &stack;
    eventually(
        Duration::from_secs(10),
        "alpha's circuit open in the metrics",
        || async move {
            (stack_ref
                .metric("handoff_webhook_circuits_open{host=\"127.0.0.1\"}")
                .await
                >= 1.0)
                .then_some(())
        },
    )
    .await;
    // Alpha's retries that come due while its circuit is open wait without an attempt.
    // Which of them does depends on when the circuit opened: poll, do not sample.
    eventually(
        Duration::from_secs(15),
        "a retry deferred by the open circuit",
        || async move {
            (stack_ref
                .metric("handoff_webhook_retries_scheduled_total{reason=\"circuit_open\"}")
                .await
                >= 1.0)
                .then_some(())
        },
    )
    .await;
    stack.stop().await.unwrap();
}

/// The notifier as a process of its own, consuming as group generation `generation`.
///
/// Each restart joins a fresh consumer group, which starts from the beginning of the topics:
/// the restarted notifier is redelivered every event, the worst case for duplicates. (A
/// restart into the old group would hit a Tansu artifact instead: it keeps a SIGKILLed
/// member in its group, so the new one may get no partition for minutes; see
/// docs/architecture on brokers.)
fn spawn_notifier(stack: &Stack, generation: u32) -> Child {
    Command::new(handoff_binary())
        .args(["notifier", "--config"])
        .arg(&stack.config_path)
        .env("HANDOFF_LOG_LEVEL", "warn")
        .env(
            "HANDOFF_KAFKA_GROUP_PREFIX",
            format!("{}-g{generation}", stack.id),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("notifier process starts")
}

async fn kill(mut notifier: Child) {
    notifier.start_kill().expect("SIGKILL the notifier");
    let status = notifier.wait().await.unwrap();
    assert!(!status.success(), "the notifier was killed, not stopped");
}

/// Waits until a freshly started notifier consumes: a probe to team alpha's (healthy)
/// webhook arrives, so the next kill hits a notifier that was fully running.
async fn consuming(publisher: &Publisher, receiver: &Receiver, n: u32) {
    let probe = publisher.breach("alpha", &format!("probe-{n}"), 1).await;
    receiver
        .delivered("a probe", &probe, Duration::from_secs(90))
        .await;
}

/// A receiver that fails twice, then recovers, with the notifier `kill -9`ed after each
/// failure (its retry pending in Redis) and restarted (redelivered every event): the
/// message arrives exactly once, every other message too, and nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_survives_kill_9_of_the_notifier_and_arrives_exactly_once() {
    let receiver = Receiver::start(Arc::new(|path: &str, nth| {
        if path == "/hooks/beta" && nth <= 2 {
            Answer::Status(503)
        } else {
            Answer::Status(200)
        }
    }))
    .await;
    // No service in process: the notifier runs as a child process, killed and restarted.
    // Retries wait 10 s, so each kill lands while the retry is pending, after the restarted
    // notifier has joined its consumer group.
    let stack = notifier_stack(
        &receiver,
        ServiceSet::of(&[]),
        "timeout_ms = 2000\nclaim_lease_ms = 3000\ninitial_backoff_ms = 10000\nmax_backoff_ms = 10000\nretry_poll_interval_ms = 50\n",
    )
    .await;
    let publisher = Publisher::new(&stack).await;
    let mut notifier = spawn_notifier(&stack, 0);
    consuming(&publisher, &receiver, 0).await;
    let id = publisher.breach("beta", "flaky-lead", 1).await;

    for failures in 1..=2 {
        let seen = receiver.clone();
        eventually(
            Duration::from_secs(60),
            &format!("failed attempt {failures}"),
            || {
                let seen = seen.clone();
                let id = id.clone();
                async move { (seen.to(&id).len() >= failures).then_some(()) }
            },
        )
        .await;
        kill(notifier).await;
        assert!(
            receiver.to(&id).len() == failures,
            "killed while the retry was pending"
        );
        assert_eq!(
            pending_deliveries(&stack).await,
            1,
            "the retry is pending in Redis while no notifier runs"
        );
        notifier = spawn_notifier(&stack, failures as u32);
        consuming(&publisher, &receiver, failures as u32).await;
    }
    receiver
        .delivered("the message", &id, Duration::from_secs(60))
        .await;

    // A later event of the same lead (same partition, so after any redelivery of the first)
    // proves the notifier has moved past everything that could send the first again.
    let sentinel = publisher.breach("beta", "flaky-lead", 2).await;
    receiver
        .delivered("the sentinel", &sentinel, Duration::from_secs(60))
        .await;
    let hits = receiver.to(&id);
    let statuses: Vec<Option<u16>> = hits.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        vec![Some(503), Some(503), Some(200)],
        "two failures, then exactly one delivery"
    );
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for hit in receiver.hits() {
        *per_event.entry(hit.event_id).or_default() += 1;
    }
    assert_eq!(
        per_event.len(),
        5,
        "three probes, the message, the sentinel"
    );
    assert!(
        per_event.iter().all(|(event, n)| *n == 1 || *event == id),
        "each redelivered probe was sent once: {per_event:?}"
    );
    let stack_ref = &stack;
    eventually(Duration::from_secs(10), "nothing pending", || async move {
        (pending_deliveries(stack_ref).await == 0).then_some(())
    })
    .await;
    kill(notifier).await;
    stack.stop().await.unwrap();
}

/// The same event published three times (a redelivery while the first is in flight, and
/// one after it was delivered) reaches the webhook once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_is_delivered_once() {
    let receiver = Receiver::start(Arc::new(|_: &str, _| Answer::Status(200))).await;
    let stack = notifier_stack(
        &receiver,
        ServiceSet::only(Service::Notifier),
        handoff_e2e::TEST_NOTIFIER,
    )
    .await;
    let publisher = Publisher::new(&stack).await;
    let id = publisher.breach("beta", "twice", 1).await;
    assert_eq!(publisher.breach("beta", "twice", 1).await, id);
    receiver
        .delivered("the message", &id, Duration::from_secs(60))
        .await;
    assert_eq!(publisher.breach("beta", "twice", 1).await, id);
    // Same lead, so the same partition: delivered after every copy was handled.
    let sentinel = publisher.breach("beta", "twice", 2).await;
    receiver
        .delivered("the sentinel", &sentinel, Duration::from_secs(60))
        .await;

    assert_eq!(receiver.to(&id).len(), 1, "one delivery for three copies");
    assert!(
        stack
            .metric("handoff_webhook_deliveries_total{outcome=\"duplicate\"}")
            .await
            >= 1.0,
        "the copy after delivery is counted as a duplicate"
    );
    stack.stop().await.unwrap();
}

/// A receiver that always fails: after `max_attempts` the event goes to the dead-letter
/// topic with the reason and its origin, the failure is counted, and nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_never_succeeds_is_dead_lettered_with_the_reason() {
    let receiver = Receiver::start(Arc::new(|_: &str, _| Answer::Status(503))).await;
    let stack = notifier_stack(
        &receiver,
        ServiceSet::only(Service::Notifier),
        "max_attempts = 3\ninitial_backoff_ms = 50\nmax_backoff_ms = 100\nretry_poll_interval_ms = 50\nbreaker_threshold = 10\n",
    )
    .await;
    let publisher = Publisher::new(&stack).await;
    let id = publisher.breach("alpha", "hopeless", 1).await;

    let mut dead = TopicReader::new(&stack.env.kafka, &stack.topics.dead_letter());
    let records = dead
        .read_until(Duration::from_secs(60), "the dead letter", |r| {
            !r.is_empty()
        })
        .await
        .to_vec();
    let record = &records[0];
    assert_eq!(record.header("ce_id"), Some(id.as_str()));
    assert_eq!(record.header("handoff_dlq_service"), Some("notifier"));
    assert_eq!(record.header("handoff_dlq_reason"), Some("delivery_failed"));
    assert_eq!(
        record.header("handoff_dlq_error"),
        Some("gave up after 3 attempts (notifier.max_attempts): webhook answered 503 Service Unavailable")
    );
    assert_eq!(
        record.header("handoff_dlq_origin_topic"),
        Some(stack.topics.of(EventKind::SlaBreached).as_str())
    );
    assert_eq!(record.json()["lead_id"], "hopeless", "the original payload");
    assert_eq!(receiver.to(&id).len(), 3, "exactly max_attempts attempts");
    assert!(
        stack
            .metric("handoff_webhook_deliveries_total{outcome=\"failed\"}")
            .await
            >= 1.0
    );
    assert!(
        stack.metric("handoff_events_dead_lettered_total{reason=\"delivery_failed\",service=\"notifier\"}"
        )
        .await
            >= 1.0
    );
    assert_eq!(pending_deliveries(&stack).await, 0);
    let extra = dead.read_for(Duration::from_secs(1)).await;
    assert_eq!(extra.len(), 1, "dead-lettered once");
    stack.stop().await.unwrap();
}
