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

/// A new UUIDv7 stamped with `now`, for a caller that reads the wall clock anyway (one read
/// per request instead of two). Ids made on a thread still keep their order.
pub fn uuid_v7_at(now: jiff::Timestamp) -> Uuid {
    // Before 1970 only on a broken clock: stamped 0, still unique through the counter.
    let seconds = u64::try_from(now.as_second()).unwrap_or(0);
    let nanos = u32::try_from(now.subsec_nanosecond()).unwrap_or(0);
    CONTEXT.with(|context| Uuid::new_v7(uuid::Timestamp::from_unix(context, seconds, nanos)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_v7_and_ordered_on_a_thread() {
        let ids: Vec<_> = (0..1000).map(|_| super::uuid_v7()).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn ids_at_a_given_time_carry_it_and_stay_ordered() {
        let now = jiff::Timestamp::now();
        let ids: Vec<_> = (0..1000).map(|_| super::uuid_v7_at(now)).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        let (seconds, _) = ids[0].get_timestamp().unwrap().to_unix();
        assert_eq!(i64::try_from(seconds).unwrap(), now.as_second());
    }
}
