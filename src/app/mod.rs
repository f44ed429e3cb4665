//! The running proxy: builds the state from a validated [`Config`], binds the main and admin
//! listeners, serves until told to stop, then drains. [`router`] is what tests call with
//! `oneshot`; [`start`] gives tests and the demo a running instance on real sockets.

mod balance;
pub(crate) mod browser;
mod forward_auth;
mod gateway;
mod http1;
mod http_date;
mod identify;
mod listener;
mod login;
mod logout;
mod pages;
mod reload;
mod service_endpoints;
pub(crate) mod templates;
mod tls;
mod window_stall;
mod workers;

pub use listener::{ConnInfo, ConnLimits, SharedRouter};
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
use crate::identity::assertion::AssertionSigner;
use crate::identity::bearer::BearerValidator;
use crate::identity::fetch::control_plane_client;
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
    /// Bearer token validation for every `[[token_issuers]]` entry.
    pub bearer: Arc<BearerValidator>,
    /// Signs `X-Portcullis-Jwt-Assertion`; serves `/.portcullis/jwks.json`. [`AppState::new`]
    /// uses an in-memory key; [`start`] loads the configured or persisted one.
    pub assertion: Arc<AssertionSigner>,
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
        let bearer = Arc::new(BearerValidator::new(
            &config.token_issuers,
            control_plane_client(),
        ));
        let assertion =
            AssertionSigner::ephemeral(&config.server.public_url, config.assertion.lifetime)?;
        Ok(AppState {
            config: Arc::new(config),
            routes,
            proxies,
            audit: None,
            sessions,
            oidc,
            bearer,
            assertion: Arc::new(assertion),
        })
    }
}

/// The main listener's router: reserved `/.portcullis/` endpoints, everything else to the
/// gateway.
pub fn router(state: Arc<AppState>) -> Router {
    use axum::routing::{any, get, post};
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
        .route("/.portcullis/jwks.json", get(service_endpoints::jwks))
        .route("/.portcullis/auth", any(forward_auth::handle))
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
    /// What a reload needs: the router the workers serve, the running state, worker count.
    reload: (SharedRouter, Arc<AppState>, usize),
}

impl Running {
    /// Reloads the config from `path` on SIGHUP or when the file changes, until shutdown.
    pub fn watch_config(&mut self, path: std::path::PathBuf) {
        let (shared, state, workers) = self.reload.clone();
        let reloader = reload::Reloader::new(path, shared, state, workers);
        self.tasks
            .push(tokio::spawn(reloader.run(self.stop.subscribe())));
    }

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
    state.assertion = Arc::new(AssertionSigner::load(&state.config).await?);
    let state = Arc::new(state);
    state.oidc.spawn_discovery();
    if !state.bearer.is_empty() {
        let bearer = state.bearer.clone();
        tokio::spawn(async move { bearer.warm_up().await });
    }
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
        send_timeout: server.send_timeout,
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
    let shared = listener::main_dispatch(state.clone());
    let workers = workers::spawn(listeners, shared.clone(), tls, limits, stopped.clone())?;
    let mut tasks = vec![tokio::spawn(async move {
        for worker in workers {
            let _ = worker.await;
        }
    })];
    tasks.push(tokio::spawn(prune_idle_upstreams(
        shared.clone(),
        stopped.clone(),
    )));
    if let Some(admin_listener) = admin_listener {
        tasks.push(tokio::spawn(listener::serve(
            admin_listener,
            listener::shared(admin::router(readiness.clone())),
            None,
            limits,
            stopped,
            None,
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
        reload: (shared, state, worker_count),
    })
}

/// How often idle upstream connections are checked.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes idle upstream connections that timed out or that their upstream closed, every
/// [`PRUNE_EVERY`], until shutdown: otherwise an idle proxy keeps them (in CLOSE_WAIT) until
/// the next request on the same route and worker finds them.
async fn prune_idle_upstreams(shared: listener::SharedRouter, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let dispatch = shared.load();
        if let Some(state) = &dispatch.gateway {
            let closed: usize = state.proxies.iter().map(|p| p.prune_idle()).sum();
            if closed > 0 {
                tracing::debug!(closed, "closed idle upstream connections");
            }
        }
    }
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully. With `path`, the config is
/// reloaded from it on SIGHUP or when it changes.
pub async fn serve(config: Config, path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    // Before anything binds: a signal that arrives once the port answers must find our
    // handlers, not the default action (which kills the process without draining).
    let mut signals = ShutdownSignal::install();
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let mut running = start(config).await?;
    if let Some(path) = path {
        running.watch_config(path);
    }
    #[cfg(unix)]
    drop(hangup);
    signals.wait().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT, listened for from the moment of [`ShutdownSignal::install`].
pub struct ShutdownSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Installs the handlers now.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            ShutdownSignal {
                term: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    /// Resolves at the first SIGTERM or SIGINT.
    pub async fn wait(&mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => {}
                _ = next(&mut self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod router_tests;
