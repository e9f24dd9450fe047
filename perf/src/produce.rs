//! `ringtail-perf produce`: the producer side of the load generator.
//!
//! # Threads
//!
//! Each of `--producers` producers is one writer thread plus one reader
//! thread per connection (one connection per partition leader; a single
//! node gives one). The writer makes records on the schedule (see
//! [`crate::rate`]: latency counts from each record's *intended* send
//! time, so a stalled producer cannot hide a slow broker), appends them to
//! one RecordBatch v2 per partition ([`BatchBuilder`]), and sends a
//! Produce request when a batch is full (`--batch-size`), has waited
//! `--linger-ms`, the buffer is full (`--buffer-memory`) or the run is
//! over. A request carries the oldest batch of every partition of that
//! leader, up to `--max-request-size`, as Kafka's sender drains them.
//! Up to `--max-in-flight` requests are pipelined per connection
//! (`max.in.flight.requests.per.connection`, default 5); the writer
//! blocks on a condition variable while none is free.
//!
//! The reader takes answers in order (Kafka answers a connection's
//! requests in order), checks the correlation id and each partition's
//! error code, and records every record's latency: ack time minus intended
//! time, in microseconds, into HDR histograms (the run's and the current
//! 5 s window's). With `--acks 0` there is no answer; a record counts as
//! done when its request has been written to the socket, as Kafka's
//! callback fires then.
//!
//! Records without a key stick to one partition until batch.size bytes
//! went to it, then move to the next (Kafka's uniform sticky partitioner;
//! `--partitioner round-robin` spreads them record by record instead);
//! with `--key-size` each record gets a key (its index, zero padded) and
//! goes to `murmur2(key) % partitions`, Kafka's default partitioner. Values are one fixed pseudo-random payload whose first 16
//! bytes carry the record's intended send time (ns since the Unix epoch)
//! and its index, which `end-to-end` reads back.

use std::collections::{BTreeMap, VecDeque};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use clap::Args;
use ringtail::admin::client;
use ringtail::admin::producer::murmur2;
use ringtail_protocol::batch::BatchBuilder;
use ringtail_protocol::CorrelationId;

use crate::kafka::{self, Layout, PartitionLeader};
use crate::rate::{self, Schedule};
use crate::stats::Tally;

/// Bytes of the payload that carry the intended send time and index.
pub const STAMP_BYTES: usize = 16;
/// Records appended per loop turn before the writer looks at its sends
/// again (closed loop, or catching up after a stall).
const APPEND_CHUNK_MAX: usize = 1024;
/// Record framing beyond key and value: length, attributes, deltas, key
/// and value lengths, header count (varints, generously).
const RECORD_OVERHEAD_MAX: usize = 1 + 10 + 5 + 5 + 5 + 5 + 5;

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// Records to send in all.
    #[arg(long)]
    pub num_records: u64,
    /// Bytes of each record's value.
    #[arg(long)]
    pub record_size: usize,
    /// Records per second in all, open loop; -1 for as fast as possible
    /// (closed loop).
    #[arg(long, allow_negative_numbers = true)]
    pub throughput: f64,
    /// 0, 1 or all (-1).
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// Partitions to produce to (the first P of the topic; default all),
    /// and to create with --create-topic (default 16).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Producers, each with its own thread and connection(s).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    #[command(flatten)]
    pub tuning: Tuning,
    /// Create the topic first (an existing one is used as it is).
    #[arg(long)]
    pub create_topic: bool,
    /// Replication factor for --create-topic.
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i16,
    /// Bytes of each record's key (0: no key; see --partitioner).
    #[arg(long, default_value_t = 0)]
    pub key_size: usize,
    /// Seconds between progress lines (Kafka's perf test: 5).
    #[arg(long, default_value_t = 5.0)]
    pub reporting_interval: f64,
}

/// Whose producer defaults the settings start from (`--defaults`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    /// Kafka's Java producer (4.0), as `kafka-producer-perf-test` runs it:
    /// batch.size 16384, linger.ms 5, max.in.flight 5, buffer.memory
    /// 32 MiB, max.request.size 1 MiB (many partitions' batches per
    /// request), sticky partitioner.
    Java,
    /// librdkafka 2.x, as `rdkafka_performance` runs it: batch.size
    /// 1000000, linger.ms 5, max.in.flight 1000000, a 1 GiB queue
    /// (queue.buffering.max.kbytes), one partition's batch per Produce
    /// request, sticky partitioner.
    Librdkafka,
}

/// How records without a key choose their partition (`--partitioner`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// Kafka's uniform sticky partitioner (KIP-794, Kafka 3.3+): stay on
    /// one partition until batch.size bytes went to it, then move to the
    /// next. librdkafka also sticks (for sticky.partitioning.linger.ms,
    /// 10 ms); either way batches fill before they go.
    Sticky,
    /// Record by record over the partitions: every partition's batch
    /// fills at 1/P of the rate, so batches are P times smaller at a
    /// given linger.
    RoundRobin,
}

/// Producer settings with Kafka's names. Each defaults to the value of
/// the client named by `--defaults` (Java unless told).
#[derive(Args, Debug, Clone)]
pub struct Tuning {
    /// Start from this client's producer defaults; the flags below
    /// override single settings.
    #[arg(long, value_enum, default_value = "java")]
    pub defaults: Defaults,
    /// batch.size: bytes a partition's batch may hold before it is sent
    /// [java: 16384, librdkafka: 1000000].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// linger.ms: how long a batch may wait to fill [both: 5].
    #[arg(long)]
    pub linger_ms: Option<f64>,
    /// max.in.flight.requests.per.connection [java: 5, librdkafka: 1000000].
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// buffer.memory: record bytes waiting to be sent; the producer stops
    /// making records while it is full [java: 32 MiB, librdkafka: 1 GiB].
    #[arg(long)]
    pub buffer_memory: Option<usize>,
    /// max.request.size: bytes of batches in one Produce request; the
    /// first batch always goes, so 1 sends one partition per request
    /// [java: 1048576, librdkafka: 1].
    #[arg(long)]
    pub max_request_size: Option<usize>,
    /// Partition choice for records without a key [both: sticky].
    #[arg(long, value_enum)]
    pub partitioner: Option<Partitioner>,
    /// request.timeout.ms: the longest wait for an answer [both: 30000].
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
}

/// The producer settings in force: [`Tuning`] with its defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub batch_size: usize,
    pub linger_ms: f64,
    pub max_in_flight: usize,
    pub buffer_memory: usize,
    pub max_request_size: usize,
    pub partitioner: Partitioner,
    pub request_timeout_ms: u64,
}

impl Settings {
    /// The named client's defaults.
    pub fn defaults(client: Defaults) -> Settings {
        match client {
            Defaults::Java => Settings {
                batch_size: 16_384,
                linger_ms: 5.0,
                max_in_flight: 5,
                buffer_memory: 32 * 1024 * 1024,
                max_request_size: 1024 * 1024,
                partitioner: Partitioner::Sticky,
                request_timeout_ms: 30_000,
            },
            Defaults::Librdkafka => Settings {
                batch_size: 1_000_000,
                linger_ms: 5.0,
                max_in_flight: 1_000_000,
                buffer_memory: 1024 * 1024 * 1024,
                max_request_size: 1,
                partitioner: Partitioner::Sticky,
                request_timeout_ms: 30_000,
            },
        }
    }

    /// `batch.size=.. linger.ms=.. ...`: the line a run prints first.
    pub fn describe(&self) -> String {
        format!(
            "batch.size={} linger.ms={} max.in.flight={} buffer.memory={} max.request.size={} partitioner={}",
            self.batch_size,
            self.linger_ms,
            self.max_in_flight,
            self.buffer_memory,
            self.max_request_size,
            match self.partitioner {
                Partitioner::Sticky => "sticky",
                Partitioner::RoundRobin => "round-robin",
            }
        )
    }
}

impl Tuning {
    /// The settings in force, checked.
    pub fn resolve(&self) -> Result<Settings, String> {
        let d = Settings::defaults(self.defaults);
        let s = Settings {
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            linger_ms: self.linger_ms.unwrap_or(d.linger_ms),
            max_in_flight: self.max_in_flight.unwrap_or(d.max_in_flight),
            buffer_memory: self.buffer_memory.unwrap_or(d.buffer_memory),
            max_request_size: self.max_request_size.unwrap_or(d.max_request_size),
            partitioner: self.partitioner.unwrap_or(d.partitioner),
            request_timeout_ms: self.request_timeout_ms.unwrap_or(d.request_timeout_ms),
        };
        if s.max_in_flight == 0 {
            return Err("--max-in-flight must be at least 1".into());
        }
        if !(s.linger_ms >= 0.0 && s.linger_ms.is_finite()) {
            return Err("--linger-ms must be a number >= 0".into());
        }
        if s.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        Ok(s)
    }
}

/// Kafka's `acks` spelling to the wire value.
pub fn parse_acks(acks: &str) -> Result<i16, String> {
    match acks.trim() {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => Err(format!("--acks must be 0, 1 or all, not {other:?}")),
    }
}

/// Everything a run of producers needs, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub topic: String,
    pub records: u64,
    pub record_size: usize,
    pub key_size: usize,
    pub schedule: Schedule,
    pub acks: i16,
    pub producers: usize,
    pub partitions: Vec<PartitionLeader>,
    pub layout: Layout,
    pub settings: Settings,
    pub reporting_interval: Option<Duration>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub done: Tally,
    /// From the start to the last answer.
    pub elapsed: Duration,
    /// Records refused by the broker, per error code.
    pub failed: BTreeMap<i16, u64>,
    /// Produce requests sent, the batches they carried and those
    /// batches' bytes: the request shape the broker saw.
    pub requests: u64,
    pub batches: u64,
    pub batch_bytes: u64,
}

impl Outcome {
    /// `N Produce requests, B batches (X batches/request, Y KiB and Z records/batch)`.
    pub fn shape_line(&self) -> String {
        let per = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let records = self.done.records + self.failed_total();
        format!(
            "{} Produce requests, {} batches ({:.1} batches/request, {:.1} KiB and {:.1} records/batch)",
            self.requests,
            self.batches,
            per(self.batches, self.requests),
            per(self.batch_bytes, self.batches) / 1024.0,
            per(records, self.batches),
        )
    }

    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// `N records failed: NAME xN, ...`, or `None` when none failed.
    pub fn failure_line(&self) -> Option<String> {
        (!self.failed.is_empty()).then(|| {
            let parts: Vec<String> = self
                .failed
                .iter()
                .map(|(code, n)| format!("{} x{n}", client::error_name(*code)))
                .collect();
            format!(
                "{} records failed: {}",
                self.failed_total(),
                parts.join(", ")
            )
        })
    }
}

/// Checks the arguments and looks the topic up (creating it if asked).
pub fn plan(args: &ProduceArgs) -> Result<Plan, String> {
    let acks = parse_acks(&args.acks)?;
    if args.producers == 0 {
        return Err("--producers must be at least 1".into());
    }
    let settings = args.tuning.resolve()?;
    let create = args
        .create_topic
        .then(|| (args.partitions.unwrap_or(16), args.replication_factor));
    let layout = kafka::layout(
        &args.bootstrap_server,
        &args.topic,
        create,
        Duration::from_secs(30),
    )?;
    let mut partitions = layout.partitions.clone();
    if let Some(p) = args.partitions {
        let available = partitions.len();
        if p < 1 || p as usize > available {
            return Err(format!(
                "--partitions {p}: topic {} has {available} partitions",
                args.topic
            ));
        }
        partitions.truncate(p as usize);
    }
    let interval = args.reporting_interval;
    Ok(Plan {
        topic: args.topic.clone(),
        records: args.num_records,
        record_size: args.record_size,
        key_size: args.key_size,
        schedule: Schedule::from_throughput(args.throughput),
        acks,
        producers: args.producers,
        partitions,
        layout,
        settings,
        reporting_interval: (interval > 0.0 && interval.is_finite())
            .then(|| Duration::from_secs_f64(interval)),
    })
}

/// Statistics shared by the readers and the reporter.
#[derive(Default)]
struct Stats {
    window: Tally,
    total: Tally,
    failed: BTreeMap<i16, u64>,
    last_done_ns: u64,
    requests: u64,
    batches: u64,
    batch_bytes: u64,
}

/// A request waiting for its answer.
struct Pending {
    correlation_id: i32,
    sent: Instant,
    /// (partition, intended send time of each record, ns after start)
    batches: Vec<(i32, Vec<u64>)>,
}

#[derive(Default)]
struct ConnState {
    in_flight: VecDeque<Pending>,
    failure: Option<String>,
}

/// State a producer's writer shares with its readers.
#[derive(Default)]
struct Shared {
    conns: Vec<ConnState>,
    /// Bumped on every answer, so the writer can tell whether anything
    /// changed between its look and its wait.
    completions: u64,
    closing: bool,
}

type SharedSync = Arc<(Mutex<Shared>, Condvar)>;

/// Runs the plan: starts the producers at one instant, prints a progress
/// line every reporting interval, and returns when every record is
/// answered (or a connection failed).
pub fn run(plan: &Plan) -> Result<Outcome, String> {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let start_wall_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos() as u64;
    let start = Instant::now();
    let mut producers = Vec::new();
    for id in 0..plan.producers {
        let producer = Producer::connect(plan, id, start, start_wall_ns, stats.clone())?;
        producers.push(
            std::thread::Builder::new()
                .name(format!("producer-{id}"))
                .spawn(move || producer.run())
                .map_err(|e| e.to_string())?,
        );
    }
    report_until_done(plan, &stats, start, &producers);
    let mut first_error = None;
    for p in producers {
        match p.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("a producer thread panicked".into());
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let stats = stats.lock().expect("stats lock");
    Ok(Outcome {
        done: stats.total.clone(),
        elapsed: Duration::from_nanos(stats.last_done_ns),
        failed: stats.failed.clone(),
        requests: stats.requests,
        batches: stats.batches,
        batch_bytes: stats.batch_bytes,
    })
}

fn report_until_done(
    plan: &Plan,
    stats: &Mutex<Stats>,
    start: Instant,
    producers: &[JoinHandle<Result<(), String>>],
) {
    let mut window_start = start;
    let tick = Duration::from_millis(50);
    loop {
        if producers.iter().all(|p| p.is_finished()) {
            return;
        }
        std::thread::sleep(tick);
        let Some(interval) = plan.reporting_interval else {
            continue;
        };
        let now = Instant::now();
        if now - window_start >= interval {
            let window = stats.lock().expect("stats lock").window.take();
            println!("{}", window.progress_line("sent", now - window_start));
            window_start = now;
        }
    }
}

/// The sticky partitioner's state: the partition records without a key
/// go to, and the batch bytes it has taken since it became current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sticky {
    pub current: usize,
    pub bytes: usize,
}

impl Sticky {
    /// After a record of `appended` batch bytes went to the current
    /// partition: move to the next of `partitions` once another record
    /// (at most `record_max` bytes) would take it past `batch_size`
    /// (KIP-794: a partition keeps the records until batch.size bytes
    /// went to it).
    pub fn appended(
        &mut self,
        appended: usize,
        record_max: usize,
        batch_size: usize,
        partitions: usize,
    ) {
        self.bytes += appended;
        if self.bytes + record_max > batch_size {
            self.current = (self.current + 1) % partitions.max(1);
            self.bytes = 0;
        }
    }
}

struct OpenBatch {
    builder: BatchBuilder,
    intended_ns: Vec<u64>,
    created: Instant,
    full: bool,
}

struct PartitionState {
    partition: i32,
    batches: VecDeque<OpenBatch>,
}

struct Conn {
    stream: TcpStream,
    /// Indexes into `Producer::partitions` led by this connection's broker.
    partitions: Vec<usize>,
    /// Where the next request starts taking batches, for fairness when
    /// max.request.size cuts a request short.
    next_first: usize,
    reader: Option<JoinHandle<()>>,
}

struct Producer {
    id: usize,
    producers: usize,
    records: u64,
    topic: String,
    schedule: Schedule,
    acks: i16,
    tuning: Settings,
    linger: Duration,
    version: i16,
    record_bytes: u64,
    record_bytes_max: usize,
    key_size: usize,
    start: Instant,
    start_wall_ns: u64,
    partitions: Vec<PartitionState>,
    conns: Vec<Conn>,
    shared: SharedSync,
    stats: Arc<Mutex<Stats>>,
    payload: Vec<u8>,
    key: Vec<u8>,
    /// The next of this producer's records to make (0-based, local).
    next: u64,
    sticky: Sticky,
    pending_bytes: usize,
    next_correlation: i32,
    seen_completions: u64,
    /// Requests in flight per connection at the last look.
    in_flight_seen: Vec<usize>,
    out: Vec<u8>,
}

impl Producer {
    fn connect(
        plan: &Plan,
        id: usize,
        start: Instant,
        start_wall_ns: u64,
        stats: Arc<Mutex<Stats>>,
    ) -> Result<Producer, String> {
        let timeout = Duration::from_millis(plan.settings.request_timeout_ms);
        let mut leaders: Vec<i32> = plan.partitions.iter().map(|p| p.leader).collect();
        leaders.sort_unstable();
        leaders.dedup();
        let shared: SharedSync = Arc::default();
        shared.0.lock().expect("fresh lock").conns =
            leaders.iter().map(|_| ConnState::default()).collect();
        let mut conns = Vec::new();
        for (c, &leader) in leaders.iter().enumerate() {
            let stream = kafka::connect(plan.layout.leader_addr(leader)?, timeout)?;
            let partitions = plan
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.leader == leader)
                .map(|(i, _)| i)
                .collect();
            let reader = if plan.acks == 0 {
                None
            } else {
                let reader = Reader {
                    conn: c,
                    stream: stream.try_clone().map_err(|e| e.to_string())?,
                    version: plan.layout.produce_version,
                    record_bytes: (plan.record_size + plan.key_size) as u64,
                    timeout,
                    start,
                    shared: shared.clone(),
                    stats: stats.clone(),
                };
                Some(
                    std::thread::Builder::new()
                        .name(format!("producer-{id}-reader-{c}"))
                        .spawn(move || reader.run())
                        .map_err(|e| e.to_string())?,
                )
            };
            conns.push(Conn {
                stream,
                partitions,
                next_first: 0,
                reader,
            });
        }
        Ok(Producer {
            id,
            producers: plan.producers,
            records: rate::producer_share(plan.records, id, plan.producers),
            topic: plan.topic.clone(),
            schedule: plan.schedule,
            acks: plan.acks,
            tuning: plan.settings.clone(),
            linger: Duration::from_secs_f64(plan.settings.linger_ms / 1000.0),
            version: plan.layout.produce_version,
            record_bytes: (plan.record_size + plan.key_size) as u64,
            record_bytes_max: plan.record_size + plan.key_size + RECORD_OVERHEAD_MAX,
            key_size: plan.key_size,
            start,
            start_wall_ns,
            partitions: plan
                .partitions
                .iter()
                .map(|p| PartitionState {
                    partition: p.partition,
                    batches: VecDeque::new(),
                })
                .collect(),
            conns,
            shared,
            stats,
            payload: payload(plan.record_size, id as u64),
            key: vec![b'0'; plan.key_size],
            next: 0,
            // Producers start on different partitions.
            sticky: Sticky {
                current: id % plan.partitions.len().max(1),
                bytes: 0,
            },
            pending_bytes: 0,
            next_correlation: 0,
            seen_completions: 0,
            in_flight_seen: Vec::new(),
            out: Vec::new(),
        })
    }

    fn run(mut self) -> Result<(), String> {
        let result = self.produce();
        self.close();
        result
    }

    fn produce(&mut self) -> Result<(), String> {
        loop {
            let now = Instant::now();
            let appended = self.append_due(now);
            let sent = self.send_ready(now)?;
            if self.next == self.records && self.pending_bytes == 0 && self.all_empty() {
                return self.drain();
            }
            if appended == 0 && !sent {
                self.wait(now)?;
            }
        }
    }

    fn ns_since_start(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Appends the records whose intended time has come (closed loop: as
    /// many as the buffer takes), at most a chunk; returns how many.
    fn append_due(&mut self, now: Instant) -> usize {
        let now_ns = self.ns_since_start(now);
        let mut appended = 0;
        while self.next < self.records
            && self.pending_bytes < self.tuning.buffer_memory
            && appended < APPEND_CHUNK_MAX
        {
            let index = self.id as u64 + self.next * self.producers as u64;
            let intended_ns = match self.schedule.intended_ns(index) {
                Some(t) if t > now_ns => break,
                Some(t) => t,
                None => now_ns,
            };
            self.append(index, intended_ns, now);
            self.next += 1;
            appended += 1;
        }
        appended
    }

    fn choose_partition(&mut self, index: u64) -> usize {
        let n = self.partitions.len();
        if self.key_size == 0 {
            return match self.tuning.partitioner {
                Partitioner::Sticky => self.sticky.current,
                Partitioner::RoundRobin => ((self.id as u64 + self.next) % n as u64) as usize,
            };
        }
        fill_key(&mut self.key, index);
        (murmur2(&self.key) & 0x7fff_ffff) as usize % n
    }

    fn append(&mut self, index: u64, intended_ns: u64, now: Instant) {
        let p = self.choose_partition(index);
        let stamp_ns = self.start_wall_ns + intended_ns;
        if self.payload.len() >= STAMP_BYTES {
            self.payload[..8].copy_from_slice(&stamp_ns.to_be_bytes());
            self.payload[8..16].copy_from_slice(&index.to_be_bytes());
        }
        let timestamp_ms = (stamp_ns / 1_000_000) as i64;
        let (batch_size, record_max) = (self.tuning.batch_size, self.record_bytes_max);
        let batches = &mut self.partitions[p].batches;
        if batches.back().is_none_or(|b| b.full) {
            batches.push_back(OpenBatch {
                builder: BatchBuilder::new(),
                intended_ns: Vec::new(),
                created: now,
                full: false,
            });
        }
        let batch = batches.back_mut().expect("pushed above");
        let key = (self.key_size > 0).then_some(&self.key[..]);
        let before = batch.builder.size_bytes();
        batch
            .builder
            .append(timestamp_ms, key, Some(&self.payload), &[]);
        batch.intended_ns.push(intended_ns);
        // Closed as Kafka closes a batch: when the next record would not fit.
        batch.full = batch.builder.size_bytes() + record_max > batch_size;
        let appended = batch.builder.size_bytes() - before;
        self.pending_bytes += self.record_bytes as usize;
        if self.key_size == 0 && self.tuning.partitioner == Partitioner::Sticky {
            self.sticky
                .appended(appended, record_max, batch_size, self.partitions.len());
        }
    }

    fn all_empty(&self) -> bool {
        self.partitions.iter().all(|p| p.batches.is_empty())
    }

    /// Whether connection `c` has a batch that should go now.
    fn conn_ready(&self, c: usize, now: Instant) -> bool {
        let flushing = self.next == self.records || self.pending_bytes >= self.tuning.buffer_memory;
        self.conns[c].partitions.iter().any(|&p| {
            self.partitions[p].batches.front().is_some_and(|b| {
                flushing || b.full || now.saturating_duration_since(b.created) >= self.linger
            })
        })
    }

    /// Sends every request that is ready and has an in-flight slot.
    fn send_ready(&mut self, now: Instant) -> Result<bool, String> {
        let mut in_flight = {
            let shared = self.shared.0.lock().expect("shared lock");
            for (c, conn) in shared.conns.iter().enumerate() {
                if let Some(f) = &conn.failure {
                    return Err(format!("producer {} connection {c}: {f}", self.id));
                }
            }
            self.seen_completions = shared.completions;
            shared
                .conns
                .iter()
                .map(|c| c.in_flight.len())
                .collect::<Vec<_>>()
        };
        let mut sent = false;
        for (c, count) in in_flight.iter_mut().enumerate() {
            while *count < self.tuning.max_in_flight && self.conn_ready(c, now) {
                self.send(c)?;
                if self.acks != 0 {
                    *count += 1;
                }
                sent = true;
            }
        }
        self.in_flight_seen = in_flight;
        Ok(sent)
    }

    /// Sends the oldest batch of each of `c`'s partitions, up to
    /// max.request.size.
    fn send(&mut self, c: usize) -> Result<(), String> {
        let conn = &mut self.conns[c];
        let n = conn.partitions.len();
        let mut taken: Vec<(usize, OpenBatch)> = Vec::new();
        let mut bytes = 0;
        for k in 0..n {
            let p = conn.partitions[(conn.next_first + k) % n];
            let Some(front) = self.partitions[p].batches.front() else {
                continue;
            };
            let size = front.builder.size_bytes();
            if !taken.is_empty() && bytes + size > self.tuning.max_request_size {
                break;
            }
            bytes += size;
            let batch = self.partitions[p]
                .batches
                .pop_front()
                .expect("front exists");
            taken.push((p, batch));
        }
        conn.next_first = (conn.next_first + 1) % n.max(1);
        assert!(
            !taken.is_empty(),
            "send is only called when a batch is ready"
        );

        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        self.out.clear();
        let refs: Vec<(i32, &BatchBuilder)> = taken
            .iter()
            .map(|(p, b)| (self.partitions[*p].partition, &b.builder))
            .collect();
        kafka::encode_produce(
            &mut self.out,
            self.version,
            CorrelationId(correlation_id),
            self.acks,
            i32::try_from(self.tuning.request_timeout_ms).unwrap_or(i32::MAX),
            &self.topic,
            &refs,
        );
        let records: usize = taken.iter().map(|(_, b)| b.intended_ns.len()).sum();
        {
            let mut stats = self.stats.lock().expect("stats lock");
            stats.requests += 1;
            stats.batches += taken.len() as u64;
            stats.batch_bytes += bytes as u64;
        }
        self.pending_bytes -= records * self.record_bytes as usize;
        let batches: Vec<(i32, Vec<u64>)> = taken
            .into_iter()
            .map(|(p, b)| (self.partitions[p].partition, b.intended_ns))
            .collect();
        if self.acks == 0 {
            self.write(c)?;
            let done_ns = self.ns_since_start(Instant::now());
            record_done(&self.stats, self.record_bytes, done_ns, &batches, 0);
            return Ok(());
        }
        // Queued before the write, so the answer always finds it.
        self.shared.0.lock().expect("shared lock").conns[c]
            .in_flight
            .push_back(Pending {
                correlation_id,
                sent: Instant::now(),
                batches,
            });
        self.write(c)
    }

    fn write(&mut self, c: usize) -> Result<(), String> {
        kafka::write_all(&mut self.conns[c].stream, &self.out)
            .map_err(|e| format!("producer {} sending Produce: {e}", self.id))
    }

    /// Sleeps until the next record is due, a batch's linger ends, or an
    /// answer frees a slot, whichever comes first.
    fn wait(&mut self, now: Instant) -> Result<(), String> {
        let mut deadline: Option<Instant> = None;
        let mut earliest = |t: Instant| {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        };
        if self.next < self.records && self.pending_bytes < self.tuning.buffer_memory {
            let index = self.id as u64 + self.next * self.producers as u64;
            match self.schedule.intended_ns(index) {
                Some(t) => earliest(self.start + Duration::from_nanos(t)),
                None => earliest(now),
            }
        }
        // A connection with no free slot waits for an answer, whatever
        // its batches' linger says; looking at their (past) deadlines
        // would spin.
        for (conn, &count) in self.conns.iter().zip(&self.in_flight_seen) {
            if count >= self.tuning.max_in_flight {
                continue;
            }
            for &p in &conn.partitions {
                if let Some(b) = self.partitions[p].batches.front() {
                    earliest(b.created + self.linger);
                }
            }
        }
        let (lock, cv) = &*self.shared;
        let shared = lock.lock().expect("shared lock");
        if shared.completions != self.seen_completions {
            return Ok(());
        }
        // Answers notify; the cap only guards against a lost wakeup.
        let cap = now + Duration::from_secs(1);
        let until = deadline.map_or(cap, |d| d.min(cap));
        let left = until.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            drop(cv.wait_timeout(shared, left).expect("shared lock"));
        }
        Ok(())
    }

    /// Waits for every request in flight to be answered.
    fn drain(&mut self) -> Result<(), String> {
        let (lock, cv) = &*self.shared;
        let mut shared = lock.lock().expect("shared lock");
        loop {
            if let Some((c, f)) = shared
                .conns
                .iter()
                .enumerate()
                .find_map(|(c, s)| s.failure.as_ref().map(|f| (c, f)))
            {
                return Err(format!("producer {} connection {c}: {f}", self.id));
            }
            if shared.conns.iter().all(|c| c.in_flight.is_empty()) {
                return Ok(());
            }
            shared = cv
                .wait_timeout(shared, Duration::from_secs(1))
                .expect("shared lock")
                .0;
        }
    }

    fn close(&mut self) {
        self.shared.0.lock().expect("shared lock").closing = true;
        for conn in &mut self.conns {
            let _ = conn.stream.shutdown(Shutdown::Both);
            if let Some(r) = conn.reader.take() {
                let _ = r.join();
            }
        }
    }
}

/// Counts the records of answered (or, acks=0, written) batches;
/// `error_code` other than 0 counts them as failed.
fn record_done(
    stats: &Mutex<Stats>,
    record_bytes: u64,
    done_ns: u64,
    batches: &[(i32, Vec<u64>)],
    error_code: i16,
) {
    let mut stats = stats.lock().expect("stats lock");
    let stats = &mut *stats;
    stats.last_done_ns = stats.last_done_ns.max(done_ns);
    for (_, intended) in batches {
        if error_code != 0 {
            *stats.failed.entry(error_code).or_default() += intended.len() as u64;
            continue;
        }
        for &t in intended {
            let latency = rate::latency_us(t, done_ns);
            stats.window.record(record_bytes, latency);
            stats.total.record(record_bytes, latency);
        }
    }
}

/// Takes a connection's answers in order.
struct Reader {
    conn: usize,
    stream: TcpStream,
    version: i16,
    record_bytes: u64,
    timeout: Duration,
    start: Instant,
    shared: SharedSync,
    stats: Arc<Mutex<Stats>>,
}

impl Reader {
    fn run(mut self) {
        if let Err(e) = self.read_answers() {
            let (lock, cv) = &*self.shared;
            let mut shared = lock.lock().expect("shared lock");
            if !shared.closing {
                shared.conns[self.conn].failure = Some(e);
            }
            cv.notify_all();
        }
    }

    fn read_answers(&mut self) -> Result<(), String> {
        let mut buf = BytesMut::new();
        loop {
            match kafka::read_frame(&mut self.stream, &mut buf) {
                Ok(true) => {}
                Ok(false) => return Err("the broker closed the connection".into()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    self.check_timeout()?;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            }
            let done_ns = self.start.elapsed().as_nanos() as u64;
            let pending = {
                let (lock, cv) = &*self.shared;
                let mut shared = lock.lock().expect("shared lock");
                let pending = shared.conns[self.conn].in_flight.pop_front();
                shared.completions += 1;
                cv.notify_all();
                pending
            };
            let pending = pending.ok_or("an answer came with no request in flight")?;
            self.take_answer(&buf, pending, done_ns)?;
        }
    }

    fn check_timeout(&self) -> Result<(), String> {
        let shared = self.shared.0.lock().expect("shared lock");
        match shared.conns[self.conn].in_flight.front() {
            Some(p) if p.sent.elapsed() >= self.timeout => Err(format!(
                "no answer to Produce {} within {:?}",
                p.correlation_id, self.timeout
            )),
            _ => Ok(()),
        }
    }

    fn take_answer(&self, body: &[u8], pending: Pending, done_ns: u64) -> Result<(), String> {
        let answer = kafka::decode_produce_response(self.version, body)?;
        if answer.correlation_id.0 != pending.correlation_id {
            return Err(format!(
                "answer {} to request {}",
                answer.correlation_id.0, pending.correlation_id
            ));
        }
        for (partition, intended) in pending.batches {
            let code = answer
                .partitions
                .iter()
                .find(|(p, _)| *p == partition)
                .map(|(_, code)| *code)
                .ok_or_else(|| format!("no answer for partition {partition}"))?;
            record_done(
                &self.stats,
                self.record_bytes,
                done_ns,
                &[(partition, intended)],
                code,
            );
        }
        Ok(())
    }
}

/// Writes `index` as zero-padded decimal into `key` (the last digits when
/// the key is short).
fn fill_key(key: &mut [u8], mut index: u64) {
    for b in key.iter_mut().rev() {
        *b = b'0' + (index % 10) as u8;
        index /= 10;
    }
}

/// A value of `size` bytes of pseudo-random uppercase letters (as Kafka's
/// perf test makes), seeded so that runs are repeatable.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect()
}

/// Reads the stamp a producer wrote into a value: (intended send time in
/// ns since the Unix epoch, record index).
pub fn read_stamp(value: &[u8]) -> Option<(u64, u64)> {
    let stamp = value.get(..STAMP_BYTES)?;
    let ns = u64::from_be_bytes(stamp[..8].try_into().ok()?);
    let index = u64::from_be_bytes(stamp[8..].try_into().ok()?);
    Some((ns, index))
}

/// `ringtail-perf produce`.
pub fn main(args: &ProduceArgs) -> Result<bool, String> {
    let plan = plan(args)?;
    eprintln!(
        "producing {} records of {} B to {} ({} partitions) at {}, acks={}, {} producer(s), {}",
        plan.records,
        plan.record_size,
        plan.topic,
        plan.partitions.len(),
        match plan.schedule {
            Schedule::Open { records_per_sec } =>
                format!("{records_per_sec} records/sec (open loop)"),
            Schedule::Closed => "the maximum rate (closed loop)".into(),
        },
        args.acks,
        plan.producers,
        plan.settings.describe(),
    );
    let outcome = run(&plan)?;
    println!("{}", outcome.done.summary_line("sent", outcome.elapsed));
    eprintln!("{}", outcome.shape_line());
    eprintln!("{}", crate::stats::cpu_line(outcome.elapsed));
    if let Some(line) = outcome.failure_line() {
        eprintln!("{line}");
    }
    Ok(outcome.failed_total() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_follow_kafkas_spelling() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("-1"), Ok(-1));
        assert_eq!(parse_acks("1"), Ok(1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn stamps_round_trip() {
        let mut value = payload(32, 1);
        assert!(value.iter().all(u8::is_ascii_uppercase));
        value[..8].copy_from_slice(&123u64.to_be_bytes());
        value[8..16].copy_from_slice(&7u64.to_be_bytes());
        assert_eq!(read_stamp(&value), Some((123, 7)));
        assert_eq!(read_stamp(&value[..15]), None);
    }

    fn tuning(defaults: Defaults) -> Tuning {
        Tuning {
            defaults,
            batch_size: None,
            linger_ms: None,
            max_in_flight: None,
            buffer_memory: None,
            max_request_size: None,
            partitioner: None,
            request_timeout_ms: None,
        }
    }

    #[test]
    fn settings_start_from_the_named_clients_defaults() {
        let java = tuning(Defaults::Java).resolve().expect("valid");
        assert_eq!(java, Settings::defaults(Defaults::Java));
        assert_eq!(
            (java.batch_size, java.max_in_flight, java.max_request_size),
            (16_384, 5, 1_048_576)
        );
        let rdkafka = tuning(Defaults::Librdkafka).resolve().expect("valid");
        assert_eq!(
            (
                rdkafka.batch_size,
                rdkafka.max_in_flight,
                rdkafka.max_request_size
            ),
            (1_000_000, 1_000_000, 1)
        );
        assert_eq!(rdkafka.linger_ms, 5.0);
        assert_eq!(rdkafka.partitioner, Partitioner::Sticky);
        // A flag overrides one setting and keeps the rest.
        let mut t = tuning(Defaults::Librdkafka);
        t.max_in_flight = Some(5);
        t.partitioner = Some(Partitioner::RoundRobin);
        let s = t.resolve().expect("valid");
        assert_eq!((s.max_in_flight, s.batch_size), (5, 1_000_000));
        assert_eq!(s.partitioner, Partitioner::RoundRobin);
        assert!(s.describe().contains("partitioner=round-robin"));
        for bad in [
            Tuning {
                max_in_flight: Some(0),
                ..tuning(Defaults::Java)
            },
            Tuning {
                linger_ms: Some(-1.0),
                ..tuning(Defaults::Java)
            },
            Tuning {
                batch_size: Some(0),
                ..tuning(Defaults::Java)
            },
        ] {
            assert!(bad.resolve().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sticky_partitioner_moves_on_after_batch_size_bytes() {
        // Records of 1040 batch bytes (at most 1060): a 16 KiB batch.size
        // takes 15 of them (15 * 1040 + 1060 > 16384), then the next
        // partition.
        let mut s = Sticky {
            current: 2,
            bytes: 0,
        };
        let mut per_partition = Vec::new();
        let mut count = 0;
        for _ in 0..100 {
            let before = s.current;
            s.appended(1040, 1060, 16_384, 3);
            count += 1;
            if s.current != before {
                per_partition.push((before, count));
                count = 0;
            }
        }
        assert_eq!(&per_partition[..4], &[(2, 15), (0, 15), (1, 15), (2, 15)]);
        // One partition: it stays.
        let mut one = Sticky {
            current: 0,
            bytes: 0,
        };
        for _ in 0..100 {
            one.appended(1040, 1060, 16_384, 1);
            assert_eq!(one.current, 0);
        }
    }

    #[test]
    fn keys_are_zero_padded_indexes() {
        let mut key = vec![0u8; 6];
        fill_key(&mut key, 4711);
        assert_eq!(&key, b"004711");
        let mut short = vec![0u8; 2];
        fill_key(&mut short, 4711);
        assert_eq!(&short, b"11");
    }
}
