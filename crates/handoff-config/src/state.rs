//! `[state]` and `profile`: how the services watch the state they keep in Redis and what
//! they do when it is lost (docs/operations.md).

use serde::{Deserialize, Serialize};

/// What kind of deployment this is. `production` refuses a Redis that can lose
/// acknowledged writes unless `state.accept_unsafe_persistence` says so; `dev` (the
/// default) only warns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    Dev,
    Production,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// How often every service reads the generation marker (one HMGET), besides at start.
    #[serde(default = "default_check_interval_ms")]
    pub check_interval_ms: u64,
    /// On a lost state, one elected instance rebuilds it from the event log; `false`: an
    /// operator runs `handoff state rebuild`, and the services wait for it.
    #[serde(default = "default_auto_rebuild")]
    pub auto_rebuild: bool,
    /// The rebuilding instance's lease; renewed while it works, so another instance takes
    /// over within this time if it dies.
    #[serde(default = "default_rebuild_lease_seconds")]
    pub rebuild_lease_seconds: u64,
    /// Start in the production profile although Redis can lose acknowledged writes (no AOF,
    /// or `appendfsync` other than `always`); losses are then detected and rebuilt.
    #[serde(default)]
    pub accept_unsafe_persistence: bool,
}

impl Default for StateSettings {
    fn default() -> Self {
        Self {
            check_interval_ms: default_check_interval_ms(),
            auto_rebuild: default_auto_rebuild(),
            rebuild_lease_seconds: default_rebuild_lease_seconds(),
            accept_unsafe_persistence: false,
        }
    }
}

fn default_check_interval_ms() -> u64 {
    2_000
}
fn default_auto_rebuild() -> bool {
    true
}
fn default_rebuild_lease_seconds() -> u64 {
    30
}
