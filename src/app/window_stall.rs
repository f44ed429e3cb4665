//! An HTTP/2 client that never grants flow-control window stops hyper from asking for the
//! next piece of a response body: no socket write blocks, so `server.send_timeout` sees
//! nothing, and the upstream exchange behind the body (its connection, its buffers) would
//! stay taken for as long as the client keeps the connection up, which answering pings is
//! enough for. Several streams on several connections take every upstream connection.
//!
//! [`watch`] wraps such a response body. Each time it hands hyper a frame and more is to
//! come, a deadline `send_timeout` away is set; a watchdog task (started with the first such
//! frame, so a response that ends in one frame costs none) drops the upstream body when
//! hyper has not come back by then, which releases the upstream connection at once. The
//! stream itself ends with an error whenever hyper next asks. Waiting on a slow upstream is
//! not a stall: the deadline only runs while hyper owes the next poll.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// `body`, given up when its reader stops asking for frames for `limit`.
pub(crate) fn watch(body: Body, limit: Duration) -> Body {
    Body::new(Watched {
        shared: Arc::new(Shared {
            state: Mutex::new(State {
                body: Some(body),
                owed_by: None,
                expired: false,
                watchdog: false,
            }),
            wake: Notify::new(),
        }),
        limit,
    })
}

struct Watched {
    shared: Arc<Shared>,
    limit: Duration,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the watchdog when a deadline is set or the response is dropped.
    wake: Notify,
}

impl Drop for Watched {
    /// Releases the upstream body at once: the watchdog holds `Shared` while it sleeps
    /// towards a deadline, which would otherwise keep the body (and its upstream connection)
    /// until then.
    fn drop(&mut self) {
        lock(&self.shared.state).body = None;
        self.shared.wake.notify_one();
    }
}

struct State {
    /// `None` once the body ended, failed or was given up.
    body: Option<Body>,
    /// Set while the reader owes the next poll: by when it must come.
    owed_by: Option<Instant>,
    expired: bool,
    /// Whether the watchdog task runs.
    watchdog: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let mut state = lock(&this.shared.state);
        state.owed_by = None;
        if state.expired {
            return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client granted no flow-control window for the response",
            )))));
        }
        let Some(body) = state.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !body.is_end_stream() => {
                state.owed_by = Some(Instant::now() + this.limit);
                if state.watchdog {
                    this.shared.wake.notify_one();
                } else {
                    state.watchdog = true;
                    tokio::spawn(watchdog(Arc::downgrade(&this.shared)));
                }
            }
            Poll::Ready(_) => state.body = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let state = lock(&self.shared.state);
        !state.expired && state.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.shared.state)
            .body
            .as_ref()
            .map_or_else(SizeHint::default, |b| b.size_hint())
    }
}

/// Sleeps until the reader's deadline; gives the body up if the reader is still owing then.
/// Between deadlines (hyper waiting on the body itself: a slow upstream has its own idle
/// timeout) it sleeps until woken. Ends when the body is gone or the response dropped.
async fn watchdog(shared: std::sync::Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let deadline = {
            let mut state = lock(&shared.state);
            if state.body.is_none() {
                return;
            }
            match state.owed_by {
                Some(by) if by <= Instant::now() => {
                    tracing::debug!("HTTP/2 client granted no window: response given up");
                    state.body = None;
                    state.expired = true;
                    return;
                }
                other => other,
            }
        };
        match deadline {
            Some(by) => tokio::time::sleep_until(by).await,
            // A wake-up stored before this wait counts (Notify keeps one permit).
            None => shared.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    fn streaming() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, std::io::Error>(Frame::data(chunk)), rx))
        });
        (tx, Body::new(http_body_util::StreamBody::new(stream)))
    }

    const LIMIT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_reader_that_stops_asking_loses_the_body_after_the_limit() {
        let (tx, body) = streaming();
        let mut watched = watch(body, LIMIT);
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        let first = watched.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        // The reader owes the next poll and does not come: the upstream side is dropped.
        tokio::time::sleep(LIMIT * 3).await;
        assert!(tx.is_closed(), "the upstream body was still held");
        assert!(watched.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_dropped_response_releases_the_upstream_body_at_once() {
        let (tx, body) = streaming();
        let mut watched = watch(body, Duration::from_secs(60));
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        watched.frame().await.unwrap().unwrap();
        // Let the watchdog start its sleep towards the 60 s deadline.
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(watched);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tx.is_closed(), "the upstream body outlived its response");
    }

    #[tokio::test]
    async fn a_slow_upstream_is_not_a_stalled_reader() {
        let (tx, body) = streaming();
        let mut watched = watch(body, LIMIT);
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        watched.frame().await.unwrap().unwrap();
        // The reader asks at once and waits on the upstream for several limits: nothing is
        // given up.
        let reader = tokio::spawn(async move {
            let next = watched.frame().await.unwrap().unwrap();
            (next.into_data().unwrap(), watched)
        });
        tokio::time::sleep(LIMIT * 5).await;
        tx.send(Bytes::from_static(b"b")).await.unwrap();
        let (next, mut watched) = reader.await.unwrap();
        assert_eq!(next, "b");
        drop(tx);
        assert!(watched.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_body_in_one_frame_passes_untouched() {
        let watched = watch(Body::from("whole"), LIMIT);
        let collected = watched.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "whole");
        let empty = watch(Body::empty(), LIMIT);
        assert!(http_body::Body::is_end_stream(&empty));
    }
}
