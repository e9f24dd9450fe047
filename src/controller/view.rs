//! The cluster as this peer's committed tree shows it: live brokers, every
//! topic's assignment and partition states, topic configs, the controller
//! and the brokers asking for a controlled shutdown.
//!
//! [`build`] reads the tree in one pass; the coordinator thread rebuilds
//! the view whenever the tree's last applied zxid moved and publishes it
//! (see [`crate::controller`]). A topic carrying a deletion marker is left
//! out, and so is a node whose JSON cannot be read (logged once per
//! build by the caller's choice: `build` returns the problems it skipped).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ringtail_coordinator::kafka;
use ringtail_coordinator::tree::DataTree;

use crate::coordinator::json::{self, Json};
use crate::coordinator::topics::{delete_marker, parse_config, parse_state, parse_topic};

/// `/admin/controlled_shutdown`: one ephemeral child `N` per broker that
/// asked for a controlled shutdown (see
/// [`crate::coordinator::Coordinator::controlled_shutdown`]).
pub const CONTROLLED_SHUTDOWN: &str = "/admin/controlled_shutdown";

/// `/admin/controlled_shutdown/N`.
pub fn controlled_shutdown_marker(broker: i32) -> String {
    format!("{CONTROLLED_SHUTDOWN}/{broker}")
}

#[derive(Clone, Debug, PartialEq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// czxid of /brokers/ids/N: the broker epoch (KIP-380)
    pub epoch: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PartitionInfo {
    pub replicas: Vec<i32>,
    /// -1: offline
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// znode version of .../state: the CAS fence (-1: the state node is
    /// missing or unreadable; the controller leaves such a partition alone)
    pub version: i32,
    pub controller_epoch: i64,
    /// mzxid of .../state
    pub mzxid: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub id: crate::metadata::TopicId,
    pub partitions: Vec<PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// last zxid applied when built
    pub zxid: i64,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, Arc<TopicInfo>>,
    pub controller: Option<i32>,
    /// brokers asking for a controlled shutdown
    pub shutting_down: BTreeSet<i32>,
}

impl ClusterView {
    pub fn live(&self, broker: i32) -> bool {
        self.brokers.contains_key(&broker)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(partition).ok()?)
    }
}

/// Host, port and rack of Kafka's `/brokers/ids/N` JSON (v4/v5: `host`
/// and `port` are null when the first listener is not PLAINTEXT; then the
/// first `endpoints` entry, `NAME://host:port`, names them).
pub fn parse_broker(data: &[u8]) -> Result<(String, u16, Option<String>), String> {
    let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
    let v = json::parse(text)?;
    let rack = v.get("rack").and_then(Json::as_str).map(str::to_string);
    let host = v.get("host").and_then(Json::as_str);
    let port = v
        .get("port")
        .and_then(Json::as_int)
        .and_then(|p| u16::try_from(p).ok());
    if let (Some(host), Some(port)) = (host, port) {
        if port > 0 {
            return Ok((host.to_string(), port, rack));
        }
    }
    let endpoint = v
        .get("endpoints")
        .and_then(Json::as_array)
        .and_then(|e| e.first())
        .and_then(Json::as_str)
        .ok_or("no host/port and no endpoints")?;
    let (_, addr) = endpoint
        .split_once("://")
        .ok_or_else(|| format!("endpoint {endpoint:?}"))?;
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint {endpoint:?}"))?;
    let port = port
        .parse()
        .map_err(|_| format!("endpoint {endpoint:?}: bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port, rack))
}

fn zxid(z: ringtail_coordinator::ids::Zxid) -> i64 {
    z.0 as i64
}

fn brokers(tree: &DataTree, skipped: &mut Vec<String>) -> BTreeMap<i32, BrokerInfo> {
    let mut out = BTreeMap::new();
    for name in tree.children(kafka::BROKER_IDS).unwrap_or_default() {
        let path = format!("{}/{name}", kafka::BROKER_IDS);
        let (Ok(id), Some(node)) = (name.parse::<i32>(), tree.node(&path)) else {
            continue;
        };
        match parse_broker(&node.data) {
            Ok((host, port, rack)) => {
                out.insert(
                    id,
                    BrokerInfo {
                        id,
                        host,
                        port,
                        rack,
                        epoch: zxid(node.stat.czxid),
                    },
                );
            }
            Err(e) => skipped.push(format!("{path}: {e}")),
        }
    }
    out
}

fn partition(tree: &DataTree, topic: &str, p: i32, replicas: Vec<i32>) -> PartitionInfo {
    let path = kafka::partition_state(topic, p as u32);
    let state = tree
        .node(&path)
        .and_then(|n| Some((parse_state(&n.data).ok()?, n.stat.clone())));
    match state {
        Some((s, stat)) => PartitionInfo {
            replicas,
            leader: s.leader,
            leader_epoch: s.leader_epoch,
            isr: s.isr,
            version: stat.version,
            controller_epoch: s.controller_epoch,
            mzxid: zxid(stat.mzxid),
        },
        None => PartitionInfo {
            replicas,
            leader: -1,
            leader_epoch: -1,
            isr: Vec::new(),
            version: -1,
            controller_epoch: -1,
            mzxid: -1,
        },
    }
}

fn topic(tree: &DataTree, name: &str, skipped: &mut Vec<String>) -> Option<TopicInfo> {
    if tree.node(&delete_marker(name)).is_some() {
        return None;
    }
    let path = kafka::topic(name);
    let assignment = match parse_topic(&tree.node(&path)?.data) {
        Ok(a) => a,
        Err(e) => {
            skipped.push(format!("{path}: {e}"));
            return None;
        }
    };
    let configs = match tree.node(&kafka::topic_config(name)) {
        None => BTreeMap::new(),
        Some(n) => parse_config(&n.data).unwrap_or_else(|e| {
            skipped.push(format!("{}: {e}", kafka::topic_config(name)));
            BTreeMap::new()
        }),
    };
    let partitions = assignment
        .partitions
        .into_iter()
        .map(|(p, replicas)| partition(tree, name, p, replicas))
        .collect();
    Some(TopicInfo {
        name: name.to_string(),
        id: assignment.id,
        partitions,
        configs,
    })
}

/// The view of `tree`. Topics equal to one in `previous` keep its `Arc`,
/// so a subscriber can skip unchanged topics with `Arc::ptr_eq`. Returns
/// the view and the nodes it skipped as unreadable.
pub fn build(tree: &DataTree, previous: Option<&ClusterView>) -> (ClusterView, Vec<String>) {
    let mut skipped = Vec::new();
    let brokers = brokers(tree, &mut skipped);
    let mut topics = BTreeMap::new();
    for name in tree.children(kafka::BROKER_TOPICS).unwrap_or_default() {
        let Some(t) = topic(tree, &name, &mut skipped) else {
            continue;
        };
        let t = match previous.and_then(|v| v.topics.get(&name)) {
            Some(old) if **old == t => old.clone(),
            _ => Arc::new(t),
        };
        topics.insert(name, t);
    }
    let controller = tree
        .node(kafka::CONTROLLER)
        .and_then(|n| std::str::from_utf8(&n.data).ok().map(str::to_string))
        .and_then(|t| json::parse(&t).ok())
        .and_then(|v| v.get("brokerid").and_then(Json::as_int))
        .and_then(|id| i32::try_from(id).ok());
    let shutting_down = tree
        .children(CONTROLLED_SHUTDOWN)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    let view = ClusterView {
        zxid: zxid(tree.last_zxid()),
        brokers,
        topics,
        controller,
        shutting_down,
    };
    (view, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_json_gives_host_port_and_rack() {
        let v5 = br#"{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://h1:9092"],"jmx_port":-1,"features":{},"host":"h1","timestamp":"1","port":9092,"version":5,"rack":"r1"}"#;
        assert_eq!(
            parse_broker(v5),
            Ok(("h1".to_string(), 9092, Some("r1".to_string())))
        );
        let no_host = br#"{"endpoints":["SSL://[::1]:9093"],"host":null,"port":-1,"version":4}"#;
        assert_eq!(parse_broker(no_host), Ok(("::1".to_string(), 9093, None)));
        assert!(parse_broker(b"{\"version\":5}").is_err());
        assert!(parse_broker(b"not json").is_err());
    }
}
