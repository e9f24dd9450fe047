//! Client operations, the idempotent transactions the leader turns them
//! into, and their results.
//!
//! As in ZooKeeper's `PrepRequestProcessor`, only the leader checks a
//! write against the tree (with every earlier proposal already applied to
//! its speculative copy): it resolves sequential names, versions and the
//! parent's `cversion` into the transaction, so followers only apply and
//! never decide. A request that fails becomes an error transaction, which
//! keeps the replies of one session in zxid order.

use crate::ids::{SessionId, Zxid};
use crate::tree::DataTree;

/// ZooKeeper's `KeeperException.Code` values, kept numerically identical
/// so a zkCli-style client can show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum ErrorCode {
    #[error("Ok")]
    Ok,
    #[error("RuntimeInconsistency")]
    RuntimeInconsistency,
    #[error("ConnectionLoss")]
    ConnectionLoss,
    #[error("BadArguments")]
    BadArguments,
    #[error("NoNode")]
    NoNode,
    #[error("BadVersion")]
    BadVersion,
    #[error("NoChildrenForEphemerals")]
    NoChildrenForEphemerals,
    #[error("NodeExists")]
    NodeExists,
    #[error("NotEmpty")]
    NotEmpty,
    #[error("SessionExpired")]
    SessionExpired,
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        match self {
            ErrorCode::Ok => 0,
            ErrorCode::RuntimeInconsistency => -2,
            ErrorCode::ConnectionLoss => -4,
            ErrorCode::BadArguments => -8,
            ErrorCode::NoNode => -101,
            ErrorCode::BadVersion => -103,
            ErrorCode::NoChildrenForEphemerals => -108,
            ErrorCode::NodeExists => -110,
            ErrorCode::NotEmpty => -111,
            ErrorCode::SessionExpired => -112,
        }
    }

    pub fn from_code(code: i32) -> Option<ErrorCode> {
        const ALL: [ErrorCode; 10] = [
            ErrorCode::Ok,
            ErrorCode::RuntimeInconsistency,
            ErrorCode::ConnectionLoss,
            ErrorCode::BadArguments,
            ErrorCode::NoNode,
            ErrorCode::BadVersion,
            ErrorCode::NoChildrenForEphemerals,
            ErrorCode::NodeExists,
            ErrorCode::NotEmpty,
            ErrorCode::SessionExpired,
        ];
        ALL.into_iter().find(|e| e.code() == code)
    }
}

/// How a znode is created (ZooKeeper's `CreateMode`, without containers
/// and TTL nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    PersistentSequential,
    Ephemeral,
    EphemeralSequential,
}

impl CreateMode {
    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    pub fn is_sequential(self) -> bool {
        matches!(self, CreateMode::PersistentSequential | CreateMode::EphemeralSequential)
    }
}

/// `-1` in ZooKeeper: match any version.
pub const VERSION_ANY: i32 = -1;

/// A write a client asks for; the leader preps it into a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<WriteOp>),
    CreateSession {
        timeout_ms: u32,
    },
    CloseSession,
}

/// A transaction as logged and replicated. Applying it needs no checks
/// beyond ones that hold by construction (the leader already made them),
/// so every peer that applies the same zxid reaches the same tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Txn {
    Create {
        path: String,
        data: Vec<u8>,
        ephemeral_owner: Option<SessionId>,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Check {
        path: String,
    },
    /// All sub-transactions succeed, or this is a `Multi` of `Error`s.
    Multi(Vec<Txn>),
    CreateSession {
        timeout_ms: u32,
    },
    /// Deletes every ephemeral node the session owns.
    CloseSession,
    /// A request that failed in prep; applying it changes nothing.
    Error(ErrorCode),
}

/// A transaction with the header every peer needs to apply it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedTxn {
    pub zxid: Zxid,
    pub session: SessionId,
    /// The leader's clock when it prepped the request (ms); becomes
    /// ctime/mtime so peers agree on the stat.
    pub time_ms: u64,
    pub txn: Txn,
}

/// The outcome of one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    Created { path: String },
    Deleted,
    SetData { version: i32 },
    Checked,
    Multi(Vec<OpResult>),
    SessionCreated { session: SessionId, timeout_ms: u32 },
    SessionClosed,
    Error(ErrorCode),
}

/// Bounds the leader enforces in prep.
#[derive(Clone, Copy, Debug)]
pub struct PrepLimits {
    pub data_bytes_max: usize,
    pub session_timeout_ms_min: u32,
    pub session_timeout_ms_max: u32,
}

/// Turns a client write into a transaction against `tree`, the leader's
/// speculative tree (committed state plus every outstanding proposal).
///
/// `zxid` is the zxid the transaction will get: a `CreateSession` names
/// its session after it.
pub fn prep(tree: &DataTree, session: SessionId, op: &WriteOp, zxid: Zxid, limits: &PrepLimits) -> Txn {
    match op {
        WriteOp::CreateSession { timeout_ms } => {
            let timeout_ms = (*timeout_ms).clamp(limits.session_timeout_ms_min, limits.session_timeout_ms_max);
            return Txn::CreateSession { timeout_ms };
        }
        WriteOp::CloseSession => {
            return if tree.session(session).is_some() {
                Txn::CloseSession
            } else {
                Txn::Error(ErrorCode::SessionExpired)
            };
        }
        _ => {}
    }
    if tree.session(session).is_none() {
        return Txn::Error(ErrorCode::SessionExpired);
    }
    match op {
        WriteOp::Multi(ops) => prep_multi(tree, session, ops, zxid, limits),
        _ => match prep_single(tree, session, op, limits) {
            Ok(txn) => txn,
            Err(code) => Txn::Error(code),
        },
    }
}

/// A multi is checked against a scratch copy so that later ops see the
/// effects of earlier ones (create a parent, then its child), exactly as
/// ZooKeeper's prep does with its outstanding-changes list.
fn prep_multi(tree: &DataTree, session: SessionId, ops: &[WriteOp], zxid: Zxid, limits: &PrepLimits) -> Txn {
    let mut scratch = tree.clone();
    let mut txns = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        let result = match op {
            WriteOp::Multi(_) | WriteOp::CreateSession { .. } | WriteOp::CloseSession => Err(ErrorCode::BadArguments),
            _ => prep_single(&scratch, session, op, limits),
        };
        match result {
            Ok(txn) => {
                let logged = LoggedTxn {
                    zxid,
                    session,
                    time_ms: 0,
                    txn: txn.clone(),
                };
                scratch.apply_in_prep(&logged);
                txns.push(txn);
            }
            Err(code) => {
                // ZooKeeper's shape: ops before the failure report Ok, the
                // failing op its code, the rest RuntimeInconsistency.
                let errors = (0..ops.len())
                    .map(|i| {
                        Txn::Error(match i.cmp(&index) {
                            std::cmp::Ordering::Less => ErrorCode::Ok,
                            std::cmp::Ordering::Equal => code,
                            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                        })
                    })
                    .collect();
                return Txn::Multi(errors);
            }
        }
    }
    Txn::Multi(txns)
}

fn prep_single(tree: &DataTree, session: SessionId, op: &WriteOp, limits: &PrepLimits) -> Result<Txn, ErrorCode> {
    match op {
        WriteOp::Create { path, data, mode } => {
            validate_path(path)?;
            if data.len() > limits.data_bytes_max {
                return Err(ErrorCode::BadArguments);
            }
            let parent_path = parent_of(path).ok_or(ErrorCode::BadArguments)?;
            let parent = tree.node(parent_path).ok_or(ErrorCode::NoNode)?;
            if parent.stat.ephemeral_owner.is_some() {
                return Err(ErrorCode::NoChildrenForEphemerals);
            }
            let path = if mode.is_sequential() {
                // ZooKeeper names the child after the parent's cversion,
                // zero-padded to 10 digits so names sort numerically.
                format!("{path}{:010}", parent.stat.cversion)
            } else {
                path.clone()
            };
            if tree.node(&path).is_some() {
                return Err(ErrorCode::NodeExists);
            }
            let ephemeral_owner = mode.is_ephemeral().then_some(session);
            Ok(Txn::Create {
                path,
                data: data.clone(),
                ephemeral_owner,
                parent_cversion: parent.stat.cversion + 1,
            })
        }
        WriteOp::Delete { path, version } => {
            validate_path(path)?;
            if path == "/" {
                return Err(ErrorCode::BadArguments);
            }
            let node = tree.node(path).ok_or(ErrorCode::NoNode)?;
            if *version != VERSION_ANY && *version != node.stat.version {
                return Err(ErrorCode::BadVersion);
            }
            if !node.children.is_empty() {
                return Err(ErrorCode::NotEmpty);
            }
            Ok(Txn::Delete { path: path.clone() })
        }
        WriteOp::SetData { path, data, version } => {
            validate_path(path)?;
            if data.len() > limits.data_bytes_max {
                return Err(ErrorCode::BadArguments);
            }
            let node = tree.node(path).ok_or(ErrorCode::NoNode)?;
            if *version != VERSION_ANY && *version != node.stat.version {
                return Err(ErrorCode::BadVersion);
            }
            Ok(Txn::SetData {
                path: path.clone(),
                data: data.clone(),
                version: node.stat.version.wrapping_add(1),
            })
        }
        WriteOp::Check { path, version } => {
            validate_path(path)?;
            let node = tree.node(path).ok_or(ErrorCode::NoNode)?;
            if *version != VERSION_ANY && *version != node.stat.version {
                return Err(ErrorCode::BadVersion);
            }
            Ok(Txn::Check { path: path.clone() })
        }
        WriteOp::Multi(_) | WriteOp::CreateSession { .. } | WriteOp::CloseSession => Err(ErrorCode::BadArguments),
    }
}

/// ZooKeeper's `PathUtils.validatePath`, minus the unicode ranges.
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(ErrorCode::BadArguments);
    }
    for part in path[1..].split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(ErrorCode::BadArguments);
        }
    }
    Ok(())
}

/// The parent of a valid path; `None` for the root.
pub fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(validate_path("/a/b").is_ok());
        assert!(validate_path("/").is_ok());
        assert!(validate_path("a").is_err());
        assert!(validate_path("/a/").is_err());
        assert!(validate_path("/a//b").is_err());
        assert!(validate_path("/a/../b").is_err());
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/"), None);
    }

    #[test]
    fn codes_round_trip() {
        for code in [ErrorCode::NoNode, ErrorCode::NotEmpty, ErrorCode::Ok] {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
    }
}
