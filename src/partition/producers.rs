//! Idempotent producer state of one partition (sans-IO).
//!
//! Kafka keeps, per producer id, its epoch and the metadata of its last
//! five batches. A batch whose sequence range matches one of them is a
//! retry: it is answered with the first append's offsets and not stored
//! again. Otherwise the first sequence must follow the last one
//! (OUT_OF_ORDER_SEQUENCE_NUMBER), an older epoch is fenced
//! (INVALID_PRODUCER_EPOCH), and a new epoch starts at sequence 0. A
//! producer the partition knows nothing about may start anywhere (its
//! state may have gone with retention or expiry), as in Kafka's
//! ProducerAppendInfo since KIP-360: the broker never answers
//! UNKNOWN_PRODUCER_ID to a produce.
//!
//! # Persistence
//!
//! The state is a function of the log: [`ProducerStates::replay`] applied
//! to every idempotent batch in offset order rebuilds it. Snapshots (see
//! [`super::snapshot`]) save the replay up to an offset so a restart only
//! scans the batches after it. [`ProducerStates::encode`] and
//! [`ProducerStates::decode`] are the snapshot body; the file framing and
//! CRC live with the file code.
//!
//! # Expiry
//!
//! A producer whose last batch is older than `producer.id.expiration.ms`
//! (by the batch's max timestamp, as Kafka's `lastTimestamp`) is dropped by
//! [`ProducerStates::expire`], which bounds the memory. Moving the log
//! start (retention, DeleteRecords) does not drop producers, as in Kafka
//! 3.x (`onLogStartOffsetIncremented` keeps them); only expiry does, and a
//! restart forgets producers whose batches all lie below the log start
//! unless a snapshot at or above the log start remembers them.

use std::collections::{HashMap, VecDeque};

use ringtail_protocol::ErrorCode;
use thiserror::Error;

/// Batches remembered per producer, as Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const BATCHES_RETAINED: usize = 5;

/// Kafka's default `producer.id.expiration.ms` (one day).
pub const EXPIRATION_MS_DEFAULT: i64 = 86_400_000;

/// Bytes of one encoded batch and of one encoded producer without batches.
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;
const ENTRY_BYTES: usize = 8 + 2 + 8 + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    /// Max timestamp of the producer's last batch (Kafka's
    /// `lastTimestamp`), for expiry.
    last_timestamp_ms: i64,
    batches: VecDeque<BatchMeta>,
}

/// One idempotent batch as the state sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
}

/// The outcome of checking a batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it (and `record` it).
    Append,
    /// A retry of a batch already appended at these offsets.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
    },
    Reject(ErrorCode),
}

/// Why snapshot bytes are not a producer state.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("producer state truncated at byte {0}")]
    Truncated(usize),
    #[error("producer {producer_id} has {count} batches (at most {BATCHES_RETAINED})")]
    TooManyBatches { producer_id: i64, count: u8 },
    #[error("producer id {0} appears twice")]
    DuplicateProducer(i64),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, Entry>,
}

/// Kafka's sequences wrap from i32::MAX to 0.
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch of `count` records starting at `first`.
pub fn last_seq(first: i32, count: i32) -> i32 {
    ((i64::from(first) + i64::from(count) - 1) % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStates {
    pub fn check(&self, producer_id: i64, epoch: i16, first_seq: i32, last_seq: i32) -> Check {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Check::Append;
        };
        if epoch < entry.epoch {
            return Check::Reject(ErrorCode::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                Check::Append
            } else {
                Check::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Check::Duplicate {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
            };
        }
        match entry.batches.back() {
            Some(last) if next_seq(last.last_seq) != first_seq => {
                Check::Reject(ErrorCode::OutOfOrderSequenceNumber)
            }
            _ => Check::Append,
        }
    }

    /// Remembers a batch being appended (or found in the log: replaying the
    /// log is recording each idempotent batch in offset order, without the
    /// checks, as Kafka's `ValidationType.None`).
    pub fn record(&mut self, b: BatchInfo) {
        debug_assert!(b.last_offset >= b.base_offset);
        let entry = self.producers.entry(b.producer_id).or_default();
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            base_offset: b.base_offset,
            last_offset: b.last_offset,
        });
        entry.last_timestamp_ms = b.max_timestamp_ms;
        debug_assert!(entry.batches.len() <= BATCHES_RETAINED);
    }

    /// Replays a batch read from the log (same as [`Self::record`]).
    pub fn replay(&mut self, b: BatchInfo) {
        self.record(b);
    }

    /// Forgets a batch whose append failed, so the producer may retry it.
    pub fn forget(&mut self, producer_id: i64, first_seq: i32) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.batches.retain(|b| b.first_seq != first_seq);
        }
    }

    /// Drops producers idle for at least `expiration_ms` (Kafka's
    /// `isProducerExpired`: `now - lastTimestamp >= producer.id.expiration.ms`).
    /// Returns how many were dropped.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp_ms) < expiration_ms);
        before - self.producers.len()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The snapshot body: producer count, then per producer (sorted by id,
    /// so equal states encode equally) id, epoch, last timestamp, batch
    /// count and the batches, all big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut ids: Vec<i64> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut out = Vec::with_capacity(4 + ids.len() * (ENTRY_BYTES + 2 * BATCH_BYTES));
        out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let e = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp_ms.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ProducerStates, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        let count = r.u32()? as usize;
        // Each producer takes at least ENTRY_BYTES: a corrupt count cannot
        // make us reserve more than the input could hold.
        let mut producers = HashMap::with_capacity(count.min(bytes.len() / ENTRY_BYTES));
        for _ in 0..count {
            let producer_id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp_ms = r.i64()?;
            let n = r.u8()?;
            if usize::from(n) > BATCHES_RETAINED {
                return Err(DecodeError::TooManyBatches {
                    producer_id,
                    count: n,
                });
            }
            let mut batches = VecDeque::with_capacity(usize::from(n));
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    base_offset: r.i64()?,
                    last_offset: r.i64()?,
                });
            }
            let entry = Entry {
                epoch,
                last_timestamp_ms,
                batches,
            };
            if producers.insert(producer_id, entry).is_some() {
                return Err(DecodeError::DuplicateProducer(producer_id));
            }
        }
        if r.at != bytes.len() {
            return Err(DecodeError::Trailing(bytes.len() - r.at));
        }
        Ok(ProducerStates { producers })
    }

    /// Heap bytes held (approximate), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.producers.capacity() * (8 + std::mem::size_of::<Entry>())
            + self
                .producers
                .values()
                .map(|e| e.batches.capacity() * std::mem::size_of::<BatchMeta>())
                .sum::<usize>()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self.at + N;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(DecodeError::Truncated(self.at))?;
        self.at = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, epoch: i16, first: i32, last: i32, base: i64) -> BatchInfo {
        BatchInfo {
            producer_id: id,
            epoch,
            first_seq: first,
            last_seq: last,
            base_offset: base,
            last_offset: base + i64::from(last - first),
            max_timestamp_ms: 1_000 + base,
        }
    }

    fn dup(base: i64, last: i64) -> Check {
        Check::Duplicate {
            base_offset: base,
            last_offset: last,
        }
    }

    #[test]
    fn retries_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        assert_eq!(
            s.check(7, 0, 5, 9),
            Check::Append,
            "unknown producers start anywhere"
        );
        s.record(batch(7, 0, 5, 9, 100));
        assert_eq!(s.check(7, 0, 5, 9), dup(100, 104));
        assert_eq!(
            s.check(7, 0, 11, 12),
            Check::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(s.check(7, 0, 10, 12), Check::Append);
        s.record(batch(7, 0, 10, 12, 105));
        for i in 0..5 {
            let first = 13 + i * 2;
            s.record(batch(7, 0, first, first + 1, 200 + 2 * i64::from(i)));
        }
        assert_eq!(
            s.check(7, 0, 5, 9),
            Check::Reject(ErrorCode::OutOfOrderSequenceNumber),
            "only five are kept"
        );
        assert_eq!(s.check(7, 0, 21, 22), dup(208, 209));
        assert_eq!(
            s.check(7, -1, 23, 23),
            Check::Reject(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            s.check(7, 1, 3, 3),
            Check::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(s.check(7, 1, 0, 3), Check::Append);
        // A failed append is forgotten: the producer's retry is appended.
        s.forget(7, 21);
        assert_eq!(s.check(7, 0, 21, 22), Check::Append);
        assert_eq!(last_seq(i32::MAX, 2), 0);
        assert_eq!(next_seq(i32::MAX), 0);
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut s = ProducerStates::default();
        assert_eq!(ProducerStates::decode(&s.encode()), Ok(s.clone()));
        for id in 0..20 {
            for i in 0..(id % 8) as i32 {
                s.record(batch(
                    id,
                    (id % 3) as i16,
                    i * 3,
                    i * 3 + 2,
                    id * 100 + i64::from(i),
                ));
            }
        }
        let bytes = s.encode();
        assert_eq!(ProducerStates::decode(&bytes), Ok(s.clone()));
        assert_eq!(bytes, ProducerStates::decode(&bytes).unwrap().encode());
        // Every truncation is refused, never half-loaded.
        for cut in 0..bytes.len() {
            assert!(ProducerStates::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            ProducerStates::decode(&longer),
            Err(DecodeError::Trailing(1))
        );
        // A huge count in a short input is an error, not an allocation.
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 8]);
        assert!(ProducerStates::decode(&huge).is_err());
    }

    #[test]
    fn expiry_by_last_batch_timestamp() {
        let mut s = ProducerStates::default();
        s.record(batch(1, 0, 0, 0, 0)); // timestamp 1000
        s.record(batch(2, 0, 0, 0, 500)); // timestamp 1500
        assert_eq!(s.expire(1_000 + 999, 1_000), 0);
        assert_eq!(s.expire(1_000 + 1_000, 1_000), 1, "Kafka expires at >=");
        assert_eq!(s.len(), 1);
        assert_eq!(s.check(1, 0, 7, 7), Check::Append, "expired: unknown again");
        assert_eq!(s.check(2, 0, 0, 0), dup(500, 500));
        assert_eq!(s.expire(2_500, 1_000), 1);
        assert!(s.is_empty());
    }

    /// Replaying a log (a seeded sequence of appends, retries and epoch
    /// bumps) in pieces, through an encode/decode in the middle, gives the
    /// state of the live appends: what a snapshot plus a scan rebuilds.
    #[test]
    fn snapshot_then_replay_equals_live_state() {
        let seed = 0x5eed_1d3e_u64;
        eprintln!("seed {seed:#x}");
        let mut rng = seed;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live = ProducerStates::default();
        let mut log: Vec<BatchInfo> = Vec::new();
        let mut seqs: HashMap<i64, (i16, i32)> = HashMap::new();
        let mut offset = 0i64;
        for _ in 0..2_000 {
            let id = (next() % 6) as i64;
            let (epoch, seq) = seqs.entry(id).or_insert((0, 0));
            if next() % 50 == 0 {
                *epoch += 1;
                *seq = 0;
            }
            let count = 1 + (next() % 4) as i32;
            let b = BatchInfo {
                producer_id: id,
                epoch: *epoch,
                first_seq: *seq,
                last_seq: last_seq(*seq, count),
                base_offset: offset,
                last_offset: offset + i64::from(count) - 1,
                max_timestamp_ms: offset,
            };
            assert_eq!(
                live.check(id, b.epoch, b.first_seq, b.last_seq),
                Check::Append
            );
            live.record(b);
            log.push(b);
            *seq = next_seq(b.last_seq);
            offset += i64::from(count);
        }
        for cut in [0, 1, 777, log.len()] {
            let mut rebuilt = ProducerStates::default();
            log[..cut].iter().for_each(|b| rebuilt.replay(*b));
            let mut rebuilt = ProducerStates::decode(&rebuilt.encode()).unwrap();
            log[cut..].iter().for_each(|b| rebuilt.replay(*b));
            assert_eq!(rebuilt, live, "cut at batch {cut} (seed {seed:#x})");
        }
    }
}
