//! Signature checks shared by id_tokens and logout_tokens: the header's `alg` must be in the
//! allow-list (asymmetric algorithms only: never `none`, never HMAC with a shared secret), no
//! `crit`, the key comes from the provider's JWKS by `kid` (never from `jku`, `x5u`, `x5c` or an
//! embedded `jwk`). Claim checks are the callers' ([`super::id_token`],
//! [`super::logout_token`]).

use std::future::Future;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Claims as received.
pub type Claims = Map<String, Value>;

/// Signing algorithms a relying party may accept.
pub const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Where verification keys come from (the provider's JWKS in production, a fixed key in
/// tests).
pub trait KeySource: Send + Sync {
    /// The key for `kid` usable with `alg`; may refetch the key set on an unknown `kid`.
    fn key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<DecodingKey>, String>> + Send;
}

impl KeySource for crate::identity::jwks::Jwks {
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<DecodingKey>, String> {
        crate::identity::jwks::Jwks::key(self, kid, alg)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Why a token was refused. Logged and audited; never shown in detail to the browser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWS compact token, or its parts do not decode.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not in the allow-list.
    #[error("algorithm {0} is not allowed")]
    Algorithm(String),
    /// A `crit` header: we understand no extensions, so RFC 7515 says refuse.
    #[error("crit header present")]
    Crit,
    /// `typ` is not one this token kind may carry.
    #[error("unexpected typ {0}")]
    Typ(String),
    /// No key for the token's `kid`.
    #[error("no verification key: {0}")]
    NoKey(String),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// A claim is missing or wrong.
    #[error("claim {claim}: {problem}")]
    Claim {
        /// The claim name.
        claim: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl TokenError {
    pub(crate) fn claim(claim: &'static str, problem: impl Into<String>) -> Self {
        TokenError::Claim {
            claim,
            problem: problem.into(),
        }
    }
}

/// The algorithms to accept for a provider: what it advertises, minus anything symmetric or
/// `none`; RS256 (the OpenID default) when it advertises nothing usable.
pub fn allowed_algorithms(advertised: &[String]) -> Vec<Algorithm> {
    let allowed: Vec<Algorithm> = ASYMMETRIC
        .into_iter()
        .filter(|alg| advertised.iter().any(|name| alg_name(*alg) == name))
        .collect();
    if allowed.is_empty() {
        vec![Algorithm::RS256]
    } else {
        allowed
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "HMAC",
    }
}

/// Verifies the signature and header of `token`, returning its claims unchecked. `typs` lists
/// the acceptable `typ` values (compared case-insensitively); an absent `typ` is accepted.
pub async fn verify_signature<K: KeySource>(
    token: &str,
    allowed: &[Algorithm],
    typs: &[&str],
    keys: &K,
) -> Result<Claims, TokenError> {
    // The `alg` check happens on the raw header first, because the JWT library refuses to
    // even parse `none`, and a clear reason helps whoever reads the log.
    let raw_alg = raw_header_alg(token).ok_or(TokenError::Malformed)?;
    if raw_alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::Algorithm(raw_alg));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if !allowed.contains(&header.alg) {
        return Err(TokenError::Algorithm(raw_alg));
    }
    if header.crit.is_some() {
        return Err(TokenError::Crit);
    }
    if let Some(typ) = &header.typ
        && !typs.iter().any(|t| t.eq_ignore_ascii_case(typ))
    {
        return Err(TokenError::Typ(typ.clone()));
    }
    let key = keys
        .key(header.kid.as_deref(), header.alg)
        .await
        .map_err(TokenError::NoKey)?;
    // Time and audience are checked by the callers with the rules of their token kind.
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data =
        jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
            _ => TokenError::Malformed,
        })?;
    Ok(data.claims)
}

fn raw_header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// A NumericDate claim as whole seconds; None when absent or not a number.
pub(crate) fn numeric_date(claims: &Claims, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// Whether `aud` (a string or an array of strings) contains `client_id`; also the number of
/// audiences.
pub(crate) fn audiences(claims: &Claims) -> Option<Vec<&str>> {
    match claims.get("aud")? {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => many.iter().map(Value::as_str).collect(),
        _ => None,
    }
}
