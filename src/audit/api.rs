//! `GET /.portcullis/api/audit`: search the trail. `format=json` (default) answers one page
//! as `{"events": [...], "next": "CURSOR"}`, newest first (pass `cursor=CURSOR` for the next
//! page); `format=jsonl` and `format=csv` stream every matching event (JSON Lines keyed by
//! column, or CSV with a header row; `limit` caps the count when given). Filters: `since`,
//! `until` (a duration ago or RFC 3339), `subject`, `email`, `route`, `decision`, `status`,
//! `kind`, `decision_id`, `text`. Guarded by the `audit.access` policy against the caller's
//! browser session (401 without one, 403 when the policy denies). Every call, allowed or not,
//! is itself an `audit_access` event. 404 when `[audit]` is absent.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use super::access::{self, SearchParams};
use super::event::{COLUMNS, StoredEvent};
use super::store::{AuditFilter, AuditStore, Cursor};
use crate::app::{AppState, ConnInfo};
use crate::policy::Outcome;

/// Events per database round trip while exporting.
const EXPORT_PAGE: u32 = 1000;

/// The handler.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    conn: Option<axum::Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(audit) = state.audit.clone() else {
        return error(StatusCode::NOT_FOUND, "the audit trail is not enabled");
    };
    let conn = conn.map(|c| c.0);
    let access::Access {
        decision,
        mut event,
        ..
    } = access::check(
        &state,
        &audit,
        conn.as_ref(),
        &headers,
        uri.path(),
        uri.query(),
    )
    .await;
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

async fn search(store: &super::Store, q: SearchParams) -> Response {
    let parsed = q.filter(jiff::Timestamp::now()).and_then(|filter| {
        let cursor = q.cursor()?;
        Ok((filter, cursor))
    });
    let (filter, cursor) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let export = match q.format.as_deref().unwrap_or("json") {
        "json" | "" => None,
        "jsonl" => Some(Export::JsonLines),
        "csv" => Some(Export::Csv),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("format: `{other}`: expected json, jsonl or csv"),
            );
        }
    };
    if let Some(export) = export {
        let cap = match q.limit(u32::MAX, u32::MAX) {
            Ok(cap) => u64::from(cap),
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };
        return stream_export(store.clone(), filter, cursor, cap, export);
    }
    let limit = match q.limit(100, 1000) {
        Ok(limit) => limit,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
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

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Export {
    JsonLines,
    Csv,
}

struct ExportState {
    store: super::Store,
    filter: AuditFilter,
    cursor: Option<Cursor>,
    left: u64,
    header: bool,
    done: bool,
}

/// Streams every matching event, one database page at a time, so an export of millions of
/// rows holds one page in memory. A store failure mid-stream ends the body with an error
/// (the client sees a truncated transfer, never a silently short file).
fn stream_export(
    store: super::Store,
    filter: AuditFilter,
    cursor: Option<Cursor>,
    cap: u64,
    export: Export,
) -> Response {
    let state = ExportState {
        store,
        filter,
        cursor,
        left: cap,
        header: export == Export::Csv,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        let mut out = Vec::new();
        if st.header {
            st.header = false;
            out.extend_from_slice(COLUMNS.join(",").as_bytes());
            out.push(b'\n');
        }
        if st.left == 0 {
            st.done = true;
            return Some((Ok(bytes::Bytes::from(out)), st));
        }
        let want = u32::try_from(st.left.min(u64::from(EXPORT_PAGE))).unwrap_or(EXPORT_PAGE);
        match st.store.query(&st.filter, st.cursor.as_ref(), want).await {
            Ok(page) => {
                st.left = st.left.saturating_sub(page.events.len() as u64);
                for event in &page.events {
                    write_row(event, export, &mut out);
                }
                match page.next {
                    Some(next) => st.cursor = Some(next),
                    None => st.done = true,
                }
                Some((Ok(bytes::Bytes::from(out)), st))
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit export failed mid-stream");
                st.done = true;
                Some((Err(std::io::Error::other("audit store failed")), st))
            }
        }
    });
    let content_type = match export {
        Export::JsonLines => "application/jsonl; charset=utf-8",
        Export::Csv => "text/csv; charset=utf-8",
    };
    let file = match export {
        Export::JsonLines => "attachment; filename=\"audit.jsonl\"",
        Export::Csv => "attachment; filename=\"audit.csv\"",
    };
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        http::HeaderValue::from_static(file),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

fn write_row(event: &StoredEvent, export: Export, out: &mut Vec<u8>) {
    match export {
        Export::JsonLines => {
            // Serializing a map of strings and numbers into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &event.to_json());
        }
        Export::Csv => out.extend_from_slice(super::query::csv_row(event).as_bytes()),
    }
    out.push(b'\n');
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
