//! The cluster's control plane, on the coordinator thread: the cluster
//! view every broker publishes, replica assignment, and the controller's
//! decisions (partition leader election, ISR clean-up, controlled
//! shutdown, preferred leaders) with the driver that writes them.
//!
//! # Layout
//!
//! - [`view`]: [`ClusterView`], built from this peer's committed tree.
//! - [`assign`]: Kafka's `assignReplicasToBrokers` (rack-aware or not).
//! - [`mod@decide`]: the controller's rules as a pure function of a view.
//! - `driver`: the coordinator-thread loop: rebuilds and publishes the
//!   view when the tree moved, and on the broker holding `/controller`
//!   writes [`decide()`]'s changes, each fenced by the controller epoch and
//!   the partition state's version; answers leaders' ISR proposals
//!   ([`IsrWriter`]) and controlled-shutdown requests.
//!
//! # Znodes
//!
//! Kafka's ZooKeeper layout (see [`crate::coordinator::topics`]) plus
//! `/admin/controlled_shutdown/N` ([`view::CONTROLLED_SHUTDOWN`]): an
//! ephemeral node a broker creates to ask for a controlled shutdown
//! (Kafka sends a ControlledShutdown request to the controller instead;
//! a node survives a controller change and goes with the broker's
//! session).
//!
//! # Publishing
//!
//! The view is rebuilt on the coordinator thread at most once per tick
//! (50 ms) when the tree's last applied zxid changed and stored in an
//! [`ArcSwap`] (readers: one atomic load). Subscribers are called on a
//! thread of their own (`cluster-view`), never on the coordinator
//! thread: a subscriber may block on a lock that a thread waiting for the
//! coordinator holds (a topic change holds the topic table's writer lock
//! while the tree commits it), and on the coordinator thread that would
//! deadlock until the change timed out. A slow subscriber only delays
//! later views; views published meanwhile are coalesced (it gets the
//! latest).

pub mod assign;
pub mod decide;
pub(crate) mod driver;
pub mod view;

use std::sync::{Arc, Condvar, Mutex};

use arc_swap::ArcSwap;

pub use decide::{decide, StateChange};
pub use view::{BrokerInfo, ClusterView, PartitionInfo, TopicInfo};

/// A view subscriber (see [`Published::subscribe`]).
pub type Subscriber = Box<dyn Fn(Arc<ClusterView>) + Send>;

/// The latest view and its subscribers.
#[derive(Default)]
pub struct Published {
    view: Arc<ArcSwap<ClusterView>>,
    subscribers: Mutex<Vec<Subscriber>>,
    /// Views published so far, and whether delivery stopped.
    published: Mutex<(u64, bool)>,
    wake: Condvar,
}

impl Published {
    pub fn view(&self) -> Arc<ArcSwap<ClusterView>> {
        self.view.clone()
    }

    /// Calls `f` at once with the current view (on the caller's thread),
    /// then on the `cluster-view` thread with later ones (the latest when
    /// several were published while subscribers ran). `f` must not
    /// subscribe; it may see the same view twice around the subscription.
    pub fn subscribe(&self, f: Subscriber) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        f(self.view.load_full());
        subs.push(f);
    }

    /// Stores `view` and wakes the delivery thread; never blocks on a
    /// subscriber.
    pub(crate) fn publish(&self, view: Arc<ClusterView>) {
        self.view.store(view);
        let mut p = self.published.lock().unwrap_or_else(|p| p.into_inner());
        p.0 += 1;
        self.wake.notify_one();
    }

    /// Ends [`Published::deliver`] once its current round is done.
    pub(crate) fn stop(&self) {
        let mut p = self.published.lock().unwrap_or_else(|p| p.into_inner());
        p.1 = true;
        self.wake.notify_one();
    }

    /// The `cluster-view` thread's loop: hands each new view to the
    /// subscribers, in subscription order, until [`Published::stop`].
    pub(crate) fn deliver(&self) {
        let mut seen = 0;
        loop {
            {
                let mut p = self.published.lock().unwrap_or_else(|p| p.into_inner());
                while p.0 == seen && !p.1 {
                    p = self.wake.wait(p).unwrap_or_else(|p| p.into_inner());
                }
                if p.1 {
                    return;
                }
                seen = p.0;
            }
            let subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
            let view = self.view.load_full();
            for f in subs.iter() {
                f(view.clone());
            }
        }
    }
}

/// What became of a leader's ISR proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsrOutcome {
    /// Written (or already there: a retry); the state is at `version`.
    Committed { version: i32 },
    /// Not written: the partition state as it now stands (a new leader or
    /// epoch, a version the proposal did not expect, or a joining replica
    /// whose broker epoch is stale, KIP-903: then the state was rewritten
    /// unchanged at a new version so that late copies of the proposal
    /// fail too).
    Rejected {
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
        version: i32,
    },
}

/// Writes partition leaders' ISR changes (Kafka ZooKeeper mode: the
/// leader writes its own ISR with a compare-and-set on the state's
/// version). A `Send + Sync` handle: [`IsrWriter::propose`] queues the
/// work on the coordinator thread and awaits the answer without blocking
/// the calling thread.
#[derive(Clone)]
pub struct IsrWriter {
    pub(crate) client: crate::coordinator::jobs::TreeClient,
}

/// One ISR proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// The state's znode version the leader last saw.
    pub expected_version: i32,
    /// A replica joining the ISR and the broker epoch it fetched with.
    pub joining: Option<(i32, i64)>,
}

impl IsrWriter {
    /// Runs [`crate::replication::election::write_isr`] against the
    /// synced partition state (a joining replica must be registered with
    /// exactly that broker epoch and not shutting down) and writes what
    /// it says. `Err` when the coordinator cannot answer (no quorum,
    /// stopped): retry later.
    #[allow(clippy::too_many_arguments)]
    pub async fn propose(
        &self,
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
        expected_version: i32,
        joining: Option<(i32, i64)>,
    ) -> Result<IsrOutcome, String> {
        let proposal = IsrProposal {
            topic,
            partition,
            leader,
            leader_epoch,
            isr,
            expected_version,
            joining,
        };
        let (tx, rx) = crate::shard::mesh::oneshot();
        self.client.submit(move |ctx| async move {
            tx.send(driver::propose_isr(&ctx, proposal).await);
        })?;
        rx.await
            .map_err(|_| "the coordinator stopped before answering".to_string())?
    }
}
