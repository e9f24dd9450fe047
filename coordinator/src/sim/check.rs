//! Invariants the simulator checks after every step.

use std::collections::{BTreeMap, HashMap};

use crate::ids::{Epoch, NodeId, Zxid};
use crate::txn::LoggedTxn;

/// Cluster-wide knowledge: what was committed, in order, and who led.
#[derive(Debug, Default)]
pub struct Checker {
    /// The one committed history: every peer's deliveries must follow it.
    committed: Vec<(Zxid, u64)>,
    position: HashMap<Zxid, usize>,
    /// Tree digest after applying each zxid (first peer to get there).
    digests: HashMap<Zxid, u64>,
    leaders: BTreeMap<Epoch, NodeId>,
    /// Per peer: the last zxid it applied.
    applied: BTreeMap<NodeId, Zxid>,
    pub acknowledged_writes: u64,
}

pub fn txn_hash(txn: &LoggedTxn) -> u64 {
    // Debug formatting is stable within one build, which is all we need.
    let text = format!("{txn:?}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Checker {
    pub fn committed_len(&self) -> usize {
        self.committed.len()
    }

    pub fn last_committed(&self) -> Zxid {
        self.committed.last().map_or(Zxid::ZERO, |(z, _)| *z)
    }

    pub fn is_committed(&self, zxid: Zxid) -> bool {
        self.position.contains_key(&zxid)
    }

    /// At most one established leader per epoch.
    pub fn leader(&mut self, epoch: Epoch, node: NodeId) -> Result<(), String> {
        match self.leaders.insert(epoch, node) {
            Some(other) if other != node => Err(format!("two leaders in epoch {epoch:?}: {other:?} and {node:?}")),
            _ => Ok(()),
        }
    }

    /// A peer restarted (or installed a snapshot) at `zxid`: its state must
    /// be a committed prefix.
    pub fn reset(&mut self, node: NodeId, zxid: Zxid, digest: u64) -> Result<(), String> {
        if zxid != Zxid::ZERO && !self.position.contains_key(&zxid) {
            return Err(format!("{node:?} holds state at {zxid}, which was never committed"));
        }
        self.check_digest(node, zxid, digest)?;
        self.applied.insert(node, zxid);
        Ok(())
    }

    /// A peer applied `txn`. `by_leader`: the peer is an established leader
    /// (only a leader may be first to apply a zxid, ZOOKEEPER-3911).
    pub fn deliver(&mut self, node: NodeId, txn: &LoggedTxn, by_leader: bool) -> Result<(), String> {
        let previous = self.applied.get(&node).copied().unwrap_or(Zxid::ZERO);
        if txn.zxid <= previous {
            return Err(format!("{node:?} applied {} after {}", txn.zxid, previous));
        }
        let hash = txn_hash(txn);
        match self.position.get(&txn.zxid) {
            Some(&index) => {
                let expected_previous = if index == 0 {
                    Zxid::ZERO
                } else {
                    self.committed[index - 1].0
                };
                if previous != expected_previous {
                    return Err(format!(
                        "{node:?} applied {} after {previous}, but the committed history has {expected_previous} before it",
                        txn.zxid
                    ));
                }
                if self.committed[index].1 != hash {
                    return Err(format!("{node:?} applied a different txn at {}: {txn:?}", txn.zxid));
                }
            }
            None => {
                if !by_leader {
                    return Err(format!(
                        "{node:?} (not a leader) applied {} before any leader committed it",
                        txn.zxid
                    ));
                }
                let last = self.last_committed();
                if previous != last {
                    return Err(format!(
                        "{node:?} commits {} on top of {previous}, but the committed history ends at {last}: \
                         committed transactions were lost",
                        txn.zxid
                    ));
                }
                self.position.insert(txn.zxid, self.committed.len());
                self.committed.push((txn.zxid, hash));
            }
        }
        self.applied.insert(node, txn.zxid);
        Ok(())
    }

    /// Peers that applied the same zxid have the same tree.
    pub fn check_digest(&mut self, node: NodeId, zxid: Zxid, digest: u64) -> Result<(), String> {
        match self.digests.get(&zxid) {
            Some(&d) if d != digest => Err(format!("{node:?} tree at {zxid} differs from another peer's")),
            Some(_) => Ok(()),
            None => {
                self.digests.insert(zxid, digest);
                Ok(())
            }
        }
    }
}
