//! The sans-IO ZAB peer: one state machine per server, driven by
//! [`Peer::step`]. This file holds the peer, its inputs and outputs,
//! election and the state shared by all roles; `leader.rs` and
//! `learner.rs` hold the two sides of discovery, sync and broadcast.
//!
//! # Contract with the driver
//!
//! - Feed every input through `step`; it returns the outputs in the order
//!   they must be acted on.
//! - `Persist` outputs must be applied to stable storage **in output
//!   order** (one append-only log is enough). When everything up to and
//!   including a `Persist{token}` is durable (fsync returned), feed
//!   `Persisted(token)`. A later token implies every earlier one.
//! - `Send` outputs may be sent in any order, dropped, duplicated or
//!   delayed: the core numbers its ZAB packets and copes.
//! - Every acknowledgement that promises durability (ACKEPOCH, the
//!   NEWLEADER ack, proposal ACKs, and the leader counting itself in any of
//!   those quorums) is produced only while handling the `Persisted` that
//!   covers the write it promises. A driver that reports `Persisted` early
//!   breaks ZAB; one that reports it late only slows it down.
//! - `Tick` is the only clock: `tick_ms` of real time per tick.
//! - After a crash, rebuild the peer with [`Peer::restore`] from what the
//!   persisted records say (see [`DurableState`]); nothing else survives.

use std::collections::{BTreeMap, VecDeque};

mod leader;
mod learner;

use leader::Leader;
use learner::{Learner, Phase};

use crate::clients::{serve_read, ClientOp, ClientRequest, Clients, Response};
use crate::election::{Context, Decision, Election};
use crate::ids::{Epoch, NodeId, PersistToken, RequestId, SessionId, Zxid};
use crate::message::{LinkId, Message, Notification, PeerState, Vote, ZabBody};
use crate::tree::{DataTree, WatchEventType, Watches};
use crate::txn::{ErrorCode, LoggedTxn, OpResult, PrepLimits, Txn};

/// Static configuration of one peer.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Participants (`server.N=...:participant`); quorums are majorities.
    pub voters: Vec<NodeId>,
    /// Non-voting learners (`:observer`).
    pub observers: Vec<NodeId>,
    /// Must grow on every boot of this peer (a persisted boot counter, or
    /// wall-clock ms): it orders learner links across restarts.
    pub incarnation: u64,
    pub tick_ms: u64,
    /// Ticks a leader has to get a quorum through discovery and sync, and
    /// a learner to hear from its leader before UPTODATE (`initLimit`).
    pub init_limit_ticks: u64,
    /// Ticks of silence after which a leader or learner gives up (`syncLimit`).
    pub sync_limit_ticks: u64,
    /// Ticks between resends of our vote while LOOKING. Give peers
    /// different values (the driver's jitter) to break symmetric rounds.
    pub election_resend_ticks: u64,
    /// Take a snapshot after this many committed transactions (`snapCount`).
    pub snapshot_every_txns: u64,
    /// Committed transactions kept in memory for DIFF sync (`committedLog`).
    pub log_keep_txns: usize,
    /// Highest zxid counter used before the leader forces a new epoch;
    /// `u32::MAX` in production, small in simulation to exercise rollover.
    pub zxid_counter_max: u32,
    pub data_bytes_max: usize,
    /// Requests waiting at this peer before it answers ConnectionLoss.
    pub client_requests_max: usize,
    /// Reproduces ZOOKEEPER-4643/4646 for regression tests only: a learner
    /// writes `currentEpoch` and acknowledges NEWLEADER before the synced
    /// transactions are logged (they are logged at UPTODATE, as ZooKeeper
    /// 3.5-3.8 did). Never set it outside tests.
    #[doc(hidden)]
    pub bug_ack_newleader_before_txns: bool,
}

impl Config {
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    fn prep_limits(&self) -> PrepLimits {
        // ZooKeeper's defaults: minSessionTimeout = 2 * tickTime,
        // maxSessionTimeout = 20 * tickTime.
        let tick = u32::try_from(self.tick_ms).unwrap_or(u32::MAX);
        PrepLimits {
            data_bytes_max: self.data_bytes_max,
            session_timeout_ms_min: tick.saturating_mul(2),
            session_timeout_ms_max: tick.saturating_mul(20),
        }
    }
}

/// What the driver read back from stable storage after a crash.
#[derive(Clone, Debug, Default)]
pub struct DurableState {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    /// The latest snapshot (committed state), or an empty tree.
    pub snapshot: DataTree,
    /// Logged transactions after the snapshot, in zxid order.
    pub log: Vec<LoggedTxn>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestoreError {
    #[error("log zxid {zxid} does not follow {previous}")]
    LogOutOfOrder { zxid: Zxid, previous: Zxid },
    #[error("currentEpoch {current:?} is ahead of acceptedEpoch {accepted:?}")]
    EpochsInverted { current: Epoch, accepted: Epoch },
    #[error("peer {0:?} is not in the ensemble")]
    NotAMember(NodeId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Tick,
    Message { from: NodeId, msg: Message },
    ClientRequest(ClientRequest),
    Persisted(PersistToken),
}

/// A write to stable storage. Records are replayed in order at restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistAction {
    AcceptedEpoch(Epoch),
    CurrentEpoch(Epoch),
    /// Append to the transaction log.
    Txns(Vec<LoggedTxn>),
    /// Drop every logged transaction above this zxid.
    Truncate(Zxid),
    /// A snapshot of committed state at `tree.last_zxid()`. With
    /// `discard_log` (SNAP sync) the whole log before it is void;
    /// otherwise only the entries it covers are.
    Snapshot {
        tree: Box<DataTree>,
        discard_log: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        to: NodeId,
        msg: Message,
    },
    Persist {
        token: PersistToken,
        action: PersistAction,
    },
    /// A committed transaction, applied to this peer's tree.
    Deliver {
        txn: LoggedTxn,
        result: OpResult,
    },
    /// The tree was replaced by the leader's snapshot (SNAP sync).
    SnapshotInstalled {
        last_zxid: Zxid,
    },
    /// `zxid` is this peer's commit point when it answered (ZooKeeper's
    /// reply-header zxid); clients keep the highest as `last_zxid_seen`.
    Reply {
        id: RequestId,
        zxid: Zxid,
        response: Response,
    },
    /// A one-shot watch fired on this peer.
    Watch {
        session: SessionId,
        path: String,
        event: WatchEventType,
    },
}

/// The role a peer is in (FLE's `ServerState`), for observers of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    Looking,
    Leading { established: bool },
    Following { active: bool },
    Observing { active: bool },
}

/// What to do once a `Persist` is durable. Actions other than
/// `LogDurable` belong to the role generation that asked for them.
#[derive(Clone, Copy, Debug)]
enum After {
    LogDurable { zxid: Zxid, log_generation: u64 },
    SendAckEpoch,
    SendNewLeaderAck(Epoch),
    SendAck(Zxid),
    LeaderEpochDurable,
    LeaderCurrentEpochDurable,
    Nothing,
}

struct Core {
    cfg: Config,
    now: u64,
    /// The driver's wall clock (ms since the Unix epoch), 0 until it sets
    /// one; the leader stamps proposals with it (ctime/mtime).
    wall_ms: u64,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    /// Transactions after `log_base`, strictly increasing; includes written
    /// but not yet durable ones.
    log: Vec<LoggedTxn>,
    log_base: Zxid,
    /// Bumped by every truncation, so late durability news about a
    /// truncated entry is ignored.
    log_generation: u64,
    durable_zxid: Zxid,
    /// Committed state; `tree.last_zxid()` is this peer's commit point.
    tree: DataTree,
    next_token: u64,
    pending: VecDeque<(PersistToken, u64, After)>,
    generation: u64,
    logical_clock: u64,
    current_vote: Vote,
    link_attempts: u64,
    watches: Watches,
    clients: Clients,
    /// zxid -> request for writes that came in through this peer.
    origins: BTreeMap<Zxid, RequestId>,
    commits_since_snapshot: u64,
    leaderships: u64,
    leader_stamp: u64,
    violations: Vec<String>,
    out: Vec<Output>,
}

enum Role {
    Looking(Election),
    Leading(Box<Leader>),
    Learning(Learner),
}

/// How a role handler wants the peer to continue.
enum Flow {
    Stay,
    Looking(String),
}

pub struct Peer {
    core: Core,
    role: Role,
    last_step_down: Option<String>,
}

impl Peer {
    /// Builds a peer from what its disk holds. It starts LOOKING and sends
    /// its first votes on the first tick.
    pub fn restore(cfg: Config, durable: DurableState) -> Result<Peer, RestoreError> {
        if !cfg.is_voter(cfg.id) && !cfg.observers.contains(&cfg.id) {
            return Err(RestoreError::NotAMember(cfg.id));
        }
        if durable.current_epoch > durable.accepted_epoch {
            return Err(RestoreError::EpochsInverted {
                current: durable.current_epoch,
                accepted: durable.accepted_epoch,
            });
        }
        let log_base = durable.snapshot.last_zxid();
        let mut previous = log_base;
        for txn in &durable.log {
            if txn.zxid <= previous {
                return Err(RestoreError::LogOutOfOrder {
                    zxid: txn.zxid,
                    previous,
                });
            }
            previous = txn.zxid;
        }
        let core = Core {
            current_vote: Vote {
                leader: cfg.id,
                zxid: previous,
                peer_epoch: durable.current_epoch,
            },
            now: 0,
            wall_ms: 0,
            accepted_epoch: durable.accepted_epoch,
            current_epoch: durable.current_epoch,
            log: durable.log,
            log_base,
            log_generation: 0,
            durable_zxid: previous,
            tree: durable.snapshot,
            next_token: 1,
            pending: VecDeque::new(),
            generation: 0,
            logical_clock: 0,
            link_attempts: 0,
            watches: Watches::default(),
            clients: Clients::default(),
            origins: BTreeMap::new(),
            commits_since_snapshot: 0,
            leaderships: 0,
            leader_stamp: 0,
            violations: Vec::new(),
            out: Vec::new(),
            cfg,
        };
        let mut peer = Peer {
            core,
            role: Role::Looking(dummy_election()),
            last_step_down: None,
        };
        // LOOKING, but nothing sent yet: `restore` has no way to return
        // outputs, so the first tick sends the first votes.
        let core = &mut peer.core;
        core.logical_clock = 1;
        let self_vote = core.self_vote();
        let voters = core.cfg.voters.clone();
        let ctx = Context {
            me: core.cfg.id,
            voters: &voters,
            self_vote,
            logical_clock: &mut core.logical_clock,
        };
        let mut election = Election::start(&ctx);
        election.ticks_since_send = core.cfg.election_resend_ticks;
        peer.role = Role::Looking(election);
        Ok(peer)
    }

    /// Handles one input and returns what the driver must do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        let flow = match input {
            Input::Tick => self.on_tick(),
            Input::Message { from, msg } => self.on_message(from, msg),
            Input::ClientRequest(request) => self.on_client(request),
            Input::Persisted(token) => self.on_persisted(token),
        };
        if let Flow::Looking(reason) = flow {
            self.last_step_down = Some(reason);
            self.become_looking();
        }
        std::mem::take(&mut self.core.out)
    }

    pub fn id(&self) -> NodeId {
        self.core.cfg.id
    }

    pub fn role(&self) -> RoleKind {
        match &self.role {
            Role::Looking(_) => RoleKind::Looking,
            Role::Leading(l) => RoleKind::Leading {
                established: l.established,
            },
            Role::Learning(l) if l.observer => RoleKind::Observing {
                active: l.phase == Phase::Active,
            },
            Role::Learning(l) => RoleKind::Following {
                active: l.phase == Phase::Active,
            },
        }
    }

    /// The epoch this peer leads, once a quorum acknowledged NEWLEADER.
    pub fn established_epoch(&self) -> Option<Epoch> {
        match &self.role {
            Role::Leading(l) if l.established => l.new_epoch,
            _ => None,
        }
    }

    pub fn tree(&self) -> &DataTree {
        &self.core.tree
    }

    /// Sets the wall clock (ms since the Unix epoch) the leader stamps on
    /// the transactions it proposes, as ZooKeeper's leader takes
    /// `Time.currentWallTime()` in prep: peers apply the stamped value, so
    /// every replica shows the same ctime/mtime. The core never reads a
    /// clock itself; without this call it stamps its tick count in ms.
    pub fn set_wall_clock_ms(&mut self, ms: u64) {
        self.core.wall_ms = ms;
    }

    pub fn committed_zxid(&self) -> Zxid {
        self.core.tree.last_zxid()
    }

    pub fn last_zxid(&self) -> Zxid {
        self.core.last_zxid()
    }

    /// In-memory log: transactions after `log_base()`.
    pub fn log(&self) -> &[LoggedTxn] {
        &self.core.log
    }

    pub fn log_base(&self) -> Zxid {
        self.core.log_base
    }

    pub fn epochs(&self) -> (Epoch, Epoch) {
        (self.core.accepted_epoch, self.core.current_epoch)
    }

    /// Protocol violations seen (packets that ZAB says cannot happen).
    /// The peer answers each by going back to LOOKING; the simulator
    /// requires the list to stay empty.
    pub fn violations(&self) -> &[String] {
        &self.core.violations
    }

    pub fn last_step_down(&self) -> Option<&str> {
        self.last_step_down.as_deref()
    }

    pub fn now_ticks(&self) -> u64 {
        self.core.now
    }

    // ----- transitions -------------------------------------------------

    fn become_looking(&mut self) {
        let core = &mut self.core;
        core.generation += 1;
        core.logical_clock += 1;
        core.fail_clients();
        let self_vote = core.self_vote();
        let voters = core.cfg.voters.clone();
        let ctx = Context {
            me: core.cfg.id,
            voters: &voters,
            self_vote,
            logical_clock: &mut core.logical_clock,
        };
        let election = Election::start(&ctx);
        self.role = Role::Looking(election);
        self.broadcast_vote();
        if self.core.cfg.quorum() == 1 && self.core.cfg.is_voter(self.core.cfg.id) {
            // A one-voter ensemble: our own vote is the quorum (ZooKeeper
            // gets there by delivering its notification to itself).
            self.decide(Decision::Lead(self_vote));
        }
    }

    fn broadcast_vote(&mut self) {
        let Role::Looking(election) = &mut self.role else {
            return;
        };
        election.ticks_since_send = 0;
        let Some(vote) = election.proposal.or(Some(self.core.self_vote())) else {
            return;
        };
        let n = Notification {
            vote,
            election_epoch: self.core.logical_clock,
            state: PeerState::Looking,
        };
        for to in self.core.cfg.voters.clone() {
            if to != self.core.cfg.id {
                self.core.send(to, Message::Notification(n));
            }
        }
    }

    fn decide(&mut self, decision: Decision) {
        let core = &mut self.core;
        core.generation += 1;
        match decision {
            Decision::Lead(vote) => {
                core.current_vote = vote;
                core.leaderships += 1;
                core.leader_stamp = stamp(core.cfg.incarnation, core.leaderships);
                let mut leader = Leader::new(core);
                let flow = leader.maybe_fix_epoch(core);
                self.role = Role::Leading(Box::new(leader));
                if let Flow::Looking(reason) = flow {
                    self.last_step_down = Some(reason);
                    self.become_looking();
                }
            }
            Decision::Follow(vote) => {
                core.current_vote = vote;
                let observer = !core.cfg.is_voter(core.cfg.id);
                core.link_attempts += 1;
                let link = LinkId {
                    learner_incarnation: core.cfg.incarnation,
                    attempt: core.link_attempts,
                };
                let mut learner = Learner::new(vote.leader, link, observer, core.now);
                let body = ZabBody::LearnerInfo {
                    accepted_epoch: core.accepted_epoch,
                    last_zxid: core.last_zxid(),
                    observer,
                };
                learner.send(core, body);
                self.role = Role::Learning(learner);
            }
        }
    }

    // ----- inputs ------------------------------------------------------

    fn on_tick(&mut self) -> Flow {
        self.core.now += 1;
        match &mut self.role {
            Role::Looking(election) => {
                election.ticks_since_send += 1;
                if election.ticks_since_send >= self.core.cfg.election_resend_ticks.max(1) {
                    self.broadcast_vote();
                    if self.core.cfg.quorum() == 1 && self.core.cfg.is_voter(self.core.cfg.id) {
                        let vote = self.core.self_vote();
                        self.decide(Decision::Lead(vote));
                    }
                }
                Flow::Stay
            }
            Role::Leading(leader) => leader.on_tick(&mut self.core),
            Role::Learning(learner) => learner.on_tick(&mut self.core),
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message) -> Flow {
        if from == self.core.cfg.id {
            return Flow::Stay;
        }
        match msg {
            Message::Notification(n) => self.on_notification(from, n),
            Message::Zab {
                link,
                leader_stamp,
                seq,
                body,
            } => match &mut self.role {
                Role::Looking(_) => Flow::Stay,
                Role::Leading(leader) => leader.on_packet(&mut self.core, from, link, seq, body),
                Role::Learning(learner) => learner.on_packet(&mut self.core, from, link, leader_stamp, seq, body),
            },
        }
    }

    fn on_notification(&mut self, from: NodeId, n: Notification) -> Flow {
        let state = match &self.role {
            Role::Looking(_) => PeerState::Looking,
            Role::Leading(_) => PeerState::Leading,
            Role::Learning(l) if l.observer => PeerState::Observing,
            Role::Learning(_) => PeerState::Following,
        };
        if state != PeerState::Looking {
            // Not looking: tell a looking peer who we think leads.
            if n.state == PeerState::Looking {
                let reply = Notification {
                    vote: self.core.current_vote,
                    election_epoch: self.core.logical_clock,
                    state,
                };
                self.core.send(from, Message::Notification(reply));
            }
            return Flow::Stay;
        }
        let Role::Looking(election) = &mut self.role else {
            return Flow::Stay;
        };
        let core = &mut self.core;
        let voters = core.cfg.voters.clone();
        let self_vote = core.self_vote();
        let mut ctx = Context {
            me: core.cfg.id,
            voters: &voters,
            self_vote,
            logical_clock: &mut core.logical_clock,
        };
        let effect = election.on_notification(&mut ctx, from, &n);
        if effect.reply {
            if let Some(vote) = election.proposal.or(Some(self_vote)) {
                let reply = Notification {
                    vote,
                    election_epoch: core.logical_clock,
                    state: PeerState::Looking,
                };
                core.send(from, Message::Notification(reply));
            }
        }
        if effect.broadcast {
            self.broadcast_vote();
        }
        if let Some(decision) = effect.decision {
            self.decide(decision);
        }
        Flow::Stay
    }

    fn on_client(&mut self, request: ClientRequest) -> Flow {
        let serving = match &self.role {
            Role::Leading(l) => l.established,
            Role::Learning(l) => l.phase == Phase::Active,
            Role::Looking(_) => false,
        };
        let core = &mut self.core;
        // A peer behind what the client already saw refuses it, as
        // ZooKeeper refuses such a connection; the client tries another.
        let behind = request.last_zxid_seen > core.tree.last_zxid();
        if !serving || behind || core.clients.len() >= core.cfg.client_requests_max {
            core.reply(request.id, Response::Error(ErrorCode::ConnectionLoss));
            return Flow::Stay;
        }
        if let Some(session) = request.session {
            // Any packet on a session keeps it alive (ZooKeeper's touch).
            match &mut self.role {
                Role::Leading(leader) => leader.touch(core, session),
                Role::Learning(learner) => {
                    learner.touched.insert(session);
                }
                Role::Looking(_) => {}
            }
        }
        if request.op.is_read() {
            let Core {
                clients, tree, watches, ..
            } = core;
            if let Some((id, response)) = clients.read(request, tree, watches) {
                core.reply(id, response);
            }
            return Flow::Stay;
        }
        match (&mut self.role, request.op) {
            (Role::Leading(leader), ClientOp::Ping) => {
                if let Some(s) = request.session {
                    leader.touch(core, s);
                }
                core.reply(request.id, Response::Pong);
                Flow::Stay
            }
            (Role::Learning(learner), ClientOp::Ping) => {
                if let Some(s) = request.session {
                    learner.touched.insert(s);
                }
                core.reply(request.id, Response::Pong);
                Flow::Stay
            }
            (Role::Leading(leader), ClientOp::Write(op)) => {
                let session = request.session.unwrap_or(SessionId(0));
                if let Some(s) = request.session {
                    leader.touch(core, s);
                }
                core.clients.push_waiting(request.id, request.session);
                leader.propose(core, session, &op, Some((core.cfg.id, request.id)))
            }
            (Role::Learning(learner), ClientOp::Write(op)) => {
                if learner.observer_or_follower_can_forward() {
                    let session = request.session.unwrap_or(SessionId(0));
                    if let Some(s) = request.session {
                        learner.touched.insert(s);
                    }
                    core.clients.push_waiting(request.id, request.session);
                    learner.send(
                        core,
                        ZabBody::Request {
                            id: request.id,
                            session,
                            op,
                        },
                    );
                }
                Flow::Stay
            }
            (Role::Leading(leader), ClientOp::Sync) => {
                core.clients.push_waiting(request.id, request.session);
                leader.sync_request(core, core.cfg.id, request.id);
                Flow::Stay
            }
            (Role::Learning(learner), ClientOp::Sync) => {
                core.clients.push_waiting(request.id, request.session);
                learner.send(core, ZabBody::Sync { id: request.id });
                Flow::Stay
            }
            (_, _) => {
                core.reply(request.id, Response::Error(ErrorCode::ConnectionLoss));
                Flow::Stay
            }
        }
    }

    fn on_persisted(&mut self, token: PersistToken) -> Flow {
        while let Some((t, generation, after)) = self.core.pending.front().copied() {
            if t > token {
                break;
            }
            self.core.pending.pop_front();
            if let After::LogDurable { zxid, log_generation } = after {
                if log_generation == self.core.log_generation {
                    self.core.durable_zxid = self.core.durable_zxid.max(zxid);
                }
                if let Role::Leading(leader) = &mut self.role {
                    leader.try_commit(&mut self.core);
                }
                continue;
            }
            if generation != self.core.generation {
                continue;
            }
            let flow = match &mut self.role {
                Role::Leading(leader) => leader.after_persist(&mut self.core, after),
                Role::Learning(learner) => learner.after_persist(&mut self.core, after),
                Role::Looking(_) => Flow::Stay,
            };
            if let Flow::Looking(reason) = flow {
                // Change role now; the generation bump voids the rest of
                // this batch's role actions, but durability news still counts.
                self.last_step_down = Some(reason);
                self.become_looking();
            }
        }
        Flow::Stay
    }
}

/// A 64-bit name for one leadership; collisions are as likely as two
/// random u64 being equal.
fn stamp(incarnation: u64, leaderships: u64) -> u64 {
    let mut z = incarnation.rotate_left(32) ^ leaderships;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

fn dummy_election() -> Election {
    let voters = [];
    let mut clock = 0;
    let ctx = Context {
        me: NodeId(0),
        voters: &voters,
        self_vote: Vote {
            leader: NodeId(0),
            zxid: Zxid::ZERO,
            peer_epoch: Epoch(0),
        },
        logical_clock: &mut clock,
    };
    Election::start(&ctx)
}

// ----- shared core ------------------------------------------------------

impl Core {
    fn last_zxid(&self) -> Zxid {
        self.log.last().map_or(self.log_base, |t| t.zxid)
    }

    fn self_vote(&self) -> Vote {
        Vote {
            leader: self.cfg.id,
            zxid: self.last_zxid(),
            peer_epoch: self.current_epoch,
        }
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.out.push(Output::Send { to, msg });
    }

    fn reply(&mut self, id: RequestId, response: Response) {
        let zxid = self.tree.last_zxid();
        self.out.push(Output::Reply { id, zxid, response });
    }

    fn persist(&mut self, action: PersistAction, after: After) {
        let token = PersistToken(self.next_token);
        self.next_token += 1;
        self.pending.push_back((token, self.generation, after));
        self.out.push(Output::Persist { token, action });
    }

    fn violation(&mut self, what: String) -> Flow {
        self.violations.push(what.clone());
        Flow::Looking(format!("protocol violation: {what}"))
    }

    fn fail_clients(&mut self) {
        for (id, response) in self.clients.fail_all() {
            self.reply(id, response);
        }
        self.origins.clear();
        // ZooKeeper drops a connection's watches with the connection; the
        // client sets them again when it reconnects.
        self.watches = Watches::default();
    }

    /// Appends to the log and persists; the ACK-side promise is `after`.
    fn append(&mut self, txns: Vec<LoggedTxn>, after: After) {
        let Some(last) = txns.last().map(|t| t.zxid) else {
            return;
        };
        for txn in &txns {
            assert!(
                txn.zxid > self.last_zxid(),
                "zxid {} appended after {}",
                txn.zxid,
                self.last_zxid()
            );
            self.log.push(txn.clone());
        }
        self.persist(
            PersistAction::Txns(txns),
            After::LogDurable {
                zxid: last,
                log_generation: self.log_generation,
            },
        );
        if !matches!(after, After::Nothing) {
            self.persist_marker(after);
        }
    }

    /// Ties an action to the durability of everything persisted so far,
    /// without writing anything new: the driver answers `Persisted` for it
    /// as soon as the earlier writes are durable.
    fn persist_marker(&mut self, after: After) {
        // A zero-length append is the cheapest "barrier" record.
        self.persist(PersistAction::Txns(Vec::new()), after);
    }

    fn truncate(&mut self, zxid: Zxid) {
        self.log.retain(|t| t.zxid <= zxid);
        self.log_generation += 1;
        self.durable_zxid = self.durable_zxid.min(zxid);
        self.persist(PersistAction::Truncate(zxid), After::Nothing);
    }

    /// Applies every logged transaction up to `zxid` (commit in order).
    fn commit_through(&mut self, zxid: Zxid) {
        let start = self.log.partition_point(|t| t.zxid <= self.tree.last_zxid());
        let end = self.log.partition_point(|t| t.zxid <= zxid);
        for index in start..end {
            let txn = self.log[index].clone();
            let (result, triggers) = self.tree.apply(&txn);
            // Deliver first: a reply must never precede the commit it reports.
            self.out.push(Output::Deliver {
                txn: txn.clone(),
                result: result.clone(),
            });
            for (path, event) in triggers {
                for (session, path, event) in self.watches.fire(&path, event) {
                    self.out.push(Output::Watch { session, path, event });
                }
            }
            if txn.txn == Txn::CloseSession {
                self.watches.remove_session(txn.session);
            }
            if let Some(id) = self.origins.remove(&txn.zxid) {
                let response = Response::Write {
                    zxid: txn.zxid,
                    result: result.clone(),
                };
                let Core {
                    clients, tree, watches, ..
                } = self;
                let due = clients.complete(id, response, tree, watches);
                for (id, response) in due {
                    self.reply(id, response);
                }
            }
            self.commits_since_snapshot += 1;
        }
        if self.commits_since_snapshot >= self.cfg.snapshot_every_txns.max(1) {
            self.commits_since_snapshot = 0;
            self.persist(
                PersistAction::Snapshot {
                    tree: Box::new(self.tree.clone()),
                    discard_log: false,
                },
                After::Nothing,
            );
        }
        self.trim_log();
    }

    /// Forgets committed transactions beyond `log_keep_txns`; a learner
    /// that needs them gets a SNAP instead of a DIFF.
    fn trim_log(&mut self) {
        let committed = self.log.partition_point(|t| t.zxid <= self.tree.last_zxid());
        let keep = self.cfg.log_keep_txns;
        if committed > keep.saturating_mul(2) {
            let drop = committed - keep;
            self.log_base = self.log[drop - 1].zxid;
            self.log.drain(..drop);
        }
    }

    fn complete_client(&mut self, id: RequestId, response: Response) {
        let Core {
            clients, tree, watches, ..
        } = self;
        let due = clients.complete(id, response, tree, watches);
        for (id, response) in due {
            self.reply(id, response);
        }
    }
}

/// Out-of-order packets held per link before it is declared broken.
const REORDER_PACKETS_MAX: usize = 4096;

/// Serves a read as the peer would; exposed for tests of the read path.
pub fn read_locally(tree: &DataTree, op: &ClientOp, session: SessionId) -> Response {
    serve_read(op, session, tree, &mut Watches::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{CreateMode, WriteOp};

    fn config(id: u64, voters: u64) -> Config {
        Config {
            id: NodeId(id),
            voters: (1..=voters).map(NodeId).collect(),
            observers: Vec::new(),
            incarnation: 1,
            tick_ms: 100,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            election_resend_ticks: 2,
            snapshot_every_txns: 100,
            log_keep_txns: 100,
            zxid_counter_max: u32::MAX,
            data_bytes_max: 1024,
            client_requests_max: 16,
            bug_ack_newleader_before_txns: false,
        }
    }

    /// A minimal driver: persists instantly, answers `Persisted` at once,
    /// and collects everything else.
    fn drive(peer: &mut Peer, input: Input) -> Vec<Output> {
        let mut pending = VecDeque::from([input]);
        let mut seen = Vec::new();
        while let Some(input) = pending.pop_front() {
            for output in peer.step(input) {
                match output {
                    Output::Persist { token, .. } => pending.push_back(Input::Persisted(token)),
                    other => seen.push(other),
                }
            }
        }
        seen
    }

    fn request(peer: &mut Peer, id: u64, session: Option<SessionId>, op: ClientOp) -> Response {
        let outputs = drive(
            peer,
            Input::ClientRequest(ClientRequest {
                id: RequestId(id),
                session,
                op,
                last_zxid_seen: Zxid::ZERO,
            }),
        );
        outputs
            .into_iter()
            .find_map(|o| match o {
                Output::Reply { id: rid, response, .. } if rid == RequestId(id) => Some(response),
                _ => None,
            })
            .expect("a reply")
    }

    #[test]
    fn single_voter_leads_and_fires_watches() {
        let mut peer = Peer::restore(config(1, 1), DurableState::default()).expect("valid");
        for _ in 0..3 {
            drive(&mut peer, Input::Tick);
        }
        assert_eq!(peer.established_epoch(), Some(Epoch(1)));
        assert_eq!(peer.epochs(), (Epoch(1), Epoch(1)));
        let session = match request(
            &mut peer,
            1,
            None,
            ClientOp::Write(WriteOp::CreateSession { timeout_ms: 1 }),
        ) {
            Response::Write {
                result: OpResult::SessionCreated { session, timeout_ms },
                ..
            } => {
                assert_eq!(timeout_ms, 200, "clamped to 2 ticks");
                session
            }
            other => panic!("{other:?}"),
        };
        let create = WriteOp::Create {
            path: "/a".into(),
            data: b"1".to_vec(),
            mode: CreateMode::Persistent,
        };
        assert!(matches!(
            request(&mut peer, 2, Some(session), ClientOp::Write(create)),
            Response::Write { .. }
        ));
        let get = ClientOp::GetData {
            path: "/a".into(),
            watch: true,
        };
        assert!(matches!(
            request(&mut peer, 3, Some(session), get),
            Response::Data { .. }
        ));
        let set = WriteOp::SetData {
            path: "/a".into(),
            data: b"2".to_vec(),
            version: 0,
        };
        let outputs = drive(
            &mut peer,
            Input::ClientRequest(ClientRequest {
                id: RequestId(4),
                session: Some(session),
                op: ClientOp::Write(set),
                last_zxid_seen: Zxid::ZERO,
            }),
        );
        assert!(outputs.iter().any(|o| matches!(
            o,
            Output::Watch {
                event: WatchEventType::NodeDataChanged,
                ..
            }
        )));
        // The session expires without pings: its close is a transaction.
        let ephemeral = WriteOp::Create {
            path: "/e".into(),
            data: Vec::new(),
            mode: CreateMode::Ephemeral,
        };
        request(&mut peer, 5, Some(session), ClientOp::Write(ephemeral));
        let mut closed = false;
        for _ in 0..10 {
            let outputs = drive(&mut peer, Input::Tick);
            closed |= outputs
                .iter()
                .any(|o| matches!(o, Output::Deliver { txn, .. } if txn.txn == Txn::CloseSession));
        }
        assert!(closed);
        assert!(peer.tree().node("/e").is_none());
        assert!(peer.tree().node("/a").is_some());
    }

    #[test]
    fn acks_wait_for_persisted() {
        // Two voters: peer 1 follows peer 2. Every packet peer 2 sends that
        // promises durability must come out of a `Persisted` step.
        // Equal histories: the higher id leads.
        let mut leader = Peer::restore(config(2, 2), DurableState::default()).expect("valid");
        let mut follower = Peer::restore(config(1, 2), DurableState::default()).expect("valid");
        let mut to_leader: VecDeque<Message> = VecDeque::new();
        let mut to_follower: VecDeque<Message> = VecDeque::new();
        let mut follower_tokens: VecDeque<PersistToken> = VecDeque::new();
        for round in 0..200 {
            let mut inputs = vec![Input::Tick];
            inputs.extend(to_leader.drain(..).map(|msg| Input::Message { from: NodeId(1), msg }));
            for input in inputs {
                for out in drive(&mut leader, input) {
                    if let Output::Send { msg, .. } = out {
                        to_follower.push_back(msg);
                    }
                }
            }
            let mut inputs = vec![Input::Tick];
            inputs.extend(to_follower.drain(..).map(|msg| Input::Message { from: NodeId(2), msg }));
            // The follower's disk completes one round late.
            if round % 2 == 0 {
                inputs.extend(follower_tokens.drain(..).map(Input::Persisted));
            }
            for input in inputs {
                let persisted = matches!(input, Input::Persisted(_));
                for out in follower.step(input) {
                    match out {
                        Output::Persist { token, .. } => follower_tokens.push_back(token),
                        Output::Send { msg, .. } => {
                            if let Message::Zab { body, .. } = &msg {
                                let promise = matches!(
                                    body,
                                    ZabBody::AckEpoch { .. } | ZabBody::NewLeaderAck { .. } | ZabBody::Ack { .. }
                                );
                                assert!(!promise || persisted, "{body:?} sent outside a Persisted step");
                            }
                            to_leader.push_back(msg);
                        }
                        _ => {}
                    }
                }
            }
            if follower.role() == (RoleKind::Following { active: true }) {
                return;
            }
        }
        panic!(
            "the follower never became active: {:?} / {:?}",
            leader.role(),
            follower.role()
        );
    }
}
