//! What a config reload means for the audit trail: the same sink, store and redaction, with
//! the new routes' policy versions (the `config_reload` event itself is in `lifecycle`).

use std::sync::Arc;

use super::setup::{Audit, policy_version};
use crate::config::Config;

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
}
