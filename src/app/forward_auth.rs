//! `/.portcullis/auth`: forward-auth for an ingress that already proxies (nginx `auth_request`,
//! Traefik ForwardAuth, Envoy ext_authz HTTP). The ingress asks "may this request pass?" and
//! portcullis answers with the same route match, identity and policy as its own gateway:
//! 200 with identity headers, 401 (with `WWW-Authenticate`) or 403. It forwards nothing.
//!
//! The original request is read from `X-Forwarded-Method` / `X-Forwarded-Uri` /
//! `X-Forwarded-Host` (Traefik) or `X-Original-Method` / `X-Original-URL` (nginx), and only
//! when the TCP peer is in `server.trusted_proxies`: anyone else could claim any method, path
//! or client address, so they get 403. A trusted peer that sends neither set, or no method,
//! gets 400.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use url::Url;

use super::AppState;
use super::listener::ConnInfo;
use super::pages;
use crate::audit::{Asked, RequestStart};
use crate::config::RouteConfig;
use crate::identity::{Identity, Presented};
use crate::policy::{self, Outcome, RequestFacts};
use crate::proxy::{
    self, X_PORTCULLIS_DECISION_ID, X_PORTCULLIS_EMAIL, X_PORTCULLIS_GROUPS,
    X_PORTCULLIS_JWT_ASSERTION, X_PORTCULLIS_USER,
};
use crate::routes::{self, normalize_path};

/// The request the ingress is asking about.
struct Original {
    method: Method,
    host: Option<String>,
    uri: Uri,
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Reads the original request from the Traefik or the nginx headers.
fn original(headers: &HeaderMap) -> Result<Original, &'static str> {
    let traefik_uri = header_text(headers, "x-forwarded-uri");
    let nginx_url = header_text(headers, "x-original-url");
    let (method, host, uri) = match (traefik_uri, nginx_url) {
        (Some(uri), _) => {
            let method = header_text(headers, "x-forwarded-method");
            let host = header_text(headers, "x-forwarded-host").map(str::to_owned);
            (method, host, uri.to_owned())
        }
        (None, Some(url)) => {
            let method = header_text(headers, "x-original-method");
            let parsed = Url::parse(url).map_err(|_| "X-Original-URL is not an absolute URL")?;
            let host = parsed.host_str().map(|h| match parsed.port() {
                Some(port) => format!("{h}:{port}"),
                None => h.to_owned(),
            });
            (method, host, raw_target(url)?)
        }
        (None, None) => return Err("X-Forwarded-Uri or X-Original-URL is required"),
    };
    // Required: a default would decide about a method the ingress may not forward (a DELETE
    // taken for a GET passes a rule that denies DELETE).
    let method = method.ok_or("X-Forwarded-Method or X-Original-Method is required")?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| "bad original method")?;
    // As on the gateway: `delete` would pass a rule that denies DELETE and reach a framework
    // that uppercases it (nginx refuses such methods itself; Traefik passes them on).
    if !super::gateway::is_plain_method(&method) {
        return Err("the original method is not valid");
    }
    let uri: Uri = uri.parse().map_err(|_| "bad original URI")?;
    if !uri.path().starts_with('/') {
        return Err("the original URI must start with /");
    }
    let host = host.and_then(|h| routes::host_of(&h).map(|h| h.into_owned()));
    Ok(Original { method, host, uri })
}

/// The request target of an absolute URL exactly as written (`$request_uri`), fragment
/// dropped. Not the `url` crate's path: it resolves `\` as `/` and `..` itself, so
/// `/public\..\admin` would be decided as `/admin` while the ingress forwards the original to
/// a backend that may read it differently; written as is, the path meets the same checks as
/// on the gateway (a `\` is 400).
fn raw_target(url: &str) -> Result<String, &'static str> {
    let after_scheme = url
        .find("://")
        .map(|i| &url[i + 3..])
        .ok_or("X-Original-URL is not an absolute URL")?;
    let target = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |start| &after_scheme[start..]);
    let target = target.split('#').next().unwrap_or_default();
    Ok(match target.strip_prefix('?') {
        Some(_) => format!("/{target}"),
        None if target.is_empty() => "/".to_owned(),
        None => target.to_owned(),
    })
}

/// Serves one forward-auth question.
/// Every question that reaches a route is audited like a proxied request (`detail.via` =
/// `forward_auth`, no upstream); in strict mode the answer waits for the commit.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response<Body> {
    let started = Instant::now();
    let id = crate::ids::uuid_v7();
    let html = pages::wants_html(req.headers());
    let Some(conn) = req.extensions().get::<ConnInfo>().copied() else {
        return pages::error_page(StatusCode::FORBIDDEN, "Forward-auth peers only.", id, false);
    };
    let trusted = &state.config.server.trusted_proxies;
    if !proxy::is_trusted_peer(conn.peer.ip(), trusted) {
        tracing::debug!(peer = %conn.peer, "forward-auth from an untrusted peer");
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "Forward-auth is answered only to server.trusted_proxies.",
            id,
            false,
        );
    }
    let original = match original(req.headers()) {
        Ok(original) => original,
        Err(message) => return pages::error_page(StatusCode::BAD_REQUEST, message, id, false),
    };
    // The upstream would echo the request it received, with the identity headers the
    // ingress adds after a 200 (cross-site tracing): denied, as the gateway refuses it.
    if original.method == Method::TRACE {
        return pages::error_page(StatusCode::FORBIDDEN, "TRACE is not supported.", id, html);
    }
    let Ok(path) = normalize_path(original.uri.path()).map(|p| p.into_owned()) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "The path is not allowed.",
            id,
            false,
        );
    };
    // No route means nothing may pass: deny rather than 404, which ingresses treat as an error.
    let Some(index) = state
        .routes
        .find(original.host.as_deref(), &path, &original.method)
    else {
        return pages::error_page(StatusCode::FORBIDDEN, "No route matches.", id, html);
    };
    let route = state.proxies[index].route();
    let client_ip = proxy::client_ip(conn.peer.ip(), req.headers(), trusted);
    let start = RequestStart {
        decision_id: id,
        route_index: index,
        route_id: &route.id,
        host: original.host.as_deref(),
        path: &path,
        client_ip,
        started,
    };
    let asked = Asked {
        method: &original.method,
        query: original.uri.query(),
        headers: req.headers(),
    };
    let mut audit = match state
        .audit
        .as_ref()
        .map(|a| a.begin_asked(asked, start))
        .transpose()
    {
        Ok(audit) => audit,
        Err(_) => return audit_unavailable(id, html),
    };
    let presented = super::identify::identify(&state, route, req.headers(), &original.uri)
        .await
        .presented;
    if let Some(audit) = audit.as_mut() {
        audit.presented(&presented);
        audit.via_forward_auth();
    }
    let response = match &presented {
        Presented::InvalidBearer { reason } => {
            tracing::debug!(request_id = %id, route = %route.id, %reason, "forward-auth: invalid bearer");
            pages::invalid_token(id, html)
        }
        _ => {
            let identity = presented.identity();
            let policy_path = route.policy_path(&path);
            let facts = RequestFacts {
                decision_id: id,
                method: &original.method,
                path: &policy_path,
                client_ip,
                identity,
            };
            let decision = policy::evaluate(&route.policy, &facts, jiff::Timestamp::now());
            if let Some(audit) = audit.as_mut() {
                audit.decided(&decision);
            }
            tracing::debug!(
                target: "portcullis::access",
                request_id = %id,
                route = %route.id,
                decision = decision.outcome.as_str(),
                "forward-auth"
            );
            answer(&state, route, decision.outcome, identity, id, html)
        }
    };
    if let Some(audit) = audit.take()
        && audit.finish(response.status(), None).await.is_err()
    {
        return audit_unavailable(id, html);
    }
    response
}

/// The answer to the ingress for a decided `outcome`.
fn answer(
    state: &AppState,
    route: &RouteConfig,
    outcome: Outcome,
    identity: Option<&Identity>,
    id: uuid::Uuid,
    html: bool,
) -> Response<Body> {
    match outcome {
        Outcome::Allow => {
            let mut response = Response::new(Body::empty());
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                headers.insert(X_PORTCULLIS_DECISION_ID, value);
            }
            if let Some(identity) = identity {
                let mut set = |name, text: &str| {
                    if let Ok(value) = HeaderValue::from_str(text) {
                        headers.insert(name, value);
                    }
                };
                set(X_PORTCULLIS_USER, &identity.subject);
                if let Some(email) = &identity.email {
                    set(X_PORTCULLIS_EMAIL, email);
                }
                if !identity.groups.is_empty() {
                    set(X_PORTCULLIS_GROUPS, &identity.groups.join(","));
                }
                if let Some(assertion) = state.assertion.assertion(identity, &route.audience) {
                    headers.insert(X_PORTCULLIS_JWT_ASSERTION, assertion);
                }
            }
            response
        }
        Outcome::Login => pages::unauthorized(id, html),
        _ => pages::error_page(
            StatusCode::FORBIDDEN,
            "You are not allowed to reach this page.",
            id,
            html,
        ),
    }
}

/// The audit trail cannot take the event: refuse rather than answer unrecorded.
fn audit_unavailable(id: uuid::Uuid, html: bool) -> Response<Body> {
    tracing::warn!(request_id = %id, "audit trail full or failing: forward-auth answered 503");
    pages::audit_unavailable(id, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn reads_traefik_headers() {
        let o = original(&headers(&[
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/api/x?a=1"),
            ("x-forwarded-host", "App.Corp.Example:443"),
        ]))
        .unwrap();
        assert_eq!(o.method, Method::POST);
        assert_eq!(o.uri.path(), "/api/x");
        assert_eq!(o.uri.query(), Some("a=1"));
        assert_eq!(o.host.as_deref(), Some("app.corp.example"));
    }

    #[test]
    fn reads_nginx_headers() {
        let o = original(&headers(&[
            ("x-original-method", "DELETE"),
            (
                "x-original-url",
                "https://app.corp.example:8443/admin/users?id=3",
            ),
        ]))
        .unwrap();
        assert_eq!(o.method, Method::DELETE);
        assert_eq!(o.uri.path(), "/admin/users");
        assert_eq!(o.uri.query(), Some("id=3"));
        assert_eq!(o.host.as_deref(), Some("app.corp.example"));
    }

    #[test]
    fn the_nginx_target_is_taken_as_written() {
        let cases = [
            ("https://app.corp.example/a/b?x=1#frag", "/a/b?x=1"),
            ("https://app.corp.example", "/"),
            ("https://app.corp.example?x=1", "/?x=1"),
            (
                "https://app.corp.example:8443/public\\..\\admin",
                "/public\\..\\admin",
            ),
            ("http://app/public/%2e%2e/admin", "/public/%2e%2e/admin"),
        ];
        for (url, target) in cases {
            assert_eq!(raw_target(url).unwrap(), target, "{url}");
        }
        assert!(raw_target("/relative").is_err());
        // A backslash path is refused, not read as `/admin`.
        let o = original(&headers(&[
            ("x-original-method", "GET"),
            ("x-original-url", "http://app/public\\..\\admin"),
        ]));
        assert!(o.is_err() || normalize_path(o.unwrap().uri.path()).is_err());
    }

    #[test]
    fn refuses_missing_or_bad_originals() {
        assert!(original(&HeaderMap::new()).is_err());
        assert!(original(&headers(&[("x-original-url", "/relative")])).is_err());
        assert!(original(&headers(&[("x-forwarded-uri", "no-slash")])).is_err());
        assert!(
            original(&headers(&[
                ("x-forwarded-uri", "/"),
                ("x-forwarded-method", "G T")
            ]))
            .is_err()
        );
        // No default method: a DELETE taken for a GET would pass a rule that denies DELETE.
        assert!(original(&headers(&[("x-forwarded-uri", "/")])).is_err());
        let url = ("x-original-url", "https://app.corp.example/admin");
        assert!(original(&headers(&[url])).is_err());
        // Only methods written in `A-Z`, `-`, `_`, as on the gateway.
        for method in ["delete", "Get", "GET\u{7f}"] {
            let Ok(value) = HeaderValue::from_str(method) else {
                continue;
            };
            let mut map = headers(&[url]);
            map.insert("x-original-method", value);
            assert!(original(&map).is_err(), "{method}");
        }
        let mut map = headers(&[url]);
        map.insert("x-original-method", HeaderValue::from_static("PROPFIND"));
        assert_eq!(original(&map).unwrap().method.as_str(), "PROPFIND");
    }
}
