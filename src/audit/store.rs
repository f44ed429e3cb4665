//! The storage contract ([`AuditStore`]) and what both databases share: the search filter,
//! the opaque page cursor, SQL text built with the right placeholder style, and row
//! decoding. One implementation per database lives in [`super::sqlite`] and
//! [`super::postgres`]; [`Store`] picks one at runtime. Nothing here chains or redacts.

use std::future::Future;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::event::{AuditEvent, COLUMNS, StoredEvent};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error or could not be reached.
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
    /// The SQLite writer's own connection failed (see [`super::sqlite`]).
    #[error("audit database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations failed.
    #[error("audit database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An event with this (instance, seq) already exists with another hash: two processes
    /// share an `audit.instance`.
    #[error("audit chain conflict: instance {instance} seq {seq} exists with another hash")]
    Conflict { instance: String, seq: i64 },
}

/// Search criteria; every field present must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `ts >= since` (stored time text).
    pub since: Option<String>,
    /// `ts < until`.
    pub until: Option<String>,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub route: Option<String>,
    pub decision: Option<String>,
    pub status: Option<i64>,
    pub kind: Option<String>,
    /// The decision id (`X-Portcullis-Decision-Id`, the request id on portcullis's pages):
    /// every event of that request, found through its index.
    pub decision_id: Option<String>,
    /// Case-insensitive substring of path, query, subject, email, route, rule, reasons,
    /// user agent, host, client address, upstream, decision id and detail.
    pub text: Option<String>,
}

/// Where the next page starts: after `(ts, id)` in newest-first order. Opaque to callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    ts: String,
    id: String,
}

impl Cursor {
    /// The cursor that continues after `event`.
    pub fn after(event: &StoredEvent) -> Self {
        Cursor {
            ts: event.event.ts.clone(),
            id: event.event.id.clone(),
        }
    }

    /// Opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}\n{}", self.ts, self.id))
    }

    /// Parses [`Cursor::encode`] output; None for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (ts, id) = text.split_once('\n')?;
        Some(Cursor {
            ts: ts.to_owned(),
            id: id.to_owned(),
        })
    }
}

/// One page of search results, newest first.
#[derive(Clone, Debug)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// Present when more events may follow.
    pub next: Option<Cursor>,
}

/// Where an instance's chain continues after the retention job removed its oldest events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub instance: String,
    /// The last deleted event's seq...
    pub seq: i64,
    /// ...and hash: the next remaining event's `prev_hash`.
    pub hash: String,
    /// How many events this run deleted (0 when read back from the table).
    pub deleted: u64,
}

/// The audit database. Every method is one round trip or one transaction.
pub trait AuditStore: Send + Sync {
    /// Inserts events in ONE transaction. Rows already present with the same hash (a spool
    /// replay) are skipped; the same (instance, seq) with another hash is
    /// [`StoreError::Conflict`].
    fn append_batch(
        &self,
        events: &[StoredEvent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The last `(seq, hash)` of `instance`'s chain (stored events or checkpoint).
    fn chain_head(
        &self,
        instance: &str,
    ) -> impl Future<Output = Result<Option<(i64, String)>, StoreError>> + Send;
    /// Newest first, `limit` at most, continuing after `cursor`.
    fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<&Cursor>,
        limit: u32,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
    /// All events in (instance, seq) order, `limit` at a time, after `after`.
    fn verify_page(
        &self,
        after: Option<(&str, i64)>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;
    /// Every instance's retention checkpoint.
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;
    /// Deletes each instance's events up to its last one older than `cutoff` (a stored time
    /// text) and records where each chain now starts.
    fn apply_retention(
        &self,
        cutoff: &str,
    ) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;
    /// One trivial write-path round trip, for readiness.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A value to bind, in placeholder order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
}

/// SQL text plus its binds, with `?` (SQLite) or `$n` (Postgres) placeholders.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) binds: Vec<Bind>,
    dollar: bool,
}

impl Sql {
    pub(crate) fn new(text: &str, dollar: bool) -> Self {
        Sql {
            text: text.to_owned(),
            binds: Vec::new(),
            dollar,
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `bind`.
    pub(crate) fn bind(&mut self, bind: Bind) -> &mut Self {
        self.binds.push(bind);
        if self.dollar {
            self.text.push_str(&format!("${}", self.binds.len()));
        } else {
            self.text.push('?');
        }
        self
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.bind(Bind::Text(Some(value.to_owned())))
    }
}

/// The column list, comma-separated.
pub(crate) fn column_list() -> String {
    COLUMNS.join(", ")
}

/// Rows per INSERT statement, largest first. A batch is cut into these few sizes (never an
/// arbitrary row count) so each size's statement is parsed once per connection and then
/// reused from the prepared-statement cache. 64 rows of 29 binds stays far under SQLite's
/// 32766 and Postgres's 65535 bind limits.
pub(crate) const INSERT_CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Cuts `events` into chunks of [`INSERT_CHUNKS`] sizes, largest first.
pub(crate) fn insert_chunks(mut events: &[StoredEvent]) -> Vec<&[StoredEvent]> {
    let mut chunks = Vec::new();
    for size in INSERT_CHUNKS {
        while events.len() >= size {
            let (chunk, rest) = events.split_at(size);
            chunks.push(chunk);
            events = rest;
        }
    }
    chunks
}

/// The `INSERT` text for `rows` rows (one of [`INSERT_CHUNKS`]); duplicates are skipped.
/// Built once per size and placeholder style, so the hot path allocates no SQL.
pub(crate) fn insert_text(rows: usize, dollar: bool) -> &'static str {
    static TEXTS: std::sync::OnceLock<[[String; 4]; 2]> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        [false, true].map(|dollar| INSERT_CHUNKS.map(|rows| build_insert(rows, dollar)))
    });
    let index = INSERT_CHUNKS
        .iter()
        .position(|&size| size == rows)
        .unwrap_or(INSERT_CHUNKS.len() - 1);
    &texts[usize::from(dollar)][index]
}

fn build_insert(rows: usize, dollar: bool) -> String {
    let mut sql = Sql::new(
        &format!("INSERT INTO audit_events ({}) VALUES ", column_list()),
        dollar,
    );
    for row in 0..rows {
        sql.push(if row == 0 { "(" } else { ", (" });
        for i in 0..COLUMNS.len() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Bind::Int(None));
        }
        sql.push(")");
    }
    sql.push(" ON CONFLICT DO NOTHING");
    sql.text
}

/// The search statement for one page (one more row than `limit`, to know if more follow).
pub(crate) fn query_sql(
    filter: &AuditFilter,
    cursor: Option<&Cursor>,
    limit: u32,
    dollar: bool,
) -> Sql {
    let mut sql = Sql::new(
        &format!("SELECT {} FROM audit_events WHERE 1 = 1", column_list()),
        dollar,
    );
    let exact = [
        ("subject", &filter.subject),
        ("email", &filter.email),
        ("route_id", &filter.route),
        ("decision", &filter.decision),
        ("kind", &filter.kind),
        ("decision_id", &filter.decision_id),
    ];
    for (column, value) in exact {
        if let Some(value) = value {
            sql.push(&format!(" AND {column} = ")).text(value);
        }
    }
    if let Some(since) = &filter.since {
        sql.push(" AND ts >= ").text(since);
    }
    if let Some(until) = &filter.until {
        sql.push(" AND ts < ").text(until);
    }
    if let Some(status) = filter.status {
        sql.push(" AND status = ").bind(Bind::Int(Some(status)));
    }
    if let Some(text) = &filter.text {
        let haystack = [
            "path",
            "query",
            "subject",
            "email",
            "route_id",
            "rule",
            "reasons",
            "user_agent",
            "host",
            "client_ip",
            "upstream",
            "decision_id",
            "detail",
        ]
        .map(|c| format!("COALESCE({c}, '')"))
        .join(" || ' ' || ");
        let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
        sql.push(&format!(" AND LOWER({haystack}) LIKE "))
            .text(&pattern)
            .push(" ESCAPE '\\'");
    }
    if let Some(cursor) = cursor {
        sql.push(" AND (ts < ")
            .text(&cursor.ts)
            .push(" OR (ts = ")
            .text(&cursor.ts)
            .push(" AND id < ")
            .text(&cursor.id)
            .push("))");
    }
    sql.push(" ORDER BY ts DESC, id DESC LIMIT ")
        .bind(Bind::Int(Some(i64::from(limit) + 1)));
    sql
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Turns `limit + 1` rows into a page.
pub(crate) fn into_page(mut events: Vec<StoredEvent>, limit: u32) -> Page {
    let limit = limit as usize;
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(Cursor::after)
    } else {
        None
    };
    Page { events, next }
}

/// Decodes one `SELECT <COLUMNS>` row.
pub(crate) fn from_row<'r, R>(row: &'r R) -> Result<StoredEvent, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let t = |i: usize| row.try_get::<Option<String>, _>(i);
    let req = |i: usize| t(i).map(Option::unwrap_or_default);
    let n = |i: usize| row.try_get::<Option<i64>, _>(i);
    Ok(StoredEvent {
        instance: req(3)?,
        seq: n(4)?.unwrap_or_default(),
        prev_hash: req(27)?,
        hash: req(28)?,
        event: AuditEvent {
            id: req(0)?,
            decision_id: t(1)?,
            ts: req(2)?,
            kind: req(5)?,
            route_id: t(6)?,
            method: t(7)?,
            host: t(8)?,
            path: t(9)?,
            query: t(10)?,
            client_ip: t(11)?,
            user_agent: t(12)?,
            auth_method: t(13)?,
            subject: t(14)?,
            email: t(15)?,
            issuer: t(16)?,
            provider: t(17)?,
            groups: t(18)?,
            decision: t(19)?,
            rule: t(20)?,
            reasons: t(21)?,
            policy_version: t(22)?,
            status: n(23)?,
            latency_us: n(24)?,
            upstream: t(25)?,
            detail: t(26)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_the_fixed_insert_sizes() {
        let event = StoredEvent {
            instance: "i".into(),
            seq: 1,
            prev_hash: String::new(),
            hash: String::new(),
            event: AuditEvent::default(),
        };
        let events = vec![event; 64 + 2 * 16 + 4 + 3];
        let sizes: Vec<usize> = insert_chunks(&events).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [64, 16, 16, 4, 1, 1, 1]);
        assert!(insert_chunks(&[]).is_empty());
        for rows in INSERT_CHUNKS {
            let text = insert_text(rows, false);
            assert_eq!(text.matches('?').count(), rows * COLUMNS.len());
            assert!(text.ends_with(" ON CONFLICT DO NOTHING"));
            let text = insert_text(rows, true);
            assert!(text.contains(&format!("${}", rows * COLUMNS.len())));
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            ts: "2026-01-01T00:00:00.000000Z".into(),
            id: "0190-x".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("no-newline")), None);
    }

    #[test]
    fn placeholders_per_database() {
        let filter = AuditFilter {
            subject: Some("a".into()),
            status: Some(403),
            text: Some("50%_off".into()),
            ..AuditFilter::default()
        };
        let sqlite = query_sql(&filter, None, 10, false);
        let pg = query_sql(&filter, None, 10, true);
        assert!(sqlite.text.contains("subject = ?"), "{}", sqlite.text);
        assert!(pg.text.contains("subject = $1") && pg.text.contains("LIMIT $4"));
        assert_eq!(sqlite.binds.len(), 4);
        assert_eq!(
            sqlite.binds[2],
            Bind::Text(Some("%50\\%\\_off%".into())),
            "LIKE wildcards in the search text are literal"
        );
        assert_eq!(sqlite.binds[3], Bind::Int(Some(11)));
    }
}
