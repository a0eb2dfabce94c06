//! handoff on the Redis topologies production runs (docs/adr/0007): a Redis Cluster, where
//! each deployment's keys stay in its own slot and deployments spread over the masters,
//! and a Sentinel-watched master that fails over under the services. Both are real
//! servers started by `scripts/redis-topologies.sh` (part of `make test`).

use std::time::Duration;

use handoff_domain::events::EventKind;
use handoff_e2e::{eventually, post_json, qualified_lead, unique_id, Stack, StackOptions, TestEnv};
use redis::AsyncCommands;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn env_with_redis(var: &str) -> TestEnv {
    let url = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite with `make test` (scripts/redis-topologies.sh)")
    });
    TestEnv {
        redis: url,
        ..TestEnv::from_env()
    }
}

/// The cluster's nodes, from its `redis+cluster://a:1,b:2` URL.
fn cluster_ports(url: &str) -> Vec<u16> {
    url.trim_start_matches("redis+cluster://")
        .split(',')
        .map(|node| node.rsplit_once(':').unwrap().1.parse().unwrap())
        .collect()
}

async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Which node serves `slot`, from each node's own line of `CLUSTER NODES`.
async fn owner_of_slot(ports: &[u16], slot: u16) -> u16 {
    for &port in ports {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut node(port).await)
            .await
            .unwrap();
        let Some(myself) = nodes.lines().find(|line| line.contains("myself")) else {
            continue;
        };
        let serves = myself.split_whitespace().skip(8).any(|range| {
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            matches!((start.parse::<u16>(), end.parse::<u16>()), (Ok(s), Ok(e)) if (s..=e).contains(&slot))
        });
        if serves {
            return port;
        }
    }
    panic!("no node serves slot {slot}");
}

async fn owner_of_prefix(ports: &[u16], id: &str) -> u16 {
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(format!("{{{id}}}"))
        .query_async(&mut node(ports[0]).await)
        .await
        .unwrap();
    owner_of_slot(ports, slot).await
}

/// How many keys of deployment `id` each node holds.
async fn keys_per_node(ports: &[u16], id: &str) -> Vec<(u16, usize)> {
    let mut counts = Vec::new();
    for &port in ports {
        let mut connection = node(port).await;
        let keys: Vec<String> = connection.keys(format!("{{{id}}}:*")).await.unwrap();
        counts.push((port, keys.len()));
    }
    counts
}

async fn touch(stack: &Stack, lead: &str) {
    let url = format!("{}/v1/leads/{lead}/dispositions", stack.api());
    let body = json!({ "outcome": "contacted" });
    let (status, answer) = post_json(&handoff_e2e::client(), &url, &body).await;
    assert_eq!(status, 202, "{answer}");
}

async fn assigned_rep(stack: &Stack, lead: &str) -> String {
    eventually(WAIT, &format!("{lead} assigned"), || async {
        let view = stack.lead_view(lead).await;
        (view["state"] == "assigned")
            .then(|| view["rep_id"].as_str().map(str::to_owned))
            .flatten()
    })
    .await
}

/// Two deployments share one three-master cluster: each routes, releases capacity on a
/// touch and fires a breach; all of a deployment's keys sit on one node, and the two
/// deployments sit on different masters (how an installation spreads past one shard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_share_a_redis_cluster_each_on_its_own_slot() {
    let env = env_with_redis("HANDOFF_TEST_REDIS_CLUSTER");
    let ports = cluster_ports(&env.redis);
    let first = unique_id();
    let first_owner = owner_of_prefix(&ports, &first).await;
    let mut second = unique_id();
    while owner_of_prefix(&ports, &second).await == first_owner {
        second = unique_id();
    }

    let mut stacks = Vec::new();
    for id in [&first, &second] {
        let stack = Stack::start_with(
            env.clone(),
            StackOptions {
                id: Some(id.clone()),
                first_touch_seconds: 2,
                ..StackOptions::default()
            },
        )
        .await;
        stacks.push(stack);
    }
    let client = handoff_e2e::client();
    for stack in &stacks {
        let mut breaches = stack.reader(EventKind::SlaBreached);
        let touched = stack.post_lead(&client, &qualified_lead(1)).await;
        let ignored = stack.post_lead(&client, &qualified_lead(2)).await;
        let rep = assigned_rep(stack, &touched).await;
        assigned_rep(stack, &ignored).await;
        let before = stack.open_leads(&rep).await;
        touch(stack, &touched).await;
        eventually(WAIT, "the touch to free the rep", || async {
            (stack.open_leads(&rep).await == before - 1).then_some(())
        })
        .await;
        let records = breaches
            .read_until(WAIT, "the untouched lead's breach", |records| {
                records
                    .iter()
                    .any(|r| r.header("ce_subject") == Some(ignored.as_str()))
            })
            .await;
        assert!(
            records
                .iter()
                .all(|r| r.header("ce_subject") != Some(touched.as_str())),
            "the touched lead breached"
        );
    }

    for (id, owner) in [
        (&first, first_owner),
        (&second, owner_of_prefix(&ports, &second).await),
    ] {
        let counts = keys_per_node(&ports, id).await;
        for (port, keys) in counts {
            if port == owner {
                assert!(keys > 0, "{id}'s keys should be on {port}");
            } else {
                assert_eq!(keys, 0, "{id} has keys on {port}, outside its slot");
            }
        }
    }
    for stack in stacks {
        stack.stop().await.unwrap();
    }
}

async fn sentinel() -> redis::aio::MultiplexedConnection {
    let url = std::env::var("HANDOFF_TEST_REDIS_SENTINEL").unwrap();
    let host = url
        .trim_start_matches("redis+sentinel://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    redis::Client::open(format!("redis://{host}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn master_port() -> u16 {
    let (_, port): (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg("handoff-test")
        .query_async(&mut sentinel().await)
        .await
        .unwrap();
    port
}

/// The master fails over (a planned failover: its writes replicated first) while the
/// services run: they follow Sentinel to the new master by themselves, the lead routed
/// before is still known, and leads routed after land on the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_follow_a_sentinel_failover() {
    let env = env_with_redis("HANDOFF_TEST_REDIS_SENTINEL");
    let stack = Stack::start_with(env, StackOptions::default()).await;
    let client = handoff_e2e::client();
    let before = stack.post_lead(&client, &qualified_lead(1)).await;
    let rep_before = assigned_rep(&stack, &before).await;

    let old_master = master_port().await;
    let replicated: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut node(old_master).await)
        .await
        .unwrap();
    assert_eq!(replicated, 1, "the replica did not catch up");
    eventually(WAIT, "Sentinel to start the failover", || async {
        let started: redis::RedisResult<String> = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg("handoff-test")
            .query_async(&mut sentinel().await)
            .await;
        started.is_ok().then_some(())
    })
    .await;
    eventually(WAIT, "a new master", || async {
        (master_port().await != old_master).then_some(())
    })
    .await;
    // Until Sentinel demotes it, the old master still takes writes, which its resync then
    // drops: the window asynchronous replication always has (ADR 0007), not handoff's.
    eventually(WAIT, "the old master demoted", || async {
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query_async(&mut node(old_master).await)
            .await
            .ok()?;
        matches!(role.first(), Some(redis::Value::BulkString(role)) if role == b"slave")
            .then_some(())
    })
    .await;

    let after = stack.post_lead(&client, &qualified_lead(2)).await;
    assigned_rep(&stack, &after).await;
    assert_eq!(stack.lead_view(&before).await["state"], "assigned");
    let open = stack.open_leads(&rep_before).await;
    touch(&stack, &before).await;
    eventually(
        WAIT,
        "the touch to free the rep on the new master",
        || async { (stack.open_leads(&rep_before).await == open - 1).then_some(()) },
    )
    .await;
    let mut new_master = node(master_port().await).await;
    let exists: bool = new_master
        .exists(format!("{{{}}}:lead:{after}", stack.id))
        .await
        .unwrap();
    assert!(
        exists,
        "the lead routed after the failover is on the new master"
    );
    stack.stop().await.unwrap();
}

/// `rediss://`: the services route a lead through a Redis that speaks only TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_route_over_tls() {
    let env = env_with_redis("HANDOFF_TEST_REDIS_TLS");
    let stack = Stack::start_with(env, StackOptions::default()).await;
    let lead = stack
        .post_lead(&handoff_e2e::client(), &qualified_lead(1))
        .await;
    let rep = assigned_rep(&stack, &lead).await;
    assert_eq!(stack.open_leads(&rep).await, 1);
    stack.stop().await.unwrap();
}
