//! `X-Portcullis-Jwt-Assertion`: the short-lived ES256 JWT that tells an upstream who the
//! caller is (`iss` = `server.public_url`, `aud` = the route's audience, `sub`, `email`,
//! `groups`, `iat`, `exp`, `jti`, `kid` in the header), and the JWKS that verifies it. Owns the
//! signing key (from config, or generated once and kept in `server.data_dir`), rotation
//! (previous keys stay published), and reuse of an assertion for the same identity and route
//! until shortly before it expires, since a signature costs more than the proxy hop. It never
//! decides access and never sees tokens or cookies.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

use super::Identity;
use crate::config::Config;

/// Assertions remembered at most (identity x route pairs).
const CACHE_CAPACITY: usize = 10_000;

/// File name of the generated key inside `server.data_dir`.
pub const GENERATED_KEY_FILE: &str = "assertion-key.pem";

/// Why the signing key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum AssertionKeyError {
    /// The secret reference could not be resolved.
    #[error("assertion.key: {0}")]
    Secret(String),
    /// Not a PEM PKCS#8 P-256 private key.
    #[error("{at}: not a PEM (PKCS#8) EC P-256 private key")]
    NotP256 {
        /// Which key.
        at: String,
    },
    /// Reading or writing the generated key failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        message: String,
    },
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
}

/// Signs assertions and publishes the keys that verify them.
pub struct AssertionSigner {
    current: SigningKey,
    issuer: String,
    lifetime: Duration,
    jwks_json: Bytes,
    cache: Mutex<HashMap<[u8; 32], (HeaderValue, u64)>>,
}

/// A PEM document of PKCS#8 DER.
fn pkcs8_pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// A fresh P-256 key as PKCS#8 PEM.
pub fn generate_pem() -> Result<String, AssertionKeyError> {
    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| AssertionKeyError::NotP256 {
            at: "generated key".into(),
        })?;
    Ok(pkcs8_pem(der.as_ref()))
}

/// The public JWK (with RFC 7638 thumbprint `kid`) and signing key for a PEM.
fn load_pem(pem: &[u8], at: &str) -> Result<(SigningKey, Jwk), AssertionKeyError> {
    let not_p256 = || AssertionKeyError::NotP256 { at: at.to_owned() };
    let encoding = EncodingKey::from_ec_pem(pem).map_err(|_| not_p256())?;
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|_| not_p256())?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| not_p256())?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
    Ok((SigningKey { kid, encoding }, jwk))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    groups: &'a [String],
    iat: u64,
    exp: u64,
    jti: String,
}

impl AssertionSigner {
    /// A signer from PEM keys: `current` signs, `previous` are only published.
    pub fn from_pem(
        current: &[u8],
        previous: &[Vec<u8>],
        public_url: &url::Url,
        lifetime: Duration,
    ) -> Result<Self, AssertionKeyError> {
        let (current, current_jwk) = load_pem(current, "assertion.key")?;
        let mut keys = vec![current_jwk];
        for (i, pem) in previous.iter().enumerate() {
            let (_, jwk) = load_pem(pem, &format!("assertion.previous_keys[{i}]"))?;
            if !keys.iter().any(|k| k.common.key_id == jwk.common.key_id) {
                keys.push(jwk);
            }
        }
        let jwks_json = serde_json::to_vec(&JwkSet { keys }).unwrap_or_default();
        Ok(AssertionSigner {
            current,
            // `iss` is the origin as users write it: no trailing slash.
            issuer: public_url.as_str().trim_end_matches('/').to_owned(),
            lifetime,
            jwks_json: Bytes::from(jwks_json),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A signer with a key that lives only in memory (tests, `router` without `start`).
    pub fn ephemeral(public_url: &url::Url, lifetime: Duration) -> Result<Self, AssertionKeyError> {
        Self::from_pem(generate_pem()?.as_bytes(), &[], public_url, lifetime)
    }

    /// The signer `config` asks for: `assertion.key` if set, else the key in
    /// `server.data_dir`, generated (mode 0600) on first start.
    pub async fn load(config: &Config) -> Result<Self, AssertionKeyError> {
        let settings = &config.assertion;
        let current = match &settings.key {
            Some(reference) => reference
                .resolve()
                .await
                .map_err(|e| AssertionKeyError::Secret(e.to_string()))?
                .expose()
                .to_vec(),
            None => load_or_generate(&config.server.data_dir.join(GENERATED_KEY_FILE))?,
        };
        let mut previous = Vec::new();
        for reference in &settings.previous_keys {
            let secret = reference
                .resolve()
                .await
                .map_err(|e| AssertionKeyError::Secret(e.to_string()))?;
            previous.push(secret.expose().to_vec());
        }
        Self::from_pem(
            &current,
            &previous,
            &config.server.public_url,
            settings.lifetime,
        )
    }

    /// The `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    /// The `iss` of every assertion.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `/.portcullis/jwks.json`: the current and previous public keys.
    pub fn jwks_json(&self) -> Bytes {
        self.jwks_json.clone()
    }

    /// The assertion for `identity` on a route with this `audience`, reused while it has more
    /// than a quarter of its lifetime (at most 30s) left.
    pub fn assertion(&self, identity: &Identity, audience: &str) -> Option<HeaderValue> {
        self.assertion_at(identity, audience, now_secs())
    }

    /// [`AssertionSigner::assertion`] at `now` (seconds since the epoch).
    pub fn assertion_at(
        &self,
        identity: &Identity,
        audience: &str,
        now: u64,
    ) -> Option<HeaderValue> {
        let key = cache_key(identity, audience);
        let lifetime = self.lifetime.as_secs().max(1);
        let margin = (lifetime / 4).min(30);
        if let Ok(cache) = self.cache.lock()
            && let Some((value, exp)) = cache.get(&key)
            && now + margin < *exp
        {
            return Some(value.clone());
        }
        let exp = now + lifetime;
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            sub: &identity.subject,
            email: identity.email.as_deref(),
            groups: &identity.groups,
            iat: now,
            exp,
            jti: crate::ids::uuid_v7().to_string(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.current.kid.clone());
        let token = match jsonwebtoken::encode(&header, &claims, &self.current.encoding) {
            Ok(token) => token,
            Err(error) => {
                tracing::error!(%error, "signing the assertion failed");
                return None;
            }
        };
        let value = HeaderValue::from_str(&token).ok()?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.retain(|_, (_, exp)| now + margin < *exp);
                if cache.len() >= CACHE_CAPACITY {
                    cache.clear();
                }
            }
            cache.insert(key, (value.clone(), exp));
        }
        Some(value)
    }
}

/// Everything the assertion states, hashed: a changed email or group list gets a new one.
fn cache_key(identity: &Identity, audience: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [
        identity.subject.as_str(),
        identity.issuer.as_str(),
        identity.email.as_deref().unwrap_or(""),
        audience,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for group in &identity.groups {
        hash.update(group.as_bytes());
        hash.update([1]);
    }
    hash.finalize().into()
}

fn load_or_generate(path: &Path) -> Result<Vec<u8>, AssertionKeyError> {
    let io = |e: std::io::Error| AssertionKeyError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    match std::fs::read(path) {
        Ok(pem) => return Ok(pem),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let pem = generate_pem()?;
    match write_private(path, pem.as_bytes()) {
        Ok(()) => {}
        // Another instance sharing the directory won the race: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return std::fs::read(path).map_err(io);
        }
        Err(e) => return Err(io(e)),
    }
    tracing::info!(path = %path.display(), "generated the assertion signing key");
    Ok(pem.into_bytes())
}

/// Writes a new file readable by the owner only; refuses to overwrite (two instances starting
/// at once must not each write their own key).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
#[path = "assertion_tests.rs"]
mod tests;
