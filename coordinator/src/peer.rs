//! The sans-IO ZAB peer: one state machine per server, driven by
//! [`Peer::step`].
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::clients::{serve_read, ClientOp, ClientRequest, Clients, Response};
use crate::election::{Context, Decision, Election};
use crate::ids::{Epoch, NodeId, PersistToken, RequestId, SessionId, Zxid};
use crate::message::{LinkId, Message, Notification, PeerState, Vote, ZabBody};
use crate::tree::{DataTree, WatchEventType, Watches};
use crate::txn::{prep, ErrorCode, LoggedTxn, OpResult, PrepLimits, Txn, WriteOp};

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

// ----- leader -----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandlerState {
    /// Sent LEADERINFO (or waiting for the epoch to be fixed).
    Discovery,
    /// ACKEPOCH received; waiting for a quorum before syncing.
    EpochAcked,
    /// Sync stream and NEWLEADER sent; in the forwarding set.
    Syncing,
    /// NEWLEADER acknowledged; UPTODATE sent once established.
    Synced,
}

struct Handler {
    link: LinkId,
    send_seq: u64,
    recv_seq: u64,
    state: HandlerState,
    voter: bool,
    last_heard: u64,
    /// Highest zxid this learner promised durable (cumulative).
    acked: Zxid,
    ack_epoch_last_zxid: Zxid,
    sync_last: Zxid,
    up_to_date: bool,
    /// Packets that arrived ahead of a gap.
    early: BTreeMap<u64, ZabBody>,
}

/// Out-of-order packets held per link before it is declared broken.
const REORDER_PACKETS_MAX: usize = 4096;

struct Leader {
    started: u64,
    new_epoch: Option<Epoch>,
    /// Voters' acceptedEpoch from FOLLOWERINFO (self included).
    connecting: BTreeMap<NodeId, Epoch>,
    epoch_acks: BTreeSet<NodeId>,
    syncing: bool,
    newleader_acks: BTreeSet<NodeId>,
    established: bool,
    handlers: BTreeMap<NodeId, Handler>,
    next_counter: u32,
    /// Committed tree plus every outstanding proposal: prep checks here.
    spec: DataTree,
    outstanding: BTreeMap<Zxid, Option<(NodeId, RequestId)>>,
    last_proposed: Zxid,
    /// (position, origin, its link when remote, request).
    pending_syncs: VecDeque<(Zxid, NodeId, Option<LinkId>, RequestId)>,
    deadlines: BTreeMap<SessionId, u64>,
    closing: BTreeSet<SessionId>,
    summary: (Epoch, Zxid),
}

impl Leader {
    fn new(core: &mut Core) -> Leader {
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

    fn send(core: &mut Core, to: NodeId, handler: &mut Handler, body: ZabBody) {
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

    fn forward_all(&mut self, core: &mut Core, body: &ZabBody) {
        for (id, h) in self.handlers.iter_mut() {
            if matches!(h.state, HandlerState::Syncing | HandlerState::Synced) {
                Leader::send(core, *id, h, body.clone());
            }
        }
    }

    fn on_tick(&mut self, core: &mut Core) -> Flow {
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
    fn expire_sessions(&mut self, core: &mut Core) -> Flow {
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

    fn touch(&mut self, core: &Core, session: SessionId) {
        if let Some(info) = self.spec.session(session) {
            if !self.closing.contains(&session) {
                let ticks = u64::from(info.timeout_ms).div_ceil(core.cfg.tick_ms.max(1));
                self.deadlines.insert(session, core.now + ticks);
            }
        }
    }

    /// Discovery: once a quorum of voters reported acceptedEpoch, propose
    /// one past the highest (`Leader.getEpochToPropose`).
    fn maybe_fix_epoch(&mut self, core: &mut Core) -> Flow {
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

    fn after_persist(&mut self, core: &mut Core, after: After) -> Flow {
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

    fn on_packet(&mut self, core: &mut Core, from: NodeId, link: LinkId, seq: u64, body: ZabBody) -> Flow {
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

    fn on_body(&mut self, core: &mut Core, from: NodeId, body: ZabBody) -> Flow {
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

    fn on_ack_epoch(&mut self, core: &mut Core, from: NodeId, current_epoch: Epoch, last_zxid: Zxid) -> Flow {
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
    fn maybe_start_sync(&mut self, core: &mut Core) {
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
    fn sync_learner(&mut self, core: &mut Core, id: NodeId) {
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

    fn on_newleader_ack(&mut self, core: &mut Core, from: NodeId, epoch: Epoch) -> Flow {
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

    fn maybe_establish(&mut self, core: &mut Core) -> Flow {
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

    fn propose(
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
            time_ms: core.now * core.cfg.tick_ms,
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
    fn try_commit(&mut self, core: &mut Core) {
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

    fn sync_request(&mut self, core: &mut Core, from: NodeId, id: RequestId) {
        let link = self.handlers.get(&from).map(|h| h.link);
        self.pending_syncs.push_back((self.last_proposed, from, link, id));
        self.answer_syncs(core);
    }

    /// Answers syncs whose position is committed, right after the COMMITs
    /// that precede them on each link.
    fn answer_syncs(&mut self, core: &mut Core) {
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

// ----- learner ----------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
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

struct Learner {
    leader: NodeId,
    link: LinkId,
    leader_stamp: Option<u64>,
    send_seq: u64,
    recv_seq: u64,
    phase: Phase,
    observer: bool,
    last_heard: u64,
    new_epoch: Epoch,
    /// Commit point learned during sync; applied at UPTODATE.
    sync_commit: Zxid,
    touched: BTreeSet<SessionId>,
    /// Only with `bug_ack_newleader_before_txns`: synced but not yet logged.
    unlogged: Vec<LoggedTxn>,
    early: BTreeMap<u64, ZabBody>,
}

impl Learner {
    fn new(leader: NodeId, link: LinkId, observer: bool, now: u64) -> Learner {
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

    fn observer_or_follower_can_forward(&self) -> bool {
        self.phase == Phase::Active
    }

    fn send(&mut self, core: &mut Core, body: ZabBody) {
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

    fn on_tick(&mut self, core: &mut Core) -> Flow {
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

    fn on_packet(
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

    fn on_body(&mut self, core: &mut Core, body: ZabBody) -> Flow {
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

    fn after_persist(&mut self, core: &mut Core, after: After) -> Flow {
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

/// Serves a read as the peer would; exposed for tests of the read path.
pub fn read_locally(tree: &DataTree, op: &ClientOp, session: SessionId) -> Response {
    serve_read(op, session, tree, &mut Watches::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::CreateMode;

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
