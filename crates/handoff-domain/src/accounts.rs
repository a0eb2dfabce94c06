//! Account ownership kept current by another system (a CRM connector): `account.owner`
//! records (proto: `handoff.v1.AccountOwner`, proto/handoff/v1/accounts.proto), keyed by the
//! account's domain on a compacted topic; a null value removes the owner.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{empty_as_none, RepId};

/// The `ce_type` of an `account.owner` record, when its producer sets CloudEvents headers.
pub const ACCOUNT_OWNER_CE_TYPE: &str = "io.handoff.account.owner.v1";
/// The proto message of an `account.owner` value.
pub const ACCOUNT_OWNER_MESSAGE: &str = "handoff.v1.AccountOwner";
/// The topic's name without the deployment prefix.
pub const ACCOUNT_OWNER_TOPIC_SUFFIX: &str = "account.owner";

/// Longest domain name (RFC 1035), and longest label in it.
const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A domain an account owns: lowercased, at least two labels of letters, digits and
/// hyphens (IDNs in their `xn--` form).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountDomain(String);

/// Something that is not an account domain. It never quotes the input: a key in the wrong
/// place may be an email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a domain (expected the account's lowercased domain, e.g. bigcorp.de): {0}")]
pub struct NotADomain(&'static str);

impl AccountDomain {
    pub fn parse(raw: &str) -> Result<Self, NotADomain> {
        let domain = raw.to_ascii_lowercase();
        if domain.is_empty() || domain.len() > MAX_DOMAIN_LEN {
            return Err(NotADomain("empty or longer than 253 characters"));
        }
        let mut labels = 0;
        for label in domain.split('.') {
            labels += 1;
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(NotADomain("a label is empty or longer than 63 characters"));
            }
            if !label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(NotADomain(
                    "only letters, digits, hyphens and dots are allowed",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(NotADomain("a label starts or ends with a hyphen"));
            }
        }
        if labels < 2 {
            return Err(NotADomain("a domain has at least two labels"));
        }
        Ok(Self(domain))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain, then each parent that is still a domain: `eu.acme.io`, `acme.io`.
    /// A lead from a subdomain belongs to the account of its nearest listed parent.
    pub fn with_parents(&self) -> impl Iterator<Item = AccountDomain> + '_ {
        std::iter::successors(Some(self.0.as_str()), |d| {
            d.split_once('.').map(|(_, parent)| parent)
        })
        .filter(|d| d.contains('.'))
        .map(|d| AccountDomain(d.to_owned()))
    }
}

impl fmt::Display for AccountDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `account.owner` value as a producer wrote it (proto3 JSON: either field spelling,
/// defaults left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountOwner {
    #[serde(
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub domain: Option<String>,
    #[serde(
        default,
        alias = "accountName",
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub account_name: Option<String>,
    #[serde(alias = "ownerRepId")]
    pub owner_rep_id: RepId,
    #[serde(alias = "updatedAt")]
    pub updated_at: DateTime<Utc>,
}

/// Why an `account.owner` value cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAccountOwner {
    #[error("domain: {0}")]
    Domain(NotADomain),
    #[error("domain: differs from the record key (the key is the account's domain)")]
    DomainIsNotTheKey,
    #[error("owner_rep_id: empty (publish a tombstone, a null value, to remove an owner)")]
    NoOwner,
}

/// Who owns the account of one domain, checked: what the router stores and routes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOwnership {
    pub domain: AccountDomain,
    /// As explanations name the account; the domain when the producer gave no name.
    pub account_name: Option<String>,
    pub owner: RepId,
    pub updated_at: DateTime<Utc>,
}

impl AccountOwner {
    /// The ownership this value states for the domain `key`.
    pub fn into_ownership(
        self,
        key: AccountDomain,
    ) -> Result<AccountOwnership, InvalidAccountOwner> {
        if let Some(domain) = &self.domain {
            let domain = AccountDomain::parse(domain).map_err(InvalidAccountOwner::Domain)?;
            if domain != key {
                return Err(InvalidAccountOwner::DomainIsNotTheKey);
            }
        }
        if self.owner_rep_id.as_str().trim().is_empty() {
            return Err(InvalidAccountOwner::NoOwner);
        }
        Ok(AccountOwnership {
            domain: key,
            account_name: self.account_name.filter(|n| !n.trim().is_empty()),
            owner: self.owner_rep_id,
            updated_at: self.updated_at,
        })
    }
}

impl AccountOwnership {
    /// The account as explanations name it.
    pub fn account(&self) -> &str {
        self.account_name.as_deref().unwrap_or(self.domain.as_str())
    }
}

impl From<&AccountOwnership> for AccountOwner {
    fn from(ownership: &AccountOwnership) -> Self {
        Self {
            domain: Some(ownership.domain.to_string()),
            account_name: ownership.account_name.clone(),
            owner_rep_id: ownership.owner.clone(),
            updated_at: ownership.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(raw: &str) -> AccountDomain {
        match AccountDomain::parse(raw) {
            Ok(d) => d,
            Err(e) => panic!("{raw}: {e}"),
        }
    }

    #[test]
    fn domains_are_lowercased_and_checked() {
        assert_eq!(domain("BigCorp.DE").as_str(), "bigcorp.de");
        assert_eq!(
            domain("xn--bcher-kva.example").as_str(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "localhost",
            "ana@bigcorp.de",
            "bigcorp..de",
            ".bigcorp.de",
            "bigcorp.de.",
            " bigcorp.de",
            "-bigcorp.de",
            "big_corp.de",
            "bïgcorp.de",
        ] {
            assert!(AccountDomain::parse(bad).is_err(), "{bad:?} passed");
        }
        let long = format!("{}.de", "a".repeat(64));
        assert!(AccountDomain::parse(&long).is_err());
    }

    #[test]
    fn a_domain_comes_with_its_parents() {
        let parents: Vec<String> = domain("eu.sales.acme.io")
            .with_parents()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(parents, ["eu.sales.acme.io", "sales.acme.io", "acme.io"]);
    }

    #[test]
    fn values_read_in_either_spelling_and_are_checked_against_the_key(
    ) -> Result<(), serde_json::Error> {
        let snake: AccountOwner = serde_json::from_str(
            r#"{"domain":"bigcorp.de","account_name":"BigCorp","owner_rep_id":"ana","updated_at":"2026-11-23T10:00:00Z"}"#,
        )?;
        let camel: AccountOwner = serde_json::from_str(
            r#"{"accountName":"BigCorp","ownerRepId":"ana","updatedAt":"2026-11-23T10:00:00Z"}"#,
        )?;
        let key = domain("bigcorp.de");
        let from_snake = snake.into_ownership(key.clone());
        let from_camel = camel.into_ownership(key.clone());
        assert_eq!(from_snake, from_camel);
        assert_eq!(from_snake.map(|o| o.owner), Ok(RepId::from("ana")));

        let other: AccountOwner = serde_json::from_str(
            r#"{"domain":"other.de","owner_rep_id":"ana","updated_at":"2026-11-23T10:00:00Z"}"#,
        )?;
        assert_eq!(
            other.into_ownership(key.clone()),
            Err(InvalidAccountOwner::DomainIsNotTheKey)
        );
        let nobody: AccountOwner =
            serde_json::from_str(r#"{"owner_rep_id":"","updated_at":"2026-11-23T10:00:00Z"}"#)?;
        assert_eq!(
            nobody.into_ownership(key),
            Err(InvalidAccountOwner::NoOwner)
        );
        assert!(serde_json::from_str::<AccountOwner>(r#"{"owner_rep_id":"ana"}"#).is_err());
        assert!(serde_json::from_str::<AccountOwner>(
            r#"{"owner_rep_id":"ana","updated_at":"2026-11-23T10:00:00Z","owner":"x"}"#
        )
        .is_err());
        Ok(())
    }
}
