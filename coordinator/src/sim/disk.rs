//! A simulated disk: an append-only byte log per node, split into a
//! durable part and writes not yet synced. A crash keeps the durable part,
//! any prefix of the unsynced writes, and possibly a torn piece of the next
//! one: exactly what a real `write` + `fsync` promise allows.

use crate::codec::{decode_log, encode_record};
use crate::ids::PersistToken;
use crate::peer::{DurableState, PersistAction};
use crate::sim::rng::Rng;

#[derive(Debug, Default)]
pub struct Disk {
    durable: Vec<u8>,
    unsynced: Vec<(PersistToken, Vec<u8>)>,
    /// What the durable bytes say, kept incrementally so invariants can
    /// ask "is this durable?" cheaply.
    view: DurableState,
    pub syncs: u64,
    pub torn_writes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("log out of order: {0}")]
    OutOfOrder(String),
}

impl Disk {
    pub fn write(&mut self, token: PersistToken, action: &PersistAction) {
        self.unsynced.push((token, encode_record(action)));
    }

    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    /// Makes every write so far durable; returns the last token.
    pub fn sync(&mut self) -> Result<Option<PersistToken>, ReplayError> {
        let last = self.unsynced.last().map(|(t, _)| *t);
        for (_, bytes) in std::mem::take(&mut self.unsynced) {
            let (records, len) = decode_log(&bytes);
            assert_eq!(len, bytes.len(), "a record we encoded must decode");
            for record in &records {
                apply(&mut self.view, record)?;
            }
            self.durable.extend_from_slice(&bytes);
        }
        self.syncs += 1;
        self.maybe_compact();
        Ok(last)
    }

    /// After a snapshot, rewrite the file as one compact state (an atomic
    /// rename in a real driver) so it does not grow without bound.
    fn maybe_compact(&mut self) {
        if self.durable.len() < 64 << 10 {
            return;
        }
        let mut bytes = encode_record(&PersistAction::AcceptedEpoch(self.view.accepted_epoch));
        bytes.extend(encode_record(&PersistAction::CurrentEpoch(self.view.current_epoch)));
        let snapshot = PersistAction::Snapshot {
            tree: Box::new(self.view.snapshot.clone()),
            discard_log: true,
        };
        bytes.extend(encode_record(&snapshot));
        bytes.extend(encode_record(&PersistAction::Txns(self.view.log.clone())));
        self.durable = bytes;
    }

    pub fn durable_view(&self) -> &DurableState {
        &self.view
    }

    /// Loses what a crash loses and returns the state a restart reads.
    pub fn crash(&mut self, rng: &mut Rng, tear_per_million: u64) -> Result<DurableState, ReplayError> {
        let unsynced = std::mem::take(&mut self.unsynced);
        let survivors = rng.range(0, unsynced.len() as u64) as usize;
        let mut bytes = self.durable.clone();
        for (_, record) in &unsynced[..survivors] {
            bytes.extend_from_slice(record);
        }
        if survivors < unsynced.len() && rng.chance(tear_per_million) {
            let record = &unsynced[survivors].1;
            let cut = rng.range(1, record.len() as u64 - 1) as usize;
            bytes.extend_from_slice(&record[..cut]);
            self.torn_writes += 1;
        }
        let (records, valid) = decode_log(&bytes);
        // Recovery truncates the torn tail, as a real driver would.
        bytes.truncate(valid);
        let mut state = DurableState::default();
        for record in &records {
            apply(&mut state, record)?;
        }
        self.durable = bytes;
        self.view = state.clone();
        Ok(state)
    }
}

/// Replays one record onto a durable state (what a driver does at start).
pub fn apply(state: &mut DurableState, record: &PersistAction) -> Result<(), ReplayError> {
    match record {
        PersistAction::AcceptedEpoch(e) => state.accepted_epoch = *e,
        PersistAction::CurrentEpoch(e) => state.current_epoch = *e,
        PersistAction::Txns(txns) => {
            for txn in txns {
                let last = state.log.last().map_or(state.snapshot.last_zxid(), |t| t.zxid);
                if txn.zxid <= last {
                    return Err(ReplayError::OutOfOrder(format!("{} after {}", txn.zxid, last)));
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
