//! Drives the development provider over real sockets with reqwest, as the relying party and a
//! browser would.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::*;

const CALLBACK: &str = "http://127.0.0.1:9/.portcullis/callback";
const LOGGED_OUT: &str = "http://127.0.0.1:9/logged-out";

struct Harness {
    provider: DevProvider,
    http: reqwest::Client,
    time: Arc<AtomicI64>,
}

impl Harness {
    async fn start() -> Harness {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let time = Arc::new(AtomicI64::new(1_800_000_000));
        let now = time.clone();
        let provider = start_with_clock(
            Url::parse(CALLBACK).unwrap(),
            Url::parse(LOGGED_OUT).unwrap(),
            Arc::new(move || now.load(Ordering::SeqCst)),
        )
        .await
        .unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Harness {
            provider,
            http,
            time,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.provider.issuer.as_str().trim_end_matches('/'),
            path
        )
    }

    /// `path` with `pairs` as its query (reqwest's `query` feature is not enabled).
    fn url_with<K: AsRef<str>, V: AsRef<str>>(&self, path: &str, pairs: &[(K, V)]) -> String {
        let mut url = Url::parse(&self.url(path)).unwrap();
        url.query_pairs_mut()
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        url.into()
    }

    fn issuer(&self) -> String {
        self.provider
            .issuer
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    }

    fn authorize_query(&self, challenge: &str) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", self.provider.client_id.clone()),
            ("redirect_uri", CALLBACK.to_owned()),
            ("scope", "openid email profile groups".to_owned()),
            ("state", "st\"<1>".to_owned()),
            ("nonce", "n-1".to_owned()),
            ("code_challenge", challenge.to_owned()),
            ("code_challenge_method", "S256".to_owned()),
        ]
    }

    /// Presses `user`'s button; returns the callback URL's query.
    async fn choose(&self, user: &str, challenge: &str) -> HashMap<String, String> {
        let mut form = self.authorize_query(challenge);
        form.push(("user", user.to_owned()));
        let response = self
            .http
            .post(self.url("/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(CALLBACK), "{location}");
        Url::parse(location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        self.token_as(&self.provider.client_id, self.secret(), form)
            .await
    }

    async fn token_as(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/token"))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    fn secret(&self) -> &str {
        std::str::from_utf8(self.provider.client_secret.expose()).unwrap()
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Verifies an id_token with the published JWKS, as a relying party would.
    async fn verify(&self, id_token: &str) -> Value {
        let jwks: JwkSet = self
            .http
            .get(self.url("/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kid = jsonwebtoken::decode_header(id_token).unwrap().kid.unwrap();
        let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_issuer(&[self.issuer()]);
        validation.set_audience(&[&self.provider.client_id]);
        // Token times follow the test clock, not the real one.
        validation.validate_exp = false;
        jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .unwrap()
            .claims
    }

    async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }
}

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

#[tokio::test]
async fn discovery_and_jwks_describe_an_es256_code_flow_provider() {
    let h = Harness::start().await;
    let doc: Value = h
        .http
        .get(h.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], h.issuer());
    assert_eq!(doc["authorization_endpoint"], h.url("/authorize"));
    assert_eq!(doc["token_endpoint"], h.url("/token"));
    assert_eq!(doc["end_session_endpoint"], h.url("/end_session"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let jwks: Value = h
        .http
        .get(h.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0].get("d").is_none(), "private part never published");
    assert!(h.provider.issuer.as_str().starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn authorize_page_lists_the_users_under_the_dev_banner() {
    let h = Harness::start().await;
    let response = h
        .http
        .get(h.url_with("/authorize", &h.authorize_query("c".repeat(43).as_str())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"));
    let html = response.text().await.unwrap();
    assert!(html.contains("development provider: never use in production"));
    for user in ["alice", "bob", "carol"] {
        assert!(
            html.contains(&format!("name=\"user\" value=\"{user}\"")),
            "{html}"
        );
    }
    assert!(html.contains("groups: eng, security"));
    assert!(
        html.contains("value=\"st&quot;&lt;1&gt;\""),
        "state is escaped: {html}"
    );
    assert!(!html.contains("<script"));
}

#[tokio::test]
async fn code_flow_yields_a_verifiable_id_token_userinfo_and_refresh() {
    let h = Harness::start().await;
    let (verifier, challenge) = pkce();
    let query = h.choose("alice", &challenge).await;
    assert_eq!(query["state"], "st\"<1>");
    assert_eq!(query["iss"], h.issuer());
    let (status, tokens) = h.exchange(&query["code"], &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let claims = h.verify(tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@corp.example");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Anders");
    assert_eq!(claims["groups"], serde_json::json!(["eng", "security"]));
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["iat"], 1_800_000_000);
    assert_eq!(claims["exp"], 1_800_003_600);
    let sid = claims["sid"].as_str().unwrap().to_owned();

    let info: Value = h
        .userinfo(tokens["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["groups"], serde_json::json!(["eng", "security"]));

    h.time.fetch_add(600, Ordering::SeqCst);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = h
        .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(status, 200, "{renewed}");
    let renewed_claims = h.verify(renewed["id_token"].as_str().unwrap()).await;
    assert_eq!(renewed_claims["sid"], sid.as_str());
    assert_eq!(renewed_claims["iat"], 1_800_000_600);
    assert!(renewed_claims.get("nonce").is_none());
    assert_ne!(renewed["refresh_token"], tokens["refresh_token"]);
    // Rotation: the old refresh token is spent.
    let (status, again) = h
        .token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn every_user_gets_their_own_groups() {
    let h = Harness::start().await;
    for (user, groups) in [
        ("bob", serde_json::json!(["sales"])),
        ("carol", serde_json::json!([])),
    ] {
        let (verifier, challenge) = pkce();
        let query = h.choose(user, &challenge).await;
        let (_, tokens) = h.exchange(&query["code"], &verifier).await;
        let claims = h.verify(tokens["id_token"].as_str().unwrap()).await;
        assert_eq!(claims["sub"], user);
        assert_eq!(claims["groups"], groups);
    }
}

#[tokio::test]
async fn wrong_verifier_wrong_redirect_and_late_codes_are_invalid_grant() {
    let h = Harness::start().await;
    let (verifier, challenge) = pkce();
    let query = h.choose("alice", &challenge).await;
    let (other, _) = pkce();
    let (status, body) = h.exchange(&query["code"], &other).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // A code gets one attempt.
    assert_eq!(h.exchange(&query["code"], &verifier).await.0, 400);

    let query = h.choose("alice", &challenge).await;
    let (status, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, 400);

    let query = h.choose("alice", &challenge).await;
    h.time.fetch_add(61, Ordering::SeqCst);
    assert_eq!(h.exchange(&query["code"], &verifier).await.0, 400);
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_its_tokens() {
    let h = Harness::start().await;
    let (verifier, challenge) = pkce();
    let query = h.choose("bob", &challenge).await;
    let (status, tokens) = h.exchange(&query["code"], &verifier).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(h.userinfo(access).await.status(), 200);
    let (status, body) = h.exchange(&query["code"], &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(h.userinfo(access).await.status(), 401);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        h.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn client_authentication_is_required() {
    let h = Harness::start().await;
    let (verifier, challenge) = pkce();
    let query = h.choose("alice", &challenge).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", query["code"].as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body) = h.token_as(&h.provider.client_id, "wrong", &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = h.token_as("someone-else", h.secret(), &form).await;
    assert_eq!(status, 401);
    let unauthenticated = h
        .http
        .post(h.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert!(unauthenticated.headers().contains_key("www-authenticate"));
    let (status, body) = h.token(&[("grant_type", "password")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    assert_eq!(h.userinfo("not-a-token").await.status(), 401);
}

#[tokio::test]
async fn bad_authorization_requests_never_redirect_to_unregistered_uris() {
    let h = Harness::start().await;
    let mut query = h.authorize_query("c".repeat(43).as_str());
    query[2].1 = "https://evil.example/cb".to_owned();
    let response = h
        .http
        .get(h.url_with("/authorize", &query))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(!response.headers().contains_key("location"));

    let mut query = h.authorize_query("c".repeat(43).as_str());
    query[7].1 = "plain".to_owned();
    let response = h
        .http
        .get(h.url_with("/authorize", &query))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["error"], "invalid_request");
    assert_eq!(pairs["state"], "st\"<1>");

    let mut form = h.authorize_query("c".repeat(43).as_str());
    form.push(("user", "mallory".to_owned()));
    let response = h
        .http
        .post(h.url("/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn end_session_returns_to_the_client_and_revokes_the_session() {
    let h = Harness::start().await;
    let (verifier, challenge) = pkce();
    let query = h.choose("alice", &challenge).await;
    let (_, tokens) = h.exchange(&query["code"], &verifier).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let response = h
        .http
        .get(h.url_with(
            "/end_session",
            &[
                ("id_token_hint", id_token),
                ("post_logout_redirect_uri", LOGGED_OUT),
                ("state", "s"),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(
        response.headers()["location"],
        format!("{LOGGED_OUT}?state=s").as_str()
    );
    assert_eq!(
        h.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        h.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await
            .0,
        400
    );

    let response = h
        .http
        .get(h.url_with(
            "/end_session",
            &[("post_logout_redirect_uri", "https://evil.example/")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = h.http.get(h.url("/end_session")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Signed out"));
}

#[tokio::test]
async fn dropping_the_provider_stops_it() {
    let h = Harness::start().await;
    let url = h.url("/jwks");
    let http = h.http.clone();
    drop(h);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(http.get(url).send().await.is_err());
}
