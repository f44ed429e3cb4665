//! The audit trail under faults and through the browser: `kill -9` of the real binary in
//! strict mode (every 200 a client received has its committed decision event, and the chain
//! still verifies), and the `/.portcullis/audit` page behind a real OpenID login (the
//! `oidc-provider` harness: alice is in `security`, bob is not), with the login, logout and
//! audit-access events it produces. The Postgres outage test lives in [`crate::audit`].

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis::audit::sqlite::SqliteStore;
use portcullis::audit::verify::verify;
use portcullis::audit::{AuditStore, StoredEvent};
use reqwest::Url;

use crate::browser::{Browser, location};
use crate::oidc_provider::{OidcProvider, OidcProviderOptions, WEB_CLIENT_ID, WEB_CLIENT_SECRET};
use crate::support::*;

async fn all_events(db: &Path) -> (SqliteStore, Vec<StoredEvent>) {
    let store = SqliteStore::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let events = store.verify_page(None, 1_000_000).await.unwrap();
    (store, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_strict_mode_loses_no_answered_decision() {
    let dir = tempfile::tempdir().unwrap();
    let up = echo_upstream().await;
    let port = free_port();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\n\
             [audit]\nurl = \"sqlite://{dir}/audit.db\"\nspool_dir = \"{dir}/spool\"\n\
             instance = \"gate-kill\"\ndurability = \"strict\"\n{routes}",
            dir = dir.path().display(),
            routes = public_route("open", "/", &[up], "")
        ),
    )
    .unwrap();
    let mut binary = Binary::spawn(&["serve", "--config", config.to_str().unwrap()], port).await;
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_at = Instant::now() + Duration::from_millis(600);
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let answered = answered.clone();
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut i = 0;
            while Instant::now() < stop_at + Duration::from_secs(2) {
                i += 1;
                let url = format!("http://127.0.0.1:{port}/w{worker}/{i}");
                let Ok(response) = client.get(url).send().await else {
                    break;
                };
                if response.status() != 200 {
                    continue;
                }
                // What the upstream received: the decision it was sent under.
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                let id = body["headers"]["x-portcullis-decision-id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                answered.lock().unwrap().push(id);
            }
        }));
    }
    tokio::time::sleep_until(stop_at.into()).await;
    let before = answered.lock().unwrap().len();
    binary.0.kill().unwrap(); // SIGKILL: no drain, no shutdown hooks.
    binary.0.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        before >= 20,
        "load too light to mean anything: {before} answers"
    );

    let (store, events) = all_events(&dir.path().join("audit.db")).await;
    let decided: HashSet<&str> = events
        .iter()
        .filter(|e| e.event.kind == "request" && e.event.decision.as_deref() == Some("allow"))
        .filter_map(|e| e.event.decision_id.as_deref())
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !decided.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no committed decision: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
    let report = verify(&store).await.unwrap();
    assert_eq!(report.broken, None, "chain broken after kill -9");
    eprintln!(
        "kill -9: {} answers, {} events committed, chain of {} verified",
        answered.len(),
        events.len(),
        report.events
    );
}

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
    let html = page.text().await.unwrap();
    assert!(html.contains("Audit trail") && html.contains("alice@corp.example"));
    assert!(html.contains("/app/hello"), "the anonymous request is listed:\n{html}");
    assert!(!html.contains("<script"), "no script on the page");

    // Filters, cursor pages and exports, through the same session.
    let all = alice
        .get(&format!("{}/.portcullis/audit?limit=1", s.base))
        .await
        .text()
        .await
        .unwrap();
    let next = all
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next page link")
        .replace("&amp;", "&");
    assert!(next.contains("cursor="), "{next}");
    let second = alice.get(&format!("{}{next}", s.base)).await;
    assert_eq!(second.status(), 200);
    let text = alice
        .get(&format!("{}/.portcullis/audit?text=%2Fapp%2Fhello", s.base))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("/app/hello") && !text.contains("No events match"));
    let bad = alice
        .get(&format!("{}/.portcullis/audit?status=abc", s.base))
        .await;
    assert_eq!(bad.status(), 400);

    let jsonl = alice
        .get(&format!("{}/.portcullis/api/audit?format=jsonl&kind=login", s.base))
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
        .get(&format!("{}/.portcullis/api/audit?format=csv&limit=3", s.base))
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("id,decision_id,ts,instance,seq,kind,"), "{csv}");
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
        proxy, provider, dir, ..
    } = s;
    proxy.shutdown().await;
    drop(provider);
    let (_, events) = all_events(&dir.path().join("audit.db")).await;
    let of = |kind: &str| -> Vec<&StoredEvent> {
        events.iter().filter(|e| e.event.kind == kind).collect()
    };
    let logins = of("login");
    assert_eq!(logins.len(), 2, "alice and bob");
    assert!(logins.iter().all(|e| e.event.decision.as_deref() == Some("allow")));
    let logouts = of("logout");
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].event.email.as_deref(), Some("alice@corp.example"));
    assert!(logouts[0].event.detail.as_deref().unwrap().contains("\"via\":\"rp\""));
    let reads = of("audit_access");
    assert!(reads.iter().any(|e| e.event.status == Some(403)
        && e.event.email.as_deref() == Some("bob@corp.example")));
    assert!(reads.iter().any(|e| e.event.status == Some(200)
        && e.event.email.as_deref() == Some("alice@corp.example")
        && e.event.rule.as_deref() == Some("security-team")));
    // Anonymous views are recorded too (the 302s to login).
    assert!(reads.iter().any(|e| e.event.status == Some(302)));
    let all = serde_json::to_string(&events).unwrap();
    for secret in [WEB_CLIENT_SECRET, "eyJ"] {
        assert!(!all.contains(secret), "{secret} reached the trail");
    }
}
