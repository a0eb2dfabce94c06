//! The heart of handoff, free of IO: what a lead is, when it is valid, how it scores
//! against the shared MQL definition, which rep it goes to and when its first touch is
//! due. Services are adapters around this crate; the simulator and the benchmarks use it
//! directly.

pub mod accounts;
pub mod action_link;
pub mod agreement;
pub mod assignment;
pub mod disposition;
pub mod events;
pub mod ids;
pub mod lead;
pub mod lifecycle;
pub mod privacy;
pub mod rep_overrides;
pub mod routing;
pub mod scorecard;
pub mod scoring;
pub mod simulation;
pub mod sla;
pub mod submission;
pub mod validation;

pub use ids::{QueueName, RepId, TeamId, Transience};
pub use lead::{Lead, LeadId};
