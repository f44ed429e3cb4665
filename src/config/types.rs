//! The validated runtime configuration: typed values only (addresses, URLs, durations,
//! networks, secret references), never strings to be parsed again later. Built from the file
//! types by [`super::load`]; everything else in portcullis reads these.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use ipnet::IpNet;
use url::Url;

use crate::identity::AuthMethod;
use crate::policy::RoutePolicy;
use crate::routes::HostPattern;
use crate::secrets::SecretRef;

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[routes]]`, in file order (selection never depends on it).
    pub routes: Vec<RouteConfig>,
    /// `[[providers]]`: OpenID providers for browser login, in file order.
    pub providers: Vec<super::ProviderConfig>,
    /// `[session]`: where browser sessions live, the cookie, the timeouts.
    pub session: super::SessionConfig,
    /// `[audit]`; None = no audit trail (and no cost).
    pub audit: Option<super::AuditConfig>,
    /// `[[token_issuers]]`: who may sign bearer tokens.
    pub token_issuers: Vec<super::TokenIssuerConfig>,
    /// `[assertion]`: the key that signs the assertion sent upstream.
    pub assertion: super::AssertionConfig,
}

/// `[server]`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `listen`: main listener address. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `public_url`: the origin users reach portcullis at. Default `http://` + listen.
    pub public_url: Url,
    /// `admin_listen`: `/healthz`, `/readyz`, `/metrics`. Default `127.0.0.1:9090`;
    /// `admin_listen = "off"` disables it (None).
    pub admin_listen: Option<SocketAddr>,
    /// `tls`: terminate TLS on the main listener.
    pub tls: Option<TlsConfig>,
    /// `trusted_proxies`: peers whose `X-Forwarded-*` headers are believed. Default empty.
    pub trusted_proxies: Vec<IpNet>,
    /// `allowed_redirect_hosts`: hosts a post-login `rd` may point at besides our own origin.
    pub allowed_redirect_hosts: Vec<String>,
    /// `header_read_timeout`: a client must send its whole request head within this.
    /// Default 10s.
    pub header_read_timeout: Duration,
    /// `max_header_bytes`: bound on the request head. Default 64 KiB.
    pub max_header_bytes: usize,
    /// `send_timeout`: a write to a client that makes no progress this long (the client
    /// stopped reading) ends the connection. Default 60s, like nginx's `send_timeout`.
    pub send_timeout: Duration,
    /// `max_headers`: bound on the number of request headers. Default 100.
    pub max_headers: usize,
    /// `max_connections`: concurrent client connections; more wait in the accept queue.
    /// Default 10000.
    pub max_connections: usize,
    /// `workers`: serving threads, each with its own runtime and listener. None (the
    /// default, or `0`) means one per core.
    pub workers: Option<usize>,
    /// `shutdown_grace`: how long SIGTERM waits for in-flight requests. Default 8s.
    pub shutdown_grace: Duration,
    /// `data_dir`: where portcullis keeps files it generates (the assertion signing key).
    /// Default `data`, relative to the working directory.
    pub data_dir: std::path::PathBuf,
}

/// `[server.tls]`: certificate chain and private key, PEM.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// `cert`: PEM certificate chain (secret reference, usually `file:`).
    pub cert: SecretRef,
    /// `key`: PEM private key (secret reference).
    pub key: SecretRef,
}

/// Claim headers a route may ask for (`headers = ["user", "email", "groups"]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimHeader {
    /// `X-Portcullis-User`: the subject.
    User,
    /// `X-Portcullis-Email`.
    Email,
    /// `X-Portcullis-Groups`: comma-separated.
    Groups,
}

/// One `[[routes]]` entry, validated.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// `id`: unique, `[a-z0-9_-]+`. Audit, metrics and the assertion's default audience use it.
    pub id: Arc<str>,
    /// `host`: exact (`app.corp.example`) or wildcard (`*.corp.example`); None = any host.
    pub host: Option<HostPattern>,
    /// `path`: normalized prefix starting with `/`. Default `/`.
    pub path: String,
    /// `methods`: None = any method.
    pub methods: Option<Vec<Method>>,
    /// `upstream`: one or more `http(s)://host[:port][/base]` URLs, round robin.
    pub upstreams: Vec<Url>,
    /// `auth`: how identity may be presented. Default `["session", "bearer"]`.
    pub auth: Vec<AuthMethod>,
    /// `headers`: claim headers sent upstream.
    pub headers: Vec<ClaimHeader>,
    /// `audience`: the assertion's `aud`. Default the route id.
    pub audience: String,
    /// `[routes.policy]`, with `accepts` = `auth`.
    pub policy: RoutePolicy,
    /// `preserve_host`: send the client's Host upstream instead of the upstream's.
    pub preserve_host: bool,
    /// `strip_prefix`: remove the route's path prefix before forwarding.
    pub strip_prefix: bool,
    /// `rewrite_redirects`: a `Location` naming the upstream itself is rewritten to the path
    /// the client would use (nginx's `proxy_redirect default`). Default true.
    pub rewrite_redirects: bool,
    /// `case_insensitive_paths`: the route's prefix and its policy's `paths` compare ASCII
    /// case-insensitively (for upstreams that do: IIS, ASP.NET). The policy's patterns are
    /// stored lowercased; the caller lowercases the path it evaluates. Default false.
    pub case_insensitive_paths: bool,
    /// `pass_authorization`: forward the caller's `Authorization` header.
    pub pass_authorization: bool,
    /// `bearer_query_param`: a query parameter this route also reads bearer tokens from
    /// (opt-in, for clients that cannot set headers, e.g. WebSocket in browsers). Default none.
    pub bearer_query_param: Option<String>,
    /// `pass_access_token`: send a session user's provider access token upstream as
    /// `Authorization: Bearer`.
    pub pass_access_token: bool,
    /// Timeouts towards the upstream.
    pub timeouts: RouteTimeouts,
    /// `max_body`: request body limit in bytes (413 past it). Default 10 MiB; `"0"`/none =
    /// unlimited is spelled `max_body = "unlimited"`.
    pub max_body: Option<u64>,
    /// `retries`: extra attempts on another upstream after a connect failure, idempotent
    /// methods with empty bodies only. Default 1.
    pub retries: u32,
    /// Passive ejection of failing upstreams.
    pub eject: EjectPolicy,
    /// `upstream_ca`: PEM CA bundle for https upstreams instead of the system roots.
    pub upstream_ca: Option<SecretRef>,
    /// `providers`: provider ids whose logins this route accepts; empty = every provider.
    pub providers: Vec<String>,
}

impl RouteConfig {
    /// The request path as this route's policy compares it: lowercased (ASCII) with
    /// `case_insensitive_paths`, whose patterns are stored lowercased; otherwise as is.
    pub fn policy_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if self.case_insensitive_paths && path.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(path.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(path)
        }
    }
}

/// Per-route upstream timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// `connect_timeout`: TCP (+TLS) connect. Default 5s.
    pub connect: Duration,
    /// `response_timeout`: from sending the request to the response head. Default 30s.
    pub response_header: Duration,
    /// `idle_timeout`: longest pause between body chunks, either direction. Default 60s.
    pub idle: Duration,
}

/// Passive health: after `failures` consecutive failures (connect error, timeout, 502/503/504)
/// an upstream is skipped for `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EjectPolicy {
    /// `eject_after`: consecutive failures. Default 3.
    pub failures: u32,
    /// `eject_for`: how long it is skipped. Default 30s.
    pub duration: Duration,
}
