//! The Postgres audit store: the shared trail when several instances run. Migrations:
//! `migrations/postgres` (run under Postgres's advisory lock, so instances starting together
//! do not race).
//!
//! Appends stream each batch with `COPY ... FROM STDIN (FORMAT binary)`: measured about twice
//! the rows per second of multi-row INSERTs, whose per-statement parse, bind and plan work
//! was the server's main cost. COPY has no `ON CONFLICT`, so a batch that meets a row already
//! stored (a spool replay of events whose commit was not acknowledged) fails as a whole and
//! is then written again with INSERTs that skip rows stored with the same hash.

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

    /// [`AuditStore::append_batch`](super::AuditStore::append_batch): one COPY in one
    /// transaction; INSERTs if some rows were there already.
    async fn append_rows(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        match self.copy_rows(events).await {
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                self.insert_rows(events).await
            }
            result => Ok(result?),
        }
    }

    /// Every event in one `COPY`, committed, or none.
    async fn copy_rows(&self, events: &[StoredEvent]) -> Result<(), sqlx::Error> {
        let data = copy_data(events)?;
        let mut tx = self.pool.begin().await?;
        let mut copy = tx.copy_in_raw(copy_statement()).await?;
        copy.send(data).await?;
        copy.finish().await?;
        tx.commit().await
    }

    /// Multi-row INSERTs in one transaction: rows already stored with the same hash are
    /// skipped, one with another hash is a [`StoreError::Conflict`].
    async fn insert_rows(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
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

/// `COPY audit_events (<COLUMNS>) FROM STDIN (FORMAT binary)`, built once.
fn copy_statement() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "COPY audit_events ({}) FROM STDIN (FORMAT binary)",
            super::store::column_list()
        )
    })
}

/// `events` in COPY's binary format: a signature and two zero words, then per row its field
/// count and each field as a length (-1 for NULL) and bytes (text as UTF-8, BIGINT as eight
/// big-endian bytes), then -1. Lengths say where every value ends, so no value needs escaping.
fn copy_data(events: &[StoredEvent]) -> Result<Vec<u8>, sqlx::Error> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    let mut data = Vec::with_capacity(19 + events.len() * 1024);
    data.extend_from_slice(SIGNATURE);
    data.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    data.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for event in events {
        let values = event.column_values();
        data.extend_from_slice(&(values.len() as i16).to_be_bytes());
        for value in values {
            match value {
                ColumnValue::Text(None) | ColumnValue::Int(None) => {
                    data.extend_from_slice(&(-1i32).to_be_bytes());
                }
                ColumnValue::Text(Some(text)) => {
                    let len = i32::try_from(text.len()).map_err(|_| {
                        sqlx::Error::Encode("an audit value longer than 2 GiB".into())
                    })?;
                    data.extend_from_slice(&len.to_be_bytes());
                    data.extend_from_slice(text.as_bytes());
                }
                ColumnValue::Int(Some(n)) => {
                    data.extend_from_slice(&8i32.to_be_bytes());
                    data.extend_from_slice(&n.to_be_bytes());
                }
            }
        }
    }
    data.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(data)
}

audit_store_impl!(PgStore, sqlx::Postgres, true);
