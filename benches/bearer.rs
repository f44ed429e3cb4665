//! Bearer validation cost: a cached token (hash + map lookup + identity clone, what a hot
//! service pays per request), and full RS256 / ES256 verification (signature, header and claim
//! rules) without the cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis::config::TokenIssuerConfig;
use portcullis::identity::bearer::BearerValidator;
use portcullis::identity::fetch::control_plane_client;
use url::Url;

const ISS: &str = "https://idp.example";

fn key(alg: Algorithm) -> EncodingKey {
    let pair = match alg {
        Algorithm::RS256 => {
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
    }
    .unwrap();
    let pem = pair.serialize_pem();
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    }
}

fn token(key: &EncodingKey, alg: Algorithm, kid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISS, "aud": "api://billing", "sub": "billing-bot", "client_id": "billing-bot",
        "scope": "billing.read billing.write", "iat": now, "exp": now + 600,
        "jti": "0b5f6c1e-4b7a-4a39-9d0f-5f1d2b9c1a77",
    });
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    jwk
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rsa = key(Algorithm::RS256);
    let ec = key(Algorithm::ES256);
    let keys = vec![
        jwk(&rsa, Algorithm::RS256, "r1"),
        jwk(&ec, Algorithm::ES256, "e1"),
    ];
    let jwks_url = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let body = serde_json::json!({ "keys": keys });
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let body = body.clone();
                async move { axum::Json(body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });
    let config = TokenIssuerConfig {
        issuer: ISS.into(),
        issuer_url: Url::parse(ISS).unwrap(),
        jwks_uri: Some(Url::parse(&jwks_url).unwrap()),
        audiences: vec!["api://billing".into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway: Duration::from_secs(30),
        max_lifetime: Duration::from_secs(3600),
        required_claims: Vec::new(),
        groups_claim: "groups".into(),
    };
    let validator = BearerValidator::new(&[config], control_plane_client());
    let rs_token = token(&rsa, Algorithm::RS256, "r1");
    let es_token = token(&ec, Algorithm::ES256, "e1");
    rt.block_on(async {
        validator.validate(&rs_token).await.unwrap();
        validator.validate(&es_token).await.unwrap();
    });

    let mut group = c.benchmark_group("bearer");
    group.bench_function("cached lookup (RS256 token)", |b| {
        b.to_async(&rt)
            .iter(|| async { validator.validate(&rs_token).await.unwrap() })
    });
    group.bench_function("cached lookup + Identity clone", |b| {
        b.to_async(&rt).iter(|| async {
            let id = validator.validate(&rs_token).await.unwrap();
            portcullis::identity::Identity::clone(&id)
        })
    });
    group.bench_function("uncached RS256 verify", |b| {
        b.to_async(&rt)
            .iter(|| async { validator.verify_uncached(&rs_token).await.unwrap() })
    });
    group.bench_function("uncached ES256 verify", |b| {
        b.to_async(&rt)
            .iter(|| async { validator.verify_uncached(&es_token).await.unwrap() })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
