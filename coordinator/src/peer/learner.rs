//! The learner's side of ZAB (follower or observer): FOLLOWERINFO,
//! ACKEPOCH once acceptedEpoch is durable, applying the sync stream,
//! acknowledging NEWLEADER once the synced transactions and currentEpoch
//! are durable, then ACKing proposals and applying commits.

use std::collections::{BTreeMap, BTreeSet};

use super::{After, Core, Flow, Output, PersistAction, REORDER_PACKETS_MAX};
use crate::clients::Response;
use crate::ids::{Epoch, NodeId, SessionId, Zxid};
use crate::message::{LinkId, Message, Vote, ZabBody};
use crate::txn::LoggedTxn;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Sent FOLLOWERINFO; waiting for LEADERINFO.
    Connecting,
    /// ACKEPOCH sent (or waiting for acceptedEpoch to be durable).
    EpochAcked,
    /// Receiving the sync stream.
    Syncing,
    /// NEWLEADER received; its ack waits for durability.
    NewLeader,
    /// UPTODATE received: serving clients.
    Active,
}

pub(super) struct Learner {
    pub(super) leader: NodeId,
    pub(super) link: LinkId,
    pub(super) leader_stamp: Option<u64>,
    pub(super) send_seq: u64,
    pub(super) recv_seq: u64,
    pub(super) phase: Phase,
    pub(super) observer: bool,
    pub(super) last_heard: u64,
    pub(super) new_epoch: Epoch,
    /// Commit point learned during sync; applied at UPTODATE.
    pub(super) sync_commit: Zxid,
    pub(super) touched: BTreeSet<SessionId>,
    /// Only with `bug_ack_newleader_before_txns`: synced but not yet logged.
    pub(super) unlogged: Vec<LoggedTxn>,
    pub(super) early: BTreeMap<u64, ZabBody>,
}

impl Learner {
    pub(super) fn new(leader: NodeId, link: LinkId, observer: bool, now: u64) -> Learner {
        Learner {
            leader,
            link,
            leader_stamp: None,
            send_seq: 0,
            recv_seq: 0,
            phase: Phase::Connecting,
            observer,
            last_heard: now,
            new_epoch: Epoch(0),
            sync_commit: Zxid::ZERO,
            touched: BTreeSet::new(),
            unlogged: Vec::new(),
            early: BTreeMap::new(),
        }
    }

    pub(super) fn observer_or_follower_can_forward(&self) -> bool {
        self.phase == Phase::Active
    }

    pub(super) fn send(&mut self, core: &mut Core, body: ZabBody) {
        let seq = self.send_seq;
        self.send_seq += 1;
        core.send(
            self.leader,
            Message::Zab {
                link: self.link,
                leader_stamp: 0,
                seq,
                body,
            },
        );
    }

    pub(super) fn on_tick(&mut self, core: &mut Core) -> Flow {
        let limit = if self.phase == Phase::Active {
            core.cfg.sync_limit_ticks
        } else {
            core.cfg.init_limit_ticks
        };
        if core.now.saturating_sub(self.last_heard) > limit {
            return Flow::Looking(format!("leader {:?} silent for {limit} ticks", self.leader));
        }
        Flow::Stay
    }

    pub(super) fn on_packet(
        &mut self,
        core: &mut Core,
        from: NodeId,
        link: LinkId,
        leader_stamp: u64,
        seq: u64,
        body: ZabBody,
    ) -> Flow {
        if from != self.leader || link != self.link {
            return Flow::Stay;
        }
        match self.leader_stamp {
            None if seq == 0 => self.leader_stamp = Some(leader_stamp),
            Some(inc) if inc == leader_stamp => {}
            // Another leadership answered on this link (the leader restarted
            // or led again and saw a stale FOLLOWERINFO): start over.
            Some(_) => return Flow::Looking("leader restarted under our link".into()),
            None => return Flow::Stay,
        }
        if seq < self.recv_seq {
            return Flow::Stay;
        }
        if seq > self.recv_seq {
            if self.early.len() >= REORDER_PACKETS_MAX {
                return Flow::Looking("too many packets behind a gap".into());
            }
            self.early.insert(seq, body);
            return Flow::Stay;
        }
        let mut body = body;
        loop {
            self.recv_seq += 1;
            self.last_heard = core.now;
            if let Flow::Looking(reason) = self.on_body(core, body) {
                return Flow::Looking(reason);
            }
            match self.early.remove(&self.recv_seq) {
                Some(next) => body = next,
                None => return Flow::Stay,
            }
        }
    }

    pub(super) fn on_body(&mut self, core: &mut Core, body: ZabBody) -> Flow {
        match (self.phase, body) {
            (Phase::Connecting, ZabBody::LeaderInfo { new_epoch }) => {
                if new_epoch < core.accepted_epoch {
                    return Flow::Looking(format!("leader's epoch {new_epoch:?} is below our acceptedEpoch"));
                }
                self.new_epoch = new_epoch;
                self.phase = Phase::EpochAcked;
                if new_epoch > core.accepted_epoch {
                    core.accepted_epoch = new_epoch;
                    core.persist(PersistAction::AcceptedEpoch(new_epoch), After::SendAckEpoch);
                } else {
                    // Already durable from an earlier attempt; but writes
                    // still in flight must land before we vouch for them.
                    core.persist_marker(After::SendAckEpoch);
                }
                Flow::Stay
            }
            (Phase::EpochAcked, ZabBody::Diff { zxid }) => {
                self.phase = Phase::Syncing;
                if zxid != core.last_zxid() {
                    return core.violation(format!("DIFF from {zxid} but our log ends at {}", core.last_zxid()));
                }
                Flow::Stay
            }
            (Phase::EpochAcked, ZabBody::Trunc { zxid }) => {
                self.phase = Phase::Syncing;
                if zxid < core.tree.last_zxid() {
                    return core.violation(format!(
                        "TRUNC to {zxid} below our commit point {}",
                        core.tree.last_zxid()
                    ));
                }
                core.truncate(zxid);
                Flow::Stay
            }
            (Phase::EpochAcked, ZabBody::Snap { tree }) => {
                self.phase = Phase::Syncing;
                let last_zxid = tree.last_zxid();
                if last_zxid < core.tree.last_zxid() {
                    return core.violation(format!("SNAP at {last_zxid} below our commit point"));
                }
                core.log.clear();
                core.log_base = last_zxid;
                core.log_generation += 1;
                core.durable_zxid = core.durable_zxid.min(last_zxid);
                core.tree = (*tree).clone();
                core.commits_since_snapshot = 0;
                core.persist(
                    PersistAction::Snapshot {
                        tree,
                        discard_log: true,
                    },
                    After::Nothing,
                );
                core.out.push(Output::SnapshotInstalled { last_zxid });
                Flow::Stay
            }
            (Phase::Syncing | Phase::NewLeader | Phase::Active, ZabBody::Proposal { txn, origin }) => {
                if txn.zxid <= core.last_zxid() {
                    return core.violation(format!("proposal {} not after {}", txn.zxid, core.last_zxid()));
                }
                let zxid = txn.zxid;
                if let Some((node, id)) = origin {
                    if node == core.cfg.id && self.phase == Phase::Active {
                        core.origins.insert(zxid, id);
                    }
                }
                if self.phase == Phase::Syncing && core.cfg.bug_ack_newleader_before_txns {
                    core.log.push(txn.clone());
                    self.unlogged.push(txn);
                    return Flow::Stay;
                }
                // Proposals before NEWLEADER are vouched for by its ack;
                // later ones by their own ACK.
                let ack = self.phase != Phase::Syncing && !self.observer;
                core.append(vec![txn], if ack { After::SendAck(zxid) } else { After::Nothing });
                Flow::Stay
            }
            (Phase::Syncing | Phase::NewLeader, ZabBody::Commit { zxid }) => {
                self.sync_commit = self.sync_commit.max(zxid);
                Flow::Stay
            }
            (Phase::Active, ZabBody::Commit { zxid }) => {
                if zxid > core.last_zxid() {
                    return core.violation(format!("commit {zxid} beyond our log {}", core.last_zxid()));
                }
                core.commit_through(zxid);
                Flow::Stay
            }
            (Phase::Syncing, ZabBody::NewLeader { epoch }) => {
                if epoch != self.new_epoch {
                    return core.violation(format!("NEWLEADER {epoch:?} in epoch {:?}", self.new_epoch));
                }
                self.phase = Phase::NewLeader;
                // ZOOKEEPER-4643/4646: the synced transactions were
                // persisted above, then currentEpoch; the ack waits for
                // both to be durable.
                core.current_epoch = epoch;
                core.persist(PersistAction::CurrentEpoch(epoch), After::SendNewLeaderAck(epoch));
                Flow::Stay
            }
            (Phase::NewLeader, ZabBody::UpToDate { committed }) => {
                // Every proposal up to the leader's commit point was sent on
                // this link before UPTODATE, so our log holds it.
                self.sync_commit = self.sync_commit.max(committed);
                if self.sync_commit > core.last_zxid() {
                    return core.violation(format!("sync commit {} beyond our log", self.sync_commit));
                }
                self.phase = Phase::Active;
                core.current_vote = Vote {
                    leader: self.leader,
                    zxid: Zxid::new(self.new_epoch, 0),
                    peer_epoch: self.new_epoch,
                };
                let unlogged = std::mem::take(&mut self.unlogged);
                if let Some(last) = unlogged.last().map(|t| t.zxid) {
                    let log_generation = core.log_generation;
                    core.persist(
                        PersistAction::Txns(unlogged),
                        After::LogDurable {
                            zxid: last,
                            log_generation,
                        },
                    );
                }
                core.commit_through(self.sync_commit);
                Flow::Stay
            }
            (_, ZabBody::Ping) => {
                let touched = std::mem::take(&mut self.touched).into_iter().collect();
                self.send(core, ZabBody::PingReply { touched });
                Flow::Stay
            }
            (Phase::Active, ZabBody::SyncReply { id }) => {
                core.complete_client(id, Response::Synced);
                Flow::Stay
            }
            (phase, body) => core.violation(format!("{body:?} in phase {phase:?}")),
        }
    }

    pub(super) fn after_persist(&mut self, core: &mut Core, after: After) -> Flow {
        match after {
            After::SendAckEpoch => {
                let body = ZabBody::AckEpoch {
                    current_epoch: core.current_epoch,
                    last_zxid: core.last_zxid(),
                };
                self.send(core, body);
            }
            After::SendNewLeaderAck(epoch) => self.send(core, ZabBody::NewLeaderAck { epoch }),
            After::SendAck(zxid) => self.send(core, ZabBody::Ack { zxid }),
            _ => {}
        }
        Flow::Stay
    }
}
