//! Counters each shard keeps for itself, and the snapshot a scrape takes
//! on that shard.
//!
//! The request path only touches this thread's own cells: a counter is
//! written by one shard and read by the same shard when a scrape's job
//! runs there (see [`super::collect`]), so nothing is atomic, nothing is
//! shared, and a request costs two clock reads and a few additions.
//! Bytes in are counted on the partition's owner shard (where the append
//! runs), bytes out on the shard of the fetching connection (where the
//! answer is built); a scrape sums them per partition.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use ringtail_io::rt::{self, DriverStats};
use ringtail_protocol::{ApiKey, ErrorCode};

use crate::shard::Shard;

/// Upper bounds of the request latency buckets (100 us to 10 s).
pub const LATENCY_BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Requests of one API: count and latency (per bucket, the last bucket
/// above every bound).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiCounters {
    pub requests: u64,
    pub buckets: [u64; LATENCY_BOUNDS_NS.len() + 1],
    pub latency_ns_sum: u64,
}

/// Traffic of one partition as counted by one shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionCounters {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

#[derive(Default)]
struct Counters {
    /// Indexed by API key.
    apis: Vec<ApiCounters>,
    errors: HashMap<(ApiKey, ErrorCode), u64>,
    /// Topic name, then partition index.
    partitions: HashMap<String, Vec<PartitionCounters>>,
    connections_accepted: u64,
}

thread_local! {
    static COUNTERS: RefCell<Counters> = RefCell::new(Counters::default());
}

/// Counts a request of `api` that took `elapsed` to answer.
pub fn request_done(api: ApiKey, elapsed: Duration) {
    let ns = elapsed.as_nanos() as u64;
    let bucket = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns);
    COUNTERS.with(|c| {
        let mut c = c.borrow_mut();
        let index = api as i16 as usize;
        if c.apis.len() <= index {
            c.apis.resize(index + 1, ApiCounters::default());
        }
        let a = &mut c.apis[index];
        a.requests += 1;
        a.buckets[bucket] += 1;
        a.latency_ns_sum += ns;
    });
}

/// Counts a partition-level error `api` answered with.
pub fn request_error(api: ApiKey, error: ErrorCode) {
    COUNTERS.with(|c| *c.borrow_mut().errors.entry((api, error)).or_default() += 1);
}

fn with_partition(topic: &str, partition: i32, f: impl FnOnce(&mut PartitionCounters)) {
    let Ok(index) = usize::try_from(partition) else {
        return;
    };
    COUNTERS.with(|c| {
        let mut c = c.borrow_mut();
        let slots = match c.partitions.get_mut(topic) {
            Some(slots) => slots,
            None => c.partitions.entry(topic.to_string()).or_default(),
        };
        if slots.len() <= index {
            slots.resize(index + 1, PartitionCounters::default());
        }
        f(&mut slots[index]);
    });
}

/// Counts a batch appended to a partition (on its owner shard).
pub fn appended(topic: &str, partition: i32, bytes: u64, records: u64) {
    with_partition(topic, partition, |p| {
        p.bytes_in += bytes;
        p.records_in += records;
    });
}

/// Counts record bytes and offsets a Fetch answer carries.
pub fn fetched(topic: &str, partition: i32, bytes: u64, records: u64) {
    with_partition(topic, partition, |p| {
        p.bytes_out += bytes;
        p.records_out += records;
    });
}

pub fn connection_accepted() {
    COUNTERS.with(|c| c.borrow_mut().connections_accepted += 1);
}

/// One partition as its owner shard sees it at scrape time.
#[derive(Debug, Clone)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub replicas: i16,
    pub log_start: i64,
    pub log_end: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: usize,
    /// The log refuses writes after a failed write or sync.
    pub failed: bool,
    /// Replicated partitions: whether this broker leads it now.
    pub leader: bool,
    /// Leader only: each follower's lag behind the log end in offsets
    /// (None: it has not fetched in this epoch) and in seconds since it
    /// last caught up.
    pub followers: Vec<(i32, Option<i64>, f64)>,
}

/// A committed offset held by a group coordinator on this shard.
#[derive(Debug, Clone)]
pub struct GroupOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Everything one shard reports to a scrape.
#[derive(Debug, Clone)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub connections_open: usize,
    pub connections_accepted: u64,
    pub apis: Vec<(ApiKey, ApiCounters)>,
    pub errors: Vec<(ApiKey, ErrorCode, u64)>,
    pub partitions: Vec<PartitionSnapshot>,
    /// This shard's counts for every partition it saw traffic of.
    pub traffic: Vec<(String, i32, PartitionCounters)>,
    pub groups: Vec<GroupOffset>,
    pub io: DriverStats,
}

/// Takes the snapshot; runs on the shard itself (a scrape's mesh job).
/// Counters of partitions the topic table no longer lists are dropped,
/// so a deleted topic's series disappear.
pub fn snapshot(shard: &Shard) -> ShardSnapshot {
    let topics = shard.shared.metadata.snapshot();
    let partitions = shard
        .partitions()
        .iter()
        .map(|p| {
            let offsets = p.log.offsets();
            let stats = p.log.stats();
            let repl = p.replication();
            let leader = repl
                .as_ref()
                .is_some_and(|r| r.role() == crate::replication::RoleKind::Leader);
            let followers = match (&repl, leader) {
                (Some(r), true) => r
                    .follower_lag()
                    .into_iter()
                    .map(|(id, leo, since_ms)| {
                        (
                            id.0,
                            leo.map(|o| (offsets.written.0 - o.0).max(0)),
                            since_ms.max(0) as f64 / 1000.0,
                        )
                    })
                    .collect(),
                _ => Vec::new(),
            };
            PartitionSnapshot {
                topic: p.topic.name.clone(),
                partition: p.index,
                replicas: p.topic.replication_factor,
                log_start: offsets.log_start.0,
                log_end: offsets.log_end.0,
                high_watermark: p.high_watermark().0,
                size_bytes: stats.size_bytes,
                segments: stats.segments,
                failed: p.log.failure().is_some(),
                leader: leader || !p.is_replicated(),
                followers,
            }
        })
        .collect();
    COUNTERS.with(|c| {
        let mut c = c.borrow_mut();
        c.partitions
            .retain(|topic, slots| match topics.topic(topic) {
                Some(meta) => {
                    slots.truncate(meta.partitions.max(0) as usize);
                    true
                }
                None => false,
            });
        let traffic = c
            .partitions
            .iter()
            .flat_map(|(topic, slots)| {
                slots
                    .iter()
                    .enumerate()
                    .map(move |(i, counters)| (topic.clone(), i as i32, *counters))
            })
            .collect();
        let apis = ApiKey::ALL
            .iter()
            .filter_map(|&api| {
                let counters = c.apis.get(api as i16 as usize)?;
                (counters.requests > 0).then_some((api, *counters))
            })
            .collect();
        ShardSnapshot {
            shard: shard.id.0,
            connections_open: shard.connections.get(),
            connections_accepted: c.connections_accepted,
            apis,
            errors: c.errors.iter().map(|(&(a, e), &n)| (a, e, n)).collect(),
            partitions,
            traffic,
            groups: group_offsets(),
            io: rt::driver_stats(),
        }
    })
}

/// Committed offsets of the groups this shard coordinates (none when it
/// holds no `__consumer_offsets` partition).
fn group_offsets() -> Vec<GroupOffset> {
    crate::group::driver::with(|coordinator, _now| {
        coordinator
            .groups()
            .flat_map(|g| {
                g.offsets
                    .iter()
                    .map(|((topic, partition), om)| GroupOffset {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        offset: om.offset,
                    })
            })
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_traffic_count_in_this_threads_cells() {
        request_done(ApiKey::Produce, Duration::from_micros(100)); // le="0.0001"
        request_done(ApiKey::Produce, Duration::from_millis(3)); // le="0.005"
        request_done(ApiKey::Produce, Duration::from_secs(30)); // le="+Inf" only
        request_error(ApiKey::Fetch, ErrorCode::OffsetOutOfRange);
        request_error(ApiKey::Fetch, ErrorCode::OffsetOutOfRange);
        appended("t", 2, 100, 5);
        appended("t", 2, 50, 1);
        fetched("t", 2, 40, 2);
        fetched("t", -1, 40, 2); // no partition -1: ignored
        COUNTERS.with(|c| {
            let c = c.borrow();
            let produce = c.apis[ApiKey::Produce as i16 as usize];
            assert_eq!(produce.requests, 3);
            assert_eq!(produce.buckets[0], 1);
            assert_eq!(produce.buckets[5], 1);
            assert_eq!(produce.buckets[LATENCY_BOUNDS_NS.len()], 1);
            assert_eq!(produce.latency_ns_sum, 30_003_100_000);
            assert_eq!(c.errors[&(ApiKey::Fetch, ErrorCode::OffsetOutOfRange)], 2);
            let t = &c.partitions["t"];
            assert_eq!(t.len(), 3);
            assert_eq!(t[2].bytes_in, 150);
            assert_eq!(t[2].records_in, 6);
            assert_eq!((t[2].bytes_out, t[2].records_out), (40, 2));
        });
    }
}
