//! Sparse offset and time indexes in Kafka's file format.
//!
//! `.index`: 8-byte entries, relative offset (u32 BE) of the *last* offset
//! of a batch and the file position (u32 BE) where that batch starts.
//! `.timeindex`: 12-byte entries, the largest timestamp so far (i64 BE) and
//! the relative offset (u32 BE) where it occurs. Both are hints: recovery
//! rebuilds them, and a file that fails its sanity check is rebuilt too.

use thiserror::Error;

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IndexError {
    #[error("index size {0} is not a multiple of the entry size")]
    PartialEntry(usize),
    #[error("entry {0} does not increase")]
    NotMonotonic(usize),
    #[error("entry {index} points at position {position} past the segment end {segment_bytes}")]
    PastEnd {
        index: usize,
        position: u32,
        segment_bytes: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last() {
            assert!(
                relative_offset > last.relative_offset,
                "offset index must increase"
            );
            assert!(position > last.position, "positions must increase");
        }
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of a batch boundary at or before `relative_offset`'s batch:
    /// the start of the batch after the last entry whose last offset is below
    /// the target. Scanning forward from it finds the batch holding the target.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        // Entries record (last offset of batch, start of that batch). The
        // batch holding `relative_offset` starts at or after the start of the
        // last entry whose last offset is <= target.
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        }
    }

    /// Drops the entries of batches starting at or after `position` (a log
    /// truncation cut there).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.position) < position);
        self.entries.truncate(keep);
    }

    /// The position of the last entry, if any.
    pub fn last_position(&self) -> Option<u32> {
        self.entries.last().map(|e| e.position)
    }

    /// The largest batch boundary at or below `position`, for cutting reads
    /// at whole batches.
    pub fn floor_position(&self, position: u32) -> Option<u32> {
        let i = self.entries.partition_point(|e| e.position <= position);
        (i > 0).then(|| self.entries[i - 1].position)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes and sanity-checks an index file against its segment's size.
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Result<OffsetIndex, IndexError> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry(bytes.len()));
        }
        let mut index = OffsetIndex::default();
        for (i, raw) in bytes.chunks_exact(OFFSET_ENTRY_BYTES).enumerate() {
            let relative_offset = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let position = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
            if u64::from(position) >= segment_bytes {
                return Err(IndexError::PastEnd {
                    index: i,
                    position,
                    segment_bytes,
                });
            }
            if let Some(last) = index.entries.last() {
                if relative_offset <= last.relative_offset || position <= last.position {
                    return Err(IndexError::NotMonotonic(i));
                }
            }
            index.entries.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        Ok(index)
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<OffsetEntry>()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Adds an entry if `timestamp` is larger than every entry so far.
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(last) if timestamp <= last.timestamp => {}
            Some(last) if relative_offset <= last.relative_offset => {}
            _ => self.entries.push(TimeEntry {
                timestamp,
                relative_offset,
            }),
        }
    }

    /// Drops the entries at relative offsets at or after `relative_offset`
    /// (a log truncation removed those batches). The last entry left is
    /// the largest timestamp of the batches kept.
    pub fn truncate_to_offset(&mut self, relative_offset: u64) {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.relative_offset) < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Relative offset to start scanning from for the first batch with a
    /// max timestamp >= `timestamp`.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let i = self.entries.partition_point(|e| e.timestamp < timestamp);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].relative_offset
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TimeIndex, IndexError> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry(bytes.len()));
        }
        let mut index = TimeIndex::default();
        for (i, raw) in bytes.chunks_exact(TIME_ENTRY_BYTES).enumerate() {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&raw[..8]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
            };
            if let Some(last) = index.entries.last() {
                if entry.timestamp <= last.timestamp
                    || entry.relative_offset <= last.relative_offset
                {
                    return Err(IndexError::NotMonotonic(i));
                }
            }
            index.entries.push(entry);
        }
        Ok(index)
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<TimeEntry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_the_scan_start() {
        let mut index = OffsetIndex::default();
        index.push(9, 4096); // batch ending at 9 starts at 4096
        index.push(19, 8192);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(8), 0);
        assert_eq!(index.lookup(9), 4096);
        assert_eq!(index.lookup(15), 4096);
        assert_eq!(index.lookup(25), 8192);
        assert_eq!(index.floor_position(5000), Some(4096));
        assert_eq!(index.floor_position(100), None);
        let decoded = OffsetIndex::decode(&index.encode(), 10_000).expect("decode");
        assert_eq!(decoded, index);
        assert_eq!(
            OffsetIndex::decode(&index.encode(), 8000),
            Err(IndexError::PastEnd {
                index: 1,
                position: 8192,
                segment_bytes: 8000
            })
        );
        assert_eq!(
            OffsetIndex::decode(&[0; 7], 100),
            Err(IndexError::PartialEntry(7))
        );
    }

    #[test]
    fn time_index_keeps_only_increasing_timestamps() {
        let mut index = TimeIndex::default();
        index.maybe_push(100, 0);
        index.maybe_push(90, 5); // older timestamp: skipped
        index.maybe_push(200, 10);
        assert_eq!(index.lookup(50), 0);
        assert_eq!(index.lookup(150), 0);
        assert_eq!(index.lookup(200), 0);
        assert_eq!(index.lookup(201), 10);
        assert_eq!(TimeIndex::decode(&index.encode()).expect("decode"), index);
        index.truncate_to_offset(10);
        assert_eq!(index.last().map(|e| e.timestamp), Some(100));
        index.truncate_to_offset(0);
        assert_eq!(index.last(), None);
    }

    #[test]
    fn offset_index_truncation_drops_entries_at_and_after_the_cut() {
        let mut index = OffsetIndex::default();
        index.push(9, 4096);
        index.push(19, 8192);
        index.truncate_to_position(8192);
        assert_eq!(index.len(), 1);
        assert_eq!(index.last_position(), Some(4096));
        assert_eq!(index.lookup(25), 4096);
        index.truncate_to_position(4096);
        assert!(index.is_empty());
    }
}
