//! Client requests waiting at the peer they arrived on.
//!
//! ZooKeeper answers one session's requests in the order they arrived;
//! reads are served locally but wait behind that session's earlier writes
//! and syncs (its `CommitProcessor` does the same). Each session has a FIFO
//! queue; a write or sync at its head holds back everything after it.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{RequestId, SessionId, Zxid};
use crate::tree::{DataTree, Stat, Watches};
use crate::txn::{ErrorCode, OpResult, WriteOp};

/// What a client may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    Write(WriteOp),
    GetData {
        path: String,
        watch: bool,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    /// Catch up with the leader's commit point before later reads.
    Sync,
    /// Keeps the session alive.
    Ping,
}

impl ClientOp {
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            ClientOp::GetData { .. } | ClientOp::Exists { .. } | ClientOp::GetChildren { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    pub id: RequestId,
    /// `None` only for `CreateSession`.
    pub session: Option<SessionId>,
    pub op: ClientOp,
    /// The highest zxid this client has seen in any reply (ZooKeeper's
    /// `lastZxidSeen`). A peer behind it refuses the request with
    /// ConnectionLoss, so a client that moves between peers never reads an
    /// older state than one it already saw.
    pub last_zxid_seen: Zxid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Write { zxid: Zxid, result: OpResult },
    Data { data: Vec<u8>, stat: Stat },
    Exists(Option<Stat>),
    Children(Vec<String>),
    Synced,
    Pong,
    Error(ErrorCode),
}

#[derive(Debug)]
enum Slot {
    Waiting,
    Read(ClientOp),
    Done(Response),
}

/// Session-less requests (`CreateSession`) queue under this key.
const NO_SESSION: SessionId = SessionId(0);

#[derive(Debug, Default)]
pub struct Clients {
    queues: BTreeMap<SessionId, VecDeque<(RequestId, Slot)>>,
    index: BTreeMap<RequestId, SessionId>,
}

impl Clients {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Queues a request that will complete later (write or sync).
    pub fn push_waiting(&mut self, id: RequestId, session: Option<SessionId>) {
        let key = session.unwrap_or(NO_SESSION);
        self.index.insert(id, key);
        self.queues.entry(key).or_default().push_back((id, Slot::Waiting));
    }

    /// Serves a read now when nothing of its session is ahead of it.
    pub fn read(
        &mut self,
        request: ClientRequest,
        tree: &DataTree,
        watches: &mut Watches,
    ) -> Option<(RequestId, Response)> {
        let key = request.session.unwrap_or(NO_SESSION);
        if self.queues.get(&key).is_none_or(VecDeque::is_empty) {
            return Some((request.id, serve_read(&request.op, key, tree, watches)));
        }
        self.index.insert(request.id, key);
        self.queues
            .entry(key)
            .or_default()
            .push_back((request.id, Slot::Read(request.op)));
        None
    }

    /// Completes a waiting request; returns every reply now due, in order.
    pub fn complete(
        &mut self,
        id: RequestId,
        response: Response,
        tree: &DataTree,
        watches: &mut Watches,
    ) -> Vec<(RequestId, Response)> {
        let Some(key) = self.index.get(&id).copied() else {
            return Vec::new();
        };
        let Some(queue) = self.queues.get_mut(&key) else {
            return Vec::new();
        };
        if let Some(slot) = queue.iter_mut().find(|(rid, _)| *rid == id) {
            slot.1 = Slot::Done(response);
        }
        let mut due = Vec::new();
        while let Some((rid, slot)) = queue.front() {
            let response = match slot {
                Slot::Waiting => break,
                Slot::Done(r) => r.clone(),
                Slot::Read(op) => serve_read(op, key, tree, watches),
            };
            due.push((*rid, response));
            self.index.remove(rid);
            queue.pop_front();
        }
        if queue.is_empty() {
            self.queues.remove(&key);
        }
        due
    }

    /// Fails everything (the peer lost its leader): ZooKeeper closes the
    /// connections and the client sees ConnectionLoss.
    pub fn fail_all(&mut self) -> Vec<(RequestId, Response)> {
        let failed = self
            .queues
            .values()
            .flatten()
            .map(|(id, _)| (*id, Response::Error(ErrorCode::ConnectionLoss)))
            .collect();
        self.queues.clear();
        self.index.clear();
        failed
    }
}

/// Serves a read from the local tree (sequentially consistent).
pub fn serve_read(op: &ClientOp, session: SessionId, tree: &DataTree, watches: &mut Watches) -> Response {
    match op {
        ClientOp::GetData { path, watch } => match (tree.node(path), tree.stat(path)) {
            (Some(node), Some(stat)) => {
                if *watch {
                    watches.watch_data(path, session);
                }
                Response::Data {
                    data: node.data.clone(),
                    stat,
                }
            }
            _ => Response::Error(ErrorCode::NoNode),
        },
        ClientOp::Exists { path, watch } => {
            // An exists watch is set even on a missing node: it waits for
            // NodeCreated.
            if *watch {
                watches.watch_data(path, session);
            }
            Response::Exists(tree.stat(path))
        }
        ClientOp::GetChildren { path, watch } => match tree.children(path) {
            Some(children) => {
                if *watch {
                    watches.watch_children(path, session);
                }
                Response::Children(children)
            }
            None => Response::Error(ErrorCode::NoNode),
        },
        ClientOp::Write(_) | ClientOp::Sync | ClientOp::Ping => Response::Error(ErrorCode::BadArguments),
    }
}
