//! The tools' protocol on `coordinator.client.port`: one request, one
//! response, each a frame `u32 length (big-endian) | body`.
//!
//! Request body: `u8 kind | u64 last_zxid_seen | fields`. Response body:
//! `i32 code (ZooKeeper's, 0 = ok) | u64 zxid | u8 kind | fields`. The
//! codec never touches a socket: [`frame_len`] says whether a whole frame
//! is buffered, then `decode_*` parses it; bad bytes are an error, never a
//! panic.

use ringtail_coordinator::ids::{SessionId, Zxid};
use ringtail_coordinator::tree::Stat;
use ringtail_coordinator::txn::{CreateMode, ErrorCode};

/// Largest frame either side accepts (ZooKeeper's `jute.maxbuffer`).
pub const FRAME_BYTES_MAX: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    GetChildren(String),
    GetData(String),
    Exists(String),
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: i32,
    },
    /// zkCli's `set` (-1: any version).
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// Catch up with the leader before answering (ZooKeeper's `sync`).
    Sync(String),
    /// This peer's role and commit point (ZooKeeper's `srvr` command).
    Srvr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    Children(Vec<String>),
    Data {
        data: Vec<u8>,
        stat: Stat,
    },
    Stat(Stat),
    Created(String),
    Srvr {
        id: u64,
        mode: String,
        zxid: Zxid,
        nodes: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `ErrorCode::Ok` or the ZooKeeper error.
    pub code: ErrorCode,
    /// The answering peer's commit point.
    pub zxid: Zxid,
    pub body: Body,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame of {0} bytes exceeds {FRAME_BYTES_MAX}")]
    TooLarge(usize),
    #[error("frame ends inside {0}")]
    Truncated(&'static str),
    #[error("unknown {what} kind {kind}")]
    UnknownKind { what: &'static str, kind: u8 },
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// `Ok(Some(n))` when the buffer starts with a whole frame of `n` bytes
/// (prefix included), `Ok(None)` when more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(ProtocolError::TooLarge(len));
    }
    Ok((buf.len() >= 4 + len).then_some(4 + len))
}

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(&(v.len() as u32).to_be_bytes());
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    fn stat(&mut self, s: &Stat) {
        self.u64(s.czxid.0);
        self.u64(s.mzxid.0);
        self.u64(s.pzxid.0);
        self.u64(s.ctime_ms);
        self.u64(s.mtime_ms);
        self.i32(s.version);
        self.i32(s.cversion);
        self.i32(s.aversion);
        self.u64(s.ephemeral_owner.map_or(0, |o| o.0));
        self.i32(s.data_length as i32);
        self.i32(s.num_children as i32);
    }
    fn framed(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.0.len());
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.0);
        out
    }
}

struct R<'a>(&'a [u8]);

impl R<'_> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], ProtocolError> {
        if self.0.len() < n {
            return Err(ProtocolError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take(1, what)?[0])
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, ProtocolError> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, ProtocolError> {
        let len = self.i32(what)? as u32 as usize;
        Ok(self.take(len, what)?.to_vec())
    }
    fn str(&mut self, what: &'static str) -> Result<String, ProtocolError> {
        String::from_utf8(self.bytes(what)?).map_err(|_| ProtocolError::NotUtf8(what))
    }
    fn stat(&mut self) -> Result<Stat, ProtocolError> {
        let w = "stat";
        Ok(Stat {
            czxid: Zxid(self.u64(w)?),
            mzxid: Zxid(self.u64(w)?),
            pzxid: Zxid(self.u64(w)?),
            ctime_ms: self.u64(w)?,
            mtime_ms: self.u64(w)?,
            version: self.i32(w)?,
            cversion: self.i32(w)?,
            aversion: self.i32(w)?,
            ephemeral_owner: Some(self.u64(w)?).filter(|o| *o != 0).map(SessionId),
            data_length: self.i32(w)? as u32,
            num_children: self.i32(w)? as u32,
        })
    }
    fn end(&self) -> Result<(), ProtocolError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(ProtocolError::Trailing(n)),
        }
    }
}

fn mode_byte(mode: CreateMode) -> u8 {
    match mode {
        CreateMode::Persistent => 0,
        CreateMode::Ephemeral => 1,
        CreateMode::PersistentSequential => 2,
        CreateMode::EphemeralSequential => 3,
    }
}

/// Encodes a request frame.
pub fn encode_request(request: &Request, last_zxid_seen: Zxid) -> Vec<u8> {
    let mut w = W::default();
    let kind = match request {
        Request::GetChildren(_) => 1,
        Request::GetData(_) => 2,
        Request::Exists(_) => 3,
        Request::Create { .. } => 4,
        Request::Delete { .. } => 5,
        Request::Sync(_) => 6,
        Request::Srvr => 7,
        Request::SetData { .. } => 8,
    };
    w.u8(kind);
    w.u64(last_zxid_seen.0);
    match request {
        Request::GetChildren(p) | Request::GetData(p) | Request::Exists(p) | Request::Sync(p) => {
            w.str(p)
        }
        Request::Create { path, data, mode } => {
            w.str(path);
            w.bytes(data);
            w.u8(mode_byte(*mode));
        }
        Request::Delete { path, version } => {
            w.str(path);
            w.i32(*version);
        }
        Request::SetData {
            path,
            data,
            version,
        } => {
            w.str(path);
            w.bytes(data);
            w.i32(*version);
        }
        Request::Srvr => {}
    }
    w.framed()
}

/// Decodes a request body (the frame without its length prefix).
pub fn decode_request(body: &[u8]) -> Result<(Request, Zxid), ProtocolError> {
    let mut r = R(body);
    let kind = r.u8("request kind")?;
    let seen = Zxid(r.u64("last_zxid_seen")?);
    let request = match kind {
        1 => Request::GetChildren(r.str("path")?),
        2 => Request::GetData(r.str("path")?),
        3 => Request::Exists(r.str("path")?),
        4 => {
            let path = r.str("path")?;
            let data = r.bytes("data")?;
            let mode = match r.u8("create mode")? {
                0 => CreateMode::Persistent,
                1 => CreateMode::Ephemeral,
                2 => CreateMode::PersistentSequential,
                3 => CreateMode::EphemeralSequential,
                kind => {
                    return Err(ProtocolError::UnknownKind {
                        what: "create mode",
                        kind,
                    })
                }
            };
            Request::Create { path, data, mode }
        }
        5 => Request::Delete {
            path: r.str("path")?,
            version: r.i32("version")?,
        },
        6 => Request::Sync(r.str("path")?),
        7 => Request::Srvr,
        8 => Request::SetData {
            path: r.str("path")?,
            data: r.bytes("data")?,
            version: r.i32("version")?,
        },
        kind => {
            return Err(ProtocolError::UnknownKind {
                what: "request",
                kind,
            })
        }
    };
    r.end()?;
    Ok((request, seen))
}

/// Encodes a response frame.
pub fn encode_response(response: &Response) -> Vec<u8> {
    let mut w = W::default();
    w.i32(response.code.code());
    w.u64(response.zxid.0);
    match &response.body {
        Body::Empty => w.u8(0),
        Body::Children(names) => {
            w.u8(1);
            w.i32(names.len() as i32);
            for n in names {
                w.str(n);
            }
        }
        Body::Data { data, stat } => {
            w.u8(2);
            w.bytes(data);
            w.stat(stat);
        }
        Body::Stat(stat) => {
            w.u8(3);
            w.stat(stat);
        }
        Body::Created(path) => {
            w.u8(4);
            w.str(path);
        }
        Body::Srvr {
            id,
            mode,
            zxid,
            nodes,
        } => {
            w.u8(5);
            w.u64(*id);
            w.str(mode);
            w.u64(zxid.0);
            w.u64(*nodes);
        }
    }
    w.framed()
}

/// Decodes a response body (the frame without its length prefix).
pub fn decode_response(body: &[u8]) -> Result<Response, ProtocolError> {
    let mut r = R(body);
    let raw = r.i32("error code")?;
    let code = ErrorCode::from_code(raw).unwrap_or(ErrorCode::RuntimeInconsistency);
    let zxid = Zxid(r.u64("zxid")?);
    let body = match r.u8("response kind")? {
        0 => Body::Empty,
        1 => {
            let n = r.i32("child count")? as u32 as usize;
            let mut names = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                names.push(r.str("child")?);
            }
            Body::Children(names)
        }
        2 => Body::Data {
            data: r.bytes("data")?,
            stat: r.stat()?,
        },
        3 => Body::Stat(r.stat()?),
        4 => Body::Created(r.str("created path")?),
        5 => Body::Srvr {
            id: r.u64("id")?,
            mode: r.str("mode")?,
            zxid: Zxid(r.u64("zxid")?),
            nodes: r.u64("node count")?,
        },
        kind => {
            return Err(ProtocolError::UnknownKind {
                what: "response",
                kind,
            })
        }
    };
    r.end()?;
    Ok(Response { code, zxid, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip() {
        let requests = [
            Request::GetChildren("/brokers/ids".into()),
            Request::GetData("/cluster/id".into()),
            Request::Exists("/a".into()),
            Request::Create {
                path: "/load/n-".into(),
                data: b"x".to_vec(),
                mode: CreateMode::PersistentSequential,
            },
            Request::Delete {
                path: "/a".into(),
                version: -1,
            },
            Request::Sync("/".into()),
            Request::Srvr,
            Request::SetData {
                path: "/a".into(),
                data: b"x".to_vec(),
                version: 3,
            },
        ];
        for request in requests {
            let frame = encode_request(&request, Zxid(7));
            assert_eq!(frame_len(&frame), Ok(Some(frame.len())));
            assert_eq!(frame_len(&frame[..frame.len() - 1]), Ok(None));
            assert_eq!(decode_request(&frame[4..]), Ok((request, Zxid(7))));
        }
        let stat = Stat {
            czxid: Zxid(1),
            ephemeral_owner: Some(SessionId(9)),
            num_children: 2,
            ..Stat::default()
        };
        let bodies = [
            Body::Empty,
            Body::Children(vec!["0".into(), "1".into()]),
            Body::Data {
                data: b"{}".to_vec(),
                stat: stat.clone(),
            },
            Body::Stat(stat),
            Body::Created("/load/n-0000000001".into()),
            Body::Srvr {
                id: 2,
                mode: "leader".into(),
                zxid: Zxid(5),
                nodes: 3,
            },
        ];
        for body in bodies {
            let response = Response {
                code: ErrorCode::NoNode,
                zxid: Zxid(3),
                body,
            };
            let frame = encode_response(&response);
            assert_eq!(decode_response(&frame[4..]), Ok(response));
        }
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert_eq!(
            frame_len(&u32::MAX.to_be_bytes()),
            Err(ProtocolError::TooLarge(u32::MAX as usize))
        );
        assert!(decode_request(&[99, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_request(&[1, 0]).is_err());
        let frame = encode_request(&Request::Srvr, Zxid::ZERO);
        let mut long = frame[4..].to_vec();
        long.push(0);
        assert_eq!(decode_request(&long), Err(ProtocolError::Trailing(1)));
        assert!(decode_response(&[0, 0]).is_err());
    }
}
