//! Shards: one pinned executor thread per core.
//!
//! A partition belongs to exactly one shard ([`placement::shard_for`]);
//! only that shard touches its log and state, so the data path needs no
//! locks. Other shards reach it with jobs through the [`mesh::Mesh`]:
//! [`run_on`] sends a closure to the owner and awaits its answer.

pub mod mesh;
pub mod placement;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ringtail_io::rt;
use ringtail_io::rt::sync::Notify;

use crate::config::BrokerConfig;
use crate::metadata::{MetaError, Metadata, TopicMeta};
use crate::partition::Partition;
use mesh::{oneshot, Dropped, Mesh};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardId(pub usize);

/// State every shard can read, built once at start.
pub struct Shared {
    pub config: BrokerConfig,
    pub metadata: Metadata,
    pub mesh: Arc<Mesh>,
    pub cluster_id: String,
    pub stopping: AtomicBool,
}

impl Shared {
    pub fn owner(&self, topic: &TopicMeta, partition: i32) -> ShardId {
        placement::shard_for(&topic.id, partition, self.mesh.shards())
    }

    /// Runs a metadata change on a thread of its own and awaits it. A
    /// change goes through the coordinator's tree and waits for its quorum
    /// (seconds, or until the request times out when there is none), which
    /// must not hold up the shard's other connections.
    pub async fn write_metadata<T, F>(self: &Arc<Self>, f: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnOnce(&Metadata) -> Result<T, MetaError> + Send + 'static,
    {
        let (tx, rx) = oneshot();
        let shared = self.clone();
        let spawned = std::thread::Builder::new()
            .name("metadata-write".into())
            .spawn(move || tx.send(f(&shared.metadata)));
        let storage = |reason: String| MetaError::Storage {
            path: self.metadata.path().to_path_buf(),
            reason,
        };
        if let Err(e) = spawned {
            return Err(storage(format!(
                "cannot start a thread for the change: {e}"
            )));
        }
        rx.await
            .unwrap_or_else(|Dropped| Err(storage("the change's thread panicked".into())))
    }
}

/// One shard's own state; lives on its thread only.
pub struct Shard {
    pub id: ShardId,
    pub shared: Arc<Shared>,
    partitions: RefCell<HashMap<(String, i32), Rc<Partition>>>,
    /// Partitions being opened right now.
    opening: RefCell<std::collections::HashSet<(String, i32)>>,
    pub stop: Notify,
    pub connections: Cell<usize>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

/// The shard of the calling thread.
pub fn current() -> Rc<Shard> {
    CURRENT.with(|c| c.borrow().clone().expect("called outside a shard thread"))
}

impl Shard {
    pub fn partition(&self, topic: &str, index: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), index))
            .cloned()
    }

    pub fn partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Opens a partition this shard owns (idempotent).
    pub async fn open_partition(
        &self,
        topic: Arc<TopicMeta>,
        index: i32,
    ) -> Result<Rc<Partition>, String> {
        let key = (topic.name.clone(), index);
        // Two callers (start-up and a controller order, say) may open the
        // same partition at once: the second waits for the first, so one
        // recovery runs on the files.
        while self.opening.borrow().contains(&key) {
            ringtail_io::rt::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        if let Some(p) = self.partition(&topic.name, index) {
            if p.topic.id == topic.id {
                return Ok(p);
            }
        }
        let name = topic.name.clone();
        self.opening.borrow_mut().insert(key.clone());
        let opened = Partition::open(&self.shared.config, topic, index).await;
        self.opening.borrow_mut().remove(&key);
        let p = Rc::new(opened.map_err(|e| format!("cannot open {name}-{index}: {e}"))?);
        self.partitions
            .borrow_mut()
            .insert((name, index), p.clone());
        Ok(p)
    }

    /// Closes a partition's log cleanly and forgets it.
    pub async fn close_partition(&self, topic: &str, index: i32) -> Result<(), String> {
        let p = self
            .partitions
            .borrow_mut()
            .remove(&(topic.to_string(), index));
        if let Some(p) = p {
            p.stop_replication();
            p.log
                .clone()
                .close()
                .await
                .map_err(|e| format!("closing {topic}-{index}: {e}"))?;
            // Everything queued is written now: a durable snapshot at the
            // log end spares the next open a scan.
            p.snapshot_producers(true);
        }
        Ok(())
    }
}

/// Runs `f` on shard `dst` and returns its result. Runs inline when `dst`
/// is the calling shard.
pub async fn run_on<R, F, Fut>(dst: ShardId, f: F) -> Result<R, Dropped>
where
    R: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let me = current();
    if dst == me.id {
        return Ok(f().await);
    }
    let (tx, rx) = oneshot();
    let job: mesh::Job = Box::new(move || Box::pin(async move { tx.send(f().await) }));
    me.shared.mesh.send(me.id, dst, job).await;
    rx.await
}

/// Pins the calling thread to one CPU (best effort: containers may forbid).
fn pin_to_core(core: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core % cpus, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Starts one thread per shard running `main` (the shard's server loop)
/// after the shard context is set up. Returns the join handles.
pub fn start<F, Fut>(
    shared: Arc<Shared>,
    main: F,
) -> Vec<std::thread::JoinHandle<Result<(), String>>>
where
    F: Fn(Rc<Shard>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    (0..shared.mesh.shards())
        .map(|i| {
            let shared = shared.clone();
            let main = main.clone();
            std::thread::Builder::new()
                .name(format!("shard-{i}"))
                .spawn(move || {
                    pin_to_core(i);
                    rt::block_on(async move {
                        let shard = Rc::new(Shard {
                            id: ShardId(i),
                            shared: shared.clone(),
                            partitions: RefCell::new(HashMap::new()),
                            opening: RefCell::new(std::collections::HashSet::new()),
                            stop: Notify::new(),
                            connections: Cell::new(0),
                        });
                        CURRENT.with(|c| *c.borrow_mut() = Some(shard.clone()));
                        rt::spawn(shared.mesh.clone().receive(ShardId(i)));
                        let result = main(shard.clone()).await;
                        CURRENT.with(|c| c.borrow_mut().take());
                        result
                    })
                })
                .expect("spawn shard thread")
        })
        .collect()
}

/// Asks every shard to stop (from any thread, e.g. the signal handler's).
pub fn request_stop(shared: &Shared) {
    shared.stopping.store(true, Ordering::Release);
}
