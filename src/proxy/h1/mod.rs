//! portcullis's own HTTP/1.1 client for the common exchange: a plain-http upstream, a request
//! without a body and without an upgrade. It writes the request head straight to a pooled
//! connection and reads the response on the request's own task, so an exchange costs no
//! connection task, no channel hand-off and no per-request spawn (what hyper's pooled client
//! spends per request). Everything else (request bodies, upgrades, TLS upstreams) still goes
//! through hyper's client in [`super::client`].
//!
//! Connections are kept per route, per upstream and per worker thread (LIFO, at most
//! [`MAX_IDLE`], closed after [`IDLE_TIMEOUT`] unused; [`Pool::prune`], run every few seconds
//! by the app, also closes those the upstream closed). A pooled connection the upstream has
//! closed is noticed before use when its socket turned readable while idle; if the upstream
//! closes one just as a request goes out, an idempotent request is sent once more on a new
//! connection and any other fails with 502, as with hyper's client.
//!
//! Files: `head` (response head and framing), `chunked` (chunked decoder), `body` (the
//! response body and the connection's return to the pool).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use http::header::{self, HeaderName};
use http::{HeaderMap, Method, Response};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::headers::Added;
use super::target::Target;

mod body;
mod chunked;
mod head;

pub(crate) use body::ResponseBody;

/// Idle connections kept per upstream and worker.
const MAX_IDLE: usize = 256;
/// An idle connection unused this long is closed (below common upstream keep-alives, as
/// for hyper's pool: pitfall 6).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer: what one read asks the kernel for.
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum H1Error {
    /// No TCP connection (refused, unreachable, connect timeout): the caller may try another
    /// upstream.
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("{0}")]
    Io(io::Error),
    #[error("upstream closed the connection before answering")]
    Closed,
    #[error(transparent)]
    Head(#[from] head::HeadError),
    #[error("request target is not in origin form")]
    BadTarget,
}

/// One upstream connection and the bytes read from it but not yet consumed.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    idle_since: Instant,
}

impl Conn {
    /// Reads whatever is available into the buffer; `Ok(0)` is end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.io), cx, &mut self.buf)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Whether an idle connection may take a request: not idle past [`IDLE_TIMEOUT`] and
    /// still looking alive.
    fn reusable(&mut self, now: Instant) -> bool {
        now.duration_since(self.idle_since) < IDLE_TIMEOUT && self.looks_alive()
    }

    /// Whether an idle connection still looks usable: its socket has not turned readable
    /// (a FIN, a reset or stray bytes) while it sat in the pool.
    fn looks_alive(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            // Readiness can be left over from the last read: ask the socket itself.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Poll::Ready(Err(_)) => false,
        }
    }
}

/// The idle connections of one upstream on one worker.
#[derive(Debug)]
pub(crate) struct Slot {
    idle: Mutex<VecDeque<Conn>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            idle: Mutex::new(VecDeque::new()),
        }
    }

    /// The most recently used idle connection that still looks alive.
    fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while let Some(mut conn) = idle.pop_back() {
            if conn.reusable(now) {
                return Some(conn);
            }
        }
        None
    }

    /// Closes the idle connections that timed out or that the upstream closed (a socket left
    /// in CLOSE_WAIT until the next request would otherwise find it).
    fn prune(&self) -> usize {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let before = idle.len();
        idle.retain_mut(|conn| conn.reusable(now));
        before - idle.len()
    }

    /// How many connections wait idle.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Parks a connection whose last exchange ended cleanly; closes the oldest ones when
    /// they have been idle too long or the list is full.
    fn put(&self, mut conn: Conn) {
        let now = Instant::now();
        conn.idle_since = now;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while idle
            .front()
            .is_some_and(|c| now.duration_since(c.idle_since) >= IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(conn);
        }
    }
}

/// The connections of one plain-http upstream: where it is and one [`Slot`] per worker.
pub(crate) struct Pool {
    host: Box<str>,
    port: u16,
    connect_timeout: Duration,
    slots: Box<[Arc<Slot>]>,
}

/// What goes on the wire besides the headers.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: &'a Method,
    pub(crate) target: Target<'a>,
    /// The client's fields, after rewriting.
    pub(crate) headers: &'a HeaderMap,
    /// What portcullis sets: written after the client's fields, its `Host` in place of theirs.
    pub(crate) added: &'a Added,
}

impl Pool {
    /// A pool for `host:port` with `workers` slots.
    pub(crate) fn new(host: &str, port: u16, connect_timeout: Duration, workers: usize) -> Self {
        Pool {
            // The URL form of an IPv6 literal is bracketed; connect wants it bare.
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            connect_timeout,
            slots: (0..workers.max(1)).map(|_| Arc::new(Slot::new())).collect(),
        }
    }

    /// Sends `req` and reads the response head; the body streams from the connection.
    /// `worker` picks this thread's slot.
    pub(crate) async fn send(
        &self,
        worker: usize,
        req: Outgoing<'_>,
    ) -> Result<Response<ResponseBody>, H1Error> {
        let slot = &self.slots[worker % self.slots.len()];
        // The target comes from a parsed URI; this keeps the request line unbreakable anyway.
        if !req.target.is_valid() {
            return Err(H1Error::BadTarget);
        }
        let head = encode(&req);
        let head_request = *req.method == Method::HEAD;
        // A stale pooled connection may take the request and close: an idempotent request
        // goes once more, on a fresh connection.
        let resend = is_idempotent(req.method);
        if let Some(mut conn) = slot.take() {
            match exchange(&mut conn, &head, head_request).await {
                Ok(parsed) => return Ok(respond(conn, parsed, slot)),
                Err(Attempt::Unanswered(error)) if !resend => return Err(error),
                Err(Attempt::Unanswered(_)) => {}
                Err(Attempt::Failed(error)) => return Err(error),
            }
        }
        let mut conn = self.connect().await?;
        match exchange(&mut conn, &head, head_request).await {
            Ok(parsed) => Ok(respond(conn, parsed, slot)),
            Err(Attempt::Unanswered(error) | Attempt::Failed(error)) => Err(error),
        }
    }

    /// Closes what [`Slot::prune`] finds in every worker's slot; returns how many. Called
    /// periodically, so an idle proxy does not sit on connections its upstream gave up.
    pub(crate) fn prune(&self) -> usize {
        self.slots.iter().map(|slot| slot.prune()).sum()
    }

    async fn connect(&self) -> Result<Conn, H1Error> {
        let connecting = TcpStream::connect((&*self.host, self.port));
        let io = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => return Err(H1Error::Connect(e)),
            Err(_) => {
                return Err(H1Error::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        io.set_nodelay(true).map_err(H1Error::Connect)?;
        Ok(Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            idle_since: Instant::now(),
        })
    }
}

/// How one attempt on one connection failed.
enum Attempt {
    /// Nothing came back: the connection was closed or reset before any response byte.
    Unanswered(H1Error),
    /// Anything else.
    Failed(H1Error),
}

/// Writes the request head and reads the response head off `conn`.
async fn exchange(conn: &mut Conn, head: &[u8], head_request: bool) -> Result<head::Head, Attempt> {
    if let Err(e) = conn.io.write_all(head).await {
        return Err(Attempt::Unanswered(H1Error::Io(e)));
    }
    let mut answered = false;
    // How much of the buffer the last parse saw: as on the client side, a head is parsed
    // again only once a read completes a line (httparse starts over on every call).
    let mut parsed_up_to = None;
    loop {
        let worth_parsing = match parsed_up_to {
            None => true,
            Some(seen) => {
                conn.buf.get(seen..).is_none_or(|new| new.contains(&b'\n'))
                    || conn.buf.len() > head::MAX_HEAD_BYTES
            }
        };
        if answered && worth_parsing {
            match head::parse(&mut conn.buf, head_request) {
                Ok(Some(parsed)) => return Ok(parsed),
                Ok(None) => parsed_up_to = Some(conn.buf.len()),
                Err(e) => return Err(Attempt::Failed(e.into())),
            }
        }
        match conn.fill().await {
            Ok(0) if answered => return Err(Attempt::Failed(H1Error::Closed)),
            Ok(0) => return Err(Attempt::Unanswered(H1Error::Closed)),
            Ok(_) => answered = true,
            Err(e) if answered => return Err(Attempt::Failed(H1Error::Io(e))),
            Err(e) => return Err(Attempt::Unanswered(H1Error::Io(e))),
        }
    }
}

fn respond(conn: Conn, parsed: head::Head, slot: &Arc<Slot>) -> Response<ResponseBody> {
    let body = ResponseBody::new(conn, parsed.framing, parsed.keep_alive, slot.clone());
    let mut response = Response::new(body);
    *response.status_mut() = parsed.status;
    *response.version_mut() = parsed.version;
    *response.headers_mut() = parsed.headers;
    response
}

/// The request head: request line, `Host`, the client's fields, portcullis's, the blank
/// line. Header names and values come from `http` types, which cannot hold CR or LF.
pub(super) fn encode(req: &Outgoing<'_>) -> Vec<u8> {
    // Room for a typical head; a larger one grows the buffer once or twice.
    let mut out = Vec::with_capacity(512 + req.target.len() + 64 * req.headers.len());
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    req.target.write(&mut out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut field = |name: &HeaderName, value: &[u8]| {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    // `Host` first (RFC 9112 section 3.2 asks that of clients), in place of the client's.
    let replaces_host = req.added.host.is_some();
    if let Some(host) = &req.added.host {
        field(&header::HOST, host.as_bytes());
    }
    for (name, value) in req.headers {
        if !(replaces_host && name == header::HOST) {
            field(name, value.as_bytes());
        }
    }
    req.added.for_each(field);
    out.extend_from_slice(b"\r\n");
    out
}

/// RFC 9110 section 9.2.2.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
