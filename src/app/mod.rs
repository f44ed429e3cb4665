//! The running proxy: builds the state from a validated [`Config`], binds the main and admin
//! listeners, serves until told to stop, then drains. [`router`] is what tests call with
//! `oneshot`; [`start`] gives tests and the demo a running instance on real sockets.

mod forward_auth;
mod gateway;
mod listener;
mod pages;
mod service_endpoints;
mod tls;

pub use listener::{ConnInfo, ConnLimits};
pub use tls::TlsError;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, Readiness};
use crate::config::Config;
use crate::identity::assertion::AssertionSigner;
use crate::identity::bearer::BearerValidator;
use crate::identity::fetch::control_plane_client;
use crate::proxy::RouteProxy;
use crate::routes::RouteTable;

/// Everything a request handler reads. Immutable once built; a reload builds a new one.
pub struct AppState {
    /// The validated config this state was built from.
    pub config: Arc<Config>,
    /// Route selection; indexes into `proxies`.
    pub routes: RouteTable,
    /// One upstream side per route, in config order.
    pub proxies: Vec<RouteProxy>,
    /// Bearer token validation for every `[[token_issuers]]` entry.
    pub bearer: Arc<BearerValidator>,
    /// Signs `X-Portcullis-Jwt-Assertion`; serves `/.portcullis/jwks.json`. [`AppState::new`]
    /// uses an in-memory key; [`start`] loads the configured or persisted one.
    pub assertion: Arc<AssertionSigner>,
}

impl AppState {
    /// Builds routes and upstream clients from a validated config.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let routes = RouteTable::new(&config.routes).map_err(|conflicts| {
            anyhow::anyhow!("routes tie: {conflicts:?} (config validation should have caught it)")
        })?;
        let proxies = config
            .routes
            .iter()
            .map(|route| {
                RouteProxy::new(Arc::new(route.clone()))
                    .with_context(|| format!("route {}", route.id))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
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
            bearer,
            assertion: Arc::new(assertion),
        })
    }
}

/// The main listener's router: reserved `/.portcullis/` endpoints, everything else to the
/// gateway.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
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
}

impl Running {
    /// Stops accepting, drains in-flight requests (bounded by `server.shutdown_grace`) and
    /// waits for the listeners to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
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
    let mut state = AppState::new(config)?;
    state.assertion = Arc::new(AssertionSigner::load(&state.config).await?);
    let state = Arc::new(state);
    if !state.bearer.is_empty() {
        let bearer = state.bearer.clone();
        tokio::spawn(async move { bearer.warm_up().await });
    }
    let listener = TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("server.listen: cannot bind {}", server.listen))?;
    let addr = listener.local_addr()?;
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
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(listener::serve(
        listener,
        router(state),
        tls,
        limits,
        stopped.clone(),
    ))];
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
