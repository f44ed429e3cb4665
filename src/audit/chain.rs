//! The per-instance hash chain: `hash = SHA-256(canonical(instance, seq, prev_hash, every
//! column))`. The canonical encoding is length-prefixed, so no two different events encode
//! the same bytes (a field cannot borrow text from its neighbour, NULL differs from ""). It
//! owns [`Chain`] (the writer's running head) and [`event_hash`]; checking a stored trail is
//! [`super::verify`]'s job.

use sha2::{Digest, Sha256};

use super::event::{AuditEvent, ColumnValue, StoredEvent};

/// `prev_hash` of an instance's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation: a future encoding change gets a new tag, never a silent collision.
const DOMAIN: &[u8] = b"portcullis-audit-event-v1";

/// The hash of a stored event as it should be, recomputed from its fields (its own `hash`
/// field is not an input).
pub fn event_hash(event: &StoredEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    let values = event.column_values();
    // Every column but the last (`hash` itself).
    for value in &values[..values.len() - 1] {
        match value {
            ColumnValue::Text(None) | ColumnValue::Int(None) => hasher.update([0u8]),
            ColumnValue::Text(Some(text)) => {
                hasher.update([1u8]);
                hasher.update((text.len() as u64).to_be_bytes());
                hasher.update(text.as_bytes());
            }
            ColumnValue::Int(Some(n)) => {
                hasher.update([2u8]);
                hasher.update(n.to_be_bytes());
            }
        }
    }
    hex::encode(hasher.finalize())
}

/// The head of one instance's chain: the last assigned sequence number and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    instance: String,
    seq: i64,
    hash: String,
}

impl Chain {
    /// Continues after `head` (`(seq, hash)` of the last stored event or checkpoint), or
    /// starts a new chain at [`GENESIS`].
    pub fn resume(instance: &str, head: Option<(i64, String)>) -> Self {
        let (seq, hash) = head.unwrap_or_else(|| (0, GENESIS.to_owned()));
        Chain {
            instance: instance.to_owned(),
            seq,
            hash,
        }
    }

    /// Places `event` after the head and advances the head.
    pub fn append(&mut self, event: AuditEvent) -> StoredEvent {
        self.seq += 1;
        let mut stored = StoredEvent {
            instance: self.instance.clone(),
            seq: self.seq,
            prev_hash: std::mem::take(&mut self.hash),
            hash: String::new(),
            event,
        };
        stored.hash = event_hash(&stored);
        self.hash.clone_from(&stored.hash);
        stored
    }

    /// The instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Last assigned `(seq, hash)`.
    pub fn head(&self) -> (i64, &str) {
        (self.seq, &self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::kind;

    fn event(path: &str) -> AuditEvent {
        AuditEvent {
            path: Some(path.into()),
            ..AuditEvent::new(kind::REQUEST, jiff::Timestamp::UNIX_EPOCH)
        }
    }

    #[test]
    fn links_events_and_detects_any_field_change() {
        let mut chain = Chain::resume("gate-1", None);
        let a = chain.append(event("/a"));
        let b = chain.append(event("/b"));
        assert_eq!((a.seq, a.prev_hash.as_str()), (1, GENESIS));
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(chain.head(), (2, b.hash.as_str()));
        assert_eq!(event_hash(&a), a.hash);

        let mut edited = b.clone();
        edited.event.path = Some("/c".into());
        assert_ne!(event_hash(&edited), b.hash);
        let mut renumbered = b.clone();
        renumbered.seq = 3;
        assert_ne!(event_hash(&renumbered), b.hash);
        let mut moved = b.clone();
        moved.instance = "gate-2".into();
        assert_ne!(event_hash(&moved), b.hash);
    }

    #[test]
    fn encoding_is_unambiguous() {
        let mut chain = Chain::resume("i", None);
        let base = chain.append(event("/x"));
        // NULL vs empty text, and text shifted between neighbouring fields.
        let mut empty = base.clone();
        empty.event.query = Some(String::new());
        assert_ne!(event_hash(&empty), base.hash);
        let mut left = base.clone();
        left.event.host = Some("ab".into());
        left.event.path = Some("c".into());
        let mut right = base.clone();
        right.event.host = Some("a".into());
        right.event.path = Some("bc".into());
        assert_ne!(event_hash(&left), event_hash(&right));
        // An integer column is not confused with the same digits as text.
        let mut status = base.clone();
        status.event.status = Some(200);
        let mut text = base;
        text.event.detail = Some("200".into());
        assert_ne!(event_hash(&status), event_hash(&text));
    }

    #[test]
    fn resumes_from_a_head() {
        let mut chain = Chain::resume("i", Some((41, "ab".repeat(32))));
        let next = chain.append(event("/"));
        assert_eq!(next.seq, 42);
        assert_eq!(next.prev_hash, "ab".repeat(32));
    }
}
