//! portcullis: an identity-aware access proxy.
//!
//! One request flows through the modules in this order:
//! accept ([`app`]) -> normalize the path and pick a route ([`routes`]) -> find out who is
//! calling ([`identity`]) -> decide ([`policy`]) -> forward with a [`policy::Permit`] ([`proxy`]).
//!
//! Module map:
//! - [`cli`]: the command line (`serve`, `check`, `demo`, `audit query|verify`); parses
//!   arguments and calls in here.
//! - [`config`]: TOML file types and the validated runtime config of typed values; every error
//!   with its key path. Imports neither axum nor any database crate.
//! - [`secrets`]: secret references (`env:`, `file:`, `aws-sm:`) and the `Secret` newtype that
//!   never prints its value.
//! - [`routes`]: path normalization and the route table (selection by specificity).
//! - [`identity`]: who the caller is: the `Identity` value every policy criterion reads, and
//!   its sources: the OIDC relying party (`oidc`), bearer validation (`bearer`) over discovery
//!   and a JWKS cache, and the signed assertion sent upstream (`assertion`).
//! - [`policy`]: rules as data and the pure `evaluate` function; the only maker of `Permit`s.
//! - [`session`]: server-side browser sessions (memory, SQLite, Postgres or Redis store): the
//!   cookie holds only the id; idle and absolute timeouts, back-channel logout, login state.
//! - [`proxy`]: the upstream side: own HTTP/1.1 client and hyper's pooled client, header
//!   rewriting, streaming, upgrades, load balancing with passive ejection, timeouts.
//! - [`app`]: the listeners (plain, TLS, h2c; one event loop per core; an own HTTP/1 loop for
//!   the common bodiless request, hyper for everything else), connection limits,
//!   graceful shutdown, config reload, the router (login, logout, forward-auth, audit page)
//!   and the gateway handler that ties routes, identity, policy, audit and proxy together.
//! - [`audit`]: the audit trail: redacted events, per-instance hash chains, the batching
//!   writer with its spool, SQLite and Postgres stores, verify, query.
//! - [`admin`]: the admin listener: `/healthz`, `/readyz`, `/metrics`.
//! - [`request_metrics`]: the request counter and latency histogram, per-thread shards summed
//!   by `/metrics`.
//! - [`ids`]: UUIDv7s from a per-thread context (no process-wide lock per id).
//! - [`telemetry`]: tracing setup (human or JSON logs).
//! - [`timer`]: coarse per-worker timers for the per-request timeouts (no syscall to arm).
//! - [`send_timeout`]: a socket wrapper whose writes fail when the peer stops reading (client
//!   connections: `server.send_timeout`; upstream connections: the route's `idle_timeout`).
//! - [`demo`]: `portcullis demo`: embedded config, a built-in echo upstream and a
//!   development OpenID provider (never reachable from `serve`).

pub mod admin;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod demo;
pub mod identity;
pub mod ids;
pub mod policy;
pub mod proxy;
pub mod request_metrics;
pub mod routes;
pub mod secrets;
pub mod send_timeout;
pub mod session;
pub mod telemetry;
pub mod timer;
