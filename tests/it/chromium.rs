//! A real headless Chromium for browser tests: starts `chromedriver` on a free 127.0.0.1 port
//! (its own process group, killed with everything it started when dropped), opens one WebDriver
//! session with a fresh profile in a temp dir, and hands out the `fantoccini` client. It knows
//! nothing about portcullis; tests drive the pages themselves.
//!
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver` (override with the env vars
//! `CHROMIUM` and `CHROMEDRIVER`), [`Chromium::start`] prints a skip reason and returns `None`,
//! except under `CI=true`, where a missing browser is a failure.

// Helpers for the browser tests of other modules too; not every one is used by every branch.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// How long chromedriver may take to answer `/status`, and a new session to open.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A chromedriver with one open Chromium session.
pub struct Chromium {
    client: Option<Client>,
    driver: Child,
    log_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// None (with a printed reason) when the browser cannot run here; a panic under CI=true.
fn unavailable(reason: &str) -> Option<Chromium> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but headless Chromium cannot run: {reason}");
    }
    eprintln!("skipping: {reason}");
    None
}

fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
    let options = json!({
        "binary": chromium,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            // Proxy env vars must not reroute 127.0.0.1 traffic.
            "--no-proxy-server",
            "--window-size=1024,768",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut caps = Capabilities::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    caps
}

impl Chromium {
    /// Starts chromedriver and opens a browser session; None when they are not installed
    /// (outside CI).
    pub async fn start() -> Option<Chromium> {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        for path in [&chromium, &chromedriver] {
            if !path.is_file() {
                return unavailable(&format!("{} is not installed", path.display()));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).unwrap();
        let log_file = dir.path().join("chromedriver.log");
        let port = crate::support::free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_file.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can end Chromium too if the session never closed.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", chromedriver.display()));
        let mut browser = Chromium {
            client: None,
            driver,
            log_file,
            _dir: dir,
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        browser.wait_ready(&webdriver).await;
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities(&chromium, &profile));
        let connect = builder.connect(&webdriver);
        let client = tokio::time::timeout(START_TIMEOUT, connect)
            .await
            .unwrap_or_else(|_| panic!("no Chromium session in time; {}", browser.log_tail()))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot open a Chromium session: {e}; {}",
                    browser.log_tail()
                )
            });
        browser.client = Some(client);
        Some(browser)
    }

    async fn wait_ready(&mut self, webdriver: &str) {
        let http = crate::support::client();
        let started = Instant::now();
        loop {
            let ready = http
                .get(format!("{webdriver}/status"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited with {status}; {}", self.log_tail());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "chromedriver did not answer /status; {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The WebDriver client.
    pub fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// The end of chromedriver's log (for assertion messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        format!("chromedriver log tail:\n{}", &log[start..])
    }

    /// Waits until `ready` returns Some for the current page, polling; panics with the page
    /// URL and source after `timeout`.
    pub async fn wait_until<T, F, Fut>(&self, timeout: Duration, mut ready: F) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(value) = ready(self.client().clone()).await {
                return value;
            }
            if started.elapsed() > timeout {
                let url = self.client().current_url().await.ok();
                let source = self.client().source().await.unwrap_or_default();
                panic!("page never became ready; at {url:?}:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG screenshot of the page as `target/screenshots/<name>` (relative to the
    /// crate root) and returns its path.
    pub async fn save_screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the WebDriver session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group id is chromedriver's pid (process_group(0)); Chromium runs in that group
        // unless the session closed cleanly, so a failed test leaves no browser behind.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
