//! What a service tells the consume loop about one event: its effects, or why it failed
//! and whether trying again can help.

use std::fmt::Display;
use std::future::Future;

use futures::future::BoxFuture;
use handoff_domain::Transience;

use crate::{InboundEvent, KafkaError};

/// What must become durable before an event's offset may be stored.
pub type Effects = BoxFuture<'static, Result<(), KafkaError>>;

/// Why an event can never be processed (a closed set: it is a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonReason {
    /// Not JSON, or no payload.
    Undecodable,
    /// JSON, but not a valid message of the contract (unknown field, wrong type, invalid lead).
    ContractInvalid,
    /// A `ce_type` this topic does not carry.
    UnexpectedType,
    /// Its effect (e.g. a webhook, a produced event the broker refuses) failed for good.
    DeliveryFailed,
    /// Handling it (or its effects) panicked: a bug, caught so the partition keeps moving.
    HandlerPanic,
    /// Processing kept failing with a permanent error (e.g. unreadable stored data) for the
    /// whole `kafka.permanent_retry_budget_seconds`.
    ProcessingFailed,
}

impl PoisonReason {
    pub const ALL: [PoisonReason; 6] = [
        PoisonReason::Undecodable,
        PoisonReason::ContractInvalid,
        PoisonReason::UnexpectedType,
        PoisonReason::DeliveryFailed,
        PoisonReason::HandlerPanic,
        PoisonReason::ProcessingFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PoisonReason::Undecodable => "undecodable",
            PoisonReason::ContractInvalid => "contract_invalid",
            PoisonReason::UnexpectedType => "unexpected_type",
            PoisonReason::DeliveryFailed => "delivery_failed",
            PoisonReason::HandlerPanic => "handler_panic",
            PoisonReason::ProcessingFailed => "processing_failed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The event can never be processed: dead-letter it now and move on.
    #[error("{reason:?}: {detail}")]
    Poison {
        reason: PoisonReason,
        detail: String,
    },
    /// Processing failed. The event is retried with backoff (its partition waits) for the
    /// budget of its class; then a permanent failure is dead-lettered and a transient one
    /// (a dependency down) stops the service.
    #[error("{} failure: {detail}", if *.transient { "transient" } else { "permanent" })]
    Failed { transient: bool, detail: String },
}

impl HandleError {
    pub fn poison(reason: PoisonReason, detail: impl Into<String>) -> Self {
        Self::Poison {
            reason,
            detail: detail.into(),
        }
    }

    /// A failure classed by its error type (`Transience`), never by its text.
    pub fn from_error<E: Transience + Display>(error: E) -> Self {
        Self::Failed {
            transient: error.is_transient(),
            detail: error.to_string(),
        }
    }

    /// A dependency is down (Redis, the broker): retrying later can help.
    pub fn transient(error: impl Display) -> Self {
        Self::Failed {
            transient: true,
            detail: error.to_string(),
        }
    }

    /// Retrying will not help (stored data unreadable, an event that cannot be encoded).
    pub fn permanent(error: impl Display) -> Self {
        Self::Failed {
            transient: false,
            detail: error.to_string(),
        }
    }
}

impl Transience for HandleError {
    fn is_transient(&self) -> bool {
        match self {
            HandleError::Poison { .. } => false,
            HandleError::Failed { transient, .. } => *transient,
        }
    }
}

/// A service's reaction to one event.
pub trait EventHandler: Send + Sync + 'static {
    /// Performs the event's synchronous effects (e.g. a Redis script) and returns the ones
    /// still in flight (e.g. produce acknowledgements).
    fn handle(
        &self,
        event: &InboundEvent,
    ) -> impl Future<Output = Result<Effects, HandleError>> + Send;
}
