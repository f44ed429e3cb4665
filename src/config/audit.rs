//! `[audit]` -> [`AuditConfig`]: the store URL, durability mode, retention, redaction rules,
//! the `audit.access` policy and the writer's sizing. Every problem is recorded with its key
//! path. It opens no database and resolves no secret: [`crate::audit`] does that at startup.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::convert::{Problems, positive_duration};
use super::file::AuditFile;
use super::rule::convert_rules;

#[path = "audit_redact.rs"]
mod redact_rules;
use crate::identity::AuthMethod;
use crate::policy::RoutePolicy;
use crate::secrets::SecretRef;

/// `[audit]`, validated.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// `url`: where events are stored. Default `sqlite://data/audit.db`.
    pub url: AuditUrl,
    /// `durability`: `async` (default) or `strict`.
    pub durability: Durability,
    /// `retention`: events older than this are deleted (a checkpoint keeps the chain
    /// verifiable). None = keep forever.
    pub retention: Option<Duration>,
    /// `instance`: this process's hash-chain id. Default: the host name. Two processes
    /// writing to one database must use different ids.
    pub instance: Option<String>,
    /// `spool_dir`: where events wait while the database is unreachable, and where a
    /// generated HMAC key is kept. Default `data/audit-spool`.
    pub spool_dir: PathBuf,
    /// `queue_capacity`: events waiting for the writer; a full queue answers 503.
    /// Default 65536.
    pub queue_capacity: usize,
    /// `batch_size`: most events per insert transaction. Default 2048.
    pub batch_size: usize,
    /// `[audit.redact]`.
    pub redact: RedactConfig,
    /// `[audit.access]`: who may read the trail through `/.portcullis/api/audit`.
    /// Default: nobody (no allow rule).
    pub access: RoutePolicy,
}

/// Which database holds the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditUrl {
    /// `sqlite://PATH` (the URL as written, handed to sqlx).
    Sqlite(String),
    /// `postgres://...`.
    Postgres(Url),
}

/// When a request may proceed relative to its audit event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The event is queued; the writer commits it in a batch shortly after.
    Async,
    /// The upstream is not contacted until the decision event is committed.
    Strict,
}

/// `[audit.redact]`. The hard-coded never-store list in [`crate::audit::redact`] applies
/// whatever these say (and config load rejects anything but `drop` for its names).
#[derive(Clone, Debug, Default)]
pub struct RedactConfig {
    /// `headers`: lowercased header name -> action. The list form (`["x-a"]`) means `drop`:
    /// the header's value is not recorded. Unnamed headers are kept.
    pub headers: BTreeMap<String, RedactAction>,
    /// `query`: normalized parameter name (decoded, lowercased, no `[...]`) -> action. The
    /// list form means `drop`: the value is recorded as `[redacted]`. Unnamed are kept.
    pub query: BTreeMap<String, RedactAction>,
    /// `claims`: identity field or claim name -> action (`email = "hmac"`).
    pub claims: BTreeMap<String, RedactAction>,
    /// `hmac_key`: key for `hmac` pseudonyms. Default: generated once and kept in
    /// `spool_dir/hmac.key`.
    pub hmac_key: Option<SecretRef>,
}

/// What happens to one redacted value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedactAction {
    /// Recorded as is.
    Keep,
    /// Not recorded at all.
    Drop,
    /// Partly hidden: `j***@corp.example`, `a***`.
    Mask,
    /// Replaced by a keyed pseudonym, so rows can still be joined on it.
    Hmac,
}

impl RedactAction {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "keep" => Some(RedactAction::Keep),
            "drop" => Some(RedactAction::Drop),
            "mask" => Some(RedactAction::Mask),
            "hmac" => Some(RedactAction::Hmac),
            _ => None,
        }
    }
}

/// Converts `[audit]`; problems are recorded, the returned value then only fills the slot.
pub(crate) fn convert_audit(file: &AuditFile, p: &mut Problems) -> AuditConfig {
    let url = match &file.url {
        Some(text) => audit_url(text).unwrap_or_else(|message| {
            p.add("audit.url", message);
            AuditUrl::Sqlite(String::new())
        }),
        None => AuditUrl::Sqlite("sqlite://data/audit.db".into()),
    };
    let durability = match file.durability.as_deref() {
        None | Some("async") => Durability::Async,
        Some("strict") => Durability::Strict,
        Some(other) => {
            p.add(
                "audit.durability",
                format!("`{other}`: expected one of async, strict"),
            );
            Durability::Async
        }
    };
    let retention = file
        .retention
        .as_deref()
        .map(|text| positive_duration(p, "audit.retention", Some(text), Duration::from_secs(1)));
    if let Some(instance) = &file.instance {
        let ok = !instance.is_empty()
            && instance.len() <= 128
            && instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            p.add(
                "audit.instance",
                "use 1 to 128 letters, digits, `-`, `_` and `.`",
            );
        }
    }
    let spool_dir = match file.spool_dir.as_deref() {
        Some("") => {
            p.add("audit.spool_dir", "must not be empty");
            PathBuf::new()
        }
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from("data/audit-spool"),
    };
    let queue_capacity = count(p, "audit.queue_capacity", file.queue_capacity, 65_536);
    let batch_size = count(p, "audit.batch_size", file.batch_size, 2048);
    let redact = redact_rules::convert_redact(file, p);
    let access = match &file.access {
        Some(access) => {
            let (allow, deny) = convert_rules("audit.access", access, p);
            RoutePolicy {
                allow,
                deny,
                accepts: vec![AuthMethod::Session, AuthMethod::Bearer],
            }
        }
        None => RoutePolicy {
            accepts: vec![AuthMethod::Session, AuthMethod::Bearer],
            ..RoutePolicy::default()
        },
    };
    AuditConfig {
        url,
        durability,
        retention,
        instance: file.instance.clone(),
        spool_dir,
        queue_capacity,
        batch_size,
        redact,
        access,
    }
}

fn audit_url(text: &str) -> Result<AuditUrl, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match url.scheme() {
        "sqlite" => Ok(AuditUrl::Sqlite(text.to_owned())),
        "postgres" | "postgresql" => Ok(AuditUrl::Postgres(url)),
        _ => Err(format!("`{text}`: expected a sqlite or postgres URL")),
    }
}

fn count(p: &mut Problems, path: &str, value: Option<i64>, default: usize) -> usize {
    match value {
        None => default,
        Some(n) if (1..=10_000_000).contains(&n) => usize::try_from(n).unwrap_or(default),
        Some(n) => {
            p.add(path, format!("must be between 1 and 10000000 (got {n})"));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn audit(section: &str) -> AuditConfig {
        let text = format!(
            "version = 1\n{section}\n[[routes]]\nid = \"r\"\nupstream = \"http://127.0.0.1:1\"\n\
             [routes.policy]\nallow = [{{ public = true }}]\n"
        );
        load_str(&text, Vec::new())
            .unwrap_or_else(|e| panic!("{e}"))
            .audit
            .unwrap()
    }

    #[test]
    fn defaults() {
        let a = audit("[audit]");
        assert_eq!(a.url, AuditUrl::Sqlite("sqlite://data/audit.db".into()));
        assert_eq!(a.durability, Durability::Async);
        assert_eq!(a.retention, None);
        assert_eq!(a.queue_capacity, 65_536);
        assert!(a.access.allow.is_empty());
        assert!(a.redact.claims.is_empty());
    }

    #[test]
    fn full_section() {
        let a = audit(
            "[audit]\nurl = \"postgres://u@db/audit\"\ndurability = \"strict\"\n\
             retention = \"90d\"\ninstance = \"gate-1\"\nhmac_key = \"env:AUDIT_KEY\"\n\
             queue_capacity = 16\n[audit.redact]\nheaders = [\"X-Api-Key\"]\n\
             query = [\"Sig\"]\nclaims = { email = \"hmac\", sub = \"mask\" }\n\
             [audit.access]\nallow = [{ groups = [\"security\"] }]",
        );
        assert!(matches!(a.url, AuditUrl::Postgres(_)));
        assert_eq!(a.durability, Durability::Strict);
        assert_eq!(a.retention, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(a.instance.as_deref(), Some("gate-1"));
        assert_eq!(a.queue_capacity, 16);
        assert_eq!(a.redact.headers["x-api-key"], RedactAction::Drop);
        assert_eq!(a.redact.query["sig"], RedactAction::Drop);
        assert_eq!(a.redact.claims["email"], RedactAction::Hmac);
        assert_eq!(a.redact.claims["sub"], RedactAction::Mask);
        assert!(a.redact.hmac_key.is_some());
        assert_eq!(a.access.allow.len(), 1);
    }

    #[test]
    fn bad_values_name_their_keys() {
        let text = "version = 1\n[audit]\ninstance = \"a b\"\nqueue_capacity = 0\n\
                    hmac_key = \"literal\"\n";
        let errs = load_str(text, Vec::new()).unwrap_err().to_string();
        assert!(errs.contains("audit.instance"), "{errs}");
        assert!(errs.contains("audit.queue_capacity"), "{errs}");
        assert!(errs.contains("audit.hmac_key"), "{errs}");
        assert!(!errs.contains("literal"), "{errs}");
    }
}
