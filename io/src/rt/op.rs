//! The future behind every io_uring operation.
//!
//! `Op<T>` carries the resources `T` the kernel reads or writes (buffers,
//! iovecs, timespecs). They live on the heap or inside `T`'s own heap
//! allocations, so moving the future never moves memory the kernel holds a
//! pointer to. On completion the future hands `T` back with the result; if
//! it is dropped first, `T` is parked in the driver until the kernel is done.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::squeue;

use super::with_runtime;

pub struct Op<T: 'static> {
    index: u32,
    resources: Option<T>,
}

/// A raw completion: the kernel's `res` and `flags`.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// Maps a negative `res` to the errno it carries.
    pub fn into_io(self) -> io::Result<u32> {
        if self.result < 0 {
            Err(io::Error::from_raw_os_error(-self.result))
        } else {
            Ok(self.result as u32)
        }
    }
}

impl<T: 'static> Op<T> {
    /// Submits `entry`, whose pointers must all point into `resources`
    /// (or into memory that outlives the operation).
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until the completion arrives,
    /// which the op guarantees for memory owned by `resources` as long as
    /// that memory does not move when `T` moves (heap buffers, boxes).
    pub unsafe fn submit(entry: squeue::Entry, resources: T) -> Op<T> {
        let index = with_runtime(|rt| rt.driver.borrow_mut().push(entry));
        Op {
            index,
            resources: Some(resources),
        }
    }
}

impl<T: 'static + Unpin> Future for Op<T> {
    type Output = (Completion, T);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        let done = with_runtime(|rt| rt.driver.borrow_mut().poll_slot(index, cx.waker()));
        match done {
            Some((result, flags)) => {
                let resources = self.resources.take().expect("op polled after completion");
                Poll::Ready((Completion { result, flags }, resources))
            }
            None => Poll::Pending,
        }
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        if let Some(resources) = self.resources.take() {
            let index = self.index;
            // The runtime may already be gone when a leftover task is
            // dropped at shutdown; the ring is closed then and owns nothing.
            let _ = super::CURRENT.try_with(|current| {
                if let Some(rt) = current.borrow().as_ref() {
                    rt.driver.borrow_mut().orphan(index, Box::new(resources));
                }
            });
        }
    }
}
