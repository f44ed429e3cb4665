//! Body wrappers for both directions: an idle timeout (no frame for `idle` fails the body) and,
//! for request bodies, a size limit counted as data streams through. Frames pass through
//! untouched and nothing is buffered, so memory stays flat whatever the body size.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a guarded body failed.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More data than the route's `max_body`.
    TooLarge,
    /// No frame within the idle timeout.
    Idle,
    /// The wrapped body failed.
    Inner(Box<dyn StdError + Send + Sync>),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("body over the size limit"),
            BodyError::Idle => f.write_str("body idle timeout"),
            // The cause follows through `source`.
            BodyError::Inner(_) => f.write_str("body error"),
        }
    }
}

impl StdError for BodyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            BodyError::Inner(e) => Some(&**e),
            BodyError::TooLarge | BodyError::Idle => None,
        }
    }
}

/// A body with an idle timeout and an optional size limit.
pub(crate) struct GuardedBody<B> {
    inner: B,
    /// Bytes still allowed; None = unlimited.
    remaining: Option<u64>,
    /// Zero disables the idle timeout (used after the limit error, too).
    idle: Duration,
    /// Created at the first wait only: bodies whose frames are always ready cost no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    /// While the body waits: when the wait times out. The timer may be set earlier and is
    /// moved forward lazily when it fires, instead of being reset on every frame. Read from
    /// the clock only when a wait begins: bodies whose frames are always ready never read it.
    deadline: Option<Instant>,
    /// An upload's progress, for the exchange that sends it (see [`Upload`]).
    upload: Option<Arc<UploadState>>,
}

/// What the sending side knows about a request body on its way upstream: its end (the
/// response timeout starts then, so a long upload is not mistaken for a slow upstream) and
/// whether it still moves. An upstream that stops reading blocks the client's writes, so the
/// body is no longer polled and its own idle timer cannot run: [`Upload::stalled`] notices
/// instead. A body waiting on the client is the client's stall, not the upstream's.
pub(crate) struct Upload {
    state: Arc<UploadState>,
    idle: Duration,
}

#[derive(Default)]
struct UploadState {
    frames: AtomicU64,
    waiting_on_client: AtomicBool,
    ended: AtomicBool,
    end: tokio::sync::Notify,
}

impl Upload {
    /// Completes once the body has been read to its end, has failed, or was dropped.
    pub(crate) async fn ended(&self) {
        if !self.state.ended.load(Ordering::Acquire) {
            // notify_one keeps a permit: an end signalled before this wait is not lost.
            self.state.end.notified().await;
        }
    }

    /// Completes when the body has not moved for the idle timeout while nothing waited on
    /// the client: the upstream stopped reading it. Never with the idle timeout off.
    pub(crate) async fn stalled(&self) {
        if self.idle.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let seen = self.state.frames.load(Ordering::Acquire);
            crate::timer::sleep(self.idle).await;
            let moved = self.state.frames.load(Ordering::Acquire) != seen;
            if !moved
                && !self.state.waiting_on_client.load(Ordering::Acquire)
                && !self.state.ended.load(Ordering::Acquire)
            {
                return;
            }
        }
    }
}

impl<B> GuardedBody<B> {
    /// Wraps `inner`; `idle` zero disables the timeout, `limit` None disables the limit.
    pub(crate) fn new(inner: B, idle: Duration, limit: Option<u64>) -> Self {
        GuardedBody {
            inner,
            remaining: limit,
            idle,
            sleep: None,
            deadline: None,
            upload: None,
        }
    }

    /// Follows this body as an upload: its end, and whether it still moves.
    pub(crate) fn upload(&mut self) -> Upload {
        let state = Arc::new(UploadState::default());
        self.upload = Some(state.clone());
        Upload {
            state,
            idle: self.idle,
        }
    }

    fn ended(&mut self) {
        if let Some(state) = self.upload.take() {
            state.ended.store(true, Ordering::Release);
            state.end.notify_one();
        }
    }

    /// Notes a frame passed on, or a wait on the client.
    fn note(&self, waiting_on_client: bool) {
        if let Some(state) = &self.upload {
            if !waiting_on_client {
                state.frames.fetch_add(1, Ordering::AcqRel);
            }
            state
                .waiting_on_client
                .store(waiting_on_client, Ordering::Release);
        }
    }

    /// Polls the idle timer; Ready means the body has been idle too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.idle.is_zero() {
            return Poll::Pending;
        }
        let idle = self.idle;
        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + idle);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            ready!(sleep.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            // The timer was armed for an earlier wait; move it to this one's deadline.
            sleep.as_mut().reset(deadline);
        }
    }
}

/// A body dropped unread has ended too, as far as its upload is concerned.
impl<B> Drop for GuardedBody<B> {
    fn drop(&mut self) {
        self.ended();
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline = None;
                this.note(false);
                if let (Some(remaining), Some(data)) = (this.remaining.as_mut(), frame.data_ref()) {
                    let len = data.len() as u64;
                    if len > *remaining {
                        this.remaining = Some(0);
                        this.ended();
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    *remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.ended();
                Poll::Ready(Some(Err(BodyError::Inner(e.into()))))
            }
            Poll::Ready(None) => {
                this.deadline = None;
                this.ended();
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.note(true);
                match this.poll_idle(cx) {
                    Poll::Ready(()) => {
                        this.ended();
                        Poll::Ready(Some(Err(BodyError::Idle)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The first [`BodyError`] in `err`'s source chain: in an upstream exchange's error, the
/// guarded request body's failure that caused it.
pub(crate) fn request_body_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a BodyError> {
    causes(err).find_map(|e| e.downcast_ref::<BodyError>())
}

/// `err` and its source chain, outermost first.
pub(crate) fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    type Chunks =
        StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

    fn chunks(sizes: &[usize]) -> Chunks {
        let frames: Vec<_> = sizes
            .iter()
            .map(|&n| Ok(Frame::data(Bytes::from(vec![b'x'; n]))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    #[tokio::test]
    async fn passes_frames_through_under_the_limit() {
        let body = GuardedBody::new(chunks(&[3, 4]), Duration::from_secs(5), Some(7));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 7);
    }

    #[tokio::test]
    async fn fails_past_the_limit_mid_stream() {
        let mut body = GuardedBody::new(chunks(&[3, 4, 1]), Duration::ZERO, Some(7));
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::TooLarge));
        // Found through a wrapping error's source chain, as in an upstream exchange's error.
        #[derive(Debug)]
        struct Exchange(BodyError);
        impl fmt::Display for Exchange {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("exchange failed")
            }
        }
        impl StdError for Exchange {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        assert!(matches!(
            request_body_error(&Exchange(err)),
            Some(BodyError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn unlimited_without_a_limit() {
        let body = GuardedBody::new(chunks(&[1000; 10]), Duration::ZERO, None);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 10_000);
    }

    #[tokio::test]
    async fn fails_when_no_frame_arrives_in_time() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut body = GuardedBody::new(
            StreamBody::new(Box::pin(stream)),
            Duration::from_millis(100),
            None,
        );
        // Frames arriving faster than the idle timeout keep the body alive past it.
        for _ in 0..4 {
            let send = tx.send(Ok(Frame::data(Bytes::from_static(b"x"))));
            let (sent, frame) = tokio::join!(
                async {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    send.await
                },
                body.frame()
            );
            sent.unwrap();
            assert!(frame.unwrap().is_ok());
        }
        let started = std::time::Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, BodyError::Idle));
        assert!(started.elapsed() >= Duration::from_millis(90));
        drop(tx);
    }

    #[test]
    fn reports_size_hint_and_end_of_stream_of_the_inner_body() {
        let body = GuardedBody::new(
            http_body_util::Full::new(Bytes::from_static(b"abc")),
            Duration::ZERO,
            None,
        );
        assert_eq!(body.size_hint().exact(), Some(3));
        let empty = GuardedBody::new(http_body_util::Empty::<Bytes>::new(), Duration::ZERO, None);
        assert!(empty.is_end_stream());
    }
}
