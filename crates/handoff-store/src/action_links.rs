//! Single use of accept/reject links: a mark per link id (`SET NX`), set when a link is
//! followed and kept as long as a link may live, so a second click, a replay or a
//! prefetching scanner cannot record twice.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

impl Store {
    fn action_link_key(&self, id: &str) -> String {
        // The id is signed hex, but hashing keeps the key shape fixed whatever it is.
        self.keys
            .action_link(&hex::encode(Sha256::digest(id.as_bytes())))
    }

    /// Marks the link used; `false` if it already was.
    pub async fn use_action_link(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.action_link_key(id))
            .arg(chrono::Utc::now().timestamp_millis())
            .arg("NX")
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut connection)
            .await?;
        Ok(set.is_some())
    }

    /// Whether the link was used (for the confirmation page, which changes nothing).
    pub async fn action_link_used(&self, id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let exists: bool = redis::cmd("EXISTS")
            .arg(self.action_link_key(id))
            .query_async(&mut connection)
            .await?;
        Ok(exists)
    }

    /// Undoes [`Store::use_action_link`] when recording failed before anything was
    /// published, so the rep can try again.
    pub async fn release_action_link(&self, id: &str) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = redis::cmd("DEL")
            .arg(self.action_link_key(id))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }
}
