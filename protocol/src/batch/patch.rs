//! In-place rewrites of batch header fields on `&mut [u8]`.
//!
//! baseOffset and partitionLeaderEpoch lie before the CRC'd range, which
//! is why Kafka put them there: the leader assigns them on append without
//! touching the CRC. Everything from attributes on is covered, so changing
//! those fields needs [`update_crc`].
//!
//! Callers pass the bytes of one batch (as returned by
//! [`RecordBatch::as_bytes`](super::RecordBatch::as_bytes) or a range of a
//! buffer known to hold a batch); the functions assert the header fits.

use super::{
    ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET, CRC_OFFSET, MAX_TIMESTAMP_OFFSET,
    PARTITION_LEADER_EPOCH_OFFSET, RECORD_BATCH_OVERHEAD,
};
use crate::batch::Attributes;
use crate::types::{LeaderEpoch, Offset};

fn header_mut(batch: &mut [u8]) -> &mut [u8] {
    assert!(
        batch.len() >= RECORD_BATCH_OVERHEAD,
        "patching a {} byte slice that cannot hold a batch header",
        batch.len()
    );
    batch
}

/// Sets baseOffset. The CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: Offset) {
    header_mut(batch)[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8]
        .copy_from_slice(&base_offset.0.to_be_bytes());
}

/// Sets partitionLeaderEpoch. The CRC stays valid.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: LeaderEpoch) {
    header_mut(batch)[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.0.to_be_bytes());
}

/// For topics with `message.timestamp.type=LogAppendTime`: marks the batch
/// LogAppendTime and sets maxTimestamp to the broker's clock, as Kafka's
/// LogValidator does, then recomputes the CRC (both fields are covered).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let header = header_mut(batch);
    let attributes = i16::from_be_bytes([header[ATTRIBUTES_OFFSET], header[ATTRIBUTES_OFFSET + 1]])
        | Attributes::TIMESTAMP_TYPE_BIT;
    header[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    header[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    update_crc(header);
}

/// Recomputes and stores the CRC-32C of attributes..end.
pub fn update_crc(batch: &mut [u8]) {
    let header = header_mut(batch);
    let crc = crc32c::crc32c(&header[ATTRIBUTES_OFFSET..]);
    header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::{BatchBuilder, RecordBatch, TimestampType};
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new();
        b.append(10, None, Some(b"a"), &[]);
        b.append(20, None, Some(b"b"), &[]);
        b.build()
    }

    #[test]
    fn base_offset_and_epoch_keep_the_crc_valid() {
        let mut bytes = sample();
        let crc_before = RecordBatch::new(&bytes).expect("valid").crc();
        set_base_offset(&mut bytes, Offset(1_000_000));
        set_partition_leader_epoch(&mut bytes, LeaderEpoch(42));
        let batch = RecordBatch::new(&bytes).expect("valid");
        assert_eq!(batch.base_offset(), Offset(1_000_000));
        assert_eq!(batch.last_offset(), Offset(1_000_001));
        assert_eq!(batch.partition_leader_epoch(), LeaderEpoch(42));
        assert_eq!(batch.crc(), crc_before);
        assert!(batch.is_crc_valid());
    }

    #[test]
    fn log_append_time_updates_type_timestamp_and_crc() {
        let mut bytes = sample();
        set_log_append_time(&mut bytes, 123_456);
        let batch = RecordBatch::new(&bytes).expect("valid");
        assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(batch.max_timestamp(), 123_456);
        assert!(batch.is_crc_valid());
    }

    #[test]
    #[should_panic(expected = "cannot hold a batch header")]
    fn short_slice_is_a_caller_bug() {
        set_base_offset(&mut [0u8; 10], Offset(1));
    }
}
