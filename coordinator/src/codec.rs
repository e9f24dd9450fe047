//! Binary encoding of log records, snapshots and peer messages.
//!
//! # Frame
//!
//! ```text
//! len: u32 LE     bytes after the checksum (version + kind + payload)
//! crc: u32 LE     CRC-32C of those bytes
//! version: u8     FORMAT_VERSION
//! kind: u8        record or message kind
//! payload         little-endian fields; byte strings are u32-length-prefixed
//! ```
//!
//! A log file is a sequence of frames. Recovery reads frames until the
//! first one that is incomplete or fails its checksum (a torn last write)
//! and keeps the valid prefix; decoding never panics on any input.

use crate::ids::{Epoch, NodeId, RequestId, SessionId, Zxid};
use crate::message::{LinkId, Message, Notification, PeerState, Vote, ZabBody};
use crate::peer::PersistAction;
use crate::tree::{DataTree, Session, Stat};
use crate::txn::{CreateMode, ErrorCode, LoggedTxn, Txn, WriteOp};

pub const FORMAT_VERSION: u8 = 1;
const HEADER_BYTES: usize = 8;
/// Frames above this are refused rather than allocated (`jute.maxbuffer`
/// is 1 MiB in ZooKeeper; snapshots of the metadata tree stay well below).
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Multi inside multi is refused by prep; bound decoding recursion anyway.
const NESTING_MAX: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete { needed: usize },
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("unsupported format version {0}")]
    Version(u8),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("payload ends inside {0}")]
    Truncated(&'static str),
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
}

mod kind {
    pub const ACCEPTED_EPOCH: u8 = 1;
    pub const CURRENT_EPOCH: u8 = 2;
    pub const TXNS: u8 = 3;
    pub const TRUNCATE: u8 = 4;
    pub const SNAPSHOT: u8 = 5;
    pub const NOTIFICATION: u8 = 16;
    pub const ZAB: u8 = 17;
}

// ----- frames -----------------------------------------------------------

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 + payload.len());
    body.push(FORMAT_VERSION);
    body.push(kind);
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks the frame at the start of `bytes`; returns its kind, payload and
/// total length.
pub fn check_frame(bytes: &[u8]) -> Result<(u8, &[u8], usize), DecodeError> {
    if bytes.len() < HEADER_BYTES {
        return Err(DecodeError::Incomplete {
            needed: HEADER_BYTES - bytes.len(),
        });
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(DecodeError::TooLarge(len));
    }
    if len < 2 {
        return Err(DecodeError::Malformed("frame shorter than its header"));
    }
    let total = HEADER_BYTES + len;
    if bytes.len() < total {
        return Err(DecodeError::Incomplete {
            needed: total - bytes.len(),
        });
    }
    let stored = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = &bytes[HEADER_BYTES..total];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    if body[0] != FORMAT_VERSION {
        return Err(DecodeError::Version(body[0]));
    }
    Ok((body[1], &body[2..], total))
}

// ----- writer / reader --------------------------------------------------

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(self.u32(what)? as i32)
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }
    fn str(&mut self, what: &'static str) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes(what)?).map_err(|_| DecodeError::Malformed("string is not UTF-8"))
    }
    /// A count of items each at least `item_bytes` long: refuses counts the
    /// remaining payload cannot hold, so hostile input cannot make us
    /// allocate.
    fn count(&mut self, item_bytes: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(item_bytes.max(1)) > self.0.len() {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes"))
        }
    }
}

// ----- transactions and trees -------------------------------------------

fn put_txn(w: &mut W, txn: &Txn) {
    match txn {
        Txn::Create {
            path,
            data,
            ephemeral_owner,
            parent_cversion,
        } => {
            w.u8(0);
            w.str(path);
            w.bytes(data);
            w.u64(ephemeral_owner.map_or(0, |s| s.0));
            w.i32(*parent_cversion);
        }
        Txn::Delete { path } => {
            w.u8(1);
            w.str(path);
        }
        Txn::SetData { path, data, version } => {
            w.u8(2);
            w.str(path);
            w.bytes(data);
            w.i32(*version);
        }
        Txn::Check { path } => {
            w.u8(3);
            w.str(path);
        }
        Txn::Multi(txns) => {
            w.u8(4);
            w.u32(txns.len() as u32);
            for t in txns {
                put_txn(w, t);
            }
        }
        Txn::CreateSession { timeout_ms } => {
            w.u8(5);
            w.u32(*timeout_ms);
        }
        Txn::CloseSession => w.u8(6),
        Txn::Error(code) => {
            w.u8(7);
            w.i32(code.code());
        }
    }
}

fn get_txn(r: &mut R<'_>, depth: u32) -> Result<Txn, DecodeError> {
    Ok(match r.u8("txn tag")? {
        0 => {
            let path = r.str("create path")?;
            let data = r.bytes("create data")?;
            let owner = r.u64("ephemeral owner")?;
            let parent_cversion = r.i32("parent cversion")?;
            Txn::Create {
                path,
                data,
                ephemeral_owner: (owner != 0).then_some(SessionId(owner)),
                parent_cversion,
            }
        }
        1 => Txn::Delete {
            path: r.str("delete path")?,
        },
        2 => Txn::SetData {
            path: r.str("set path")?,
            data: r.bytes("set data")?,
            version: r.i32("set version")?,
        },
        3 => Txn::Check {
            path: r.str("check path")?,
        },
        4 => {
            if depth >= NESTING_MAX {
                return Err(DecodeError::Malformed("multi nested too deep"));
            }
            let n = r.count(1, "multi count")?;
            let mut txns = Vec::with_capacity(n);
            for _ in 0..n {
                txns.push(get_txn(r, depth + 1)?);
            }
            Txn::Multi(txns)
        }
        5 => Txn::CreateSession {
            timeout_ms: r.u32("session timeout")?,
        },
        6 => Txn::CloseSession,
        7 => Txn::Error(get_code(r)?),
        tag => return Err(DecodeError::UnknownTag { what: "txn", tag }),
    })
}

fn get_code(r: &mut R<'_>) -> Result<ErrorCode, DecodeError> {
    ErrorCode::from_code(r.i32("error code")?).ok_or(DecodeError::Malformed("unknown error code"))
}

fn put_logged(w: &mut W, t: &LoggedTxn) {
    w.u64(t.zxid.0);
    w.u64(t.session.0);
    w.u64(t.time_ms);
    put_txn(w, &t.txn);
}

fn get_logged(r: &mut R<'_>) -> Result<LoggedTxn, DecodeError> {
    let zxid = Zxid(r.u64("zxid")?);
    let session = SessionId(r.u64("session")?);
    let time_ms = r.u64("time")?;
    Ok(LoggedTxn {
        zxid,
        session,
        time_ms,
        txn: get_txn(r, 0)?,
    })
}

fn put_tree(w: &mut W, tree: &DataTree) {
    w.u64(tree.last_zxid().0);
    let nodes: Vec<_> = tree.nodes().collect();
    w.u32(nodes.len() as u32);
    for (path, node) in nodes {
        w.str(path);
        w.bytes(&node.data);
        let s = &node.stat;
        for v in [
            s.czxid.0,
            s.mzxid.0,
            s.pzxid.0,
            s.ctime_ms,
            s.mtime_ms,
            s.ephemeral_owner.map_or(0, |o| o.0),
        ] {
            w.u64(v);
        }
        for v in [s.version, s.cversion, s.aversion] {
            w.i32(v);
        }
    }
    let sessions: Vec<_> = tree.sessions().collect();
    w.u32(sessions.len() as u32);
    for (id, session) in sessions {
        w.u64(id.0);
        w.u32(session.timeout_ms);
    }
}

fn get_tree(r: &mut R<'_>) -> Result<DataTree, DecodeError> {
    let last_zxid = Zxid(r.u64("snapshot zxid")?);
    let n = r.count(8 + 6 * 8 + 3 * 4, "node count")?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let path = r.str("node path")?;
        crate::txn::validate_path(&path).map_err(|_| DecodeError::Malformed("invalid node path"))?;
        let data = r.bytes("node data")?;
        let mut u = [0u64; 6];
        for v in &mut u {
            *v = r.u64("stat")?;
        }
        let stat = Stat {
            czxid: Zxid(u[0]),
            mzxid: Zxid(u[1]),
            pzxid: Zxid(u[2]),
            ctime_ms: u[3],
            mtime_ms: u[4],
            ephemeral_owner: (u[5] != 0).then_some(SessionId(u[5])),
            version: r.i32("version")?,
            cversion: r.i32("cversion")?,
            aversion: r.i32("aversion")?,
            data_length: 0,
            num_children: 0,
        };
        nodes.push((path, data, stat));
    }
    let n = r.count(12, "session count")?;
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push((
            SessionId(r.u64("session id")?),
            Session {
                timeout_ms: r.u32("session timeout")?,
            },
        ));
    }
    DataTree::from_parts(nodes, sessions, last_zxid).ok_or(DecodeError::Malformed("snapshot nodes do not form a tree"))
}

// ----- records ----------------------------------------------------------

/// Encodes one `Persist` action as a log frame.
pub fn encode_record(action: &PersistAction) -> Vec<u8> {
    let mut w = W::default();
    let kind = match action {
        PersistAction::AcceptedEpoch(e) => {
            w.u32(e.0);
            kind::ACCEPTED_EPOCH
        }
        PersistAction::CurrentEpoch(e) => {
            w.u32(e.0);
            kind::CURRENT_EPOCH
        }
        PersistAction::Txns(txns) => {
            w.u32(txns.len() as u32);
            for t in txns {
                put_logged(&mut w, t);
            }
            kind::TXNS
        }
        PersistAction::Truncate(z) => {
            w.u64(z.0);
            kind::TRUNCATE
        }
        PersistAction::Snapshot { tree, discard_log } => {
            w.u8(u8::from(*discard_log));
            put_tree(&mut w, tree);
            kind::SNAPSHOT
        }
    };
    frame(kind, &w.0)
}

/// Decodes the record frame at the start of `bytes`; returns it and its
/// encoded length.
pub fn decode_record(bytes: &[u8]) -> Result<(PersistAction, usize), DecodeError> {
    let (kind, payload, total) = check_frame(bytes)?;
    let mut r = R(payload);
    let action = match kind {
        kind::ACCEPTED_EPOCH => PersistAction::AcceptedEpoch(Epoch(r.u32("epoch")?)),
        kind::CURRENT_EPOCH => PersistAction::CurrentEpoch(Epoch(r.u32("epoch")?)),
        kind::TXNS => {
            let n = r.count(25, "txn count")?;
            let mut txns = Vec::with_capacity(n);
            for _ in 0..n {
                txns.push(get_logged(&mut r)?);
            }
            PersistAction::Txns(txns)
        }
        kind::TRUNCATE => PersistAction::Truncate(Zxid(r.u64("truncate zxid")?)),
        kind::SNAPSHOT => {
            let discard_log = r.u8("discard flag")? != 0;
            PersistAction::Snapshot {
                tree: Box::new(get_tree(&mut r)?),
                discard_log,
            }
        }
        tag => return Err(DecodeError::UnknownTag { what: "record", tag }),
    };
    r.end()?;
    Ok((action, total))
}

/// Decodes a log file: every valid record, and how many bytes they span
/// (the rest, if any, is a torn or corrupt tail to truncate).
pub fn decode_log(bytes: &[u8]) -> (Vec<PersistAction>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match decode_record(&bytes[at..]) {
            Ok((record, len)) => {
                records.push(record);
                at += len;
            }
            Err(_) => break,
        }
    }
    (records, at)
}

// ----- messages ---------------------------------------------------------

fn put_op(w: &mut W, op: &WriteOp) {
    match op {
        WriteOp::Create { path, data, mode } => {
            w.u8(0);
            w.str(path);
            w.bytes(data);
            w.u8(match mode {
                CreateMode::Persistent => 0,
                CreateMode::PersistentSequential => 1,
                CreateMode::Ephemeral => 2,
                CreateMode::EphemeralSequential => 3,
            });
        }
        WriteOp::Delete { path, version } => {
            w.u8(1);
            w.str(path);
            w.i32(*version);
        }
        WriteOp::SetData { path, data, version } => {
            w.u8(2);
            w.str(path);
            w.bytes(data);
            w.i32(*version);
        }
        WriteOp::Check { path, version } => {
            w.u8(3);
            w.str(path);
            w.i32(*version);
        }
        WriteOp::Multi(ops) => {
            w.u8(4);
            w.u32(ops.len() as u32);
            for op in ops {
                put_op(w, op);
            }
        }
        WriteOp::CreateSession { timeout_ms } => {
            w.u8(5);
            w.u32(*timeout_ms);
        }
        WriteOp::CloseSession => w.u8(6),
    }
}

fn get_op(r: &mut R<'_>, depth: u32) -> Result<WriteOp, DecodeError> {
    Ok(match r.u8("op tag")? {
        0 => {
            let path = r.str("path")?;
            let data = r.bytes("data")?;
            let mode = match r.u8("create mode")? {
                0 => CreateMode::Persistent,
                1 => CreateMode::PersistentSequential,
                2 => CreateMode::Ephemeral,
                3 => CreateMode::EphemeralSequential,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "create mode",
                        tag,
                    })
                }
            };
            WriteOp::Create { path, data, mode }
        }
        1 => WriteOp::Delete {
            path: r.str("path")?,
            version: r.i32("version")?,
        },
        2 => WriteOp::SetData {
            path: r.str("path")?,
            data: r.bytes("data")?,
            version: r.i32("version")?,
        },
        3 => WriteOp::Check {
            path: r.str("path")?,
            version: r.i32("version")?,
        },
        4 => {
            if depth >= NESTING_MAX {
                return Err(DecodeError::Malformed("multi nested too deep"));
            }
            let n = r.count(1, "multi count")?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                ops.push(get_op(r, depth + 1)?);
            }
            WriteOp::Multi(ops)
        }
        5 => WriteOp::CreateSession {
            timeout_ms: r.u32("timeout")?,
        },
        6 => WriteOp::CloseSession,
        tag => return Err(DecodeError::UnknownTag { what: "op", tag }),
    })
}

fn state_tag(s: PeerState) -> u8 {
    match s {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

fn put_body(w: &mut W, body: &ZabBody) {
    match body {
        ZabBody::LearnerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        } => {
            w.u8(0);
            w.u32(accepted_epoch.0);
            w.u64(last_zxid.0);
            w.u8(u8::from(*observer));
        }
        ZabBody::LeaderInfo { new_epoch } => {
            w.u8(1);
            w.u32(new_epoch.0);
        }
        ZabBody::AckEpoch {
            current_epoch,
            last_zxid,
        } => {
            w.u8(2);
            w.u32(current_epoch.0);
            w.u64(last_zxid.0);
        }
        ZabBody::Snap { tree } => {
            w.u8(3);
            put_tree(w, tree);
        }
        ZabBody::Trunc { zxid } => {
            w.u8(4);
            w.u64(zxid.0);
        }
        ZabBody::Diff { zxid } => {
            w.u8(5);
            w.u64(zxid.0);
        }
        ZabBody::Proposal { txn, origin } => {
            w.u8(6);
            put_logged(w, txn);
            match origin {
                Some((node, id)) => {
                    w.u8(1);
                    w.u64(node.0);
                    w.u64(id.0);
                }
                None => w.u8(0),
            }
        }
        ZabBody::Commit { zxid } => {
            w.u8(7);
            w.u64(zxid.0);
        }
        ZabBody::NewLeader { epoch } => {
            w.u8(8);
            w.u32(epoch.0);
        }
        ZabBody::NewLeaderAck { epoch } => {
            w.u8(9);
            w.u32(epoch.0);
        }
        ZabBody::UpToDate { committed } => {
            w.u8(10);
            w.u64(committed.0);
        }
        ZabBody::Ack { zxid } => {
            w.u8(11);
            w.u64(zxid.0);
        }
        ZabBody::Ping => w.u8(12),
        ZabBody::PingReply { touched } => {
            w.u8(13);
            w.u32(touched.len() as u32);
            for s in touched {
                w.u64(s.0);
            }
        }
        ZabBody::Request { id, session, op } => {
            w.u8(14);
            w.u64(id.0);
            w.u64(session.0);
            put_op(w, op);
        }
        ZabBody::Sync { id } => {
            w.u8(15);
            w.u64(id.0);
        }
        ZabBody::SyncReply { id } => {
            w.u8(16);
            w.u64(id.0);
        }
    }
}

fn get_body(r: &mut R<'_>) -> Result<ZabBody, DecodeError> {
    Ok(match r.u8("packet tag")? {
        0 => ZabBody::LearnerInfo {
            accepted_epoch: Epoch(r.u32("epoch")?),
            last_zxid: Zxid(r.u64("zxid")?),
            observer: r.u8("observer")? != 0,
        },
        1 => ZabBody::LeaderInfo {
            new_epoch: Epoch(r.u32("epoch")?),
        },
        2 => ZabBody::AckEpoch {
            current_epoch: Epoch(r.u32("epoch")?),
            last_zxid: Zxid(r.u64("zxid")?),
        },
        3 => ZabBody::Snap {
            tree: Box::new(get_tree(r)?),
        },
        4 => ZabBody::Trunc {
            zxid: Zxid(r.u64("zxid")?),
        },
        5 => ZabBody::Diff {
            zxid: Zxid(r.u64("zxid")?),
        },
        6 => {
            let txn = get_logged(r)?;
            let origin = match r.u8("origin flag")? {
                0 => None,
                _ => Some((NodeId(r.u64("origin node")?), RequestId(r.u64("origin request")?))),
            };
            ZabBody::Proposal { txn, origin }
        }
        7 => ZabBody::Commit {
            zxid: Zxid(r.u64("zxid")?),
        },
        8 => ZabBody::NewLeader {
            epoch: Epoch(r.u32("epoch")?),
        },
        9 => ZabBody::NewLeaderAck {
            epoch: Epoch(r.u32("epoch")?),
        },
        10 => ZabBody::UpToDate {
            committed: Zxid(r.u64("zxid")?),
        },
        11 => ZabBody::Ack {
            zxid: Zxid(r.u64("zxid")?),
        },
        12 => ZabBody::Ping,
        13 => {
            let n = r.count(8, "touched count")?;
            let mut touched = Vec::with_capacity(n);
            for _ in 0..n {
                touched.push(SessionId(r.u64("session")?));
            }
            ZabBody::PingReply { touched }
        }
        14 => {
            let id = RequestId(r.u64("request id")?);
            let session = SessionId(r.u64("session")?);
            ZabBody::Request {
                id,
                session,
                op: get_op(r, 0)?,
            }
        }
        15 => ZabBody::Sync {
            id: RequestId(r.u64("request id")?),
        },
        16 => ZabBody::SyncReply {
            id: RequestId(r.u64("request id")?),
        },
        tag => return Err(DecodeError::UnknownTag { what: "packet", tag }),
    })
}

pub fn encode_message(msg: &Message) -> Vec<u8> {
    let mut w = W::default();
    let kind = match msg {
        Message::Notification(n) => {
            w.u64(n.vote.leader.0);
            w.u64(n.vote.zxid.0);
            w.u32(n.vote.peer_epoch.0);
            w.u64(n.election_epoch);
            w.u8(state_tag(n.state));
            kind::NOTIFICATION
        }
        Message::Zab {
            link,
            leader_stamp,
            seq,
            body,
        } => {
            w.u64(link.learner_incarnation);
            w.u64(link.attempt);
            w.u64(*leader_stamp);
            w.u64(*seq);
            put_body(&mut w, body);
            kind::ZAB
        }
    };
    frame(kind, &w.0)
}

pub fn decode_message(bytes: &[u8]) -> Result<(Message, usize), DecodeError> {
    let (kind, payload, total) = check_frame(bytes)?;
    let mut r = R(payload);
    let msg = match kind {
        kind::NOTIFICATION => {
            let vote = Vote {
                leader: NodeId(r.u64("leader")?),
                zxid: Zxid(r.u64("zxid")?),
                peer_epoch: Epoch(r.u32("epoch")?),
            };
            let election_epoch = r.u64("election epoch")?;
            let state = match r.u8("state")? {
                0 => PeerState::Looking,
                1 => PeerState::Following,
                2 => PeerState::Leading,
                3 => PeerState::Observing,
                tag => return Err(DecodeError::UnknownTag { what: "state", tag }),
            };
            Message::Notification(Notification {
                vote,
                election_epoch,
                state,
            })
        }
        kind::ZAB => {
            let link = LinkId {
                learner_incarnation: r.u64("link")?,
                attempt: r.u64("link")?,
            };
            let leader_stamp = r.u64("incarnation")?;
            let seq = r.u64("seq")?;
            Message::Zab {
                link,
                leader_stamp,
                seq,
                body: get_body(&mut r)?,
            }
        }
        tag => return Err(DecodeError::UnknownTag { what: "message", tag }),
    };
    r.end()?;
    Ok((msg, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_txns() -> Vec<LoggedTxn> {
        let txns = vec![
            Txn::Create {
                path: "/a".into(),
                data: b"x".to_vec(),
                ephemeral_owner: Some(SessionId(9)),
                parent_cversion: 3,
            },
            Txn::Multi(vec![
                Txn::Delete { path: "/b".into() },
                Txn::Check { path: "/c".into() },
            ]),
            Txn::SetData {
                path: "/a".into(),
                data: vec![],
                version: 4,
            },
            Txn::CreateSession { timeout_ms: 4000 },
            Txn::CloseSession,
            Txn::Error(ErrorCode::NodeExists),
        ];
        txns.into_iter()
            .enumerate()
            .map(|(i, txn)| LoggedTxn {
                zxid: Zxid(i as u64 + 1),
                session: SessionId(7),
                time_ms: 11,
                txn,
            })
            .collect()
    }

    #[test]
    fn records_round_trip() {
        let mut tree = DataTree::new();
        for t in sample_txns()
            .into_iter()
            .filter(|t| matches!(t.txn, Txn::CreateSession { .. }))
        {
            tree.apply(&t);
        }
        let actions = vec![
            PersistAction::AcceptedEpoch(Epoch(3)),
            PersistAction::CurrentEpoch(Epoch(2)),
            PersistAction::Txns(sample_txns()),
            PersistAction::Truncate(Zxid(5)),
            PersistAction::Snapshot {
                tree: Box::new(tree),
                discard_log: true,
            },
        ];
        let mut log = Vec::new();
        for a in &actions {
            log.extend(encode_record(a));
        }
        let (decoded, len) = decode_log(&log);
        assert_eq!(decoded, actions);
        assert_eq!(len, log.len());
    }

    #[test]
    fn torn_tail_is_dropped_and_never_panics() {
        let first = encode_record(&PersistAction::AcceptedEpoch(Epoch(1)));
        let second = encode_record(&PersistAction::Txns(sample_txns()));
        let mut log = first.clone();
        log.extend(&second);
        for cut in 0..log.len() {
            let (records, len) = decode_log(&log[..cut]);
            assert_eq!(records.len(), usize::from(cut >= first.len()));
            assert!(len <= cut);
        }
        // Flip every byte of the second record in turn: CRC catches it.
        for i in first.len()..log.len() {
            let mut bad = log.clone();
            bad[i] ^= 0x5a;
            let (records, _) = decode_log(&bad);
            assert_eq!(records.len(), 1);
        }
    }

    #[test]
    fn messages_round_trip() {
        let link = LinkId {
            learner_incarnation: 4,
            attempt: 2,
        };
        let bodies = vec![
            ZabBody::LearnerInfo {
                accepted_epoch: Epoch(1),
                last_zxid: Zxid(2),
                observer: true,
            },
            ZabBody::Proposal {
                txn: sample_txns().remove(1),
                origin: Some((NodeId(2), RequestId(3))),
            },
            ZabBody::PingReply {
                touched: vec![SessionId(1), SessionId(2)],
            },
            ZabBody::Request {
                id: RequestId(1),
                session: SessionId(2),
                op: WriteOp::Multi(vec![WriteOp::Check {
                    path: "/a".into(),
                    version: -1,
                }]),
            },
            ZabBody::Snap {
                tree: Box::new(DataTree::new()),
            },
            ZabBody::UpToDate { committed: Zxid(7) },
        ];
        for body in bodies {
            let msg = Message::Zab {
                link,
                leader_stamp: 9,
                seq: 5,
                body,
            };
            let bytes = encode_message(&msg);
            assert_eq!(decode_message(&bytes), Ok((msg, bytes.len())));
        }
        let n = Notification {
            vote: Vote {
                leader: NodeId(1),
                zxid: Zxid(2),
                peer_epoch: Epoch(3),
            },
            election_epoch: 4,
            state: PeerState::Following,
        };
        let bytes = encode_message(&Message::Notification(n));
        assert_eq!(decode_message(&bytes).map(|(m, _)| m), Ok(Message::Notification(n)));
    }

    #[test]
    fn hostile_payloads_are_refused() {
        // Valid frame, payload claims 2^32-1 transactions.
        let bytes = frame(kind::TXNS, &u32::MAX.to_le_bytes());
        assert!(matches!(decode_record(&bytes), Err(DecodeError::Truncated(_))));
        // Deeply nested multi.
        let mut payload = W::default();
        payload.u32(1);
        payload.u64(1);
        payload.u64(1);
        payload.u64(1);
        for _ in 0..10 {
            payload.u8(4);
            payload.u32(1);
        }
        payload.u8(6);
        assert!(decode_record(&frame(kind::TXNS, &payload.0)).is_err());
        assert!(matches!(
            decode_record(&frame(99, &[])),
            Err(DecodeError::UnknownTag { .. })
        ));
    }
}
