//! `GET /.portcullis/audit`: the HTML page to search and read the trail. A plain GET form
//! (the API's filters), a results table newest first with every column behind a `<details>`
//! per row (no script), a "next page" link carrying the cursor, and export links to the API's
//! JSON Lines and CSV streams. Served through portcullis's own login: an anonymous browser
//! goes to `/.portcullis/login?rd=/.portcullis/audit...`, a signed-in caller the
//! `audit.access` policy denies gets the 403 page. Every view, allowed or not, is an
//! `audit_access` event. It renders what the store returns and never writes the trail
//! otherwise.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;

use super::access::{self, SearchParams};
use super::event::{COLUMNS, StoredEvent, kind};
use super::store::AuditStore;
use crate::app::templates;
use crate::app::{AppState, ConnInfo};
use crate::policy::Outcome;

/// Rows per page unless `limit` says otherwise (at most [`MAX_ROWS`]).
const ROWS: u32 = 50;
const MAX_ROWS: u32 = 500;
const PATH: &str = "/.portcullis/audit";

/// The handler.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    conn: Option<axum::Extension<ConnInfo>>,
    headers: HeaderMap,
    uri: http::Uri,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response<Body> {
    let Some(audit) = state.audit.clone() else {
        return templates::error(
            StatusCode::NOT_FOUND,
            "The audit trail is not enabled.",
            crate::ids::uuid_v7(),
            None,
        );
    };
    let conn = conn.map(|c| c.0);
    let access::Access {
        decision,
        identity,
        mut event,
    } = access::check(&state, &audit, conn.as_ref(), &headers, PATH, uri.query()).await;
    let who = identity
        .as_ref()
        .map(|i| i.email.clone().unwrap_or_else(|| i.subject.clone()));
    let response = match decision.outcome {
        Outcome::Login if state.oidc.is_empty() => templates::error(
            StatusCode::UNAUTHORIZED,
            "Sign-in is required to read the audit trail, and no sign-in provider is configured.",
            decision.id,
            None,
        ),
        Outcome::Login => {
            let rd = uri.path_and_query().map_or(PATH, |pq| pq.as_str());
            let mut login = url::form_urlencoded::Serializer::new(String::new());
            login.append_pair("rd", rd);
            templates::redirect(
                StatusCode::FOUND,
                &format!("/.portcullis/login?{}", login.finish()),
                &[],
            )
        }
        Outcome::Deny if who.is_some() => templates::deny(decision.id, who.as_deref()),
        Outcome::Deny => templates::error(
            StatusCode::FORBIDDEN,
            "You are not allowed to read the audit trail.",
            decision.id,
            None,
        ),
        Outcome::Allow => {
            let q = query.map(|Query(q)| q).unwrap_or_default();
            render(
                &audit.store,
                &q,
                who.as_deref().unwrap_or("an allowed caller"),
            )
            .await
        }
    };
    event.status = Some(i64::from(response.status().as_u16()));
    // Reading the trail unrecorded is what the trail exists to prevent: fail closed.
    if audit.sink.record(event).is_err() {
        return templates::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The audit trail is busy; please try again shortly.",
            decision.id,
            None,
        );
    }
    response
}

/// One table row.
#[derive(Debug, Serialize)]
struct Row {
    ts: String,
    kind: String,
    decision: String,
    status: String,
    route: String,
    method: String,
    path: String,
    who: String,
    rule: String,
    seq: String,
    fields: Vec<Field>,
}

/// One column in a row's details.
#[derive(Debug, Serialize)]
struct Field {
    name: &'static str,
    value: String,
}

fn row(stored: &StoredEvent) -> Row {
    let e = &stored.event;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let path = match (&e.path, &e.query) {
        (Some(path), Some(query)) => format!("{path}?{query}"),
        (path, _) => text(path),
    };
    let fields = COLUMNS
        .iter()
        .zip(stored.column_values())
        .map(|(name, value)| Field {
            name,
            value: value.cell(),
        })
        .filter(|f| !f.value.is_empty())
        .collect();
    Row {
        ts: e.ts.clone(),
        kind: e.kind.clone(),
        decision: text(&e.decision),
        status: e.status.map(|s| s.to_string()).unwrap_or_default(),
        route: text(&e.route_id),
        method: text(&e.method),
        path,
        who: e
            .email
            .clone()
            .or_else(|| e.subject.clone())
            .unwrap_or_default(),
        rule: text(&e.rule),
        seq: format!("{}#{}", stored.instance, stored.seq),
        fields,
    }
}

async fn render(store: &super::Store, q: &SearchParams, who: &str) -> Response<Body> {
    let filters = q.filter_query();
    let link = |extra: &str| {
        let sep = if filters.is_empty() { "" } else { "&" };
        format!("{filters}{sep}{extra}")
    };
    let parsed = q
        .filter(jiff::Timestamp::now())
        .and_then(|filter| Ok((filter, q.cursor()?, q.limit(ROWS, MAX_ROWS)?)));
    let (status, events, next, error) = match parsed {
        Err(message) => (StatusCode::BAD_REQUEST, Vec::new(), None, Some(message)),
        Ok((filter, cursor, limit)) => match store.query(&filter, cursor.as_ref(), limit).await {
            Ok(page) => {
                let next = page.next.map(|c| {
                    let mut extra = url::form_urlencoded::Serializer::new(String::new());
                    if limit != ROWS {
                        extra.append_pair("limit", &limit.to_string());
                    }
                    extra.append_pair("cursor", &c.encode());
                    format!("{PATH}?{}", link(&extra.finish()))
                });
                let rows = page.events.iter().map(row).collect();
                (StatusCode::OK, rows, next, None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit page search failed");
                let message = "The audit store is unavailable right now.".to_owned();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Vec::new(),
                    None,
                    Some(message),
                )
            }
        },
    };
    let kinds = [
        "",
        kind::REQUEST,
        kind::OUTCOME,
        kind::LOGIN,
        kind::LOGOUT,
        kind::SESSION_EXPIRED,
        kind::CONFIG_LOAD,
        kind::CONFIG_RELOAD,
        kind::RETENTION,
        kind::AUDIT_ACCESS,
    ];
    templates::page(
        status,
        "Audit trail",
        "audit.html",
        minijinja::context! {
            who => who,
            q => q,
            kinds => kinds,
            events => events,
            next => next,
            error => error,
            export_jsonl => format!("/.portcullis/api/audit?{}", link("format=jsonl")),
            export_csv => format!("/.portcullis/api/audit?{}", link("format=csv")),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Chain;
    use crate::audit::event::AuditEvent;

    #[test]
    fn rows_show_the_request_and_keep_every_set_column() {
        let mut chain = Chain::resume("gate", None);
        let stored = chain.append(AuditEvent {
            path: Some("/a".into()),
            query: Some("x=1".into()),
            subject: Some("sub-1".into()),
            status: Some(403),
            decision: Some("deny".into()),
            ..AuditEvent::new(kind::REQUEST, jiff::Timestamp::UNIX_EPOCH)
        });
        let r = row(&stored);
        assert_eq!(r.path, "/a?x=1");
        assert_eq!(r.who, "sub-1");
        assert_eq!(r.status, "403");
        assert_eq!(r.seq, "gate#1");
        let names: Vec<&str> = r.fields.iter().map(|f| f.name).collect();
        for name in [
            "id",
            "ts",
            "instance",
            "seq",
            "kind",
            "path",
            "hash",
            "prev_hash",
        ] {
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
        assert!(!names.contains(&"email"), "empty columns are left out");
    }
}
