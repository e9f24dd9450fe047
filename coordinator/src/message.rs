//! Messages between peers: fast-leader-election notifications, and ZAB
//! packets that travel on a learner link.
//!
//! ZooKeeper runs ZAB over TCP and relies on its FIFO, no-duplicate order:
//! a lost packet means a broken connection. The core does not assume a
//! transport that strong. Every ZAB packet carries the link it belongs to
//! and a per-direction sequence number; a receiver drops duplicates and
//! stale links, and treats a gap as a broken connection (the learner goes
//! back to LOOKING, the leader forgets the learner). So any transport that
//! may drop, duplicate, delay or reorder is safe, and the simulator uses one.

use crate::ids::{Epoch, NodeId, RequestId, SessionId, Zxid};
use crate::tree::DataTree;
use crate::txn::{LoggedTxn, WriteOp};

/// FLE's `ServerState`, as carried in notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// A vote: who should lead, and that candidate's (epoch, last zxid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub leader: NodeId,
    pub zxid: Zxid,
    pub peer_epoch: Epoch,
}

impl Vote {
    /// FLE's `totalOrderPredicate`: is `self` a better leader than `other`?
    /// Higher epoch first, then higher zxid, then higher server id.
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notification {
    pub vote: Vote,
    /// FLE's logical clock of the sender (`electionEpoch`).
    pub election_epoch: u64,
    pub state: PeerState,
}

/// Identifies one learner connection. The learner picks it when it starts
/// following (its boot incarnation and a per-boot attempt counter, so links
/// order by recency); the leader adds its own incarnation on its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId {
    pub learner_incarnation: u64,
    pub attempt: u64,
}

/// The packet types of `Leader.java`, plus client forwarding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZabBody {
    /// FOLLOWERINFO / OBSERVERINFO.
    LearnerInfo {
        accepted_epoch: Epoch,
        last_zxid: Zxid,
        observer: bool,
    },
    /// LEADERINFO: the epoch the leader proposes.
    LeaderInfo {
        new_epoch: Epoch,
    },
    /// ACKEPOCH: sent only once `acceptedEpoch` is durable.
    AckEpoch {
        current_epoch: Epoch,
        last_zxid: Zxid,
    },
    /// SNAP: replace the state with the leader's committed tree.
    Snap {
        tree: Box<DataTree>,
    },
    /// TRUNC: drop logged transactions above `zxid`.
    Trunc {
        zxid: Zxid,
    },
    /// DIFF: the learner's log up to `zxid` is part of the leader's history.
    Diff {
        zxid: Zxid,
    },
    Proposal {
        txn: LoggedTxn,
        origin: Option<(NodeId, RequestId)>,
    },
    Commit {
        zxid: Zxid,
    },
    /// NEWLEADER: acknowledged only once the synced transactions and then
    /// `currentEpoch` are durable.
    NewLeader {
        epoch: Epoch,
    },
    NewLeaderAck {
        epoch: Epoch,
    },
    /// UPTODATE: the epoch is established; start serving.
    /// It carries the leader's commit point: a learner whose log already
    /// held the new epoch's initial history got no COMMIT for it in the
    /// sync stream (an empty DIFF), and must still apply it.
    UpToDate {
        committed: Zxid,
    },
    /// ACK of a proposal: sent only once it (and so every earlier one) is
    /// durable. Cumulative.
    Ack {
        zxid: Zxid,
    },
    /// Leader liveness probe; the learner answers with the sessions its
    /// clients touched since the last answer.
    Ping,
    PingReply {
        touched: Vec<SessionId>,
    },
    /// A client write forwarded to the leader.
    Request {
        id: RequestId,
        session: SessionId,
        op: WriteOp,
    },
    /// A client `sync` forwarded to the leader, and its answer, which the
    /// leader sends after the commits that precede it.
    Sync {
        id: RequestId,
    },
    SyncReply {
        id: RequestId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Notification(Notification),
    Zab {
        link: LinkId,
        /// Names one leadership (boot incarnation and how many times this
        /// boot led), set on leader-to-learner packets; 0 from learners.
        /// A learner never takes packets from two leaderships on one link.
        leader_stamp: u64,
        seq: u64,
        body: ZabBody,
    },
}
