//! The audit trail: one durable, redacted, tamper-evident event per decision (and per config
//! load, retention run and audit read). Producers build an [`AuditEvent`] with values passed
//! through [`Redactor`]; the [`writer`] assigns each event its place in this instance's hash
//! [`chain`] and commits batches to the [`Store`] (SQLite or Postgres), spooling to a local
//! file while the database is away. [`verify`] checks the chains, [`query`] searches.
//! It never decides who may pass and never sees an unredacted credential.
//!
//! Files: `event` (the row), `redact`, `chain`, `store` (contract, filter, cursor, SQL),
//! `sql_store` (the shared implementation), `sqlite`, `postgres`, `spool`, `writer`,
//! `retention`, `verify`, `query` (CLI output), `cli` (`audit query|verify`), `request`
//! (the gateway's per-request record), `access` (who may read, shared search parameters),
//! `api` (`GET /.portcullis/api/audit`, exports), `page` (`/.portcullis/audit`), `lifecycle`
//! (login, logout, session expiry, config reload events), `setup` (startup from config).

pub mod access;
pub mod api;
pub mod chain;
pub mod cli;
pub mod event;
pub mod lifecycle;
pub mod page;
pub mod postgres;
pub mod query;
pub mod redact;
pub mod reload;
pub mod request;
pub mod retention;
pub mod setup;
pub mod spool;
mod sql_store;
pub mod sqlite;
pub mod store;
pub mod verify;
pub mod writer;

pub use event::{AuditEvent, StoredEvent};
pub use redact::Redactor;
pub use request::{Asked, RequestAudit, RequestStart};
pub use setup::{Audit, AuditRuntime};
pub use store::{AuditFilter, AuditStore, Checkpoint, Cursor, Page, StoreError};
pub use writer::{AuditError, AuditFull, AuditSink, AuditSlot};

use postgres::PgStore;
use sqlite::SqliteStore;

use crate::config::AuditUrl;

/// The configured store, chosen at runtime.
#[derive(Clone, Debug)]
pub enum Store {
    /// `sqlite://`.
    Sqlite(SqliteStore),
    /// `postgres://`.
    Postgres(PgStore),
}

impl Store {
    /// Opens and migrates the store `url` names.
    pub async fn open(url: &AuditUrl) -> Result<Self, StoreError> {
        Ok(match url {
            AuditUrl::Sqlite(url) => Store::Sqlite(SqliteStore::open(url).await?),
            AuditUrl::Postgres(url) => Store::Postgres(PgStore::open(url.as_str()).await?),
        })
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call.await,
            Store::Postgres($s) => $call.await,
        }
    };
}

impl AuditStore for Store {
    async fn append_batch(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        dispatch!(self, s => s.append_batch(events))
    }
    async fn chain_head(&self, instance: &str) -> Result<Option<(i64, String)>, StoreError> {
        dispatch!(self, s => s.chain_head(instance))
    }
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        dispatch!(self, s => s.query(filter, cursor, limit))
    }
    async fn verify_page(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        dispatch!(self, s => s.verify_page(after, limit))
    }
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoints())
    }
    async fn apply_retention(&self, cutoff: &str) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, s => s.apply_retention(cutoff))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping())
    }
}
