//! Shared test support: start portcullis in-process from TOML, start upstreams, make clients.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use portcullis::app::{self, Running};
use tokio::net::TcpListener;

pub type UpstreamBody = BoxBody<Bytes, std::io::Error>;

/// Installs the process-wide rustls provider once (reqwest and rcgen need one).
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A running portcullis.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    running: Running,
    _data: tempfile::TempDir,
}

impl Proxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Starts portcullis from config text (listen/admin default to ephemeral ports when the text
/// has no `[server]` section: pass a full config to control them).
pub async fn start_proxy(toml: &str) -> Proxy {
    init();
    let text = if toml.contains("[server]") {
        toml.to_owned()
    } else {
        format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{toml}"
        )
    };
    // Generated files (the assertion key) go to a temp dir, not the crate directory.
    let data = tempfile::tempdir().unwrap();
    let env = vec![(
        "PORTCULLIS__SERVER__DATA_DIR".to_owned(),
        format!("\"{}\"", data.path().display()),
    )];
    let config = portcullis::config::load_str(&text, env)
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{text}"));
    let running = app::start(config).await.expect("start portcullis");
    Proxy {
        addr: running.addr,
        admin: running.admin_addr,
        running,
        _data: data,
    }
}

/// A public route to `upstream` with extra route keys.
pub fn public_route(id: &str, path: &str, upstreams: &[String], extra: &str) -> String {
    let list = upstreams
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[[routes]]\nid = \"{id}\"\npath = \"{path}\"\nupstream = [{list}]\nauth = [\"none\"]\n{extra}\n[routes.policy]\nallow = [{{ public = true }}]\n"
    )
}

/// An upstream that reads each request body to its end: 200 `read all`, or 400 `cut` when the
/// body fails on the way (what a proxy cut off mid-body looks like from behind it).
pub async fn body_reading_upstream() -> String {
    upstream(|req| async move {
        use http_body_util::BodyExt;
        match req.into_body().collect().await {
            Ok(_) => text(200, "read all"),
            Err(_) => text(400, "cut"),
        }
    })
    .await
}

/// The demo's echo upstream on an ephemeral port; returns its base URL.
pub async fn echo_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(portcullis::demo::echo_upstream(listener, false));
    format!("http://{addr}")
}

/// Size of each chunk [`large_body_upstream`] sends.
pub const LARGE_CHUNK: usize = 64 * 1024;
/// Chunks [`large_body_upstream`] sends: 64 MiB in all, far more than the socket buffers
/// between any two of the test's parties hold.
pub const LARGE_CHUNKS: usize = 1024;

/// An upstream answering every request with a 64 MiB body (with its `Content-Length`),
/// streamed. `released`, when given, is set once a response body is dropped: finished, or
/// given up because the proxy went away.
pub async fn large_body_upstream(
    released: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> String {
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    /// Sets its flag when dropped.
    struct DropFlag(Option<std::sync::Arc<std::sync::atomic::AtomicBool>>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            if let Some(flag) = &self.0 {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
    upstream(move |_| {
        let guard = DropFlag(released.clone());
        async move {
            let chunk = Bytes::from(vec![b'd'; LARGE_CHUNK]);
            let stream = futures_util::stream::iter(0..LARGE_CHUNKS).map(move |_| {
                let _held = &guard;
                Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert("content-length", (LARGE_CHUNK * LARGE_CHUNKS).into());
            response
        }
    })
    .await
}

/// An upstream served by `handler`; returns its base URL.
pub async fn upstream<F, Fut>(handler: F) -> String
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<UpstreamBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// A text response for upstream handlers.
pub fn text(status: u16, body: impl Into<Bytes>) -> Response<UpstreamBody> {
    use http_body_util::BodyExt;
    let body = http_body_util::Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
}

/// An address nothing listens on.
pub async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A plain HTTP client that follows no redirects and ignores proxy env vars.
pub fn client() -> reqwest::Client {
    init();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The echo upstream's JSON for a request through the proxy.
pub async fn echo_json(response: reqwest::Response) -> serde_json::Value {
    assert_eq!(
        response.status(),
        200,
        "expected 200 from the echo upstream"
    );
    response.json().await.unwrap()
}

/// Sends raw bytes on a fresh connection and returns everything the server answered until it
/// closed (or `wait` passed).
pub async fn raw_request(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Every value of the `name` field, in order, as text (one entry per field line).
pub fn field_values(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The status code of a raw HTTP/1.1 answer (0 when there is none).
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A free port on 127.0.0.1 (for the real binary, which needs its port in its config).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `portcullis` binary, killed when dropped.
pub struct Binary(pub std::process::Child);

impl Binary {
    /// Starts the binary with `args` and waits until `port` accepts connections.
    pub async fn spawn(args: &[&str], port: u16) -> Binary {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let binary = Binary(child);
        wait_for_port(port).await;
        binary
    }
}

/// Waits (at most 20 s) until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16) {
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "portcullis did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
