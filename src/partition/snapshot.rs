//! Producer state snapshots: Kafka's `{offset:020}.snapshot` files in the
//! partition directory, and the rebuild of the state at open.
//!
//! A snapshot named `N` holds the producer state of every batch below
//! offset `N`. Its layout: version (i16, big-endian, 1), CRC-32C (u32) of
//! the body, then the body ([`ProducerStates::encode`]). It is written to
//! `N.snapshot.tmp` and renamed, so a reader sees a whole file or none (the
//! log's recovery removes `.tmp` leftovers); a file torn by a crash fails
//! its CRC and is skipped.
//!
//! # Rebuild at open ([`load`])
//!
//! As Kafka's `ProducerStateManager.truncateAndReload`: snapshots above the
//! recovered log end (their batches were lost with an unclean shutdown's
//! torn tail) or below the log start (their batches are gone, so the scan
//! could not continue from them) are deleted; the newest remaining one that
//! reads back whole is loaded (a corrupt one is deleted and the next older
//! tried); then the batches from its offset (or from the log start, with
//! none) to the log end are replayed. The state therefore never holds a
//! batch that is not in the log, and holds every idempotent batch that is,
//! whatever snapshots survived.
//!
//! # When snapshots are written
//!
//! After a segment roll (the first append that lands in a new segment), at
//! the periodic housekeeping pass when the log moved, at a clean close, and
//! after a rebuild that scanned batches. Only the newest
//! [`SNAPSHOTS_RETAINED`] are kept, so a corrupt newest one has an older
//! fallback. A snapshot is taken only while no append is queued, so its
//! offset (the log end) matches its state exactly.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ringtail_io::log::{Log, LogError, Offset};
use ringtail_protocol::RecordBatch;
use thiserror::Error;

use super::producers::{last_seq, BatchInfo, DecodeError, ProducerStates};

pub const SUFFIX: &str = ".snapshot";
const VERSION: i16 = 1;
const HEADER_BYTES: usize = 2 + 4;
/// Snapshots kept after a new one is written.
pub const SNAPSHOTS_RETAINED: usize = 2;
/// Bytes read from the log per step of a rebuild scan.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

const _: () = assert!(SNAPSHOTS_RETAINED >= 2, "keep a fallback");

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {len} bytes cannot hold the {HEADER_BYTES}-byte header")]
    Short { path: PathBuf, len: usize },
    #[error("{path}: version {version} is not {VERSION}")]
    Version { path: PathBuf, version: i16 },
    #[error("{path}: crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
    #[error("{path}: {source}")]
    Decode { path: PathBuf, source: DecodeError },
}

pub fn file_name(offset: i64) -> String {
    format!("{offset:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SUFFIX)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Offsets of the snapshots in `dir`, ascending.
pub fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(offset) = entry.file_name().to_str().and_then(parse_name) {
            out.push(offset);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The file bytes of a snapshot of `state`.
pub fn encode(state: &ProducerStates) -> Vec<u8> {
    let body = state.encode();
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn decode(path: &Path, bytes: &[u8]) -> Result<ProducerStates, SnapshotError> {
    let path = || path.to_path_buf();
    if bytes.len() < HEADER_BYTES {
        return Err(SnapshotError::Short {
            path: path(),
            len: bytes.len(),
        });
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != VERSION {
        return Err(SnapshotError::Version {
            path: path(),
            version,
        });
    }
    let stored = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let body = &bytes[HEADER_BYTES..];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(SnapshotError::Crc {
            path: path(),
            stored,
            computed,
        });
    }
    ProducerStates::decode(body).map_err(|source| SnapshotError::Decode {
        path: path(),
        source,
    })
}

/// Writes the snapshot of `state` at `offset` (temporary file, then
/// rename); with `sync`, the file and the directory are made durable.
pub fn write(
    dir: &Path,
    offset: i64,
    state: &ProducerStates,
    sync: bool,
) -> Result<(), SnapshotError> {
    let path = dir.join(file_name(offset));
    let tmp = dir.join(format!("{}.tmp", file_name(offset)));
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| SnapshotError::Io { path: p, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(&encode(state)).map_err(io_err(&tmp))?;
    if sync {
        file.sync_data().map_err(io_err(&tmp))?;
    }
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if sync {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

pub fn read(dir: &Path, offset: i64) -> Result<ProducerStates, SnapshotError> {
    let path = dir.join(file_name(offset));
    let bytes = std::fs::read(&path).map_err(|source| SnapshotError::Io {
        path: path.clone(),
        source,
    })?;
    decode(&path, &bytes)
}

fn delete(dir: &Path, offset: i64) {
    let path = dir.join(file_name(offset));
    if let Err(e) = std::fs::remove_file(&path) {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("{}: cannot delete producer snapshot: {e}", path.display());
        }
    }
}

/// Deletes all but the newest [`SNAPSHOTS_RETAINED`] snapshots.
pub fn prune(dir: &Path) {
    let Ok(offsets) = list(dir) else { return };
    let doomed = offsets.len().saturating_sub(SNAPSHOTS_RETAINED);
    for &offset in &offsets[..doomed] {
        delete(dir, offset);
    }
}

/// What [`load`] did, for the log line and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The snapshot loaded, if any.
    pub snapshot: Option<i64>,
    /// Snapshots deleted: above the log end, below the log start, or
    /// unreadable.
    pub discarded: Vec<i64>,
    /// Idempotent batches replayed from the log after the snapshot.
    pub batches_replayed: u64,
    /// The offset the state covers (the log end).
    pub end: i64,
}

/// Rebuilds the producer state of an opened `log` (see the module docs).
pub async fn load(log: &Log) -> Result<(ProducerStates, Loaded), LogError> {
    let dir = log.dir().to_path_buf();
    let offsets = log.offsets();
    let (log_start, log_end) = (offsets.log_start.0, offsets.written.0);
    debug_assert_eq!(offsets.written, offsets.log_end, "nothing queued at open");
    let mut loaded = Loaded {
        end: log_end,
        ..Loaded::default()
    };
    let found = list(&dir).map_err(|source| LogError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut state = None;
    for &offset in found.iter().rev() {
        if state.is_some() {
            break;
        }
        if offset > log_end || offset < log_start {
            delete(&dir, offset);
            loaded.discarded.push(offset);
            continue;
        }
        match read(&dir, offset) {
            Ok(s) => {
                state = Some(s);
                loaded.snapshot = Some(offset);
            }
            Err(e) => {
                eprintln!("discarding producer snapshot: {e}");
                delete(&dir, offset);
                loaded.discarded.push(offset);
            }
        }
    }
    // Snapshots below the one loaded and below the log start are useless.
    for &offset in &found {
        if offset < log_start && !loaded.discarded.contains(&offset) {
            delete(&dir, offset);
            loaded.discarded.push(offset);
        }
    }
    let mut state = state.unwrap_or_default();
    let from = loaded.snapshot.unwrap_or(log_start).max(log_start);
    loaded.batches_replayed = replay(log, &mut state, from, log_end).await?;
    Ok((state, loaded))
}

/// Replays the idempotent batches in `[from, to)` into `state`; returns
/// how many it replayed.
pub async fn replay(
    log: &Log,
    state: &mut ProducerStates,
    from: i64,
    to: i64,
) -> Result<u64, LogError> {
    let mut position = from;
    let mut replayed = 0u64;
    while position < to {
        let read = log
            .read(Offset(position), SCAN_CHUNK_BYTES, Some(Offset(to)))
            .await?;
        let Some(slice) = read.slice else { break };
        let bytes = slice.read_to_vec().await?;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (batch, tail) = RecordBatch::parse(rest).map_err(|e| {
                invalid_data(
                    log.dir(),
                    format!("producer state scan at offset {position}: {e}"),
                )
            })?;
            rest = tail;
            if let Some(info) = batch_info(&batch) {
                state.replay(info);
                replayed += 1;
            }
        }
        debug_assert!(read.next_offset.0 > position);
        position = read.next_offset.0;
    }
    Ok(replayed)
}

fn invalid_data(dir: &Path, reason: String) -> LogError {
    LogError::Io {
        path: dir.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, reason),
    }
}

/// The idempotence fields of a stored batch; `None` for batches without a
/// producer id and for control batches.
pub fn batch_info(batch: &RecordBatch<'_>) -> Option<BatchInfo> {
    if batch.producer_id().0 < 0 || batch.is_control() {
        return None;
    }
    let first = batch.base_sequence().0;
    Some(BatchInfo {
        producer_id: batch.producer_id().0,
        epoch: batch.producer_epoch().0,
        first_seq: first,
        last_seq: last_seq(first, batch.last_offset_delta() + 1),
        base_offset: batch.base_offset().0,
        last_offset: batch.last_offset().0,
        max_timestamp_ms: batch.max_timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(file_name(42), "00000000000000000042.snapshot");
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("00000000000000000042.snapshot.tmp"), None);
        assert_eq!(parse_name("42.snapshot"), None);
        assert_eq!(parse_name("00000000000000000042.log"), None);
    }

    #[test]
    fn corrupt_files_are_refused() {
        let mut s = ProducerStates::default();
        s.record(BatchInfo {
            producer_id: 3,
            epoch: 1,
            first_seq: 0,
            last_seq: 4,
            base_offset: 10,
            last_offset: 14,
            max_timestamp_ms: 99,
        });
        let bytes = encode(&s);
        let p = Path::new("x.snapshot");
        assert_eq!(decode(p, &bytes).unwrap(), s);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(p, &bad).is_err(), "flipped byte {i} accepted");
        }
        for cut in 0..bytes.len() {
            assert!(decode(p, &bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
    }

    mod rebuild {
        use std::path::PathBuf;

        use bytes::BytesMut;
        use ringtail_io::log::LogConfig;
        use ringtail_io::rt::block_on;
        use ringtail_protocol::batch::BatchBuilder;
        use ringtail_protocol::{ProducerEpoch, ProducerId, Sequence};

        use super::super::*;
        use crate::partition::producers::Check;

        struct TempDir(PathBuf);

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        fn temp_dir(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "ringtail-producer-snapshot-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn config() -> LogConfig {
            LogConfig {
                segment_bytes: 2048,
                retention_ms: None,
                ..LogConfig::default()
            }
        }

        /// Batch `i` of the workload: three producers (one plain) taking
        /// turns, producer 1 bumping its epoch halfway.
        fn batch(i: u32, seqs: &mut [i32; 3]) -> BytesMut {
            let p = (i % 4) as usize;
            let mut b = BatchBuilder::new();
            if p < 3 {
                let epoch = if p == 1 && i >= 30 { 1 } else { 0 };
                if p == 1 && i == 30 {
                    seqs[1] = 0;
                }
                b = b.producer(
                    ProducerId(10 + p as i64),
                    ProducerEpoch(epoch),
                    Sequence(seqs[p]),
                );
                seqs[p] += 3;
            }
            for r in 0..3 {
                b.append(
                    1_000 + i64::from(i),
                    None,
                    Some(format!("{i}-{r}").as_bytes()),
                    &[],
                );
            }
            BytesMut::from(&b.build()[..])
        }

        /// Appends the workload, recording the state as produce does, and
        /// snapshots after batches 20 and 40; returns the batches' infos.
        async fn write_workload(log: &Log, dir: &Path) -> Vec<BatchInfo> {
            let mut seqs = [0i32; 3];
            let mut live = ProducerStates::default();
            let mut infos = Vec::new();
            for i in 0..61 {
                let b = batch(i, &mut seqs);
                let info = log.append(b, 0).await.unwrap();
                let r = log.read(info.base_offset, 1 << 16, None).await.unwrap();
                let bytes = r.slice.unwrap().read_to_vec().await.unwrap();
                let (stored, _) = RecordBatch::parse(&bytes).unwrap();
                if let Some(b) = batch_info(&stored) {
                    assert_eq!(b.base_offset, info.base_offset.0);
                    live.record(b);
                    infos.push(b);
                }
                if i == 19 || i == 39 {
                    write(dir, log.offsets().log_end.0, &live, false).unwrap();
                }
            }
            infos
        }

        fn replayed(infos: &[BatchInfo], below: i64) -> ProducerStates {
            let mut s = ProducerStates::default();
            infos
                .iter()
                .filter(|b| b.base_offset < below)
                .for_each(|b| s.replay(*b));
            s
        }

        async fn reopen(dir: &Path) -> (Log, ProducerStates, Loaded) {
            let log = Log::open(dir, config()).await.unwrap();
            let (state, loaded) = load(&log).await.unwrap();
            (log, state, loaded)
        }

        /// Whatever snapshots survive (all, the newest corrupt, none, one
        /// from beyond a torn tail), the rebuilt state is exactly the
        /// replay of the batches in the log.
        #[test]
        fn rebuild_matches_the_log_whatever_snapshots_survive() {
            let tmp = temp_dir("rebuild");
            let dir = tmp.0.clone();
            block_on(async {
                let log = Log::open(&dir, config()).await.unwrap();
                let infos = write_workload(&log, &dir).await;
                let end = log.offsets().log_end.0;
                log.close().await.unwrap();
                let snaps = list(&dir).unwrap();
                assert_eq!(snaps.len(), 2);
                let all = replayed(&infos, end);

                // Both snapshots: the newest is used, 20 batches replayed.
                let (log, state, loaded) = reopen(&dir).await;
                assert_eq!(state, all);
                assert_eq!(loaded.snapshot, Some(snaps[1]));
                assert_eq!(
                    loaded.batches_replayed, 16,
                    "16 of batches 40-60 are idempotent"
                );
                log.close().await.unwrap();

                // A corrupt newest one: deleted, the older one used.
                let newest = dir.join(file_name(snaps[1]));
                let mut bytes = std::fs::read(&newest).unwrap();
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                std::fs::write(&newest, bytes).unwrap();
                let (log, state, loaded) = reopen(&dir).await;
                assert_eq!(state, all);
                assert_eq!(loaded.snapshot, Some(snaps[0]));
                assert_eq!(loaded.discarded, vec![snaps[1]]);
                assert!(!newest.exists());
                log.close().await.unwrap();

                // None at all: a scan from the log start.
                for o in list(&dir).unwrap() {
                    std::fs::remove_file(dir.join(file_name(o))).unwrap();
                }
                let (log, state, loaded) = reopen(&dir).await;
                assert_eq!(state, all);
                assert_eq!(loaded.snapshot, None);
                assert_eq!(loaded.batches_replayed, infos.len() as u64);
                // A snapshot at the end for the torn-tail case below.
                write(&dir, end, &state, true).unwrap();
                log.close().await.unwrap();

                // An unclean shutdown that lost the tail: the last segment
                // is cut inside a batch and the clean-shutdown marker is
                // gone. The snapshot at the old end is above the recovered
                // end: discarded; nothing of the lost batches remains.
                let last_segment = std::fs::read_dir(&dir)
                    .unwrap()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .max()
                    .unwrap();
                let len = std::fs::metadata(&last_segment).unwrap().len();
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&last_segment)
                    .unwrap();
                file.set_len(len - 40).unwrap();
                drop(file);
                for marker in ["clean-shutdown", "recovery-point"] {
                    let _ = std::fs::remove_file(dir.join(marker));
                }
                let (log, state, loaded) = reopen(&dir).await;
                let recovered = log.offsets().log_end.0;
                assert!(
                    recovered < end,
                    "the torn batch is gone ({recovered} < {end})"
                );
                assert_eq!(loaded.discarded, vec![end]);
                assert_eq!(state, replayed(&infos, recovered));
                assert_ne!(state, all, "the lost batch's producer state is gone too");
                // The lost batch's retry is appended again, not a duplicate.
                let lost = infos
                    .iter()
                    .rev()
                    .find(|b| b.base_offset >= recovered)
                    .unwrap();
                assert_eq!(
                    state.check(lost.producer_id, lost.epoch, lost.first_seq, lost.last_seq),
                    Check::Append
                );
                log.close().await.unwrap();
            });
        }
    }
}
