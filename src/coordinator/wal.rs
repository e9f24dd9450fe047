//! The peer's write-ahead log: one append-only file of
//! `codec::encode_record` frames in `coordinator.data.dir/wal`, and a boot
//! counter in `incarnation`.
//!
//! Writes are group-committed: every `Persist` queued while the previous
//! write + `fdatasync` was in flight goes out in the next single write and
//! one `fdatasync` covers them all; only then is the last token reported
//! durable (the core's contract: a later token covers earlier ones).
//!
//! Past 64 MiB (and twice its size after the last rewrite) the log is
//! rewritten as epochs + the latest snapshot + the transactions after it,
//! through `wal.tmp` and an atomic rename, between two batches.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use ringtail_coordinator::codec;
use ringtail_coordinator::ids::PersistToken;
use ringtail_coordinator::peer::{DurableState, PersistAction};
use ringtail_io::rt::fs::File;

/// What start-up read back.
pub struct Recovered {
    pub state: DurableState,
    pub incarnation: u64,
    /// Bytes of valid records; the writer appends here.
    pub wal_len: u64,
    /// Bytes of torn or corrupt tail that recovery cut off.
    pub truncated_bytes: u64,
}

pub fn wal_path(dir: &Path) -> PathBuf {
    dir.join("wal")
}

/// Reads the log (keeping the valid prefix and cutting a torn tail off the
/// file), replays it, and bumps the boot counter durably.
pub fn recover(dir: &Path) -> Result<Recovered, String> {
    let ctx = |what: &str, e: std::io::Error| {
        format!("coordinator.data.dir {}: {what}: {e}", dir.display())
    };
    std::fs::create_dir_all(dir).map_err(|e| ctx("cannot create", e))?;
    let path = wal_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(ctx("cannot read wal", e)),
    };
    let (records, valid) = codec::decode_log(&bytes);
    let truncated_bytes = (bytes.len() - valid) as u64;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ctx("cannot open wal", e))?;
    if truncated_bytes > 0 {
        file.set_len(valid as u64)
            .map_err(|e| ctx("cannot truncate wal", e))?;
        file.sync_all().map_err(|e| ctx("cannot sync wal", e))?;
    }
    let mut state = DurableState::default();
    for record in &records {
        replay(&mut state, record)?;
    }
    let incarnation = bump_incarnation(dir).map_err(|e| ctx("incarnation", e))?;
    // The new file's directory entry must be durable before records in it
    // are promised.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ctx("cannot sync directory", e))?;
    Ok(Recovered {
        state,
        incarnation,
        wal_len: valid as u64,
        truncated_bytes,
    })
}

fn bump_incarnation(dir: &Path) -> std::io::Result<u64> {
    let path = dir.join("incarnation");
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let next = previous + 1;
    let tmp = dir.join("incarnation.tmp");
    std::fs::write(&tmp, format!("{next}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(next)
}

/// Applies one record to the state a restart builds (the order rules are
/// the core's: `Txns` must follow in zxid order).
pub fn replay(state: &mut DurableState, record: &PersistAction) -> Result<(), String> {
    match record {
        PersistAction::AcceptedEpoch(e) => state.accepted_epoch = *e,
        PersistAction::CurrentEpoch(e) => state.current_epoch = *e,
        PersistAction::Txns(txns) => {
            for txn in txns {
                let last = state
                    .log
                    .last()
                    .map_or(state.snapshot.last_zxid(), |t| t.zxid);
                if txn.zxid <= last {
                    return Err(format!("coordinator wal: txn {} after {}", txn.zxid, last));
                }
                state.log.push(txn.clone());
            }
        }
        PersistAction::Truncate(z) => state.log.retain(|t| t.zxid <= *z),
        PersistAction::Snapshot { tree, discard_log } => {
            let at = tree.last_zxid();
            if *discard_log {
                state.log.clear();
            } else {
                state.log.retain(|t| t.zxid > at);
            }
            state.snapshot = (**tree).clone();
        }
    }
    Ok(())
}

/// A batch of records to write at `at`; `token` covers them all.
pub struct Batch {
    pub token: PersistToken,
    pub bytes: Vec<u8>,
    pub at: u64,
    pub actions: Vec<PersistAction>,
}

/// The appending side, owned by the coordinator thread's writer task.
///
/// It keeps `view`, the state the durable bytes replay to (as the
/// simulator's disk does), so that a log grown past `compact_bytes_min`
/// can be rewritten as one compact state: epochs, the latest snapshot and
/// the transactions after it.
pub struct Wal {
    dir: PathBuf,
    file: Rc<File>,
    len: u64,
    pending: Vec<(PersistToken, PersistAction)>,
    view: DurableState,
    compact_bytes_min: u64,
    /// Size right after the last compaction (or at open): compaction waits
    /// until the log doubled, so a large tree is not rewritten constantly.
    compacted_len: u64,
}

impl Wal {
    pub fn open(dir: &Path, recovered: &Recovered, compact_bytes_min: u64) -> Result<Wal, String> {
        let file = File::open_rw(&wal_path(dir)).map_err(|e| format!("coordinator wal: {e}"))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            file: Rc::new(file),
            len: recovered.wal_len,
            pending: Vec::new(),
            view: recovered.state.clone(),
            compact_bytes_min,
            compacted_len: recovered.wal_len,
        })
    }

    /// Queues a record; the writer task takes it with the next batch.
    pub fn push(&mut self, token: PersistToken, action: &PersistAction) {
        self.pending.push((token, action.clone()));
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the queued records as one buffer and the token covering them.
    pub fn take_batch(&mut self) -> Option<Batch> {
        let token = self.pending.last()?.0;
        let mut bytes = Vec::new();
        let mut actions = Vec::with_capacity(self.pending.len());
        for (_, action) in self.pending.drain(..) {
            bytes.extend(codec::encode_record(&action));
            actions.push(action);
        }
        let at = self.len;
        self.len += bytes.len() as u64;
        Some(Batch {
            token,
            bytes,
            at,
            actions,
        })
    }

    /// Records that a batch is durable (its records join the view).
    pub fn made_durable(&mut self, actions: Vec<PersistAction>) -> Result<(), String> {
        for action in &actions {
            replay(&mut self.view, action)?;
        }
        Ok(())
    }

    /// The compact log to switch to, when one is due and at most half the
    /// current size (before the core's first snapshot it would not be).
    pub fn compaction_due(&mut self) -> Option<Vec<u8>> {
        if self.len < self.compact_bytes_min || self.len < 2 * self.compacted_len {
            return None;
        }
        let mut bytes =
            codec::encode_record(&PersistAction::AcceptedEpoch(self.view.accepted_epoch));
        bytes.extend(codec::encode_record(&PersistAction::CurrentEpoch(
            self.view.current_epoch,
        )));
        bytes.extend(codec::encode_record(&PersistAction::Snapshot {
            tree: Box::new(self.view.snapshot.clone()),
            discard_log: true,
        }));
        if !self.view.log.is_empty() {
            bytes.extend(codec::encode_record(&PersistAction::Txns(
                self.view.log.clone(),
            )));
        }
        if bytes.len() as u64 * 2 > self.len {
            // Not worth a rewrite; look again once the log doubled.
            self.compacted_len = self.len;
            return None;
        }
        Some(bytes)
    }

    /// Uses the file [`write_compacted`] made from now on.
    pub fn switch(&mut self, file: File, len: u64) {
        self.file = Rc::new(file);
        self.len = len;
        self.compacted_len = len;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A handle on the file for the writer (the ring needs `&File` across
    /// awaits while the queue keeps filling).
    pub fn file(&self) -> Rc<File> {
        self.file.clone()
    }
}

/// Writes the compact log to `wal.tmp`, syncs it and renames it over the
/// log (then syncs the directory): a crash leaves the old log or the new
/// one, never a mix. Called only between batches, so no write is lost.
pub async fn write_compacted(dir: &Path, bytes: Vec<u8>) -> std::io::Result<(File, u64)> {
    let tmp = dir.join("wal.tmp");
    let _ = std::fs::remove_file(&tmp);
    let file = File::create_new(&tmp)?;
    let len = bytes.len() as u64;
    let (result, _) = file.write_all_at(bytes, 0).await;
    result?;
    file.fsync().await?;
    std::fs::rename(&tmp, wal_path(dir))?;
    ringtail_io::rt::fs::open_dir(dir)?.fsync().await?;
    Ok((file, len))
}

/// Writes `buf` at `at` and makes it durable with one `fdatasync`.
pub async fn write_durably(file: &File, buf: Vec<u8>, at: u64) -> std::io::Result<()> {
    let (result, _) = file.write_all_at(buf, at).await;
    result?;
    file.datasync().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_coordinator::ids::{Epoch, SessionId, Zxid};
    use ringtail_coordinator::txn::{LoggedTxn, Txn};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringtail-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn txn(counter: u32) -> LoggedTxn {
        LoggedTxn {
            zxid: Zxid::new(Epoch(1), counter),
            session: SessionId(0),
            time_ms: 0,
            txn: Txn::CreateSession { timeout_ms: 1000 },
        }
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_prefix_replays() {
        let dir = temp_dir("torn");
        let first = recover(&dir).expect("empty dir recovers");
        assert_eq!((first.incarnation, first.wal_len), (1, 0));
        let mut bytes = codec::encode_record(&PersistAction::AcceptedEpoch(Epoch(1)));
        bytes.extend(codec::encode_record(&PersistAction::CurrentEpoch(Epoch(1))));
        bytes.extend(codec::encode_record(&PersistAction::Txns(vec![
            txn(1),
            txn(2),
        ])));
        let valid = bytes.len();
        let torn = codec::encode_record(&PersistAction::Txns(vec![txn(3)]));
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(wal_path(&dir), &bytes).expect("write");
        let r = recover(&dir).expect("recovers");
        assert_eq!(r.incarnation, 2);
        assert_eq!(r.wal_len, valid as u64);
        assert_eq!(r.truncated_bytes, (torn.len() / 2) as u64);
        assert_eq!(r.state.current_epoch, Epoch(1));
        assert_eq!(r.state.log.len(), 2);
        assert_eq!(
            std::fs::metadata(wal_path(&dir)).expect("stat").len(),
            valid as u64
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn compaction_keeps_the_durable_state_and_shrinks_the_log() {
        let dir = temp_dir("compact");
        let r = recover(&dir).expect("recover");
        let mut tree = ringtail_coordinator::tree::DataTree::new();
        for counter in 1..=50 {
            tree.apply(&txn(counter));
        }
        ringtail_io::rt::block_on(async {
            let mut wal = Wal::open(&dir, &r, 1).expect("open");
            let mut token = 0;
            let mut write = |wal: &mut Wal, action: PersistAction| {
                token += 1;
                wal.push(PersistToken(token), &action);
                wal.take_batch().expect("batch")
            };
            let mut batches = vec![write(&mut wal, PersistAction::AcceptedEpoch(Epoch(1)))];
            batches.push(write(&mut wal, PersistAction::CurrentEpoch(Epoch(1))));
            for counter in 1..=50 {
                batches.push(write(&mut wal, PersistAction::Txns(vec![txn(counter)])));
            }
            let snapshot = PersistAction::Snapshot {
                tree: Box::new(tree.clone()),
                discard_log: false,
            };
            batches.push(write(&mut wal, snapshot));
            batches.push(write(&mut wal, PersistAction::Txns(vec![txn(51)])));
            for b in batches {
                write_durably(&wal.file(), b.bytes, b.at)
                    .await
                    .expect("write");
                wal.made_durable(b.actions).expect("replay");
            }
            let before = wal.len();
            let bytes = wal.compaction_due().expect("due");
            assert!((bytes.len() as u64) < before);
            let (file, len) = write_compacted(wal.dir(), bytes).await.expect("compact");
            wal.switch(file, len);
            assert!(wal.compaction_due().is_none(), "not again until it doubles");
            let b = write(&mut wal, PersistAction::Txns(vec![txn(52)]));
            write_durably(&wal.file(), b.bytes, b.at)
                .await
                .expect("write");
        });
        let r = recover(&dir).expect("recover compacted");
        assert_eq!(r.truncated_bytes, 0);
        assert_eq!(r.state.snapshot, tree);
        let zxids: Vec<u32> = r.state.log.iter().map(|t| t.zxid.counter()).collect();
        assert_eq!(zxids, vec![51, 52]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn group_commit_writes_every_pending_record_once() {
        let dir = temp_dir("group");
        let r = recover(&dir).expect("recover");
        ringtail_io::rt::block_on(async {
            let mut wal = Wal::open(&dir, &r, u64::MAX).expect("open");
            wal.push(PersistToken(1), &PersistAction::AcceptedEpoch(Epoch(2)));
            wal.push(PersistToken(2), &PersistAction::Txns(vec![txn(1)]));
            let batch = wal.take_batch().expect("batch");
            assert_eq!((batch.token, batch.at), (PersistToken(2), 0));
            assert!(!wal.has_pending());
            write_durably(&wal.file(), batch.bytes, batch.at)
                .await
                .expect("write");
        });
        let r = recover(&dir).expect("recover again");
        assert_eq!(r.state.accepted_epoch, Epoch(2));
        assert_eq!(r.state.log.len(), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
