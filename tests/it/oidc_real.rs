//! Issue 3's browser-login suite against the REAL provider (npm `oidc-provider`, see
//! [`crate::oidc_provider`]): portcullis in-process on a known port with a `generic` provider
//! and an echo upstream behind `/app/` (group `eng` only), a cookie-jar [`Browser`] walking the
//! whole redirect chain, and one test with a real headless Chromium ([`crate::chromium`]).
//! Covers allow and deny, refresh, RP-initiated and back-channel logout, replayed callback,
//! wrong state, open redirects and session fixation. Every test skips without node (panics
//! under CI=true).

use std::time::Duration;

use portcullis::app::{self, Running};
use reqwest::Url;
use reqwest::header::{ACCEPT, ORIGIN, SET_COOKIE};

use crate::browser::{Browser, location};
use crate::chromium::Chromium;
use crate::oidc_provider::{OidcProvider, OidcProviderOptions, jwt_parts};
use crate::support;

/// The session cookie's name (plain http: no `__Host-` prefix).
const SESSION_COOKIE: &str = "portcullis";

/// The provider, portcullis in front of an echo upstream, and the public origin.
struct Real {
    provider: OidcProvider,
    running: Running,
    base: String,
    _secret: tempfile::NamedTempFile,
}

fn config(base: &str, port: u16, issuer: &str, secret: &std::path::Path, echo: &str) -> String {
    format!(
        r#"version = 1
[server]
listen = "127.0.0.1:{port}"
public_url = "{base}"
admin_listen = "off"

[[providers]]
id = "real"
preset = "generic"
issuer = "{issuer}"
client_id = "{client_id}"
client_secret = "file:{secret}"
scopes = ["openid", "email", "profile", "groups"]

[[routes]]
id = "app"
path = "/app/"
upstream = "{echo}"
auth = ["session"]
headers = ["user", "email", "groups"]
[routes.policy]
allow = [{{ id = "eng", groups = ["eng"] }}]
"#,
        client_id = crate::oidc_provider::WEB_CLIENT_ID,
        secret = secret.display(),
    )
}

impl Real {
    /// Starts everything; None when the provider cannot run here (outside CI).
    async fn start(access_ttl: Duration) -> Option<Real> {
        let provider = OidcProvider::start(OidcProviderOptions {
            access_ttl,
            ..OidcProviderOptions::default()
        })
        .await?;
        let echo = support::echo_upstream().await;
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), format!("{}\n", provider.client_secret())).unwrap();
        // public_url must be the real origin, so the port is chosen before binding; another
        // test can grab it in between, hence the retries.
        let mut attempt = 0;
        let (running, base) = loop {
            attempt += 1;
            let port = support::free_port();
            let base = format!("http://127.0.0.1:{port}");
            let text = config(&base, port, provider.issuer(), secret.path(), &echo);
            let config = portcullis::config::load_str(&text, Vec::new())
                .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{text}"));
            match app::start(config).await {
                Ok(running) => break (running, base),
                Err(error) if attempt < 5 => eprintln!("port {port} taken ({error}); retrying"),
                Err(error) => panic!("start portcullis: {error}"),
            }
        };
        provider
            .set_web_client(&OidcProviderOptions {
                redirect_uris: vec![format!("{base}/.portcullis/callback")],
                post_logout_redirect_uris: vec![format!("{base}/.portcullis/logged-out")],
                backchannel_logout_uri: Some(format!("{base}/.portcullis/backchannel-logout")),
                ..OidcProviderOptions::default()
            })
            .await;
        let real = Real {
            provider,
            running,
            base,
            _secret: secret,
        };
        real.wait_discovered().await;
        Some(real)
    }

    /// Discovery runs in the background; login answers 503 until it is done.
    async fn wait_discovered(&self) {
        let http = support::client();
        for _ in 0..200 {
            let status = http
                .get(self.url("/.portcullis/login"))
                .send()
                .await
                .unwrap()
                .status();
            if status != 503 {
                assert_eq!(status, 302, "login should redirect to the provider");
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("portcullis never discovered the provider");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn is_provider(&self, url: &Url) -> bool {
        url.as_str()
            .starts_with(&format!("{}/", self.provider.issuer()))
    }

    /// Browses to `path` like a browser navigation, following redirects and logging in as
    /// `user` at the provider when sent there; returns the final URL, its answer and every
    /// URL visited on the way.
    async fn visit(
        &self,
        browser: &Browser,
        path: &str,
        user: &str,
    ) -> (Url, reqwest::Response, Vec<Url>) {
        let mut current = Url::parse(&self.url(path)).unwrap();
        let mut chain = vec![current.clone()];
        for _ in 0..20 {
            let response = navigate(browser, &current).await;
            let Some(next) =
                location(&response, &current).filter(|_| response.status().is_redirection())
            else {
                return (current, response, chain);
            };
            current = if self.is_provider(&next) {
                chain.push(next.clone());
                self.provider.login(browser, next.as_str(), user).await
            } else {
                next
            };
            chain.push(current.clone());
        }
        panic!("more than 20 redirects from {path}: {chain:?}");
    }

    /// Starts a login (`/.portcullis/login?rd=`) and signs `user` in at the provider; returns
    /// the callback URL the provider sent the browser to, NOT yet requested.
    async fn callback_url(&self, browser: &Browser, rd: &str, user: &str) -> Url {
        let start =
            Url::parse(&self.url(&format!("/.portcullis/login?rd={}", urlencode(rd)))).unwrap();
        let response = navigate(browser, &start).await;
        assert_eq!(response.status(), 302, "login start");
        let authorize = location(&response, &start).unwrap();
        assert!(
            self.is_provider(&authorize),
            "login goes to the provider: {authorize}"
        );
        let callback = self.provider.login(browser, authorize.as_str(), user).await;
        assert!(
            callback
                .as_str()
                .starts_with(&self.url("/.portcullis/callback?")),
            "provider returns to the callback: {callback}"
        );
        callback
    }

    async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// A top-level browser navigation (GET, `Accept: text/html`) with the jar's cookies.
async fn navigate(browser: &Browser, url: &Url) -> reqwest::Response {
    let request = browser
        .http()
        .get(url.clone())
        .header(ACCEPT, "text/html,application/xhtml+xml");
    browser.send(request, url).await
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Whether an answer sets a non-empty session cookie.
fn sets_session(response: &reqwest::Response) -> bool {
    let prefix = format!("{SESSION_COOKIE}=");
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with(&prefix) && !v.starts_with(&format!("{prefix};")))
}

/// The request's `/app/` answer status with exactly this session cookie (no other cookies).
async fn app_status_with(real: &Real, session: &str) -> u16 {
    support::client()
        .get(real.url("/app/"))
        .header(ACCEPT, "text/html")
        .header("cookie", format!("{SESSION_COOKIE}={session}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

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

/// POSTs the logout as the sign-out page's form would (same-origin `Origin`).
async fn post_logout(real: &Real, browser: &Browser) -> reqwest::Response {
    let url = Url::parse(&real.url("/.portcullis/logout")).unwrap();
    let request = browser.http().post(url.clone()).header(ORIGIN, &real.base);
    browser.send(request, &url).await
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

/// `url` with query parameter `name` set to `value` (None: removed), other pairs kept.
fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .chain(value.map(|v| (name.to_owned(), v.to_owned())))
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

fn param(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
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

#[tokio::test]
async fn chromium_logs_in_through_the_proxy_and_sees_the_upstream() {
    let Some(real) = Real::start(Duration::from_secs(300)).await else {
        return;
    };
    let Some(chromium) = Chromium::start().await else {
        return;
    };
    let client = chromium.client();
    client.goto(&real.url("/app/")).await.unwrap();
    let login = chromium
        .wait_until(Duration::from_secs(15), |c| async move {
            c.find(fantoccini::Locator::Css("input[name=login]"))
                .await
                .ok()
        })
        .await;
    let at = client.current_url().await.unwrap();
    assert!(
        real.is_provider(&at),
        "sent to the provider's login form: {at}"
    );
    login.send_keys("alice").await.unwrap();
    client
        .find(fantoccini::Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let app = real.url("/app/");
    let text = chromium
        .wait_until(Duration::from_secs(15), |c| {
            let app = app.clone();
            async move {
                let url = c.current_url().await.ok()?;
                if url.as_str() != app {
                    return None;
                }
                let body = c.find(fantoccini::Locator::Css("body")).await.ok()?;
                let text = body.text().await.ok()?;
                text.contains("x-portcullis-user").then_some(text)
            }
        })
        .await;
    assert!(text.contains("alice"), "{text}");
    assert!(text.contains("eng,security"), "{text}");
    let shot = chromium.save_screenshot("login.png").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    chromium.close().await;
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

    // Within the JWKS refetch interval (10 s, a flood of made-up kids costs the provider one
    // fetch per interval) the new kid is unknown: the login fails cleanly, without a session.
    let browser = Browser::new();
    let callback = real.callback_url(&browser, "/app/", "alice").await;
    let refused = navigate(&browser, &callback).await;
    if warmed.elapsed() < Duration::from_secs(9) {
        assert_eq!(refused.status(), 400);
        assert!(!sets_session(&refused));
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

    // The early session's access token expired long ago, so the next request refreshes. The
    // test provider forgets refresh tokens when it rebuilds itself for the rotation and answers
    // invalid_grant: portcullis ends that session and sends the browser to log in again (no
    // error page, no loop), and the new login works with the new keys.
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
