//! The I/O side of one peer, all on the coordinator thread's ring.
//!
//! Every input enters through [`Node::input`], which steps the peer and
//! acts on its outputs at once and in order: `Persist` records queue for
//! the WAL writer task, `Send`s queue on the outbound link to that voter,
//! `Reply`s complete the waiting client request. Tasks:
//!
//! - the ticker feeds `Tick` every `tick_ms`;
//! - the WAL writer writes everything queued in one write, fdatasyncs it,
//!   then feeds `Persisted(last token)` (group commit);
//! - one sender per other voter dials it (backoff 50 ms doubling to
//!   500 ms) and writes queued frames; one reader per accepted peer
//!   connection feeds `Message`s. Two one-way connections per pair keep
//!   the dialling rules trivial; the core copes with drops and duplicates.
//! - one task per tools connection (`coordinator.client.port`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ringtail_coordinator::clients::{ClientOp, ClientRequest, Response};
use ringtail_coordinator::codec;
use ringtail_coordinator::ids::{NodeId, RequestId, SessionId, Zxid};
use ringtail_coordinator::peer::{Input, Output, Peer, RoleKind};
use ringtail_coordinator::txn::{ErrorCode, OpResult, WriteOp};
use ringtail_io::rt::net::{TcpListener, TcpStream};
use ringtail_io::rt::sync::{oneshot, Notify, OneshotSender};
use ringtail_io::rt::time::{sleep, timeout};

use super::protocol::{self, Body, Request};
use super::wal::{self, Wal};

/// Frames queued for one voter; older ones are dropped beyond this (the
/// core resends what matters).
const LINK_QUEUE_FRAMES_MAX: usize = 4096;
/// Largest peer frame accepted (a SNAP sync carries the whole tree).
const PEER_FRAME_BYTES_MAX: usize = 256 << 20;
/// Requests waiting for the core at once; more are refused.
const WAITERS_MAX: usize = 4096;
/// How long a tools request may wait for its answer.
const CLIENT_WAIT: Duration = Duration::from_secs(10);
/// Sessions of tools connections (the core clamps to 2..20 ticks).
const TOOLS_SESSION_TIMEOUT_MS: u32 = 1000;

pub(super) struct Link {
    addr: SocketAddr,
    queue: RefCell<VecDeque<Vec<u8>>>,
    wake: Notify,
}

pub(super) struct Node {
    pub(super) me: NodeId,
    peer: RefCell<Peer>,
    wal: RefCell<Wal>,
    wal_wake: Notify,
    links: BTreeMap<NodeId, Rc<Link>>,
    waiters: RefCell<HashMap<RequestId, OneshotSender<(Zxid, Response)>>>,
    next_request: Cell<u64>,
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

impl Node {
    pub(super) fn new(peer: Peer, wal: Wal, others: &[(NodeId, SocketAddr)]) -> Rc<Node> {
        let links = others
            .iter()
            .map(|(id, addr)| {
                let link = Link {
                    addr: *addr,
                    queue: RefCell::new(VecDeque::new()),
                    wake: Notify::new(),
                };
                (*id, Rc::new(link))
            })
            .collect();
        Rc::new(Node {
            me: peer.id(),
            peer: RefCell::new(peer),
            wal: RefCell::new(wal),
            wal_wake: Notify::new(),
            links,
            waiters: RefCell::new(HashMap::new()),
            next_request: Cell::new(1),
        })
    }

    /// Steps the peer with one input and acts on every output, in order.
    pub(super) fn input(&self, input: Input) {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let outputs = {
            let mut peer = self.peer.borrow_mut();
            peer.set_wall_clock_ms(wall_ms);
            peer.step(input)
        };
        for output in outputs {
            match output {
                Output::Send { to, msg } => self.send(to, &msg),
                Output::Persist { token, action } => {
                    self.wal.borrow_mut().push(token, &action);
                    self.wal_wake.notify();
                }
                Output::Reply { id, zxid, response } => {
                    if let Some(waiter) = self.waiters.borrow_mut().remove(&id) {
                        waiter.send((zxid, response));
                    }
                }
                Output::Deliver { .. }
                | Output::SnapshotInstalled { .. }
                | Output::Watch { .. } => {}
            }
        }
    }

    fn send(&self, to: NodeId, msg: &ringtail_coordinator::message::Message) {
        let Some(link) = self.links.get(&to) else {
            return;
        };
        let mut queue = link.queue.borrow_mut();
        if queue.len() >= LINK_QUEUE_FRAMES_MAX {
            queue.pop_front();
        }
        queue.push_back(frame(&codec::encode_message(msg)));
        link.wake.notify();
    }

    /// Asks the core and waits for its reply (ConnectionLoss after
    /// [`CLIENT_WAIT`] or when too many wait already).
    pub(super) async fn request(
        &self,
        session: Option<SessionId>,
        op: ClientOp,
        seen: Zxid,
    ) -> (Zxid, Response) {
        if self.waiters.borrow().len() >= WAITERS_MAX {
            return (Zxid::ZERO, Response::Error(ErrorCode::ConnectionLoss));
        }
        let id = RequestId(self.next_request.get());
        self.next_request.set(id.0 + 1);
        let (tx, rx) = oneshot();
        self.waiters.borrow_mut().insert(id, tx);
        self.input(Input::ClientRequest(ClientRequest {
            id,
            session,
            op,
            last_zxid_seen: seen,
        }));
        let answer = timeout(CLIENT_WAIT, rx).await;
        self.waiters.borrow_mut().remove(&id);
        match answer {
            Ok(Ok(reply)) => reply,
            _ => (Zxid::ZERO, Response::Error(ErrorCode::ConnectionLoss)),
        }
    }

    pub(super) fn role(&self) -> RoleKind {
        self.peer.borrow().role()
    }

    pub(super) fn with_peer<T>(&self, f: impl FnOnce(&Peer) -> T) -> T {
        f(&self.peer.borrow())
    }
}

pub(super) async fn ticker(node: Rc<Node>, tick: Duration) {
    loop {
        sleep(tick).await;
        node.input(Input::Tick);
        let outstanding = node.waiters.borrow().len();
        node.with_peer(|p| {
            let (role, epoch, zxid) = (p.role(), p.epochs().1 .0, p.last_zxid().0);
            crate::metrics::coordinator::observe(role, epoch, zxid, outstanding)
        });
    }
}

/// Group commit: one write and one fdatasync for everything queued.
pub(super) async fn wal_writer(node: Rc<Node>) {
    loop {
        node.wal_wake.notified().await;
        loop {
            let Some(batch) = node.wal.borrow_mut().take_batch() else {
                break;
            };
            let file = node.wal.borrow().file();
            if let Err(e) = wal::write_durably(&file, batch.bytes, batch.at).await {
                // Whether the write reached the disk is unknown (a failed
                // fsync may drop dirty pages): promising nothing more and
                // stopping is the only safe answer, as Kafka halts on a
                // failed log dir.
                fatal(&format!("wal write failed: {e}"));
            }
            let token = batch.token;
            if let Err(e) = node.wal.borrow_mut().made_durable(batch.actions) {
                fatal(&e);
            }
            node.input(Input::Persisted(token));
            let due = node.wal.borrow_mut().compaction_due();
            if let Some(bytes) = due {
                let dir = node.wal.borrow().dir().to_path_buf();
                let before = node.wal.borrow().len();
                match wal::write_compacted(&dir, bytes).await {
                    Ok((file, len)) => {
                        eprintln!("coordinator: compacted the wal from {before} to {len} bytes");
                        node.wal.borrow_mut().switch(file, len);
                    }
                    Err(e) => fatal(&format!("wal compaction failed: {e}")),
                }
            }
        }
    }
}

fn fatal(what: &str) -> ! {
    eprintln!("coordinator: {what}; exiting");
    std::process::exit(1);
}

/// Dials one voter and writes its queued frames, reconnecting with backoff.
pub(super) async fn sender(node: Rc<Node>, to: NodeId) {
    let link = node.links[&to].clone();
    let mut backoff = Duration::from_millis(50);
    loop {
        let stream = match timeout(Duration::from_secs(1), TcpStream::connect(link.addr)).await {
            Ok(Ok(s)) => s,
            _ => {
                // Frames for a voter that is down are stale by the time it
                // is back; the core resends what it still needs.
                link.queue.borrow_mut().clear();
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let (hello, _) = stream.send_all(frame(&node.me.0.to_be_bytes())).await;
        if hello.is_err() {
            continue;
        }
        loop {
            let next = link.queue.borrow_mut().pop_front();
            let Some(bytes) = next else {
                link.wake.notified().await;
                continue;
            };
            if stream.send_all(bytes).await.0.is_err() {
                break;
            }
        }
    }
}

/// Reads one length-prefixed frame of at most `max` bytes; `None` on
/// close, error or an oversized frame.
async fn read_frame(stream: &TcpStream, buf: &mut Vec<u8>, max: usize) -> Option<Vec<u8>> {
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
            if len > max {
                return None;
            }
            if buf.len() >= 4 + len {
                let body = buf[4..4 + len].to_vec();
                buf.drain(..4 + len);
                return Some(body);
            }
        }
        let (result, back) = stream.recv(std::mem::take(buf), 64 << 10).await;
        *buf = back;
        match result {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

pub(super) async fn peer_acceptor(node: Rc<Node>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                ringtail_io::rt::spawn(peer_reader(node.clone(), stream));
            }
            Err(_) => sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn peer_reader(node: Rc<Node>, stream: TcpStream) {
    let mut buf = Vec::new();
    let Some(hello) = read_frame(&stream, &mut buf, 8).await else {
        return;
    };
    let Ok(id) = <[u8; 8]>::try_from(hello.as_slice()) else {
        return;
    };
    let from = NodeId(u64::from_be_bytes(id));
    if !node.links.contains_key(&from) {
        eprintln!(
            "coordinator: dropping a peer connection from unknown voter {}",
            from.0
        );
        return;
    }
    while let Some(body) = read_frame(&stream, &mut buf, PEER_FRAME_BYTES_MAX).await {
        match codec::decode_message(&body) {
            Ok((msg, _)) => node.input(Input::Message { from, msg }),
            Err(e) => {
                eprintln!("coordinator: bad frame from voter {}: {e}; closing", from.0);
                return;
            }
        }
    }
}

pub(super) async fn client_acceptor(node: Rc<Node>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                ringtail_io::rt::spawn(client_conn(node.clone(), stream));
            }
            Err(_) => sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One tools connection. Writes need a session: the first write opens
/// one (again if it expired while the connection idled) and the end of
/// the connection closes it.
async fn client_conn(node: Rc<Node>, stream: TcpStream) {
    let mut buf = Vec::new();
    let mut session = None;
    while let Some(body) = read_frame(&stream, &mut buf, protocol::FRAME_BYTES_MAX).await {
        let Ok((request, seen)) = protocol::decode_request(&body) else {
            break;
        };
        let mut response = answer(&node, &mut session, request.clone(), seen).await;
        if response.code == ErrorCode::SessionExpired {
            session = None;
            response = answer(&node, &mut session, request, seen).await;
        }
        if stream
            .send_all(protocol::encode_response(&response))
            .await
            .0
            .is_err()
        {
            break;
        }
    }
    if let Some(s) = session {
        let _ = node
            .request(Some(s), ClientOp::Write(WriteOp::CloseSession), Zxid::ZERO)
            .await;
    }
}

/// Opens a session for a tools connection's writes.
async fn open_session(node: &Node, seen: Zxid) -> Result<SessionId, ErrorCode> {
    let op = ClientOp::Write(WriteOp::CreateSession {
        timeout_ms: TOOLS_SESSION_TIMEOUT_MS,
    });
    match node.request(None, op, seen).await.1 {
        Response::Write {
            result: OpResult::SessionCreated { session, .. },
            ..
        } => Ok(session),
        Response::Write {
            result: OpResult::Error(code),
            ..
        }
        | Response::Error(code) => Err(code),
        _ => Err(ErrorCode::RuntimeInconsistency),
    }
}

pub(super) fn mode(role: RoleKind) -> &'static str {
    match role {
        RoleKind::Looking => "looking",
        RoleKind::Leading { established: true } => "leader",
        RoleKind::Leading { established: false } => "leading (not established)",
        RoleKind::Following { active: true } => "follower",
        RoleKind::Following { active: false } => "following (syncing)",
        RoleKind::Observing { .. } => "observer",
    }
}

async fn answer(
    node: &Node,
    session: &mut Option<SessionId>,
    request: Request,
    seen: Zxid,
) -> protocol::Response {
    let ok = |zxid, body| protocol::Response {
        code: ErrorCode::Ok,
        zxid,
        body,
    };
    let op = match request {
        Request::Srvr => {
            let (zxid, nodes) =
                node.with_peer(|p| (p.committed_zxid(), p.tree().nodes().count() as u64));
            let body = Body::Srvr {
                id: node.me.0,
                mode: mode(node.role()).to_string(),
                zxid,
                nodes,
            };
            return ok(zxid, body);
        }
        Request::GetChildren(path) => ClientOp::GetChildren { path, watch: false },
        Request::GetData(path) => ClientOp::GetData { path, watch: false },
        Request::Exists(path) => ClientOp::Exists { path, watch: false },
        Request::Sync(_) => ClientOp::Sync,
        Request::Create { path, data, mode } => {
            ClientOp::Write(WriteOp::Create { path, data, mode })
        }
        Request::Delete { path, version } => ClientOp::Write(WriteOp::Delete { path, version }),
        Request::SetData {
            path,
            data,
            version,
        } => ClientOp::Write(WriteOp::SetData {
            path,
            data,
            version,
        }),
    };
    if matches!(op, ClientOp::Write(_)) && session.is_none() {
        match open_session(node, seen).await {
            Ok(s) => *session = Some(s),
            Err(code) => {
                return protocol::Response {
                    code,
                    zxid: Zxid::ZERO,
                    body: Body::Empty,
                }
            }
        }
    }
    let (zxid, response) = node.request(*session, op, seen).await;
    let fail = |code| protocol::Response {
        code,
        zxid,
        body: Body::Empty,
    };
    match response {
        Response::Children(names) => ok(zxid, Body::Children(names)),
        Response::Data { data, stat } => ok(zxid, Body::Data { data, stat }),
        Response::Exists(Some(stat)) => ok(zxid, Body::Stat(stat)),
        Response::Exists(None) => fail(ErrorCode::NoNode),
        Response::Write {
            result: OpResult::Created { path },
            ..
        } => ok(zxid, Body::Created(path)),
        Response::Write {
            result: OpResult::Error(code),
            ..
        } => fail(code),
        Response::Write { .. } | Response::Synced | Response::Pong => ok(zxid, Body::Empty),
        Response::Error(code) => fail(code),
    }
}
