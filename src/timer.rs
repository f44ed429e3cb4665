//! Coarse timers for the per-request timeouts on a worker thread (the client's head read,
//! the upstream's response head). Every request arms and disarms them, and almost none
//! fire; tokio's timer wheel takes a lock per arm and disarm and, when a new deadline is
//! earlier than the one the driver sleeps towards, wakes its own thread through an eventfd
//! write: a syscall on the hot path. Here arming is a slot in a list; one sweeper task per
//! worker checks the list every [`TICK`] and wakes what is due, so a timeout fires at most
//! one tick late. The sweeper stops when the list is empty.
//!
//! [`CoarseTimer`] implements hyper's `Timer` for the server connections; [`timeout`] uses
//! the worker's timer when the thread has one (see [`enter`]) and tokio's otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often due timers are looked for: the most a timeout fires late.
pub const TICK: Duration = Duration::from_millis(50);

/// A worker's coarse timer. Cheap to clone; clones share the list.
#[derive(Clone, Debug, Default)]
pub struct CoarseTimer {
    shared: Arc<Mutex<Entries>>,
}

#[derive(Debug, Default)]
struct Entries {
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    live: usize,
    sweeping: bool,
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    waker: Waker,
}

impl CoarseTimer {
    /// A timer with an empty list; its sweeper starts on the runtime of the first wait.
    pub fn new() -> Self {
        Self::default()
    }

    /// A future that completes at `deadline` (up to [`TICK`] later).
    pub fn sleep_until(&self, deadline: Instant) -> CoarseSleep {
        self.clone().into_sleep_until(deadline)
    }

    /// [`Self::sleep_until`], keeping this handle instead of taking another reference.
    fn into_sleep_until(self, deadline: Instant) -> CoarseSleep {
        CoarseSleep {
            timer: self,
            deadline,
            slot: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every due entry; false once the list is empty (the sweeper then stops).
    fn sweep(&self, now: Instant) -> bool {
        let mut due = Vec::new();
        let mut entries = self.lock();
        for slot in entries.slots.iter_mut() {
            if slot.as_ref().is_some_and(|e| e.deadline <= now) {
                // The sleep sees its deadline passed when polled and frees its slot on drop;
                // the entry is dropped here so it is woken once.
                if let Some(entry) = slot.take() {
                    due.push(entry.waker);
                }
            }
        }
        entries.live -= due.len();
        // Woken entries stay reserved (None, not on the free list) until their sleep drops.
        if entries.live == 0 && due.is_empty() {
            entries.sweeping = false;
            return false;
        }
        drop(entries);
        for waker in due {
            waker.wake();
        }
        true
    }
}

/// Sleeps on a [`CoarseTimer`].
#[derive(Debug)]
pub struct CoarseSleep {
    timer: CoarseTimer,
    deadline: Instant,
    slot: Option<usize>,
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // No clock read here (every request polls two of these): only a sweep ends a sleep,
        // and a sweep takes an entry only once its deadline has passed, so an armed entry that
        // is gone means the deadline is behind us. A deadline already past when first polled
        // ends at the next sweep, within the tick this timer promises anyway.
        let mut entries = this.timer.lock();
        match this.slot {
            Some(index) => match &mut entries.slots[index] {
                Some(entry) => {
                    if !entry.waker.will_wake(cx.waker()) {
                        entry.waker = cx.waker().clone();
                    }
                }
                None => return Poll::Ready(()),
            },
            None => {
                let entry = Some(Entry {
                    deadline: this.deadline,
                    waker: cx.waker().clone(),
                });
                let index = match entries.free.pop() {
                    Some(index) => {
                        entries.slots[index] = entry;
                        index
                    }
                    None => {
                        entries.slots.push(entry);
                        entries.slots.len() - 1
                    }
                };
                entries.live += 1;
                this.slot = Some(index);
            }
        }
        if !entries.sweeping {
            entries.sweeping = true;
            let timer = this.timer.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(TICK).await;
                    if !timer.sweep(Instant::now()) {
                        break;
                    }
                }
            });
        }
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        let Some(index) = self.slot else { return };
        let mut entries = self.timer.lock();
        if entries.slots[index].take().is_some() {
            entries.live -= 1;
        }
        entries.free.push(index);
    }
}

impl hyper::rt::Sleep for CoarseSleep {}

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.sleep_until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseTimer::sleep_until(self, deadline))
    }
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<CoarseTimer>> = const { std::cell::RefCell::new(None) };
}

/// Makes `timer` the current thread's timer for [`timeout`].
pub fn enter(timer: &CoarseTimer) {
    CURRENT.with(|current| *current.borrow_mut() = Some(timer.clone()));
}

/// The current thread's coarse timer, if it has one.
pub fn current() -> Option<CoarseTimer> {
    CURRENT.with(|current| current.borrow().clone())
}

/// `future`, or `Err(Elapsed)` once `limit` has passed: on the worker's coarse timer when
/// this thread has one, on tokio's otherwise.
pub fn timeout<F: Future>(limit: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(limit),
    }
}

/// A wait of `limit`: on the worker's coarse timer when this thread has one (up to
/// [`TICK`] late), on tokio's otherwise.
pub fn sleep(limit: Duration) -> Sleep {
    Sleep(match current() {
        Some(timer) => Either::Coarse(timer.into_sleep_until(Instant::now() + limit)),
        None => Either::Tokio(Box::pin(tokio::time::sleep(limit))),
    })
}

pin_project_lite::pin_project! {
    /// The future [`timeout`] returns: the wrapped future inline, so wrapping costs no copy
    /// of it beyond the one into this struct.
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

/// The future [`sleep`] returns.
pub struct Sleep(Either);

/// Which clock a [`Sleep`] waits on.
enum Either {
    Coarse(CoarseSleep),
    Tokio(Pin<Box<tokio::time::Sleep>>),
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.get_mut().0 {
            Either::Coarse(sleep) => Pin::new(sleep).poll(cx),
            Either::Tokio(sleep) => sleep.as_mut().poll(cx),
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// A [`timeout`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_after_the_deadline_and_not_before() {
        let timer = CoarseTimer::new();
        let start = Instant::now();
        timer.sleep_until(start + Duration::from_millis(120)).await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(120), "{waited:?}");
        assert!(waited < Duration::from_millis(120) + TICK * 4, "{waited:?}");
    }

    #[tokio::test]
    async fn a_deadline_already_past_ends_within_a_tick() {
        let timer = CoarseTimer::new();
        let start = Instant::now();
        timer.sleep_until(start - Duration::from_secs(1)).await;
        assert!(start.elapsed() < TICK * 4, "{:?}", start.elapsed());
        assert_eq!(timer.lock().live, 0);
    }

    #[tokio::test]
    async fn dropped_sleeps_free_their_slot_and_the_sweeper_stops() {
        let timer = CoarseTimer::new();
        for _ in 0..3 {
            let mut sleep = Box::pin(timer.sleep_until(Instant::now() + Duration::from_secs(60)));
            assert!(futures_util::poll!(sleep.as_mut()).is_pending());
        }
        assert_eq!(timer.lock().live, 0);
        assert_eq!(timer.lock().slots.len(), 1, "the slot is reused");
        tokio::time::sleep(TICK * 3).await;
        assert!(!timer.lock().sweeping);
    }

    #[tokio::test]
    async fn timeout_on_the_current_timer() {
        let timer = CoarseTimer::new();
        enter(&timer);
        let slow = timeout(Duration::from_millis(60), std::future::pending::<()>()).await;
        assert_eq!(slow, Err(Elapsed));
        let fast = timeout(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(fast, Ok(7));
        CURRENT.with(|c| c.borrow_mut().take());
    }

    #[tokio::test]
    async fn many_sleeps_all_fire() {
        let timer = CoarseTimer::new();
        let start = Instant::now();
        let sleeps = (0..50u64).map(|i| timer.sleep_until(start + Duration::from_millis(i * 2)));
        futures_util::future::join_all(sleeps).await;
        assert!(start.elapsed() >= Duration::from_millis(98));
        assert_eq!(timer.lock().live, 0);
    }
}
