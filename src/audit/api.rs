//! `GET /.portcullis/api/audit`: search the trail as JSON (`{"events": [...], "next":
//! "CURSOR"}`, newest first; pass `cursor=CURSOR` for the next page). Filters: `since`,
//! `until` (a duration ago or RFC 3339), `subject`, `email`, `route`, `decision`, `status`,
//! `kind`, `text`, `limit` (default 100, at most 1000). Guarded by the `audit.access` policy
//! against the caller's identity: until an identity source is wired in here every caller is
//! anonymous, so the answer is 401 (login required) unless a rule is `public`. Every call,
//! allowed or not, is itself an `audit_access` event. 404 when `[audit]` is absent.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde::Deserialize;
use uuid::Uuid;

use super::event::{AuditEvent, kind};
use super::query::parse_time;
use super::store::{AuditFilter, AuditStore, Cursor};
use crate::app::{AppState, ConnInfo};
use crate::policy::{self, Outcome, RequestFacts};

/// The query string.
#[derive(Debug, Default, Deserialize)]
pub struct ApiQuery {
    since: Option<String>,
    until: Option<String>,
    subject: Option<String>,
    email: Option<String>,
    route: Option<String>,
    decision: Option<String>,
    status: Option<i64>,
    kind: Option<String>,
    text: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The handler.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    conn: Option<axum::Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    query: Result<Query<ApiQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(audit) = state.audit.clone() else {
        return error(StatusCode::NOT_FOUND, "the audit trail is not enabled");
    };
    let decision_id = Uuid::now_v7();
    let client_ip = conn
        .map(|c| c.0.peer.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let facts = RequestFacts {
        decision_id,
        method: &Method::GET,
        path: "/.portcullis/api/audit",
        client_ip,
        identity: None,
    };
    let decision = policy::evaluate(&audit.access, &facts, jiff::Timestamp::now());
    let mut event = AuditEvent::new(kind::AUDIT_ACCESS, jiff::Timestamp::now());
    event.decision_id = Some(decision_id.to_string());
    event.method = Some("GET".into());
    event.path = Some(uri.path().to_owned());
    event.query = uri.query().map(|q| audit.redactor.query(q));
    event.client_ip = Some(client_ip.to_string());
    event.user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| audit.redactor.header("user-agent", v.as_bytes()));
    event.auth_method = Some("none".into());
    event.decision = Some(decision.outcome.as_str().into());
    event.rule = decision.rule.as_deref().map(str::to_owned);
    event.reasons = serde_json::to_string(&decision.reasons).ok();
    let response = match decision.outcome {
        Outcome::Login => {
            let mut r = error(StatusCode::UNAUTHORIZED, "authentication required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            r
        }
        Outcome::Deny => error(StatusCode::FORBIDDEN, "not allowed to read the audit trail"),
        Outcome::Allow => match query {
            Ok(Query(q)) => search(&audit.store, q).await,
            Err(e) => error(StatusCode::BAD_REQUEST, &e.body_text()),
        },
    };
    event.status = Some(i64::from(response.status().as_u16()));
    // Reading the trail unrecorded is what the trail exists to prevent: fail closed.
    if audit.sink.record(event).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the audit trail is busy");
    }
    response
}

async fn search(store: &super::Store, q: ApiQuery) -> Response {
    let now = jiff::Timestamp::now();
    let time = |t: &Option<String>| t.as_deref().map(|t| parse_time(t, now)).transpose();
    let (since, until) = match (time(&q.since), time(&q.until)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let cursor = match q.cursor.as_deref().map(Cursor::decode) {
        Some(None) => return error(StatusCode::BAD_REQUEST, "invalid cursor"),
        Some(Some(c)) => Some(c),
        None => None,
    };
    let filter = AuditFilter {
        since,
        until,
        subject: q.subject,
        email: q.email,
        route: q.route,
        decision: q.decision,
        status: q.status,
        kind: q.kind,
        text: q.text,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match store.query(&filter, cursor.as_ref(), limit).await {
        Ok(page) => {
            let events: Vec<_> = page.events.iter().map(|e| e.to_json()).collect();
            Json(serde_json::json!({
                "events": events,
                "next": page.next.map(|c| c.encode()),
            }))
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "audit search failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit store is unavailable",
            )
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
