//! Truncation by offset: Kafka's `Log.truncateTo` (a follower cutting the
//! records its new leader does not have, KIP-101) and, below the log
//! start, `truncateFullyAndStartAt`.
//!
//! # Protocol
//!
//! 1. Appends are refused ([`LogError::Truncating`]) from the call until it
//!    returns; appends queued before it are written first, and a group
//!    commit or a compaction swap in flight is waited for.
//! 2. The cut is found: the segment holding `end` and the position of the
//!    batch holding it (a batch straddling `end` goes whole, so the log
//!    ends at that batch's base).
//! 3. With no await in between, the segment map and the offsets change:
//!    later segments are unlinked (newest first), the cut segment's size,
//!    indexes, max timestamp and index spacing are cut, `written`,
//!    `log_end` and `durable` drop to the new end, durability waits past it
//!    fail with [`LogError::Truncated`], the recovery point and the cleaner
//!    checkpoint are lowered, reads in flight start over.
//! 4. The directory is fsynced, then the segment file is cut (ftruncate)
//!    and fdatasynced, its index files rewritten, and every earlier byte
//!    made durable (a group commit). Only then does the call return, so a
//!    reopen (clean or not) finds the same end.
//!
//! A crash at any point leaves a prefix of the old log at least as long as
//! the new one (segments go newest first, and the cut segment is cut only
//! after the deletions are durable), never a log with a hole; the caller,
//! which saw no answer, truncates again.
//!
//! # Compaction
//!
//! A cleaner pass planned before the truncation may have read records the
//! truncation removes; if its swap went ahead, it could put them back (a
//! removed segment recreated at the same base and size passes the swap's
//! size check). So a truncation that overlaps a pass marks it, and the
//! swap discards that pass's output (the next pass cleans again). A swap
//! already past its commit point is waited for instead: its `.swap` files
//! would otherwise be completed by recovery after a crash.
//!
//! # Readers
//!
//! Slices handed out before the truncation keep their file descriptors:
//! those of deleted segments stay readable, those of the cut segment may
//! end early (a splice or read past the new size fails with an I/O error
//! for that response; nothing else is affected). Kafka's leader never
//! serves consumers past the high watermark and a follower's truncation
//! only removes records above it, so consumer fetches do not meet this.

use std::time::Duration;

use super::segment::{self, Segment};
use super::{checkpoint, Inner, Log, LogError, Offset};
use crate::rt;

/// How often a truncation checks whether writes, syncs or a swap in
/// flight are done (they are short; truncations are rare).
pub(crate) const BUSY_POLL: Duration = Duration::from_millis(1);

/// What [`Log::truncate_to`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncateOutcome {
    /// The log end now: the requested end, or the base of the batch that
    /// held it (that whole batch was removed), or the log end if it was
    /// already at or below the requested end.
    pub log_end: Offset,
    /// Whether any record was removed (false for a no-op).
    pub truncated: bool,
    /// Segment files deleted whole (the fresh segment of a full
    /// truncation not counted).
    pub segments_deleted: usize,
    /// Bytes of batches removed.
    pub bytes_removed: u64,
}

/// Where the cut goes, found before anything changes.
enum Plan {
    /// Every record goes; the log restarts empty at this offset.
    Full { start: i64 },
    /// Segment `base` keeps `[0, position)`; the log ends at `end`.
    Cut {
        base: i64,
        position: u64,
        end: i64,
        file: std::sync::Arc<segment::SegmentFile>,
    },
}

/// Clears the truncation flag however the truncation ends (also when its
/// future is dropped) and lets the writer and flusher go on. A truncation
/// dropped between its first change and its end leaves memory and disk
/// apart (a segment longer on disk than in memory): the log then refuses
/// writes until a reopen recovers it.
struct Guard<'a> {
    inner: &'a Inner,
    changing: std::cell::Cell<bool>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let mut s = self.inner.state.borrow_mut();
        s.truncating = false;
        if self.changing.get() && s.failed.is_none() {
            s.failed = Some("a truncation was interrupted".into());
        }
        drop(s);
        self.inner.write_wakeup.notify();
        self.inner.flush_wakeup.notify();
    }
}

impl Log {
    /// Removes every record at or after `end` (Kafka's `truncateTo`); see
    /// the protocol in `io/src/log/truncate.rs`. Returns once the cut is durable:
    /// then `offsets()` has `log_end == written == durable` equal to the
    /// outcome's `log_end`, which is `end` unless `end` fell inside a batch
    /// (then that batch's base: the whole batch goes).
    ///
    /// `end` at or past the log end is a no-op (nothing waited for). `end`
    /// at or below the log start removes every record and restarts the log
    /// empty at `end` (Kafka's `truncateFullyAndStartAt`).
    ///
    /// Appends and other truncations are refused with
    /// [`LogError::Truncating`] while it runs; appends queued before it are
    /// written first (then cut if they lie past `end`). Durability waits
    /// for removed offsets fail with [`LogError::Truncated`]. An I/O error
    /// after the first file was removed leaves the log refusing writes
    /// until it is reopened (which finds a prefix of the old log).
    pub async fn truncate_to(&self, end: Offset) -> Result<TruncateOutcome, LogError> {
        let inner = &*self.inner;
        {
            let mut s = inner.state.borrow_mut();
            if s.closing {
                return Err(LogError::Closed);
            }
            if let Some(reason) = &s.failed {
                return Err(LogError::Failed {
                    dir: inner.dir.to_path_buf(),
                    reason: reason.clone(),
                });
            }
            if end.0 < 0 {
                return Err(LogError::OffsetOutOfRange {
                    offset: end.0,
                    log_start: s.log_start,
                    log_end: s.log_end,
                });
            }
            if end.0 >= s.log_end {
                return Ok(TruncateOutcome {
                    log_end: Offset(s.log_end),
                    truncated: false,
                    segments_deleted: 0,
                    bytes_removed: 0,
                });
            }
            if s.truncating {
                return Err(LogError::Truncating {
                    dir: inner.dir.to_path_buf(),
                });
            }
            s.truncating = true;
        }
        let guard = Guard {
            inner,
            changing: std::cell::Cell::new(false),
        };
        inner.wait_quiet().await?;
        {
            let s = inner.state.borrow();
            if end.0 >= s.written {
                // Queued appends failed; nothing at or past `end` is left.
                return Ok(TruncateOutcome {
                    log_end: Offset(s.written),
                    truncated: false,
                    segments_deleted: 0,
                    bytes_removed: 0,
                });
            }
        }
        loop {
            let epoch = inner.state.borrow().cleaner.swap_epoch;
            let plan = inner.plan_cut(end.0).await?;
            // A swap installed meanwhile invalidates positions; retention
            // and rolls hold off while truncating.
            let stale = {
                let s = inner.state.borrow();
                s.cleaner.swap_epoch != epoch
                    || match &plan {
                        Plan::Full { .. } => end.0 > s.log_start,
                        // The cut segment's indexes may have been evicted
                        // by a read meanwhile; they are cut in memory.
                        Plan::Cut { base, .. } => {
                            end.0 <= s.log_start
                                || !s.segments.get(base).is_some_and(Segment::indexes_loaded)
                        }
                    }
            };
            if stale {
                continue;
            }
            guard.changing.set(true);
            let result = match plan {
                Plan::Full { start } => inner.truncate_fully(start).await,
                Plan::Cut {
                    base,
                    position,
                    end,
                    file,
                } => inner.truncate_at(base, position, end, file).await,
            };
            // Failures past the first change marked the log failed
            // themselves; this one ended in a consistent state.
            guard.changing.set(false);
            return result;
        }
    }
}

impl Inner {
    /// Waits until no append is queued or being written, no group commit
    /// runs and no compaction swap is past its commit point.
    async fn wait_quiet(&self) -> Result<(), LogError> {
        loop {
            {
                let s = self.state.borrow();
                if let Some(reason) = &s.failed {
                    return Err(LogError::Failed {
                        dir: self.dir.to_path_buf(),
                        reason: reason.clone(),
                    });
                }
                let busy = !s.queue.is_empty()
                    || s.written != s.log_end
                    || s.flushing
                    || s.cleaner.swapping;
                if !busy {
                    return Ok(());
                }
            }
            rt::time::sleep(BUSY_POLL).await;
        }
    }

    async fn plan_cut(&self, end: i64) -> Result<Plan, LogError> {
        let log_start = self.state.borrow().log_start;
        if end <= log_start {
            return Ok(Plan::Full { start: end });
        }
        let (base, _) = self
            .segment_for(end)
            .expect("a segment holds every offset above the log start");
        // The cut segment's indexes are cut in memory, so they must be
        // loaded (or rebuilt) first.
        self.ensure_indexes(base).await?;
        let (position, batch_base) = self.locate(base, end).await?;
        let file = self.with_segment(base, Segment::file)??;
        Ok(Plan::Cut {
            base,
            position,
            end: end.min(batch_base),
            file,
        })
    }

    /// Marks the log failed: a destructive step failed half-way, and only a
    /// reopen (recovery) can tell what is on disk.
    fn fail(&self, error: LogError) -> LogError {
        self.state.borrow_mut().failed = Some(format!("truncation failed: {error}"));
        error
    }

    /// The part of a truncation common to both kinds, done with the state
    /// borrowed: offsets, waiters, hints, checkpoints in memory.
    fn reset_offsets(&self, s: &mut super::State, end: i64, active_base: i64) {
        s.written = end;
        s.log_end = end;
        s.durable = s.durable.min(end);
        // Reads in flight start over (they may hold removed positions).
        s.cleaner.swap_epoch += 1;
        s.hint = None;
        if s.cleaner.cleaning {
            s.truncated_while_cleaning = true;
        }
        s.recovery_point = s.recovery_point.min(active_base);
        let dropped: Vec<_>;
        (dropped, s.durable_waiters) = std::mem::take(&mut s.durable_waiters)
            .into_iter()
            .partition(|(o, _)| *o > end);
        for (offset, tx) in dropped {
            tx.send(Err(LogError::Truncated { offset, end }));
        }
    }

    /// Persists the lowered recovery point and cleaner checkpoint.
    fn write_lowered_checkpoints(&self, end: i64) -> Result<(), LogError> {
        let (recovery_point, first_dirty) = {
            let s = self.state.borrow();
            (s.recovery_point, s.cleaner.first_dirty)
        };
        checkpoint::write_recovery_point(&self.dir, recovery_point)?;
        if first_dirty > end {
            checkpoint::write_cleaner_offset(&self.dir, end)?;
            self.state.borrow_mut().cleaner.first_dirty = end;
        }
        Ok(())
    }

    /// Makes everything below the new end durable and answers the
    /// durability waits it covers.
    async fn finish(&self, end: i64) -> Result<(), LogError> {
        self.flush_to(end).await.map_err(|e| self.fail(e))?;
        let mut s = self.state.borrow_mut();
        let durable = s.durable;
        let ready: Vec<_>;
        (ready, s.durable_waiters) = std::mem::take(&mut s.durable_waiters)
            .into_iter()
            .partition(|(o, _)| *o <= durable);
        drop(s);
        for (_, tx) in ready {
            tx.send(Ok(()));
        }
        self.set_written_hint();
        Ok(())
    }

    async fn dir_fsync(&self) -> Result<(), LogError> {
        let dir = rt::fs::open_dir(&self.dir).map_err(|e| LogError::io(&self.dir, e))?;
        dir.fsync().await.map_err(|e| LogError::io(&self.dir, e))
    }

    /// Removes the segments after `base` and cuts `base` at `position`.
    async fn truncate_at(
        &self,
        base: i64,
        position: u64,
        end: i64,
        file: std::sync::Arc<segment::SegmentFile>,
    ) -> Result<TruncateOutcome, LogError> {
        let mut outcome = TruncateOutcome {
            log_end: Offset(end),
            truncated: true,
            segments_deleted: 0,
            bytes_removed: 0,
        };
        {
            let mut s = self.state.borrow_mut();
            let later: Vec<i64> = s.segments.range(base + 1..).map(|(&b, _)| b).collect();
            for &doomed in later.iter().rev() {
                let seg = s.segments.remove(&doomed).expect("listed");
                s.loaded_order.retain(|&b| b != doomed);
                s.dir_dirty = true;
                outcome.segments_deleted += 1;
                outcome.bytes_removed += seg.size;
                if let Err(e) = seg.delete_files() {
                    drop(s);
                    return Err(self.fail(e));
                }
            }
            let seg = s.segments.get_mut(&base).expect("planned");
            outcome.bytes_removed += seg.size - position;
            seg.size = position;
            seg.synced = seg.synced.min(position);
            let relative_end = (end - base) as u64;
            if let Some(offsets) = seg.offsets.as_mut() {
                offsets.truncate_to_position(position);
                let last = offsets.last_position().map_or(0, u64::from);
                seg.bytes_since_entry = position - last;
            }
            seg.max_timestamp = None;
            if let Some(times) = seg.times.as_mut() {
                times.truncate_to_offset(relative_end);
                seg.max_timestamp = times
                    .last()
                    .map(|e| (e.timestamp, base + i64::from(e.relative_offset)));
            }
            seg.index_dirty = true;
            self.reset_offsets(&mut s, end, base);
        }
        self.write_lowered_checkpoints(end)
            .map_err(|e| self.fail(e))?;
        let cut = async {
            if outcome.segments_deleted > 0 {
                // The deletions are durable before the cut: a crash never
                // leaves the cut segment short with later segments present.
                self.dir_fsync().await?;
            }
            file.file
                .set_len(position)
                .map_err(|e| LogError::io(&file.path, e))?;
            file.file
                .datasync()
                .await
                .map_err(|e| LogError::io(&file.path, e))?;
            self.state.borrow_mut().stats.fsyncs += 1;
            if let Some(seg) = self.state.borrow_mut().segments.get_mut(&base) {
                seg.synced = position;
            }
            let files = self.with_segment(base, Segment::encoded_indexes)?;
            segment::write_index_files(files).await?;
            if let Some(seg) = self.state.borrow_mut().segments.get_mut(&base) {
                seg.index_dirty = false;
            }
            Ok(())
        };
        cut.await.map_err(|e| self.fail(e))?;
        self.finish(end).await?;
        Ok(outcome)
    }

    /// Removes every segment and starts the log empty at `start`.
    async fn truncate_fully(&self, start: i64) -> Result<TruncateOutcome, LogError> {
        let mut outcome = TruncateOutcome {
            log_end: Offset(start),
            truncated: true,
            segments_deleted: 0,
            bytes_removed: 0,
        };
        {
            let mut s = self.state.borrow_mut();
            let all: Vec<i64> = s.segments.keys().copied().collect();
            for &doomed in all.iter().rev() {
                let seg = s.segments.remove(&doomed).expect("listed");
                s.dir_dirty = true;
                outcome.segments_deleted += 1;
                outcome.bytes_removed += seg.size;
                if let Err(e) = seg.delete_files() {
                    // The map must keep an active segment: put the
                    // undeletable one back; the log refuses writes now.
                    s.segments.insert(doomed, seg);
                    drop(s);
                    return Err(self.fail(e));
                }
            }
            s.loaded_order.clear();
            match Segment::create(self.dir.clone(), start, (self.clock)()) {
                Ok(fresh) => {
                    s.segments.insert(start, fresh);
                }
                Err(e) => {
                    // Keep the invariant of an active segment in memory.
                    s.segments.insert(
                        start,
                        Segment::new_lazy(self.dir.clone(), start, 0, (self.clock)()),
                    );
                    drop(s);
                    return Err(self.fail(e));
                }
            }
            s.log_start = start;
            self.reset_offsets(&mut s, start, start);
        }
        let persist = async {
            checkpoint::write_log_start(&self.dir, start)?;
            self.write_lowered_checkpoints(start)?;
            self.dir_fsync().await
        };
        persist.await.map_err(|e| self.fail(e))?;
        self.finish(start).await?;
        Ok(outcome)
    }
}

#[cfg(test)]
#[path = "truncate_tests.rs"]
mod tests;
