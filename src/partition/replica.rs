//! The driver of a replicated partition: feeds the sans-IO core
//! ([`crate::replication::Replica`]) with this broker's events and carries
//! out its outputs against the real log, files, network and coordinator,
//! as `src/replication/mod.rs` ("What the driver must do") requires.
//!
//! A partition whose assignment names more than one replica gets a
//! [`ReplState`] when the first controller order for it arrives (the order
//! carries the broker epoch the core needs). Everything runs on the owner
//! shard, so the core sits in a `RefCell` and needs no lock.
//!
//! # Output order
//!
//! Outputs go through one queue per partition, applied in order. Most are
//! applied at once and synchronously (a log append is *enqueued* without
//! awaiting, so offsets are assigned in output order). `Truncate` is the
//! exception: it must be durable before anything after it, so the queue
//! stops until it finishes. Answers to a request being served (a
//! follower's Fetch or OffsetsForLeaderEpoch) are taken out of the step's
//! outputs by the handler that made the step; the rest go to the queue.
//!
//! # Durability
//!
//! A pump task per partition waits for the log's written end to pass what
//! it last reported, waits for group-committed fsync up to there and
//! reports `LocalDurable`. On a follower that is what lets the next Fetch
//! go (flush before fetch); on a leader it is what lets the HW move.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Instant;

use bytes::BytesMut;
use ringtail_io::log::{LogError, Offset as LogOffset};
use ringtail_io::rt;
use ringtail_io::rt::sync::{oneshot, Notify, OneshotReceiver, OneshotSender};
use ringtail_protocol::{ErrorCode, LeaderEpoch, NodeId, Offset};

use super::{checkpoint, Partition};
use crate::replication::election::PartitionState;
use crate::replication::{
    Acks, BatchMeta, Config, Input, Output, PartitionVersion, Replica, ReplicationError, RequestId,
    Restored, RoleKind,
};

/// Milliseconds on a process-wide monotonic clock (the core's clock).
pub fn now_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
}

/// Kafka's error code for a refusal of the core.
pub fn error_code(e: ReplicationError) -> ErrorCode {
    match e {
        ReplicationError::NotLeaderOrFollower => ErrorCode::NotLeaderOrFollower,
        ReplicationError::FencedLeaderEpoch => ErrorCode::FencedLeaderEpoch,
        ReplicationError::UnknownLeaderEpoch => ErrorCode::UnknownLeaderEpoch,
        ReplicationError::NotEnoughReplicas => ErrorCode::NotEnoughReplicas,
        ReplicationError::NotEnoughReplicasAfterAppend => ErrorCode::NotEnoughReplicasAfterAppend,
        ReplicationError::RequestTimedOut => ErrorCode::RequestTimedOut,
        ReplicationError::OffsetOutOfRange => ErrorCode::OffsetOutOfRange,
        ReplicationError::TooManyWaiting => ErrorCode::RequestTimedOut,
    }
}

/// The inverse, for answers that came over the wire.
pub fn replication_error(code: i16) -> ReplicationError {
    match ErrorCode::from_code(code) {
        Some(ErrorCode::FencedLeaderEpoch) => ReplicationError::FencedLeaderEpoch,
        Some(ErrorCode::UnknownLeaderEpoch) => ReplicationError::UnknownLeaderEpoch,
        Some(ErrorCode::OffsetOutOfRange) => ReplicationError::OffsetOutOfRange,
        Some(ErrorCode::NotEnoughReplicas) => ReplicationError::NotEnoughReplicas,
        Some(ErrorCode::RequestTimedOut) => ReplicationError::RequestTimedOut,
        _ => ReplicationError::NotLeaderOrFollower,
    }
}

/// What the controller's partition state says, as this broker acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub replicas: Vec<i32>,
    /// -1: offline.
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub version: i32,
}

/// How a produce through the core ended.
type ProduceResult = Result<Offset, ErrorCode>;

pub struct ReplState {
    core: RefCell<Replica>,
    queue: RefCell<VecDeque<Output>>,
    /// A `Truncate` is being applied: later outputs wait.
    blocked: Cell<bool>,
    /// Produce requests waiting for `ProduceDone` (or, for `acks=0`, for
    /// their append).
    waiters: RefCell<HashMap<u64, OneshotSender<ProduceResult>>>,
    /// Batches of produce requests waiting for their `Append`, with
    /// whether the request is `acks=0` (answered at its append; the others
    /// wait for the core's `ProduceDone`).
    batches: RefCell<HashMap<u64, (BytesMut, bool)>>,
    /// Follower: batches of the last FetchResponse, waiting for
    /// `AppendFetched`.
    fetched: RefCell<VecDeque<(BatchMeta, BytesMut)>>,
    next_request: Cell<u64>,
    /// The last order delivered to the core.
    pub order: RefCell<Option<Order>>,
    /// The broker epoch the core was built with.
    pub broker_epoch: i64,
    durability: Notify,
    /// The durable end last reported to the core.
    reported_durable: Cell<i64>,
    /// The HW last written to the checkpoint file.
    hw_checkpointed: Cell<i64>,
    hw_checkpointed_at: Cell<i64>,
    /// A periodic HW checkpoint is being written (one at a time).
    hw_checkpointing: Cell<bool>,
    /// A proposal is being written (one at a time; the core re-proposes).
    proposing: Cell<bool>,
    stopped: Cell<bool>,
}

impl ReplState {
    pub fn role(&self) -> RoleKind {
        self.core.borrow().role()
    }

    pub fn high_watermark(&self) -> Offset {
        self.core.borrow().high_watermark()
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.core.borrow().leader_epoch()
    }

    /// The log end as the core knows it (what it serves followers up to);
    /// it trails the log's own written end until `LocalAppended` reaches it.
    pub fn log_end(&self) -> Offset {
        self.core.borrow().log_end()
    }

    pub fn isr(&self) -> Vec<NodeId> {
        self.core.borrow().isr()
    }

    /// Per follower: validated LEO and ms since it last caught up.
    pub fn follower_lag(&self) -> Vec<(NodeId, Option<Offset>, i64)> {
        self.core.borrow().follower_lag()
    }
}

/// Settings of the core from the broker's and the topic's config.
fn core_config(p: &Partition, broker_epoch: i64) -> Config {
    let b = &p.broker;
    let mut c = Config::new(NodeId(b.broker_id));
    c.broker_epoch = broker_epoch;
    c.replica_lag_time_max_ms = b.replica_lag_time_max_ms;
    c.min_insync_replicas = p
        .topic
        .configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(b.min_insync_replicas.max(1) as usize)
        .max(1);
    c.replica_request_timeout_ms = b.replica_socket_timeout_ms;
    c.replica_fetch_backoff_ms = b.replica_fetch_backoff_ms;
    c
}

impl Partition {
    /// The end a follower's fetch can be served up to now: the core's log
    /// end on a replicated partition, else the log's written end.
    pub fn follower_readable_end(&self) -> LogOffset {
        match self.replication() {
            Some(r) => LogOffset(r.log_end().0),
            None => self.log.offsets().written,
        }
    }

    /// The replication state, when this partition is replicated.
    pub fn replication(&self) -> Option<Rc<ReplState>> {
        self.repl.borrow().clone()
    }

    /// Builds the core from what is on disk: the log end (made durable
    /// first), the epoch checkpoint and the HW checkpoint.
    async fn start_replication(
        self: &Rc<Self>,
        broker_epoch: i64,
    ) -> Result<Rc<ReplState>, String> {
        let name = format!("{}-{}", self.topic.name, self.index);
        let end = self.log.offsets().log_end;
        self.log
            .wait_durable(end)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        let dir = self.log.dir().to_path_buf();
        let epochs = checkpoint::read_epochs(&dir).map_err(|e| format!("{name}: {e}"))?;
        let hw = checkpoint::read_high_watermark(&dir)
            .map_err(|e| format!("{name}: {e}"))?
            .unwrap_or(0);
        let restored = Restored {
            log_end: Offset(end.0),
            epochs,
            high_watermark: Offset(hw),
        };
        let core = Replica::restore(core_config(self, broker_epoch), restored)
            .map_err(|e| format!("{name}: leader-epoch-checkpoint: {e}"))?;
        let state = Rc::new(ReplState {
            core: RefCell::new(core),
            queue: RefCell::new(VecDeque::new()),
            blocked: Cell::new(false),
            waiters: RefCell::new(HashMap::new()),
            batches: RefCell::new(HashMap::new()),
            fetched: RefCell::new(VecDeque::new()),
            next_request: Cell::new(1),
            order: RefCell::new(None),
            broker_epoch,
            durability: Notify::new(),
            reported_durable: Cell::new(end.0),
            hw_checkpointed: Cell::new(hw),
            hw_checkpointed_at: Cell::new(now_ms()),
            hw_checkpointing: Cell::new(false),
            proposing: Cell::new(false),
            stopped: Cell::new(false),
        });
        *self.repl.borrow_mut() = Some(state.clone());
        rt::spawn(durability_pump(self.clone(), state.clone()));
        Ok(state)
    }

    /// Delivers the controller's partition state (KIP-380: the caller
    /// passes orders written after this broker's current registration
    /// only for leadership; see `crate::cluster`).
    pub async fn apply_order(
        self: &Rc<Self>,
        order: Order,
        broker_epoch: i64,
    ) -> Result<(), String> {
        let r = match self.replication() {
            Some(r) if r.broker_epoch == broker_epoch => r,
            Some(old) => {
                // Registered again (a new broker epoch): a new core from the
                // log as it stands, so fetches carry the new epoch.
                old.stopped.set(true);
                fail_waiters(&old, ErrorCode::NotLeaderOrFollower);
                *self.repl.borrow_mut() = None;
                self.start_replication(broker_epoch).await?
            }
            None => self.start_replication(broker_epoch).await?,
        };
        if r.order.borrow().as_ref() == Some(&order) {
            return Ok(());
        }
        let me = self.broker.broker_id;
        let ids = |v: &[i32]| v.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
        let input = if order.leader == me {
            Input::BecomeLeader {
                leader_epoch: LeaderEpoch(order.leader_epoch),
                isr: ids(&order.isr),
                replicas: ids(&order.replicas),
                version: PartitionVersion(order.version),
            }
        } else {
            Input::BecomeFollower {
                leader: (order.leader >= 0).then_some(NodeId(order.leader)),
                leader_epoch: LeaderEpoch(order.leader_epoch),
                replicas: ids(&order.replicas),
            }
        };
        *r.order.borrow_mut() = Some(order);
        self.step_apply(input);
        if self.topic.name == crate::group::OFFSETS_TOPIC {
            crate::group::driver::offsets_partition_changed(self);
        }
        self.wake_waiters();
        Ok(())
    }

    /// Steps the core and returns its outputs (the caller applies them).
    pub fn step(&self, input: Input) -> Vec<Output> {
        match self.replication() {
            Some(r) => r.core.borrow_mut().step(now_ms(), input),
            None => Vec::new(),
        }
    }

    pub fn step_apply(self: &Rc<Self>, input: Input) {
        let outputs = self.step(input);
        self.apply(outputs);
    }

    /// Queues outputs and applies what can be applied now.
    pub fn apply(self: &Rc<Self>, outputs: Vec<Output>) {
        let Some(r) = self.replication() else { return };
        r.queue.borrow_mut().extend(outputs);
        self.drain(&r);
    }

    fn drain(self: &Rc<Self>, r: &Rc<ReplState>) {
        while !r.blocked.get() && !r.stopped.get() {
            let Some(output) = r.queue.borrow_mut().pop_front() else {
                return;
            };
            match output {
                Output::Send { to, msg } => crate::replication::fetcher::send(
                    to,
                    &self.topic.name,
                    self.index,
                    r.broker_epoch,
                    msg,
                ),
                // Answers to a request in progress are taken by its
                // handler; one left here has nobody to go to.
                Output::ServeFetch { .. } => {}
                Output::Append {
                    request,
                    base_offset,
                    leader_epoch,
                    ..
                } => self.apply_append(r, request, base_offset, leader_epoch),
                Output::AppendFetched { end_offset } => self.apply_fetched(r, end_offset),
                Output::Truncate { log_end } => {
                    r.blocked.set(true);
                    rt::spawn(truncate(self.clone(), r.clone(), log_end));
                    return;
                }
                Output::PersistEpochs { entries } => {
                    if let Err(e) = checkpoint::write_epochs(self.log.dir(), &entries) {
                        // Going on would let the cache on disk contradict
                        // the log: stop this partition's replication.
                        eprintln!(
                            "{}-{}: cannot write leader-epoch-checkpoint: {e}; replication stopped",
                            self.topic.name, self.index
                        );
                        r.stopped.set(true);
                        fail_waiters(r, ErrorCode::KafkaStorageError);
                        return;
                    }
                }
                Output::HighWatermark { offset } => {
                    self.wake_waiters();
                    self.checkpoint_hw(r, offset.0);
                }
                Output::ProposeIsr {
                    leader_epoch,
                    isr,
                    version,
                    joining,
                } => self.propose_isr(r, leader_epoch, isr, version, joining),
                Output::ProduceDone { request, result } => {
                    if let Some(tx) = r.waiters.borrow_mut().remove(&request.0) {
                        tx.send(result.map_err(error_code));
                    }
                }
            }
        }
    }

    fn apply_append(
        self: &Rc<Self>,
        r: &Rc<ReplState>,
        request: RequestId,
        base: Offset,
        epoch: LeaderEpoch,
    ) {
        let Some((batch, acks_none)) = r.batches.borrow_mut().remove(&request.0) else {
            return;
        };
        let end = self.log.offsets().log_end.0;
        if end != base.0 {
            // The core and the log disagree: a bug, never data to write.
            eprintln!(
                "{}-{}: replication assigned offset {} but the log ends at {end}; refusing the write",
                self.topic.name, self.index, base.0
            );
            if let Some(tx) = r.waiters.borrow_mut().remove(&request.0) {
                tx.send(Err(ErrorCode::UnknownServerError));
            }
            return;
        }
        let bytes = batch.len() as u64;
        let appended = self.log.append(batch, epoch.0);
        let p = self.clone();
        let r = r.clone();
        rt::spawn(async move {
            match appended.await {
                Ok(info) => {
                    let records = (info.last_offset.0 - info.base_offset.0 + 1) as u64;
                    crate::metrics::shard::appended(&p.topic.name, p.index, bytes, records);
                    p.after_append(&info);
                    p.after_local_append(&r);
                    // acks=0 waits for its append only; acks=1 and all for
                    // the core's ProduceDone (written, or under the HW).
                    if acks_none {
                        if let Some(tx) = r.waiters.borrow_mut().remove(&request.0) {
                            tx.send(Ok(Offset(info.base_offset.0)));
                        }
                    }
                }
                Err(e) => {
                    eprintln!("{}-{}: append failed: {e}", p.topic.name, p.index);
                    if let Some(tx) = r.waiters.borrow_mut().remove(&request.0) {
                        tx.send(Err(crate::server::handlers::log_error_code(&e)));
                    }
                }
            }
        });
    }

    fn apply_fetched(self: &Rc<Self>, r: &Rc<ReplState>, end: Offset) {
        loop {
            let next = {
                let mut fetched = r.fetched.borrow_mut();
                match fetched.front() {
                    Some((meta, _)) if meta.end_offset <= end => fetched.pop_front(),
                    _ => None,
                }
            };
            let Some((meta, bytes)) = next else { break };
            // A follower keeps the producers' state as its leader does, so
            // it can take over deduplication when it is elected.
            if let Some(info) = ringtail_protocol::RecordBatch::new(&bytes)
                .ok()
                .as_ref()
                .and_then(super::snapshot::batch_info)
            {
                self.producers.borrow_mut().record(info);
            }
            let appended = self.log.append_replica(bytes);
            let p = self.clone();
            let r = r.clone();
            rt::spawn(async move {
                match appended.await {
                    Ok(info) => {
                        p.after_append(&info);
                        p.after_local_append(&r);
                    }
                    Err(e) => eprintln!(
                        "{}-{}: appending fetched batch at {}: {e}",
                        p.topic.name, p.index, meta.base_offset.0
                    ),
                }
            });
        }
        r.fetched.borrow_mut().clear();
    }

    fn after_local_append(self: &Rc<Self>, r: &Rc<ReplState>) {
        let written = self.log.offsets().written;
        self.step_apply(Input::LocalAppended {
            log_end: Offset(written.0),
        });
        r.durability.notify();
        self.wake_waiters();
    }

    /// Waits, as leader, until the HW passes `last` (an `acks=all` answer
    /// for a batch ending there): NOT_LEADER_OR_FOLLOWER once this replica
    /// stops leading, REQUEST_TIMED_OUT after `timeout`. Parks on the
    /// partition's waiters, which every HW move wakes, and looks at the
    /// role again at least every replication tick.
    pub async fn wait_high_watermark_past(
        &self,
        last: i64,
        timeout: std::time::Duration,
    ) -> Result<(), ErrorCode> {
        const RECHECK: std::time::Duration = std::time::Duration::from_millis(50);
        let deadline = Instant::now() + timeout;
        loop {
            if self.high_watermark().0 > last {
                return Ok(());
            }
            if !self
                .replication()
                .is_some_and(|r| r.role() == RoleKind::Leader)
            {
                return Err(ErrorCode::NotLeaderOrFollower);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorCode::RequestTimedOut);
            }
            let waiter = super::DataWaiter::for_this_task().await;
            self.wait_for_data(waiter.clone());
            waiter.park(left.min(RECHECK)).await;
        }
    }

    /// Whether the core would take a produce with these acks now (see
    /// [`Replica::admits`]); asked before the idempotence check.
    pub fn admits_produce(&self, acks: Acks) -> Result<(), ErrorCode> {
        let r = self.replication().ok_or(ErrorCode::NotLeaderOrFollower)?;
        if r.stopped.get() {
            return Err(ErrorCode::KafkaStorageError);
        }
        let admitted = r.core.borrow().admits(acks);
        admitted.map_err(error_code)
    }

    /// Registers a produce of `records` (validated, idempotence-checked)
    /// with the core. Returns the base offset the core assigned (the batch
    /// is queued for the log) and the receiver of its answer, or the
    /// refusal.
    pub fn produce(
        self: &Rc<Self>,
        batch: BytesMut,
        acks: Acks,
        records: u32,
        timeout_ms: i64,
    ) -> Result<(Offset, OneshotReceiver<ProduceResult>), ErrorCode> {
        self.admits_produce(acks)?;
        let r = self.replication().ok_or(ErrorCode::NotLeaderOrFollower)?;
        let request = r.next_request.get();
        r.next_request.set(request + 1);
        let (tx, rx) = oneshot();
        r.batches
            .borrow_mut()
            .insert(request, (batch, acks == Acks::None));
        r.waiters.borrow_mut().insert(request, tx);
        let outputs = self.step(Input::Produce {
            request: RequestId(request),
            acks,
            records,
            timeout_ms,
        });
        let mut base = None;
        let mut refused = None;
        for o in &outputs {
            match o {
                Output::Append {
                    request: q,
                    base_offset,
                    ..
                } if q.0 == request => base = Some(*base_offset),
                Output::ProduceDone {
                    request: q,
                    result: Err(e),
                } if q.0 == request => refused = Some(*e),
                _ => {}
            }
        }
        self.apply(outputs);
        if let Some(e) = refused {
            r.batches.borrow_mut().remove(&request);
            r.waiters.borrow_mut().remove(&request);
            return Err(error_code(e));
        }
        match base {
            Some(b) => Ok((b, rx)),
            None => Err(ErrorCode::UnknownServerError),
        }
    }

    /// Keeps the follower's fetched batches until the core says which to
    /// append.
    pub fn stash_fetched(&self, batches: Vec<(BatchMeta, BytesMut)>) {
        if let Some(r) = self.replication() {
            let mut f = r.fetched.borrow_mut();
            f.clear();
            f.extend(batches);
        }
    }

    /// The periodic step: timeouts, ISR shrink, follower retries, the lazy
    /// HW checkpoint.
    pub fn replication_tick(self: &Rc<Self>) {
        let Some(r) = self.replication() else { return };
        if r.stopped.get() {
            return;
        }
        self.step_apply(Input::Tick);
        r.durability.notify();
        let hw = r.high_watermark().0;
        self.checkpoint_hw(&r, hw);
    }

    /// Writes the HW checkpoint in the background when it moved and the
    /// interval (`replica.high.watermark.checkpoint.interval.ms`) passed.
    pub fn checkpoint_hw(self: &Rc<Self>, r: &Rc<ReplState>, hw: i64) {
        if hw == r.hw_checkpointed.get() {
            return;
        }
        let now = now_ms();
        let interval = self.broker.replica_high_watermark_checkpoint_interval_ms as i64;
        if now - r.hw_checkpointed_at.get() < interval || r.hw_checkpointing.replace(true) {
            return;
        }
        let (p, r) = (self.clone(), r.clone());
        rt::spawn(async move {
            let dir = p.log.dir().to_path_buf();
            let written =
                checkpoint::write_high_watermark_async(dir, &p.topic.name, p.index, hw).await;
            r.hw_checkpointing.set(false);
            p.checkpointed_hw(&r, hw, now, written);
        });
    }

    /// Writes the HW checkpoint now (at close), whatever the interval.
    fn checkpoint_hw_now(&self, r: &ReplState, hw: i64) {
        if hw != r.hw_checkpointed.get() {
            let written =
                checkpoint::write_high_watermark(self.log.dir(), &self.topic.name, self.index, hw);
            self.checkpointed_hw(r, hw, now_ms(), written);
        }
    }

    fn checkpointed_hw(&self, r: &ReplState, hw: i64, at: i64, written: std::io::Result<()>) {
        match written {
            Ok(()) => {
                r.hw_checkpointed.set(hw);
                r.hw_checkpointed_at.set(at);
            }
            Err(e) => eprintln!(
                "{}-{}: high-watermark-checkpoint: {e}",
                self.topic.name, self.index
            ),
        }
    }

    /// Stops replication at close: fails waiting produces, checkpoints the
    /// HW.
    pub fn stop_replication(&self) {
        if let Some(r) = self.repl.borrow_mut().take() {
            r.stopped.set(true);
            r.durability.notify();
            fail_waiters(&r, ErrorCode::NotLeaderOrFollower);
            let hw = r.high_watermark().0;
            self.checkpoint_hw_now(&r, hw);
        }
    }

    fn propose_isr(
        self: &Rc<Self>,
        r: &Rc<ReplState>,
        leader_epoch: LeaderEpoch,
        isr: Vec<NodeId>,
        version: PartitionVersion,
        joining: Option<(NodeId, i64)>,
    ) {
        if r.proposing.replace(true) {
            // One write at a time; the core proposes again until answered.
            return;
        }
        let Some(writer) = crate::cluster::isr_writer() else {
            r.proposing.set(false);
            return;
        };
        let p = self.clone();
        let r = r.clone();
        rt::spawn(async move {
            let isr_ids: Vec<i32> = isr.iter().map(|n| n.0).collect();
            let answer = writer
                .propose(
                    p.topic.name.clone(),
                    p.index,
                    p.broker.broker_id,
                    leader_epoch.0,
                    isr_ids.clone(),
                    version.0,
                    joining.map(|(n, e)| (n.0, e)),
                )
                .await;
            r.proposing.set(false);
            if r.stopped.get() {
                return;
            }
            use crate::controller::IsrOutcome;
            let input = match answer {
                Ok(IsrOutcome::Committed { version }) => {
                    eprintln!(
                        "{}-{}: ISR is now {isr_ids:?} (epoch {}, version {version})",
                        p.topic.name, p.index, leader_epoch.0
                    );
                    Input::IsrCommitted {
                        leader_epoch,
                        isr,
                        version: PartitionVersion(version),
                    }
                }
                Ok(IsrOutcome::Rejected {
                    leader,
                    leader_epoch: current_epoch,
                    isr: current_isr,
                    version: current_version,
                }) => Input::IsrRejected {
                    leader_epoch,
                    version,
                    current: PartitionState {
                        leader: (leader >= 0).then_some(NodeId(leader)),
                        leader_epoch: LeaderEpoch(current_epoch),
                        isr: current_isr.into_iter().map(NodeId).collect(),
                        version: PartitionVersion(current_version),
                    },
                },
                Err(e) => {
                    eprintln!("{}-{}: ISR change not written: {e}", p.topic.name, p.index);
                    return;
                }
            };
            p.step_apply(input);
        });
    }
}

fn fail_waiters(r: &ReplState, code: ErrorCode) {
    let waiters: Vec<_> = r.waiters.borrow_mut().drain().collect();
    for (_, tx) in waiters {
        tx.send(Err(code));
    }
    r.batches.borrow_mut().clear();
}

/// Applies a `Truncate`: durable, then producer state rebuilt for the new
/// end, then the queue goes on.
async fn truncate(p: Rc<Partition>, r: Rc<ReplState>, end: Offset) {
    let name = format!("{}-{}", p.topic.name, p.index);
    match p.log.truncate_to(LogOffset(end.0)).await {
        Ok(_) => {
            eprintln!("{name}: truncated to offset {}", end.0);
            if let Err(e) = p.reload_producers().await {
                eprintln!("{name}: rebuilding producer state after truncation: {e}");
            }
            let durable = p.log.offsets().durable.0;
            r.reported_durable
                .set(durable.min(r.reported_durable.get()));
            r.blocked.set(false);
            p.drain(&r);
        }
        Err(e) => {
            // Appending after a failed truncation would put the leader's
            // records after ours: stop replicating this partition.
            eprintln!(
                "{name}: truncation to {} failed: {e}; replication stopped",
                end.0
            );
            r.stopped.set(true);
            fail_waiters(&r, crate::server::handlers::log_error_code(&e));
        }
    }
}

/// Reports the log's durable end after every append, group-committed.
async fn durability_pump(p: Rc<Partition>, r: Rc<ReplState>) {
    loop {
        r.durability.notified().await;
        if r.stopped.get() {
            return;
        }
        let written = p.log.offsets().written;
        if written.0 <= r.reported_durable.get()
            && p.log.offsets().durable.0 <= r.reported_durable.get()
        {
            continue;
        }
        match p.log.wait_durable(written).await {
            Ok(()) => {}
            Err(LogError::Closed) => return,
            Err(e) => {
                eprintln!("{}-{}: sync failed: {e}", p.topic.name, p.index);
                continue;
            }
        }
        if r.stopped.get() {
            return;
        }
        let durable = p.log.offsets().durable.0;
        r.reported_durable.set(durable);
        p.step_apply(Input::LocalDurable {
            durable_end: Offset(durable),
        });
        // More may have been written meanwhile.
        if p.log.offsets().written.0 > durable {
            r.durability.notify();
        }
    }
}
