//! The group coordinator's I/O on a shard: the clock, `__consumer_offsets`
//! appends and the replay at start.
//!
//! Each shard has one [`Coordinator`] for the groups whose offsets
//! partition it owns. Handlers reach it with `run_on(group_shard(..))`
//! and call [`join`], [`sync`], [`commit`] or [`with`]; a tick task fires
//! deadlines every [`TICK_MS`]. Records are appended to the group's
//! partition in the order the core emits them; a commit is answered only
//! after its batch is durable (acks=all on a single replica).
//!
//! # In a cluster
//!
//! `__consumer_offsets` is created with `offsets.topic.replication.factor`
//! replicas (at most the live brokers). A group is coordinated by the
//! leader of its offsets partition, as in Kafka:
//!
//! - A request for a partition this shard does not lead (not held, held
//!   as follower, no order yet) gets NOT_COORDINATOR, so the client asks
//!   FindCoordinator again, which names the partition's leader.
//! - When the replication driver makes the partition leader
//!   ([`offsets_partition_changed`], called from `Partition::apply_order`)
//!   the partition is loaded (requests meanwhile get
//!   COORDINATOR_LOAD_IN_PROGRESS); when it stops leading, its groups are
//!   dropped from the core ([`Coordinator::unload_partition`]).
//! - Appends go through the replication core with acks=all: a commit is
//!   acknowledged once every ISR member has it durable.
//!
//! A single-replica `__consumer_offsets` keeps the direct path: replayed
//! at start, appended to the local log, acknowledged after the local
//! fsync.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringtail_io::log::Offset;
use ringtail_io::rt;
use ringtail_protocol::batch::{batches, BatchBuilder};

use super::coordinator::GroupError;
use super::coordinator::{
    CommitRequest, CommitResult, Coordinator, JoinRequest, JoinResult, Output, ReplyTo,
    SyncRequest, SyncResult,
};
use super::records::Record;
use super::{partition_for, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::{MetaError, TopicMeta};
use crate::partition::Partition;
use crate::replication::RoleKind;
use crate::shard::mesh::{oneshot, Sender};
use crate::shard::{self, Shard, ShardId, Shared};
use ringtail_protocol::ErrorCode;

/// Why a request could not reach a shard's coordinator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The shard is still replaying `__consumer_offsets` (broker start).
    #[error("the group coordinator is still loading on this shard")]
    Loading,
    /// This broker does not lead the group's offsets partition.
    #[error("this broker does not coordinate the group")]
    NotCoordinator,
    #[error("the group's shard stopped")]
    ShardStopped,
    #[error("the coordinator dropped the request")]
    Dropped,
    #[error("{0}")]
    OffsetsTopic(String),
}

/// How often deadlines (session and rebalance timeouts) are checked.
pub const TICK_MS: u64 = 100;
/// Bytes read per step of the replay at start.
const REPLAY_READ_BYTES: u64 = 1 << 20;
/// How long an append to a replicated offsets partition may wait for the
/// ISR (Kafka's `offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT_MS: i64 = 5_000;

/// Where a replicated offsets partition's groups stand on this shard, by
/// the leader epoch it leads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Loading(i32),
    Loaded(i32),
}

enum Answer {
    Join(JoinResult),
    Sync(SyncResult),
    Commit(CommitResult),
}

pub struct Driver {
    core: RefCell<Coordinator>,
    waiting: RefCell<HashMap<ReplyTo, Sender<Answer>>>,
    next_reply: Cell<ReplyTo>,
    clock: Instant,
    /// Replicated offsets partitions this shard leads, by index.
    loads: RefCell<HashMap<i32, Load>>,
}

thread_local! {
    static DRIVER: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
}

fn current() -> Option<Rc<Driver>> {
    DRIVER.with(|d| d.borrow().clone())
}

/// The shard coordinating `group_id`: the owner of its offsets partition.
pub fn group_shard(shared: &Shared, topic: &TopicMeta, group_id: &str) -> ShardId {
    shared.owner(topic, partition_for(group_id, topic.partitions))
}

impl Driver {
    fn now_ms(&self) -> i64 {
        self.clock.elapsed().as_millis() as i64
    }

    fn register(&self) -> (ReplyTo, crate::shard::mesh::Receiver<Answer>) {
        let id = self.next_reply.get();
        self.next_reply.set(id + 1);
        let (tx, rx) = oneshot();
        self.waiting.borrow_mut().insert(id, tx);
        (id, rx)
    }

    /// Hands the core's outputs to their waiters and the log.
    fn flush(self: &Rc<Self>) {
        let outputs = self.core.borrow_mut().drain();
        for output in outputs {
            let (to, answer) = match output {
                Output::Join(to, r) => (to, Answer::Join(r)),
                Output::Sync(to, r) => (to, Answer::Sync(r)),
                Output::Commit(to, r) => (to, Answer::Commit(r)),
                Output::Persist {
                    token,
                    group_id,
                    records,
                } => {
                    self.persist(token, &group_id, records);
                    continue;
                }
            };
            if let Some(tx) = self.waiting.borrow_mut().remove(&to) {
                tx.send(answer);
            }
        }
    }

    /// Queues the records on the group's partition now (so appends keep
    /// the core's order) and reports durability to the core later.
    fn persist(self: &Rc<Self>, token: Option<u64>, group_id: &str, records: Vec<Record>) {
        let queued = append(group_id, &records);
        let me = self.clone();
        let group = group_id.to_string();
        rt::spawn(async move {
            let result = match queued {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            };
            if let Err((e, _)) = &result {
                eprintln!("group {group}: {OFFSETS_TOPIC} append failed: {e}");
            }
            if let Some(token) = token {
                me.core
                    .borrow_mut()
                    .persisted_with(token, result.map_err(|(_, code)| code));
                me.flush();
            }
        });
    }
}

/// An append that failed: the message to log and the error the core
/// answers with.
type AppendError = (String, GroupError);
type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AppendError>>>>;

/// Kafka's mapping of a failed offsets append (`GroupMetadataManager`):
/// leadership moved away: NOT_COORDINATOR; too few replicas or anything
/// else: COORDINATOR_NOT_AVAILABLE; a timeout stays one.
fn append_error(code: ErrorCode) -> GroupError {
    match code {
        ErrorCode::NotLeaderOrFollower
        | ErrorCode::FencedLeaderEpoch
        | ErrorCode::KafkaStorageError => GroupError::NotCoordinator,
        ErrorCode::RequestTimedOut => GroupError::RequestTimedOut,
        _ => GroupError::CoordinatorNotAvailable,
    }
}

/// Starts the append of `records` on this shard's offsets partition of
/// `group_id`; the future resolves once they are durable (on every ISR
/// member when the partition is replicated).
fn append(group_id: &str, records: &[Record]) -> Result<Durable, AppendError> {
    let shard = shard::current();
    let topic = shard
        .shared
        .metadata
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .cloned()
        .ok_or_else(|| {
            (
                format!("{OFFSETS_TOPIC} does not exist"),
                GroupError::CoordinatorNotAvailable,
            )
        })?;
    let index = partition_for(group_id, topic.partitions);
    let partition = shard.partition(OFFSETS_TOPIC, index).ok_or_else(|| {
        (
            format!("{OFFSETS_TOPIC}-{index} is not open on this shard"),
            GroupError::NotCoordinator,
        )
    })?;
    let now = ringtail_io::log::system_clock_ms();
    let mut builder = BatchBuilder::new();
    for r in records {
        builder.append(now, Some(&r.key), r.value.as_deref(), &[]);
    }
    let batch = BytesMut::from(&builder.build()[..]);
    if partition.is_replicated() {
        return append_replicated(partition, batch, records.len());
    }
    let appended = partition.log.append(batch, partition.leader_epoch);
    let failed = |e: ringtail_io::log::LogError| (e.to_string(), GroupError::StorageFailed);
    Ok(Box::pin(async move {
        let info = appended.await.map_err(failed)?;
        partition
            .log
            .wait_durable(Offset(info.last_offset.0 + 1))
            .await
            .map_err(failed)
    }))
}

/// The append through the replication core, `acks=all`.
fn append_replicated(
    partition: Rc<Partition>,
    batch: BytesMut,
    records: usize,
) -> Result<Durable, AppendError> {
    let failed = |code: ErrorCode| {
        (
            format!("{OFFSETS_TOPIC}-{}: {code:?}", partition.index),
            append_error(code),
        )
    };
    let (base, done) = partition
        .produce(
            batch,
            crate::replication::Acks::All,
            records as u32,
            COMMIT_TIMEOUT_MS,
        )
        .map_err(failed)?;
    let name = format!("{OFFSETS_TOPIC}-{}", partition.index);
    let failed = move |code: ErrorCode| (format!("{name}: {code:?}"), append_error(code));
    Ok(Box::pin(async move {
        match done.await {
            Ok(Ok(_)) => {}
            Ok(Err(code)) => return Err(failed(code)),
            Err(_) => return Err(failed(ErrorCode::NotLeaderOrFollower)),
        }
        // The core answers acks=all once the HW (the minimum durable end
        // of the ISR) covers the batch. The commit becomes visible on this
        // answer, so the promise is checked here too rather than trusted:
        // before d3a42e8 the driver answered at the local append.
        let last = base.0 + records as i64 - 1;
        partition
            .wait_high_watermark_past(last, Duration::from_millis(COMMIT_TIMEOUT_MS as u64))
            .await
            .map_err(failed)
    }))
}

fn driver() -> Result<Rc<Driver>, DriverError> {
    current().ok_or(DriverError::Loading)
}

/// Runs `f` on the shard coordinating `group_id`, creating
/// `__consumer_offsets` first if no group was ever used (Kafka also creates
/// it on first use, so a broker without groups lists no internal topic).
pub async fn on_group_shard<R, F, Fut>(
    shard: &Shard,
    group_id: &str,
    f: F,
) -> Result<R, DriverError>
where
    R: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<R, DriverError>> + 'static,
{
    let topic = offsets_topic(shard)
        .await
        .map_err(DriverError::OffsetsTopic)?;
    let dst = group_shard(&shard.shared, &topic, group_id);
    let index = partition_for(group_id, topic.partitions);
    shard::run_on(dst, move || async move {
        coordinating(index).await?;
        f().await
    })
    .await
    .map_err(|_| DriverError::ShardStopped)?
}

/// Whether this shard coordinates the groups of offsets partition
/// `index` now: it leads the partition and has loaded it.
async fn coordinating(index: i32) -> Result<(), DriverError> {
    let d = driver()?;
    let shard = shard::current();
    let p = match shard.partition(OFFSETS_TOPIC, index) {
        Some(p) => p,
        None => {
            // A single-replica topic another request has just created and
            // is still opening: open this partition here (opening is
            // idempotent) rather than send the client away.
            let topic = shard
                .shared
                .metadata
                .snapshot()
                .topic(OFFSETS_TOPIC)
                .cloned()
                .filter(|t| t.replication_factor <= 1 && sole_replica_here(index))
                .ok_or(DriverError::NotCoordinator)?;
            shard
                .open_partition(topic, index)
                .await
                .map_err(DriverError::OffsetsTopic)?
        }
    };
    if !p.is_replicated() {
        // The direct path: the only replica, replayed at start (or new).
        return Ok(());
    }
    let r = p.replication().ok_or(DriverError::NotCoordinator)?;
    if r.role() != RoleKind::Leader {
        return Err(DriverError::NotCoordinator);
    }
    match d.loads.borrow().get(&index) {
        Some(Load::Loaded(e)) if *e == r.leader_epoch().0 => return Ok(()),
        Some(Load::Loading(e)) if *e == r.leader_epoch().0 => return Err(DriverError::Loading),
        _ => {}
    }
    // Leader, but the hook has not run for this epoch (the driver started
    // after the order): load now.
    d.follow(&p);
    Err(DriverError::Loading)
}

/// Whether this broker holds the single replica of offsets partition
/// `index` (true without a view or before the view shows the topic: a
/// lone broker holds everything).
fn sole_replica_here(index: i32) -> bool {
    let Some(view) = crate::cluster::view() else {
        return true;
    };
    match view.topics.get(OFFSETS_TOPIC) {
        None => view.brokers.len() <= 1,
        Some(_) => view
            .partition(OFFSETS_TOPIC, index)
            .is_some_and(|p| p.replicas == [crate::cluster::broker_id()]),
    }
}

/// The hook of the replication driver: `__consumer_offsets` partition `p`
/// got a controller order (`Partition::apply_order`, after the step). On
/// becoming leader its groups are loaded; on losing leadership they are
/// unloaded. Runs on the partition's owner shard.
pub fn offsets_partition_changed(p: &Rc<Partition>) {
    if let Some(d) = current() {
        d.follow(p);
    }
    // Without a driver yet, `start` looks at the partition itself.
}

impl Driver {
    fn follow(self: &Rc<Self>, p: &Rc<Partition>) {
        let index = p.index;
        let leading = p
            .replication()
            .filter(|r| r.role() == RoleKind::Leader)
            .map(|r| r.leader_epoch().0);
        let current = self.loads.borrow().get(&index).copied();
        match (leading, current) {
            (Some(e), Some(Load::Loading(c) | Load::Loaded(c))) if e == c => {}
            (Some(epoch), _) => {
                if current.is_some() {
                    self.unload(p, "a new leader epoch");
                }
                self.loads.borrow_mut().insert(index, Load::Loading(epoch));
                rt::spawn(load(self.clone(), p.clone(), epoch));
            }
            (None, Some(_)) => {
                self.loads.borrow_mut().remove(&index);
                self.unload(p, "no longer its leader");
            }
            (None, None) => {}
        }
    }

    fn unload(self: &Rc<Self>, p: &Partition, why: &str) {
        let n = self
            .core
            .borrow_mut()
            .unload_partition(p.index, p.topic.partitions);
        eprintln!(
            "group coordinator: unloaded {n} groups of {OFFSETS_TOPIC}-{} ({why})",
            p.index
        );
        self.flush();
    }

    fn loading(&self, index: i32, epoch: i32) -> bool {
        self.loads.borrow().get(&index) == Some(&Load::Loading(epoch))
    }
}

/// Loads a replicated offsets partition this shard now leads. It reads to
/// the log end, as Kafka's `GroupMetadataManager` does, not to the HW: a
/// new leader's log is the partition's truth (a leader never truncates
/// its own log; records above the HW become committed as the followers
/// copy them, or, if this broker loses leadership first, the groups are
/// unloaded again). Stopping at the HW would leave out commits the
/// previous leader had already acknowledged: every ISR member, this one
/// included, has them durable, but a follower learns the HW one fetch
/// late and a new leader's HW moves only when its followers fetch again.
/// Reads repeat until the end stops moving (batches fetched as follower
/// may still be landing).
async fn load(d: Rc<Driver>, p: Rc<Partition>, epoch: i32) {
    let index = p.index;
    let name = format!("{OFFSETS_TOPIC}-{index}");
    let started = Instant::now();
    let mut offset = p.log_start();
    let mut count = 0usize;
    loop {
        let end = p.log.offsets().written;
        if offset >= end {
            break;
        }
        let read = match p.log.read(offset, REPLAY_READ_BYTES, Some(end)).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("group coordinator: loading {name}: {e}");
                d.loads.borrow_mut().remove(&index);
                d.unload(&p, "its load failed");
                return;
            }
        };
        let Some(slice) = read.slice else { break };
        let bytes = match slice.read_to_vec().await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("group coordinator: loading {name}: {e}");
                d.loads.borrow_mut().remove(&index);
                d.unload(&p, "its load failed");
                return;
            }
        };
        if !d.loading(index, epoch) {
            // Another order came meanwhile; its `follow` took over.
            return;
        }
        let now = d.now_ms();
        count += load_batches(&name, &bytes, |key, value| {
            d.core.borrow_mut().load(now, key, value)
        });
        if read.next_offset <= offset {
            break;
        }
        offset = read.next_offset;
    }
    if !d.loading(index, epoch) {
        return;
    }
    d.loads.borrow_mut().insert(index, Load::Loaded(epoch));
    eprintln!(
        "group coordinator: loaded {name} (leader epoch {epoch}): {count} records in {} ms",
        started.elapsed().as_millis()
    );
    d.flush();
}

/// Feeds the records of `bytes` (whole batches) to `load`; returns how
/// many it took. Unreadable batches and records are skipped with a line.
fn load_batches(
    name: &str,
    bytes: &[u8],
    mut load: impl FnMut(&[u8], Option<&[u8]>) -> Result<(), super::records::RecordError>,
) -> usize {
    let mut count = 0;
    for batch in batches(bytes) {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                eprintln!("loading {name}: stopping at a bad batch: {e}");
                break;
            }
        };
        let records = match batch.records() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("loading {name}: skipping a batch: {e}");
                continue;
            }
        };
        for record in records {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("loading {name}: skipping the rest of a batch: {e}");
                    break;
                }
            };
            let Some(key) = record.key else { continue };
            match load(key, record.value) {
                Ok(()) => count += 1,
                Err(e) => eprintln!("loading {name}: skipping a record: {e}"),
            }
        }
    }
    count
}

/// JoinGroup on the group's shard; resolves when the rebalance answers.
pub async fn join(req: JoinRequest) -> Result<JoinResult, DriverError> {
    let d = driver()?;
    let (id, rx) = d.register();
    d.core.borrow_mut().join(d.now_ms(), id, req);
    d.flush();
    match rx.await {
        Ok(Answer::Join(r)) => Ok(r),
        _ => Err(DriverError::Dropped),
    }
}

pub async fn sync(req: SyncRequest) -> Result<SyncResult, DriverError> {
    let d = driver()?;
    let (id, rx) = d.register();
    d.core.borrow_mut().sync(d.now_ms(), id, req);
    d.flush();
    match rx.await {
        Ok(Answer::Sync(r)) => Ok(r),
        _ => Err(DriverError::Dropped),
    }
}

pub async fn commit(req: CommitRequest) -> Result<CommitResult, DriverError> {
    let d = driver()?;
    let (id, rx) = d.register();
    d.core.borrow_mut().commit(d.now_ms(), id, req);
    d.flush();
    match rx.await {
        Ok(Answer::Commit(r)) => Ok(r),
        _ => Err(DriverError::Dropped),
    }
}

/// Runs an immediate operation on this shard's coordinator with the
/// current time, then delivers whatever it set in motion.
pub fn with<R>(f: impl FnOnce(&mut Coordinator, i64) -> R) -> Result<R, DriverError> {
    let d = driver()?;
    let r = f(&mut d.core.borrow_mut(), d.now_ms());
    d.flush();
    Ok(r)
}

/// `__consumer_offsets`, created with its partitions opened if it is
/// missing (Kafka's settings: compacted; retention off, since compaction
/// does not exist yet and time-based deletion would lose old commits).
pub async fn offsets_topic(shard: &Shard) -> Result<Arc<TopicMeta>, String> {
    if let Some(t) = shard.shared.metadata.snapshot().topic(OFFSETS_TOPIC) {
        return Ok(t.clone());
    }
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Kafka refuses to create the topic with fewer live brokers than the
    // factor; Ringtail takes what there is, so the one-node default works,
    // and says which factor it chose.
    let configured = shard.shared.config.offsets_topic_replication_factor.max(1);
    let live = crate::cluster::view().map_or(1, |v| v.brokers.len().max(1));
    let replication = configured.min(i16::try_from(live).unwrap_or(i16::MAX));
    let created = shard
        .shared
        .write_metadata(move |m| {
            m.create_topic(
                OFFSETS_TOPIC,
                OFFSETS_TOPIC_PARTITIONS,
                replication,
                configs,
            )
        })
        .await;
    match created {
        Ok(t) => {
            eprintln!(
                "created {OFFSETS_TOPIC} with {} partitions, replication factor {replication} \
                 (offsets.topic.replication.factor={configured}, {live} live brokers)",
                t.partitions
            );
            crate::server::handlers::open_partitions(shard, &t, 0).await?;
            Ok(t)
        }
        // Another connection created it first; until its partitions are
        // open, appends fail and clients retry (COORDINATOR_NOT_AVAILABLE).
        Err(MetaError::TopicExists(_)) => shard
            .shared
            .metadata
            .snapshot()
            .topic(OFFSETS_TOPIC)
            .cloned()
            .ok_or_else(|| format!("{OFFSETS_TOPIC} vanished")),
        Err(e) => Err(format!("cannot create {OFFSETS_TOPIC}: {e}")),
    }
}

/// Starts this shard's coordinator: opens the offsets partitions it owns
/// (if the topic exists), replays them, and starts the clock.
pub async fn start(shard: &Rc<Shard>) -> Result<(), String> {
    let topic = shard
        .shared
        .metadata
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .cloned();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ ((shard.id.0 as u64) << 48);
    let mut core = Coordinator::new(seed);
    // The core's clock starts at 0 right after the replay; wall-clock
    // record timestamps map onto it (off by the replay's duration, which
    // is nothing next to an offsets retention).
    core.set_wall_clock_offset(ringtail_io::log::system_clock_ms());
    let mut loaded = 0usize;
    // Replicated partitions are loaded when they become leader, not here.
    if let Some(topic) = topic.as_ref().filter(|t| t.replication_factor <= 1) {
        for index in 0..topic.partitions {
            if shard.shared.owner(topic, index) != shard.id
                || !crate::cluster::is_replica(OFFSETS_TOPIC, index)
            {
                continue;
            }
            let partition = shard.open_partition(topic.clone(), index).await?;
            loaded += replay(&partition, &mut core).await?;
        }
    }
    if loaded > 0 {
        eprintln!(
            "shard {}: replayed {loaded} {OFFSETS_TOPIC} records",
            shard.id.0
        );
    }
    let d = Rc::new(Driver {
        core: RefCell::new(core),
        waiting: RefCell::new(HashMap::new()),
        next_reply: Cell::new(1),
        clock: Instant::now(),
        loads: RefCell::new(HashMap::new()),
    });
    DRIVER.with(|slot| *slot.borrow_mut() = Some(d.clone()));
    // Orders that came before the driver existed: load what leads already.
    for p in shard.partitions() {
        if p.topic.name == OFFSETS_TOPIC && p.is_replicated() {
            d.follow(&p);
        }
    }
    let config = &shard.shared.config;
    d.core.borrow_mut().set_offsets_retention(
        d.now_ms(),
        config.offsets_retention_ms,
        config.offsets_retention_check_interval_ms,
    );
    rt::spawn(async move {
        let mut expired_logged = 0;
        loop {
            rt::time::sleep(Duration::from_millis(TICK_MS)).await;
            d.core.borrow_mut().tick(d.now_ms());
            let expired = d.core.borrow().offsets_expired_total;
            if expired > expired_logged {
                eprintln!(
                    "group coordinator: {} committed offsets expired (offsets.retention.minutes)",
                    expired - expired_logged
                );
                expired_logged = expired;
            }
            d.flush();
        }
    });
    Ok(())
}

/// Feeds every record of one offsets partition to the core, in order.
async fn replay(
    partition: &crate::partition::Partition,
    core: &mut Coordinator,
) -> Result<usize, String> {
    let name = format!("{OFFSETS_TOPIC}-{}", partition.index);
    let mut offset = partition.log_start();
    let end = partition.high_watermark();
    let mut count = 0;
    while offset < end {
        let read = partition
            .log
            .read(offset, REPLAY_READ_BYTES, None)
            .await
            .map_err(|e| format!("replaying {name}: {e}"))?;
        let Some(slice) = read.slice else { break };
        let bytes = slice
            .read_to_vec()
            .await
            .map_err(|e| format!("replaying {name}: {e}"))?;
        for batch in batches(&bytes) {
            let batch = batch.map_err(|e| format!("replaying {name}: {e}"))?;
            let records = match batch.records() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("replaying {name}: skipping a batch: {e}");
                    continue;
                }
            };
            for record in records {
                let record = record.map_err(|e| format!("replaying {name}: {e}"))?;
                let Some(key) = record.key else { continue };
                // Time 0 is when the driver's clock starts, right after
                // the replay: restored members' sessions start then.
                match core.load(0, key, record.value) {
                    Ok(()) => count += 1,
                    Err(e) => eprintln!("replaying {name}: skipping a record: {e}"),
                }
            }
        }
        if read.next_offset <= offset {
            break;
        }
        offset = read.next_offset;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_errors_map_as_kafkas_group_metadata_manager() {
        // Leadership moved: the client must find the new coordinator.
        for code in [
            ErrorCode::NotLeaderOrFollower,
            ErrorCode::FencedLeaderEpoch,
            ErrorCode::KafkaStorageError,
        ] {
            assert_eq!(append_error(code), GroupError::NotCoordinator, "{code:?}");
        }
        assert_eq!(
            append_error(ErrorCode::RequestTimedOut),
            GroupError::RequestTimedOut
        );
        for code in [
            ErrorCode::NotEnoughReplicas,
            ErrorCode::NotEnoughReplicasAfterAppend,
            ErrorCode::UnknownServerError,
        ] {
            assert_eq!(
                append_error(code),
                GroupError::CoordinatorNotAvailable,
                "{code:?}"
            );
        }
    }
}
