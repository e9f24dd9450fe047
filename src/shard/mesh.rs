//! Cross-core channels, built once at start.
//!
//! Every (source, destination) pair of shards has its own bounded
//! lock-free queue, so a queue has one producer and one consumer and no
//! shard waits on a lock. A job is a `Send` closure that builds a
//! (non-`Send`) future on the destination shard; its result travels back
//! through an atomic [`oneshot`]. When a queue is full the sender yields
//! and retries: back-pressure instead of unbounded growth.

use std::cell::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

use super::ShardId;

/// Jobs one shard may have queued for another.
pub const QUEUE_JOBS_MAX: usize = 4096;

pub type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
pub type Job = Box<dyn FnOnce() -> LocalFuture + Send>;

pub struct Mesh {
    /// `queues[dst][src]`; source `shards` is the control thread (start-up
    /// and signal handling), which is not a shard.
    queues: Vec<Vec<ArrayQueue<Job>>>,
    /// The receiver task of each destination shard.
    wakers: Vec<AtomicWaker>,
}

impl Mesh {
    pub fn new(shards: usize) -> Mesh {
        Mesh {
            queues: (0..shards)
                .map(|_| {
                    (0..=shards)
                        .map(|_| ArrayQueue::new(QUEUE_JOBS_MAX))
                        .collect()
                })
                .collect(),
            wakers: (0..shards).map(|_| AtomicWaker::new()).collect(),
        }
    }

    pub fn shards(&self) -> usize {
        self.queues.len()
    }

    /// Queues `job` for `dst`, yielding while that queue is full.
    pub async fn send(&self, src: ShardId, dst: ShardId, job: Job) {
        let mut job = job;
        loop {
            match self.queues[dst.0][src.0].push(job) {
                Ok(()) => {
                    self.wakers[dst.0].wake();
                    return;
                }
                Err(back) => {
                    job = back;
                    ringtail_io::rt::yield_now().await;
                }
            }
        }
    }

    /// Queues `job` for `dst` from the control thread, waiting while full.
    pub fn send_from_control(&self, dst: ShardId, job: Job) {
        let control = self.shards();
        let mut job = job;
        while let Err(back) = self.queues[dst.0][control].push(job) {
            job = back;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.wakers[dst.0].wake();
    }

    /// Runs on each shard: takes queued jobs and spawns their futures.
    pub async fn receive(self: Arc<Mesh>, me: ShardId) {
        std::future::poll_fn(|cx: &mut Context<'_>| {
            self.wakers[me.0].register(cx.waker());
            loop {
                let mut any = false;
                for queue in &self.queues[me.0] {
                    while let Some(job) = queue.pop() {
                        any = true;
                        ringtail_io::rt::spawn(job());
                    }
                }
                if !any {
                    return Poll::<()>::Pending;
                }
            }
        })
        .await
    }
}

const EMPTY: u8 = 0;
const FULL: u8 = 1;
const CLOSED: u8 = 2;

struct Slot<T> {
    state: AtomicU8,
    value: UnsafeCell<Option<T>>,
    waker: AtomicWaker,
}

// SAFETY: `value` is written once by the sender before `state` becomes FULL
// (release) and read by the receiver only after it sees FULL (acquire).
unsafe impl<T: Send> Sync for Slot<T> {}

/// A single value from one thread to another, without locks.
pub fn oneshot<T: Send>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        state: AtomicU8::new(EMPTY),
        value: UnsafeCell::new(None),
        waker: AtomicWaker::new(),
    });
    (
        Sender {
            slot: Some(slot.clone()),
        },
        Receiver { slot },
    )
}

pub struct Sender<T: Send> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T: Send> Sender<T> {
    pub fn send(mut self, value: T) {
        let slot = self.slot.take().expect("send once");
        // SAFETY: only this sender writes, and only before publishing FULL.
        unsafe { *slot.value.get() = Some(value) };
        slot.state.store(FULL, Ordering::Release);
        slot.waker.wake();
    }
}

impl<T: Send> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.state.store(CLOSED, Ordering::Release);
            slot.waker.wake();
        }
    }
}

/// The job was dropped without answering (its shard is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped;

pub struct Receiver<T: Send> {
    slot: Arc<Slot<T>>,
}

impl<T: Send> Future for Receiver<T> {
    type Output = Result<T, Dropped>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let take = |slot: &Slot<T>| match slot.state.load(Ordering::Acquire) {
            // SAFETY: FULL was published after the write; we read once.
            FULL => Some(Ok(
                unsafe { (*slot.value.get()).take() }.expect("value present")
            )),
            CLOSED => Some(Err(Dropped)),
            _ => None,
        };
        if let Some(out) = take(&self.slot) {
            return Poll::Ready(out);
        }
        self.slot.waker.register(cx.waker());
        match take(&self.slot) {
            Some(out) => Poll::Ready(out),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_destination_thread_and_answer() {
        let mesh = Arc::new(Mesh::new(2));
        let remote = mesh.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::<()>();
        let shard1 = std::thread::spawn(move || {
            ringtail_io::rt::block_on(async move {
                let id = std::thread::current().id();
                ringtail_io::rt::spawn(remote.receive(ShardId(1)));
                ready_tx.send(id).expect("ready");
                let _ = stop_rx.await;
            })
        });
        let shard1_id = ready_rx.recv().expect("shard 1 id");
        ringtail_io::rt::block_on(async {
            let mut answers = Vec::new();
            for i in 0..10_000u32 {
                let (tx, rx) = oneshot();
                mesh.send(
                    ShardId(0),
                    ShardId(1),
                    Box::new(move || {
                        Box::pin(async move {
                            tx.send((i, std::thread::current().id()));
                        })
                    }),
                )
                .await;
                answers.push(rx);
            }
            for (i, rx) in answers.into_iter().enumerate() {
                let (n, thread) = rx.await.expect("answer");
                assert_eq!(n as usize, i);
                assert_eq!(thread, shard1_id);
            }
        });
        stop_tx.send(());
        shard1.join().expect("shard 1");
    }
}
