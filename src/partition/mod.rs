//! A partition as its owner shard sees it: the log, the high watermark and
//! the fetches waiting for data.
//!
//! Only the owner shard touches a `Partition` (it is `!Send`); other shards
//! reach it with jobs through the mesh. On a single replica the high
//! watermark is the written log end (the ISR is the leader alone).

pub mod producers;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
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

    pub fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake_by_ref();
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
    c
}

impl Partition {
    pub async fn open(
        broker: &BrokerConfig,
        topic: Arc<TopicMeta>,
        index: i32,
    ) -> Result<Partition, LogError> {
        let dir = locate_dir(&broker.log_dirs, &topic.name, index);
        let log = Log::open(dir, log_config(broker, &topic)).await?;
        Ok(Partition {
            topic,
            index,
            log,
            leader_epoch: 0,
            waiters: RefCell::new(Vec::new()),
            producers: RefCell::new(producers::ProducerStates::default()),
        })
    }

    pub fn high_watermark(&self) -> Offset {
        self.log.offsets().written
    }

    pub fn log_start(&self) -> Offset {
        self.log.offsets().log_start
    }

    /// Appends a validated client batch as leader and wakes parked fetches.
    pub async fn append(&self, batch: BytesMut) -> Result<AppendInfo, LogError> {
        let result = self.log.append(batch, self.leader_epoch).await;
        if result.is_ok() {
            for waiter in self.waiters.borrow_mut().drain(..) {
                waiter.wake();
            }
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
