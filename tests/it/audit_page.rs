//! The `/.portcullis/audit` page behind a real OpenID login (the `oidc-provider` harness:
//! alice is in `security`, bob is not): with the cookie-jar [`Browser`] (filters, cursor
//! pages, exports, 403, and the login, logout and audit-access events it all produces) and
//! with a real headless Chromium (log in, search, expand a row; bob gets the 403 page).

use std::time::Duration;

use fantoccini::Locator;
use portcullis::audit::StoredEvent;
use reqwest::Url;

use crate::audit_faults::all_events;
use crate::browser::{Browser, location};
use crate::chromium::Chromium;
use crate::oidc_provider::{OidcProvider, OidcProviderOptions, WEB_CLIENT_ID, WEB_CLIENT_SECRET};
use crate::support::*;

/// portcullis with the audit page guarded by the `security` group, logging in through the
/// real `oidc-provider`.
struct PageSetup {
    proxy: Proxy,
    provider: OidcProvider,
    base: String,
    dir: tempfile::TempDir,
}

async fn page_setup() -> Option<PageSetup> {
    init();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(OidcProviderOptions {
        redirect_uris: vec![format!("{base}/.portcullis/callback")],
        post_logout_redirect_uris: vec![format!("{base}/.portcullis/logged-out")],
        backchannel_logout_uri: Some(format!("{base}/.portcullis/backchannel-logout")),
        ..OidcProviderOptions::default()
    })
    .await?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), WEB_CLIENT_SECRET).unwrap();
    let echo = echo_upstream().await;
    let toml = format!(
        r#"version = 1
[server]
listen = "127.0.0.1:{port}"
public_url = "{base}"
admin_listen = "off"

[[providers]]
id = "corp"
issuer = "{issuer}"
client_id = "{WEB_CLIENT_ID}"
client_secret = "file:{dir}/secret"
scopes = ["openid", "email", "profile", "groups"]

[audit]
url = "sqlite://{dir}/audit.db"
spool_dir = "{dir}/spool"
instance = "gate-page"

[audit.access]
allow = [{{ id = "security-team", groups = ["security"] }}]

[[routes]]
id = "app"
path = "/app/"
upstream = "{echo}"
auth = ["session"]
[routes.policy]
allow = [{{ providers = ["corp"] }}]
"#,
        issuer = provider.issuer(),
        dir = dir.path().display(),
    );
    let proxy = start_proxy(&toml).await;
    for _ in 0..100 {
        let r = client()
            .get(format!("{base}/.portcullis/login"))
            .send()
            .await
            .unwrap();
        if r.status() != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(PageSetup {
        proxy,
        provider,
        base,
        dir,
    })
}

/// Logs `user` in starting from `path` and returns the page portcullis lands on.
async fn login_at(s: &PageSetup, browser: &Browser, path: &str, user: &str) -> reqwest::Response {
    let start = Url::parse(&format!("{}{path}", s.base)).unwrap();
    let first = browser.get(start.as_str()).await;
    assert_eq!(first.status(), 302, "anonymous browser goes to login");
    let login = location(&first, &start).unwrap();
    assert_eq!(login.path(), "/.portcullis/login");
    assert_eq!(
        login.query_pairs().find(|(k, _)| k == "rd").unwrap().1,
        path,
        "rd brings the browser back"
    );
    let to_provider = browser.get(login.as_str()).await;
    assert_eq!(to_provider.status(), 302);
    let authorize = location(&to_provider, &login).unwrap();
    let callback = s.provider.login(browser, authorize.as_str(), user).await;
    let back = browser.get(callback.as_str()).await;
    assert_eq!(back.status(), 302, "callback failed for {user}");
    let target = location(&back, &callback).unwrap();
    assert_eq!(target.as_str(), start.as_str());
    browser.get(target.as_str()).await
}

#[tokio::test]
async fn audit_page_for_the_security_group_403_for_others_and_login_events() {
    let Some(s) = page_setup().await else {
        return;
    };
    // Some traffic to find.
    client()
        .get(format!("{}/app/hello", s.base))
        .send()
        .await
        .unwrap();

    let alice = Browser::new();
    let page = login_at(&s, &alice, "/.portcullis/audit?decision=login", "alice").await;
    assert_eq!(page.status(), 200);
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(page.headers()[name], value);
    }
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = unescape(&page.text().await.unwrap());
    assert!(html.contains("Audit trail") && html.contains("alice@corp.example"));
    assert!(
        html.contains("/app/hello"),
        "the anonymous request is listed:\n{html}"
    );
    assert!(!html.contains("<script"), "no script on the page");

    // Filters, cursor pages and exports, through the same session.
    let all = unescape(
        &alice
            .get(&format!("{}/.portcullis/audit?limit=1", s.base))
            .await
            .text()
            .await
            .unwrap(),
    );
    let next = all
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next page link")
        .to_owned();
    assert!(next.contains("cursor="), "{next}");
    let second = alice.get(&format!("{}{next}", s.base)).await;
    assert_eq!(second.status(), 200);
    let text = unescape(
        &alice
            .get(&format!("{}/.portcullis/audit?text=%2Fapp%2Fhello", s.base))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(text.contains("/app/hello") && !text.contains("No events match"));
    let bad = alice
        .get(&format!("{}/.portcullis/audit?status=abc", s.base))
        .await;
    assert_eq!(bad.status(), 400);

    let jsonl = alice
        .get(&format!(
            "{}/.portcullis/api/audit?format=jsonl&kind=login",
            s.base
        ))
        .await;
    assert_eq!(jsonl.status(), 200);
    let jsonl = jsonl.text().await.unwrap();
    let logins: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logins.len(), 1, "{jsonl}");
    assert_eq!(logins[0]["email"], "alice@corp.example");
    assert_eq!(logins[0]["provider"], "corp");
    assert_eq!(logins[0]["decision"], "allow");
    let csv = alice
        .get(&format!(
            "{}/.portcullis/api/audit?format=csv&limit=3",
            s.base
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("id,decision_id,ts,instance,seq,kind,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4, "header and 3 rows:\n{csv}");

    // bob signs in fine but is not in `security`.
    let bob = Browser::new();
    let denied = login_at(&s, &bob, "/.portcullis/audit", "bob").await;
    assert_eq!(denied.status(), 403);
    let text = denied.text().await.unwrap();
    assert!(text.contains("bob@corp.example"), "{text}");
    let api = bob
        .get(&format!("{}/.portcullis/api/audit?format=csv", s.base))
        .await;
    assert_eq!(api.status(), 403);

    // alice signs out (RP-initiated).
    let logout = alice
        .send(
            alice
                .http()
                .post(format!("{}/.portcullis/logout", s.base))
                .header("origin", &s.base),
            &Url::parse(&format!("{}/.portcullis/logout", s.base)).unwrap(),
        )
        .await;
    assert_eq!(logout.status(), 303);
    let after = alice.get(&format!("{}/.portcullis/audit", s.base)).await;
    assert_eq!(after.status(), 302, "signed out: back to login");

    let PageSetup {
        proxy,
        provider,
        dir,
        ..
    } = s;
    proxy.shutdown().await;
    drop(provider);
    let (_, events) = all_events(&dir.path().join("audit.db")).await;
    let of = |kind: &str| -> Vec<&StoredEvent> {
        events.iter().filter(|e| e.event.kind == kind).collect()
    };
    let logins = of("login");
    assert_eq!(logins.len(), 2, "alice and bob");
    assert!(
        logins
            .iter()
            .all(|e| e.event.decision.as_deref() == Some("allow"))
    );
    let logouts = of("logout");
    assert_eq!(logouts.len(), 1);
    assert_eq!(
        logouts[0].event.email.as_deref(),
        Some("alice@corp.example")
    );
    assert!(
        logouts[0]
            .event
            .detail
            .as_deref()
            .unwrap()
            .contains("\"via\":\"rp\"")
    );
    let reads = of("audit_access");
    assert!(reads.iter().any(
        |e| e.event.status == Some(403) && e.event.email.as_deref() == Some("bob@corp.example")
    ));
    assert!(reads.iter().any(|e| e.event.status == Some(200)
        && e.event.email.as_deref() == Some("alice@corp.example")
        && e.event.rule.as_deref() == Some("security-team")));
    // Anonymous views are recorded too (the 302s to login).
    assert!(reads.iter().any(|e| e.event.status == Some(302)));
    let all = serde_json::to_string(&events).unwrap();
    for secret in [WEB_CLIENT_SECRET, "eyJ"] {
        let at = all
            .find(secret)
            .map(|i| &all[i.saturating_sub(300)..(i + 100).min(all.len())]);
        assert_eq!(at, None, "{secret} reached the trail");
    }
}

/// minijinja escapes `/` too; compare against what a browser shows.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/").replace("&amp;", "&")
}

/// Waits for an element matching `css` on the current page.
async fn find(chromium: &Chromium, css: &'static str) -> fantoccini::elements::Element {
    chromium
        .wait_until(Duration::from_secs(15), |c| async move {
            c.find(Locator::Css(css)).await.ok()
        })
        .await
}

/// Signs `user` in at the provider's form the browser is on.
async fn provider_login(chromium: &Chromium, user: &str) {
    let login = find(chromium, "input[name=login]").await;
    login.send_keys(user).await.unwrap();
    chromium
        .client()
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn chromium_reads_the_audit_page_and_bob_is_refused() {
    let Some(s) = page_setup().await else {
        return;
    };
    let Some(chromium) = Chromium::start().await else {
        return;
    };
    client()
        .get(format!("{}/app/chromium-probe", s.base))
        .send()
        .await
        .unwrap();
    let c = chromium.client();
    c.goto(&format!("{}/.portcullis/audit", s.base))
        .await
        .unwrap();
    provider_login(&chromium, "alice").await;
    let heading = find(&chromium, "main h1").await;
    assert_eq!(heading.text().await.unwrap(), "Audit trail");
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{}/.portcullis/audit", s.base)
    );

    // Search with the form, as a person would.
    let text = c.find(Locator::Css("input[name=text]")).await.unwrap();
    text.send_keys("chromium-probe").await.unwrap();
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = chromium
        .wait_until(Duration::from_secs(15), |c| async move {
            let url = c.current_url().await.ok()?;
            if !url.as_str().contains("text=chromium-probe") {
                return None;
            }
            let rows = c.find_all(Locator::Css("tbody tr")).await.ok()?;
            (!rows.is_empty()).then_some(rows)
        })
        .await;
    assert_eq!(rows.len(), 1, "one matching request");
    let row_text = rows[0].text().await.unwrap();
    assert!(row_text.contains("/app/chromium-probe"), "{row_text}");
    assert!(
        row_text.contains("login"),
        "anonymous: login required: {row_text}"
    );

    // Expand the row: every column, including the chain fields.
    let summary = c.find(Locator::Css("tbody details summary")).await.unwrap();
    summary.click().await.unwrap();
    let hash = c
        .find(Locator::XPath(
            "//details[@open]//dt[text()='hash']/following-sibling::dd[1]",
        ))
        .await
        .unwrap();
    assert!(hash.is_displayed().await.unwrap());
    assert_eq!(hash.text().await.unwrap().len(), 64);
    let shot = chromium.save_screenshot("audit-page.png").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);

    // bob, in the same browser after the cookies are gone (provider's too: same host).
    c.delete_all_cookies().await.unwrap();
    c.goto(&format!("{}/.portcullis/audit", s.base))
        .await
        .unwrap();
    provider_login(&chromium, "bob").await;
    let heading = find(&chromium, "main h1").await;
    assert_eq!(heading.text().await.unwrap(), "Access denied");
    let body = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("bob@corp.example"), "{body}");
    assert!(
        c.find(Locator::Css("table")).await.is_err(),
        "no events shown"
    );
    chromium.close().await;
    s.proxy.shutdown().await;
}
