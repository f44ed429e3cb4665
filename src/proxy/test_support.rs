//! Shared test support for the proxy's socket tests: a route constructor, a permit, tiny
//! hyper upstreams on 127.0.0.1 and a front listener that runs `forward` like the gateway.
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use url::Url;
use uuid::Uuid;

use crate::config::{EjectPolicy, RouteConfig, RouteTimeouts};
use crate::identity::{AuthMethod, Identity};
use crate::policy::{Decision, Outcome, Permit, RoutePolicy};
use crate::proxy::{ForwardContext, RouteProxy};

pub(crate) const DECISION: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00aa);

pub(crate) fn route(upstreams: &[String]) -> RouteConfig {
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
        rewrite_redirects: true,
        case_insensitive_paths: false,
        pass_authorization: false,
        bearer_query_param: None,
        pass_access_token: false,
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
        providers: Vec::new(),
    }
}

pub(crate) fn proxy(cfg: RouteConfig) -> RouteProxy {
    RouteProxy::new(Arc::new(cfg)).unwrap()
}

pub(crate) fn permit() -> Permit {
    Decision {
        id: DECISION,
        outcome: Outcome::Allow,
        rule: None,
        reasons: vec![],
    }
    .permit()
    .unwrap()
}

pub(crate) fn ctx<'a>(path: &'a str, identity: Option<&'a Identity>) -> ForwardContext<'a> {
    ForwardContext {
        peer: "192.0.2.10:51234".parse().unwrap(),
        tls: true,
        trusted_peer: false,
        client_ip: "192.0.2.10".parse().unwrap(),
        path,
        identity,
        assertion: None,
        access_token: None,
    }
}

pub(crate) fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header("host", "app.corp.example")
        .body(Body::empty())
        .unwrap()
}

/// What an upstream saw of one request.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body_len: usize,
}

pub(crate) type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `handler` on 127.0.0.1 (HTTP/1.1 with upgrades) until the test ends.
pub(crate) async fn serve<F, Fut>(handler: F) -> SocketAddr
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
pub(crate) async fn recording_upstream() -> (SocketAddr, Log) {
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

pub(crate) async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub(crate) async fn body_text(resp: Response<Body>) -> String {
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
