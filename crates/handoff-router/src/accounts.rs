//! Consumes `account.owner` (proto/handoff/v1/accounts.proto) into Redis, where every router
//! instance reads it when it routes. A consumer group of its own: each record is applied once
//! by whichever instance holds its partition, and the Redis copy is what all of them share.
//! Its offset is stored only after the Redis write, by the shared consume loop.

use futures::FutureExt;

use handoff_domain::accounts::{
    AccountDomain, AccountOwner, ACCOUNT_OWNER_CE_TYPE, ACCOUNT_OWNER_MESSAGE,
};
use handoff_kafka::{Effects, EventHandler, HandleError, InboundEvent, PoisonReason};
use handoff_store::{OwnerUpdate, Store};
use handoff_telemetry::Metrics;

#[derive(Debug)]
pub struct AccountOwnerHandler {
    store: Store,
    metrics: Metrics,
}

impl AccountOwnerHandler {
    pub fn new(store: Store, metrics: Metrics) -> Self {
        Self { store, metrics }
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .account_owner_records
            .with_label_values(&[outcome])
            .inc();
    }
}

impl EventHandler for AccountOwnerHandler {
    async fn handle(&self, event: &InboundEvent) -> Result<Effects, HandleError> {
        let domain = event
            .key
            .as_deref()
            .ok_or_else(|| {
                HandleError::poison(
                    PoisonReason::ContractInvalid,
                    "account.owner record without a key (the key is the account's domain)",
                )
            })
            .and_then(|key| {
                let key = std::str::from_utf8(key).map_err(|_| {
                    HandleError::poison(PoisonReason::ContractInvalid, "record key: not UTF-8")
                })?;
                AccountDomain::parse(key).map_err(|e| {
                    HandleError::poison(PoisonReason::ContractInvalid, format!("record key: {e}"))
                })
            })?;
        if event.payload.is_none() {
            // A tombstone. Kafka keeps one key's records in order, so it is the latest word.
            let removed = self
                .store
                .remove_account_owner(&domain)
                .await
                .map_err(HandleError::from_error)?;
            self.count("removed");
            tracing::info!(%domain, had_owner = removed, "account owner removed");
        } else {
            let owner: AccountOwner =
                event.decode_as(ACCOUNT_OWNER_CE_TYPE, ACCOUNT_OWNER_MESSAGE)?;
            let ownership = owner.into_ownership(domain).map_err(|e| {
                HandleError::poison(
                    PoisonReason::ContractInvalid,
                    format!("{ACCOUNT_OWNER_MESSAGE}: {e}"),
                )
            })?;
            let update = self
                .store
                .set_account_owner(&ownership)
                .await
                .map_err(HandleError::from_error)?;
            match update {
                OwnerUpdate::Applied => {
                    self.count("applied");
                    tracing::info!(domain = %ownership.domain, owner = %ownership.owner, updated_at = %ownership.updated_at, "account owner applied");
                }
                OwnerUpdate::Stale => {
                    self.count("stale");
                    tracing::info!(domain = %ownership.domain, updated_at = %ownership.updated_at, "account owner record older than the stored owner; kept the stored one");
                }
            }
        }
        // The Redis write above is acknowledged: nothing is left in flight.
        Ok(async { Ok(()) }.boxed())
    }
}
