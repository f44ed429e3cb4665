//! The Postgres audit store: the shared trail when several instances run. Migrations:
//! `migrations/postgres` (run under Postgres's advisory lock, so instances starting together
//! do not race).

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::event::{ColumnValue, StoredEvent};
use super::sql_store::audit_store_impl;
use super::store::{Bind, Sql, StoreError, insert_chunks, insert_text};

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
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0u64;
        for chunk in insert_chunks(events) {
            // Fixed texts (cached prepared statements) with borrowed binds: no SQL is built
            // and no column is copied before sqlx takes the values.
            let mut query = sqlx::query(insert_text(chunk.len(), true));
            for event in chunk {
                for value in event.column_values() {
                    query = match value {
                        ColumnValue::Text(text) => query.bind(text),
                        ColumnValue::Int(n) => query.bind(n),
                    };
                }
            }
            inserted += query.execute(&mut *tx).await?.rows_affected();
        }
        if inserted < events.len() as u64 {
            // Some rows were there already: fine for a replay of the same events, a conflict
            // if another process wrote different ones.
            for event in events {
                let mut sql = Sql::new("SELECT hash FROM audit_events WHERE instance = ", true);
                sql.text(&event.instance)
                    .push(" AND seq = ")
                    .bind(Bind::Int(Some(event.seq)));
                let row = bound(&sql).fetch_optional(&mut *tx).await?;
                let hash: Option<String> = match &row {
                    Some(row) => sqlx::Row::try_get(row, 0)?,
                    None => None,
                };
                if hash.as_deref() != Some(event.hash.as_str()) {
                    return Err(StoreError::Conflict {
                        instance: event.instance.clone(),
                        seq: event.seq,
                    });
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

audit_store_impl!(PgStore, sqlx::Postgres, true);
