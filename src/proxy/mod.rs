//! The upstream side of a permitted request. Owns the pooled HTTP client per route, request
//! and response header rewriting (hop-by-hop, `X-Forwarded-*`, spoofed identity headers),
//! streaming bodies with limits and idle timeouts, WebSocket/upgrade passthrough, round robin
//! over upstreams with passive ejection, and retries on connect failure (idempotent, empty
//! body only). [`forward`] requires a [`Permit`](crate::policy::Permit): nothing reaches an
//! upstream without a policy decision. It never decides who may pass.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use ipnet::IpNet;

use crate::config::RouteConfig;
use crate::identity::Identity;
use crate::policy::Permit;

/// Why forwarding failed. Mapped to a status by [`ProxyError::status`]; details are logged,
/// never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Could not connect to any upstream (after retries).
    #[error("upstream connect failed: {0}")]
    Connect(String),
    /// The upstream did not send a response head in time.
    #[error("upstream response timed out")]
    Timeout,
    /// The request body is over the route's `max_body`.
    #[error("request body too large")]
    BodyTooLarge,
    /// Any other upstream failure (reset, protocol error).
    #[error("upstream error: {0}")]
    Upstream(String),
}

impl ProxyError {
    /// 502 for connect and upstream errors, 504 for timeouts, 413 for body size.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Connect(_) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// Per-request facts the proxy needs besides the request itself.
#[derive(Clone, Copy, Debug)]
pub struct ForwardContext<'a> {
    /// The TCP peer of the client connection.
    pub peer: SocketAddr,
    /// Whether the client connection is TLS (for `X-Forwarded-Proto`).
    pub tls: bool,
    /// Whether `peer` is in `server.trusted_proxies` (its `X-Forwarded-*` are kept/extended).
    pub trusted_peer: bool,
    /// The normalized path; the upstream receives exactly this (minus the prefix with
    /// `strip_prefix`), followed by the original query string.
    pub path: &'a str,
    /// The caller, for claim headers.
    pub identity: Option<&'a Identity>,
}

/// One route's upstream side: its config, client pool and upstream health.
pub struct RouteProxy {
    route: Arc<RouteConfig>,
}

impl RouteProxy {
    /// Builds the client and upstream set for a route (reads `upstream_ca` if set).
    pub fn new(route: Arc<RouteConfig>) -> Result<Self, ProxyError> {
        Ok(RouteProxy { route })
    }

    /// The route this proxies for.
    pub fn route(&self) -> &RouteConfig {
        &self.route
    }
}

/// Forwards a permitted request to one of the route's upstreams and streams the response back.
pub async fn forward(
    permit: Permit,
    route: &RouteProxy,
    ctx: ForwardContext<'_>,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let _ = (permit, route, ctx, req);
    Err(ProxyError::Upstream("not implemented".into()))
}

/// The client address policy should see: the peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let _ = (headers, trusted);
    peer
}
