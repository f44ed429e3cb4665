//! Logging in through the real provider: who gets in (alice) and who is denied (bob), and the
//! attacks on the callback: replay, tampered `state` or `iss`, an injected code, open
//! redirects through `rd`, session fixation.

use std::time::Duration;

use reqwest::Url;

use super::*;
use crate::browser::Browser;

#[tokio::test]
async fn alice_reaches_the_upstream_with_identity_headers_and_without_the_session_cookie() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let browser = Browser::new();
    let (url, response, chain) = real.visit(&browser, "/app/page?x=1", "alice").await;
    assert_eq!(
        url.as_str(),
        real.url("/app/page?x=1"),
        "back where we started: {chain:?}"
    );
    assert!(
        chain[1]
            .as_str()
            .starts_with(&real.url("/.portcullis/login?rd=%2Fapp%2Fpage%3Fx%3D1")),
        "{chain:?}"
    );
    let echo = support::echo_json(response).await;
    let headers = &echo["headers"];
    assert_eq!(headers["x-portcullis-user"], "alice");
    assert_eq!(headers["x-portcullis-email"], "alice@corp.example");
    assert_eq!(headers["x-portcullis-groups"], "eng,security");
    assert!(headers["x-portcullis-decision-id"].is_string(), "{headers}");
    let session = browser.cookie(SESSION_COOKIE).expect("a session cookie");
    let cookie = headers["cookie"].as_str().unwrap_or("");
    assert!(
        !cookie.contains(&format!("{SESSION_COOKIE}=")) && !cookie.contains(&session),
        "session cookie forwarded upstream: {cookie}"
    );

    let who = navigate(
        &browser,
        &Url::parse(&real.url("/.portcullis/whoami")).unwrap(),
    )
    .await;
    assert_eq!(who.status(), 200);
    let who: serde_json::Value = who.json().await.unwrap();
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["provider"], "real");
    real.shutdown().await;
}

#[tokio::test]
async fn bob_is_denied_with_a_deny_page_not_a_login_loop() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let browser = Browser::new();
    let (url, response, chain) = real.visit(&browser, "/app/", "bob").await;
    assert_eq!(url.as_str(), real.url("/app/"), "{chain:?}");
    assert_eq!(
        response.status(),
        403,
        "signed in but not allowed: {chain:?}"
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(body.contains("Access denied"), "{body}");
    assert!(
        body.contains(&request_id),
        "deny page shows the decision id {request_id}: {body}"
    );
    assert!(body.contains("bob"), "deny page names the user: {body}");
    // Again: still 403 right away, never a redirect back to login.
    let again = navigate(&browser, &url).await;
    assert_eq!(again.status(), 403);
    real.shutdown().await;
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_creates_no_session() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let browser = Browser::new();
    let callback = real.callback_url(&browser, "/app/", "alice").await;
    let first = navigate(&browser, &callback).await;
    assert_eq!(first.status(), 302);
    assert_eq!(first.headers()["location"], "/app/");
    assert!(sets_session(&first));
    let session = browser.cookie(SESSION_COOKIE).unwrap();

    let again = navigate(&browser, &callback).await;
    assert!(
        again.status().is_client_error(),
        "replay: {}",
        again.status()
    );
    assert!(!sets_session(&again), "a replay must not create a session");
    assert_eq!(
        browser.cookie(SESSION_COOKIE).as_deref(),
        Some(session.as_str())
    );

    // An attacker replaying the URL in another browser (no login cookie) gets nothing either.
    let attacker = Browser::new();
    let stolen = navigate(&attacker, &callback).await;
    assert!(stolen.status().is_client_error(), "{}", stolen.status());
    assert!(!sets_session(&stolen));
    assert_eq!(attacker.cookie(SESSION_COOKIE), None);

    // The code was exchanged once only, so the provider did not revoke the first login.
    assert_eq!(app_status_with(&real, &session).await, 200);
    real.shutdown().await;
}

#[tokio::test]
async fn a_wrong_or_missing_state_or_iss_is_refused_and_creates_no_session() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let browser = Browser::new();
    type Tamper = fn(&Url) -> Url;
    let cases: [(&str, Tamper); 4] = [
        ("missing state", |u| with_param(u, "state", None)),
        ("wrong state", |u| {
            with_param(u, "state", Some(&format!("x{}", param(u, "state"))))
        }),
        // oidc-provider advertises RFC 9207, so a missing iss means a mix-up.
        ("missing iss", |u| with_param(u, "iss", None)),
        ("wrong iss", |u| {
            with_param(u, "iss", Some("http://127.0.0.1:1"))
        }),
    ];
    for (case, tamper) in cases {
        let callback = real.callback_url(&browser, "/app/", "alice").await;
        let tampered = tamper(&callback);
        let response = navigate(&browser, &tampered).await;
        assert!(
            response.status().is_client_error(),
            "{case}: {tampered}: {}",
            response.status()
        );
        assert!(!sets_session(&response), "{case}");
        assert_eq!(browser.cookie(SESSION_COOKIE), None, "{case}");
    }
    assert_eq!(
        navigate(&browser, &Url::parse(&real.url("/app/")).unwrap())
            .await
            .status(),
        302
    );
    real.shutdown().await;
}

#[tokio::test]
async fn an_injected_code_from_another_login_is_refused_by_pkce() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    // The attacker completes a login of their own and keeps the code (never redeemed).
    let attacker = Browser::new();
    let stolen = real.callback_url(&attacker, "/app/", "bob").await;
    // The victim's browser starts a login; the attacker makes it arrive at the callback with
    // the victim's own state (bound to the victim's login cookie) but the attacker's code.
    let victim = Browser::new();
    let own = real.callback_url(&victim, "/app/", "alice").await;
    let injected = with_param(&own, "code", Some(&param(&stolen, "code")));
    let response = navigate(&victim, &injected).await;
    assert!(
        response.status().is_client_error(),
        "code injection: {}",
        response.status()
    );
    assert!(!sets_session(&response));
    assert_eq!(victim.cookie(SESSION_COOKIE), None);
    real.shutdown().await;
}

#[tokio::test]
async fn open_redirect_attempts_land_on_root() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    // One browser: after the first login the provider remembers alice and skips its form.
    let browser = Browser::new();
    for rd in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "http:evil.example",
    ] {
        let callback = real.callback_url(&browser, rd, "alice").await;
        let done = navigate(&browser, &callback).await;
        assert_eq!(done.status(), 302, "rd={rd}");
        assert_eq!(done.headers()["location"], "/", "rd={rd}");
    }
    // A same-origin path is kept.
    let callback = real.callback_url(&browser, "/app/x?y=1", "alice").await;
    let done = navigate(&browser, &callback).await;
    assert_eq!(done.headers()["location"], "/app/x?y=1");
    real.shutdown().await;
}

#[tokio::test]
async fn session_fixation_a_cookie_set_before_login_is_not_the_one_after() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let browser = Browser::new();
    browser.set_cookie(&real.base, SESSION_COOKIE, "attacker-chosen-id");
    let (_, response, _) = real.visit(&browser, "/app/", "alice").await;
    assert_eq!(response.status(), 200);
    let first = browser.cookie(SESSION_COOKIE).unwrap();
    assert_ne!(first, "attacker-chosen-id");

    // An attacker who learned a live session id before the victim logs in again gains
    // nothing: the new login gets a new id.
    let callback = real.callback_url(&browser, "/app/", "alice").await;
    let done = navigate(&browser, &callback).await;
    assert_eq!(done.status(), 302);
    let second = browser.cookie(SESSION_COOKIE).unwrap();
    assert_ne!(second, first, "every login issues a fresh session id");
    assert_eq!(app_status_with(&real, &second).await, 200);
    real.shutdown().await;
}
