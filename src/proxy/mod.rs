//! The upstream side of a permitted request. Owns the pooled HTTP client per route, request
//! and response header rewriting (hop-by-hop, `X-Forwarded-*`, spoofed identity headers),
//! streaming bodies with limits and idle timeouts, WebSocket/upgrade passthrough, round robin
//! over upstreams with passive ejection, and retries on connect failure (idempotent, empty
//! body only). [`forward`] requires a [`Permit`](crate::policy::Permit): nothing reaches an
//! upstream without a policy decision. It never decides who may pass.
//!
//! Files: `forward` (one exchange, retries, ejection bookkeeping), `h1` (portcullis's own
//! HTTP/1.1 client for bodiless requests to plain-http upstreams), `client` (hyper's pooled
//! client for everything else, and TLS roots), `hop` and `headers` (header rewriting),
//! `target` (the request target on the upstream), `redirect` (a `Location` naming the upstream), `upstream` (round robin and ejection),
//! `body` (idle timeout and size limit), `upgrade` (101 passthrough), `client_ip`, `error`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use crate::config::RouteConfig;
use crate::identity::Identity;

mod body;
mod client;
mod client_ip;
mod error;
mod forward;
mod h1;
mod headers;
mod hop;
mod redirect;
mod target;
#[cfg(test)]
pub(crate) mod test_support;
mod upgrade;
mod upstream;

pub use client_ip::{client_ip, is_trusted_peer};
pub use error::ProxyError;
pub use forward::{forward, forward_served};
pub use headers::{
    X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_PORTCULLIS_DECISION_ID,
    X_PORTCULLIS_EMAIL, X_PORTCULLIS_GROUPS, X_PORTCULLIS_JWT_ASSERTION, X_PORTCULLIS_USER,
    remove_cookies, remove_set_cookies,
};

/// Per-request facts the proxy needs besides the request itself.
#[derive(Clone, Copy, Debug)]
pub struct ForwardContext<'a> {
    /// The TCP peer of the client connection.
    pub peer: SocketAddr,
    /// Whether the client connection is TLS (for `X-Forwarded-Proto`).
    pub tls: bool,
    /// Whether `peer` is in `server.trusted_proxies` (its `X-Forwarded-*` are kept/extended).
    pub trusted_peer: bool,
    /// The client as the gateway determined it ([`client_ip`]): the upstream's `X-Real-IP`.
    pub client_ip: std::net::IpAddr,
    /// The normalized path; the upstream receives exactly this (minus the prefix with
    /// `strip_prefix`), followed by the original query string.
    pub path: &'a str,
    /// The caller, for claim headers.
    pub identity: Option<&'a Identity>,
    /// `X-Portcullis-Jwt-Assertion` for identified callers, set after client headers are
    /// stripped.
    pub assertion: Option<&'a http::HeaderValue>,
    /// `Authorization` to send instead of the client's: a session user's provider access
    /// token on a route with `pass_access_token` (set after client headers are stripped).
    pub access_token: Option<&'a http::HeaderValue>,
}

/// Response extension set by [`forward`]: the configured URL of the upstream that answered,
/// for the audit event's `upstream` column and access logs.
#[derive(Clone, Debug)]
pub struct ServedBy(pub Arc<str>);

/// One route's upstream side: its config, client pool and upstream health. Build one per
/// route at load/reload; it is cheap to share (`Arc`) and all its state is lock-free.
pub struct RouteProxy {
    route: Arc<RouteConfig>,
    upstreams: upstream::UpstreamSet,
    /// One pooled client per worker thread, so a request and the upstream connection task
    /// it wakes always share a thread (see `app::workers`).
    clients: Vec<client::UpstreamClient>,
    /// portcullis's own HTTP/1.1 pools, by upstream index; None for https upstreams.
    h1: Box<[Option<h1::Pool>]>,
}

thread_local! {
    /// The index of the worker thread this code runs on (0 outside worker threads).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The worker index of the current thread.
fn worker() -> usize {
    WORKER.with(std::cell::Cell::get)
}

/// Marks the current thread as worker `index`: requests served on it use that worker's
/// upstream clients.
pub fn enter_worker(index: usize) {
    WORKER.with(|worker| worker.set(index));
}

impl RouteProxy {
    /// Builds the client and upstream set for a route. Reads `upstream_ca` synchronously if
    /// set (only `file:` references are accepted here); loads the system TLS roots when an
    /// upstream is https and no `upstream_ca` is given, and fails if there are none.
    pub fn new(route: Arc<RouteConfig>) -> Result<Self, ProxyError> {
        Self::with_workers(route, 1)
    }

    /// Like [`RouteProxy::new`], with one upstream client per worker thread. Upstream health
    /// (round robin, ejection) stays shared by all workers.
    pub fn with_workers(route: Arc<RouteConfig>, workers: usize) -> Result<Self, ProxyError> {
        let upstreams = upstream::UpstreamSet::new(&route.upstreams, route.eject, Instant::now())
            .map_err(|e| ProxyError::Upstream(format!("route {}: {e}", route.id)))?;
        let clients = (0..workers.max(1))
            .map(|_| client::build(&route, upstreams.any_https()))
            .collect::<Result<Vec<_>, _>>()?;
        let h1 = (0..upstreams.len())
            .map(|i| {
                let upstream = upstreams.get(i);
                (upstream.scheme == http::uri::Scheme::HTTP).then(|| {
                    let host = upstream.authority.host();
                    let port = upstream.authority.port_u16().unwrap_or(80);
                    h1::Pool::new(host, port, route.timeouts.connect, workers)
                })
            })
            .collect();
        Ok(RouteProxy {
            route,
            upstreams,
            clients,
            h1,
        })
    }

    /// The upstream client of the current worker thread.
    fn client(&self) -> &client::UpstreamClient {
        &self.clients[worker() % self.clients.len()]
    }

    /// The own-client pool of the upstream at `index`, if it is plain http.
    fn h1_pool(&self, index: usize) -> Option<&h1::Pool> {
        self.h1.get(index % self.h1.len().max(1))?.as_ref()
    }

    /// Closes idle upstream connections that timed out or were closed by their upstream;
    /// returns how many (see `h1::Pool::prune`).
    pub fn prune_idle(&self) -> usize {
        self.h1.iter().flatten().map(h1::Pool::prune).sum()
    }

    /// The route this proxies for.
    pub fn route(&self) -> &RouteConfig {
        &self.route
    }
}

impl fmt::Debug for RouteProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteProxy")
            .field("route", &self.route.id)
            .field("upstreams", &self.upstreams.len())
            .finish_non_exhaustive()
    }
}
