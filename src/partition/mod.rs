//! A partition as its owner shard sees it: the log, the high watermark and
//! the fetches waiting for data.
//!
//! Only the owner shard touches a `Partition` (it is `!Send`); other shards
//! reach it with jobs through the mesh. On a single replica the high
//! watermark is the written log end (the ISR is the leader alone).

pub mod checkpoint;
pub mod producers;
pub mod replica;
pub mod snapshot;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;

use bytes::BytesMut;
use ringtail_io::log::{AppendInfo, Log, LogConfig, LogError, Offset};

use crate::config::BrokerConfig;
use crate::metadata::TopicMeta;

pub struct Partition {
    pub topic: Arc<TopicMeta>,
    pub index: i32,
    pub log: Log,
    pub leader_epoch: i32,
    /// Fetches parked until data arrives (their wakers may belong to other
    /// shards; waking is thread-safe).
    waiters: RefCell<Vec<Arc<DataWaiter>>>,
    /// Idempotent producers' sequences (see [`producers`]).
    pub producers: RefCell<producers::ProducerStates>,
    /// When producer snapshots are taken (see [`snapshot`]).
    producer_snapshots: ProducerSnapshots,
    /// The broker's settings (replication reads several).
    pub broker: BrokerConfig,
    /// Replication state, when the partition has more than one replica
    /// and the controller has given its first order (see [`replica`]).
    repl: RefCell<Option<Rc<replica::ReplState>>>,
}

/// Producer snapshot bookkeeping of one partition.
struct ProducerSnapshots {
    /// The offset of the newest snapshot written or loaded.
    last_offset: Cell<Option<i64>>,
    /// The active segment's base as of the last append.
    segment_base: Cell<Option<i64>>,
    /// A roll happened; snapshot as soon as no append is queued.
    due: Cell<bool>,
    /// Wall clock of the last expiry pass.
    expired_at_ms: Cell<i64>,
    expiration_ms: i64,
    expiration_check_interval_ms: i64,
}

/// A parked fetch, shared with the owner shards of the partitions it reads.
/// `done` lets owners drop it when the fetch ended another way (timeout),
/// so idle partitions do not accumulate stale waiters.
pub struct DataWaiter {
    pub woken: AtomicBool,
    pub done: AtomicBool,
    pub waker: Waker,
}

impl DataWaiter {
    pub fn new(waker: Waker) -> Arc<DataWaiter> {
        Arc::new(DataWaiter {
            woken: AtomicBool::new(false),
            done: AtomicBool::new(false),
            waker,
        })
    }

    /// A waiter that wakes the calling task.
    pub async fn for_this_task() -> Arc<DataWaiter> {
        let waker = std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await;
        DataWaiter::new(waker)
    }

    pub fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake_by_ref();
    }

    /// Parks the calling task (the one the waiter wakes) until it is woken
    /// or `timeout` passes, then retires the waiter so owners drop it.
    pub async fn park(&self, timeout: std::time::Duration) {
        let _ = ringtail_io::rt::time::timeout(
            timeout,
            std::future::poll_fn(|_| {
                if self.woken.load(Ordering::Acquire) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            }),
        )
        .await;
        self.done.store(true, Ordering::Release);
    }
}

/// `{topic}-{partition}`, as Kafka names partition directories.
pub fn dir_name(topic: &str, index: i32) -> String {
    format!("{topic}-{index}")
}

/// The directory of a partition: where it already is, else the log dir
/// holding the fewest partitions.
pub fn locate_dir(log_dirs: &[PathBuf], topic: &str, index: i32) -> PathBuf {
    let name = dir_name(topic, index);
    if let Some(existing) = log_dirs.iter().map(|d| d.join(&name)).find(|p| p.is_dir()) {
        return existing;
    }
    let load = |d: &Path| std::fs::read_dir(d).map_or(0, |it| it.count());
    let dir = log_dirs
        .iter()
        .min_by_key(|d| load(d))
        .expect("at least one log dir");
    dir.join(name)
}

/// The broker's log settings with the topic's overrides applied.
pub fn log_config(broker: &BrokerConfig, topic: &TopicMeta) -> LogConfig {
    let mut c = broker.log_config();
    let int = |k: &str| topic.configs.get(k).and_then(|v| v.parse::<i64>().ok());
    if let Some(v) = int("retention.ms") {
        c.retention_ms = (v >= 0).then_some(v);
    }
    if let Some(v) = int("retention.bytes") {
        c.retention_bytes = (v >= 0).then_some(v as u64);
    }
    if let Some(v) = int("segment.bytes") {
        c.segment_bytes = v as u64;
    }
    if let Some(v) = int("segment.ms") {
        c.segment_ms = Some(v);
    }
    if let Some(v) = int("index.interval.bytes") {
        c.index_interval_bytes = v as u64;
    }
    apply_cleanup_policy(&mut c, broker, topic);
    c
}

/// `cleanup.policy` and the compaction settings. Without `delete` in the
/// policy nothing is removed by age or size (Kafka: a compact-only topic
/// keeps every key's latest record forever); without `compact`, or with
/// `log.cleaner.enable=false`, no cleaning pass runs.
fn apply_cleanup_policy(c: &mut LogConfig, broker: &BrokerConfig, topic: &TopicMeta) {
    let policy = topic
        .configs
        .get("cleanup.policy")
        .map_or(broker.log_cleanup_policy.as_str(), String::as_str);
    let has = |p: &str| policy.split(',').any(|x| x.trim() == p);
    c.compact = broker.log_cleaner_enable && has("compact");
    if !has("delete") {
        c.retention_ms = None;
        c.retention_bytes = None;
    }
    let int = |k: &str| topic.configs.get(k).and_then(|v| v.parse::<i64>().ok());
    if let Some(v) = int("delete.retention.ms") {
        c.delete_retention_ms = v;
    }
    if let Some(v) = int("min.compaction.lag.ms") {
        c.min_compaction_lag_ms = v;
    }
    if let Some(v) = topic
        .configs
        .get("min.cleanable.dirty.ratio")
        .and_then(|v| v.parse::<f64>().ok())
    {
        c.min_cleanable_dirty_ratio = v;
    }
}

impl Partition {
    pub async fn open(
        broker: &BrokerConfig,
        topic: Arc<TopicMeta>,
        index: i32,
    ) -> Result<Partition, LogError> {
        let dir = locate_dir(&broker.log_dirs, &topic.name, index);
        let log = Log::open(dir, log_config(broker, &topic)).await?;
        let (producers, snapshots) = load_producers(broker, &topic.name, index, &log).await?;
        Ok(Partition {
            topic,
            index,
            log,
            leader_epoch: 0,
            waiters: RefCell::new(Vec::new()),
            producers: RefCell::new(producers),
            producer_snapshots: snapshots,
            broker: broker.clone(),
            repl: RefCell::new(None),
        })
    }

    /// What consumers may read below: the core's HW on a replicated
    /// partition, else the written log end (the ISR is the leader alone).
    pub fn high_watermark(&self) -> Offset {
        match self.replication() {
            Some(r) => Offset(r.high_watermark().0),
            None => self.log.offsets().written,
        }
    }

    /// Whether the assignment names other replicas (the core decides who
    /// leads); such a partition takes writes only as leader.
    pub fn is_replicated(&self) -> bool {
        self.topic.replication_factor > 1
    }

    /// Wakes the parked fetches (data or HW moved).
    pub fn wake_waiters(&self) {
        for waiter in self.waiters.borrow_mut().drain(..) {
            waiter.wake();
        }
    }

    /// Rebuilds the idempotent producers' state from the log as it now
    /// stands (after a truncation): snapshots past the end are dropped
    /// and the rest replayed, as Kafka's `loadProducerState` does.
    pub async fn reload_producers(&self) -> Result<(), LogError> {
        let end = self.log.offsets().log_end.0;
        if let Ok(offsets) = snapshot::list(self.log.dir()) {
            for o in offsets.into_iter().filter(|&o| o > end) {
                let _ = std::fs::remove_file(self.log.dir().join(snapshot::file_name(o)));
            }
        }
        let (state, loaded) = snapshot::load(&self.log).await?;
        *self.producers.borrow_mut() = state;
        self.producer_snapshots.last_offset.set(loaded.snapshot);
        Ok(())
    }

    pub fn log_start(&self) -> Offset {
        self.log.offsets().log_start
    }

    /// Appends a validated client batch as leader and wakes parked fetches.
    pub async fn append(&self, batch: BytesMut) -> Result<AppendInfo, LogError> {
        let result = self.log.append(batch, self.leader_epoch).await;
        if let Ok(info) = &result {
            self.after_append(info);
            self.wake_waiters();
        }
        result
    }

    /// Parks a fetch until the next append.
    pub fn wait_for_data(&self, waiter: Arc<DataWaiter>) {
        let mut waiters = self.waiters.borrow_mut();
        waiters.retain(|w| !w.done.load(Ordering::Acquire));
        waiters.push(waiter);
    }
}

/// Rebuilds the producer state at open (snapshot plus scan, see
/// [`snapshot::load`]), drops expired producers, and writes a fresh
/// snapshot when the scan had work to do, so the next open has less.
async fn load_producers(
    broker: &BrokerConfig,
    topic: &str,
    index: i32,
    log: &Log,
) -> Result<(producers::ProducerStates, ProducerSnapshots), LogError> {
    let (mut state, loaded) = snapshot::load(log).await?;
    let now = ringtail_io::log::system_clock_ms();
    let expired = state.expire(now, broker.producer_id_expiration_ms);
    let mut last_offset = loaded.snapshot;
    // Any scan is saved as a snapshot at the log end, even of a log with
    // no idempotent batches, so the next open does not scan it again (an
    // empty log has nothing to scan).
    let scanned = loaded.snapshot != Some(loaded.end) && loaded.end > log.offsets().log_start.0;
    if scanned || expired > 0 {
        match snapshot::write(log.dir(), loaded.end, &state, false) {
            Ok(()) => {
                last_offset = Some(loaded.end);
                snapshot::prune(log.dir());
            }
            Err(e) => eprintln!("{topic}-{index}: producer snapshot: {e}"),
        }
    }
    if loaded.batches_replayed > 0 || !loaded.discarded.is_empty() || expired > 0 {
        eprintln!(
            "{topic}-{index}: producer state of {} producers rebuilt from snapshot {:?} and {} batches up to offset {} \
             ({} snapshots discarded, {expired} producers expired)",
            state.len(),
            loaded.snapshot,
            loaded.batches_replayed,
            loaded.end,
            loaded.discarded.len(),
        );
    }
    let snapshots = ProducerSnapshots {
        last_offset: Cell::new(last_offset),
        segment_base: Cell::new(None),
        due: Cell::new(false),
        expired_at_ms: Cell::new(now),
        expiration_ms: broker.producer_id_expiration_ms,
        expiration_check_interval_ms: broker.producer_id_expiration_check_interval_ms,
    };
    Ok((state, snapshots))
}

impl Partition {
    /// Notes segment rolls (Kafka snapshots producer state at each roll)
    /// and takes a due snapshot once no append is queued.
    fn after_append(&self, info: &AppendInfo) {
        let s = &self.producer_snapshots;
        // The first append after open only learns the base.
        let previous = s.segment_base.replace(Some(info.segment_base.0));
        if previous.is_some_and(|base| base != info.segment_base.0) {
            s.due.set(true);
        }
        if s.due.get() && self.snapshot_producers(false) {
            s.due.set(false);
        }
    }

    /// Writes a producer snapshot at the log end when the log moved since
    /// the last one and no append is queued (so the state matches the
    /// offset exactly). Returns whether the state is now covered by a
    /// snapshot at the log end.
    pub fn snapshot_producers(&self, sync: bool) -> bool {
        let offsets = self.log.offsets();
        if offsets.log_end != offsets.written {
            return false;
        }
        let end = offsets.log_end.0;
        if self.producer_snapshots.last_offset.get() == Some(end) && !sync {
            return true;
        }
        match snapshot::write(self.log.dir(), end, &self.producers.borrow(), sync) {
            Ok(()) => {
                self.producer_snapshots.last_offset.set(Some(end));
                snapshot::prune(self.log.dir());
                true
            }
            Err(e) => {
                eprintln!("{}-{}: producer snapshot: {e}", self.topic.name, self.index);
                false
            }
        }
    }

    /// The periodic pass: expires idle producers (every
    /// `producer.id.expiration.check.interval.ms` at most) and snapshots
    /// the state when the log moved.
    pub fn producer_housekeeping(&self, now_ms: i64) {
        let s = &self.producer_snapshots;
        if now_ms - s.expired_at_ms.get() >= s.expiration_check_interval_ms {
            s.expired_at_ms.set(now_ms);
            let expired = self.producers.borrow_mut().expire(now_ms, s.expiration_ms);
            if expired > 0 {
                eprintln!(
                    "{}-{}: {expired} idle producers expired",
                    self.topic.name, self.index
                );
                // Force a new snapshot so a restart does not bring them back.
                s.last_offset.set(None);
            }
        }
        if self.snapshot_producers(false) {
            s.due.set(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(configs: &[(&str, &str)]) -> TopicMeta {
        TopicMeta {
            name: "t".into(),
            id: Default::default(),
            partitions: 1,
            replication_factor: 1,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn cleanup_policy_maps_to_compaction_and_retention() {
        let broker = BrokerConfig::default();
        let c = log_config(&broker, &topic(&[]));
        assert!(!c.compact && c.retention_ms.is_some(), "delete by default");
        let c = log_config(
            &broker,
            &topic(&[
                ("cleanup.policy", "compact"),
                ("delete.retention.ms", "5"),
                ("min.compaction.lag.ms", "7"),
                ("min.cleanable.dirty.ratio", "0.1"),
            ]),
        );
        assert!(c.compact);
        assert_eq!((c.retention_ms, c.retention_bytes), (None, None));
        assert_eq!((c.delete_retention_ms, c.min_compaction_lag_ms), (5, 7));
        assert_eq!(c.min_cleanable_dirty_ratio, 0.1);
        let c = log_config(&broker, &topic(&[("cleanup.policy", "compact,delete")]));
        assert!(c.compact && c.retention_ms.is_some());
        let off = BrokerConfig {
            log_cleaner_enable: false,
            log_cleanup_policy: "compact".into(),
            ..BrokerConfig::default()
        };
        let c = log_config(&off, &topic(&[]));
        assert!(!c.compact && c.retention_ms.is_none(), "inherited compact");
    }
}
