//! handoff's Kafka adapter. Events travel as CloudEvents 1.0 (Kafka protocol binding,
//! binary mode) with JSON payloads and a W3C `traceparent`; the record key is the lead id.
//!
//! Consumers are at-least-once: an offset is stored only once every effect of its message
//! (and of every message before it on its partition) is durable; undecodable events go to
//! the dead-letter topic and the partition moves on; failures are retried on their own
//! partition, never skipped.

mod assignment;
mod client_config;
mod connection;
mod consumer;
mod dead_letters;
mod envelope;
mod error;
mod gate;
mod handle;
mod hop;
mod log;
mod partition;
mod producer;
mod topics;
mod trace;

pub use client_config::{base_config, consumer_config, producer_config, reader_config};
pub use connection::check_connection;
pub use consumer::{run_consumer, ConsumerSpec};
pub use dead_letters::{read_to_end, replay, Replayed, REPLAYED_FROM_HEADER};
pub use envelope::{InboundEvent, OutboundEvent, DLQ_HEADERS};
pub use error::KafkaError;
pub use gate::WorkGate;
pub use handle::{Effects, EventHandler, HandleError, PoisonReason};
pub use log::{
    index_log, log_position, read_in_order, LogPosition, LogRecord, RecordAt,
    IDEMPOTENCY_FINGERPRINT_HEADER, IDEMPOTENCY_KEY_HEADER, LATE_REASON_HEADER,
};
pub use producer::{Ack, EventProducer};
pub use topics::{ensure_topics, Topics};
pub use trace::TraceParent;

/// Re-exported so services can write `handoff_kafka::rdkafka::...` without their own
/// dependency on the crate's version.
pub use rdkafka;
