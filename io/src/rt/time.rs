//! Timers as io_uring TIMEOUT operations.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use io_uring::{opcode, types};

use super::op::Op;

/// Sleeps for `duration` on the ring.
pub async fn sleep(duration: Duration) {
    let spec = Box::new(
        types::Timespec::new()
            .sec(duration.as_secs())
            .nsec(duration.subsec_nanos()),
    );
    let entry = opcode::Timeout::new(&*spec as *const types::Timespec).build();
    // SAFETY: the timespec is boxed and owned by the op until completion.
    let (completion, _spec) = unsafe { Op::submit(entry, spec) }.await;
    // -ETIME is the normal expiry; anything else is a ring-level fault.
    debug_assert!(
        completion.result == -libc::ETIME || completion.result == 0,
        "timeout completed with {}",
        completion.result
    );
}

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `future` for at most `duration`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = pin!(future);
    let mut timer = pin!(sleep(duration));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::block_on;
    use std::time::Instant;

    #[test]
    fn sleep_waits_and_timeout_fires() {
        block_on(async {
            let start = Instant::now();
            sleep(Duration::from_millis(20)).await;
            assert!(start.elapsed() >= Duration::from_millis(20));
            let r = timeout(Duration::from_millis(10), sleep(Duration::from_secs(5))).await;
            assert_eq!(r, Err(Elapsed));
            let r = timeout(Duration::from_secs(5), async { 7 }).await;
            assert_eq!(r, Ok(7));
        });
    }
}
