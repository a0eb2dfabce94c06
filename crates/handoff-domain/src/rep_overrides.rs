//! A rep's runtime overrides (active, available, capacity: what `PUT /v1/reps/{id}` sets
//! over the rules file's defaults) as a record on the compacted `rep.state` topic, keyed
//! by rep id (proto: `handoff.v1.RepOverrides`, proto/handoff/v1/reps.proto). Redis holds
//! the overrides routing reads; the topic is their durable copy, from which a rebuild of
//! the Redis state restores them (docs/operations.md), and an audit trail of who changed
//! what.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::RepId;

/// The `ce_type` of a `rep.state` record.
pub const REP_OVERRIDES_CE_TYPE: &str = "io.handoff.rep.overrides.v1";
/// The proto message of a `rep.state` value.
pub const REP_OVERRIDES_MESSAGE: &str = "handoff.v1.RepOverrides";
/// The topic's name without the deployment prefix.
pub const REP_STATE_TOPIC_SUFFIX: &str = "rep.state";

/// Every override in force for one rep after a change; an absent field has no override
/// (the rules file's default applies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepOverrides {
    #[serde(alias = "repId")]
    pub rep_id: RepId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// When the change was made.
    #[serde(alias = "updatedAt")]
    pub updated_at: DateTime<Utc>,
    /// The name of the API key that made it.
    #[serde(
        default,
        alias = "changedBy",
        with = "crate::ids::empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub changed_by: Option<String>,
}

impl RepOverrides {
    /// The overrides as Redis stores them (field → value); unparsable stored values are
    /// left out, as routing ignores them too.
    pub fn from_stored(
        rep_id: RepId,
        stored: &BTreeMap<String, String>,
        updated_at: DateTime<Utc>,
        changed_by: Option<String>,
    ) -> Self {
        Self {
            rep_id,
            active: stored.get("active").and_then(|v| v.parse().ok()),
            available: stored.get("available").and_then(|v| v.parse().ok()),
            capacity: stored.get("capacity").and_then(|v| v.parse().ok()),
            updated_at,
            changed_by,
        }
    }

    /// What to set and what to clear in Redis so it holds exactly these overrides.
    pub fn to_stored(&self) -> (Vec<(&'static str, String)>, Vec<&'static str>) {
        let fields = [
            ("active", self.active.map(|v| v.to_string())),
            ("available", self.available.map(|v| v.to_string())),
            ("capacity", self.capacity.map(|v| v.to_string())),
        ];
        let mut set = Vec::new();
        let mut clear = Vec::new();
        for (field, value) in fields {
            match value {
                Some(value) => set.push((field, value)),
                None => clear.push(field),
            }
        }
        (set, clear)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stored_overrides_round_trip_and_absent_fields_are_cleared() {
        let stored = BTreeMap::from([
            ("active".to_owned(), "false".to_owned()),
            ("capacity".to_owned(), "7".to_owned()),
        ]);
        let overrides = RepOverrides::from_stored(RepId::new("c"), &stored, Utc::now(), None);
        assert_eq!(
            (overrides.active, overrides.available, overrides.capacity),
            (Some(false), None, Some(7))
        );
        let (set, clear) = overrides.to_stored();
        assert_eq!(
            set,
            vec![("active", "false".to_owned()), ("capacity", "7".to_owned())]
        );
        assert_eq!(clear, vec!["available"]);
    }

    #[test]
    fn either_field_spelling_is_read() {
        let proto_json = r#"{"repId":"b","available":false,"updatedAt":"2026-11-23T10:00:00Z","changedBy":"ops"}"#;
        let overrides: RepOverrides = serde_json::from_str(proto_json).unwrap();
        assert_eq!(overrides.rep_id.as_str(), "b");
        assert_eq!(overrides.available, Some(false));
        assert_eq!(overrides.changed_by.as_deref(), Some("ops"));
    }
}
