//! The owner shard's half of compaction: deciding a pass is due, handing
//! a [`CleanJob`] to a thread of its own, and swapping the cleaned
//! segments in. The algorithm and the on-disk protocol are described in
//! [`super::compact`].
//!
//! The shard never waits on the cleaner's I/O: while the job runs, the
//! shard keeps appending (to the active segment, which is never cleaned),
//! serving reads and rolling. Only the swap runs here: a few renames and
//! unlinks per cleaned segment and one directory fsync.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::compact::{self, CleanJob, CleanOutput, CleanSettings, CleanStats, JobSegment};
use super::segment::{self, file_name, Segment};
use super::{checkpoint, Log, LogError};
use crate::rt;

/// How often the shard checks whether the cleaner thread is done.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Per-log compaction state.
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// The cleaner checkpoint: segments ending at or below it are clean.
    pub first_dirty: i64,
    /// A pass is planned or running.
    pub cleaning: bool,
    /// A swap is between its commit point and its end: retention waits.
    pub swapping: bool,
    /// Bumped by every swap; reads that straddle one start over.
    pub swap_epoch: u64,
    /// When the earliest tombstone left by the last pass may go.
    pub tombstone_due_ms: Option<i64>,
    pub passes: u64,
}

impl CleanerState {
    pub fn open(dir: &Path) -> Result<CleanerState, LogError> {
        Ok(CleanerState {
            first_dirty: checkpoint::read_cleaner_offset(dir)?.unwrap_or(0),
            ..CleanerState::default()
        })
    }
}

/// The dirty share of a compacted log, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerView {
    pub first_dirty: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    pub passes: u64,
}

fn dup(file: &impl AsRawFd, path: &Path) -> Result<std::fs::File, LogError> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup of a descriptor we own; the new one is owned by the File.
    let fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(LogError::io(path, std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

impl Log {
    /// The cleaner checkpoint and the clean and dirty bytes of the sealed
    /// segments.
    pub fn cleaner_view(&self) -> CleanerView {
        let s = self.inner.state.borrow();
        let bases: Vec<i64> = s.segments.keys().copied().collect();
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        for pair in bases.windows(2) {
            let size = s.segments[&pair[0]].size;
            if pair[1] <= s.cleaner.first_dirty {
                clean_bytes += size;
            } else {
                dirty_bytes += size;
            }
        }
        CleanerView {
            first_dirty: s.cleaner.first_dirty,
            clean_bytes,
            dirty_bytes,
            passes: s.cleaner.passes,
        }
    }

    /// Plans a compaction pass if one is due: the log is compacted, no pass
    /// is running, and the cleanable dirty bytes reach
    /// `min.cleanable.dirty.ratio` of the sealed bytes (or a kept
    /// tombstone's horizon has passed). Marks the log as cleaning.
    pub fn start_clean(&self) -> Result<Option<CleanJob>, LogError> {
        let config = self.inner.config();
        if !config.compact || self.inner.state.borrow().cleaner.cleaning {
            return Ok(None);
        }
        let now = (self.inner.clock)();
        let bases: Vec<i64> = self.inner.state.borrow().segments.keys().copied().collect();
        for &base in bases.iter().rev().skip(1) {
            self.inner.ensure_max_timestamp(base)?;
        }
        let mut s = self.inner.state.borrow_mut();
        // As in Kafka, the segment holding the last batch is never cleaned
        // (Kafka's active segment always holds it: it rolls on append
        // only). A time-based roll here can leave an empty active segment;
        // cleaning the one before it could remove the log's last batches
        // and leave consumers at the end facing a gap they cannot pass.
        let last_data_base = s
            .segments
            .range(..s.written)
            .next_back()
            .map_or(i64::MIN, |(&base, _)| base);
        let first_dirty = s.cleaner.first_dirty;
        let lag_limit = now.saturating_sub(config.min_compaction_lag_ms);
        // Sealed segments, up to the first one too young to clean.
        let mut cleanable = Vec::new();
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        for pair in bases.windows(2) {
            if pair[0] >= last_data_base {
                break;
            }
            let seg = &s.segments[&pair[0]];
            let dirty = pair[1] > first_dirty;
            if dirty && seg.max_timestamp.is_some_and(|(ts, _)| ts > lag_limit) {
                break;
            }
            if dirty {
                dirty_bytes += seg.size;
            } else {
                clean_bytes += seg.size;
            }
            cleanable.push((pair[0], pair[1], seg.size));
        }
        let total = clean_bytes + dirty_bytes;
        let by_ratio = dirty_bytes > 0
            && dirty_bytes as f64 >= config.min_cleanable_dirty_ratio * total as f64;
        let by_tombstone = clean_bytes > 0 && s.cleaner.tombstone_due_ms.is_some_and(|t| t <= now);
        if !by_ratio && !by_tombstone {
            return Ok(None);
        }
        let mut segments = Vec::with_capacity(cleanable.len());
        for (base, next_base, size) in cleanable {
            let seg = &s.segments[&base];
            let file = seg.file()?;
            segments.push(JobSegment {
                base,
                next_base,
                size,
                path: file.path.clone(),
                file: dup(&file.file, &file.path)?,
            });
        }
        s.cleaner.cleaning = true;
        Ok(Some(CleanJob {
            dir: self.inner.dir.to_path_buf(),
            segments,
            first_dirty,
            settings: CleanSettings {
                now_ms: now,
                delete_retention_ms: config.delete_retention_ms,
                segment_bytes: config.segment_bytes,
                index_interval_bytes: config.index_interval_bytes,
                key_map_bytes_max: config.cleaner_key_map_bytes_max,
            },
        }))
    }

    /// Runs a due pass: the job on a thread of its own, the swap here.
    /// `None` when no pass was due.
    pub async fn compact(&self) -> Result<Option<CleanStats>, LogError> {
        let Some(job) = self.start_clean()? else {
            return Ok(None);
        };
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("ringtail-cleaner".into())
            .spawn(move || {
                let _ = tx.send(job.run());
            });
        let output = match spawned {
            Err(e) => Err(LogError::io(&self.inner.dir, e)),
            Ok(_) => loop {
                match rx.try_recv() {
                    Ok(output) => break output,
                    Err(mpsc::TryRecvError::Empty) => rt::time::sleep(POLL_INTERVAL).await,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        break Err(LogError::Compaction {
                            path: self.inner.dir.to_path_buf(),
                            position: 0,
                            reason: "the cleaner thread panicked".into(),
                        })
                    }
                }
            },
        };
        self.finish_clean(output).await
    }

    /// Swaps a finished pass in (see [`compact`] for the protocol), or
    /// discards it if retention removed a segment it replaces meanwhile.
    /// `None` when it was discarded.
    pub async fn finish_clean(
        &self,
        output: Result<CleanOutput, LogError>,
    ) -> Result<Option<CleanStats>, LogError> {
        let result = self.swap(output).await;
        let mut s = self.inner.state.borrow_mut();
        s.cleaner.cleaning = false;
        s.cleaner.swapping = false;
        s.truncated_while_cleaning = false;
        result
    }

    async fn swap(
        &self,
        output: Result<CleanOutput, LogError>,
    ) -> Result<Option<CleanStats>, LogError> {
        let dir = self.inner.dir.clone();
        let mut output = match output {
            Ok(output) => output,
            Err(e) => {
                remove_all_cleaned(&dir);
                return Err(e);
            }
        };
        let intact = {
            let s = self.inner.state.borrow();
            // A truncation during the pass may have removed what it read.
            !s.truncated_while_cleaning
                && output.cleaned.iter().all(|c| {
                    c.replaced.iter().all(|(base, size)| {
                        s.segments.get(base).is_some_and(|seg| seg.size == *size)
                    })
                })
        };
        if !intact {
            remove_all_cleaned(&dir);
            return Ok(None);
        }
        // The commit point: every cleaned segment renamed to `.swap`, and
        // the directory synced.
        let busy = Instant::now();
        self.inner.state.borrow_mut().cleaner.swapping = true;
        for c in &output.cleaned {
            let from = dir.join(compact::cleaned_name(c.base, ".log"));
            let to = dir.join(format!(
                "{}{}",
                file_name(c.base, ".log"),
                compact::SWAP_SUFFIX
            ));
            std::fs::rename(&from, &to).map_err(|e| LogError::io(&to, e))?;
        }
        let mut busy_micros = busy.elapsed().as_micros() as u64;
        if !output.cleaned.is_empty() {
            let d = rt::fs::open_dir(&dir).map_err(|e| LogError::io(&dir, e))?;
            d.fsync().await.map_err(|e| LogError::io(&dir, e))?;
        }
        // No await from here on: the segment map changes at once.
        let busy = Instant::now();
        let first_dirty = self.install(&mut output)?;
        self.inner.set_written_hint();
        self.inner.evict_indexes();
        busy_micros += busy.elapsed().as_micros() as u64;
        output.stats.swap_busy_micros = busy_micros;
        // If this checkpoint is lost, the next pass cleans the range again.
        let path = dir.join(checkpoint::CLEANER_OFFSET);
        segment::write_index_files(vec![(path, checkpoint::encode(first_dirty))]).await?;
        let d = rt::fs::open_dir(&dir).map_err(|e| LogError::io(&dir, e))?;
        d.fsync().await.map_err(|e| LogError::io(&dir, e))?;
        Ok(Some(output.stats))
    }
}

impl Log {
    /// The swap's second half, after the commit point: deletes the
    /// replaced segments, gives the new files their final names and puts
    /// them in the segment map. Returns the new cleaner checkpoint.
    fn install(&self, output: &mut CleanOutput) -> Result<i64, LogError> {
        let dir = self.inner.dir.clone();
        let mut s = self.inner.state.borrow_mut();
        // Reads in flight start over, and their hints may point into a
        // replaced segment.
        s.cleaner.swap_epoch += 1;
        s.hint = None;
        s.dir_dirty = true;
        for c in std::mem::take(&mut output.cleaned) {
            for (base, _) in &c.replaced {
                if let Some(old) = s.segments.remove(base) {
                    old.delete_files()?;
                }
                s.loaded_order.retain(|b| b != base);
            }
            for suffix in [".index", ".timeindex"] {
                let from = dir.join(compact::cleaned_name(c.base, suffix));
                let to = dir.join(file_name(c.base, suffix));
                std::fs::rename(&from, &to).map_err(|e| LogError::io(&to, e))?;
            }
            let swap = dir.join(format!(
                "{}{}",
                file_name(c.base, ".log"),
                compact::SWAP_SUFFIX
            ));
            let target = dir.join(file_name(c.base, ".log"));
            std::fs::rename(&swap, &target).map_err(|e| LogError::io(&target, e))?;
            let mut seg = Segment::new_lazy(Rc::clone(&dir), c.base, c.size, (self.inner.clock)());
            seg.offsets = Some(c.offsets);
            seg.times = Some(c.times);
            seg.max_timestamp = c.max_timestamp;
            seg.bytes_since_entry = c.bytes_since_entry;
            s.segments.insert(c.base, seg);
            s.loaded_order.push(c.base);
        }
        s.cleaner.passes += 1;
        s.cleaner.first_dirty = s.cleaner.first_dirty.max(output.first_dirty);
        s.cleaner.tombstone_due_ms = output.tombstone_due_ms;
        Ok(s.cleaner.first_dirty)
    }
}

/// Removes every `.cleaned` file (an abandoned or failed pass).
fn remove_all_cleaned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(compact::CLEANED_SUFFIX))
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
