//! An in-process mock OpenID provider (axum on 127.0.0.1:0): discovery, JWKS, an authorize
//! endpoint that redirects straight back with a code for the configured user, a token endpoint
//! (single-use codes, PKCE S256 checked, ES256 id_tokens, refresh tokens that can be revoked),
//! an end_session endpoint, and logout_token signing for back-channel tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Digest;

pub const CLIENT_ID: &str = "portcullis-test";
pub const CLIENT_SECRET: &str = "s3cret";

#[derive(Clone)]
struct Grant {
    user: String,
    nonce: String,
    challenge: String,
    sid: String,
}

#[derive(Default)]
pub struct MockState {
    pub user: String,
    pub expires_in: u64,
    codes: HashMap<String, Grant>,
    used_codes: Vec<String>,
    refresh_tokens: HashMap<String, Grant>,
    pub token_calls: usize,
    pub refresh_calls: usize,
    pub last_end_session: Option<HashMap<String, String>>,
}

pub struct MockProvider {
    pub issuer: String,
    pub state: Arc<Mutex<MockState>>,
    key: Arc<EncodingKey>,
}

#[derive(Clone)]
struct Shared {
    issuer: String,
    state: Arc<Mutex<MockState>>,
    key: Arc<EncodingKey>,
}

fn users() -> HashMap<&'static str, Value> {
    HashMap::from([
        (
            "alice",
            json!({"email": "alice@corp.example", "email_verified": true, "groups": ["eng", "security"]}),
        ),
        (
            "bob",
            json!({"email": "bob@corp.example", "email_verified": true, "groups": ["sales"]}),
        ),
    ])
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn random() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl MockProvider {
    pub async fn start() -> MockProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = Arc::new(EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap());
        let state = Arc::new(Mutex::new(MockState {
            user: "alice".into(),
            expires_in: 3600,
            ..MockState::default()
        }));
        let shared = Shared {
            issuer: issuer.clone(),
            state: state.clone(),
            key: key.clone(),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/end-session", get(end_session))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockProvider { issuer, state, key }
    }

    pub fn set_user(&self, user: &str) {
        self.state.lock().unwrap().user = user.into();
    }

    /// Revokes every refresh token (the next refresh gets `invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().unwrap().refresh_tokens.clear();
    }

    /// The `sid` of the most recent grant for `user`.
    pub fn sid_of(&self, user: &str) -> String {
        let state = self.state.lock().unwrap();
        state
            .refresh_tokens
            .values()
            .find(|g| g.user == user)
            .unwrap()
            .sid
            .clone()
    }

    pub fn sign(&self, claims: &Value, typ: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("mock-1".into());
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    pub fn logout_token(&self, sid: Option<&str>, sub: Option<&str>) -> String {
        let mut claims = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "iat": now(), "jti": random(),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        self.sign(&claims, "logout+jwt")
    }
}

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/end-session"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "authorization_response_iss_parameter_supported": true,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
    }))
}

async fn jwks(State(s): State<Shared>) -> Json<JwkSet> {
    let mut jwk = Jwk::from_encoding_key(&s.key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("mock-1".into());
    Json(JwkSet { keys: vec![jwk] })
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    let code = random();
    let mut state = s.state.lock().unwrap();
    let grant = Grant {
        user: state.user.clone(),
        nonce: q["nonce"].clone(),
        challenge: q["code_challenge"].clone(),
        sid: random(),
    };
    state.codes.insert(code.clone(), grant);
    let mut target = url::Url::parse(&q["redirect_uri"]).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"])
        .append_pair("iss", &s.issuer);
    (
        axum::http::StatusCode::FOUND,
        [("location", target.to_string())],
    )
        .into_response()
}

fn invalid_grant() -> Response {
    (
        axum::http::StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant"})),
    )
        .into_response()
}

async fn token(
    State(s): State<Shared>,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut state = s.state.lock().unwrap();
    state.token_calls += 1;
    let (grant, nonce) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = &form["code"];
            if state.used_codes.contains(code) {
                // Like a certified provider: a replayed code revokes the grant's tokens.
                state.refresh_tokens.clear();
                return invalid_grant();
            }
            let Some(grant) = state.codes.remove(code) else {
                return invalid_grant();
            };
            state.used_codes.push(code.clone());
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            if challenge != grant.challenge {
                return invalid_grant();
            }
            let nonce = Some(grant.nonce.clone());
            (grant, nonce)
        }
        Some("refresh_token") => {
            state.refresh_calls += 1;
            let Some(grant) = state.refresh_tokens.remove(&form["refresh_token"]) else {
                return invalid_grant();
            };
            (grant, None)
        }
        _ => return invalid_grant(),
    };
    let mut claims = json!({
        "iss": s.issuer, "sub": grant.user, "aud": CLIENT_ID, "iat": now(), "exp": now() + 300,
        "sid": grant.sid,
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    for (k, v) in users()[grant.user.as_str()].as_object().unwrap() {
        claims[k] = v.clone();
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("mock-1".into());
    let id_token = jsonwebtoken::encode(&header, &claims, &s.key).unwrap();
    let refresh = random();
    state.refresh_tokens.insert(refresh.clone(), grant);
    Json(json!({
        "access_token": random(), "token_type": "Bearer", "expires_in": state.expires_in,
        "refresh_token": refresh, "id_token": id_token,
    }))
    .into_response()
}

async fn end_session(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> &'static str {
    s.state.lock().unwrap().last_end_session = Some(q);
    "logged out at the provider"
}
