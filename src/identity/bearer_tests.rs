//! The attack corpus at the validator level: every token here must be refused (and the
//! attacker's JWKS never fetched); the good ones accepted, then served from the cache.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use url::Url;

use super::*;
use crate::identity::fetch::control_plane_client;
use crate::identity::test_keys::{JwksServer, TestKey, p256, rsa, rsa2};

const ISS: &str = "https://idp.example";

fn config(jwks: &Url) -> TokenIssuerConfig {
    TokenIssuerConfig {
        issuer: ISS.into(),
        issuer_url: Url::parse(ISS).unwrap(),
        jwks_uri: Some(jwks.clone()),
        audiences: vec!["api://billing".into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway: Duration::from_secs(30),
        max_lifetime: Duration::from_secs(900),
        required_claims: Vec::new(),
        groups_claim: "groups".into(),
    }
}

fn now() -> f64 {
    now_secs()
}

fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISS, "aud": "api://billing", "sub": "svc", "client_id": "svc",
        "scope": "billing.read", "iat": now as u64, "exp": now as u64 + 300,
    })
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(key: &TestKey, header: Header, claims: &Value) -> String {
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn header(alg: Algorithm, kid: &str) -> Header {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    h
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

struct Fixture {
    validator: BearerValidator,
    jwks: JwksServer,
}

async fn fixture() -> Fixture {
    let jwks = JwksServer::start(vec![rsa().jwk(Some("r1")), p256().jwk(Some("e1"))]).await;
    let validator = BearerValidator::new(&[config(&jwks.url)], control_plane_client());
    Fixture { validator, jwks }
}

impl Fixture {
    fn good(&self) -> String {
        sign(rsa(), header(Algorithm::RS256, "r1"), &claims())
    }

    async fn refused(&self, token: &str, what: &str) -> BearerError {
        match self.validator.validate(token).await {
            Ok(identity) => panic!("{what}: accepted as {}", identity.subject),
            Err(error) => error,
        }
    }
}

#[tokio::test]
async fn good_tokens_pass_and_are_cached() {
    let f = fixture().await;
    let token = f.good();
    let id = f.validator.validate(&token).await.unwrap();
    assert_eq!(id.subject, "svc");
    assert_eq!(id.scopes, vec!["billing.read"]);
    assert_eq!(id.auth, crate::identity::AuthMethod::Bearer);
    assert_eq!(f.validator.cached_tokens(), 1);
    let again = f.validator.validate(&token).await.unwrap();
    assert!(Arc::ptr_eq(&id, &again), "second validation is a cache hit");

    let es = sign(p256(), header(Algorithm::ES256, "e1"), &claims());
    assert_eq!(f.validator.validate(&es).await.unwrap().subject, "svc");
    for typ in ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt"] {
        let mut h = header(Algorithm::RS256, "r1");
        h.typ = Some(typ.into());
        assert!(
            f.validator
                .validate(&sign(rsa(), h, &claims()))
                .await
                .is_ok(),
            "{typ}"
        );
    }
    let mut h = header(Algorithm::RS256, "r1");
    h.typ = None;
    assert!(
        f.validator
            .validate(&sign(rsa(), h, &claims()))
            .await
            .is_ok()
    );
    assert_eq!(f.jwks.hits(), 1);
}

#[tokio::test]
async fn cache_entries_never_outlive_exp() {
    let f = fixture().await;
    let token = f.good();
    let now = now();
    assert!(f.validator.validate_at(&token, now).await.is_ok());
    let exp = claims()["exp"].as_f64().unwrap();
    assert!(matches!(
        f.validator.validate_at(&token, exp + 31.0).await,
        Err(BearerError::Claim(_))
    ));
}

#[tokio::test]
async fn alg_none_in_every_spelling() {
    let f = fixture().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": alg, "typ": "JWT", "kid": "r1"});
        for sig in ["", "AAAA"] {
            let token = format!("{}.{}.{sig}", b64(&h), b64(&claims()));
            let e = f.refused(&token, alg).await;
            assert!(matches!(e, BearerError::Malformed(_)), "{alg}: {e}");
        }
    }
}

#[tokio::test]
async fn hmac_signed_with_the_public_key() {
    let f = fixture().await;
    let public_pem = rsa().jwk(Some("r1"));
    let secrets: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&public_pem).unwrap(),
        rsa().pem.as_bytes().to_vec(),
    ];
    for secret in secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = jsonwebtoken::encode(
                &header(alg, "r1"),
                &claims(),
                &EncodingKey::from_secret(&secret),
            )
            .unwrap();
            let e = f.refused(&token, "hmac").await;
            assert!(matches!(e, BearerError::Header(_)), "{e}");
        }
    }
}

#[tokio::test]
async fn tampered_and_stripped() {
    let f = fixture().await;
    let token = f.good();
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&with(json!({"scope": "billing.admin"}))),
        parts[2]
    );
    assert!(matches!(
        f.refused(&tampered, "tampered").await,
        BearerError::Signature
    ));
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert!(matches!(
        f.refused(&stripped, "stripped").await,
        BearerError::Malformed(_)
    ));
    let two = format!("{}.{}", parts[0], parts[1]);
    assert!(matches!(
        f.refused(&two, "two parts").await,
        BearerError::Malformed(_)
    ));
    let four = format!("{token}.x");
    assert!(matches!(
        f.refused(&four, "four parts").await,
        BearerError::Malformed(_)
    ));
    // Signature of another key under the right kid.
    let forged = sign(rsa2(), header(Algorithm::RS256, "r1"), &claims());
    assert!(matches!(
        f.refused(&forged, "other key").await,
        BearerError::Signature
    ));
    for junk in ["", "a", "...", "!!.!!.!!", "e30.e30.e30"] {
        f.refused(junk, junk).await;
    }
}

#[tokio::test]
async fn claim_attacks() {
    let f = fixture().await;
    let now = now() as u64;
    let cases = [
        ("expired", with(json!({"iat": now - 400, "exp": now - 60}))),
        ("nbf future", with(json!({"nbf": now + 120}))),
        (
            "iat future",
            with(json!({"iat": now + 120, "exp": now + 400})),
        ),
        ("wrong aud", with(json!({"aud": "api://other"}))),
        ("missing exp", with(json!({"exp": null}))),
        ("missing iat", with(json!({"iat": null}))),
        ("string exp", with(json!({"exp": (now + 300).to_string()}))),
        ("lifetime over max", with(json!({"exp": now + 3600}))),
    ];
    for (what, claims) in cases {
        let token = sign(rsa(), header(Algorithm::RS256, "r1"), &claims);
        let e = f.refused(&token, what).await;
        assert!(matches!(e, BearerError::Claim(_)), "{what}: {e}");
    }
    let token = sign(
        rsa(),
        header(Algorithm::RS256, "r1"),
        &with(json!({"iss": "https://evil"})),
    );
    assert!(matches!(
        f.refused(&token, "wrong iss").await,
        BearerError::UnknownIssuer
    ));
    let token = sign(
        rsa(),
        header(Algorithm::RS256, "r1"),
        &with(json!({"iss": null})),
    );
    assert!(matches!(
        f.refused(&token, "no iss").await,
        BearerError::UnknownIssuer
    ));
}

#[tokio::test]
async fn header_attacks() {
    let f = fixture().await;
    let mut h = header(Algorithm::RS256, "r1");
    h.crit = Some(vec!["exp".into()]);
    let e = f.refused(&sign(rsa(), h, &claims()), "crit").await;
    assert!(matches!(e, BearerError::Header(_)), "{e}");
    for typ in ["JOSE+foo", "JOSE", "JWE", "id_token+jwt", "logout+jwt", ""] {
        let mut h = header(Algorithm::RS256, "r1");
        h.typ = Some(typ.into());
        let e = f.refused(&sign(rsa(), h, &claims()), typ).await;
        assert!(matches!(e, BearerError::Header(_)), "{typ}: {e}");
    }
    // An algorithm the key supports but the issuer does not allow.
    let e = f
        .refused(
            &sign(rsa(), header(Algorithm::PS256, "r1"), &claims()),
            "PS256",
        )
        .await;
    assert!(matches!(e, BearerError::Header(_)), "{e}");
    // An allowed algorithm that does not fit the key under that kid.
    let e = f
        .refused(
            &sign(p256(), header(Algorithm::ES256, "r1"), &claims()),
            "kid/alg",
        )
        .await;
    assert!(matches!(e, BearerError::Keys(_)), "{e}");
}

#[tokio::test]
async fn attacker_keys_via_jwk_jku_x5u_are_never_used() {
    let f = fixture().await;
    let attacker = JwksServer::start(vec![rsa2().jwk(Some("evil")), rsa2().jwk(Some("r1"))]).await;
    // Embedded jwk with a made-up kid and with the real kid.
    for kid in ["evil", "r1"] {
        let mut h = header(Algorithm::RS256, kid);
        h.jwk = Some(rsa2().jwk(Some(kid)));
        let e = f.refused(&sign(rsa2(), h, &claims()), "embedded jwk").await;
        assert!(
            matches!(e, BearerError::Keys(_) | BearerError::Signature),
            "{e}"
        );
    }
    // jku and x5u pointing at the attacker's JWKS.
    for kid in ["evil", "r1"] {
        let mut h = header(Algorithm::RS256, kid);
        h.jku = Some(attacker.url.to_string());
        h.x5u = Some(attacker.url.to_string());
        f.refused(&sign(rsa2(), h, &claims()), "jku").await;
    }
    // x5c: an attacker certificate chain in the header.
    let mut h = header(Algorithm::RS256, "r1");
    h.x5c = Some(vec!["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA".into()]);
    f.refused(&sign(rsa2(), h, &claims()), "x5c").await;
    assert_eq!(attacker.hits(), 0, "the attacker's JWKS was fetched");
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_is_rate_limited() {
    let f = fixture().await;
    assert!(f.validator.validate(&f.good()).await.is_ok());
    for i in 0..10 {
        let token = sign(
            rsa2(),
            header(Algorithm::RS256, &format!("new-{i}")),
            &claims(),
        );
        let e = f.refused(&token, "unknown kid").await;
        assert!(matches!(e, BearerError::Keys(_)), "{e}");
    }
    assert_eq!(
        f.jwks.hits(),
        2,
        "one refetch for unknown kids, then rate limited"
    );
}

#[tokio::test]
async fn oversized_token() {
    let f = fixture().await;
    let big = with(json!({"pad": "x".repeat(MAX_TOKEN_BYTES)}));
    let token = sign(rsa(), header(Algorithm::RS256, "r1"), &big);
    assert!(matches!(
        f.refused(&token, "oversized").await,
        BearerError::TooLarge
    ));
    assert_eq!(f.jwks.hits(), 0, "refused before any key lookup");
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let jwks = JwksServer::start(vec![rsa().jwk(Some("r1"))]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let document = json!({"issuer": issuer, "jwks_uri": jwks.url.as_str()});
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = config(&jwks.url);
    config.jwks_uri = None;
    config.issuer = issuer.clone();
    config.issuer_url = Url::parse(&issuer).unwrap();
    let validator = BearerValidator::new(&[config], control_plane_client());
    let token = sign(
        rsa(),
        header(Algorithm::RS256, "r1"),
        &with(json!({"iss": issuer})),
    );
    assert_eq!(validator.validate(&token).await.unwrap().subject, "svc");
}

#[tokio::test]
async fn two_issuers_are_kept_apart() {
    let a = JwksServer::start(vec![rsa().jwk(Some("k"))]).await;
    let b = JwksServer::start(vec![rsa2().jwk(Some("k"))]).await;
    let mut second = config(&b.url);
    second.issuer = "https://other.example".into();
    let validator = BearerValidator::new(&[config(&a.url), second], control_plane_client());
    // Signed by issuer B's key but claiming issuer A: A's keys are used, so it fails.
    let token = sign(rsa2(), header(Algorithm::RS256, "k"), &claims());
    assert!(validator.validate(&token).await.is_err());
    let token = sign(
        rsa2(),
        header(Algorithm::RS256, "k"),
        &with(json!({"iss": "https://other.example"})),
    );
    assert_eq!(
        validator.validate(&token).await.unwrap().issuer,
        "https://other.example"
    );
}
