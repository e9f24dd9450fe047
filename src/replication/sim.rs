//! Deterministic simulation of one partition on 2-4 brokers: the real
//! [`Replica`] cores, a controller model (sessions, elections from the
//! ISR, the ISR compare-and-set, broker epochs), a network that delays,
//! drops, duplicates and cuts (broker to broker and broker to
//! controller), disks that lose un-fsynced suffixes (any part of them) at
//! a crash or are replaced empty, and clients producing with `acks=all`
//! and `acks=1` to whichever broker believes it leads.
//!
//! Invariants, checked after every step:
//! - a leader's HW never decreases within an epoch, and one epoch is led
//!   by one life of one broker;
//! - every replica agrees with the committed records below its own HW;
//! - every record that was ever below a leader's HW ("committed", which
//!   includes every `acks=all` acknowledgement) is at the same offset on
//!   every member of the controller's ISR (up or down) and so on every
//!   future leader; with unclean election enabled this is not checked
//!   (that is where it breaks), losses are counted instead;
//! - log matching: two logs holding a record of the same epoch at the same
//!   offset are identical up to there;
//! - each core's epoch cache matches its log, and the core never believes
//!   more of its log is written or durable than it is.
//!
//! After the chaos every fault heals; the replicas must converge (one
//! leader, full ISR, identical logs, HW at the log end) within a bound,
//! with every acknowledged record in place.
//!
//! - `RINGTAIL_REPL_SIM_SEEDS=N` runs N seeds (default 10,000 in release,
//!   400 in a debug build) from `RINGTAIL_REPL_SIM_FIRST` (default 0);
//!   `RINGTAIL_REPL_SIM_SEED=S` replays seed S;
//!   `RINGTAIL_REPL_SIM_TRACE=1` prints every input and output.

use std::collections::{HashMap, VecDeque};

use super::election::{elect_leader, write_isr, IsrWrite, PartitionState};
use super::epochs::EpochEntry;
use super::*;
use crate::sim_rng::Rng;

const STEP_MS: i64 = 5;
const CHAOS_MS: i64 = 2_000;
const SETTLE_MS_MAX: i64 = 30_000;
const SESSION_TIMEOUT_MS: i64 = 400;
const HEARTBEAT_MS: i64 = 50;
const CONTROLLER_RESEND_MS: i64 = 200;
const PRODUCE_TIMEOUT_MS: i64 = 1_000;

/// A record as the simulated log stores it (its offset is its index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rec {
    pub epoch: LeaderEpoch,
    pub payload: u64,
}

#[derive(Clone, Debug)]
enum Payload {
    Replica {
        msg: Message,
        records: Vec<Rec>,
    },
    LeaderAndIsr {
        state: PartitionState,
        broker_epoch: u64,
    },
    IsrProposal {
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
        version: PartitionVersion,
        joining: Option<(NodeId, i64)>,
    },
    IsrAnswer(Input),
    Heartbeat {
        broker_epoch: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Broker(usize),
    Controller,
}

#[derive(Debug)]
struct Packet {
    at: i64,
    seq: u64,
    from: End,
    to: End,
    payload: Payload,
}

#[derive(Default)]
pub(super) struct Disk {
    pub log: Vec<Rec>,
    /// Records below this index are fsynced.
    pub durable: usize,
    pub epochs: Vec<EpochEntry>,
    pub hw: Offset,
}

pub(super) struct Broker {
    pub up: bool,
    /// The broker epoch (KIP-380): grows at every restart.
    pub incarnation: u64,
    pub core: Replica,
    pub disk: Disk,
    /// Base offset and records of the last FetchResponse delivered.
    fetched: (Offset, Vec<Rec>),
}

struct Controller {
    state: PartitionState,
    live: Vec<bool>,
    registered: Vec<u64>,
    last_heard: Vec<i64>,
    last_resend: i64,
}

#[derive(Clone, Debug)]
pub(super) struct Options {
    pub brokers: usize,
    pub min_insync: usize,
    pub unclean: bool,
    /// Random faults, produces and message delays; off for scripted runs.
    pub chaos: bool,
}

struct Produce {
    payloads: Vec<u64>,
    acks: Acks,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Stats {
    pub seeds: u64,
    pub steps: u64,
    pub acked: u64,
    pub not_enough_replicas: u64,
    pub after_append: u64,
    pub timed_out: u64,
    pub elections: u64,
    pub unclean_elections: u64,
    pub crashes: u64,
    pub wipes: u64,
    pub truncations: u64,
    pub isr_changes: u64,
    pub unclean_seeds_with_loss: u64,
    pub simulated_ms: i64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.seeds += o.seeds;
        self.steps += o.steps;
        self.acked += o.acked;
        self.not_enough_replicas += o.not_enough_replicas;
        self.after_append += o.after_append;
        self.timed_out += o.timed_out;
        self.elections += o.elections;
        self.unclean_elections += o.unclean_elections;
        self.crashes += o.crashes;
        self.wipes += o.wipes;
        self.truncations += o.truncations;
        self.isr_changes += o.isr_changes;
        self.unclean_seeds_with_loss += o.unclean_seeds_with_loss;
        self.simulated_ms += o.simulated_ms;
    }
}

pub(super) struct Sim {
    rng: Rng,
    seed: u64,
    pub now: i64,
    opts: Options,
    pub brokers: Vec<Broker>,
    controller: Controller,
    net: Vec<Packet>,
    next_seq: u64,
    cut: Vec<Vec<bool>>,
    ctrl_cut: Vec<bool>,
    produces: HashMap<RequestId, Produce>,
    pub done: HashMap<RequestId, Result<Offset, ReplicationError>>,
    next_request: u64,
    next_payload: u64,
    /// `acks=all` acknowledgements: (offset, payload).
    pub acked: Vec<(usize, u64)>,
    /// Every record ever below a leader's HW, by offset.
    committed: Vec<Rec>,
    /// (broker, epoch) -> (incarnation, highest HW seen).
    leader_hw: HashMap<(usize, i32), (u64, Offset)>,
    pub stats: Stats,
    trace: bool,
    inputs: VecDeque<(usize, Input)>,
}

fn node(b: usize) -> NodeId {
    NodeId(b as i32)
}

impl Sim {
    pub fn new(seed: u64, opts: Options) -> Sim {
        let n = opts.brokers;
        let brokers = (0..n)
            .map(|b| Broker {
                up: true,
                incarnation: 1,
                core: Replica::new(Self::core_config(b, 1, &opts)),
                disk: Disk::default(),
                fetched: (Offset(0), Vec::new()),
            })
            .collect();
        let state = PartitionState {
            leader: Some(node(0)),
            leader_epoch: LeaderEpoch(0),
            isr: (0..n).map(node).collect(),
            version: PartitionVersion(0),
        };
        let mut sim = Sim {
            rng: Rng(seed),
            seed,
            now: 0,
            brokers,
            controller: Controller {
                state,
                live: vec![true; n],
                registered: vec![1; n],
                last_heard: vec![0; n],
                last_resend: 0,
            },
            net: Vec::new(),
            next_seq: 0,
            cut: vec![vec![false; n]; n],
            ctrl_cut: vec![false; n],
            produces: HashMap::new(),
            done: HashMap::new(),
            next_request: 1,
            next_payload: 1,
            acked: Vec::new(),
            committed: Vec::new(),
            leader_hw: HashMap::new(),
            stats: Stats::default(),
            trace: std::env::var_os("RINGTAIL_REPL_SIM_TRACE").is_some(),
            inputs: VecDeque::new(),
            opts,
        };
        sim.broadcast();
        sim
    }

    fn core_config(b: usize, incarnation: u64, opts: &Options) -> Config {
        Config {
            broker_epoch: incarnation as i64,
            replica_lag_time_max_ms: 300,
            min_insync_replicas: opts.min_insync,
            replica_request_timeout_ms: 150,
            replica_fetch_backoff_ms: 30,
            isr_retry_ms: 100,
            ..Config::new(node(b))
        }
    }

    fn replicas(&self) -> Vec<NodeId> {
        (0..self.opts.brokers).map(node).collect()
    }

    pub fn fail(&self, what: &str) -> String {
        format!(
            "replication sim seed {} at t={} ms: {what}\n(replay with RINGTAIL_REPL_SIM_SEED={})",
            self.seed, self.now, self.seed
        )
    }

    // ---- network -------------------------------------------------------

    fn link_cut(&self, a: End, b: End) -> bool {
        match (a, b) {
            (End::Broker(x), End::Broker(y)) => self.cut[x][y],
            (End::Broker(x), End::Controller) | (End::Controller, End::Broker(x)) => {
                self.ctrl_cut[x]
            }
            (End::Controller, End::Controller) => false,
        }
    }

    fn send(&mut self, from: End, to: End, payload: Payload) {
        if self.link_cut(from, to) {
            return;
        }
        let (mut copies, delay) = if self.opts.chaos {
            if self.rng.chance(10, 1_000) {
                return;
            }
            (
                1 + u64::from(self.rng.chance(10, 1_000)),
                1 + self.rng.below(20) as i64,
            )
        } else {
            (1, 1)
        };
        while copies > 0 {
            copies -= 1;
            let extra = if copies > 0 {
                self.rng.below(30) as i64
            } else {
                0
            };
            self.next_seq += 1;
            self.net.push(Packet {
                at: self.now + delay + extra,
                seq: self.next_seq,
                from,
                to,
                payload: payload.clone(),
            });
        }
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        let mut due: Vec<Packet> = Vec::new();
        let mut i = 0;
        while i < self.net.len() {
            if self.net[i].at <= now {
                due.push(self.net.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.seq));
        for p in due {
            if self.link_cut(p.from, p.to) {
                continue;
            }
            match p.to {
                End::Controller => self.controller_receive(p.from, p.payload),
                End::Broker(b) => self.broker_receive(b, p.from, p.payload),
            }
        }
    }

    fn broker_receive(&mut self, b: usize, from: End, payload: Payload) {
        if !self.brokers[b].up {
            return;
        }
        match payload {
            Payload::Replica { msg, records } => {
                let End::Broker(f) = from else { return };
                if let Message::FetchResponse {
                    result: FetchResult::Records { batches, .. },
                    ..
                } = &msg
                {
                    let base = batches.first().map_or(Offset(0), |b| b.base_offset);
                    self.brokers[b].fetched = (base, records);
                }
                self.feed(b, Input::Message { from: node(f), msg });
            }
            Payload::LeaderAndIsr {
                state,
                broker_epoch,
            } => {
                if broker_epoch != self.brokers[b].incarnation {
                    return;
                }
                let replicas = self.replicas();
                let input = if state.leader == Some(node(b)) {
                    Input::BecomeLeader {
                        leader_epoch: state.leader_epoch,
                        isr: state.isr,
                        replicas,
                        version: state.version,
                    }
                } else {
                    Input::BecomeFollower {
                        leader: state.leader,
                        leader_epoch: state.leader_epoch,
                        replicas,
                    }
                };
                self.feed(b, input);
            }
            Payload::IsrAnswer(input) => self.feed(b, input),
            Payload::IsrProposal { .. } | Payload::Heartbeat { .. } => {
                unreachable!("sent to the controller")
            }
        }
    }

    // ---- controller ----------------------------------------------------

    fn controller_receive(&mut self, from: End, payload: Payload) {
        let End::Broker(b) = from else { return };
        match payload {
            Payload::Heartbeat { broker_epoch } => {
                let c = &mut self.controller;
                c.last_heard[b] = c.last_heard[b].max(self.now);
                if !c.live[b] {
                    if broker_epoch >= c.registered[b] {
                        self.controller_startup(b, broker_epoch);
                    }
                } else if broker_epoch > c.registered[b] {
                    // A bounced broker: its old life failed.
                    self.controller_failure(b, false);
                    self.controller_startup(b, broker_epoch);
                }
            }
            Payload::IsrProposal {
                leader_epoch,
                isr,
                version,
                joining,
            } => {
                let c = &self.controller;
                let registered = |r: NodeId, epoch: i64| {
                    let r = r.0 as usize;
                    c.live[r] && c.registered[r] as i64 == epoch
                };
                let answer = match write_isr(
                    &c.state,
                    node(b),
                    leader_epoch,
                    &isr,
                    version,
                    joining,
                    registered,
                ) {
                    IsrWrite::Applied(s) => {
                        self.stats.isr_changes += 1;
                        let v = s.version;
                        self.controller.state = s;
                        Input::IsrCommitted {
                            leader_epoch,
                            isr,
                            version: v,
                        }
                    }
                    IsrWrite::AlreadyApplied(s) => Input::IsrCommitted {
                        leader_epoch,
                        isr,
                        version: s.version,
                    },
                    IsrWrite::Conflict(current) => Input::IsrRejected {
                        leader_epoch,
                        version,
                        current,
                    },
                    IsrWrite::Ineligible(current) => {
                        self.controller.state = current.clone();
                        Input::IsrRejected {
                            leader_epoch,
                            version,
                            current,
                        }
                    }
                };
                self.send(End::Controller, End::Broker(b), Payload::IsrAnswer(answer));
            }
            _ => unreachable!("sent to a broker"),
        }
    }

    fn bump(&mut self) {
        let s = &mut self.controller.state;
        s.leader_epoch = LeaderEpoch(s.leader_epoch.0 + 1);
        s.version = PartitionVersion(s.version.0 + 1);
    }

    /// Elects a leader if the partition has none (or lost it).
    fn controller_elect(&mut self) {
        let live = self.controller.live.clone();
        let replicas = self.replicas();
        let s = &self.controller.state;
        match elect_leader(&replicas, &s.isr, |r| live[r.0 as usize], self.opts.unclean) {
            Some((leader, unclean)) => {
                let isr = if unclean {
                    self.stats.unclean_elections += 1;
                    vec![leader]
                } else {
                    s.isr
                        .iter()
                        .copied()
                        .filter(|r| live[r.0 as usize])
                        .collect()
                };
                self.controller.state.leader = Some(leader);
                self.controller.state.isr = isr;
                self.stats.elections += 1;
                self.bump();
            }
            None => {
                if s.leader.is_some() {
                    // Offline: keep the ISR, so its members are elected
                    // when they return.
                    self.controller.state.leader = None;
                    self.bump();
                }
            }
        }
    }

    fn controller_failure(&mut self, b: usize, lost_disk: bool) {
        self.controller.live[b] = false;
        let id = node(b);
        let s = &mut self.controller.state;
        let in_isr = s.isr.contains(&id);
        if lost_disk && in_isr {
            s.isr.retain(|&r| r != id);
            assert!(
                !s.isr.is_empty(),
                "the fault model keeps one ISR member's disk"
            );
        }
        if s.leader == Some(id) || s.leader.is_none() {
            let epoch = s.leader_epoch;
            self.controller_elect();
            if lost_disk && in_isr && self.controller.state.leader_epoch == epoch {
                self.bump();
            }
        } else if in_isr {
            s.isr.retain(|&r| r != id);
            self.bump();
        }
        self.broadcast();
    }

    fn controller_startup(&mut self, b: usize, broker_epoch: u64) {
        let c = &mut self.controller;
        c.live[b] = true;
        c.registered[b] = broker_epoch;
        c.last_heard[b] = self.now;
        if c.state.leader.is_none() {
            self.controller_elect();
        }
        self.broadcast();
    }

    fn controller_tick(&mut self) {
        for b in 0..self.opts.brokers {
            let c = &self.controller;
            if c.live[b] && self.now - c.last_heard[b] > SESSION_TIMEOUT_MS {
                self.controller_failure(b, false);
            }
        }
        if self.now - self.controller.last_resend >= CONTROLLER_RESEND_MS {
            self.broadcast();
        }
    }

    fn broadcast(&mut self) {
        self.controller.last_resend = self.now;
        for b in 0..self.opts.brokers {
            if self.controller.live[b] {
                let payload = Payload::LeaderAndIsr {
                    state: self.controller.state.clone(),
                    broker_epoch: self.controller.registered[b],
                };
                self.send(End::Controller, End::Broker(b), payload);
            }
        }
    }

    // ---- brokers -------------------------------------------------------

    fn feed(&mut self, b: usize, input: Input) {
        self.inputs.push_back((b, input));
        while let Some((b, input)) = self.inputs.pop_front() {
            if !self.brokers[b].up {
                continue;
            }
            if self.trace {
                eprintln!("t={} b{b} <- {input:?}", self.now);
            }
            let outputs = self.brokers[b].core.step(self.now, input);
            for o in outputs {
                if self.trace {
                    eprintln!("t={} b{b} -> {o:?}", self.now);
                }
                self.apply(b, o);
            }
        }
    }

    fn apply(&mut self, b: usize, o: Output) {
        match o {
            Output::Send { to, msg } => self.send(
                End::Broker(b),
                End::Broker(to.0 as usize),
                Payload::Replica {
                    msg,
                    records: Vec::new(),
                },
            ),
            Output::ServeFetch {
                to,
                correlation,
                read_from,
                read_end,
                high_watermark,
            } => self.serve_fetch(b, to, correlation, read_from, read_end, high_watermark),
            Output::Append {
                request,
                base_offset,
                records,
                leader_epoch,
            } => {
                let p = &self.produces[&request];
                assert_eq!(p.payloads.len(), records as usize);
                let disk = &mut self.brokers[b].disk;
                assert_eq!(
                    base_offset.0 as usize,
                    disk.log.len(),
                    "append at the log end"
                );
                for &payload in &p.payloads {
                    disk.log.push(Rec {
                        epoch: leader_epoch,
                        payload,
                    });
                }
                let log_end = Offset(disk.log.len() as i64);
                self.inputs.push_back((b, Input::LocalAppended { log_end }));
            }
            Output::AppendFetched { end_offset } => {
                let br = &mut self.brokers[b];
                let (base, recs) = &br.fetched;
                while (br.disk.log.len() as i64) < end_offset.0 {
                    let i = br.disk.log.len() as i64 - base.0;
                    let rec = recs[usize::try_from(i).expect("fetched from the log end")];
                    br.disk.log.push(rec);
                }
                let log_end = Offset(br.disk.log.len() as i64);
                self.inputs.push_back((b, Input::LocalAppended { log_end }));
            }
            Output::Truncate { log_end } => {
                let disk = &mut self.brokers[b].disk;
                disk.log.truncate(log_end.0 as usize);
                disk.durable = disk.durable.min(disk.log.len());
                self.stats.truncations += 1;
            }
            Output::PersistEpochs { entries } => self.brokers[b].disk.epochs = entries,
            Output::HighWatermark { offset } => {
                // Checkpointed lazily: sometimes the older value survives.
                if !self.opts.chaos || self.rng.chance(500, 1_000) {
                    self.brokers[b].disk.hw = offset;
                }
            }
            Output::ProposeIsr {
                leader_epoch,
                isr,
                version,
                joining,
            } => self.send(
                End::Broker(b),
                End::Controller,
                Payload::IsrProposal {
                    leader_epoch,
                    isr,
                    version,
                    joining,
                },
            ),
            Output::ProduceDone { request, result } => self.produce_done(request, result, b),
        }
    }

    fn serve_fetch(
        &mut self,
        b: usize,
        to: NodeId,
        correlation: Correlation,
        read_from: Offset,
        read_end: Offset,
        high_watermark: Offset,
    ) {
        let log = &self.brokers[b].disk.log;
        assert!(
            read_end.0 as usize <= log.len(),
            "serving beyond the written log"
        );
        let cap = if self.opts.chaos {
            1 + self.rng.below(6)
        } else {
            100
        } as i64;
        let end = read_end.0.min(read_from.0 + cap);
        let records: Vec<Rec> = log[read_from.0 as usize..end as usize].to_vec();
        let mut batches: Vec<BatchMeta> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let o = Offset(read_from.0 + i as i64);
            match batches.last_mut() {
                Some(last)
                    if last.leader_epoch == r.epoch
                        && (last.end_offset.0 - last.base_offset.0) < 3 =>
                {
                    last.end_offset = Offset(o.0 + 1);
                }
                _ => batches.push(BatchMeta {
                    base_offset: o,
                    end_offset: Offset(o.0 + 1),
                    leader_epoch: r.epoch,
                }),
            }
        }
        let msg = Message::FetchResponse {
            correlation,
            result: FetchResult::Records {
                high_watermark,
                batches,
            },
        };
        self.send(
            End::Broker(b),
            End::Broker(to.0 as usize),
            Payload::Replica { msg, records },
        );
    }

    fn produce_done(
        &mut self,
        request: RequestId,
        result: Result<Offset, ReplicationError>,
        b: usize,
    ) {
        let Some(p) = self.produces.remove(&request) else {
            return;
        };
        match result {
            Ok(base) => {
                if p.acks == Acks::All {
                    for (i, &payload) in p.payloads.iter().enumerate() {
                        let o = base.0 as usize + i;
                        assert_eq!(
                            self.brokers[b].disk.log.get(o).map(|r| r.payload),
                            Some(payload),
                            "acknowledged where it was written"
                        );
                        self.acked.push((o, payload));
                        self.stats.acked += 1;
                    }
                }
            }
            Err(ReplicationError::NotEnoughReplicas) => self.stats.not_enough_replicas += 1,
            Err(ReplicationError::NotEnoughReplicasAfterAppend) => self.stats.after_append += 1,
            Err(ReplicationError::RequestTimedOut) => self.stats.timed_out += 1,
            Err(_) => {}
        }
        self.done.insert(request, result);
    }

    /// A client sends `count` records to broker `b`.
    pub fn produce(&mut self, b: usize, acks: Acks, count: u32) -> RequestId {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let payloads = (0..count)
            .map(|_| {
                self.next_payload += 1;
                self.next_payload
            })
            .collect();
        self.produces.insert(request, Produce { payloads, acks });
        self.feed(
            b,
            Input::Produce {
                request,
                acks,
                records: count,
                timeout_ms: PRODUCE_TIMEOUT_MS,
            },
        );
        if acks == Acks::None {
            self.produces.remove(&request);
        }
        request
    }

    fn fsync(&mut self, b: usize) {
        let disk = &mut self.brokers[b].disk;
        disk.durable = disk.log.len();
        let durable_end = Offset(disk.durable as i64);
        self.feed(b, Input::LocalDurable { durable_end });
    }

    /// Crashes broker `b`: of its un-fsynced suffix, a random part
    /// survives (all of it with `keep_unsynced`, none without in scripted
    /// runs).
    pub fn crash(&mut self, b: usize, keep_unsynced: bool) {
        let br = &mut self.brokers[b];
        assert!(br.up);
        br.up = false;
        let (durable, len) = (br.disk.durable, br.disk.log.len());
        let keep = if self.opts.chaos {
            durable + self.rng.below((len - durable) as u64 + 1) as usize
        } else if keep_unsynced {
            len
        } else {
            durable
        };
        let br = &mut self.brokers[b];
        br.disk.log.truncate(keep);
        br.disk.durable = keep;
        self.stats.crashes += 1;
    }

    /// Restarts broker `b` from its disk, or with an empty one (`wiped`).
    pub fn restart(&mut self, b: usize, wiped: bool) {
        assert!(!self.brokers[b].up);
        if wiped {
            self.brokers[b].disk = Disk::default();
            // The broker registers as having lost its log; the controller
            // takes it out of the ISR before it serves anything.
            self.controller_failure(b, true);
            self.stats.wipes += 1;
        }
        let config = Self::core_config(b, self.brokers[b].incarnation + 1, &self.opts);
        let br = &mut self.brokers[b];
        let restored = Restored {
            log_end: Offset(br.disk.log.len() as i64),
            epochs: br.disk.epochs.clone(),
            high_watermark: br.disk.hw,
        };
        br.core = Replica::restore(config, restored).expect("the sim writes ordered checkpoints");
        br.disk.durable = br.disk.log.len();
        br.up = true;
        br.incarnation += 1;
        br.fetched = (Offset(0), Vec::new());
        let broker_epoch = br.incarnation;
        self.send(
            End::Broker(b),
            End::Controller,
            Payload::Heartbeat { broker_epoch },
        );
    }

    pub fn cut_link(&mut self, a: usize, b: usize, cut: bool) {
        self.cut[a][b] = cut;
        self.cut[b][a] = cut;
    }

    pub fn cut_controller(&mut self, b: usize, cut: bool) {
        self.ctrl_cut[b] = cut;
    }

    pub fn heal_all(&mut self) {
        let n = self.opts.brokers;
        self.cut = vec![vec![false; n]; n];
        self.ctrl_cut = vec![false; n];
    }

    // ---- the clock -----------------------------------------------------

    /// One step of virtual time: messages, heartbeats, ticks, fsyncs.
    pub fn step(&mut self) -> Result<(), String> {
        self.now += STEP_MS;
        self.stats.steps += 1;
        self.deliver_due();
        for b in 0..self.opts.brokers {
            if !self.brokers[b].up {
                continue;
            }
            if self.now % HEARTBEAT_MS == 0 {
                let broker_epoch = self.brokers[b].incarnation;
                self.send(
                    End::Broker(b),
                    End::Controller,
                    Payload::Heartbeat { broker_epoch },
                );
            }
            self.feed(b, Input::Tick);
            if !self.opts.chaos || self.rng.chance(400, 1_000) {
                self.fsync(b);
            }
        }
        self.controller_tick();
        self.check()
    }

    pub fn run_ms(&mut self, ms: i64) -> Result<(), String> {
        let until = self.now + ms;
        while self.now < until {
            self.step()?;
        }
        Ok(())
    }

    /// Steps until `done` holds; false if `ms_max` passes first.
    pub fn run_until(&mut self, ms_max: i64, done: impl Fn(&Sim) -> bool) -> Result<bool, String> {
        let until = self.now + ms_max;
        while self.now < until {
            if done(self) {
                return Ok(true);
            }
            self.step()?;
        }
        Ok(done(self))
    }

    fn chaos(&mut self) {
        let n = self.opts.brokers;
        // Clients write to whoever believes it leads (stale leaders too).
        if self.rng.chance(300, 1_000) {
            let leaders: Vec<usize> = (0..n)
                .filter(|&b| self.brokers[b].up && self.brokers[b].core.role() == RoleKind::Leader)
                .collect();
            if !leaders.is_empty() {
                let b = leaders[self.rng.below(leaders.len() as u64) as usize];
                let acks = if self.rng.chance(800, 1_000) {
                    Acks::All
                } else {
                    Acks::Leader
                };
                let count = 1 + self.rng.below(3) as u32;
                self.produce(b, acks, count);
            }
        }
        for b in 0..n {
            if self.brokers[b].up {
                if self.rng.chance(3, 1_000) {
                    self.crash(b, false);
                }
            } else if self.rng.chance(15, 1_000) {
                let others = self.controller.state.isr.iter().any(|&r| r != node(b));
                let wipe = others && !self.ctrl_cut[b] && self.rng.chance(150, 1_000);
                self.restart(b, wipe);
            }
        }
        if self.rng.chance(6, 1_000) {
            let (a, b) = (
                self.rng.below(n as u64) as usize,
                self.rng.below(n as u64) as usize,
            );
            if a != b {
                self.cut_link(a, b, true);
            }
        }
        if self.rng.chance(3, 1_000) {
            let b = self.rng.below(n as u64) as usize;
            self.ctrl_cut[b] = true;
        }
        for a in 0..n {
            for b in a + 1..n {
                if self.cut[a][b] && self.rng.chance(20, 1_000) {
                    self.cut_link(a, b, false);
                }
            }
            if self.ctrl_cut[a] && self.rng.chance(15, 1_000) {
                self.ctrl_cut[a] = false;
            }
        }
    }

    // ---- invariants ----------------------------------------------------

    pub fn check(&mut self) -> Result<(), String> {
        for b in 0..self.opts.brokers {
            self.check_broker(b)?;
        }
        if !self.opts.unclean {
            self.check_committed_on_isr()?;
        }
        self.check_log_matching()
    }

    fn check_broker(&mut self, b: usize) -> Result<(), String> {
        let br = &self.brokers[b];
        let log = &br.disk.log;
        for w in log.windows(2) {
            if w[1].epoch < w[0].epoch {
                return Err(self.fail(&format!("b{b}: epochs go down in the log")));
            }
        }
        if !br.up {
            return Ok(());
        }
        let core = &br.core;
        if core.log_end().0 as usize != log.len() {
            return Err(self.fail(&format!(
                "b{b}: core log end {} but the log holds {}",
                core.log_end(),
                log.len()
            )));
        }
        if core.durable_end().0 as usize > br.disk.durable {
            return Err(self.fail(&format!("b{b}: core thinks more is durable than is")));
        }
        for (o, r) in log.iter().enumerate() {
            if core.epochs().epoch_at(Offset(o as i64)) != Some(r.epoch) {
                return Err(self.fail(&format!(
                    "b{b}: epoch cache {:?} disagrees with the record at {o} ({:?})",
                    core.epochs().entries(),
                    r.epoch
                )));
            }
        }
        if core.role() != RoleKind::Leader {
            // A follower's HW came from a leader: what lies below it is
            // committed.
            let h = (core.high_watermark().0 as usize).min(self.committed.len());
            if !self.opts.unclean && log[..h] != self.committed[..h] {
                return Err(self.fail(&format!(
                    "b{b} disagrees with a committed record below its HW {}",
                    core.high_watermark()
                )));
            }
            return Ok(());
        }
        let (epoch, hw, inc) = (core.leader_epoch(), core.high_watermark(), br.incarnation);
        if hw.0 as usize > log.len() {
            return Err(self.fail(&format!("b{b}: HW {hw} beyond the log")));
        }
        if let Some(&(seen_inc, seen_hw)) = self.leader_hw.get(&(b, epoch.0)) {
            if seen_inc != inc {
                return Err(self.fail(&format!("b{b} leads epoch {epoch} in two lives")));
            }
            if hw < seen_hw {
                return Err(self.fail(&format!(
                    "b{b}: HW went back from {seen_hw} to {hw} in epoch {epoch}"
                )));
            }
        }
        self.leader_hw.insert((b, epoch.0), (inc, hw));
        let h = hw.0 as usize;
        let known = self.committed.len().min(h);
        if !self.opts.unclean && log[..known] != self.committed[..known] {
            return Err(self.fail(&format!(
                "b{b} (leader of epoch {epoch}) disagrees with a committed record below its HW {hw}"
            )));
        }
        if h > self.committed.len() {
            let more = log[self.committed.len()..h].to_vec();
            self.committed.extend(more);
        }
        Ok(())
    }

    fn check_committed_on_isr(&self) -> Result<(), String> {
        let n = self.committed.len();
        for &r in &self.controller.state.isr {
            let log = &self.brokers[r.0 as usize].disk.log;
            if log.len() < n || log[..n] != self.committed[..] {
                let at = (0..n).find(|&o| log.get(o) != Some(&self.committed[o]));
                return Err(self.fail(&format!(
                    "ISR member b{} lacks committed offset {at:?} (holds {} of {n})",
                    r.0,
                    log.len()
                )));
            }
        }
        Ok(())
    }

    fn check_log_matching(&self) -> Result<(), String> {
        let n = self.opts.brokers;
        for a in 0..n {
            for b in a + 1..n {
                let (la, lb) = (&self.brokers[a].disk.log, &self.brokers[b].disk.log);
                let len = la.len().min(lb.len());
                let first = (0..len).find(|&o| la[o] != lb[o]).unwrap_or(len);
                if let Some(o) = (first..len).find(|&o| la[o].epoch == lb[o].epoch) {
                    return Err(self.fail(&format!(
                        "log matching: b{a} and b{b} both hold epoch {} at offset {o} but differ at {first}",
                        la[o].epoch
                    )));
                }
            }
        }
        Ok(())
    }

    /// Acknowledged records missing from broker `b`'s log.
    pub fn lost_on(&self, b: usize) -> Vec<(usize, u64)> {
        let log = &self.brokers[b].disk.log;
        self.acked
            .iter()
            .copied()
            .filter(|&(o, p)| log.get(o).map(|r| r.payload) != Some(p))
            .collect()
    }

    pub fn leader(&self) -> Option<usize> {
        self.controller.state.leader.map(|r| r.0 as usize)
    }

    pub fn controller_isr(&self) -> Vec<usize> {
        self.controller
            .state
            .isr
            .iter()
            .map(|r| r.0 as usize)
            .collect()
    }

    /// One leader in the controller's current epoch, every replica in
    /// its ISR, identical logs, HW at the log end.
    pub fn converged(&self) -> bool {
        let n = self.opts.brokers;
        let Some(l) = self.leader() else { return false };
        let s = &self.controller.state;
        let lb = &self.brokers[l];
        lb.core.role() == RoleKind::Leader
            && lb.core.leader_epoch() == s.leader_epoch
            && s.isr.len() == n
            && lb.core.isr().len() == n
            && lb.core.high_watermark().0 as usize == lb.disk.log.len()
            && (0..n).all(|b| self.brokers[b].up && self.brokers[b].disk.log == lb.disk.log)
    }

    /// Heals everything, restarts whoever is down, and waits for
    /// convergence.
    pub fn settle(&mut self) -> Result<(), String> {
        self.heal_all();
        for b in 0..self.opts.brokers {
            if !self.brokers[b].up {
                self.restart(b, false);
            }
        }
        if !self.run_until(SETTLE_MS_MAX, |s| s.converged())? {
            let roles: Vec<_> = self
                .brokers
                .iter()
                .map(|b| {
                    (
                        b.core.role(),
                        b.core.leader_epoch(),
                        b.disk.log.len(),
                        b.core.high_watermark(),
                    )
                })
                .collect();
            return Err(self.fail(&format!(
                "did not converge: controller {:?}, brokers {roles:?}",
                self.controller.state
            )));
        }
        Ok(())
    }
}

/// One random schedule.
fn run_seed(seed: u64) -> Result<Stats, String> {
    let mut rng = Rng(seed ^ 0x5eed);
    let brokers = [2, 3, 3, 4][rng.below(4) as usize];
    let min_insync = if brokers > 2 && rng.chance(600, 1_000) {
        2
    } else {
        1
    };
    let unclean = rng.chance(100, 1_000);
    let mut sim = Sim::new(
        seed,
        Options {
            brokers,
            min_insync,
            unclean,
            chaos: true,
        },
    );
    while sim.now < CHAOS_MS {
        sim.chaos();
        sim.step()?;
    }
    sim.settle()?;
    let lost = sim.lost_on(sim.leader().expect("converged"));
    if unclean {
        sim.stats.unclean_seeds_with_loss += u64::from(!lost.is_empty());
    } else if !lost.is_empty() {
        return Err(sim.fail(&format!("acknowledged records lost: {lost:?}")));
    }
    sim.stats.seeds = 1;
    sim.stats.simulated_ms = sim.now;
    Ok(sim.stats)
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok()?.replace('_', "").parse().ok()
}

#[test]
fn random_schedules_keep_acknowledged_records() {
    if let Some(seed) = env_u64("RINGTAIL_REPL_SIM_SEED") {
        match run_seed(seed) {
            Ok(stats) => println!("seed {seed} passed: {stats:?}"),
            Err(e) => panic!("{e}"),
        }
        return;
    }
    let default = if cfg!(debug_assertions) { 400 } else { 10_000 };
    let count = env_u64("RINGTAIL_REPL_SIM_SEEDS").unwrap_or(default);
    let first = env_u64("RINGTAIL_REPL_SIM_FIRST").unwrap_or(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8) as u64;
    let started = std::time::Instant::now();
    let results: Vec<Result<Stats, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut total = Stats::default();
                    let mut seed = first + t;
                    while seed < first + count {
                        total.add(&run_seed(seed)?);
                        seed += threads;
                    }
                    Ok(total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a sim thread panicked"))
            .collect()
    });
    let mut total = Stats::default();
    for r in results {
        match r {
            Ok(s) => total.add(&s),
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "replication sim: {} seeds in {:.1} s wall, {:.0} s simulated, {} steps; \
         {} acks=all acknowledged, {} NOT_ENOUGH_REPLICAS, {} ..._AFTER_APPEND, {} timed out; \
         {} elections ({} unclean), {} crashes, {} disk losses, {} truncations, {} ISR changes; \
         {} unclean seeds lost acknowledged records",
        total.seeds,
        started.elapsed().as_secs_f64(),
        total.simulated_ms as f64 / 1000.0,
        total.steps,
        total.acked,
        total.not_enough_replicas,
        total.after_append,
        total.timed_out,
        total.elections,
        total.unclean_elections,
        total.crashes,
        total.wipes,
        total.truncations,
        total.isr_changes,
        total.unclean_seeds_with_loss,
    );
    assert_eq!(total.seeds, count);
    assert!(total.acked > 0 && total.elections > 0 && total.truncations > 0);
}
