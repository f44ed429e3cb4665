//! portcullis's own server loop for the common HTTP/1.x exchange: a complete, valid request
//! head without a body, an upgrade or an `Expect`, answered with any response. It reads a
//! head, parses it with httparse (as hyper does), serves it through the listener's
//! dispatch and writes the response, again and again on a keep-alive connection.
//!
//! Everything else is hyper's: the first head that is not of that shape (a body, an
//! upgrade, CONNECT, a parse error, too many headers, a head over the size limit, the HTTP/2
//! preface) hands the connection, with every byte read and not yet served, to hyper for the
//! rest of its life. So malformed input is answered exactly as before (hyper's 400/431), and
//! this loop only ever accepts a strict subset of what hyper accepts.
//!
//! Semantics kept from hyper: the head read timeout runs from the moment the loop waits for
//! a request (so it also bounds keep-alive idleness); a client that closes its connection
//! while its request is being served cancels the request; HTTP/1.0 keeps the connection
//! only on `Connection: keep-alive`; a response body of unknown length is sent chunked (or,
//! to an HTTP/1.0 client, delimited by closing); `Date` is added when missing. On shutdown an
//! idle connection closes at once and a busy one after its response, which then says
//! `Connection: close`.

use std::future::Future;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

use super::listener::{ConnInfo, ConnLimits, SharedRouter, dispatch};

/// Heads with more fields than this are parsed on the heap (hyper's default limit is 100).
const STACK_FIELDS: usize = 128;

/// Response bytes gathered before a write.
const WRITE_CHUNK: usize = 64 * 1024;

/// Data frames at least this large are written as they are rather than copied.
const COPY_LIMIT: usize = 16 * 1024;

/// How a connection left this loop.
pub(super) enum Ended<I> {
    /// Closed (or to be closed): nothing more to do.
    Closed,
    /// Not ours: hyper serves the connection from here, reading `Rewind`'s bytes first.
    Handover(Rewind<I>),
}

/// Serves `io` until it closes or needs hyper. `stop` turns true on shutdown.
pub(super) async fn serve<I>(
    mut io: I,
    info: ConnInfo,
    router: &SharedRouter,
    limits: &ConnLimits,
    stop: &watch::Receiver<bool>,
) -> Ended<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out = Vec::with_capacity(1024);
    let mut stopping = stop.clone();
    let stopped = stopping.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    // The connection keeps its own handle on the current router and checks it per request
    // with one atomic load. `router.load()` per request would, with more requests in flight
    // on a thread than arc-swap has per-thread slots (8), fall back to the shared reference
    // count: a cache line bouncing between cores on every request. After a config reload an
    // idle connection holds the old router until its next request, or until the head read
    // timeout closes it.
    let mut current = arc_swap::Cache::new(&**router);
    loop {
        let head = crate::timer::timeout(
            limits.header_read_timeout,
            read_head(&mut io, &mut buf, limits, stopped.as_mut()),
        )
        .await;
        let head = match head {
            Ok(HeadRead::Head(head)) => head,
            Ok(HeadRead::Handover) => return Ended::Handover(Rewind::new(buf.freeze(), io)),
            Ok(HeadRead::Closed) | Err(_) => return Ended::Closed,
        };
        let keep_alive = head.keep_alive;
        let trailers = head.trailers;
        let head_request = head.request.method() == Method::HEAD;
        let served = {
            let handler = dispatch(current.load(), info, head.request);
            tokio::pin!(handler);
            serve_one(&mut io, &mut buf, handler).await
        };
        let Some(response) = served else {
            // The client went away mid-request: the request was cancelled.
            return Ended::Closed;
        };
        let keep_alive = keep_alive && !*stop.borrow();
        match write_response(
            &mut io,
            &mut out,
            response,
            head.version,
            head_request,
            keep_alive,
            trailers,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) | Err(_) => return Ended::Closed,
        }
    }
}

/// What [`read_head`] found.
// `Head` is the common case: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum HeadRead {
    Head(Head),
    Handover,
    Closed,
}

/// A request ready for dispatch, and what its head says about the connection.
struct Head {
    /// Boxed: the request moves through four layers (dispatch, gateway, forward), each into
    /// its own slot of the connection's future; a pointer moves for the price of 8 bytes
    /// where the request itself (240 bytes) would write five cold cache lines at each step.
    request: Box<Request<Body>>,
    version: Version,
    keep_alive: bool,
    /// The client accepts trailer fields (`TE: trailers`).
    trailers: bool,
}

/// Reads until `buf` holds a complete head (consumed from `buf` on success). An idle
/// connection closes on shutdown.
///
/// httparse starts over on every call, so the head is parsed again only once a read
/// completes a line: a client trickling a 64 KiB head a byte per segment would otherwise
/// have it re-parsed from the start tens of thousands of times (quadratic CPU for the
/// price of one slow connection). Lines are bounded by `max_headers` (more is a handover),
/// so a head costs at most that many parses; a malformed one is still refused at the end
/// of its first bad line (or at once when the first bytes already say it is not HTTP/1: a
/// TLS hello on the plain port is handed to hyper's 400 without waiting for a newline).
async fn read_head<I, S>(
    io: &mut I,
    buf: &mut BytesMut,
    limits: &ConnLimits,
    mut stopped: Pin<&mut S>,
) -> HeadRead
where
    I: AsyncRead + Unpin,
    S: Future,
{
    // How much of `buf` the last parse saw.
    let mut parsed_up_to = 0;
    loop {
        let worth_parsing = parsed_up_to == 0
            || buf[parsed_up_to..].contains(&b'\n')
            || buf.len() >= limits.max_header_bytes;
        if !buf.is_empty() && worth_parsing {
            match parse(buf, limits) {
                Parsed::Head(head) => return HeadRead::Head(head),
                Parsed::Handover => return HeadRead::Handover,
                Parsed::Partial => parsed_up_to = buf.len(),
            }
        }
        let read = tokio::select! {
            biased;
            read = io.read_buf(buf) => read,
            _ = stopped.as_mut(), if buf.is_empty() => return HeadRead::Closed,
        };
        match read {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {}
        }
    }
}

/// Awaits `handler`, watching the client meanwhile: a close cancels the request (`None`),
/// like hyper; bytes the client sends early (a pipelined request) stay in `buf`.
async fn serve_one<I, F>(
    io: &mut I,
    buf: &mut BytesMut,
    mut handler: Pin<&mut F>,
) -> Option<F::Output>
where
    I: AsyncRead + Unpin,
    F: Future,
{
    if !buf.is_empty() {
        return Some(handler.await);
    }
    tokio::select! {
        biased;
        response = handler.as_mut() => return Some(response),
        read = io.read_buf(buf) => match read {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        },
    }
    Some(handler.await)
}

/// The outcome of parsing what has been read so far.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Head(Head),
    /// The head is not complete yet.
    Partial,
    /// Not a request this loop serves: hyper takes over.
    Handover,
}

/// Parses the head at the start of `buf`; on [`Parsed::Head`] the head's bytes are removed
/// from `buf`.
fn parse(buf: &mut BytesMut, limits: &ConnLimits) -> Parsed {
    #[cfg(test)]
    tests::PARSES.with(|n| n.set(n.get() + 1));
    let max = limits.max_headers.max(1);
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_FIELDS];
    let mut heap;
    let fields: &mut [MaybeUninit<httparse::Header<'_>>] = if max <= STACK_FIELDS {
        &mut stack[..max]
    } else {
        heap = Vec::with_capacity(max);
        heap.resize_with(max, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.max_header_bytes => {
            return Parsed::Partial;
        }
        // Too large, too many fields or malformed: hyper answers it.
        Ok(httparse::Status::Partial) | Err(_) => return Parsed::Handover,
    };
    if len > limits.max_header_bytes {
        return Parsed::Handover;
    }
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Parsed::Handover,
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Parsed::Handover;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Handover;
    };
    if method == Method::CONNECT {
        return Parsed::Handover;
    }
    // Where each piece lies in the head, so the values can share the head's bytes.
    let base = buf.as_ptr() as usize;
    let target = offset(base, target.as_bytes());
    let mut shape = Shape::default();
    let mut fields = Vec::with_capacity(req.headers.len());
    for field in req.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            return Parsed::Handover;
        };
        if !shape.note(&name, field.value) {
            return Parsed::Handover;
        }
        fields.push((name, offset(base, field.value)));
    }
    let head = buf.split_to(len).freeze();
    let Ok(uri) = Uri::from_maybe_shared(head.slice(target)) else {
        return Parsed::Handover;
    };
    let mut request = Box::new(Request::new(Body::empty()));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    let headers = request.headers_mut();
    // The gateway adds nothing on the common path (the own client writes portcullis's
    // fields itself), so exactly the client's fields.
    headers.reserve(fields.len());
    for (name, value) in fields {
        let Ok(value) = HeaderValue::from_maybe_shared(head.slice(value)) else {
            // Unreachable for httparse's output; refuse rather than serve a partial head.
            return Parsed::Handover;
        };
        headers.append(name, value);
    }
    let keep_alive = match version {
        Version::HTTP_11 => !shape.close,
        _ => shape.keep_alive && !shape.close,
    };
    Parsed::Head(Head {
        request,
        version,
        keep_alive,
        trailers: shape.trailers,
    })
}

/// The byte range of `part` (a slice of the buffer at `base`).
fn offset(base: usize, part: &[u8]) -> std::ops::Range<usize> {
    let start = part.as_ptr() as usize - base;
    start..start + part.len()
}

/// What the head's fields say about framing and the connection.
#[derive(Default)]
struct Shape {
    close: bool,
    keep_alive: bool,
    trailers: bool,
}

impl Shape {
    /// Notes one field; false when the request is not this loop's to serve (a body, an
    /// upgrade, an expectation).
    fn note(&mut self, name: &HeaderName, value: &[u8]) -> bool {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
        {
            return false;
        }
        if name == header::TE {
            self.trailers |= value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        }
        if name == header::CONNECTION {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return false;
                }
            }
        }
        true
    }
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body on the wire (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes remain.
    Length(u64),
    Chunked,
    /// Chunked, and the client asked for trailer fields (`TE: trailers`): the body's are sent.
    ChunkedWithTrailers,
    /// Until the connection closes (HTTP/1.0, unknown length).
    Close,
}

/// Writes `response`; true when the connection may serve another request.
async fn write_response<I>(
    io: &mut I,
    out: &mut Vec<u8>,
    response: Response<Body>,
    version: Version,
    head_request: bool,
    keep_alive: bool,
    trailers: bool,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    out.clear();
    let (framing, keep_alive) = encode_head(out, &parts, &body, version, head_request, keep_alive);
    let framing = match framing {
        Framing::Chunked if trailers => Framing::ChunkedWithTrailers,
        other => other,
    };
    let clean = write_body(io, out, &mut body, framing).await?;
    io.flush().await?;
    Ok(clean && keep_alive)
}

/// Writes the status line and fields into `out`; returns the body framing and whether the
/// connection stays open after this response.
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &Body,
    version: Version,
    head_request: bool,
    mut keep_alive: bool,
) -> (Framing, bool) {
    let status = parts.status;
    // RFC 9110 8.6: no Content-Length in a 1xx or 204, whatever an upstream said (a client
    // that believed one would take the next response's bytes for this one's body).
    let lengthless = status.is_informational() || status == StatusCode::NO_CONTENT;
    let bodiless = head_request || lengthless || status == StatusCode::NOT_MODIFIED;
    let mut declared = None;
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            declared = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
        } else if name == header::DATE {
            has_date = true;
        } else if name == header::CONNECTION
            && value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        {
            keep_alive = false;
        }
    }
    let framing = if bodiless {
        Framing::None
    } else if let Some(length) = declared {
        Framing::Length(length)
    } else if let Some(length) = body.size_hint().exact() {
        Framing::Length(length)
    } else if version == Version::HTTP_11 {
        Framing::Chunked
    } else {
        keep_alive = false;
        Framing::Close
    };

    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // Framing is this loop's to state; a handler's own Content-Length was read above.
        if name == header::TRANSFER_ENCODING
            || (name == header::CONTENT_LENGTH && (declared.is_none() || lengthless))
        {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    // A HEAD answer states the length the GET would have (RFC 9110 9.3.2), when known.
    let head_length = match framing {
        Framing::None
            if head_request && declared.is_none() && status.is_success() && !lengthless =>
        {
            body.size_hint().exact().filter(|&n| n > 0)
        }
        _ => None,
    };
    match (framing, head_length) {
        (Framing::Length(length), _) | (Framing::None, Some(length)) if declared.is_none() => {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "content-length: {length}\r\n");
        }
        (Framing::Chunked, _) => field(out, b"transfer-encoding", b"chunked"),
        _ => {}
    }
    if !has_date {
        super::http_date::with_now(|date| field(out, b"date", date.as_bytes()));
    }
    if !keep_alive {
        if !parts.headers.contains_key(header::CONNECTION) {
            field(out, b"connection", b"close");
        }
    } else if version == Version::HTTP_10 {
        field(out, b"connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
    (framing, keep_alive)
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes `out` (the head) and the body; true when the body ended as framed. Frames that
/// are ready are gathered into one write; the gathered bytes go out whenever the body
/// has to wait, so a streamed response is never held back.
async fn write_body<I>(
    io: &mut I,
    out: &mut Vec<u8>,
    body: &mut Body,
    framing: Framing,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
{
    if framing == Framing::None {
        // Let a finished upstream body run to its end (its connection goes back to the
        // pool), without waiting for anything.
        while let Poll::Ready(Some(Ok(_))) = poll_now(body) {}
        io.write_all(out).await?;
        return Ok(true);
    }
    let mut remaining = match framing {
        Framing::Length(length) => length,
        _ => u64::MAX,
    };
    let chunked = matches!(framing, Framing::Chunked | Framing::ChunkedWithTrailers);
    let mut trailers = None;
    loop {
        let frame = match poll_now(body) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                    io.flush().await?;
                }
                std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Sent only to a client that asked (`TE: trailers`), as hyper does.
                    if framing == Framing::ChunkedWithTrailers {
                        trailers = frame.into_trailers().ok();
                    }
                    continue;
                }
            },
            Some(Err(error)) => {
                // Cut the response short: the client sees a truncated body, never a
                // complete-looking one.
                io.write_all(out).await?;
                tracing::debug!(%error, "response body failed");
                return Ok(false);
            }
        };
        if data.is_empty() {
            continue;
        }
        if let Framing::Length(_) = framing {
            if data.len() as u64 > remaining {
                io.write_all(out).await?;
                tracing::debug!("response body longer than its content-length");
                return Ok(false);
            }
            remaining -= data.len() as u64;
        }
        if chunked {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        if data.len() >= COPY_LIMIT {
            io.write_all(out).await?;
            out.clear();
            io.write_all(&data).await?;
        } else {
            out.extend_from_slice(&data);
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= WRITE_CHUNK {
            io.write_all(out).await?;
            out.clear();
        }
    }
    match framing {
        Framing::Chunked | Framing::ChunkedWithTrailers => {
            out.extend_from_slice(b"0\r\n");
            for (name, value) in trailers.iter().flatten() {
                if trailer_allowed(name) {
                    field(out, name.as_str().as_bytes(), value.as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        Framing::Length(_) if remaining != 0 => {
            io.write_all(out).await?;
            tracing::debug!(
                missing = remaining,
                "response body shorter than its content-length"
            );
            return Ok(false);
        }
        _ => {}
    }
    io.write_all(out).await?;
    Ok(framing != Framing::Close)
}

/// RFC 9110 6.5.1: no trailer field may carry what frames, routes, authenticates or
/// describes the message; an upstream's such fields are dropped.
fn trailer_allowed(name: &HeaderName) -> bool {
    let forbidden = [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::HOST,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::CONTENT_ENCODING,
        header::CONTENT_TYPE,
        header::CONTENT_RANGE,
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::WWW_AUTHENTICATE,
        header::PROXY_AUTHENTICATE,
        header::SET_COOKIE,
        header::CACHE_CONTROL,
        header::EXPIRES,
        header::DATE,
        header::LOCATION,
        header::RETRY_AFTER,
        header::VARY,
    ];
    !forbidden.contains(name) && name.as_str() != "keep-alive"
}

/// Polls `body` once without registering interest anywhere: what is ready now.
fn poll_now(body: &mut Body) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    Pin::new(body).poll_frame(&mut cx)
}

pin_project_lite::pin_project! {
    /// A connection whose first bytes were already read: they are read again first.
    pub(super) struct Rewind<I> {
        prefix: Bytes,
        #[pin]
        inner: I,
    }
}

impl<I> Rewind<I> {
    fn new(prefix: Bytes, inner: I) -> Self {
        Rewind { prefix, inner }
    }
}

impl<I: AsyncRead> AsyncRead for Rewind<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(dst.remaining());
            dst.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, dst)
    }
}

impl<I: AsyncWrite> AsyncWrite for Rewind<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, src)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "http1_tests.rs"]
mod tests;
