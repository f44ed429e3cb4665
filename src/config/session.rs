//! `[session]` -> [`SessionConfig`]: which store keeps browser sessions, the cookie name and
//! the two timeouts. The cheap checks (store names, URL schemes, cookie name, durations) run in
//! [`super::later`] and report every problem with its key path; this conversion trusts them and
//! falls back to defaults for values already reported, because a config with problems is never
//! returned. Nothing here connects to a store.

use std::fmt;
use std::time::Duration;

use super::duration::parse_duration;
use super::file::SessionFile;

/// Default `idle_timeout`: a session unused this long ends.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Default `absolute_timeout`: a session ends this long after login, however active.
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// Default `cookie_name`.
pub const DEFAULT_COOKIE_NAME: &str = "portcullis";

/// `[session]`, validated. Absent section: memory store and the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// `store` + `url`.
    pub store: SessionStoreKind,
    /// `cookie_name`: letters, digits, `-`, `_`. Default `portcullis`. Over https the cookie
    /// is sent as `__Host-<cookie_name>`.
    pub cookie_name: String,
    /// `idle_timeout`: default 1h.
    pub idle_timeout: Duration,
    /// `absolute_timeout`: default 12h.
    pub absolute_timeout: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            store: SessionStoreKind::Memory,
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            absolute_timeout: DEFAULT_ABSOLUTE_TIMEOUT,
        }
    }
}

/// Where sessions live. Several instances share sessions only through Postgres or Redis.
#[derive(Clone, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// In this process only; lost on restart. The default.
    Memory,
    /// `sqlite://path` (the file is created when missing).
    Sqlite(String),
    /// `postgres://...`.
    Postgres(String),
    /// `redis://host:port[/db]`.
    Redis(String),
}

impl SessionStoreKind {
    /// The config spelling of the store (`memory`, `sqlite`, `postgres`, `redis`).
    pub fn name(&self) -> &'static str {
        match self {
            SessionStoreKind::Memory => "memory",
            SessionStoreKind::Sqlite(_) => "sqlite",
            SessionStoreKind::Postgres(_) => "postgres",
            SessionStoreKind::Redis(_) => "redis",
        }
    }
}

/// Store URLs may carry a database password, so `Debug` shows only the store kind and host.
impl fmt::Debug for SessionStoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionStoreKind::Memory => f.write_str("Memory"),
            SessionStoreKind::Sqlite(url)
            | SessionStoreKind::Postgres(url)
            | SessionStoreKind::Redis(url) => {
                let host = url::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default();
                write!(f, "{}({host})", self.name())
            }
        }
    }
}

/// Converts `[session]`; problems were already reported by `later::check_session`.
pub(crate) fn convert_session(file: Option<&SessionFile>) -> SessionConfig {
    let Some(file) = file else {
        return SessionConfig::default();
    };
    let url = file.url.clone().unwrap_or_default();
    let store = match file.store.as_deref() {
        Some("sqlite") => SessionStoreKind::Sqlite(url),
        Some("postgres") => SessionStoreKind::Postgres(url),
        Some("redis") => SessionStoreKind::Redis(url),
        _ => SessionStoreKind::Memory,
    };
    let duration = |text: Option<&str>, default: Duration| {
        text.and_then(|t| parse_duration(t).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(default)
    };
    SessionConfig {
        store,
        cookie_name: file
            .cookie_name
            .clone()
            .unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_owned()),
        idle_timeout: duration(file.idle_timeout.as_deref(), DEFAULT_IDLE_TIMEOUT),
        absolute_timeout: duration(file.absolute_timeout.as_deref(), DEFAULT_ABSOLUTE_TIMEOUT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn session_of(text: &str) -> SessionConfig {
        let config = load_str(&format!("version = 1\n{text}"), Vec::new());
        match config {
            Ok(config) => config.session,
            Err(e) => panic!("config should load: {e}"),
        }
    }

    #[test]
    fn absent_section_is_memory_with_defaults() {
        let s = session_of("");
        assert_eq!(s, SessionConfig::default());
        assert_eq!(s.store, SessionStoreKind::Memory);
        assert_eq!(s.cookie_name, "portcullis");
        assert_eq!(s.idle_timeout, Duration::from_secs(3600));
        assert_eq!(s.absolute_timeout, Duration::from_secs(12 * 3600));
    }

    #[test]
    fn every_store_and_value_converts() {
        let s = session_of(
            "[session]\nstore = \"sqlite\"\nurl = \"sqlite://data/s.db\"\ncookie_name = \"gate\"\nidle_timeout = \"15m\"\nabsolute_timeout = \"8h\"\n",
        );
        assert_eq!(
            s.store,
            SessionStoreKind::Sqlite("sqlite://data/s.db".into())
        );
        assert_eq!(s.cookie_name, "gate");
        assert_eq!(s.idle_timeout, Duration::from_secs(15 * 60));
        assert_eq!(s.absolute_timeout, Duration::from_secs(8 * 3600));
        let s = session_of("[session]\nstore = \"postgres\"\nurl = \"postgres://u:pw@db/s\"\n");
        assert_eq!(
            s.store,
            SessionStoreKind::Postgres("postgres://u:pw@db/s".into())
        );
        let s = session_of("[session]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:6379/2\"\n");
        assert_eq!(
            s.store,
            SessionStoreKind::Redis("redis://127.0.0.1:6379/2".into())
        );
        let s = session_of("[session]\nstore = \"memory\"\n");
        assert_eq!(s.store, SessionStoreKind::Memory);
    }

    #[test]
    fn debug_never_shows_the_url_password() {
        let kind = SessionStoreKind::Postgres("postgres://u:hunter2@db.example/s".into());
        let shown = format!("{kind:?}");
        assert_eq!(shown, "postgres(db.example)");
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn bad_values_are_rejected_by_the_checks() {
        let errs = load_str(
            "version = 1\n[session]\nstore = \"redis\"\nidle_timeout = \"0s\"\n",
            Vec::new(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(errs.contains("session.url"), "{errs}");
        assert!(errs.contains("session.idle_timeout"), "{errs}");
    }
}
