//! The response body read straight off the upstream connection, framed as the head said.
//! At its end the connection goes back to its worker's idle list, if it may be reused and
//! nothing unexpected follows the body; a body dropped early takes its connection with it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunked::{Decoded, Decoder};
use super::head::Framing;
use super::{Conn, Slot};

#[derive(Debug)]
enum Kind {
    Length(u64),
    Chunked(Decoder),
    Close,
    Done,
}

/// A response body on a pooled upstream connection.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    conn: Option<Conn>,
    kind: Kind,
    keep_alive: bool,
    home: std::sync::Arc<Slot>,
}

impl ResponseBody {
    pub(super) fn new(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        home: std::sync::Arc<Slot>,
    ) -> Self {
        let kind = match framing {
            Framing::Empty | Framing::Length(0) => Kind::Done,
            Framing::Length(n) => Kind::Length(n),
            Framing::Chunked => Kind::Chunked(Decoder::new()),
            Framing::Close => Kind::Close,
        };
        let mut body = ResponseBody {
            conn: Some(conn),
            kind,
            keep_alive,
            home,
        };
        if matches!(body.kind, Kind::Done) {
            body.finish();
        }
        body
    }

    /// The body is complete: the connection goes home if it can carry another request.
    fn finish(&mut self) {
        self.kind = Kind::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.home.put(conn);
        }
    }

    fn fail(&mut self, error: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.kind = Kind::Done;
        self.conn = None;
        Poll::Ready(Some(Err(error)))
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "upstream closed the connection inside the response body",
    )
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.kind {
                Kind::Done => return Poll::Ready(None),
                Kind::Length(left) => {
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        *left -= take as u64;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match ready!(conn.poll_fill(cx)) {
                        Ok(0) => return this.fail(truncated()),
                        Ok(_) => {}
                        Err(e) => return this.fail(e),
                    }
                }
                Kind::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::Done(trailers)) => {
                        this.finish();
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                    Ok(Decoded::NeedMore) => match ready!(conn.poll_fill(cx)) {
                        Ok(0) => return this.fail(truncated()),
                        Ok(_) => {}
                        Err(e) => return this.fail(e),
                    },
                    Err(e) => return this.fail(io::Error::new(io::ErrorKind::InvalidData, e)),
                },
                Kind::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    match ready!(conn.poll_fill(cx)) {
                        Ok(0) => {
                            // The end of a close-delimited body; the connection is spent.
                            this.kind = Kind::Done;
                            this.conn = None;
                            return Poll::Ready(None);
                        }
                        Ok(_) => {}
                        Err(e) => return this.fail(e),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.kind {
            Kind::Done => SizeHint::with_exact(0),
            Kind::Length(n) => SizeHint::with_exact(n),
            Kind::Chunked(_) | Kind::Close => SizeHint::default(),
        }
    }
}
