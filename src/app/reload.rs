//! Config reload: on SIGHUP, or when the config file's modification time changes, the file is
//! validated; a valid one builds a new state (routes, policies, upstream pools, providers) and
//! the router is swapped atomically, so every request runs wholly under the old config or the
//! new one. An invalid file is rejected and the old config keeps serving. Listener, TLS,
//! worker, session and audit settings are fixed at start: a reload keeps the running ones and
//! logs that a change there needs a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::AppState;
use super::listener::SharedRouter;
use crate::config::{self, Config};

/// How often the file's modification time is checked.
const POLL: Duration = Duration::from_secs(2);

/// Watches the config file and swaps the router on a valid change.
pub(crate) struct Reloader {
    path: PathBuf,
    shared: SharedRouter,
    /// The running state: sessions, audit and the fixed sections are taken from it.
    current: Arc<AppState>,
    workers: usize,
    modified: Option<SystemTime>,
}

impl Reloader {
    pub(crate) fn new(
        path: PathBuf,
        shared: SharedRouter,
        current: Arc<AppState>,
        workers: usize,
    ) -> Self {
        let modified = modified(&path);
        Reloader {
            path,
            shared,
            current,
            workers,
            modified,
        }
    }

    /// Runs until `stop` turns true.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(hangup) => {
                        hangup.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<()>();
            // Decide inside the select, act outside it: the stop watch's guard must not be
            // held across the reload's awaits.
            let cause = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                _ = signalled => Some("SIGHUP"),
                _ = tokio::time::sleep(POLL) => {
                    let now = modified(&self.path);
                    (now != self.modified).then(|| {
                        self.modified = now;
                        "file change"
                    })
                }
            };
            if let Some(cause) = cause {
                self.reload(cause).await;
            }
        }
    }

    /// Validates the file and swaps the router; on any error the old config keeps serving.
    pub(crate) async fn reload(&mut self, cause: &str) {
        let new = match config::load(&self.path) {
            Ok(new) => new,
            Err(errors) => {
                tracing::error!(
                    %cause,
                    path = %self.path.display(),
                    "config reload rejected; the old config keeps serving:\n{errors}"
                );
                let reason = format!("{} config error(s); see the log", errors.0.len());
                self.record(file_hash(&self.path), Err(&reason)).await;
                return;
            }
        };
        let new = keep_fixed_sections(&self.current.config, new);
        let mut state = match AppState::build(new, self.current.sessions.clone(), self.workers) {
            Ok(state) => state,
            Err(error) => {
                tracing::error!(%cause, "config reload rejected: {error:#}");
                self.record(
                    file_hash(&self.path),
                    Err("the new config could not be built; see the log"),
                )
                .await;
                return;
            }
        };
        state.audit = self
            .current
            .audit
            .as_ref()
            .map(|audit| Arc::new(audit.for_config(&state.config)));
        state.assertion = self.current.assertion.clone();
        let state = Arc::new(state);
        state.oidc.spawn_discovery();
        if !state.bearer.is_empty() {
            let bearer = state.bearer.clone();
            tokio::spawn(async move { bearer.warm_up().await });
        }
        self.shared
            .store(super::listener::main_dispatch(state.clone()).load_full());
        tracing::info!(%cause, routes = state.config.routes.len(), "config reloaded");
        self.record(crate::audit::setup::config_hash(&state.config), Ok(()))
            .await;
        self.current = state;
    }

    async fn record(&self, hash: String, outcome: Result<(), &str>) {
        if let Some(audit) = &self.current.audit
            && let Err(error) = audit.config_reload(&hash, outcome).await
        {
            tracing::error!(%error, "config reload not recorded in the audit trail");
        }
    }
}

/// SHA-256 of a config file as read (for a rejected reload, which has no validated config).
fn file_hash(path: &std::path::Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// The new config with the sections a reload cannot change taken from the running one.
fn keep_fixed_sections(running: &Config, mut new: Config) -> Config {
    let fixed = |c: &Config| {
        format!(
            "{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}{:?}",
            c.server.listen,
            c.server.admin_listen,
            c.server.tls,
            c.server.workers,
            (c.server.header_read_timeout, c.server.send_timeout),
            (
                c.server.max_header_bytes,
                c.server.max_headers,
                c.server.max_connections
            ),
            c.session,
            c.audit,
            c.assertion,
            c.server.data_dir
        )
    };
    if fixed(running) != fixed(&new) {
        tracing::warn!(
            "config reload: listener, TLS, worker, limit, data_dir, [session], [audit] and \
             [assertion] changes need a restart; the running values stay"
        );
    }
    new.server.listen = running.server.listen;
    new.server.admin_listen = running.server.admin_listen;
    new.server.tls = running.server.tls.clone();
    new.server.workers = running.server.workers;
    new.server.header_read_timeout = running.server.header_read_timeout;
    new.server.send_timeout = running.server.send_timeout;
    new.server.max_header_bytes = running.server.max_header_bytes;
    new.server.max_headers = running.server.max_headers;
    new.server.max_connections = running.server.max_connections;
    new.session = running.session.clone();
    new.audit = running.audit.clone();
    new.assertion = running.assertion.clone();
    new.server.data_dir = running.server.data_dir.clone();
    new
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
