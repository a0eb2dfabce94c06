//! Start-up shared by the `handoff` binary and the end-to-end tests: building the
//! dependencies (Redis, producers, metrics, topics) and running a set of services.

pub mod demo;
pub mod dev;
pub mod dlq;
pub mod erase;
pub mod keys;
pub mod reload;
pub mod scorecard;
pub mod services;
pub mod shutdown;
pub mod simulate;
pub mod state;
