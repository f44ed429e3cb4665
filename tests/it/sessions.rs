//! Server-side sessions: one suite of cases run against every store (memory, SQLite in a temp
//! file, Postgres at 127.0.0.1:5432 in a fresh database per test, Redis at 127.0.0.1:6379 in
//! database 13, flushed around each test and used by one test at a time). When Postgres or
//! Redis is missing the test fails under `CI=true` and is skipped (with a printed reason)
//! otherwise.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use jiff::{SignedDuration, Timestamp};
use portcullis::config::{SessionConfig, SessionStoreKind};
use portcullis::identity::{AuthMethod, Identity};
use portcullis::session::{LoginState, SessionData, Sessions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_ADDR: &str = "127.0.0.1:6379";
const REDIS_DB: u8 = 13;
/// Redis cases share database 13, so they take turns.
static REDIS_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
    Redis,
}

fn config(store: SessionStoreKind) -> SessionConfig {
    SessionConfig {
        store,
        cookie_name: "portcullis".into(),
        idle_timeout: Duration::from_secs(3600),
        absolute_timeout: Duration::from_secs(3 * 3600),
    }
}

fn unavailable(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI=true");
    }
    eprintln!("skipping: {what}");
}

async fn redis_command(commands: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(REDIS_ADDR).await?;
    stream.write_all(commands.as_bytes()).await?;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("redis did not answer"))??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

async fn redis_flush() -> std::io::Result<()> {
    let answer = redis_command(&format!("SELECT {REDIS_DB}\r\nFLUSHDB\r\n")).await?;
    if answer.contains("-ERR") {
        return Err(std::io::Error::other(answer));
    }
    Ok(())
}

/// Runs `case` against `backend`, cleaning up the store afterwards even when the case fails.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Sessions) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut _redis_turn = None;
    let mut _tempdir = None;
    let mut pg_database = None;
    let store = match backend {
        Backend::Memory => SessionStoreKind::Memory,
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
            _tempdir = Some(dir);
            SessionStoreKind::Sqlite(url)
        }
        Backend::Postgres => {
            let Ok(admin) = sqlx::PgPool::connect(PG_ADMIN).await else {
                return unavailable("Postgres at 127.0.0.1:5432");
            };
            let name = format!("portcullis_sessions_{}", uuid::Uuid::now_v7().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            pg_database = Some(name.clone());
            SessionStoreKind::Postgres(format!("postgres://postgres@127.0.0.1:5432/{name}"))
        }
        Backend::Redis => {
            _redis_turn = Some(REDIS_TURN.lock().await);
            if let Err(e) = redis_flush().await {
                return unavailable(&format!("Redis at {REDIS_ADDR} ({e})"));
            }
            SessionStoreKind::Redis(format!("redis://{REDIS_ADDR}/{REDIS_DB}"))
        }
    };
    let sessions = Sessions::from_config(&config(store), false).await.unwrap();
    let outcome = tokio::spawn(case(sessions)).await;
    if let Some(name) = pg_database {
        let admin = sqlx::PgPool::connect(PG_ADMIN).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }
    if matches!(backend, Backend::Redis) {
        redis_flush().await.unwrap();
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// One test per (store, case).
macro_rules! every_store {
    ($($case:ident),* $(,)?) => {
        mod memory { $( #[tokio::test] async fn $case() { super::run(super::Backend::Memory, super::$case).await } )* }
        mod sqlite { $( #[tokio::test] async fn $case() { super::run(super::Backend::Sqlite, super::$case).await } )* }
        mod postgres { $( #[tokio::test] async fn $case() { super::run(super::Backend::Postgres, super::$case).await } )* }
        mod redis { $( #[tokio::test] async fn $case() { super::run(super::Backend::Redis, super::$case).await } )* }
    };
}

every_store!(
    round_trip,
    no_unknown_or_garbled_session,
    fresh_id_on_every_create,
    idle_timeout_and_activity,
    absolute_timeout,
    end_one_session,
    end_by_sid_ends_exactly_the_matching_sessions,
    end_by_subject_ends_exactly_the_matching_sessions,
    login_state_is_single_use_and_bound_to_the_browser,
    login_state_expires,
    records_of_one_kind_are_never_another,
    update_keeps_the_deadlines_and_refuses_ended_sessions,
    refresh_guard_serializes,
);

fn identity(issuer: &str, subject: &str) -> Identity {
    Identity {
        subject: subject.into(),
        issuer: issuer.into(),
        email: Some(format!("{subject}@corp.example")),
        groups: vec!["eng".into()],
        provider: Some("okta".into()),
        auth: AuthMethod::Session,
        ..Identity::default()
    }
}

fn data(issuer: &str, subject: &str, sid: Option<&str>) -> SessionData {
    SessionData {
        identity: identity(issuer, subject),
        provider: "okta".into(),
        id_token: Some("id.token".into()),
        access_token: Some("access".into()),
        refresh_token: Some("refresh".into()),
        access_expires_at: Some(1_900_000_000),
        access_lifetime: Some(300),
        sid: sid.map(str::to_owned),
        created_at: 0,
    }
}

/// The `name=value` pair of a `Set-Cookie` value, as a browser would send it back.
fn sent_back(set_cookie: &HeaderValue) -> HeaderMap {
    let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
    headers
}

fn cookie_headers(name: &str, value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let text = format!("other=1; {name}={value}");
    headers.insert(header::COOKIE, HeaderValue::from_str(&text).unwrap());
    headers
}

fn value_of(set_cookie: &HeaderValue) -> String {
    let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

fn after(now: Timestamp, seconds: i64) -> Timestamp {
    now + SignedDuration::from_secs(seconds)
}

async fn round_trip(s: Sessions) {
    let now = Timestamp::now();
    let cookie = s
        .create(data("https://idp", "alice", Some("sid-1")), now)
        .await
        .unwrap();
    let text = cookie.to_str().unwrap();
    assert!(text.starts_with("portcullis="), "{text}");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Lax"] {
        assert!(text.contains(attribute), "{text} lacks {attribute}");
    }
    assert!(!text.contains("Secure"), "plain http: {text}");
    assert_eq!(value_of(&cookie).len(), 22, "only a 128-bit id: {text}");
    let (_, loaded) = s.load(&sent_back(&cookie), now).await.unwrap().unwrap();
    let mut expected = data("https://idp", "alice", Some("sid-1"));
    expected.created_at = now.as_second();
    assert_eq!(loaded, expected);
    assert!(s.has_cookie(&sent_back(&cookie)));
}

async fn no_unknown_or_garbled_session(s: Sessions) {
    let now = Timestamp::now();
    assert!(s.load(&HeaderMap::new(), now).await.unwrap().is_none());
    assert!(!s.has_cookie(&HeaderMap::new()));
    let unknown = tower_sessions::session::Id::default().to_string();
    for value in [
        unknown.as_str(),
        "garbage",
        "",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let headers = cookie_headers(s.cookie_name(), value);
        assert!(s.load(&headers, now).await.unwrap().is_none(), "{value}");
    }
}

async fn fresh_id_on_every_create(s: Sessions) {
    let now = Timestamp::now();
    // An attacker plants a well-formed session cookie before the victim logs in.
    let planted = tower_sessions::session::Id::default().to_string();
    let planted_headers = cookie_headers(s.cookie_name(), &planted);
    let a = s
        .create(data("https://idp", "alice", None), now)
        .await
        .unwrap();
    let b = s
        .create(data("https://idp", "alice", None), now)
        .await
        .unwrap();
    assert_ne!(value_of(&a), planted);
    assert_ne!(value_of(&a), value_of(&b));
    assert!(s.load(&planted_headers, now).await.unwrap().is_none());
    assert!(s.load(&sent_back(&a), now).await.unwrap().is_some());
    assert!(s.load(&sent_back(&b), now).await.unwrap().is_some());
}

async fn idle_timeout_and_activity(s: Sessions) {
    let t0 = Timestamp::now();
    let idle = s
        .create(data("https://idp", "alice", None), t0)
        .await
        .unwrap();
    let active = s
        .create(data("https://idp", "bob", None), t0)
        .await
        .unwrap();
    // Used every 40 minutes: stays alive past one idle timeout (1h).
    for minutes in [40, 80, 120] {
        let at = after(t0, minutes * 60);
        assert!(
            s.load(&sent_back(&active), at).await.unwrap().is_some(),
            "at +{minutes}m"
        );
    }
    assert!(
        s.load(&sent_back(&idle), after(t0, 3599 - 60))
            .await
            .unwrap()
            .is_some()
    );
    // Last seen at +58m59s: gone an hour later, and stays gone.
    assert!(
        s.load(&sent_back(&idle), after(t0, 3540 + 3600))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.load(&sent_back(&idle), after(t0, 3540))
            .await
            .unwrap()
            .is_none()
    );
    let never_used = s
        .create(data("https://idp", "carol", None), t0)
        .await
        .unwrap();
    assert!(
        s.load(&sent_back(&never_used), after(t0, 3600))
            .await
            .unwrap()
            .is_none()
    );
}

async fn absolute_timeout(s: Sessions) {
    let t0 = Timestamp::now();
    let cookie = s
        .create(data("https://idp", "alice", None), t0)
        .await
        .unwrap();
    for minutes in [50, 100, 150, 179] {
        let at = after(t0, minutes * 60);
        assert!(
            s.load(&sent_back(&cookie), at).await.unwrap().is_some(),
            "at +{minutes}m"
        );
    }
    // Active all along, but three hours after login it is over.
    assert!(
        s.load(&sent_back(&cookie), after(t0, 180 * 60))
            .await
            .unwrap()
            .is_none()
    );
}

async fn end_one_session(s: Sessions) {
    let now = Timestamp::now();
    let a = s
        .create(data("https://idp", "alice", None), now)
        .await
        .unwrap();
    let b = s
        .create(data("https://idp", "alice", None), now)
        .await
        .unwrap();
    let (id, _) = s.load(&sent_back(&a), now).await.unwrap().unwrap();
    s.end(&id).await.unwrap();
    assert!(s.load(&sent_back(&a), now).await.unwrap().is_none());
    assert!(s.load(&sent_back(&b), now).await.unwrap().is_some());
    s.end(&id).await.unwrap();
    let clear = s.clear_cookie();
    let text = clear.to_str().unwrap();
    assert!(
        text.starts_with("portcullis=;") && text.contains("Max-Age=0"),
        "{text}"
    );
}

async fn end_by_sid_ends_exactly_the_matching_sessions(s: Sessions) {
    let now = Timestamp::now();
    let idp = "https://idp";
    let s1 = s.create(data(idp, "alice", Some("A")), now).await.unwrap();
    let s2 = s.create(data(idp, "alice", Some("A")), now).await.unwrap();
    let other_sid = s.create(data(idp, "alice", Some("B")), now).await.unwrap();
    let no_sid = s.create(data(idp, "alice", None), now).await.unwrap();
    let other_issuer = s
        .create(data("https://other", "alice", Some("A")), now)
        .await
        .unwrap();
    assert_eq!(s.end_by_sid(idp, "A").await.unwrap(), 2);
    assert!(s.load(&sent_back(&s1), now).await.unwrap().is_none());
    assert!(s.load(&sent_back(&s2), now).await.unwrap().is_none());
    for kept in [&other_sid, &no_sid, &other_issuer] {
        assert!(s.load(&sent_back(kept), now).await.unwrap().is_some());
    }
    // A later login that happens to reuse the sid is a new session and stays.
    let later = after(Timestamp::now(), 2);
    let again = s
        .create(data(idp, "alice", Some("A")), later)
        .await
        .unwrap();
    assert!(s.load(&sent_back(&again), later).await.unwrap().is_some());
    assert_eq!(s.end_by_sid(idp, "nobody").await.unwrap(), 0);
}

async fn end_by_subject_ends_exactly_the_matching_sessions(s: Sessions) {
    let now = Timestamp::now();
    let idp = "https://idp";
    let a1 = s.create(data(idp, "alice", Some("A")), now).await.unwrap();
    let a2 = s.create(data(idp, "alice", None), now).await.unwrap();
    let bob = s.create(data(idp, "bob", Some("A")), now).await.unwrap();
    let elsewhere = s
        .create(data("https://other", "alice", None), now)
        .await
        .unwrap();
    assert_eq!(s.end_by_subject(idp, "alice").await.unwrap(), 2);
    assert!(s.load(&sent_back(&a1), now).await.unwrap().is_none());
    assert!(s.load(&sent_back(&a2), now).await.unwrap().is_none());
    assert!(s.load(&sent_back(&bob), now).await.unwrap().is_some());
    assert!(s.load(&sent_back(&elsewhere), now).await.unwrap().is_some());
    let later = after(Timestamp::now(), 2);
    let again = s.create(data(idp, "alice", None), later).await.unwrap();
    assert!(s.load(&sent_back(&again), later).await.unwrap().is_some());
}

fn login(state: &str) -> LoginState {
    LoginState {
        provider: "okta".into(),
        state: state.into(),
        nonce: "nonce".into(),
        pkce_verifier: "verifier".into(),
        return_to: "/app".into(),
        created_at: 0,
    }
}

async fn login_state_is_single_use_and_bound_to_the_browser(s: Sessions) {
    let now = Timestamp::now();
    let cookie = s.begin_login(login("st-1"), now).await.unwrap();
    let text = cookie.to_str().unwrap();
    assert!(text.starts_with("portcullis_login="), "{text}");
    for attribute in [
        "; Path=/.portcullis/",
        "; HttpOnly",
        "; SameSite=Lax",
        "; Max-Age=600",
    ] {
        assert!(text.contains(attribute), "{text} lacks {attribute}");
    }
    let browser = sent_back(&cookie);
    // Another browser (no cookie, someone else's cookie, a forged one) gets nothing.
    let other = s.begin_login(login("st-2"), now).await.unwrap();
    assert!(
        s.take_login(&HeaderMap::new(), "st-1", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.take_login(&sent_back(&other), "st-1", now)
            .await
            .unwrap()
            .is_none()
    );
    let forged = cookie_headers(s.login_cookie_name(), "forged");
    assert!(s.take_login(&forged, "st-1", now).await.unwrap().is_none());
    // The right browser and state: once.
    let taken = s.take_login(&browser, "st-1", now).await.unwrap().unwrap();
    assert_eq!(taken, login("st-1"));
    assert!(s.take_login(&browser, "st-1", now).await.unwrap().is_none());
    // A wrong state burns the login too.
    let third = s.begin_login(login("st-3"), now).await.unwrap();
    assert!(
        s.take_login(&sent_back(&third), "st-x", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.take_login(&sent_back(&third), "st-3", now)
            .await
            .unwrap()
            .is_none()
    );
    let clear = s.clear_login_cookie();
    assert!(clear.to_str().unwrap().contains("Max-Age=0"));
}

async fn login_state_expires(s: Sessions) {
    let now = Timestamp::now();
    let fresh = s.begin_login(login("st"), now).await.unwrap();
    let stale = s.begin_login(login("st"), now).await.unwrap();
    assert!(
        s.take_login(&sent_back(&fresh), "st", after(now, 599))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.take_login(&sent_back(&stale), "st", after(now, 600))
            .await
            .unwrap()
            .is_none()
    );
}

async fn records_of_one_kind_are_never_another(s: Sessions) {
    let now = Timestamp::now();
    let login_cookie = s.begin_login(login("st"), now).await.unwrap();
    let session_cookie = s
        .create(data("https://idp", "alice", None), now)
        .await
        .unwrap();
    // A login id presented as a session, and a session id presented as a login.
    let as_session = cookie_headers(s.cookie_name(), &value_of(&login_cookie));
    assert!(s.load(&as_session, now).await.unwrap().is_none());
    let as_login = cookie_headers(s.login_cookie_name(), &value_of(&session_cookie));
    assert!(s.take_login(&as_login, "st", now).await.unwrap().is_none());
    // Neither was harmed.
    assert!(
        s.load(&sent_back(&session_cookie), now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.take_login(&sent_back(&login_cookie), "st", now)
            .await
            .unwrap()
            .is_some()
    );
}

async fn update_keeps_the_deadlines_and_refuses_ended_sessions(s: Sessions) {
    let t0 = Timestamp::now();
    let cookie = s
        .create(data("https://idp", "alice", None), t0)
        .await
        .unwrap();
    let (id, mut current) = s.load(&sent_back(&cookie), t0).await.unwrap().unwrap();
    current.access_token = Some("renewed".into());
    current.created_at = after(t0, 7200).as_second(); // ignored: cannot extend the session
    s.update(&id, &current, after(t0, 60)).await.unwrap();
    let (_, loaded) = s
        .load(&sent_back(&cookie), after(t0, 120))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.access_token.as_deref(), Some("renewed"));
    assert_eq!(loaded.created_at, t0.as_second());
    assert!(
        s.load(&sent_back(&cookie), after(t0, 3 * 3600))
            .await
            .unwrap()
            .is_none()
    );
    let again = s
        .create(data("https://idp", "alice", None), t0)
        .await
        .unwrap();
    let (id, current) = s.load(&sent_back(&again), t0).await.unwrap().unwrap();
    s.end(&id).await.unwrap();
    assert!(s.update(&id, &current, t0).await.is_err());
    assert!(s.load(&sent_back(&again), t0).await.unwrap().is_none());
}

async fn refresh_guard_serializes(s: Sessions) {
    let now = Timestamp::now();
    let cookie = s
        .create(data("https://idp", "alice", None), now)
        .await
        .unwrap();
    let (id, _) = s.load(&sent_back(&cookie), now).await.unwrap().unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let refreshes = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (s, inside, most, refreshes, headers) = (
            s.clone(),
            inside.clone(),
            most.clone(),
            refreshes.clone(),
            sent_back(&cookie),
        );
        tasks.push(tokio::spawn(async move {
            let _guard = s.refresh_guard(&id).await;
            let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            // The pattern callers follow: re-load under the guard, refresh only if still due.
            let (_, current) = s.load(&headers, Timestamp::now()).await.unwrap().unwrap();
            if current.access_token.as_deref() == Some("access") {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut renewed = current.clone();
                renewed.access_token = Some("renewed".into());
                s.update(&id, &renewed, Timestamp::now()).await.unwrap();
                refreshes.fetch_add(1, Ordering::SeqCst);
            }
            inside.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1);
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn https_cookies_are_secure_with_host_prefix() {
    let s = Sessions::from_config(&config(SessionStoreKind::Memory), true)
        .await
        .unwrap();
    assert_eq!(s.cookie_name(), "__Host-portcullis");
    let now = Timestamp::now();
    let cookie = s
        .create(data("https://idp", "alice", None), now)
        .await
        .unwrap();
    let text = cookie.to_str().unwrap();
    assert!(text.starts_with("__Host-portcullis="), "{text}");
    for attribute in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
        assert!(text.contains(attribute), "{text} lacks {attribute}");
    }
    assert!(!text.to_ascii_lowercase().contains("domain"), "{text}");
    assert!(s.load(&sent_back(&cookie), now).await.unwrap().is_some());
    let login_cookie = s.begin_login(login("st"), now).await.unwrap();
    let text = login_cookie.to_str().unwrap();
    assert!(text.starts_with("__Secure-portcullis_login="), "{text}");
    assert!(text.contains("; Secure"), "{text}");
    // The plain name is not the session cookie over https (a subdomain could have set it).
    let plain = cookie_headers("portcullis", &value_of(&cookie));
    assert!(s.load(&plain, now).await.unwrap().is_none());
}

#[tokio::test]
async fn session_cookies_are_stripped_before_upstream() {
    let s = Sessions::from_config(&config(SessionStoreKind::Memory), false)
        .await
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::COOKIE,
        HeaderValue::from_static("a=1; portcullis=abc; portcullis_login=def; b=2"),
    );
    s.strip_cookies(&mut headers);
    assert_eq!(headers.get(header::COOKIE).unwrap(), "a=1; b=2");
    let mut only = HeaderMap::new();
    only.insert(header::COOKIE, HeaderValue::from_static("portcullis=abc"));
    s.strip_cookies(&mut only);
    assert!(only.get(header::COOKIE).is_none());
}

#[tokio::test]
async fn an_unreachable_store_fails_at_startup() {
    let cfg = config(SessionStoreKind::Sqlite(
        "sqlite:///nonexistent-portcullis-dir/sessions.db".into(),
    ));
    let error = Sessions::from_config(&cfg, false).await.unwrap_err();
    assert!(error.to_string().contains("sqlite"), "{error}");
}
