//! The pending login between `/.portcullis/login` and `/.portcullis/callback`: stored under a
//! random id that only the browser which started the login holds, in a short-lived cookie
//! scoped to `/.portcullis/`. The callback gets the state back only with that cookie AND the
//! matching `state` parameter, and only once: the record is deleted on every attempt.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use jiff::Timestamp;
use tower_sessions::session::Id;
use tower_sessions::session_store::SessionStore;

use super::cookie::cookie_value;
use super::data::{LoginState, from_record, to_record};
use super::{SessionError, Sessions};

/// How long a browser has to come back from the provider.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

impl Sessions {
    /// Stores a pending login (single use, 10 minutes) and returns the `Set-Cookie` value
    /// (`<cookie_name>_login`, HttpOnly, SameSite=Lax, Path=/.portcullis/) binding it to this
    /// browser. A second login started in the same browser replaces the first one's cookie.
    pub async fn begin_login(
        &self,
        state: LoginState,
        now: Timestamp,
    ) -> Result<HeaderValue, SessionError> {
        let expires = now.as_second().saturating_add(600);
        let mut record = to_record(Id::default(), &state, expires)?;
        self.inner.store.create(&mut record).await?;
        Ok(self
            .inner
            .cookies
            .login_cookie(&record.id.to_string(), LOGIN_TIMEOUT))
    }

    /// The pending login, only if the browser's login cookie names one AND `state` equals its
    /// stored state AND it has not expired. The record is deleted either way (single use).
    pub async fn take_login(
        &self,
        headers: &HeaderMap,
        state: &str,
        now: Timestamp,
    ) -> Result<Option<LoginState>, SessionError> {
        let Some(value) = cookie_value(headers, &self.inner.cookies.login) else {
            return Ok(None);
        };
        let Ok(id) = value.parse::<Id>() else {
            return Ok(None);
        };
        let store = &self.inner.store;
        let Some(record) = store.load(&id).await? else {
            return Ok(None);
        };
        let Some(login) = from_record::<LoginState>(&record) else {
            // Not a login record (e.g. a session id pasted into the login cookie): leave it.
            return Ok(None);
        };
        store.delete(&id).await?;
        let fresh = now.as_second() < record.expiry_date.unix_timestamp();
        Ok((fresh && same(login.state.as_bytes(), state.as_bytes())).then_some(login))
    }

    /// `Set-Cookie` that removes the login cookie (send it with the callback's answer).
    pub fn clear_login_cookie(&self) -> HeaderValue {
        self.inner.cookies.clear_login()
    }
}

/// Compares without an early exit, so timing does not reveal how much of `state` matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_compares_whole_values() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"ab"));
        assert!(!super::same(b"", b"a"));
    }
}
