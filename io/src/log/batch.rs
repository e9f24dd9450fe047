//! The RecordBatch v2 header as the storage layer sees it.
//!
//! The log stores batches exactly as they are served, so it only needs the
//! fixed 61-byte header: lengths and offsets to place and find batches, the
//! CRC-32C to validate them during recovery, timestamps for the time index.

use thiserror::Error;

/// Bytes before `batchLength`'s payload: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// The whole fixed header, up to and including the records count.
pub const HEADER_BYTES: usize = 61;
/// The CRC covers everything from the attributes to the end of the batch.
const CRC_START: usize = 21;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const LAST_OFFSET_DELTA: usize = 23;
const MAX_TIMESTAMP: usize = 35;
const RECORDS_COUNT: usize = 57;

const _: () = assert!(RECORDS_COUNT + 4 == HEADER_BYTES);
const _: () = assert!(BATCH_LENGTH + 4 == LOG_OVERHEAD);

/// Why bytes are not a well-formed batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("{available} bytes cannot hold a batch header of {HEADER_BYTES} bytes")]
    Truncated { available: usize },
    #[error("batch length {length} is below the minimum header size")]
    LengthTooSmall { length: i32 },
    #[error("batch claims {claimed} bytes but {available} are present")]
    LengthMismatch { claimed: usize, available: usize },
    #[error("magic byte {0} is not 2 (only RecordBatch v2 is stored)")]
    UnsupportedMagic(i8),
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("last offset delta {0} is negative")]
    NegativeOffsetDelta(i32),
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// Decoded fixed header fields the log uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch size on disk, log overhead included.
    pub size: usize,
    pub leader_epoch: i32,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub records_count: i32,
    pub crc: u32,
}

impl BatchHeader {
    /// Parses the header at the start of `bytes` (which may hold only the
    /// header or more). Checks what the header alone can prove.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                available: bytes.len(),
            });
        }
        let length = i32_at(bytes, BATCH_LENGTH);
        if length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
            return Err(BatchError::LengthTooSmall { length });
        }
        let magic = bytes[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let last_offset_delta = i32_at(bytes, LAST_OFFSET_DELTA);
        if last_offset_delta < 0 {
            return Err(BatchError::NegativeOffsetDelta(last_offset_delta));
        }
        Ok(BatchHeader {
            base_offset: i64_at(bytes, BASE_OFFSET),
            size: LOG_OVERHEAD + length as usize,
            leader_epoch: i32_at(bytes, LEADER_EPOCH),
            last_offset_delta,
            max_timestamp: i64_at(bytes, MAX_TIMESTAMP),
            records_count: i32_at(bytes, RECORDS_COUNT),
            crc: i32_at(bytes, CRC) as u32,
        })
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
}

/// Parses a header and checks the batch is exactly `bytes` long.
pub fn parse_exact(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.size != bytes.len() {
        return Err(BatchError::LengthMismatch {
            claimed: header.size,
            available: bytes.len(),
        });
    }
    Ok(header)
}

/// Verifies the CRC-32C of a whole batch (header already parsed).
pub fn verify_crc(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    debug_assert_eq!(batch.len(), header.size);
    let computed = crc32c::crc32c(&batch[CRC_START..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Rewrites the fields the broker assigns. Neither is covered by the CRC.
pub fn assign(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Builds a valid uncompressed batch of `values` (null keys), for tests,
/// tools and benchmarks of the storage layer.
pub fn build(base_offset: i64, timestamp_ms: i64, values: &[&[u8]]) -> Vec<u8> {
    assert!(!values.is_empty(), "a batch holds at least one record");
    let mut records = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = Vec::with_capacity(HEADER_BYTES + records.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    let length = (HEADER_BYTES - LOG_OVERHEAD + records.len()) as i32;
    b.extend_from_slice(&length.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&[0; 4]); // crc, filled below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&((values.len() - 1) as i32).to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&(values.len() as i32).to_be_bytes());
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_parses_and_verifies() {
        let mut b = build(0, 1_700_000_000_000, &[b"a", b"bc", b"def"]);
        let h = parse_exact(&b).expect("parse");
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.records_count, 3);
        verify_crc(&b, &h).expect("crc");
        assign(&mut b, 42, 7);
        let h = parse_exact(&b).expect("parse");
        assert_eq!(
            (h.base_offset, h.leader_epoch, h.next_offset()),
            (42, 7, 45)
        );
        verify_crc(&b, &h).expect("offset and epoch are outside the crc");
    }

    #[test]
    fn damage_is_reported_precisely() {
        let b = build(0, 0, &[b"x"]);
        assert!(matches!(
            BatchHeader::parse(&b[..20]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            parse_exact(&b[..b.len() - 1]),
            Err(BatchError::LengthMismatch { .. })
        ));
        let mut bad = b.clone();
        bad[16] = 1;
        assert_eq!(
            BatchHeader::parse(&bad),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let h = parse_exact(&bad).expect("header intact");
        assert!(matches!(
            verify_crc(&bad, &h),
            Err(BatchError::CrcMismatch { .. })
        ));
    }
}
