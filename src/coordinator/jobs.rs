//! Other threads' work on the tree. The peer lives on the coordinator
//! thread (`Rc`, no locks); a shard thread that must write the tree (an
//! admin request changing a topic) hands a job to [`TreeClient::run`],
//! which queues it for the coordinator thread, wakes that thread's ring
//! (the runtime's cross-thread waker) and blocks on the answer. Admin
//! changes are rare and already waited on an fsync, so a shard blocking
//! for one commit is the same cost the local file had. Work that must
//! not block its caller (a leader's ISR write from a shard) uses
//! `TreeClient::submit` and answers through its own channel.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use ringtail_coordinator::clients::{ClientOp, Response};
use ringtail_coordinator::ids::{SessionId, Zxid};
use ringtail_coordinator::peer::RoleKind;
use ringtail_coordinator::tree::{DataTree, Stat};
use ringtail_coordinator::txn::{ErrorCode, OpResult, WriteOp};
use ringtail_io::rt::time::sleep;

use super::driver::Node;

type Job = Box<dyn FnOnce(Rc<Ctx>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    waker: Option<Waker>,
    closed: bool,
}

#[derive(Default)]
pub(super) struct Inbox {
    state: Mutex<State>,
}

impl Inbox {
    fn push(&self, job: Job) -> Result<(), String> {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.closed {
                return Err("the coordinator is stopped".into());
            }
            s.jobs.push_back(job);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Drops queued jobs (their callers get an error at once) and refuses
    /// new ones.
    pub(super) fn close(&self) {
        let jobs = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.closed = true;
            std::mem::take(&mut s.jobs)
        };
        drop(jobs);
    }

    async fn next(&self) -> Job {
        std::future::poll_fn(|cx| {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match s.jobs.pop_front() {
                Some(job) => Poll::Ready(job),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// What a job sees on the coordinator thread.
pub(crate) struct Ctx {
    pub(super) node: Rc<Node>,
    /// The broker's session, once registered.
    pub(crate) session: Rc<Cell<Option<SessionId>>>,
}

/// Runs queued jobs, each as its own task.
pub(super) async fn serve(inbox: Arc<Inbox>, ctx: Rc<Ctx>) {
    loop {
        let job = inbox.next().await;
        ringtail_io::rt::spawn(job(ctx.clone()));
    }
}

/// A `Send` handle on the coordinator thread's tree.
#[derive(Clone)]
pub struct TreeClient {
    pub(super) inbox: Arc<Inbox>,
}

impl TreeClient {
    /// Runs `f` on the coordinator thread and waits at most `wait` for its
    /// answer.
    pub(crate) fn run<T, F, Fut>(&self, wait: Duration, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let job: Job = Box::new(move |ctx| -> Pin<Box<dyn Future<Output = ()>>> {
            Box::pin(async move {
                let _ = tx.send(f(ctx).await);
            })
        });
        self.inbox.push(job)?;
        rx.recv_timeout(wait).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => {
                format!("the coordinator did not answer within {wait:?}")
            }
            std::sync::mpsc::RecvTimeoutError::Disconnected => "the coordinator is stopped".into(),
        })
    }
}

fn serving(role: RoleKind) -> bool {
    matches!(
        role,
        RoleKind::Leading { established: true } | RoleKind::Following { active: true }
    )
}

impl TreeClient {
    /// Queues `f` on the coordinator thread without waiting for it (it
    /// answers through its own channel).
    pub(crate) fn submit<F, Fut>(&self, f: F) -> Result<(), String>
    where
        F: FnOnce(Rc<Ctx>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let job: Job =
            Box::new(move |ctx| -> Pin<Box<dyn Future<Output = ()>>> { Box::pin(f(ctx)) });
        self.inbox.push(job)
    }
}

impl Ctx {
    /// Runs `f` on this peer's committed tree.
    pub(crate) fn with_tree<T>(&self, f: impl FnOnce(&DataTree) -> T) -> T {
        self.node.with_peer(|p| f(p.tree()))
    }

    /// Whether this peer serves (leads or follows an established leader).
    pub(crate) fn serving(&self) -> bool {
        serving(self.node.role())
    }

    /// Waits until this peer serves, then `sync`s it with the leader, so
    /// that local reads see every write committed before the call.
    pub(crate) async fn synced(&self, deadline: Instant) -> Result<(), String> {
        loop {
            if serving(self.node.role()) {
                match self.node.request(None, ClientOp::Sync, Zxid::ZERO).await.1 {
                    Response::Synced => return Ok(()),
                    other if Instant::now() >= deadline => {
                        return Err(format!("sync with the leader failed: {other:?}"))
                    }
                    _ => {}
                }
            } else if Instant::now() >= deadline {
                return Err(format!(
                    "no quorum: this peer is {}",
                    super::driver::mode(self.node.role())
                ));
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// The broker's session once registration created Kafka's parents.
    pub(crate) async fn session(&self, deadline: Instant) -> Result<SessionId, String> {
        loop {
            if let Some(s) = self.session.get() {
                if self.node.with_peer(|p| {
                    p.tree().session(s).is_some()
                        && p.tree()
                            .node(ringtail_coordinator::kafka::ADMIN_DELETE_TOPICS)
                            .is_some()
                }) {
                    return Ok(s);
                }
            }
            if Instant::now() >= deadline {
                return Err("the broker is not registered with the coordinator".into());
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Data and stat of a node in this peer's committed tree.
    pub(crate) fn get(&self, path: &str) -> Option<(Vec<u8>, Stat)> {
        self.node.with_peer(|p| {
            let tree = p.tree();
            Some((tree.node(path)?.data.clone(), tree.stat(path)?))
        })
    }

    pub(crate) fn children(&self, path: &str) -> Vec<String> {
        self.node
            .with_peer(|p| p.tree().children(path))
            .unwrap_or_default()
    }

    /// One atomic `multi`: `Ok` with each op's result, or the index and
    /// code of the op that failed (index `ops.len()` when the whole
    /// request failed: no quorum, session gone).
    pub(crate) async fn multi(
        &self,
        session: SessionId,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<OpResult>, (usize, ErrorCode)> {
        let n = ops.len();
        let op = ClientOp::Write(WriteOp::Multi(ops));
        match self.node.request(Some(session), op, Zxid::ZERO).await.1 {
            Response::Write {
                result: OpResult::Multi(results),
                ..
            } => {
                for (i, r) in results.iter().enumerate() {
                    if let OpResult::Error(code) = r {
                        if *code != ErrorCode::Ok && *code != ErrorCode::RuntimeInconsistency {
                            return Err((i, *code));
                        }
                    }
                }
                if results.iter().any(|r| matches!(r, OpResult::Error(_))) {
                    return Err((n, ErrorCode::RuntimeInconsistency));
                }
                Ok(results)
            }
            Response::Write {
                result: OpResult::Error(code),
                ..
            }
            | Response::Error(code) => Err((n, code)),
            _ => Err((n, ErrorCode::RuntimeInconsistency)),
        }
    }
}
