//! The audit writer: a bounded queue ([`AuditSink`], cheap to clone) feeding one task that
//! assigns chain positions in queue order and commits batches, one transaction each. A batch
//! is whatever queued while the previous one was written (at most `batch_size`): under load
//! batches grow by themselves, idle events go out at once. Callers of
//! [`AuditSink::record_committed`] that arrive together share one transaction (group commit).
//! When the database fails, batches go to the [`Spool`] and are replayed in order later; new
//! batches queue behind the spool so order is kept. A full queue is [`AuditFull`]: the
//! gateway answers 503 instead of serving unrecorded. It never redacts: events arrive redacted.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::chain::Chain;
use super::event::{AuditEvent, StoredEvent};
use super::spool::Spool;
use super::store::{AuditStore, StoreError};

/// Metric names.
pub mod names {
    /// Gauge: events waiting in the queue.
    pub const QUEUE_DEPTH: &str = "portcullis_audit_queue_depth";
    /// Histogram: events per committed batch.
    pub const BATCH_SIZE: &str = "portcullis_audit_batch_size";
    /// Histogram (seconds): one batch's database transaction.
    pub const WRITE_SECONDS: &str = "portcullis_audit_write_seconds";
    /// Gauge: events waiting in the spool file.
    pub const SPOOL_EVENTS: &str = "portcullis_audit_spool_events";
    /// Counter: events committed to the database.
    pub const WRITTEN: &str = "portcullis_audit_events_written_total";
    /// Counter: events lost (neither database nor spool took them).
    pub const FAILED: &str = "portcullis_audit_events_failed_total";
    /// Counter: events written to the spool.
    pub const SPOOLED: &str = "portcullis_audit_events_spooled_total";
    /// Counter: events refused because the queue was full (answered 503).
    pub const QUEUE_FULL: &str = "portcullis_audit_queue_full_total";
}

/// The queue is full (or the writer stopped): the caller must not proceed unrecorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the audit queue is full")]
pub struct AuditFull;

/// Why a strict-mode commit failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// See [`AuditFull`].
    #[error("the audit queue is full")]
    Full,
    /// Neither the database nor the spool took the event.
    #[error("the audit event could not be stored")]
    NotStored,
}

type Ack = oneshot::Sender<Result<(), AuditError>>;

enum Msg {
    Event(Box<AuditEvent>, Option<Ack>),
    Flush(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// How long the writer lets a batch fill under load (see the writer loop). Short enough that
/// an event is stored within a few milliseconds; long enough that at tens of thousands of
/// requests per second a batch holds dozens of events.
const LINGER: Duration = Duration::from_millis(2);

/// Sizing and pacing.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// Queue capacity (events).
    pub capacity: usize,
    /// Most events per transaction.
    pub batch_size: usize,
    /// How often a non-empty spool is retried.
    pub retry: Duration,
}

/// Where producers hand events to the writer. Clone freely.
#[derive(Clone, Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    writable: Arc<AtomicBool>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

/// A reserved place in the queue: recording through it cannot fail. The gateway takes one
/// before the request reaches the upstream, so a full queue refuses the request up front.
#[derive(Debug)]
pub struct AuditSlot(mpsc::OwnedPermit<Msg>);

impl AuditSlot {
    /// Queues `event` in the reserved place.
    pub fn record(self, event: AuditEvent) {
        self.0.send(Msg::Event(Box::new(event), None));
    }
}

impl AuditSink {
    /// Queues `event`; [`AuditFull`] when the queue is full.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditFull> {
        self.tx
            .try_send(Msg::Event(Box::new(event), None))
            .map_err(|_| full())
    }

    /// Reserves a place for one event.
    pub fn reserve(&self) -> Result<AuditSlot, AuditFull> {
        self.tx
            .clone()
            .try_reserve_owned()
            .map(AuditSlot)
            .map_err(|_| full())
    }

    /// Queues `event` and waits until it is durably stored (committed to the database, or
    /// fsynced to the spool while the database is away).
    pub async fn record_committed(&self, event: AuditEvent) -> Result<(), AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .try_send(Msg::Event(Box::new(event), Some(ack)))
            .map_err(|_| {
                full();
                AuditError::Full
            })?;
        done.await.unwrap_or(Err(AuditError::NotStored))
    }

    /// Waits until everything queued before this call is stored.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Whether the last write reached the database (false while spooling).
    pub fn store_writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// The flag behind [`AuditSink::store_writable`], for readiness.
    pub fn writable_flag(&self) -> Arc<AtomicBool> {
        self.writable.clone()
    }
}

fn full() -> AuditFull {
    metrics::counter!(names::QUEUE_FULL).increment(1);
    AuditFull
}

/// The running writer task.
#[derive(Debug)]
pub struct WriterHandle {
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<()>,
}

impl WriterHandle {
    /// Stores everything queued (database, else spool) and stops; gives up after `limit`.
    pub async fn shutdown(self, limit: Duration) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(ack)).await.is_ok()
            && tokio::time::timeout(limit, done).await.is_err()
        {
            tracing::error!("audit writer did not drain within {limit:?}");
            self.task.abort();
            return;
        }
        let _ = self.task.await;
    }
}

/// Starts the writer for `instance`. The chain continues from the spool's last event or the
/// store's head; the store must answer unless the spool knows the head.
pub async fn start<S: AuditStore + 'static>(
    store: S,
    instance: &str,
    spool_dir: &Path,
    options: WriterOptions,
) -> Result<(AuditSink, WriterHandle), StoreError> {
    let dir = spool_dir.to_owned();
    let name = instance.to_owned();
    let spool = tokio::task::spawn_blocking(move || Spool::open(&dir, &name))
        .await
        .map_err(|e| StoreError::Database(sqlx::Error::Io(std::io::Error::other(e))))?
        .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    let head = match (store.chain_head(instance).await, spool.last()) {
        (Ok(db), Some(spooled)) => Some(match db {
            Some(db) if db.0 > spooled.0 => db,
            _ => spooled,
        }),
        (Ok(db), None) => db,
        (Err(error), Some(spooled)) => {
            tracing::warn!(%error, "audit database unreachable at start; continuing the chain from the spool");
            Some(spooled)
        }
        (Err(error), None) => return Err(error),
    };
    let (tx, rx) = mpsc::channel(options.capacity.max(1));
    let writable = Arc::new(AtomicBool::new(true));
    let writer = Writer {
        store,
        chain: Chain::resume(instance, head),
        spool: Some(spool),
        rx,
        options,
        writable: writable.clone(),
        last_replay: Instant::now(),
        spare: Vec::new(),
    };
    metrics::gauge!(names::SPOOL_EVENTS).set(writer.spool_pending() as f64);
    let task = tokio::spawn(writer.run());
    Ok((
        AuditSink {
            tx: tx.clone(),
            writable,
        },
        WriterHandle { tx, task },
    ))
}

struct Writer<S> {
    store: S,
    chain: Chain,
    // Taken while a blocking task works on it.
    spool: Option<Spool>,
    rx: mpsc::Receiver<Msg>,
    options: WriterOptions,
    writable: Arc<AtomicBool>,
    last_replay: Instant,
    // The last stored batch's buffer, emptied: reused so a batch neither regrows (copying
    // every event) nor touches fresh pages.
    spare: Vec<StoredEvent>,
}

impl<S: AuditStore> Writer<S> {
    async fn run(mut self) {
        if self.spool_pending() > 0 {
            self.replay().await;
        }
        let mut busy = false;
        loop {
            let msg = if self.spool_pending() > 0 {
                match tokio::time::timeout(self.options.retry, self.rx.recv()).await {
                    Ok(msg) => msg,
                    Err(_) => {
                        self.replay().await;
                        continue;
                    }
                }
            } else {
                self.rx.recv().await
            };
            let Some(msg) = msg else { break };
            if busy && matches!(&msg, Msg::Event(_, None)) {
                // Under load, let the batch fill for a moment instead of paying a wake-up,
                // a transaction and a commit for every few events. Bounded and skipped when
                // idle (the previous batch had one event) or when someone waits for an ack.
                tokio::time::sleep(LINGER).await;
            }
            let mut events = std::mem::take(&mut self.spare);
            let mut acks = Vec::new();
            let mut flushes = Vec::new();
            let mut shutdown = None;
            let mut next = Some(msg);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Event(event, ack) => {
                        events.push(self.chain.append(*event));
                        acks.extend(ack);
                    }
                    Msg::Flush(ack) => flushes.push(ack),
                    Msg::Shutdown(ack) => shutdown = Some(ack),
                }
                // After a shutdown request, keep draining whatever raced in behind it.
                if events.len() < self.options.batch_size || shutdown.is_some() {
                    next = self.rx.try_recv().ok();
                }
            }
            metrics::gauge!(names::QUEUE_DEPTH).set(self.rx.len() as f64);
            busy = events.len() > 1 && acks.is_empty();
            let result = self.persist(events).await;
            for ack in acks {
                let _ = ack.send(result);
            }
            if self.spool_pending() > 0 && self.last_replay.elapsed() >= self.options.retry {
                self.replay().await;
            }
            for flush in flushes {
                let _ = flush.send(());
            }
            if let Some(ack) = shutdown {
                if self.spool_pending() > 0 {
                    self.replay().await;
                }
                let _ = ack.send(());
                return;
            }
        }
    }

    /// Database first (unless a spool is waiting: order), else the spool.
    async fn persist(&mut self, events: Vec<StoredEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        if self.spool_pending() == 0 {
            let started = Instant::now();
            match self.store.append_batch(&events).await {
                Ok(()) => {
                    let stored = events.len();
                    let mut events = events;
                    events.clear();
                    self.spare = events;
                    self.writable.store(true, Ordering::Release);
                    metrics::histogram!(names::WRITE_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    metrics::histogram!(names::BATCH_SIZE).record(stored as f64);
                    metrics::counter!(names::WRITTEN).increment(stored as u64);
                    return Ok(());
                }
                Err(error) => {
                    self.writable.store(false, Ordering::Release);
                    self.last_replay = Instant::now();
                    tracing::warn!(%error, events = events.len(), "audit database write failed; spooling");
                }
            }
        }
        let count = events.len() as u64;
        match self.with_spool(move |spool| spool.append(&events)).await {
            Ok(()) => {
                metrics::counter!(names::SPOOLED).increment(count);
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, events = count, "audit spool write failed; events lost");
                metrics::counter!(names::FAILED).increment(count);
                Err(AuditError::NotStored)
            }
        }
    }

    /// Replays the whole spool in order, then empties it. Stops at the first failure.
    async fn replay(&mut self) {
        self.last_replay = Instant::now();
        let mut offset = 0;
        loop {
            let max = self.options.batch_size;
            let read = self
                .with_spool(move |spool| spool.read_from(offset, max))
                .await;
            let (events, next) = match read {
                Ok(read) => read,
                Err(error) => {
                    tracing::error!(%error, "audit spool unreadable");
                    return;
                }
            };
            if events.is_empty() {
                break;
            }
            if let Err(error) = self.store.append_batch(&events).await {
                self.writable.store(false, Ordering::Release);
                tracing::debug!(%error, "audit database still unreachable");
                return;
            }
            metrics::counter!(names::WRITTEN).increment(events.len() as u64);
            offset = next;
        }
        match self.with_spool(|spool| spool.clear()).await {
            Ok(()) => {
                self.writable.store(true, Ordering::Release);
                tracing::info!("audit spool replayed into the database");
            }
            Err(error) => tracing::error!(%error, "audit spool could not be emptied"),
        }
    }

    async fn with_spool<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Spool) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let Some(mut spool) = self.spool.take() else {
            return Err(std::io::Error::other("spool unavailable"));
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = work(&mut spool);
            (spool, result)
        })
        .await;
        match joined {
            Ok((spool, result)) => {
                metrics::gauge!(names::SPOOL_EVENTS).set(spool.pending() as f64);
                self.spool = Some(spool);
                result
            }
            Err(error) => Err(std::io::Error::other(error)),
        }
    }

    fn spool_pending(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::pending)
    }
}
