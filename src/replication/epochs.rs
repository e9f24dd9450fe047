//! The leader-epoch cache of one log: Kafka's `LeaderEpochFileCache`, the
//! in-memory form of the `leader-epoch-checkpoint` file.
//!
//! Each entry says "epoch E starts at offset S": the first record of E in
//! this log is at S, and E covers every offset up to the next entry's
//! start (or the log end). Epochs strictly increase and start offsets never
//! decrease. An entry whose start equals the log end covers no record yet:
//! a leader writes its epoch's entry when it is elected, before its first
//! append.

use super::{LeaderEpoch, Offset};

/// One `(epoch, start offset)` line of the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochCacheError {
    #[error("epoch {epoch} at offset {start_offset} does not follow the entry before it")]
    OutOfOrder {
        epoch: LeaderEpoch,
        start_offset: Offset,
    },
    #[error("epoch {0} is negative")]
    NegativeEpoch(LeaderEpoch),
}

/// The answer to "where does epoch E end": OffsetsForLeaderEpoch's
/// `(leader_epoch, end_offset)` pair, and the diverging epoch of a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub leader_epoch: LeaderEpoch,
    pub end_offset: Offset,
}

impl EpochEndOffset {
    /// Kafka's `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET`.
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        leader_epoch: LeaderEpoch::UNKNOWN,
        end_offset: Offset::NONE,
    };

    pub fn is_undefined(self) -> bool {
        self.leader_epoch == LeaderEpoch::UNKNOWN || self.end_offset == Offset::NONE
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// The cache as read back from its checkpoint; refuses a file whose
    /// entries are out of order (a corrupt checkpoint must not steer
    /// truncation).
    pub fn from_entries(entries: Vec<EpochEntry>) -> Result<LeaderEpochCache, EpochCacheError> {
        for (i, e) in entries.iter().enumerate() {
            if e.epoch.0 < 0 {
                return Err(EpochCacheError::NegativeEpoch(e.epoch));
            }
            if i > 0 {
                let p = entries[i - 1];
                if e.epoch <= p.epoch || e.start_offset < p.start_offset {
                    return Err(EpochCacheError::OutOfOrder {
                        epoch: e.epoch,
                        start_offset: e.start_offset,
                    });
                }
            }
        }
        Ok(LeaderEpochCache { entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> LeaderEpoch {
        self.latest().map_or(LeaderEpoch::UNKNOWN, |e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. A no-op if `epoch` is
    /// already the latest; otherwise entries for later or equal epochs, and
    /// entries starting at or after `start_offset` (which cover no record
    /// below it), are replaced, as Kafka's `assign` does. Returns whether
    /// the cache changed (and so must be checkpointed).
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> bool {
        assert!(epoch.0 >= 0, "assigning an undefined epoch");
        if self.latest().is_some_and(|e| e.epoch == epoch) {
            return false;
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops entries that start at or after `log_end` (after a truncation,
    /// or at recovery when the log came back shorter). Returns whether the
    /// cache changed.
    pub fn truncate_from_end(&mut self, log_end: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < log_end);
        self.entries.len() != before
    }

    /// The epoch of the record at `offset`, if the cache covers it.
    pub fn epoch_at(&self, offset: Offset) -> Option<LeaderEpoch> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        (i > 0).then(|| self.entries[i - 1].epoch)
    }

    /// The epoch of the last record of a log ending at `log_end`: what a
    /// follower sends as `last_fetched_epoch`.
    pub fn last_record_epoch(&self, log_end: Offset) -> LeaderEpoch {
        if log_end.0 <= 0 {
            return LeaderEpoch::UNKNOWN;
        }
        self.epoch_at(Offset(log_end.0 - 1))
            .unwrap_or(LeaderEpoch::UNKNOWN)
    }

    /// Kafka's `endOffsetFor`: the end of `requested` in this log, as
    /// `(the largest epoch <= requested, the start of the next epoch)`.
    /// - the latest epoch ends at `log_end`;
    /// - an epoch this log skipped is answered with the largest epoch below
    ///   it and the start of the first epoch above it;
    /// - an epoch below the first entry is answered with itself and the
    ///   first entry's start (nothing of it survives here);
    /// - an epoch above the latest one, or `UNKNOWN`, is UNDEFINED.
    pub fn end_offset_for(&self, requested: LeaderEpoch, log_end: Offset) -> EpochEndOffset {
        if requested == LeaderEpoch::UNKNOWN {
            return EpochEndOffset::UNDEFINED;
        }
        let Some(latest) = self.latest() else {
            return EpochEndOffset::UNDEFINED;
        };
        if latest.epoch == requested {
            return EpochEndOffset {
                leader_epoch: requested,
                end_offset: log_end,
            };
        }
        // The first entry with an epoch above `requested`.
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        if higher == self.entries.len() {
            return EpochEndOffset::UNDEFINED;
        }
        let end_offset = self.entries[higher].start_offset;
        let leader_epoch = if higher == 0 {
            requested
        } else {
            self.entries[higher - 1].epoch
        };
        EpochEndOffset {
            leader_epoch,
            end_offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(
            entries
                .iter()
                .map(|&(e, s)| EpochEntry {
                    epoch: LeaderEpoch(e),
                    start_offset: Offset(s),
                })
                .collect(),
        )
        .expect("ordered")
    }

    fn end(c: &LeaderEpochCache, epoch: i32, log_end: i64) -> (i32, i64) {
        let r = c.end_offset_for(LeaderEpoch(epoch), Offset(log_end));
        (r.leader_epoch.0, r.end_offset.0)
    }

    #[test]
    fn end_offsets_match_kafka() {
        let c = cache(&[(1, 0), (3, 10), (4, 15)]);
        assert_eq!(
            end(&c, 4, 20),
            (4, 20),
            "the latest epoch ends at the log end"
        );
        assert_eq!(end(&c, 3, 20), (3, 15));
        assert_eq!(end(&c, 1, 20), (1, 10));
        assert_eq!(end(&c, 2, 20), (1, 10), "a skipped epoch answers its floor");
        assert_eq!(end(&c, 0, 20), (0, 0), "below the first entry");
        assert_eq!(end(&c, 5, 20), (-1, -1), "above the latest");
        assert_eq!(end(&c, -1, 20), (-1, -1));
        assert_eq!(end(&LeaderEpochCache::default(), 1, 0), (-1, -1));
    }

    #[test]
    fn assign_and_truncate() {
        let mut c = cache(&[(1, 0), (2, 5)]);
        assert!(!c.assign(LeaderEpoch(2), Offset(7)), "already the latest");
        assert!(c.assign(LeaderEpoch(4), Offset(9)));
        assert_eq!(c.epoch_at(Offset(8)), Some(LeaderEpoch(2)));
        assert_eq!(c.epoch_at(Offset(9)), Some(LeaderEpoch(4)));
        assert_eq!(c.last_record_epoch(Offset(9)), LeaderEpoch(2));
        assert_eq!(c.last_record_epoch(Offset(0)), LeaderEpoch::UNKNOWN);
        // An empty epoch (elected, no append) is replaced by a later one
        // starting at the same offset.
        assert!(c.assign(LeaderEpoch(6), Offset(9)));
        assert_eq!(c, cache(&[(1, 0), (2, 5), (6, 9)]));
        assert!(c.truncate_from_end(Offset(5)));
        assert_eq!(c, cache(&[(1, 0)]));
        assert!(!c.truncate_from_end(Offset(5)));
    }

    #[test]
    fn corrupt_checkpoints_are_refused() {
        let e = |epoch, start| EpochEntry {
            epoch: LeaderEpoch(epoch),
            start_offset: Offset(start),
        };
        assert!(LeaderEpochCache::from_entries(vec![e(2, 0), e(1, 5)]).is_err());
        assert!(LeaderEpochCache::from_entries(vec![e(1, 5), e(2, 3)]).is_err());
        assert!(LeaderEpochCache::from_entries(vec![e(-3, 0)]).is_err());
        assert!(LeaderEpochCache::from_entries(vec![e(1, 0), e(2, 0)]).is_ok());
    }
}
