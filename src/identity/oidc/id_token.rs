//! id_token validation per OpenID Connect Core 3.1.3.7: signature via the provider's JWKS with
//! an asymmetric algorithm it advertises ([`super::jwt`]), then `iss`, `aud`, `azp`, `exp`,
//! `iat`, `nbf` and `nonce`. Pure apart from the key lookup; the clock is a parameter.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::jwt::{Claims, KeySource, TokenError, audiences, numeric_date, verify_signature};

/// What a valid id_token must say.
#[derive(Clone, Copy, Debug)]
pub struct IdTokenCheck<'a> {
    /// The provider's issuer (from discovery), compared exactly.
    pub issuer: &'a str,
    /// Our client id: must be in `aud`, and be `azp` when that is present.
    pub client_id: &'a str,
    /// The nonce sent with this login; None on refresh, where a new id_token repeats the
    /// original nonce or omits it.
    pub nonce: Option<&'a str>,
    /// Clock skew tolerated on `exp`, `iat` and `nbf`.
    pub leeway: Duration,
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
}

/// Verifies `token`'s signature and claims; returns the claims.
pub async fn verify_id_token<K: KeySource>(
    token: &str,
    allowed: &[Algorithm],
    keys: &K,
    check: &IdTokenCheck<'_>,
) -> Result<Claims, TokenError> {
    let claims = verify_signature(token, allowed, &["JWT"], keys).await?;
    check_claims(&claims, check)?;
    Ok(claims)
}

/// The claim checks, after the signature.
pub fn check_claims(claims: &Claims, check: &IdTokenCheck<'_>) -> Result<(), TokenError> {
    let leeway = i64::try_from(check.leeway.as_secs()).unwrap_or(i64::MAX);
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == check.issuer => {}
        Some(iss) => {
            return Err(TokenError::claim(
                "iss",
                format!("`{iss}` is not our issuer"),
            ));
        }
        None => return Err(TokenError::claim("iss", "missing")),
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => {}
        _ => return Err(TokenError::claim("sub", "missing")),
    }
    let aud = audiences(claims).ok_or_else(|| TokenError::claim("aud", "missing"))?;
    if !aud.contains(&check.client_id) {
        return Err(TokenError::claim("aud", "does not contain our client id"));
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == check.client_id => {}
        Some(_) => return Err(TokenError::claim("azp", "is not our client id")),
        // Several audiences without `azp`: we cannot tell who the token was issued to.
        None if aud.len() > 1 => {
            return Err(TokenError::claim("azp", "missing with several audiences"));
        }
        None => {}
    }
    let exp = numeric_date(claims, "exp").ok_or_else(|| TokenError::claim("exp", "missing"))?;
    if check.now >= exp.saturating_add(leeway) {
        return Err(TokenError::claim("exp", "expired"));
    }
    let iat = numeric_date(claims, "iat").ok_or_else(|| TokenError::claim("iat", "missing"))?;
    if iat > check.now.saturating_add(leeway) {
        return Err(TokenError::claim("iat", "in the future"));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")
        && nbf > check.now.saturating_add(leeway)
    {
        return Err(TokenError::claim("nbf", "in the future"));
    }
    match (check.nonce, claims.get("nonce")) {
        (None, _) => {}
        (Some(expected), Some(Value::String(nonce))) if nonce == expected => {}
        (Some(_), Some(_)) => return Err(TokenError::claim("nonce", "does not match")),
        (Some(_), None) => return Err(TokenError::claim("nonce", "missing")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::oidc::test_keys::{TestKey, now};
    use serde_json::json;

    const ISS: &str = "https://id.example";

    fn check(nonce: Option<&str>) -> IdTokenCheck<'_> {
        IdTokenCheck {
            issuer: ISS,
            client_id: "portcullis",
            nonce,
            leeway: Duration::from_secs(60),
            now: now(),
        }
    }

    fn good_claims() -> serde_json::Value {
        json!({
            "iss": ISS, "sub": "alice", "aud": "portcullis", "exp": now() + 300,
            "iat": now(), "nonce": "n-1", "email": "alice@corp.example",
        })
    }

    async fn verify(key: &TestKey, token: &str) -> Result<Claims, TokenError> {
        verify_id_token(token, &[Algorithm::ES256], key, &check(Some("n-1"))).await
    }

    async fn verify_claims(claims: serde_json::Value) -> Result<Claims, TokenError> {
        let key = TestKey::new("k1");
        verify(&key, &key.sign(&claims)).await
    }

    fn claim_error(result: Result<Claims, TokenError>) -> &'static str {
        match result {
            Err(TokenError::Claim { claim, .. }) => claim,
            other => panic!("expected a claim error, got {other:?}"),
        }
    }

    fn with(
        mut claims: serde_json::Value,
        name: &str,
        value: serde_json::Value,
    ) -> serde_json::Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: serde_json::Value, name: &str) -> serde_json::Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    #[tokio::test]
    async fn a_good_token_verifies() {
        let claims = verify_claims(good_claims()).await.unwrap();
        assert_eq!(claims["sub"], "alice");
    }

    #[tokio::test]
    async fn bad_signature_is_refused() {
        let signer = TestKey::new("k1");
        let other = TestKey::new("k1");
        let token = signer.sign(&good_claims());
        assert_eq!(verify(&other, &token).await, Err(TokenError::Signature));
        // A tampered payload with the original signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let evil = json!({"iss": ISS, "sub": "root", "aud": "portcullis", "exp": now() + 300, "iat": now(), "nonce": "n-1"});
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            evil.to_string(),
        );
        assert_eq!(
            verify(&signer, &parts.join(".")).await,
            Err(TokenError::Signature)
        );
    }

    #[tokio::test]
    async fn alg_none_and_hmac_are_refused() {
        let key = TestKey::new("k1");
        let b64 = |v: serde_json::Value| {
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                v.to_string(),
            )
        };
        let none = format!("{}.{}.", b64(json!({"alg": "none"})), b64(good_claims()));
        assert!(matches!(
            verify(&key, &none).await,
            Err(TokenError::Algorithm(_))
        ));
        let hmac = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &good_claims(),
            &jsonwebtoken::EncodingKey::from_secret(b"portcullis"),
        )
        .unwrap();
        assert!(matches!(
            verify(&key, &hmac).await,
            Err(TokenError::Algorithm(_))
        ));
    }

    #[tokio::test]
    async fn crit_and_odd_typ_are_refused() {
        let key = TestKey::new("k1");
        let mut header = key.header();
        header.crit = Some(vec!["exp".into()]);
        assert_eq!(
            verify(&key, &key.sign_with(&header, &good_claims())).await,
            Err(TokenError::Crit)
        );
        let mut header = key.header();
        header.typ = Some("logout+jwt".into());
        assert!(matches!(
            verify(&key, &key.sign_with(&header, &good_claims())).await,
            Err(TokenError::Typ(_))
        ));
    }

    #[tokio::test]
    async fn unknown_kid_is_refused() {
        let key = TestKey::new("k1");
        let mut header = key.header();
        header.kid = Some("other".into());
        assert!(matches!(
            verify(&key, &key.sign_with(&header, &good_claims())).await,
            Err(TokenError::NoKey(_))
        ));
    }

    #[tokio::test]
    async fn wrong_issuer() {
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "iss", json!("https://evil"))).await),
            "iss"
        );
        assert_eq!(
            claim_error(
                verify_claims(with(good_claims(), "iss", json!("https://id.example/"))).await
            ),
            "iss"
        );
        assert_eq!(
            claim_error(verify_claims(without(good_claims(), "iss")).await),
            "iss"
        );
    }

    #[tokio::test]
    async fn wrong_audience() {
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "aud", json!("other"))).await),
            "aud"
        );
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "aud", json!(["other", "x"]))).await),
            "aud"
        );
        assert_eq!(
            claim_error(verify_claims(without(good_claims(), "aud")).await),
            "aud"
        );
    }

    #[tokio::test]
    async fn azp_rules() {
        let many = with(good_claims(), "aud", json!(["portcullis", "other"]));
        assert_eq!(claim_error(verify_claims(many.clone()).await), "azp");
        assert!(
            verify_claims(with(many.clone(), "azp", json!("portcullis")))
                .await
                .is_ok()
        );
        assert_eq!(
            claim_error(verify_claims(with(many, "azp", json!("other"))).await),
            "azp"
        );
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "azp", json!("other"))).await),
            "azp"
        );
    }

    #[tokio::test]
    async fn expired_and_future_tokens() {
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "exp", json!(now() - 61))).await),
            "exp"
        );
        // Within the leeway.
        assert!(
            verify_claims(with(good_claims(), "exp", json!(now() - 5)))
                .await
                .is_ok()
        );
        assert_eq!(
            claim_error(verify_claims(without(good_claims(), "exp")).await),
            "exp"
        );
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "exp", json!("soon"))).await),
            "exp"
        );
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "iat", json!(now() + 3600))).await),
            "iat"
        );
        assert_eq!(
            claim_error(verify_claims(without(good_claims(), "iat")).await),
            "iat"
        );
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "nbf", json!(now() + 3600))).await),
            "nbf"
        );
    }

    #[tokio::test]
    async fn nonce_must_match() {
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "nonce", json!("n-2"))).await),
            "nonce"
        );
        assert_eq!(
            claim_error(verify_claims(without(good_claims(), "nonce")).await),
            "nonce"
        );
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "nonce", json!(1))).await),
            "nonce"
        );
    }

    #[tokio::test]
    async fn missing_subject() {
        assert_eq!(
            claim_error(verify_claims(without(good_claims(), "sub")).await),
            "sub"
        );
        assert_eq!(
            claim_error(verify_claims(with(good_claims(), "sub", json!(""))).await),
            "sub"
        );
    }

    #[test]
    fn algorithm_allow_list_drops_symmetric_and_none() {
        use crate::identity::oidc::jwt::allowed_algorithms;
        let advertised = ["none", "HS256", "ES256", "RS256"].map(String::from);
        assert_eq!(
            allowed_algorithms(&advertised),
            [Algorithm::RS256, Algorithm::ES256]
        );
        assert_eq!(
            allowed_algorithms(&["HS256".to_owned()]),
            [Algorithm::RS256]
        );
    }
}
