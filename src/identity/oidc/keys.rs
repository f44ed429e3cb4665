//! A provider's signing keys for id_tokens and logout tokens: fetched from `jwks_uri`, cached
//! by `kid`, refetched when a token names an unknown `kid` (key rotation) but at most once per
//! [`REFETCH_INTERVAL`], so a flood of forged `kid`s cannot turn us into a request amplifier.
//! Keys are built from their JWK parameters only (`x5u`/`x5c` are never fetched).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

use super::jwt::KeySource;

/// Minimum time between two fetches of the key set.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// A cached JWKS.
pub struct ProviderKeys {
    http: reqwest::Client,
    jwks_uri: Url,
    state: Mutex<KeyState>,
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyState {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// Keys without a `kid`, usable only when the set has exactly one key.
    unnamed: Vec<Arc<DecodingKey>>,
    fetched: Option<Instant>,
}

impl ProviderKeys {
    /// An empty cache; the first lookup fetches.
    pub fn new(http: reqwest::Client, jwks_uri: Url) -> Self {
        ProviderKeys {
            http,
            jwks_uri,
            state: Mutex::new(KeyState::default()),
            fetch: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        let state = self.state.lock().ok()?;
        match kid {
            Some(kid) => state.keys.get(kid).cloned(),
            None if state.keys.len() + state.unnamed.len() == 1 => state
                .keys
                .values()
                .next()
                .or(state.unnamed.first())
                .cloned(),
            None => None,
        }
    }

    /// Fetches the set now (also used to warm the cache at discovery).
    pub async fn refresh(&self) -> Result<(), String> {
        let set: JwkSet = self
            .http
            .get(self.jwks_uri.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("fetching {}: {e}", self.jwks_uri))?
            .json()
            .await
            .map_err(|e| format!("reading {}: {e}", self.jwks_uri))?;
        let mut fresh = KeyState {
            fetched: Some(Instant::now()),
            ..KeyState::default()
        };
        for jwk in &set.keys {
            // Encryption keys and unsupported key types are skipped, not fatal.
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    fresh.keys.insert(kid.clone(), Arc::new(key));
                }
                None => fresh.unnamed.push(Arc::new(key)),
            }
        }
        if let Ok(mut state) = self.state.lock() {
            *state = fresh;
        }
        Ok(())
    }
}

impl KeySource for ProviderKeys {
    async fn key(&self, kid: Option<&str>, _alg: Algorithm) -> Result<Arc<DecodingKey>, String> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        // One fetch at a time; whoever waited re-checks the cache first.
        let _fetching = self.fetch.lock().await;
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let recently = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.fetched)
            .is_some_and(|at| at.elapsed() < REFETCH_INTERVAL);
        if !recently {
            self.refresh().await?;
        }
        self.cached(kid)
            .ok_or_else(|| format!("no key with kid {kid:?} in {}", self.jwks_uri))
    }
}
