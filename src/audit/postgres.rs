//! The Postgres audit store: the shared trail when several instances run. Migrations:
//! `migrations/postgres` (run under Postgres's advisory lock, so instances starting together
//! do not race).

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::event::StoredEvent;
use super::sql_store::{audit_store_impl, sqlx_append_batch};
use super::store::StoreError;

/// An audit trail in Postgres.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

impl PgStore {
    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            // Short: while the database is away the writer spools instead of waiting.
            .acquire_timeout(Duration::from_secs(2))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The pool, for tests that tamper with rows directly.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// [`AuditStore::append_batch`](super::AuditStore::append_batch): multi-row INSERTs in one
    /// transaction through the pool.
    async fn append_rows(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        sqlx_append_batch(&self.pool, events).await
    }
}

sqlx_append_batch!(sqlx::Postgres, true);

audit_store_impl!(PgStore, sqlx::Postgres, true);
