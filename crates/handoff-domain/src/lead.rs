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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
