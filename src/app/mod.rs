//! The running proxy: builds the state from a validated [`Config`], binds the main and admin
//! listeners, serves until told to stop, then drains. [`router`] is what tests call with
//! `oneshot`; [`start`] gives tests and the demo a running instance on real sockets.

pub(crate) mod browser;
mod gateway;
mod listener;
mod login;
mod logout;
mod pages;
pub(crate) mod templates;
mod tls;
mod workers;

pub use listener::{ConnInfo, ConnLimits};
pub use tls::TlsError;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, Readiness};
use crate::config::Config;
use crate::identity::oidc::OidcProviders;
use crate::proxy::RouteProxy;
use crate::routes::RouteTable;
use crate::session::Sessions;

/// Everything a request handler reads. Immutable once built; a reload builds a new one.
pub struct AppState {
    /// The validated config this state was built from.
    pub config: Arc<Config>,
    /// Route selection; indexes into `proxies`.
    pub routes: RouteTable,
    /// One upstream side per route, in config order.
    pub proxies: Vec<RouteProxy>,
    /// The audit trail; None without `[audit]` (then nothing is recorded, at no cost).
    pub audit: Option<Arc<crate::audit::Audit>>,
    /// Browser sessions.
    pub sessions: Sessions,
    /// OpenID providers for browser login.
    pub oidc: OidcProviders,
}

impl AppState {
    /// Builds routes and upstream clients from a validated config, with sessions in memory
    /// (tests; [`start`] connects the configured store).
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let secure = config.server.public_url.scheme() == "https";
        let sessions = Sessions::with_store(
            crate::session::AnyStore::Memory(Default::default()),
            &config.session,
            secure,
            None,
        );
        Self::build(config, sessions, 1)
    }

    /// Builds the state with the given session service and upstream clients for `workers`
    /// worker threads.
    pub fn build(config: Config, sessions: Sessions, workers: usize) -> anyhow::Result<Self> {
        let routes = RouteTable::new(&config.routes).map_err(|conflicts| {
            anyhow::anyhow!("routes tie: {conflicts:?} (config validation should have caught it)")
        })?;
        let proxies = config
            .routes
            .iter()
            .map(|route| {
                RouteProxy::with_workers(Arc::new(route.clone()), workers)
                    .with_context(|| format!("route {}", route.id))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let oidc = OidcProviders::new(&config.providers, &config.server.public_url)
            .context("providers")?;
        Ok(AppState {
            config: Arc::new(config),
            routes,
            proxies,
            audit: None,
            sessions,
            oidc,
        })
    }
}

/// The main listener's router: reserved `/.portcullis/` endpoints, everything else to the
/// gateway.
pub fn router(state: Arc<AppState>) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route(
            "/.portcullis/api/audit",
            axum::routing::get(crate::audit::api::handle),
        )
        .route("/.portcullis/audit", get(crate::audit::page::handle))
        .route("/.portcullis/login", get(login::start))
        .route("/.portcullis/callback", get(login::callback))
        .route(
            "/.portcullis/logout",
            get(logout::confirm).post(logout::end),
        )
        .route("/.portcullis/logged-out", get(logout::logged_out))
        .route("/.portcullis/backchannel-logout", post(logout::backchannel))
        .route("/.portcullis/whoami", get(login::whoami))
        .fallback(gateway::handle)
        .with_state(state)
}

/// A running instance.
pub struct Running {
    /// Where the main listener is bound.
    pub addr: SocketAddr,
    /// Where the admin listener is bound, if enabled.
    pub admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    audit: Option<crate::audit::AuditRuntime>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded by `server.shutdown_grace`) and
    /// waits for the listeners to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // After the listeners: every request that got an answer has queued its event.
        // Pinned: SIGTERM stops the process within 10 s. The listeners take at most
        // `shutdown_grace` (8 s by default); a queue of batched inserts drains in milliseconds,
        // and whatever cannot reach the database in time is already in the spool file.
        if let Some(audit) = self.audit {
            audit.shutdown(std::time::Duration::from_millis(1500)).await;
        }
    }
}

/// Binds the listeners and starts serving in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let server = config.server.clone();
    let tls = match &server.tls {
        Some(tls) => Some(tls::acceptor(tls).await?),
        None => None,
    };
    let audit = match &config.audit {
        Some(audit) => Some(crate::audit::setup::start(audit, &config).await?),
        None => None,
    };
    let secure = server.public_url.scheme() == "https";
    let sessions = Sessions::from_config(&config.session, secure)
        .await
        .context("session store")?;
    let worker_count = server.workers.unwrap_or_else(workers::default_count);
    let mut state = AppState::build(config, sessions, worker_count)?;
    state.audit = audit.as_ref().map(|a| a.audit.clone());
    let state = Arc::new(state);
    state.oidc.spawn_discovery();
    let listeners = workers::bind(server.listen, worker_count)?;
    let addr = match listeners.first() {
        Some(listener) => listener.local_addr()?,
        None => anyhow::bail!("no listener"),
    };
    let admin_listener = match server.admin_listen {
        Some(admin) => Some(
            TcpListener::bind(admin)
                .await
                .with_context(|| format!("server.admin_listen: cannot bind {admin}"))?,
        ),
        None => None,
    };
    let admin_addr = match &admin_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let limits = ConnLimits {
        header_read_timeout: server.header_read_timeout,
        max_header_bytes: server.max_header_bytes,
        max_headers: server.max_headers,
        max_connections: server.max_connections,
        shutdown_grace: server.shutdown_grace,
    };
    let _ = admin::metrics_handle();
    let readiness = Arc::new(Readiness::default());
    if let Some(audit) = &audit {
        readiness.watch_audit(audit.audit.sink.writable_flag());
    }
    let (stop, stopped) = watch::channel(false);
    let workers = workers::spawn(listeners, router(state), tls, limits, stopped.clone())?;
    let mut tasks = vec![tokio::spawn(async move {
        for worker in workers {
            let _ = worker.await;
        }
    })];
    if let Some(admin_listener) = admin_listener {
        tasks.push(tokio::spawn(listener::serve(
            admin_listener,
            admin::router(readiness.clone()),
            None,
            limits,
            stopped,
        )));
    }
    readiness.set_listening();
    tracing::info!(%addr, admin = ?admin_addr, tls = server.tls.is_some(), "portcullis listening");
    Ok(Running {
        addr,
        admin_addr,
        stop,
        tasks,
        audit,
    })
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod router_tests;
