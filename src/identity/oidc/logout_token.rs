//! Back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0, section 2.6): signature
//! via the provider's JWKS, `iss`, `aud`, `iat`, the back-channel logout event, `sid` or `sub`,
//! and no `nonce` (so an id_token can never be replayed as a logout token). Pure apart from the
//! key lookup; ending the sessions is the caller's job.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::jwt::{Claims, KeySource, TokenError, audiences, numeric_date, verify_signature};

/// The event a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old a logout token may be: providers send them right away, and an old one is more
/// likely a replay than a delivery.
const MAX_AGE: i64 = 10 * 60;

/// Whose sessions to end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutTarget {
    /// The provider's session id: end the sessions from that provider session.
    pub sid: Option<String>,
    /// The subject: without `sid`, end all of this user's sessions at this provider.
    pub sub: Option<String>,
}

/// What a valid logout token must say.
#[derive(Clone, Copy, Debug)]
pub struct LogoutCheck<'a> {
    /// The provider's issuer, compared exactly.
    pub issuer: &'a str,
    /// Our client id, which must be in `aud`.
    pub client_id: &'a str,
    /// Clock skew tolerated on `iat` and `exp`.
    pub leeway: Duration,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

/// Verifies a logout token and says whose sessions it ends.
pub async fn verify_logout_token<K: KeySource>(
    token: &str,
    allowed: &[Algorithm],
    keys: &K,
    check: &LogoutCheck<'_>,
) -> Result<LogoutTarget, TokenError> {
    let claims = verify_signature(token, allowed, &["logout+jwt", "JWT"], keys).await?;
    check_claims(&claims, check)
}

/// The claim checks, after the signature.
pub fn check_claims(claims: &Claims, check: &LogoutCheck<'_>) -> Result<LogoutTarget, TokenError> {
    let leeway = i64::try_from(check.leeway.as_secs()).unwrap_or(i64::MAX);
    if claims.get("iss").and_then(Value::as_str) != Some(check.issuer) {
        return Err(TokenError::claim("iss", "missing or not our issuer"));
    }
    let aud = audiences(claims).ok_or_else(|| TokenError::claim("aud", "missing"))?;
    if !aud.contains(&check.client_id) {
        return Err(TokenError::claim("aud", "does not contain our client id"));
    }
    let iat = numeric_date(claims, "iat").ok_or_else(|| TokenError::claim("iat", "missing"))?;
    if iat > check.now.saturating_add(leeway) {
        return Err(TokenError::claim("iat", "in the future"));
    }
    if iat < check.now.saturating_sub(MAX_AGE + leeway) {
        return Err(TokenError::claim("iat", "too old"));
    }
    if let Some(exp) = claims.get("exp") {
        match exp.as_i64() {
            Some(exp) if check.now < exp.saturating_add(leeway) => {}
            _ => return Err(TokenError::claim("exp", "expired or not a number")),
        }
    }
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT));
    if !matches!(event, Some(Value::Object(_))) {
        return Err(TokenError::claim("events", "no back-channel logout event"));
    }
    if claims.contains_key("nonce") {
        return Err(TokenError::claim("nonce", "must not be present"));
    }
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let target = LogoutTarget {
        sid: text("sid"),
        sub: text("sub"),
    };
    if target.sid.is_none() && target.sub.is_none() {
        return Err(TokenError::claim("sid", "neither sid nor sub present"));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::oidc::test_keys::{TestKey, now};
    use serde_json::json;

    const ISS: &str = "https://id.example";

    fn good() -> serde_json::Value {
        json!({
            "iss": ISS, "aud": "portcullis", "iat": now(), "jti": "j1", "sid": "s-1",
            "sub": "alice", "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        })
    }

    async fn verify(claims: serde_json::Value) -> Result<LogoutTarget, TokenError> {
        let key = TestKey::new("k");
        let mut header = key.header();
        header.typ = Some("logout+jwt".into());
        let token = key.sign_with(&header, &claims);
        let check = LogoutCheck {
            issuer: ISS,
            client_id: "portcullis",
            leeway: Duration::from_secs(60),
            now: now(),
        };
        verify_logout_token(&token, &[Algorithm::ES256], &key, &check).await
    }

    fn claim(result: Result<LogoutTarget, TokenError>) -> &'static str {
        match result {
            Err(TokenError::Claim { claim, .. }) => claim,
            other => panic!("expected a claim error, got {other:?}"),
        }
    }

    fn edit(f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> serde_json::Value {
        let mut claims = good();
        f(claims.as_object_mut().unwrap());
        claims
    }

    #[tokio::test]
    async fn good_token_names_sid_and_sub() {
        let target = verify(good()).await.unwrap();
        assert_eq!(target.sid.as_deref(), Some("s-1"));
        assert_eq!(target.sub.as_deref(), Some("alice"));
        let only_sub = verify(edit(|c| {
            c.remove("sid");
        }))
        .await
        .unwrap();
        assert_eq!(only_sub.sid, None);
    }

    #[tokio::test]
    async fn refusals() {
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("iss".into(), json!("https://evil"));
                }))
                .await
            ),
            "iss"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("aud".into(), json!("other"));
                }))
                .await
            ),
            "aud"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.remove("iat");
                }))
                .await
            ),
            "iat"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("iat".into(), json!(now() + 3600));
                }))
                .await
            ),
            "iat"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("iat".into(), json!(now() - 86400));
                }))
                .await
            ),
            "iat"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("exp".into(), json!(now() - 3600));
                }))
                .await
            ),
            "exp"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.remove("events");
                }))
                .await
            ),
            "events"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("events".into(), json!({"other": {}}));
                }))
                .await
            ),
            "events"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("events".into(), json!({BACKCHANNEL_LOGOUT_EVENT: "yes"}));
                }))
                .await
            ),
            "events"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.insert("nonce".into(), json!("n"));
                }))
                .await
            ),
            "nonce"
        );
        assert_eq!(
            claim(
                verify(edit(|c| {
                    c.remove("sid");
                    c.remove("sub");
                }))
                .await
            ),
            "sid"
        );
    }

    #[tokio::test]
    async fn an_id_token_typ_is_accepted_but_others_are_not() {
        let key = TestKey::new("k");
        let mut header = key.header();
        header.typ = Some("at+jwt".into());
        let token = key.sign_with(&header, &good());
        let check = LogoutCheck {
            issuer: ISS,
            client_id: "portcullis",
            leeway: Duration::from_secs(60),
            now: now(),
        };
        assert!(matches!(
            verify_logout_token(&token, &[Algorithm::ES256], &key, &check).await,
            Err(TokenError::Typ(_))
        ));
    }
}
