//! The pooled HTTP client of one route: hyper-util's legacy client over hyper-rustls, with
//! rustls on the aws-lc-rs provider passed explicitly (no process-wide default needed). TLS
//! roots are the system's, or the route's `upstream_ca` bundle. It does not pick upstreams or
//! touch headers.
//!
//! HTTP/1.1 only towards upstreams for now (every request is sent as HTTP/1.1 whatever the
//! client spoke); h2 and h2c upstreams are later work. Pitfall 6: the pool drops idle
//! connections after 30 s, below common upstream keep-alives (nginx 75 s). An upstream with a
//! shorter one (Node's default is 5 s) may still close a pooled connection just as it is
//! reused; that surfaces as an upstream error, and only connect failures are retried.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::Uri;
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::net::TcpStream;

use super::ProxyError;
use super::body::GuardedBody;
use crate::config::RouteConfig;
use crate::secrets::SecretRef;
use crate::send_timeout::SendTimeout;

/// The client type every route uses.
pub(crate) type UpstreamClient = Client<HttpsConnector<StallConnector>, GuardedBody<Body>>;

/// hyper's TCP connector with every connection in a [`SendTimeout`] of the route's idle
/// timeout: an upstream that stops reading a request body fails the write instead of
/// holding the connection (and the client's body) forever.
#[derive(Clone)]
pub(crate) struct StallConnector {
    inner: HttpConnector,
    limit: Duration,
}

impl tower::Service<Uri> for StallConnector {
    type Response = TokioIo<SendTimeout<TcpStream>>;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            let io = connecting.await?;
            Ok(TokioIo::new(SendTimeout::new(io.into_inner(), limit)))
        })
    }
}

impl Connection for SendTimeout<TcpStream> {
    fn connected(&self) -> Connected {
        self.get_ref().connected()
    }
}

/// Idle pooled connections are closed after this (pitfall 6: stay below upstream keep-alive).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per upstream host.
const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// Builds the route's client. `needs_roots`: some upstream is https (system roots are loaded
/// only then, so a plain-http route works on a machine without a CA store).
pub(crate) fn build(route: &RouteConfig, needs_roots: bool) -> Result<UpstreamClient, ProxyError> {
    let tls = tls_config(route, needs_roots)?;
    let mut http = HttpConnector::new();
    // hyper-rustls decides between TLS and plain TCP by scheme; the inner connector must
    // accept https URIs too.
    http.enforce_http(false);
    http.set_nodelay(true);
    // TCP connect only; the TLS handshake is bounded by the response-head timeout.
    http.set_connect_timeout(Some(route.timeouts.connect));
    let stalls = StallConnector {
        inner: http,
        limit: route.timeouts.idle,
    };
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(stalls);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_config(route: &RouteConfig, needs_roots: bool) -> Result<ClientConfig, ProxyError> {
    let fail = |msg: String| ProxyError::Upstream(format!("route {}: {msg}", route.id));
    match &route.upstream_ca {
        Some(SecretRef::File(path)) => {
            let roots = roots_from_pem_file(path).map_err(fail)?;
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .map_err(|e| fail(format!("tls: {e}")))
        }
        Some(_) => Err(fail("upstream_ca must be a file: reference".into())),
        None if needs_roots => native_roots_config().map_err(fail),
        None => ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth()
            })
            .map_err(|e| fail(format!("tls: {e}"))),
    }
}

/// The system roots, loaded once per process: a config with many https routes (or a reload)
/// would otherwise parse the whole CA store each time. A CA store change needs a restart.
fn native_roots_config() -> Result<ClientConfig, String> {
    static NATIVE: OnceLock<Result<ClientConfig, String>> = OnceLock::new();
    NATIVE
        .get_or_init(|| {
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .with_native_roots()
                .map(|b| b.with_no_client_auth())
                .map_err(|e| format!("system TLS roots: {e}"))
        })
        .clone()
}

/// Reads a PEM bundle synchronously (construction is sync and happens at load/reload time).
fn roots_from_pem_file(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("upstream_ca {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("upstream_ca {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("upstream_ca {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "upstream_ca {}: no certificate found",
            path.display()
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn reads_an_upstream_ca_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, format!("{}{}", self_signed_pem(), self_signed_pem())).unwrap();
        assert_eq!(roots_from_pem_file(&path).unwrap().len(), 2);
    }

    #[test]
    fn refuses_a_missing_or_empty_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        assert!(roots_from_pem_file(&path).is_err());
        std::fs::write(&path, "not pem").unwrap();
        assert!(
            roots_from_pem_file(&path)
                .unwrap_err()
                .contains("no certificate")
        );
    }
}
