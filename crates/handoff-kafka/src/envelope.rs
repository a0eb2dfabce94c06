//! CloudEvents 1.0, Kafka protocol binding, binary mode: attributes travel as `ce_*`
//! headers, the payload is the event data (JSON), the key is the lead id.

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use handoff_domain::events::{stable_event_id, EventKind};
use handoff_domain::lead::{Lead, RecordOrigin};
use handoff_domain::privacy::without_values;

use crate::TraceParent;
use crate::{HandleError, PoisonReason};

/// Headers added to a dead-lettered record (the original headers are kept).
pub const DLQ_HEADERS: [&str; 6] = [
    "handoff_dlq_origin_topic",
    "handoff_dlq_origin_partition",
    "handoff_dlq_origin_offset",
    "handoff_dlq_reason",
    "handoff_dlq_error",
    "handoff_dlq_service",
];

/// An event ready to publish.
#[derive(Debug, Clone)]
pub struct OutboundEvent {
    pub kind: EventKind,
    /// `ce_id`: stable for the same fact, so consumers can de-duplicate.
    pub id: String,
    /// `ce_subject` and the record key: the lead id.
    pub subject: String,
    pub time: DateTime<Utc>,
    pub traceparent: TraceParent,
    pub payload: Vec<u8>,
    /// Headers beyond the CloudEvents ones (e.g. what rebuilding Redis from the log needs:
    /// docs/operations.md).
    pub extra_headers: Vec<(&'static str, String)>,
}

impl OutboundEvent {
    /// An event whose payload is already encoded (as it was stored with the decision), so
    /// what is published is byte for byte what was recorded.
    pub fn encoded(
        kind: EventKind,
        id: String,
        subject: &str,
        time: DateTime<Utc>,
        traceparent: TraceParent,
        payload: String,
    ) -> Self {
        Self {
            kind,
            id,
            subject: subject.to_owned(),
            time,
            traceparent,
            payload: payload.into_bytes(),
            extra_headers: Vec::new(),
        }
    }

    /// Adds a header beyond the CloudEvents ones.
    pub fn with_header(mut self, key: &'static str, value: String) -> Self {
        self.extra_headers.push((key, value));
        self
    }

    pub fn new<T: Serialize>(
        kind: EventKind,
        id: String,
        subject: &str,
        time: DateTime<Utc>,
        traceparent: TraceParent,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind,
            id,
            subject: subject.to_owned(),
            time,
            traceparent,
            payload: serde_json::to_vec(data)?,
            extra_headers: Vec::new(),
        })
    }

    /// The `lead.created` event of `lead`, as ingest publishes it and any other producer
    /// may: its id derived from the lead id, so the same lead published twice is one fact.
    pub fn lead_created(lead: &Lead, traceparent: TraceParent) -> Result<Self, serde_json::Error> {
        Self::new(
            EventKind::LeadCreated,
            stable_event_id(EventKind::LeadCreated, &[lead.id.as_str()]),
            lead.id.as_str(),
            lead.received_at,
            traceparent,
            lead,
        )
    }

    pub(crate) fn headers(&self, source: &str) -> OwnedHeaders {
        let time = self.time.to_rfc3339_opts(SecondsFormat::Millis, true);
        let traceparent = self.traceparent.to_string();
        [
            ("ce_specversion", "1.0"),
            ("ce_id", self.id.as_str()),
            ("ce_source", source),
            ("ce_type", self.kind.ce_type()),
            ("ce_time", time.as_str()),
            ("ce_subject", self.subject.as_str()),
            ("content-type", "application/json"),
            ("traceparent", traceparent.as_str()),
        ]
        .into_iter()
        .chain(
            self.extra_headers
                .iter()
                .map(|(key, value)| (*key, value.as_str())),
        )
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        })
    }
}

/// A consumed record, copied out of librdkafka's buffer so it can outlive the poll.
#[derive(Debug, Clone)]
pub struct InboundEvent {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record's Kafka timestamp (CreateTime or LogAppendTime); none only on records
    /// of the pre-0.10 message format.
    pub timestamp: Option<DateTime<Utc>>,
}

impl InboundEvent {
    pub(crate) fn from_message(message: &BorrowedMessage<'_>) -> Self {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            header.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: message
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// What kind of event this is: its `ce_type`, or for records without CloudEvents
    /// headers (other producers), the topic it came from.
    pub fn kind(&self) -> Option<EventKind> {
        match self.header("ce_type") {
            Some(ce_type) => EventKind::from_ce_type(ce_type),
            None => EventKind::ALL
                .into_iter()
                .find(|k| self.topic.ends_with(k.topic_suffix())),
        }
    }

    pub fn ce_id(&self) -> Option<&str> {
        self.header("ce_id")
    }

    /// Where this record sits and what it says about itself: what a lead id or receipt
    /// time the producer left unset is derived from.
    pub fn origin(&self) -> RecordOrigin<'_> {
        RecordOrigin {
            ce_source: self.header("ce_source"),
            ce_id: self.ce_id(),
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
        }
    }

    /// The trace this event belongs to, continued with a new span.
    pub fn child_trace(&self) -> TraceParent {
        TraceParent::child_of(self.header("traceparent"))
    }

    /// Decodes the payload as `kind`. A record without CloudEvents headers is accepted (other
    /// producers may not set them); a record whose `ce_type` names another kind is not.
    pub fn decode<T: DeserializeOwned>(&self, kind: EventKind) -> Result<T, HandleError> {
        self.decode_as(kind.ce_type(), kind.proto_message())
    }

    /// [`Self::decode`] for records that are not lead events (e.g. `account.owner`): the
    /// payload as the proto message `message`, whose CloudEvents type is `expected_ce_type`.
    pub fn decode_as<T: DeserializeOwned>(
        &self,
        expected_ce_type: &str,
        message: &str,
    ) -> Result<T, HandleError> {
        if let Some(ce_type) = self.header("ce_type") {
            if ce_type != expected_ce_type {
                return Err(HandleError::poison(
                    PoisonReason::UnexpectedType,
                    format!("ce_type {ce_type} on a topic of {expected_ce_type}"),
                ));
            }
        }
        let payload = self.payload.as_deref().ok_or_else(|| {
            HandleError::poison(PoisonReason::Undecodable, "the record has no payload")
        })?;
        let mut deserializer = serde_json::Deserializer::from_slice(payload);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let reason = if e.inner().is_syntax() || e.inner().is_eof() {
                PoisonReason::Undecodable
            } else {
                PoisonReason::ContractInvalid
            };
            // The detail is logged and travels in a header: where the problem is, never the
            // value (a phone number in the wrong type is still a phone number).
            let at = match e.path().to_string() {
                root if root == "." => String::new(),
                path => format!("{path}: "),
            };
            HandleError::poison(
                reason,
                format!(
                    "{message} payload: {at}{}",
                    without_values(&e.inner().to_string())
                ),
            )
        })
    }

    /// The record as it goes to the dead-letter topic: original payload, key and headers,
    /// plus where it came from and why it could not be processed.
    pub(crate) fn dead_letter_headers(
        &self,
        reason: PoisonReason,
        detail: &str,
        service: &str,
    ) -> OwnedHeaders {
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let origin: [(&str, &str); 6] = [
            (DLQ_HEADERS[0], &self.topic),
            (DLQ_HEADERS[1], &partition),
            (DLQ_HEADERS[2], &offset),
            (DLQ_HEADERS[3], reason.as_str()),
            (DLQ_HEADERS[4], detail),
            (DLQ_HEADERS[5], service),
        ];
        let original = self
            .headers
            .iter()
            .filter(|(key, _)| !key.starts_with("handoff_dlq_"))
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_slice()),
                })
            });
        origin.into_iter().fold(original, |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        })
    }
}
