//! The partition log: a directory of segments in Kafka's on-disk layout.
//!
//! # Positions
//!
//! Like Redpanda's storage layer the log tracks three offsets (each the
//! offset *after* the last batch it covers):
//! - `log_end` (dirty): assigned to appends, possibly still queued;
//! - `written` (stable): in the segment files (page cache); readable;
//! - `durable` (committed): covered by a completed `fdatasync`.
//!
//! `durable <= written <= log_end` always holds.
//!
//! # Tasks
//!
//! Each open log owns two tasks on its shard. The *writer* takes every
//! queued append at once and writes the group with one WRITEV at the end of
//! the active segment, rolling segments as needed. The *flusher* runs when
//! someone waits for durability: it snapshots `written`, fdatasyncs the
//! files with unsynced bytes (and the directory after a roll or deletion),
//! then advances `durable` and wakes every waiter it covers. Appends that
//! arrive while a sync is in flight are covered by the next one: group
//! commit without a timer.
//!
//! # Failure
//!
//! A failed write is undone by truncating the segment back to the last
//! whole batch; the appends of that group (and those queued behind it) get
//! the error and nothing stored is touched. A failed fdatasync is not
//! retried (the kernel may have dropped the dirty pages): the log refuses
//! further writes until it is reopened and recovered.
//!
//! # Truncation
//!
//! [`Log::truncate_to`] removes a suffix (a follower's records its leader
//! lacks): see `truncate.rs` for how it orders its steps against appends,
//! group commits, compaction and crashes.

mod checkpoint;
mod cleaner;
mod recovery;
mod truncate;

pub mod batch;
pub mod codec;
pub mod compact;
pub mod index;
pub(crate) mod segment;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use thiserror::Error;

use crate::rt::sync::{oneshot, Notify, OneshotSender};
use crate::rt::{self, JoinHandle};
use batch::{BatchError, BatchHeader};
pub use segment::SegmentFile;
use segment::{scan, Segment, LOOKUP_CHUNK_BYTES};
pub use truncate::TruncateOutcome;

/// A Kafka offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub i64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Per-log settings, named after Kafka's topic configs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes` / `log.segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms` / `log.roll.ms`.
    pub segment_ms: Option<i64>,
    /// `retention.ms` / `log.retention.ms`; `None` keeps forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes` / `log.retention.bytes`; `None` has no limit.
    pub retention_bytes: Option<u64>,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u64,
    /// Sealed segments whose indexes stay loaded; older ones are dropped.
    pub loaded_indexes_max: usize,
    /// `cleanup.policy` holds `compact` (see [`compact`]). Whether old
    /// segments are also deleted is `retention_ms` / `retention_bytes`.
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone outlives its cleaning.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: younger segments are not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the dirty share that triggers a pass.
    pub min_cleanable_dirty_ratio: f64,
    /// `log.cleaner.dedupe.buffer.size`: bound on one pass's key map.
    pub cleaner_key_map_bytes_max: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * 24 * 3600 * 1000),
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            index_interval_bytes: 4096,
            loaded_indexes_max: 8,
            compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            cleaner_key_map_bytes_max: 128 << 20,
        }
    }
}

/// Segment positions are u32 in the index format.
const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("offset {offset} is out of range: log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("batch of {size} bytes exceeds segment.bytes {segment_bytes}")]
    BatchTooLarge { size: usize, segment_bytes: u64 },
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("corrupt batch in {path} at position {position}: {error}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        error: BatchError,
    },
    #[error("log {dir} refuses writes after a failed sync: {reason}")]
    Failed { dir: PathBuf, reason: String },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("compaction stopped at {path} position {position}: {reason}")]
    Compaction {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("log is closed")]
    Closed,
    /// An append or a second truncation arrived while [`Log::truncate_to`]
    /// ran; try again once it returns.
    #[error("log {dir} is being truncated")]
    Truncating { dir: PathBuf },
    /// A durability wait for an offset that [`Log::truncate_to`] removed.
    #[error("offset {offset} was removed by a truncation of the log to {end}")]
    Truncated { offset: i64, end: i64 },
}

impl LogError {
    pub(crate) fn io(path: &Path, source: io::Error) -> LogError {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn duplicate(&self) -> LogError {
        match self {
            LogError::Io { path, source } => LogError::Io {
                path: path.clone(),
                source: match source.raw_os_error() {
                    Some(errno) => io::Error::from_raw_os_error(errno),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            LogError::Failed { dir, reason } => LogError::Failed {
                dir: dir.clone(),
                reason: reason.clone(),
            },
            other => LogError::Failed {
                dir: PathBuf::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// Base offset of the segment holding the batch, and its position there.
    pub segment_base: Offset,
    pub position: u64,
}

/// The log's positions, see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start: Offset,
    pub written: Offset,
    pub durable: Offset,
    pub log_end: Offset,
}

/// Bytes of a segment file to send as they are.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<SegmentFile>,
    pub position: u64,
    pub len: u64,
}

impl FileSlice {
    /// Copies the bytes out (tools, tests, and the non-zero-copy path).
    pub async fn read_to_vec(&self) -> Result<Vec<u8>, LogError> {
        let (r, buf) = self
            .file
            .file
            .read_exact_at(vec![0; self.len as usize], self.position)
            .await;
        r.map_err(|e| LogError::io(&self.file.path, e))?;
        Ok(buf)
    }
}

/// One segment's part of a read: an answer, or an offset in a gap left by
/// compaction from which to go on.
enum ReadStep {
    Done(ReadResult),
    SkipTo(Offset),
}

/// The answer to a read: whole batches from one segment.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// `None` when nothing is readable at the offset yet.
    pub slice: Option<FileSlice>,
    /// Offset after the last batch in the slice (where the next read starts).
    pub next_offset: Offset,
    pub log_start: Offset,
    pub written: Offset,
}

/// A timestamp and the offset of the batch holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: Offset,
}

/// What retention removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub segments: usize,
    pub size_bytes: u64,
    pub segments_open: usize,
    pub indexes_loaded: usize,
    pub indexes_rebuilt: u64,
    pub fsyncs: u64,
    pub heap_bytes: usize,
}

struct Pending {
    batch: BytesMut,
    header: BatchHeader,
    reply: OneshotSender<Result<AppendInfo, LogError>>,
}

struct State {
    segments: BTreeMap<i64, Segment>,
    log_start: i64,
    log_end: i64,
    written: i64,
    durable: i64,
    queue: Vec<Pending>,
    durable_waiters: Vec<(i64, OneshotSender<Result<(), LogError>>)>,
    failed: Option<String>,
    closing: bool,
    dir_dirty: bool,
    /// Offset from which an unclean open rescans (last checkpointed).
    recovery_point: i64,
    /// Position of `written` (and the most recent read end) for tailing reads.
    hint: Option<(i64, i64, u64)>,
    loaded_order: Vec<i64>,
    stats: LogStats,
    /// Compaction: see [`cleaner`].
    cleaner: cleaner::CleanerState,
    /// [`Log::truncate_to`] is running: appends are refused, the flusher
    /// and retention hold off.
    truncating: bool,
    /// A truncation ran while a compaction pass was planned or running: its
    /// output may describe removed records, so its swap is discarded.
    truncated_while_cleaning: bool,
    /// A group commit (`flush_to`) is in flight.
    flushing: bool,
}

struct Inner {
    dir: Rc<PathBuf>,
    /// Replaced whole by [`Log::set_config`] (topic config changes).
    config: RefCell<LogConfig>,
    clock: Box<dyn Fn() -> i64>,
    state: RefCell<State>,
    write_wakeup: Notify,
    flush_wakeup: Notify,
    tasks: RefCell<Vec<JoinHandle<()>>>,
    tasks_started: Cell<bool>,
}

/// A partition log. Cheap to clone; all clones share one log and must stay
/// on the thread that opened it.
#[derive(Clone)]
pub struct Log {
    inner: Rc<Inner>,
}

pub fn system_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), LogError> {
        if self.segment_bytes < batch::HEADER_BYTES as u64 || self.segment_bytes > SEGMENT_BYTES_MAX
        {
            return Err(LogError::Config(format!(
                "segment.bytes {} must be in [{}, {}]",
                self.segment_bytes,
                batch::HEADER_BYTES,
                SEGMENT_BYTES_MAX
            )));
        }
        if self.index_interval_bytes == 0 {
            return Err(LogError::Config(
                "index.interval.bytes must be positive".into(),
            ));
        }
        if self.segment_ms.is_some_and(|ms| ms <= 0) {
            return Err(LogError::Config("segment.ms must be positive".into()));
        }
        if self.delete_retention_ms < 0 || self.min_compaction_lag_ms < 0 {
            return Err(LogError::Config(
                "delete.retention.ms and min.compaction.lag.ms must be non-negative".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(LogError::Config(format!(
                "min.cleanable.dirty.ratio {} must be in [0, 1]",
                self.min_cleanable_dirty_ratio
            )));
        }
        Ok(())
    }
}

impl Log {
    /// Opens (recovering if needed) or creates the log in `dir`.
    pub async fn open(dir: impl Into<PathBuf>, config: LogConfig) -> Result<Log, LogError> {
        Log::open_with_clock(dir, config, Box::new(system_clock_ms)).await
    }

    /// Like [`Log::open`] with an injected wall clock (ms), for tests.
    pub async fn open_with_clock(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        clock: Box<dyn Fn() -> i64>,
    ) -> Result<Log, LogError> {
        config.validate()?;
        let dir = Rc::new(dir.into());
        let now = clock();
        let recovered = recovery::open_dir(&dir, &config, now).await?;
        let state = State {
            segments: recovered.segments,
            log_start: recovered.log_start,
            log_end: recovered.next_offset,
            written: recovered.next_offset,
            durable: recovered.next_offset,
            queue: Vec::new(),
            durable_waiters: Vec::new(),
            failed: None,
            closing: false,
            dir_dirty: false,
            recovery_point: recovered.recovery_point,
            hint: None,
            loaded_order: Vec::new(),
            stats: LogStats {
                indexes_rebuilt: recovered.indexes_rebuilt,
                ..LogStats::default()
            },
            cleaner: cleaner::CleanerState::open(&dir)?,
            truncating: false,
            truncated_while_cleaning: false,
            flushing: false,
        };
        let inner = Rc::new(Inner {
            dir,
            config: RefCell::new(config),
            clock,
            state: RefCell::new(state),
            write_wakeup: Notify::new(),
            flush_wakeup: Notify::new(),
            tasks: RefCell::new(Vec::new()),
            tasks_started: Cell::new(false),
        });
        inner.set_written_hint();
        Ok(Log { inner })
    }

    fn start_tasks(&self) {
        if self.inner.tasks_started.replace(true) {
            return;
        }
        let writer = rt::spawn(writer_loop(self.inner.clone()));
        let flusher = rt::spawn(flusher_loop(self.inner.clone()));
        self.inner.tasks.borrow_mut().extend([writer, flusher]);
    }

    /// Applies new settings (a topic config change): later appends, rolls
    /// and retention passes use them; existing segments stay as they are.
    pub fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        config.validate()?;
        *self.inner.config.borrow_mut() = config;
        Ok(())
    }

    pub fn config(&self) -> LogConfig {
        self.inner.config()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn offsets(&self) -> LogOffsets {
        let s = self.inner.state.borrow();
        LogOffsets {
            log_start: Offset(s.log_start),
            written: Offset(s.written),
            durable: Offset(s.durable),
            log_end: Offset(s.log_end),
        }
    }

    /// Why the log refuses writes (a failed write or sync), if it does.
    pub fn failure(&self) -> Option<String> {
        self.inner.state.borrow().failed.clone()
    }

    /// Queues a batch as leader: assigns offsets starting at the log end,
    /// stamps `leader_epoch`, and resolves once the batch is written (not
    /// yet durable: see [`Log::wait_durable`]). The batch must already be
    /// validated by the caller (CRC, counts); the log checks its framing.
    pub fn append(
        &self,
        batch: BytesMut,
        leader_epoch: i32,
    ) -> impl std::future::Future<Output = Result<AppendInfo, LogError>> {
        let queued = self.enqueue(batch, Some(leader_epoch));
        async move { queued?.await.unwrap_or(Err(LogError::Closed)) }
    }

    /// Queues a batch whose offsets were assigned elsewhere (a follower
    /// copying its leader). Its base offset must be the log end.
    pub fn append_replica(
        &self,
        batch: BytesMut,
    ) -> impl std::future::Future<Output = Result<AppendInfo, LogError>> {
        let queued = self.enqueue(batch, None);
        async move { queued?.await.unwrap_or(Err(LogError::Closed)) }
    }

    fn enqueue(
        &self,
        mut batch: BytesMut,
        leader_epoch: Option<i32>,
    ) -> Result<crate::rt::sync::OneshotReceiver<Result<AppendInfo, LogError>>, LogError> {
        let header = batch::parse_exact(&batch)?;
        if header.size as u64 > self.inner.config().segment_bytes {
            return Err(LogError::BatchTooLarge {
                size: header.size,
                segment_bytes: self.inner.config().segment_bytes,
            });
        }
        let mut s = self.inner.state.borrow_mut();
        if s.closing {
            return Err(LogError::Closed);
        }
        if let Some(reason) = &s.failed {
            return Err(LogError::Failed {
                dir: self.inner.dir.to_path_buf(),
                reason: reason.clone(),
            });
        }
        if s.truncating {
            return Err(LogError::Truncating {
                dir: self.inner.dir.to_path_buf(),
            });
        }
        let header = match leader_epoch {
            Some(epoch) => {
                batch::assign(&mut batch, s.log_end, epoch);
                BatchHeader {
                    base_offset: s.log_end,
                    leader_epoch: epoch,
                    ..header
                }
            }
            None if header.base_offset != s.log_end => {
                return Err(LogError::OffsetOutOfRange {
                    offset: header.base_offset,
                    log_start: s.log_start,
                    log_end: s.log_end,
                });
            }
            None => header,
        };
        s.log_end = header.next_offset();
        let (reply, rx) = oneshot();
        s.queue.push(Pending {
            batch,
            header,
            reply,
        });
        drop(s);
        self.start_tasks();
        self.inner.write_wakeup.notify();
        Ok(rx)
    }

    /// Resolves once every offset below `offset` is durable.
    pub async fn wait_durable(&self, offset: Offset) -> Result<(), LogError> {
        let rx = {
            let mut s = self.inner.state.borrow_mut();
            if s.durable >= offset.0 {
                return Ok(());
            }
            if let Some(reason) = &s.failed {
                return Err(LogError::Failed {
                    dir: self.inner.dir.to_path_buf(),
                    reason: reason.clone(),
                });
            }
            if offset.0 > s.log_end {
                return Err(LogError::OffsetOutOfRange {
                    offset: offset.0,
                    log_start: s.log_start,
                    log_end: s.log_end,
                });
            }
            let (tx, rx) = oneshot();
            s.durable_waiters.push((offset.0, tx));
            rx
        };
        self.start_tasks();
        self.inner.flush_wakeup.notify();
        rx.await.unwrap_or(Err(LogError::Closed))
    }

    /// Reads whole batches from `start`, at most `max_bytes` unless the
    /// first batch alone is larger (it is returned whole, as Kafka does),
    /// never past `max_offset` (exclusive; e.g. the high watermark) nor past
    /// what is written. An offset inside a batch returns that whole batch.
    ///
    /// Compaction leaves gaps: an offset whose batch was removed reads from
    /// the next batch kept, in this segment or a later one.
    pub async fn read(
        &self,
        start: Offset,
        max_bytes: u64,
        max_offset: Option<Offset>,
    ) -> Result<ReadResult, LogError> {
        let mut from = start;
        loop {
            let epoch = self.inner.state.borrow().cleaner.swap_epoch;
            let step = self.read_once(from, max_bytes, max_offset).await?;
            if self.inner.state.borrow().cleaner.swap_epoch != epoch {
                continue; // compaction swapped segments under the read
            }
            match step {
                ReadStep::Done(result) => return Ok(result),
                ReadStep::SkipTo(next) => from = next,
            }
        }
    }

    async fn read_once(
        &self,
        start: Offset,
        max_bytes: u64,
        max_offset: Option<Offset>,
    ) -> Result<ReadStep, LogError> {
        let inner = &self.inner;
        let (log_start, written) = {
            let s = inner.state.borrow();
            (s.log_start, s.written)
        };
        if start.0 < log_start || start.0 > written {
            return Err(LogError::OffsetOutOfRange {
                offset: start.0,
                log_start,
                log_end: written,
            });
        }
        let upper = max_offset.map_or(written, |m| m.0.min(written));
        let empty = ReadResult {
            slice: None,
            next_offset: start,
            log_start: Offset(log_start),
            written: Offset(written),
        };
        if start.0 >= upper {
            return Ok(ReadStep::Done(empty));
        }
        let Some((seg_base, seg_end_offset)) = inner.segment_for(start.0) else {
            return Ok(ReadStep::Done(empty));
        };
        let file = inner.with_segment(seg_base, |seg| seg.file())??;
        let seg_size = inner.with_segment(seg_base, |seg| seg.size)?;
        let (first_pos, first_offset) = inner.locate(seg_base, start.0).await?;
        // The end of readable bytes in this segment.
        let (end_pos, end_offset) = if upper >= seg_end_offset {
            (seg_size, seg_end_offset)
        } else {
            inner.locate(seg_base, upper).await?
        };
        if first_pos >= end_pos {
            if seg_end_offset < upper && first_pos >= seg_size {
                return Ok(ReadStep::SkipTo(Offset(seg_end_offset)));
            }
            return Ok(ReadStep::Done(empty));
        }
        let (len, next) = inner
            .cut(seg_base, &file, first_pos, end_pos, max_bytes, end_offset)
            .await?;
        debug_assert!(next > first_offset);
        inner.state.borrow_mut().hint = Some((next, seg_base, first_pos + len));
        Ok(ReadStep::Done(ReadResult {
            slice: Some(FileSlice {
                file,
                position: first_pos,
                len,
            }),
            next_offset: Offset(next),
            log_start: Offset(log_start),
            written: Offset(written),
        }))
    }

    /// The first batch whose max timestamp is >= `timestamp` (ListOffsets
    /// by time), or `None` if every batch is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        let inner = &self.inner;
        let bases: Vec<i64> = inner.state.borrow().segments.keys().copied().collect();
        for base in bases {
            inner.ensure_indexes(base).await?;
            let (max_ts, relative) = {
                let s = inner.state.borrow();
                let Some(seg) = s.segments.get(&base) else {
                    continue;
                };
                let times = seg.times.as_ref().expect("indexes loaded");
                (seg.max_timestamp, times.lookup(timestamp))
            };
            if max_ts.is_none_or(|(ts, _)| ts < timestamp) {
                continue;
            }
            let log_start = inner.state.borrow().log_start;
            let from = (base + i64::from(relative)).max(log_start);
            let (pos, _) = inner.locate(base, from).await?;
            let (file, size) = inner.with_segment(base, |seg| (seg.file(), seg.size))?;
            let mut found = None;
            scan(&file?, pos, size, LOOKUP_CHUNK_BYTES, false, |h, _| {
                if h.max_timestamp >= timestamp && h.next_offset() > log_start {
                    found = Some(TimestampOffset {
                        timestamp: h.max_timestamp,
                        offset: Offset(h.base_offset.max(log_start)),
                    });
                    false
                } else {
                    true
                }
            })
            .await
            .map_err(|e| LogError::io(&inner.dir, e))?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the offset of its batch
    /// (ListOffsets MAX_TIMESTAMP).
    pub async fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        let bases: Vec<i64> = self.inner.state.borrow().segments.keys().copied().collect();
        let mut best: Option<TimestampOffset> = None;
        for base in bases {
            self.inner.ensure_indexes(base).await?;
            let s = self.inner.state.borrow();
            if let Some((ts, offset)) = s.segments.get(&base).and_then(|seg| seg.max_timestamp) {
                if best.is_none_or(|b| ts > b.timestamp) {
                    best = Some(TimestampOffset {
                        timestamp: ts,
                        offset: Offset(offset),
                    });
                }
            }
        }
        Ok(best)
    }

    /// Moves the log start forward (DeleteRecords), deleting segments that
    /// lie wholly below it. `offset` may not pass what is written.
    pub async fn advance_log_start(&self, offset: Offset) -> Result<Offset, LogError> {
        {
            let s = self.inner.state.borrow();
            if offset.0 > s.written {
                return Err(LogError::OffsetOutOfRange {
                    offset: offset.0,
                    log_start: s.log_start,
                    log_end: s.written,
                });
            }
            if offset.0 <= s.log_start {
                return Ok(Offset(s.log_start));
            }
        }
        // Persist first: if the checkpoint cannot be written, nothing
        // changes and the caller sees the error.
        checkpoint::write_log_start(&self.inner.dir, offset.0)?;
        {
            let mut s = self.inner.state.borrow_mut();
            s.log_start = s.log_start.max(offset.0);
        }
        self.delete_segments(|_, _, next_base, s| next_base <= s.log_start)?;
        Ok(Offset(self.inner.state.borrow().log_start))
    }

    /// Deletes sealed segments past `retention.ms` (by their largest
    /// timestamp) or beyond `retention.bytes`, oldest first, and segments
    /// below the log start. Slices already handed out stay readable.
    pub async fn apply_retention(&self) -> Result<RetentionOutcome, LogError> {
        let bases: Vec<i64> = self.inner.state.borrow().segments.keys().copied().collect();
        if let Some(&last) = bases.last() {
            for &base in bases.iter().filter(|&&b| b != last) {
                if self.inner.config().retention_ms.is_some() {
                    self.inner.ensure_max_timestamp(base)?;
                }
            }
        }
        let now = (self.inner.clock)();
        let config = self.inner.config();
        let mut total: u64 = self
            .inner
            .state
            .borrow()
            .segments
            .values()
            .map(|s| s.size)
            .sum();
        let outcome = self.delete_segments(|seg_size, max_ts, next_base, s| {
            let by_start = next_base <= s.log_start;
            let by_time = config
                .retention_ms
                .zip(max_ts)
                .is_some_and(|(ms, ts)| now.saturating_sub(ts) > ms);
            let by_size = config
                .retention_bytes
                .is_some_and(|limit| total - seg_size >= limit);
            let delete = by_start || by_time || by_size;
            if delete {
                total -= seg_size;
            }
            delete
        })?;
        if outcome.segments_deleted > 0 {
            let log_start = self.inner.state.borrow().log_start;
            checkpoint::write_log_start(&self.inner.dir, log_start)?;
        }
        Ok(outcome)
    }

    /// Deletes sealed segments from the oldest while `doomed(size, max
    /// timestamp, next segment's base, state)` holds.
    fn delete_segments(
        &self,
        mut doomed: impl FnMut(u64, Option<i64>, i64, &State) -> bool,
    ) -> Result<RetentionOutcome, LogError> {
        let mut outcome = RetentionOutcome::default();
        let mut s = self.inner.state.borrow_mut();
        if s.cleaner.swapping || s.truncating {
            // A compaction swap is replacing sealed segments, or a
            // truncation is cutting the log; the next retention pass
            // deletes what is due.
            return Ok(outcome);
        }
        loop {
            let mut keys = s.segments.keys();
            let (Some(&oldest), Some(&next_base)) = (keys.next(), keys.next()) else {
                break; // never delete the active segment
            };
            let seg = &s.segments[&oldest];
            if !doomed(seg.size, seg.max_timestamp.map(|(ts, _)| ts), next_base, &s) {
                break;
            }
            let seg = s.segments.remove(&oldest).expect("present");
            seg.delete_files()?;
            s.loaded_order.retain(|&b| b != oldest);
            s.log_start = s.log_start.max(next_base);
            s.dir_dirty = true;
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += seg.size;
        }
        Ok(outcome)
    }

    /// Rolls the active segment if `segment.ms` has passed since it was
    /// created and it holds data. Appends check this too.
    pub async fn roll_if_due(&self) -> Result<bool, LogError> {
        let due = {
            let s = self.inner.state.borrow();
            let (_, active) = s
                .segments
                .last_key_value()
                .expect("a log has an active segment");
            s.queue.is_empty() && !s.truncating && self.inner.roll_due_by_time(active)
        };
        if due {
            let base = self.inner.state.borrow().written;
            self.inner.roll(base).await?;
        }
        Ok(due)
    }

    /// Checks every batch's framing and CRC-32C, for the validation tool.
    /// Returns the first corruption found, if any.
    pub async fn verify(&self) -> Result<Option<LogError>, LogError> {
        let segments: Vec<(i64, u64)> = {
            let s = self.inner.state.borrow();
            s.segments.iter().map(|(&b, seg)| (b, seg.size)).collect()
        };
        for (base, size) in segments {
            let file = self.inner.with_segment(base, |seg| seg.file())??;
            file.advise_sequential();
            let end = scan(&file, 0, size, segment::SCAN_CHUNK_BYTES, true, |_, _| true)
                .await
                .map_err(|e| LogError::io(&file.path, e))?;
            if let Some(e) = end.corruption(&file.path) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    pub fn stats(&self) -> LogStats {
        let s = self.inner.state.borrow();
        LogStats {
            segments: s.segments.len(),
            size_bytes: s.segments.values().map(|seg| seg.size).sum(),
            segments_open: s.segments.values().filter(|seg| seg.is_open()).count(),
            indexes_loaded: s
                .segments
                .values()
                .filter(|seg| seg.indexes_loaded())
                .count(),
            heap_bytes: std::mem::size_of::<Inner>()
                + s.segments.values().map(Segment::heap_bytes).sum::<usize>()
                + s.queue.capacity() * std::mem::size_of::<Pending>(),
            ..s.stats
        }
    }

    /// Writes everything queued, makes it durable, writes the indexes and
    /// the clean-shutdown marker. The next open skips recovery.
    pub async fn close(self) -> Result<(), LogError> {
        let inner = self.inner;
        inner.state.borrow_mut().closing = true;
        inner.write_wakeup.notify();
        inner.flush_wakeup.notify();
        let tasks = std::mem::take(&mut *inner.tasks.borrow_mut());
        for task in tasks {
            task.await;
        }
        if let Some(reason) = inner.state.borrow().failed.clone() {
            return Err(LogError::Failed {
                dir: inner.dir.to_path_buf(),
                reason,
            });
        }
        while inner.state.borrow().truncating {
            rt::time::sleep(truncate::BUSY_POLL).await;
        }
        inner.sync_all().await?;
        let durable = inner.state.borrow().durable;
        for (offset, tx) in std::mem::take(&mut inner.state.borrow_mut().durable_waiters) {
            tx.send(if offset <= durable {
                Ok(())
            } else {
                Err(LogError::Closed)
            });
        }
        let bases: Vec<i64> = inner.state.borrow().segments.keys().copied().collect();
        for base in bases {
            let files =
                inner.with_segment(base, |seg| seg.index_dirty.then(|| seg.encoded_indexes()))?;
            if let Some(files) = files {
                segment::write_index_files(files).await?;
                if let Some(seg) = inner.state.borrow_mut().segments.get_mut(&base) {
                    seg.index_dirty = false;
                }
            }
        }
        let next_offset = inner.state.borrow().written;
        checkpoint::write_clean_shutdown(&inner.dir, next_offset)?;
        Ok(())
    }
}

impl Inner {
    /// A copy of the current settings (small; never held across awaits).
    fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    fn with_segment<R>(&self, base: i64, f: impl FnOnce(&Segment) -> R) -> Result<R, LogError> {
        let s = self.state.borrow();
        match s.segments.get(&base) {
            Some(seg) => Ok(f(seg)),
            None => Err(LogError::OffsetOutOfRange {
                offset: base,
                log_start: s.log_start,
                log_end: s.written,
            }),
        }
    }

    /// The segment holding `offset` and the offset where it ends.
    fn segment_for(&self, offset: i64) -> Option<(i64, i64)> {
        let s = self.state.borrow();
        let (&base, _) = s.segments.range(..=offset).next_back()?;
        let end = s
            .segments
            .range(base + 1..)
            .next()
            .map_or(s.written, |(&next, _)| next);
        Some((base, end))
    }

    fn set_written_hint(&self) {
        let mut s = self.state.borrow_mut();
        let written = s.written;
        if let Some((&base, seg)) = s.segments.last_key_value() {
            let size = seg.size;
            s.hint = Some((written, base, size));
        }
    }

    fn roll_due_by_time(&self, active: &Segment) -> bool {
        active.size > 0
            && self
                .config()
                .segment_ms
                .is_some_and(|ms| (self.clock)().saturating_sub(active.created_ms) >= ms)
    }

    /// Loads a sealed segment's indexes, rebuilding them from the log if
    /// the files are missing or fail their sanity check.
    async fn ensure_indexes(&self, base: i64) -> Result<(), LogError> {
        let loaded = {
            let mut s = self.state.borrow_mut();
            let Some(seg) = s.segments.get_mut(&base) else {
                return Ok(());
            };
            if seg.indexes_loaded() {
                return Ok(());
            }
            let ok = seg.load_indexes();
            if ok {
                s.loaded_order.push(base);
            }
            ok
        };
        if !loaded {
            self.rebuild_indexes(base).await?;
            self.state.borrow_mut().loaded_order.push(base);
        }
        self.evict_indexes();
        Ok(())
    }

    fn evict_indexes(&self) {
        let mut s = self.state.borrow_mut();
        let active = *s.segments.keys().next_back().expect("active segment");
        while s.loaded_order.len() > self.config().loaded_indexes_max {
            let victim = s.loaded_order.remove(0);
            if victim == active {
                continue;
            }
            if let Some(seg) = s.segments.get_mut(&victim) {
                if !seg.index_dirty {
                    seg.offsets = None;
                    seg.times = None;
                }
            }
        }
    }

    fn ensure_max_timestamp(&self, base: i64) -> Result<(), LogError> {
        let mut s = self.state.borrow_mut();
        let Some(seg) = s.segments.get_mut(&base) else {
            return Ok(());
        };
        if seg.max_timestamp.is_none() && seg.size > 0 {
            seg.max_timestamp = checkpoint::read_last_time_entry(&seg.path(".timeindex"), base);
        }
        Ok(())
    }

    async fn rebuild_indexes(&self, base: i64) -> Result<(), LogError> {
        let (file, size) = self.with_segment(base, |seg| (seg.file(), seg.size))?;
        let file = file?;
        let interval = self.config().index_interval_bytes;
        let rebuilt = segment::scan_indexes(self.dir.clone(), base, &file, size, interval).await?;
        let mut s = self.state.borrow_mut();
        s.stats.indexes_rebuilt += 1;
        if let Some(seg) = s.segments.get_mut(&base) {
            seg.adopt_indexes(rebuilt);
        }
        Ok(())
    }

    /// Finds the position of the batch holding `offset` in segment `base`,
    /// and that batch's base offset. `offset` at the segment's end maps to
    /// its size.
    async fn locate(&self, base: i64, offset: i64) -> Result<(u64, i64), LogError> {
        if let Some((hint_offset, hint_base, pos)) = self.state.borrow().hint {
            if hint_offset == offset && hint_base == base {
                return Ok((pos, offset));
            }
        }
        self.ensure_indexes(base).await?;
        let (file, size, from) = {
            let s = self.state.borrow();
            let seg = s.segments.get(&base).ok_or(LogError::OffsetOutOfRange {
                offset,
                log_start: s.log_start,
                log_end: s.written,
            })?;
            let relative = u32::try_from(offset - base).unwrap_or(u32::MAX);
            let from = seg
                .offsets
                .as_ref()
                .expect("indexes loaded")
                .lookup(relative);
            (seg.file()?, seg.size, u64::from(from))
        };
        let mut found = (size, offset);
        let end = scan(&file, from, size, LOOKUP_CHUNK_BYTES, false, |h, pos| {
            if h.last_offset() >= offset {
                found = (pos, h.base_offset);
                false
            } else {
                true
            }
        })
        .await
        .map_err(|e| LogError::io(&file.path, e))?;
        match end.corruption(&file.path) {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Cuts `[first, end)` at a batch boundary within `max_bytes` (at least
    /// one batch). Returns the length and the offset after the last batch.
    async fn cut(
        &self,
        base: i64,
        file: &Arc<SegmentFile>,
        first: u64,
        end: u64,
        max_bytes: u64,
        end_offset: i64,
    ) -> Result<(u64, i64), LogError> {
        if end - first <= max_bytes {
            return Ok((end - first, end_offset));
        }
        let limit = first + max_bytes;
        // Start the header walk at the last indexed boundary below the limit.
        let from = {
            let s = self.state.borrow();
            s.segments
                .get(&base)
                .and_then(|seg| seg.offsets.as_ref())
                .and_then(|ix| ix.floor_position(u32::try_from(limit).unwrap_or(u32::MAX)))
                .map_or(first, u64::from)
                .max(first)
        };
        let mut cut_at = None;
        let walk = scan(file, from, end, LOOKUP_CHUNK_BYTES, false, |h, pos| {
            let batch_end = pos + h.size as u64;
            if batch_end <= limit || pos == first {
                cut_at = Some((batch_end, h.next_offset()));
                batch_end < limit
            } else {
                // The walk began at an indexed boundary past `first` whose
                // batch does not fit: cut right before it.
                cut_at.get_or_insert((pos, h.base_offset));
                false
            }
        })
        .await
        .map_err(|e| LogError::io(&file.path, e))?;
        if let Some(e) = walk.corruption(&file.path) {
            return Err(e);
        }
        let (cut_pos, next) = cut_at.expect("the first batch is always taken");
        Ok((cut_pos - first, next))
    }

    /// Makes every written byte durable (used by close).
    async fn sync_all(&self) -> Result<(), LogError> {
        let written = self.state.borrow().written;
        self.flush_to(written).await
    }

    /// One group-commit round: fdatasync every file with unsynced bytes
    /// (they form a suffix of the segments) and the directory if its
    /// entries changed; then advance `durable` to `target`, the `written`
    /// offset sampled before the syncs started.
    async fn flush_to(&self, target: i64) -> Result<(), LogError> {
        self.state.borrow_mut().flushing = true;
        let result = self.flush_to_inner(target).await;
        self.state.borrow_mut().flushing = false;
        result
    }

    async fn flush_to_inner(&self, target: i64) -> Result<(), LogError> {
        let (files, dir_dirty) = {
            let mut s = self.state.borrow_mut();
            let files: Vec<(i64, u64, Arc<SegmentFile>)> = s
                .segments
                .iter()
                .rev()
                .enumerate()
                .take_while(|(i, (_, seg))| *i == 0 || seg.synced < seg.size)
                .filter(|(_, (_, seg))| seg.synced < seg.size)
                .map(|(_, (&base, seg))| seg.file().map(|f| (base, seg.size, f)))
                .collect::<Result<_, _>>()?;
            (files, std::mem::take(&mut s.dir_dirty))
        };
        for (base, size, file) in files.iter().rev() {
            file.file
                .datasync()
                .await
                .map_err(|e| LogError::io(&file.path, e))?;
            let mut s = self.state.borrow_mut();
            s.stats.fsyncs += 1;
            if let Some(seg) = s.segments.get_mut(base) {
                seg.synced = seg.synced.max(*size);
            }
        }
        if dir_dirty {
            let dir = crate::rt::fs::open_dir(&self.dir).map_err(|e| LogError::io(&self.dir, e))?;
            dir.fsync().await.map_err(|e| LogError::io(&self.dir, e))?;
        }
        let mut s = self.state.borrow_mut();
        s.durable = s.durable.max(target);
        // Recovery after a crash must rescan from the oldest segment that
        // may hold unsynced bytes.
        let point = s
            .segments
            .iter()
            .find(|(_, seg)| seg.synced < seg.size)
            .or_else(|| s.segments.last_key_value())
            .map(|(&base, _)| base)
            .expect("active segment");
        if point > s.recovery_point && !s.dir_dirty {
            s.recovery_point = point;
            drop(s);
            checkpoint::write_recovery_point(&self.dir, point)?;
        }
        Ok(())
    }

    /// Seals the active segment (writing its indexes) and starts a new one
    /// at `base`.
    async fn roll(&self, base: i64) -> Result<(), LogError> {
        let old_base = *self
            .state
            .borrow()
            .segments
            .keys()
            .next_back()
            .expect("active");
        if old_base == base {
            return Ok(()); // the active segment is empty and already at base
        }
        // Indexes first: if the disk is full, no new file is left behind.
        let files = self.with_segment(old_base, Segment::encoded_indexes)?;
        segment::write_index_files(files).await?;
        let new = Segment::create(self.dir.clone(), base, (self.clock)())?;
        let mut s = self.state.borrow_mut();
        if let Some(old) = s.segments.get_mut(&old_base) {
            old.index_dirty = false;
        }
        s.segments.insert(base, new);
        s.loaded_order.push(old_base);
        s.dir_dirty = true;
        drop(s);
        self.evict_indexes();
        Ok(())
    }

    /// Fails every queued append and every durability wait past `written`:
    /// their offsets will be assigned again.
    fn fail_queue(&self, error: &LogError) {
        let mut s = self.state.borrow_mut();
        let queue = std::mem::take(&mut s.queue);
        s.log_end = s.written;
        let written = s.written;
        let (orphaned, waiting) = std::mem::take(&mut s.durable_waiters)
            .into_iter()
            .partition(|(o, _)| *o > written);
        s.durable_waiters = waiting;
        drop(s);
        for p in queue {
            p.reply.send(Err(error.duplicate()));
        }
        for (_, tx) in orphaned {
            tx.send(Err(error.duplicate()));
        }
    }

    /// Writes one group of queued appends, rolling as needed.
    async fn write_group(&self, group: Vec<Pending>) {
        let mut run: Vec<Pending> = Vec::new();
        let mut run_bytes = 0u64;
        let mut rest = group.into_iter();
        while let Some(p) = rest.next() {
            let must_roll = {
                let s = self.state.borrow();
                let active = s.segments.last_key_value().expect("active").1;
                let size = active.size + run_bytes;
                let relative_overflow = p.header.last_offset() - active.base > i64::from(u32::MAX);
                size > 0
                    && (size + p.header.size as u64 > self.config().segment_bytes
                        || relative_overflow
                        || (run.is_empty() && self.roll_due_by_time(active)))
            };
            if must_roll {
                let done = self.write_run(std::mem::take(&mut run)).await;
                run_bytes = 0;
                let rolled = match done {
                    Ok(()) => self.roll(p.header.base_offset).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = rolled {
                    p.reply.send(Err(e.duplicate()));
                    for p in rest {
                        p.reply.send(Err(e.duplicate()));
                    }
                    self.fail_queue(&e);
                    return;
                }
            }
            run_bytes += p.header.size as u64;
            run.push(p);
        }
        if let Err(e) = self.write_run(run).await {
            self.fail_queue(&e);
        }
    }

    /// Appends `run` to the active segment with one WRITEV. On failure the
    /// segment is cut back to its previous size and every append in the run
    /// gets the error.
    async fn write_run(&self, run: Vec<Pending>) -> Result<(), LogError> {
        if run.is_empty() {
            return Ok(());
        }
        let (base, position, file) = {
            let s = self.state.borrow();
            let (&base, active) = s.segments.last_key_value().expect("active");
            (base, active.size, active.file())
        };
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                for p in run {
                    p.reply.send(Err(e.duplicate()));
                }
                return Err(e);
            }
        };
        let (headers, replies, bufs): (Vec<_>, Vec<_>, Vec<_>) = {
            let mut headers = Vec::with_capacity(run.len());
            let mut replies = Vec::with_capacity(run.len());
            let mut bufs = Vec::with_capacity(run.len());
            for p in run {
                headers.push(p.header);
                replies.push(p.reply);
                bufs.push(p.batch);
            }
            (headers, replies, bufs)
        };
        let (result, _bufs) = file.file.writev_all_at(bufs, position).await;
        if let Err(source) = result {
            let error = LogError::io(&file.path, source);
            // Undo a partial write so the segment ends on a whole batch.
            if let Err(e) = file.file.set_len(position) {
                let reason = format!("cannot cut {} back to {position}: {e}", file.path.display());
                self.state.borrow_mut().failed = Some(reason);
            }
            for reply in replies {
                reply.send(Err(error.duplicate()));
            }
            return Err(error);
        }
        let interval = self.config().index_interval_bytes;
        let mut infos = Vec::with_capacity(headers.len());
        {
            let mut s = self.state.borrow_mut();
            let seg = s.segments.get_mut(&base).expect("active");
            let mut pos = position;
            for h in &headers {
                seg.index_batch(h, pos, interval);
                infos.push(AppendInfo {
                    base_offset: Offset(h.base_offset),
                    last_offset: Offset(h.last_offset()),
                    segment_base: Offset(base),
                    position: pos,
                });
                pos += h.size as u64;
            }
            seg.size = pos;
            let written = headers.last().expect("non-empty run").next_offset();
            s.written = written;
            s.hint = Some((written, base, pos));
        }
        for (reply, info) in replies.into_iter().zip(infos) {
            reply.send(Ok(info));
        }
        Ok(())
    }
}

async fn writer_loop(inner: Rc<Inner>) {
    loop {
        loop {
            let group = std::mem::take(&mut inner.state.borrow_mut().queue);
            if group.is_empty() {
                break;
            }
            inner.write_group(group).await;
            // Waiters for durability may now be satisfiable.
            if !inner.state.borrow().durable_waiters.is_empty() {
                inner.flush_wakeup.notify();
            }
        }
        if inner.state.borrow().closing {
            inner.flush_wakeup.notify();
            return;
        }
        inner.write_wakeup.notified().await;
    }
}

async fn flusher_loop(inner: Rc<Inner>) {
    loop {
        loop {
            let (target, wanted) = {
                let s = inner.state.borrow();
                let wanted = !s.truncating
                    && s.durable_waiters
                        .iter()
                        .any(|(o, _)| *o <= s.written && *o > s.durable);
                (s.written, wanted)
            };
            if !wanted {
                break;
            }
            let result = inner.flush_to(target).await;
            let mut s = inner.state.borrow_mut();
            if let Err(e) = &result {
                s.failed = Some(e.to_string());
            }
            let durable = s.durable;
            let failed = s.failed.clone();
            let waiters = std::mem::take(&mut s.durable_waiters);
            let (ready, waiting): (Vec<_>, Vec<_>) = waiters
                .into_iter()
                .partition(|(o, _)| *o <= durable || failed.is_some());
            s.durable_waiters = waiting;
            drop(s);
            for (_, tx) in ready {
                tx.send(match &failed {
                    None => Ok(()),
                    Some(reason) => Err(LogError::Failed {
                        dir: inner.dir.to_path_buf(),
                        reason: reason.clone(),
                    }),
                });
            }
            if failed.is_some() {
                break;
            }
        }
        if inner.state.borrow().closing && inner.state.borrow().queue.is_empty() {
            return;
        }
        inner.flush_wakeup.notified().await;
    }
}

#[cfg(test)]
mod tests;
