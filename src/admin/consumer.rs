//! `ringtail console-consumer`, like `kafka-console-consumer.sh`. Without
//! a group it assigns every partition of the topic (or `--partition`),
//! starts at the log end unless `--from-beginning` or `--offset`, and
//! long-polls the leaders with Fetch (`fetch.max.wait.ms`, 500 ms).
//!
//! With `--group G` (or `group.id`) it is a group member as Kafka's
//! consumer is, so it shares a group with librdkafka or Java clients:
//! JoinGroup with protocol type "consumer" and the `range` and
//! `roundrobin` assignors (`partition.assignment.strategy`), the leader
//! assigns, SyncGroup, heartbeats every `heartbeat.interval.ms`, commits
//! its positions every `auto.commit.interval.ms`, before rejoining and on
//! exit (Ctrl-C included), then LeaveGroup. Each assigned partition starts
//! at the group's committed offset, else per `auto.offset.reset`
//! (`earliest` with `--from-beginning`, `latest` otherwise).
//!
//! Fetched batches are checked (CRC-32C), decompressed when they are
//! compressed (gzip, snappy raw or xerial, LZ4 frames, zstd), and their
//! records printed with Kafka's `DefaultMessageFormatter` layout. Records
//! below the fetch position inside a returned batch are skipped (a fetch
//! returns whole batches), control batches are skipped, and a partial
//! batch at the end of a response is fetched again from its start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use ringtail_protocol::batch::TimestampType;
use ringtail_protocol::messages::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use ringtail_protocol::messages::kafka_protocol::messages::leave_group_request::MemberIdentity;
use ringtail_protocol::messages::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, FetchRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    ListOffsetsRequest, SyncGroupRequest, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;
use ringtail_protocol::{BatchError, ErrorCode, RecordBatch};

use super::client::{self, Client, ClientError, Leaders, PartitionInfo};
use super::codec;
use super::groups;
use super::props::Props;

/// ListOffsets' special timestamps.
const EARLIEST_TIMESTAMP: i64 = -2;
const LATEST_TIMESTAMP: i64 = -1;
/// The largest per-partition fetch size a partial batch may grow the
/// request to.
const PARTITION_FETCH_BYTES_MAX: i32 = 64 * 1024 * 1024;
/// Fetch v13 names topics by id; requests here carry names.
const FETCH_VERSION_MAX: i16 = 12;

#[derive(Args, Debug, Clone)]
pub struct ConsumerArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// The topic to consume.
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset instead of the log end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Consume only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Where to start in --partition: an offset, earliest or latest
    /// (default latest).
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true)]
    pub offset: Option<String>,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit when no message arrives for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Formatter settings: print.key, print.value, print.offset,
    /// print.partition, print.timestamp, print.headers, key.separator,
    /// line.separator, headers.separator, headers.key.separator,
    /// null.literal; repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// Consumer settings: fetch.max.wait.ms, fetch.min.bytes,
    /// fetch.max.bytes, max.partition.fetch.bytes, auto.offset.reset,
    /// client.id, check.crcs; repeatable.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_properties: Vec<String>,
    /// A properties file of consumer settings.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
    /// Consume as a member of this consumer group: partitions are shared
    /// with the group's other members, positions committed.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
}

/// Where consumption starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
}

/// What happens when the position is outside the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
    Fail,
}

#[derive(Debug, Clone)]
struct ConsumerConfig {
    start: Start,
    reset: Reset,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
    check_crcs: bool,
    client_id: String,
    group: Option<GroupConfig>,
}

/// A group member's settings (Kafka's consumer defaults).
#[derive(Debug, Clone)]
struct GroupConfig {
    id: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    heartbeat_interval: Duration,
    auto_commit: Option<Duration>,
    /// Assignor names in preference order.
    strategies: Vec<String>,
}

/// The assignors this consumer can run as the group's leader.
const ASSIGNORS: &[&str] = &["range", "roundrobin"];

const CONSUMER_KEYS: &[&str] = &[
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "auto.offset.reset",
    "client.id",
    "check.crcs",
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
];

const FORMATTER_KEYS: &[&str] = &[
    "print.key",
    "print.value",
    "print.offset",
    "print.partition",
    "print.timestamp",
    "print.headers",
    "key.separator",
    "line.separator",
    "headers.separator",
    "headers.key.separator",
    "null.literal",
];

impl ConsumerConfig {
    fn from_args(args: &ConsumerArgs) -> Result<ConsumerConfig, String> {
        if args.group.is_some() && args.partition.is_some() {
            return Err("Options group and partition cannot be specified together.".into());
        }
        if args.group.is_some() && args.offset.is_some() {
            return Err("Options group and offset cannot be specified together.".into());
        }
        if args.offset.is_some() && args.partition.is_none() {
            return Err("The partition is required when offset is specified.".into());
        }
        if args.offset.is_some() && args.from_beginning {
            return Err("Options from-beginning and offset cannot be specified together.".into());
        }
        let start = match args.offset.as_deref() {
            None if args.from_beginning => Start::Earliest,
            None | Some("latest") => Start::Latest,
            Some("earliest") => Start::Earliest,
            Some(n) => match n.parse::<i64>() {
                Ok(n) if n >= 0 => Start::Offset(n),
                _ => {
                    return Err(format!(
                        "The provided offset value '{n}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long."
                    ))
                }
            },
        };
        let mut props = Props::default();
        if let Some(path) = &args.consumer_config {
            props.add_file(path)?;
        }
        props.add_flags("--consumer-property", &args.consumer_properties)?;
        for key in props.unknown(CONSUMER_KEYS) {
            eprintln!("WARN: consumer property {key} is not used by ringtail console-consumer");
        }
        let default_reset = if args.from_beginning {
            "earliest"
        } else {
            "latest"
        };
        let reset = match props.get("auto.offset.reset").unwrap_or(default_reset) {
            "earliest" => Reset::Earliest,
            "latest" => Reset::Latest,
            "none" => Reset::Fail,
            other => {
                return Err(format!(
                    "invalid auto.offset.reset {other:?}: expected earliest, latest or none"
                ))
            }
        };
        let group = group_config(args, &props)?;
        Ok(ConsumerConfig {
            group,
            start,
            reset,
            max_wait_ms: props.number("fetch.max.wait.ms", 500)?,
            min_bytes: props.number("fetch.min.bytes", 1)?,
            max_bytes: props.number("fetch.max.bytes", 52_428_800)?,
            partition_max_bytes: props.number("max.partition.fetch.bytes", 1_048_576)?,
            check_crcs: props.get("check.crcs") != Some("false"),
            client_id: props
                .get("client.id")
                .unwrap_or("console-consumer")
                .to_owned(),
        })
    }
}

fn group_config(args: &ConsumerArgs, props: &Props) -> Result<Option<GroupConfig>, String> {
    let id = match (args.group.as_deref(), props.get("group.id")) {
        (Some(flag), Some(prop)) if flag != prop => {
            return Err(format!(
                "The group ids provided in different places (directly using '--group': {flag}, via property 'group.id': {prop}) do not match."
            ))
        }
        (Some(id), _) | (None, Some(id)) => id.to_owned(),
        (None, None) => return Ok(None),
    };
    let strategies: Vec<String> = match props.get("partition.assignment.strategy") {
        None => ASSIGNORS.iter().map(|s| (*s).to_owned()).collect(),
        Some(list) => list
            .split(',')
            .map(|s| {
                let name = s.trim().rsplit('.').next().unwrap_or_default();
                match name {
                    "range" | "RangeAssignor" => Ok("range".to_owned()),
                    "roundrobin" | "RoundRobinAssignor" => Ok("roundrobin".to_owned()),
                    other => Err(format!(
                        "partition.assignment.strategy {other:?} is not supported: use range or roundrobin"
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let auto_commit = props.get("enable.auto.commit") != Some("false");
    let interval_ms: u64 = props.number("auto.commit.interval.ms", 5000)?;
    let heartbeat_ms: u64 = props.number("heartbeat.interval.ms", 3000)?;
    Ok(Some(GroupConfig {
        id,
        session_timeout_ms: props.number("session.timeout.ms", 45_000)?,
        rebalance_timeout_ms: props.number("max.poll.interval.ms", 300_000)?,
        heartbeat_interval: Duration::from_millis(heartbeat_ms.max(1)),
        auto_commit: auto_commit.then(|| Duration::from_millis(interval_ms.max(1))),
        strategies,
    }))
}

/// One record as the formatter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_type: TimestampType,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

/// Kafka's `DefaultMessageFormatter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatter {
    pub print_timestamp: bool,
    pub print_partition: bool,
    pub print_offset: bool,
    pub print_headers: bool,
    pub print_key: bool,
    pub print_value: bool,
    pub key_separator: Vec<u8>,
    pub line_separator: Vec<u8>,
    pub headers_separator: Vec<u8>,
    pub headers_key_separator: Vec<u8>,
    pub null_literal: Vec<u8>,
}

impl Formatter {
    pub fn from_props(props: &Props) -> Formatter {
        for key in props.unknown(FORMATTER_KEYS) {
            eprintln!("WARN: property {key} is not used by ringtail console-consumer");
        }
        let text = |key: &str, default: &str| props.get(key).unwrap_or(default).as_bytes().to_vec();
        Formatter {
            print_timestamp: props.flag("print.timestamp"),
            print_partition: props.flag("print.partition"),
            print_offset: props.flag("print.offset"),
            print_headers: props.flag("print.headers"),
            print_key: props.flag("print.key"),
            print_value: props.get("print.value").is_none() || props.flag("print.value"),
            key_separator: text("key.separator", "\t"),
            line_separator: text("line.separator", "\n"),
            headers_separator: text("headers.separator", ","),
            headers_key_separator: text("headers.key.separator", ":"),
            null_literal: text("null.literal", "null"),
        }
    }

    /// Writes one record; columns are separated by `key.separator`, the
    /// last is followed by `line.separator`.
    pub fn write(&self, out: &mut Vec<u8>, m: &Message<'_>) {
        let sep = |out: &mut Vec<u8>, more: bool| {
            out.extend_from_slice(if more {
                &self.key_separator
            } else {
                &self.line_separator
            });
        };
        let after_offset = self.print_headers || self.print_key || self.print_value;
        let after_partition = self.print_offset || after_offset;
        if self.print_timestamp {
            let kind = match m.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            if m.timestamp < 0 {
                out.extend_from_slice(b"NO_TIMESTAMP");
            } else {
                out.extend_from_slice(format!("{kind}:{}", m.timestamp).as_bytes());
            }
            sep(out, self.print_partition || after_partition);
        }
        if self.print_partition {
            out.extend_from_slice(format!("Partition:{}", m.partition).as_bytes());
            sep(out, after_partition);
        }
        if self.print_offset {
            out.extend_from_slice(format!("Offset:{}", m.offset).as_bytes());
            sep(out, after_offset);
        }
        if self.print_headers {
            if m.headers.is_empty() {
                out.extend_from_slice(b"NO_HEADERS");
            }
            for (i, (k, v)) in m.headers.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(&self.headers_separator);
                }
                out.extend_from_slice(k);
                out.extend_from_slice(&self.headers_key_separator);
                out.extend_from_slice(v.unwrap_or(&self.null_literal));
            }
            sep(out, self.print_key || self.print_value);
        }
        if self.print_key {
            out.extend_from_slice(m.key.unwrap_or(&self.null_literal));
            sep(out, self.print_value);
        }
        if self.print_value {
            out.extend_from_slice(m.value.unwrap_or(&self.null_literal));
            out.extend_from_slice(&self.line_separator);
        }
    }
}

/// A fetched partition's records, read from `position` on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Where the next fetch starts.
    pub position: i64,
    /// Complete batches seen (0 with bytes present: only a partial one).
    pub batches: usize,
}

/// Reads the batches of one partition's fetched records from `position`
/// on, calling `emit` for each record until it returns false (enough
/// messages). A partial batch at the end is left for the next fetch.
pub fn decode_records(
    partition: i32,
    records: &[u8],
    mut position: i64,
    check_crcs: bool,
    emit: &mut dyn FnMut(&Message<'_>) -> bool,
) -> Result<Decoded, String> {
    let mut rest = records;
    let mut batches = 0;
    while !rest.is_empty() {
        let (batch, tail) = match RecordBatch::parse(rest) {
            Ok(split) => split,
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => return Err(format!("partition {partition} at offset {position}: {e}")),
        };
        rest = tail;
        batches += 1;
        if batch.next_offset().0 <= position {
            continue;
        }
        if check_crcs {
            codec::check_crc(&batch).map_err(|e| format!("partition {partition}: {e}"))?;
        }
        if batch.is_control() {
            position = batch.next_offset().0;
            continue;
        }
        let plain =
            codec::plain_batch(&batch).map_err(|e| format!("partition {partition}: {e}"))?;
        let view = RecordBatch::new(&plain).map_err(|e| format!("partition {partition}: {e}"))?;
        let records = view
            .records()
            .map_err(|e| format!("partition {partition}: {e}"))?;
        for record in records {
            let record = record.map_err(|e| {
                format!(
                    "partition {partition}: batch at offset {}: {e}",
                    batch.base_offset().0
                )
            })?;
            let offset = batch.base_offset().0 + i64::from(record.offset_delta);
            if offset < position {
                continue;
            }
            let headers: Vec<(&[u8], Option<&[u8]>)> =
                record.headers().map(|h| (h.key, h.value)).collect();
            let timestamp = match batch.timestamp_type() {
                TimestampType::CreateTime => batch.base_timestamp() + record.timestamp_delta,
                TimestampType::LogAppendTime => batch.max_timestamp(),
            };
            let message = Message {
                partition,
                offset,
                timestamp_type: batch.timestamp_type(),
                timestamp,
                key: record.key,
                value: record.value,
                headers: &headers,
            };
            position = offset + 1;
            if !emit(&message) {
                return Ok(Decoded { position, batches });
            }
        }
        position = batch.next_offset().0;
    }
    Ok(Decoded { position, batches })
}

/// One assigned partition.
#[derive(Debug, Clone)]
struct Assigned {
    partition: i32,
    leader: i32,
    position: i64,
    fetch_bytes: i32,
}

struct Consumer {
    leaders: Leaders,
    topic: String,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
    formatter: Formatter,
    max_messages: Option<u64>,
    consumed: u64,
    /// Set with `--group`: the membership.
    member: Option<Member>,
}

/// Why the fetch loop stopped.
enum Stop {
    Done,
    Failed(String),
}

impl From<ClientError> for Stop {
    fn from(e: ClientError) -> Stop {
        Stop::Failed(e.to_string())
    }
}

impl From<String> for Stop {
    fn from(e: String) -> Stop {
        Stop::Failed(e)
    }
}

impl Consumer {
    /// Waits for the topic's partitions (they may be created after the
    /// consumer starts), until `deadline` if there is one.
    fn partitions(&mut self, deadline: Option<Instant>) -> Result<Vec<PartitionInfo>, Stop> {
        let mut warned = false;
        loop {
            match self.leaders.topic_partitions(&self.topic, false) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(ClientError::Io { .. } | ClientError::Closed { .. }) => {
                    self.leaders.forget_bootstrap()
                }
                Err(e) => return Err(e.into()),
            }
            if !warned {
                eprintln!(
                    "WARN: topic {} is unknown or has partitions without a leader; waiting",
                    self.topic
                );
                warned = true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Stop::Done);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Offsets of `partitions` for a ListOffsets timestamp, asked of
    /// each partition's leader.
    fn list_offsets(&mut self, which: &[usize], timestamp: i64) -> Result<(), Stop> {
        for &i in which {
            let a = &self.assigned[i];
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(a.partition)
                        .with_timestamp(timestamp)])]);
            let (partition, leader) = (a.partition, a.leader);
            let response = self.leaders.node(leader)?.send(&request)?;
            let answer = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == partition)
                .ok_or_else(|| format!("ListOffsets did not answer for partition {partition}"))?;
            if let Some(e) = ClientError::from_code(answer.error_code, None) {
                return Err(format!("ListOffsets for {}-{partition}: {e}", self.topic).into());
            }
            self.assigned[i].position = answer.offset;
        }
        Ok(())
    }

    fn reset(&mut self, which: &[usize]) -> Result<(), Stop> {
        let timestamp = match self.config.reset {
            Reset::Earliest => EARLIEST_TIMESTAMP,
            Reset::Latest => LATEST_TIMESTAMP,
            Reset::Fail => {
                let a = &self.assigned[which[0]];
                return Err(format!(
                    "OFFSET_OUT_OF_RANGE: offset {} of partition {}-{} is out of range and auto.offset.reset is none",
                    a.position, self.topic, a.partition
                )
                .into());
            }
        };
        self.list_offsets(which, timestamp)
    }

    /// Fetches once from every leader; returns whether a message came.
    fn poll(&mut self, out: &mut Vec<u8>, max_wait_ms: i32) -> Result<bool, Stop> {
        let mut leaders: Vec<i32> = self.assigned.iter().map(|a| a.leader).collect();
        leaders.sort_unstable();
        leaders.dedup();
        let mut got = false;
        for leader in leaders {
            got |= self.fetch_from(leader, out, max_wait_ms)?;
            if self.max_messages.is_some_and(|m| self.consumed >= m) {
                return Err(Stop::Done);
            }
        }
        Ok(got)
    }

    fn fetch_request(&self, leader: i32, max_wait_ms: i32) -> FetchRequest {
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
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(self.config.min_bytes)
            .with_max_bytes(self.config.max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(partitions)])
    }

    fn fetch_from(
        &mut self,
        leader: i32,
        out: &mut Vec<u8>,
        max_wait_ms: i32,
    ) -> Result<bool, Stop> {
        let request = self.fetch_request(leader, max_wait_ms);
        let response = match self.leaders.node(leader).and_then(|c| {
            let version = c.version_at_most::<FetchRequest>(FETCH_VERSION_MAX)?;
            c.roundtrip(version, &request)
        }) {
            Ok(r) => r,
            Err(e @ (ClientError::Io { .. } | ClientError::Closed { .. })) => {
                eprintln!("WARN: {e}; reconnecting");
                self.leaders.forget(leader);
                std::thread::sleep(Duration::from_millis(200));
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(e) = ClientError::from_code(response.error_code, None) {
            return Err(format!("Fetch: {e}").into());
        }
        let mut got = false;
        let mut out_of_range = Vec::new();
        let mut refresh = false;
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
                c if c == ErrorCode::OffsetOutOfRange.code() => {
                    out_of_range.push(i);
                    continue;
                }
                c if client::is_retriable(c) => {
                    refresh = true;
                    continue;
                }
                c => {
                    let e = ClientError::from_code(c, None).expect("non-zero code");
                    return Err(
                        format!("Fetch {}-{}: {e}", self.topic, data.partition_index).into(),
                    );
                }
            }
            let records = data.records.as_deref().unwrap_or_default();
            got |= self.take_records(i, records, out)?;
            if self.max_messages.is_some_and(|m| self.consumed >= m) {
                return Ok(got);
            }
        }
        if !out_of_range.is_empty() {
            for &i in &out_of_range {
                let a = &self.assigned[i];
                eprintln!(
                    "WARN: offset {} is out of range for partition {}-{}, resetting",
                    a.position, self.topic, a.partition
                );
            }
            self.reset(&out_of_range)?;
        }
        if refresh {
            self.refresh_leaders()?;
        }
        Ok(got)
    }

    /// Prints the records of partition `i`'s fetched bytes.
    fn take_records(&mut self, i: usize, records: &[u8], out: &mut Vec<u8>) -> Result<bool, Stop> {
        let a = self.assigned[i].clone();
        let before = self.consumed;
        let (formatter, max, consumed) = (&self.formatter, self.max_messages, &mut self.consumed);
        let decoded = decode_records(
            a.partition,
            records,
            a.position,
            self.config.check_crcs,
            &mut |m| {
                formatter.write(out, m);
                *consumed += 1;
                max.is_none_or(|max| *consumed < max)
            },
        )?;
        let slot = &mut self.assigned[i];
        slot.position = decoded.position;
        if decoded.batches == 0 && !records.is_empty() {
            // Only part of a batch fit in the partition's byte limit: ask
            // for more next time, as Kafka's consumer must when a broker
            // does not return oversized first batches whole.
            if slot.fetch_bytes >= PARTITION_FETCH_BYTES_MAX {
                return Err(format!(
                    "a batch of partition {}-{} at offset {} is larger than {PARTITION_FETCH_BYTES_MAX} bytes",
                    self.topic, slot.partition, slot.position
                )
                .into());
            }
            slot.fetch_bytes = slot
                .fetch_bytes
                .saturating_mul(2)
                .min(PARTITION_FETCH_BYTES_MAX);
        }
        Ok(self.consumed > before)
    }

    fn refresh_leaders(&mut self) -> Result<(), Stop> {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(partitions) = self.leaders.topic_partitions(&self.topic, false)? {
            for a in &mut self.assigned {
                if let Some(p) = partitions.iter().find(|p| p.index == a.partition) {
                    a.leader = p.leader;
                }
            }
        }
        Ok(())
    }
}

/// A group membership: the coordinator connection, the member id and
/// generation of the last completed rebalance, and the clocks of the
/// next heartbeat and commit.
struct Member {
    config: GroupConfig,
    coordinator: Client,
    member_id: String,
    generation: i32,
    next_heartbeat: Instant,
    next_commit: Option<Instant>,
}

// Kafka error codes the member reacts to.
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Partitions per member id, for each topic.
pub type Assignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Kafka's RangeAssignor: per topic, the subscribed members sorted by
/// id each take a contiguous range, the first `n % members` one more.
pub fn assign_range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &count) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, m) in members.into_iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            let parts: Vec<i32> = (start..start + len).collect();
            if !parts.is_empty() {
                out.get_mut(m)
                    .expect("every member has an entry")
                    .insert(topic.clone(), parts);
            }
        }
    }
    out
}

/// Kafka's RoundRobinAssignor: every partition of every subscribed topic
/// (sorted) dealt to the members in id order, skipping members that do
/// not subscribe to the partition's topic.
pub fn assign_roundrobin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    let members: Vec<&String> = subscriptions.keys().collect();
    if members.is_empty() {
        return out;
    }
    let mut next = 0;
    for (topic, &count) in partitions {
        if !subscriptions.values().any(|t| t.contains(topic)) {
            continue;
        }
        for p in 0..count {
            while !subscriptions[members[next % members.len()]].contains(topic) {
                next += 1;
            }
            let m = members[next % members.len()];
            next += 1;
            out.get_mut(m)
                .expect("every member has an entry")
                .entry(topic.clone())
                .or_default()
                .push(p);
        }
    }
    out
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_owned())
}

impl Member {
    fn connect(
        leaders: &mut Leaders,
        config: GroupConfig,
        client_id: &str,
    ) -> Result<Member, Stop> {
        let mut coordinator = groups::coordinator(leaders.any()?, &config.id, client_id)?;
        // JoinGroup is answered when the rebalance completes, at most the
        // rebalance timeout later.
        let wait = Duration::from_millis(config.rebalance_timeout_ms.max(0) as u64);
        coordinator.set_request_timeout(wait + client::REQUEST_TIMEOUT)?;
        Ok(Member {
            config,
            coordinator,
            member_id: String::new(),
            generation: -1,
            next_heartbeat: Instant::now(),
            next_commit: None,
        })
    }

    /// After NOT_COORDINATOR and the like: finds the coordinator again.
    fn reconnect(&mut self, leaders: &mut Leaders, client_id: &str) -> Result<(), Stop> {
        std::thread::sleep(Duration::from_millis(200));
        let config = self.config.clone();
        let fresh = Member::connect(leaders, config, client_id)?;
        self.coordinator = fresh.coordinator;
        Ok(())
    }
}

fn coordinator_moved(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

fn group_error(what: &str, group: &str, code: i16) -> Stop {
    let e = ClientError::from_code(code, None).expect("non-zero code");
    Stop::Failed(format!("{what} for group {group}: {e}"))
}

impl Consumer {
    /// Joins (or rejoins) the group and takes the assignment: JoinGroup
    /// (with the MEMBER_ID_REQUIRED round trip), the leader's assignment,
    /// SyncGroup; then each partition's committed offset or the reset.
    fn join_group(&mut self) -> Result<(), Stop> {
        let client_id = self.config.client_id.clone();
        let mut member = self.member.take().expect("a group member");
        let outcome = self.join_once(&mut member, &client_id);
        self.member = Some(member);
        let partitions = outcome?;
        self.take_assignment(&partitions)
    }

    fn join_once(&mut self, m: &mut Member, client_id: &str) -> Result<Vec<i32>, Stop> {
        let group = m.config.id.clone();
        loop {
            if STOP_REQUESTED.load(Ordering::Relaxed) {
                return Err(Stop::Done);
            }
            let protocols = m
                .config
                .strategies
                .iter()
                .map(|name| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(groups::encode_subscription(std::slice::from_ref(
                            &self.topic,
                        )))
                })
                .collect();
            let join = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_session_timeout_ms(m.config.session_timeout_ms)
                .with_rebalance_timeout_ms(m.config.rebalance_timeout_ms)
                .with_member_id(s(&m.member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(protocols);
            let r = m.coordinator.send(&join)?;
            match r.error_code {
                0 => {}
                MEMBER_ID_REQUIRED => {
                    m.member_id = r.member_id.to_string();
                    continue;
                }
                REBALANCE_IN_PROGRESS => continue,
                UNKNOWN_MEMBER_ID => {
                    m.member_id.clear();
                    continue;
                }
                c if coordinator_moved(c) => {
                    m.reconnect(&mut self.leaders, client_id)?;
                    continue;
                }
                c => return Err(group_error("JoinGroup", &group, c)),
            }
            m.member_id = r.member_id.to_string();
            m.generation = r.generation_id;
            let protocol = r
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let assignments = if r.leader == r.member_id {
                let subscriptions = r
                    .members
                    .iter()
                    .map(|member| {
                        let topics = groups::decode_subscription(&member.metadata)
                            .map_err(|e| format!("member {}: {e}", member.member_id))?;
                        Ok((member.member_id.to_string(), topics))
                    })
                    .collect::<Result<BTreeMap<_, _>, String>>()?;
                self.assign(&protocol, &subscriptions)?
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(m.generation)
                .with_member_id(s(&m.member_id))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s(&protocol)))
                .with_assignments(assignments);
            let r = m.coordinator.send(&sync)?;
            match r.error_code {
                0 => {}
                REBALANCE_IN_PROGRESS | ILLEGAL_GENERATION => continue,
                UNKNOWN_MEMBER_ID => {
                    m.member_id.clear();
                    continue;
                }
                c if coordinator_moved(c) => {
                    m.reconnect(&mut self.leaders, client_id)?;
                    continue;
                }
                c => return Err(group_error("SyncGroup", &group, c)),
            }
            let assigned = groups::decode_assignment(&r.assignment)?;
            let now = Instant::now();
            m.next_heartbeat = now + m.config.heartbeat_interval;
            m.next_commit = m.config.auto_commit.map(|every| now + every);
            return Ok(assigned
                .into_iter()
                .filter(|(t, _)| *t == self.topic)
                .map(|(_, p)| p)
                .collect());
        }
    }

    /// The leader's assignment of every subscribed topic's partitions.
    fn assign(
        &mut self,
        protocol: &str,
        subscriptions: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<SyncGroupRequestAssignment>, Stop> {
        let mut topics: Vec<&str> = subscriptions
            .values()
            .flatten()
            .map(String::as_str)
            .collect();
        topics.sort_unstable();
        topics.dedup();
        let response = self.leaders.any()?.metadata(Some(&topics), false)?;
        let partitions: BTreeMap<String, i32> = client::topics_of(&response)
            .into_iter()
            .filter(|(code, _)| *code == 0)
            .map(|(_, info)| (info.name, info.partitions.len() as i32))
            .collect();
        let assignment = match protocol {
            "range" => assign_range(subscriptions, &partitions),
            "roundrobin" => assign_roundrobin(subscriptions, &partitions),
            other => {
                return Err(format!(
                    "the group chose assignor {other:?}, which this consumer does not run"
                )
                .into())
            }
        };
        Ok(assignment
            .into_iter()
            .map(|(member, parts)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(groups::encode_assignment(&parts))
            })
            .collect())
    }

    /// Replaces the assigned partitions; each starts at the group's
    /// committed offset, else per auto.offset.reset.
    fn take_assignment(&mut self, partitions: &[i32]) -> Result<(), Stop> {
        let infos = self.partitions(None)?;
        let fetch_bytes = self.config.partition_max_bytes.max(1);
        self.assigned = partitions
            .iter()
            .filter_map(|p| infos.iter().find(|i| i.index == *p))
            .map(|p| Assigned {
                partition: p.index,
                leader: p.leader,
                position: -1,
                fetch_bytes,
            })
            .collect();
        let tps: Vec<groups::Tp> = self
            .assigned
            .iter()
            .map(|a| (self.topic.clone(), a.partition))
            .collect();
        let member = self.member.as_mut().expect("a group member");
        let committed = if tps.is_empty() {
            BTreeMap::new()
        } else {
            groups::committed_offsets(&mut member.coordinator, &member.config.id, Some(&tps))?
        };
        let mut missing = Vec::new();
        for (i, a) in self.assigned.iter_mut().enumerate() {
            match committed.get(&(self.topic.clone(), a.partition)) {
                Some(&offset) => a.position = offset,
                None => missing.push(i),
            }
        }
        if !missing.is_empty() {
            self.reset(&missing)?;
        }
        Ok(())
    }

    /// Commits every assigned partition's position with the member's
    /// generation.
    fn commit_positions(&mut self) -> Result<(), ClientError> {
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        let offsets: BTreeMap<groups::Tp, i64> = self
            .assigned
            .iter()
            .filter(|a| a.position >= 0)
            .map(|a| ((self.topic.clone(), a.partition), a.position))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        groups::commit_offsets(
            &mut m.coordinator,
            &m.config.id,
            Some((m.generation, &m.member_id)),
            &offsets,
        )
    }

    /// Heartbeats and commits when due; rejoins when the group
    /// rebalances (committing first, as Kafka's consumer does when it
    /// gives its partitions up).
    fn group_tick(&mut self) -> Result<(), Stop> {
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        if m.next_commit.is_some_and(|t| now >= t) {
            m.next_commit = m.config.auto_commit.map(|every| now + every);
            if let Err(e) = self.commit_positions() {
                eprintln!("WARN: offset commit failed: {e}");
            }
        }
        let m = self.member.as_mut().expect("checked");
        if now < m.next_heartbeat {
            return Ok(());
        }
        m.next_heartbeat = now + m.config.heartbeat_interval;
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&m.config.id)))
            .with_generation_id(m.generation)
            .with_member_id(s(&m.member_id));
        let code = m.coordinator.send(&hb)?.error_code;
        match code {
            0 => return Ok(()),
            REBALANCE_IN_PROGRESS => {
                if m.config.auto_commit.is_some() {
                    if let Err(e) = self.commit_positions() {
                        eprintln!("WARN: offset commit before rejoining failed: {e}");
                    }
                }
            }
            UNKNOWN_MEMBER_ID => m.member_id.clear(),
            ILLEGAL_GENERATION => {}
            c if coordinator_moved(c) => {
                let client_id = self.config.client_id.clone();
                let m = self.member.as_mut().expect("checked");
                m.reconnect(&mut self.leaders, &client_id)?;
            }
            c => return Err(group_error("Heartbeat", &m.config.id.clone(), c)),
        }
        self.assigned.clear();
        self.join_group()
    }

    /// On exit: commits the positions (with auto-commit on) and leaves
    /// the group, so the others get its partitions at once.
    fn leave_group(&mut self) {
        let Some(auto_commit) = self.member.as_ref().map(|m| m.config.auto_commit.is_some()) else {
            return;
        };
        if auto_commit && self.member.as_ref().is_some_and(|m| m.generation >= 0) {
            if let Err(e) = self.commit_positions() {
                eprintln!("WARN: offset commit on exit failed: {e}");
            }
        }
        let m = self.member.as_mut().expect("checked");
        if m.member_id.is_empty() {
            return;
        }
        let mut leave = LeaveGroupRequest::default().with_group_id(GroupId(s(&m.config.id)));
        let version = match m.coordinator.version::<LeaveGroupRequest>() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("WARN: leaving the group failed: {e}");
                return;
            }
        };
        if version >= 3 {
            leave.members = vec![MemberIdentity::default().with_member_id(s(&m.member_id))];
        } else {
            leave.member_id = s(&m.member_id);
        }
        match m.coordinator.roundtrip(version, &leave) {
            Ok(r) if r.error_code == 0 => {}
            Ok(r) => eprintln!(
                "WARN: leaving the group failed: {}",
                client::error_name(r.error_code)
            ),
            Err(e) => eprintln!("WARN: leaving the group failed: {e}"),
        }
    }
}

/// Set by SIGINT/SIGTERM: the fetch loop stops after the current poll
/// (at most `fetch.max.wait.ms`) and the count is still reported, as
/// Kafka's shutdown hook does.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::Relaxed);
}

fn install_stop_handler() {
    let handler: extern "C" fn(libc::c_int) = request_stop;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; SA_RESTART keeps blocking socket reads going
    // until the poll's answer arrives.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

/// Runs the consumer until --max-messages, --timeout-ms, Ctrl-C or an
/// error.
pub fn run(args: &ConsumerArgs) -> ExitCode {
    let config = match ConsumerConfig::from_args(args) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("ERROR {message}");
            return ExitCode::from(1);
        }
    };
    install_stop_handler();
    let mut consumed = 0;
    let outcome = consume(args, config, &mut consumed);
    eprintln!("Processed a total of {consumed} messages");
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ERROR {message}");
            ExitCode::from(1)
        }
    }
}

fn consume(args: &ConsumerArgs, config: ConsumerConfig, consumed: &mut u64) -> Result<(), String> {
    let formatter = Formatter::from_props(&Props::from_flags("--property", &args.properties)?);
    let leaders =
        Leaders::connect(&args.bootstrap_server, &config.client_id).map_err(|e| e.to_string())?;
    let mut consumer = Consumer {
        leaders,
        topic: args.topic.clone(),
        config,
        assigned: Vec::new(),
        formatter,
        max_messages: args.max_messages,
        consumed: 0,
        member: None,
    };
    let outcome = fetch_loop(&mut consumer, args);
    consumer.leave_group();
    *consumed = consumer.consumed;
    match outcome {
        Stop::Done => Ok(()),
        Stop::Failed(e) => Err(e),
    }
}

fn fetch_loop(consumer: &mut Consumer, args: &ConsumerArgs) -> Stop {
    match run_fetch_loop(consumer, args) {
        Ok(()) => Stop::Done,
        Err(stop) => stop,
    }
}

fn run_fetch_loop(consumer: &mut Consumer, args: &ConsumerArgs) -> Result<(), Stop> {
    if args.max_messages == Some(0) {
        return Ok(());
    }
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_message = Instant::now();
    let partitions = consumer.partitions(timeout.map(|t| last_message + t))?;
    if let Some(group) = consumer.config.group.clone() {
        let client_id = consumer.config.client_id.clone();
        consumer.member = Some(Member::connect(&mut consumer.leaders, group, &client_id)?);
        consumer.join_group()?;
        last_message = Instant::now();
        return print_loop(consumer, timeout, last_message);
    }
    consumer.assigned = partitions
        .iter()
        .filter(|p| args.partition.is_none_or(|want| want == p.index))
        .map(|p| Assigned {
            partition: p.index,
            leader: p.leader,
            position: 0,
            fetch_bytes: consumer.config.partition_max_bytes.max(1),
        })
        .collect();
    if consumer.assigned.is_empty() {
        let p = args.partition.unwrap_or(-1);
        return Err(format!(
            "partition {p} of topic {} does not exist ({} partitions)",
            consumer.topic,
            partitions.len()
        )
        .into());
    }
    let all: Vec<usize> = (0..consumer.assigned.len()).collect();
    match consumer.config.start {
        Start::Earliest => consumer.list_offsets(&all, EARLIEST_TIMESTAMP)?,
        Start::Latest => consumer.list_offsets(&all, LATEST_TIMESTAMP)?,
        Start::Offset(n) => consumer.assigned.iter_mut().for_each(|a| a.position = n),
    }
    print_loop(consumer, timeout, last_message)
}

/// Polls and prints until the end condition; a group member also
/// heartbeats, commits and rejoins between polls.
fn print_loop(
    consumer: &mut Consumer,
    timeout: Option<Duration>,
    mut last_message: Instant,
) -> Result<(), Stop> {
    let stdout = std::io::stdout();
    let mut out = Vec::new();
    loop {
        if STOP_REQUESTED.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut max_wait_ms = consumer.config.max_wait_ms;
        if let Some(t) = timeout {
            let left = t.saturating_sub(last_message.elapsed());
            if left.is_zero() {
                return Ok(());
            }
            max_wait_ms = max_wait_ms.min(left.as_millis().try_into().unwrap_or(i32::MAX));
        }
        let polled = if consumer.assigned.is_empty() {
            // A member without partitions (more members than partitions)
            // only heartbeats.
            std::thread::sleep(Duration::from_millis(max_wait_ms.max(0) as u64));
            Ok(false)
        } else {
            consumer.poll(&mut out, max_wait_ms)
        };
        let write = stdout
            .lock()
            .write_all(&out)
            .and_then(|()| stdout.lock().flush());
        out.clear();
        if let Err(e) = write {
            // A closed pipe (`| head`) ends the consumer quietly.
            return if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(format!("writing stdout: {e}").into())
            };
        }
        if polled? {
            last_message = Instant::now();
        }
        consumer.group_tick()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringtail_protocol::batch::BatchBuilder;
    use ringtail_protocol::types::{LeaderEpoch, Offset};

    fn formatter(props: &[&str]) -> Formatter {
        let props: Vec<String> = props.iter().map(|s| (*s).to_owned()).collect();
        Formatter::from_props(&Props::from_flags("--property", &props).expect("valid"))
    }

    fn message<'a>(headers: &'a [(&'a [u8], Option<&'a [u8]>)]) -> Message<'a> {
        Message {
            partition: 2,
            offset: 41,
            timestamp_type: TimestampType::CreateTime,
            timestamp: 1_700_000_000_000,
            key: Some(b"k"),
            value: Some(b"v"),
            headers,
        }
    }

    fn format(f: &Formatter, m: &Message<'_>) -> String {
        let mut out = Vec::new();
        f.write(&mut out, m);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn formatter_matches_kafkas_layout() {
        assert_eq!(format(&formatter(&[]), &message(&[])), "v\n");
        let all = formatter(&[
            "print.timestamp=true",
            "print.partition=true",
            "print.offset=true",
            "print.headers=true",
            "print.key=true",
        ]);
        let h: &[(&[u8], Option<&[u8]>)] = &[(b"a", Some(b"1")), (b"b", None)];
        assert_eq!(
            format(&all, &message(h)),
            "CreateTime:1700000000000\tPartition:2\tOffset:41\ta:1,b:null\tk\tv\n"
        );
        assert_eq!(
            format(&all, &message(&[])),
            "CreateTime:1700000000000\tPartition:2\tOffset:41\tNO_HEADERS\tk\tv\n"
        );
        let key_only = formatter(&["print.key=true", "print.value=false", "key.separator=:"]);
        assert_eq!(format(&key_only, &message(&[])), "k\n");
        let null_key = formatter(&["print.key=true", "key.separator=="]);
        let mut m = message(&[]);
        m.key = None;
        assert_eq!(format(&null_key, &m), "null=v\n");
    }

    fn batch_at(base: i64, values: &[&str]) -> Vec<u8> {
        let mut b = BatchBuilder::new().stored_at(Offset(base), LeaderEpoch(0));
        for v in values {
            b.append(1_000, None, Some(v.as_bytes()), &[]);
        }
        b.build()
    }

    fn decode(records: &[u8], position: i64, max: usize) -> (Vec<(i64, String)>, Decoded) {
        let mut seen = Vec::new();
        let decoded = decode_records(0, records, position, true, &mut |m| {
            seen.push((
                m.offset,
                String::from_utf8_lossy(m.value.expect("value")).into_owned(),
            ));
            seen.len() < max
        })
        .expect("valid");
        (seen, decoded)
    }

    #[test]
    fn records_below_the_position_are_skipped_and_partial_batches_wait() {
        let mut bytes = batch_at(10, &["a", "b", "c"]);
        bytes.extend_from_slice(&batch_at(13, &["d", "e"]));
        let whole = bytes.len();
        bytes.extend_from_slice(&batch_at(15, &["f"])[..30]);
        let (seen, decoded) = decode(&bytes, 11, usize::MAX);
        assert_eq!(
            seen,
            vec![
                (11, "b".to_owned()),
                (12, "c".to_owned()),
                (13, "d".to_owned()),
                (14, "e".to_owned())
            ]
        );
        assert_eq!(
            decoded,
            Decoded {
                position: 15,
                batches: 2
            }
        );
        // Stopping after two messages leaves the position after the last.
        let (seen, decoded) = decode(&bytes[..whole], 10, 2);
        assert_eq!(seen.len(), 2);
        assert_eq!(decoded.position, 12);
        // Only a partial batch: nothing, no progress.
        let (seen, decoded) = decode(&bytes[whole..], 15, usize::MAX);
        assert!(seen.is_empty());
        assert_eq!(
            decoded,
            Decoded {
                position: 15,
                batches: 0
            }
        );
    }

    #[test]
    fn corrupt_batches_are_errors() {
        let mut bytes = batch_at(0, &["a"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        let e = decode_records(0, &bytes, 0, true, &mut |_| true).expect_err("crc");
        assert!(e.contains("corrupt"), "{e}");
    }

    fn args(extra: &[&str]) -> Result<ConsumerConfig, String> {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ConsumerArgs,
        }
        let mut argv = vec!["x", "--bootstrap-server", "h:1", "--topic", "t"];
        argv.extend_from_slice(extra);
        ConsumerConfig::from_args(&Cli::parse_from(argv).args)
    }

    #[test]
    fn start_flags_follow_kafka() {
        assert_eq!(args(&[]).expect("valid").start, Start::Latest);
        assert_eq!(
            args(&["--from-beginning"]).expect("valid").start,
            Start::Earliest
        );
        assert_eq!(
            args(&["--partition", "1", "--offset", "7"])
                .expect("valid")
                .start,
            Start::Offset(7)
        );
        assert!(args(&["--offset", "7"]).is_err());
        assert!(args(&["--partition", "1", "--offset", "-3"]).is_err());
        assert!(args(&["--partition", "1", "--offset", "1", "--from-beginning"]).is_err());
        let group = args(&["--group", "g"])
            .expect("valid")
            .group
            .expect("a group");
        assert_eq!(group.id, "g");
        assert_eq!(group.strategies, vec!["range", "roundrobin"]);
        assert_eq!(group.auto_commit, Some(Duration::from_secs(5)));
        assert!(args(&["--group", "g", "--partition", "1"]).is_err());
        assert!(args(&[
            "--group",
            "g",
            "--consumer-property",
            "partition.assignment.strategy=cooperative-sticky"
        ])
        .is_err());
        assert!(args(&["--group", "g", "--consumer-property", "group.id=h"]).is_err());
        let by_property = args(&["--consumer-property", "group.id=h"]).expect("valid");
        assert_eq!(by_property.group.expect("a group").id, "h");
    }

    fn subscriptions(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| {
                (
                    (*m).to_owned(),
                    ts.iter().map(|t| (*t).to_owned()).collect(),
                )
            })
            .collect()
    }

    fn flat(a: &Assignment) -> Vec<(String, String, Vec<i32>)> {
        a.iter()
            .flat_map(|(m, ts)| {
                ts.iter()
                    .map(move |(t, p)| (m.clone(), t.clone(), p.clone()))
            })
            .collect()
    }

    #[test]
    fn assignors_match_kafkas() {
        let subs = subscriptions(&[("c", &["t"]), ("a", &["t", "u"]), ("b", &["t"])]);
        let parts: BTreeMap<String, i32> = [("t".to_owned(), 7), ("u".to_owned(), 2)].into();
        // Range: 7 over a, b, c is 3, 2, 2; u only to a.
        assert_eq!(
            flat(&assign_range(&subs, &parts)),
            vec![
                ("a".into(), "t".into(), vec![0, 1, 2]),
                ("a".into(), "u".into(), vec![0, 1]),
                ("b".into(), "t".into(), vec![3, 4]),
                ("c".into(), "t".into(), vec![5, 6]),
            ]
        );
        // Round robin: t-0..6 dealt a, b, c, a, ...; u skips b and c.
        assert_eq!(
            flat(&assign_roundrobin(&subs, &parts)),
            vec![
                ("a".into(), "t".into(), vec![0, 3, 6]),
                ("a".into(), "u".into(), vec![0, 1]),
                ("b".into(), "t".into(), vec![1, 4]),
                ("c".into(), "t".into(), vec![2, 5]),
            ]
        );
        // More members than partitions: the last get nothing.
        let one: BTreeMap<String, i32> = [("t".to_owned(), 1)].into();
        let a = assign_range(&subs, &one);
        assert_eq!(a["a"]["t"], vec![0]);
        assert!(a["b"].is_empty() && a["c"].is_empty());
    }
}
