//! The accept loop shared by the main and admin listeners: HTTP/1.1 and HTTP/2 (h2c prior
//! knowledge in plain text, ALPN `h2` over TLS) through hyper-util's auto builder, with
//! upgrades, limits on request heads, a bound on concurrent connections and graceful
//! shutdown. It knows nothing about routes or policy: it hands each request, tagged with its
//! [`ConnInfo`], to an axum `Router`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::balance::{Balance, Handoff};
use super::{http1, window_stall};
use crate::admin::names;
use crate::send_timeout::SendTimeout;

/// What a listener serves, swappable at run time (config reload): each request uses the
/// one current when it arrived.
pub type SharedRouter = Arc<arc_swap::ArcSwap<Dispatch>>;

/// A router, plus for the main listener the state its gateway serves: proxied requests (the
/// hot path) go straight to the gateway, skipping the router's matching, boxing and handler
/// adapters; `/.portcullis/` requests go through the router.
pub struct Dispatch {
    /// Every request when `gateway` is None; otherwise the reserved prefix only.
    pub router: Router,
    /// The gateway's state for the main listener.
    pub gateway: Option<Arc<super::AppState>>,
}

/// A [`SharedRouter`] for a listener that serves `router` only (the admin listener).
pub fn shared(router: Router) -> SharedRouter {
    Arc::new(arc_swap::ArcSwap::from_pointee(Dispatch {
        router,
        gateway: None,
    }))
}

/// The main listener's [`SharedRouter`]: the app's router and its gateway.
pub fn main_dispatch(state: Arc<super::AppState>) -> SharedRouter {
    Arc::new(arc_swap::ArcSwap::from_pointee(Dispatch {
        router: super::router(state.clone()),
        gateway: Some(state),
    }))
}

/// Serves one request: proxied requests (everything outside `/.portcullis/` on the main
/// listener) go straight to the gateway, the rest through the router.
pub(super) async fn dispatch(
    dispatch: &Dispatch,
    info: ConnInfo,
    mut req: Box<http::Request<Body>>,
) -> http::Response<Body> {
    // RFC 9112 3.2: an HTTP/1.1 request without Host, or any HTTP/1 request with more than
    // one, is answered 400: two hosts could route differently here and in front of us. So is
    // a Host with an invalid value (a space, userinfo, a path), which proxies and servers
    // around us may each read their own way.
    const INVALID_HOST: &str = "The request's Host header is not a valid host.";
    let valid = |host: &[u8]| crate::routes::is_host_field(host);
    if req.version() <= http::Version::HTTP_11 {
        let mut hosts = req.headers().get_all(http::header::HOST).iter();
        let (first, second) = (hosts.next(), hosts.next());
        if second.is_some() || (first.is_none() && req.version() == http::Version::HTTP_11) {
            return bad_host(&req, "The request needs exactly one Host header.");
        }
        if first.is_some_and(|host| !valid(host.as_bytes())) {
            return bad_host(&req, INVALID_HOST);
        }
    } else if req.uri().authority().is_none()
        && req
            .headers()
            .get(http::header::HOST)
            .is_some_and(|host| !valid(host.as_bytes()))
    {
        return bad_host(&req, INVALID_HOST);
    }
    // RFC 9112 3.2.2: with an absolute-form target the Host field is ignored and the target's
    // authority is the host (RFC 9113 8.3.1: `:authority` likewise). Routing, X-Forwarded-Host
    // and preserve_host all read Host, so it is made to agree here, once: a Host that
    // disagrees with the target must not choose the route.
    if let Some(authority) = req.uri().authority() {
        // It takes Host's place, so it must be a valid Host in turn (`http://user@app/` is
        // not), whether or not a Host field says the same.
        if !valid(authority.as_str().as_bytes()) {
            return bad_host(&req, INVALID_HOST);
        }
        if req.headers().get(http::header::HOST).map(|h| h.as_bytes())
            != Some(authority.as_str().as_bytes())
        {
            match http::HeaderValue::from_str(authority.as_str()) {
                Ok(host) => {
                    req.headers_mut().insert(http::header::HOST, host);
                }
                Err(_) => {
                    req.headers_mut().remove(http::header::HOST);
                }
            }
        }
    }
    let reserved = req.uri().path().starts_with("/.portcullis");
    match &dispatch.gateway {
        // Inline: the own HTTP/1 loop pins this future where it lives, once per connection,
        // so a request costs no allocation and no copy of the gateway's (large) future;
        // hyper's service boxes it instead (hyper moves service futures).
        Some(state) if !reserved => super::gateway::serve(state, info, req).await,
        _ => {
            req.extensions_mut().insert(info);
            match dispatch.router.clone().oneshot(*req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// The 400 for a request whose Host cannot be trusted to route it.
// Off the proxied path: kept out of line so the hot code packs tighter.
#[cold]
fn bad_host<B>(req: &http::Request<B>, message: &str) -> http::Response<Body> {
    let id = crate::ids::uuid_v7();
    tracing::debug!(request_id = %id, "{message}");
    let html = super::pages::wants_html(req.headers());
    super::pages::error_page(http::StatusCode::BAD_REQUEST, message, id, html)
}

/// Facts about the client connection a request arrived on, set as a request extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Limits applied to every client connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time allowed for the TLS handshake, the first byte and each request head.
    pub header_read_timeout: Duration,
    /// Bound on the request head, bytes (at least 8 KiB, hyper's minimum).
    pub max_header_bytes: usize,
    /// Bound on the number of request headers.
    pub max_headers: usize,
    /// A write to the client that makes no progress this long ends the connection.
    pub send_timeout: Duration,
    /// Concurrent connections; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` turns true, then drains connections for at
/// most `limits.shutdown_grace`. With `balance` (worker listeners), connections are evened
/// out across workers (see [`super::balance`]).
pub async fn serve(
    listener: TcpListener,
    router: SharedRouter,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    mut shutdown: watch::Receiver<bool>,
    balance: Option<(Balance, mpsc::UnboundedReceiver<Handoff>)>,
) {
    let builder = Arc::new(http_builder(
        &limits,
        crate::timer::current().unwrap_or_default(),
    ));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (balance, mut inbox) = match balance {
        Some((balance, inbox)) => (Some(balance), Some(inbox)),
        None => (None, None),
    };
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        // Decide inside the select, act outside it: the stop watch's guard must not be held
        // across an await.
        let next = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            handed = handoff(&mut inbox) => Next::Handed(handed),
            accepted = listener.accept() => Next::Accepted(accepted),
        };
        let (stream, peer, load) = match next {
            Next::Handed(handed) => {
                let Ok(stream) = TcpStream::from_std(handed.stream) else {
                    continue;
                };
                (stream, handed.peer, Some(handed.load))
            }
            Next::Accepted(Ok((stream, peer))) => match &balance {
                Some(balance) => match balance.place(stream, peer) {
                    Some((stream, load)) => (stream, peer, Some(load)),
                    // Another worker serves it.
                    None => continue,
                },
                None => (stream, peer, None),
            },
            Next::Accepted(Err(error)) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            builder: builder.clone(),
            router: router.clone(),
            tls: tls.clone(),
            limits,
            peer,
            stop: shutdown.clone(),
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            metrics::gauge!(names::OPEN_CONNECTIONS).increment(1.0);
            conn.run(stream, watcher).await;
            metrics::gauge!(names::OPEN_CONNECTIONS).decrement(1.0);
            drop(load);
            drop(permit);
        });
    }
    drop(listener);
    // hyper's connections are told to finish through `graceful`; the HTTP/1 loop's see the
    // stop watch themselves. Every connection holds a slot until it ends.
    let all_slots = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let drained = async {
        graceful.shutdown().await;
        let _ = slots.acquire_many(all_slots).await;
    };
    tokio::select! {
        _ = drained => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
}

/// What the accept loop got: a connection another worker handed over, or its own accept.
enum Next {
    Handed(Handoff),
    Accepted(std::io::Result<(TcpStream, SocketAddr)>),
}

/// The next connection another worker handed over; never, without an inbox.
async fn handoff(inbox: &mut Option<mpsc::UnboundedReceiver<Handoff>>) -> Handoff {
    match inbox {
        Some(inbox) => match inbox.recv().await {
            Some(handed) => handed,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// `timer`: the worker's coarse timer (head-read timeouts are armed per request; see
/// [`crate::timer`]).
fn http_builder(limits: &ConnLimits, timer: crate::timer::CoarseTimer) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(timer.clone())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(timer)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30));
    builder
}

struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: SharedRouter,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    peer: SocketAddr,
    /// Until hyper owns the connection, shutdown must be watched here: a client that has
    /// not sent its first byte would otherwise hold the drain up for the whole grace period.
    stop: watch::Receiver<bool>,
}

/// A client connection that is ready for HTTP; writes bounded by `server.send_timeout`.
enum ReadyIo {
    Plain(SendTimeout<TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<SendTimeout<TcpStream>>>),
}

impl Connection {
    async fn run(self, stream: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let mut stop = self.stop.clone();
        // Only the handshake races shutdown; once hyper owns the connection the graceful
        // watcher drains it.
        let ready = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return,
            ready = self.handshake(stream) => ready,
        };
        match ready {
            Some(ReadyIo::Plain(stream)) => self.serve_io(stream, false, true, watcher).await,
            Some(ReadyIo::Tls(stream)) => {
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                self.serve_io(stream, true, !h2, watcher).await
            }
            None => {}
        }
    }

    /// The TLS handshake, or for plain text the first byte, within the head timeout.
    async fn handshake(&self, stream: TcpStream) -> Option<ReadyIo> {
        let timeout = self.limits.header_read_timeout;
        let send_timeout = self.limits.send_timeout;
        match &self.tls {
            Some(acceptor) => match tokio::time::timeout(
                timeout,
                acceptor.accept(SendTimeout::new(stream, send_timeout)),
            )
            .await
            {
                Ok(Ok(tls_stream)) => Some(ReadyIo::Tls(Box::new(tls_stream))),
                Ok(Err(error)) => {
                    tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    None
                }
            },
            None => {
                // A client that connects and sends nothing would otherwise hold a slot
                // forever: hyper's head timeout starts only once protocol detection is done.
                let mut first = [0u8; 1];
                match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {
                        Some(ReadyIo::Plain(SendTimeout::new(stream, send_timeout)))
                    }
                    _ => None,
                }
            }
        }
    }

    /// Serves the connection: the common HTTP/1 requests in [`super::http1`]'s loop first
    /// (unless `http1_first` is false: ALPN chose h2), everything from the first other one on
    /// through hyper.
    async fn serve_io<I>(
        self,
        io: I,
        tls: bool,
        http1_first: bool,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let info = ConnInfo {
            peer: self.peer,
            tls,
        };
        if !http1_first {
            return self.serve_hyper(io, info, watcher).await;
        }
        match http1::serve(io, info, &self.router, &self.limits, &self.stop).await {
            http1::Ended::Closed => {}
            http1::Ended::Handover(io) => self.serve_hyper(io, info, watcher).await,
        }
    }

    /// Serves the rest of the connection through hyper-util's auto builder.
    async fn serve_hyper<I>(
        self,
        io: I,
        info: ConnInfo,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router;
        let send_timeout = self.limits.send_timeout;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let current = router.load_full();
            // HTTP/2 flow control can stall a response without blocking any write.
            let h2 = req.version() == http::Version::HTTP_2;
            async move {
                let response =
                    Box::pin(dispatch(&current, info, Box::new(req.map(Body::new)))).await;
                let response = match h2 {
                    true => response.map(|body| window_stall::watch(body, send_timeout)),
                    false => response,
                };
                Ok::<_, Infallible>(response)
            }
        });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        if let Err(error) = watcher.watch(conn.into_owned()).await {
            tracing::debug!(peer = %self.peer, error = %error, "connection ended with an error");
        }
    }
}
