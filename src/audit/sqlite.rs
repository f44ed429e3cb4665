//! The SQLite audit store: one database file in WAL mode with `synchronous = NORMAL`. In WAL
//! mode NORMAL keeps the database consistent after a crash and loses no committed
//! transaction on a process crash (kill -9); only an OS crash or power loss can lose the
//! last transactions committed before it. Migrations: `migrations/sqlite`.
//!
//! Reads (search, verify, retention) go through a sqlx pool. Appends, the hot path, go
//! through one connection of the writer's own (rusqlite): cached multi-row INSERTs with
//! borrowed binds, run on the writer's thread. Through sqlx each batch crossed to a
//! connection thread per statement and every bound value was copied twice (measured: about
//! a third of the audit trail's cost per event).
//!
//! Checkpoints (copying the WAL back into the database file, with its fsync) run on a thread
//! and connection of their own every [`CHECKPOINT_EVERY`], not inside the writer's commits
//! (SQLite's default): with events from many subjects a commit touches thousands of index
//! pages, and the writer spent about a sixth of its time checkpointing them.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::OptionalExtension as _;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::event::{ColumnValue, StoredEvent};
use super::sql_store::audit_store_impl;
use super::store::{StoreError, insert_chunks, insert_text};

/// How long a statement waits for another connection's write lock (the retention job's).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the checkpointer copies committed WAL pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// An audit trail in SQLite.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    appender: Arc<Mutex<Appender>>,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if needed) and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_owned();
        let in_memory = url.contains(":memory:")
            || url.contains("mode=memory")
            || path.to_string_lossy().starts_with("file:sqlx-in-memory");
        if in_memory {
            // The writer's connection would see another, empty database; and a trail that
            // vanishes at exit is no trail.
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "an in-memory SQLite audit trail is lost at exit: give a file path".into(),
            )));
        }
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let appender = Arc::new(Mutex::new(Appender::open(path.clone())?));
        spawn_checkpointer(path, Arc::downgrade(&appender))?;
        Ok(SqliteStore { pool, appender })
    }

    /// The pool, for tests that tamper with rows directly.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }

    /// [`AuditStore::append_batch`](super::AuditStore::append_batch) through the writer's own
    /// connection. SQLite calls block: on a multi-threaded runtime the worker hands its other
    /// tasks over first (`block_in_place`); elsewhere (tests) they simply run.
    async fn append_rows(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let append = || {
            let mut appender = self.appender.lock().unwrap_or_else(PoisonError::into_inner);
            appender.append(events)
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(append),
            _ => append(),
        }
    }
}

/// The writer's connection. Reopened after a failure, so a database file that came back (a
/// disk that was full, a file that was locked) is written again without a restart.
#[derive(Debug)]
struct Appender {
    path: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl Appender {
    fn open(path: PathBuf) -> Result<Self, StoreError> {
        let conn = Some(connect(&path)?);
        Ok(Appender { path, conn })
    }

    /// One transaction: every event inserted, or none. A row already present with the same
    /// hash (a spool replay) is skipped; the same `(instance, seq)` with another hash is
    /// [`StoreError::Conflict`].
    fn append(&mut self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => self.conn.insert(connect(&self.path)?),
        };
        let result = insert(conn, events);
        if let Err(StoreError::Sqlite(_)) = &result {
            // Start from a fresh connection next time.
            self.conn = None;
        }
        result
    }
}

fn connect(path: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Per connection: the pool set these on its own connections only. The journal mode is
    // the file's, set already; asking again is harmless.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Every insert touches a leaf of each index; `subject` and `route_id` leaves are spread
    // over the whole index. SQLite's default 2 MiB cache would send a large trail's inserts
    // back to the file for them; 64 MiB (an upper bound, filled only as used) keeps them.
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    // The checkpointer's job, not the commit's.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// Starts the thread that checkpoints the WAL every [`CHECKPOINT_EVERY`] through a connection
/// of its own, for as long as the store's appender lives. PASSIVE: it copies what no reader
/// still needs and never waits for, or blocks, the writer. (When the last connection closes,
/// SQLite checkpoints whatever is left.)
fn spawn_checkpointer(
    path: PathBuf,
    appender: std::sync::Weak<Mutex<Appender>>,
) -> Result<(), StoreError> {
    let conn = connect(&path)?;
    std::thread::Builder::new()
        .name("audit-checkpoint".into())
        .spawn(move || {
            let mut failing = false;
            while appender.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                match result {
                    Ok(()) => failing = false,
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, path = %path.display(), "audit WAL checkpoint failed");
                    }
                    Err(_) => {}
                }
            }
        })
        .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    Ok(())
}

fn insert(conn: &mut rusqlite::Connection, events: &[StoredEvent]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for chunk in insert_chunks(events) {
        // Multi-row statements: SQLite seeks each index from its root once per statement,
        // so one row per statement costs almost twice as much.
        let mut statement = tx.prepare_cached(insert_text(chunk.len(), false))?;
        let values = chunk.iter().flat_map(StoredEvent::column_values);
        if statement.execute(rusqlite::params_from_iter(values))? == chunk.len() {
            continue;
        }
        // Some rows were there already: fine for a replay of the same events, a conflict if
        // another process wrote different ones.
        let mut existing =
            tx.prepare_cached("SELECT hash FROM audit_events WHERE instance = ?1 AND seq = ?2")?;
        for event in chunk {
            let hash: Option<String> = existing
                .query_row((&event.instance, event.seq), |row| row.get(0))
                .optional()?;
            if hash.as_deref() != Some(event.hash.as_str()) {
                return Err(StoreError::Conflict {
                    instance: event.instance.clone(),
                    seq: event.seq,
                });
            }
        }
    }
    tx.commit()?;
    Ok(())
}

impl ToSql for ColumnValue<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            ColumnValue::Text(Some(text)) => ValueRef::Text(text.as_bytes()),
            ColumnValue::Int(Some(n)) => ValueRef::Integer(n),
            ColumnValue::Text(None) | ColumnValue::Int(None) => ValueRef::Null,
        }))
    }
}

audit_store_impl!(SqliteStore, sqlx::Sqlite, false);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn committed_events_reach_the_database_file_while_the_store_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let mut chain = crate::audit::chain::Chain::resume("t", None);
        let events: Vec<_> = (0..500)
            .map(|i| {
                let mut event = crate::audit::AuditEvent::new(
                    crate::audit::event::kind::REQUEST,
                    jiff::Timestamp::now(),
                );
                event.path = Some(format!("/items/{i}"));
                chain.append(event)
            })
            .collect();
        store.append_rows(&events).await.unwrap();
        // The writer's commits leave pages in the WAL; the checkpointer copies them over.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint within 5 s: the database file is still {before} bytes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn an_in_memory_trail_is_refused() {
        for url in ["sqlite::memory:", "sqlite://trail.db?mode=memory"] {
            let error = SqliteStore::open(url).await.unwrap_err().to_string();
            assert!(error.contains("in-memory"), "{url}: {error}");
        }
    }
}
