//! Codes, tokens and the signing key of the demo's development OpenID provider
//! ([`super::dev_provider`]): the token endpoint (authorization code with PKCE S256, refresh
//! with rotation, `client_secret_basic`), userinfo, and ES256 id_tokens signed with a P-256 key
//! generated at every start. Everything is in memory and DEVELOPMENT ONLY; nothing here is
//! used by `serve`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Json;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::dev_provider::{DEV_USERS, DevUser, ProviderState};

/// Seconds since the Unix epoch; a parameter so tests can move time.
pub(super) type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

const CODE_TTL: i64 = 60;
const ACCESS_TTL: i64 = 3600;
const ID_TOKEN_TTL: i64 = 3600;
const REFRESH_TTL: i64 = 24 * 3600;

pub(super) fn system_clock() -> Clock {
    Arc::new(|| jiff::Timestamp::now().as_second())
}

/// 256 random bits, base64url: codes, tokens, session ids, the client secret.
pub(super) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The provider's ES256 key and its public JWK.
pub(super) struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    kid: String,
}

impl SigningKey {
    /// A fresh P-256 key with a random `kid`.
    pub(super) fn generate() -> anyhow::Result<SigningKey> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| anyhow::anyhow!("cannot generate the dev provider's P-256 key"))?;
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        let kid = format!("dev-{}", &random_token()[..12]);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk)?;
        Ok(SigningKey {
            encoding,
            decoding,
            jwk,
            kid,
        })
    }

    pub(super) fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    fn sign(&self, claims: &Value) -> jsonwebtoken::errors::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// The `sid` of an id_token this provider issued to `client_id` (expired ones too: logout
    /// hints are often old).
    pub(super) fn session_of(&self, token: &str, issuer: &str, client_id: &str) -> Option<String> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[client_id]);
        let data = jsonwebtoken::decode::<Value>(token, &self.decoding, &validation).ok()?;
        data.claims["sid"].as_str().map(str::to_owned)
    }
}

/// What the chooser's POST recorded for a code.
#[derive(Debug, Clone)]
pub(super) struct PendingCode {
    pub username: &'static str,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub redirect_uri: String,
    pub scope: String,
    pub sid: String,
    /// Also when the code was issued.
    pub auth_time: i64,
}

/// What an access or refresh token stands for.
#[derive(Debug, Clone)]
struct Grant {
    username: &'static str,
    scope: String,
    sid: String,
    auth_time: i64,
    expires_at: i64,
}

#[derive(Default)]
struct Tables {
    codes: HashMap<String, PendingCode>,
    /// Redeemed codes and their session: a replay revokes that session's tokens.
    used_codes: HashMap<String, (String, i64)>,
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
}

/// All outstanding codes and tokens.
#[derive(Default)]
pub(super) struct TokenStore {
    tables: Mutex<Tables>,
}

impl TokenStore {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic elsewhere cannot leave these maps half-updated in a harmful way.
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn issue_code(&self, pending: PendingCode) -> String {
        let code = random_token();
        let mut tables = self.lock();
        let oldest = pending.auth_time - CODE_TTL;
        tables.codes.retain(|_, c| c.auth_time > oldest);
        tables
            .used_codes
            .retain(|_, (_, at)| *at > oldest - REFRESH_TTL);
        tables.codes.insert(code.clone(), pending);
        code
    }

    /// Redeems a code once; a second attempt ends the session it created, as certified
    /// providers do (the code may have been stolen).
    fn redeem_code(&self, code: &str, now: i64) -> Option<PendingCode> {
        let mut tables = self.lock();
        if let Some((sid, _)) = tables.used_codes.get(code).cloned() {
            end_session_in(&mut tables, &sid);
            return None;
        }
        let pending = tables.codes.remove(code)?;
        tables
            .used_codes
            .insert(code.to_owned(), (pending.sid.clone(), now));
        (now - pending.auth_time <= CODE_TTL).then_some(pending)
    }

    /// Takes a refresh token (rotation: each is good once).
    fn redeem_refresh(&self, token: &str, now: i64) -> Option<Grant> {
        let grant = self.lock().refresh.remove(token)?;
        (grant.expires_at > now).then_some(grant)
    }

    fn access_grant(&self, token: &str, now: i64) -> Option<Grant> {
        let tables = self.lock();
        tables
            .access
            .get(token)
            .filter(|g| g.expires_at > now)
            .cloned()
    }

    /// Revokes every token of a provider session (logout).
    pub(super) fn end_session(&self, sid: &str) {
        end_session_in(&mut self.lock(), sid);
    }
}

fn end_session_in(tables: &mut Tables, sid: &str) {
    tables.access.retain(|_, g| g.sid != sid);
    tables.refresh.retain(|_, g| g.sid != sid);
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TokenParams {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: String,
    refresh_token: String,
}

/// The token endpoint.
pub(super) async fn token(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(params): Form<TokenParams>,
) -> Response {
    if !client_authenticated(&state, &headers) {
        let mut response = token_error(StatusCode::UNAUTHORIZED, "invalid_client");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"portcullis dev provider\""),
        );
        return response;
    }
    let now = (state.clock)();
    match params.grant_type.as_str() {
        "authorization_code" => {
            let Some(pending) = state.tokens.redeem_code(&params.code, now) else {
                return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if pending.redirect_uri != params.redirect_uri
                || !pkce_matches(&params.code_verifier, &pending.code_challenge)
            {
                return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let grant = Grant {
                username: pending.username,
                scope: pending.scope,
                sid: pending.sid,
                auth_time: pending.auth_time,
                expires_at: 0,
            };
            issue(&state, grant, pending.nonce.as_deref(), now)
        }
        "refresh_token" => match state.tokens.redeem_refresh(&params.refresh_token, now) {
            Some(grant) => issue(&state, grant, None, now),
            None => token_error(StatusCode::BAD_REQUEST, "invalid_grant"),
        },
        _ => token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn client_authenticated(state: &ProviderState, headers: &HeaderMap) -> bool {
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some((id, secret)) = std::str::from_utf8(&decoded)
        .ok()
        .and_then(|text| text.split_once(':'))
    else {
        return false;
    };
    // Compare digests so the time taken says nothing about how much of the secret matched.
    id == state.client_id
        && Sha256::digest(secret.as_bytes()) == Sha256::digest(state.client_secret.expose())
}

/// RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge, with a well-formed verifier.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

fn user(username: &str) -> Option<&'static DevUser> {
    DEV_USERS.iter().find(|u| u.username == username)
}

fn profile_claims(user: &DevUser) -> Value {
    json!({
        "sub": user.username,
        "name": user.name,
        "email": user.email,
        "email_verified": true,
        "groups": user.groups,
    })
}

/// Issues an access token, a refresh token and an id_token for `grant`.
fn issue(state: &ProviderState, grant: Grant, nonce: Option<&str>, now: i64) -> Response {
    let Some(user) = user(grant.username) else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let mut claims = profile_claims(user);
    claims["iss"] = json!(state.issuer);
    claims["aud"] = json!(state.client_id);
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + ID_TOKEN_TTL);
    claims["auth_time"] = json!(grant.auth_time);
    claims["sid"] = json!(grant.sid);
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    let id_token = match state.key.sign(&claims) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "dev provider cannot sign an id_token");
            return token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        }
    };
    let access_token = random_token();
    let refresh_token = random_token();
    {
        let mut tables = state.tokens.lock();
        tables.access.retain(|_, g| g.expires_at > now);
        let access = Grant {
            expires_at: now + ACCESS_TTL,
            ..grant.clone()
        };
        tables.access.insert(access_token.clone(), access);
        let refresh = Grant {
            expires_at: now + REFRESH_TTL,
            ..grant.clone()
        };
        tables.refresh.insert(refresh_token.clone(), refresh);
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL,
            "id_token": id_token,
            "refresh_token": refresh_token,
            "scope": grant.scope,
        })),
    )
        .into_response()
}

fn token_error(status: StatusCode, error: &'static str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error })),
    )
        .into_response()
}

/// The userinfo endpoint: the profile of the access token's user.
pub(super) async fn userinfo(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
) -> Response {
    let grant = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| state.tokens.access_grant(token.trim(), (state.clock)()));
    match grant.as_ref().and_then(|g| user(g.username)) {
        Some(user) => Json(profile_claims(user)).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response(),
    }
}
