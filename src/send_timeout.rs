//! A peer that stops reading is cut off. For clients (`server.send_timeout`): without it one could
//! ask for a large response and never read it (a slow-read attack): the kernel keeps the
//! connection alive with zero-window probes for as long as the client answers them, and the
//! connection, its upstream exchange and their buffers stay taken. Like nginx's
//! `send_timeout`, the limit is on a write that makes no progress, not on the whole
//! response: each write that moves bytes starts the clock again.
//!
//! A wrapper around the client connection, under TLS and HTTP, so every writer is covered:
//! the own HTTP/1 loop, hyper's HTTP/1 and HTTP/2, and WebSocket tunnels after an upgrade.
//! Around hyper's upstream connections too (the route's `idle_timeout`): an upstream that
//! stops reading a request body would otherwise hold that connection, and the body, for good.
//! Reads pass through untouched. A write that completes at once (nearly all) costs no timer;
//! one that waits arms the worker's coarse timer (or tokio's off a worker).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose writes fail with `TimedOut` after `limit` without progress.
pub struct SendTimeout<I> {
    io: I,
    limit: Duration,
    /// Armed while a write waits; dropped when one makes progress.
    stall: Option<crate::timer::Sleep>,
}

impl<I> SendTimeout<I> {
    /// Wraps `io`.
    pub fn new(io: I, limit: Duration) -> Self {
        SendTimeout {
            io,
            limit,
            stall: None,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &I {
        &self.io
    }

    /// Passes on a write's outcome: progress disarms the clock; waiting arms it, and past
    /// the limit the write fails instead.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stall = None;
            return outcome;
        }
        let limit = self.limit;
        let stall = self.stall.get_or_insert_with(|| crate::timer::sleep(limit));
        match Pin::new(stall).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for SendTimeout<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for SendTimeout<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write(cx, buf);
        this.guard(cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.guard(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_flush(cx);
        this.guard(cx, outcome)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_shutdown(cx);
        this.guard(cx, outcome)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_reader_that_keeps_reading_is_never_cut() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = SendTimeout::new(ours, Duration::from_millis(100));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut chunk = [0u8; 16];
            // Slowly, but each read well inside the limit.
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                match theirs.read(&mut chunk).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        let data = vec![7u8; 4096];
        io.write_all(&data).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        assert_eq!(reader.await.unwrap(), 4096);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_times_out() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = SendTimeout::new(ours, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let error = io.write_all(&[1u8; 4096]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }
}
