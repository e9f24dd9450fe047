//! The topic table in the tree, in Kafka's ZooKeeper layout
//! (`kafka.zk.ZkData`):
//!
//! - `/brokers/topics/T`: `{"version":3,"topic_id":"<base64 uuid>",
//!   "partitions":{"0":[1],...},"adding_replicas":{},"removing_replicas":{}}`
//! - `/brokers/topics/T/partitions/P/state`: `{"controller_epoch":E,
//!   "leader":L,"version":1,"leader_epoch":0,"isr":[L]}`
//! - `/config/topics/T`: `{"version":1,"config":{...}}`
//!
//! Every change is one `multi`, so a topic and its partition states
//! appear (and go) together, and every update of an existing node is
//! conditional on the version read just before (after a `sync`), so two
//! writers never overwrite each other blindly.
//!
//! Deletion follows Kafka's two steps: `/admin/delete_topics/T` is
//! created first (conditional on the topic still existing), then one
//! `multi` removes the topic's nodes and the marker. A broker that dies
//! between the two finishes the removal when it next loads the table, and
//! never loads a topic that carries the marker.
//!
//! Assignment: a new topic's replicas are spread over the brokers
//! registered under `/brokers/ids` (read after a `sync`) by Kafka's
//! `assignReplicasToBrokers` ([`crate::controller::assign`]); a
//! replication factor above their count is `InvalidReplicationFactor`.
//! Each partition's state starts with the first replica as leader, every
//! replica in the ISR and leader epoch 0, written in the same `multi` as
//! the assignment (Kafka's controller writes it just after). Added
//! partitions are assigned the same way and existing ones are untouched.
//! Topics migrated from a broker's pre-tree local table keep that broker
//! as their only replica, since their logs are there.
//!
//! Every broker loads every topic (its Metadata answers list the whole
//! cluster); which partitions a broker opens is the replication driver's
//! business. A name is unique in the cluster: a second creator gets
//! `TopicExists`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringtail_coordinator::kafka;
use ringtail_coordinator::txn::{CreateMode, ErrorCode, WriteOp};

use super::jobs::{Ctx, TreeClient};
use super::json::{self, Json};
use crate::controller::assign::{
    assign_replicas, assign_replicas_from, start_index_for, BrokerRack,
};
use crate::metadata::{MetaError, TopicId, TopicMeta, TopicStore};

/// How long a topic change may wait for the ensemble.
const WRITE_WAIT: Duration = Duration::from_secs(15);

/// `/admin/delete_topics/T`.
pub fn delete_marker(topic: &str) -> String {
    format!("{}/{topic}", kafka::ADMIN_DELETE_TOPICS)
}

fn partitions_dir(topic: &str) -> String {
    format!("{}/partitions", kafka::topic(topic))
}

/// Kafka's `Uuid.toString`: URL-safe base64 without padding.
pub fn uuid_base64(id: &TopicId) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let (mut bits, mut nbits) = (0u32, 0);
    for &b in id {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

pub fn uuid_from_base64(s: &str) -> Option<TopicId> {
    let mut out = Vec::with_capacity(16);
    let (mut bits, mut nbits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => continue,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
        }
    }
    out.try_into().ok()
}

/// `/brokers/topics/T`'s JSON: the topic id and partition `p`'s replicas
/// at `assignment[p]`.
pub fn topic_json(id: &TopicId, assignment: &[Vec<i32>]) -> String {
    let parts = assignment
        .iter()
        .enumerate()
        .map(|(p, replicas)| format!("\"{p}\":{}", int_list(replicas)))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{{\"version\":3,\"topic_id\":\"{}\",\"partitions\":{{{parts}}},\"adding_replicas\":{{}},\"removing_replicas\":{{}}}}",
        uuid_base64(id)
    )
}

fn int_list(v: &[i32]) -> String {
    let items = v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    format!("[{items}]")
}

/// What `/brokers/topics/T/partitions/P/state` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateJson {
    pub controller_epoch: i64,
    /// -1: no leader (offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// Kafka's partition-state JSON (`TopicPartitionStateZNode`), fields in
/// Kafka's order.
pub fn state_json(s: &StateJson) -> String {
    format!(
        "{{\"controller_epoch\":{},\"leader\":{},\"version\":1,\"leader_epoch\":{},\"isr\":{}}}",
        s.controller_epoch,
        s.leader,
        s.leader_epoch,
        int_list(&s.isr)
    )
}

pub fn parse_state(data: &[u8]) -> Result<StateJson, String> {
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
    let v = json::parse(text)?;
    let int = |k: &str| v.get(k).and_then(Json::as_int).ok_or(format!("no {k}"));
    let i32_of =
        |k: &str| int(k).and_then(|x| i32::try_from(x).map_err(|_| format!("{k} out of range")));
    let isr = v
        .get("isr")
        .and_then(Json::as_array)
        .ok_or("no isr")?
        .iter()
        .map(|r| r.as_int().and_then(|r| i32::try_from(r).ok()))
        .collect::<Option<Vec<i32>>>()
        .ok_or("an isr member is not a broker id")?;
    Ok(StateJson {
        controller_epoch: int("controller_epoch")?,
        leader: i32_of("leader")?,
        leader_epoch: i32_of("leader_epoch")?,
        isr,
    })
}

pub fn config_json(configs: &BTreeMap<String, String>) -> String {
    let body = configs
        .iter()
        .map(|(k, v)| format!("{}:{}", json::quote(k), json::quote(v)))
        .collect::<Vec<_>>()
        .join(",");
    format!("{{\"version\":1,\"config\":{{{body}}}}}")
}

/// A parsed `/brokers/topics/T`: the id and each partition's replicas.
#[derive(Debug, PartialEq, Eq)]
pub struct Assignment {
    pub id: TopicId,
    pub partitions: BTreeMap<i32, Vec<i32>>,
}

pub fn parse_topic(data: &[u8]) -> Result<Assignment, String> {
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
    let v = json::parse(text)?;
    let id = v
        .get("topic_id")
        .and_then(Json::as_str)
        .and_then(uuid_from_base64)
        .ok_or("no valid topic_id")?;
    let mut partitions = BTreeMap::new();
    for (p, replicas) in v
        .get("partitions")
        .and_then(Json::as_object)
        .ok_or("no partitions map")?
    {
        let p: i32 = p.parse().map_err(|_| format!("partition {p:?}"))?;
        let replicas = replicas
            .as_array()
            .ok_or("replicas are not a list")?
            .iter()
            .map(|r| r.as_int().and_then(|r| i32::try_from(r).ok()))
            .collect::<Option<Vec<i32>>>()
            .ok_or("a replica is not a broker id")?;
        partitions.insert(p, replicas);
    }
    if partitions.keys().copied().ne(0..partitions.len() as i32) {
        return Err("partitions are not numbered 0..n".into());
    }
    Ok(Assignment { id, partitions })
}

pub fn parse_config(data: &[u8]) -> Result<BTreeMap<String, String>, String> {
    if data.is_empty() {
        return Ok(BTreeMap::new());
    }
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
    let v = json::parse(text)?;
    let mut out = BTreeMap::new();
    if let Some(m) = v.get("config").and_then(Json::as_object) {
        for (k, v) in m {
            out.insert(
                k.clone(),
                v.as_str()
                    .ok_or("a config value is not a string")?
                    .to_string(),
            );
        }
    }
    Ok(out)
}

/// The topic store of one broker over its coordinator.
pub struct TreeTopics {
    pub(super) client: TreeClient,
    /// The broker this store serves: topics migrated from its pre-tree
    /// local table are assigned to it alone (their logs are here).
    pub(super) broker_id: i32,
    /// How long the first load waits for a quorum.
    pub(super) load_wait: Duration,
}

fn storage(path: &str, reason: impl std::fmt::Display) -> MetaError {
    MetaError::Storage {
        path: path.into(),
        reason: format!("coordinator: {reason}"),
    }
}

impl TreeTopics {
    fn change(
        &self,
        before: Option<&TopicMeta>,
        after: Option<&TopicMeta>,
        migrate: bool,
    ) -> Result<(), MetaError> {
        let me = self.broker_id;
        let (before, after) = (before.cloned(), after.cloned());
        let path = kafka::topic(
            &after
                .as_ref()
                .or(before.as_ref())
                .map_or(String::new(), |t| t.name.clone()),
        );
        self.client
            .run(WRITE_WAIT + Duration::from_secs(5), move |ctx| async move {
                let deadline = Instant::now() + WRITE_WAIT;
                write(&ctx, me, migrate, before, after, deadline).await
            })
            .map_err(|e| storage(&path, e))?
    }
}

impl TopicStore for TreeTopics {
    fn load(&self) -> Result<BTreeMap<String, Arc<TopicMeta>>, MetaError> {
        let wait = self.load_wait;
        self.client
            .run(wait + Duration::from_secs(5), move |ctx| async move {
                load(&ctx, Instant::now() + wait).await
            })
            .map_err(|e| storage(kafka::BROKER_TOPICS, e))?
    }

    fn write(
        &self,
        before: Option<&TopicMeta>,
        after: Option<&TopicMeta>,
    ) -> Result<(), MetaError> {
        self.change(before, after, false)
    }

    fn migrate(&self, topic: &TopicMeta) -> Result<(), MetaError> {
        self.change(None, Some(topic), true)
    }
}

/// Every topic in the tree (every broker's Metadata answers list the
/// whole cluster), finishing deletions that stopped half-way.
async fn load(
    ctx: &Rc<Ctx>,
    deadline: Instant,
) -> Result<BTreeMap<String, Arc<TopicMeta>>, MetaError> {
    let root = kafka::BROKER_TOPICS;
    ctx.synced(deadline).await.map_err(|e| storage(root, e))?;
    let mut topics = BTreeMap::new();
    let mut unfinished = Vec::new();
    for name in ctx.children(root) {
        let path = kafka::topic(&name);
        if ctx.get(&delete_marker(&name)).is_some() {
            unfinished.push(name);
            continue;
        }
        let Some((data, _)) = ctx.get(&path) else {
            continue;
        };
        let assignment = match parse_topic(&data) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("metadata: skipping {path}: {e}");
                continue;
            }
        };
        let configs = match ctx.get(&kafka::topic_config(&name)) {
            Some((data, _)) => parse_config(&data).map_err(|e| {
                storage(&kafka::topic_config(&name), format!("bad config JSON: {e}"))
            })?,
            None => BTreeMap::new(),
        };
        let replication = assignment.partitions.get(&0).map_or(1, Vec::len);
        topics.insert(
            name.clone(),
            Arc::new(TopicMeta {
                name,
                id: assignment.id,
                partitions: assignment.partitions.len() as i32,
                replication_factor: replication as i16,
                configs,
            }),
        );
    }
    for name in unfinished {
        // A deletion that stopped between its two steps.
        match remove(ctx, &name, deadline).await {
            Ok(()) => eprintln!("metadata: finished deleting topic {name}"),
            Err(e) => eprintln!("metadata: cannot finish deleting topic {name}: {e}"),
        }
    }
    Ok(topics)
}

fn controller_epoch(ctx: &Ctx) -> i64 {
    ctx.get(kafka::CONTROLLER_EPOCH)
        .and_then(|(d, _)| std::str::from_utf8(&d).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

fn create(path: String, data: String) -> WriteOp {
    WriteOp::Create {
        path,
        data: data.into_bytes(),
        mode: CreateMode::Persistent,
    }
}

/// The registered brokers and their racks (`/brokers/ids/*`), for
/// assignment.
pub(crate) fn live_brokers(ctx: &Ctx) -> Vec<BrokerRack> {
    let mut out = Vec::new();
    for name in ctx.children(kafka::BROKER_IDS) {
        let Ok(id) = name.parse::<i32>() else {
            continue;
        };
        let rack = ctx
            .get(&format!("{}/{name}", kafka::BROKER_IDS))
            .and_then(|(data, _)| crate::controller::view::parse_broker(&data).ok())
            .and_then(|(_, _, rack)| rack);
        out.push((id, rack));
    }
    out
}

fn too_few(requested: usize, available: usize) -> MetaError {
    MetaError::InvalidReplicationFactor {
        requested: i16::try_from(requested).unwrap_or(i16::MAX),
        available: i16::try_from(available).unwrap_or(i16::MAX),
    }
}

/// Replicas for a new topic over the live brokers (Kafka's
/// `assignReplicasToBrokers` with a random start).
fn new_assignment(ctx: &Ctx, t: &TopicMeta) -> Result<Vec<Vec<i32>>, MetaError> {
    let brokers = live_brokers(ctx);
    let rf = t.replication_factor;
    if rf < 1 || rf as usize > brokers.len() {
        return Err(MetaError::InvalidReplicationFactor {
            requested: rf,
            available: i16::try_from(brokers.len()).unwrap_or(i16::MAX),
        });
    }
    let id = crate::metadata::random_id();
    let seed = u64::from_le_bytes(id[..8].try_into().unwrap_or([0; 8]));
    assign_replicas(&brokers, t.partitions, rf, 0, seed).map_err(MetaError::InvalidPartitions)
}

/// The partitions' nodes: `partitions/P` and a state naming the first
/// replica leader, every replica in the ISR, leader epoch 0: what Kafka's
/// controller writes for a new partition (`NewPartition ->
/// OnlinePartition`). Ringtail writes them in the same `multi` as the
/// assignment, so a topic never exists without its states.
fn partition_ops(ctx: &Ctx, name: &str, from: usize, assignment: &[Vec<i32>]) -> Vec<WriteOp> {
    let epoch = controller_epoch(ctx);
    let mut ops = Vec::new();
    for (p, replicas) in assignment.iter().enumerate().skip(from) {
        ops.push(create(
            format!("{}/{p}", partitions_dir(name)),
            String::new(),
        ));
        let state = StateJson {
            controller_epoch: epoch,
            leader: replicas[0],
            leader_epoch: 0,
            isr: replicas.clone(),
        };
        ops.push(create(
            kafka::partition_state(name, p as u32),
            state_json(&state),
        ));
    }
    ops
}

/// The assignment after growing topic `name` (as the tree holds it) to
/// `total` partitions: existing partitions untouched, new ones assigned as
/// Kafka's `addPartitions` does (same RF as partition 0, start index at
/// partition 0's leader, partition ids continuing). Returns it with the
/// node's version.
fn grown_assignment(
    ctx: &Ctx,
    name: &str,
    total: i32,
) -> Result<(Vec<Vec<i32>>, usize, i32), MetaError> {
    let path = kafka::topic(name);
    let (data, stat) = ctx
        .get(&path)
        .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
    let existing = parse_topic(&data).map_err(|e| storage(&path, e))?;
    let mut assignment: Vec<Vec<i32>> = existing.partitions.into_values().collect();
    let count = assignment.len();
    if total as usize <= count {
        return Err(MetaError::InvalidPartitions(format!(
            "topic currently has {count} partitions, which is higher than or equal to the requested {total}"
        )));
    }
    let brokers = live_brokers(ctx);
    let p0 = assignment.first().cloned().unwrap_or_default();
    let rf = p0.len().max(1);
    if rf > brokers.len() {
        return Err(too_few(rf, brokers.len()));
    }
    let start = start_index_for(&brokers, p0.first().copied().unwrap_or(0));
    let added = assign_replicas_from(
        &brokers,
        total - count as i32,
        rf as i16,
        count as i32,
        start,
    )
    .map_err(MetaError::InvalidPartitions)?;
    assignment.extend(added);
    Ok((assignment, count, stat.version))
}

/// Waits until broker `me` is registered (`/brokers/ids/me`): a broker
/// serves requests as soon as it listens, and a topic created through it
/// must count it among the live brokers.
async fn registered(ctx: &Ctx, me: i32, deadline: Instant) -> Result<(), String> {
    let path = kafka::broker_id(me as u32);
    while ctx.get(&path).is_none() {
        if Instant::now() >= deadline {
            return Err(format!("broker {me} is not registered ({path})"));
        }
        ringtail_io::rt::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Applies one topic change to the tree, from broker `me`. `migrate`: a
/// topic from `me`'s pre-tree table, whose only replica is `me`.
async fn write(
    ctx: &Rc<Ctx>,
    me: i32,
    migrate: bool,
    before: Option<TopicMeta>,
    after: Option<TopicMeta>,
    deadline: Instant,
) -> Result<(), MetaError> {
    let name = after
        .as_ref()
        .or(before.as_ref())
        .map_or(String::new(), |t| t.name.clone());
    let path = kafka::topic(&name);
    let fail = |e: String| storage(&path, e);
    ctx.synced(deadline).await.map_err(fail)?;
    let session = ctx.session(deadline).await.map_err(fail)?;
    registered(ctx, me, deadline).await.map_err(fail)?;
    match (before, after) {
        (None, None) => Ok(()),
        (None, Some(t)) => {
            let assignment = if migrate {
                vec![vec![me]; t.partitions.max(0) as usize]
            } else {
                new_assignment(ctx, &t)?
            };
            let mut ops = vec![create(path.clone(), topic_json(&t.id, &assignment))];
            ops.push(create(partitions_dir(&name), String::new()));
            ops.extend(partition_ops(ctx, &name, 0, &assignment));
            let config = kafka::topic_config(&name);
            // A config node left by a topic deleted outside ringtail is
            // overwritten, as Kafka's admin client does.
            match ctx.get(&config) {
                Some((_, stat)) => ops.push(WriteOp::SetData {
                    path: config,
                    data: config_json(&t.configs).into_bytes(),
                    version: stat.version,
                }),
                None => ops.push(create(config, config_json(&t.configs))),
            }
            match ctx.multi(session, ops).await {
                Ok(_) => Ok(()),
                Err((0, ErrorCode::NodeExists)) => Err(MetaError::TopicExists(name)),
                Err((i, code)) => Err(fail(format!("create failed at op {i}: {code}"))),
            }
        }
        (Some(_), None) => {
            let marker = delete_marker(&name);
            let ops = vec![
                WriteOp::Check {
                    path: path.clone(),
                    version: -1,
                },
                create(marker, String::new()),
            ];
            match ctx.multi(session, ops).await {
                Ok(_) | Err((1, ErrorCode::NodeExists)) => {}
                // Only in this broker's table (loaded from the cache while
                // the tree was unreachable): nothing to remove there.
                Err((0, ErrorCode::NoNode)) => return Ok(()),
                Err((i, code)) => {
                    return Err(fail(format!(
                        "marking for deletion failed at op {i}: {code}"
                    )))
                }
            }
            remove(ctx, &name, deadline).await.map_err(fail)
        }
        (Some(b), Some(a)) => {
            let mut ops = Vec::new();
            if a.partitions != b.partitions {
                let (assignment, from, version) = grown_assignment(ctx, &name, a.partitions)?;
                ops.push(WriteOp::SetData {
                    path: path.clone(),
                    data: topic_json(&a.id, &assignment).into_bytes(),
                    version,
                });
                ops.extend(partition_ops(ctx, &name, from, &assignment));
            }
            if a.configs != b.configs {
                let config = kafka::topic_config(&name);
                match ctx.get(&config) {
                    Some((_, stat)) => ops.push(WriteOp::SetData {
                        path: config,
                        data: config_json(&a.configs).into_bytes(),
                        version: stat.version,
                    }),
                    None => ops.push(create(config, config_json(&a.configs))),
                }
            }
            if ops.is_empty() {
                return Ok(());
            }
            ctx.multi(session, ops)
                .await
                .map(|_| ())
                .map_err(|(i, code)| fail(format!("update failed at op {i}: {code}")))
        }
    }
}

/// Deletes a topic's nodes (children first), its config and its deletion
/// marker in one `multi`.
async fn remove(ctx: &Rc<Ctx>, name: &str, deadline: Instant) -> Result<(), String> {
    ctx.synced(deadline).await?;
    let session = ctx.session(deadline).await?;
    let mut paths = Vec::new();
    let mut stack = vec![kafka::topic(name)];
    while let Some(p) = stack.pop() {
        if ctx.get(&p).is_none() {
            continue;
        }
        for c in ctx.children(&p) {
            stack.push(format!("{p}/{c}"));
        }
        paths.push(p);
    }
    // Parents were pushed before their children: delete in reverse.
    let mut ops: Vec<WriteOp> = paths
        .into_iter()
        .rev()
        .map(|path| WriteOp::Delete { path, version: -1 })
        .collect();
    for p in [kafka::topic_config(name), delete_marker(name)] {
        if ctx.get(&p).is_some() {
            ops.push(WriteOp::Delete {
                path: p,
                version: -1,
            });
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    ctx.multi(session, ops)
        .await
        .map(|_| ())
        .map_err(|(i, code)| format!("delete failed at op {i}: {code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_json_round_trips() {
        let id = crate::metadata::random_id();
        assert_eq!(uuid_from_base64(&uuid_base64(&id)), Some(id));
        assert_eq!(uuid_base64(&id).len(), 22);
        let t = TopicMeta {
            name: "orders".into(),
            id,
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        let text = topic_json(&t.id, &[vec![2], vec![3, 1, 2], vec![1, 2]]);
        assert!(text.starts_with("{\"version\":3,\"topic_id\":\""), "{text}");
        assert!(text.contains("\"partitions\":{\"0\":[2],\"1\":[3,1,2],\"2\":[1,2]},\"adding_replicas\":{},\"removing_replicas\":{}}"), "{text}");
        let a = parse_topic(text.as_bytes()).expect("parse");
        assert_eq!(a.id, id);
        assert_eq!(a.partitions.len(), 3);
        assert_eq!(a.partitions[&1], vec![3, 1, 2]);
        let mut configs = BTreeMap::new();
        configs.insert(
            "cleanup.policy".to_string(),
            "compact,\"delete\"".to_string(),
        );
        assert_eq!(parse_config(config_json(&configs).as_bytes()), Ok(configs));
        assert!(parse_topic(b"{\"version\":3}").is_err());
        assert!(parse_topic(
            b"{\"topic_id\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"partitions\":{\"1\":[1]}}"
        )
        .is_err());
        let state = StateJson {
            controller_epoch: 4,
            leader: 1,
            leader_epoch: 7,
            isr: vec![1, 3],
        };
        let text = state_json(&state);
        assert_eq!(
            text,
            "{\"controller_epoch\":4,\"leader\":1,\"version\":1,\"leader_epoch\":7,\"isr\":[1,3]}"
        );
        assert_eq!(parse_state(text.as_bytes()), Ok(state));
        let offline = parse_state(
            b"{\"controller_epoch\":1,\"leader\":-1,\"version\":1,\"leader_epoch\":2,\"isr\":[]}",
        )
        .expect("offline");
        assert_eq!((offline.leader, offline.isr.len()), (-1, 0));
        for bad in [
            &b"{\"leader\":1,\"leader_epoch\":0,\"isr\":[1]}"[..],
            b"{\"controller_epoch\":1,\"leader\":1,\"leader_epoch\":0,\"isr\":[\"x\"]}",
            b"{\"controller_epoch\":1,\"leader\":99999999999,\"leader_epoch\":0,\"isr\":[]}",
        ] {
            assert!(
                parse_state(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
