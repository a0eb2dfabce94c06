//! End-to-end tests: real HTTP, a real Kafka-protocol broker (Tansu), real Redis.
//! Run with `make test`, which starts both.

#![allow(clippy::unwrap_used, clippy::expect_used)] // assertions in tests

mod account_owners;
mod action_links;
mod clocks;
mod contract;
mod crash;
mod dashboard;
mod dead_letters;
mod dispositions;
mod erasure;
mod escalation;
mod http_input;
mod kafka_security;
mod lifecycle;
mod notifier_faults;
mod openapi;
mod outages;
mod personal_data;
mod poison;
mod rebalance;
mod rebuild_memory;
mod redis_topologies;
mod routing;
mod rules_live;
mod scorecard;
mod security;
mod sla;
mod state_loss;
mod tracing_export;
mod untrusted_input;
mod webhooks;
