//! Account owners published on `account.owner` (by a CRM connector), one hash per domain,
//! so every router instance routes by the same owners whichever instance consumed the record.
//!
//! The compacted topic is the source of truth and Redis a copy of it: a key lost here comes
//! back when the records are read again (a new consumer group, or the group's offsets reset
//! to the earliest). A tombstone deletes the domain's key, so nothing outlives its record.

use std::sync::LazyLock;

use redis::Script;

use handoff_domain::accounts::{AccountDomain, AccountOwner, AccountOwnership};

use crate::{Store, StoreError};

static SET_ACCOUNT_OWNER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/set_account_owner.lua")));

/// What became of an `account.owner` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerUpdate {
    /// The domain has this owner now.
    Applied,
    /// The stored owner changed later than this record says: kept.
    Stale,
}

impl Store {
    /// Stores the owner of `ownership.domain` unless the stored one is newer.
    pub async fn set_account_owner(
        &self,
        ownership: &AccountOwnership,
    ) -> Result<OwnerUpdate, StoreError> {
        let key = self.keys.account(&ownership.domain);
        let owner = serde_json::to_string(&AccountOwner::from(ownership)).map_err(|e| {
            StoreError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            }
        })?;
        let mut connection = self.connection();
        let applied: i64 = SET_ACCOUNT_OWNER
            .key(key)
            .arg(ownership.updated_at.timestamp_millis())
            .arg(owner)
            .invoke_async(&mut connection)
            .await?;
        Ok(if applied == 1 {
            OwnerUpdate::Applied
        } else {
            OwnerUpdate::Stale
        })
    }

    /// A tombstone: the domain has no owner any more. Whether it had one.
    pub async fn remove_account_owner(&self, domain: &AccountDomain) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let removed: u64 = redis::cmd("DEL")
            .arg(self.keys.account(domain))
            .query_async(&mut connection)
            .await?;
        Ok(removed > 0)
    }

    /// The owner of the first of `domains` that has one (the caller orders them nearest
    /// first), in one round trip; none without a round trip when `domains` is empty.
    pub async fn account_owner(
        &self,
        domains: &[AccountDomain],
    ) -> Result<Option<AccountOwnership>, StoreError> {
        if domains.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for domain in domains {
            pipe.hget(self.keys.account(domain), "owner");
        }
        let mut connection = self.connection();
        let owners: Vec<Option<String>> = pipe.query_async(&mut connection).await?;
        let Some((domain, owner)) = domains
            .iter()
            .zip(owners)
            .find_map(|(domain, owner)| owner.map(|o| (domain, o)))
        else {
            return Ok(None);
        };
        let corrupt = |message: String| StoreError::Corrupt {
            key: self.keys.account(domain),
            message,
        };
        let owner: AccountOwner =
            serde_json::from_str(&owner).map_err(|e| corrupt(e.to_string()))?;
        owner
            .into_ownership(domain.clone())
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }
}
