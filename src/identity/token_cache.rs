//! Verified bearer tokens, remembered until their `exp` so a hot token costs a hash and a map
//! lookup instead of a signature check. Keyed by the SHA-256 of the token (the token itself is
//! never stored); bounded, sharded to keep lock contention low. It does not verify anything:
//! only [`super::bearer`] inserts, and only after full verification.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::Identity;

const SHARDS: usize = 16;

/// Bounded map from token hash to verified identity.
pub struct TokenCache {
    shards: Vec<RwLock<HashMap<[u8; 32], Entry>>>,
    per_shard: usize,
}

#[derive(Clone)]
struct Entry {
    identity: Arc<Identity>,
    /// Seconds since the epoch; the entry is dead from this second on.
    exp: u64,
}

/// The cache key of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenCache {
    /// A cache holding at most about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        TokenCache {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    fn shard(&self, key: &[u8; 32]) -> &RwLock<HashMap<[u8; 32], Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The identity for `key` if it was verified and `now` (epoch seconds) is before its `exp`.
    pub fn get(&self, key: &[u8; 32], now: u64) -> Option<Arc<Identity>> {
        let shard = match self.shard(key).read() {
            Ok(shard) => shard,
            Err(poisoned) => poisoned.into_inner(),
        };
        shard
            .get(key)
            .filter(|entry| now < entry.exp)
            .map(|entry| entry.identity.clone())
    }

    /// Remembers a verified identity until `exp`. When the shard is full, expired entries go
    /// first, then the ones closest to expiry.
    pub fn insert(&self, key: [u8; 32], identity: Arc<Identity>, exp: u64, now: u64) {
        if exp <= now {
            return;
        }
        let mut shard = match self.shard(&key).write() {
            Ok(shard) => shard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, entry| now < entry.exp);
            if shard.len() >= self.per_shard
                && let Some(victim) = shard
                    .iter()
                    .min_by_key(|(_, entry)| entry.exp)
                    .map(|(k, _)| *k)
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key, Entry { identity, exp });
    }

    /// How many entries are held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.read() {
                Ok(s) => s.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            })
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(sub: &str) -> Arc<Identity> {
        Arc::new(Identity {
            subject: sub.into(),
            ..Identity::default()
        })
    }

    #[test]
    fn hit_until_exp_then_miss() {
        let cache = TokenCache::new(100);
        let key = token_hash("a.b.c");
        cache.insert(key, identity("s"), 1000, 900);
        assert_eq!(cache.get(&key, 900).unwrap().subject, "s");
        assert_eq!(cache.get(&key, 999).unwrap().subject, "s");
        assert!(cache.get(&key, 1000).is_none(), "never outlives exp");
        assert!(cache.get(&token_hash("a.b.d"), 900).is_none());
    }

    #[test]
    fn already_expired_is_not_stored() {
        let cache = TokenCache::new(100);
        cache.insert(token_hash("t"), identity("s"), 10, 10);
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_and_evicts_expired_then_soonest() {
        let cache = TokenCache::new(SHARDS * 4);
        for i in 0..10_000u64 {
            cache.insert(token_hash(&format!("t{i}")), identity("s"), 2000 + i, 1000);
        }
        assert!(cache.len() <= SHARDS * 4, "{}", cache.len());
        // The latest-expiring survive; the earliest were evicted.
        assert!(cache.get(&token_hash("t9999"), 1000).is_some());
        assert!(cache.get(&token_hash("t0"), 1000).is_none());
        // Once everything has expired, new entries displace the dead ones.
        for i in 0..SHARDS as u64 * 4 {
            cache.insert(token_hash(&format!("n{i}")), identity("n"), 50_000, 20_000);
        }
        assert!(cache.len() <= SHARDS * 4);
    }
}
