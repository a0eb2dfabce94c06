//! Erasing one person's data from the state (`handoff erase`, docs/personal-data.md).
//!
//! What Redis holds about a lead is spread over many structures: the lead hash (its
//! decisions carry the contact's details), its timeline, the funnel's record, its place in
//! a rep's open set, a queue, the deadline and reminder sets and their claims, the outbox,
//! pending webhook deliveries (their bodies carry the contact), idempotency marks naming
//! the lead, and the sticky owner keyed by the contact's email digest. Rather than trust a
//! list that the next feature outgrows, the erasure walks every key of the deployment and
//! removes whatever names one of the leads (as a whole token: a key segment, a set member
//! `<lead>|<attempt>`, a JSON string) or is the contact's owner key: keys named after a lead
//! are deleted; from shared keys only the fields, members or entries naming it go.
//!
//! Not atomic across keys: a step handling the lead at the same moment can write some of it
//! back. Erasing again finds and removes it; a dry run after the erasure shows nothing left.

use std::collections::BTreeSet;

use redis::Value;

use crate::{Store, StoreError};

/// Fields of the lead hash whose JSON holds the lead (and so the contact).
const LEAD_PAYLOAD_FIELDS: [&str; 3] = ["lead", "decision", "assigned"];

/// What an erasure found and removed (or, in a dry run, would remove): counts, no data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    /// The leads erased.
    pub leads: BTreeSet<String>,
    /// Sticky-owner keys of the contacts' email addresses.
    pub contact_keys: u64,
    /// Keys deleted whole (named after a lead, or holding nothing but it).
    pub keys_deleted: u64,
    /// Fields removed from shared hashes (deadline claims, pending deliveries, …).
    pub hash_fields_removed: u64,
    /// Members removed from shared sets and sorted sets (open leads, queues, deadlines, …).
    pub members_removed: u64,
    /// Entries removed from shared lists.
    pub list_entries_removed: u64,
}

impl ErasureReport {
    pub fn removed_anything(&self) -> bool {
        self.contact_keys
            + self.keys_deleted
            + self.hash_fields_removed
            + self.members_removed
            + self.list_entries_removed
            > 0
    }
}

/// Whether `needle` occurs in `haystack` as a whole token: bounded by the text's ends or by
/// the separators key names, set members and JSON use (`:`, `|`, `"`, `\` of an escaped
/// quote inside a JSON string, `/`). So lead `crm-1` is not found inside `crm-10`.
pub(crate) fn contains_token(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let before_ok = |c: Option<char>| c.is_none_or(|c| matches!(c, ':' | '|' | '"' | '/'));
    let after_ok = |c: Option<char>| c.is_none_or(|c| matches!(c, ':' | '|' | '"' | '\\' | '/'));
    haystack.match_indices(needle).any(|(at, _)| {
        before_ok(haystack.get(..at).and_then(|h| h.chars().next_back()))
            && after_ok(
                haystack
                    .get(at + needle.len()..)
                    .and_then(|h| h.chars().next()),
            )
    })
}

fn names_any(text: &str, needles: &BTreeSet<String>) -> bool {
    needles.iter().any(|n| contains_token(text, n))
}

/// Every `email` string value anywhere in a JSON document.
fn emails_in(json: &serde_json::Value, found: &mut BTreeSet<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value {
                    serde_json::Value::String(email) if key == "email" && !email.is_empty() => {
                        found.insert(email.to_lowercase());
                    }
                    other => emails_in(other, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| emails_in(i, found)),
        _ => {}
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

impl Store {
    /// The leads whose stored decisions or waiting record name the contact `email`
    /// (normalised as ingest stores it: lower case). A lead still only `received` holds no
    /// contact data in Redis yet and is not found.
    pub async fn leads_of_contact(&self, email: &str) -> Result<BTreeSet<String>, StoreError> {
        let quoted = serde_json::to_string(email).map_err(|e| StoreError::Encode(e.to_string()))?;
        let prefix = format!("{}:lead:", self.keys.tag());
        let mut connection = self.connection();
        let mut found = BTreeSet::new();
        for key in self.keys_matching("lead:*").await? {
            let Some(lead_id) = key.strip_prefix(&prefix) else {
                continue;
            };
            if lead_id.ends_with(":log") {
                continue;
            }
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            if kind != "hash" {
                continue;
            }
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&key)
                .arg(&LEAD_PAYLOAD_FIELDS)
                .query_async(&mut connection)
                .await?;
            if values.iter().flatten().any(|v| v.contains(&quoted)) {
                found.insert(lead_id.to_owned());
            }
        }
        Ok(found)
    }

    /// The contact email addresses the stored records of `lead_ids` name, so their sticky
    /// owner keys go with them.
    async fn contact_emails(
        &self,
        lead_ids: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut connection = self.connection();
        let mut emails = BTreeSet::new();
        for lead_id in lead_ids {
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.keys.lead(lead_id))
                .arg(&LEAD_PAYLOAD_FIELDS)
                .query_async(&mut connection)
                .await?;
            for value in values.iter().flatten() {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(value) {
                    emails_in(&json, &mut emails);
                }
            }
        }
        Ok(emails)
    }

    /// Removes every trace of `lead_ids` and of the contacts `emails` (plus the contacts
    /// their records name) from the deployment's keys; with `dry_run`, only counts.
    pub async fn erase(
        &self,
        lead_ids: &BTreeSet<String>,
        emails: &BTreeSet<String>,
        dry_run: bool,
    ) -> Result<ErasureReport, StoreError> {
        let mut report = ErasureReport {
            leads: lead_ids.clone(),
            ..ErasureReport::default()
        };
        let mut emails = emails.clone();
        emails.extend(self.contact_emails(lead_ids).await?);
        let contact_keys: BTreeSet<String> =
            emails.iter().map(|e| self.keys.contact_owner(e)).collect();
        // A pending webhook delivery is named by a digest (its id) that its due, claim and
        // owner entries and its sent marker use: they name the lead only through the
        // record. Their ids join what is looked for, so the whole delivery goes, and an
        // attempt in flight cannot write the record back (rescheduling needs the owner
        // entry).
        let mut needles = lead_ids.clone();
        if !lead_ids.is_empty() {
            let pending = self.scan_collection("HSCAN", &self.pending()).await?;
            needles.extend(
                pending
                    .chunks(2)
                    .filter(|pair| pair.get(1).is_some_and(|v| names_any(v, lead_ids)))
                    .filter_map(|pair| pair.first().cloned()),
            );
        }
        // A step running at the same moment (a notifier rescheduling, a router handling a
        // redelivery) can write part of it back: passes repeat until one finds nothing.
        let passes = if dry_run { 1 } else { 3 };
        for _ in 0..passes {
            let pass = self.erase_pass(&needles, &contact_keys, dry_run).await?;
            let found = pass.removed_anything();
            report.contact_keys += pass.contact_keys;
            report.keys_deleted += pass.keys_deleted;
            report.hash_fields_removed += pass.hash_fields_removed;
            report.members_removed += pass.members_removed;
            report.list_entries_removed += pass.list_entries_removed;
            if !found {
                break;
            }
        }
        Ok(report)
    }

    /// One walk over every key: removes (or counts) what names one of `needles`, and the
    /// keys `contact_keys`.
    async fn erase_pass(
        &self,
        lead_ids: &BTreeSet<String>,
        contact_keys: &BTreeSet<String>,
        dry_run: bool,
    ) -> Result<ErasureReport, StoreError> {
        let mut report = ErasureReport::default();
        let mut connection = self.connection();
        for key in self.keys_matching("*").await? {
            if contact_keys.contains(&key) {
                report.contact_keys += 1;
                if !dry_run {
                    redis::cmd("DEL")
                        .arg(&key)
                        .query_async::<()>(&mut connection)
                        .await?;
                }
                continue;
            }
            if lead_ids.is_empty() {
                continue;
            }
            if names_any(&key, lead_ids) {
                report.keys_deleted += 1;
                if !dry_run {
                    redis::cmd("DEL")
                        .arg(&key)
                        .query_async::<()>(&mut connection)
                        .await?;
                }
                continue;
            }
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut connection)
                .await?;
            match kind.as_str() {
                "string" => {
                    let value: Option<String> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut connection)
                        .await?;
                    if value.is_some_and(|v| names_any(&v, lead_ids)) {
                        report.keys_deleted += 1;
                        if !dry_run {
                            redis::cmd("DEL")
                                .arg(&key)
                                .query_async::<()>(&mut connection)
                                .await?;
                        }
                    }
                }
                "hash" => {
                    let fields = self.scan_collection("HSCAN", &key).await?;
                    let naming: Vec<&String> = fields
                        .chunks(2)
                        .filter(|pair| pair.iter().any(|t| names_any(t, lead_ids)))
                        .filter_map(|pair| pair.first())
                        .collect();
                    report.hash_fields_removed += naming.len() as u64;
                    if !dry_run && !naming.is_empty() {
                        redis::cmd("HDEL")
                            .arg(&key)
                            .arg(&naming)
                            .query_async::<()>(&mut connection)
                            .await?;
                    }
                }
                "zset" | "set" => {
                    let (scan, remove, step) = if kind == "zset" {
                        ("ZSCAN", "ZREM", 2)
                    } else {
                        ("SSCAN", "SREM", 1)
                    };
                    let items = self.scan_collection(scan, &key).await?;
                    let naming: Vec<&String> = items
                        .chunks(step)
                        .filter_map(|item| item.first())
                        .filter(|member| names_any(member, lead_ids))
                        .collect();
                    report.members_removed += naming.len() as u64;
                    if !dry_run && !naming.is_empty() {
                        redis::cmd(remove)
                            .arg(&key)
                            .arg(&naming)
                            .query_async::<()>(&mut connection)
                            .await?;
                    }
                }
                "list" => {
                    let entries: Vec<String> = redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut connection)
                        .await?;
                    let naming: BTreeSet<&String> =
                        entries.iter().filter(|e| names_any(e, lead_ids)).collect();
                    report.list_entries_removed +=
                        entries.iter().filter(|e| naming.contains(e)).count() as u64;
                    if !dry_run {
                        for entry in naming {
                            redis::cmd("LREM")
                                .arg(&key)
                                .arg(0)
                                .arg(entry)
                                .query_async::<()>(&mut connection)
                                .await?;
                        }
                    }
                }
                // Gone meanwhile ("none"), or a type handoff does not write.
                _ => {}
            }
        }
        Ok(report)
    }

    /// Every item of a hash, set or sorted set (`HSCAN`, `SSCAN`, `ZSCAN`), flattened as
    /// Redis returns them (field then value, member then score, or members alone).
    async fn scan_collection(&self, command: &str, key: &str) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection();
        let mut cursor: u64 = 0;
        let mut items = Vec::new();
        loop {
            let (next, batch): (u64, Vec<Value>) = redis::cmd(command)
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            items.extend(batch.iter().map(|v| text_of(v).unwrap_or_default()));
            if next == 0 {
                return Ok(items);
            }
            cursor = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lead_id_is_found_as_a_whole_token_only() {
        for text in [
            "{p}:lead:crm-1",
            "{p}:lead:crm-1:log",
            "crm-1|2|disposition",
            r#"{"lead_id":"crm-1"}"#,
            r#"{"body":"{\"lead_id\":\"crm-1\"}"}"#,
            "done:abc123:crm-1",
            "crm-1",
        ] {
            assert!(contains_token(text, "crm-1"), "{text}");
        }
        for text in ["{p}:lead:crm-10", "crm-10|1", r#"{"lead_id":"xcrm-1"}"#, ""] {
            assert!(!contains_token(text, "crm-1"), "{text}");
        }
    }

    #[test]
    fn emails_are_found_anywhere_in_a_payload() {
        let mut found = BTreeSet::new();
        emails_in(
            &serde_json::json!({"lead": {"contact": {"email": "Jane@Example.com"}}, "rep": {"email": ""}}),
            &mut found,
        );
        assert_eq!(found, BTreeSet::from(["jane@example.com".to_owned()]));
    }
}
