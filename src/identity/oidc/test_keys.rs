//! Test-only signing keys: an ES256 key pair, a [`KeySource`] that knows only it, and helpers
//! that sign claims the way a provider would.

use std::sync::Arc;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};

use super::jwt::KeySource;

/// Seconds since the epoch.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// An ES256 key with a `kid`.
pub struct TestKey {
    kid: String,
    encoding: EncodingKey,
    decoding: Arc<DecodingKey>,
}

impl TestKey {
    pub fn new(kid: &str) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        let decoding = Arc::new(DecodingKey::from_jwk(&jwk).unwrap());
        TestKey {
            kid: kid.to_owned(),
            encoding,
            decoding,
        }
    }

    pub fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header
    }

    pub fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_with(&self.header(), claims)
    }

    pub fn sign_with(&self, header: &Header, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(header, claims, &self.encoding).unwrap()
    }
}

impl KeySource for TestKey {
    async fn key(&self, kid: Option<&str>, _alg: Algorithm) -> Result<Arc<DecodingKey>, String> {
        if kid == Some(self.kid.as_str()) {
            Ok(self.decoding.clone())
        } else {
            Err(format!("unknown kid {kid:?}"))
        }
    }
}
