use std::time::Duration;

use jsonwebtoken::jwk::KeyAlgorithm;
use jsonwebtoken::{Algorithm, Validation};

use super::*;
use crate::identity::fetch::control_plane_client;
use crate::identity::test_keys::{JwksServer, ed25519, p256, p384, rsa, rsa2};

fn jwks(server: &JwksServer, options: JwksOptions) -> Jwks {
    Jwks::new(control_plane_client(), server.url.clone(), options)
}

/// Proves the returned key really verifies what the test key signed.
fn verifies(key: &DecodingKey, token: &str, alg: Algorithm) -> bool {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(token, key, &validation).is_ok()
}

#[tokio::test]
async fn finds_keys_by_kid_and_they_verify() {
    let server = JwksServer::start(vec![
        rsa().jwk(Some("r1")),
        p256().jwk(Some("e1")),
        p384().jwk(Some("e2")),
        ed25519().jwk(Some("d1")),
    ])
    .await;
    let jwks = jwks(&server, JwksOptions::default());
    let claims = serde_json::json!({"sub": "x"});
    for (key, kid) in [
        (rsa(), "r1"),
        (p256(), "e1"),
        (p384(), "e2"),
        (ed25519(), "d1"),
    ] {
        let found = jwks.key(Some(kid), key.alg).await.unwrap();
        assert!(
            verifies(&found, &key.sign(Some(kid), &claims), key.alg),
            "{kid}"
        );
    }
    assert_eq!(server.hits(), 1, "one fetch serves every lookup");
}

#[tokio::test]
async fn key_must_fit_the_algorithm() {
    let mut pinned = rsa().jwk(Some("pinned"));
    pinned.common.key_algorithm = Some(KeyAlgorithm::RS256);
    let server =
        JwksServer::start(vec![rsa().jwk(Some("r1")), p256().jwk(Some("e1")), pinned]).await;
    let jwks = jwks(&server, JwksOptions::default());
    // RSA key under any RSA algorithm, but not under EC or EdDSA.
    assert!(jwks.key(Some("r1"), Algorithm::PS256).await.is_ok());
    assert!(jwks.key(Some("r1"), Algorithm::ES256).await.is_err());
    assert!(jwks.key(Some("r1"), Algorithm::EdDSA).await.is_err());
    // A P-256 key does not answer ES384.
    assert!(jwks.key(Some("e1"), Algorithm::ES384).await.is_err());
    // A key whose own alg is RS256 does not answer RS512.
    assert!(jwks.key(Some("pinned"), Algorithm::RS256).await.is_ok());
    assert!(jwks.key(Some("pinned"), Algorithm::RS512).await.is_err());
    // An HMAC algorithm never gets an asymmetric key.
    assert!(jwks.key(Some("r1"), Algorithm::HS256).await.is_err());
}

#[tokio::test]
async fn encryption_symmetric_and_odd_keys_are_skipped_not_fatal() {
    let mut enc = rsa2().jwk(Some("enc"));
    enc.common.public_key_use = Some(PublicKeyUse::Encryption);
    let server = JwksServer::start(vec![]).await;
    server.set_raw(serde_json::json!({"keys": [
        enc,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "weird", "kid": "w"},
        {"kty": "RSA", "kid": "enc-alg", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        rsa().jwk(Some("good")),
    ]}));
    let jwks = jwks(&server, JwksOptions::default());
    assert!(jwks.key(Some("good"), Algorithm::RS256).await.is_ok());
    for kid in ["enc", "enc-alg", "w", "p521"] {
        assert!(
            jwks.key(Some(kid), Algorithm::RS256).await.is_err(),
            "{kid}"
        );
    }
    assert!(jwks.key(Some("hmac"), Algorithm::HS256).await.is_err());
}

#[tokio::test]
async fn kidless_keys_only_for_kidless_tokens_with_one_candidate() {
    let server = JwksServer::start(vec![rsa().jwk(None), p256().jwk(Some("e1"))]).await;
    let jwks = jwks(&server, JwksOptions::default());
    // No kid, exactly one RSA key: used.
    assert!(jwks.key(None, Algorithm::RS256).await.is_ok());
    // No kid, exactly one P-256 key (which has a kid): used.
    assert!(jwks.key(None, Algorithm::ES256).await.is_ok());
    // A token naming a kid never gets the kid-less key.
    assert!(matches!(
        jwks.key(Some("other"), Algorithm::RS256).await,
        Err(JwksError::UnknownKey { .. })
    ));

    server.set_keys(vec![rsa().jwk(None), rsa2().jwk(None)]);
    jwks.refresh().await.unwrap();
    assert!(matches!(
        jwks.key(None, Algorithm::RS256).await,
        Err(JwksError::Ambiguous { .. })
    ));
}

#[tokio::test]
async fn rotation_is_picked_up_by_unknown_kid() {
    let server = JwksServer::start(vec![rsa().jwk(Some("old"))]).await;
    let options = JwksOptions {
        min_refetch_interval: Duration::from_millis(0),
        ..JwksOptions::default()
    };
    let jwks = jwks(&server, options);
    assert!(jwks.key(Some("old"), Algorithm::RS256).await.is_ok());
    server.set_keys(vec![rsa().jwk(Some("old")), rsa2().jwk(Some("new"))]);
    let key = jwks.key(Some("new"), Algorithm::RS256).await.unwrap();
    let token = rsa2().sign(Some("new"), &serde_json::json!({}));
    assert!(verifies(&key, &token, Algorithm::RS256));
    assert_eq!(server.hits(), 2);
    // The old key was removed at the provider; once the set is refetched it is gone.
    server.set_keys(vec![rsa2().jwk(Some("new"))]);
    jwks.refresh().await.unwrap();
    assert!(jwks.key(Some("old"), Algorithm::RS256).await.is_err());
}

#[tokio::test]
async fn unknown_kid_refetch_is_rate_limited() {
    let server = JwksServer::start(vec![rsa().jwk(Some("k"))]).await;
    let jwks = jwks(&server, JwksOptions::default());
    assert!(jwks.key(Some("k"), Algorithm::RS256).await.is_ok());
    for i in 0..20 {
        let kid = format!("made-up-{i}");
        assert!(jwks.key(Some(&kid), Algorithm::RS256).await.is_err());
    }
    assert_eq!(
        server.hits(),
        2,
        "one refetch for unknown kids, then rate limited"
    );
    assert_eq!(jwks.fetch_count(), 2);
}

#[tokio::test]
async fn concurrent_unknown_kid_lookups_share_one_fetch() {
    let server = JwksServer::start(vec![rsa().jwk(Some("k"))]).await;
    let jwks = jwks(&server, JwksOptions::default());
    let lookups = (0..50).map(|_| {
        let jwks = jwks.clone();
        tokio::spawn(async move { jwks.key(Some("nope"), Algorithm::RS256).await })
    });
    for lookup in lookups.collect::<Vec<_>>() {
        assert!(matches!(
            lookup.await.unwrap(),
            Err(JwksError::UnknownKey { .. })
        ));
    }
    assert_eq!(server.hits(), 1);
    // Warm cache: 50 concurrent lookups of a new kid share exactly one refetch.
    let lookups = (0..50).map(|_| {
        let jwks = jwks.clone();
        tokio::spawn(async move { jwks.key(Some("also-nope"), Algorithm::RS256).await })
    });
    for lookup in lookups.collect::<Vec<_>>() {
        assert!(lookup.await.unwrap().is_err());
    }
    assert_eq!(server.hits(), 2);

    // Cold cache, a key that exists: 50 concurrent callers, one fetch, all succeed.
    let server = JwksServer::start(vec![rsa().jwk(Some("k"))]).await;
    let jwks = self::jwks(&server, JwksOptions::default());
    let lookups = (0..50).map(|_| {
        let jwks = jwks.clone();
        tokio::spawn(async move { jwks.key(Some("k"), Algorithm::RS256).await })
    });
    for lookup in lookups.collect::<Vec<_>>() {
        assert!(lookup.await.unwrap().is_ok());
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn stale_keys_are_refreshed_on_access() {
    let server = JwksServer::start(vec![rsa().jwk(Some("k"))]).await;
    let options = JwksOptions {
        min_refetch_interval: Duration::from_millis(0),
        max_age: Duration::from_millis(50),
    };
    let jwks = jwks(&server, options);
    assert!(jwks.key(Some("k"), Algorithm::RS256).await.is_ok());
    assert!(jwks.key(Some("k"), Algorithm::RS256).await.is_ok());
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    server.set_keys(vec![rsa2().jwk(Some("k2"))]);
    // Stale: refetched, and the revoked key is gone.
    assert!(jwks.key(Some("k"), Algorithm::RS256).await.is_err());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn provider_outage_keeps_serving_cached_keys() {
    let server = JwksServer::start(vec![rsa().jwk(Some("k"))]).await;
    let options = JwksOptions {
        min_refetch_interval: Duration::from_millis(0),
        max_age: Duration::from_millis(10),
    };
    let jwks = jwks(&server, options);
    assert!(jwks.key(Some("k"), Algorithm::RS256).await.is_ok());
    server.set_raw(serde_json::json!("not a key set"));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(jwks.key(Some("k"), Algorithm::RS256).await.is_ok());
    assert!(matches!(
        jwks.key(Some("other"), Algorithm::RS256).await,
        Err(JwksError::Fetch(_))
    ));
}

#[tokio::test]
async fn unreachable_jwks_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/jwks", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let jwks = Jwks::new(control_plane_client(), url, JwksOptions::default());
    assert!(matches!(
        jwks.key(Some("k"), Algorithm::RS256).await,
        Err(JwksError::Fetch(_))
    ));
}
