//! The retention job: deletes events older than `audit.retention` as a chain prefix per
//! instance, records where each chain now starts (`audit_checkpoints`), and records that it
//! did so as a `retention` event in this instance's own chain. It never deletes anything
//! newer than the cutoff's last event of each instance.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::task::JoinHandle;

use super::event::{AuditEvent, format_ts, kind};
use super::store::{AuditStore, Checkpoint, StoreError};
use super::writer::AuditSink;

/// One run at `now`: returns the checkpoints written (empty when nothing was old enough).
pub async fn run_once<S: AuditStore>(
    store: &S,
    sink: &AuditSink,
    retention: Duration,
    now: Timestamp,
) -> Result<Vec<Checkpoint>, StoreError> {
    let age = SignedDuration::try_from(retention).unwrap_or(SignedDuration::MAX);
    let cutoff = now.checked_sub(age).unwrap_or(Timestamp::MIN);
    let cutoff = format_ts(cutoff);
    let done = store.apply_retention(&cutoff).await?;
    if !done.is_empty() {
        let checkpoints: Vec<serde_json::Value> = done
            .iter()
            .map(|c| {
                serde_json::json!({
                    "instance": c.instance, "seq": c.seq, "hash": c.hash, "deleted": c.deleted,
                })
            })
            .collect();
        let mut event = AuditEvent::new(kind::RETENTION, now);
        event.detail =
            Some(serde_json::json!({ "cutoff": cutoff, "checkpoints": checkpoints }).to_string());
        if sink.record(event).is_err() {
            tracing::warn!("audit queue full: the retention run is not recorded as an event");
        }
        tracing::info!(%cutoff, instances = done.len(), "audit retention applied");
    }
    Ok(done)
}

/// Runs the job now and then every `every`.
pub fn spawn<S: AuditStore + 'static>(
    store: S,
    sink: AuditSink,
    retention: Duration,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(error) = run_once(&store, &sink, retention, Timestamp::now()).await {
                tracing::warn!(%error, "audit retention failed; will retry");
            }
        }
    })
}
