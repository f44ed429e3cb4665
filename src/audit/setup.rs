//! Starting the audit trail from config: open and migrate the store, find this instance's id
//! and HMAC key, start the writer and the retention job, and record the `config_load`
//! event. [`Audit`] is what the running app holds (in `AppState`); [`AuditRuntime`] is what
//! shutdown drains.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::event::{AuditEvent, kind};
use super::redact::Redactor;
use super::writer::{self, AuditSink, WriterHandle, WriterOptions};
use super::{Store, retention};
use crate::config::{AuditConfig, Config, Durability};
use crate::policy::RoutePolicy;

/// The audit trail as the running app uses it.
#[derive(Debug)]
pub struct Audit {
    /// Where events go.
    pub sink: AuditSink,
    /// Applied to every recorded value.
    pub redactor: Redactor,
    /// For `/.portcullis/api/audit`.
    pub store: Store,
    /// `audit.durability`.
    pub durability: Durability,
    /// `audit.access`.
    pub access: RoutePolicy,
    /// SHA-256 (hex) of each route's policy, in config route order.
    pub policy_versions: Vec<Arc<str>>,
    /// This process's chain id.
    pub instance: String,
}

/// The background parts, stopped at shutdown.
#[derive(Debug)]
pub struct AuditRuntime {
    /// Shared with request handlers.
    pub audit: Arc<Audit>,
    writer: WriterHandle,
    retention: Option<JoinHandle<()>>,
}

impl AuditRuntime {
    /// Stops the retention job and drains the writer (bounded by `limit`).
    pub async fn shutdown(self, limit: Duration) {
        if let Some(job) = self.retention {
            job.abort();
        }
        drop(self.audit);
        self.writer.shutdown(limit).await;
    }
}

/// Starts everything `[audit]` asks for and records `config_load`.
pub async fn start(audit: &AuditConfig, config: &Config) -> anyhow::Result<AuditRuntime> {
    let store = Store::open(&audit.url)
        .await
        .context("audit.url: cannot open the audit store")?;
    let instance = instance_id(audit);
    let key = hmac_key(audit).await?;
    let options = WriterOptions {
        capacity: audit.queue_capacity,
        batch_size: audit.batch_size,
        retry: Duration::from_secs(1),
    };
    let (sink, writer) = writer::start(store.clone(), &instance, &audit.spool_dir, options)
        .await
        .context("audit: cannot start the writer")?;
    let retention = audit.retention.map(|keep| {
        let every = (keep / 10).clamp(Duration::from_secs(60), Duration::from_secs(3600));
        retention::spawn(store.clone(), sink.clone(), keep, every)
    });
    let policy_versions = config
        .routes
        .iter()
        .map(|route| Arc::from(policy_version(&route.policy)))
        .collect();
    let mut event = AuditEvent::new(kind::CONFIG_LOAD, jiff::Timestamp::now());
    event.detail = Some(
        serde_json::json!({
            "config_hash": config_hash(config),
            "routes": config.routes.len(),
            "durability": format!("{:?}", audit.durability).to_lowercase(),
        })
        .to_string(),
    );
    sink.record_committed(event)
        .await
        .context("audit: cannot record the config load")?;
    Ok(AuditRuntime {
        audit: Arc::new(Audit {
            sink,
            redactor: Redactor::new(&audit.redact, key),
            store,
            durability: audit.durability,
            access: audit.access.clone(),
            policy_versions,
            instance,
        }),
        writer,
        retention,
    })
}

/// SHA-256 of the policy's canonical (Debug) form: changes exactly when the rules do.
pub fn policy_version(policy: &RoutePolicy) -> String {
    hex::encode(Sha256::digest(format!("{policy:?}").as_bytes()))
}

/// SHA-256 of the whole validated config (secret references, never values).
pub fn config_hash(config: &Config) -> String {
    hex::encode(Sha256::digest(format!("{config:?}").as_bytes()))
}

/// `audit.instance`, else the host name, else `portcullis`.
fn instance_id(audit: &AuditConfig) -> String {
    if let Some(id) = &audit.instance {
        return id.clone();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    host.unwrap_or_else(|| "portcullis".to_owned())
}

/// `audit.hmac_key`, else a key generated once and kept in `spool_dir/hmac.key` (mode 0600).
async fn hmac_key(audit: &AuditConfig) -> anyhow::Result<Vec<u8>> {
    if let Some(reference) = &audit.redact.hmac_key {
        let secret = reference.resolve().await.context("audit.hmac_key")?;
        return Ok(secret.expose().to_vec());
    }
    let path = audit.spool_dir.join("hmac.key");
    if let Ok(text) = tokio::fs::read_to_string(&path).await
        && let Ok(key) = hex::decode(text.trim())
        && key.len() >= 32
    {
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    write_private(&path, hex::encode(key).as_bytes())
        .with_context(|| format!("audit: cannot keep the HMAC key in {}", path.display()))?;
    Ok(key.to_vec())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
