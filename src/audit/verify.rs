//! `audit verify`: walks every instance's chain in seq order from its start (64 zeros, or the
//! retention checkpoint) and reports the first event that was deleted, modified or moved.
//! Read-only. A chain proves order and integrity of what is there; removing an instance's
//! newest events is only visible against an outside record of its head (a limitation of any
//! hash chain without an external anchor).

use std::collections::HashMap;
use std::fmt;

use super::chain::{GENESIS, event_hash};
use super::store::{AuditStore, StoreError};

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Break {
    /// Events between the previous one and this one are missing.
    Deleted {
        instance: String,
        /// The seq that should have come next.
        expected_seq: i64,
        /// The seq found instead, and its event id.
        seq: i64,
        id: String,
    },
    /// This event's content no longer matches its hash.
    Modified {
        instance: String,
        seq: i64,
        id: String,
    },
    /// This event is intact but does not link to its predecessor: reordered, or moved in
    /// from elsewhere.
    Reordered {
        instance: String,
        seq: i64,
        id: String,
    },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Deleted {
                instance,
                expected_seq,
                seq,
                id,
            } => write!(
                f,
                "deleted: instance {instance}: expected seq {expected_seq}, found seq {seq} \
                 (id {id}); events {expected_seq}..{} are missing",
                seq - 1
            ),
            Break::Modified { instance, seq, id } => write!(
                f,
                "modified: instance {instance} seq {seq} (id {id}) does not match its hash"
            ),
            Break::Reordered { instance, seq, id } => write!(
                f,
                "reordered: instance {instance} seq {seq} (id {id}) does not link to the \
                 event before it"
            ),
        }
    }
}

/// What verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Chains walked.
    pub instances: usize,
    /// Events checked.
    pub events: u64,
    /// The first problem, if any.
    pub broken: Option<Break>,
}

/// Checks every chain; stops at the first problem.
pub async fn verify<S: AuditStore>(store: &S) -> Result<Report, StoreError> {
    let starts: HashMap<String, (i64, String)> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| (c.instance, (c.seq, c.hash)))
        .collect();
    let mut report = Report::default();
    let mut current: Option<(String, i64, String)> = None;
    loop {
        let after = current.as_ref().map(|(i, s, _)| (i.clone(), *s));
        let page = store
            .verify_page(after.as_ref().map(|(i, s)| (i.as_str(), *s)), 5000)
            .await?;
        if page.is_empty() {
            return Ok(report);
        }
        for event in page {
            let (prev_seq, prev_hash) = match &current {
                Some((instance, seq, hash)) if *instance == event.instance => (*seq, hash.clone()),
                _ => {
                    report.instances += 1;
                    starts
                        .get(&event.instance)
                        .cloned()
                        .unwrap_or_else(|| (0, GENESIS.to_owned()))
                }
            };
            report.events += 1;
            let (instance, seq, id) = (event.instance.clone(), event.seq, event.event.id.clone());
            let broken = if seq != prev_seq + 1 {
                Some(Break::Deleted {
                    instance,
                    expected_seq: prev_seq + 1,
                    seq,
                    id,
                })
            } else if event_hash(&event) != event.hash {
                Some(Break::Modified { instance, seq, id })
            } else if event.prev_hash != prev_hash {
                Some(Break::Reordered { instance, seq, id })
            } else {
                None
            };
            if broken.is_some() {
                report.broken = broken;
                return Ok(report);
            }
            current = Some((event.instance, event.seq, event.hash));
        }
    }
}
