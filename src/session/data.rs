//! What a session and a pending login hold, and how they are written into a tower-sessions
//! [`Record`]: one JSON value under a key naming the record's kind, so a record of one kind is
//! never mistaken for another (a login record presented as a session cookie loads as nothing).
//! Tokens are secrets: the `Debug` impls here print `[redacted]` instead.

use std::fmt;

use serde::{Deserialize, Serialize};
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};

use super::SessionError;
use crate::identity::{AuthMethod, Identity};

/// What a logged-in browser has, kept server-side; the cookie holds only the session id.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionData {
    /// The verified caller: `auth` = [`AuthMethod::Session`], `provider` = `Some(id)`.
    #[serde(with = "identity_json")]
    pub identity: Identity,
    /// The configured provider id that logged the user in.
    pub provider: String,
    /// The id_token, for `id_token_hint` at RP-initiated logout.
    pub id_token: Option<String>,
    /// The provider's access token.
    pub access_token: Option<String>,
    /// The refresh token, to renew before `access_expires_at`.
    pub refresh_token: Option<String>,
    /// When the access token expires, unix seconds.
    pub access_expires_at: Option<i64>,
    /// The access token's lifetime as granted (`expires_in`, seconds), so a short-lived token
    /// is refreshed halfway through rather than on every request. Absent in sessions stored
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_lifetime: Option<i64>,
    /// The OIDC session id (`sid`) from the id_token, for back-channel logout.
    pub sid: Option<String>,
    /// Login time, unix seconds. [`super::Sessions::create`] sets it; the absolute timeout
    /// counts from it and [`super::Sessions::update`] cannot move it.
    pub created_at: i64,
}

/// A login in progress, between `/.portcullis/login` and `/.portcullis/callback`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The provider id the browser was sent to.
    pub provider: String,
    /// The `state` parameter sent to the provider.
    pub state: String,
    /// The `nonce` the id_token must carry.
    pub nonce: String,
    /// The PKCE code verifier (S256 challenge sent).
    pub pkce_verifier: String,
    /// Where to send the browser after login (already checked against open redirects).
    pub return_to: String,
    /// Unix seconds; informational (the store record's expiry is what bounds the login).
    pub created_at: i64,
}

fn redacted(secret: &Option<String>) -> &'static str {
    if secret.is_some() {
        "[redacted]"
    } else {
        "None"
    }
}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionData")
            .field("identity", &self.identity)
            .field("provider", &self.provider)
            .field("id_token", &redacted(&self.id_token))
            .field("access_token", &redacted(&self.access_token))
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("access_expires_at", &self.access_expires_at)
            .field("access_lifetime", &self.access_lifetime)
            .field("sid", &self.sid)
            .field("created_at", &self.created_at)
            .finish()
    }
}

impl fmt::Debug for LoginState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginState")
            .field("provider", &self.provider)
            .field("state", &"[redacted]")
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &"[redacted]")
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// [`Identity`] is `Serialize` only (it is built by verification, never parsed from a
/// request); sessions read it back from their own store through this mirror. Listing every
/// field without `..` makes a new `Identity` field a compile error here, not a silent loss.
mod identity_json {
    use super::*;

    #[derive(Deserialize)]
    struct Stored {
        subject: String,
        issuer: String,
        #[serde(default)]
        email: Option<String>,
        #[serde(default)]
        groups: Vec<String>,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        provider: Option<String>,
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        auth: AuthMethod,
        #[serde(default)]
        claims: serde_json::Map<String, serde_json::Value>,
    }

    pub(super) fn serialize<S: serde::Serializer>(id: &Identity, s: S) -> Result<S::Ok, S::Error> {
        id.serialize(s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Identity, D::Error> {
        let Stored {
            subject,
            issuer,
            email,
            groups,
            scopes,
            provider,
            client_id,
            auth,
            claims,
        } = Stored::deserialize(d)?;
        Ok(Identity {
            subject,
            issuer,
            email,
            groups,
            scopes,
            provider,
            client_id,
            auth,
            claims,
        })
    }
}

/// A session record's value: the data plus what only this module may change.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredSession {
    pub data: SessionData,
    /// Creation time in milliseconds, compared with back-channel revocations.
    pub created_ms: i64,
    /// Unix seconds after which the session is over, however active.
    pub absolute_at: i64,
}

/// The idle clock, kept in its own small record so that a load never rewrites the session
/// record (rewriting it could resurrect a session ended in the meantime).
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(super) struct Touch {
    pub last_seen: i64,
}

/// Session ids listed under one (issuer, sid) or (issuer, sub), for back-channel logout.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(super) struct SessionIndex {
    pub sessions: Vec<String>,
}

/// A back-channel logout: sessions created at or before `at_ms` with the key are over.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(super) struct Revocation {
    pub at_ms: i64,
}

/// The record kinds and the data key each is stored under.
pub(super) trait RecordKind: Serialize + for<'de> Deserialize<'de> {
    const KEY: &'static str;
}
impl RecordKind for StoredSession {
    const KEY: &'static str = "session";
}
impl RecordKind for Touch {
    const KEY: &'static str = "touch";
}
impl RecordKind for SessionIndex {
    const KEY: &'static str = "index";
}
impl RecordKind for Revocation {
    const KEY: &'static str = "revoked";
}
impl RecordKind for LoginState {
    const KEY: &'static str = "login";
}

/// A record holding `value` under its kind's key, expiring at `expires_at` (unix seconds).
pub(super) fn to_record<T: RecordKind>(
    id: Id,
    value: &T,
    expires_at: i64,
) -> Result<Record, SessionError> {
    let json = serde_json::to_value(value).map_err(|e| SessionError::Data(e.to_string()))?;
    let mut data = std::collections::HashMap::with_capacity(1);
    data.insert(T::KEY.to_owned(), json);
    Ok(Record {
        id,
        data,
        expiry_date: expiry_date(expires_at)?,
    })
}

/// The value of kind `T` in `record`; None when the record is of another kind or unreadable
/// (an old format is treated like an absent record, never like an error a client could cause).
pub(super) fn from_record<T: RecordKind>(record: &Record) -> Option<T> {
    let value = record.data.get(T::KEY)?;
    T::deserialize(value).ok()
}

/// Unix seconds as the store's expiry type.
pub(super) fn expiry_date(unix_seconds: i64) -> Result<OffsetDateTime, SessionError> {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .map_err(|e| SessionError::Data(format!("expiry out of range: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SessionData {
        let mut claims = serde_json::Map::new();
        claims.insert("dept".into(), serde_json::json!("eng"));
        SessionData {
            identity: Identity {
                subject: "alice".into(),
                issuer: "https://idp.example".into(),
                email: Some("alice@corp.example".into()),
                groups: vec!["eng".into(), "security".into()],
                scopes: vec![],
                provider: Some("okta".into()),
                client_id: None,
                auth: AuthMethod::Session,
                claims,
            },
            provider: "okta".into(),
            id_token: Some("eyJ.id.token".into()),
            access_token: Some("at-secret".into()),
            refresh_token: Some("rt-secret".into()),
            access_expires_at: Some(1_900_000_000),
            access_lifetime: Some(300),
            sid: Some("sid-1".into()),
            created_at: 1_800_000_000,
        }
    }

    #[test]
    fn session_data_round_trips_through_json() {
        let data = sample();
        let json = serde_json::to_value(&data).unwrap();
        let back: SessionData = serde_json::from_value(json).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn sessions_stored_without_an_access_lifetime_still_load() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json.as_object_mut().unwrap().remove("access_lifetime");
        let back: SessionData = serde_json::from_value(json).unwrap();
        assert_eq!(back.access_lifetime, None);
    }

    #[test]
    fn debug_redacts_tokens() {
        let shown = format!("{:?}", sample());
        for secret in ["eyJ.id.token", "at-secret", "rt-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("alice"));
        let login = LoginState {
            provider: "okta".into(),
            state: "st4te".into(),
            nonce: "n0nce".into(),
            pkce_verifier: "v3rifier".into(),
            return_to: "/app".into(),
            created_at: 0,
        };
        let shown = format!("{login:?}");
        for secret in ["st4te", "n0nce", "v3rifier"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_record_of_one_kind_never_reads_as_another() {
        let record = to_record(Id(7), &Touch { last_seen: 5 }, 1_900_000_000).unwrap();
        assert!(from_record::<Touch>(&record).is_some());
        assert!(from_record::<StoredSession>(&record).is_none());
        assert!(from_record::<LoginState>(&record).is_none());
        assert_eq!(record.expiry_date.unix_timestamp(), 1_900_000_000);
    }
}
