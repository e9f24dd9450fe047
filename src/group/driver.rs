//! The group coordinator's I/O on a shard: the clock, `__consumer_offsets`
//! appends and the replay at start.
//!
//! Each shard has one [`Coordinator`] for the groups whose offsets
//! partition it owns. Handlers reach it with `run_on(group_shard(..))`
//! and call [`join`], [`sync`], [`commit`] or [`with`]; a tick task fires
//! deadlines every [`TICK_MS`]. Records are appended to the group's
//! partition in the order the core emits them; a commit is answered only
//! after its batch is durable (acks=all on a single replica).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringtail_io::log::Offset;
use ringtail_io::rt;
use ringtail_protocol::batch::{batches, BatchBuilder};

use super::coordinator::{
    CommitRequest, CommitResult, Coordinator, JoinRequest, JoinResult, Output, ReplyTo,
    SyncRequest, SyncResult,
};
use super::records::Record;
use super::{partition_for, OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS};
use crate::metadata::{MetaError, TopicMeta};
use crate::shard::mesh::{oneshot, Sender};
use crate::shard::{self, Shard, ShardId, Shared};

/// Why a request could not reach a shard's coordinator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The shard is still replaying `__consumer_offsets` (broker start).
    #[error("the group coordinator is still loading on this shard")]
    Loading,
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
            if let Err(e) = &result {
                eprintln!("group {group}: {OFFSETS_TOPIC} append failed: {e}");
            }
            if let Some(token) = token {
                me.core.borrow_mut().persisted(token, result.is_ok());
                me.flush();
            }
        });
    }
}

type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>;

/// Starts the append of `records` on this shard's offsets partition of
/// `group_id`; the future resolves once they are durable.
fn append(group_id: &str, records: &[Record]) -> Result<Durable, String> {
    let shard = shard::current();
    let topic = shard
        .shared
        .metadata
        .snapshot()
        .topic(OFFSETS_TOPIC)
        .cloned()
        .ok_or_else(|| format!("{OFFSETS_TOPIC} does not exist"))?;
    let index = partition_for(group_id, topic.partitions);
    let partition = shard
        .partition(OFFSETS_TOPIC, index)
        .ok_or_else(|| format!("{OFFSETS_TOPIC}-{index} is not open on this shard"))?;
    let now = ringtail_io::log::system_clock_ms();
    let mut builder = BatchBuilder::new();
    for r in records {
        builder.append(now, Some(&r.key), r.value.as_deref(), &[]);
    }
    let batch = BytesMut::from(&builder.build()[..]);
    let appended = partition.log.append(batch, partition.leader_epoch);
    Ok(Box::pin(async move {
        let info = appended.await.map_err(|e| e.to_string())?;
        partition
            .log
            .wait_durable(Offset(info.last_offset.0 + 1))
            .await
            .map_err(|e| e.to_string())
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
    shard::run_on(dst, f)
        .await
        .map_err(|_| DriverError::ShardStopped)?
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
async fn offsets_topic(shard: &Shard) -> Result<Arc<TopicMeta>, String> {
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
    let created =
        shard
            .shared
            .metadata
            .create_topic(OFFSETS_TOPIC, OFFSETS_TOPIC_PARTITIONS, 1, configs);
    match created {
        Ok(t) => {
            eprintln!("created {OFFSETS_TOPIC} with {} partitions", t.partitions);
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
    if let Some(topic) = topic {
        for index in 0..topic.partitions {
            if shard.shared.owner(&topic, index) != shard.id {
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
    });
    DRIVER.with(|slot| *slot.borrow_mut() = Some(d.clone()));
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
