//! The audit trail, one suite against SQLite and Postgres (127.0.0.1:5432; skipped with a
//! reason when Postgres is missing, failing when `CI=true`): append/query/filters/pages,
//! verify against edits, deletes and swaps made directly in the database, retention with a
//! checkpoint, spooling through a database outage, and, through the proxy: 503 on a full
//! queue, redaction end to end, the audit API guard.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portcullis::audit::chain::Chain;
use portcullis::audit::event::{AuditEvent, StoredEvent, format_ts, kind};
use portcullis::audit::postgres::PgStore;
use portcullis::audit::sqlite::SqliteStore;
use portcullis::audit::verify::{Break, verify};
use portcullis::audit::writer::{self, WriterOptions};
use portcullis::audit::{AuditFilter, AuditStore, Store, retention};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::support::*;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database of either kind, removed on `close`.
enum Db {
    Sqlite(
        SqliteStore,
        #[allow(dead_code, reason = "kept alive")] tempfile::TempDir,
    ),
    Postgres(PgStore, String),
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/audit.db", dir.path().display());
        Db::Sqlite(SqliteStore::open(&url).await.unwrap(), dir)
    }

    /// None (after printing why) when Postgres is not there and CI is not set.
    async fn postgres() -> Option<Db> {
        let name = format!("audit_test_{}", uuid::Uuid::now_v7().simple());
        let admin = match sqlx::PgPool::connect(PG_ADMIN).await {
            Ok(pool) => pool,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "Postgres required in CI: {e}"
                );
                eprintln!("skipping: Postgres unavailable at 127.0.0.1:5432: {e}");
                return None;
            }
        };
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let store = PgStore::open(&pg_url(&name, 5432)).await.unwrap();
        Some(Db::Postgres(store, name))
    }

    async fn both() -> Vec<Db> {
        let mut dbs = vec![Db::sqlite().await];
        dbs.extend(Db::postgres().await);
        dbs
    }

    fn name(&self) -> &'static str {
        match self {
            Db::Sqlite(..) => "sqlite",
            Db::Postgres(..) => "postgres",
        }
    }

    fn store(&self) -> Store {
        match self {
            Db::Sqlite(s, _) => Store::Sqlite(s.clone()),
            Db::Postgres(s, _) => Store::Postgres(s.clone()),
        }
    }

    /// Runs raw SQL (`?` placeholders not used: tests tamper with literal statements).
    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(s, _) => {
                sqlx::raw_sql(sql).execute(s.pool()).await.unwrap();
            }
            Db::Postgres(s, _) => {
                sqlx::raw_sql(sql).execute(s.pool()).await.unwrap();
            }
        }
    }

    async fn count(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM audit_events";
        match self {
            Db::Sqlite(s, _) => sqlx::query_scalar(sql).fetch_one(s.pool()).await.unwrap(),
            Db::Postgres(s, _) => sqlx::query_scalar(sql).fetch_one(s.pool()).await.unwrap(),
        }
    }

    async fn close(self) {
        if let Db::Postgres(store, name) = self {
            store.pool().close().await;
            let admin = sqlx::PgPool::connect(PG_ADMIN).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&admin)
                .await
                .unwrap();
        }
    }
}

fn pg_url(name: &str, port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{name}")
}

fn request(route: &str, subject: &str, decision: &str, status: i64, at: &str) -> AuditEvent {
    let ts: jiff::Timestamp = at.parse().unwrap();
    AuditEvent {
        route_id: Some(route.into()),
        subject: Some(subject.into()),
        decision: Some(decision.into()),
        status: Some(status),
        path: Some(format!("/{route}/Page_{status}")),
        ..AuditEvent::new(kind::REQUEST, ts)
    }
}

/// `n` events for `instance`, one second apart from 2026-01-01.
fn chain_of(instance: &str, n: usize) -> Vec<StoredEvent> {
    let mut chain = Chain::resume(instance, None);
    (0..n)
        .map(|i| {
            let at = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
            let decision = if i % 3 == 0 { "deny" } else { "allow" };
            let status = if i % 3 == 0 { 403 } else { 200 };
            let subject = format!("user{}", i % 4);
            let mut event = request("billing", &subject, decision, status, &at);
            event.decision_id = Some(format!("{instance}-{i}"));
            chain.append(event)
        })
        .collect()
}

#[tokio::test]
async fn store_appends_queries_filters_and_pages() {
    for db in Db::both().await {
        let store = db.store();
        let name = db.name();
        let a = chain_of("gate-a", 30);
        let b = chain_of("gate-b", 10);
        store.append_batch(&a).await.unwrap();
        store.append_batch(&b).await.unwrap();
        // A replay of the same rows is a no-op; the same seq with other content is refused.
        store.append_batch(&a[..5]).await.unwrap();
        assert_eq!(db.count().await, 40, "{name}");
        let mut other = chain_of("gate-b", 1);
        other[0].event.path = Some("/other".into());
        other[0].hash = "f".repeat(64);
        assert!(store.append_batch(&other).await.is_err(), "{name}");
        assert_eq!(db.count().await, 40, "{name}: the failed batch rolled back");

        let head = store.chain_head("gate-a").await.unwrap().unwrap();
        assert_eq!(head, (30, a[29].hash.clone()), "{name}");
        assert_eq!(store.chain_head("nobody").await.unwrap(), None);

        let count = |filter: AuditFilter| {
            let store = store.clone();
            async move { store.query(&filter, None, 1000).await.unwrap().events.len() }
        };
        let f = AuditFilter::default;
        assert_eq!(count(f()).await, 40, "{name}");
        let denies = AuditFilter {
            decision: Some("deny".into()),
            ..f()
        };
        assert_eq!(count(denies).await, 10 + 4, "{name}");
        let status = AuditFilter {
            status: Some(403),
            ..f()
        };
        assert_eq!(count(status).await, 14, "{name}");
        let subject = AuditFilter {
            subject: Some("user1".into()),
            ..f()
        };
        assert_eq!(count(subject).await, 8 + 3, "{name}");
        let route = AuditFilter {
            route: Some("billing".into()),
            ..f()
        };
        assert_eq!(count(route).await, 40, "{name}");
        let by_id = AuditFilter {
            decision_id: Some("gate-a-7".into()),
            ..f()
        };
        assert_eq!(count(by_id).await, 1, "{name}");
        let none = AuditFilter {
            route: Some("nope".into()),
            ..f()
        };
        assert_eq!(count(none).await, 0, "{name}");
        // Free text is case-insensitive; LIKE wildcards in it are literal.
        let text = AuditFilter {
            text: Some("page_403".into()),
            ..f()
        };
        assert_eq!(count(text).await, 14, "{name}");
        let wildcard = AuditFilter {
            text: Some("page%403".into()),
            ..f()
        };
        assert_eq!(count(wildcard).await, 0, "{name}");
        let window = AuditFilter {
            since: Some(format_ts("2026-01-01T00:00:05Z".parse().unwrap())),
            until: Some(format_ts("2026-01-01T00:00:10Z".parse().unwrap())),
            ..f()
        };
        assert_eq!(count(window).await, 10, "{name}: 5 seconds x 2 instances");

        // Pages: newest first, no duplicates, nothing skipped (equal timestamps included).
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.query(&f(), cursor.as_ref(), 7).await.unwrap();
            assert!(page.events.len() <= 7);
            seen.extend(
                page.events
                    .iter()
                    .map(|e| (e.event.ts.clone(), e.event.id.clone())),
            );
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 40, "{name}");
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(seen, sorted, "{name}: newest first");
        sorted.dedup();
        assert_eq!(sorted.len(), 40, "{name}");
        db.close().await;
    }
}

#[tokio::test]
async fn awkward_values_are_stored_exactly_and_partial_replays_fill_in() {
    for db in Db::both().await {
        let store = db.store();
        let name = db.name();
        let awkward = [
            "tab\there",
            "line\nbreak\r\n",
            "back\\slash \\N \\.",
            "\\N",
            "",
            "quote ' and \" and ,;",
            "ünïcödé ✓ 𝄞",
            "PGCOPY\n\u{ff}",
        ];
        let mut chain = Chain::resume("gate-x", None);
        let events: Vec<StoredEvent> = awkward
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let mut event = request("odd", text, "allow", 200, "2026-01-01T00:00:00Z");
                event.user_agent = Some((*text).into());
                event.detail = (i % 2 == 0).then(|| (*text).into());
                event.latency_us = (i % 3 != 0).then_some(i64::MAX - i as i64);
                event.status = (i % 2 == 1).then_some(-(i as i64));
                chain.append(event)
            })
            .collect();
        store.append_batch(&events[..3]).await.unwrap();
        // A replay that overlaps what is stored and goes past it: the new rows land, the
        // stored ones are not doubled.
        store.append_batch(&events[1..]).await.unwrap();
        assert_eq!(db.count().await, awkward.len() as i64, "{name}");
        let stored = store.verify_page(None, 100).await.unwrap();
        assert_eq!(stored, events, "{name}: read back differently");
        let report = verify(&store).await.unwrap();
        assert_eq!(report.broken, None, "{name}");
        db.close().await;
    }
}

#[tokio::test]
async fn verify_catches_edits_deletes_and_swaps() {
    for db in Db::both().await {
        let store = db.store();
        let name = db.name();
        let reset = || async {
            db.exec("DELETE FROM audit_events").await;
            store.append_batch(&chain_of("gate-a", 10)).await.unwrap();
            store.append_batch(&chain_of("gate-b", 5)).await.unwrap();
        };
        reset().await;
        let report = verify(&store).await.unwrap();
        assert_eq!((report.instances, report.events), (2, 15), "{name}");
        assert_eq!(report.broken, None, "{name}");

        // Edited in place.
        db.exec(
            "UPDATE audit_events SET subject = 'mallory' WHERE instance = 'gate-a' AND seq = 4",
        )
        .await;
        let broken = verify(&store).await.unwrap().broken;
        assert!(
            matches!(&broken, Some(Break::Modified { instance, seq: 4, .. }) if instance == "gate-a"),
            "{name}: {broken:?}"
        );

        // Deleted.
        reset().await;
        db.exec("DELETE FROM audit_events WHERE instance = 'gate-b' AND seq = 2")
            .await;
        let broken = verify(&store).await.unwrap().broken;
        assert!(
            matches!(&broken, Some(Break::Deleted { instance, expected_seq: 2, seq: 3, .. }) if instance == "gate-b"),
            "{name}: {broken:?}"
        );
        assert!(broken.unwrap().to_string().contains("gate-b"));

        // Two events swapped (their positions exchanged).
        reset().await;
        db.exec(
            "UPDATE audit_events SET seq = -1 WHERE instance = 'gate-a' AND seq = 6;
             UPDATE audit_events SET seq = 6 WHERE instance = 'gate-a' AND seq = 7;
             UPDATE audit_events SET seq = 7 WHERE instance = 'gate-a' AND seq = -1;",
        )
        .await;
        let broken = verify(&store).await.unwrap().broken;
        assert!(
            matches!(&broken, Some(Break::Modified { instance, seq: 6, .. }) if instance == "gate-a"),
            "{name}: {broken:?}"
        );

        // Edited with the row's own hash recomputed: the next event no longer links.
        reset().await;
        let mut forged = store.verify_page(None, 100).await.unwrap()[4].clone();
        assert_eq!((forged.instance.as_str(), forged.seq), ("gate-a", 5));
        forged.event.subject = Some("mallory".into());
        forged.hash = portcullis::audit::chain::event_hash(&forged);
        db.exec(&format!(
            "UPDATE audit_events SET subject = 'mallory', hash = '{}' WHERE instance = 'gate-a' AND seq = 5",
            forged.hash
        ))
        .await;
        let broken = verify(&store).await.unwrap().broken;
        assert!(
            matches!(&broken, Some(Break::Reordered { instance, seq: 6, .. }) if instance == "gate-a"),
            "{name}: {broken:?}"
        );
        db.close().await;
    }
}

#[tokio::test]
async fn retention_deletes_a_prefix_and_verify_resumes_at_the_checkpoint() {
    for db in Db::both().await {
        let store = db.store();
        let name = db.name();
        let dir = tempfile::tempdir().unwrap();
        let (sink, handle) = writer::start(store.clone(), "gate-r", dir.path(), options(64))
            .await
            .unwrap();
        let now = jiff::Timestamp::now();
        let old = now - jiff::SignedDuration::from_hours(24 * 100);
        for i in 0..10 {
            let at = if i < 6 { old } else { now };
            let mut event = AuditEvent::new(kind::REQUEST, at);
            event.path = Some(format!("/{i}"));
            sink.record(event).unwrap();
        }
        sink.flush().await;
        let done = retention::run_once(&store, &sink, Duration::from_secs(90 * 86_400), now)
            .await
            .unwrap();
        assert_eq!(done.len(), 1, "{name}");
        assert_eq!((done[0].seq, done[0].deleted), (6, 6), "{name}");
        sink.flush().await;
        // 4 recent events + the retention event itself.
        assert_eq!(db.count().await, 5, "{name}");
        let report = verify(&store).await.unwrap();
        assert_eq!(report.broken, None, "{name}");
        assert_eq!(report.events, 5);
        let recorded = store
            .query(
                &AuditFilter {
                    kind: Some("retention".into()),
                    ..Default::default()
                },
                None,
                10,
            )
            .await
            .unwrap();
        assert_eq!(recorded.events.len(), 1, "{name}");
        assert!(
            recorded.events[0]
                .event
                .detail
                .as_deref()
                .unwrap()
                .contains("\"deleted\":6")
        );
        // Deleting past the checkpoint is still caught.
        db.exec("DELETE FROM audit_events WHERE instance = 'gate-r' AND seq = 7")
            .await;
        assert!(matches!(
            verify(&store).await.unwrap().broken,
            Some(Break::Deleted { .. })
        ));
        handle.shutdown(Duration::from_secs(5)).await;
        db.close().await;
    }
}

/// Queues `n` request events with paths `/from` .. `/from+n-1`.
fn record_paths(sink: &writer::AuditSink, from: usize, n: usize) {
    for i in from..from + n {
        let mut event = AuditEvent::new(kind::REQUEST, jiff::Timestamp::now());
        event.path = Some(format!("/{i}"));
        sink.record(event).unwrap();
    }
}

fn options(batch: usize) -> WriterOptions {
    WriterOptions {
        capacity: 65_536,
        batch_size: batch,
        retry: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn concurrent_strict_commits_share_transactions_and_keep_the_chain() {
    for db in Db::both().await {
        let store = db.store();
        let dir = tempfile::tempdir().unwrap();
        let (sink, handle) = writer::start(store.clone(), "gate-s", dir.path(), options(512))
            .await
            .unwrap();
        let mut tasks = JoinSet::new();
        for i in 0..200 {
            let sink = sink.clone();
            tasks.spawn(async move {
                let mut event = AuditEvent::new(kind::REQUEST, jiff::Timestamp::now());
                event.path = Some(format!("/{i}"));
                sink.record_committed(event).await
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
        }
        assert_eq!(db.count().await, 200, "{}", db.name());
        handle.shutdown(Duration::from_secs(5)).await;
        // A restarted writer continues the same chain.
        let (sink, handle) = writer::start(store.clone(), "gate-s", dir.path(), options(512))
            .await
            .unwrap();
        sink.record_committed(AuditEvent::new(kind::REQUEST, jiff::Timestamp::now()))
            .await
            .unwrap();
        handle.shutdown(Duration::from_secs(5)).await;
        let report = verify(&store).await.unwrap();
        assert_eq!((report.events, report.broken), (201, None), "{}", db.name());
        db.close().await;
    }
}

/// A TCP forwarder to Postgres that can be cut (listener closed, live connections killed)
/// and restored on the same port.
struct Cut {
    port: u16,
    up: Arc<AtomicBool>,
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl Cut {
    async fn start() -> Cut {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cut = Cut {
            port,
            up: Arc::new(AtomicBool::new(true)),
            tasks: Arc::new(tokio::sync::Mutex::new(JoinSet::new())),
            accept: None,
        };
        cut.serve(listener);
        cut
    }

    fn serve(&mut self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        self.accept = Some(tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                tasks.lock().await.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    async fn down(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        self.tasks.lock().await.abort_all();
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.up.store(true, Ordering::SeqCst);
        self.serve(listener);
    }
}

#[tokio::test]
async fn postgres_outage_spools_then_replays_without_loss_or_duplicates() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let Db::Postgres(_, name) = &db else {
        unreachable!()
    };
    let mut cut = Cut::start().await;
    let store = Store::Postgres(PgStore::open(&pg_url(name, cut.port)).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (sink, handle) = writer::start(store.clone(), "gate-o", dir.path(), options(256))
        .await
        .unwrap();
    let record = |n: usize, from: usize| record_paths(&sink, from, n);
    record(300, 0);
    sink.flush().await;
    assert_eq!(db.count().await, 300);

    cut.down().await;
    record(300, 300);
    sink.flush().await;
    assert!(
        !sink.store_writable(),
        "spooling while the database is away"
    );
    // Strict commits while away are durable in the spool.
    sink.record_committed(AuditEvent::new(kind::REQUEST, jiff::Timestamp::now()))
        .await
        .unwrap();
    record(99, 601);
    sink.flush().await;
    let spooled = std::fs::read_to_string(dir.path().join("gate-o.jsonl")).unwrap();
    assert!(
        spooled.lines().count() >= 300,
        "{}",
        spooled.lines().count()
    );
    assert_eq!(db.count().await, 300, "nothing reached the database");

    cut.up().await;
    let mut waited = 0;
    while !sink.store_writable() || db.count().await < 700 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(
            waited < 150,
            "replay did not finish: {} rows",
            db.count().await
        );
    }
    record(100, 700);
    handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(db.count().await, 800);
    let report = verify(&store).await.unwrap();
    assert_eq!((report.events, report.broken), (800, None));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("gate-o.jsonl")).unwrap(),
        ""
    );
    db.close().await;
}

#[tokio::test]
async fn a_locked_sqlite_file_spools_then_replays_without_loss_or_duplicates() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/audit.db", dir.path().display());
    let store = Store::Sqlite(SqliteStore::open(&url).await.unwrap());
    let (sink, handle) = writer::start(store.clone(), "gate-l", dir.path(), options(256))
        .await
        .unwrap();
    let record = |n: usize, from: usize| record_paths(&sink, from, n);
    let count = || async { verify(&store).await.unwrap().events };
    record(300, 0);
    sink.flush().await;
    assert_eq!(count().await, 300);

    // Another process holds the write lock longer than the writer's busy timeout (5 s).
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    record(300, 300);
    sink.flush().await;
    assert!(!sink.store_writable(), "spooling while the file is locked");
    let spooled = std::fs::read_to_string(dir.path().join("gate-l.jsonl")).unwrap();
    assert_eq!(spooled.lines().count(), 300);

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();
    let mut waited = 0;
    while !sink.store_writable() || count().await < 600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
        assert!(
            waited < 150,
            "replay did not finish: {} rows",
            count().await
        );
    }
    record(100, 600);
    handle.shutdown(Duration::from_secs(5)).await;
    let report = verify(&store).await.unwrap();
    assert_eq!((report.events, report.broken), (700, None));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("gate-l.jsonl")).unwrap(),
        ""
    );
}

/// A config for the proxy with an SQLite audit trail in `dir`.
fn audit_config(dir: &Path, extra: &str, routes: &str) -> String {
    format!(
        "[audit]\nurl = \"sqlite://{dir}/audit.db\"\nspool_dir = \"{dir}/spool\"\n\
         instance = \"gate-it\"\n{extra}\n{routes}",
        dir = dir.display()
    )
}

async fn all_rows_text(dir: &Path) -> String {
    let store = SqliteStore::open(&format!("sqlite://{}/audit.db", dir.display()))
        .await
        .unwrap();
    let rows = store.verify_page(None, 100_000).await.unwrap();
    rows.iter()
        .map(|r| serde_json::Value::Object(r.to_json()).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn requests_are_recorded_redacted_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let up = echo_upstream().await;
    let routes = public_route("open", "/", &[up], "");
    let proxy = start_proxy(&audit_config(dir.path(), "", &routes)).await;
    let client = client();
    let response =
        client
            .get(proxy.url(
                "/x/y?access_token=XSECRETX&code=YSECRETY&keep=visible&%61ccess_token=ZSECRETZ",
            ))
            .header("authorization", "Bearer TOKENTOKEN")
            .header("cookie", "portcullis=COOKIEVALUE")
            .header("user-agent", "it-test/1")
            .send()
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    let decision_id = response
        .headers()
        .get("x-portcullis-decision-id")
        .map(|v| v.to_str().unwrap().to_owned());
    proxy.shutdown().await;

    let text = all_rows_text(dir.path()).await;
    for secret in [
        "XSECRETX",
        "YSECRETY",
        "ZSECRETZ",
        "TOKENTOKEN",
        "COOKIEVALUE",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let store = SqliteStore::open(&format!("sqlite://{}/audit.db", dir.path().display()))
        .await
        .unwrap();
    let events = store.verify_page(None, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(kinds, ["config_load", "request"]);
    let request = &events[1].event;
    assert_eq!(request.route_id.as_deref(), Some("open"));
    assert_eq!(request.decision.as_deref(), Some("allow"));
    assert_eq!(request.status, Some(200));
    assert_eq!(request.path.as_deref(), Some("/x/y"));
    assert_eq!(
        request.query.as_deref(),
        Some("access_token=[redacted]&code=[redacted]&keep=visible&%61ccess_token=[redacted]")
    );
    assert_eq!(request.user_agent.as_deref(), Some("it-test/1"));
    assert!(
        request
            .upstream
            .as_deref()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(request.rule.as_deref(), Some("allow[0]"));
    assert_eq!(request.policy_version.as_deref().map(str::len), Some(64));
    assert!(request.latency_us.unwrap() > 0);
    if let Some(id) = decision_id {
        assert_eq!(request.decision_id.as_deref(), Some(id.as_str()));
    }
    assert_eq!(verify(&store).await.unwrap().broken, None);
    // The spool directory never saw them either.
    for entry in std::fs::read_dir(dir.path().join("spool")).unwrap() {
        let content = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&content).contains("SECRET"));
    }
}

#[tokio::test]
async fn a_full_queue_answers_503_instead_of_serving_unrecorded() {
    let dir = tempfile::tempdir().unwrap();
    let slow = upstream(|_req| async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        text(200, "slow")
    })
    .await;
    let routes = public_route("slow", "/", &[slow], "");
    let proxy = start_proxy(&audit_config(dir.path(), "queue_capacity = 1", &routes)).await;
    let client = client();
    let first = tokio::spawn(client.get(proxy.url("/a")).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = client.get(proxy.url("/b")).send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    let third = client.get(proxy.url("/c")).send().await.unwrap();
    assert_eq!(third.status(), 200);
    proxy.shutdown().await;
    let text = all_rows_text(dir.path()).await;
    assert!(text.contains("\"/a\"") && text.contains("\"/c\""), "{text}");
}

#[tokio::test]
async fn strict_mode_records_decision_then_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let up = echo_upstream().await;
    let routes = public_route("open", "/", &[up], "");
    let proxy = start_proxy(&audit_config(
        dir.path(),
        "durability = \"strict\"",
        &routes,
    ))
    .await;
    let response = client().get(proxy.url("/s")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    proxy.shutdown().await;
    let store = SqliteStore::open(&format!("sqlite://{}/audit.db", dir.path().display()))
        .await
        .unwrap();
    let events = store.verify_page(None, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(kinds, ["config_load", "request", "outcome"]);
    assert_eq!(
        events[1].event.status, None,
        "committed before the upstream answered"
    );
    assert_eq!(events[2].event.status, Some(200));
    assert_eq!(events[1].event.decision_id, events[2].event.decision_id);
}

#[tokio::test]
async fn the_audit_api_is_guarded_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let up = echo_upstream().await;
    let routes = public_route("open", "/", &[up], "");
    let proxy = start_proxy(&audit_config(dir.path(), "", &routes)).await;
    let client = client();
    let denied = client
        .get(proxy.url("/.portcullis/api/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401, "anonymous callers must log in");
    proxy.shutdown().await;

    // With a public access rule (for this test only) the API answers, page by page.
    let dir = tempfile::tempdir().unwrap();
    let proxy = start_proxy(&audit_config(
        dir.path(),
        "[audit.access]\nallow = [{ public = true }]",
        &routes,
    ))
    .await;
    for i in 0..5 {
        client
            .get(proxy.url(&format!("/p{i}")))
            .send()
            .await
            .unwrap();
    }
    let mut total = 0;
    let mut url = proxy.url("/.portcullis/api/audit?kind=request&limit=2");
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        total += body["events"].as_array().unwrap().len();
        match body["next"].as_str() {
            Some(next) => {
                url = proxy.url(&format!(
                    "/.portcullis/api/audit?kind=request&limit=2&cursor={next}"
                ))
            }
            None => break,
        }
    }
    assert_eq!(total, 5);
    let bad = client
        .get(proxy.url("/.portcullis/api/audit?cursor=zz"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    proxy.shutdown().await;
    let text = all_rows_text(dir.path()).await;
    assert!(text.matches("audit_access").count() >= 4, "{text}");
}

/// A request event as a busy deployment writes them: every column a request fills, with
/// `n` spread over 2,000 subjects and 20 routes (each subject and route is its own place in
/// its index, which is what makes an insert cost more than an append).
fn realistic_event(n: usize) -> AuditEvent {
    let mut event = AuditEvent::new(kind::REQUEST, jiff::Timestamp::now());
    let user = n.wrapping_mul(7919) % 2_000;
    event.decision_id = Some(portcullis::ids::uuid_v7().to_string());
    event.route_id = Some(format!("route-{}", n % 20));
    event.method = Some("GET".into());
    event.host = Some("app.corp.example".into());
    event.path = Some(format!("/api/v1/items/{}", n % 5_000));
    event.client_ip = Some(format!("10.0.{}.{}", user / 250, user % 250));
    event.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0".into());
    event.auth_method = Some("session".into());
    event.subject = Some(format!("00u{user:017}"));
    event.email = Some(format!("user{user}@corp.example"));
    event.issuer = Some("https://idp.corp.example".into());
    event.provider = Some("okta".into());
    event.groups = Some(r#"["engineering","staff"]"#.into());
    event.decision = Some("allow".into());
    event.rule = Some("engineers".into());
    event.reasons = Some(r#"[{"type":"group","value":"engineering"}]"#.into());
    event.policy_version = Some("ab".repeat(32));
    event.status = Some(200);
    event.latency_us = Some(1_234);
    event.upstream = Some("http://10.0.1.5:8080".into());
    event
}

/// Sustained writer throughput (run: `cargo test --test it audit_throughput -- --ignored
/// --nocapture`; use `--release` for meaningful numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn audit_throughput() {
    for db in Db::both().await {
        let store = db.store();
        let dir = tempfile::tempdir().unwrap();
        let (sink, handle) = writer::start(store.clone(), "bench", dir.path(), options(4096))
            .await
            .unwrap();
        let total = 200_000;
        // Built first: the measurement is the writer's, not the formatting of test events.
        let events: Vec<AuditEvent> = (0..total).map(realistic_event).collect();
        let started = std::time::Instant::now();
        let mut events = events.into_iter();
        while events.len() > 0 {
            match sink.reserve() {
                Ok(slot) => slot.record(events.next().unwrap()),
                Err(_) => tokio::task::yield_now().await,
            }
        }
        sink.flush().await;
        let rate = total as f64 / started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {total} events in {:?}: {rate:.0} events/s",
            db.name(),
            started.elapsed()
        );
        handle.shutdown(Duration::from_secs(5)).await;
        assert_eq!(db.count().await, total as i64);
        db.close().await;
    }
}

#[tokio::test]
async fn forward_auth_answers_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let routes = "[[routes]]\nid = \"ingress\"\npath = \"/app/\"\nupstream = \"http://127.0.0.1:9\"\n\
                  auth = [\"none\"]\n[routes.policy]\nallow = [{ public = true }]\n\
                  deny = [{ id = \"no-delete\", methods = [\"DELETE\"] }]\n";
    let config = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\n\
         trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        audit_config(dir.path(), "", routes)
    );
    let proxy = start_proxy(&config).await;
    let ask = |method: &str, uri: &str| {
        client()
            .get(proxy.url("/.portcullis/auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-host", "app.corp.example")
            .header("user-agent", "ingress/1")
            .send()
    };
    let allowed = ask("GET", "/app/page?code=SECRETCODE&x=1").await.unwrap();
    assert_eq!(allowed.status(), 200);
    let decision_id = allowed.headers()["x-portcullis-decision-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ask("DELETE", "/app/page").await.unwrap().status(), 403);
    // No route: nothing reached a route, nothing recorded (as for the gateway's 404).
    assert_eq!(ask("GET", "/elsewhere").await.unwrap().status(), 403);
    proxy.shutdown().await;

    let text = all_rows_text(dir.path()).await;
    assert!(!text.contains("SECRETCODE"), "{text}");
    let store = SqliteStore::open(&format!("sqlite://{}/audit.db", dir.path().display()))
        .await
        .unwrap();
    let events = store.verify_page(None, 100).await.unwrap();
    let requests: Vec<&AuditEvent> = events
        .iter()
        .map(|e| &e.event)
        .filter(|e| e.kind == "request")
        .collect();
    assert_eq!(requests.len(), 2, "{text}");
    let (allow, deny) = (requests[0], requests[1]);
    assert_eq!(allow.decision_id.as_deref(), Some(decision_id.as_str()));
    assert_eq!(allow.route_id.as_deref(), Some("ingress"));
    assert_eq!(allow.method.as_deref(), Some("GET"));
    assert_eq!(allow.host.as_deref(), Some("app.corp.example"));
    assert_eq!(allow.path.as_deref(), Some("/app/page"));
    assert_eq!(allow.query.as_deref(), Some("code=[redacted]&x=1"));
    assert_eq!(allow.user_agent.as_deref(), Some("ingress/1"));
    assert_eq!(allow.decision.as_deref(), Some("allow"));
    assert_eq!(allow.status, Some(200));
    assert_eq!(allow.upstream, None, "forward-auth proxies nothing");
    assert_eq!(allow.detail.as_deref(), Some(r#"{"via":"forward_auth"}"#));
    assert_eq!(deny.method.as_deref(), Some("DELETE"));
    assert_eq!(deny.decision.as_deref(), Some("deny"));
    assert_eq!(deny.rule.as_deref(), Some("no-delete"));
    assert_eq!(deny.status, Some(403));
    assert_eq!(verify(&store).await.unwrap().broken, None);
}
