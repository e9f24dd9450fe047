//! Small per-log state files, written atomically (temp file, fsync, rename,
//! directory fsync) in the version-line format of Kafka's checkpoints.
//!
//! - `log-start-offset`: the log start after DeleteRecords or retention;
//! - `recovery-point`: an unclean open rescans segments from here on;
//! - `cleaner-offset-checkpoint`: the compaction cleaner's first dirty
//!   offset (Kafka keeps one such file per log dir, we keep one per log);
//! - `clean-shutdown`: present only after a clean close; holds the log end
//!   so the open needs no scan. Removed (durably) on open.
//!
//! These are control-path writes (a few per roll or admin call), done with
//! plain syscalls.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::index::TIME_ENTRY_BYTES;
use super::LogError;

const VERSION: &str = "0";
pub(crate) const LOG_START: &str = "log-start-offset";
pub(crate) const RECOVERY_POINT: &str = "recovery-point";
pub(crate) const CLEAN_SHUTDOWN: &str = "clean-shutdown";
pub(crate) const CLEANER_OFFSET: &str = "cleaner-offset-checkpoint";

/// A checkpoint file's bytes, for writers that do their own I/O.
pub(crate) fn encode(value: i64) -> Vec<u8> {
    format!("{VERSION}\n{value}\n").into_bytes()
}

fn write_atomic(dir: &Path, name: &str, value: i64) -> Result<(), LogError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let result: io::Result<()> = (|| {
        let mut file = fs::File::create(&tmp)?;
        write!(file, "{VERSION}\n{value}\n")?;
        file.sync_data()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| LogError::io(&path, e))
}

/// Reads a checkpoint; a missing file is `None`, a malformed one an error
/// naming the file (never silently treated as zero).
fn read(dir: &Path, name: &str) -> Result<Option<i64>, LogError> {
    let path = dir.join(name);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(&path, e)),
    };
    let mut lines = text.lines();
    let value = match (lines.next(), lines.next()) {
        (Some(VERSION), Some(value)) => value.trim().parse::<i64>().ok(),
        _ => None,
    };
    match value {
        Some(v) if v >= 0 => Ok(Some(v)),
        _ => Err(LogError::io(
            &path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed checkpoint: {text:?}"),
            ),
        )),
    }
}

pub(crate) fn write_log_start(dir: &Path, offset: i64) -> Result<(), LogError> {
    write_atomic(dir, LOG_START, offset)
}

pub(crate) fn read_log_start(dir: &Path) -> Result<Option<i64>, LogError> {
    read(dir, LOG_START)
}

pub(crate) fn write_recovery_point(dir: &Path, offset: i64) -> Result<(), LogError> {
    write_atomic(dir, RECOVERY_POINT, offset)
}

pub(crate) fn read_recovery_point(dir: &Path) -> Result<Option<i64>, LogError> {
    read(dir, RECOVERY_POINT)
}

/// Lowers the cleaner checkpoint after a truncation (the swap writes it
/// through [`super::segment::write_index_files`] otherwise).
pub(crate) fn write_cleaner_offset(dir: &Path, offset: i64) -> Result<(), LogError> {
    write_atomic(dir, CLEANER_OFFSET, offset)
}

pub(crate) fn read_cleaner_offset(dir: &Path) -> Result<Option<i64>, LogError> {
    read(dir, CLEANER_OFFSET)
}

pub(crate) fn write_clean_shutdown(dir: &Path, next_offset: i64) -> Result<(), LogError> {
    write_atomic(dir, CLEAN_SHUTDOWN, next_offset)
}

/// Reads and durably removes the clean-shutdown marker, so a crash from
/// now on is seen as unclean. A malformed marker counts as absent.
pub(crate) fn take_clean_shutdown(dir: &Path) -> Result<Option<i64>, LogError> {
    let value = read(dir, CLEAN_SHUTDOWN).unwrap_or(None);
    let path = dir.join(CLEAN_SHUTDOWN);
    match fs::remove_file(&path) {
        Ok(()) => fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LogError::io(dir, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(LogError::io(&path, e)),
    }
    Ok(value)
}

/// The last entry of a `.timeindex` file: the segment's largest timestamp
/// and its offset, read without loading the whole index.
pub(crate) fn read_last_time_entry(path: &Path, base: i64) -> Option<(i64, i64)> {
    use std::os::unix::fs::FileExt;
    let file = fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len < TIME_ENTRY_BYTES as u64 || !len.is_multiple_of(TIME_ENTRY_BYTES as u64) {
        return None;
    }
    let mut raw = [0u8; TIME_ENTRY_BYTES];
    file.read_exact_at(&mut raw, len - TIME_ENTRY_BYTES as u64)
        .ok()?;
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&raw[..8]);
    let relative = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
    Some((i64::from_be_bytes(ts), base + i64::from(relative)))
}
