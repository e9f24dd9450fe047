//! The io_uring driver: one ring per thread, a slab of operation slots.
//!
//! An operation's slot owns whatever the kernel may still touch (buffers,
//! iovecs, timespecs) until its completion arrives. When the future that
//! submitted it is dropped first, the resources move into the slot as an
//! orphan and a cancel is submitted; the slot is freed only when the kernel
//! reports completion, so a dropped future can never free memory the kernel
//! is writing into.

use std::any::Any;
use std::io;
use std::task::Waker;

use io_uring::{opcode, squeue, IoUring};

/// `user_data` of cancel requests: their completions carry nothing we need.
const TOKEN_CANCEL: u64 = u64::MAX;
/// `user_data` of the read armed on the runtime's eventfd.
pub(crate) const TOKEN_EVENTFD: u64 = u64::MAX - 1;

pub(crate) enum Slot {
    Free,
    Pending(Option<Waker>),
    Done {
        result: i32,
        flags: u32,
    },
    /// The future went away; keep its resources until the kernel is done.
    Orphan(#[allow(dead_code)] Box<dyn Any>),
}

/// Counters exported as metrics: every SQE pushed and CQE reaped, and the
/// bytes each kind of data operation moved (they show where bytes cross
/// into user memory: `bytes_spliced` never does).
#[derive(Debug, Default, Clone, Copy)]
pub struct DriverStats {
    pub submissions: u64,
    pub completions: u64,
    pub enter_calls: u64,
    /// File -> socket through a pipe, kernel only.
    pub bytes_spliced: u64,
    /// File -> user memory.
    pub bytes_read: u64,
    /// User memory -> file.
    pub bytes_written: u64,
    /// User memory -> socket.
    pub bytes_sent: u64,
    /// Socket -> user memory.
    pub bytes_received: u64,
    pub fdatasyncs: u64,
    /// fdatasync latency: counts per bucket of [`FDATASYNC_BOUNDS_NS`]
    /// (the last bucket holds the slower ones) and their sum.
    pub fdatasync_buckets: [u64; FDATASYNC_BOUNDS_NS.len() + 1],
    pub fdatasync_ns_sum: u64,
    /// Time blocked in `io_uring_enter` waiting for a completion (parked).
    pub parked_ns: u64,
    /// Time since the runtime started, less `parked_ns`: the thread was
    /// running tasks or submitting (filled in by `rt::driver_stats`).
    pub busy_ns: u64,
}

/// Upper bounds of the fdatasync latency buckets (100 us to 10 s).
pub const FDATASYNC_BOUNDS_NS: [u64; 14] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

// The buckets must rise, or `partition_point` misplaces samples.
const _: () = {
    let mut i = 1;
    while i < FDATASYNC_BOUNDS_NS.len() {
        assert!(FDATASYNC_BOUNDS_NS[i - 1] < FDATASYNC_BOUNDS_NS[i]);
        i += 1;
    }
};

impl DriverStats {
    /// Counts one fdatasync that took `ns`.
    pub fn record_fdatasync(&mut self, ns: u64) {
        let bucket = FDATASYNC_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.fdatasyncs += 1;
        self.fdatasync_buckets[bucket] += 1;
        self.fdatasync_ns_sum += ns;
    }
}

pub(crate) struct Driver {
    ring: IoUring,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Entries pushed but not yet handed to the kernel.
    unsubmitted: u32,
    pub(crate) stats: DriverStats,
    pub(crate) eventfd_completed: bool,
    pub(crate) started: std::time::Instant,
}

/// io-wq workers run what cannot complete inline (fdatasync, splice,
/// buffered writes that would block). Cap them and keep them on the CPUs
/// this thread may use, so a pinned shard's I/O stays on its core instead
/// of spreading over the machine (ADR 0001). Best effort: older kernels
/// lack these registrations.
fn confine_workers(ring: &IoUring) {
    /// Bounded (regular files) and unbounded (sockets, pipes) workers.
    const WORKERS_MAX: [u32; 2] = [4, 4];
    let mut max = WORKERS_MAX;
    let _ = ring.submitter().register_iowq_max_workers(&mut max);
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let _ = ring.submitter().register_iowq_aff(&set);
        }
    }
}

impl Driver {
    pub(crate) fn new(entries: u32) -> io::Result<Driver> {
        let ring = IoUring::builder().build(entries)?;
        confine_workers(&ring);
        Ok(Driver {
            ring,
            slots: Vec::new(),
            free: Vec::new(),
            unsubmitted: 0,
            stats: DriverStats::default(),
            eventfd_completed: false,
            started: std::time::Instant::now(),
        })
    }

    /// Pushes one entry, flushing the submission queue to the kernel first
    /// when it is full. Returns the slot index that identifies the operation.
    pub(crate) fn push(&mut self, entry: squeue::Entry) -> u32 {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::Free);
                u32::try_from(self.slots.len() - 1).expect("op slots fit in u32")
            }
        };
        debug_assert!(matches!(self.slots[index as usize], Slot::Free));
        self.slots[index as usize] = Slot::Pending(None);
        self.push_raw(entry.user_data(u64::from(index)));
        index
    }

    fn push_raw(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every pointer in `entry` refers to memory owned by the
            // op slot (or the runtime) and stays valid until its completion.
            let pushed = unsafe { self.ring.submission().push(&entry).is_ok() };
            if pushed {
                self.unsubmitted += 1;
                self.stats.submissions += 1;
                return;
            }
            // Queue full: hand what is queued to the kernel and reap, so
            // both queues make room.
            self.submit(false);
            self.reap();
        }
    }

    /// Arms a read of 8 bytes on the runtime's eventfd into `buf`.
    pub(crate) fn arm_eventfd(&mut self, fd: i32, buf: *mut u8) {
        let entry = opcode::Read::new(io_uring::types::Fd(fd), buf, 8)
            .build()
            .user_data(TOKEN_EVENTFD);
        self.push_raw(entry);
    }

    pub(crate) fn poll_slot(&mut self, index: u32, waker: &Waker) -> Option<(i32, u32)> {
        let slot = &mut self.slots[index as usize];
        match slot {
            Slot::Done { result, flags } => {
                let out = (*result, *flags);
                *slot = Slot::Free;
                self.free.push(index);
                Some(out)
            }
            Slot::Pending(stored) => {
                match stored {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *stored = Some(waker.clone()),
                }
                None
            }
            Slot::Free | Slot::Orphan(_) => unreachable!("polled a slot it does not own"),
        }
    }

    /// Called when an op future is dropped before it completed.
    pub(crate) fn orphan(&mut self, index: u32, resources: Box<dyn Any>) {
        let slot = &mut self.slots[index as usize];
        match slot {
            Slot::Done { .. } => {
                *slot = Slot::Free;
                self.free.push(index);
            }
            Slot::Pending(_) => {
                *slot = Slot::Orphan(resources);
                let cancel = opcode::AsyncCancel::new(u64::from(index))
                    .build()
                    .user_data(TOKEN_CANCEL);
                self.push_raw(cancel);
            }
            Slot::Free | Slot::Orphan(_) => unreachable!("orphaned a slot it does not own"),
        }
    }

    pub(crate) fn has_unsubmitted(&self) -> bool {
        self.unsubmitted > 0
    }

    /// Submits queued entries; with `wait`, blocks until one completion.
    pub(crate) fn submit(&mut self, wait: bool) {
        loop {
            let want = usize::from(wait);
            self.stats.enter_calls += 1;
            let parked = wait.then(std::time::Instant::now);
            let entered = self.ring.submit_and_wait(want);
            if let Some(t) = parked {
                self.stats.parked_ns += t.elapsed().as_nanos() as u64;
            }
            match entered {
                Ok(_) => {
                    self.unsubmitted = 0;
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // The completion queue is full: make room, then retry
                    // without blocking (completions are now pending).
                    self.reap();
                    if !wait {
                        continue;
                    }
                    return;
                }
                Err(e) => panic!("io_uring_enter failed: {e}"),
            }
        }
    }

    /// Moves completions into their slots and wakes their futures.
    pub(crate) fn reap(&mut self) -> usize {
        let mut reaped = 0;
        let mut wakers = Vec::new();
        for cqe in self.ring.completion() {
            reaped += 1;
            self.stats.completions += 1;
            let token = cqe.user_data();
            if token == TOKEN_CANCEL {
                continue;
            }
            if token == TOKEN_EVENTFD {
                self.eventfd_completed = true;
                continue;
            }
            let index = token as usize;
            let slot = &mut self.slots[index];
            match std::mem::replace(
                slot,
                Slot::Done {
                    result: cqe.result(),
                    flags: cqe.flags(),
                },
            ) {
                Slot::Pending(waker) => wakers.extend(waker),
                Slot::Orphan(_) => {
                    *slot = Slot::Free;
                    self.free.push(index as u32);
                }
                Slot::Free | Slot::Done { .. } => unreachable!("completion for an idle slot"),
            }
        }
        for waker in wakers {
            waker.wake();
        }
        reaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdatasync_latency_lands_in_the_bucket_whose_bound_covers_it() {
        let mut s = DriverStats::default();
        s.record_fdatasync(100_000); // exactly the first bound: le="0.0001"
        s.record_fdatasync(100_001);
        s.record_fdatasync(20_000_000_000); // above every bound
        assert_eq!(s.fdatasyncs, 3);
        assert_eq!(s.fdatasync_buckets[0], 1);
        assert_eq!(s.fdatasync_buckets[1], 1);
        assert_eq!(s.fdatasync_buckets[FDATASYNC_BOUNDS_NS.len()], 1);
        assert_eq!(s.fdatasync_ns_sum, 20_000_200_001);
    }
}
