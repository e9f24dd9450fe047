//! The broker's side of the cluster: what the coordinator's tree says
//! (the [`ClusterView`] the controller module builds on the coordinator
//! thread) turned into work on the shards.
//!
//! - Every new view is compared with the last one: partitions whose
//!   assignment names this broker are opened on their owner shard, and
//!   each replicated partition's state (leader, leader epoch, ISR,
//!   version) is delivered to it as an order (Kafka's LeaderAndIsr). The
//!   topic table follows the tree, so topics other brokers create appear
//!   here too.
//! - KIP-380: a state naming this broker leader is acted on only if it
//!   was written after this broker's current registration (its mzxid is
//!   above the registration's czxid, the broker epoch). A restarted broker
//!   must not resume leadership in an epoch its previous life led: the
//!   followers may hold records that the crash took from it. The
//!   controller sees the bounce and elects again, in a new epoch.
//! - A per-shard ticker steps every replicated partition's core.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::controller::view::{ClusterView, TopicInfo};
use crate::controller::IsrWriter;
use crate::metadata::TopicMeta;
use crate::partition::replica::Order;
use crate::shard::{self, Shard, ShardId, Shared};

struct Handle {
    broker_id: i32,
    view: Arc<ArcSwap<ClusterView>>,
    isr: IsrWriter,
}

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// How often each shard steps its replicated partitions.
const TICK: Duration = Duration::from_millis(50);

pub fn broker_id() -> i32 {
    HANDLE.get().map_or(-1, |h| h.broker_id)
}

/// The latest view of the tree, once the coordinator runs.
pub fn view() -> Option<Arc<ClusterView>> {
    HANDLE.get().map(|h| h.view.load_full())
}

pub fn isr_writer() -> Option<IsrWriter> {
    HANDLE.get().map(|h| h.isr.clone())
}

/// Where broker `id` takes Kafka connections (its advertised listener).
pub fn broker_addr(id: i32) -> Option<SocketAddr> {
    let view = view()?;
    let b = view.brokers.get(&id)?;
    let host = if b.host == "localhost" {
        "127.0.0.1"
    } else {
        &b.host
    };
    (host, b.port).to_socket_addrs().ok()?.next()
}

/// This broker's epoch: the czxid of its registration, -1 until
/// registered.
fn my_epoch(view: &ClusterView, me: i32) -> i64 {
    view.brokers.get(&me).map_or(-1, |b| b.epoch)
}

/// The topic table entry for a topic as the tree has it.
pub fn topic_meta(t: &TopicInfo) -> TopicMeta {
    TopicMeta {
        name: t.name.clone(),
        id: t.id,
        partitions: t.partitions.len() as i32,
        replication_factor: t.partitions.first().map_or(1, |p| p.replicas.len()) as i16,
        configs: t.configs.clone(),
    }
}

/// Connects the broker to its coordinator's view: installs the handle and
/// subscribes the listener that turns views into shard work.
pub fn install(coordinator: &crate::coordinator::Coordinator, shared: Arc<Shared>) {
    let me = shared.config.broker_id;
    let _ = HANDLE.set(Handle {
        broker_id: me,
        view: coordinator.view(),
        isr: coordinator.isr_writer(),
    });
    let last: std::sync::Mutex<HashMap<(String, i32), Order>> = Default::default();
    // Partitions of this broker per topic id, to remove when the tree
    // deletes their topic (another broker took the DeleteTopics).
    let held: std::sync::Mutex<HashMap<(String, crate::metadata::TopicId), Arc<TopicMeta>>> =
        Default::default();
    coordinator.subscribe(Box::new(move |view: Arc<ClusterView>| {
        let epoch = my_epoch(&view, me);
        if epoch < 0 {
            return;
        }
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let metas: BTreeMap<String, Arc<TopicMeta>> = view
            .topics
            .values()
            .map(|t| (t.name.clone(), Arc::new(topic_meta(t))))
            .collect();
        // The table's writer lock may be held by a shard that waits for
        // this (the coordinator) thread to commit a topic change: take it
        // on a shard, never here.
        let table = metas.clone();
        shared.mesh.send_from_control(
            ShardId(0),
            Box::new(move || {
                Box::pin(async move { shard::current().shared.metadata.follow_tree(table) })
            }),
        );
        for t in view.topics.values() {
            let Some(meta) = metas.get(&t.name).cloned() else {
                continue;
            };
            for (i, p) in t.partitions.iter().enumerate() {
                let index = i as i32;
                if !p.replicas.contains(&me) {
                    continue;
                }
                let mut order = Order {
                    replicas: p.replicas.clone(),
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    isr: p.isr.clone(),
                    version: p.version,
                };
                if p.replicas.len() > 1 && order.leader == me && p.mzxid < epoch {
                    // Written for this broker's previous life: wait for the
                    // controller (see the module doc).
                    order.leader = -1;
                }
                let key = (t.name.clone(), index);
                if last.get(&key) == Some(&order) {
                    continue;
                }
                last.insert(key, order.clone());
                let owner = shared.owner(&meta, index);
                let meta = meta.clone();
                shared.mesh.send_from_control(
                    owner,
                    Box::new(move || {
                        Box::pin(async move { deliver(meta, index, order, epoch).await })
                    }),
                );
            }
        }
        last.retain(|(topic, _), _| view.topics.contains_key(topic));
        let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<_> = held
            .keys()
            .filter(|(name, id)| view.topics.get(name).is_none_or(|t| t.id != *id))
            .cloned()
            .collect();
        for key in gone {
            let Some(meta) = held.remove(&key) else {
                continue;
            };
            for index in 0..meta.partitions {
                let owner = shared.owner(&meta, index);
                let (name, dirs) = (meta.name.clone(), shared.config.log_dirs.clone());
                shared.mesh.send_from_control(
                    owner,
                    Box::new(move || Box::pin(async move { remove(name, index, dirs).await })),
                );
            }
        }
        for t in view.topics.values() {
            if t.partitions.iter().any(|p| p.replicas.contains(&me)) {
                if let Some(meta) = metas.get(&t.name) {
                    held.insert((t.name.clone(), t.id), meta.clone());
                }
            }
        }
    }));
}

/// On the owner shard: opens the partition if needed and gives a
/// replicated one its order.
async fn deliver(meta: Arc<TopicMeta>, index: i32, order: Order, epoch: i64) {
    let shard = shard::current();
    if shard
        .shared
        .stopping
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return;
    }
    let name = format!("{}-{index}", meta.name);
    let replicated = meta.replication_factor > 1;
    let p = match shard.open_partition(meta, index).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cluster: {e}");
            return;
        }
    };
    if replicated {
        if let Err(e) = p.apply_order(order, epoch).await {
            eprintln!("cluster: {name}: {e}");
        }
    }
}

/// On the owner shard: closes a partition of a deleted topic and removes
/// its directory (the broker that took the DeleteTopics did the same).
async fn remove(topic: String, index: i32, log_dirs: Vec<std::path::PathBuf>) {
    let shard = shard::current();
    if shard.partition(&topic, index).is_none() {
        return;
    }
    if let Err(e) = shard.close_partition(&topic, index).await {
        eprintln!("cluster: deleting {topic}-{index}: {e}");
    }
    let dir = crate::partition::locate_dir(&log_dirs, &topic, index);
    if dir.is_dir() {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => eprintln!("cluster: deleted {topic}-{index} (topic deleted in the tree)"),
            Err(e) => eprintln!("cluster: removing {}: {e}", dir.display()),
        }
    }
}

/// Waits (blocking, at start-up) until this broker is registered in the
/// view, so that the partitions to open are known.
pub fn wait_registered(wait: Duration) -> Option<Arc<ClusterView>> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(v) = view() {
            if my_epoch(&v, broker_id()) >= 0 {
                return Some(v);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this broker holds a replica of `topic`'s partition `index`
/// (true without a view: a lone broker holds everything).
pub fn is_replica(topic: &str, index: i32) -> bool {
    let Some(v) = view() else { return true };
    match v.topics.get(topic) {
        Some(t) => t
            .partitions
            .get(index as usize)
            .is_some_and(|p| p.replicas.contains(&broker_id())),
        None => true,
    }
}

/// Kafka's error for a partition of a known topic that is not open on
/// its owner shard: NOT_LEADER_OR_FOLLOWER when another broker holds it,
/// UNKNOWN_TOPIC_OR_PARTITION when it should be here (not open yet).
pub fn absent_partition_error(topic: &str, index: i32) -> ringtail_protocol::ErrorCode {
    if is_replica(topic, index) {
        ringtail_protocol::ErrorCode::UnknownTopicOrPartition
    } else {
        ringtail_protocol::ErrorCode::NotLeaderOrFollower
    }
}

/// Waits until the view has `topic` with at least `partitions`
/// partitions (after this broker wrote it), up to `wait`.
pub async fn wait_for_topic(topic: &str, partitions: i32, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        match view() {
            None => return true,
            Some(v) => {
                if v.topics
                    .get(topic)
                    .is_some_and(|t| t.partitions.len() as i32 >= partitions)
                {
                    return true;
                }
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        ringtail_io::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Steps the replicated partitions of this shard every [`TICK`].
pub async fn ticker(shard: Rc<Shard>) {
    loop {
        ringtail_io::rt::time::sleep(TICK).await;
        if shard
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        for p in shard.partitions() {
            p.replication_tick();
        }
    }
}
