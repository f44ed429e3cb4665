//! Ending sessions by what a provider's back-channel `logout_token` names: an OIDC session
//! (`iss` + `sid`) or a user (`iss` + `sub`). Every instance sharing the store honours it: the
//! sessions listed in the index are deleted at once, and a revocation record makes any session
//! created up to now with that key fail its next load, including one a concurrent login left
//! out of the index. Instance clocks should agree within a second or so; a session created on
//! an instance whose clock runs ahead of the revoking one and missing from the index is the one
//! case that survives.

use jiff::Timestamp;
use tower_sessions::session::Id;
use tower_sessions::session_store::SessionStore;

use super::data::{Revocation, SessionData, SessionIndex, StoredSession, from_record, to_record};
use super::{SessionError, Sessions, derived_id};

/// Most session ids one index keeps; older ones are still ended by the revocation record.
const INDEX_LIMIT: usize = 256;

#[derive(Clone, Copy)]
enum Key {
    Sid,
    Sub,
}

impl Key {
    fn index(self) -> &'static str {
        match self {
            Key::Sid => "sid",
            Key::Sub => "sub",
        }
    }

    fn revocation(self) -> &'static str {
        match self {
            Key::Sid => "sid-revoked",
            Key::Sub => "sub-revoked",
        }
    }

    fn matches(self, data: &SessionData, issuer: &str, value: &str) -> bool {
        data.identity.issuer == issuer
            && match self {
                Key::Sid => data.sid.as_deref() == Some(value),
                Key::Sub => data.identity.subject == value,
            }
    }
}

impl Sessions {
    /// Back-channel logout by OIDC session: ends every session with this (issuer, sid), in
    /// the shared store. Returns how many were found and ended now; sessions the index missed
    /// are refused at their next load and not counted.
    pub async fn end_by_sid(&self, issuer: &str, sid: &str) -> Result<usize, SessionError> {
        self.end_by(Key::Sid, issuer, sid, Timestamp::now()).await
    }

    /// Back-channel logout by user: ends every session with this (issuer, sub). Same
    /// guarantees as [`Sessions::end_by_sid`].
    pub async fn end_by_subject(&self, issuer: &str, sub: &str) -> Result<usize, SessionError> {
        self.end_by(Key::Sub, issuer, sub, Timestamp::now()).await
    }

    async fn end_by(
        &self,
        key: Key,
        issuer: &str,
        value: &str,
        now: Timestamp,
    ) -> Result<usize, SessionError> {
        let store = &self.inner.store;
        // The revocation first: from here on no matching session can load, whatever the index
        // says. It must outlive every session it covers.
        let revocation = to_record(
            derived_id(key.revocation(), issuer, value),
            &Revocation {
                at_ms: now.as_millisecond(),
            },
            now.as_second().saturating_add(self.inner.absolute + 60),
        )?;
        store.upsert(&revocation).await?;
        let index_id = derived_id(key.index(), issuer, value);
        let listed = store
            .load(&index_id)
            .await?
            .as_ref()
            .and_then(from_record::<SessionIndex>)
            .unwrap_or_default();
        let mut ended = 0;
        for text in &listed.sessions {
            let Ok(id) = text.parse::<Id>() else { continue };
            let stored = store
                .load(&id)
                .await?
                .as_ref()
                .and_then(from_record::<StoredSession>);
            if stored.is_some_and(|s| key.matches(&s.data, issuer, value)) {
                self.delete_session(&id).await?;
                ended += 1;
            }
        }
        store.delete(&index_id).await?;
        Ok(ended)
    }

    /// Lists a new session under its (issuer, sub) and, when known, (issuer, sid).
    pub(super) async fn index_session(
        &self,
        id: &Id,
        data: &SessionData,
        absolute_at: i64,
    ) -> Result<(), SessionError> {
        let issuer = &data.identity.issuer;
        self.add_to_index(Key::Sub, issuer, &data.identity.subject, id, absolute_at)
            .await?;
        if let Some(sid) = &data.sid {
            self.add_to_index(Key::Sid, issuer, sid, id, absolute_at)
                .await?;
        }
        Ok(())
    }

    async fn add_to_index(
        &self,
        key: Key,
        issuer: &str,
        value: &str,
        id: &Id,
        absolute_at: i64,
    ) -> Result<(), SessionError> {
        let store = &self.inner.store;
        let index_id = derived_id(key.index(), issuer, value);
        let existing = store.load(&index_id).await?;
        let expires = existing
            .as_ref()
            .map(|r| r.expiry_date.unix_timestamp())
            .unwrap_or(absolute_at)
            .max(absolute_at);
        let mut index = existing
            .as_ref()
            .and_then(from_record::<SessionIndex>)
            .unwrap_or_default();
        index.sessions.push(id.to_string());
        if index.sessions.len() > INDEX_LIMIT {
            let extra = index.sessions.len() - INDEX_LIMIT;
            index.sessions.drain(..extra);
        }
        store.upsert(&to_record(index_id, &index, expires)?).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionConfig;
    use crate::identity::Identity;
    use crate::session::AnyStore;
    use http::{HeaderMap, HeaderValue, header};

    fn data(sub: &str, sid: &str) -> SessionData {
        SessionData {
            identity: Identity {
                subject: sub.into(),
                issuer: "https://idp".into(),
                ..Identity::default()
            },
            provider: "idp".into(),
            id_token: None,
            access_token: None,
            refresh_token: None,
            access_expires_at: None,
            access_lifetime: None,
            sid: Some(sid.into()),
            created_at: 0,
        }
    }

    fn browser(set_cookie: &HeaderValue) -> HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
        h
    }

    fn sessions() -> Sessions {
        let store = AnyStore::Memory(crate::session::SweptMemoryStore::default());
        Sessions::with_store(store, &SessionConfig::default(), false, None)
    }

    /// Two logins racing on the index can drop one of them from it (last writer wins); the
    /// revocation record must still end that session.
    #[tokio::test]
    async fn revocation_ends_sessions_the_index_lost() {
        let s = sessions();
        let now = Timestamp::now();
        let lost = s.create(data("alice", "A"), now).await.unwrap();
        for key in [Key::Sid.index(), Key::Sub.index()] {
            let value = if key == "sid" { "A" } else { "alice" };
            let id = derived_id(key, "https://idp", value);
            s.inner.store.delete(&id).await.unwrap();
        }
        assert!(s.load(&browser(&lost), now).await.unwrap().is_some());
        assert_eq!(s.end_by_sid("https://idp", "A").await.unwrap(), 0);
        assert!(s.load(&browser(&lost), now).await.unwrap().is_none());

        let lost = s.create(data("bob", "B"), now).await.unwrap();
        let id = derived_id(Key::Sub.index(), "https://idp", "bob");
        s.inner.store.delete(&id).await.unwrap();
        let id = derived_id(Key::Sid.index(), "https://idp", "B");
        s.inner.store.delete(&id).await.unwrap();
        assert_eq!(s.end_by_subject("https://idp", "bob").await.unwrap(), 0);
        assert!(s.load(&browser(&lost), now).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_index_keeps_a_bounded_number_of_ids() {
        let s = sessions();
        let now = Timestamp::now();
        for _ in 0..(INDEX_LIMIT + 5) {
            s.create(data("carol", "C"), now).await.unwrap();
        }
        let id = derived_id(Key::Sub.index(), "https://idp", "carol");
        let record = s.inner.store.load(&id).await.unwrap().unwrap();
        let index = from_record::<SessionIndex>(&record).unwrap();
        assert_eq!(index.sessions.len(), INDEX_LIMIT);
        // The oldest five fell out of the index but are still ended by the revocation.
        assert_eq!(s.end_by_sid("https://idp", "C").await.unwrap(), INDEX_LIMIT);
    }
}
