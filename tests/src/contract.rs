//! The event contract in proto/, compiled at test time (protox, pure Rust): every event
//! the services emit must decode strictly (unknown fields are errors) as the message its
//! `ce_type` names.

use std::path::PathBuf;

use handoff_domain::events::EventKind;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};

use crate::topics::Record;

#[derive(Debug)]
pub struct Contract {
    pool: DescriptorPool,
}

impl Contract {
    pub fn load() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto");
        let files = protox::compile(
            [
                "handoff/v1/lead.proto",
                "handoff/v1/events.proto",
                "handoff/v1/accounts.proto",
                "handoff/v1/reps.proto",
            ],
            [root],
        )
        .expect("proto/ compiles");
        let pool = DescriptorPool::from_file_descriptor_set(files).expect("descriptor pool");
        Self { pool }
    }

    /// Checks a record: CloudEvents headers present and consistent, payload a strict
    /// instance of the message its `ce_type` names.
    pub fn check(&self, record: &Record) -> Result<(), String> {
        for header in [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "content-type",
            "traceparent",
        ] {
            if record.header(header).is_none_or(str::is_empty) {
                return Err(format!("header {header} missing"));
            }
        }
        if record.header("ce_specversion") != Some("1.0") {
            return Err("ce_specversion is not 1.0".to_owned());
        }
        if record.key.as_deref() != record.header("ce_subject") {
            return Err("the key is not the subject (lead id)".to_owned());
        }
        let ce_type = record.header("ce_type").unwrap_or_default();
        let kind =
            EventKind::from_ce_type(ce_type).ok_or_else(|| format!("unknown ce_type {ce_type}"))?;
        self.check_payload(kind, &record.payload)
    }

    pub fn check_payload(&self, kind: EventKind, payload: &[u8]) -> Result<(), String> {
        self.decode(kind, payload).map(|_| ())
    }

    /// The payload as the message `kind` names, decoded strictly: a field proto/ does not
    /// define is an error, as it is for a consumer generated from proto/.
    pub fn decode(&self, kind: EventKind, payload: &[u8]) -> Result<DynamicMessage, String> {
        self.decode_as(kind.proto_message(), payload)
    }

    /// [`Self::decode`] for a message by its full name (records that are not lead events,
    /// such as `handoff.v1.AccountOwner`).
    pub fn decode_as(&self, message: &str, payload: &[u8]) -> Result<DynamicMessage, String> {
        let descriptor = self.message_named(message)?;
        let mut deserializer = serde_json::Deserializer::from_slice(payload);
        DynamicMessage::deserialize_with_options(
            descriptor,
            &mut deserializer,
            &DeserializeOptions::new().deny_unknown_fields(true),
        )
        .and_then(|message| deserializer.end().map(|()| message))
        .map_err(|e| format!("{message}: {e}: {}", String::from_utf8_lossy(payload)))
    }

    /// The descriptor of the message `kind`'s payload is.
    pub fn message(&self, kind: EventKind) -> Result<MessageDescriptor, String> {
        self.message_named(kind.proto_message())
    }

    pub fn message_named(&self, message: &str) -> Result<MessageDescriptor, String> {
        self.pool
            .get_message_by_name(message)
            .ok_or_else(|| format!("{message} not in proto/"))
    }

    /// Every message and enum compiled from proto/ (and the well-known types it imports).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }
}
