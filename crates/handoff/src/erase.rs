//! `handoff erase`: one person's data out of Redis, on request (docs/personal-data.md,
//! "Erasing a person"). The leads are found by the contact's email address (or named by
//! id), then every key, field and member naming them goes (handoff_store's erasure). The
//! report counts what went; it never prints the data itself.
//!
//! Kafka is not touched: the person's events stay on their topics until retention deletes
//! them, and a rebuild of Redis from the log would bring the leads back. The report ends
//! with the command to run again after such a rebuild (lead ids only).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::Context;

use handoff_config::LoadedConfig;
use handoff_domain::privacy::mask_email;
use handoff_domain::validation::normalize_email;
use handoff_store::{ErasureReport, Store};

/// Whose data to erase.
#[derive(Debug, Clone, Default)]
pub struct EraseRequest {
    /// Contact email addresses (as given; normalised like ingest normalises them).
    pub emails: Vec<String>,
    /// Lead ids.
    pub leads: Vec<String>,
    /// Count only; change nothing.
    pub dry_run: bool,
}

/// Erases (or counts, `dry_run`) and returns the report to print.
pub async fn run(loaded: &LoadedConfig, request: &EraseRequest) -> anyhow::Result<String> {
    let settings = &loaded.settings;
    let store = Store::connect(&settings.redis.url, &settings.redis.key_prefix)
        .await
        .context("cannot reach Redis (redis.url)")?;
    let (report, emails) = erase(&store, request).await?;
    Ok(describe(&report, &emails, request.dry_run))
}

/// The erasure itself, for the command and the tests: returns the report and the
/// normalised addresses it looked for.
pub async fn erase(
    store: &Store,
    request: &EraseRequest,
) -> anyhow::Result<(ErasureReport, BTreeSet<String>)> {
    anyhow::ensure!(
        !request.emails.is_empty() || !request.leads.is_empty(),
        "name the person: --email ADDRESS and/or --lead LEAD_ID"
    );
    let mut emails = BTreeSet::new();
    for raw in &request.emails {
        let email = normalize_email(raw)
            .map_err(|why| anyhow::anyhow!("--email {}: {why}", mask_email(raw)))?;
        emails.insert(email);
    }
    let mut leads: BTreeSet<String> = request.leads.iter().cloned().collect();
    for email in &emails {
        leads.extend(
            store
                .leads_of_contact(email)
                .await
                .context("cannot look the contact's leads up")?,
        );
    }
    let report = store
        .erase(&leads, &emails, request.dry_run)
        .await
        .context("erasure failed part-way (run it again: it is idempotent)")?;
    Ok((report, emails))
}

/// For people: counts and lead ids, the addresses masked.
pub fn describe(report: &ErasureReport, emails: &BTreeSet<String>, dry_run: bool) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would remove" } else { "removed" };
    let contacts: Vec<String> = emails.iter().map(|e| mask_email(e)).collect();
    let _ = writeln!(
        out,
        "{} lead(s) found{}{}",
        report.leads.len(),
        if contacts.is_empty() { "" } else { " for " },
        contacts.join(", ")
    );
    for lead in &report.leads {
        let _ = writeln!(out, "  lead {lead}");
    }
    let _ = writeln!(
        out,
        "{verb}: {} keys, {} hash fields, {} set members, {} list entries, {} sticky-owner keys",
        report.keys_deleted,
        report.hash_fields_removed,
        report.members_removed,
        report.list_entries_removed,
        report.contact_keys
    );
    if dry_run {
        out.push_str("dry run: nothing was changed\n");
    } else if !report.leads.is_empty() {
        let leads: Vec<String> = report.leads.iter().map(|l| format!("--lead {l}")).collect();
        let _ = writeln!(
            out,
            "the events stay on Kafka until retention deletes them; after a rebuild from the \
             log (handoff state rebuild) run again: handoff erase {}",
            leads.join(" ")
        );
    }
    out
}
