//! Issue 3's browser-login suite against the REAL provider (npm `oidc-provider`, see
//! [`crate::oidc_provider`]): portcullis in-process on a known port with a `generic` provider
//! and an echo upstream behind `/app/` (group `eng` only), a cookie-jar [`Browser`] walking the
//! whole redirect chain. This file owns the setup and the browsing helpers; the tests live in
//! `login` (allow/deny and the callback attacks), `session` (refresh, both logouts, key
//! rotation) and `chromium_login` (a real headless Chromium). Every test skips without node
//! (panics under CI=true).

use std::time::Duration;

use portcullis::app::{self, Running};
use reqwest::Url;
use reqwest::header::{ACCEPT, ORIGIN, SET_COOKIE};

mod chromium_login;
mod login;
mod session;

use crate::browser::{Browser, location};
use crate::oidc_provider::{OidcProvider, OidcProviderOptions};
use crate::support;

/// The session cookie's name (plain http: no `__Host-` prefix).
pub(super) const SESSION_COOKIE: &str = "portcullis";

/// The provider, portcullis in front of an echo upstream, and the public origin.
pub(super) struct Real {
    pub(super) provider: OidcProvider,
    running: Running,
    pub(super) base: String,
    _secret: tempfile::NamedTempFile,
}

pub(super) fn config(
    base: &str,
    port: u16,
    issuer: &str,
    secret: &std::path::Path,
    echo: &str,
) -> String {
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
# Every real-provider login also fetches and merges userinfo (sub must match).
userinfo = true

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
    pub(super) async fn start(access_ttl: Duration) -> Option<Real> {
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

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(super) fn is_provider(&self, url: &Url) -> bool {
        url.as_str()
            .starts_with(&format!("{}/", self.provider.issuer()))
    }

    /// Browses to `path` like a browser navigation, following redirects and logging in as
    /// `user` at the provider when sent there; returns the final URL, its answer and every
    /// URL visited on the way.
    pub(super) async fn visit(
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
    pub(super) async fn callback_url(&self, browser: &Browser, rd: &str, user: &str) -> Url {
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

    pub(super) async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// A top-level browser navigation (GET, `Accept: text/html`) with the jar's cookies.
pub(super) async fn navigate(browser: &Browser, url: &Url) -> reqwest::Response {
    let request = browser
        .http()
        .get(url.clone())
        .header(ACCEPT, "text/html,application/xhtml+xml");
    browser.send(request, url).await
}

pub(super) fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Whether an answer sets a non-empty session cookie.
pub(super) fn sets_session(response: &reqwest::Response) -> bool {
    let prefix = format!("{SESSION_COOKIE}=");
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with(&prefix) && !v.starts_with(&format!("{prefix};")))
}

/// The request's `/app/` answer status with exactly this session cookie (no other cookies).
pub(super) async fn app_status_with(real: &Real, session: &str) -> u16 {
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

pub(super) fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// POSTs the logout as the sign-out page's form would (same-origin `Origin`).
pub(super) async fn post_logout(real: &Real, browser: &Browser) -> reqwest::Response {
    let url = Url::parse(&real.url("/.portcullis/logout")).unwrap();
    let request = browser.http().post(url.clone()).header(ORIGIN, &real.base);
    browser.send(request, &url).await
}

/// `url` with query parameter `name` set to `value` (None: removed), other pairs kept.
pub(super) fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
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

pub(super) fn param(url: &Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}
