//! A scrape: every shard snapshots itself in a job sent through the mesh
//! (so its counters are read on the thread that writes them), and the
//! answers are merged here, off the shards, with the coordinator's,
//! the process's and the log dirs' figures into metric families.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::coordinator::{self, ROLES};
use super::shard::{PartitionCounters, ShardSnapshot, LATENCY_BOUNDS_NS};
use crate::shard::{ShardId, Shared};

/// How long a scrape waits for the shards' answers (a shard busy with
/// one long job answers late; the scrape then reports what arrived).
pub const SHARD_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Asks every shard for its snapshot. Shards that do not answer within
/// [`SHARD_ANSWER_WAIT`] are left out (and counted in
/// `ringtail_metrics_shards_missing`).
pub fn snapshots(shared: &Shared) -> Result<Vec<ShardSnapshot>, String> {
    if shared.stopping.load(Ordering::Acquire) {
        return Err("the broker is shutting down".into());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..shared.mesh.shards() {
        let tx = tx.clone();
        shared.mesh.send_from_control(
            ShardId(i),
            Box::new(move || {
                Box::pin(async move {
                    let shard = crate::shard::current();
                    let _ = tx.send(super::shard::snapshot(&shard));
                })
            }),
        );
    }
    drop(tx);
    let deadline = Instant::now() + SHARD_ANSWER_WAIT;
    let mut out = Vec::with_capacity(shared.mesh.shards());
    while out.len() < shared.mesh.shards() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(s) => out.push(s),
            Err(_) => break,
        }
    }
    out.sort_by_key(|s| s.shard);
    Ok(out)
}

/// Builds families in order; each added series names its labels.
#[derive(Default)]
struct Families(Vec<MetricFamily>);

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType) -> &mut MetricFamily {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(kind);
        self.0.push(f);
        self.0.last_mut().expect("just pushed")
    }

    fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Vec<(&'a str, String)>, f64)>,
    ) {
        let f = self.family(name, help, MetricType::GAUGE);
        for (labels, v) in series {
            let mut g = Gauge::default();
            g.set_value(v);
            let mut m = metric(labels);
            m.set_gauge(g);
            f.mut_metric().push(m);
        }
    }

    fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        series: impl IntoIterator<Item = (Vec<(&'a str, String)>, f64)>,
    ) {
        let f = self.family(name, help, MetricType::COUNTER);
        for (labels, v) in series {
            let mut c = Counter::default();
            c.set_value(v);
            let mut m = metric(labels);
            m.set_counter(c);
            f.mut_metric().push(m);
        }
    }

    /// `series`: labels, per-bucket counts (not cumulative; the last is
    /// above every bound) and the sum in nanoseconds.
    fn histograms<'a>(
        &mut self,
        name: &str,
        help: &str,
        bounds_ns: &[u64],
        series: impl IntoIterator<Item = (Vec<(&'a str, String)>, Vec<u64>, u64)>,
    ) {
        let f = self.family(name, help, MetricType::HISTOGRAM);
        for (labels, counts, sum_ns) in series {
            let mut h = Histogram::default();
            let mut cumulative = 0;
            let mut buckets = Vec::with_capacity(bounds_ns.len());
            for (bound, n) in bounds_ns.iter().zip(&counts) {
                cumulative += n;
                let mut b = Bucket::default();
                b.set_upper_bound(*bound as f64 / 1e9);
                b.set_cumulative_count(cumulative);
                buckets.push(b);
            }
            h.set_bucket(buckets);
            h.set_sample_count(counts.iter().sum());
            h.set_sample_sum(sum_ns as f64 / 1e9);
            let mut m = metric(labels);
            m.set_histogram(h);
            f.mut_metric().push(m);
        }
    }
}

fn metric(labels: Vec<(&str, String)>) -> Metric {
    let pairs = labels
        .into_iter()
        .map(|(k, v)| {
            let mut p = LabelPair::default();
            p.set_name(k.to_string());
            p.set_value(v);
            p
        })
        .collect();
    Metric::from_label(pairs)
}

fn tp(topic: &str, partition: i32) -> Vec<(&'static str, String)> {
    vec![
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ]
}

fn shard_label(shard: usize) -> Vec<(&'static str, String)> {
    vec![("shard", shard.to_string())]
}

/// Every family of one scrape.
pub fn gather(shared: &Arc<Shared>) -> Result<Vec<MetricFamily>, String> {
    let shards = snapshots(shared)?;
    let mut f = Families::default();
    broker(&mut f, shared, &shards);
    requests(&mut f, &shards);
    partitions(&mut f, shared, &shards);
    groups(&mut f, &shards);
    per_shard(&mut f, &shards);
    coordinator_figures(&mut f, shared);
    process(&mut f);
    log_dirs(&mut f, shared);
    // The text format has no empty family (the encoder refuses one): a
    // family without series, such as errors before the first error, is
    // left out of this scrape.
    f.0.retain(|family| !family.get_metric().is_empty());
    Ok(f.0)
}

fn broker(f: &mut Families, shared: &Shared, shards: &[ShardSnapshot]) {
    let c = &shared.config;
    f.gauges(
        "ringtail_broker_info",
        "Constant 1, labelled with the broker id, cluster id and version.",
        [(
            vec![
                ("broker_id", c.broker_id.to_string()),
                ("cluster_id", shared.cluster_id.clone()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
            1.0,
        )],
    );
    f.gauges(
        "ringtail_metrics_shards_missing",
        "Shards that did not answer this scrape in time (their series are absent).",
        [(vec![], (shared.mesh.shards() - shards.len()) as f64)],
    );
}

fn requests(f: &mut Families, shards: &[ShardSnapshot]) {
    let mut apis: BTreeMap<String, super::shard::ApiCounters> = BTreeMap::new();
    let mut errors: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for s in shards {
        for (api, c) in &s.apis {
            let merged = apis.entry(api_name(*api)).or_default();
            merged.requests += c.requests;
            merged.latency_ns_sum += c.latency_ns_sum;
            for (m, n) in merged.buckets.iter_mut().zip(c.buckets) {
                *m += n;
            }
        }
        for (api, code, n) in &s.errors {
            *errors.entry((api_name(*api), code.name())).or_default() += n;
        }
    }
    f.counters(
        "ringtail_requests_total",
        "Kafka requests answered, by API.",
        apis.iter()
            .map(|(api, c)| (vec![("api", api.clone())], c.requests as f64)),
    );
    f.counters(
        "ringtail_request_errors_total",
        "Partition-level errors in Produce and Fetch answers, by API and Kafka error code.",
        errors.iter().map(|((api, error), n)| {
            (
                vec![("api", api.to_string()), ("error", error.to_string())],
                *n as f64,
            )
        }),
    );
    f.histograms(
        "ringtail_request_duration_seconds",
        "Time from a parsed request to its answer being ready (Fetch includes its long-poll wait), by API.",
        &LATENCY_BOUNDS_NS,
        apis.iter().map(|(api, c)| {
            (
                vec![("api", api.to_string())],
                c.buckets.to_vec(),
                c.latency_ns_sum,
            )
        }),
    );
}

/// Kafka's name of the API (`Produce`, `OffsetCommit`): its Debug form.
fn api_name(api: ringtail_protocol::ApiKey) -> String {
    format!("{api:?}")
}

fn partitions(f: &mut Families, shared: &Shared, shards: &[ShardSnapshot]) {
    let parts: Vec<&super::shard::PartitionSnapshot> =
        shards.iter().flat_map(|s| &s.partitions).collect();
    // Traffic counted by any shard, summed per partition; every held
    // partition has its series, at 0 before its first byte.
    let mut traffic: BTreeMap<(&str, i32), PartitionCounters> = parts
        .iter()
        .map(|p| {
            (
                (p.topic.as_str(), p.partition),
                PartitionCounters::default(),
            )
        })
        .collect();
    for (topic, partition, c) in shards.iter().flat_map(|s| &s.traffic) {
        if let Some(sum) = traffic.get_mut(&(topic.as_str(), *partition)) {
            sum.bytes_in += c.bytes_in;
            sum.records_in += c.records_in;
            sum.bytes_out += c.bytes_out;
            sum.records_out += c.records_out;
        }
    }
    let counter = |name: &str, help: &str, f: &mut Families, get: fn(&PartitionCounters) -> u64| {
        f.counters(
            name,
            help,
            traffic
                .iter()
                .map(|((topic, partition), c)| (tp(topic, *partition), get(c) as f64)),
        );
    };
    counter(
        "ringtail_partition_bytes_in_total",
        "Record batch bytes appended by producers.",
        f,
        |c| c.bytes_in,
    );
    counter(
        "ringtail_partition_records_in_total",
        "Records appended by producers.",
        f,
        |c| c.records_in,
    );
    counter(
        "ringtail_partition_bytes_out_total",
        "Record bytes sent to consumers by Fetch.",
        f,
        |c| c.bytes_out,
    );
    counter(
        "ringtail_partition_records_out_total",
        "Offsets served to consumers by Fetch (next offset minus fetch offset).",
        f,
        |c| c.records_out,
    );
    let gauge = |name: &str,
                 help: &str,
                 f: &mut Families,
                 get: fn(&super::shard::PartitionSnapshot) -> f64| {
        f.gauges(
            name,
            help,
            parts.iter().map(|p| (tp(&p.topic, p.partition), get(p))),
        );
    };
    gauge(
        "ringtail_partition_log_end_offset",
        "Offset the next appended record gets.",
        f,
        |p| p.log_end as f64,
    );
    gauge(
        "ringtail_partition_log_start_offset",
        "First offset still in the log (after retention and DeleteRecords).",
        f,
        |p| p.log_start as f64,
    );
    gauge(
        "ringtail_partition_high_watermark",
        "Offset up to which consumers may read (replicated to the ISR).",
        f,
        |p| p.high_watermark as f64,
    );
    gauge(
        "ringtail_partition_size_bytes",
        "Bytes of the partition's segment files.",
        f,
        |p| p.size_bytes as f64,
    );
    gauge(
        "ringtail_partition_segments",
        "Segment files of the partition.",
        f,
        |p| p.segments as f64,
    );
    gauge(
        "ringtail_partition_replicas",
        "Replicas assigned to the partition (the topic's replication factor).",
        f,
        |p| f64::from(p.replicas),
    );
    // ISR, leaders and liveness come from the coordinator's tree (the
    // controller's partition states); a lone broker without a view leads
    // everything it holds, with an ISR of one.
    let view = crate::cluster::view();
    let state = |topic: &str, index: i32| {
        view.as_ref()
            .and_then(|v| v.topics.get(topic))
            .and_then(|t| t.partitions.get(index as usize))
            .cloned()
    };
    let live = |id: i32| view.as_ref().is_none_or(|v| v.brokers.contains_key(&id));
    f.gauges(
        "ringtail_partition_in_sync_replicas",
        "Replicas in the ISR, as the partition state in the coordinator records it (0 when the log failed).",
        parts.iter().map(|p| {
            let isr = match state(&p.topic, p.partition) {
                _ if p.failed => 0,
                Some(s) => s.isr.len(),
                None => 1,
            };
            (tp(&p.topic, p.partition), isr as f64)
        }),
    );
    // A partition is offline when its log failed, when it has no live
    // leader, or when no shard holds it although the tree assigns it
    // here; under-replicated when this broker leads it with fewer
    // in-sync replicas than assigned.
    let held: HashSet<(&str, i32)> = parts
        .iter()
        .map(|p| (p.topic.as_str(), p.partition))
        .collect();
    let snapshot = shared.metadata.snapshot();
    let answered: HashSet<usize> = shards.iter().map(|s| s.shard).collect();
    let mut offline: Vec<(String, i32)> = parts
        .iter()
        .filter(|p| {
            p.failed
                || state(&p.topic, p.partition).is_some_and(|s| s.leader < 0 || !live(s.leader))
        })
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    for topic in snapshot.topics.values() {
        for index in 0..topic.partitions {
            let owner = shared.owner(topic, index).0;
            if answered.contains(&owner)
                && crate::cluster::is_replica(&topic.name, index)
                && !held.contains(&(topic.name.as_str(), index))
            {
                offline.push((topic.name.clone(), index));
            }
        }
    }
    let under: Vec<(String, i32)> = parts
        .iter()
        .filter(|p| !p.failed && p.leader && i64::from(p.replicas) > 1)
        .filter(|p| state(&p.topic, p.partition).is_some_and(|s| s.isr.len() < s.replicas.len()))
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    let offline_set: HashSet<&(String, i32)> = offline.iter().collect();
    let under_set: HashSet<&(String, i32)> = under.iter().collect();
    let mut all: Vec<(String, i32)> = parts
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .chain(offline.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    f.gauges(
        "ringtail_partition_offline",
        "1 when the partition has no serving leader (its log failed, no live broker leads it, or it is not open).",
        all.iter().map(|(t, i)| {
            (
                tp(t, *i),
                f64::from(u8::from(offline_set.contains(&(t.clone(), *i)))),
            )
        }),
    );
    f.gauges(
        "ringtail_partition_under_replicated",
        "1 when this broker leads the partition with fewer in-sync replicas than assigned.",
        all.iter().map(|(t, i)| {
            (
                tp(t, *i),
                f64::from(u8::from(under_set.contains(&(t.clone(), *i)))),
            )
        }),
    );
    f.gauges(
        "ringtail_partitions_offline",
        "Partitions of this broker without a serving leader (Kafka's OfflinePartitionsCount).",
        [(vec![], offline.len() as f64)],
    );
    f.gauges(
        "ringtail_partitions_under_replicated",
        "Partitions this broker leads with fewer in-sync replicas than assigned (Kafka's UnderReplicatedPartitions).",
        [(vec![], under.len() as f64)],
    );
    // Per follower of each partition this broker leads: how far behind
    // the leader's log end it is (a follower that has not fetched in this
    // epoch counts as the whole log behind) and for how long it has not
    // caught up.
    let lag_offsets = |p: &super::shard::PartitionSnapshot, leo: Option<i64>| {
        leo.unwrap_or(p.log_end - p.log_start).max(0) as f64
    };
    f.gauges(
        "ringtail_replica_lag_offsets",
        "Offsets a follower replica is behind the leader's log end (leader's view).",
        parts.iter().flat_map(|p| {
            p.followers.iter().map(move |(id, leo, _)| {
                let mut labels = tp(&p.topic, p.partition);
                labels.push(("replica", id.to_string()));
                (labels, lag_offsets(p, *leo))
            })
        }),
    );
    f.gauges(
        "ringtail_replica_lag_seconds",
        "Seconds since a follower replica was last caught up with the leader (leader's view).",
        parts.iter().flat_map(|p| {
            p.followers.iter().map(move |(id, _, secs)| {
                let mut labels = tp(&p.topic, p.partition);
                labels.push(("replica", id.to_string()));
                (labels, *secs)
            })
        }),
    );
    f.gauges(
        "ringtail_partition_replica_lag_max_offsets",
        "Largest lag of a follower replica behind the leader's log end, in offsets (0 without followers).",
        parts.iter().map(|p| {
            let max = p
                .followers
                .iter()
                .map(|(_, leo, _)| lag_offsets(p, *leo))
                .fold(0.0, f64::max);
            (tp(&p.topic, p.partition), max)
        }),
    );
    f.gauges(
        "ringtail_partition_replica_lag_max_seconds",
        "Longest time a follower replica has not caught up with the leader, in seconds (0 without followers).",
        parts.iter().map(|p| {
            let max = p.followers.iter().map(|(_, _, s)| *s).fold(0.0, f64::max);
            (tp(&p.topic, p.partition), max)
        }),
    );
}

fn groups(f: &mut Families, shards: &[ShardSnapshot]) {
    let hw: HashMap<(&str, i32), i64> = shards
        .iter()
        .flat_map(|s| &s.partitions)
        .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
        .collect();
    let mut offsets: Vec<&super::shard::GroupOffset> = shards
        .iter()
        .flat_map(|s| &s.groups)
        .filter(|g| g.offset >= 0)
        .collect();
    offsets
        .sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    let labels = |g: &super::shard::GroupOffset| {
        vec![
            ("consumergroup", g.group.clone()),
            ("topic", g.topic.clone()),
            ("partition", g.partition.to_string()),
        ]
    };
    f.gauges(
        "kafka_consumergroup_current_offset",
        "Committed offset of a consumer group in a partition (kafka_exporter's name).",
        offsets.iter().map(|g| (labels(g), g.offset as f64)),
    );
    f.gauges(
        "kafka_consumergroup_lag",
        "High watermark minus the group's committed offset (kafka_exporter's name).",
        offsets.iter().filter_map(|g| {
            let hw = hw.get(&(g.topic.as_str(), g.partition))?;
            Some((labels(g), (hw - g.offset).max(0) as f64))
        }),
    );
}

fn per_shard(f: &mut Families, shards: &[ShardSnapshot]) {
    f.gauges(
        "ringtail_connections_open",
        "Client connections open, by shard.",
        shards
            .iter()
            .map(|s| (shard_label(s.shard), s.connections_open as f64)),
    );
    f.counters(
        "ringtail_connections_accepted_total",
        "Client connections accepted, by shard.",
        shards
            .iter()
            .map(|s| (shard_label(s.shard), s.connections_accepted as f64)),
    );
    f.counters(
        "ringtail_io_uring_submissions_total",
        "io_uring submission queue entries pushed, by shard.",
        shards
            .iter()
            .map(|s| (shard_label(s.shard), s.io.submissions as f64)),
    );
    f.counters(
        "ringtail_io_uring_completions_total",
        "io_uring completion queue entries reaped, by shard.",
        shards
            .iter()
            .map(|s| (shard_label(s.shard), s.io.completions as f64)),
    );
    f.counters(
        "ringtail_io_uring_enter_calls_total",
        "io_uring_enter system calls, by shard.",
        shards
            .iter()
            .map(|s| (shard_label(s.shard), s.io.enter_calls as f64)),
    );
    f.counters(
        "ringtail_io_bytes_total",
        "Bytes moved by io_uring operations, by shard and kind (splice: file to socket in the kernel).",
        shards.iter().flat_map(|s| {
            [
                ("splice", s.io.bytes_spliced),
                ("file_read", s.io.bytes_read),
                ("file_write", s.io.bytes_written),
                ("socket_send", s.io.bytes_sent),
                ("socket_receive", s.io.bytes_received),
            ]
            .into_iter()
            .map(move |(op, n)| {
                (
                    vec![("shard", s.shard.to_string()), ("op", op.to_string())],
                    n as f64,
                )
            })
        }),
    );
    f.histograms(
        "ringtail_fdatasync_duration_seconds",
        "Latency of fdatasync calls (log group commits and index writes), by shard.",
        &ringtail_io::rt::FDATASYNC_BOUNDS_NS,
        shards.iter().map(|s| {
            (
                shard_label(s.shard),
                s.io.fdatasync_buckets.to_vec(),
                s.io.fdatasync_ns_sum,
            )
        }),
    );
    f.counters(
        "ringtail_shard_busy_seconds_total",
        "Time the shard's executor ran tasks rather than waiting in io_uring, by shard.",
        shards
            .iter()
            .map(|s| (shard_label(s.shard), s.io.busy_ns as f64 / 1e9)),
    );
}

fn coordinator_figures(f: &mut Families, shared: &Shared) {
    let c = coordinator::read();
    if !c.running {
        return;
    }
    let voters = shared.config.coordinator_voters.len().max(1);
    f.gauges(
        "ringtail_coordinator_role",
        "1 for this coordinator peer's current role (looking, leader, follower, observer).",
        ROLES.iter().enumerate().map(|(i, role)| {
            (
                vec![("role", role.to_string())],
                f64::from(u8::from(i == c.role)),
            )
        }),
    );
    f.gauges(
        "ringtail_coordinator_in_quorum",
        "1 when this peer leads an established epoch or follows an active leader.",
        [(vec![], f64::from(u8::from(c.in_quorum)))],
    );
    f.gauges(
        "ringtail_coordinator_epoch",
        "The coordinator's current ZAB epoch.",
        [(vec![], c.epoch as f64)],
    );
    f.gauges(
        "ringtail_coordinator_last_zxid",
        "Last transaction id in this peer's log (epoch << 32 | counter).",
        [(vec![], c.last_zxid as f64)],
    );
    f.gauges(
        "ringtail_coordinator_voters",
        "Voters in the coordinator ensemble.",
        [(vec![], voters as f64)],
    );
    f.gauges(
        "ringtail_coordinator_quorum_size",
        "Voters needed for a quorum.",
        [(vec![], (voters / 2 + 1) as f64)],
    );
    f.counters(
        "ringtail_coordinator_elections_total",
        "Leader elections this peer settled in (a new epoch led or followed), start-up included.",
        [(vec![], c.elections as f64)],
    );
    f.gauges(
        "ringtail_coordinator_outstanding_requests",
        "Requests to the coordinator waiting for their answer.",
        [(vec![], c.outstanding as f64)],
    );
}

fn process(f: &mut Families) {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut fields = statm
        .split_whitespace()
        .map(|v| v.parse::<f64>().unwrap_or(0.0));
    let (virt, rss) = (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0));
    f.gauges(
        "process_resident_memory_bytes",
        "Resident memory size in bytes (/proc/self/statm).",
        [(vec![], rss * page)],
    );
    f.gauges(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes (/proc/self/statm).",
        [(vec![], virt * page)],
    );
    // utime and stime are fields 14 and 15 of /proc/self/stat, counted
    // after the parenthesised command name (which may hold spaces).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    f.counters(
        "process_cpu_seconds_total",
        "User and system CPU time spent, in seconds.",
        [(vec![], ticks / hz)],
    );
}

fn log_dirs(f: &mut Families, shared: &Shared) {
    let mut avail = Vec::new();
    let mut size = Vec::new();
    for dir in &shared.config.log_dirs {
        let Some((a, s)) = statvfs(dir) else { continue };
        let label = vec![("dir", dir.display().to_string())];
        avail.push((label.clone(), a as f64));
        size.push((label, s as f64));
    }
    f.gauges(
        "ringtail_log_dir_filesystem_avail_bytes",
        "Bytes available to the broker on the filesystem of each log dir.",
        avail,
    );
    f.gauges(
        "ringtail_log_dir_filesystem_size_bytes",
        "Size of the filesystem of each log dir, in bytes.",
        size,
    );
}

/// (available, total) bytes of the filesystem holding `dir`.
fn statvfs(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is valid; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize))
}
