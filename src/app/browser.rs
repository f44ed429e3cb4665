//! The browser-session identity source for the gateway: loads the caller's session and, when
//! its access token is about to expire, renews it with the refresh token. One refresh per
//! session at a time (the session's refresh guard; whoever waited re-loads and finds the new
//! tokens), never retried: `invalid_grant` ends the session, other failures keep it until the
//! session's own timeouts.

use http::HeaderMap;
use jiff::Timestamp;

use super::AppState;
use super::login::LEEWAY;
use crate::identity::Identity;
use crate::identity::oidc::{self, IdTokenCheck, ProviderError};
use crate::session::{Loaded, SessionData, SessionId};

/// Refresh this long before the access token expires.
const REFRESH_AHEAD: i64 = 60;

/// The caller's session identity, refreshed if due; None when there is no live session.
pub async fn session_identity(state: &AppState, headers: &HeaderMap) -> Option<Identity> {
    session_data(state, headers).await.map(|data| data.identity)
}

/// The caller's live session (refreshed if due): identity and provider tokens.
pub async fn session_data(state: &AppState, headers: &HeaderMap) -> Option<SessionData> {
    if !state.sessions.has_cookie(headers) {
        return None;
    }
    let now = Timestamp::now();
    let (id, data) = match state.sessions.load_detailed(headers, now).await {
        Ok(Loaded::Live(id, data)) => (id, data),
        Ok(Loaded::Ended(data, reason)) => {
            if let Some(audit) = &state.audit {
                audit.session_expired(&data, reason);
            }
            return None;
        }
        Ok(Loaded::Absent) => return None,
        Err(error) => {
            tracing::error!(%error, "session store failed; treating the caller as anonymous");
            return None;
        }
    };
    if !refresh_due(&data, now) {
        return Some(data);
    }
    refresh(state, headers, id, now).await
}

/// When a token granted `now` for `expires_in` seconds expires, and its lifetime, as stored
/// in the session.
pub(super) fn access_expiry(now: Timestamp, expires_in: Option<u64>) -> (Option<i64>, Option<i64>) {
    let lifetime = expires_in.map(|s| i64::try_from(s).unwrap_or(i64::MAX / 4));
    (
        lifetime.map(|s| now.as_second().saturating_add(s)),
        lifetime,
    )
}

fn refresh_due(data: &SessionData, now: Timestamp) -> bool {
    // A token living less than twice REFRESH_AHEAD would be due the moment it arrives, and
    // every request would refresh: such tokens are renewed halfway through their life.
    let ahead = data
        .access_lifetime
        .map_or(REFRESH_AHEAD, |lifetime| REFRESH_AHEAD.min(lifetime / 2));
    data.refresh_token.is_some()
        && data
            .access_expires_at
            .is_some_and(|at| now.as_second() >= at.saturating_sub(ahead))
}

async fn refresh(
    state: &AppState,
    headers: &HeaderMap,
    id: SessionId,
    now: Timestamp,
) -> Option<SessionData> {
    let _guard = state.sessions.refresh_guard(&id).await;
    // Another request may have refreshed (or ended) the session while we waited.
    let (_, mut data) = state.sessions.load(headers, now).await.ok()??;
    if !refresh_due(&data, now) {
        return Some(data);
    }
    let provider = state.oidc.get(&data.provider)?;
    let Some(discovered) = provider.discovered() else {
        return Some(data);
    };
    let refresh_token = data.refresh_token.clone()?;
    match provider.refresh(&discovered, &refresh_token).await {
        Ok(tokens) => {
            if let Some(id_token) = &tokens.id_token {
                let check = IdTokenCheck {
                    issuer: &discovered.metadata.issuer,
                    client_id: &provider.config.client_id,
                    nonce: None,
                    leeway: LEEWAY,
                    now: now.as_second(),
                };
                match oidc::verify_id_token(
                    id_token,
                    &discovered.algorithms,
                    &discovered.keys,
                    &check,
                )
                .await
                {
                    // OIDC Core 12.2: a refreshed id_token must be about the same user.
                    Ok(claims)
                        if claims.get("sub").and_then(|s| s.as_str())
                            == Some(&data.identity.subject) =>
                    {
                        if let Ok(identity) = oidc::identity_from_claims(
                            &provider.config,
                            &discovered.metadata.issuer,
                            claims,
                            None,
                        ) {
                            data.identity = identity;
                        }
                        data.id_token = Some(id_token.clone());
                    }
                    _ => {
                        tracing::warn!(provider = %provider.config.id, "refreshed id_token refused; ending the session");
                        let _ = state.sessions.end(&id).await;
                        return None;
                    }
                }
            }
            data.access_token = Some(tokens.access_token);
            // Providers that rotate send a new refresh token; others keep the old one valid.
            if tokens.refresh_token.is_some() {
                data.refresh_token = tokens.refresh_token;
            }
            (data.access_expires_at, data.access_lifetime) = access_expiry(now, tokens.expires_in);
            match state.sessions.update(&id, &data, now).await {
                Ok(()) => Some(data),
                Err(error) => {
                    tracing::info!(%error, "session ended during refresh");
                    None
                }
            }
        }
        Err(ProviderError::InvalidGrant(_)) => {
            tracing::info!(provider = %provider.config.id, subject = %data.identity.subject, "refresh token refused; ending the session");
            let _ = state.sessions.end(&id).await;
            None
        }
        Err(error) => {
            tracing::warn!(provider = %provider.config.id, %error, "refresh failed; keeping the session");
            Some(data)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn session(expires_in: u64, granted: i64) -> SessionData {
        let (access_expires_at, access_lifetime) =
            access_expiry(Timestamp::from_second(granted).unwrap(), Some(expires_in));
        SessionData {
            identity: Identity::default(),
            provider: "idp".into(),
            id_token: None,
            access_token: Some("at".into()),
            refresh_token: Some("rt".into()),
            access_expires_at,
            access_lifetime,
            sid: None,
            created_at: granted,
        }
    }

    fn due_at(data: &SessionData, second: i64) -> bool {
        refresh_due(data, Timestamp::from_second(second).unwrap())
    }

    #[test]
    fn long_lived_tokens_refresh_a_minute_before_expiry() {
        let data = session(3600, 1_000);
        assert!(!due_at(&data, 1_000));
        assert!(!due_at(&data, 4_539));
        assert!(due_at(&data, 4_540));
    }

    #[test]
    fn short_lived_tokens_refresh_halfway_not_on_every_request() {
        let data = session(20, 1_000);
        assert!(!due_at(&data, 1_000), "a fresh token is not due");
        assert!(!due_at(&data, 1_009));
        assert!(due_at(&data, 1_010));
        let data = session(60, 1_000);
        assert!(!due_at(&data, 1_029));
        assert!(due_at(&data, 1_030));
    }

    #[test]
    fn sessions_without_a_lifetime_or_refresh_token_keep_the_old_rule() {
        let mut data = session(20, 1_000);
        data.access_lifetime = None;
        assert!(due_at(&data, 1_000), "unknown lifetime: a minute ahead");
        data.refresh_token = None;
        assert!(!due_at(&data, 1_100), "nothing to refresh with");
        let mut data = session(20, 1_000);
        data.access_expires_at = None;
        assert!(!due_at(&data, 1_100));
    }
}
