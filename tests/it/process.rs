//! The real binary as users run it: `demo` (a login through its development provider as alice
//! and bob), and `serve` stopping on SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::ACCEPT;

use crate::browser::{Browser, location, parse_form};
use crate::support::*;

/// Logs `user` in through the demo's development provider, starting from a navigation to
/// `path`: portcullis redirects to its login, which sends the browser to the provider's user
/// chooser; the chosen user's form goes back to the callback, which lands on `path`.
async fn demo_login(browser: &Browser, base: &str, path: &str, user: &str) -> reqwest::Response {
    let url = Url::parse(&format!("{base}{path}")).unwrap();
    let navigation = browser
        .send(
            browser.http().get(url.clone()).header(ACCEPT, "text/html"),
            &url,
        )
        .await;
    assert_eq!(
        navigation.status(),
        302,
        "a browser navigation is sent to log in"
    );
    let login = location(&navigation, &url).unwrap();
    assert_eq!(login.path(), "/.portcullis/login");
    // Provider discovery runs in the background from start: a login before it finished
    // answers 503 with a retry link, so give it a moment.
    let started = Instant::now();
    let (chooser_url, chooser) = loop {
        let (url, response) = browser.follow(login.as_str()).await;
        if response.status() != 503 || started.elapsed() > Duration::from_secs(5) {
            break (url, response);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        chooser.status(),
        200,
        "the provider's user chooser at {chooser_url}"
    );
    let page = chooser.text().await.unwrap();
    assert!(page.contains("development provider"), "{page}");
    let mut form = parse_form(&page, &chooser_url).unwrap();
    form.set("user", user);
    let chosen = browser.submit(&form).await;
    assert_eq!(chosen.status(), 303);
    let callback = location(&chosen, &form.action).unwrap();
    assert_eq!(callback.path(), "/.portcullis/callback");
    let (landed, response) = browser.follow(callback.as_str()).await;
    assert_eq!(landed.path(), path, "back where the login started");
    response
}

#[tokio::test]
async fn demo_serves_the_public_route_and_guards_the_others() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("demo");
    let mut demo = Binary::spawn(
        &[
            "demo",
            "--listen",
            &listen,
            "--data",
            data_dir.to_str().unwrap(),
        ],
        port,
    )
    .await;
    let banner = read_banner(&mut demo);
    let base = format!("http://{listen}");
    let client = client();
    let echo = echo_json(
        client
            .get(format!("{base}/hello?x=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["upstream"], "portcullis demo echo");
    assert_eq!(echo["path"], "/hello");
    assert!(echo["headers"].get("x-portcullis-user").is_none());
    // API-style callers get 401, never a redirect; the demo has no bearer token issuer.
    for path in ["/private/", "/sales/", "/api/"] {
        let answer = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{path}");
    }

    let alice = Browser::new();
    let echo = echo_json(demo_login(&alice, &base, "/private/", "alice").await).await;
    assert_eq!(echo["path"], "/private/");
    assert_eq!(echo["headers"]["x-portcullis-user"], "alice");
    assert_eq!(echo["headers"]["x-portcullis-email"], "alice@corp.example");
    assert_eq!(echo["headers"]["x-portcullis-groups"], "eng,security");
    assert!(
        echo["headers"].get("cookie").is_none(),
        "the session cookie never reaches the upstream: {echo}"
    );
    // The same session shows on the public route; sales is not alice's.
    let public = echo_json(alice.get(&format!("{base}/")).await).await;
    assert_eq!(public["headers"]["x-portcullis-user"], "alice");
    let sales = alice.get(&format!("{base}/sales/")).await;
    assert_eq!(sales.status(), 403, "alice is not in sales");

    let bob = Browser::new();
    let sales = echo_json(demo_login(&bob, &base, "/sales/", "bob").await).await;
    assert_eq!(sales["headers"]["x-portcullis-user"], "bob");
    assert_eq!(sales["headers"]["x-portcullis-groups"], "sales");
    let private = bob.get(&format!("{base}/private/")).await;
    assert_eq!(
        private.status(),
        403,
        "logged in but not in eng: 403, no login loop"
    );
    let denied = audit_query(&data_dir, &["--route", "private", "--decision", "deny"]).await;
    assert!(
        denied.contains("bob"),
        "bob's 403 is in the audit trail: {denied}"
    );

    drop(demo);
    assert!(
        banner.contains(&format!("log in at {base}/private/ as alice")),
        "{banner}"
    );
    for user in ["alice", "bob", "carol"] {
        assert!(banner.contains(user), "{banner}");
    }
    assert!(data_dir.join("sessions.db").is_file());
    assert!(data_dir.join("audit.db").is_file());
    let secret = std::fs::metadata(data_dir.join("dev-provider-client-secret")).unwrap();
    assert_eq!(secret.permissions().mode() & 0o777, 0o600);
}

/// `portcullis audit query` on the demo's trail (JSON), retried while the writer's batch
/// is still on its way to SQLite.
async fn audit_query(data_dir: &std::path::Path, filters: &[&str]) -> String {
    let config = data_dir.join("demo.toml");
    let started = Instant::now();
    loop {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["audit", "query", "--config", config.to_str().unwrap()])
            .args(["--format", "json"])
            .args(filters)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && stdout.len() > 4 {
            return stdout;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "audit query: {} {stdout} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the demo printed up to its `Ctrl-C` line (it prints once the proxy listens).
fn read_banner(binary: &mut Binary) -> String {
    use std::io::BufRead;
    let stdout = binary.0.stdout.take().unwrap();
    let mut banner = String::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    banner
}

#[tokio::test]
async fn serve_stops_promptly_on_sigterm() {
    let upstream = echo_upstream().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\n{}",
            public_route("app", "/", &[upstream], "")
        ),
    )
    .unwrap();
    let mut binary = Binary::spawn(&["serve", "--config", config.to_str().unwrap()], port).await;
    // An idle keep-alive connection must not hold the shutdown up.
    let idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &binary.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(exit) = binary.0.try_wait().unwrap() {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            // Well under the 8 s grace: nothing was in flight, so nothing should be waited for.
            started.elapsed() < Duration::from_secs(3),
            "still running 3s after SIGTERM with only an idle connection open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(idle);
}

#[tokio::test]
async fn client_text_cannot_forge_log_lines() {
    // The callback logs the provider's `error` parameter, which anyone can send.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("demo");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["demo", "--listen", &listen, "--data"])
        .arg(&data_dir)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Binary(child);
    wait_for_port(port).await;
    let forged = "2026-11-28T00:00:00.000000Z  INFO portcullis::app::login: login subject=admin";
    let url = format!(
        "http://{listen}/.portcullis/callback?state=x&error=access_denied%0a{}%1b%5b31m",
        forged.replace(' ', "%20")
    );
    let answer = client().get(url).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = demo.0.kill();
    let _ = demo.0.wait();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut demo.0.stderr.take().unwrap(), &mut log).unwrap();
    let line = log
        .lines()
        .find(|line| line.contains("provider returned an error"))
        .unwrap_or_else(|| panic!("no callback error line in:\n{log}"));
    assert!(
        line.contains("access_denied\\n2026-11-28T00:00:00"),
        "{line}"
    );
    assert!(line.contains("\\u{1b}[31m"), "{line}");
    assert!(
        !log.lines()
            .any(|line| line.starts_with("2026-11-28T00:00:00")),
        "a forged line:\n{log}"
    );
}
