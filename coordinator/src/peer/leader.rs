//! The leader's side of ZAB: discovery (LEADERINFO/ACKEPOCH), choosing a
//! sync per learner (DIFF, TRUNC+DIFF, SNAP), establishing the epoch, and
//! broadcast (PROPOSAL, ACK quorum, COMMIT in zxid order), plus session
//! expiry and `sync` answers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{After, Core, Flow, PersistAction, REORDER_PACKETS_MAX};
use crate::clients::Response;
use crate::ids::{Epoch, NodeId, RequestId, SessionId, Zxid};
use crate::message::{LinkId, Message, Vote, ZabBody};
use crate::tree::DataTree;
use crate::txn::{prep, LoggedTxn, Txn, WriteOp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HandlerState {
    /// Sent LEADERINFO (or waiting for the epoch to be fixed).
    Discovery,
    /// ACKEPOCH received; waiting for a quorum before syncing.
    EpochAcked,
    /// Sync stream and NEWLEADER sent; in the forwarding set.
    Syncing,
    /// NEWLEADER acknowledged; UPTODATE sent once established.
    Synced,
}

pub(super) struct Handler {
    pub(super) link: LinkId,
    pub(super) send_seq: u64,
    pub(super) recv_seq: u64,
    pub(super) state: HandlerState,
    pub(super) voter: bool,
    pub(super) last_heard: u64,
    /// Highest zxid this learner promised durable (cumulative).
    pub(super) acked: Zxid,
    pub(super) ack_epoch_last_zxid: Zxid,
    pub(super) sync_last: Zxid,
    pub(super) up_to_date: bool,
    /// Packets that arrived ahead of a gap.
    pub(super) early: BTreeMap<u64, ZabBody>,
}

pub(super) struct Leader {
    pub(super) started: u64,
    pub(super) new_epoch: Option<Epoch>,
    /// Voters' acceptedEpoch from FOLLOWERINFO (self included).
    pub(super) connecting: BTreeMap<NodeId, Epoch>,
    pub(super) epoch_acks: BTreeSet<NodeId>,
    pub(super) syncing: bool,
    pub(super) newleader_acks: BTreeSet<NodeId>,
    pub(super) established: bool,
    pub(super) handlers: BTreeMap<NodeId, Handler>,
    pub(super) next_counter: u32,
    /// Committed tree plus every outstanding proposal: prep checks here.
    pub(super) spec: DataTree,
    pub(super) outstanding: BTreeMap<Zxid, Option<(NodeId, RequestId)>>,
    pub(super) last_proposed: Zxid,
    /// (position, origin, its link when remote, request).
    pub(super) pending_syncs: VecDeque<(Zxid, NodeId, Option<LinkId>, RequestId)>,
    pub(super) deadlines: BTreeMap<SessionId, u64>,
    pub(super) closing: BTreeSet<SessionId>,
    pub(super) summary: (Epoch, Zxid),
}

impl Leader {
    pub(super) fn new(core: &mut Core) -> Leader {
        let mut connecting = BTreeMap::new();
        connecting.insert(core.cfg.id, core.accepted_epoch);
        Leader {
            started: core.now,
            new_epoch: None,
            connecting,
            epoch_acks: BTreeSet::new(),
            syncing: false,
            newleader_acks: BTreeSet::new(),
            established: false,
            handlers: BTreeMap::new(),
            next_counter: 1,
            spec: DataTree::new(),
            outstanding: BTreeMap::new(),
            last_proposed: Zxid::ZERO,
            pending_syncs: VecDeque::new(),
            deadlines: BTreeMap::new(),
            closing: BTreeSet::new(),
            summary: (core.current_epoch, core.last_zxid()),
        }
    }

    pub(super) fn send(core: &mut Core, to: NodeId, handler: &mut Handler, body: ZabBody) {
        let seq = handler.send_seq;
        handler.send_seq += 1;
        let msg = Message::Zab {
            link: handler.link,
            leader_stamp: core.leader_stamp,
            seq,
            body,
        };
        core.send(to, msg);
    }

    pub(super) fn forward_all(&mut self, core: &mut Core, body: &ZabBody) {
        for (id, h) in self.handlers.iter_mut() {
            if matches!(h.state, HandlerState::Syncing | HandlerState::Synced) {
                Leader::send(core, *id, h, body.clone());
            }
        }
    }

    pub(super) fn on_tick(&mut self, core: &mut Core) -> Flow {
        let ids: Vec<NodeId> = self.handlers.keys().copied().collect();
        for id in ids {
            let limit = if self.handlers[&id].up_to_date {
                core.cfg.sync_limit_ticks
            } else {
                core.cfg.init_limit_ticks
            };
            if core.now.saturating_sub(self.handlers[&id].last_heard) > limit {
                // A silent learner is a dead connection (LearnerHandler's
                // read timeout): forget it; it reconnects on its own.
                self.handlers.remove(&id);
                continue;
            }
            if let Some(h) = self.handlers.get_mut(&id) {
                if matches!(h.state, HandlerState::Syncing | HandlerState::Synced) {
                    Leader::send(core, id, h, ZabBody::Ping);
                }
            }
        }
        if !self.established {
            if core.now.saturating_sub(self.started) > core.cfg.init_limit_ticks {
                return Flow::Looking("no quorum through discovery and sync within initLimit".into());
            }
            return Flow::Stay;
        }
        let alive = 1 + self.handlers.values().filter(|h| h.voter && h.up_to_date).count();
        if alive < core.cfg.quorum() {
            return Flow::Looking(format!("only {alive} synced voters within syncLimit"));
        }
        self.expire_sessions(core)
    }

    /// The leader alone decides expiry (ZooKeeper's `SessionTracker`), and
    /// expiry is a transaction like any other.
    pub(super) fn expire_sessions(&mut self, core: &mut Core) -> Flow {
        self.deadlines.retain(|s, _| self.spec.session(*s).is_some());
        let expired: Vec<SessionId> = self
            .deadlines
            .iter()
            .filter(|(s, deadline)| **deadline < core.now && !self.closing.contains(s))
            .map(|(s, _)| *s)
            .collect();
        for session in expired {
            self.closing.insert(session);
            if let Flow::Looking(reason) = self.propose(core, session, &WriteOp::CloseSession, None) {
                return Flow::Looking(reason);
            }
        }
        Flow::Stay
    }

    pub(super) fn touch(&mut self, core: &Core, session: SessionId) {
        if let Some(info) = self.spec.session(session) {
            if !self.closing.contains(&session) {
                let ticks = u64::from(info.timeout_ms).div_ceil(core.cfg.tick_ms.max(1));
                self.deadlines.insert(session, core.now + ticks);
            }
        }
    }

    /// Discovery: once a quorum of voters reported acceptedEpoch, propose
    /// one past the highest (`Leader.getEpochToPropose`).
    pub(super) fn maybe_fix_epoch(&mut self, core: &mut Core) -> Flow {
        if self.new_epoch.is_some() || self.connecting.len() < core.cfg.quorum() {
            return Flow::Stay;
        }
        let highest = self.connecting.values().copied().max().unwrap_or_default();
        let Some(next) = highest.0.checked_add(1) else {
            return Flow::Looking("epoch space exhausted".into());
        };
        let epoch = Epoch(next);
        self.new_epoch = Some(epoch);
        core.accepted_epoch = epoch;
        core.persist(PersistAction::AcceptedEpoch(epoch), After::LeaderEpochDurable);
        let ids: Vec<NodeId> = self.handlers.keys().copied().collect();
        for id in ids {
            if let Some(h) = self.handlers.get_mut(&id) {
                Leader::send(core, id, h, ZabBody::LeaderInfo { new_epoch: epoch });
            }
        }
        Flow::Stay
    }

    pub(super) fn after_persist(&mut self, core: &mut Core, after: After) -> Flow {
        match after {
            After::LeaderEpochDurable => {
                self.epoch_acks.insert(core.cfg.id);
                self.maybe_start_sync(core);
            }
            After::LeaderCurrentEpochDurable => {
                self.newleader_acks.insert(core.cfg.id);
                return self.maybe_establish(core);
            }
            _ => {}
        }
        Flow::Stay
    }

    pub(super) fn on_packet(&mut self, core: &mut Core, from: NodeId, link: LinkId, seq: u64, body: ZabBody) -> Flow {
        if let ZabBody::LearnerInfo {
            accepted_epoch,
            last_zxid: _,
            observer: _,
        } = body
        {
            let newer = self.handlers.get(&from).is_none_or(|h| link > h.link);
            if !newer || seq != 0 {
                return Flow::Stay;
            }
            let voter = core.cfg.is_voter(from);
            let mut handler = Handler {
                link,
                send_seq: 0,
                recv_seq: 1,
                state: HandlerState::Discovery,
                voter,
                last_heard: core.now,
                acked: Zxid::ZERO,
                ack_epoch_last_zxid: Zxid::ZERO,
                sync_last: Zxid::ZERO,
                up_to_date: false,
                early: BTreeMap::new(),
            };
            if let Some(epoch) = self.new_epoch {
                if accepted_epoch > epoch {
                    // It promised a later epoch and can never follow ours
                    // (ZooKeeper leaves it LOOKING until the leader fails).
                    // Re-elect: the next epoch will be above its promise.
                    return Flow::Looking(format!(
                        "learner {from:?} accepted {accepted_epoch:?}, above our {epoch:?}"
                    ));
                }
                Leader::send(core, from, &mut handler, ZabBody::LeaderInfo { new_epoch: epoch });
            }
            self.handlers.insert(from, handler);
            if voter {
                self.connecting.insert(from, accepted_epoch);
            }
            return self.maybe_fix_epoch(core);
        }
        let Some(handler) = self.handlers.get_mut(&from) else {
            return Flow::Stay;
        };
        if handler.link != link || seq < handler.recv_seq {
            return Flow::Stay;
        }
        if seq > handler.recv_seq {
            // Early: hold it until the gap fills (TCP's reassembly). A gap
            // that never fills starves the link and the timeouts end it.
            if handler.early.len() >= REORDER_PACKETS_MAX {
                self.handlers.remove(&from);
            } else {
                handler.early.insert(seq, body);
            }
            return Flow::Stay;
        }
        let mut body = body;
        loop {
            let Some(handler) = self.handlers.get_mut(&from) else {
                return Flow::Stay;
            };
            if handler.link != link {
                return Flow::Stay;
            }
            handler.recv_seq += 1;
            handler.last_heard = core.now;
            if let Flow::Looking(reason) = self.on_body(core, from, body) {
                return Flow::Looking(reason);
            }
            let Some(handler) = self.handlers.get_mut(&from) else {
                return Flow::Stay;
            };
            match handler.early.remove(&handler.recv_seq) {
                Some(next) => body = next,
                None => return Flow::Stay,
            }
        }
    }

    pub(super) fn on_body(&mut self, core: &mut Core, from: NodeId, body: ZabBody) -> Flow {
        let Some(handler) = self.handlers.get_mut(&from) else {
            return Flow::Stay;
        };
        match body {
            ZabBody::AckEpoch {
                current_epoch,
                last_zxid,
            } => self.on_ack_epoch(core, from, current_epoch, last_zxid),
            ZabBody::NewLeaderAck { epoch } => self.on_newleader_ack(core, from, epoch),
            ZabBody::Ack { zxid } => {
                handler.acked = handler.acked.max(zxid);
                self.try_commit(core);
                Flow::Stay
            }
            ZabBody::PingReply { touched } => {
                for s in touched {
                    self.touch(core, s);
                }
                Flow::Stay
            }
            ZabBody::Request { id, session, op } => {
                if !self.established || handler.state != HandlerState::Synced {
                    return Flow::Stay;
                }
                self.touch(core, session);
                self.propose(core, session, &op, Some((from, id)))
            }
            ZabBody::Sync { id } => {
                if self.established {
                    self.sync_request(core, from, id);
                }
                Flow::Stay
            }
            other => {
                // A learner sent a leader-only packet: drop the link.
                self.handlers.remove(&from);
                core.violations.push(format!("leader got {other:?} from {from:?}"));
                Flow::Stay
            }
        }
    }

    pub(super) fn on_ack_epoch(
        &mut self,
        core: &mut Core,
        from: NodeId,
        current_epoch: Epoch,
        last_zxid: Zxid,
    ) -> Flow {
        let Some(handler) = self.handlers.get_mut(&from) else {
            return Flow::Stay;
        };
        if handler.state != HandlerState::Discovery {
            return Flow::Stay;
        }
        // Checked only until the quorum formed, as `waitForEpochAck` does: a
        // later learner cannot hold an established history this leader
        // lacks, since a quorum that established it meets ours.
        if !self.syncing && (current_epoch, last_zxid) > self.summary {
            // `LearnerHandler`: "Follower is ahead of the leader". This
            // leader's history may lack committed transactions.
            return Flow::Looking(format!("learner {from:?} is ahead: {current_epoch:?} {last_zxid}"));
        }
        handler.state = HandlerState::EpochAcked;
        handler.ack_epoch_last_zxid = last_zxid;
        if handler.voter {
            self.epoch_acks.insert(from);
        }
        if self.syncing {
            self.sync_learner(core, from);
        } else {
            self.maybe_start_sync(core);
        }
        Flow::Stay
    }

    /// After a quorum of ACKEPOCH (self included, once its acceptedEpoch is
    /// durable), write currentEpoch and sync every learner that acked.
    pub(super) fn maybe_start_sync(&mut self, core: &mut Core) {
        if self.syncing || self.epoch_acks.len() < core.cfg.quorum() || !self.epoch_acks.contains(&core.cfg.id) {
            return;
        }
        let Some(epoch) = self.new_epoch else { return };
        self.syncing = true;
        core.current_epoch = epoch;
        core.persist(PersistAction::CurrentEpoch(epoch), After::LeaderCurrentEpochDurable);
        let ready: Vec<NodeId> = self
            .handlers
            .iter()
            .filter(|(_, h)| h.state == HandlerState::EpochAcked)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.sync_learner(core, id);
        }
    }

    /// Chooses DIFF, TRUNC+DIFF or SNAP for one learner
    /// (`LearnerHandler.syncFollower`) and queues the stream and NEWLEADER.
    pub(super) fn sync_learner(&mut self, core: &mut Core, id: NodeId) {
        let Some(epoch) = self.new_epoch else { return };
        let Some(h) = self.handlers.get_mut(&id) else { return };
        let theirs = h.ack_epoch_last_zxid;
        let ours = core.last_zxid();
        // Before establishment the whole log is the new epoch's initial
        // history and commits with NEWLEADER; after it, only the commit
        // point is committed and the rest is outstanding.
        let commit_point = if self.established { core.tree.last_zxid() } else { ours };
        let start = if theirs == ours {
            Leader::send(core, id, h, ZabBody::Diff { zxid: theirs });
            theirs
        } else if theirs > ours {
            Leader::send(core, id, h, ZabBody::Trunc { zxid: ours });
            ours
        } else if theirs < core.log_base {
            let tree = Box::new(core.tree.clone());
            let base = tree.last_zxid();
            Leader::send(core, id, h, ZabBody::Snap { tree });
            base
        } else if theirs == core.log_base || core.log.binary_search_by_key(&theirs, |t| t.zxid).is_ok() {
            Leader::send(core, id, h, ZabBody::Diff { zxid: theirs });
            theirs
        } else {
            // The learner's last zxid is not in our history (ZOOKEEPER-1154):
            // it holds transactions no quorum accepted. Truncate to the
            // newest zxid of ours below it, then DIFF from there.
            let cut = core.log.partition_point(|t| t.zxid < theirs);
            let zxid = if cut == 0 {
                core.log_base
            } else {
                core.log[cut - 1].zxid
            };
            Leader::send(core, id, h, ZabBody::Trunc { zxid });
            zxid
        };
        let from = core.log.partition_point(|t| t.zxid <= start);
        for index in from..core.log.len() {
            let txn = core.log[index].clone();
            let zxid = txn.zxid;
            Leader::send(core, id, h, ZabBody::Proposal { txn, origin: None });
            if zxid <= commit_point {
                Leader::send(core, id, h, ZabBody::Commit { zxid });
            }
        }
        Leader::send(core, id, h, ZabBody::NewLeader { epoch });
        h.sync_last = ours;
        h.state = HandlerState::Syncing;
    }

    pub(super) fn on_newleader_ack(&mut self, core: &mut Core, from: NodeId, epoch: Epoch) -> Flow {
        let Some(h) = self.handlers.get_mut(&from) else {
            return Flow::Stay;
        };
        if h.state != HandlerState::Syncing || Some(epoch) != self.new_epoch {
            return Flow::Stay;
        }
        h.state = HandlerState::Synced;
        // The ack promises every synced transaction is durable there.
        h.acked = h.acked.max(h.sync_last);
        if h.voter {
            self.newleader_acks.insert(from);
        }
        if self.established {
            h.up_to_date = true;
            let committed = core.tree.last_zxid();
            Leader::send(core, from, h, ZabBody::UpToDate { committed });
            self.try_commit(core);
            return Flow::Stay;
        }
        self.maybe_establish(core)
    }

    pub(super) fn maybe_establish(&mut self, core: &mut Core) -> Flow {
        if self.established
            || self.newleader_acks.len() < core.cfg.quorum()
            || !self.newleader_acks.contains(&core.cfg.id)
        {
            return Flow::Stay;
        }
        let Some(epoch) = self.new_epoch else { return Flow::Stay };
        self.established = true;
        // Report the established epoch to looking peers, so that every
        // member of the ensemble answers with the same (leader, epoch) vote
        // whichever election round brought it here (ZOOKEEPER-1732).
        core.current_vote = Vote {
            leader: core.cfg.id,
            zxid: Zxid::new(epoch, 0),
            peer_epoch: epoch,
        };
        // A quorum holds our whole history durably: it is committed.
        core.commit_through(core.last_zxid());
        self.spec = core.tree.clone();
        self.last_proposed = core.last_zxid();
        assert!(
            self.last_proposed < Zxid::new(epoch, 0),
            "no proposal of epoch {epoch:?} before establishment"
        );
        let sessions: Vec<SessionId> = self.spec.sessions().map(|(s, _)| *s).collect();
        for s in sessions {
            self.touch(core, s);
        }
        let ids: Vec<NodeId> = self.handlers.keys().copied().collect();
        for id in ids {
            if let Some(h) = self.handlers.get_mut(&id) {
                if h.state == HandlerState::Synced {
                    h.up_to_date = true;
                    let committed = core.tree.last_zxid();
                    Leader::send(core, id, h, ZabBody::UpToDate { committed });
                }
            }
        }
        Flow::Stay
    }

    pub(super) fn propose(
        &mut self,
        core: &mut Core,
        session: SessionId,
        op: &WriteOp,
        origin: Option<(NodeId, RequestId)>,
    ) -> Flow {
        let Some(epoch) = self.new_epoch else { return Flow::Stay };
        assert!(self.established);
        if self.next_counter > core.cfg.zxid_counter_max {
            // `XidRolloverException`: a new epoch resets the counter.
            return Flow::Looking("zxid counter exhausted; forcing a new epoch".into());
        }
        let zxid = Zxid::new(epoch, self.next_counter);
        self.next_counter += 1;
        let txn = prep(&self.spec, session, op, zxid, &core.cfg.prep_limits());
        if let Txn::CreateSession { timeout_ms } = txn {
            let ticks = u64::from(timeout_ms).div_ceil(core.cfg.tick_ms.max(1));
            self.deadlines.insert(SessionId(zxid.0), core.now + ticks);
        }
        let logged = LoggedTxn {
            zxid,
            session,
            time_ms: if core.wall_ms > 0 {
                core.wall_ms
            } else {
                core.now * core.cfg.tick_ms
            },
            txn,
        };
        self.spec.apply(&logged);
        if let Some((node, id)) = origin {
            if node == core.cfg.id {
                core.origins.insert(zxid, id);
            }
        }
        core.append(vec![logged.clone()], After::Nothing);
        self.outstanding.insert(zxid, origin);
        self.last_proposed = zxid;
        self.forward_all(core, &ZabBody::Proposal { txn: logged, origin });
        Flow::Stay
    }

    /// Commits outstanding proposals in zxid order while a quorum of
    /// voters (self counted only for what is durable here) acked them.
    pub(super) fn try_commit(&mut self, core: &mut Core) {
        if !self.established {
            return;
        }
        while let Some((&zxid, _)) = self.outstanding.first_key_value() {
            let mut acks = usize::from(core.durable_zxid >= zxid);
            acks += self.handlers.values().filter(|h| h.voter && h.acked >= zxid).count();
            if acks < core.cfg.quorum() {
                break;
            }
            self.outstanding.remove(&zxid);
            self.forward_all(core, &ZabBody::Commit { zxid });
            core.commit_through(zxid);
            self.answer_syncs(core);
        }
    }

    pub(super) fn sync_request(&mut self, core: &mut Core, from: NodeId, id: RequestId) {
        let link = self.handlers.get(&from).map(|h| h.link);
        self.pending_syncs.push_back((self.last_proposed, from, link, id));
        self.answer_syncs(core);
    }

    /// Answers syncs whose position is committed, right after the COMMITs
    /// that precede them on each link.
    pub(super) fn answer_syncs(&mut self, core: &mut Core) {
        while let Some(&(zxid, from, link, id)) = self.pending_syncs.front() {
            if zxid > core.tree.last_zxid() {
                break;
            }
            self.pending_syncs.pop_front();
            if from == core.cfg.id {
                core.complete_client(id, Response::Synced);
            } else if let Some(h) = self.handlers.get_mut(&from) {
                // Only on the link the sync came in on: a reconnected
                // learner already failed that client request.
                if Some(h.link) == link {
                    Leader::send(core, from, h, ZabBody::SyncReply { id });
                }
            }
        }
    }
}
