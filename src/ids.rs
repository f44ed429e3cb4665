//! Identifiers: every UUIDv7 portcullis makes (request and decision ids, audit event ids,
//! assertion `jti`s) comes from here. A per-thread context: ids made on one
//! thread keep their order, and threads do not take turns on the uuid crate's process-wide
//! mutex (its `Uuid::now_v7` locks one shared context for every id).

use uuid::Uuid;
use uuid::timestamp::context::ContextV7;

thread_local! {
    static CONTEXT: ContextV7 = const { ContextV7::new() };
}

/// A new UUIDv7.
pub fn uuid_v7() -> Uuid {
    CONTEXT.with(|context| Uuid::new_v7(uuid::Timestamp::now(context)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_v7_and_ordered_on_a_thread() {
        let ids: Vec<_> = (0..1000).map(|_| super::uuid_v7()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
