//! What a config reload means for the audit trail: the same sink, store and redaction, with
//! the new routes' policy versions, and a `config_reload` event recording the outcome.

use std::sync::Arc;

use super::event::AuditEvent;
use super::setup::{Audit, policy_version};
use crate::config::Config;

/// Event kind of a config reload (applied or rejected).
pub const CONFIG_RELOAD: &str = "config_reload";

impl Audit {
    /// This audit trail for a reloaded config: policy versions follow the new routes.
    pub fn for_config(&self, config: &Config) -> Audit {
        Audit {
            sink: self.sink.clone(),
            redactor: self.redactor.clone(),
            store: self.store.clone(),
            durability: self.durability,
            access: self.access.clone(),
            policy_versions: config
                .routes
                .iter()
                .map(|route| Arc::from(policy_version(&route.policy)))
                .collect(),
            instance: self.instance.clone(),
        }
    }

    /// Records a reload: `hash` of the applied config, or None when the file was rejected.
    pub fn record_reload(&self, hash: Option<&str>, applied: bool) {
        let mut event = AuditEvent::new(CONFIG_RELOAD, jiff::Timestamp::now());
        event.decision = Some(if applied { "applied" } else { "rejected" }.to_owned());
        event.detail =
            Some(serde_json::json!({ "config_hash": hash, "applied": applied }).to_string());
        if self.sink.record(event).is_err() {
            tracing::warn!("audit queue full: config reload event not recorded");
        }
    }
}
