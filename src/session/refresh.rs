//! One token refresh in flight per session: a per-session async lock held in this process.
//! Concurrent requests of one browser land on one instance often enough that this spares the
//! provider duplicate refreshes (and spares users the refresh-token reuse detection some
//! providers apply); across instances a second refresh can still happen, which providers
//! tolerate within their rotation grace. Locks are dropped from the map when nobody holds or
//! waits for them, so the map never grows with the number of sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OwnedMutexGuard;
use tower_sessions::session::Id;

type LockMap = Arc<Mutex<HashMap<Id, Arc<tokio::sync::Mutex<()>>>>>;

/// The per-session locks.
#[derive(Clone, Debug, Default)]
pub(super) struct RefreshLocks(LockMap);

/// Held while refreshing one session's tokens; the next caller waits until it is dropped.
/// After acquiring it, re-load the session: another request may have refreshed already.
#[derive(Debug)]
pub struct RefreshGuard {
    guard: Option<OwnedMutexGuard<()>>,
    id: Id,
    locks: LockMap,
}

fn lock(map: &LockMap) -> MutexGuard<'_, HashMap<Id, Arc<tokio::sync::Mutex<()>>>> {
    // A panic while holding this lock leaves the map consistent (single inserts/removes).
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RefreshLocks {
    pub(super) async fn acquire(&self, id: Id) -> RefreshGuard {
        let mutex = lock(&self.0).entry(id).or_default().clone();
        RefreshGuard {
            guard: Some(mutex.lock_owned().await),
            id,
            locks: self.0.clone(),
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = lock(&self.locks);
        // Every clone of the Arc is taken under the map lock, so a count of one here means
        // nobody holds or awaits this lock and nobody can start to.
        if map.get(&self.id).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_at_a_time_per_session_and_the_map_empties() {
        let locks = RefreshLocks::default();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _guard = locks.acquire(Id(1)).await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn different_sessions_do_not_wait_for_each_other() {
        let locks = RefreshLocks::default();
        let _a = locks.acquire(Id(1)).await;
        let b = tokio::time::timeout(Duration::from_secs(1), locks.acquire(Id(2))).await;
        assert!(b.is_ok());
        assert_eq!(locks.len(), 2);
    }
}
