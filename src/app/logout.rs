//! `/.portcullis/logout` (GET: a confirmation page; POST: end the session, then RP-initiated
//! logout at the provider when it offers `end_session_endpoint`), `/.portcullis/logged-out`,
//! and `/.portcullis/backchannel-logout` (the provider tells us a user's provider session
//! ended: validate the logout_token and end the matching sessions in the shared store).
//! A logout POST must come from our own origin (`Origin`, else `Referer`): a cross-site form
//! must not be able to sign users out.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Form, State};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use jiff::Timestamp;
use url::Url;
use uuid::Uuid;

use super::AppState;
use super::login::LEEWAY;
use super::templates;
use crate::audit::lifecycle::{Caller, LogoutVia, LogoutWho};
use crate::identity::oidc::{self, LogoutCheck};

/// `GET /.portcullis/logout`: a page whose form POSTs the logout.
pub async fn confirm(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response<Body> {
    let provider = match state.sessions.load(&headers, Timestamp::now()).await {
        Ok(Some((_, data))) => state
            .oidc
            .get(&data.provider)
            .map(|p| p.config.display_name.clone()),
        _ => None,
    };
    templates::page(
        StatusCode::OK,
        "Sign out",
        "logout.html",
        minijinja::context! { provider => provider },
    )
}

/// `GET /.portcullis/logged-out`.
pub async fn logged_out() -> Response<Body> {
    templates::page(
        StatusCode::OK,
        "Signed out",
        "logged_out.html",
        minijinja::context! {},
    )
}

/// `POST /.portcullis/logout`.
pub async fn end(
    State(state): State<Arc<AppState>>,
    conn: Option<axum::Extension<super::ConnInfo>>,
    headers: HeaderMap,
) -> Response<Body> {
    let id = crate::ids::uuid_v7();
    if !same_origin(&headers, &state.config.server.public_url) {
        return templates::error(
            StatusCode::FORBIDDEN,
            "Sign-out must be requested from this site's own page.",
            id,
            Some("/.portcullis/logout"),
        );
    }
    let clear = state.sessions.clear_cookie();
    let logged_out = format!(
        "{}/.portcullis/logged-out",
        state
            .config
            .server
            .public_url
            .as_str()
            .trim_end_matches('/')
    );
    let found = match state.sessions.load(&headers, Timestamp::now()).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(request_id = %id, %error, "session store failed at logout");
            return templates::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-out is unavailable right now.",
                id,
                None,
            );
        }
    };
    let Some((session, data)) = found else {
        return templates::redirect(StatusCode::SEE_OTHER, "/.portcullis/logged-out", &[clear]);
    };
    if let Err(error) = state.sessions.end(&session).await {
        tracing::error!(request_id = %id, %error, "cannot end the session");
        return templates::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-out is unavailable right now.",
            id,
            None,
        );
    }
    tracing::info!(request_id = %id, subject = %data.identity.subject, provider = %data.provider, "logout");
    if let Some(audit) = &state.audit {
        let caller = caller(
            &state,
            conn.as_ref(),
            &headers,
            id,
            "POST",
            "/.portcullis/logout",
        );
        audit.logout(
            &caller,
            LogoutVia::Rp,
            &data.provider,
            LogoutWho::Identity(&data.identity),
            1,
        );
    }
    let at_provider = state.oidc.get(&data.provider).and_then(|provider| {
        let discovered = provider.discovered()?;
        provider.end_session_url(&discovered, data.id_token.as_deref(), &logged_out)
    });
    match at_provider {
        Some(url) => templates::redirect(StatusCode::SEE_OTHER, url.as_str(), &[clear]),
        None => templates::redirect(StatusCode::SEE_OTHER, "/.portcullis/logged-out", &[clear]),
    }
}

/// Whether a state-changing request comes from our public origin.
fn same_origin(headers: &HeaderMap, public_url: &Url) -> bool {
    let ours = public_url.origin();
    let header_origin = |name: header::HeaderName| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(|text| {
            Url::parse(text)
                .map(|u| u.origin() == ours)
                .unwrap_or(false)
        })
    };
    match header_origin(header::ORIGIN) {
        Some(matches) => matches,
        None => header_origin(header::REFERER).unwrap_or(false),
    }
}

/// `POST /.portcullis/backchannel-logout` with form field `logout_token`.
pub async fn backchannel(
    State(state): State<Arc<AppState>>,
    conn: Option<axum::Extension<super::ConnInfo>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response<Body> {
    let Some(token) = form.get("logout_token") else {
        return backchannel_answer(StatusCode::BAD_REQUEST, Some("missing logout_token"));
    };
    // The issuer picks the provider (and so the keys); the signature is checked right after.
    let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<oidc::Claims>(token)
        .ok()
        .and_then(|c| c.get("iss").and_then(|v| v.as_str()).map(str::to_owned));
    let found = state.oidc.all().iter().find_map(|provider| {
        let discovered = provider.discovered()?;
        (Some(&discovered.metadata.issuer) == issuer.as_ref()).then_some((provider, discovered))
    });
    let Some((provider, discovered)) = found else {
        return backchannel_answer(StatusCode::BAD_REQUEST, Some("unknown issuer"));
    };
    let check = LogoutCheck {
        issuer: &discovered.metadata.issuer,
        client_id: &provider.config.client_id,
        leeway: LEEWAY,
        now: Timestamp::now().as_second(),
    };
    let target =
        match oidc::verify_logout_token(token, &discovered.algorithms, &discovered.keys, &check)
            .await
        {
            Ok(target) => target,
            Err(error) => {
                tracing::warn!(provider = %provider.config.id, %error, "logout_token refused");
                return backchannel_answer(StatusCode::BAD_REQUEST, Some("invalid logout_token"));
            }
        };
    let issuer = &discovered.metadata.issuer;
    let ended = match (&target.sid, &target.sub) {
        (Some(sid), _) => state.sessions.end_by_sid(issuer, sid).await,
        (None, Some(sub)) => state.sessions.end_by_subject(issuer, sub).await,
        (None, None) => Ok(0),
    };
    match ended {
        Ok(count) => {
            tracing::info!(provider = %provider.config.id, sessions = count, "back-channel logout");
            if let Some(audit) = &state.audit {
                let id = crate::ids::uuid_v7();
                let path = "/.portcullis/backchannel-logout";
                let caller = caller(&state, conn.as_ref(), &headers, id, "POST", path);
                let who = LogoutWho::Subject {
                    issuer,
                    subject: target.sub.as_deref(),
                };
                audit.logout(
                    &caller,
                    LogoutVia::Backchannel,
                    &provider.config.id,
                    who,
                    count,
                );
            }
            backchannel_answer(StatusCode::OK, None)
        }
        Err(error) => {
            // The spec lets the provider retry on a non-200 answer.
            tracing::error!(%error, "back-channel logout could not reach the session store");
            backchannel_answer(StatusCode::SERVICE_UNAVAILABLE, None)
        }
    }
}

/// The audit trail's view of a logout request.
fn caller<'a>(
    state: &AppState,
    conn: Option<&axum::Extension<super::ConnInfo>>,
    headers: &'a HeaderMap,
    request_id: Uuid,
    method: &'a str,
    path: &'a str,
) -> Caller<'a> {
    let trusted = &state.config.server.trusted_proxies;
    Caller {
        request_id,
        method,
        path,
        headers,
        client_ip: conn.map(|c| crate::proxy::client_ip(c.0.peer.ip(), headers, trusted)),
    }
}

fn backchannel_answer(status: StatusCode, error: Option<&str>) -> Response<Body> {
    let body = match error {
        Some(description) => {
            serde_json::json!({"error": "invalid_request", "error_description": description})
                .to_string()
        }
        None => String::new(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if error.is_some() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_checks_origin_then_referer() {
        let public = Url::parse("https://gate.example").unwrap();
        let with = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        assert!(same_origin(
            &with(&[("origin", "https://gate.example")]),
            &public
        ));
        assert!(!same_origin(
            &with(&[("origin", "https://evil.example")]),
            &public
        ));
        assert!(!same_origin(&with(&[("origin", "null")]), &public));
        assert!(!same_origin(
            &with(&[("origin", "http://gate.example")]),
            &public
        ));
        assert!(same_origin(
            &with(&[("referer", "https://gate.example/.portcullis/logout")]),
            &public
        ));
        assert!(!same_origin(
            &with(&[("referer", "https://gate.example.evil/")]),
            &public
        ));
        // Origin wins over a matching Referer.
        assert!(!same_origin(
            &with(&[
                ("origin", "https://evil"),
                ("referer", "https://gate.example/")
            ]),
            &public
        ));
        assert!(!same_origin(&HeaderMap::new(), &public));
    }
}
