//! [`forward`] against real upstreams on 127.0.0.1: what the upstream sees, streaming,
//! retries, timeouts, body limits, ejection, upgrades and TLS with a route CA.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use url::Url;
use uuid::Uuid;

use crate::config::{ClaimHeader, EjectPolicy, RouteConfig, RouteTimeouts};
use crate::identity::{AuthMethod, Identity};
use crate::policy::{Decision, Outcome, Permit, RoutePolicy};
use crate::proxy::{ForwardContext, ProxyError, RouteProxy, ServedBy, forward};

const DECISION: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00aa);

fn route(upstreams: &[String]) -> RouteConfig {
    RouteConfig {
        id: "test-route".into(),
        host: None,
        path: "/".into(),
        methods: None,
        upstreams: upstreams.iter().map(|u| Url::parse(u).unwrap()).collect(),
        auth: vec![AuthMethod::Session],
        headers: vec![],
        audience: "test-route".into(),
        policy: RoutePolicy::default(),
        preserve_host: false,
        strip_prefix: false,
        pass_authorization: false,
        timeouts: RouteTimeouts {
            connect: Duration::from_secs(2),
            response_header: Duration::from_secs(5),
            idle: Duration::from_secs(5),
        },
        max_body: Some(10 * 1024 * 1024),
        retries: 1,
        eject: EjectPolicy {
            failures: 3,
            duration: Duration::from_secs(30),
        },
        upstream_ca: None,
    }
}

fn proxy(cfg: RouteConfig) -> RouteProxy {
    RouteProxy::new(Arc::new(cfg)).unwrap()
}

fn permit() -> Permit {
    Decision {
        id: DECISION,
        outcome: Outcome::Allow,
        rule: None,
        reasons: vec![],
    }
    .permit()
    .unwrap()
}

fn ctx<'a>(path: &'a str, identity: Option<&'a Identity>) -> ForwardContext<'a> {
    ForwardContext {
        peer: "192.0.2.10:51234".parse().unwrap(),
        tls: true,
        trusted_peer: false,
        path,
        identity,
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header("host", "app.corp.example")
        .body(Body::empty())
        .unwrap()
}

/// What an upstream saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body_len: usize,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `handler` on 127.0.0.1 (HTTP/1.1 with upgrades) until the test ends.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// An upstream that reads the whole body chunk by chunk (counting, not keeping it), logs the
/// request and answers 200 with the byte count.
async fn recording_upstream() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let (parts, mut body) = req.into_parts();
            let mut body_len = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    body_len += data.len();
                }
            }
            seen.lock().unwrap().push(Seen {
                method: parts.method,
                uri: parts.uri,
                version: parts.version,
                headers: parts.headers,
                body_len,
            });
            Response::builder()
                .header("connection", "x-hop")
                .header("x-hop", "secret")
                .header("x-upstream", "yes")
                .body(Body::from(body_len.to_string()))
                .unwrap()
        }
    })
    .await;
    (addr, log)
}

async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn body_text(resp: Response<Body>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

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

/// An upstream that switches to a byte echo after a 101.
async fn echo_upgrade_upstream() -> SocketAddr {
    serve(|mut req: Request<Incoming>| async move {
        let asked = req.headers().get("upgrade").cloned();
        let connection = req.headers().get("connection").cloned();
        if asked.as_ref().is_none_or(|v| v != "echo") || connection.is_none_or(|v| v != "upgrade") {
            return Response::builder().status(400).body(Body::empty()).unwrap();
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => io.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Body::empty())
            .unwrap()
    })
    .await
}

/// A front listener that runs [`forward`] the way the app's gateway will.
async fn front(proxy: Arc<RouteProxy>) -> SocketAddr {
    serve(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        async move {
            let path = req.uri().path().to_owned();
            match forward(permit(), &proxy, ctx(&path, None), req.map(Body::new)).await {
                Ok(resp) => resp,
                Err(e) => Response::builder()
                    .status(e.status())
                    .body(Body::empty())
                    .unwrap(),
            }
        }
    })
    .await
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "connection closed mid-head"
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn an_upgrade_is_tunnelled_both_ways() {
    let upstream = echo_upgrade_upstream().await;
    let front = front(Arc::new(proxy(route(&[format!("http://{upstream}")])))).await;
    let mut stream = TcpStream::connect(front).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for message in [&b"ping"[..], b"a longer second message"] {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    }
}

#[tokio::test]
async fn a_plain_request_to_an_upgrade_upstream_is_not_switched() {
    let upstream = echo_upgrade_upstream().await;
    let front = front(Arc::new(proxy(route(&[format!("http://{upstream}")])))).await;
    let mut stream = TcpStream::connect(front).await.unwrap();
    // Upgrade without `Connection: upgrade` is hop-by-hop noise and is dropped.
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
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
