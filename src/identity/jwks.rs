//! A provider's signing keys (JWKS), cached and refreshed. Owns key selection: by `kid`,
//! compatible with the token's `alg` (family, curve, the key's own `alg`, `use = sig`), and
//! the refetch rules: an unknown `kid` triggers one rate-limited refetch shared by every
//! concurrent caller, and keys older than `max_age` are refreshed on access. It never fetches
//! anything named by a token (`jku`, `x5u`, `x5c`, embedded `jwk`): the only URL it knows is
//! the configured or discovered `jwks_uri`. It does not verify tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

use super::fetch::{FetchError, get_json};

/// Refresh rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksOptions {
    /// Least time between two fetches, whatever the reason (unknown `kid`, failure). A flood of
    /// tokens with made-up `kid`s costs the provider at most one request per interval.
    pub min_refetch_interval: Duration,
    /// Keys older than this are refetched on the next access (rotation without a new `kid`
    /// reaching us first, and removal of revoked keys).
    pub max_age: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            min_refetch_interval: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
        }
    }
}

/// Why no key was found.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The key set could not be fetched (and no cached key fits).
    #[error("jwks: {0}")]
    Fetch(#[from] FetchError),
    /// No key with this `kid` fits the token's algorithm, even after a refetch (or the
    /// refetch was rate limited).
    #[error("jwks: no usable key for kid {kid:?} and alg {alg:?}")]
    UnknownKey {
        /// The token's `kid`.
        kid: Option<String>,
        /// The token's `alg`.
        alg: Algorithm,
    },
    /// The token has no `kid` and more than one key fits: refusing to guess.
    #[error("jwks: token has no kid and several keys fit alg {alg:?}")]
    Ambiguous {
        /// The token's `alg`.
        alg: Algorithm,
    },
}

/// The keys of one `jwks_uri`. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    uri: Url,
    options: JwksOptions,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching, so concurrent misses share one fetch.
    refresh: tokio::sync::Mutex<RefreshTimes>,
    fetches: AtomicU64,
}

/// When fetches were last attempted. An unknown `kid` in a fresh set may trigger a refetch
/// only if no other unknown `kid` did within `min_refetch_interval`; a stale or empty set is
/// refetched only if no fetch at all was attempted within it (a provider outage is not
/// hammered).
#[derive(Default)]
struct RefreshTimes {
    any: Option<Instant>,
    unknown_kid: Option<Instant>,
}

/// One fetched key set. `generation` tells a waiter that someone else refreshed meanwhile.
#[derive(Default)]
struct KeySet {
    keys: Vec<KeyEntry>,
    fetched_at: Option<Instant>,
    generation: u64,
}

struct KeyEntry {
    kid: Option<String>,
    /// The key's own `alg`, when it names one.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: Arc<DecodingKey>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

impl KeySet {
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, JwksError> {
        let mut fitting = self
            .keys
            .iter()
            .filter(|k| k.kind.fits(alg) && k.alg.is_none_or(|a| a == alg));
        let found = match kid {
            // A key without a `kid` never answers a token that names one.
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let first = fitting.next();
                if first.is_some() && fitting.next().is_some() {
                    return Err(JwksError::Ambiguous { alg });
                }
                first
            }
        };
        found
            .map(|k| k.key.clone())
            .ok_or_else(|| JwksError::UnknownKey {
                kid: kid.map(str::to_owned),
                alg,
            })
    }

    fn fresh(&self, now: Instant, max_age: Duration) -> bool {
        self.fetched_at
            .is_some_and(|at| now.saturating_duration_since(at) < max_age)
    }
}

impl Jwks {
    /// A cache for `uri`; nothing is fetched until the first [`Jwks::key`] (or
    /// [`Jwks::refresh`]).
    pub fn new(http: reqwest::Client, uri: Url, options: JwksOptions) -> Self {
        Jwks {
            inner: Arc::new(Inner {
                http,
                uri,
                options,
                keys: RwLock::new(Arc::new(KeySet::default())),
                refresh: tokio::sync::Mutex::new(RefreshTimes::default()),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// The `jwks_uri` this cache reads.
    pub fn uri(&self) -> &Url {
        &self.inner.uri
    }

    /// How many fetches were attempted so far (tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.inner.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key that verifies a token with this `kid` and `alg`. Fast path: a read lock and an
    /// `Arc` clone. On a miss or a stale set, one fetch (shared, rate limited) and a re-check.
    pub async fn key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<DecodingKey>, JwksError> {
        let seen = self.snapshot();
        let now = Instant::now();
        let fresh = seen.fresh(now, self.inner.options.max_age);
        if fresh && let Ok(key) = seen.lookup(kid, alg) {
            return Ok(key);
        }
        let mut times = self.inner.refresh.lock().await;
        let current = self.snapshot();
        if current.generation != seen.generation {
            // Someone refreshed while we waited: their answer is ours, no second fetch.
            return current.lookup(kid, alg);
        }
        let now = Instant::now();
        let interval = self.inner.options.min_refetch_interval;
        let recent =
            |at: Option<Instant>| at.is_some_and(|at| now.saturating_duration_since(at) < interval);
        let fresh = current.fresh(now, self.inner.options.max_age);
        if recent(if fresh { times.unknown_kid } else { times.any }) {
            return current.lookup(kid, alg);
        }
        times.any = Some(now);
        if fresh {
            times.unknown_kid = Some(now);
        }
        match self.fetch().await {
            Ok(set) => {
                let set = self.install(set);
                set.lookup(kid, alg)
            }
            Err(error) => {
                tracing::warn!(jwks_uri = %self.inner.uri, %error, "jwks fetch failed");
                // A provider outage should not lock out callers whose key we still hold.
                current
                    .lookup(kid, alg)
                    .map_err(|_| JwksError::Fetch(error))
            }
        }
    }

    /// Fetches now (ignoring the rate limit), e.g. at startup to fail fast on a bad URI.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let mut times = self.inner.refresh.lock().await;
        times.any = Some(Instant::now());
        let set = self.fetch().await?;
        self.install(set);
        Ok(())
    }

    fn install(&self, keys: Vec<KeyEntry>) -> Arc<KeySet> {
        let mut slot = match self.inner.keys.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let set = Arc::new(KeySet {
            keys,
            fetched_at: Some(Instant::now()),
            generation: slot.generation + 1,
        });
        *slot = set.clone();
        set
    }

    async fn fetch(&self) -> Result<Vec<KeyEntry>, FetchError> {
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        let document: RawKeySet = get_json(&self.inner.http, &self.inner.uri).await?;
        let keys: Vec<KeyEntry> = document.keys.iter().filter_map(key_entry).collect();
        tracing::debug!(jwks_uri = %self.inner.uri, keys = keys.len(), "jwks fetched");
        Ok(keys)
    }
}

/// The document read leniently: one odd key (an encryption key, an unknown `kty`) must not
/// hide the others.
#[derive(serde::Deserialize)]
struct RawKeySet {
    keys: Vec<serde_json::Value>,
}

/// A verification key from one JWK, or None for anything that must not verify signatures:
/// `use` other than `sig`, symmetric (`oct`) keys, unknown types or curves.
fn key_entry(value: &serde_json::Value) -> Option<KeyEntry> {
    let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        _ => return None,
    };
    // A key that names an algorithm we do not know (or an encryption one) is not a signing key.
    let alg = match &jwk.common.key_algorithm {
        None => None,
        Some(key_alg) => {
            let name = serde_json::to_value(key_alg).ok()?;
            Some(serde_json::from_value::<Algorithm>(name).ok()?)
        }
    };
    if alg.is_some_and(|a| !kind.fits(a)) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        alg,
        kind,
        key: Arc::new(key),
    })
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
