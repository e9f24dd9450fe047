//! Partition replication as a pure state machine: the leader's ISR and
//! high watermark, the follower's truncation by leader epoch, and the
//! `acks=all` promise, in the manner of Kafka's `Partition`,
//! `ReplicaManager` and `AbstractFetcherThread`. No I/O happens here.
//!
//! # Layout
//!
//! - this file: [`Replica`] (one partition on one broker), its
//!   [`Config`], [`Input`]s, [`Output`]s and [`Message`]s, and the role
//!   changes the controller orders.
//! - [`epochs`]: the leader-epoch cache (`leader-epoch-checkpoint`) and
//!   Kafka's `endOffsetFor`, which answers OffsetsForLeaderEpoch.
//! - `leader`: follower progress, HW, ISR shrink and expand, produce
//!   completion, the leader's answers to Fetch and OffsetsForLeaderEpoch.
//! - `follower`: the fetch loop, truncation (KIP-101/279) and divergence
//!   on fetch (KIP-320).
//! - [`election`]: the controller's pure half: partition state, election
//!   from the ISR, the ISR compare-and-set.
//! - `sim` (tests): three replicas, a controller, a faulty network and
//!   disks, random schedules with invariants after every step, and the
//!   Jepsen 2013 and KIP-101 scenarios.
//!
//! # The model
//!
//! A partition has `replicas`; the controller names a leader and a leader
//! epoch and records the ISR in the partition-state znode. Every record
//! carries the epoch of the leader that appended it, and each log keeps
//! its epoch cache (epoch -> first offset).
//!
//! - **Leader.** Tracks each follower's log end offset (LEO: its fetch
//!   offset) and when it last caught up. A follower is caught up when it
//!   fetches at or beyond the leader's LEO, or at or beyond the LEO the
//!   leader had at the follower's previous fetch (Kafka's
//!   `lastCaughtUpTimeMs` rule). An ISR member that has not caught up for
//!   `replica_lag_time_max_ms` is proposed out; a follower whose LEO
//!   reaches the HW and the start of the current epoch is proposed in
//!   (the epoch-start condition is KAFKA-7128: a new leader's HW may lag
//!   the old leader's, and a follower at that HW may lack records the old
//!   leader committed).
//! - **HW** = the minimum over the *maximal* ISR (the committed ISR plus a
//!   pending change, as Kafka's `maximalIsr`) of each member's durable end:
//!   the leader's `LocalDurable` offset and each follower's fetch offset
//!   (see durability below). It never moves backwards within an epoch.
//!   Using the maximal ISR keeps a replica that is about to leave the ISR
//!   counted until the controller has recorded its removal: until then it
//!   could still be elected, so it must hold everything committed.
//! - **Produce.** `acks=all` is refused with NOT_ENOUGH_REPLICAS when the
//!   committed ISR is smaller than `min_insync_replicas`; once appended it
//!   completes when the HW passes its last offset, with
//!   NOT_ENOUGH_REPLICAS_AFTER_APPEND if by then the ISR is smaller than
//!   `min_insync_replicas` (Kafka's `checkEnoughReplicasReachOffset`),
//!   or REQUEST_TIMED_OUT at its deadline. `acks=1` completes once
//!   written on the leader.
//! - **Durability on every ISR member.** A follower flushes before it
//!   fetches: it sends its next Fetch only once everything it appended is
//!   durable, so its fetch offset is both its LEO and its durable end. The
//!   leader counts itself at its durable end. So HW >= X means offset X-1
//!   is durable on every member of the maximal ISR, and an `acks=all`
//!   answer (given in the step that moved the HW) is a durability promise
//!   made only in answer to `LocalDurable` or to a follower's fetch,
//!   which that follower sent only after its own `LocalDurable`.
//!   Consumers see data below HW only, so they never see a record a crash
//!   could take back. The price: a follower's fetch waits for its fsync
//!   (one group commit per fetch round).
//! - **Follower.** On becoming a follower it asks the leader where its
//!   last epoch ends (OffsetsForLeaderEpoch) and truncates to
//!   `min(its own end of that epoch, the leader's answer)`; when the
//!   leader answers an epoch the follower does not have, it first cuts
//!   its log to the end of its largest epoch below that one and asks
//!   again (KIP-279). It never truncates to its HW, which may lag the
//!   leader's (KIP-101). Every Fetch carries `last_fetched_epoch`; the
//!   leader checks it against its own cache and answers a diverging epoch
//!   instead of records when the logs differ (KIP-320), and only counts a
//!   fetch offset it has validated this way toward HW and ISR expansion.
//! - **ISR changes** are proposed to the controller (`ProposeIsr`), written
//!   with a compare-and-set on the znode version ([`election::write_isr`]),
//!   and confirmed (`IsrCommitted`) or refused (`IsrRejected`). An
//!   expansion names the broker epoch the follower fetched with, and the
//!   controller refuses it if that broker has since restarted (KIP-903: a
//!   replica that lost its disk must not join on the strength of what
//!   its previous life held); such a refusal drops the proposal. Until
//!   confirmed, the change counts in the maximal ISR; a refusal means the
//!   controller moved the partition on, so the leader keeps the pending
//!   change counted and proposes nothing more until the controller's next
//!   `BecomeLeader`/`BecomeFollower`.
//! - **Elections** are the controller's ([`election::elect_leader`]): from
//!   the ISR only unless unclean election is enabled. Every election, and
//!   every ISR change the controller makes itself, bumps the leader epoch.
//!
//! # What the driver must do
//!
//! - Feed every event through [`Replica::step`] with a monotonic clock in
//!   milliseconds and act on the outputs in order.
//! - Log outputs (`Append`, `AppendFetched`, `Truncate`) are applied to
//!   the log in output order. `Truncate` and `PersistEpochs` must be
//!   durable (truncate + fsync; checkpoint written to a temporary file,
//!   fsynced, renamed) before the driver acts on any later output.
//! - `LocalAppended` reports the log's written end and `LocalDurable` its
//!   fsynced end, each as the log stands (not a particular write), and
//!   only after the fact. Reporting `LocalDurable` early breaks the
//!   `acks=all` promise; reporting it late only delays it. Every append
//!   must eventually be fsynced and reported (group commit is fine): a
//!   follower fetches again only once its log is durable, and `acks=all`
//!   waits for the leader's.
//! - `ServeFetch` names a range of the local log to send in a
//!   FetchResponse (fewer bytes are fine); the driver may park it until
//!   `min_bytes`/`max_wait_ms`. `Send` messages may be lost, delayed,
//!   duplicated or reordered: the core matches answers by correlation id
//!   and resends after `replica_request_timeout_ms`.
//! - Feed the FetchResponse's batches back as [`BatchMeta`]s and append
//!   their bytes when the core says `AppendFetched`.
//! - `ProposeIsr`: decide with [`election::write_isr`] against the
//!   partition-state znode and write what it says (`Applied` and
//!   `Ineligible` both write: the latter the same state at a new version,
//!   which fences late copies of the proposal); answer `IsrCommitted`, or
//!   `IsrRejected` with the znode as it now stands. The core re-proposes
//!   every `isr_retry_ms` until answered; retries are idempotent.
//! - Deliver the controller's LeaderAndIsr as `BecomeLeader` or
//!   `BecomeFollower` only if it carries this broker's current broker
//!   epoch (KIP-380), so a restarted broker never acts on orders meant
//!   for its previous life.
//! - After a crash, rebuild with [`Replica::restore`] from the recovered
//!   log end (with the recovered log fsynced), the epoch checkpoint and
//!   the last HW checkpoint (`HighWatermark` outputs, written lazily). If
//!   recovery cut the epoch cache, the first step's first output rewrites
//!   the checkpoint; the simulator found that a stale entry left on disk
//!   mislabels records appended after it.
//!
//! # Fault model
//!
//! Acknowledged (`acks=all`) records and everything ever below a leader's
//! HW survive, at the same offsets, on every ISR member and every future
//! leader, provided that:
//! - unclean leader election is disabled;
//! - a crash (process or power) loses only writes not yet fsynced (any
//!   part of them); an fsync that returned is kept;
//! - a broker that lost its disk registers as such and the controller
//!   removes it from the ISR before it serves (KIP-858/966 style), and at
//!   most ISR size - 1 replicas lose their disks before the rest catch up
//!   (a disk loss that would empty the ISR loses data, and no replication
//!   protocol can prevent that);
//! - the controller's writes are linearizable (the coordinator's ZAB) and
//!   fenced by the znode version and the controller epoch, and brokers drop
//!   controller orders carrying a stale broker epoch;
//! - messages may be lost, delayed, duplicated and reordered, and any set
//!   of links may be cut (broker to broker, broker to controller) and
//!   healed at any time; clocks are monotonic per broker.
//!
//! Liveness needs a leader that reaches the controller and a majority of
//! the coordinator; with `min.insync.replicas` > ISR size, `acks=all`
//! writes are refused rather than acknowledged at risk. Not modelled yet:
//! log start offsets above zero (retention, OFFSET_OUT_OF_RANGE), reassignment,
//! and preferred-leader elections (they are ordinary elections here).

pub mod election;
pub mod epochs;
pub mod fetcher;
mod follower;
mod leader;
#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod sim;

pub use ringtail_protocol::{LeaderEpoch, NodeId, Offset};

use epochs::{EpochEndOffset, EpochEntry, LeaderEpochCache};
use follower::Follower;
use leader::Leader;

/// The driver's handle for one produce request, echoed in `ProduceDone`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Matches a follower's request with its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Correlation(pub u64);

/// The partition-state znode version: the compare-and-set fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionVersion(pub i32);

/// Static settings, with Kafka's names and defaults where it has them.
#[derive(Clone, Debug)]
pub struct Config {
    pub broker_id: NodeId,
    /// This broker's epoch (KIP-380: the version of its registration,
    /// new at every start; in ZooKeeper mode the czxid of
    /// `/brokers/ids/N`). Sent in every Fetch so an ISR expansion names
    /// the life of the follower it validated (KIP-903); -1 if unknown.
    pub broker_epoch: i64,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// A follower resends a Fetch or OffsetsForLeaderEpoch that got no
    /// answer for this long (`replica.socket.timeout.ms`).
    pub replica_request_timeout_ms: i64,
    /// A follower waits this long after an error answer
    /// (`replica.fetch.backoff.ms`).
    pub replica_fetch_backoff_ms: i64,
    /// A leader re-proposes an unanswered ISR change after this long.
    pub isr_retry_ms: i64,
    /// `acks=all` produces waiting on one partition; more are refused.
    pub waiting_produces_max: usize,
}

impl Config {
    pub fn new(broker_id: NodeId) -> Config {
        Config {
            broker_id,
            broker_epoch: -1,
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            replica_request_timeout_ms: 30_000,
            replica_fetch_backoff_ms: 1_000,
            isr_retry_ms: 2_500,
            waiting_produces_max: 10_000,
        }
    }
}

/// Why a request was refused; the handler maps each to Kafka's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    #[error("this broker does not lead the partition")]
    NotLeaderOrFollower,
    #[error("the request's leader epoch is older than the leader's")]
    FencedLeaderEpoch,
    #[error("the request's leader epoch is newer than the leader's")]
    UnknownLeaderEpoch,
    #[error("the ISR is smaller than min.insync.replicas")]
    NotEnoughReplicas,
    #[error("written, but the ISR shrank below min.insync.replicas")]
    NotEnoughReplicasAfterAppend,
    #[error("the write was not replicated in time")]
    RequestTimedOut,
    #[error("the fetch offset is past the leader's log end")]
    OffsetOutOfRange,
    #[error("too many produce requests are waiting on this partition")]
    TooManyWaiting,
}

/// `acks` of a ProduceRequest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no answer at all.
    None,
    /// `acks=1`: written on the leader.
    Leader,
    /// `acks=-1`: durable on every ISR member.
    All,
}

/// One record batch of a FetchResponse: its offsets `[base, end)` and
/// the `partitionLeaderEpoch` in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub base_offset: Offset,
    pub end_offset: Offset,
    pub leader_epoch: LeaderEpoch,
}

/// Replication traffic between brokers (the Fetch and
/// OffsetsForLeaderEpoch APIs with a replica id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Fetch {
        correlation: Correlation,
        /// The follower's broker epoch (Fetch v15 `ReplicaEpoch`).
        replica_epoch: i64,
        current_leader_epoch: LeaderEpoch,
        fetch_offset: Offset,
        /// The epoch of the follower's last record (KIP-320), or UNKNOWN
        /// for an empty log.
        last_fetched_epoch: LeaderEpoch,
    },
    FetchResponse {
        correlation: Correlation,
        result: FetchResult,
    },
    OffsetsForLeaderEpoch {
        correlation: Correlation,
        current_leader_epoch: LeaderEpoch,
        leader_epoch: LeaderEpoch,
    },
    OffsetsForLeaderEpochResponse {
        correlation: Correlation,
        result: Result<EpochEndOffset, ReplicationError>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchResult {
    Records {
        high_watermark: Offset,
        batches: Vec<BatchMeta>,
    },
    /// The follower's log differs from the leader's after this point.
    Diverging {
        diverging: EpochEndOffset,
        high_watermark: Offset,
    },
    Error(ReplicationError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// LeaderAndIsr naming this broker leader.
    BecomeLeader {
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
        replicas: Vec<NodeId>,
        version: PartitionVersion,
    },
    /// LeaderAndIsr naming another broker leader, or none (offline).
    BecomeFollower {
        leader: Option<NodeId>,
        leader_epoch: LeaderEpoch,
        replicas: Vec<NodeId>,
    },
    /// The proposed ISR is in the znode at `version`.
    IsrCommitted {
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
        version: PartitionVersion,
    },
    /// The proposal was refused. `version` is the one it expected
    /// (answers to older proposals are ignored); `current` is the znode
    /// as the controller left it. If it still holds this epoch and the
    /// ISR the leader knows, at a later version, the proposal can no
    /// longer apply (the version fences every copy in flight): it is
    /// dropped and may be made again. That is the case when the joining
    /// replica was not in the life the leader validated (KIP-903: the
    /// controller rewrites the znode unchanged at a new version). Otherwise
    /// the partition moved on: wait for the controller.
    IsrRejected {
        leader_epoch: LeaderEpoch,
        version: PartitionVersion,
        current: election::PartitionState,
    },
    /// A validated ProduceRequest for this partition carrying `records`.
    Produce {
        request: RequestId,
        acks: Acks,
        records: u32,
        timeout_ms: i64,
    },
    /// The log's written end.
    LocalAppended {
        log_end: Offset,
    },
    /// The log's fsynced end.
    LocalDurable {
        durable_end: Offset,
    },
    Message {
        from: NodeId,
        msg: Message,
    },
    Tick,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        to: NodeId,
        msg: Message,
    },
    /// Answer a follower's Fetch with this log's batches in
    /// `[read_from, read_end)` (as many as the byte limits allow).
    ServeFetch {
        to: NodeId,
        correlation: Correlation,
        read_from: Offset,
        read_end: Offset,
        high_watermark: Offset,
    },
    /// Leader: write the request's records at `base_offset` with this
    /// `partitionLeaderEpoch`.
    Append {
        request: RequestId,
        base_offset: Offset,
        records: u32,
        leader_epoch: LeaderEpoch,
    },
    /// Follower: append the batches of the FetchResponse just fed, up to
    /// `end_offset`.
    AppendFetched {
        end_offset: Offset,
    },
    /// Remove every record at or after `log_end`; durable before going on.
    Truncate {
        log_end: Offset,
    },
    /// Rewrite the epoch checkpoint; durable before going on.
    PersistEpochs {
        entries: Vec<EpochEntry>,
    },
    /// The HW moved (consumers may read below it); checkpoint lazily.
    HighWatermark {
        offset: Offset,
    },
    /// Compare-and-set the ISR in the partition-state znode. `joining`
    /// names the replica an expansion adds and the broker epoch it
    /// fetched with: the controller refuses it unless that is the
    /// replica's current registration (KIP-903).
    ProposeIsr {
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
        version: PartitionVersion,
        joining: Option<(NodeId, i64)>,
    },
    ProduceDone {
        request: RequestId,
        /// The base offset on success.
        result: Result<Offset, ReplicationError>,
    },
}

/// The role this replica plays, for observers of the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    /// No order from the controller yet (or no leader for the partition).
    None,
    Leader,
    Follower(NodeId),
}

/// Where the local log stands. `assigned` is where it will end once every
/// log output so far is applied; `written <= assigned`, `durable <= written`.
#[derive(Clone, Copy, Debug, Default)]
struct LogEnds {
    assigned: Offset,
    written: Offset,
    durable: Offset,
}

/// What survived a crash, read back by the driver.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// The recovered (and fsynced) log end.
    pub log_end: Offset,
    pub epochs: Vec<EpochEntry>,
    pub high_watermark: Offset,
}

enum Role {
    None,
    Leader(Leader),
    Follower(Follower),
}

/// One partition's replication state on one broker.
pub struct Replica {
    config: Config,
    log: LogEnds,
    epochs: LeaderEpochCache,
    high_watermark: Offset,
    /// The latest epoch the controller told us about.
    leader_epoch: LeaderEpoch,
    role: Role,
    next_correlation: u64,
    now_ms: i64,
    /// Recovery cut the epoch cache: the checkpoint on disk still names
    /// epochs past the log end and must be rewritten before anything is
    /// appended (a later record of an older epoch would contradict it).
    epochs_unpersisted: bool,
    out: Vec<Output>,
}

impl Replica {
    /// A replica with an empty log.
    pub fn new(config: Config) -> Replica {
        Replica::restore(config, Restored::default()).expect("an empty log restores")
    }

    /// A replica over a recovered log. Epoch entries past the log end are
    /// dropped (and the first step's first output rewrites the checkpoint)
    /// and the HW is clamped to the log end, as Kafka's recovery does.
    pub fn restore(config: Config, restored: Restored) -> Result<Replica, epochs::EpochCacheError> {
        assert!(config.min_insync_replicas >= 1);
        let mut epochs = LeaderEpochCache::from_entries(restored.epochs)?;
        let epochs_unpersisted = epochs.truncate_from_end(restored.log_end);
        let end = restored.log_end;
        Ok(Replica {
            config,
            log: LogEnds {
                assigned: end,
                written: end,
                durable: end,
            },
            epochs,
            high_watermark: restored.high_watermark.min(end).max(Offset(0)),
            leader_epoch: LeaderEpoch::UNKNOWN,
            role: Role::None,
            next_correlation: 1,
            now_ms: i64::MIN,
            epochs_unpersisted,
            out: Vec::new(),
        })
    }

    /// Feeds one event at `now_ms` and returns the outputs, in the order
    /// the driver must act on them.
    pub fn step(&mut self, now_ms: i64, input: Input) -> Vec<Output> {
        self.now_ms = self.now_ms.max(now_ms);
        if std::mem::take(&mut self.epochs_unpersisted) {
            self.persist_epochs();
        }
        match input {
            Input::BecomeLeader {
                leader_epoch,
                isr,
                replicas,
                version,
            } => self.become_leader(leader_epoch, isr, replicas, version),
            Input::BecomeFollower {
                leader,
                leader_epoch,
                replicas,
            } => self.become_follower(leader, leader_epoch, replicas),
            Input::IsrCommitted {
                leader_epoch,
                isr,
                version,
            } => self.on_isr_committed(leader_epoch, isr, version),
            Input::IsrRejected {
                leader_epoch,
                version,
                current,
            } => self.on_isr_rejected(leader_epoch, version, current),
            Input::Produce {
                request,
                acks,
                records,
                timeout_ms,
            } => self.on_produce(request, acks, records, timeout_ms),
            Input::LocalAppended { log_end } => {
                self.log.written = self.log.written.max(log_end.min(self.log.assigned));
                self.on_log_progress();
            }
            Input::LocalDurable { durable_end } => {
                let d = durable_end.min(self.log.assigned);
                self.log.written = self.log.written.max(d);
                self.log.durable = self.log.durable.max(d);
                self.on_log_progress();
            }
            Input::Message { from, msg } => self.on_message(from, msg),
            Input::Tick => self.on_tick(),
        }
        std::mem::take(&mut self.out)
    }

    pub fn role(&self) -> RoleKind {
        match &self.role {
            Role::None => RoleKind::None,
            Role::Leader(_) => RoleKind::Leader,
            Role::Follower(f) => f.leader().map_or(RoleKind::None, RoleKind::Follower),
        }
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The written log end (Kafka's LEO).
    pub fn log_end(&self) -> Offset {
        self.log.written
    }

    pub fn durable_end(&self) -> Offset {
        self.log.durable
    }

    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// The committed ISR as the leader knows it (empty when not leader).
    pub fn isr(&self) -> Vec<NodeId> {
        match &self.role {
            Role::Leader(l) => l.isr.clone(),
            _ => Vec::new(),
        }
    }

    /// The ISR counted for HW and `acks=all`: the committed ISR plus a
    /// pending change (empty when not leader).
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        match &self.role {
            Role::Leader(l) => l.maximal_isr(),
            _ => Vec::new(),
        }
    }

    /// Per follower: its LEO as last validated and the ms since it last
    /// caught up (leader only; for lag metrics).
    pub fn follower_lag(&self) -> Vec<(NodeId, Option<Offset>, i64)> {
        match &self.role {
            Role::Leader(l) => l.lag(self.now_ms),
            _ => Vec::new(),
        }
    }

    fn correlation(&mut self) -> Correlation {
        let c = Correlation(self.next_correlation);
        self.next_correlation += 1;
        c
    }

    fn me(&self) -> NodeId {
        self.config.broker_id
    }

    fn persist_epochs(&mut self) {
        self.out.push(Output::PersistEpochs {
            entries: self.epochs.entries().to_vec(),
        });
    }

    fn set_high_watermark(&mut self, hw: Offset) {
        if hw != self.high_watermark {
            self.high_watermark = hw;
            self.out.push(Output::HighWatermark { offset: hw });
        }
    }

    fn on_log_progress(&mut self) {
        match self.role {
            Role::Leader(_) => self.leader_on_log_progress(),
            Role::Follower(_) => self.follower_poll(),
            Role::None => {}
        }
    }

    fn on_tick(&mut self) {
        match self.role {
            Role::Leader(_) => self.leader_on_tick(),
            Role::Follower(_) => self.follower_poll(),
            Role::None => {}
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::Fetch {
                correlation,
                replica_epoch,
                current_leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            } => self.leader_on_fetch(
                from,
                correlation,
                replica_epoch,
                current_leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            ),
            Message::OffsetsForLeaderEpoch {
                correlation,
                current_leader_epoch,
                leader_epoch,
            } => {
                let result = self
                    .check_leader_epoch(current_leader_epoch)
                    .map(|()| self.epochs.end_offset_for(leader_epoch, self.log.written));
                self.out.push(Output::Send {
                    to: from,
                    msg: Message::OffsetsForLeaderEpochResponse {
                        correlation,
                        result,
                    },
                });
            }
            Message::FetchResponse {
                correlation,
                result,
            } => self.follower_on_fetch_response(from, correlation, result),
            Message::OffsetsForLeaderEpochResponse {
                correlation,
                result,
            } => self.follower_on_epoch_answer(from, correlation, result),
        }
    }

    /// The fencing of a follower's request by its `current_leader_epoch`
    /// (KIP-320): older is fenced, newer is not known here yet.
    fn check_leader_epoch(&self, current: LeaderEpoch) -> Result<(), ReplicationError> {
        if !matches!(self.role, Role::Leader(_)) {
            return Err(ReplicationError::NotLeaderOrFollower);
        }
        if current < self.leader_epoch {
            return Err(ReplicationError::FencedLeaderEpoch);
        }
        if current > self.leader_epoch {
            return Err(ReplicationError::UnknownLeaderEpoch);
        }
        Ok(())
    }

    fn become_leader(
        &mut self,
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
        replicas: Vec<NodeId>,
        version: PartitionVersion,
    ) {
        let stale = leader_epoch < self.leader_epoch
            || (leader_epoch == self.leader_epoch && !matches!(self.role, Role::None));
        if stale || !isr.contains(&self.me()) || !replicas.contains(&self.me()) {
            return;
        }
        self.leader_epoch = leader_epoch;
        // The epoch starts where the log will end once earlier log outputs
        // are applied; the leader's own appends follow them.
        let epoch_start = self.log.assigned;
        if self.epochs.assign(leader_epoch, epoch_start) {
            self.persist_epochs();
        }
        let now = self.now_ms;
        let me = self.me();
        match &mut self.role {
            Role::Leader(l) => l.new_epoch(me, isr, replicas, version, epoch_start, now),
            _ => {
                self.role = Role::Leader(Leader::new(me, isr, replicas, version, epoch_start, now));
            }
        }
        self.leader_update_hw();
    }

    fn become_follower(
        &mut self,
        leader: Option<NodeId>,
        leader_epoch: LeaderEpoch,
        replicas: Vec<NodeId>,
    ) {
        if leader_epoch < self.leader_epoch || leader == Some(self.me()) {
            return;
        }
        if leader_epoch == self.leader_epoch {
            let same = match &self.role {
                Role::Follower(f) => f.leader() == leader,
                Role::Leader(_) => true,
                Role::None => false,
            };
            if same {
                return;
            }
        }
        if !replicas.contains(&self.me()) {
            return;
        }
        self.leader_epoch = leader_epoch;
        if let Role::Leader(l) = &mut self.role {
            let waiting = l.take_waiting();
            for w in waiting {
                self.out.push(Output::ProduceDone {
                    request: w.request,
                    result: Err(ReplicationError::NotLeaderOrFollower),
                });
            }
        }
        // A leader's epoch entry that covers no record says nothing about
        // this log; drop it so the last entry is the last record's epoch.
        if self.epochs.truncate_from_end(self.log.assigned) {
            self.persist_epochs();
        }
        self.role = Role::Follower(Follower::new(leader));
        self.follower_poll();
    }
}
