//! `ringtail consumer-groups`, like `kafka-consumer-groups.sh`: list,
//! describe, reset offsets, delete groups and delete offsets, with Kafka's
//! flags, tables and messages.
//!
//! Everything goes over the wire: FindCoordinator for the group's
//! coordinator, ListGroups, DescribeGroups, OffsetFetch, ListOffsets (at
//! each partition's leader), OffsetCommit as a simple commit (generation
//! -1, no member id, which the coordinator accepts only while the group
//! has no members), DeleteGroups and OffsetDelete.
//!
//! The consumer protocol's subscription and assignment encodings (shared
//! with `console-consumer --group`) live here too.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Args;
use ringtail_protocol::messages::kafka_protocol::messages::describe_groups_response::DescribedGroup;
use ringtail_protocol::messages::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use ringtail_protocol::messages::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use ringtail_protocol::messages::kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, TopicName,
};
use ringtail_protocol::messages::kafka_protocol::protocol::StrBytes;

use super::client::{self, Client, ClientError, Leaders};

/// ListOffsets' special timestamps.
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
/// What Kafka prints for a value it does not have.
const MISSING: &str = "-";
/// How often FindCoordinator is retried while the coordinator loads.
const COORDINATOR_ATTEMPTS_MAX: u32 = 50;

/// A topic partition, ordered by topic then partition.
pub type Tp = (String, i32);

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_owned())
}

/// Connects to `group`'s coordinator (FindCoordinator, retried while the
/// coordinator is not available yet).
pub fn coordinator(
    bootstrap: &mut Client,
    group: &str,
    client_id: &str,
) -> Result<Client, ClientError> {
    let mut attempt = 0;
    loop {
        let version = bootstrap.version_at_most::<FindCoordinatorRequest>(3)?;
        let request = FindCoordinatorRequest::default()
            .with_key(s(group))
            .with_key_type(0);
        let r = bootstrap.roundtrip(version, &request)?;
        match ClientError::from_code(r.error_code, r.error_message.as_ref()) {
            None => {
                let host = r.host.to_string();
                let addr = if host.contains(':') {
                    format!("[{host}]:{}", r.port)
                } else {
                    format!("{host}:{}", r.port)
                };
                if addr == bootstrap.addr() {
                    return Client::connect(bootstrap.addr(), client_id);
                }
                return Client::connect(&addr, client_id);
            }
            Some(_) if client::is_retriable(r.error_code) && attempt < COORDINATOR_ATTEMPTS_MAX => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Some(e) => return Err(e),
        }
    }
}

/// A consumer protocol subscription (version 0): topics, no user data.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

/// The topics of a consumer protocol subscription (any version: the
/// later fields follow the topics).
pub fn decode_subscription(mut b: &[u8]) -> Result<Vec<String>, String> {
    let err = || "truncated consumer subscription".to_owned();
    if b.remaining() < 6 {
        return Err(err());
    }
    let _version = b.get_i16();
    let count = b.get_i32();
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        topics.push(read_string(&mut b).ok_or_else(err)?);
    }
    Ok(topics)
}

fn read_string(b: &mut &[u8]) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(b.get_i16()).ok()?;
    let bytes = b.get(..len)?;
    let out = String::from_utf8_lossy(bytes).into_owned();
    b.advance(len);
    Some(out)
}

/// A consumer protocol assignment (version 0), no user data.
pub fn encode_assignment(partitions: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(partitions.len() as i32);
    for (topic, parts) in partitions {
        b.put_i16(topic.len() as i16);
        b.put_slice(topic.as_bytes());
        b.put_i32(parts.len() as i32);
        for p in parts {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

/// The partitions of a consumer protocol assignment, sorted; empty bytes
/// (a member between rebalances) are an empty assignment.
pub fn decode_assignment(mut b: &[u8]) -> Result<Vec<Tp>, String> {
    let mut out = Vec::new();
    if b.is_empty() {
        return Ok(out);
    }
    let err = || "truncated consumer assignment".to_owned();
    if b.remaining() < 6 {
        return Err(err());
    }
    let _version = b.get_i16();
    for _ in 0..b.get_i32().max(0) {
        let topic = read_string(&mut b).ok_or_else(err)?;
        if b.remaining() < 4 {
            return Err(err());
        }
        let n = b.get_i32().max(0);
        if b.remaining() < 4 * n as usize {
            return Err(err());
        }
        for _ in 0..n {
            out.push((topic.clone(), b.get_i32()));
        }
    }
    out.sort();
    Ok(out)
}

/// The group's committed offsets (OffsetFetch for all topics, or for
/// `only`); partitions without a commit are left out.
pub fn committed_offsets(
    coordinator: &mut Client,
    group: &str,
    only: Option<&[Tp]>,
) -> Result<BTreeMap<Tp, i64>, ClientError> {
    let topics = only.map(|tps| {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in tps {
            by_topic.entry(t).or_default().push(*p);
        }
        by_topic
            .into_iter()
            .map(|(t, parts)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(parts)
            })
            .collect()
    });
    let version = coordinator.version_at_most::<OffsetFetchRequest>(7)?;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topics);
    let r = coordinator.roundtrip(version, &request)?;
    if let Some(e) = ClientError::from_code(r.error_code, None) {
        return Err(e);
    }
    let mut out = BTreeMap::new();
    for t in &r.topics {
        for p in &t.partitions {
            if let Some(e) = ClientError::from_code(p.error_code, p.metadata.as_ref()) {
                return Err(e);
            }
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// Commits `offsets` for `group`: a simple commit (generation -1, no
/// member) unless `member` names a generation and member id.
pub fn commit_offsets(
    coordinator: &mut Client,
    group: &str,
    member: Option<(i32, &str)>,
    offsets: &BTreeMap<Tp, i64>,
) -> Result<(), ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), offset) in offsets {
        by_topic.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s(""))),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, parts)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(parts)
        })
        .collect();
    let (generation, member_id) = member.unwrap_or((-1, ""));
    let version = coordinator.version_at_most::<OffsetCommitRequest>(8)?;
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_retention_time_ms(-1)
        .with_topics(topics);
    let r = coordinator.roundtrip(version, &request)?;
    for t in &r.topics {
        for p in &t.partitions {
            if let Some(e) = ClientError::from_code(p.error_code, None) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Offsets of `tps` at a ListOffsets timestamp (earliest, latest), asked
/// of each partition's leader. A partition that fails maps to its error.
pub fn log_offsets(
    leaders: &mut Leaders,
    tps: &BTreeSet<Tp>,
    timestamp: i64,
) -> Result<BTreeMap<Tp, Result<i64, ClientError>>, ClientError> {
    let topics: BTreeSet<&str> = tps.iter().map(|(t, _)| t.as_str()).collect();
    let names: Vec<&str> = topics.into_iter().collect();
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let response = leaders.any()?.metadata(Some(&names), false)?;
    leaders.set_brokers(&client::brokers_of(&response));
    let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
    for (code, info) in client::topics_of(&response) {
        for tp in tps.iter().filter(|(t, _)| *t == info.name) {
            let leader = info.partitions.iter().find(|p| p.index == tp.1);
            match (ClientError::from_code(code, None), leader) {
                (Some(e), _) => {
                    out.insert(tp.clone(), Err(e));
                }
                (None, Some(p)) if p.leader >= 0 => {
                    by_leader.entry(p.leader).or_default().push(tp.clone())
                }
                (None, _) => {
                    out.insert(
                        tp.clone(),
                        Err(ClientError::Other(format!(
                            "partition {}-{} has no leader or does not exist",
                            tp.0, tp.1
                        ))),
                    );
                }
            }
        }
    }
    for (leader, wanted) in by_leader {
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (t, p) in &wanted {
            topics.entry(t).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(*p)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            );
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(parts)
                    })
                    .collect(),
            );
        let response = leaders.node(leader)?.send(&request)?;
        for t in &response.topics {
            for p in &t.partitions {
                let tp = (t.name.0.to_string(), p.partition_index);
                let value = match ClientError::from_code(p.error_code, None) {
                    Some(e) => Err(e),
                    None => Ok(p.offset),
                };
                out.insert(tp, value);
            }
        }
    }
    Ok(out)
}

#[derive(Args, Debug, Clone)]
pub struct GroupsArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe the group(s): offsets and lag per partition (default),
    /// --members or --state.
    #[arg(long)]
    pub describe: bool,
    /// Reset the group's committed offsets (the group must be inactive).
    #[arg(long)]
    pub reset_offsets: bool,
    /// Delete the group(s) (they must be empty).
    #[arg(long)]
    pub delete: bool,
    /// Delete the group's committed offsets of --topic.
    #[arg(long)]
    pub delete_offsets: bool,
    /// The group; repeatable.
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// Every group (with --describe, --reset-offsets, --delete).
    #[arg(long)]
    pub all_groups: bool,
    /// TOPIC or TOPIC:P[,P...] (--reset-offsets, --delete-offsets);
    /// repeatable.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Vec<String>,
    /// Every topic the group has committed offsets for (--reset-offsets).
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to the earliest offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to the committed offset (no change; fills in missing ones
    /// is not done).
    #[arg(long)]
    pub to_current: bool,
    /// Reset to this offset (clamped to the log's range).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub to_offset: Option<i64>,
    /// Move the committed offset by N (may be negative).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Show the new offsets without committing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
    /// With --describe: the members.
    #[arg(long)]
    pub members: bool,
    /// With --describe: the group's state; with --list: each group's.
    #[arg(long)]
    pub state: bool,
    /// With --describe: offsets (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --describe --members: each member's partitions.
    #[arg(long)]
    pub verbose: bool,
}

/// Kafka's argument errors end with the usage; here a line is enough.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("{message}");
    eprintln!("See 'ringtail consumer-groups --help'.");
    ExitCode::from(1)
}

pub fn run(args: &GroupsArgs) -> ExitCode {
    let actions = [
        args.list,
        args.describe,
        args.reset_offsets,
        args.delete,
        args.delete_offsets,
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        return usage_error(
            "Command must include exactly one action: --list, --describe, --delete, --reset-offsets, --delete-offsets",
        );
    }
    if let Err(message) = check_options(args) {
        return usage_error(&message);
    }
    let result = match Groups::connect(&args.bootstrap_server) {
        Ok(mut g) => {
            if args.list {
                g.list(args.state)
            } else if args.describe {
                g.describe_all(args)
            } else if args.reset_offsets {
                g.reset_all(args)
            } else if args.delete {
                g.delete(args)
            } else {
                g.delete_offsets(args)
            }
        }
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            println!("\nError: Executing consumer group command failed due to {message}");
            ExitCode::from(1)
        }
    }
}

fn check_options(args: &GroupsArgs) -> Result<(), String> {
    let has_group = !args.group.is_empty() || args.all_groups;
    if (args.describe || args.delete || args.reset_offsets) && !has_group {
        let action = if args.describe {
            "describe"
        } else if args.delete {
            "delete"
        } else {
            "reset-offsets"
        };
        return Err(format!(
            "Option [{action}] takes one of these options: [all-groups], [group]"
        ));
    }
    if args.delete_offsets && (args.group.len() != 1 || args.topic.is_empty()) {
        return Err("Option [delete-offsets] takes the following options: [group], [topic]".into());
    }
    if args.reset_offsets {
        let scenarios = [
            args.to_earliest,
            args.to_latest,
            args.to_current,
            args.to_offset.is_some(),
            args.shift_by.is_some(),
        ];
        if scenarios.iter().filter(|s| **s).count() != 1 {
            return Err(
                "One of the reset scopes should be defined: --to-datetime, --by-duration, --to-earliest, --to-latest, --shift-by, --from-file, --to-current, --to-offset"
                    .into(),
            );
        }
        if args.topic.is_empty() != args.all_topics {
            return Err(
                "Option [reset-offsets] takes one of these options: [all-topics], [topic]".into(),
            );
        }
        if args.dry_run && args.execute {
            return Err("Option [dry-run] cannot be used with [execute]".into());
        }
    }
    Ok(())
}

/// One row of `--describe`'s offsets table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub current: Option<i64>,
    pub log_end: Option<i64>,
    pub consumer_id: String,
    pub host: String,
    pub client_id: String,
}

impl Row {
    fn lag(&self) -> Option<i64> {
        match (self.current, self.log_end) {
            (Some(c), Some(e)) => Some(e - c),
            _ => None,
        }
    }
}

fn or_missing<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| MISSING.to_owned(), |v| v.to_string())
}

/// Kafka's offsets table: columns at least 15 wide (group, topic,
/// consumer id, host), the rest fixed.
pub fn offsets_table(group: &str, rows: &[Row]) -> String {
    let width = |f: &dyn Fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0).max(15);
    let group_w = group.len().max(15);
    let topic_w = width(&|r| r.topic.as_deref().unwrap_or(MISSING).len());
    let consumer_w = width(&|r| r.consumer_id.len());
    let host_w = width(&|r| r.host.len());
    let line = |cols: [&str; 9]| {
        format!(
            "{:<group_w$} {:<topic_w$} {:<10} {:<15} {:<15} {:<15} {:<consumer_w$} {:<host_w$} {}\n",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
        )
    };
    let mut out = String::from("\n");
    out += &line([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in rows {
        out += &line([
            group,
            r.topic.as_deref().unwrap_or(MISSING),
            &or_missing(r.partition),
            &or_missing(r.current),
            &or_missing(r.log_end),
            &or_missing(r.lag()),
            &r.consumer_id,
            &r.host,
            &r.client_id,
        ]);
    }
    out
}

struct Groups {
    leaders: Leaders,
}

const CLIENT_ID: &str = "ringtail-consumer-groups";

fn described(coordinator: &mut Client, group: &str) -> Result<DescribedGroup, ClientError> {
    let r =
        coordinator.send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]))?;
    let d = r
        .groups
        .into_iter()
        .find(|g| g.group_id.0.as_str() == group)
        .ok_or_else(|| ClientError::Other(format!("DescribeGroups did not answer for {group}")))?;
    if let Some(e) = ClientError::from_code(d.error_code, d.error_message.as_ref()) {
        return Err(e);
    }
    Ok(d)
}

/// Kafka's (stderr) note about a group's state before its table; `false`
/// when there is nothing to print (Dead).
fn state_note(group: &str, state: &str, rows: usize) -> bool {
    match state {
        "Dead" => {
            println!("\nError: Consumer group '{group}' does not exist.");
            return false;
        }
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    rows > 0
}

/// Kafka's name for a group-deletion error, as its exceptions print.
fn delete_error_text(code: i16) -> String {
    match code {
        68 => {
            "org.apache.kafka.common.errors.GroupNotEmptyException: The group is not empty.".into()
        }
        69 => {
            "org.apache.kafka.common.errors.GroupIdNotFoundException: The group id does not exist."
                .into()
        }
        c => ClientError::from_code(c, None)
            .map(|e| e.to_string())
            .unwrap_or_default(),
    }
}

impl Groups {
    fn connect(servers: &str) -> Result<Groups, ClientError> {
        Ok(Groups {
            leaders: Leaders::connect(servers, CLIENT_ID)?,
        })
    }

    fn coordinator(&mut self, group: &str) -> Result<Client, String> {
        let bootstrap = self.leaders.any().map_err(|e| e.to_string())?;
        coordinator(bootstrap, group, CLIENT_ID).map_err(|e| e.to_string())
    }

    /// Every group with its state, sorted by id.
    fn all_groups(&mut self) -> Result<Vec<(String, String, String)>, String> {
        let c = self.leaders.any().map_err(|e| e.to_string())?;
        let version = c
            .version_at_most::<ListGroupsRequest>(4)
            .map_err(|e| e.to_string())?;
        let r = c
            .roundtrip(version, &ListGroupsRequest::default())
            .map_err(|e| e.to_string())?;
        if let Some(e) = ClientError::from_code(r.error_code, None) {
            return Err(e.to_string());
        }
        let mut groups: Vec<(String, String, String)> = r
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.0.to_string(),
                    g.group_state.to_string(),
                    g.protocol_type.to_string(),
                )
            })
            .collect();
        groups.sort();
        Ok(groups)
    }

    fn list(&mut self, with_state: bool) -> Result<ExitCode, String> {
        let groups = self.all_groups()?;
        // Consumer groups: the "consumer" protocol, or offsets only ("").
        let groups: Vec<_> = groups
            .into_iter()
            .filter(|(_, _, t)| t.is_empty() || t == "consumer")
            .collect();
        if with_state {
            let w = groups.iter().map(|g| g.0.len()).max().unwrap_or(0).max(15);
            println!("{:<w$} STATE", "GROUP");
            for (id, state, _) in &groups {
                let state = if state.is_empty() { "Unknown" } else { state };
                println!("{id:<w$} {state}");
            }
        } else {
            for (id, _, _) in &groups {
                println!("{id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn selected_groups(&mut self, args: &GroupsArgs) -> Result<Vec<String>, String> {
        if args.all_groups {
            Ok(self.all_groups()?.into_iter().map(|g| g.0).collect())
        } else {
            Ok(args.group.clone())
        }
    }

    fn describe_all(&mut self, args: &GroupsArgs) -> Result<ExitCode, String> {
        for group in self.selected_groups(args)? {
            self.describe(&group, args)?;
        }
        Ok(ExitCode::SUCCESS)
    }

    fn describe(&mut self, group: &str, args: &GroupsArgs) -> Result<(), String> {
        let mut c = self.coordinator(group)?;
        let d = described(&mut c, group).map_err(|e| e.to_string())?;
        let state = d.group_state.to_string();
        if args.state {
            return self.describe_state(&c, group, &d);
        }
        let members = members_of(&d)?;
        if args.members {
            if state_note(group, &state, members.len()) {
                print!("{}", members_table(group, &members, args.verbose));
            }
            return Ok(());
        }
        let committed = committed_offsets(&mut c, group, None).map_err(|e| e.to_string())?;
        let rows = self.offset_rows(&members, &committed)?;
        if state_note(group, &state, rows.len()) {
            print!("{}", offsets_table(group, &rows));
        }
        Ok(())
    }

    fn describe_state(
        &mut self,
        c: &Client,
        group: &str,
        d: &DescribedGroup,
    ) -> Result<(), String> {
        let state = d.group_state.to_string();
        if !state_note(group, &state, 1) {
            return Ok(());
        }
        let coordinator = format!("{} ({})", c.addr(), "-");
        let gw = group.len().max(15);
        let cw = coordinator.len().max(25);
        let line = |a: &str, b: &str, x: &str, y: &str, z: &str| {
            println!("{a:<gw$} {b:<cw$} {x:<20} {y:<20} {z}")
        };
        println!();
        line(
            "GROUP",
            "COORDINATOR (ID)",
            "ASSIGNMENT-STRATEGY",
            "STATE",
            "#MEMBERS",
        );
        line(
            group,
            &coordinator,
            &d.protocol_data.to_string(),
            &state,
            &d.members.len().to_string(),
        );
        Ok(())
    }

    /// Rows for assigned partitions (by member, the most partitions
    /// first), members without partitions, then committed partitions no
    /// member holds: Kafka's order.
    fn offset_rows(
        &mut self,
        members: &[MemberInfo],
        committed: &BTreeMap<Tp, i64>,
    ) -> Result<Vec<Row>, String> {
        let mut tps: BTreeSet<Tp> = committed.keys().cloned().collect();
        for m in members {
            tps.extend(m.partitions.iter().cloned());
        }
        let ends =
            log_offsets(&mut self.leaders, &tps, LATEST_TIMESTAMP).map_err(|e| e.to_string())?;
        let end = |tp: &Tp| ends.get(tp).and_then(|r| r.as_ref().ok().copied());
        let mut sorted: Vec<&MemberInfo> = members.iter().collect();
        sorted.sort_by_key(|m| std::cmp::Reverse(m.partitions.len()));
        let mut rows = Vec::new();
        let mut assigned = BTreeSet::new();
        for m in sorted {
            if m.partitions.is_empty() {
                rows.push(Row {
                    topic: None,
                    partition: None,
                    current: None,
                    log_end: None,
                    consumer_id: m.member_id.clone(),
                    host: m.host.clone(),
                    client_id: m.client_id.clone(),
                });
            }
            for tp in &m.partitions {
                assigned.insert(tp.clone());
                rows.push(Row {
                    topic: Some(tp.0.clone()),
                    partition: Some(tp.1),
                    current: committed.get(tp).copied(),
                    log_end: end(tp),
                    consumer_id: m.member_id.clone(),
                    host: m.host.clone(),
                    client_id: m.client_id.clone(),
                });
            }
        }
        for (tp, offset) in committed {
            if !assigned.contains(tp) {
                rows.push(Row {
                    topic: Some(tp.0.clone()),
                    partition: Some(tp.1),
                    current: Some(*offset),
                    log_end: end(tp),
                    consumer_id: MISSING.into(),
                    host: MISSING.into(),
                    client_id: MISSING.into(),
                });
            }
        }
        Ok(rows)
    }

    fn reset_all(&mut self, args: &GroupsArgs) -> Result<ExitCode, String> {
        if !args.dry_run && !args.execute {
            println!(
                "WARN: No action will be performed as the --execute option is missing. \
                 In a future major release, the default behavior of this command will be to prompt the user before executing the reset rather than doing a dry run. \
                 You should add the --dry-run option explicitly if you are scripting this command and want to keep the current default behavior without prompting."
            );
        }
        let mut all = Vec::new();
        let mut failed = false;
        for group in self.selected_groups(args)? {
            match self.reset(&group, args)? {
                Some(offsets) => all.push((group, offsets)),
                None => failed = true,
            }
        }
        if !all.is_empty() {
            let line =
                |a: &str, b: &str, c: &str, d: &str| format!("{a:<30} {b:<30} {c:<10} {d:<15}");
            println!("\n{}", line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"));
            for (group, offsets) in &all {
                for ((t, p), o) in offsets {
                    println!("{}", line(group, t, &p.to_string(), &o.to_string()));
                }
            }
        }
        Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }

    /// The partitions `--topic`/`--all-topics` name for `group`.
    fn reset_scope(
        &mut self,
        c: &mut Client,
        group: &str,
        args: &GroupsArgs,
    ) -> Result<BTreeSet<Tp>, String> {
        if args.all_topics {
            let committed = committed_offsets(c, group, None).map_err(|e| e.to_string())?;
            return Ok(committed.into_keys().collect());
        }
        let mut out = BTreeSet::new();
        for spec in &args.topic {
            let (topic, parts) = parse_topic_spec(spec)?;
            match parts {
                Some(parts) => out.extend(parts.into_iter().map(|p| (topic.clone(), p))),
                None => {
                    let partitions = self
                        .leaders
                        .topic_partitions(&topic, false)
                        .map_err(|e| format!("{topic}: {e}"))?
                        .ok_or_else(|| {
                            format!("org.apache.kafka.common.errors.UnknownTopicOrPartitionException: This server does not host this topic-partition. ({topic})")
                        })?;
                    out.extend(partitions.iter().map(|p| (topic.clone(), p.index)));
                }
            }
        }
        Ok(out)
    }

    /// The new offsets for `group`, committed with --execute; `None`
    /// when the group is active (Kafka's refusal is printed).
    fn reset(
        &mut self,
        group: &str,
        args: &GroupsArgs,
    ) -> Result<Option<BTreeMap<Tp, i64>>, String> {
        let mut c = self.coordinator(group)?;
        let d = described(&mut c, group).map_err(|e| e.to_string())?;
        let state = d.group_state.to_string();
        if state != "Empty" && state != "Dead" {
            println!(
                "\nError: Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
            );
            return Ok(None);
        }
        let scope = self.reset_scope(&mut c, group, args)?;
        let offsets = self.new_offsets(&mut c, group, &scope, args)?;
        if args.execute {
            commit_offsets(&mut c, group, None, &offsets).map_err(|e| e.to_string())?;
        }
        Ok(Some(offsets))
    }

    fn new_offsets(
        &mut self,
        c: &mut Client,
        group: &str,
        scope: &BTreeSet<Tp>,
        args: &GroupsArgs,
    ) -> Result<BTreeMap<Tp, i64>, String> {
        let earliest = self.known_offsets(scope, EARLIEST_TIMESTAMP)?;
        let latest = self.known_offsets(scope, LATEST_TIMESTAMP)?;
        let committed = if args.to_current || args.shift_by.is_some() {
            committed_offsets(c, group, None).map_err(|e| e.to_string())?
        } else {
            BTreeMap::new()
        };
        let mut out = BTreeMap::new();
        for tp in scope {
            let (start, end) = (earliest[tp], latest[tp]);
            let wanted = if args.to_earliest {
                start
            } else if args.to_latest {
                end
            } else if let Some(n) = args.to_offset {
                n
            } else {
                let current = match committed.get(tp) {
                    Some(o) => *o,
                    None if args.to_current => end,
                    None => {
                        return Err(format!(
                            "Cannot shift offset for partition {}-{} since there is no current committed offset",
                            tp.0, tp.1
                        ))
                    }
                };
                current.saturating_add(args.shift_by.unwrap_or(0))
            };
            let clamped = if wanted > end {
                eprintln!("WARN: New offset ({wanted}) is higher than latest offset for topic partition {}-{}. Value will be set to {end}", tp.0, tp.1);
                end
            } else if wanted < start {
                eprintln!("WARN: New offset ({wanted}) is lower than earliest offset for topic partition {}-{}. Value will be set to {start}", tp.0, tp.1);
                start
            } else {
                wanted
            };
            out.insert(tp.clone(), clamped);
        }
        Ok(out)
    }

    fn known_offsets(
        &mut self,
        scope: &BTreeSet<Tp>,
        timestamp: i64,
    ) -> Result<BTreeMap<Tp, i64>, String> {
        let found = log_offsets(&mut self.leaders, scope, timestamp).map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for tp in scope {
            match found.get(tp) {
                Some(Ok(o)) => {
                    out.insert(tp.clone(), *o);
                }
                Some(Err(e)) => return Err(format!("{}-{}: {e}", tp.0, tp.1)),
                None => return Err(format!("ListOffsets did not answer for {}-{}", tp.0, tp.1)),
            }
        }
        Ok(out)
    }

    fn delete(&mut self, args: &GroupsArgs) -> Result<ExitCode, String> {
        let groups = self.selected_groups(args)?;
        let mut failures = Vec::new();
        for group in &groups {
            let mut c = self.coordinator(group)?;
            let r = c
                .send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]))
                .map_err(|e| e.to_string())?;
            let code = r
                .results
                .iter()
                .find(|g| g.group_id.0.as_str() == group)
                .map_or(-1, |g| g.error_code);
            if code != 0 {
                failures.push((group.clone(), code));
            }
        }
        let done: Vec<String> = groups
            .iter()
            .filter(|g| !failures.iter().any(|(f, _)| f == *g))
            .map(|g| format!("'{g}'"))
            .collect();
        if failures.is_empty() {
            println!(
                "Deletion of requested consumer groups ({}) was successful.",
                done.join(", ")
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!("Deletion of some consumer groups failed:");
        for (group, code) in &failures {
            println!(
                "* Group '{group}' could not be deleted due to: {}",
                delete_error_text(*code)
            );
        }
        if !done.is_empty() {
            println!(
                "\nThese consumer groups were deleted successfully: {}",
                done.join(", ")
            );
        }
        Ok(ExitCode::from(1))
    }

    fn delete_offsets(&mut self, args: &GroupsArgs) -> Result<ExitCode, String> {
        let group = &args.group[0];
        let mut c = self.coordinator(group)?;
        let mut scope: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for spec in &args.topic {
            let (topic, parts) = parse_topic_spec(spec)?;
            let parts = match parts {
                Some(p) => p,
                None => self
                    .leaders
                    .topic_partitions(&topic, false)
                    .map_err(|e| format!("{topic}: {e}"))?
                    .map(|ps| ps.iter().map(|p| p.index).collect())
                    .unwrap_or_default(),
            };
            scope.entry(topic).or_default().extend(parts);
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(
                scope
                    .iter()
                    .map(|(t, parts)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(*p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let r = c.send(&request).map_err(|e| e.to_string())?;
        let topics: Vec<&str> = scope.keys().map(String::as_str).collect();
        let mut failed = r.error_code != 0;
        match r.error_code {
            0 => println!(
                "Request succeed for deleting offsets with topic {} group {group}",
                topics.join(", ")
            ),
            24 => println!("\nError: '{group}' is not valid."),
            69 => println!("\nError: '{group}' does not exist."),
            68 => println!("\nError: '{group}' is not empty."),
            3 | 29 | 86 => {
                println!(
                    "\nError: Encounter some partition level error, see the follow-up details:"
                )
            }
            code => println!(
                "\nError: Encounter some unknown error: {}",
                client::error_name(code)
            ),
        }
        let line = |a: &str, b: &str, c: &str| format!("{a:<30} {b:<15} {c:<15}");
        let mut table = vec![line("TOPIC", "PARTITION", "STATUS")];
        for t in &r.topics {
            for p in &t.partitions {
                let status = match ClientError::from_code(p.error_code, None) {
                    None => "Successful".to_owned(),
                    Some(e) => {
                        failed = true;
                        format!("Error: {e}")
                    }
                };
                table.push(line(&t.name.0, &p.partition_index.to_string(), &status));
            }
        }
        println!("\n{}", table.join("\n"));
        Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// One member as `--describe` shows it.
#[derive(Debug, Clone)]
struct MemberInfo {
    member_id: String,
    host: String,
    client_id: String,
    partitions: Vec<Tp>,
}

fn members_of(d: &DescribedGroup) -> Result<Vec<MemberInfo>, String> {
    let consumer = d.protocol_type.as_str() == "consumer";
    d.members
        .iter()
        .map(|m| {
            let partitions = if consumer {
                decode_assignment(&m.member_assignment)
                    .map_err(|e| format!("member {}: {e}", m.member_id))?
            } else {
                Vec::new()
            };
            Ok(MemberInfo {
                member_id: m.member_id.to_string(),
                host: m.client_host.to_string(),
                client_id: m.client_id.to_string(),
                partitions,
            })
        })
        .collect()
}

fn members_table(group: &str, members: &[MemberInfo], verbose: bool) -> String {
    let gw = group.len().max(15);
    let cw = members
        .iter()
        .map(|m| m.member_id.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let hw = members
        .iter()
        .map(|m| m.host.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let kw = members
        .iter()
        .map(|m| m.client_id.len())
        .max()
        .unwrap_or(0)
        .max(15);
    let mut out = format!(
        "\n{:<gw$} {:<cw$} {:<hw$} {:<kw$} {:<12}{}\n",
        "GROUP",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
        if verbose { " ASSIGNMENT" } else { "" }
    );
    for m in members {
        let mut line = format!(
            "{:<gw$} {:<cw$} {:<hw$} {:<kw$} {:<12}",
            group,
            m.member_id,
            m.host,
            m.client_id,
            m.partitions.len()
        );
        if verbose {
            let mut by_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (t, p) in &m.partitions {
                by_topic.entry(t).or_default().push(p.to_string());
            }
            let text: Vec<String> = by_topic
                .iter()
                .map(|(t, ps)| format!("{t}({})", ps.join(",")))
                .collect();
            line += &format!(
                " {}",
                if text.is_empty() {
                    MISSING.to_owned()
                } else {
                    text.join(",")
                }
            );
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// `TOPIC` or `TOPIC:P[,P...]`.
fn parse_topic_spec(spec: &str) -> Result<(String, Option<Vec<i32>>), String> {
    match spec.split_once(':') {
        None => Ok((spec.to_owned(), None)),
        Some((topic, parts)) => {
            let parts: Result<Vec<i32>, _> =
                parts.split(',').map(|p| p.trim().parse::<i32>()).collect();
            match parts {
                Ok(p) if !topic.is_empty() && !p.is_empty() => Ok((topic.to_owned(), Some(p))),
                _ => Err(format!(
                    "invalid --topic {spec:?}: expected TOPIC or TOPIC:PARTITION[,PARTITION...]"
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("b".to_owned(), vec![2, 0]);
        m.insert("a".to_owned(), vec![1]);
        let bytes = encode_assignment(&m);
        assert_eq!(
            decode_assignment(&bytes).expect("valid"),
            vec![("a".into(), 1), ("b".into(), 0), ("b".into(), 2)]
        );
        assert_eq!(decode_assignment(&[]).expect("empty"), vec![]);
        assert!(decode_assignment(&bytes[..bytes.len() - 9]).is_err());
        let sub = encode_subscription(&["x".into(), "yy".into()]);
        assert_eq!(
            decode_subscription(&sub).expect("valid"),
            vec!["x".to_owned(), "yy".to_owned()]
        );
        assert!(decode_subscription(&sub[..5]).is_err());
    }

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic_spec("t").expect("ok"), ("t".into(), None));
        assert_eq!(
            parse_topic_spec("t:0,2").expect("ok"),
            ("t".into(), Some(vec![0, 2]))
        );
        assert!(parse_topic_spec("t:").is_err());
        assert!(parse_topic_spec(":1").is_err());
        assert!(parse_topic_spec("t:x").is_err());
    }

    #[test]
    fn offsets_table_matches_kafkas_layout() {
        let rows = vec![
            Row {
                topic: Some("orders".into()),
                partition: Some(0),
                current: Some(5),
                log_end: Some(12),
                consumer_id: "c-1".into(),
                host: "/127.0.0.1".into(),
                client_id: "c".into(),
            },
            Row {
                topic: Some("orders".into()),
                partition: Some(1),
                current: None,
                log_end: Some(3),
                consumer_id: "-".into(),
                host: "-".into(),
                client_id: "-".into(),
            },
        ];
        let table = offsets_table("g", &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(
            lines[1],
            "GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID"
        );
        assert_eq!(
            lines[2],
            "g               orders          0          5               12              7               c-1             /127.0.0.1      c"
        );
        assert_eq!(
            lines[3],
            "g               orders          1          -               3               -               -               -               -"
        );
    }
}
