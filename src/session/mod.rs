//! Server-side browser sessions: the cookie holds only a random 128-bit id; the identity and
//! tokens live in a tower-sessions store chosen by `[session] store` (memory, SQLite, Postgres,
//! Redis). Owns creating (always a fresh id: no fixation), loading with idle and absolute
//! timeouts, ending (one session, or all of a provider session or subject for back-channel
//! logout, honoured by every instance sharing the store), the pending-login state, and the
//! per-session refresh lock. It does not talk to providers or decide access: the OIDC relying
//! party and the policy do. Time is always a parameter, except where a back-channel logout
//! stamps its own revocation.
//!
//! Records in the store, all tower-sessions [`Record`]s holding one JSON value:
//! - session (random id): [`SessionData`] plus creation time and absolute deadline; expires in
//!   the store at the absolute deadline. A load never rewrites it.
//! - touch (id derived from the session id): the idle clock, rewritten at most once a minute;
//!   expires in the store when the session goes idle.
//! - index (id derived from issuer + sid, or issuer + sub): session ids to end eagerly.
//! - revocation (id derived likewise): "sessions created up to this instant are over". Checked
//!   on every load, so a back-channel logout holds even for a session a concurrent login left
//!   out of the index (index updates are read-modify-write, last writer wins).
//! - login (random id, in the login cookie): a [`LoginState`], single use, 10 minutes.

mod cookie;
mod data;
mod login;
mod logout;
mod memory;
mod refresh;
mod store;

pub use data::{LoginState, SessionData};
pub use memory::SweptMemoryStore;
pub use refresh::RefreshGuard;
pub use store::AnyStore;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tower_sessions::session::Id;
use tower_sessions::session_store::SessionStore;

use crate::config::SessionConfig;
use cookie::{CookieJar, cookie_value};
use data::{Revocation, StoredSession, Touch, from_record, to_record};

/// The idle clock is written at most this often per session, to spare the store.
const TOUCH_EVERY: i64 = 60;

/// Why a session operation failed. The store's own message is kept for logs; never send it
/// to a client.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Connecting to or migrating the store at startup.
    #[error("session store setup failed: {0}")]
    Setup(String),
    /// The store failed a read or write.
    #[error("session store: {0}")]
    Store(String),
    /// A value could not be encoded for the store.
    #[error("session data: {0}")]
    Data(String),
    /// [`Sessions::update`] on a session that has ended meanwhile.
    #[error("the session has ended")]
    Ended,
}

impl From<tower_sessions::session_store::Error> for SessionError {
    fn from(e: tower_sessions::session_store::Error) -> Self {
        SessionError::Store(e.to_string())
    }
}

/// What [`Sessions::load_detailed`] found behind the session cookie.
#[derive(Debug)]
pub enum Loaded {
    /// A live session.
    Live(SessionId, SessionData),
    /// The session was over (or revoked) and has just been deleted.
    Ended(SessionData, EndReason),
    /// No cookie, an unknown id, or a session already gone.
    Absent,
}

/// Why a presented session was found over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `session.idle_timeout` passed without a request.
    Idle,
    /// `session.absolute_timeout` passed since login.
    Absolute,
    /// A back-channel logout revoked it.
    Revoked,
}

impl EndReason {
    /// `idle`, `absolute` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Absolute => "absolute",
            EndReason::Revoked => "revoked",
        }
    }
}

/// A session's id as read from its cookie. `Debug` hides it: the id is a bearer credential.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(Id);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// The session service. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: AnyStore,
    cookies: CookieJar,
    idle: i64,
    absolute: i64,
    refresh: refresh::RefreshLocks,
    /// Deletes expired records (SQL and memory stores); stopped when the last clone goes away.
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = &self.sweeper {
            task.abort();
        }
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &store_name(&self.inner.store))
            .field("cookie", &self.inner.cookies.session)
            .field("idle_seconds", &self.inner.idle)
            .field("absolute_seconds", &self.inner.absolute)
            .finish()
    }
}

fn store_name(store: &AnyStore) -> &'static str {
    match store {
        AnyStore::Memory(_) => "memory",
        AnyStore::Sqlite(_) => "sqlite",
        AnyStore::Postgres(_) => "postgres",
        AnyStore::Redis(_) => "redis",
    }
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// A record id derived from `kind`, `issuer` and `value`: every instance computes the same one,
/// and a hash keeps the store key free of user-controlled text.
fn derived_id(kind: &str, issuer: &str, value: &str) -> Id {
    let digest = Sha256::new()
        .chain_update(kind)
        .chain_update("|")
        .chain_update(issuer)
        .chain_update("|")
        .chain_update(value)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(bytes))
}

fn touch_id(session: &Id) -> Id {
    derived_id("touch", "", &session.to_string())
}

impl Sessions {
    /// Connects to the configured store (running its migration, starting its sweeper).
    /// `secure_cookies`: the public URL is https, so cookies get `Secure` and `__Host-`.
    pub async fn from_config(
        cfg: &SessionConfig,
        secure_cookies: bool,
    ) -> Result<Self, SessionError> {
        let (store, sweeper) = AnyStore::connect(&cfg.store).await?;
        Ok(Self::with_store(store, cfg, secure_cookies, sweeper))
    }

    /// Wraps an already connected store (tests, or a caller sharing a pool).
    pub fn with_store(
        store: AnyStore,
        cfg: &SessionConfig,
        secure_cookies: bool,
        sweeper: Option<tokio::task::JoinHandle<()>>,
    ) -> Self {
        Sessions {
            inner: Arc::new(Inner {
                store,
                cookies: CookieJar::new(&cfg.cookie_name, secure_cookies),
                idle: seconds(cfg.idle_timeout),
                absolute: seconds(cfg.absolute_timeout),
                refresh: refresh::RefreshLocks::default(),
                sweeper,
            }),
        }
    }

    /// The session cookie's name as browsers send it (`__Host-portcullis` over https).
    pub fn cookie_name(&self) -> &str {
        &self.inner.cookies.session
    }

    /// The login cookie's name as browsers send it.
    pub fn login_cookie_name(&self) -> &str {
        &self.inner.cookies.login
    }

    /// The store in use (tests and diagnostics).
    pub fn store(&self) -> &AnyStore {
        &self.inner.store
    }

    /// Whether the request carries the session cookie. No allocation, no store access: the
    /// gateway's test before doing any session work.
    pub fn has_cookie(&self, headers: &HeaderMap) -> bool {
        cookie_value(headers, &self.inner.cookies.session).is_some()
    }

    /// Removes portcullis's session and login cookies from a request before it goes upstream,
    /// keeping every other cookie, and joins several `Cookie` fields into one (see
    /// [`crate::proxy::remove_cookies`]).
    pub fn strip_cookies(&self, headers: &mut HeaderMap) {
        crate::proxy::remove_cookies(headers, &self.own_cookie_names());
    }

    /// Removes the `Set-Cookie` fields an upstream's response sent for portcullis's session or
    /// login cookie, keeping every other cookie: an upstream (one of many, less trusted than
    /// the gate) must not plant a session of its choosing in the browser (fixation) or end
    /// one, and its responses come from the same origin, so the browser would take them.
    pub fn strip_set_cookies(&self, headers: &mut HeaderMap) {
        crate::proxy::remove_set_cookies(headers, &self.own_cookie_names());
    }

    /// The session and login cookies' names as sent: what never passes between browser and
    /// upstream in either direction.
    fn own_cookie_names(&self) -> [&str; 2] {
        [&self.inner.cookies.session, &self.inner.cookies.login]
    }

    /// Loads the caller's session from the Cookie header; None when absent, unknown, expired
    /// (idle or absolute) or revoked by a back-channel logout. Extends the idle expiry, writing
    /// at most once a minute (so the idle timeout may end up to a minute early).
    pub async fn load(
        &self,
        headers: &HeaderMap,
        now: Timestamp,
    ) -> Result<Option<(SessionId, SessionData)>, SessionError> {
        Ok(match self.load_detailed(headers, now).await? {
            Loaded::Live(id, data) => Some((id, data)),
            Loaded::Ended(..) | Loaded::Absent => None,
        })
    }

    /// [`Sessions::load`], telling a session that ended on this load (and is deleted now, so
    /// this is reported once per session) apart from no session at all. The audit trail
    /// records the former.
    pub async fn load_detailed(
        &self,
        headers: &HeaderMap,
        now: Timestamp,
    ) -> Result<Loaded, SessionError> {
        let Some(id) = self.presented_id(headers) else {
            return Ok(Loaded::Absent);
        };
        let store = &self.inner.store;
        let Some(record) = store.load(&id).await? else {
            return Ok(Loaded::Absent);
        };
        let Some(stored) = from_record::<StoredSession>(&record) else {
            return Ok(Loaded::Absent);
        };
        let identity = &stored.data.identity;
        let by_sub = derived_id("sub-revoked", &identity.issuer, &identity.subject);
        let by_sid = stored
            .data
            .sid
            .as_deref()
            .map(|sid| derived_id("sid-revoked", &identity.issuer, sid));
        let touch_id = touch_id(&id);
        let (touch, sub_revoked, sid_revoked) =
            tokio::join!(store.load(&touch_id), store.load(&by_sub), async {
                match &by_sid {
                    Some(key) => store.load(key).await,
                    None => Ok(None),
                }
            });
        let now_s = now.as_second();
        let last_seen = touch?
            .as_ref()
            .and_then(from_record::<Touch>)
            .map(|t| t.last_seen);
        let revoked = [sub_revoked?, sid_revoked?]
            .iter()
            .flatten()
            .filter_map(from_record::<Revocation>)
            .any(|r| stored.created_ms <= r.at_ms);
        let over = match last_seen {
            None => true,
            Some(seen) => now_s >= stored.absolute_at || now_s - seen >= self.inner.idle,
        };
        if over || revoked {
            self.delete_session(&id).await?;
            let why = if revoked {
                EndReason::Revoked
            } else if now_s >= stored.absolute_at {
                EndReason::Absolute
            } else {
                EndReason::Idle
            };
            return Ok(Loaded::Ended(stored.data, why));
        }
        if last_seen.is_some_and(|seen| now_s - seen >= TOUCH_EVERY.min(self.inner.idle / 2)) {
            let expires = (now_s + self.inner.idle).min(stored.absolute_at);
            let touch = to_record(touch_id, &Touch { last_seen: now_s }, expires)?;
            store.upsert(&touch).await?;
        }
        Ok(Loaded::Live(SessionId(id), stored.data))
    }

    /// Stores a new session under a FRESH random id (never one the browser sent: no fixation)
    /// and returns the `Set-Cookie` value. Sets `data.created_at` to `now`.
    pub async fn create(
        &self,
        mut data: SessionData,
        now: Timestamp,
    ) -> Result<HeaderValue, SessionError> {
        let now_s = now.as_second();
        data.created_at = now_s;
        let absolute_at = now_s.saturating_add(self.inner.absolute);
        let stored = StoredSession {
            data,
            created_ms: now.as_millisecond(),
            absolute_at,
        };
        let store = &self.inner.store;
        let mut record = to_record(Id::default(), &stored, absolute_at)?;
        store.create(&mut record).await?;
        let id = record.id;
        let touch_expires = (now_s + self.inner.idle).min(absolute_at);
        let touch = to_record(touch_id(&id), &Touch { last_seen: now_s }, touch_expires)?;
        store.upsert(&touch).await?;
        self.index_session(&id, &stored.data, absolute_at).await?;
        let max_age = Duration::from_secs(u64::try_from(self.inner.absolute).unwrap_or(0));
        Ok(self.inner.cookies.session_cookie(&id.to_string(), max_age))
    }

    /// Replaces a session's data (after a token refresh), keeping its creation time and
    /// absolute deadline. [`SessionError::Ended`] when the session is gone meanwhile: the
    /// refreshed tokens must then be dropped, not stored.
    pub async fn update(
        &self,
        id: &SessionId,
        data: &SessionData,
        _now: Timestamp,
    ) -> Result<(), SessionError> {
        let store = &self.inner.store;
        let Some(stored) = store
            .load(&id.0)
            .await?
            .as_ref()
            .and_then(from_record::<StoredSession>)
        else {
            return Err(SessionError::Ended);
        };
        let mut data = data.clone();
        data.created_at = stored.data.created_at;
        let updated = StoredSession { data, ..stored };
        let record = to_record(id.0, &updated, updated.absolute_at)?;
        // A logout between the load above and this write could bring the record back; the
        // window is one store round trip once per token lifetime, and a back-channel logout's
        // revocation record still ends it on the next load.
        store.save(&record).await?;
        Ok(())
    }

    /// Ends one session (logout). Ending an unknown session is not an error.
    pub async fn end(&self, id: &SessionId) -> Result<(), SessionError> {
        self.delete_session(&id.0).await
    }

    /// Ends the session whose cookie `headers` carry, if any, without loading it: a new login
    /// replaces it, and a copy of the old cookie must not stay usable until its idle timeout.
    pub async fn end_presented(&self, headers: &HeaderMap) -> Result<(), SessionError> {
        match self.presented_id(headers) {
            Some(id) => self.delete_session(&id).await,
            None => Ok(()),
        }
    }

    /// The session id the request's cookie names, if it is one at all.
    fn presented_id(&self, headers: &HeaderMap) -> Option<Id> {
        cookie_value(headers, &self.inner.cookies.session)?
            .parse()
            .ok()
    }

    /// `Set-Cookie` that removes the session cookie from the browser.
    pub fn clear_cookie(&self) -> HeaderValue {
        self.inner.cookies.clear_session()
    }

    /// Waits until no other refresh of this session is in flight in this process. Re-load
    /// the session after acquiring it: another request may have refreshed already.
    pub async fn refresh_guard(&self, id: &SessionId) -> RefreshGuard {
        self.inner.refresh.acquire(id.0).await
    }

    async fn delete_session(&self, id: &Id) -> Result<(), SessionError> {
        let store = &self.inner.store;
        store.delete(id).await?;
        store.delete(&touch_id(id)).await?;
        Ok(())
    }
}
