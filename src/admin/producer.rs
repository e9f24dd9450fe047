//! `ringtail console-producer`, like `kafka-console-producer.sh`: one
//! record per stdin line, keys and headers parsed by Kafka's
//! `LineMessageReader` rules, records batched per partition and sent when
//! ~16 KiB are pending, when the oldest pending line is 100 ms old
//! (`linger.ms`), and at end of input.
//!
//! Keyed records go to `murmur2(key) % partitions` (Kafka's default
//! partitioner, so a key lands where a Java producer would put it);
//! records without a key stick to one partition per batch and move round
//! the partitions from batch to batch (Kafka's sticky partitioning).
//! Every Produce answer is checked: retriable errors are retried after a
//! metadata refresh, others stop the tool with exit code 1.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use ringtail_protocol::batch::BatchBuilder;
use ringtail_protocol::messages::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use ringtail_protocol::messages::kafka_protocol::messages::{ProduceRequest, TopicName};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;

use super::client::{self, Client, ClientError, Leaders, PartitionInfo};
use super::props::Props;

/// Lines read ahead of the sender; the reader blocks when it is full.
const LINES_QUEUED_MAX: usize = 1024;
/// Produce v13 names topics by id; requests here carry names.
const PRODUCE_VERSION_MAX: i16 = 12;

#[derive(Args, Debug, Clone)]
pub struct ProducerArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT", alias = "broker-list")]
    pub bootstrap_server: String,
    /// The topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Line reader settings: parse.key, key.separator, parse.headers,
    /// headers.delimiter, headers.separator, headers.key.separator,
    /// null.marker, ignore.error; repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Producer settings: acks, linger.ms, batch.size, retries,
    /// retry.backoff.ms, request.timeout.ms, max.block.ms, client.id,
    /// compression.type; repeatable.
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_properties: Vec<String>,
    /// A properties file of producer settings.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
    /// none, gzip, snappy, lz4 or zstd (without a value: gzip). Only none
    /// is produced by this tool.
    #[arg(long, value_name = "CODEC", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// The acks of each Produce request: -1 (all), 1 or 0 (default -1).
    #[arg(long, value_name = "ACKS")]
    pub request_required_acks: Option<String>,
    /// Send each line on its own and wait for the answer.
    #[arg(long)]
    pub sync: bool,
    /// linger.ms: how long a line may wait for more to fill its batch.
    #[arg(long = "timeout", value_name = "MS")]
    pub linger_ms: Option<u64>,
    /// batch.size: pending bytes that trigger a send.
    #[arg(long, value_name = "BYTES")]
    pub batch_size: Option<usize>,
}

/// The producer settings in force, from defaults, the config file,
/// `--producer-property` and the dedicated flags, in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub acks: i16,
    pub linger: Duration,
    pub batch_bytes: usize,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub request_timeout_ms: i32,
    pub max_block: Duration,
    pub client_id: String,
}

const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "linger.ms",
    "batch.size",
    "retries",
    "retry.backoff.ms",
    "request.timeout.ms",
    "max.block.ms",
    "client.id",
    "compression.type",
    "bootstrap.servers",
];

const READER_KEYS: &[&str] = &[
    "parse.key",
    "key.separator",
    "parse.headers",
    "headers.delimiter",
    "headers.separator",
    "headers.key.separator",
    "null.marker",
    "ignore.error",
];

/// Kafka's acks spellings.
pub fn parse_acks(acks: &str) -> Result<i16, String> {
    match acks.trim() {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => Err(format!("invalid acks {other:?}: expected all, -1, 0 or 1")),
    }
}

/// Refuses the codecs this tool does not write.
pub fn check_codec(codec: &str) -> Result<(), String> {
    match codec.trim().to_ascii_lowercase().as_str() {
        "none" | "" => Ok(()),
        c @ ("gzip" | "snappy" | "lz4" | "zstd") => Err(format!(
            "compression codec {c} is not supported by ringtail console-producer: it sends uncompressed batches (use --compression-codec none; consumers read all of Kafka's codecs)"
        )),
        other => Err(format!(
            "unknown compression codec {other:?}: expected none, gzip, snappy, lz4 or zstd"
        )),
    }
}

impl ProducerConfig {
    pub fn from_args(args: &ProducerArgs) -> Result<ProducerConfig, String> {
        let mut props = Props::default();
        if let Some(path) = &args.producer_config {
            props.add_file(path)?;
        }
        props.add_flags("--producer-property", &args.producer_properties)?;
        if let Some(acks) = &args.request_required_acks {
            props.set("acks", acks);
        }
        if let Some(codec) = &args.compression_codec {
            props.set("compression.type", codec);
        }
        if let Some(ms) = args.linger_ms {
            props.set("linger.ms", &ms.to_string());
        }
        if let Some(bytes) = args.batch_size {
            props.set("batch.size", &bytes.to_string());
        }
        for key in props.unknown(PRODUCER_KEYS) {
            eprintln!("WARN: producer property {key} is not used by ringtail console-producer");
        }
        check_codec(props.get("compression.type").unwrap_or("none"))?;
        let batch_bytes: usize = props.number("batch.size", 16 * 1024)?;
        Ok(ProducerConfig {
            acks: parse_acks(props.get("acks").unwrap_or("-1"))?,
            linger: Duration::from_millis(props.number("linger.ms", 100)?),
            batch_bytes: batch_bytes.max(1),
            retries: props.number("retries", 5)?,
            retry_backoff: Duration::from_millis(props.number("retry.backoff.ms", 100)?),
            request_timeout_ms: props.number("request.timeout.ms", 30_000)?,
            max_block: Duration::from_millis(props.number("max.block.ms", 60_000)?),
            client_id: props
                .get("client.id")
                .unwrap_or("console-producer")
                .to_owned(),
        })
    }
}

/// One parsed input line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Kafka's `LineMessageReader`: `[headers<delimiter>][key<separator>]value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReader {
    pub parse_key: bool,
    pub key_separator: Vec<u8>,
    pub parse_headers: bool,
    pub headers_delimiter: Vec<u8>,
    pub headers_separator: Vec<u8>,
    pub headers_key_separator: Vec<u8>,
    pub null_marker: Option<Vec<u8>>,
    pub ignore_error: bool,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from);
    }
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

fn split<'a>(s: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    while let Some(at) = find(s, separator, start).filter(|_| !separator.is_empty()) {
        parts.push(&s[start..at]);
        start = at + separator.len();
    }
    parts.push(&s[start..]);
    parts
}

impl LineReader {
    pub fn from_props(props: &Props) -> Result<LineReader, String> {
        for key in props.unknown(READER_KEYS) {
            eprintln!("WARN: property {key} is not used by ringtail console-producer");
        }
        let text = |key: &str, default: &str| props.get(key).unwrap_or(default).as_bytes().to_vec();
        let reader = LineReader {
            parse_key: props.flag("parse.key"),
            key_separator: text("key.separator", "\t"),
            parse_headers: props.flag("parse.headers"),
            headers_delimiter: text("headers.delimiter", "\t"),
            headers_separator: text("headers.separator", ","),
            headers_key_separator: text("headers.key.separator", ":"),
            null_marker: props.get("null.marker").map(|m| m.as_bytes().to_vec()),
            ignore_error: props.flag("ignore.error"),
        };
        if reader.parse_key && reader.key_separator.is_empty() {
            return Err("key.separator must not be empty".into());
        }
        Ok(reader)
    }

    fn is_null(&self, field: &[u8]) -> bool {
        self.null_marker.as_deref() == Some(field)
    }

    /// Splits off the part of `line` before `separator` (from `start`),
    /// or fails as Kafka does when the separator is missing.
    fn part<'a>(
        &self,
        enabled: bool,
        line: &'a [u8],
        start: usize,
        separator: &[u8],
        what: &str,
        number: u64,
    ) -> Result<Option<&'a [u8]>, String> {
        if !enabled {
            return Ok(None);
        }
        match find(line, separator, start) {
            Some(at) => Ok(Some(&line[start..at])),
            None if self.ignore_error => Ok(None),
            None => Err(format!(
                "No {what} found on line number {number}: '{}'",
                String::from_utf8_lossy(line)
            )),
        }
    }

    /// Parses line `number` (1-based, for messages).
    pub fn parse(&self, number: u64, line: &[u8]) -> Result<LineRecord, String> {
        let headers = self.part(
            self.parse_headers,
            line,
            0,
            &self.headers_delimiter,
            "headers delimiter",
            number,
        )?;
        let header_end = headers.map_or(0, |h| h.len() + self.headers_delimiter.len());
        let key = self.part(
            self.parse_key,
            line,
            header_end,
            &self.key_separator,
            "key separator",
            number,
        )?;
        let key_end = key.map_or(0, |k| k.len() + self.key_separator.len());
        let value = &line[header_end + key_end..];
        let mut record = LineRecord {
            key: key.filter(|k| !self.is_null(k)).map(<[u8]>::to_vec),
            value: (!self.is_null(value)).then(|| value.to_vec()),
            headers: Vec::new(),
        };
        if let Some(headers) = headers.filter(|h| !self.is_null(h)) {
            record.headers = self.headers(headers, number)?;
        }
        Ok(record)
    }

    #[allow(clippy::type_complexity)]
    fn headers(&self, text: &[u8], number: u64) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, String> {
        let mut out = Vec::new();
        for pair in split(text, &self.headers_separator) {
            let (key, value) = match find(pair, &self.headers_key_separator, 0) {
                Some(at) => (
                    &pair[..at],
                    Some(&pair[at + self.headers_key_separator.len()..]),
                ),
                None if self.ignore_error => (pair, None),
                None => {
                    return Err(format!(
                        "No header key separator found in pair '{}' on line number {number}",
                        String::from_utf8_lossy(pair)
                    ))
                }
            };
            if self.is_null(key) {
                return Err(format!(
                    "Header keys should not be equal to the null marker '{}' as they can't be null",
                    String::from_utf8_lossy(key)
                ));
            }
            let value = value.filter(|v| !self.is_null(v)).map(<[u8]>::to_vec);
            out.push((key.to_vec(), value));
        }
        Ok(out)
    }
}

/// Kafka's `Utils.murmur2`, the hash of its default partitioner.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0);
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// One partition's encoded batch, waiting to be sent.
#[derive(Debug, Clone)]
struct Pending {
    partition: i32,
    records: Bytes,
    count: usize,
}

/// Pending records, one batch per partition.
struct Accumulator {
    batches: Vec<Option<BatchBuilder>>,
    pending_bytes: usize,
    oldest: Option<Instant>,
    /// The partition of unkeyed records until the next send.
    sticky: Option<i32>,
    next_sticky: usize,
}

impl Accumulator {
    fn new(partitions: usize) -> Accumulator {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
        Accumulator {
            batches: vec![None; partitions],
            pending_bytes: 0,
            oldest: None,
            sticky: None,
            next_sticky: start,
        }
    }

    fn partition(&mut self, key: Option<&[u8]>) -> i32 {
        let n = self.batches.len() as i32;
        match key {
            Some(k) => partition_for_key(k, n),
            None => *self.sticky.get_or_insert_with(|| {
                self.next_sticky = self.next_sticky.wrapping_add(1);
                (self.next_sticky % n as usize) as i32
            }),
        }
    }

    fn append(&mut self, record: &LineRecord) {
        let partition = self.partition(record.key.as_deref());
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let headers: Vec<(&[u8], Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        let batch = self.batches[partition as usize].get_or_insert_with(BatchBuilder::new);
        let before = batch.size_bytes();
        batch.append(
            now_ms,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        );
        self.pending_bytes += batch.size_bytes() - before;
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Takes every pending batch, encoded, with its record count.
    fn drain(&mut self) -> Vec<Pending> {
        self.pending_bytes = 0;
        self.oldest = None;
        self.sticky = None;
        self.batches
            .iter_mut()
            .enumerate()
            .filter_map(|(p, b)| {
                b.take().map(|b| Pending {
                    partition: p as i32,
                    records: Bytes::from(b.build()),
                    count: b.len(),
                })
            })
            .collect()
    }
}

/// Sends batches to partition leaders and checks every answer.
struct Sender {
    leaders: Leaders,
    topic: String,
    partitions: Vec<PartitionInfo>,
    config: ProducerConfig,
}

enum Input {
    Line(Vec<u8>),
    Failed(std::io::Error),
}

impl Sender {
    /// Waits (up to max.block.ms) until the topic has partitions with
    /// leaders, auto-creating it where the broker does.
    fn refresh(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + self.config.max_block;
        loop {
            let outcome = self.try_refresh();
            match outcome {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.code().is_some_and(client::is_retriable) => {}
                Err(ClientError::Io { .. } | ClientError::Closed { .. }) => {
                    self.leaders.forget_bootstrap();
                }
                Err(e) => return Err(e.to_string()),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "Topic {} not present in metadata after {} ms.",
                    self.topic,
                    self.config.max_block.as_millis()
                ));
            }
            std::thread::sleep(self.config.retry_backoff);
        }
    }

    fn try_refresh(&mut self) -> Result<bool, ClientError> {
        match self.leaders.topic_partitions(&self.topic, true)? {
            Some(partitions) => {
                self.partitions = partitions;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn leader(&self, partition: i32) -> i32 {
        self.partitions
            .iter()
            .find(|p| p.index == partition)
            .map_or(-1, |p| p.leader)
    }

    /// Sends `batches`, retrying retriable failures; a non-retriable one
    /// is the error.
    fn send(&mut self, mut batches: Vec<Pending>) -> Result<(), String> {
        let mut attempt = 0;
        while !batches.is_empty() {
            let mut retry = Vec::new();
            let mut by_leader: Vec<(i32, Vec<Pending>)> = Vec::new();
            for b in batches {
                let leader = self.leader(b.partition);
                match by_leader.iter_mut().find(|(l, _)| *l == leader) {
                    Some((_, v)) => v.push(b),
                    None => by_leader.push((leader, vec![b])),
                }
            }
            for (leader, group) in by_leader {
                let failed = self.send_to(leader, &group)?;
                retry.extend(
                    group
                        .into_iter()
                        .filter(|b| failed.iter().any(|(f, _)| *f == b.partition)),
                );
                if let Some((_, last)) = failed.last() {
                    if attempt >= self.config.retries {
                        return Err(last.clone());
                    }
                }
            }
            if !retry.is_empty() {
                attempt += 1;
                std::thread::sleep(self.config.retry_backoff);
                self.refresh()?;
            }
            batches = retry;
        }
        Ok(())
    }

    /// One Produce request to one leader. Returns the partitions to
    /// retry, each with its error text; fails on a non-retriable error.
    fn send_to(&mut self, leader: i32, group: &[Pending]) -> Result<Vec<(i32, String)>, String> {
        let topic_data = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
            .with_partition_data(
                group
                    .iter()
                    .map(|b| {
                        PartitionProduceData::default()
                            .with_index(b.partition)
                            .with_records(Some(b.records.clone()))
                    })
                    .collect(),
            );
        let request = ProduceRequest::default()
            .with_acks(self.config.acks)
            .with_timeout_ms(self.config.request_timeout_ms)
            .with_topic_data(vec![topic_data]);
        let all_retry = |e: &ClientError| -> Vec<(i32, String)> {
            group.iter().map(|b| (b.partition, e.to_string())).collect()
        };
        let acks = self.config.acks;
        let result = self.leaders.node(leader).and_then(|c: &mut Client| {
            let version = c.version_at_most::<ProduceRequest>(PRODUCE_VERSION_MAX)?;
            if acks == 0 {
                c.send_only(version, &request).map(|()| None)
            } else {
                c.roundtrip(version, &request).map(Some)
            }
        });
        let response = match result {
            Ok(None) => return Ok(Vec::new()),
            Ok(Some(r)) => r,
            Err(e @ (ClientError::Io { .. } | ClientError::Closed { .. })) => {
                self.leaders.forget(leader);
                return Ok(all_retry(&e));
            }
            Err(e) if e.code().is_some_and(client::is_retriable) => return Ok(all_retry(&e)),
            Err(e) => return Err(e.to_string()),
        };
        let mut retry = Vec::new();
        for Pending {
            partition, count, ..
        } in group
        {
            let answer = response
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == self.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == *partition);
            let Some(answer) = answer else {
                return Err(format!(
                    "the broker did not answer for partition {}-{partition}",
                    self.topic
                ));
            };
            let Some(error) =
                ClientError::from_code(answer.error_code, answer.error_message.as_ref())
            else {
                continue;
            };
            let text = format!(
                "Error when sending {count} message(s) to topic {} partition {partition} with error: {error}",
                self.topic
            );
            if client::is_retriable(answer.error_code) {
                retry.push((*partition, text));
            } else {
                return Err(text);
            }
        }
        Ok(retry)
    }
}

/// Runs the producer until stdin ends.
pub fn run(args: &ProducerArgs) -> ExitCode {
    match produce(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ERROR {message}");
            ExitCode::from(1)
        }
    }
}

fn produce(args: &ProducerArgs) -> Result<(), String> {
    let config = ProducerConfig::from_args(args)?;
    let reader = LineReader::from_props(&Props::from_flags("--property", &args.properties)?)?;
    let leaders =
        Leaders::connect(&args.bootstrap_server, &config.client_id).map_err(|e| e.to_string())?;
    let mut sender = Sender {
        leaders,
        topic: args.topic.clone(),
        partitions: Vec::new(),
        config: config.clone(),
    };
    sender.refresh()?;
    let lines = spawn_stdin_reader();
    let mut acc = Accumulator::new(sender.partitions.len());
    let mut number = 0u64;
    loop {
        let input = match acc.oldest {
            None => lines.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(oldest) => lines
                .recv_timeout((oldest + config.linger).saturating_duration_since(Instant::now())),
        };
        match input {
            Ok(Input::Line(line)) => {
                number += 1;
                let record = match reader.parse(number, &line) {
                    Ok(r) => r,
                    Err(e) => {
                        sender.send(acc.drain())?;
                        return Err(e);
                    }
                };
                acc.append(&record);
                if args.sync || acc.pending_bytes >= config.batch_bytes {
                    sender.send(acc.drain())?;
                }
            }
            Ok(Input::Failed(e)) => {
                sender.send(acc.drain())?;
                return Err(format!("reading stdin: {e}"));
            }
            Err(RecvTimeoutError::Timeout) => sender.send(acc.drain())?,
            Err(RecvTimeoutError::Disconnected) => return sender.send(acc.drain()),
        }
    }
}

/// Reads stdin lines on a thread (so the sender can wake on linger
/// timeouts), with `\n` or `\r\n` stripped as Java's `readLine` does.
fn spawn_stdin_reader() -> Receiver<Input> {
    let (tx, rx) = mpsc::sync_channel(LINES_QUEUED_MAX);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.send(Input::Line(line)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Input::Failed(e));
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for &(data, expected) in cases {
            assert_eq!(
                murmur2(data),
                expected,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
        for key in [&b"21"[..], b"foobar", b"abc", b""] {
            let p = partition_for_key(key, 3);
            assert!((0..3).contains(&p));
        }
    }

    fn reader(props: &[&str]) -> LineReader {
        let props: Vec<String> = props.iter().map(|s| (*s).to_owned()).collect();
        LineReader::from_props(&Props::from_flags("--property", &props).expect("valid"))
            .expect("valid")
    }

    fn bytes(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_parse_like_kafkas_line_reader() {
        let plain = reader(&[]);
        assert_eq!(
            plain.parse(1, b"a:b").expect("valid"),
            LineRecord {
                key: None,
                value: bytes("a:b"),
                headers: vec![]
            }
        );
        let keyed = reader(&["parse.key=true", "key.separator=:"]);
        let r = keyed.parse(1, b"k1:v:1").expect("valid");
        assert_eq!((r.key, r.value), (bytes("k1"), bytes("v:1")));
        let e = keyed.parse(7, b"novalue").expect_err("no separator");
        assert_eq!(e, "No key separator found on line number 7: 'novalue'");
        let lenient = reader(&["parse.key=true", "ignore.error=true"]);
        let r = lenient.parse(1, b"whole").expect("valid");
        assert_eq!((r.key, r.value), (None, bytes("whole")));
        let nulls = reader(&["parse.key=true", "null.marker=<null>"]);
        let r = nulls.parse(1, b"<null>\t<null>").expect("valid");
        assert_eq!((r.key, r.value), (None, None));
    }

    #[test]
    fn headers_parse_like_kafka() {
        let r = reader(&["parse.headers=true", "parse.key=true"]);
        let rec = r
            .parse(1, b"h1:v1,h2\tkey\tvalue")
            .expect_err("h2 lacks ':'");
        assert!(
            rec.contains("No header key separator found in pair 'h2'"),
            "{rec}"
        );
        let rec = r.parse(1, b"h1:v1,h2:\tkey\tvalue").expect("valid");
        assert_eq!(
            rec.headers,
            vec![(b"h1".to_vec(), bytes("v1")), (b"h2".to_vec(), bytes(""))]
        );
        assert_eq!((rec.key, rec.value), (bytes("key"), bytes("value")));
    }

    #[test]
    fn settings_and_codecs() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("1"), Ok(1));
        assert!(parse_acks("2").is_err());
        assert!(check_codec("none").is_ok());
        assert!(check_codec("zstd")
            .expect_err("refused")
            .contains("not supported"));
        assert!(check_codec("brotli")
            .expect_err("refused")
            .contains("unknown"));
    }

    #[test]
    fn unkeyed_records_stick_to_a_partition_per_batch() {
        let mut acc = Accumulator::new(3);
        for _ in 0..5 {
            acc.append(&LineRecord {
                value: bytes("v"),
                ..LineRecord::default()
            });
        }
        let first = acc.drain();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].count, 5);
        acc.append(&LineRecord {
            value: bytes("v"),
            ..LineRecord::default()
        });
        let second = acc.drain();
        assert_eq!(second.len(), 1);
        assert_ne!(
            first[0].partition, second[0].partition,
            "moves on after a send"
        );
        assert!(acc.drain().is_empty());
    }
}
