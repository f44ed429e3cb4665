//! The per-login secrets: `state`, `nonce` and the PKCE (RFC 7636) verifier, each 256 bits
//! from the OS-seeded RNG, URL-safe base64; and the S256 challenge derived from a verifier.
//! Nothing here stores them: the session layer does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 random bytes as 43 URL-safe characters (also a valid PKCE verifier).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `code_challenge` for `verifier` with method S256.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_unique_and_url_safe() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn s256_is_base64url_sha256_without_padding() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r7wW1gXk-gEjXk"),
            // Computed independently with Python hashlib + base64.urlsafe_b64encode.
            "mQmDHvXaoP46G0ja3N7QoyZTbJJD8S90sqT0CsoF9aA"
        );
    }
}
