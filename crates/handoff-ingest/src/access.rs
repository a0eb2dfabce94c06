//! Who is calling, and may they: API keys (Bearer, stored as SHA-256 digests) with scopes,
//! public form tokens that may only submit leads, and per-caller rate limits.
//!
//! Every request that changes routing or outcomes, or reads lead data, passes through
//! [`Access::admit`] with the scope it needs; there is no other way in.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use sha2::{Digest, Sha256};

use handoff_config::{IngestSettings, Scope};

use crate::ApiError;

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerKind {
    ApiKey,
    /// A public form token: grants `leads:write` only.
    Form,
    /// A verified Standard Webhooks signature of a configured intake source.
    Webhook,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub kind: CallerKind,
    /// The key's name, the form's source or the webhook source: the actor of what it does,
    /// and the namespace of its idempotency keys.
    pub name: String,
    scopes: BTreeSet<Scope>,
    /// May set a lead's `id` and `received_at`.
    pub trusted: bool,
    /// A rep's own key acts only for that rep's leads.
    pub rep: Option<String>,
    /// Forms: where a browser goes after a plain form POST.
    pub redirect_url: Option<String>,
}

impl Caller {
    pub(crate) fn webhook(source: &str) -> Self {
        Self {
            kind: CallerKind::Webhook,
            name: source.to_owned(),
            scopes: BTreeSet::from([Scope::LeadsWrite]),
            trusted: false,
            rep: None,
            redirect_url: None,
        }
    }

    /// Whether the caller holds `scope` (a writer of reps may also read them).
    fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (scope == Scope::RepsRead && self.scopes.contains(&Scope::RepsWrite))
    }

    /// Idempotency keys and derived lead ids are namespaced by the caller, so two sources
    /// that happen to pick the same key never collide.
    pub(crate) fn namespace(&self) -> String {
        let kind = match self.kind {
            CallerKind::ApiKey => "key",
            CallerKind::Form => "form",
            CallerKind::Webhook => "webhook",
        };
        format!("{kind}:{}", self.name)
    }
}

/// The configured keys and forms, and the rate limiters.
#[derive(Clone)]
pub(crate) struct Access {
    /// SHA-256 digest (raw bytes) of each key → its caller.
    keys: Arc<HashMap<[u8; 32], Caller>>,
    /// Form token → its caller.
    forms: Arc<HashMap<String, Caller>>,
    per_caller: Arc<DefaultKeyedRateLimiter<String>>,
    per_address: Arc<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("keys", &self.keys.len())
            .field("forms", &self.forms.len())
            .finish_non_exhaustive()
    }
}

impl Access {
    pub(crate) fn new(settings: &IngestSettings) -> Self {
        let keys = settings
            .keys
            .iter()
            .filter_map(|key| {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(key.sha256.to_ascii_lowercase(), &mut digest).ok()?;
                Some((
                    digest,
                    Caller {
                        kind: CallerKind::ApiKey,
                        name: key.name.clone(),
                        scopes: key.scopes.clone(),
                        trusted: key.trusted,
                        rep: key.rep.clone(),
                        redirect_url: None,
                    },
                ))
            })
            .collect();
        let forms = settings
            .forms
            .iter()
            .map(|form| {
                (
                    form.token.clone(),
                    Caller {
                        kind: CallerKind::Form,
                        name: form.source.clone(),
                        scopes: BTreeSet::from([Scope::LeadsWrite]),
                        trusted: false,
                        rep: None,
                        redirect_url: form.redirect_url.clone(),
                    },
                )
            })
            .collect();
        let limits = &settings.limits;
        Self {
            keys: Arc::new(keys),
            forms: Arc::new(forms),
            per_caller: Arc::new(RateLimiter::keyed(quota(
                limits.per_key_per_minute,
                limits.burst,
            ))),
            per_address: Arc::new(RateLimiter::keyed(quota(
                limits.per_address_per_minute,
                limits.burst,
            ))),
        }
    }

    /// Authenticates the request (a Bearer key, else the form token if one was sent),
    /// checks the scope and the caller's rate limit.
    pub(crate) fn admit(
        &self,
        headers: &HeaderMap,
        form_token: Option<&str>,
        scope: Scope,
    ) -> Result<Caller, ApiError> {
        let caller = match bearer(headers)? {
            Some(key) => self.key(key)?,
            None => match form_token {
                Some(token) => self
                    .forms
                    .get(token)
                    .cloned()
                    .ok_or(ApiError::Unauthorized("the form token is not known"))?,
                None => {
                    return Err(ApiError::Unauthorized(
                        "an API key is required: Authorization: Bearer <key>",
                    ))
                }
            },
        };
        self.authorize(&caller, scope)?;
        Ok(caller)
    }

    /// Checks the scope and the caller's rate limit.
    pub(crate) fn authorize(&self, caller: &Caller, scope: Scope) -> Result<(), ApiError> {
        if !caller.allows(scope) {
            return Err(ApiError::Forbidden(format!(
                "this key lacks the {scope} scope"
            )));
        }
        check(&self.per_caller, caller.namespace())
    }

    /// The per-address limit, applied to every request before anything else.
    pub(crate) fn check_address(&self, address: String) -> Result<(), ApiError> {
        check(&self.per_address, address)
    }

    /// Forgets limiter state of callers and addresses not seen lately (bounded memory).
    pub(crate) fn forget_idle(&self) {
        self.per_caller.retain_recent();
        self.per_address.retain_recent();
        self.per_caller.shrink_to_fit();
        self.per_address.shrink_to_fit();
    }

    fn key(&self, presented: &str) -> Result<Caller, ApiError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Looked up by digest: comparing digests of a random key leaks nothing useful
        // through timing, unlike comparing the keys themselves.
        self.keys
            .get(&digest)
            .cloned()
            .ok_or(ApiError::Unauthorized("the API key is not valid"))
    }
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(rate).allow_burst(burst)
}

fn check(limiter: &DefaultKeyedRateLimiter<String>, key: String) -> Result<(), ApiError> {
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited {
            retry_after: wait.max(Duration::from_secs(1)),
        }
    })
}

/// The key of `Authorization: Bearer <key>`; `None` without the header.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid"))?;
    let (scheme, key) = value.split_once(' ').ok_or(ApiError::Unauthorized(
        "expected Authorization: Bearer <key>",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "expected Authorization: Bearer <key>",
        ));
    }
    Ok(Some(key.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_config::{key_digest, ApiKeySettings};

    fn settings() -> IngestSettings {
        IngestSettings {
            keys: vec![ApiKeySettings {
                name: "crm".into(),
                sha256: key_digest("secret-key"),
                scopes: BTreeSet::from([Scope::DispositionsWrite]),
                trusted: false,
                rep: None,
            }],
            ..IngestSettings::default()
        }
    }

    fn headers(auth: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            axum::http::HeaderValue::from_static(auth),
        );
        headers
    }

    #[test]
    fn a_key_is_known_by_its_digest_and_limited_to_its_scopes() {
        let access = Access::new(&settings());
        let ok = access.admit(
            &headers("Bearer secret-key"),
            None,
            Scope::DispositionsWrite,
        );
        assert_eq!(ok.map(|c| c.name).ok(), Some("crm".to_owned()));
        let wrong_scope = access.admit(&headers("Bearer secret-key"), None, Scope::RepsWrite);
        assert!(matches!(wrong_scope, Err(ApiError::Forbidden(_))));
        let wrong_key = access.admit(&headers("Bearer other"), None, Scope::DispositionsWrite);
        assert!(matches!(wrong_key, Err(ApiError::Unauthorized(_))));
        let no_key = access.admit(&HeaderMap::new(), None, Scope::DispositionsWrite);
        assert!(matches!(no_key, Err(ApiError::Unauthorized(_))));
        let basic = access.admit(&headers("Basic abc"), None, Scope::DispositionsWrite);
        assert!(matches!(basic, Err(ApiError::Unauthorized(_))));
    }
}
