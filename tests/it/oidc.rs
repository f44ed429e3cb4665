//! Browser login against the in-process mock provider: the 302 chain with a cookie jar, state
//! and replay checks, open-redirect attempts, session fixation, API 401 vs browser 302 vs
//! signed-in 403, refresh, logout (RP-initiated) and back-channel logout.

use std::collections::HashMap;

use crate::mock_provider::{CLIENT_ID, CLIENT_SECRET, MockProvider};
use crate::support::{self, Proxy};

/// A minimal browser: follows nothing by itself, keeps cookies by name.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: support::client(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self
            .http
            .get(url)
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    async fn post_logout(&mut self, url: &str, origin: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(url).header("cookie", self.cookie_header());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        self.keep(&response);
        response
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, attrs) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// Follows redirects (relative ones against `base`) until a non-redirect; returns it and
    /// every Location seen.
    async fn follow(&mut self, base: &str, url: &str) -> (reqwest::Response, Vec<String>) {
        let mut seen = Vec::new();
        let mut next = url.to_owned();
        for _ in 0..10 {
            let response = self.get(&next).await;
            if !response.status().is_redirection() {
                return (response, seen);
            }
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            seen.push(location.clone());
            next = if location.starts_with('/') {
                format!("{base}{location}")
            } else {
                location
            };
        }
        panic!("redirect loop: {seen:?}");
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

struct Setup {
    proxy: Proxy,
    idp: MockProvider,
    base: String,
    _secret: tempfile::NamedTempFile,
}

async fn setup() -> Setup {
    support::init();
    let idp = MockProvider::start().await;
    let echo = support::echo_upstream().await;
    let port = support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{CLIENT_SECRET}\n")).unwrap();
    let toml = format!(
        r#"version = 1
[server]
listen = "127.0.0.1:{port}"
public_url = "{base}"
admin_listen = "off"
allowed_redirect_hosts = ["app.corp.example"]

[[providers]]
id = "mock"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "file:{secret_path}"

[[routes]]
id = "app"
path = "/app/"
upstream = "{echo}"
auth = ["session"]
headers = ["user", "email", "groups"]
[routes.policy]
allow = [{{ id = "eng", groups = ["eng"] }}]

[[routes]]
id = "tok"
path = "/tok/"
upstream = "{echo}"
auth = ["session"]
pass_access_token = true
[routes.policy]
allow = [{{ id = "eng", groups = ["eng"] }}]
"#,
        issuer = idp.issuer,
        secret_path = secret.path().display(),
    );
    let proxy = support::start_proxy(&toml).await;
    // Discovery runs in the background; wait until the login page stops answering 503.
    for _ in 0..50 {
        let r = support::client()
            .get(format!("{base}/.portcullis/login"))
            .send()
            .await
            .unwrap();
        if r.status() != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Setup {
        proxy,
        idp,
        base,
        _secret: secret,
    }
}

async fn login(s: &Setup, browser: &mut Browser, path: &str) -> (reqwest::Response, Vec<String>) {
    browser.follow(&s.base, &format!("{}{path}", s.base)).await
}

#[tokio::test]
async fn full_login_flow_reaches_the_upstream_without_the_session_cookie() {
    let s = setup().await;
    let mut browser = Browser::new();
    let (response, chain) = login(&s, &mut browser, "/app/page?x=1").await;
    assert!(
        chain[0].starts_with("/.portcullis/login?rd=%2Fapp%2Fpage%3Fx%3D1"),
        "{chain:?}"
    );
    assert!(
        chain[1].starts_with(&format!("{}/authorize?", s.idp.issuer)),
        "{chain:?}"
    );
    assert!(
        chain[2].starts_with(&format!("{}/.portcullis/callback?", s.base)),
        "{chain:?}"
    );
    assert_eq!(chain[3], "/app/page?x=1");
    let echo = support::echo_json(response).await;
    let headers = &echo["headers"];
    assert_eq!(headers["x-portcullis-user"], "alice");
    assert_eq!(headers["x-portcullis-email"], "alice@corp.example");
    assert_eq!(headers["x-portcullis-groups"], "eng,security");
    assert!(headers.get("x-portcullis-decision-id").is_some());
    let cookie = headers.get("cookie").and_then(|c| c.as_str()).unwrap_or("");
    assert!(
        !cookie.contains("portcullis"),
        "session cookie forwarded: {cookie}"
    );

    let who = browser.get(&format!("{}/.portcullis/whoami", s.base)).await;
    assert_eq!(who.status(), 200);
    let who: serde_json::Value = who.json().await.unwrap();
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["provider"], "mock");
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn pass_access_token_sends_the_session_access_token_and_only_there() {
    let s = setup().await;
    let mut browser = Browser::new();
    let (response, _) = login(&s, &mut browser, "/app/x").await;
    let echo = support::echo_json(response).await;
    assert!(
        echo["headers"].get("authorization").is_none(),
        "a route without pass_access_token got the token"
    );
    // A client-sent Authorization never survives: the session's token replaces it.
    let response = browser
        .http
        .get(format!("{}/tok/y", s.base))
        .header("cookie", browser.cookie_header())
        .header("authorization", "Bearer forged-by-the-client")
        .send()
        .await
        .unwrap();
    let echo = support::echo_json(response).await;
    let authorization = echo["headers"]["authorization"].as_str().unwrap();
    assert!(authorization.starts_with("Bearer "), "{authorization}");
    assert_ne!(authorization, "Bearer forged-by-the-client");
    assert!(authorization.len() > "Bearer ".len() + 16);
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn api_gets_401_browser_gets_302_denied_user_gets_403() {
    let s = setup().await;
    let api = support::client()
        .get(format!("{}/app/data", s.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert!(
        api.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let post = support::client()
        .post(format!("{}/app/data", s.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        401,
        "only GET/HEAD navigations are redirected"
    );

    s.idp.set_user("bob");
    let mut browser = Browser::new();
    let (response, _) = login(&s, &mut browser, "/app/").await;
    assert_eq!(
        response.status(),
        403,
        "a signed-in user is denied, never sent to login again"
    );
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(
        body.contains(&id) && body.contains("bob@corp.example"),
        "{body}"
    );
    assert_eq!(
        support::client()
            .get(format!("{}/.portcullis/whoami", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn wrong_state_replayed_callback_and_provider_error_create_no_session() {
    let s = setup().await;
    let mut browser = Browser::new();
    let start = browser
        .get(&format!("{}/.portcullis/login?rd=/app/", s.base))
        .await;
    let authorize = location(&start);
    let back = browser.get(&authorize).await;
    let callback = location(&back);

    // Wrong state.
    let tampered = callback.replace("state=", "state=x");
    let r = browser.get(&tampered).await;
    assert_eq!(r.status(), 400);
    assert!(!browser.cookies.keys().any(|k| k == "portcullis"));

    // The login state was consumed by the failed attempt: the real callback is now refused too.
    let r = browser.get(&callback).await;
    assert_eq!(r.status(), 400);

    // A fresh login, completed, then its callback replayed.
    let start = browser
        .get(&format!("{}/.portcullis/login?rd=/app/", s.base))
        .await;
    let back = browser.get(&location(&start)).await;
    let callback = location(&back);
    let done = browser.get(&callback).await;
    assert_eq!(done.status(), 302);
    let calls = s.idp.state.lock().unwrap().token_calls;
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(
        s.idp.state.lock().unwrap().token_calls,
        calls,
        "a replayed callback never reaches the token endpoint"
    );

    // A callback in another browser (no login cookie).
    let mut other = Browser::new();
    let start = browser
        .get(&format!("{}/.portcullis/login?rd=/app/", s.base))
        .await;
    let back = browser.get(&location(&start)).await;
    let r = other.get(&location(&back)).await;
    assert_eq!(r.status(), 400);
    assert!(other.cookies.is_empty() || !other.cookies.contains_key("portcullis"));

    // error= from the provider.
    let r = browser
        .get(&format!(
            "{}/.portcullis/callback?error=access_denied&state=abc",
            s.base
        ))
        .await;
    assert_eq!(r.status(), 400);

    // Wrong iss (RFC 9207).
    let start = browser
        .get(&format!("{}/.portcullis/login?rd=/app/", s.base))
        .await;
    let back = browser.get(&location(&start)).await;
    let mut jar = browser.cookies.clone();
    jar.remove("portcullis");
    browser.cookies = jar;
    let wrong = location(&back).replace("iss=http", "iss=https");
    let r = browser.get(&wrong).await;
    assert_eq!(r.status(), 400);
    assert!(!browser.cookies.contains_key("portcullis"));
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn open_redirect_attempts_land_on_root() {
    let s = setup().await;
    for rd in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/%2F%2Fevil",
        "http:evil",
    ] {
        let mut browser = Browser::new();
        let url = format!("{}/.portcullis/login?rd={}", s.base, urlencode(rd));
        let start = browser.get(&url).await;
        let back = browser.get(&location(&start)).await;
        let done = browser.get(&location(&back)).await;
        assert_eq!(done.status(), 302);
        assert_eq!(location(&done), "/", "rd={rd}");
    }
    let mut browser = Browser::new();
    let url = format!(
        "{}/.portcullis/login?rd={}",
        s.base,
        urlencode("https://app.corp.example/x")
    );
    let start = browser.get(&url).await;
    let back = browser.get(&location(&start)).await;
    let done = browser.get(&location(&back)).await;
    assert_eq!(location(&done), "https://app.corp.example/x");
    s.proxy.shutdown().await;
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn a_preset_session_cookie_is_not_adopted() {
    let s = setup().await;
    let mut browser = Browser::new();
    browser
        .cookies
        .insert("portcullis".into(), "attacker-chosen-id".into());
    let (response, _) = login(&s, &mut browser, "/app/").await;
    assert_eq!(response.status(), 200);
    let id = browser.cookies["portcullis"].clone();
    assert_ne!(id, "attacker-chosen-id");
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn a_new_login_ends_the_session_it_replaces() {
    let s = setup().await;
    let mut browser = Browser::new();
    let (response, _) = login(&s, &mut browser, "/app/").await;
    assert_eq!(response.status(), 200);
    let first = browser.cookies["portcullis"].clone();
    // Signing in again in the same browser (another user on a shared machine, say).
    let (response, _) = login(&s, &mut browser, "/.portcullis/login?rd=/app/").await;
    assert_eq!(response.status(), 200);
    let second = browser.cookies["portcullis"].clone();
    assert_ne!(first, second);
    // A copy of the first cookie no longer signs anyone in.
    let mut copy = Browser::new();
    copy.cookies.insert("portcullis".into(), first);
    let response = copy.get(&format!("{}/app/", s.base)).await;
    assert_eq!(response.status(), 302, "the replaced session still works");
    let response = browser.get(&format!("{}/app/", s.base)).await;
    assert_eq!(response.status(), 200);
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn logout_needs_same_origin_and_ends_at_the_provider() {
    let s = setup().await;
    let mut browser = Browser::new();
    let (response, _) = login(&s, &mut browser, "/app/").await;
    assert_eq!(response.status(), 200);

    let confirm = browser.get(&format!("{}/.portcullis/logout", s.base)).await;
    assert_eq!(confirm.status(), 200);
    assert!(confirm.text().await.unwrap().contains("method=\"post\""));

    let cross = browser
        .post_logout(
            &format!("{}/.portcullis/logout", s.base),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(cross.status(), 403);
    let still = browser.get(&format!("{}/app/", s.base)).await;
    assert_eq!(
        still.status(),
        200,
        "a cross-site POST must not end the session"
    );

    let out = browser
        .post_logout(&format!("{}/.portcullis/logout", s.base), Some(&s.base))
        .await;
    assert_eq!(out.status(), 303);
    let to = location(&out);
    assert!(
        to.starts_with(&format!("{}/end-session?", s.idp.issuer)),
        "{to}"
    );
    let _ = browser.get(&to).await;
    let seen = s
        .idp
        .state
        .lock()
        .unwrap()
        .last_end_session
        .clone()
        .unwrap();
    assert!(seen.contains_key("id_token_hint"));
    assert_eq!(
        seen["post_logout_redirect_uri"],
        format!("{}/.portcullis/logged-out", s.base)
    );
    assert_eq!(seen["client_id"], CLIENT_ID);

    let after = browser.get(&format!("{}/app/", s.base)).await;
    assert_eq!(after.status(), 302, "signed out: back to login");
    let page = browser
        .get(&format!("{}/.portcullis/logged-out", s.base))
        .await;
    assert_eq!(page.status(), 200);
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn backchannel_logout_ends_the_session() {
    let s = setup().await;
    let mut browser = Browser::new();
    let (response, _) = login(&s, &mut browser, "/app/").await;
    assert_eq!(response.status(), 200);
    let url = format!("{}/.portcullis/backchannel-logout", s.base);
    let http = support::client();

    let bad = http
        .post(&url)
        .form(&[("logout_token", "not-a-jwt")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["cache-control"], "no-store");
    let mut forged = s.idp.logout_token(Some("x"), None);
    forged.push('A');
    assert_eq!(
        http.post(&url)
            .form(&[("logout_token", forged)])
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(browser.get(&format!("{}/app/", s.base)).await.status(), 200);

    let token = s
        .idp
        .logout_token(Some(&s.idp.sid_of("alice")), Some("alice"));
    let ok = http
        .post(&url)
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    assert_eq!(browser.get(&format!("{}/app/", s.base)).await.status(), 302);
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn refresh_renews_before_expiry_and_invalid_grant_ends_the_session() {
    let s = setup().await;
    // A 4 s token is renewed halfway through its life: due 2 s after it was granted (expiry
    // is kept in whole seconds, so up to 1 s sooner). With a 2 s token a renewal near the end
    // of a second was due again at the next one, so a concurrent request that re-loaded the
    // session just after could refresh a second time: the likely cause of one failure of the
    // "exactly one refresh" check in a loaded full run.
    s.idp.state.lock().unwrap().expires_in = 4;
    let mut browser = Browser::new();
    let (response, _) = login(&s, &mut browser, "/app/").await;
    assert_eq!(response.status(), 200);
    let before = s.idp.state.lock().unwrap().refresh_calls;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    // Concurrent requests: one refresh at a time, each re-loading after waiting.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let http = support::client();
        let url = format!("{}/app/", s.base);
        let cookie = browser.cookie_header();
        tasks.push(tokio::spawn(async move {
            http.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let after = s.idp.state.lock().unwrap().refresh_calls;
    assert_eq!(
        after,
        before + 1,
        "exactly one refresh for concurrent requests"
    );

    s.idp.revoke_refresh_tokens();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = browser.get(&format!("{}/app/", s.base)).await;
    assert_eq!(r.status(), 302, "invalid_grant ends the session");
    s.proxy.shutdown().await;
}

#[tokio::test]
async fn chooser_with_several_providers_and_a_down_provider_page() {
    support::init();
    let idp = MockProvider::start().await;
    let down = support::closed_port().await;
    let toml = format!(
        r#"[[providers]]
id = "mock"
display_name = "Mock IdP"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"

[[providers]]
id = "down"
issuer = "{down}"
client_id = "x"
"#,
        issuer = idp.issuer
    );
    let proxy = support::start_proxy(&toml).await;
    let http = support::client();
    let chooser = http
        .get(proxy.url("/.portcullis/login?rd=/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(chooser.status(), 200);
    assert_eq!(chooser.headers()["x-frame-options"], "DENY");
    let body = chooser.text().await.unwrap();
    assert!(
        body.contains("Mock IdP") && body.contains("provider=down&amp;rd=%2Fx"),
        "{body}"
    );
    let down = http
        .get(proxy.url("/.portcullis/login?provider=down"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    let unknown = http
        .get(proxy.url("/.portcullis/login?provider=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    proxy.shutdown().await;
}
