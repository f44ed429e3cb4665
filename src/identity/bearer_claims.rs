//! The claim rules for a bearer token whose signature already verified, and the mapping of its
//! claims into an [`Identity`]. Pure: the clock is a parameter. It never looks at the token's
//! header or signature; [`super::bearer`] does that before calling in here.

use serde_json::{Map, Value};

use super::bearer::BearerError;
use super::{AuthMethod, Identity};
use crate::config::TokenIssuerConfig;

/// A verified token's identity and its `exp` (whole seconds since the epoch, rounded down).
pub(crate) struct Checked {
    pub identity: Identity,
    pub exp: u64,
}

/// A NumericDate (RFC 7519 section 2): a JSON number of seconds, fractions allowed. Strings,
/// negative numbers and NaN-like values are refused.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, BearerError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err(BearerError::Claim(format!("`{name}` is not a valid date"))),
        },
        Some(_) => Err(BearerError::Claim(format!("`{name}` is not a number"))),
    }
}

fn required_date(claims: &Map<String, Value>, name: &'static str) -> Result<f64, BearerError> {
    numeric_date(claims, name)?.ok_or_else(|| BearerError::Claim(format!("`{name}` is missing")))
}

/// Checks times, issuer, audience and required claims at `now` (seconds since the epoch), then
/// maps the claims.
pub(crate) fn check(
    claims: Map<String, Value>,
    issuer: &TokenIssuerConfig,
    now: f64,
) -> Result<Checked, BearerError> {
    let leeway = issuer.leeway.as_secs_f64();
    let exp = required_date(&claims, "exp")?;
    let iat = required_date(&claims, "iat")?;
    let nbf = numeric_date(&claims, "nbf")?;
    if exp + leeway <= now {
        return Err(BearerError::Claim("expired".into()));
    }
    if iat > now + leeway {
        return Err(BearerError::Claim("`iat` is in the future".into()));
    }
    if nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(BearerError::Claim("`nbf` is in the future".into()));
    }
    if exp - iat > issuer.max_lifetime.as_secs_f64() {
        return Err(BearerError::Claim(
            "lifetime (exp - iat) exceeds max_lifetime".into(),
        ));
    }
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == issuer.issuer => {}
        _ => return Err(BearerError::Claim("wrong `iss`".into())),
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => issuer.audiences.contains(aud),
        Some(Value::Array(list)) => list.iter().any(|a| {
            a.as_str()
                .is_some_and(|a| issuer.audiences.iter().any(|x| x == a))
        }),
        _ => false,
    };
    if !audience_ok {
        return Err(BearerError::Claim("wrong `aud`".into()));
    }
    for name in &issuer.required_claims {
        if claims.get(name).is_none_or(Value::is_null) {
            return Err(BearerError::Claim(format!(
                "required claim `{name}` is missing"
            )));
        }
    }
    let client_id = string_claim(&claims, "client_id").or_else(|| string_claim(&claims, "azp"));
    // Client-credentials tokens from some providers carry no `sub`: the client is the subject.
    let subject = match string_claim(&claims, "sub").or_else(|| client_id.clone()) {
        Some(subject) if !subject.is_empty() => subject,
        _ => return Err(BearerError::Claim("no `sub` and no client id".into())),
    };
    let email = match (claims.get("email"), claims.get("email_verified")) {
        (Some(Value::String(email)), Some(Value::Bool(true))) => Some(email.to_lowercase()),
        _ => None,
    };
    let scopes = match claims.get("scope") {
        Some(value) => words(value),
        None => claims.get("scp").map(words).unwrap_or_default(),
    };
    let groups = claims
        .get(&issuer.groups_claim)
        .map(words)
        .unwrap_or_default();
    Ok(Checked {
        identity: Identity {
            subject,
            issuer: issuer.issuer.clone(),
            email,
            groups,
            scopes,
            provider: None,
            client_id,
            auth: AuthMethod::Bearer,
            claims,
        },
        // Whole seconds: a cached entry must never outlive the real `exp`.
        exp: exp.floor() as u64,
    })
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A space-separated string or an array of strings (non-strings in the array are skipped).
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
#[path = "bearer_claims_tests.rs"]
mod tests;
