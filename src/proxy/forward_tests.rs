//! [`forward`] against real upstreams on 127.0.0.1: what the upstream sees, streaming,
//! retries, timeouts, body limits, ejection and TLS with a route CA.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::ClaimHeader;
use crate::identity::Identity;
use crate::proxy::{ProxyError, RouteProxy, ServedBy, forward};

use crate::proxy::test_support::*;

#[tokio::test]
async fn forwards_a_get_with_the_upstream_view_rewritten() {
    let (addr, log) = recording_upstream().await;
    let mut cfg = route(&[format!("http://{addr}/base/")]);
    cfg.path = "/api/".into();
    cfg.strip_prefix = true;
    cfg.headers = vec![ClaimHeader::User, ClaimHeader::Groups];
    let proxy = proxy(cfg);
    let alice = Identity {
        subject: "alice".into(),
        groups: vec!["eng".into(), "ops".into()],
        ..Identity::default()
    };
    let mut req = get("/api/items?q=a%2Fb&x=%20");
    let h = req.headers_mut();
    h.insert("x-portcullis-user", "root".parse().unwrap());
    h.insert("x_forwarded_user", "root".parse().unwrap());
    h.insert("authorization", "Bearer secret".parse().unwrap());
    h.insert("connection", "x-forwarded-for, x-drop".parse().unwrap());
    h.insert("x-drop", "1".parse().unwrap());
    h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
    *req.version_mut() = Version::HTTP_2;

    let resp = forward(permit(), &proxy, ctx("/api/items", Some(&alice)), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-upstream"], "yes");
    assert!(!resp.headers().contains_key("x-hop"));
    assert!(!resp.headers().contains_key("connection"));
    assert_eq!(
        &*resp.extensions().get::<ServedBy>().unwrap().0,
        format!("http://{addr}/base/")
    );
    assert_eq!(body_text(resp).await, "0");

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, Method::GET);
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.uri.to_string(), "/base/items?q=a%2Fb&x=%20");
    let h = &seen.headers;
    assert_eq!(h["host"], addr.to_string().as_str());
    assert_eq!(h["x-forwarded-for"], "192.0.2.10");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "app.corp.example");
    assert_eq!(h["x-portcullis-decision-id"], DECISION.to_string().as_str());
    assert_eq!(h["x-portcullis-user"], "alice");
    assert_eq!(h["x-portcullis-groups"], "eng,ops");
    for absent in ["authorization", "x_forwarded_user", "x-drop", "connection"] {
        assert!(!h.contains_key(absent), "{absent} reached the upstream");
    }
}

#[tokio::test]
async fn streams_a_large_post_without_collecting_it() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 800; // 50 MiB
    let (addr, log) = recording_upstream().await;
    let mut cfg = route(&[format!("http://{addr}")]);
    cfg.max_body = None;
    let proxy = proxy(cfg);
    let chunk = Bytes::from(vec![b'z'; CHUNK]);
    let stream =
        futures_util::stream::iter(0..CHUNKS).map(move |_| Ok::<_, Infallible>(chunk.clone()));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/upload")
        .body(Body::from_stream(stream))
        .unwrap();
    let resp = forward(permit(), &proxy, ctx("/upload", None), req)
        .await
        .unwrap();
    assert_eq!(body_text(resp).await, (CHUNK * CHUNKS).to_string());
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.body_len, CHUNK * CHUNKS);
    assert_eq!(seen.headers["transfer-encoding"], "chunked");
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_the_next_upstream() {
    let dead = closed_port().await;
    let (addr, log) = recording_upstream().await;
    let proxy = proxy(route(&[format!("http://{dead}"), format!("http://{addr}")]));
    let resp = forward(permit(), &proxy, ctx("/", None), get("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(log.lock().unwrap().len(), 1);
    // The retry carried the second upstream's Host.
    assert_eq!(
        log.lock().unwrap()[0].headers["host"],
        addr.to_string().as_str()
    );
}

#[tokio::test]
async fn no_retry_without_retries_or_for_a_post_with_a_body() {
    let dead = closed_port().await;
    let (addr, log) = recording_upstream().await;
    let upstreams = [format!("http://{dead}"), format!("http://{addr}")];

    let mut cfg = route(&upstreams);
    cfg.retries = 0;
    let err = forward(permit(), &proxy(cfg), ctx("/", None), get("/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::Connect(_)), "{err:?}");
    assert!(err.to_string().contains(&dead.to_string()));

    let post = Request::builder()
        .method(Method::POST)
        .uri("/p?token=hunter2")
        .body(Body::from("data"))
        .unwrap();
    let err = forward(permit(), &proxy(route(&upstreams)), ctx("/p", None), post)
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::Connect(_)), "{err:?}");
    // Error text names the upstream, never the request's path or query.
    assert!(!err.to_string().contains("hunter2"));
    assert_eq!(log.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn connect_failures_eject_the_upstream() {
    let dead = closed_port().await;
    let (addr, log) = recording_upstream().await;
    let mut cfg = route(&[format!("http://{dead}"), format!("http://{addr}")]);
    cfg.retries = 0;
    cfg.eject.failures = 1;
    let proxy = proxy(cfg);
    // First pick is the dead upstream: fails and is ejected.
    let err = forward(permit(), &proxy, ctx("/", None), get("/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::Connect(_)));
    for _ in 0..4 {
        let resp = forward(permit(), &proxy, ctx("/", None), get("/"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(log.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn gateway_errors_from_the_upstream_count_as_failures() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let failing = serve(move |_req| {
        counter.fetch_add(1, Ordering::Relaxed);
        async {
            Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(Body::empty())
                .unwrap()
        }
    })
    .await;
    let (healthy, _log) = recording_upstream().await;
    let mut cfg = route(&[format!("http://{failing}"), format!("http://{healthy}")]);
    cfg.eject.failures = 2;
    let proxy = proxy(cfg);
    let mut statuses = vec![];
    for _ in 0..8 {
        let resp = forward(permit(), &proxy, ctx("/", None), get("/"))
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    // The 503s are passed through as they are, until the upstream is ejected.
    assert_eq!(statuses, [503, 200, 503, 200, 200, 200, 200, 200]);
    assert_eq!(hits.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_slow_upstream_times_out() {
    let slow = serve(|_req| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Response::new(Body::empty())
    })
    .await;
    let mut cfg = route(&[format!("http://{slow}")]);
    cfg.timeouts.response_header = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let err = forward(permit(), &proxy(cfg), ctx("/", None), get("/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_stalled_response_body_hits_the_idle_timeout() {
    let stalled = serve(|_req| async {
        let stream =
            futures_util::stream::once(async { Ok::<_, Infallible>(Bytes::from("first")) })
                .chain(futures_util::stream::pending());
        Response::new(Body::from_stream(stream))
    })
    .await;
    let mut cfg = route(&[format!("http://{stalled}")]);
    cfg.timeouts.idle = Duration::from_millis(200);
    let resp = forward(permit(), &proxy(cfg), ctx("/", None), get("/"))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
    let err = body.frame().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("idle"), "{err}");
}

#[tokio::test]
async fn content_length_over_max_body_never_reaches_the_upstream() {
    let (addr, log) = recording_upstream().await;
    let mut cfg = route(&[format!("http://{addr}")]);
    cfg.max_body = Some(10);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header("content-length", "11")
        .body(Body::from("01234567890"))
        .unwrap();
    let err = forward(permit(), &proxy(cfg), ctx("/", None), req)
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::BodyTooLarge), "{err:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_streamed_body_over_max_body_fails_mid_stream() {
    let (addr, log) = recording_upstream().await;
    let mut cfg = route(&[format!("http://{addr}")]);
    cfg.max_body = Some(100_000);
    let stream = futures_util::stream::iter(0..100)
        .map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'a'; 10_000])));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/")
        .body(Body::from_stream(stream))
        .unwrap();
    let err = forward(permit(), &proxy(cfg), ctx("/", None), req)
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::BodyTooLarge), "{err:?}");
    // The upstream never got a complete request.
    assert!(log.lock().unwrap().is_empty());
}

/// An https upstream with a fresh self-signed certificate for `localhost`; returns its port
/// and the certificate as PEM.
async fn tls_upstream() -> (u16, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = certified.cert.pem();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let host = req.headers()["host"].to_str().unwrap().to_owned();
                    Ok::<_, Infallible>(Response::new(Body::from(host)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn https_upstream_with_the_route_ca() {
    let (port, pem) = tls_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let mut cfg = route(&[format!("https://localhost:{port}")]);
    cfg.upstream_ca = Some(crate::secrets::SecretRef::File(ca));
    let resp = forward(permit(), &proxy(cfg), ctx("/", None), get("/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_text(resp).await, format!("localhost:{port}"));
}

#[tokio::test]
async fn https_upstream_with_an_unknown_ca_is_refused() {
    let (port, _pem) = tls_upstream().await;
    let mut cfg = route(&[format!("https://localhost:{port}")]);
    cfg.retries = 0;
    let err = forward(permit(), &proxy(cfg), ctx("/", None), get("/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ProxyError::Connect(_)), "{err:?}");
}

#[test]
fn upstream_ca_must_be_a_file_reference() {
    let mut cfg = route(&["https://localhost:1".into()]);
    cfg.upstream_ca = Some(crate::secrets::SecretRef::Env("CA".into()));
    let err = RouteProxy::new(Arc::new(cfg)).unwrap_err();
    assert!(err.to_string().contains("file:"), "{err}");
}
