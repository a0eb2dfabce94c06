//! API keys: `handoff keys new` makes one and prints the config entry (its SHA-256, never
//! the key itself, goes into the file); `handoff dev` makes one per scope for its run.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rand::RngCore as _;

use handoff_config::{key_digest, ApiKeySettings, Scope};

/// A new random key: `hk_` and 256 bits in hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut key = String::from("hk_");
    for byte in bytes {
        let _ = write!(key, "{byte:02x}");
    }
    key
}

/// A new key for `name` with `scopes`, and its config entry.
pub fn new_key(
    name: &str,
    scopes: BTreeSet<Scope>,
    trusted: bool,
    rep: Option<String>,
) -> (String, ApiKeySettings) {
    let key = generate();
    let settings = ApiKeySettings {
        name: name.to_owned(),
        sha256: key_digest(&key),
        scopes,
        trusted,
        rep,
    };
    (key, settings)
}

/// The `[[ingest.keys]]` entry of a key, as TOML.
pub fn config_entry(settings: &ApiKeySettings) -> String {
    let scopes: Vec<String> = settings.scopes.iter().map(|s| format!("\"{s}\"")).collect();
    let mut entry = format!(
        "[[ingest.keys]]\nname = {:?}\nsha256 = \"{}\"\nscopes = [{}]\n",
        settings.name,
        settings.sha256,
        scopes.join(", ")
    );
    if settings.trusted {
        entry.push_str("trusted = true\n");
    }
    if let Some(rep) = &settings.rep {
        let _ = writeln!(entry, "rep = {rep:?}");
    }
    entry
}
