//! Log compaction (`cleanup.policy=compact`), Kafka's cleaner algorithm.
//!
//! # What a pass does
//!
//! The log is split at the *first dirty offset* (the cleaner checkpoint,
//! `cleaner-offset-checkpoint` in the partition directory): below it
//! everything was cleaned before, from it on up to the active segment is
//! dirty. Only sealed segments are touched, never the active one, and a
//! segment whose largest timestamp is younger than `min.compaction.lag.ms`
//! ends the dirty range.
//!
//! 1. The dirty segments are read to build a map key -> latest offset.
//! 2. Every segment from the log start to the end of the dirty range is
//!    rewritten, in groups of consecutive segments that fit in
//!    `segment.bytes`, keeping a record iff no later record has its key.
//!    Records without a key are dropped (they are invalid in a compacted
//!    topic). A tombstone (null value) is dropped only once it lies in the
//!    already-cleaned part *and* its batch is older than
//!    `delete.retention.ms`, so a consumer that reads the log within that
//!    time sees the delete.
//! 3. Offsets never change. A batch whose records are all kept is copied
//!    byte for byte; one that loses some is rewritten as Kafka's
//!    `MemoryRecords.filterTo` does: same baseOffset, lastOffsetDelta,
//!    baseTimestamp, producer id/epoch and base sequence, the kept records
//!    verbatim (offset and timestamp deltas stay valid), recompressed with
//!    the batch's codec, maxTimestamp recomputed (CreateTime), new CRC.
//!    A batch that loses every record is dropped, except the last batch of
//!    each idempotent producer within the cleaned range, kept as an empty
//!    header (Kafka keeps the producer's last batch in the whole log; ours
//!    is a superset of that) so the producer's sequence survives.
//!
//! # Where it runs
//!
//! [`CleanJob::run`] does all reading, filtering and writing with plain
//! blocking I/O on duplicated descriptors of the immutable sealed
//! segments, so it runs on its own thread while the shard keeps appending.
//! The owner shard only plans the pass ([`super::Log::start_clean`]) and
//! swaps the result in ([`super::Log::finish_clean`]).
//!
//! # Crash safety (Kafka's swap protocol)
//!
//! The job writes `{base}.log.cleaned` (and `.index.cleaned`,
//! `.timeindex.cleaned`) and fsyncs them. The swap renames
//! `.log.cleaned` to `.log.swap` and fsyncs the directory: the commit
//! point. Then the replaced segments are deleted and the new files renamed
//! to their final names. On open, `.cleaned` files are deleted (the pass is
//! lost, nothing else changed) and a `.log.swap` is completed: segments
//! whose base lies in the swap segment's offset range are deleted and the
//! swap file takes its final name (its indexes are rebuilt).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::batch::{self, BatchHeader, HEADER_BYTES};
use super::codec;
use super::index::{OffsetIndex, TimeIndex};
use super::segment::file_name;
use super::LogError;

pub const CLEANED_SUFFIX: &str = ".cleaned";
pub const SWAP_SUFFIX: &str = ".swap";

const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const RECORDS_COUNT_AT: usize = 57;
const BATCH_LENGTH_AT: usize = 8;

const CODEC_MASK: i16 = 0x07;
const LOG_APPEND_TIME_FLAG: i16 = 0x08;
const CONTROL_FLAG: i16 = 0x20;

/// Read size of the cleaner's sequential segment reads.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Settings of one pass, from the log's config.
#[derive(Debug, Clone, Copy)]
pub struct CleanSettings {
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    pub segment_bytes: u64,
    pub index_interval_bytes: u64,
    /// Bound on the key map (key bytes plus per-entry overhead); the dirty
    /// range is cut at the segment where it fills (Kafka's dedupe buffer).
    pub key_map_bytes_max: usize,
}

/// A sealed segment handed to the cleaner.
#[derive(Debug)]
pub struct JobSegment {
    pub base: i64,
    /// Base of the segment after it (where its offsets end at most).
    pub next_base: i64,
    pub size: u64,
    pub path: PathBuf,
    /// A duplicate of the segment's descriptor: the file stays readable
    /// if retention unlinks it meanwhile.
    pub file: File,
}

/// One compaction pass, planned on the owner shard, run anywhere.
#[derive(Debug)]
pub struct CleanJob {
    pub dir: PathBuf,
    /// Sealed segments from the log start, in offset order.
    pub segments: Vec<JobSegment>,
    /// Segments with `next_base > first_dirty` are dirty.
    pub first_dirty: i64,
    pub settings: CleanSettings,
}

/// A rewritten segment, ready to be swapped in.
#[derive(Debug)]
pub struct CleanedSegment {
    pub base: i64,
    pub size: u64,
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
    pub max_timestamp: Option<(i64, i64)>,
    pub bytes_since_entry: u64,
    /// The (base, size) of the segments it replaces.
    pub replaced: Vec<(i64, u64)>,
}

/// What a pass did, for the log line and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_read: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub keyless_removed: u64,
    pub batches_rewritten: u64,
    pub batches_removed: u64,
    /// The job's time on its own thread.
    pub duration_ms: u64,
    /// Time the owner shard spent in the swap's synchronous steps (renames,
    /// unlinks, the segment map), the only part that holds up its appends.
    pub swap_busy_micros: u64,
}

/// The job's result.
#[derive(Debug)]
pub struct CleanOutput {
    pub cleaned: Vec<CleanedSegment>,
    /// The new cleaner checkpoint: the end of the range cleaned.
    pub first_dirty: i64,
    /// When the earliest tombstone kept becomes removable.
    pub tombstone_due_ms: Option<i64>,
    pub stats: CleanStats,
}

fn compaction_error(path: &Path, position: u64, reason: impl Into<String>) -> LogError {
    LogError::Compaction {
        path: path.to_path_buf(),
        position,
        reason: reason.into(),
    }
}

/// A batch read by [`SegmentReader`]: header, position, bytes.
type BatchRef<'a> = (BatchHeader, u64, &'a [u8]);

/// Reads the batches of a segment in order, a chunk at a time, checking
/// each batch's framing and CRC-32C.
struct SegmentReader<'a> {
    seg: &'a JobSegment,
    pos: u64,
    buf: Vec<u8>,
    buf_pos: u64,
}

impl<'a> SegmentReader<'a> {
    fn new(seg: &'a JobSegment) -> SegmentReader<'a> {
        SegmentReader {
            seg,
            pos: 0,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    /// Makes the buffer hold `[self.pos, self.pos + want)`.
    fn fill(&mut self, want: usize) -> Result<(), LogError> {
        let have_end = self.buf_pos + self.buf.len() as u64;
        if self.pos >= self.buf_pos && self.pos + want as u64 <= have_end {
            return Ok(());
        }
        let len = want
            .max(READ_CHUNK_BYTES)
            .min((self.seg.size - self.pos) as usize);
        self.buf.resize(len, 0);
        self.seg
            .file
            .read_exact_at(&mut self.buf, self.pos)
            .map_err(|e| LogError::io(&self.seg.path, e))?;
        self.buf_pos = self.pos;
        Ok(())
    }

    /// The next batch: its header, position and bytes.
    fn next_batch(&mut self) -> Result<Option<BatchRef<'_>>, LogError> {
        if self.pos >= self.seg.size {
            return Ok(None);
        }
        let path = &self.seg.path;
        if self.seg.size - self.pos < HEADER_BYTES as u64 {
            return Err(compaction_error(path, self.pos, "truncated batch header"));
        }
        self.fill(HEADER_BYTES)?;
        let at = (self.pos - self.buf_pos) as usize;
        let header = BatchHeader::parse(&self.buf[at..])
            .map_err(|e| compaction_error(path, self.pos, e.to_string()))?;
        if self.pos + header.size as u64 > self.seg.size {
            return Err(compaction_error(path, self.pos, "batch runs past the end"));
        }
        self.fill(header.size)?;
        let at = (self.pos - self.buf_pos) as usize;
        let bytes = &self.buf[at..at + header.size];
        batch::verify_crc(bytes, &header)
            .map_err(|e| compaction_error(path, self.pos, e.to_string()))?;
        let position = self.pos;
        self.pos += header.size as u64;
        Ok(Some((header, position, bytes)))
    }
}

/// A record inside a batch's (decompressed) records section.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// The whole record, length prefix included.
    pub bytes: &'a [u8],
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub tombstone: bool,
}

fn varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        raw |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Splits a records section into `count` records.
pub fn parse_records(data: &[u8], count: i32) -> Result<Vec<RecordView<'_>>, String> {
    let mut out = Vec::with_capacity(count.clamp(0, 4096) as usize);
    let mut at = 0usize;
    for i in 0..count {
        let start = at;
        let bad = |what: &str| format!("record {i}: {what}");
        let len = varint(data, &mut at).ok_or_else(|| bad("bad length"))?;
        let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
        let end = at.checked_add(len).filter(|&e| e <= data.len());
        let end = end.ok_or_else(|| bad("runs past the batch"))?;
        let body = &data[at..end];
        let mut p = 1usize; // attributes
        let timestamp_delta = varint(body, &mut p).ok_or_else(|| bad("bad timestamp"))?;
        let offset_delta = varint(body, &mut p).ok_or_else(|| bad("bad offset delta"))?;
        let field = |p: &mut usize| -> Result<Option<&[u8]>, String> {
            let n = varint(body, p).ok_or_else(|| bad("bad field length"))?;
            if n < 0 {
                return Ok(None);
            }
            let e = p.checked_add(n as usize).filter(|&e| e <= body.len());
            let e = e.ok_or_else(|| bad("field runs past the record"))?;
            let f = &body[*p..e];
            *p = e;
            Ok(Some(f))
        };
        let key = field(&mut p)?;
        let value = field(&mut p)?;
        out.push(RecordView {
            bytes: &data[start..end],
            offset_delta,
            timestamp_delta,
            key,
            tombstone: value.is_none(),
        });
        at = end;
    }
    if at != data.len() {
        return Err(format!(
            "{} bytes follow the {count} records",
            data.len() - at
        ));
    }
    Ok(out)
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

/// The producer id of a batch (-1 when not idempotent).
pub fn producer_id(batch: &[u8]) -> i64 {
    i64_at(batch, PRODUCER_ID_AT)
}

fn is_control(batch: &[u8]) -> bool {
    i16_at(batch, ATTRIBUTES_AT) & CONTROL_FLAG != 0
}

/// One record's fate, decided by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Superseded by a later record with the same key.
    Superseded,
    /// A tombstone past its horizon.
    Tombstone,
    /// No key: invalid in a compacted topic.
    Keyless,
}

/// What became of a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Every record is kept: copy the batch as it is.
    Unchanged,
    /// No record is kept and no header is needed.
    Removed,
    /// The batch rewritten (possibly an empty header).
    Rewritten(Vec<u8>),
}

/// Per-batch counts of what a filter removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCounts {
    pub records: u64,
    pub superseded: u64,
    pub tombstones: u64,
    pub keyless: u64,
}

/// Filters the records of one whole, CRC-checked batch. `verdict` gets each
/// record with its absolute offset and the batch's max timestamp.
/// `keep_empty` keeps an empty header when every record goes.
pub fn filter_batch(
    bytes: &[u8],
    header: &BatchHeader,
    keep_empty: bool,
    counts: &mut FilterCounts,
    mut verdict: impl FnMut(&RecordView<'_>, i64) -> Verdict,
) -> Result<Filtered, String> {
    if is_control(bytes) {
        return Ok(Filtered::Unchanged);
    }
    let attributes = i16_at(bytes, ATTRIBUTES_AT);
    let codec = (attributes & CODEC_MASK) as u8;
    let raw = &bytes[HEADER_BYTES..];
    let owned;
    let data: &[u8] = if codec == codec::NONE {
        raw
    } else {
        owned = codec::decompress(codec, raw).map_err(|e| e.to_string())?;
        &owned
    };
    let records = parse_records(data, header.records_count)?;
    counts.records += records.len() as u64;
    let mut kept: Vec<&RecordView<'_>> = Vec::with_capacity(records.len());
    for r in &records {
        match verdict(r, header.base_offset + r.offset_delta) {
            Verdict::Keep => kept.push(r),
            Verdict::Superseded => counts.superseded += 1,
            Verdict::Tombstone => counts.tombstones += 1,
            Verdict::Keyless => counts.keyless += 1,
        }
    }
    if kept.len() == records.len() {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() {
        if keep_empty {
            return Ok(Filtered::Rewritten(empty_header(bytes, header)));
        }
        return Ok(Filtered::Removed);
    }
    let mut section = Vec::with_capacity(data.len());
    for r in &kept {
        section.extend_from_slice(r.bytes);
    }
    if codec != codec::NONE {
        section = codec::compress(codec, &section).map_err(|e| e.to_string())?;
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + section.len());
    out.extend_from_slice(&bytes[..HEADER_BYTES]);
    out.extend_from_slice(&section);
    if attributes & LOG_APPEND_TIME_FLAG == 0 {
        let base_ts = i64_at(bytes, BASE_TIMESTAMP_AT);
        let max_ts = kept
            .iter()
            .map(|r| base_ts.saturating_add(r.timestamp_delta))
            .max()
            .expect("some record kept");
        out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_ts.to_be_bytes());
    }
    out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    seal(&mut out);
    Ok(Filtered::Rewritten(out))
}

/// Kafka's `DefaultRecordBatch.writeEmptyHeader`: no records, no codec,
/// both timestamps the batch's max, offsets and producer fields kept.
fn empty_header(bytes: &[u8], header: &BatchHeader) -> Vec<u8> {
    let mut out = bytes[..HEADER_BYTES].to_vec();
    let attributes = i16_at(bytes, ATTRIBUTES_AT) & !CODEC_MASK;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8]
        .copy_from_slice(&header.max_timestamp.to_be_bytes());
    out[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&0i32.to_be_bytes());
    seal(&mut out);
    out
}

/// Sets `batchLength` and the CRC-32C of a rebuilt batch.
fn seal(out: &mut [u8]) {
    let length = (out.len() - batch::LOG_OVERHEAD) as i32;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A record for [`build_batch`]: key and value, `None` for null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds a valid batch of keyed records (tests and tools): `codec` is
/// one of [`codec`]'s ids, `producer` an idempotent producer's (id,
/// epoch, base sequence) or `None`. Record `i` has timestamp `ts + i`.
pub fn build_batch(
    base_offset: i64,
    ts: i64,
    records: &[KeyValue<'_>],
    codec: u8,
    producer: Option<(i64, i16, i32)>,
) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut section = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut body = vec![0u8];
        put_varint(&mut body, i as i64); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        for field in [key, value] {
            match field {
                Some(f) => {
                    put_varint(&mut body, f.len() as i64);
                    body.extend_from_slice(f);
                }
                None => put_varint(&mut body, -1),
            }
        }
        put_varint(&mut body, 0); // headers
        put_varint(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    let section = codec::compress(codec, &section).expect("compress");
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let n = records.len() as i32;
    let mut b = Vec::with_capacity(HEADER_BYTES + section.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // length, sealed below
    b.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    b.push(2);
    b.extend_from_slice(&[0; 4]); // crc
    b.extend_from_slice(&i16::from(codec).to_be_bytes());
    b.extend_from_slice(&(n - 1).to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(ts + i64::from(n) - 1).to_be_bytes());
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&section);
    seal(&mut b);
    b
}

/// Writes one cleaned segment as `.cleaned` files and indexes it.
struct SegmentWriter {
    base: i64,
    dir: PathBuf,
    file: io::BufWriter<File>,
    path: PathBuf,
    size: u64,
    interval: u64,
    offsets: OffsetIndex,
    times: TimeIndex,
    max_timestamp: Option<(i64, i64)>,
    bytes_since_entry: u64,
}

pub(crate) fn cleaned_name(base: i64, suffix: &str) -> String {
    format!("{}{CLEANED_SUFFIX}", file_name(base, suffix))
}

impl SegmentWriter {
    fn create(dir: &Path, base: i64, interval: u64) -> Result<SegmentWriter, LogError> {
        let path = dir.join(cleaned_name(base, ".log"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        Ok(SegmentWriter {
            base,
            dir: dir.to_path_buf(),
            file: io::BufWriter::with_capacity(READ_CHUNK_BYTES, file),
            path,
            size: 0,
            interval,
            offsets: OffsetIndex::default(),
            times: TimeIndex::default(),
            max_timestamp: None,
            bytes_since_entry: 0,
        })
    }

    /// Appends a batch, indexing it as [`super::segment::Segment`] does.
    fn append(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let h = BatchHeader::parse(bytes).expect("batches written are whole");
        let relative = (h.last_offset() - self.base) as u32;
        if self.bytes_since_entry >= self.interval {
            self.offsets.push(relative, self.size as u32);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += h.size as u64;
        self.times.maybe_push(h.max_timestamp, relative);
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| h.max_timestamp > ts)
        {
            self.max_timestamp = Some((h.max_timestamp, h.last_offset()));
        }
        self.file
            .write_all(bytes)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.size += h.size as u64;
        Ok(())
    }

    /// Flushes and syncs the segment and its index files.
    fn finish(self, replaced: Vec<(i64, u64)>) -> Result<CleanedSegment, LogError> {
        let path = self.path.clone();
        let file = self
            .file
            .into_inner()
            .map_err(|e| LogError::io(&path, e.into_error()))?;
        file.sync_data().map_err(|e| LogError::io(&path, e))?;
        for (suffix, bytes) in [
            (".index", self.offsets.encode()),
            (".timeindex", self.times.encode()),
        ] {
            let path = self.dir.join(cleaned_name(self.base, suffix));
            let write = || -> io::Result<()> {
                let mut f = File::create(&path)?;
                f.write_all(&bytes)?;
                f.sync_data()
            };
            write().map_err(|e| LogError::io(&path, e))?;
        }
        Ok(CleanedSegment {
            base: self.base,
            size: self.size,
            offsets: self.offsets,
            times: self.times,
            max_timestamp: self.max_timestamp,
            bytes_since_entry: self.bytes_since_entry,
            replaced,
        })
    }
}

/// Removes the `.cleaned` files of segment `base` (an abandoned pass).
pub(crate) fn remove_cleaned(dir: &Path, base: i64) {
    for suffix in [".log", ".index", ".timeindex"] {
        let _ = std::fs::remove_file(dir.join(cleaned_name(base, suffix)));
    }
}

/// Per-entry overhead counted against the key map bound.
const KEY_ENTRY_OVERHEAD: usize = 48;

impl CleanJob {
    /// Runs the pass: blocking I/O, meant for a thread of its own.
    pub fn run(mut self) -> Result<CleanOutput, LogError> {
        let started = Instant::now();
        let s = self.settings;
        let mut stats = CleanStats::default();
        // 1. The key map over the dirty segments, cut where it fills.
        let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut last_batch: HashMap<i64, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut end = self.segments.len();
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.next_base <= self.first_dirty {
                // Clean part: only the producers' last batches matter.
                let mut reader = SegmentReader::new(seg);
                while let Some((h, _, bytes)) = reader.next_batch()? {
                    note_producer(&mut last_batch, bytes, &h);
                }
                continue;
            }
            if map_bytes >= s.key_map_bytes_max && i > 0 {
                end = i;
                break;
            }
            let mut reader = SegmentReader::new(seg);
            while let Some((h, pos, bytes)) = reader.next_batch()? {
                note_producer(&mut last_batch, bytes, &h);
                if is_control(bytes) {
                    continue;
                }
                let mut counts = FilterCounts::default();
                let kept = filter_batch(bytes, &h, false, &mut counts, |r, offset| {
                    if let Some(key) = r.key {
                        match map.get_mut(key) {
                            Some(latest) => *latest = offset,
                            None => {
                                map_bytes += key.len() + KEY_ENTRY_OVERHEAD;
                                map.insert(key.to_vec(), offset);
                            }
                        }
                    }
                    Verdict::Keep
                });
                kept.map_err(|e| compaction_error(&seg.path, pos, e))?;
            }
        }
        self.segments.truncate(end);
        let range_end = self
            .segments
            .last()
            .map_or(self.first_dirty, |s| s.next_base);
        let horizon = s.now_ms.saturating_sub(s.delete_retention_ms);
        let mut tombstone_due_ms: Option<i64> = None;
        // 2. Rewrite, group by group.
        let mut cleaned = Vec::new();
        for group in groups(&self.segments, s.segment_bytes) {
            let first = &self.segments[group.start];
            let mut writer = SegmentWriter::create(&self.dir, first.base, s.index_interval_bytes)?;
            let mut replaced = Vec::new();
            let mut bytes_in = 0u64;
            for seg in &self.segments[group.clone()] {
                stats.segments_before += 1;
                stats.bytes_before += seg.size;
                bytes_in += seg.size;
                replaced.push((seg.base, seg.size));
                let already_clean = seg.next_base <= self.first_dirty;
                let mut reader = SegmentReader::new(seg);
                while let Some((h, pos, bytes)) = reader.next_batch()? {
                    let keep_empty = producer_id(bytes) >= 0
                        && last_batch.get(&producer_id(bytes)) == Some(&h.base_offset);
                    let mut counts = FilterCounts::default();
                    let filtered = filter_batch(bytes, &h, keep_empty, &mut counts, |r, offset| {
                        let Some(key) = r.key else {
                            return Verdict::Keyless;
                        };
                        if map.get(key).is_some_and(|&latest| latest > offset) {
                            return Verdict::Superseded;
                        }
                        if r.tombstone {
                            if already_clean && h.max_timestamp <= horizon {
                                return Verdict::Tombstone;
                            }
                            let due = h.max_timestamp.saturating_add(s.delete_retention_ms);
                            tombstone_due_ms = Some(tombstone_due_ms.map_or(due, |d| d.min(due)));
                        }
                        Verdict::Keep
                    });
                    let filtered = filtered.map_err(|e| compaction_error(&seg.path, pos, e))?;
                    stats.records_read += counts.records;
                    stats.records_removed += counts.superseded + counts.tombstones + counts.keyless;
                    stats.tombstones_removed += counts.tombstones;
                    stats.keyless_removed += counts.keyless;
                    match filtered {
                        Filtered::Unchanged => writer.append(bytes)?,
                        Filtered::Removed => stats.batches_removed += 1,
                        Filtered::Rewritten(b) => {
                            stats.batches_rewritten += 1;
                            writer.append(&b)?;
                        }
                    }
                }
            }
            // A lone segment that lost nothing is left as it is.
            if group.len() == 1 && writer.size == bytes_in {
                drop(writer);
                remove_cleaned(&self.dir, first.base);
                stats.segments_before -= 1;
                stats.bytes_before -= bytes_in;
                continue;
            }
            let done = writer.finish(replaced)?;
            stats.segments_after += 1;
            stats.bytes_after += done.size;
            cleaned.push(done);
        }
        stats.duration_ms = started.elapsed().as_millis() as u64;
        Ok(CleanOutput {
            cleaned,
            first_dirty: range_end,
            tombstone_due_ms,
            stats,
        })
    }
}

fn note_producer(last: &mut HashMap<i64, i64>, bytes: &[u8], h: &BatchHeader) {
    let pid = producer_id(bytes);
    if pid >= 0 {
        last.insert(pid, h.base_offset);
    }
}

/// Consecutive segments whose sizes sum to at most `segment_bytes` and
/// whose offsets fit the index's 32-bit relative offsets.
fn groups(segments: &[JobSegment], segment_bytes: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut end = start + 1;
        let mut bytes = segments[start].size;
        while end < segments.len() {
            let next = &segments[end];
            let span = next.next_base - segments[start].base;
            if bytes + next.size > segment_bytes || span > i64::from(i32::MAX) {
                break;
            }
            bytes += next.size;
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// The offset after the last batch of a (swap) segment file, or its base
/// when it holds none; used to complete an interrupted swap.
pub(crate) fn next_offset_of(path: &Path, base: i64) -> Result<i64, LogError> {
    let file = File::open(path).map_err(|e| LogError::io(path, e))?;
    let size = file.metadata().map_err(|e| LogError::io(path, e))?.len();
    let seg = JobSegment {
        base,
        next_base: i64::MAX,
        size,
        path: path.to_path_buf(),
        file,
    };
    let mut reader = SegmentReader::new(&seg);
    let mut next = base;
    while let Ok(Some((h, _, _))) = reader.next_batch() {
        next = h.next_offset();
    }
    Ok(next)
}

#[cfg(test)]
mod tests;
