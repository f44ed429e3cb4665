//! Bearer token validation: turns the JWT a service presents into an [`Identity`] with
//! `auth = bearer`, or refuses it. Owns the header rules (size bound, `alg` allow-list, `typ`,
//! `crit`; `jku`/`x5u`/`x5c`/`jwk` never used), issuer selection (the unverified `iss` only picks
//! which configured issuer's keys to try; everything is then verified), signature verification
//! with the issuer's JWKS, and the verified-token cache. Claim rules live in
//! [`super::bearer_claims`]. It never decides access: that is [`crate::policy`]'s job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{Map, Value};

use super::discovery::{DiscoveryError, discover};
use super::jwks::{Jwks, JwksError, JwksOptions};
use super::token_cache::{TokenCache, token_hash};
use super::{Identity, bearer_claims};
use crate::config::TokenIssuerConfig;

/// Longest token accepted, in bytes. Real access tokens are 1-2 KiB; the bound caps the work
/// an anonymous caller can make us do before any signature check.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verified tokens remembered at most.
pub const CACHE_CAPACITY: usize = 10_000;

/// After a failed discovery, callers get the error without a new attempt for this long.
const DISCOVERY_RETRY: Duration = Duration::from_secs(10);

/// Why a token was refused. The text goes to logs and the audit trail, never to the client.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token too large")]
    TooLarge,
    /// Not three base64url parts of JSON, or an unknown/unsupported `alg` (including `none`).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A header rule (`typ`, `crit`, `alg` allow-list).
    #[error("refused header: {0}")]
    Header(String),
    /// No configured issuer has this `iss`.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// The issuer's keys could not be found.
    #[error("{0}")]
    Keys(String),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// A claim rule (times, `iss`, `aud`, required claims).
    #[error("refused claims: {0}")]
    Claim(String),
}

/// Validates bearer tokens for every configured issuer. Cheap to share (`Arc`).
pub struct BearerValidator {
    issuers: HashMap<String, IssuerKeys>,
    cache: TokenCache,
}

struct IssuerKeys {
    config: TokenIssuerConfig,
    http: reqwest::Client,
    jwks: tokio::sync::OnceCell<Jwks>,
    discovery_failed: std::sync::Mutex<Option<Instant>>,
}

impl IssuerKeys {
    /// The issuer's JWKS: the configured `jwks_uri`, or discovered on first use.
    async fn jwks(&self) -> Result<&Jwks, BearerError> {
        if let Some(jwks) = self.jwks.get() {
            return Ok(jwks);
        }
        let recently_failed = match self.discovery_failed.lock() {
            Ok(at) => at.is_some_and(|at| at.elapsed() < DISCOVERY_RETRY),
            Err(_) => false,
        };
        if recently_failed {
            return Err(BearerError::Keys("discovery failed recently".into()));
        }
        let result = self
            .jwks
            .get_or_try_init(|| async {
                let uri = match &self.config.jwks_uri {
                    Some(uri) => uri.clone(),
                    None => {
                        discover(&self.http, &self.config.issuer_url)
                            .await?
                            .jwks_uri
                    }
                };
                Ok::<_, DiscoveryError>(Jwks::new(self.http.clone(), uri, JwksOptions::default()))
            })
            .await;
        result.map_err(|error| {
            tracing::warn!(issuer = %self.config.issuer, %error, "token issuer discovery failed");
            if let Ok(mut at) = self.discovery_failed.lock() {
                *at = Some(Instant::now());
            }
            BearerError::Keys(error.to_string())
        })
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `typ` values accepted (RFC 7519 `JWT`, RFC 9068 `at+jwt`), with or without the
/// `application/` prefix RFC 7515 allows, compared case-insensitively.
fn typ_ok(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    let bare = typ.strip_prefix("application/").unwrap_or(&typ);
    bare == "jwt" || bare == "at+jwt"
}

/// The unverified header and payload of a compact JWS, or why it is not one.
fn split(token: &str) -> Result<(Header, Map<String, Value>), BearerError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BearerError::Malformed("not three parts".into()));
    };
    if signature.is_empty() {
        return Err(BearerError::Malformed("no signature".into()));
    }
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| BearerError::Malformed(format!("{what} is not base64url")))
    };
    // The raw header first: `crit` and `typ` must be judged on what was sent, and an unknown
    // `alg` (`none` in any spelling) fails to parse into `Header`.
    let header_json: Map<String, Value> = serde_json::from_slice(&decode(header, "header")?)
        .map_err(|_| BearerError::Malformed("header is not a JSON object".into()))?;
    if header_json.contains_key("crit") {
        return Err(BearerError::Header("`crit` is present".into()));
    }
    match header_json.get("typ") {
        None => {}
        Some(Value::String(typ)) if typ_ok(typ) => {}
        Some(_) => return Err(BearerError::Header("`typ` is not JWT or at+jwt".into())),
    }
    let header: Header = serde_json::from_value(Value::Object(header_json))
        .map_err(|_| BearerError::Malformed("unsupported `alg` or header".into()))?;
    let payload: Map<String, Value> = serde_json::from_slice(&decode(payload, "payload")?)
        .map_err(|_| BearerError::Malformed("payload is not a JSON object".into()))?;
    Ok((header, payload))
}

impl BearerValidator {
    /// One validator for every configured issuer. Nothing is fetched until a token arrives
    /// (or [`BearerValidator::warm_up`] runs).
    pub fn new(issuers: &[TokenIssuerConfig], http: reqwest::Client) -> Self {
        BearerValidator {
            issuers: issuers
                .iter()
                .map(|config| {
                    let keys = IssuerKeys {
                        config: config.clone(),
                        http: http.clone(),
                        jwks: tokio::sync::OnceCell::new(),
                        discovery_failed: std::sync::Mutex::new(None),
                    };
                    (config.issuer.clone(), keys)
                })
                .collect(),
            cache: TokenCache::new(CACHE_CAPACITY),
        }
    }

    /// Whether any issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Discovers and fetches every issuer's keys now, logging failures: a misconfigured issuer
    /// shows up at startup instead of at the first request.
    pub async fn warm_up(&self) {
        for keys in self.issuers.values() {
            match keys.jwks().await {
                Ok(jwks) => {
                    if let Err(error) = jwks.refresh().await {
                        tracing::warn!(issuer = %keys.config.issuer, %error, "token issuer keys");
                    }
                }
                Err(error) => {
                    tracing::warn!(issuer = %keys.config.issuer, %error, "token issuer keys");
                }
            }
        }
    }

    /// Validates `token` now.
    pub async fn validate(&self, token: &str) -> Result<Arc<Identity>, BearerError> {
        self.validate_at(token, now_secs()).await
    }

    /// Validates `token` as of `now` (seconds since the epoch). Cached tokens cost a SHA-256
    /// and a map lookup.
    pub async fn validate_at(&self, token: &str, now: f64) -> Result<Arc<Identity>, BearerError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(BearerError::TooLarge);
        }
        let key = token_hash(token);
        let now_whole = now.max(0.0) as u64;
        if let Some(identity) = self.cache.get(&key, now_whole) {
            return Ok(identity);
        }
        let checked = self.verify_at(token, now).await?;
        let identity = Arc::new(checked.identity);
        self.cache
            .insert(key, identity.clone(), checked.exp, now_whole);
        Ok(identity)
    }

    /// Full verification without the cache (benchmarks measure the signature path with it).
    pub async fn verify_uncached(&self, token: &str) -> Result<Identity, BearerError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(BearerError::TooLarge);
        }
        Ok(self.verify_at(token, now_secs()).await?.identity)
    }

    async fn verify_at(
        &self,
        token: &str,
        now: f64,
    ) -> Result<bearer_claims::Checked, BearerError> {
        let (header, payload) = split(token)?;
        let issuer = payload
            .get("iss")
            .and_then(Value::as_str)
            .and_then(|iss| self.issuers.get(iss))
            .ok_or(BearerError::UnknownIssuer)?;
        if !issuer.config.algorithms.contains(&header.alg) {
            return Err(BearerError::Header(format!(
                "`alg` {:?} is not allowed for this issuer",
                header.alg
            )));
        }
        // Only the configured JWKS is consulted: `jku`, `x5u`, `x5c` and `jwk` are ignored.
        let jwks = issuer.jwks().await?;
        let decoding_key = jwks
            .key(header.kid.as_deref(), header.alg)
            .await
            .map_err(|error| match error {
                JwksError::UnknownKey { .. } | JwksError::Ambiguous { .. } => {
                    BearerError::Keys(error.to_string())
                }
                JwksError::Fetch(_) => BearerError::Keys(error.to_string()),
            })?;
        verify_signature(token, &decoding_key, header.alg)?;
        bearer_claims::check(payload, &issuer.config, now)
    }

    /// Verified tokens currently cached.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }
}

/// Signature only: claim rules are ours ([`bearer_claims::check`]) so they run on one clock
/// with one set of semantics.
fn verify_signature(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
) -> Result<(), BearerError> {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde::de::IgnoredAny>(token, key, &validation)
        .map(|_| ())
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => BearerError::Signature,
            _ => BearerError::Malformed(error.to_string()),
        })
}

#[cfg(test)]
#[path = "bearer_tests.rs"]
mod tests;
