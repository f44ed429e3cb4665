//! The attack corpus through the proxy: each token answers 401 with `error="invalid_token"`
//! and the upstream never sees the request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::keys::{self, JwksServer};
use super::{claims, now, setup};
use crate::support;

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn with(changes: Value) -> Value {
    let mut c = claims("billing.read");
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn header(alg: Algorithm, kid: &str) -> Header {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    h
}

fn rsa_signed(h: Header, claims: &Value) -> String {
    keys::rsa().sign_with(h, claims)
}

#[tokio::test]
async fn every_attack_is_401_and_reaches_no_upstream() {
    let s = setup("").await;
    let attacker_jwks = JwksServer::start(vec![keys::rsa_attacker().jwk("evil")]).await;
    let good = keys::rsa().sign("r1", &claims("billing.read"));
    let parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let now = now();

    let mut corpus: Vec<(String, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": alg, "typ": "JWT", "kid": "r1"});
        corpus.push((format!("alg {alg}"), format!("{}.{}.", b64(&h), parts[1])));
        corpus.push((
            format!("alg {alg} + sig"),
            format!("{}.{}.{}", b64(&h), parts[1], parts[2]),
        ));
    }
    let public_jwk = serde_json::to_vec(&keys::rsa().jwk("r1")).unwrap();
    let public_pem = keys::rsa().pem.as_bytes().to_vec();
    for (name, secret) in [("jwk", public_jwk), ("pem", public_pem)] {
        let hs = jsonwebtoken::encode(
            &header(Algorithm::HS256, "r1"),
            &claims("billing.read"),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        corpus.push((format!("HS256 with public key {name}"), hs));
    }
    corpus.push((
        "tampered payload".into(),
        format!(
            "{}.{}.{}",
            parts[0],
            b64(&with(json!({"scope": "billing.read admin"}))),
            parts[2]
        ),
    ));
    corpus.push((
        "stripped signature".into(),
        format!("{}.{}.", parts[0], parts[1]),
    ));
    corpus.push(("two parts".into(), format!("{}.{}", parts[0], parts[1])));
    let signed = |what: &str, claims: Value| {
        (
            what.to_owned(),
            rsa_signed(header(Algorithm::RS256, "r1"), &claims),
        )
    };
    corpus.push(signed(
        "expired",
        with(json!({"iat": now - 400, "exp": now - 60})),
    ));
    corpus.push(signed("nbf future", with(json!({"nbf": now + 300}))));
    corpus.push(signed(
        "iat future",
        with(json!({"iat": now + 300, "exp": now + 600})),
    ));
    corpus.push(signed(
        "wrong iss",
        with(json!({"iss": "https://evil.example"})),
    ));
    corpus.push(signed("wrong aud", with(json!({"aud": "api://other"}))));
    corpus.push(signed("missing exp", with(json!({"exp": null}))));
    corpus.push(signed("missing iat", with(json!({"iat": null}))));
    corpus.push(signed(
        "lifetime over max",
        with(json!({"exp": now + 7200})),
    ));
    let mut h = header(Algorithm::RS256, "r1");
    h.jwk = Some(keys::rsa_attacker().jwk("r1"));
    corpus.push((
        "embedded jwk".into(),
        keys::rsa_attacker().sign_with(h, &claims("billing.read")),
    ));
    let mut h = header(Algorithm::RS256, "evil");
    h.jku = Some(attacker_jwks.url.clone());
    corpus.push((
        "jku".into(),
        keys::rsa_attacker().sign_with(h, &claims("billing.read")),
    ));
    let mut h = header(Algorithm::RS256, "evil");
    h.x5u = Some(attacker_jwks.url.clone());
    corpus.push((
        "x5u".into(),
        keys::rsa_attacker().sign_with(h, &claims("billing.read")),
    ));
    corpus.push((
        "unknown kid".into(),
        keys::rsa_attacker().sign("unknown-kid", &claims("billing.read")),
    ));
    corpus.push((
        "oversized".into(),
        rsa_signed(
            header(Algorithm::RS256, "r1"),
            &with(json!({"pad": "x".repeat(9000)})),
        ),
    ));
    let mut h = header(Algorithm::RS256, "r1");
    h.crit = Some(vec!["exp".into()]);
    corpus.push(("crit".into(), rsa_signed(h, &claims("billing.read"))));
    let mut h = header(Algorithm::RS256, "r1");
    h.typ = Some("JOSE+foo".into());
    corpus.push((
        "typ JOSE+foo".into(),
        rsa_signed(h, &claims("billing.read")),
    ));
    corpus.push(("garbage".into(), "not-a-token".into()));

    let client = support::client();
    for (what, token) in &corpus {
        let response = client
            .get(s.proxy.url("/api/invoices"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{what}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    // A good token in the query string of a route that did not opt in is not read.
    let response = client
        .get(format!(
            "{}?access_token={good}",
            s.proxy.url("/api/invoices")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "query string");

    assert_eq!(s.upstream_hits(), 0, "an attack reached the upstream");
    assert_eq!(attacker_jwks.hits(), 0, "the attacker's JWKS was fetched");
    // The good token still works afterwards (nothing was poisoned).
    let response = client
        .get(s.proxy.url("/api/invoices"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
