//! Which shard owns a partition: a pure function of the topic id, the
//! partition and the shard count, so every shard computes the same answer
//! without asking anyone.

use super::ShardId;

/// FNV-1a over the topic id, then consecutive partitions of one topic go to
/// consecutive shards (a topic's load spreads over all cores).
pub fn shard_for(topic_id: &[u8; 16], partition: i32, shards: usize) -> ShardId {
    assert!(shards > 0);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic_id {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let slot = hash.wrapping_add(partition as u64) % shards as u64;
    ShardId(slot as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_evenly() {
        let id = [7u8; 16];
        let mut counts = [0usize; 4];
        for p in 0..400 {
            counts[shard_for(&id, p, 4).0] += 1;
        }
        assert_eq!(counts, [100; 4]);
        assert_eq!(shard_for(&id, 5, 4), shard_for(&id, 5, 4));
        assert_eq!(shard_for(&id, 5, 1), ShardId(0));
    }
}
