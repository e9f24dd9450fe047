//! The group coordinator: the classic consumer-group protocol (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup) and committed offsets.
//!
//! # Layout
//!
//! - [`coordinator`]: the sans-IO state machine of every group a shard
//!   coordinates: members, generations, rebalances, fencing, committed
//!   offsets. Requests go in with the current time, `tick(now)` fires
//!   deadlines, and replies (possibly delayed until a rebalance completes)
//!   and records to persist come out.
//! - [`records`]: Kafka's `__consumer_offsets` key and value formats.
//! - [`driver`]: the I/O side on a shard: feeds the clock, appends records
//!   to `__consumer_offsets` and waits until they are durable before a
//!   commit is acknowledged, replays those partitions at start.
//!
//! # Placement
//!
//! A group belongs to partition `hash(group) % 50` of `__consumer_offsets`
//! (Kafka's `Utils.abs(groupId.hashCode) % offsets.topic.num.partitions`),
//! and its state machine lives on the shard that owns that partition, so
//! appends and replays never leave the shard.

pub mod coordinator;
pub mod driver;
pub mod records;

pub use driver::start;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Partitions of [`OFFSETS_TOPIC`] when the broker creates it: Kafka's
/// default `offsets.topic.num.partitions`. The count is read from the
/// topic table once the topic exists, so changing this later does not
/// move existing groups.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;

/// Java's `String.hashCode` over UTF-16 code units, as Kafka hashes group
/// ids to pick their offsets partition.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group (Kafka's
/// `partitionFor`: `Utils.abs(hash) % partitions`, where `abs` maps
/// `i32::MIN` to 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0);
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafka() {
        // "test-group".hashCode() == 627841412 in Java; "polygenelubricants"
        // hashes to i32::MIN, which Kafka's abs maps to 0.
        assert_eq!(java_string_hash("test-group"), 627_841_412);
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(java_string_hash(""), 0);
        for g in ["a", "group-1", "ÿ€"] {
            let p = partition_for(g, 50);
            assert!((0..50).contains(&p));
        }
    }
}
