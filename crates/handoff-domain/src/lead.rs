//! The lead as it travels on `lead.created` (proto: `handoff.v1.Lead`).
//!
//! Field names follow proto/handoff/v1/lead.proto; serde aliases accept the
//! lowerCamelCase spelling too, because proto3 JSON producers may emit either.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A lead's identifier: a UUIDv7 assigned at ingest, or whatever id another producer brings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(String);

impl LeadId {
    /// A new time-ordered id (UUIDv7), so ids sort roughly by arrival.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for LeadId {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for LeadId {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lead {
    pub id: LeadId,
    #[serde(alias = "receivedAt")]
    pub received_at: DateTime<Utc>,
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub contact: Contact,
    #[serde(default)]
    pub company: Company,
    #[serde(default)]
    pub engagement: Engagement,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

/// `lead.created` as a producer wrote it. proto3 leaves every field optional; the two a lead
/// cannot do without are filled from the record when unset ([`LeadPayload::into_lead`], the
/// rules are in proto/handoff/v1/lead.proto).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadPayload {
    #[serde(default)]
    pub id: Option<LeadId>,
    #[serde(default, alias = "receivedAt")]
    pub received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub contact: Contact,
    #[serde(default)]
    pub company: Company,
    #[serde(default)]
    pub engagement: Engagement,
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

/// The Kafka record a `lead.created` payload came in: what a missing id or receipt time
/// is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordOrigin<'a> {
    /// The CloudEvents `ce_source` and `ce_id` headers, when the producer set them.
    pub ce_source: Option<&'a str>,
    pub ce_id: Option<&'a str>,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The record's Kafka timestamp (CreateTime or LogAppendTime).
    pub timestamp: Option<DateTime<Utc>>,
}

/// A `lead.created` payload that cannot become a lead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncompleteLead {
    #[error("received_at is unset and the record carries no timestamp")]
    NoReceivedAt,
}

/// Namespace of lead ids derived from records (UUIDv5), apart from event ids.
const RECORD_LEAD_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x1ead_1d00_5e1d_4c8a_9b1e_4ad0_ff00_0001);

impl LeadId {
    /// The id of a lead whose producer left `id` unset: a UUIDv5 of the record's `ce_id`
    /// (with `ce_source`) when it has one, so a producer's retry is the same lead; else of
    /// its position in the log, with the timestamp so a recreated topic (offsets from 0
    /// again) does not reuse the ids of old leads. Either way a redelivery of the record
    /// gets the same id.
    pub fn derived_from(origin: &RecordOrigin<'_>) -> Self {
        // NUL separates the parts: it cannot occur in a header value or topic name.
        let name = match origin.ce_id.filter(|id| !id.is_empty()) {
            Some(ce_id) => format!("ce\0{}\0{ce_id}", origin.ce_source.unwrap_or_default()),
            None => format!(
                "log\0{}\0{}\0{}\0{}",
                origin.topic,
                origin.partition,
                origin.offset,
                origin
                    .timestamp
                    .map(|t| t.timestamp_millis().to_string())
                    .unwrap_or_default()
            ),
        };
        Self(uuid::Uuid::new_v5(&RECORD_LEAD_ID_NAMESPACE, name.as_bytes()).to_string())
    }
}

impl LeadPayload {
    /// The lead, with an unset (or empty) `id` derived from the record and an unset
    /// `received_at` taken from the record's timestamp.
    pub fn into_lead(self, origin: &RecordOrigin<'_>) -> Result<Lead, IncompleteLead> {
        let received_at = self
            .received_at
            .or(origin.timestamp)
            .ok_or(IncompleteLead::NoReceivedAt)?;
        let id = self
            .id
            .filter(|id| !id.as_str().is_empty())
            .unwrap_or_else(|| LeadId::derived_from(origin));
        Ok(Lead {
            id,
            received_at,
            source: self.source,
            contact: self.contact,
            company: self.company,
            engagement: self.engagement,
            custom: self.custom,
        })
    }
}

impl Lead {
    /// The domain of the contact's email address, lower case (emails are normalized at ingest).
    pub fn email_domain(&self) -> Option<&str> {
        self.contact
            .email
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .filter(|d| !d.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign: String,
    #[serde(default, skip_serializing_if = "Utm::is_empty")]
    pub utm: Utm,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Utm {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub medium: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub campaign: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub term: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
}

impl Utm {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

// Debug output is masked (see below): a `{:?}` of a lead must not put a person in a log.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Required in a submission; stored lower case.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub email: String,
    #[serde(default, alias = "firstName", skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    #[serde(default, alias = "lastName", skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    /// 7 to 15 digits, optionally with a leading `+` (spaces, dashes, dots, slashes and
    /// parentheses are dropped).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |value: &str| if value.is_empty() { "" } else { "[redacted]" };
        f.debug_struct("Contact")
            .field("email", &crate::privacy::mask_email(&self.email))
            .field("first_name", &hidden(&self.first_name))
            .field("last_name", &hidden(&self.last_name))
            .field("phone", &hidden(&self.phone))
            .field("title", &self.title)
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Company {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A host name (`example.com`); a URL is reduced to its host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(format = "uint32", maximum = 4294967295_u32)
    )]
    pub employees: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub industry: String,
    /// ISO 3166-1 alpha-2, alpha-3 or English name; stored as alpha-2.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    #[serde(
        default,
        alias = "postalCode",
        skip_serializing_if = "String::is_empty"
    )]
    pub postal_code: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Engagement {
    #[serde(default, alias = "demoRequest", skip_serializing_if = "is_false")]
    pub demo_request: bool,
    #[serde(default, alias = "pricingPageViews", skip_serializing_if = "is_zero")]
    #[cfg_attr(
        feature = "openapi",
        schema(format = "uint32", maximum = 4294967295_u32)
    )]
    pub pricing_page_views: u32,
    #[serde(default, alias = "contentDownloads", skip_serializing_if = "is_zero")]
    #[cfg_attr(
        feature = "openapi",
        schema(format = "uint32", maximum = 4294967295_u32)
    )]
    pub content_downloads: u32,
    #[serde(default, alias = "webinarsAttended", skip_serializing_if = "is_zero")]
    #[cfg_attr(
        feature = "openapi",
        schema(format = "uint32", maximum = 4294967295_u32)
    )]
    pub webinars_attended: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<Activity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Activity {
    #[serde(default)]
    pub kind: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_debug_shows_no_person() {
        let contact = Contact {
            email: "jane.doe@example.com".into(),
            first_name: "Jane".into(),
            last_name: "Doe".into(),
            phone: "+4930123456".into(),
            title: "CTO".into(),
        };
        let shown = format!("{contact:?}");
        for personal in ["jane.doe", "Jane", "Doe", "4930123456"] {
            assert!(!shown.contains(personal), "{shown}");
        }
        assert!(
            shown.contains("j***@example.com") && shown.contains("CTO"),
            "{shown}"
        );
    }

    fn origin(ce_id: Option<&str>, offset: i64) -> RecordOrigin<'_> {
        RecordOrigin {
            ce_source: Some("crm-sync"),
            ce_id,
            topic: "prod.lead.created",
            partition: 2,
            offset,
            timestamp: DateTime::from_timestamp_millis(1_795_000_000_000),
        }
    }

    fn payload(json: &str) -> LeadPayload {
        match serde_json::from_str(json) {
            Ok(payload) => payload,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    #[test]
    fn an_unset_id_and_receipt_come_from_the_record_the_same_way_every_time() {
        let json = r#"{"contact":{"email":"a@b.io"}}"#;
        let first = payload(json).into_lead(&origin(None, 7));
        let again = payload(json).into_lead(&origin(None, 7));
        assert_eq!(first, again, "a redelivery is the same lead");
        let lead = first.map_err(|e| e.to_string());
        assert_eq!(
            lead.as_ref().map(|l| l.received_at),
            Ok(origin(None, 7).timestamp.unwrap_or_default())
        );
        let other = payload(json).into_lead(&origin(None, 8));
        assert_ne!(
            lead.map(|l| l.id),
            other.map(|l| l.id).map_err(|e| e.to_string()),
            "another record is another lead"
        );
    }

    #[test]
    fn a_ce_id_names_the_lead_wherever_the_record_sits() {
        let json = r#"{"id":"","contact":{"email":"a@b.io"}}"#;
        let at_7 = payload(json).into_lead(&origin(Some("evt-1"), 7));
        let at_9 = payload(json).into_lead(&origin(Some("evt-1"), 9));
        assert_eq!(at_7.map(|l| l.id), at_9.map(|l| l.id));
    }

    #[test]
    fn what_the_producer_set_wins_and_no_timestamp_at_all_is_an_error() {
        let lead = payload(r#"{"id":"crm-1","receivedAt":"2026-11-22T10:00:00Z"}"#)
            .into_lead(&origin(Some("evt-1"), 7));
        assert_eq!(
            lead.map(|l| (l.id.to_string(), l.received_at.to_rfc3339())),
            Ok(("crm-1".to_owned(), "2026-11-22T10:00:00+00:00".to_owned()))
        );
        let no_time = RecordOrigin {
            timestamp: None,
            ..origin(None, 7)
        };
        assert_eq!(
            payload("{}").into_lead(&no_time),
            Err(IncompleteLead::NoReceivedAt)
        );
    }
}
