//! The in-process store. tower-sessions' own `MemoryStore` never forgets an expired record
//! (it only hides it on load) and cannot be swept from outside, so abandoned logins and
//! sessions would grow the process without bound. This one is the same map plus a sweeper.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

/// Sessions in this process only; lost on restart.
#[derive(Clone, Debug, Default)]
pub struct SweptMemoryStore(Arc<Mutex<HashMap<Id, Record>>>);

impl SweptMemoryStore {
    /// Inserts under a fresh id when `record.id` is taken.
    pub async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut map = self.0.lock().await;
        while map.contains_key(&record.id) {
            record.id = Id::default();
        }
        map.insert(record.id, record.clone());
        Ok(())
    }

    /// Inserts or replaces.
    pub async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.lock().await.insert(record.id, record.clone());
        Ok(())
    }

    /// The record, unless it has expired.
    pub async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        let map = self.0.lock().await;
        Ok(map.get(id).filter(|r| r.expiry_date > now).cloned())
    }

    /// Removes the record (absent is fine).
    pub async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.lock().await.remove(id);
        Ok(())
    }

    /// Drops every expired record.
    pub async fn delete_expired(&self) {
        let now = OffsetDateTime::now_utc();
        self.0.lock().await.retain(|_, r| r.expiry_date > now);
    }

    /// Sweeps every `period` until aborted.
    pub(super) fn sweep(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.tick().await;
            loop {
                interval.tick().await;
                store.delete_expired().await;
            }
        })
    }

    #[cfg(test)]
    pub(super) async fn len(&self) -> usize {
        self.0.lock().await.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i128, expires_in: i64) -> Record {
        Record {
            id: Id(id),
            data: HashMap::new(),
            expiry_date: OffsetDateTime::now_utc()
                + tower_sessions::cookie::time::Duration::seconds(expires_in),
        }
    }

    #[tokio::test]
    async fn expired_records_are_hidden_then_swept() {
        let store = SweptMemoryStore::default();
        store.save(&record(1, -5)).await.unwrap();
        store.save(&record(2, 60)).await.unwrap();
        assert!(store.load(&Id(1)).await.unwrap().is_none());
        assert!(store.load(&Id(2)).await.unwrap().is_some());
        assert_eq!(store.len().await, 2);
        store.delete_expired().await;
        assert_eq!(store.len().await, 1);
    }

    #[tokio::test]
    async fn create_never_overwrites() {
        let store = SweptMemoryStore::default();
        let mut first = record(7, 60);
        store.create(&mut first).await.unwrap();
        let mut second = record(7, 60);
        store.create(&mut second).await.unwrap();
        assert_ne!(second.id, Id(7));
        assert_eq!(store.len().await, 2);
    }
}
