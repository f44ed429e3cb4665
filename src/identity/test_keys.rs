//! Test-only signing keys (RSA 2048, P-256, P-384, Ed25519) generated once per test process,
//! with their public JWKs, and a tiny in-process JWKS server. Never compiled outside tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use url::Url;

/// A private key, the algorithm it signs with, and its public JWK.
pub struct TestKey {
    pub alg: Algorithm,
    #[allow(dead_code)]
    pub pem: String,
    pub encoding: EncodingKey,
    /// Raw public key bytes (Ed25519: the 32-byte point).
    pub public_raw: Vec<u8>,
}

impl TestKey {
    fn generate(alg: Algorithm) -> TestKey {
        let pair = match alg {
            Algorithm::RS256 => {
                rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            Algorithm::ES256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            Algorithm::ES384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            Algorithm::EdDSA => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
            other => panic!("no test key for {other:?}"),
        }
        .unwrap();
        let pem = pair.serialize_pem();
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .unwrap();
        TestKey {
            alg,
            pem,
            encoding,
            public_raw: pair.public_key_raw().to_vec(),
        }
    }

    /// The public JWK with `kid`, `use = sig` and no `alg`.
    pub fn jwk(&self, kid: Option<&str>) -> Jwk {
        // jsonwebtoken cannot derive an Ed25519 JWK from a PKCS#8 v2 key, so build it here.
        let mut jwk = if self.alg == Algorithm::EdDSA {
            use base64::Engine;
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.public_raw);
            serde_json::from_value(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
                .unwrap()
        } else {
            Jwk::from_encoding_key(&self.encoding, self.alg).unwrap()
        };
        jwk.common.key_id = kid.map(str::to_owned);
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = None;
        jwk
    }

    /// Signs `claims` with this key, `kid` in the header.
    pub fn sign(&self, kid: Option<&str>, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn cached(cell: &'static OnceLock<TestKey>, alg: Algorithm) -> &'static TestKey {
    cell.get_or_init(|| TestKey::generate(alg))
}

/// The process-wide RSA key (RSA generation is slow, so tests share it).
pub fn rsa() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    cached(&KEY, Algorithm::RS256)
}

/// A second RSA key (rotation, attacker keys).
pub fn rsa2() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    cached(&KEY, Algorithm::RS256)
}

/// The process-wide P-256 key.
pub fn p256() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    cached(&KEY, Algorithm::ES256)
}

/// The process-wide P-384 key.
pub fn p384() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    cached(&KEY, Algorithm::ES384)
}

/// The process-wide Ed25519 key.
pub fn ed25519() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    cached(&KEY, Algorithm::EdDSA)
}

/// An in-process JWKS endpoint whose document tests can swap, counting fetches.
#[derive(Clone)]
pub struct JwksServer {
    pub url: Url,
    pub document: Arc<Mutex<serde_json::Value>>,
    pub hits: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Jwk>) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
        let server = JwksServer {
            url,
            document: Arc::new(Mutex::new(serde_json::json!({ "keys": keys }))),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let state = server.clone();
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let state = state.clone();
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    // A little latency so concurrent callers really overlap.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    axum::Json(state.document.lock().unwrap().clone())
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub fn set_keys(&self, keys: Vec<Jwk>) {
        *self.document.lock().unwrap() = serde_json::json!({ "keys": keys });
    }

    pub fn set_raw(&self, document: serde_json::Value) {
        *self.document.lock().unwrap() = document;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
