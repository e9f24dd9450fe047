//! The checks Kafka applies to a client's produce before appending, in
//! Kafka's order, so a bad request gets the error code Kafka would give:
//!
//! 1. `ProduceRequest.validateRecords` (request level): at least one
//!    batch, magic 2, zstd only from produce v7, exactly one batch.
//! 2. `UnifiedLog.analyzeAndValidateRecords`: baseOffset 0, CRC, size
//!    within `max.message.bytes`.
//! 3. `LogValidator.validateBatch`: lastOffsetDelta >= 0, count >= 1,
//!    count == lastOffsetDelta + 1, no control batch, a sequence when
//!    there is a producer id.
//! 4. Record level: producers may not claim LogAppendTime; optionally, in
//!    one walk over the records of an uncompressed batch: structure,
//!    offset deltas, keys for compacted topics, and the
//!    `message.timestamp.{before,after}.max.ms` bounds.
//!
//! Compressed batches are not decompressed, so their records are not
//! walked (Kafka checks them while it decompresses); the CRC still
//! guarantees the bytes are what the producer sent, and the timestamp
//! bounds are applied to the header's base and max timestamps, which are
//! timestamps of real records: sound, though weaker than a full walk.

use super::records::check_offset_delta;
use super::{BatchError, Compression, RecordBatch, TimestampType};

/// Kafka's "no timestamp" value, which no bound applies to.
const NO_TIMESTAMP: i64 = -1;

/// Limits and switches for [`validate_produce_records`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceValidation {
    /// Version of the Produce request the records came in.
    pub produce_version: i16,
    /// The topic's `max.message.bytes`, judged against the whole batch.
    pub max_message_bytes: usize,
    /// Walk the records of uncompressed batches (structure, count, offset
    /// deltas). Costs a pass over the record headers; see the protocol
    /// bench for the price.
    pub check_records: bool,
    /// The topic is compacted (`cleanup.policy=compact`): every record
    /// needs a key, as Kafka's `LogValidator.validateKey` demands. Checked
    /// during the record walk, so only for uncompressed batches.
    pub require_keys: bool,
    /// For CreateTime topics: how far record timestamps may lie from the
    /// broker's clock. `None` skips the check (LogAppendTime topics, or
    /// both limits at Kafka's "unlimited").
    pub timestamp_bounds: Option<TimestampBounds>,
}

/// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`
/// (KIP-937) around the broker's clock at validation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampBounds {
    pub now_ms: i64,
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

impl TimestampBounds {
    fn check(&self, timestamp_ms: i64, index: Option<usize>) -> Result<(), BatchError> {
        if timestamp_ms == NO_TIMESTAMP {
            return Ok(());
        }
        let low_ms = self.now_ms.saturating_sub(self.before_max_ms);
        let high_ms = self.now_ms.saturating_add(self.after_max_ms);
        if (low_ms..=high_ms).contains(&timestamp_ms) {
            Ok(())
        } else {
            Err(BatchError::TimestampOutOfRange {
                index,
                timestamp_ms,
                low_ms,
                high_ms,
            })
        }
    }
}

impl ProduceValidation {
    /// Kafka's defaults: `max.message.bytes` 1048588, records checked.
    pub fn new(produce_version: i16) -> Self {
        Self {
            produce_version,
            max_message_bytes: 1_048_588,
            check_records: true,
            require_keys: false,
            timestamp_bounds: None,
        }
    }
}

/// Validates the `records` field of one partition of a client's produce
/// and returns the batch view, ready for offset assignment with
/// [`patch`](super::patch).
pub fn validate_produce_records<'a>(
    records: &'a [u8],
    config: &ProduceValidation,
) -> Result<RecordBatch<'a>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::NoBatches);
    }
    let (batch, rest) = RecordBatch::parse(records)?;
    if batch.compression() == Some(Compression::Zstd) && config.produce_version < 7 {
        return Err(BatchError::ZstdBeforeProduceV7 {
            produce_version: config.produce_version,
        });
    }
    if !rest.is_empty() {
        return Err(BatchError::MultipleBatches);
    }
    validate_client_batch(&batch, config)?;
    Ok(batch)
}

/// Steps 2-4 for one batch a client sent.
pub fn validate_client_batch(
    batch: &RecordBatch<'_>,
    config: &ProduceValidation,
) -> Result<(), BatchError> {
    let base_offset = batch.base_offset().0;
    if base_offset != 0 {
        return Err(BatchError::NonZeroBaseOffset { base_offset });
    }
    let computed = batch.compute_crc();
    if batch.crc() != computed {
        return Err(BatchError::CrcMismatch {
            stored: batch.crc(),
            computed,
        });
    }
    if batch.size_bytes() > config.max_message_bytes {
        return Err(BatchError::TooLarge {
            size: batch.size_bytes(),
            max_bytes: config.max_message_bytes,
        });
    }
    validate_header_rules(batch)?;
    if batch.timestamp_type() == TimestampType::LogAppendTime {
        return Err(BatchError::LogAppendTimeFromClient);
    }
    let compression = batch.compression().ok_or(BatchError::UnknownCompression {
        codec: batch.attributes().compression_id(),
    })?;
    if config.check_records && compression == Compression::None {
        walk_records(batch, config)?;
    } else if let Some(bounds) = config.timestamp_bounds {
        bounds.check(batch.base_timestamp(), None)?;
        bounds.check(batch.max_timestamp(), None)?;
    }
    Ok(())
}

/// One pass over an uncompressed batch's records for every record-level
/// rule.
fn walk_records(batch: &RecordBatch<'_>, config: &ProduceValidation) -> Result<(), BatchError> {
    let base_timestamp = batch.base_timestamp();
    for (index, record) in batch.records()?.enumerate() {
        let record = record?;
        check_offset_delta(index, &record)?;
        if config.require_keys && record.key.is_none() {
            return Err(BatchError::MissingKey { index });
        }
        if let Some(bounds) = config.timestamp_bounds {
            let timestamp_ms = base_timestamp.wrapping_add(record.timestamp_delta);
            bounds.check(timestamp_ms, Some(index))?;
        }
    }
    Ok(())
}

/// LogValidator.validateBatch for `AppendOrigin.CLIENT`. These rules read
/// only header fields, so they hold for compressed batches as well.
fn validate_header_rules(batch: &RecordBatch<'_>) -> Result<(), BatchError> {
    let last_offset_delta = batch.last_offset_delta();
    if last_offset_delta < 0 {
        return Err(BatchError::InvalidOffsetRange { last_offset_delta });
    }
    let count = batch.record_count();
    if count <= 0 {
        return Err(BatchError::InvalidRecordCount { count });
    }
    if i64::from(count) != i64::from(last_offset_delta) + 1 {
        return Err(BatchError::CountMismatch {
            count,
            last_offset_delta,
        });
    }
    if batch.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    if batch.has_producer_id() && batch.base_sequence().0 < 0 {
        return Err(BatchError::InvalidSequence {
            producer_id: batch.producer_id().0,
            base_sequence: batch.base_sequence().0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{
        patch, Attributes, BatchBuilder, ATTRIBUTES_OFFSET, BASE_OFFSET_OFFSET,
        BATCH_LENGTH_OFFSET, CRC_OFFSET, LAST_OFFSET_DELTA_OFFSET, MAGIC_OFFSET,
        PRODUCER_ID_OFFSET, RECORDS_COUNT_OFFSET,
    };
    use super::*;
    use crate::error_code::ErrorCode;
    use crate::testkit::Prng;
    use crate::types::{ProducerEpoch, ProducerId, Sequence};

    fn good_batch() -> Vec<u8> {
        let mut b = BatchBuilder::new().producer(ProducerId(9), ProducerEpoch(0), Sequence(0));
        for i in 0..5u8 {
            b.append(1_000 + i64::from(i), Some(&[i]), Some(&[i; 10]), &[]);
        }
        b.build()
    }

    fn put_i32(bytes: &mut [u8], at: usize, value: i32) {
        bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    fn put_i16(bytes: &mut [u8], at: usize, value: i16) {
        bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    fn config() -> ProduceValidation {
        ProduceValidation::new(11)
    }

    #[test]
    fn a_good_batch_passes() {
        let bytes = good_batch();
        let batch = validate_produce_records(&bytes, &config()).expect("valid");
        assert_eq!(batch.record_count(), 5);
    }

    /// One row per rule: how to break a good batch, the error, and the
    /// code Kafka answers with.
    #[test]
    fn table_of_bad_batches() {
        type Mutate = fn(&mut Vec<u8>);
        let rows: &[(&str, Mutate, ErrorCode)] = &[
            (
                "bad crc",
                |b| b[CRC_OFFSET] ^= 0xff,
                ErrorCode::CorruptMessage,
            ),
            (
                "flipped payload bit",
                |b| {
                    let last = b.len() - 1;
                    b[last] ^= 1;
                },
                ErrorCode::CorruptMessage,
            ),
            ("magic 1", |b| b[MAGIC_OFFSET] = 1, ErrorCode::InvalidRecord),
            ("magic 3", |b| b[MAGIC_OFFSET] = 3, ErrorCode::InvalidRecord),
            (
                "length longer than slice",
                |b| {
                    let len = (b.len() - 12 + 1) as i32;
                    put_i32(b, BATCH_LENGTH_OFFSET, len);
                },
                ErrorCode::CorruptMessage,
            ),
            (
                "length shorter than slice",
                |b| {
                    let len = (b.len() - 12 - 1) as i32;
                    put_i32(b, BATCH_LENGTH_OFFSET, len);
                },
                // The rest looks like a second, truncated batch.
                ErrorCode::InvalidRecord,
            ),
            (
                "length below header size",
                |b| put_i32(b, BATCH_LENGTH_OFFSET, 10),
                ErrorCode::CorruptMessage,
            ),
            (
                "negative length",
                |b| put_i32(b, BATCH_LENGTH_OFFSET, -5),
                ErrorCode::CorruptMessage,
            ),
            (
                "truncated",
                |b| b.truncate(b.len() - 3),
                ErrorCode::CorruptMessage,
            ),
            ("empty", |b| b.clear(), ErrorCode::InvalidRecord),
            (
                "two batches",
                |b| {
                    let copy = b.clone();
                    b.extend_from_slice(&copy);
                },
                ErrorCode::InvalidRecord,
            ),
            (
                "nonzero base offset",
                |b| b[BASE_OFFSET_OFFSET + 7] = 1,
                ErrorCode::InvalidRecord,
            ),
            (
                "count mismatch",
                |b| {
                    put_i32(b, RECORDS_COUNT_OFFSET, 4);
                    patch::update_crc(b);
                },
                ErrorCode::InvalidRecord,
            ),
            (
                "zero count",
                |b| {
                    put_i32(b, RECORDS_COUNT_OFFSET, 0);
                    patch::update_crc(b);
                },
                ErrorCode::InvalidRecord,
            ),
            (
                "negative last offset delta",
                |b| {
                    put_i32(b, LAST_OFFSET_DELTA_OFFSET, -1);
                    patch::update_crc(b);
                },
                ErrorCode::InvalidRecord,
            ),
            (
                "control batch",
                |b| {
                    put_i16(b, ATTRIBUTES_OFFSET, Attributes::CONTROL_BIT);
                    patch::update_crc(b);
                },
                ErrorCode::InvalidRecord,
            ),
            (
                "producer id without sequence",
                |b| {
                    put_i32(b, super::super::BASE_SEQUENCE_OFFSET, -1);
                    patch::update_crc(b);
                },
                ErrorCode::InvalidRecord,
            ),
            (
                "log append time from client",
                |b| {
                    put_i16(b, ATTRIBUTES_OFFSET, Attributes::TIMESTAMP_TYPE_BIT);
                    patch::update_crc(b);
                },
                ErrorCode::InvalidTimestamp,
            ),
            (
                "unknown codec",
                |b| {
                    put_i16(b, ATTRIBUTES_OFFSET, 6);
                    patch::update_crc(b);
                },
                ErrorCode::InvalidRecord,
            ),
            (
                "record body damaged under a valid crc",
                |b| {
                    // First record's length varint: claim one byte more.
                    b[super::super::RECORD_BATCH_OVERHEAD] += 2;
                    patch::update_crc(b);
                },
                ErrorCode::InvalidRecord,
            ),
        ];
        for (name, mutate, code) in rows {
            let mut bytes = good_batch();
            mutate(&mut bytes);
            let err = validate_produce_records(&bytes, &config())
                .expect_err(&format!("{name} must be refused"));
            assert_eq!(err.error_code(), *code, "{name}: {err}");
        }
    }

    #[test]
    fn too_large_for_max_message_bytes() {
        let bytes = good_batch();
        let config = ProduceValidation {
            max_message_bytes: bytes.len() - 1,
            ..config()
        };
        assert_eq!(
            validate_produce_records(&bytes, &config).map(|b| b.size_bytes()),
            Err(BatchError::TooLarge {
                size: bytes.len(),
                max_bytes: bytes.len() - 1
            })
        );
    }

    #[test]
    fn compacted_topics_need_keys() {
        let mut b = BatchBuilder::new();
        b.append(1, Some(b"k"), Some(b"v"), &[]);
        b.append(2, None, Some(b"v"), &[]);
        let bytes = b.build();
        let compacted = ProduceValidation {
            require_keys: true,
            ..config()
        };
        let err = validate_produce_records(&bytes, &compacted).unwrap_err();
        assert_eq!(err, BatchError::MissingKey { index: 1 });
        assert_eq!(err.error_code(), ErrorCode::InvalidRecord);
        assert_eq!(err.record_index(), Some(1));
        assert!(validate_produce_records(&bytes, &config()).is_ok());
    }

    #[test]
    fn timestamps_outside_the_bounds_are_refused() {
        let now = 1_700_000_000_000;
        let hour = 3_600_000;
        let mut b = BatchBuilder::new();
        b.append(now - 10, None, Some(b"a"), &[]);
        b.append(now + 2 * hour, None, Some(b"b"), &[]);
        let bytes = b.build();
        let bounded = ProduceValidation {
            timestamp_bounds: Some(TimestampBounds {
                now_ms: now,
                before_max_ms: i64::MAX,
                after_max_ms: hour,
            }),
            ..config()
        };
        let err = validate_produce_records(&bytes, &bounded).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::InvalidTimestamp);
        assert_eq!(err.record_index(), Some(1));
        assert!(validate_produce_records(&bytes, &config()).is_ok());

        // A compressed batch is judged by its header timestamps.
        let mut compressed = bytes.clone();
        put_i16(&mut compressed, ATTRIBUTES_OFFSET, Compression::Lz4 as i16);
        patch::update_crc(&mut compressed);
        let err = validate_produce_records(&compressed, &bounded).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::InvalidTimestamp);

        // No timestamp (-1) is never out of range.
        let mut b = BatchBuilder::new();
        b.append(-1, None, Some(b"a"), &[]);
        assert!(validate_produce_records(&b.build(), &bounded).is_ok());
    }

    #[test]
    fn zstd_needs_produce_v7() {
        let mut bytes = good_batch();
        put_i16(&mut bytes, ATTRIBUTES_OFFSET, Compression::Zstd as i16);
        patch::update_crc(&mut bytes);
        let err = validate_produce_records(&bytes, &ProduceValidation::new(6)).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::UnsupportedCompressionType);
        // From v7 the header passes; the compressed payload is not opened.
        assert!(validate_produce_records(&bytes, &ProduceValidation::new(7)).is_ok());
    }

    #[test]
    fn non_idempotent_batch_needs_no_sequence() {
        let mut bytes = good_batch();
        bytes[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&(-1i64).to_be_bytes());
        put_i32(&mut bytes, super::super::BASE_SEQUENCE_OFFSET, -1);
        patch::update_crc(&mut bytes);
        assert!(validate_produce_records(&bytes, &config()).is_ok());
    }

    #[test]
    fn random_damage_never_panics_and_never_passes_unnoticed() {
        let good = good_batch();
        let mut rng = Prng::new(0x5eed_0201);
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            if rng.chance(1, 4) {
                bytes.truncate(rng.below(bytes.len() as u64) as usize);
            }
            let result = validate_produce_records(&bytes, &config());
            // Flips in the CRC'd range always change the CRC (CRC-32C
            // detects every burst of up to 32 bits, and up to 4 flips); a
            // flip before it changes baseOffset, length, epoch or magic,
            // of which only the epoch may legitimately pass.
            if result.is_ok() {
                assert_eq!(
                    bytes[..12],
                    good[..12],
                    "seed {} accepted a damaged batch",
                    rng.seed()
                );
                assert_eq!(bytes[16..], good[16..], "seed {}", rng.seed());
            }
        }
    }
}
