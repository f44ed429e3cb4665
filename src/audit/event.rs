//! The audit event as stored: one row of `audit_events`. [`AuditEvent`] is what producers
//! (the gateway, config loading, retention, the audit API) fill in, already redacted;
//! [`StoredEvent`] adds the hash-chain fields the writer assigns. Nothing here redacts,
//! hashes or writes.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The column names of `audit_events`, in storage order. Queries, CSV and JSON output use
/// this order; the chain hashes the same fields in the same order.
pub const COLUMNS: [&str; 29] = [
    "id",
    "decision_id",
    "ts",
    "instance",
    "seq",
    "kind",
    "route_id",
    "method",
    "host",
    "path",
    "query",
    "client_ip",
    "user_agent",
    "auth_method",
    "subject",
    "email",
    "issuer",
    "provider",
    "groups",
    "decision",
    "rule",
    "reasons",
    "policy_version",
    "status",
    "latency_us",
    "upstream",
    "detail",
    "prev_hash",
    "hash",
];

/// Event kinds the code emits.
pub mod kind {
    /// One request that reached a route (async mode: the whole story; strict: the decision).
    pub const REQUEST: &str = "request";
    /// Strict mode: what happened after a committed allow decision.
    pub const OUTCOME: &str = "outcome";
    /// The process loaded its config (`detail.config_hash`).
    pub const CONFIG_LOAD: &str = "config_load";
    /// The retention job deleted old events (`detail.checkpoints`).
    pub const RETENTION: &str = "retention";
    /// Someone read the trail through `/.portcullis/api/audit` or `/.portcullis/audit`.
    pub const AUDIT_ACCESS: &str = "audit_access";
    /// A browser login finished (`decision` allow) or failed (`decision` error).
    pub const LOGIN: &str = "login";
    /// Sessions ended by the user (`detail.via` = `rp`) or the provider (`backchannel`).
    pub const LOGOUT: &str = "logout";
    /// A presented session was found over (`detail.reason`: idle, absolute, revoked).
    pub const SESSION_EXPIRED: &str = "session_expired";
    /// The process replaced its config (`detail.config_hash`, `detail.outcome`).
    pub const CONFIG_RELOAD: &str = "config_reload";

    /// Every kind, for checking a search filter.
    pub const ALL: [&str; 9] = [
        REQUEST,
        OUTCOME,
        CONFIG_LOAD,
        RETENTION,
        AUDIT_ACCESS,
        LOGIN,
        LOGOUT,
        SESSION_EXPIRED,
        CONFIG_RELOAD,
    ];
}

/// Every value the `decision` column takes.
pub const DECISIONS: [&str; 4] = ["allow", "deny", "login", "error"];

/// Checks a `decision` or `kind` search value against what the trail can hold: a typo
/// (`decision=denied`) would otherwise find nothing, and an investigator would read "no
/// denials" where there were some.
pub fn check_filter_value(name: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{name}: `{value}`: expected one of {}",
            allowed.join(", ")
        ))
    }
}

/// An event before chaining. Every text field is already redacted. Times are
/// [`format_ts`] text: RFC 3339 UTC with exactly six fractional digits, so text order is time
/// order in both databases.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Event id, UUIDv7.
    pub id: String,
    /// The decision this event belongs to (`X-Portcullis-Decision-Id`).
    pub decision_id: Option<String>,
    /// When the event happened.
    pub ts: String,
    /// See [`kind`].
    pub kind: String,
    pub route_id: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    /// Normalized request path (no query).
    pub path: Option<String>,
    /// Redacted query string.
    pub query: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// `session`, `bearer` or `none`.
    pub auth_method: Option<String>,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub issuer: Option<String>,
    pub provider: Option<String>,
    /// JSON array of group names.
    pub groups: Option<String>,
    /// `allow`, `deny`, `login` or `error`.
    pub decision: Option<String>,
    /// The deciding rule id.
    pub rule: Option<String>,
    /// JSON array of typed reasons.
    pub reasons: Option<String>,
    /// SHA-256 (hex) of the route policy that decided.
    pub policy_version: Option<String>,
    /// HTTP status answered.
    pub status: Option<i64>,
    /// Time from accept to response head, microseconds.
    pub latency_us: Option<i64>,
    /// The upstream URL that answered.
    pub upstream: Option<String>,
    /// JSON object with kind-specific fields.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// A new event of `kind` now, with a fresh id.
    pub fn new(kind: &str, now: Timestamp) -> Self {
        AuditEvent {
            id: crate::ids::uuid_v7().to_string(),
            ts: format_ts(now),
            kind: kind.to_owned(),
            ..AuditEvent::default()
        }
    }
}

/// An event with its place in its instance's hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The chain (one per process) this event belongs to.
    pub instance: String,
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The previous event's hash (64 zeros for seq 1, or the retention checkpoint's).
    pub prev_hash: String,
    /// SHA-256 (hex) over the canonical encoding; see [`super::chain`].
    pub hash: String,
    /// The event itself.
    #[serde(flatten)]
    pub event: AuditEvent,
}

impl StoredEvent {
    /// Every column as JSON, keyed by column name, in [`COLUMNS`] order.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        for (name, value) in COLUMNS.iter().zip(self.column_values()) {
            let value = match value {
                ColumnValue::Text(Some(s)) => serde_json::Value::String(s.to_owned()),
                ColumnValue::Int(Some(n)) => serde_json::Value::from(n),
                ColumnValue::Text(None) | ColumnValue::Int(None) => serde_json::Value::Null,
            };
            map.insert((*name).to_owned(), value);
        }
        map
    }

    /// Every column's value in [`COLUMNS`] order.
    pub fn column_values(&self) -> [ColumnValue<'_>; 29] {
        let e = &self.event;
        fn t(s: &Option<String>) -> ColumnValue<'_> {
            ColumnValue::Text(s.as_deref())
        }
        [
            ColumnValue::Text(Some(&e.id)),
            t(&e.decision_id),
            ColumnValue::Text(Some(&e.ts)),
            ColumnValue::Text(Some(&self.instance)),
            ColumnValue::Int(Some(self.seq)),
            ColumnValue::Text(Some(&e.kind)),
            t(&e.route_id),
            t(&e.method),
            t(&e.host),
            t(&e.path),
            t(&e.query),
            t(&e.client_ip),
            t(&e.user_agent),
            t(&e.auth_method),
            t(&e.subject),
            t(&e.email),
            t(&e.issuer),
            t(&e.provider),
            t(&e.groups),
            t(&e.decision),
            t(&e.rule),
            t(&e.reasons),
            t(&e.policy_version),
            ColumnValue::Int(e.status),
            ColumnValue::Int(e.latency_us),
            t(&e.upstream),
            t(&e.detail),
            ColumnValue::Text(Some(&self.prev_hash)),
            ColumnValue::Text(Some(&self.hash)),
        ]
    }
}

/// One column's value, borrowed, for binding and printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnValue<'a> {
    /// A text column (NULL = None).
    Text(Option<&'a str>),
    /// An integer column (NULL = None).
    Int(Option<i64>),
}

impl ColumnValue<'_> {
    /// The value as a table or CSV cell (`""` for NULL).
    pub fn cell(&self) -> String {
        match self {
            ColumnValue::Text(Some(s)) => (*s).to_owned(),
            ColumnValue::Int(Some(n)) => n.to_string(),
            ColumnValue::Text(None) | ColumnValue::Int(None) => String::new(),
        }
    }
}

/// The stored time format: `2026-11-05T10:00:00.123456Z`. Fixed width, so comparing the
/// text compares the times (in SQLite and Postgres alike).
pub fn format_ts(ts: Timestamp) -> String {
    format!("{ts:.6}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_sort_as_text() {
        let a: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let b: Timestamp = "2026-01-02T03:04:05.5Z".parse().unwrap();
        let c: Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(format_ts(a), "2026-01-02T03:04:05.000000Z");
        assert_eq!(format_ts(b), "2026-01-02T03:04:05.500000Z");
        assert_eq!(format_ts(c), "2026-01-02T03:04:05.123456Z");
        assert!(format_ts(a) < format_ts(c) && format_ts(c) < format_ts(b));
    }

    #[test]
    fn json_is_keyed_by_column_in_order() {
        let stored = StoredEvent {
            instance: "i".into(),
            seq: 3,
            prev_hash: "p".into(),
            hash: "h".into(),
            event: AuditEvent {
                status: Some(200),
                ..AuditEvent::new(kind::REQUEST, Timestamp::UNIX_EPOCH)
            },
        };
        let json = stored.to_json();
        let keys: Vec<&str> = json.keys().map(String::as_str).collect();
        let mut sorted = COLUMNS.to_vec();
        sorted.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, sorted);
        assert_eq!(json["seq"], 3);
        assert_eq!(json["status"], 200);
        assert_eq!(json["email"], serde_json::Value::Null);
        assert_eq!(json["kind"], "request");
    }
}
