//! Producer ids for idempotent producers (InitProducerId).
//!
//! Ids are reserved in blocks of [`BLOCK_SIZE`]: before the first id of a
//! block is handed out, the block's end is persisted as the next free id
//! (temporary file, `fdatasync`, rename, directory `fsync`). A restart
//! continues at that end, so no id is ever handed out twice; a crash or a
//! restart wastes at most the unused rest of one block, which the 2^63 id
//! space can afford.
//!
//! InitProducerId is an admin-path request (once per producer), so the
//! process-wide allocator sits behind a plain mutex and writes its file on
//! the calling shard's thread, as the topic table does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;

/// Ids reserved per persisted block.
pub const BLOCK_SIZE: i64 = 1000;

const FILE: &str = "producer_ids";
const HEADER: &str = "# ringtail producer id blocks v1";
const KEY: &str = "next_block_start";

const _: () = assert!(BLOCK_SIZE > 0);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProducerIdError {
    #[error("producer id storage {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
    #[error("the producer id space is exhausted")]
    Exhausted,
}

/// The allocator over one directory's block file.
#[derive(Debug)]
pub struct ProducerIdBlocks {
    path: PathBuf,
    /// The next id to hand out.
    next: i64,
    /// The end (exclusive) of the persisted reservation: `next` may reach
    /// it, then a new block is persisted before it moves on.
    reserved_end: i64,
}

impl ProducerIdBlocks {
    /// Loads the next free block from `dir` (creating `dir`); a missing
    /// file starts at id 0, an unreadable one is an error rather than a
    /// restart at 0, which could repeat ids.
    pub fn open(dir: &Path) -> Result<ProducerIdBlocks, ProducerIdError> {
        let path = dir.join(FILE);
        let storage = |reason: String| ProducerIdError::Storage {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| storage(e.to_string()))?;
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(storage)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(storage(e.to_string())),
        };
        Ok(ProducerIdBlocks {
            path,
            next: start,
            reserved_end: start,
        })
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// A new id, never handed out before from this directory.
    pub fn allocate(&mut self) -> Result<i64, ProducerIdError> {
        if self.next == self.reserved_end {
            let end = self
                .next
                .checked_add(BLOCK_SIZE)
                .ok_or(ProducerIdError::Exhausted)?;
            self.persist(end)?;
            self.reserved_end = end;
        }
        let id = self.next;
        self.next += 1;
        assert!(self.next <= self.reserved_end);
        Ok(id)
    }

    /// Whether `id` may have been handed out from this directory (in this
    /// process or before a restart): every such id is below `next`.
    pub fn issued(&self, id: i64) -> bool {
        (0..self.next).contains(&id)
    }

    fn persist(&self, next_block_start: i64) -> Result<(), ProducerIdError> {
        let tmp = self.path.with_extension("tmp");
        let result: std::io::Result<()> = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(format!("{HEADER}\n{KEY}={next_block_start}\n").as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(self.dir())?.sync_all()
        })();
        result.map_err(|e| ProducerIdError::Storage {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

fn parse(text: &str) -> Result<i64, String> {
    let mut start = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((KEY, v)) if start.is_none() => {
                let v: i64 = v
                    .parse()
                    .map_err(|_| format!("{KEY} {v:?} is not an integer"))?;
                if v < 0 {
                    return Err(format!("{KEY} {v} is negative"));
                }
                start = Some(v);
            }
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    start.ok_or_else(|| format!("no {KEY} line"))
}

/// The process-wide allocator; opened on first use for the broker's
/// metadata directory.
static BLOCKS: Mutex<Option<ProducerIdBlocks>> = Mutex::new(None);

fn with_blocks<R>(
    dir: &Path,
    f: impl FnOnce(&mut ProducerIdBlocks) -> Result<R, ProducerIdError>,
) -> Result<R, ProducerIdError> {
    let mut guard = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_none_or(|b| b.dir() != dir) {
        *guard = Some(ProducerIdBlocks::open(dir)?);
    }
    match guard.as_mut() {
        Some(blocks) => f(blocks),
        None => unreachable!("opened above"),
    }
}

/// A new producer id from the allocator of `dir`.
pub fn allocate(dir: &Path) -> Result<i64, ProducerIdError> {
    with_blocks(dir, ProducerIdBlocks::allocate)
}

/// Whether `id` may have been handed out by the allocator of `dir`.
pub fn issued(dir: &Path, id: i64) -> Result<bool, ProducerIdError> {
    with_blocks(dir, |b| Ok(b.issued(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ringtail-producer-ids-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn ids_never_repeat_across_reopens() {
        let dir = temp_dir("reopen");
        let mut blocks = ProducerIdBlocks::open(&dir).expect("open");
        let first: Vec<i64> = (0..1500)
            .map(|_| blocks.allocate().expect("allocate"))
            .collect();
        assert_eq!(first[0], 0);
        assert_eq!(first[1499], 1499);
        assert!(blocks.issued(1499));
        assert!(!blocks.issued(1500));
        assert!(!blocks.issued(-1));
        drop(blocks);

        // The second block [1000, 2000) was reserved: a reopen starts after it.
        let mut blocks = ProducerIdBlocks::open(&dir).expect("reopen");
        assert!(blocks.issued(1499));
        assert_eq!(blocks.allocate().expect("allocate"), 2 * BLOCK_SIZE);
        drop(blocks);
        let mut blocks = ProducerIdBlocks::open(&dir).expect("reopen");
        assert_eq!(blocks.allocate().expect("allocate"), 3 * BLOCK_SIZE);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_restart_at_zero() {
        let dir = temp_dir("damaged");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for text in [
            "",
            "next_block_start=x\n",
            "next_block_start=-5\n",
            "junk\n",
        ] {
            std::fs::write(dir.join(FILE), text).expect("write");
            assert!(
                matches!(
                    ProducerIdBlocks::open(&dir),
                    Err(ProducerIdError::Storage { .. })
                ),
                "{text:?}"
            );
        }
        std::fs::write(dir.join(FILE), format!("{HEADER}\n{KEY}=7000\n")).expect("write");
        let mut blocks = ProducerIdBlocks::open(&dir).expect("open");
        assert_eq!(blocks.allocate().expect("allocate"), 7000);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_end_of_the_id_space_is_an_error() {
        let dir = temp_dir("exhausted");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(FILE), format!("{KEY}={}\n", i64::MAX - 10)).expect("write");
        let mut blocks = ProducerIdBlocks::open(&dir).expect("open");
        assert_eq!(blocks.allocate(), Err(ProducerIdError::Exhausted));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
