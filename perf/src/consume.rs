//! `ringtail-perf consume`: reads a topic as fast as the broker serves it
//! and prints Kafka's `kafka-consumer-perf-test` report.
//!
//! There are no consumer groups: partitions are assigned by hand, round
//! robin over `--threads` threads, each with its own connection to every
//! leader it needs. Each thread long-polls with Fetch (`fetch.max.wait.ms`
//! 500, `fetch.min.bytes` 1), decodes every batch (CRC-32C checked, as
//! Kafka's `check.crcs`), and counts records and key+value bytes, as
//! Kafka's tool does. The run ends when `--messages` records have come, or
//! when none came for `--timeout` ms.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use clap::Args;
use ringtail::admin::client::{self, Client, ClientError};
use ringtail::admin::consumer::{decode_records, Message};
use ringtail_protocol::messages::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::{Decodable, StrBytes};
use ringtail_protocol::messages::parse_response_header;
use ringtail_protocol::{ApiKey, CorrelationId, ErrorCode};

use crate::kafka::{self, Layout, PartitionLeader};
use crate::stats::kafka_time;

/// ListOffsets' timestamps for the log start and end.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;
/// A partition's fetch size grows up to this when one batch is larger.
const PARTITION_FETCH_BYTES_MAX: i32 = 64 * 1024 * 1024;

#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// Records to consume.
    #[arg(long)]
    pub messages: u64,
    /// Start at each partition's log start (default: its end).
    #[arg(long)]
    pub from_beginning: bool,
    /// Threads, each fetching its share of the partitions.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Stop when no record came for this long.
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
    #[command(flatten)]
    pub fetch: FetchOptions,
}

/// Fetch settings with Kafka's consumer names and defaults.
#[derive(Args, Debug, Clone, Copy)]
pub struct FetchOptions {
    /// fetch.max.bytes: bytes one Fetch answer may hold.
    #[arg(long, default_value_t = 52_428_800)]
    pub fetch_max_bytes: i32,
    /// max.partition.fetch.bytes: bytes per partition per Fetch.
    #[arg(long, default_value_t = 1_048_576)]
    pub max_partition_fetch_bytes: i32,
    /// fetch.max.wait.ms: how long the broker may hold a Fetch.
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: i32,
    /// fetch.min.bytes: bytes the broker waits for.
    #[arg(long, default_value_t = 1)]
    pub fetch_min_bytes: i32,
}

/// One assigned partition and where the next fetch starts.
#[derive(Debug, Clone, Copy)]
pub struct Assigned {
    pub partition: i32,
    pub leader: i32,
    pub position: i64,
    pub fetch_bytes: i32,
}

/// Each partition's offset for a ListOffsets timestamp ([`EARLIEST`] or
/// [`LATEST`]), asked of its leader.
pub fn list_offsets(
    layout: &Layout,
    topic: &str,
    partitions: &[PartitionLeader],
    timestamp: i64,
) -> Result<Vec<Assigned>, String> {
    let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in partitions {
        by_leader.entry(p.leader).or_default().push(p.partition);
    }
    let mut offsets = HashMap::new();
    for (leader, parts) in by_leader {
        let mut c = Client::connect(layout.leader_addr(leader)?, kafka::CLIENT_ID)
            .map_err(|e| e.to_string())?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let response = c.send(&request).map_err(|e| e.to_string())?;
        for p in response.topics.iter().flat_map(|t| t.partitions.iter()) {
            if let Some(e) = ClientError::from_code(p.error_code, None) {
                return Err(format!("ListOffsets {topic}-{}: {e}", p.partition_index));
            }
            offsets.insert(p.partition_index, p.offset);
        }
    }
    partitions
        .iter()
        .map(|p| {
            let position = *offsets
                .get(&p.partition)
                .ok_or_else(|| format!("ListOffsets did not answer for {topic}-{}", p.partition))?;
            Ok(Assigned {
                partition: p.partition,
                leader: p.leader,
                position,
                fetch_bytes: 0,
            })
        })
        .collect()
}

/// Fetches a set of partitions, one request per leader at a time.
pub struct Fetcher {
    topic: String,
    version: i16,
    options: FetchOptions,
    assigned: Vec<Assigned>,
    conns: HashMap<i32, TcpStream>,
    buf: BytesMut,
    next_correlation: i32,
}

/// What one poll brought.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    pub records: u64,
    pub bytes: u64,
}

impl Fetcher {
    pub fn new(
        layout: &Layout,
        topic: &str,
        options: FetchOptions,
        mut assigned: Vec<Assigned>,
    ) -> Result<Fetcher, String> {
        // Long polls may take fetch.max.wait.ms; allow that plus Kafka's
        // request timeout.
        let timeout = Duration::from_millis(30_000 + options.fetch_max_wait_ms.max(0) as u64);
        let mut conns = HashMap::new();
        for a in &mut assigned {
            a.fetch_bytes = options.max_partition_fetch_bytes.max(1);
            if let std::collections::hash_map::Entry::Vacant(e) = conns.entry(a.leader) {
                e.insert(kafka::connect(layout.leader_addr(a.leader)?, timeout)?);
            }
        }
        Ok(Fetcher {
            topic: topic.to_owned(),
            version: layout.fetch_version,
            options,
            assigned,
            conns,
            buf: BytesMut::new(),
            next_correlation: 0,
        })
    }

    pub fn assigned(&self) -> &[Assigned] {
        &self.assigned
    }

    /// One Fetch to every leader; `on_record` sees each record.
    pub fn poll(&mut self, on_record: &mut dyn FnMut(&Message<'_>)) -> Result<Polled, String> {
        let mut leaders: Vec<i32> = self.conns.keys().copied().collect();
        leaders.sort_unstable();
        let mut polled = Polled::default();
        for leader in leaders {
            let got = self.fetch_from(leader, on_record)?;
            polled.records += got.records;
            polled.bytes += got.bytes;
        }
        Ok(polled)
    }

    fn request(&self, leader: i32) -> FetchRequest {
        let partitions = self
            .assigned
            .iter()
            .filter(|a| a.leader == leader)
            .map(|a| {
                FetchPartition::default()
                    .with_partition(a.partition)
                    .with_fetch_offset(a.position)
                    .with_partition_max_bytes(a.fetch_bytes)
            })
            .collect();
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.options.fetch_max_wait_ms)
            .with_min_bytes(self.options.fetch_min_bytes)
            .with_max_bytes(self.options.fetch_max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(partitions)])
    }

    fn fetch_from(
        &mut self,
        leader: i32,
        on_record: &mut dyn FnMut(&Message<'_>),
    ) -> Result<Polled, String> {
        let correlation_id = CorrelationId(self.next_correlation);
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut out = BytesMut::new();
        kafka::encode_request(
            self.version,
            correlation_id,
            &self.request(leader),
            &mut out,
        )?;
        let stream = self
            .conns
            .get_mut(&leader)
            .expect("a connection per leader");
        kafka::write_all(stream, &out).map_err(|e| format!("sending Fetch: {e}"))?;
        match kafka::read_frame(stream, &mut self.buf) {
            Ok(true) => {}
            Ok(false) => return Err("the broker closed the connection".into()),
            Err(e) => return Err(format!("reading Fetch answer: {e}")),
        }
        // The records stay slices of the frame: no copy after the read.
        let frame = self.buf.split().freeze();
        let (answered, rest) = parse_response_header(ApiKey::Fetch, self.version, &frame)
            .map_err(|e| format!("Fetch answer header: {e}"))?;
        if answered != correlation_id {
            return Err(format!(
                "answer {} to Fetch {}",
                answered.0, correlation_id.0
            ));
        }
        let mut body = frame.slice(frame.len() - rest.len()..);
        let response = FetchResponse::decode(&mut body, self.version)
            .map_err(|e| format!("Fetch answer: {e}"))?;
        if let Some(e) = ClientError::from_code(response.error_code, None) {
            return Err(format!("Fetch: {e}"));
        }
        let mut polled = Polled::default();
        for data in response.responses.iter().flat_map(|t| t.partitions.iter()) {
            let Some(i) = self
                .assigned
                .iter()
                .position(|a| a.partition == data.partition_index && a.leader == leader)
            else {
                continue;
            };
            match data.error_code {
                0 => {}
                c if client::is_retriable(c) && c != ErrorCode::OffsetOutOfRange.code() => continue,
                c => {
                    return Err(format!(
                        "Fetch {}-{}: {}",
                        self.topic,
                        data.partition_index,
                        client::error_name(c)
                    ))
                }
            }
            let records = data.records.as_deref().unwrap_or_default();
            let got = self.take_records(i, records, on_record)?;
            polled.records += got.records;
            polled.bytes += got.bytes;
        }
        Ok(polled)
    }

    fn take_records(
        &mut self,
        i: usize,
        records: &[u8],
        on_record: &mut dyn FnMut(&Message<'_>),
    ) -> Result<Polled, String> {
        let a = &mut self.assigned[i];
        let mut polled = Polled::default();
        let decoded = decode_records(a.partition, records, a.position, true, &mut |m| {
            polled.records += 1;
            polled.bytes += (m.key.map_or(0, <[u8]>::len) + m.value.map_or(0, <[u8]>::len)) as u64;
            on_record(m);
            true
        })?;
        a.position = decoded.position;
        if decoded.batches == 0 && !records.is_empty() {
            // Only part of one batch fit: ask for more next time.
            if a.fetch_bytes >= PARTITION_FETCH_BYTES_MAX {
                return Err(format!(
                    "a batch of {}-{} at offset {} is larger than {PARTITION_FETCH_BYTES_MAX} bytes",
                    self.topic, a.partition, a.position
                ));
            }
            a.fetch_bytes = a
                .fetch_bytes
                .saturating_mul(2)
                .min(PARTITION_FETCH_BYTES_MAX);
        }
        Ok(polled)
    }
}

/// What the consumer threads share.
#[derive(Default)]
struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
    /// ns after the start of the last record seen.
    last_record_ns: AtomicU64,
    stop: AtomicBool,
}

/// The result of a consume run.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeReport {
    pub records: u64,
    pub bytes: u64,
    pub start: Duration,
    /// From the start to the last record.
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl ConsumeReport {
    pub const HEADER: &'static str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

    /// Kafka's row: there is no group, so no rebalance time, and the
    /// fetch columns equal the overall ones.
    pub fn row(&self) -> String {
        let mb = self.bytes as f64 / (1024.0 * 1024.0);
        let secs = self.elapsed.as_secs_f64();
        let per_sec = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        format!(
            "{}, {}, {mb:.4}, {:.4}, {}, {:.4}, 0, {}, {:.4}, {:.4}",
            kafka_time(self.start),
            kafka_time(self.start + self.elapsed),
            per_sec(mb),
            self.records,
            per_sec(self.records as f64),
            self.elapsed.as_millis(),
            per_sec(mb),
            per_sec(self.records as f64),
        )
    }
}

/// A consume run: which partitions from where, and when to stop.
#[derive(Debug, Clone)]
pub struct Job {
    pub layout: Layout,
    pub topic: String,
    pub assigned: Vec<Assigned>,
    pub options: FetchOptions,
    pub threads: usize,
    /// Stop after this many records...
    pub messages: u64,
    /// ...or when none came for this long.
    pub timeout: Duration,
}

/// Runs the job's fetchers; `on_record` runs on the fetcher threads.
pub fn consume(
    job: Job,
    on_record: Arc<dyn Fn(&Message<'_>) + Send + Sync>,
) -> Result<ConsumeReport, String> {
    let Job {
        layout,
        topic,
        assigned,
        options,
        threads,
        messages,
        timeout,
    } = job;
    let (layout, topic) = (&layout, &topic);
    let threads = threads.clamp(1, assigned.len().max(1));
    let mut shares: Vec<Vec<Assigned>> = vec![Vec::new(); threads];
    for (i, a) in assigned.into_iter().enumerate() {
        shares[i % threads].push(a);
    }
    let fetchers = shares
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| Fetcher::new(layout, topic, options, s))
        .collect::<Result<Vec<_>, _>>()?;
    let progress = Arc::new(Progress::default());
    let start_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let handles: Vec<_> = fetchers
        .into_iter()
        .map(|mut f| {
            let progress = progress.clone();
            let on_record = on_record.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let result = fetch_loop(&mut f, &progress, start, messages, timeout, &*on_record);
                progress.stop.store(true, Ordering::Relaxed);
                result
            })
        })
        .collect();
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("a consumer thread panicked".into());
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let records = progress.records.load(Ordering::Relaxed);
    Ok(ConsumeReport {
        records,
        bytes: progress.bytes.load(Ordering::Relaxed),
        start: start_wall,
        elapsed: Duration::from_nanos(progress.last_record_ns.load(Ordering::Relaxed)),
        timed_out: records < messages,
    })
}

fn fetch_loop(
    f: &mut Fetcher,
    progress: &Progress,
    start: Instant,
    messages: u64,
    timeout: Duration,
    on_record: &dyn Fn(&Message<'_>),
) -> Result<(), String> {
    while !progress.stop.load(Ordering::Relaxed) {
        if progress.records.load(Ordering::Relaxed) >= messages {
            return Ok(());
        }
        let polled = f.poll(&mut |m| on_record(m))?;
        let now_ns = start.elapsed().as_nanos() as u64;
        if polled.records > 0 {
            progress.bytes.fetch_add(polled.bytes, Ordering::Relaxed);
            progress.last_record_ns.fetch_max(now_ns, Ordering::Relaxed);
            let total = progress
                .records
                .fetch_add(polled.records, Ordering::Relaxed)
                + polled.records;
            if total >= messages {
                return Ok(());
            }
        } else {
            let last = progress.last_record_ns.load(Ordering::Relaxed);
            if Duration::from_nanos(now_ns.saturating_sub(last)) >= timeout {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// `ringtail-perf consume`.
pub fn main(args: &ConsumeArgs) -> Result<bool, String> {
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let layout = kafka::layout(
        &args.bootstrap_server,
        &args.topic,
        None,
        Duration::from_secs(30),
    )?;
    let at = if args.from_beginning {
        EARLIEST
    } else {
        LATEST
    };
    let assigned = list_offsets(&layout, &args.topic, &layout.partitions, at)?;
    let job = Job {
        layout,
        topic: args.topic.clone(),
        assigned,
        options: args.fetch,
        threads: args.threads,
        messages: args.messages,
        timeout: Duration::from_millis(args.timeout),
    };
    let report = consume(job, Arc::new(|_: &Message<'_>| {}))?;
    if report.timed_out {
        eprintln!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. \
             You can use the --timeout option to increase the timeout.",
            args.timeout
        );
    }
    println!("{}", ConsumeReport::HEADER);
    println!("{}", report.row());
    eprintln!("{}", crate::stats::cpu_line(report.elapsed));
    Ok(!report.timed_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_row_matches_kafkas_columns() {
        let report = ConsumeReport {
            records: 2048,
            bytes: 2 * 1024 * 1024,
            start: Duration::from_millis(1_709_212_455_678),
            elapsed: Duration::from_millis(2000),
            timed_out: false,
        };
        assert_eq!(
            report.row(),
            "2024-02-29 13:14:15:678, 2024-02-29 13:14:17:678, 2.0000, 1.0000, 2048, 1024.0000, 0, 2000, 1.0000, 1024.0000"
        );
        assert_eq!(
            ConsumeReport::HEADER.split(", ").count(),
            report.row().split(", ").count()
        );
    }
}
