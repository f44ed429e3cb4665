//! The handler for every request outside `/.portcullis/`: normalize the path, pick the route,
//! find the caller, decide, then forward with the permit or answer with a page. It is the only
//! place that joins routes, policy and proxy; each of those stays ignorant of the others.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use http::{Response, StatusCode, header};
use uuid::Uuid;

use super::AppState;
use super::listener::ConnInfo;
use super::pages;
use super::templates;
use crate::admin::names;
use crate::config::RouteConfig;
use crate::identity::{AuthMethod, Presented};
use crate::policy::{self, Outcome, RequestFacts};
use crate::proxy::{self, ForwardContext, ProxyError};
use crate::request_metrics;
use crate::routes::{self, normalize_path};

/// Serves one proxied request as an axum handler (the router's fallback): the connection
/// facts come from the request's [`ConnInfo`] extension.
pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response<Body> {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or(ConnInfo {
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
        });
    serve(&state, conn, Box::new(req)).await
}

/// Serves one proxied request that arrived on `conn`. The listener calls this directly,
/// without the extension map an axum handler reads (it costs allocations per request).
/// The request comes boxed: see `http1::Head`.
pub async fn serve(state: &AppState, conn: ConnInfo, req: Box<Request>) -> Response<Body> {
    let started = Instant::now();
    // One wall-clock read serves the request id and the policy's time windows.
    let wall = jiff::Timestamp::now();
    let id = crate::ids::uuid_v7_at(wall);
    let html = pages::wants_html(req.headers());
    // An answer before any route is chosen: counted under no route, never audited.
    let refuse = |decision: &'static str, status: StatusCode, message: &str| {
        record("", decision, status, started);
        pages::error_page(status, message, id, html)
    };

    // TRACE makes the upstream echo the request it received, and that carries what portcullis
    // added: the signed identity assertion and claim headers, which must never reach a client
    // (cross-site tracing). Refused for every route, as nginx does; 501 per pinned behaviour 8.
    if req.method() == http::Method::TRACE {
        return refuse(
            "none",
            StatusCode::NOT_IMPLEMENTED,
            "TRACE is not supported.",
        );
    }
    // Methods are case-sensitive, and policy compares them exactly, but some frameworks
    // uppercase what they receive (Django does): `delete` would pass a rule that denies
    // DELETE and then be served as one. Like nginx, only `A-Z`, `-` and `_` are accepted.
    if !is_plain_method(req.method()) {
        return refuse(
            "none",
            StatusCode::BAD_REQUEST,
            "The request method is not valid.",
        );
    }

    let path = match normalize_path(req.uri().path()) {
        Ok(path) => path.into_owned(),
        Err(error) => {
            tracing::debug!(request_id = %id, %error, "refused path");
            return refuse(
                "error",
                StatusCode::BAD_REQUEST,
                "The request path is not allowed.",
            );
        }
    };
    // The reserved prefix is never forwarded, however the path was spelled: a request that
    // only normalizes onto it (`/x/../.portcullis/login`) missed the router's endpoints.
    if path == "/.portcullis" || path.starts_with("/.portcullis/") {
        return refuse(
            "none",
            StatusCode::NOT_FOUND,
            "No such portcullis endpoint.",
        );
    }
    let host = request_host(&req);
    let Some(index) = state.routes.find(host.as_deref(), &path, req.method()) else {
        return refuse(
            "none",
            StatusCode::NOT_FOUND,
            "No route matches this request.",
        );
    };
    let route = &state.proxies[index];
    let route_id: &str = &route.route().id;
    let trusted = &state.config.server.trusted_proxies;
    let client_ip = proxy::client_ip(conn.peer.ip(), req.headers(), trusted);
    let start = crate::audit::RequestStart {
        decision_id: id,
        route_index: index,
        route_id,
        host: host.as_deref(),
        path: &path,
        client_ip,
        started,
    };
    let mut audit = match state
        .audit
        .as_ref()
        .map(|a| a.begin(&req, start))
        .transpose()
    {
        Ok(audit) => audit,
        Err(_) => return audit_unavailable(route_id, id, started, html),
    };

    let accepts_session = route.route().auth.contains(&AuthMethod::Session);
    let caller = super::identify::identify(state, route.route(), req.headers(), req.uri()).await;
    let presented = caller.presented;
    if let Some(audit) = audit.as_mut() {
        audit.presented(&presented);
    }
    if let Presented::InvalidBearer { reason } = &presented {
        tracing::debug!(request_id = %id, route = %route_id, %reason, "invalid bearer token");
        let status = StatusCode::UNAUTHORIZED;
        if let Some(audit) = audit.take()
            && Box::pin(audit.finish(status, None)).await.is_err()
        {
            return audit_unavailable(route_id, id, started, html);
        }
        record(route_id, "login", status, started);
        return pages::invalid_token(id, html);
    }
    let identity = presented.identity();
    let policy_path = route.route().policy_path(&path);
    let facts = RequestFacts {
        decision_id: id,
        method: req.method(),
        path: &policy_path,
        client_ip,
        identity,
    };
    let decision = policy::evaluate(&route.route().policy, &facts, wall);
    if let Some(audit) = audit.as_mut() {
        audit.decided(&decision);
        // Strict mode: no upstream contact before the decision is committed.
        if decision.outcome == Outcome::Allow && audit.commit_decision().await.is_err() {
            return audit_unavailable(route_id, id, started, html);
        }
    }

    // The upstream that answered, for the audit event.
    let mut served_by: Option<&str> = None;
    let response = match (decision.permit(), decision.outcome) {
        (Some(permit), _) => {
            let assertion =
                identity.and_then(|id| state.assertion.assertion(id, &route.route().audience));
            let ctx = ForwardContext {
                peer: conn.peer,
                tls: conn.tls,
                trusted_peer: proxy::is_trusted_peer(conn.peer.ip(), trusted),
                client_ip,
                path: &path,
                identity,
                assertion: assertion.as_ref(),
                access_token: caller.access_token.as_ref(),
            };
            let mut req = req;
            // The session cookie is a credential for portcullis, never for the upstream.
            state.sessions.strip_cookies(req.headers_mut());
            match proxy::forward_served(permit, route, ctx, req).await {
                Ok((mut response, by)) => {
                    served_by = Some(by);
                    // Nor may the upstream set it.
                    state.sessions.strip_set_cookies(response.headers_mut());
                    response
                }
                Err(error) => upstream_failure(route_id, id, &error, html),
            }
        }
        (None, Outcome::Login) => {
            login_or_unauthorized(state, route.route(), &req, id, html, accepts_session)
        }
        (None, _) if html && identity.is_some() => templates::deny(
            decision.id,
            identity.and_then(|i| i.email.as_deref().or(Some(i.subject.as_str()))),
        ),
        (None, _) => pages::error_page(
            StatusCode::FORBIDDEN,
            "You are not allowed to reach this page.",
            id,
            html,
        ),
    };
    // Boxed: the finish future is large (~1.9 KB) and inline it would enlarge every
    // request's future, audited or not, which is copied as it moves.
    if let Some(audit) = audit.take()
        && Box::pin(audit.finish(response.status(), served_by))
            .await
            .is_err()
    {
        return audit_unavailable(route_id, id, started, html);
    }
    record(
        route_id,
        decision.outcome.as_str(),
        response.status(),
        started,
    );
    tracing::debug!(
        target: "portcullis::access",
        request_id = %id,
        route = %route_id,
        decision = decision.outcome.as_str(),
        status = response.status().as_u16(),
        "request"
    );
    response
}

/// Pinned behaviour 3: a browser navigation (GET/HEAD accepting HTML) on a route that takes
/// session logins goes to the login page, with the original path and query as `rd`; anything
/// else gets 401 with a Bearer challenge.
// Off the proxied path: kept out of line so the hot code packs tighter.
#[cold]
fn login_or_unauthorized(
    state: &AppState,
    route: &RouteConfig,
    req: &Request,
    id: Uuid,
    html: bool,
    accepts_session: bool,
) -> Response<Body> {
    let navigation =
        html && (req.method() == http::Method::GET || req.method() == http::Method::HEAD);
    if !(navigation && accepts_session && !state.oidc.is_empty()) {
        return pages::unauthorized(id, html);
    }
    let rd = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("rd", rd);
    if let [only] = route.providers.as_slice() {
        query.append_pair("provider", only);
    }
    templates::redirect(
        StatusCode::FOUND,
        &format!("/.portcullis/login?{}", query.finish()),
        &[],
    )
}

/// Whether the method is written only with `A-Z`, `-` and `_` (every registered method is).
pub(super) fn is_plain_method(method: &http::Method) -> bool {
    method
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
}

/// The request's host without port, lowercased: the Host header, or the HTTP/2 authority.
fn request_host(req: &Request) -> Option<std::borrow::Cow<'_, str>> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))?;
    routes::host_of(raw)
}

#[cold]
fn upstream_failure(route_id: &str, id: Uuid, error: &ProxyError, html: bool) -> Response<Body> {
    let status = error.status();
    let kind = match error {
        ProxyError::Connect(_) => "connect",
        ProxyError::Timeout => "timeout",
        ProxyError::BodyTooLarge => "body",
        _ => "upstream",
    };
    if status.is_server_error() {
        tracing::warn!(request_id = %id, route = route_id, %error, "upstream failure");
        metrics::counter!(names::UPSTREAM_ERRORS, "route" => route_id.to_owned(), "kind" => kind)
            .increment(1);
    } else {
        tracing::debug!(request_id = %id, route = route_id, %error, "request body refused");
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.",
        StatusCode::BAD_REQUEST => "The request body could not be read.",
        StatusCode::REQUEST_TIMEOUT => "The request body did not arrive in time.",
        StatusCode::GATEWAY_TIMEOUT => "The service behind this address did not answer in time.",
        _ => "The service behind this address is unavailable.",
    };
    pages::error_page(status, message, id, html)
}

/// The audit trail cannot take the event: refuse rather than serve unrecorded.
#[cold]
fn audit_unavailable(route_id: &str, id: Uuid, started: Instant, html: bool) -> Response<Body> {
    tracing::warn!(request_id = %id, route = route_id, "audit trail full or failing: 503");
    record(route_id, "error", StatusCode::SERVICE_UNAVAILABLE, started);
    pages::audit_unavailable(id, html)
}

/// This worker thread's metric shards for one route (see [`request_metrics`]), cached so a
/// request finds them without a lock or a shared reference count. The maps use hashbrown's
/// default (foldhash): the keys are our own route ids, and SipHash showed up in profiles of
/// every request.
struct RouteMetrics {
    latency: Arc<request_metrics::Shard>,
    requests: hashbrown::HashMap<(&'static str, u16), Arc<request_metrics::Counter>>,
}

thread_local! {
    static ROUTE_METRICS: std::cell::RefCell<hashbrown::HashMap<Box<str>, RouteMetrics>> =
        std::cell::RefCell::new(hashbrown::HashMap::new());
}

fn record(route_id: &str, decision: &'static str, status: StatusCode, started: Instant) {
    let elapsed = started.elapsed();
    ROUTE_METRICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let route = match cache.get_mut(route_id) {
            Some(route) => route,
            None => cache
                .entry(route_id.into())
                .or_insert_with(|| RouteMetrics {
                    latency: request_metrics::shard(route_id),
                    requests: hashbrown::HashMap::new(),
                }),
        };
        route
            .requests
            .entry((decision, status.as_u16()))
            .or_insert_with(|| {
                request_metrics::request_counter(route_id, decision, status.as_u16())
            })
            .increment();
        route.latency.record(elapsed);
    });
}
