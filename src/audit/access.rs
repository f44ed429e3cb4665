//! Who may read the trail, and the search parameters both readers share. [`check`] finds the
//! caller through the same browser-session identity source the gateway uses, evaluates the
//! `audit.access` policy and starts the `audit_access` event that every read (allowed or
//! not) records. [`SearchParams`] is the query string of the API and the page: empty form
//! fields count as absent, so the page's plain GET form can send every field.

use std::net::IpAddr;

use http::{HeaderMap, Method, header};
use serde::{Deserialize, Serialize};

use super::event::{AuditEvent, DECISIONS, check_filter_value, kind};
use super::query::parse_time;
use super::request::identity_fields;
use super::setup::Audit;
use super::store::{AuditFilter, Cursor};
use crate::app::{AppState, ConnInfo};
use crate::identity::Identity;
use crate::policy::{self, Decision, RequestFacts};

/// The search filters, page size and cursor as sent in the query string. An unknown name is
/// refused (400), never ignored: a mistyped filter (`q=`, `route_id=`) would otherwise return
/// the unfiltered trail to someone who believes it filtered.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub since: Option<String>,
    pub until: Option<String>,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub route: Option<String>,
    pub decision: Option<String>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub decision_id: Option<String>,
    pub text: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// API only: `json` (default), `jsonl` or `csv`.
    pub format: Option<String>,
}

/// A trimmed, non-empty value.
fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl SearchParams {
    /// The store filter; `Err` is a message for a 400 answer.
    pub fn filter(&self, now: jiff::Timestamp) -> Result<AuditFilter, String> {
        let time = |name: &str, value: &Option<String>| {
            given(value)
                .map(|t| parse_time(&t, now).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let status = match given(&self.status) {
            Some(text) => Some(
                text.parse::<i64>()
                    .map_err(|_| format!("status: `{text}` is not a number"))?,
            ),
            None => None,
        };
        let decision = given(&self.decision);
        if let Some(value) = &decision {
            check_filter_value("decision", value, &DECISIONS)?;
        }
        let kind = given(&self.kind);
        if let Some(value) = &kind {
            check_filter_value("kind", value, &kind::ALL)?;
        }
        Ok(AuditFilter {
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            subject: given(&self.subject),
            email: given(&self.email),
            route: given(&self.route),
            decision,
            status,
            kind,
            decision_id: given(&self.decision_id),
            text: given(&self.text),
        })
    }

    /// The page size: `default` when absent, at most `max`.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, String> {
        match given(&self.limit) {
            None => Ok(default),
            Some(text) => text
                .parse::<u32>()
                .map(|n| n.clamp(1, max))
                .map_err(|_| format!("limit: `{text}` is not a number")),
        }
    }

    /// The decoded cursor; `Err` when one was given but is not ours.
    pub fn cursor(&self) -> Result<Option<Cursor>, String> {
        match given(&self.cursor) {
            None => Ok(None),
            Some(text) => Cursor::decode(&text)
                .map(Some)
                .ok_or_else(|| "invalid cursor".to_owned()),
        }
    }

    /// The filters (not cursor, limit or format) as a query string, for links.
    pub fn filter_query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let fields = [
            ("since", &self.since),
            ("until", &self.until),
            ("subject", &self.subject),
            ("email", &self.email),
            ("route", &self.route),
            ("decision", &self.decision),
            ("status", &self.status),
            ("kind", &self.kind),
            ("decision_id", &self.decision_id),
            ("text", &self.text),
        ];
        for (name, value) in fields {
            if let Some(value) = given(value) {
                query.append_pair(name, &value);
            }
        }
        query.finish()
    }
}

/// The outcome of an access check, with the event to record once the answer is known.
#[derive(Debug)]
pub struct Access<'a> {
    pub decision: Decision<'a>,
    pub identity: Option<Identity>,
    /// The `audit_access` event; the caller sets `status` and records it.
    pub event: AuditEvent,
}

/// Evaluates `audit.access` for the caller of `path` (`uri_query` is recorded, redacted).
pub async fn check<'a>(
    state: &AppState,
    audit: &'a Audit,
    conn: Option<&ConnInfo>,
    headers: &HeaderMap,
    path: &str,
    uri_query: Option<&str>,
) -> Access<'a> {
    let decision_id = crate::ids::uuid_v7();
    let peer = conn.map_or(IpAddr::from([127, 0, 0, 1]), |c| c.peer.ip());
    let client_ip = crate::proxy::client_ip(peer, headers, &state.config.server.trusted_proxies);
    let identity = crate::app::browser::session_identity(state, headers).await;
    let facts = RequestFacts {
        decision_id,
        method: &Method::GET,
        path,
        client_ip,
        identity: identity.as_ref(),
    };
    let decision = policy::evaluate(&audit.access, &facts, jiff::Timestamp::now());
    let mut event = AuditEvent::new(kind::AUDIT_ACCESS, jiff::Timestamp::now());
    event.decision_id = Some(decision_id.to_string());
    event.method = Some("GET".into());
    event.path = Some(path.to_owned());
    event.query = uri_query.map(|q| audit.redactor.query(q));
    event.client_ip = Some(client_ip.to_string());
    event.user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| audit.redactor.header("user-agent", v.as_bytes()));
    event.auth_method = Some("none".into());
    if let Some(identity) = &identity {
        identity_fields(&mut event, &audit.redactor, identity);
    }
    event.decision = Some(decision.outcome.as_str().into());
    event.rule = decision.rule.map(str::to_owned);
    event.reasons = serde_json::to_string(&decision.reasons).ok();
    Access {
        decision,
        identity,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_and_kind_values_are_checked() {
        let now = jiff::Timestamp::now();
        for good in ["decision=deny", "kind=audit_access", "decision=&kind="] {
            assert!(params(good).filter(now).is_ok(), "{good}");
        }
        for bad in ["decision=denied", "kind=requests", "decision=DENY"] {
            let error = params(bad).filter(now).unwrap_err();
            assert!(error.contains("expected one of"), "{bad}: {error}");
        }
    }

    fn params(pairs: &str) -> SearchParams {
        let uri: http::Uri = format!("/?{pairs}").parse().unwrap();
        axum::extract::Query::<SearchParams>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    #[test]
    fn empty_form_fields_are_absent() {
        let p = params("since=&until=&subject=&status=&decision=deny&text=+x+&limit=");
        let now: jiff::Timestamp = "2026-11-05T10:00:00Z".parse().unwrap();
        let filter = p.filter(now).unwrap();
        assert_eq!(
            filter,
            AuditFilter {
                decision: Some("deny".into()),
                text: Some("x".into()),
                ..AuditFilter::default()
            }
        );
        assert_eq!(p.limit(50, 500).unwrap(), 50);
        assert_eq!(p.cursor().unwrap(), None);
        assert_eq!(p.filter_query(), "decision=deny&text=x");
    }

    #[test]
    fn bad_values_are_messages() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        assert!(
            params("status=abc")
                .filter(now)
                .unwrap_err()
                .contains("status")
        );
        assert!(
            params("since=yesterday")
                .filter(now)
                .unwrap_err()
                .contains("since")
        );
        assert!(params("limit=-1").limit(50, 500).is_err());
        assert_eq!(params("limit=100000").limit(50, 500).unwrap(), 500);
        assert!(params("cursor=zz").cursor().is_err());
    }

    #[test]
    fn unknown_parameters_are_refused_not_ignored() {
        for query in ["q=admin", "route_id=billing", "text=x&Subject=y"] {
            let uri: http::Uri = format!("/?{query}").parse().unwrap();
            let error = axum::extract::Query::<SearchParams>::try_from_uri(&uri)
                .unwrap_err()
                .body_text();
            assert!(error.contains("unknown field"), "{query}: {error}");
        }
    }

    #[test]
    fn filter_query_encodes_and_keeps_order() {
        let p = params("text=a%26b&route=r&subject=s+t&cursor=abc&format=csv&decision_id=d-1");
        assert_eq!(
            p.filter_query(),
            "subject=s+t&route=r&decision_id=d-1&text=a%26b"
        );
        assert_eq!(
            p.filter(jiff::Timestamp::now())
                .unwrap()
                .decision_id
                .as_deref(),
            Some("d-1")
        );
    }
}
