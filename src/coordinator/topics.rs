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
//! Ownership: a broker creates topics with itself as the only replica and
//! loads the topics whose assignment names it, so one name is unique in
//! the cluster (a second broker creating it gets `TopicExists`).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringtail_coordinator::kafka;
use ringtail_coordinator::txn::{CreateMode, ErrorCode, WriteOp};

use super::jobs::{Ctx, TreeClient};
use super::json::{self, Json};
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

/// `/brokers/topics/T`'s JSON for a topic whose partitions all live on
/// `replicas`.
pub fn topic_json(t: &TopicMeta, replicas: &[i32]) -> String {
    let list = replicas
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let parts = (0..t.partitions)
        .map(|p| format!("\"{p}\":[{list}]"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{{\"version\":3,\"topic_id\":\"{}\",\"partitions\":{{{parts}}},\"adding_replicas\":{{}},\"removing_replicas\":{{}}}}",
        uuid_base64(&t.id)
    )
}

pub fn partition_state_json(controller_epoch: i64, leader: i32) -> String {
    format!(
        "{{\"controller_epoch\":{controller_epoch},\"leader\":{leader},\"version\":1,\"leader_epoch\":0,\"isr\":[{leader}]}}"
    )
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

impl TopicStore for TreeTopics {
    fn load(&self) -> Result<BTreeMap<String, Arc<TopicMeta>>, MetaError> {
        let me = self.broker_id;
        let wait = self.load_wait;
        self.client
            .run(wait + Duration::from_secs(5), move |ctx| async move {
                load(&ctx, me, Instant::now() + wait).await
            })
            .map_err(|e| storage(kafka::BROKER_TOPICS, e))?
    }

    fn write(
        &self,
        before: Option<&TopicMeta>,
        after: Option<&TopicMeta>,
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
                write(&ctx, me, before, after, Instant::now() + WRITE_WAIT).await
            })
            .map_err(|e| storage(&path, e))?
    }
}

async fn load(
    ctx: &Rc<Ctx>,
    me: i32,
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
        if !assignment.partitions.values().any(|r| r.contains(&me)) {
            continue;
        }
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

fn partition_ops(ctx: &Ctx, name: &str, from: i32, to: i32, me: i32) -> Vec<WriteOp> {
    let epoch = controller_epoch(ctx);
    let mut ops = Vec::new();
    for p in from..to {
        ops.push(create(
            format!("{}/{p}", partitions_dir(name)),
            String::new(),
        ));
        ops.push(create(
            kafka::partition_state(name, p as u32),
            partition_state_json(epoch, me),
        ));
    }
    ops
}

async fn write(
    ctx: &Rc<Ctx>,
    me: i32,
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
    match (before, after) {
        (None, None) => Ok(()),
        (None, Some(t)) => {
            let mut ops = vec![create(path.clone(), topic_json(&t, &[me]))];
            ops.push(create(partitions_dir(&name), String::new()));
            ops.extend(partition_ops(ctx, &name, 0, t.partitions, me));
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
            if a.partitions != b.partitions || a.id != b.id {
                let (_, stat) = ctx
                    .get(&path)
                    .ok_or_else(|| MetaError::UnknownTopic(name.clone()))?;
                ops.push(WriteOp::SetData {
                    path: path.clone(),
                    data: topic_json(&a, &[me]).into_bytes(),
                    version: stat.version,
                });
                ops.extend(partition_ops(ctx, &name, b.partitions, a.partitions, me));
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
        let text = topic_json(&t, &[2]);
        assert!(text.starts_with("{\"version\":3,\"topic_id\":\""), "{text}");
        assert!(text.contains("\"partitions\":{\"0\":[2],\"1\":[2],\"2\":[2]},\"adding_replicas\":{},\"removing_replicas\":{}}"), "{text}");
        let a = parse_topic(text.as_bytes()).expect("parse");
        assert_eq!(a.id, id);
        assert_eq!(a.partitions.len(), 3);
        assert_eq!(a.partitions[&1], vec![2]);
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
        assert_eq!(
            partition_state_json(4, 1),
            "{\"controller_epoch\":4,\"leader\":1,\"version\":1,\"leader_epoch\":0,\"isr\":[1]}"
        );
    }
}
