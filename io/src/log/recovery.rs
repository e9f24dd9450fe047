//! Opening a log directory: the fast path after a clean shutdown, and
//! recovery after a crash.
//!
//! Clean: segments are listed and stat'ed, never read; the active segment's
//! indexes are loaded (or rebuilt if they fail their check), and the log
//! end comes from the marker.
//!
//! Unclean: every segment from the recovery point on is read in full and
//! each batch checked (framing, magic, CRC-32C, offsets increasing). At the
//! first bad batch the segment is truncated and later segments deleted: a
//! torn or corrupt tail can only hold writes that were never acknowledged
//! as durable, since durability is acknowledged after fdatasync. Indexes of
//! the scanned segments are rebuilt and the segments synced.
//!
//! Both paths first finish or roll back a compaction swap a crash
//! interrupted (see [`super::compact`]): `.cleaned` files are deleted,
//! `.log.swap` files replace the segments they cover.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::segment::{self, scan, ScanEnd, Segment, SCAN_CHUNK_BYTES};
use super::{checkpoint, compact};
use super::{LogConfig, LogError};

pub(crate) struct Recovered {
    pub segments: BTreeMap<i64, Segment>,
    pub log_start: i64,
    pub next_offset: i64,
    pub recovery_point: i64,
    pub indexes_rebuilt: u64,
}

/// Finishes or rolls back an interrupted compaction swap, as Kafka does:
/// `.cleaned` files are deleted (the pass never committed), and each
/// `{base}.log.swap` (committed) replaces every segment whose base lies in
/// its offset range, then takes its final name. Its index files, and
/// those of the segments it replaces, are deleted (rebuilt on first use).
fn complete_swaps(dir: &Path) -> Result<bool, LogError> {
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(compact::CLEANED_SUFFIX) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
        } else if let Some(stem) = name.strip_suffix(compact::SWAP_SUFFIX) {
            if let Some(base) = segment::parse_base(stem, ".log") {
                swaps.push((base, entry.path()));
            }
        } else if let Some(base) = segment::parse_base(name, ".log") {
            logs.push(base);
        }
    }
    swaps.sort_unstable_by_key(|&(base, _)| base);
    for (base, path) in &swaps {
        let end = compact::next_offset_of(path, *base)?.max(base + 1);
        for &old in logs.iter().filter(|&&b| b >= *base && b < end) {
            for suffix in [".log", ".index", ".timeindex"] {
                remove_if_present(&dir.join(segment::file_name(old, suffix)))?;
            }
        }
        for suffix in [".index", ".timeindex"] {
            remove_if_present(&dir.join(segment::file_name(*base, suffix)))?;
        }
        let target = dir.join(segment::file_name(*base, ".log"));
        std::fs::rename(path, &target).map_err(|e| LogError::io(&target, e))?;
    }
    Ok(!swaps.is_empty())
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

/// Lists segment bases and removes leftovers of interrupted operations.
fn list_segments(dir: &Path) -> Result<Vec<(i64, u64)>, LogError> {
    if complete_swaps(dir)? {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LogError::io(dir, e))?;
    }
    let mut segments = Vec::new();
    let mut indexes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") || name.ends_with(".deleted") {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
        } else if let Some(base) = segment::parse_base(name, ".log") {
            let len = entry
                .metadata()
                .map_err(|e| LogError::io(&entry.path(), e))?
                .len();
            segments.push((base, len));
        } else if let Some(base) =
            segment::parse_base(name, ".index").or_else(|| segment::parse_base(name, ".timeindex"))
        {
            indexes.push((base, entry.path()));
        }
    }
    segments.sort_unstable();
    for (base, path) in indexes {
        if segments.binary_search_by_key(&base, |&(b, _)| b).is_err() {
            std::fs::remove_file(&path).map_err(|e| LogError::io(&path, e))?;
        }
    }
    Ok(segments)
}

pub(crate) async fn open_dir(
    dir: &Rc<PathBuf>,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Recovered, LogError> {
    std::fs::create_dir_all(dir.as_path()).map_err(|e| LogError::io(dir, e))?;
    let clean_end = checkpoint::take_clean_shutdown(dir)?;
    let log_start_checkpoint = checkpoint::read_log_start(dir)?;
    let listed = list_segments(dir)?;
    let mut segments: BTreeMap<i64, Segment> = BTreeMap::new();
    if listed.is_empty() {
        let base = log_start_checkpoint.unwrap_or(0);
        segments.insert(base, Segment::create(dir.clone(), base, now_ms)?);
        let dir_file = crate::rt::fs::open_dir(dir).map_err(|e| LogError::io(dir, e))?;
        dir_file.fsync().await.map_err(|e| LogError::io(dir, e))?;
        return Ok(Recovered {
            segments,
            log_start: base,
            next_offset: base,
            recovery_point: base,
            indexes_rebuilt: 0,
        });
    }
    for &(base, size) in &listed {
        segments.insert(base, Segment::new_lazy(dir.clone(), base, size, now_ms));
    }
    let first_base = listed[0].0;
    let active_base = listed[listed.len() - 1].0;
    let mut indexes_rebuilt = 0;
    let clean_end = clean_end.filter(|&end| end >= active_base);
    let next_offset = match clean_end {
        Some(end) => {
            let active = segments.get_mut(&active_base).expect("listed");
            if !active.load_indexes() {
                rebuild(active, config).await?;
                indexes_rebuilt += 1;
            }
            end
        }
        None => {
            let point = checkpoint::read_recovery_point(dir)?.unwrap_or(first_base);
            let from = segments
                .range(..=point)
                .next_back()
                .map_or(first_base, |(&b, _)| b);
            let (end, rebuilt) = recover_from(&mut segments, from, config).await?;
            indexes_rebuilt += rebuilt;
            end
        }
    };
    let active = segments.values_mut().next_back().expect("active");
    if let Some(offsets) = &active.offsets {
        let last_entry = offsets.floor_position(u32::MAX).unwrap_or(0);
        active.bytes_since_entry = active.size - u64::from(last_entry);
    }
    // The active segment is written to; open it now.
    active.file()?;
    let first_base = *segments.keys().next().expect("segment");
    let log_start = log_start_checkpoint
        .unwrap_or(first_base)
        .max(first_base)
        .min(next_offset);
    Ok(Recovered {
        segments,
        log_start,
        next_offset,
        recovery_point: active_base.min(next_offset),
        indexes_rebuilt,
    })
}

/// Rebuilds a segment's indexes by reading its batch headers.
async fn rebuild(seg: &mut Segment, config: &LogConfig) -> Result<(), LogError> {
    let file = seg.file()?;
    let rebuilt = segment::scan_indexes(
        seg.dir.clone(),
        seg.base,
        &file,
        seg.size,
        config.index_interval_bytes,
    )
    .await?;
    seg.adopt_indexes(rebuilt);
    seg.write_indexes().await
}

/// Validates segments from `from` on, truncating at the first bad batch and
/// deleting the segments after it. Returns the log end and the number of
/// indexes rebuilt.
async fn recover_from(
    segments: &mut BTreeMap<i64, Segment>,
    from: i64,
    config: &LogConfig,
) -> Result<(i64, u64), LogError> {
    let bases: Vec<i64> = segments.range(from..).map(|(&b, _)| b).collect();
    let mut next_offset = from;
    let mut rebuilt = 0;
    let interval = config.index_interval_bytes;
    for (i, &base) in bases.iter().enumerate() {
        let seg = segments.get_mut(&base).expect("listed");
        let file = seg.file()?;
        file.advise_sequential();
        seg.offsets = Some(Default::default());
        seg.times = Some(Default::default());
        seg.max_timestamp = None;
        seg.bytes_since_entry = 0;
        let mut expected = base;
        let mut valid_end = 0u64;
        let end = scan(&file, 0, seg.size, SCAN_CHUNK_BYTES, true, |h, pos| {
            if h.base_offset < expected {
                return false; // offsets must increase: treat as corruption
            }
            seg.index_batch(h, pos, interval);
            expected = h.next_offset();
            valid_end = pos + h.size as u64;
            true
        })
        .await
        .map_err(|e| LogError::io(&file.path, e))?;
        next_offset = expected;
        rebuilt += 1;
        let truncated = !matches!(end, ScanEnd::Complete);
        if truncated {
            file.file
                .set_len(valid_end)
                .map_err(|e| LogError::io(&file.path, e))?;
            seg.size = valid_end;
        }
        seg.synced = 0;
        file.file
            .datasync()
            .await
            .map_err(|e| LogError::io(&file.path, e))?;
        seg.synced = seg.size;
        seg.write_indexes().await?;
        if truncated {
            for &later in &bases[i + 1..] {
                let doomed = segments.remove(&later).expect("listed");
                doomed.delete_files()?;
            }
            break;
        }
    }
    Ok((next_offset, rebuilt))
}
