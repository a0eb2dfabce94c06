//! What Redis must be for the state not to be lost: append-only file on, fsync on every
//! write (`appendonly yes`, `appendfsync always`). `everysec` loses up to a second of
//! acknowledged writes on a crash, an RDB snapshot alone everything since the last one, and
//! none of them protects against a failover to a replica that lags. Losses are detected
//! and rebuilt from the log either way (watch.rs); this check says how likely they are.
//! `dev` warns; `production` refuses to start unless `state.accept_unsafe_persistence`.

use anyhow::bail;

use handoff_config::{Profile, Settings};
use handoff_store::{Persistence, Store};

/// What is unsafe about `persistence`, if anything.
pub fn risk(persistence: &Persistence) -> Option<String> {
    let aof = persistence.appendonly.or(persistence.aof_enabled);
    match (aof, persistence.appendfsync.as_deref()) {
        (Some(false), _) => Some(
            "the append-only file is off (appendonly no): a restart loses every write since the last RDB snapshot"
                .to_owned(),
        ),
        (Some(true), Some("always")) => None,
        (Some(true), Some(fsync)) => Some(format!(
            "appendfsync is {fsync}: a crash loses the writes not yet synced (up to a second with everysec)"
        )),
        (Some(true), None) => None,
        (None, _) => Some("the server does not say whether its append-only file is on".to_owned()),
    }
}

/// Checks the server's persistence at start-up (see the module doc).
pub async fn check(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    let persistence = match store.persistence().await {
        Ok(persistence) => persistence,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read Redis's persistence settings");
            return Ok(());
        }
    };
    if persistence.appendonly.is_some() && persistence.appendfsync.is_none() {
        tracing::warn!(
            "Redis answers CONFIG GET appendonly but not appendfsync; fsync policy not checked"
        );
    } else if persistence.appendonly.is_none() {
        tracing::info!("Redis refuses CONFIG GET (common on managed services); persistence read from INFO only");
    }
    let Some(risk) = risk(&persistence) else {
        return Ok(());
    };
    match (settings.profile, settings.state.accept_unsafe_persistence) {
        (Profile::Production, false) => bail!(
            "Redis at {} can lose acknowledged writes: {risk}. The production profile needs \
             `appendonly yes` and `appendfsync always` (docs/operations.md); set \
             state.accept_unsafe_persistence = true (HANDOFF_STATE_ACCEPT_UNSAFE_PERSISTENCE) \
             to start anyway: a loss is then detected and rebuilt from the event log",
            crate::services::redact_url(&settings.redis.url)
        ),
        (profile, _) => tracing::warn!(
            profile = profile.as_str(),
            "Redis can lose acknowledged writes: {risk}. A loss is detected and rebuilt from the event log, but until then SLA clocks and capacity are not kept; production wants appendonly yes and appendfsync always (docs/operations.md)"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persistence(
        appendonly: Option<bool>,
        fsync: Option<&str>,
        aof: Option<bool>,
    ) -> Persistence {
        Persistence {
            appendonly,
            appendfsync: fsync.map(str::to_owned),
            aof_enabled: aof,
            rdb_last_save_time: None,
        }
    }

    #[test]
    fn only_an_fsynced_append_only_file_is_safe() {
        assert_eq!(
            risk(&persistence(Some(true), Some("always"), Some(true))),
            None
        );
        assert!(risk(&persistence(Some(true), Some("everysec"), Some(true)))
            .is_some_and(|r| r.contains("everysec")));
        assert!(risk(&persistence(Some(false), Some("always"), Some(false)))
            .is_some_and(|r| r.contains("appendonly no")));
        // CONFIG refused: INFO's aof_enabled decides.
        assert_eq!(risk(&persistence(None, None, Some(true))), None);
        assert!(risk(&persistence(None, None, Some(false))).is_some());
        assert!(risk(&persistence(None, None, None)).is_some());
    }
}
