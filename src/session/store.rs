//! [`AnyStore`]: the session store chosen at runtime from `[session] store`, one enum over the
//! tower-sessions stores (memory, SQLite, Postgres, Redis) implementing their common
//! [`SessionStore`] trait, plus connecting, migrating and the expired-record sweeper. It knows
//! nothing of what the records mean.

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;
use tower_sessions::MemoryStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{Builder, ClientLike, Config as RedisConfig, Pool};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::SessionError;
use crate::config::SessionStoreKind;

/// How often the SQL stores delete expired records (Redis expires keys itself; the memory
/// store filters on load).
const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// Bound on connecting to a store at startup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One of the tower-sessions stores, chosen at runtime.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// In this process only.
    Memory(MemoryStore),
    /// A SQLite file.
    Sqlite(SqliteStore),
    /// Postgres, shared by every instance.
    Postgres(PostgresStore),
    /// Redis (fred client pool), shared by every instance.
    Redis(RedisStore<Pool>),
}

impl AnyStore {
    /// Connects to the configured store and creates its table when missing. Returns the store
    /// and, for the SQL stores, the sweeper task deleting expired records.
    pub async fn connect(
        kind: &SessionStoreKind,
    ) -> Result<(AnyStore, Option<tokio::task::JoinHandle<()>>), SessionError> {
        let setup =
            |e: &dyn std::fmt::Display| SessionError::Setup(format!("{}: {e}", kind.name()));
        match kind {
            SessionStoreKind::Memory => Ok((AnyStore::Memory(MemoryStore::default()), None)),
            SessionStoreKind::Sqlite(url) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| setup(&e))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| setup(&e))?;
                let store = SqliteStore::new(pool);
                store.migrate().await.map_err(|e| setup(&e))?;
                let sweeper = sweep(store.clone());
                Ok((AnyStore::Sqlite(store), Some(sweeper)))
            }
            SessionStoreKind::Postgres(url) => {
                let pool = PgPoolOptions::new()
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect(url)
                    .await
                    .map_err(|e| setup(&e))?;
                let store = PostgresStore::new(pool);
                store.migrate().await.map_err(|e| setup(&e))?;
                let sweeper = sweep(store.clone());
                Ok((AnyStore::Postgres(store), Some(sweeper)))
            }
            SessionStoreKind::Redis(url) => {
                let config = RedisConfig::from_url(url).map_err(|e| setup(&e))?;
                let pool = Builder::from_config(config)
                    .build_pool(4)
                    .map_err(|e| setup(&e))?;
                match tokio::time::timeout(CONNECT_TIMEOUT, pool.init()).await {
                    Ok(Ok(_connection_task)) => {}
                    Ok(Err(e)) => return Err(setup(&e)),
                    Err(_) => return Err(setup(&"timed out connecting")),
                }
                Ok((AnyStore::Redis(RedisStore::new(pool)), None))
            }
        }
    }

    /// Writes `record` whether or not it exists. `save` already does for every store but
    /// Redis, whose `save` only overwrites (SET XX) and whose `create` picks another id when
    /// the key exists.
    pub async fn upsert(&self, record: &Record) -> session_store::Result<()> {
        let AnyStore::Redis(store) = self else {
            return self.save(record).await;
        };
        if store.load(&record.id).await?.is_some() {
            return store.save(record).await;
        }
        let mut created = record.clone();
        store.create(&mut created).await?;
        if created.id != record.id {
            // Someone created it between our load and create: drop the stray copy, overwrite.
            store.delete(&created.id).await?;
            store.save(record).await?;
        }
        Ok(())
    }
}

fn sweep<S: ExpiredDeletion + Clone>(store: S) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(error) = store.continuously_delete_expired(SWEEP_EVERY).await {
            tracing::warn!(%error, "session sweeper stopped");
        }
    })
}

/// Written out by hand (the trait is declared with `async_trait`, which portcullis does not
/// depend on): each method boxes a future that dispatches to the chosen store.
impl SessionStore for AnyStore {
    fn create<'life0, 'life1, 'async_trait>(
        &'life0 self,
        record: &'life1 mut Record,
    ) -> StoreFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self {
                AnyStore::Memory(s) => s.create(record).await,
                AnyStore::Sqlite(s) => s.create(record).await,
                AnyStore::Postgres(s) => s.create(record).await,
                AnyStore::Redis(s) => s.create(record).await,
            }
        })
    }

    fn save<'life0, 'life1, 'async_trait>(
        &'life0 self,
        record: &'life1 Record,
    ) -> StoreFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self {
                AnyStore::Memory(s) => s.save(record).await,
                AnyStore::Sqlite(s) => s.save(record).await,
                AnyStore::Postgres(s) => s.save(record).await,
                AnyStore::Redis(s) => s.save(record).await,
            }
        })
    }

    fn load<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 Id,
    ) -> StoreFuture<'async_trait, Option<Record>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self {
                AnyStore::Memory(s) => s.load(id).await,
                AnyStore::Sqlite(s) => s.load(id).await,
                AnyStore::Postgres(s) => s.load(id).await,
                AnyStore::Redis(s) => s.load(id).await,
            }
        })
    }

    fn delete<'life0, 'life1, 'async_trait>(
        &'life0 self,
        id: &'life1 Id,
    ) -> StoreFuture<'async_trait, ()>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self {
                AnyStore::Memory(s) => s.delete(id).await,
                AnyStore::Sqlite(s) => s.delete(id).await,
                AnyStore::Postgres(s) => s.delete(id).await,
                AnyStore::Redis(s) => s.delete(id).await,
            }
        })
    }
}

type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = session_store::Result<T>> + Send + 'a>>;
