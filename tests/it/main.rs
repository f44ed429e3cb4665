//! Integration tests: one binary, real sockets on 127.0.0.1, portcullis started in-process
//! (or as the real binary where a test measures the process itself).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The allocator the `portcullis` binary runs with, so in-process servers and the measured
// tests (`audit_throughput`) behave as in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;

mod admin;
mod audit;
mod audit_faults;
mod audit_page;
mod bearer;
mod browser;
mod chromium;
mod cli;
mod errors;
mod h2;
mod headers;
mod http1;
mod limits;
mod mock_provider;
mod oidc;
mod oidc_login;
mod oidc_provider;
mod oidc_provider_selftest;
mod oidc_real;
mod process;
mod reload;
mod sessions;
mod shutdown;
mod streaming;
mod upstreams;
mod websocket;
