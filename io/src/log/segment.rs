//! One segment: a `.log` file of batches plus its two sparse indexes.
//!
//! Sealed segments are opened lazily: a clean start only lists and stats
//! them, the file is opened on the first read, and the indexes are loaded
//! (and sanity-checked against the segment size) on the first lookup.

use std::cell::OnceCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::batch::{self, BatchError, BatchHeader, HEADER_BYTES};
use super::index::{OffsetIndex, TimeIndex};
use super::LogError;
use crate::rt::fs::File;
use crate::rt::{self, JoinHandle};

/// Read size for recovery scans and verification.
pub(crate) const SCAN_CHUNK_BYTES: usize = 2 << 20;
/// Read size for header walks on the fetch path.
pub(crate) const LOOKUP_CHUNK_BYTES: usize = 16 << 10;

pub(crate) fn file_name(base: i64, suffix: &str) -> String {
    format!("{base:020}{suffix}")
}

pub(crate) fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// An open segment file. Shared with readers through [`FileSlice`], so a
/// segment deleted by retention stays readable through slices already
/// handed out: the descriptor outlives the directory entry.
///
/// [`FileSlice`]: super::FileSlice
#[derive(Debug)]
pub struct SegmentFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl SegmentFile {
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells the kernel a whole-file scan follows (recovery, verification),
    /// which widens its readahead. Advice only: errors do not matter.
    pub(crate) fn advise_sequential(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: fadvise on our own open descriptor.
        unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    }
}

pub(crate) struct Segment {
    pub base: i64,
    pub dir: Rc<PathBuf>,
    file: OnceCell<Arc<SegmentFile>>,
    /// Bytes of whole batches in the file.
    pub size: u64,
    /// Bytes known to be on stable storage.
    pub synced: u64,
    pub offsets: Option<OffsetIndex>,
    pub times: Option<TimeIndex>,
    /// (max timestamp, offset) of the segment, once known.
    pub max_timestamp: Option<(i64, i64)>,
    pub bytes_since_entry: u64,
    pub created_ms: i64,
    /// The in-memory indexes hold entries the index files lack.
    pub index_dirty: bool,
}

impl Segment {
    pub fn new_lazy(dir: Rc<PathBuf>, base: i64, size: u64, created_ms: i64) -> Segment {
        Segment {
            base,
            dir,
            file: OnceCell::new(),
            size,
            synced: size,
            offsets: None,
            times: None,
            max_timestamp: None,
            bytes_since_entry: 0,
            created_ms,
            index_dirty: false,
        }
    }

    /// Creates the files of a new, empty active segment.
    pub fn create(dir: Rc<PathBuf>, base: i64, now_ms: i64) -> Result<Segment, LogError> {
        let path = dir.join(file_name(base, ".log"));
        let file = File::create_new(&path).map_err(|e| LogError::io(&path, e))?;
        let segment = Segment {
            offsets: Some(OffsetIndex::default()),
            times: Some(TimeIndex::default()),
            index_dirty: true,
            ..Segment::new_lazy(dir, base, 0, now_ms)
        };
        let _ = segment.file.set(Arc::new(SegmentFile { file, path }));
        Ok(segment)
    }

    pub fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(file_name(self.base, suffix))
    }

    /// The open file, opening it on first use.
    pub fn file(&self) -> Result<Arc<SegmentFile>, LogError> {
        if let Some(file) = self.file.get() {
            return Ok(file.clone());
        }
        let path = self.path(".log");
        let file = File::open_rw(&path).map_err(|e| LogError::io(&path, e))?;
        let file = Arc::new(SegmentFile { file, path });
        let _ = self.file.set(file.clone());
        Ok(file)
    }

    pub fn is_open(&self) -> bool {
        self.file.get().is_some()
    }

    pub fn indexes_loaded(&self) -> bool {
        self.offsets.is_some() && self.times.is_some()
    }

    /// Records an appended batch at `position` in the indexes.
    pub fn index_batch(&mut self, header: &BatchHeader, position: u64, interval_bytes: u64) {
        let relative = (header.last_offset() - self.base) as u32;
        if self.bytes_since_entry >= interval_bytes {
            if let Some(offsets) = self.offsets.as_mut() {
                offsets.push(relative, position as u32);
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.size as u64;
        if let Some(times) = self.times.as_mut() {
            times.maybe_push(header.max_timestamp, relative);
        }
        if self
            .max_timestamp
            .is_none_or(|(ts, _)| header.max_timestamp > ts)
        {
            self.max_timestamp = Some((header.max_timestamp, header.last_offset()));
        }
        self.index_dirty = true;
    }

    /// Loads both index files, checking them against the segment; returns
    /// `false` when they are missing or fail the check (caller rebuilds).
    pub fn load_indexes(&mut self) -> bool {
        let offsets = std::fs::read(self.path(".index"))
            .ok()
            .and_then(|b| OffsetIndex::decode(&b, self.size.max(1)).ok());
        let times = std::fs::read(self.path(".timeindex"))
            .ok()
            .and_then(|b| TimeIndex::decode(&b).ok());
        match (offsets, times) {
            (Some(offsets), Some(times)) => {
                if let Some(last) = times.last() {
                    self.max_timestamp =
                        Some((last.timestamp, self.base + i64::from(last.relative_offset)));
                }
                self.offsets = Some(offsets);
                self.times = Some(times);
                true
            }
            _ => false,
        }
    }

    /// The index files' paths and contents, encoded from memory.
    pub fn encoded_indexes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let (Some(offsets), Some(times)) = (&self.offsets, &self.times) else {
            return Vec::new();
        };
        vec![
            (self.path(".index"), offsets.encode()),
            (self.path(".timeindex"), times.encode()),
        ]
    }

    /// Writes the in-memory indexes to their files.
    pub async fn write_indexes(&mut self) -> Result<(), LogError> {
        write_index_files(self.encoded_indexes()).await?;
        self.index_dirty = false;
        Ok(())
    }

    pub fn delete_files(&self) -> Result<(), LogError> {
        for suffix in [".log", ".index", ".timeindex"] {
            let path = self.path(suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// Takes the indexes (and what goes with them) of a rebuilt copy.
    pub fn adopt_indexes(&mut self, rebuilt: Segment) {
        self.offsets = rebuilt.offsets;
        self.times = rebuilt.times;
        self.max_timestamp = rebuilt.max_timestamp;
        self.bytes_since_entry = rebuilt.bytes_since_entry;
        self.index_dirty = true;
    }

    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Segment>()
            + self.offsets.as_ref().map_or(0, OffsetIndex::heap_bytes)
            + self.times.as_ref().map_or(0, TimeIndex::heap_bytes)
    }
}

/// Builds a segment's indexes from its batch headers (after a crash, or
/// when the index files are missing or fail their check).
pub(crate) async fn scan_indexes(
    dir: Rc<PathBuf>,
    base: i64,
    file: &Arc<SegmentFile>,
    size: u64,
    interval_bytes: u64,
) -> Result<Segment, LogError> {
    let mut rebuilt = Segment::new_lazy(dir, base, size, 0);
    rebuilt.offsets = Some(OffsetIndex::default());
    rebuilt.times = Some(TimeIndex::default());
    let end = scan(file, 0, size, SCAN_CHUNK_BYTES, false, |h, pos| {
        rebuilt.index_batch(h, pos, interval_bytes);
        true
    })
    .await
    .map_err(|e| LogError::io(&file.path, e))?;
    match end.corruption(&file.path) {
        Some(e) => Err(e),
        None => Ok(rebuilt),
    }
}

/// Writes each file through a synced temp file and a rename, so a crash
/// leaves either the old or the new index (both are checked on load).
pub(crate) async fn write_index_files(files: Vec<(PathBuf, Vec<u8>)>) -> Result<(), LogError> {
    for (path, bytes) in files {
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let file = File::create_new(&tmp).map_err(|e| LogError::io(&tmp, e))?;
        let (r, _) = file.write_all_at(bytes, 0).await;
        r.map_err(|e| LogError::io(&tmp, e))?;
        file.datasync().await.map_err(|e| LogError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
    }
    Ok(())
}

/// How a scan of a byte range ended.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// Reached the end position on a batch boundary.
    Complete,
    /// The visitor asked to stop.
    Stopped,
    /// The bytes at `position` are not a valid batch.
    Invalid { position: u64, error: BatchError },
}

impl ScanEnd {
    /// The log's error for a walk that stopped on bytes that are not a
    /// valid batch (naming the file and position), if it did.
    pub(crate) fn corruption(self, path: &std::path::Path) -> Option<LogError> {
        match self {
            ScanEnd::Invalid { position, error } => Some(LogError::Corrupt {
                path: path.to_path_buf(),
                position,
                error,
            }),
            ScanEnd::Complete | ScanEnd::Stopped => None,
        }
    }
}

/// Walks the batches of `file` in `[start, end)`, reading `chunk` bytes at a
/// time. With `verify`, each batch's CRC-32C is checked (recovery and the
/// validation tool); otherwise only headers are read. The visitor sees each
/// valid header with its position and may stop the walk.
pub(crate) async fn scan(
    file: &Arc<SegmentFile>,
    start: u64,
    end: u64,
    chunk: usize,
    verify: bool,
    mut visit: impl FnMut(&BatchHeader, u64) -> bool,
) -> io::Result<ScanEnd> {
    let mut reader = ChunkReader {
        file: file.clone(),
        ahead: None,
        // Whole-segment scans read ahead; short lookups do not.
        read_ahead: chunk >= SCAN_CHUNK_BYTES,
        chunk,
        end,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos = start; // file position of buf[0]
    let mut pos = start;
    while pos < end {
        let have = (buf_pos + buf.len() as u64).saturating_sub(pos) as usize;
        if have < HEADER_BYTES {
            let want = chunk.max(HEADER_BYTES).min((end - pos) as usize);
            buf = reader
                .refill(std::mem::take(&mut buf), buf_pos, pos, want)
                .await?;
            buf_pos = pos;
            if buf.len() < HEADER_BYTES {
                let error = BatchError::Truncated {
                    available: buf.len(),
                };
                return Ok(ScanEnd::Invalid {
                    position: pos,
                    error,
                });
            }
        }
        let at = (pos - buf_pos) as usize;
        let header = match BatchHeader::parse(&buf[at..]) {
            Ok(header) => header,
            Err(error) => {
                return Ok(ScanEnd::Invalid {
                    position: pos,
                    error,
                })
            }
        };
        if pos + header.size as u64 > end {
            let error = BatchError::LengthMismatch {
                claimed: header.size,
                available: (end - pos) as usize,
            };
            return Ok(ScanEnd::Invalid {
                position: pos,
                error,
            });
        }
        if verify {
            let in_buf = buf.len() - at;
            if in_buf < header.size {
                let want = chunk.max(header.size).min((end - pos) as usize);
                buf = reader
                    .refill(std::mem::take(&mut buf), buf_pos, pos, want)
                    .await?;
                buf_pos = pos;
                if buf.len() < header.size {
                    let error = BatchError::LengthMismatch {
                        claimed: header.size,
                        available: buf.len(),
                    };
                    return Ok(ScanEnd::Invalid {
                        position: pos,
                        error,
                    });
                }
            }
            let at = (pos - buf_pos) as usize;
            if let Err(error) = batch::verify_crc(&buf[at..at + header.size], &header) {
                return Ok(ScanEnd::Invalid {
                    position: pos,
                    error,
                });
            }
        }
        if !visit(&header, pos) {
            return Ok(ScanEnd::Stopped);
        }
        pos += header.size as u64;
    }
    Ok(ScanEnd::Complete)
}

/// Reads up to `len` bytes at `pos`; fewer only at end of file.
/// A finished read: the count and the buffer.
type ReadDone = (io::Result<usize>, Vec<u8>);

/// Reads a segment for `scan`, keeping one chunk read in flight ahead of
/// the caller on whole-segment scans, so the disk reads the next chunk
/// while the CRCs of this one are checked.
struct ChunkReader {
    file: Arc<SegmentFile>,
    /// The read in flight: its file position and the task doing it.
    ahead: Option<(u64, JoinHandle<ReadDone>)>,
    read_ahead: bool,
    chunk: usize,
    end: u64,
}

impl ChunkReader {
    /// Makes `buf` hold the file's bytes from `pos`, at least `want` of
    /// them unless the file ends first. Bytes already in `buf` (which starts
    /// at file position `buf_pos`) from `pos` on are kept, not read again (a
    /// batch that straddles two chunks).
    async fn refill(
        &mut self,
        mut buf: Vec<u8>,
        buf_pos: u64,
        pos: u64,
        want: usize,
    ) -> io::Result<Vec<u8>> {
        let keep_from = pos.saturating_sub(buf_pos) as usize;
        if pos >= buf_pos && keep_from < buf.len() {
            buf.copy_within(keep_from.., 0);
            buf.truncate(buf.len() - keep_from);
        } else {
            buf.clear();
        }
        let next = pos + buf.len() as u64;
        if let Some((at, handle)) = self.ahead.take() {
            let (result, data) = handle.await;
            if at == next {
                let n = result?;
                if buf.is_empty() {
                    buf = data;
                    buf.truncate(n);
                } else {
                    buf.extend_from_slice(&data[..n]);
                }
            }
        }
        while buf.len() < want {
            let filled = buf.len();
            let (r, back) = self
                .file
                .file
                .read_append_at(buf, pos + filled as u64, want - filled)
                .await;
            buf = back;
            if r? == 0 {
                break;
            }
        }
        let at = pos + buf.len() as u64;
        if self.read_ahead && at < self.end {
            let len = self.chunk.min((self.end - at) as usize);
            let file = self.file.clone();
            let handle = rt::spawn(async move {
                file.file
                    .read_append_at(Vec::with_capacity(len), at, len)
                    .await
            });
            self.ahead = Some((at, handle));
        }
        Ok(buf)
    }
}
