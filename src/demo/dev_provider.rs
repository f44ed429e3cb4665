//! The demo's built-in development OpenID provider: a minimal authorization-code provider
//! (discovery, JWKS, a user chooser page instead of a password, token endpoint with PKCE S256
//! and refresh, userinfo, end-session) on an ephemeral 127.0.0.1 port, so `portcullis demo` can
//! show a real login without any account anywhere. It is DEVELOPMENT ONLY: no passwords, no
//! consent, state in memory, a key generated per start. Only `demo` may start it; `serve` never
//! references this module, and it must not grow into a real provider.
//!
//! Tokens, codes and the signing key live in [`super::dev_tokens`]; this file owns the HTTP
//! surface and the pages.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

use super::dev_tokens::{self, Clock, PendingCode, SigningKey, TokenStore};
use crate::secrets::Secret;

/// A user the development provider can log in (no password: a button per user).
#[derive(Debug, Clone, Copy)]
pub struct DevUser {
    pub username: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// The demo's users: what the demo routes' policies are written against.
pub const DEV_USERS: [DevUser; 3] = [
    DevUser {
        username: "alice",
        name: "Alice Anders",
        email: "alice@corp.example",
        groups: &["eng", "security"],
    },
    DevUser {
        username: "bob",
        name: "Bob Berg",
        email: "bob@corp.example",
        groups: &["sales"],
    },
    DevUser {
        username: "carol",
        name: "Carol Chen",
        email: "carol@corp.example",
        groups: &[],
    },
];

/// The scopes the provider advertises; `groups` is always in the id_token regardless.
const SCOPES: [&str; 5] = ["openid", "email", "profile", "groups", "offline_access"];

const BANNER: &str = "development provider: never use in production";

/// A running development provider; dropping it stops the server.
#[derive(Debug)]
pub struct DevProvider {
    /// `http://127.0.0.1:PORT`; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: Url,
    /// The one registered client (confidential, `client_secret_basic`).
    pub client_id: String,
    /// Random per start.
    pub client_secret: Secret,
    task: JoinHandle<()>,
}

impl Drop for DevProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything the handlers share.
pub(super) struct ProviderState {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
    pub post_logout_uri: String,
    pub key: SigningKey,
    pub tokens: TokenStore,
    pub clock: Clock,
}

/// Starts the development provider on 127.0.0.1 (ephemeral port) for one client whose only
/// redirect URI is `redirect_uri` and only post-logout URI is `post_logout_uri`.
pub async fn start_dev_provider(
    redirect_uri: Url,
    post_logout_uri: Url,
) -> anyhow::Result<DevProvider> {
    start_with_clock(redirect_uri, post_logout_uri, dev_tokens::system_clock()).await
}

pub(super) async fn start_with_clock(
    redirect_uri: Url,
    post_logout_uri: Url,
    clock: Clock,
) -> anyhow::Result<DevProvider> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let client_secret = dev_tokens::random_token();
    let state = Arc::new(ProviderState {
        issuer: issuer.clone(),
        client_id: "portcullis-demo".to_owned(),
        client_secret: Secret::new(client_secret.clone()),
        redirect_uri: redirect_uri.to_string(),
        post_logout_uri: post_logout_uri.to_string(),
        key: SigningKey::generate()?,
        tokens: TokenStore::default(),
        clock,
    });
    let app = router(state);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "development OpenID provider stopped");
        }
    });
    Ok(DevProvider {
        issuer: Url::parse(&issuer)?,
        client_id: "portcullis-demo".to_owned(),
        client_secret: Secret::new(client_secret),
        task,
    })
}

fn router(state: Arc<ProviderState>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize_page).post(authorize_choice))
        .route("/token", axum::routing::post(dev_tokens::token))
        .route(
            "/userinfo",
            get(dev_tokens::userinfo).post(dev_tokens::userinfo),
        )
        .route("/end_session", get(end_session))
        .with_state(state)
}

async fn discovery(State(state): State<Arc<ProviderState>>) -> Json<serde_json::Value> {
    let issuer = &state.issuer;
    Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/end_session"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": ["sub", "email", "email_verified", "name", "groups", "sid", "nonce"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(state): State<Arc<ProviderState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [state.key.public_jwk()] }))
}

/// The authorization request, as a query (GET) or echoed back by the chooser form (POST).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthorizeParams {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    code_challenge_method: String,
    /// Only in the chooser's POST: the button pressed.
    user: Option<String>,
}

/// Checks a request, returning the refusal if any: an unknown client or redirect URI gets a
/// page (redirecting there would make the provider an open redirector), anything else an
/// error redirect to the client.
fn refusal(state: &ProviderState, params: &AuthorizeParams) -> Option<Response> {
    if params.client_id != state.client_id || params.redirect_uri != state.redirect_uri {
        return Some(page(
            StatusCode::BAD_REQUEST,
            "Unknown client or redirect_uri",
            "<p>This request does not come from the demo's registered client.</p>",
        ));
    }
    let error = if params.response_type != "code" {
        Some("unsupported_response_type")
    } else if params.code_challenge.is_empty() || params.code_challenge_method != "S256" {
        Some("invalid_request")
    } else if !params.scope.split(' ').any(|s| s == "openid") {
        Some("invalid_scope")
    } else {
        None
    };
    error.map(|error| redirect_back(state, params, &[("error", error)]))
}

fn redirect_back(
    state: &ProviderState,
    params: &AuthorizeParams,
    pairs: &[(&str, &str)],
) -> Response {
    let Ok(mut target) = Url::parse(&params.redirect_uri) else {
        return page(StatusCode::BAD_REQUEST, "Bad redirect_uri", "");
    };
    {
        let mut query = target.query_pairs_mut();
        query.extend_pairs(pairs);
        if let Some(value) = &params.state {
            query.append_pair("state", value);
        }
        query.append_pair("iss", &state.issuer);
    }
    Redirect::to(target.as_str()).into_response()
}

async fn authorize_page(
    State(state): State<Arc<ProviderState>>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    if let Some(response) = refusal(&state, &params) {
        return response;
    }
    let hidden = [
        ("response_type", Some(params.response_type.as_str())),
        ("client_id", Some(params.client_id.as_str())),
        ("redirect_uri", Some(params.redirect_uri.as_str())),
        ("scope", Some(params.scope.as_str())),
        ("state", params.state.as_deref()),
        ("nonce", params.nonce.as_deref()),
        ("code_challenge", Some(params.code_challenge.as_str())),
        (
            "code_challenge_method",
            Some(params.code_challenge_method.as_str()),
        ),
    ];
    let mut form = String::from("<form method=\"post\" action=\"/authorize\">\n");
    for (name, value) in hidden {
        if let Some(value) = value {
            form.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                escape(value)
            ));
        }
    }
    for user in DEV_USERS {
        let groups = if user.groups.is_empty() {
            "no groups".to_owned()
        } else {
            format!("groups: {}", user.groups.join(", "))
        };
        form.push_str(&format!(
            "<p><button type=\"submit\" name=\"user\" value=\"{0}\">Sign in as {0}</button> {1} ({2})</p>\n",
            user.username,
            escape(user.name),
            escape(&groups),
        ));
    }
    form.push_str("</form>");
    page(StatusCode::OK, "Choose a demo user", &form)
}

async fn authorize_choice(
    State(state): State<Arc<ProviderState>>,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    if let Some(response) = refusal(&state, &params) {
        return response;
    }
    let Some(user) = DEV_USERS
        .iter()
        .find(|u| Some(u.username) == params.user.as_deref())
    else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown user",
            "<p>Pick one of the listed users.</p>",
        );
    };
    let code = state.tokens.issue_code(PendingCode {
        username: user.username,
        nonce: params.nonce.clone(),
        code_challenge: params.code_challenge.clone(),
        redirect_uri: params.redirect_uri.clone(),
        scope: params.scope.clone(),
        sid: dev_tokens::random_token(),
        auth_time: (state.clock)(),
    });
    // 303: the browser must GET the callback, never re-POST the chooser form there.
    let mut response = redirect_back(&state, &params, &[("code", &code)]);
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndSessionParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// Ends the provider-side grants of the hinted session and returns to the client when it asked
/// for its registered post-logout URI. There is no provider session cookie: every login shows
/// the chooser again anyway.
async fn end_session(
    State(state): State<Arc<ProviderState>>,
    Query(params): Query<EndSessionParams>,
) -> Response {
    if let Some(sid) = params
        .id_token_hint
        .as_deref()
        .and_then(|hint| state.key.session_of(hint, &state.issuer, &state.client_id))
    {
        state.tokens.end_session(&sid);
    }
    match params.post_logout_redirect_uri {
        Some(uri) if uri == state.post_logout_uri => {
            let Ok(mut target) = Url::parse(&uri) else {
                return page(StatusCode::BAD_REQUEST, "Bad post_logout_redirect_uri", "");
            };
            if let Some(value) = &params.state {
                target.query_pairs_mut().append_pair("state", value);
            }
            Redirect::to(target.as_str()).into_response()
        }
        Some(_) => page(
            StatusCode::BAD_REQUEST,
            "Unknown post_logout_redirect_uri",
            "<p>Only the demo client's registered URI is accepted.</p>",
        ),
        None => page(
            StatusCode::OK,
            "Signed out",
            "<p>You are signed out of the development provider.</p>",
        ),
    }
}

/// A complete page with the dev-only banner; `body` is trusted HTML built here.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} - portcullis demo</title>\
         <style>body{{font-family:sans-serif;max-width:40rem;margin:2rem auto}}\
         .banner{{background:#b00020;color:#fff;padding:.5rem 1rem;font-weight:bold}}</style></head>\n\
         <body><p class=\"banner\" role=\"alert\">{BANNER}</p>\n<h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title),
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            // No form-action: browsers apply it to the redirect after the chooser's POST, which
            // leaves for the client's callback on another origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
#[path = "dev_provider_tests.rs"]
mod tests;
