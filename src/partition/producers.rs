//! Idempotent producer state of one partition (sans-IO).
//!
//! Kafka keeps, per producer id, its epoch and the metadata of its last
//! five batches. A batch whose sequence range matches one of them is a
//! retry: it is answered with the first append's offsets and not stored
//! again. Otherwise the first sequence must follow the last one
//! (OUT_OF_ORDER_SEQUENCE_NUMBER), an older epoch is fenced
//! (INVALID_PRODUCER_EPOCH), and a new epoch starts at sequence 0. A
//! producer the partition knows nothing about may start anywhere (its
//! state may have gone with retention), as in Kafka's ProducerAppendInfo.
//!
//! The state lives in memory on the owner shard; rebuilding it from the
//! log on restart (Kafka's producer snapshots) is not done yet.

use std::collections::{HashMap, VecDeque};

use ringtail_protocol::ErrorCode;

/// Batches remembered per producer, as Kafka's
/// `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const BATCHES_RETAINED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// The outcome of checking a batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it (and `record` it).
    Append,
    /// A retry of a batch already appended at this offset.
    Duplicate {
        base_offset: i64,
    },
    Reject(ErrorCode),
}

#[derive(Debug, Default)]
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
            };
        }
        match entry.batches.back() {
            Some(last) if next_seq(last.last_seq) != first_seq => {
                Check::Reject(ErrorCode::OutOfOrderSequenceNumber)
            }
            _ => Check::Append,
        }
    }

    /// Remembers a batch being appended at `base_offset`.
    pub fn record(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
        base_offset: i64,
    ) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq,
            last_seq,
            base_offset,
        });
    }

    /// Forgets a batch whose append failed, so the producer may retry it.
    pub fn forget(&mut self, producer_id: i64, first_seq: i32) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.batches.retain(|b| b.first_seq != first_seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_gaps_and_epochs() {
        let mut s = ProducerStates::default();
        assert_eq!(
            s.check(7, 0, 5, 9),
            Check::Append,
            "unknown producers start anywhere"
        );
        s.record(7, 0, 5, 9, 100);
        assert_eq!(s.check(7, 0, 5, 9), Check::Duplicate { base_offset: 100 });
        assert_eq!(
            s.check(7, 0, 11, 12),
            Check::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(s.check(7, 0, 10, 12), Check::Append);
        s.record(7, 0, 10, 12, 105);
        for i in 0..5 {
            let first = 13 + i * 2;
            s.record(7, 0, first, first + 1, 200 + i64::from(i));
        }
        assert_eq!(
            s.check(7, 0, 5, 9),
            Check::Reject(ErrorCode::OutOfOrderSequenceNumber),
            "only five are kept"
        );
        assert_eq!(s.check(7, 0, 21, 22), Check::Duplicate { base_offset: 204 });
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
}
