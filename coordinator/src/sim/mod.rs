//! Deterministic simulator: the real [`Peer`] code on a virtual clock, a
//! faulty network, simulated disks and randomized clients, with invariants
//! checked after every step.
//!
//! Everything random comes from one seed, so a failure replays exactly:
//! `RINGTAIL_SIM_SEED=N cargo test -p ringtail-coordinator --release --test sim`.
//!
//! Faults: the network drops, duplicates, delays (so reorders) and
//! partitions messages, every message goes through the binary codec; nodes
//! crash and restart from their simulated disk only, which loses unsynced
//! writes and may tear the last one; disks are sometimes slow.

pub mod check;
pub mod disk;
pub mod rng;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use crate::clients::{ClientOp, ClientRequest, Response};
use crate::codec::{decode_message, encode_message};
use crate::ids::{Epoch, NodeId, RequestId, SessionId, Zxid};
use crate::message::{LinkId, Message, ZabBody};
use crate::peer::{Config, DurableState, Input, Output, Peer, RoleKind};
use crate::txn::{CreateMode, ErrorCode, OpResult, WriteOp, VERSION_ANY};
use check::Checker;
use disk::Disk;
use rng::Rng;

pub const TICK_MS: u64 = 50;
/// A seed that needs more than this is stuck in a loop: report it.
const STEPS_MAX: u64 = 3_000_000;
const EVENTS_MAX: usize = 1_000_000;

/// Fault rates, per million, per opportunity.
#[derive(Clone, Debug)]
pub struct Faults {
    pub drop: u64,
    pub duplicate: u64,
    pub delay_ms_max: u64,
    pub long_delay: u64,
    /// Per tick: crash one node.
    pub crash: u64,
    /// Per tick: change the partition.
    pub partition: u64,
    /// When a crash cuts an unsynced write, tear it.
    pub tear: u64,
    pub slow_disk: u64,
    /// Crash a node right after it sends an acknowledgement or a commit:
    /// the moments where durability promises matter most.
    pub crash_after_ack: u64,
    /// Per boot: the node's clock runs up to this much fast or slow (per mille).
    pub clock_drift_per_mille: u64,
    /// Per tick: every node loses power at once.
    pub power_loss: u64,
    /// Per message: flip a bit in flight (the CRC must catch it).
    pub corrupt: u64,
}

impl Faults {
    pub fn none() -> Faults {
        Faults {
            drop: 0,
            duplicate: 0,
            delay_ms_max: 5,
            long_delay: 0,
            crash: 0,
            partition: 0,
            tear: 0,
            slow_disk: 0,
            crash_after_ack: 0,
            clock_drift_per_mille: 0,
            power_loss: 0,
            corrupt: 0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub voters: usize,
    pub observers: usize,
    pub clients: usize,
    /// Faults run this long; then everything heals.
    pub chaos_ms: u64,
    /// After healing, a leader, a write and agreement must follow within this.
    pub liveness_ms: u64,
    pub faults: Faults,
    pub zxid_counter_max: u32,
    pub snapshot_every_txns: u64,
    pub log_keep_txns: usize,
    pub bug_ack_newleader_before_txns: bool,
    /// Check each ACK's durability promise as it is sent. A regression
    /// test turns it off to show the data loss the broken promise causes.
    pub check_promises: bool,
}

impl Options {
    /// A run shaped by the seed: ensemble size, observer, fault rates.
    pub fn from_seed(seed: u64) -> Options {
        let mut rng = Rng::new(seed ^ 0x0005_eed0_f0b7_10a5);
        let voters = if rng.chance(400_000) { 5 } else { 3 };
        let observers = usize::from(rng.chance(300_000));
        let calm = rng.chance(150_000);
        let faults = if calm {
            Faults::none()
        } else {
            Faults {
                drop: rng.range(0, 100_000),
                duplicate: rng.range(0, 30_000),
                delay_ms_max: rng.range(2, 40),
                long_delay: rng.range(0, 20_000),
                crash: rng.range(0, 60_000),
                partition: rng.range(0, 60_000),
                tear: 500_000,
                slow_disk: rng.range(0, 100_000),
                crash_after_ack: rng.range(0, 3_000),
                clock_drift_per_mille: rng.range(0, 200),
                power_loss: rng.range(0, 3_000),
                corrupt: rng.range(0, 5_000),
            }
        };
        Options {
            seed,
            voters,
            observers,
            clients: rng.range(1, 4) as usize,
            chaos_ms: rng.range(2_000, 20_000),
            liveness_ms: 20_000,
            faults,
            zxid_counter_max: if rng.chance(200_000) {
                rng.range(10, 60) as u32
            } else {
                u32::MAX
            },
            snapshot_every_txns: rng.range(5, 40),
            log_keep_txns: rng.range(2, 20) as usize,
            bug_ack_newleader_before_txns: false,
            check_promises: true,
        }
    }

    /// A fault-free ensemble for scripted scenarios.
    pub fn scripted(seed: u64, voters: usize) -> Options {
        Options {
            seed,
            voters,
            observers: 0,
            clients: 0,
            chaos_ms: 0,
            liveness_ms: 20_000,
            faults: Faults::none(),
            zxid_counter_max: u32::MAX,
            snapshot_every_txns: 1_000,
            log_keep_txns: 1_000,
            bug_ack_newleader_before_txns: false,
            check_promises: true,
        }
    }
}

#[derive(Clone, Debug)]
enum Event {
    Tick(usize),
    Deliver { from: usize, to: usize, bytes: Vec<u8> },
    DiskSync(usize),
    Client(usize),
    Fault,
    Crash(usize),
    Restart(usize),
}

struct Node {
    id: NodeId,
    peer: Option<Peer>,
    disk: Disk,
    sync_scheduled: bool,
    disk_held: bool,
    tick_ms: u64,
    /// The restart state read from disk while the node is down.
    recovered: Option<DurableState>,
}

#[derive(Debug, Default)]
struct Client {
    peer: usize,
    session: Option<SessionId>,
    outstanding: Option<(RequestId, u64)>,
    alive: bool,
    seen: Zxid,
}

/// Counters a run reports.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub simulated_ms: u64,
    pub steps: u64,
    pub messages: u64,
    pub dropped: u64,
    pub crashes: u64,
    pub torn_writes: u64,
    pub elections: u64,
    pub committed: u64,
    pub acknowledged_writes: u64,
    pub session_expiries: u64,
    pub snapshots_sent: u64,
    pub truncs_sent: u64,
}

pub struct Sim {
    opts: Options,
    rng: Rng,
    now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Event>,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    requests: BTreeMap<RequestId, usize>,
    responses: BTreeMap<RequestId, Response>,
    next_request: u64,
    next_incarnation: u64,
    blocked: BTreeSet<(usize, usize)>,
    chaos: bool,
    checker: Checker,
    /// The leader's last zxid when it sent NEWLEADER on a link: the
    /// learner's ack promises all of it is durable.
    newleader_expect: HashMap<(usize, LinkId), Zxid>,
    sync_floors: BTreeMap<RequestId, (usize, Zxid)>,
    trace: bool,
    pub stats: Stats,
}

impl Sim {
    pub fn new(opts: Options) -> Sim {
        let mut sim = Sim {
            rng: Rng::new(opts.seed),
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            nodes: Vec::new(),
            clients: Vec::new(),
            requests: BTreeMap::new(),
            responses: BTreeMap::new(),
            next_request: 1,
            next_incarnation: 1,
            blocked: BTreeSet::new(),
            chaos: opts.chaos_ms > 0,
            checker: Checker::default(),
            newleader_expect: HashMap::new(),
            sync_floors: BTreeMap::new(),
            trace: std::env::var_os("RINGTAIL_SIM_TRACE").is_some(),
            stats: Stats::default(),
            opts,
        };
        let n = sim.opts.voters + sim.opts.observers;
        for i in 0..n {
            sim.nodes.push(Node {
                id: NodeId(i as u64 + 1),
                peer: None,
                disk: Disk::default(),
                sync_scheduled: false,
                disk_held: false,
                tick_ms: TICK_MS,
                recovered: Some(DurableState::default()),
            });
            sim.boot(i);
            let offset = sim.rng.range(0, TICK_MS - 1);
            sim.schedule(offset, Event::Tick(i));
        }
        for c in 0..sim.opts.clients {
            let peer = sim.rng.range(0, n as u64 - 1) as usize;
            sim.clients.push(Client {
                peer,
                alive: true,
                ..Client::default()
            });
            let delay = sim.rng.range(1, 200);
            sim.schedule(delay, Event::Client(c));
        }
        if sim.chaos {
            sim.schedule(TICK_MS, Event::Fault);
        }
        sim
    }

    fn config(&mut self, i: usize) -> Config {
        let voters = (1..=self.opts.voters as u64).map(NodeId).collect();
        let observers = (self.opts.voters as u64 + 1..=(self.opts.voters + self.opts.observers) as u64)
            .map(NodeId)
            .collect();
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        Config {
            id: self.nodes[i].id,
            voters,
            observers,
            incarnation,
            tick_ms: TICK_MS,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            // Per-node jitter, from the seed, breaks symmetric rounds.
            election_resend_ticks: self.rng.range(2, 6),
            snapshot_every_txns: self.opts.snapshot_every_txns,
            log_keep_txns: self.opts.log_keep_txns,
            zxid_counter_max: self.opts.zxid_counter_max,
            data_bytes_max: 1024,
            client_requests_max: 64,
            bug_ack_newleader_before_txns: self.opts.bug_ack_newleader_before_txns,
        }
    }

    fn boot(&mut self, i: usize) {
        let cfg = self.config(i);
        let drift = if self.chaos {
            self.opts.faults.clock_drift_per_mille
        } else {
            0
        };
        let skew = self.rng.range(0, 2 * drift) as i64 - drift as i64;
        self.nodes[i].tick_ms = (TICK_MS as i64 * (1000 + skew) / 1000).max(1) as u64;
        let Some(state) = self.nodes[i].recovered.take() else {
            return;
        };
        let peer = match Peer::restore(cfg, state) {
            Ok(peer) => peer,
            Err(e) => panic!("restore failed on {:?}: {e}", self.nodes[i].id),
        };
        self.nodes[i].peer = Some(peer);
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.seq += 1;
        self.events.insert(self.seq, event);
        self.queue.push(Reverse((self.now_ms + delay_ms, self.seq)));
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn peer(&self, i: usize) -> Option<&Peer> {
        self.nodes[i].peer.as_ref()
    }

    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// The established leader, if exactly one peer believes it is.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.peer(i).is_some_and(|p| p.established_epoch().is_some()))
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    // ----- scripted control --------------------------------------------

    pub fn crash(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].peer.take().is_none() {
            return Ok(());
        }
        self.stats.crashes += 1;
        let tear = self.opts.faults.tear;
        let state = self.nodes[i]
            .disk
            .crash(&mut self.rng, tear)
            .map_err(|e| format!("{:?} disk: {e}", self.nodes[i].id))?;
        self.nodes[i].recovered = Some(state);
        self.nodes[i].sync_scheduled = false;
        for c in 0..self.clients.len() {
            if self.clients[c].peer == i {
                self.connection_lost(c);
            }
        }
        Ok(())
    }

    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].peer.is_some() {
            return Ok(());
        }
        self.boot(i);
        let (id, zxid, digest) = {
            let p = self.peer(i).ok_or("restart failed")?;
            (p.id(), p.committed_zxid(), p.tree().digest())
        };
        self.checker.reset(id, zxid, digest)
    }

    /// Cuts `i` off from everyone, both ways.
    pub fn isolate(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if i != j {
                self.blocked.insert((i, j));
                self.blocked.insert((j, i));
            }
        }
    }

    pub fn heal_network(&mut self) {
        self.blocked.clear();
    }

    /// Stops (or resumes) fsync completions on a node's disk.
    pub fn hold_disk(&mut self, i: usize, held: bool) {
        self.nodes[i].disk_held = held;
        if !held && self.nodes[i].disk.has_unsynced() && !self.nodes[i].sync_scheduled {
            self.nodes[i].sync_scheduled = true;
            self.schedule(1, Event::DiskSync(i));
        }
    }

    /// Submits a client request to peer `i`; its answer shows up in
    /// [`Sim::response`].
    pub fn submit(&mut self, i: usize, session: Option<SessionId>, op: ClientOp) -> Result<RequestId, String> {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let request = ClientRequest {
            id,
            session,
            op,
            last_zxid_seen: Zxid::ZERO,
        };
        self.step(i, Input::ClientRequest(request))?;
        Ok(id)
    }

    pub fn response(&self, id: RequestId) -> Option<&Response> {
        self.responses.get(&id)
    }

    /// Runs until `done` holds (checked after every event) or `ms` pass.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Sim) -> bool) -> Result<bool, String> {
        let deadline = self.now_ms + ms;
        while !done(self) {
            let Some(Reverse((at, seq))) = self.queue.peek().copied() else {
                return Ok(false);
            };
            if at > deadline {
                self.now_ms = deadline;
                return Ok(false);
            }
            self.queue.pop();
            self.now_ms = at;
            if self.stats.steps > STEPS_MAX || self.queue.len() > EVENTS_MAX {
                return Err(format!(
                    "runaway run: {} steps, {} queued events",
                    self.stats.steps,
                    self.queue.len()
                ));
            }
            let Some(event) = self.events.remove(&seq) else {
                continue;
            };
            self.handle(event)?;
        }
        Ok(true)
    }

    pub fn run_for(&mut self, ms: u64) -> Result<(), String> {
        self.run_until(ms, |_| false).map(|_| ())
    }

    /// Runs a scripted write through peer `i` to completion.
    pub fn write(&mut self, i: usize, session: SessionId, op: WriteOp) -> Result<Response, String> {
        let id = self.submit(i, Some(session), ClientOp::Write(op))?;
        self.run_until(10_000, |s| s.responses.contains_key(&id))?;
        self.responses
            .get(&id)
            .cloned()
            .ok_or_else(|| "write got no answer".to_string())
    }

    pub fn open_session(&mut self, i: usize) -> Result<SessionId, String> {
        let id = self.submit(
            i,
            None,
            ClientOp::Write(WriteOp::CreateSession {
                timeout_ms: 20 * TICK_MS as u32,
            }),
        )?;
        self.run_until(10_000, |s| s.responses.contains_key(&id))?;
        match self.responses.get(&id) {
            Some(Response::Write {
                result: OpResult::SessionCreated { session, .. },
                ..
            }) => Ok(*session),
            other => Err(format!("createSession answered {other:?}")),
        }
    }

    // ----- events ------------------------------------------------------

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Tick(i) => {
                // Each node's clock runs at its own rate (drift).
                self.schedule(self.nodes[i].tick_ms, Event::Tick(i));
                if self.nodes[i].peer.is_some() {
                    self.step(i, Input::Tick)?;
                }
            }
            Event::Deliver { from, to, bytes } => {
                if self.blocked.contains(&(from, to)) || self.nodes[to].peer.is_none() {
                    self.stats.dropped += 1;
                    return Ok(());
                }
                let msg = match decode_message(&bytes) {
                    Ok((msg, _)) => msg,
                    // A corrupted frame is dropped, as a driver would.
                    Err(_) if self.opts.faults.corrupt > 0 => {
                        self.stats.dropped += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(format!("codec: {e}")),
                };
                self.step(
                    to,
                    Input::Message {
                        from: self.nodes[from].id,
                        msg,
                    },
                )?;
            }
            Event::DiskSync(i) => {
                self.nodes[i].sync_scheduled = false;
                if self.nodes[i].peer.is_none() || self.nodes[i].disk_held {
                    return Ok(());
                }
                let token = self.nodes[i]
                    .disk
                    .sync()
                    .map_err(|e| format!("{:?} disk: {e}", self.nodes[i].id))?;
                if let Some(token) = token {
                    self.step(i, Input::Persisted(token))?;
                }
            }
            Event::Client(c) => self.client_action(c)?,
            Event::Fault => self.fault()?,
            Event::Restart(i) => self.restart(i)?,
            Event::Crash(i) => {
                if self.chaos && self.nodes[i].peer.is_some() {
                    self.crash(i)?;
                    let after = self.rng.range(20, 1_000);
                    self.schedule(after, Event::Restart(i));
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, i: usize, input: Input) -> Result<(), String> {
        let Some(peer) = self.nodes[i].peer.as_mut() else {
            return Ok(());
        };
        let role_before = peer.role();
        // A leader may commit and step down in the same step (counter
        // rollover): its deliveries count as a leader's.
        let led_before = peer.established_epoch().is_some();
        let outputs = peer.step(input);
        let id = peer.id();
        let role_after = peer.role();
        if role_after == RoleKind::Looking && role_before != RoleKind::Looking {
            self.stats.elections += 1;
        }
        if self.trace && role_before != role_after {
            eprintln!(
                "{:>7} ms {id:?} {role_before:?} -> {role_after:?} epochs {:?} last {} committed {} ({})",
                self.now_ms,
                peer.epochs(),
                peer.last_zxid(),
                peer.committed_zxid(),
                peer.last_step_down().unwrap_or("")
            );
        }
        self.stats.steps += 1;
        let leading = led_before || peer.established_epoch().is_some();
        for output in outputs {
            self.output(i, id, leading, output)?;
        }
        self.check_peer(i)
    }

    fn output(&mut self, i: usize, id: NodeId, leading: bool, output: Output) -> Result<(), String> {
        match output {
            Output::Send { to, msg } => self.send(i, to, msg)?,
            Output::Persist { token, action } => {
                let node = &mut self.nodes[i];
                node.disk.write(token, &action);
                if !node.sync_scheduled && !node.disk_held {
                    node.sync_scheduled = true;
                    let slow = self.chaos && self.rng.chance(self.opts.faults.slow_disk);
                    let latency = if slow {
                        self.rng.range(20, 200)
                    } else {
                        self.rng.range(1, 4)
                    };
                    self.schedule(latency, Event::DiskSync(i));
                }
            }
            Output::Deliver { txn, result: _ } => {
                self.checker.deliver(id, &txn, leading)?;
                if txn.txn == crate::txn::Txn::CloseSession {
                    // Ephemerals vanish exactly with their session. (The
                    // tree is checked after the whole step; a later txn of
                    // the same step cannot recreate them: the session is gone.)
                    let tree = self.peer(i).map(|p| p.tree());
                    if tree.is_some_and(|t| {
                        t.session(txn.session).is_some() || t.ephemerals_of(txn.session).next().is_some()
                    }) {
                        return Err(format!(
                            "{id:?} closed {:?} but it or its ephemerals remain",
                            txn.session
                        ));
                    }
                }
                self.stats.committed = self.checker.committed_len() as u64;
                if txn.txn == crate::txn::Txn::CloseSession && leading {
                    self.stats.session_expiries += 1;
                }
            }
            Output::SnapshotInstalled { last_zxid } => {
                let digest = self.peer(i).map_or(0, |p| p.tree().digest());
                self.checker.reset(id, last_zxid, digest)?;
            }
            Output::Reply { id, zxid, response } => self.on_reply(id, zxid, response)?,
            Output::Watch { .. } => {}
        }
        Ok(())
    }

    /// Checks the durability promise of an acknowledgement as it leaves.
    fn check_promise(&self, i: usize, link: LinkId, body: &ZabBody) -> Result<(), String> {
        if !self.opts.check_promises {
            return Ok(());
        }
        let view = self.nodes[i].disk.durable_view();
        let durable_last = view.log.last().map_or(view.snapshot.last_zxid(), |t| t.zxid);
        let id = self.nodes[i].id;
        match body {
            ZabBody::AckEpoch { .. } => {
                let accepted = self.peer(i).map(|p| p.epochs().0);
                if Some(view.accepted_epoch) != accepted {
                    return Err(format!(
                        "{id:?} sent ACKEPOCH before acceptedEpoch {accepted:?} was durable"
                    ));
                }
            }
            ZabBody::NewLeaderAck { epoch } => {
                if view.current_epoch != *epoch {
                    return Err(format!(
                        "{id:?} acked NEWLEADER before currentEpoch {epoch:?} was durable"
                    ));
                }
                let expected = self.newleader_expect.get(&(i, link)).copied().unwrap_or(Zxid::ZERO);
                if durable_last < expected {
                    return Err(format!(
                        "{id:?} acked NEWLEADER with synced txns up to {expected} but only {durable_last} durable \
                         (ZOOKEEPER-4643)"
                    ));
                }
            }
            ZabBody::Ack { zxid } => {
                let in_snapshot = view.snapshot.last_zxid() >= *zxid;
                if !in_snapshot && !view.log.iter().any(|t| t.zxid == *zxid) {
                    return Err(format!("{id:?} acked {zxid} before it was durable"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn send(&mut self, from: usize, to: NodeId, msg: Message) -> Result<(), String> {
        let to_index = self.nodes.iter().position(|n| n.id == to);
        if let Message::Zab { body, link, .. } = &msg {
            self.check_promise(from, *link, body)?;
            if let (ZabBody::NewLeader { .. }, Some(j), Some(p)) = (body, to_index, self.peer(from)) {
                self.newleader_expect.insert((j, *link), p.last_zxid());
            }
            match body {
                ZabBody::Snap { .. } => self.stats.snapshots_sent += 1,
                ZabBody::Trunc { .. } => self.stats.truncs_sent += 1,
                ZabBody::Ack { .. }
                | ZabBody::NewLeaderAck { .. }
                | ZabBody::AckEpoch { .. }
                | ZabBody::Commit { .. }
                | ZabBody::UpToDate { .. }
                    if self.chaos && self.rng.chance(self.opts.faults.crash_after_ack) =>
                {
                    self.schedule(0, Event::Crash(from));
                }
                _ => {}
            }
        }
        let Some(to) = self.nodes.iter().position(|n| n.id == to) else {
            return Err(format!("message to unknown peer {to:?}"));
        };
        self.stats.messages += 1;
        if self.trace && self.stats.steps > STEPS_MAX - 200 {
            let what = match &msg {
                Message::Notification(n) => format!("{n:?}"),
                Message::Zab { link, seq, body, .. } => {
                    let text = format!("{body:?}");
                    format!("zab {link:?} seq {seq} {}", &text[..text.len().min(80)])
                }
            };
            eprintln!("{:>7} ms {from} -> {to} {what}", self.now_ms);
        }
        let bytes = encode_message(&msg);
        let faults = if self.chaos {
            self.opts.faults.clone()
        } else {
            Faults::none()
        };
        let copies = if self.rng.chance(faults.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            if self.blocked.contains(&(from, to)) || self.rng.chance(faults.drop) {
                self.stats.dropped += 1;
                continue;
            }
            let mut bytes = bytes.clone();
            if self.rng.chance(faults.corrupt) && !bytes.is_empty() {
                let at = self.rng.range(0, bytes.len() as u64 - 1) as usize;
                bytes[at] ^= 1 << self.rng.range(0, 7);
            }
            let delay = if self.rng.chance(faults.long_delay) {
                self.rng.range(50, 500)
            } else {
                self.rng.range(1, faults.delay_ms_max.max(1))
            };
            self.schedule(delay, Event::Deliver { from, to, bytes });
        }
        Ok(())
    }

    fn check_peer(&mut self, i: usize) -> Result<(), String> {
        let Some(peer) = self.nodes[i].peer.as_ref() else {
            return Ok(());
        };
        if let Some(v) = peer.violations().first() {
            return Err(format!("{:?} protocol violation: {v}", peer.id()));
        }
        let (id, established, committed, digest) = (
            peer.id(),
            peer.established_epoch(),
            peer.committed_zxid(),
            peer.tree().digest(),
        );
        if self.stats.steps.is_multiple_of(64) {
            peer.tree()
                .check_consistency()
                .map_err(|e| format!("{id:?} tree: {e}"))?;
            if peer.tree().inconsistencies() > 0 {
                return Err(format!("{id:?} applied a txn whose preconditions failed"));
            }
            let mut previous = peer.log_base();
            for t in peer.log() {
                if t.zxid <= previous {
                    return Err(format!("{id:?} log has {} after {previous}", t.zxid));
                }
                previous = t.zxid;
            }
        }
        if let Some(epoch) = established {
            self.checker.leader(epoch, id)?;
        }
        self.checker.check_digest(id, committed, digest)
    }

    // ----- faults ------------------------------------------------------

    fn fault(&mut self) -> Result<(), String> {
        if self.now_ms >= self.opts.chaos_ms {
            // Heal: everyone back, network whole.
            self.chaos = false;
            self.blocked.clear();
            for i in 0..self.nodes.len() {
                self.restart(i)?;
            }
            return Ok(());
        }
        self.schedule(TICK_MS, Event::Fault);
        let n = self.nodes.len();
        let f = self.opts.faults.clone();
        if self.rng.chance(f.power_loss) {
            // Everyone at once: only what was fsynced survives anywhere.
            for i in 0..n {
                if self.nodes[i].peer.is_some() {
                    self.crash(i)?;
                    let after = self.rng.range(20, 1_000);
                    self.schedule(after, Event::Restart(i));
                }
            }
        }
        if self.rng.chance(f.crash) {
            let i = self.rng.range(0, n as u64 - 1) as usize;
            if self.nodes[i].peer.is_some() {
                self.crash(i)?;
                let after = self.rng.range(20, 1_000);
                self.schedule(after, Event::Restart(i));
            }
        }
        if self.rng.chance(f.partition) {
            self.blocked.clear();
            match self.rng.range(0, 3) {
                0 => {}
                1 => {
                    // Isolating the leader is the interesting case; favour it.
                    let random = self.rng.range(0, n as u64 - 1) as usize;
                    let i = match self.leader() {
                        Some(l) if self.rng.chance(600_000) => l,
                        _ => random,
                    };
                    self.isolate(i);
                }
                2 => {
                    // A random split into two sides.
                    let side: Vec<bool> = (0..n).map(|_| self.rng.chance(500_000)).collect();
                    for a in 0..n {
                        for b in 0..n {
                            if side[a] != side[b] {
                                self.blocked.insert((a, b));
                            }
                        }
                    }
                }
                _ => {
                    // One-way loss on a random link.
                    let a = self.rng.range(0, n as u64 - 1) as usize;
                    let b = self.rng.range(0, n as u64 - 1) as usize;
                    self.blocked.insert((a, b));
                }
            }
        }
        Ok(())
    }

    // ----- clients -----------------------------------------------------

    fn connection_lost(&mut self, c: usize) {
        if let Some((id, _)) = self.clients[c].outstanding.take() {
            self.requests.remove(&id);
        }
        self.clients[c].peer = self.rng.range(0, self.nodes.len() as u64 - 1) as usize;
    }

    fn client_action(&mut self, c: usize) -> Result<(), String> {
        let delay = self.rng.range(5, 60);
        self.schedule(delay, Event::Client(c));
        if !self.clients[c].alive {
            // A dead client's session must expire; later it comes back
            // with a new one.
            if self.rng.chance(20_000) {
                self.clients[c] = Client {
                    peer: self.clients[c].peer,
                    alive: true,
                    ..Client::default()
                };
            }
            return Ok(());
        }
        if let Some((_, sent)) = self.clients[c].outstanding {
            if self.now_ms - sent > 3_000 {
                self.connection_lost(c);
            }
            return Ok(());
        }
        if self.chaos && self.rng.chance(5_000) {
            self.clients[c].alive = false;
            return Ok(());
        }
        let op = match self.clients[c].session {
            None => ClientOp::Write(WriteOp::CreateSession {
                timeout_ms: self.rng.range(1, 25) as u32 * TICK_MS as u32,
            }),
            Some(_) => self.random_op(),
        };
        let peer = self.clients[c].peer;
        if self.nodes[peer].peer.is_none() {
            self.connection_lost(c);
            return Ok(());
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.insert(id, c);
        self.clients[c].outstanding = Some((id, self.now_ms));
        if op == ClientOp::Sync {
            // After `sync` the peer must have applied everything committed
            // anywhere when the client asked.
            self.sync_floors.insert(id, (peer, self.checker.last_committed()));
        }
        let request = ClientRequest {
            id,
            session: self.clients[c].session,
            op,
            last_zxid_seen: self.clients[c].seen,
        };
        self.step(peer, Input::ClientRequest(request))
    }

    fn random_op(&mut self) -> ClientOp {
        let key = format!("/k{}", self.rng.range(0, 4));
        let child = format!("{key}/c{}", self.rng.range(0, 2));
        let data = vec![self.rng.range(0, 255) as u8; self.rng.range(0, 8) as usize];
        let version = if self.rng.chance(500_000) {
            VERSION_ANY
        } else {
            self.rng.range(0, 3) as i32
        };
        let watch = self.rng.chance(300_000);
        let path = if self.rng.chance(300_000) {
            child.clone()
        } else {
            key.clone()
        };
        let create = |path: String, mode| WriteOp::Create {
            path,
            data: data.clone(),
            mode,
        };
        match self.rng.range(0, 99) {
            0..=19 => ClientOp::Ping,
            20..=34 => ClientOp::Write(create(path, CreateMode::Persistent)),
            35..=44 => ClientOp::Write(WriteOp::SetData {
                path,
                data: data.clone(),
                version,
            }),
            45..=52 => ClientOp::Write(WriteOp::Delete { path, version }),
            53..=59 => ClientOp::Write(create(format!("/e{}", self.rng.range(0, 3)), CreateMode::Ephemeral)),
            60..=63 => ClientOp::Write(create(format!("{key}/s-"), CreateMode::EphemeralSequential)),
            64..=68 => ClientOp::Write(WriteOp::Multi(vec![
                WriteOp::Check {
                    path: key.clone(),
                    version,
                },
                create(child, CreateMode::Persistent),
                WriteOp::SetData {
                    path: key,
                    data: data.clone(),
                    version: VERSION_ANY,
                },
            ])),
            69..=76 => ClientOp::GetData { path, watch },
            77..=82 => ClientOp::Exists { path, watch },
            83..=88 => ClientOp::GetChildren { path: key, watch },
            89..=94 => ClientOp::Sync,
            _ => ClientOp::Write(WriteOp::CloseSession),
        }
    }

    fn on_reply(&mut self, id: RequestId, zxid: Zxid, response: Response) -> Result<(), String> {
        if let Response::Write { zxid, .. } = &response {
            if !self.checker.is_committed(*zxid) {
                return Err(format!("client told {zxid} succeeded, but it is not committed"));
            }
            self.stats.acknowledged_writes += 1;
        }
        if let Some((peer, floor)) = self.sync_floors.remove(&id) {
            let committed = self.peer(peer).map_or(Zxid::ZERO, |p| p.committed_zxid());
            if response == Response::Synced && committed < floor {
                return Err(format!(
                    "sync answered at {committed}, but {floor} was committed before it was asked"
                ));
            }
        }
        self.responses.insert(id, response.clone());
        let Some(c) = self.requests.remove(&id) else {
            return Ok(());
        };
        if self.clients[c].outstanding.map(|(r, _)| r) != Some(id) {
            return Ok(());
        }
        self.clients[c].outstanding = None;
        if response != Response::Error(ErrorCode::ConnectionLoss) {
            // Sequential consistency across peers: never an older view.
            if zxid < self.clients[c].seen {
                return Err(format!(
                    "client {c} saw {} and then a reply at {zxid}",
                    self.clients[c].seen
                ));
            }
            self.clients[c].seen = zxid;
        }
        match response {
            Response::Write {
                result: OpResult::SessionCreated { session, .. },
                ..
            } => {
                self.clients[c].session = Some(session);
            }
            Response::Write {
                result: OpResult::SessionClosed,
                ..
            }
            | Response::Write {
                result: OpResult::Error(ErrorCode::SessionExpired),
                ..
            } => {
                self.clients[c].session = None;
            }
            Response::Error(ErrorCode::ConnectionLoss) => self.connection_lost(c),
            _ => {}
        }
        Ok(())
    }

    // ----- whole runs --------------------------------------------------

    /// Chaos, then heal, then liveness: a leader, every peer following it,
    /// a committed probe write, and every peer at the same commit point.
    pub fn run(&mut self) -> Result<(), String> {
        self.run_for(self.opts.chaos_ms + TICK_MS)?;
        if self.chaos {
            self.chaos = false;
            self.blocked.clear();
            for i in 0..self.nodes.len() {
                self.restart(i)?;
            }
        }
        let deadline = self.now_ms + self.opts.liveness_ms;
        let all_following = |s: &Sim| {
            s.leader().is_some()
                && (0..s.nodes.len()).all(|i| {
                    s.peer(i).is_some_and(|p| {
                        matches!(
                            p.role(),
                            RoleKind::Leading { established: true }
                                | RoleKind::Following { active: true }
                                | RoleKind::Observing { active: true }
                        )
                    })
                })
        };
        if !self.run_until(self.opts.liveness_ms, all_following)? {
            return Err(format!(
                "liveness: no stable leader {} ms after healing",
                self.opts.liveness_ms
            ));
        }
        // A probe through a random peer must commit. Packets sent during
        // the chaos may still break a link right after healing (a gap), so
        // a ConnectionLoss is retried, like a client would, until the deadline.
        loop {
            if self.now_ms > deadline {
                return Err(format!(
                    "liveness: no probe write committed {} ms after healing",
                    self.opts.liveness_ms
                ));
            }
            let via = self.rng.range(0, self.nodes.len() as u64 - 1) as usize;
            let Ok(session) = self.open_session(via) else {
                self.run_for(100)?;
                continue;
            };
            let probe = WriteOp::Create {
                path: format!("/probe{}", self.now_ms),
                data: vec![1],
                mode: CreateMode::Ephemeral,
            };
            match self.write(via, session, probe)? {
                Response::Write {
                    result: OpResult::Created { .. },
                    ..
                } => break,
                Response::Error(ErrorCode::ConnectionLoss) => self.run_for(100)?,
                other => return Err(format!("liveness: probe write answered {other:?}")),
            }
        }
        let converged = |s: &Sim| {
            let last = s.checker.last_committed();
            (0..s.nodes.len()).all(|i| s.peer(i).is_some_and(|p| p.committed_zxid() == last))
        };
        let left = deadline.saturating_sub(self.now_ms).max(1_000);
        if !self.run_until(left, converged)? {
            return Err("liveness: peers did not converge on the last commit".into());
        }
        for i in 0..self.nodes.len() {
            if let Some(p) = self.peer(i) {
                p.tree()
                    .check_consistency()
                    .map_err(|e| format!("{:?} tree: {e}", p.id()))?;
            }
        }
        self.stats.simulated_ms = self.now_ms;
        self.stats.torn_writes = self.nodes.iter().map(|n| n.disk.torn_writes).sum();
        Ok(())
    }

    pub fn epoch_of_leader(&self) -> Option<Epoch> {
        self.leader().and_then(|i| self.peer(i)?.established_epoch())
    }
}

/// Runs one seed end to end; the error names the seed and how to replay.
pub fn run_seed(seed: u64) -> Result<Stats, String> {
    let opts = Options::from_seed(seed);
    let mut sim = Sim::new(opts.clone());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let outcome = match result {
        Ok(r) => r,
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())),
    };
    outcome.map(|()| sim.stats.clone()).map_err(|e| {
        format!(
            "seed {seed} failed at {} ms: {e}\n  options: {opts:?}\n  replay: RINGTAIL_SIM_SEED={seed} cargo test -p ringtail-coordinator --release --test sim",
            sim.now_ms
        )
    })
}
