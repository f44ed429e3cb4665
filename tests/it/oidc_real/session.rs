//! A logged-in session against the real provider: refresh (past expiry, and not on every
//! request for short-lived tokens), RP-initiated and back-channel logout, signing key rotation.

use std::time::Duration;

use reqwest::Url;

use super::*;
use crate::browser::{Browser, location};
use crate::oidc_provider::jwt_parts;

#[tokio::test]
async fn refresh_keeps_the_session_working_past_access_token_expiry() {
    let Some(real) = Real::start(Duration::from_secs(2)).await else {
        return;
    };
    let browser = Browser::new();
    let (_, response, _) = real.visit(&browser, "/app/", "alice").await;
    assert_eq!(response.status(), 200);
    let logged_in_at = now_secs();
    // Past the access token's expiry (2 s).
    tokio::time::sleep(Duration::from_millis(3100)).await;

    let session = browser.cookie(SESSION_COOKIE).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let http = support::client();
        let url = real.url("/app/");
        let session = session.clone();
        tasks.push(tokio::spawn(async move {
            let response = http
                .get(url)
                .header("cookie", format!("{SESSION_COOKIE}={session}"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let user = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|echo| {
                    echo["headers"]["x-portcullis-user"]
                        .as_str()
                        .map(str::to_owned)
                });
            (status, user)
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), (200, Some("alice".to_owned())));
    }

    // The session now holds the id_token of a refresh (issued after the login): logout shows
    // it as id_token_hint.
    let out = browser
        .send(
            browser
                .http()
                .post(real.url("/.portcullis/logout"))
                .header(ORIGIN, &real.base),
            &Url::parse(&real.url("/.portcullis/logout")).unwrap(),
        )
        .await;
    assert_eq!(out.status(), 303);
    let to = location(&out, &Url::parse(&real.base).unwrap()).unwrap();
    let hint = to
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .expect("id_token_hint");
    let (_, claims) = jwt_parts(&hint);
    assert_eq!(claims["sub"], "alice");
    assert!(
        claims["iat"].as_i64().unwrap() > logged_in_at,
        "the id_token was refreshed after login: {claims}"
    );
    real.shutdown().await;
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_here_and_at_the_provider() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let browser = Browser::new();
    let (_, response, _) = real.visit(&browser, "/app/", "alice").await;
    assert_eq!(response.status(), 200);
    let session = browser.cookie(SESSION_COOKIE).unwrap();

    let out = post_logout(&real, &browser).await;
    assert_eq!(out.status(), 303);
    let end_session = location(&out, &Url::parse(&real.base).unwrap()).unwrap();
    let discovery = real.provider.discovery().await;
    assert!(
        end_session
            .as_str()
            .starts_with(discovery["end_session_endpoint"].as_str().unwrap()),
        "{end_session}"
    );
    let query: std::collections::HashMap<String, String> =
        end_session.query_pairs().into_owned().collect();
    let (_, hint) = jwt_parts(&query["id_token_hint"]);
    assert_eq!(hint["sub"], "alice");
    assert_eq!(
        query["post_logout_redirect_uri"],
        real.url("/.portcullis/logged-out")
    );
    assert_eq!(
        browser.cookie(SESSION_COOKIE),
        None,
        "the cookie is cleared"
    );

    let back = real
        .provider
        .logout_confirm(&browser, end_session.as_str())
        .await
        .expect("the provider sends the browser back");
    assert!(
        back.as_str()
            .starts_with(&real.url("/.portcullis/logged-out")),
        "{back}"
    );
    let page = navigate(&browser, &back).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("signed out"));

    // The old cookie is dead, and the provider session too: a new visit asks for the login form.
    assert_eq!(app_status_with(&real, &session).await, 302);
    let (_, response, chain) = real.visit(&browser, "/app/", "alice").await;
    assert_eq!(response.status(), 200, "{chain:?}");
    assert_ne!(browser.cookie(SESSION_COOKIE).unwrap(), session);
    real.shutdown().await;
}

#[tokio::test]
async fn backchannel_logout_from_the_provider_ends_the_session() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let browser = Browser::new();
    let (_, response, _) = real.visit(&browser, "/app/", "alice").await;
    assert_eq!(response.status(), 200);
    let session = browser.cookie(SESSION_COOKIE).unwrap();
    // A second, unrelated session (another browser, another provider session) must survive.
    let other = Browser::new();
    let (_, response, _) = real.visit(&other, "/app/", "alice").await;
    assert_eq!(response.status(), 200);
    let other_session = other.cookie(SESSION_COOKIE).unwrap();

    // Sign out at the provider only (no id_token_hint: the provider's own logout page); it
    // POSTs a logout_token to portcullis' back-channel endpoint before answering.
    let end = real.provider.end_session_url(None, None, None);
    real.provider.logout_confirm(&browser, &end).await;
    assert_eq!(
        app_status_with(&real, &session).await,
        302,
        "the back-channel logout ended the session; provider stderr:\n{}",
        real.provider.stderr()
    );
    assert_eq!(
        navigate(&browser, &Url::parse(&real.url("/app/")).unwrap())
            .await
            .status(),
        302
    );
    assert_eq!(app_status_with(&real, &other_session).await, 200);
    real.shutdown().await;
}

#[tokio::test]
async fn rotated_signing_keys_are_picked_up_after_the_jwks_refetch_interval() {
    let Some(real) = Real::start(Duration::from_secs(2)).await else {
        return;
    };
    // Warm portcullis' JWKS cache with the old keys.
    let early = Browser::new();
    let (_, response, _) = real.visit(&early, "/app/", "alice").await;
    assert_eq!(response.status(), 200);

    let warmed = std::time::Instant::now();
    let kids = real.provider.rotate_keys().await;

    // Within the JWKS refetch interval (10 s since the last fetch: a flood of made-up kids
    // costs the provider one fetch per interval) the new kid may still be unknown: then the
    // login fails cleanly, without a session. (When the last fetch is older, it succeeds.)
    let browser = Browser::new();
    let callback = real.callback_url(&browser, "/app/", "alice").await;
    let early_try = navigate(&browser, &callback).await;
    match early_try.status().as_u16() {
        400 => assert!(!sets_session(&early_try)),
        302 => assert!(sets_session(&early_try)),
        other => panic!("login with a new kid answered {other}"),
    }

    tokio::time::sleep(Duration::from_secs(11).saturating_sub(warmed.elapsed())).await;
    let (_, response, chain) = real.visit(&browser, "/app/", "alice").await;
    assert_eq!(
        response.status(),
        200,
        "an id_token signed with a new kid is accepted after a JWKS refetch: {chain:?}"
    );
    let out = post_logout(&real, &browser).await;
    let to = location(&out, &Url::parse(&real.base).unwrap()).unwrap();
    let hint: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    let (header, _) = jwt_parts(&hint["id_token_hint"]);
    assert!(
        kids[..2].contains(&header["kid"].as_str().unwrap().to_owned()),
        "{header}"
    );

    // The early session's access token expired long ago, so the next request refreshes with
    // the refresh token issued before the rotation: the provider still honours it, and the
    // renewed id_token, signed with a new key, is accepted without a new login.
    let (_, response, chain) = real.visit(&early, "/app/", "alice").await;
    assert_eq!(response.status(), 200, "{chain:?}");
    assert!(
        !chain.iter().any(|u| u.path() == "/.portcullis/login"),
        "a refresh across the rotation needs no login: {chain:?}"
    );

    // A provider that has forgotten the grant answers the next refresh with invalid_grant:
    // portcullis ends that session and sends the browser to log in again (no error page, no
    // loop), and the new login works.
    real.provider.forget_grants().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, response, chain) = real.visit(&early, "/app/", "alice").await;
    assert_eq!(response.status(), 200, "{chain:?}");
    assert!(
        chain.iter().any(|u| u.path() == "/.portcullis/login"),
        "the refused refresh sent the browser through login: {chain:?}"
    );
    real.shutdown().await;
}

#[tokio::test]
async fn short_lived_access_tokens_are_not_refreshed_on_every_request() {
    // 20 s tokens: before the fix the refresh margin (60 s) exceeded the lifetime, so every
    // request went to the token endpoint.
    let Some(real) = Real::start(Duration::from_secs(20)).await else {
        return;
    };
    let browser = Browser::new();
    let (_, response, _) = real.visit(&browser, "/app/", "alice").await;
    assert_eq!(response.status(), 200);
    let logged_in_at = now_secs();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let session = browser.cookie(SESSION_COOKIE).unwrap();
    for _ in 0..3 {
        assert_eq!(app_status_with(&real, &session).await, 200);
    }
    let out = post_logout(&real, &browser).await;
    let to = location(&out, &Url::parse(&real.base).unwrap()).unwrap();
    let (_, claims) = jwt_parts(&param(&to, "id_token_hint"));
    assert!(
        claims["iat"].as_i64().unwrap() <= logged_in_at,
        "the session still holds the login's id_token (no refresh): {claims}"
    );
    real.shutdown().await;
}
