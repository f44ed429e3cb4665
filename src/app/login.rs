//! `/.portcullis/login`, `/.portcullis/callback` and `/.portcullis/whoami`: the browser side of
//! the OIDC code flow. Login picks the provider (chooser page when several), stores the
//! single-use login state bound to this browser and sends it to the provider. The callback
//! checks `state` and RFC 9207 `iss`, exchanges the code exactly once, validates the id_token,
//! maps claims to an identity and creates a session under a fresh id (pinned behaviour 1: any
//! failure answers 4xx or 5xx and creates no session).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use http::{HeaderMap, Response, StatusCode};
use jiff::Timestamp;
use uuid::Uuid;

use super::AppState;
use super::templates::{self, ChooserEntry};
use crate::identity::oidc::{
    self, IdTokenCheck, OidcProvider, ProviderError, mapping, pkce, verify_id_token,
};
use crate::session::{LoginState, SessionData};

/// Clock skew tolerated on provider tokens.
pub(super) const LEEWAY: Duration = Duration::from_secs(60);

/// Claims userinfo may not override: they were checked in the id_token.
const PROTECTED_CLAIMS: [&str; 9] = [
    "iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "azp", "sid",
];

fn login_href(provider: &str, rd: &str) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("provider", provider)
        .append_pair("rd", rd);
    format!("/.portcullis/login?{}", query.finish())
}

/// `GET /.portcullis/login?rd=&provider=`.
pub async fn start(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response<Body> {
    let id = crate::ids::uuid_v7();
    let server = &state.config.server;
    let rd = oidc::return_to(
        params.get("rd").map(String::as_str),
        &server.public_url,
        &server.allowed_redirect_hosts,
    );
    let all = state.oidc.all();
    let provider = match params.get("provider") {
        Some(wanted) => match state.oidc.get(wanted) {
            Some(provider) => provider,
            None => {
                return templates::error(
                    StatusCode::BAD_REQUEST,
                    "There is no such sign-in provider.",
                    id,
                    None,
                );
            }
        },
        None => match all {
            [] => {
                return templates::error(
                    StatusCode::NOT_FOUND,
                    "No sign-in provider is configured.",
                    id,
                    None,
                );
            }
            [only] => only,
            many => {
                let entries: Vec<ChooserEntry> = many
                    .iter()
                    .map(|p| ChooserEntry {
                        name: p.config.display_name.clone(),
                        href: login_href(&p.config.id, &rd),
                    })
                    .collect();
                return templates::page(
                    StatusCode::OK,
                    "Sign in",
                    "chooser.html",
                    minijinja::context! { providers => entries },
                );
            }
        },
    };
    let Some(discovered) = provider.discovered() else {
        tracing::warn!(request_id = %id, provider = %provider.config.id, "login while the provider is not discovered");
        return templates::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in provider cannot be reached right now. Please try again in a minute.",
            id,
            Some(&login_href(&provider.config.id, &rd)),
        );
    };
    let login = LoginState {
        provider: provider.config.id.clone(),
        state: pkce::random_token(),
        nonce: pkce::random_token(),
        pkce_verifier: pkce::random_token(),
        return_to: rd,
        created_at: Timestamp::now().as_second(),
    };
    let url = provider.authorization_url(
        &discovered,
        &login.state,
        &login.nonce,
        &login.pkce_verifier,
    );
    match state.sessions.begin_login(login, Timestamp::now()).await {
        Ok(cookie) => templates::redirect(StatusCode::FOUND, url.as_str(), &[cookie]),
        Err(error) => {
            tracing::error!(request_id = %id, %error, "cannot store the login state");
            templates::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now.",
                id,
                None,
            )
        }
    }
}

/// `GET /.portcullis/callback?code=&state=&iss=` (or `error=`).
pub async fn callback(
    State(state): State<Arc<AppState>>,
    conn: Option<axum::Extension<super::ConnInfo>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response<Body> {
    let id = crate::ids::uuid_v7();
    let clear = state.sessions.clear_login_cookie();
    let mut trace = LoginTrace::default();
    let mut response = finish_login(&state, &headers, &params, id, &mut trace).await;
    if let Some(audit) = &state.audit {
        let client_ip = conn.map(|c| {
            crate::proxy::client_ip(
                c.0.peer.ip(),
                &headers,
                &state.config.server.trusted_proxies,
            )
        });
        let caller = crate::audit::lifecycle::Caller {
            request_id: id,
            method: "GET",
            path: "/.portcullis/callback",
            headers: &headers,
            client_ip,
        };
        match (&trace.identity, response.extensions().get::<LoginFailure>()) {
            (Some(identity), None) => audit.login_succeeded(&caller, identity),
            (_, failure) => audit.login_failed(
                &caller,
                trace.provider.as_deref(),
                response.status(),
                failure.map_or("", |f| f.0.as_str()),
            ),
        }
    }
    response
        .headers_mut()
        .append(http::header::SET_COOKIE, clear);
    response
}

async fn finish_login(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    id: Uuid,
    trace: &mut LoginTrace,
) -> Response<Body> {
    let fail = |status: StatusCode, message: &str| {
        let mut response = templates::error(status, message, id, Some("/.portcullis/login"));
        response
            .extensions_mut()
            .insert(LoginFailure(message.to_owned()));
        response
    };
    let now = Timestamp::now();
    let login = match params.get("state") {
        Some(value) => match state.sessions.take_login(headers, value, now).await {
            Ok(login) => login,
            Err(error) => {
                tracing::error!(request_id = %id, %error, "session store failed at callback");
                return fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in is unavailable right now.",
                );
            }
        },
        None => None,
    };
    trace.provider = login.as_ref().map(|l| l.provider.clone());
    if let Some(error) = params.get("error") {
        tracing::info!(request_id = %id, error = %error, "provider returned an error to the callback");
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in provider did not complete the sign-in.",
        );
    }
    let Some(login) = login else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in link has expired, was already used, or was started in another browser.",
        );
    };
    let Some(provider) = state.oidc.get(&login.provider) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "This sign-in was started with a provider that is no longer configured.",
        );
    };
    let Some(discovered) = provider.discovered() else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-in provider cannot be reached right now.",
        );
    };
    // RFC 9207: a response from another issuer means a mix-up attack.
    let issuer = discovered.metadata.issuer.as_str();
    match params.get("iss") {
        Some(iss) if iss != issuer => {
            return fail(
                StatusCode::BAD_REQUEST,
                "The sign-in response came from the wrong provider.",
            );
        }
        None if discovered
            .metadata
            .authorization_response_iss_parameter_supported =>
        {
            return fail(
                StatusCode::BAD_REQUEST,
                "The sign-in response is missing its issuer.",
            );
        }
        _ => {}
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The sign-in response has no authorization code.",
        );
    };
    let tokens = match provider
        .exchange_code(&discovered, code, &login.pkce_verifier)
        .await
    {
        Ok(tokens) => tokens,
        Err(ProviderError::InvalidGrant(_) | ProviderError::OAuth(_)) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "The sign-in provider refused this sign-in code.",
            );
        }
        Err(error) => {
            tracing::warn!(request_id = %id, provider = %provider.config.id, %error, "code exchange failed");
            return fail(
                StatusCode::BAD_GATEWAY,
                "The sign-in provider did not answer properly.",
            );
        }
    };
    let Some(id_token) = tokens.id_token.clone() else {
        return fail(
            StatusCode::BAD_GATEWAY,
            "The sign-in provider sent no id_token.",
        );
    };
    let check = IdTokenCheck {
        issuer,
        client_id: &provider.config.client_id,
        nonce: Some(&login.nonce),
        leeway: LEEWAY,
        now: now.as_second(),
    };
    let mut claims = match verify_id_token(
        &id_token,
        &discovered.algorithms,
        &discovered.keys,
        &check,
    )
    .await
    {
        Ok(claims) => claims,
        Err(error) => {
            tracing::warn!(request_id = %id, provider = %provider.config.id, %error, "id_token refused");
            return fail(
                StatusCode::BAD_REQUEST,
                "The sign-in could not be verified.",
            );
        }
    };
    if provider.config.userinfo
        && let Err(message) =
            merge_userinfo(provider, &discovered, &tokens.access_token, &mut claims).await
    {
        tracing::warn!(request_id = %id, provider = %provider.config.id, %message, "userinfo failed");
        return fail(
            StatusCode::BAD_GATEWAY,
            "The sign-in provider did not answer properly.",
        );
    }
    let extra_groups = match &provider.config.groups_endpoint {
        Some(endpoint) if mapping::has_groups_overage(&claims) => {
            match provider.fetch_groups(endpoint, &tokens.access_token).await {
                Ok(groups) => Some(groups),
                Err(error) => {
                    tracing::warn!(request_id = %id, %error, "groups endpoint failed");
                    return fail(
                        StatusCode::BAD_GATEWAY,
                        "Your groups could not be read from the provider.",
                    );
                }
            }
        }
        _ => None,
    };
    let sid = claims
        .get("sid")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let identity = match oidc::identity_from_claims(&provider.config, issuer, claims, extra_groups)
    {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(request_id = %id, provider = %provider.config.id, %error, "claims refused");
            return fail(StatusCode::FORBIDDEN, &error.to_string());
        }
    };
    tracing::info!(request_id = %id, provider = %provider.config.id, subject = %identity.subject, "login");
    let (access_expires_at, access_lifetime) =
        super::browser::access_expiry(now, tokens.expires_in);
    let data = SessionData {
        identity: identity.clone(),
        provider: provider.config.id.clone(),
        id_token: Some(id_token),
        access_expires_at,
        access_lifetime,
        access_token: Some(tokens.access_token),
        refresh_token: tokens.refresh_token,
        sid,
        created_at: now.as_second(),
    };
    match state.sessions.create(data, now).await {
        Ok(cookie) => {
            // The browser's previous session (another user's, or this one's before) ends
            // with this login rather than at its idle timeout.
            if let Err(error) = state.sessions.end_presented(headers).await {
                tracing::warn!(request_id = %id, %error, "could not end the replaced session");
            }
            trace.identity = Some(identity);
            templates::redirect(StatusCode::FOUND, &login.return_to, &[cookie])
        }
        Err(error) => {
            tracing::error!(request_id = %id, %error, "cannot store the session");
            fail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now.",
            )
        }
    }
}

/// What the callback learned, for its audit event.
#[derive(Default)]
struct LoginTrace {
    provider: Option<String>,
    /// Set only when a session was created.
    identity: Option<crate::identity::Identity>,
}

/// The public reason a callback failed (a response extension, read for the audit event).
#[derive(Clone)]
struct LoginFailure(String);

async fn merge_userinfo(
    provider: &OidcProvider,
    discovered: &oidc::Discovered,
    access_token: &str,
    claims: &mut oidc::Claims,
) -> Result<(), String> {
    let Some(info) = provider
        .userinfo(discovered, access_token)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    // OIDC Core 5.3.2: userinfo for another subject must not be used.
    if info.get("sub") != claims.get("sub") {
        return Err("userinfo sub does not match the id_token".into());
    }
    for (name, value) in info {
        if !PROTECTED_CLAIMS.contains(&name.as_str()) {
            claims.insert(name, value);
        }
    }
    Ok(())
}

/// `GET /.portcullis/whoami`: the caller's session identity as JSON, 401 without one.
pub async fn whoami(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response<Body> {
    let id = crate::ids::uuid_v7();
    match super::browser::session_identity(&state, &headers).await {
        Some(identity) => {
            let mut response = axum::response::IntoResponse::into_response(axum::Json(identity));
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            response
        }
        None => super::pages::unauthorized(id, false),
    }
}
