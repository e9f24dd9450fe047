//! A minimal thread-per-core executor over one io_uring per thread.
//!
//! Why our own: the broker needs io_uring for files *and* sockets, pinned
//! executors, and the SPLICE / FSYNC(DATASYNC) opcodes for zero-copy fetches
//! and group commit. `docs/adr/0001-runtime.md` holds the measurements.
//!
//! Model: [`block_on`] runs a future on the calling thread together with the
//! tasks it [`spawn`]s. Tasks are `!Send` and never leave their thread. The
//! executor polls ready tasks, then submits the queued operations with one
//! `io_uring_enter`, blocking only when nothing is runnable. Wakers may be
//! called from other threads (cross-core channels do); such wakes travel
//! through a lock-free queue plus an eventfd the ring always has a read on.

mod driver;
pub mod fs;
pub mod net;
pub mod op;
pub mod sync;
pub mod time;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crossbeam_queue::SegQueue;

pub(crate) use driver::Driver;
pub use driver::{DriverStats, FDATASYNC_BOUNDS_NS};

/// Size of each thread's submission queue.
const RING_ENTRIES: u32 = 1024;
/// Tasks polled between two looks at the ring, so I/O keeps flowing while
/// many tasks are runnable.
const POLLS_PER_TURN_MAX: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct TaskId {
    index: u32,
    generation: u32,
}

const MAIN_TASK: TaskId = TaskId {
    index: u32::MAX,
    generation: 0,
};

struct TaskSlot {
    generation: u32,
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Option<Waker>,
}

/// What other threads may touch: wakes of this runtime's tasks.
struct Remote {
    queue: SegQueue<TaskId>,
    /// Set when an eventfd write is outstanding, so a burst of remote wakes
    /// costs one syscall.
    notified: AtomicBool,
    eventfd: OwnedFd,
}

impl Remote {
    fn push(&self, task: TaskId) {
        self.queue.push(task);
        if !self.notified.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a valid u64 to our eventfd.
            let n = unsafe {
                libc::write(
                    self.eventfd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
            debug_assert_eq!(n, 8, "eventfd write");
        }
    }
}

struct TaskWaker {
    runtime_id: u64,
    task: TaskId,
    remote: Arc<Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let local = CURRENT.with(|current| match current.borrow().as_ref() {
            Some(rt) if rt.id == self.runtime_id => {
                rt.schedule(self.task);
                true
            }
            _ => false,
        });
        if !local {
            self.remote.push(self.task);
        }
    }
}

pub(crate) struct Runtime {
    id: u64,
    pub(crate) driver: RefCell<Driver>,
    tasks: RefCell<Vec<TaskSlot>>,
    free_tasks: RefCell<Vec<u32>>,
    run_queue: RefCell<VecDeque<TaskId>>,
    main_woken: Cell<bool>,
    remote: Arc<Remote>,
    eventfd_buf: Box<Cell<[u8; 8]>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

static NEXT_RUNTIME_ID: AtomicU64 = AtomicU64::new(1);

impl Runtime {
    fn new() -> io::Result<Runtime> {
        // SAFETY: plain syscall; the fd is owned right away.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Runtime {
            id: NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed),
            driver: RefCell::new(Driver::new(RING_ENTRIES)?),
            tasks: RefCell::new(Vec::new()),
            free_tasks: RefCell::new(Vec::new()),
            run_queue: RefCell::new(VecDeque::new()),
            main_woken: Cell::new(true),
            remote: Arc::new(Remote {
                queue: SegQueue::new(),
                notified: AtomicBool::new(false),
                eventfd,
            }),
            eventfd_buf: Box::new(Cell::new([0; 8])),
        })
    }

    fn schedule(&self, task: TaskId) {
        if task == MAIN_TASK {
            self.main_woken.set(true);
        } else {
            self.run_queue.borrow_mut().push_back(task);
        }
    }

    fn waker(&self, task: TaskId) -> Waker {
        Waker::from(Arc::new(TaskWaker {
            runtime_id: self.id,
            task,
            remote: self.remote.clone(),
        }))
    }

    fn spawn_boxed(&self, future: Pin<Box<dyn Future<Output = ()>>>) {
        let index = self.free_tasks.borrow_mut().pop();
        let mut tasks = self.tasks.borrow_mut();
        let index = match index {
            Some(index) => index,
            None => {
                tasks.push(TaskSlot {
                    generation: 0,
                    future: None,
                    waker: None,
                });
                u32::try_from(tasks.len() - 1).expect("task count fits in u32")
            }
        };
        let slot = &mut tasks[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        let id = TaskId {
            index,
            generation: slot.generation,
        };
        slot.future = Some(future);
        slot.waker = Some(self.waker(id));
        drop(tasks);
        self.run_queue.borrow_mut().push_back(id);
    }

    /// Polls one spawned task if it still exists.
    fn poll_task(&self, id: TaskId) {
        let (mut future, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(slot) = tasks.get_mut(id.index as usize) else {
                return;
            };
            if slot.generation != id.generation {
                return;
            }
            let Some(future) = slot.future.take() else {
                return; // already running (woken while polled) or finished
            };
            (future, slot.waker.clone().expect("live task has a waker"))
        };
        let mut cx = Context::from_waker(&waker);
        let done = future.as_mut().poll(&mut cx).is_ready();
        let mut tasks = self.tasks.borrow_mut();
        let slot = &mut tasks[id.index as usize];
        if done {
            slot.waker = None;
            slot.generation = slot.generation.wrapping_add(1);
            drop(tasks);
            self.free_tasks.borrow_mut().push(id.index);
            drop(future);
        } else {
            slot.future = Some(future);
        }
    }

    fn drain_remote(&self) {
        if self.remote.notified.swap(false, Ordering::AcqRel) || !self.remote.queue.is_empty() {
            while let Some(task) = self.remote.queue.pop() {
                self.schedule(task);
            }
        }
    }

    fn arm_eventfd(&self) {
        let buf = self.eventfd_buf.as_ptr().cast::<u8>();
        self.driver
            .borrow_mut()
            .arm_eventfd(self.remote.eventfd.as_raw_fd(), buf);
    }

    fn run<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let main_waker = self.waker(MAIN_TASK);
        self.arm_eventfd();
        loop {
            if self.main_woken.replace(false) {
                let mut cx = Context::from_waker(&main_waker);
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            let mut polled = 0;
            while polled < POLLS_PER_TURN_MAX {
                let next = self.run_queue.borrow_mut().pop_front();
                let Some(task) = next else { break };
                self.poll_task(task);
                polled += 1;
            }
            self.drain_remote();
            let idle = self.run_queue.borrow().is_empty() && !self.main_woken.get();
            let mut driver = self.driver.borrow_mut();
            if idle || driver.has_unsubmitted() {
                driver.submit(idle);
            }
            driver.reap();
            if std::mem::take(&mut driver.eventfd_completed) {
                drop(driver);
                self.arm_eventfd();
            }
            self.drain_remote();
        }
    }
}

pub(crate) fn with_runtime<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    CURRENT.with(|current| {
        let current = current.borrow();
        let rt = current
            .as_ref()
            .expect("ringtail_io::rt used outside of rt::block_on");
        f(rt)
    })
}

/// Runs `future` to completion on this thread, driving every task spawned
/// from it. One runtime per thread; nested calls panic.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let rt = Rc::new(Runtime::new().expect("create io_uring runtime"));
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        assert!(current.is_none(), "rt::block_on cannot nest");
        *current = Some(rt.clone());
    });
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            // Drop leftover tasks while the runtime is still current: their
            // destructors may orphan in-flight operations.
            let rt = CURRENT.with(|c| c.borrow().clone());
            if let Some(rt) = rt {
                let tasks = std::mem::take(&mut *rt.tasks.borrow_mut());
                drop(tasks);
            }
            CURRENT.with(|c| c.borrow_mut().take());
        }
    }
    let _reset = Reset;
    rt.run(future)
}

/// Spawns a task on the current thread's runtime. The task runs until it
/// finishes or the runtime ends; dropping the handle detaches it.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(JoinState {
        output: RefCell::new(None),
        waker: RefCell::new(None),
    });
    let task_state = state.clone();
    let task = async move {
        let out = future.await;
        *task_state.output.borrow_mut() = Some(out);
        if let Some(waker) = task_state.waker.borrow_mut().take() {
            waker.wake();
        }
    };
    with_runtime(|rt| rt.spawn_boxed(Box::pin(task)));
    JoinHandle { state }
}

/// Counters of this thread's ring, for metrics.
pub fn driver_stats() -> DriverStats {
    with_runtime(|rt| {
        let driver = rt.driver.borrow();
        let mut stats = driver.stats;
        let alive = driver.started.elapsed().as_nanos() as u64;
        stats.busy_ns = alive.saturating_sub(stats.parked_ns);
        stats
    })
}

/// Adds to this thread's byte counters (called where operations complete).
pub(crate) fn count(update: impl FnOnce(&mut DriverStats)) {
    let _ = CURRENT.try_with(|current| {
        if let Some(rt) = current.borrow().as_ref() {
            update(&mut rt.driver.borrow_mut().stats);
        }
    });
}

/// Yields once to let other tasks run.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

struct JoinState<T> {
    output: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
}

/// Awaits a spawned task's output.
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    pub fn is_finished(&self) -> bool {
        self.state.output.borrow().is_some()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(out) = self.state.output.borrow_mut().take() {
            return Poll::Ready(out);
        }
        *self.state.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_tasks_run_and_join() {
        let out = block_on(async {
            let a = spawn(async { 1 });
            let b = spawn(async {
                yield_now().await;
                2
            });
            a.await + b.await
        });
        assert_eq!(out, 3);
    }

    #[test]
    fn remote_wake_reaches_the_owner_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let flag = Arc::new(AtomicBool::new(false));
        let flag2 = flag.clone();
        let helper = std::thread::spawn(move || {
            let waker = rx.recv().expect("waker");
            std::thread::sleep(std::time::Duration::from_millis(20));
            flag2.store(true, Ordering::Release);
            waker.wake();
        });
        block_on(async move {
            let mut sent = false;
            std::future::poll_fn(|cx| {
                if flag.load(Ordering::Acquire) {
                    return Poll::Ready(());
                }
                if !sent {
                    tx.send(cx.waker().clone()).expect("send waker");
                    sent = true;
                }
                Poll::Pending
            })
            .await;
        });
        helper.join().expect("helper thread");
    }
}
