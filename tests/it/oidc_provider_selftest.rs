//! Checks the test OpenID provider harness itself (tests/oidc/server.mjs + oidc_provider.rs),
//! so a failing login test elsewhere is known to be portcullis' fault, not the harness'.

use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use crate::browser::Browser;
use crate::oidc_login::Pkce;
use crate::oidc_provider::*;
use crate::support::{client, text, upstream};

const CALLBACK: &str = "http://127.0.0.1:9/cb";

fn options() -> OidcProviderOptions {
    OidcProviderOptions {
        redirect_uris: vec![CALLBACK.to_owned()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:9/bye".to_owned()],
        ..OidcProviderOptions::default()
    }
}

/// Verifies `token`'s signature with the provider's JWKS, returning its claims.
async fn verify(provider: &OidcProvider, token: &str, audience: &str) -> Value {
    let jwks: JwkSet = client()
        .get(provider.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.unwrap();
    let jwk = jwks.find(&kid).expect("kid published in the JWKS");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[provider.issuer()]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

/// Logs `user` in and returns (callback URL, token endpoint JSON, PKCE verifier).
async fn login_and_exchange(provider: &OidcProvider, user: &str) -> (reqwest::Url, Value, String) {
    let browser = Browser::new();
    let pkce = Pkce::new();
    let authorize = provider.authorize_url(
        CALLBACK,
        "openid email profile groups",
        "state-1",
        "nonce-1",
        &pkce,
    );
    let callback = provider.login(&browser, &authorize, user).await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code in callback");
    let (status, tokens) = provider
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    assert_eq!(status, 200, "{tokens}");
    (callback, tokens, pkce.verifier)
}

#[tokio::test]
async fn discovery_document_is_served() {
    let Some(provider) = OidcProvider::start(options()).await else {
        return;
    };
    let doc = provider.discovery().await;
    assert_eq!(doc["issuer"], provider.issuer());
    assert!(provider.issuer().starts_with("http://127.0.0.1:"));
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "end_session_endpoint",
        "revocation_endpoint",
    ] {
        assert!(doc[key].is_string(), "{key} missing in {doc}");
    }
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let health = client()
        .get(provider.url("/__test/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn client_credentials_yields_a_verifiable_at_jwt_for_the_resource() {
    let Some(provider) = OidcProvider::start(options()).await else {
        return;
    };
    let token = provider
        .client_credentials_token("billing.read", BILLING_RESOURCE)
        .await;
    let (header, _) = jwt_parts(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = verify(&provider, &token, BILLING_RESOURCE).await;
    assert_eq!(claims["aud"], BILLING_RESOURCE);
    assert_eq!(claims["scope"], "billing.read");
    assert_eq!(claims["client_id"], SERVICE_CLIENT_ID);
    assert_eq!(claims["sub"], SERVICE_CLIENT_ID);

    let ledger = provider
        .client_credentials_token("ledger.read", LEDGER_RESOURCE)
        .await;
    assert_eq!(jwt_parts(&ledger).0["alg"], "RS256");
    assert_eq!(
        verify(&provider, &ledger, LEDGER_RESOURCE).await["scope"],
        "ledger.read"
    );

    let refused = provider
        .client_credentials(SERVICE_CLIENT_ID, "wrong", "billing.read", BILLING_RESOURCE)
        .await;
    assert_eq!(refused.status(), 401);
}

#[tokio::test]
async fn login_reaches_the_callback_and_the_code_yields_tokens_once() {
    let Some(provider) = OidcProvider::start(options()).await else {
        return;
    };
    let (callback, tokens, verifier) = login_and_exchange(&provider, "alice").await;
    assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
    let query: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "state-1");
    assert_eq!(query["iss"], provider.issuer());

    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = verify(&provider, id_token, WEB_CLIENT_ID).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@corp.example");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["groups"], serde_json::json!(["eng", "security"]));
    assert_eq!(claims["nonce"], "nonce-1");
    assert!(claims["sid"].is_string());
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");

    let (status, refreshed) = provider
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["access_token"].is_string());

    // A replayed code is refused (and revokes the grant: oidc-provider is certified).
    let code = query["code"].clone();
    let replay = provider
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(replay.0, 400);
    assert_eq!(replay.1["error"], "invalid_grant");
    let (status, revoked) = provider
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(
        (status, revoked["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn users_get_their_own_groups() {
    let Some(provider) = OidcProvider::start(options()).await else {
        return;
    };
    for (user, groups) in [
        ("bob", serde_json::json!(["sales"])),
        ("carol", serde_json::json!([])),
    ] {
        let (_, tokens, _) = login_and_exchange(&provider, user).await;
        let (_, claims) = jwt_parts(tokens["id_token"].as_str().unwrap());
        assert_eq!(claims["sub"], user);
        assert_eq!(claims["groups"], groups);
    }
}

#[tokio::test]
async fn rotate_keys_puts_a_new_kid_first_and_new_tokens_use_it() {
    let Some(provider) = OidcProvider::start(options()).await else {
        return;
    };
    let before = provider.jwks_kids().await;
    let old_token = provider
        .client_credentials_token("billing.read", BILLING_RESOURCE)
        .await;
    let after = provider.rotate_keys().await;
    assert_eq!(provider.jwks_kids().await, after);
    assert_eq!(after.len(), before.len() + 2);
    assert!(
        after.ends_with(&before),
        "old keys stay published: {after:?}"
    );
    let new_token = provider
        .client_credentials_token("billing.read", BILLING_RESOURCE)
        .await;
    let new_kid = jsonwebtoken::decode_header(&new_token)
        .unwrap()
        .kid
        .unwrap();
    assert!(!before.contains(&new_kid));
    assert_eq!(new_kid, after[0]);
    verify(&provider, &old_token, BILLING_RESOURCE).await;
    verify(&provider, &new_token, BILLING_RESOURCE).await;

    // A restart with the same keys file serves the same keys.
    let keys_file = provider.keys_file().to_owned();
    let keep = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(&keys_file, keep.path()).unwrap();
    drop(provider);
    let restarted = OidcProvider::start(OidcProviderOptions {
        keys_file: Some(keep.path().to_owned()),
        ..options()
    })
    .await
    .unwrap();
    assert_eq!(restarted.jwks_kids().await, after);
}

#[tokio::test]
async fn rp_initiated_logout_redirects_and_sends_a_backchannel_logout_token() {
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = received.clone();
    let backchannel = upstream(move |req: hyper::Request<hyper::body::Incoming>| {
        let sink = sink.clone();
        async move {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            text(200, "")
        }
    })
    .await;
    let Some(provider) = OidcProvider::start(options()).await else {
        return;
    };
    // Registered after start, as a test with a proxy on an ephemeral port would do.
    provider
        .set_web_client(&OidcProviderOptions {
            backchannel_logout_uri: Some(format!("{backchannel}/backchannel")),
            ..options()
        })
        .await;

    let browser = Browser::new();
    let pkce = Pkce::new();
    let authorize = provider.authorize_url(CALLBACK, "openid", "s", "n", &pkce);
    let callback = provider.login(&browser, &authorize, "alice").await;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (_, tokens) = provider
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = jwt_parts(id_token).1["sid"].as_str().unwrap().to_owned();

    let end = provider.end_session_url(Some(id_token), Some("http://127.0.0.1:9/bye"), Some("st"));
    let out = provider
        .logout_confirm(&browser, &end)
        .await
        .expect("redirect out");
    assert_eq!(out.as_str(), "http://127.0.0.1:9/bye?state=st");

    let bodies = received.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        1,
        "one back-channel logout: {}",
        provider.stderr()
    );
    let form: std::collections::HashMap<_, _> = url::form_urlencoded::parse(bodies[0].as_bytes())
        .into_owned()
        .collect();
    let (header, claims) = jwt_parts(&form["logout_token"]);
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(claims["sid"], sid);
    assert_eq!(claims["sub"], "alice");
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());

    // The provider session is gone: the next authorization asks for a login again.
    let again = provider.authorize_url(CALLBACK, "openid", "s2", "n2", &Pkce::new());
    let response = browser.get(&again).await;
    let interaction =
        crate::browser::location(&response, &reqwest::Url::parse(&again).unwrap()).unwrap();
    let page = browser
        .get(interaction.as_str())
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("name=\"login\""), "{page}");
}

#[tokio::test]
async fn unknown_redirect_uri_is_refused_by_the_provider() {
    let Some(provider) = OidcProvider::start(options()).await else {
        return;
    };
    let authorize =
        provider.authorize_url("http://127.0.0.1:9/other", "openid", "s", "n", &Pkce::new());
    let response = Browser::new().get(&authorize).await;
    assert_eq!(response.status(), 400);
}
