//! RecordBatch v2 (magic 2), the unit Kafka stores and serves: a 61-byte
//! header followed by records, CRC-32C protected from `attributes` to the
//! end.
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            \ not covered by the CRC: the broker
//!      8     4  batchLength           | rewrites baseOffset and
//!     12     4  partitionLeaderEpoch  / partitionLeaderEpoch in place
//!     16     1  magic (2)
//!     17     4  crc (CRC-32C of bytes 21..end)
//!     21     2  attributes
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  records count
//!     61     -  records
//! ```
//!
//! [`RecordBatch`] is a borrowed view with accessors; [`batches`] splits a
//! blob of concatenated batches; [`validate`] applies the checks Kafka makes
//! on a client's produce; [`patch`] rewrites header fields in place;
//! [`records`] iterates the records of an uncompressed batch; [`builder`]
//! encodes one.

pub mod builder;
pub mod patch;
pub mod records;
pub mod validate;

use thiserror::Error;

use crate::error_code::ErrorCode;
use crate::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Sequence};

pub use builder::BatchBuilder;
pub use records::{Header, Record, Records};
pub use validate::{
    validate_client_batch, validate_produce_records, ProduceValidation, TimestampBounds,
};

/// The only magic (format version) Ringtail stores.
pub const MAGIC_V2: i8 = 2;
/// baseOffset + batchLength: the bytes before `batchLength` starts counting.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header; the smallest valid batch (no records).
pub const RECORD_BATCH_OVERHEAD: usize = 61;

pub(crate) const BASE_OFFSET_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH_OFFSET: usize = 8;
pub(crate) const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub(crate) const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub(crate) const BASE_TIMESTAMP_OFFSET: usize = 27;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;
pub(crate) const PRODUCER_ID_OFFSET: usize = 43;
pub(crate) const PRODUCER_EPOCH_OFFSET: usize = 51;
pub(crate) const BASE_SEQUENCE_OFFSET: usize = 53;
pub(crate) const RECORDS_COUNT_OFFSET: usize = 57;

const _: () = assert!(RECORDS_COUNT_OFFSET + 4 == RECORD_BATCH_OVERHEAD);
const _: () = assert!(CRC_OFFSET + 4 == ATTRIBUTES_OFFSET);
const _: () = assert!(BATCH_LENGTH_OFFSET + 4 == LOG_OVERHEAD);

/// Why a batch (or a produce's records) is refused. Each variant maps to
/// the error code Kafka answers with, see [`BatchError::error_code`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    /// The bytes end inside a batch header or before `batchLength` says.
    #[error("truncated record batch: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    /// `batchLength` is smaller than a v2 header.
    #[error("record batch length {batch_length} is smaller than the minimum {RECORD_BATCH_OVERHEAD} byte batch")]
    InvalidBatchLength { batch_length: i32 },
    #[error("record batch magic {magic} is not supported; only magic 2 is")]
    UnsupportedMagic { magic: i8 },
    #[error("record batch is corrupt: stored crc {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("produce request carries no record batch for the partition")]
    NoBatches,
    #[error("produce request carries more than one record batch for the partition")]
    MultipleBatches,
    #[error("base offset of a produced batch must be 0, is {base_offset}")]
    NonZeroBaseOffset { base_offset: i64 },
    #[error("invalid offset range: lastOffsetDelta {last_offset_delta}")]
    InvalidOffsetRange { last_offset_delta: i32 },
    #[error("invalid record count {count}")]
    InvalidRecordCount { count: i32 },
    #[error("record count {count} does not match lastOffsetDelta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("clients may not write control batches")]
    ControlBatchFromClient,
    #[error("invalid base sequence {base_sequence} for producer id {producer_id}")]
    InvalidSequence {
        producer_id: i64,
        base_sequence: i32,
    },
    #[error("producers may not set the LogAppendTime timestamp type")]
    LogAppendTimeFromClient,
    #[error("unknown compression codec {codec}")]
    UnknownCompression { codec: u8 },
    #[error("zstd compression needs produce version 7 or later, request is v{produce_version}")]
    ZstdBeforeProduceV7 { produce_version: i16 },
    #[error("record batch of {size} bytes is larger than max.message.bytes {max_bytes}")]
    TooLarge { size: usize, max_bytes: usize },
    /// A record inside an uncompressed batch is malformed.
    #[error("invalid record structure at record {index}: {reason}")]
    InvalidRecord { index: usize, reason: String },
    /// A record's timestamp lies outside `message.timestamp.before.max.ms`
    /// / `after.max.ms` of the broker's clock. `index` is `None` when a
    /// compressed batch's header timestamps gave it away.
    #[error("timestamp {timestamp_ms} of record {index:?} is outside [{low_ms}, {high_ms}]")]
    TimestampOutOfRange {
        index: Option<usize>,
        timestamp_ms: i64,
        low_ms: i64,
        high_ms: i64,
    },
    /// A compacted topic got a record without a key.
    #[error("record {index} has no key, which a compacted topic requires")]
    MissingKey { index: usize },
    /// Records were asked of a compressed batch; this crate does not
    /// decompress.
    #[error("records of a {compression:?} batch cannot be read without decompressing")]
    Compressed { compression: Compression },
}

impl BatchError {
    /// The code Kafka answers a produce with for this error. CRC and
    /// framing damage is CORRUPT_MESSAGE (retriable: the bytes may have
    /// been damaged in flight); a batch that is well-formed but breaks a
    /// rule is INVALID_RECORD (not retriable), as in Kafka's
    /// `ProduceRequest.validateRecords`, `UnifiedLog` and `LogValidator`.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BatchError::Truncated { .. }
            | BatchError::InvalidBatchLength { .. }
            | BatchError::CrcMismatch { .. } => ErrorCode::CorruptMessage,
            // Kafka 4 answers magic 0/1 on produce v3+ with INVALID_RECORD
            // (it no longer up-converts old formats).
            BatchError::UnsupportedMagic { .. }
            | BatchError::NoBatches
            | BatchError::MultipleBatches
            | BatchError::NonZeroBaseOffset { .. }
            | BatchError::InvalidOffsetRange { .. }
            | BatchError::InvalidRecordCount { .. }
            | BatchError::CountMismatch { .. }
            | BatchError::ControlBatchFromClient
            | BatchError::InvalidSequence { .. }
            | BatchError::UnknownCompression { .. }
            | BatchError::InvalidRecord { .. }
            | BatchError::MissingKey { .. } => ErrorCode::InvalidRecord,
            BatchError::LogAppendTimeFromClient | BatchError::TimestampOutOfRange { .. } => {
                ErrorCode::InvalidTimestamp
            }
            BatchError::ZstdBeforeProduceV7 { .. } | BatchError::Compressed { .. } => {
                ErrorCode::UnsupportedCompressionType
            }
            BatchError::TooLarge { .. } => ErrorCode::MessageTooLarge,
        }
    }
}

impl BatchError {
    /// For errors about one record, its index in the batch: what a v8+
    /// Produce response reports in `record_errors.batch_index`.
    pub fn record_index(&self) -> Option<usize> {
        match self {
            BatchError::InvalidRecord { index, .. } | BatchError::MissingKey { index } => {
                Some(*index)
            }
            BatchError::TimestampOutOfRange { index, .. } => *index,
            _ => None,
        }
    }
}

/// Compression codec, attributes bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Timestamp type, attributes bit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The batch attributes word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attributes(pub i16);

impl Attributes {
    pub const COMPRESSION_MASK: i16 = 0x07;
    pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
    pub const TRANSACTIONAL_BIT: i16 = 0x10;
    pub const CONTROL_BIT: i16 = 0x20;
    pub const DELETE_HORIZON_BIT: i16 = 0x40;

    /// The raw codec id (0-7); ids above 4 are not defined by Kafka.
    pub fn compression_id(self) -> u8 {
        (self.0 & Self::COMPRESSION_MASK) as u8
    }

    pub fn compression(self) -> Option<Compression> {
        Compression::from_id(self.compression_id())
    }

    pub fn timestamp_type(self) -> TimestampType {
        if self.0 & Self::TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(self) -> bool {
        self.0 & Self::TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(self) -> bool {
        self.0 & Self::CONTROL_BIT != 0
    }

    pub fn has_delete_horizon(self) -> bool {
        self.0 & Self::DELETE_HORIZON_BIT != 0
    }
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(b)
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}

/// A borrowed view of exactly one magic-2 batch.
///
/// Constructing one checks only the framing: at least a full header,
/// `batchLength` consistent with the slice, magic 2. Accessors therefore
/// never go out of bounds. CRC and content rules are [`validate`]'s job,
/// so a reader that trusts its source (a segment it wrote) can skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Splits the first batch off `input`; returns it and the bytes after
    /// it.
    pub fn parse(input: &'a [u8]) -> Result<(RecordBatch<'a>, &'a [u8]), BatchError> {
        let size = batch_size(input)?;
        let (bytes, rest) = input.split_at(size);
        Ok((RecordBatch { bytes }, rest))
    }

    /// Views `bytes` as one batch; the slice must hold exactly one.
    pub fn new(bytes: &'a [u8]) -> Result<RecordBatch<'a>, BatchError> {
        let (batch, rest) = Self::parse(bytes)?;
        if rest.is_empty() {
            Ok(batch)
        } else {
            Err(BatchError::MultipleBatches)
        }
    }

    /// The whole batch, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Size of the whole batch in bytes (`batchLength` + 12).
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn base_offset(&self) -> Offset {
        Offset(read_i64(self.bytes, BASE_OFFSET_OFFSET))
    }

    pub fn batch_length(&self) -> i32 {
        read_i32(self.bytes, BATCH_LENGTH_OFFSET)
    }

    pub fn partition_leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(read_i32(self.bytes, PARTITION_LEADER_EPOCH_OFFSET))
    }

    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_OFFSET] as i8
    }

    /// The stored CRC.
    pub fn crc(&self) -> u32 {
        read_i32(self.bytes, CRC_OFFSET) as u32
    }

    /// CRC-32C of attributes..end, what [`crc`](Self::crc) should be.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }

    pub fn is_crc_valid(&self) -> bool {
        self.crc() == self.compute_crc()
    }

    pub fn attributes(&self) -> Attributes {
        Attributes(read_i16(self.bytes, ATTRIBUTES_OFFSET))
    }

    pub fn compression(&self) -> Option<Compression> {
        self.attributes().compression()
    }

    pub fn timestamp_type(&self) -> TimestampType {
        self.attributes().timestamp_type()
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes().is_transactional()
    }

    pub fn is_control(&self) -> bool {
        self.attributes().is_control()
    }

    pub fn last_offset_delta(&self) -> i32 {
        read_i32(self.bytes, LAST_OFFSET_DELTA_OFFSET)
    }

    /// baseOffset + lastOffsetDelta: the offset of the batch's last record.
    pub fn last_offset(&self) -> Offset {
        Offset(
            self.base_offset()
                .0
                .wrapping_add(i64::from(self.last_offset_delta())),
        )
    }

    /// The offset after this batch (what the log end offset becomes).
    pub fn next_offset(&self) -> Offset {
        Offset(self.last_offset().0.wrapping_add(1))
    }

    pub fn base_timestamp(&self) -> i64 {
        read_i64(self.bytes, BASE_TIMESTAMP_OFFSET)
    }

    pub fn max_timestamp(&self) -> i64 {
        read_i64(self.bytes, MAX_TIMESTAMP_OFFSET)
    }

    pub fn producer_id(&self) -> ProducerId {
        ProducerId(read_i64(self.bytes, PRODUCER_ID_OFFSET))
    }

    /// Whether the batch is idempotent or transactional (Kafka's
    /// `hasProducerId`: producerId > -1).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id().0 > ProducerId::NONE.0
    }

    pub fn producer_epoch(&self) -> ProducerEpoch {
        ProducerEpoch(read_i16(self.bytes, PRODUCER_EPOCH_OFFSET))
    }

    pub fn base_sequence(&self) -> Sequence {
        Sequence(read_i32(self.bytes, BASE_SEQUENCE_OFFSET))
    }

    /// The sequence of the last record, wrapping at i32::MAX as Kafka's
    /// `DefaultRecordBatch.incrementSequence` does.
    pub fn last_sequence(&self) -> Sequence {
        let base = self.base_sequence().0;
        if base == Sequence::NONE.0 {
            return Sequence::NONE;
        }
        let delta = self.last_offset_delta();
        let sum = i64::from(base) + i64::from(delta);
        Sequence(if sum > i64::from(i32::MAX) {
            (sum - i64::from(i32::MAX) - 1) as i32
        } else {
            sum as i32
        })
    }

    pub fn record_count(&self) -> i32 {
        read_i32(self.bytes, RECORDS_COUNT_OFFSET)
    }

    /// The records section (compressed or not).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[RECORD_BATCH_OVERHEAD..]
    }
}

/// Reads the framing of the batch at the start of `input` and returns its
/// total size.
fn batch_size(input: &[u8]) -> Result<usize, BatchError> {
    if input.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: LOG_OVERHEAD,
            available: input.len(),
        });
    }
    let batch_length = read_i32(input, BATCH_LENGTH_OFFSET);
    // The magic byte decides the layout, so it is judged before the v2
    // minimum size: an old-format message set is smaller than 61 bytes
    // and deserves "unsupported magic", not "too small".
    if input.len() > MAGIC_OFFSET && batch_length > (MAGIC_OFFSET - LOG_OVERHEAD) as i32 {
        let magic = input[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
    }
    let size = usize::try_from(batch_length)
        .ok()
        .and_then(|n| n.checked_add(LOG_OVERHEAD))
        .filter(|&n| n >= RECORD_BATCH_OVERHEAD)
        .ok_or(BatchError::InvalidBatchLength { batch_length })?;
    if input.len() < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: input.len(),
        });
    }
    Ok(size)
}

/// Splits a blob of concatenated batches (a segment slice, a replication
/// fetch, a multi-batch records field) into batches.
pub fn batches(blob: &[u8]) -> Batches<'_> {
    Batches { rest: blob }
}

/// Iterator returned by [`batches`]. It yields each batch in order and
/// stops after the first error (the framing after a bad batch cannot be
/// trusted).
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    rest: &'a [u8],
}

impl<'a> Batches<'a> {
    /// The bytes not yet split off.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<RecordBatch<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RecordBatch::parse(self.rest) {
            Ok((batch, rest)) => {
                self.rest = rest;
                Some(Ok(batch))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new()
            .producer(ProducerId(77), ProducerEpoch(3), Sequence(10))
            .transactional(true);
        b.append(1_000, Some(b"k1"), Some(b"v1"), &[]);
        b.append(1_005, None, Some(b"v2"), &[(b"h", Some(b"x"))]);
        b.append(999, Some(b"k3"), None, &[]);
        b.build()
    }

    #[test]
    fn accessors_read_the_header() {
        let bytes = sample();
        let batch = RecordBatch::new(&bytes).expect("valid batch");
        assert_eq!(batch.base_offset(), Offset(0));
        assert_eq!(batch.batch_length() as usize, bytes.len() - LOG_OVERHEAD);
        assert_eq!(batch.partition_leader_epoch(), LeaderEpoch(-1));
        assert_eq!(batch.magic(), 2);
        assert!(batch.is_crc_valid());
        assert_eq!(batch.compression(), Some(Compression::None));
        assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
        assert!(batch.is_transactional());
        assert!(!batch.is_control());
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.last_offset(), Offset(2));
        assert_eq!(batch.next_offset(), Offset(3));
        assert_eq!(batch.base_timestamp(), 1_000);
        assert_eq!(batch.max_timestamp(), 1_005);
        assert_eq!(batch.producer_id(), ProducerId(77));
        assert!(batch.has_producer_id());
        assert_eq!(batch.producer_epoch(), ProducerEpoch(3));
        assert_eq!(batch.base_sequence(), Sequence(10));
        assert_eq!(batch.last_sequence(), Sequence(12));
        assert_eq!(batch.record_count(), 3);
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        let mut b =
            BatchBuilder::new().producer(ProducerId(1), ProducerEpoch(0), Sequence(i32::MAX));
        b.append(0, None, Some(b"a"), &[]);
        b.append(0, None, Some(b"b"), &[]);
        let bytes = b.build();
        let batch = RecordBatch::new(&bytes).expect("valid batch");
        assert_eq!(batch.last_sequence(), Sequence(0));
    }

    #[test]
    fn attributes_decode_every_bit() {
        let a = Attributes(0x04 | 0x08 | 0x20 | 0x40);
        assert_eq!(a.compression(), Some(Compression::Zstd));
        assert_eq!(a.timestamp_type(), TimestampType::LogAppendTime);
        assert!(!a.is_transactional());
        assert!(a.is_control());
        assert!(a.has_delete_horizon());
        assert_eq!(Attributes(0x05).compression(), None);
        for (id, codec) in [
            (1, Compression::Gzip),
            (2, Compression::Snappy),
            (3, Compression::Lz4),
        ] {
            assert_eq!(Attributes(id).compression(), Some(codec));
        }
    }

    #[test]
    fn splits_concatenated_batches() {
        let one = sample();
        let mut blob = one.clone();
        blob.extend_from_slice(&one);
        blob.extend_from_slice(&one);
        let all: Vec<_> = batches(&blob)
            .collect::<Result<_, _>>()
            .expect("valid blob");
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|b| b.as_bytes() == one.as_slice()));
        assert_eq!(batches(&[]).count(), 0);
    }

    #[test]
    fn split_stops_at_a_truncated_tail() {
        let one = sample();
        let mut blob = one.clone();
        blob.extend_from_slice(&one[..one.len() - 1]);
        let mut it = batches(&blob);
        assert!(it.next().expect("first").is_ok());
        assert_eq!(
            it.next().expect("second"),
            Err(BatchError::Truncated {
                needed: one.len(),
                available: one.len() - 1
            })
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn framing_errors() {
        let one = sample();
        assert!(matches!(
            RecordBatch::new(&one[..5]),
            Err(BatchError::Truncated { .. })
        ));
        let mut short = one.clone();
        short[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(
            RecordBatch::new(&short),
            Err(BatchError::InvalidBatchLength { batch_length: 48 })
        );
        short[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            RecordBatch::new(&short),
            Err(BatchError::InvalidBatchLength { batch_length: -1 })
        );
        let mut old = one.clone();
        old[MAGIC_OFFSET] = 1;
        assert_eq!(
            RecordBatch::new(&old),
            Err(BatchError::UnsupportedMagic { magic: 1 })
        );
        let mut trailing = one.clone();
        trailing.push(0);
        assert!(RecordBatch::new(&trailing).is_err());
    }

    /// Random and damaged input through every reader of this module:
    /// errors are fine, panics are not.
    #[test]
    fn damaged_blobs_never_panic() {
        let mut rng = crate::testkit::Prng::new(0x5eed_0601);
        let good = {
            let mut blob = sample();
            blob.extend_from_slice(&sample());
            blob
        };
        for round in 0..20_000 {
            let mut bytes = if round % 4 == 0 {
                rng.bytes(200)
            } else {
                good.clone()
            };
            for _ in 0..rng.below(6) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
            bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
            for batch in batches(&bytes).flatten() {
                let _ = batch.last_sequence();
                let _ = batch.check_records();
                if let Ok(records) = batch.records() {
                    for record in records.flatten() {
                        let _ = record.headers().count();
                    }
                }
            }
        }
    }

    #[test]
    fn error_codes_follow_kafka() {
        assert_eq!(
            BatchError::CrcMismatch {
                stored: 1,
                computed: 2
            }
            .error_code(),
            ErrorCode::CorruptMessage
        );
        assert_eq!(
            BatchError::NonZeroBaseOffset { base_offset: 5 }.error_code(),
            ErrorCode::InvalidRecord
        );
        assert_eq!(
            BatchError::TooLarge {
                size: 2,
                max_bytes: 1
            }
            .error_code(),
            ErrorCode::MessageTooLarge
        );
    }
}
