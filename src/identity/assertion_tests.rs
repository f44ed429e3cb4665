use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use url::Url;

use super::*;
use crate::identity::AuthMethod;

fn public_url() -> Url {
    Url::parse("https://gate.corp.example").unwrap()
}

fn alice() -> Identity {
    Identity {
        subject: "alice".into(),
        issuer: "https://idp.example".into(),
        email: Some("alice@corp.example".into()),
        groups: vec!["billing".into(), "staff".into()],
        auth: AuthMethod::Session,
        ..Identity::default()
    }
}

/// What an upstream does: find the key by `kid` in the JWKS and verify.
fn verify(jwks_json: &[u8], token: &str, audience: &str) -> serde_json::Value {
    let set: JwkSet = serde_json::from_slice(jwks_json).unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).expect("kid published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://gate.corp.example"]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

#[test]
fn assertion_verifies_with_the_published_jwks() {
    let signer = AssertionSigner::ephemeral(&public_url(), Duration::from_secs(120)).unwrap();
    let value = signer.assertion(&alice(), "billing-api").unwrap();
    let claims = verify(&signer.jwks_json(), value.to_str().unwrap(), "billing-api");
    assert_eq!(claims["iss"], "https://gate.corp.example");
    assert_eq!(claims["aud"], "billing-api");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@corp.example");
    assert_eq!(claims["groups"], serde_json::json!(["billing", "staff"]));
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 120);
    assert!(claims["jti"].as_str().unwrap().len() >= 32);
    let header = jsonwebtoken::decode_header(value.to_str().unwrap()).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(signer.kid()));
}

#[test]
fn no_email_claim_without_an_email() {
    let signer = AssertionSigner::ephemeral(&public_url(), Duration::from_secs(60)).unwrap();
    let bot = Identity {
        email: None,
        ..alice()
    };
    let value = signer.assertion(&bot, "r").unwrap();
    let claims = verify(&signer.jwks_json(), value.to_str().unwrap(), "r");
    assert!(claims.get("email").is_none());
}

#[test]
fn reused_until_shortly_before_expiry() {
    let signer = AssertionSigner::ephemeral(&public_url(), Duration::from_secs(120)).unwrap();
    let t = 1_800_000_000;
    let first = signer.assertion_at(&alice(), "a", t).unwrap();
    assert_eq!(signer.assertion_at(&alice(), "a", t + 89).unwrap(), first);
    assert_ne!(
        signer.assertion_at(&alice(), "a", t + 90).unwrap(),
        first,
        "30s margin"
    );
    // Another route (audience) or changed identity facts get their own.
    assert_ne!(signer.assertion_at(&alice(), "b", t).unwrap(), first);
    let moved = Identity {
        groups: vec!["staff".into()],
        ..alice()
    };
    assert_ne!(signer.assertion_at(&moved, "a", t).unwrap(), first);
}

#[test]
fn rotation_keeps_previous_keys_published() {
    let old = generate_pem().unwrap();
    let new = generate_pem().unwrap();
    let before =
        AssertionSigner::from_pem(old.as_bytes(), &[], &public_url(), Duration::from_secs(60))
            .unwrap();
    let issued_before = before.assertion(&alice(), "r").unwrap();
    let after = AssertionSigner::from_pem(
        new.as_bytes(),
        &[old.as_bytes().to_vec()],
        &public_url(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_ne!(before.kid(), after.kid());
    let set: JwkSet = serde_json::from_slice(&after.jwks_json()).unwrap();
    assert_eq!(set.keys.len(), 2);
    // An assertion signed before the switch still verifies against the new JWKS.
    verify(&after.jwks_json(), issued_before.to_str().unwrap(), "r");
    let issued_after = after.assertion(&alice(), "r").unwrap();
    verify(&after.jwks_json(), issued_after.to_str().unwrap(), "r");
    // The published set holds public keys only.
    let text = String::from_utf8(after.jwks_json().to_vec()).unwrap();
    assert!(!text.contains("\"d\""), "{text}");
}

#[test]
fn generated_key_is_persisted_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join(GENERATED_KEY_FILE);
    let first = load_or_generate(&path).unwrap();
    let second = load_or_generate(&path).unwrap();
    assert_eq!(first, second);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let a = AssertionSigner::from_pem(&first, &[], &public_url(), Duration::from_secs(60)).unwrap();
    let b =
        AssertionSigner::from_pem(&second, &[], &public_url(), Duration::from_secs(60)).unwrap();
    assert_eq!(a.kid(), b.kid());
}

#[test]
fn bad_keys_are_errors() {
    let err = AssertionSigner::from_pem(b"nope", &[], &public_url(), Duration::from_secs(60));
    assert!(matches!(err, Err(AssertionKeyError::NotP256 { .. })));
    let good = generate_pem().unwrap();
    let err = AssertionSigner::from_pem(
        good.as_bytes(),
        &[b"junk".to_vec()],
        &public_url(),
        Duration::from_secs(60),
    );
    assert!(
        matches!(err, Err(AssertionKeyError::NotP256 { at }) if at == "assertion.previous_keys[0]")
    );
}
