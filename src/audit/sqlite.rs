//! The SQLite audit store: one database file in WAL mode with `synchronous = NORMAL`. In WAL
//! mode NORMAL keeps the database consistent after a crash and loses no committed
//! transaction on a process crash (kill -9); only an OS crash or power loss can lose the
//! last transactions committed before it. Migrations: `migrations/sqlite`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql_store::audit_store_impl;
use super::store::StoreError;

/// An audit trail in SQLite.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if needed) and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// The pool, for tests that tamper with rows directly.
    pub fn pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

audit_store_impl!(SqliteStore, sqlx::Sqlite, false);
