//! The admin listener (`server.admin_listen`, loopback by default): `/healthz` (the process
//! is up), `/readyz` (the main listener serves and, with `[audit]`, the audit store is writable) and
//! `/metrics` (Prometheus text). It never serves user traffic and has no authentication, so it
//! must not be exposed beyond the host or a private network.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Metric names, in one place so dashboards and code agree.
pub mod names {
    /// Counter: requests by `route`, `decision` and `status` (kept by
    /// [`crate::request_metrics`]).
    pub const REQUESTS: &str = "portcullis_requests_total";
    /// Histogram (seconds): request latency by `route` (kept by [`crate::request_metrics`]).
    pub const LATENCY: &str = "portcullis_request_duration_seconds";
    /// Counter: upstream failures by `route` and `kind` (connect, timeout, upstream, body).
    pub const UPSTREAM_ERRORS: &str = "portcullis_upstream_errors_total";
    /// Gauge: open client connections.
    pub const OPEN_CONNECTIONS: &str = "portcullis_open_connections";
}

/// Readiness, flipped by the app once its listener serves.
#[derive(Debug, Default)]
pub struct Readiness {
    listener: AtomicBool,
    audit: OnceLock<Arc<AtomicBool>>,
}

impl Readiness {
    /// Marks the main listener as serving.
    pub fn set_listening(&self) {
        self.listener.store(true, Ordering::Release);
    }

    /// Makes readiness also require this flag (the audit store is writable).
    pub fn watch_audit(&self, writable: Arc<AtomicBool>) {
        let _ = self.audit.set(writable);
    }

    /// Whether every dependency is ready.
    pub fn is_ready(&self) -> bool {
        self.listener.load(Ordering::Acquire)
            && self
                .audit
                .get()
                .is_none_or(|writable| writable.load(Ordering::Acquire))
    }
}

/// The process-wide Prometheus recorder, installed on first use. Returns None when another
/// recorder was installed first (then `/metrics` answers 503).
pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // The request counter and latency histogram are not the recorder's: see
            // `crate::request_metrics`.
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Upkeep folds the raw samples of any histogram recorded through `metrics` into
            // buckets (the request latency is kept by `crate::request_metrics` instead).
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The admin router; tests call it with `oneshot`.
pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics() -> impl IntoResponse {
    match metrics_handle() {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render() + &crate::request_metrics::render(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "metrics recorder unavailable\n".to_string(),
        ),
    }
}
