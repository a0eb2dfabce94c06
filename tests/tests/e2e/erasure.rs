//! `handoff erase` (the real binary) against the real Redis and broker: after erasing a
//! person, no key of the deployment names them (their email, its digest, names, phone, lead
//! id), another person's data is untouched, and the services keep routing.

use std::time::Duration;

use handoff_e2e::{eventually, handoff_binary, serve_local, Stack, StackOptions};
use redis::AsyncCommands;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Runs `handoff --config <stack's> erase ARGS`; returns its stdout.
async fn erase(stack: &Stack, args: &[&str]) -> String {
    let output = tokio::process::Command::new(handoff_binary())
        .arg("--config")
        .arg(&stack.config_path)
        .arg("erase")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run handoff erase");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "handoff erase {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Every key of the stack's prefix with everything it holds, as text (key name first).
async fn dump(stack: &Stack) -> Vec<String> {
    let mut redis = stack.redis().await;
    let keys: Vec<String> = redis.keys(format!("{{{}}}*", stack.id)).await.unwrap();
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![redis.get(&key).await.unwrap_or_default()],
            "hash" => redis
                .hgetall::<_, Vec<String>>(&key)
                .await
                .unwrap_or_default(),
            "zset" => redis
                .zrange::<_, Vec<String>>(&key, 0, -1)
                .await
                .unwrap_or_default(),
            "set" => redis
                .smembers::<_, Vec<String>>(&key)
                .await
                .unwrap_or_default(),
            "list" => redis
                .lrange::<_, Vec<String>>(&key, 0, -1)
                .await
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        out.push(format!("{key} => {}", values.join(" | ")));
    }
    out
}

fn naming<'a>(dump: &'a [String], needles: &[&str]) -> Vec<&'a String> {
    dump.iter()
        .filter(|entry| needles.iter().any(|n| entry.contains(n)))
        .collect()
}

/// Two people's leads are routed (one posted with an Idempotency-Key; the rep's webhook is
/// down, so their notifications wait in Redis with the contact's details). `erase --email`
/// with `--dry-run` counts and changes nothing; without it, no key of the deployment holds
/// the person's email, its digest (the sticky owner's key), names, phone or lead id, the
/// other person's data stays, the rep's capacity is given back, and a new lead is routed.
/// Erasing again finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_person_leaves_no_trace_in_redis_and_the_services_keep_working() {
    let down =
        axum::Router::new().fallback(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE });
    let (base, _receiver) = serve_local(down).await.unwrap();
    let stack = Stack::start(StackOptions {
        webhook_base: Some(base),
        notifier: "max_attempts = 1000\ninitial_backoff_ms = 1000\nmax_backoff_ms = 5000\nretry_poll_interval_ms = 50\n".to_owned(),
        ..StackOptions::default()
    })
    .await;
    let client = handoff_e2e::client();
    let person = json!({
        "contact": { "email": "Erin.Erasmus@Acme.io", "first_name": "Erin", "last_name": "Erasmus",
                     "phone": "+49 30 9876 5432", "title": "VP Sales" },
        "company": { "name": "Acme", "country": "DE", "employees": 300 },
        "source": { "kind": "web_form", "campaign": "spring-launch" }
    });
    let response = client
        .post(format!("{}/v1/leads", stack.api()))
        .header("idempotency-key", "erin-form-1")
        .json(&person)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let lead = response.json::<Value>().await.unwrap()["lead_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = stack
        .post_lead(
            &client,
            &json!({
                "contact": { "email": "otto.other@acme.io", "first_name": "Otto", "title": "VP Sales" },
                "company": { "name": "Acme", "country": "DE", "employees": 300 },
                "source": { "kind": "web_form" }
            }),
        )
        .await;
    let rep = eventually(Duration::from_secs(30), "both leads assigned", || {
        let (stack, lead, other) = (&stack, &lead, &other);
        async move {
            let view = stack.lead_view(lead).await;
            let rep = view["assignment"]["rep_id"]
                .as_str()
                .or_else(|| view["rep_id"].as_str())
                .map(str::to_owned);
            (view["state"] == "assigned" && stack.lead_view(other).await["state"] == "assigned")
                .then_some(rep)
                .flatten()
        }
    })
    .await;
    let email = "erin.erasmus@acme.io";
    let digest = hex::encode(Sha256::digest(email.as_bytes()));
    let traces = [
        email,
        "Erin",
        "Erasmus",
        "9876",
        digest.as_str(),
        lead.as_str(),
    ];
    // Its notifications wait in Redis (the webhook is down), with the contact in them.
    eventually(Duration::from_secs(30), "a pending delivery", || {
        let stack = &stack;
        async move {
            let dump = dump(stack).await;
            dump.iter()
                .any(|e| e.contains("notify:pending") && e.contains(email))
                .then_some(())
        }
    })
    .await;
    let before = dump(&stack).await;
    for needle in [email, digest.as_str(), "Erasmus"] {
        assert!(
            !naming(&before, &[needle]).is_empty(),
            "{needle} is stored before"
        );
    }
    let open_before = stack.open_leads(&rep).await;

    let dry = erase(&stack, &["--email", "Erin.Erasmus@Acme.io", "--dry-run"]).await;
    assert!(dry.contains(&format!("lead {lead}")), "{dry}");
    assert!(dry.contains("dry run: nothing was changed"), "{dry}");
    assert!(!dry.contains(email), "the report masks the address: {dry}");
    // The services keep working meanwhile (retries, deadlines), so keys of their own may
    // come and go: what must stay is every key that held the person's data.
    let key_of = |entry: &String| entry.split(" => ").next().unwrap_or_default().to_owned();
    let after_dry: Vec<String> = dump(&stack).await.iter().map(key_of).collect();
    for entry in naming(&before, &[email, digest.as_str(), "Erasmus"]) {
        assert!(
            after_dry.contains(&key_of(entry)),
            "a dry run changes nothing, yet {} is gone",
            key_of(entry)
        );
    }
    assert!(!naming(&dump(&stack).await, &[email]).is_empty());

    let done = erase(&stack, &["--email", "Erin.Erasmus@Acme.io"]).await;
    assert!(done.contains("1 lead(s) found"), "{done}");
    assert!(
        done.contains(&format!("handoff erase --lead {lead}")),
        "{done}"
    );
    let after = dump(&stack).await;
    assert!(
        naming(&after, &traces).is_empty(),
        "traces left: {:#?}",
        naming(&after, &traces)
    );
    assert!(
        !naming(&after, &["otto.other@acme.io"]).is_empty(),
        "the other person's data stays"
    );
    assert_eq!(
        stack.open_leads(&rep).await,
        open_before - 1,
        "capacity given back"
    );

    // The services keep working: a new lead is routed.
    let next = stack
        .post_lead(&client, &handoff_e2e::qualified_lead(7))
        .await;
    eventually(Duration::from_secs(30), "a new lead assigned", || {
        let (stack, next) = (&stack, &next);
        async move { (stack.lead_view(next).await["state"] == "assigned").then_some(()) }
    })
    .await;
    let again = erase(&stack, &["--email", email]).await;
    assert!(again.contains("0 lead(s) found"), "{again}");
    assert!(
        again.contains(
            "removed: 0 keys, 0 hash fields, 0 set members, 0 list entries, 0 sticky-owner keys"
        ),
        "{again}"
    );
    stack.stop().await.unwrap();
}
