//! The replicated state machine: ZooKeeper's `DataTree` (znodes, stats,
//! sessions and their ephemeral nodes) plus the per-peer watch table.
//!
//! The tree keeps an incremental digest (as ZooKeeper 3.6's
//! `DigestCalculator` does): a wrapping sum of one hash per znode and per
//! session, updated on every change. Two peers that applied the same zxid
//! must have the same digest; the simulator checks it after every step
//! without walking the tree.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{SessionId, Zxid};
use crate::txn::{parent_of, ErrorCode, LoggedTxn, OpResult, Txn};

/// ZooKeeper's `Stat`. `data_length` and `num_children` are derived when
/// read, so they cannot drift from the node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: Zxid,
    pub mzxid: Zxid,
    pub pzxid: Zxid,
    pub ctime_ms: u64,
    pub mtime_ms: u64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: Option<SessionId>,
    pub data_length: u32,
    pub num_children: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Znode {
    pub data: Vec<u8>,
    /// Stored stat; `data_length`/`num_children` are filled by [`DataTree::stat`].
    pub stat: Stat,
    /// Child names (not paths), sorted like ZooKeeper's `getChildren` output
    /// after a client sorts it.
    pub children: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    pub timeout_ms: u32,
}

/// Which watch a change fires (ZooKeeper's `Watcher.Event.EventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WatchEventType {
    NodeCreated,
    NodeDeleted,
    NodeDataChanged,
    NodeChildrenChanged,
}

/// A change that may fire watches: the path and what happened to it.
pub type Trigger = (String, WatchEventType);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTree {
    nodes: BTreeMap<String, Znode>,
    sessions: BTreeMap<SessionId, Session>,
    ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    last_zxid: Zxid,
    digest: u64,
    /// Transactions whose preconditions did not hold when applied. The
    /// leader's prep makes them impossible; the simulator asserts zero.
    inconsistencies: u64,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    pub fn new() -> DataTree {
        let mut tree = DataTree {
            nodes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            last_zxid: Zxid::ZERO,
            digest: 0,
            inconsistencies: 0,
        };
        let root = Znode {
            data: Vec::new(),
            stat: Stat::default(),
            children: BTreeSet::new(),
        };
        tree.insert_node("/".to_string(), root);
        tree
    }

    /// Rebuilds a tree from its parts (a decoded snapshot); recomputes the
    /// derived indexes and digest rather than trusting stored ones.
    pub fn from_parts(
        nodes: Vec<(String, Vec<u8>, Stat)>,
        sessions: Vec<(SessionId, Session)>,
        last_zxid: Zxid,
    ) -> Option<DataTree> {
        let mut tree = DataTree::new();
        tree.remove_node("/");
        for (path, data, stat) in nodes {
            tree.insert_node(
                path,
                Znode {
                    data,
                    stat,
                    children: BTreeSet::new(),
                },
            );
        }
        tree.nodes.get("/")?;
        let paths: Vec<String> = tree.nodes.keys().filter(|p| p.as_str() != "/").cloned().collect();
        for path in paths {
            let parent = parent_of(&path)?.to_string();
            let name = path[path.rfind('/')? + 1..].to_string();
            let owner = tree.nodes.get(&path)?.stat.ephemeral_owner;
            tree.nodes.get_mut(&parent)?.children.insert(name);
            if let Some(owner) = owner {
                tree.ephemerals.entry(owner).or_default().insert(path);
            }
        }
        for (id, session) in sessions {
            tree.insert_session(id, session);
        }
        tree.last_zxid = last_zxid;
        Some(tree)
    }

    pub fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    /// The node's stat with the derived fields filled in.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        let node = self.nodes.get(path)?;
        let mut stat = node.stat.clone();
        stat.data_length = node.data.len() as u32;
        stat.num_children = node.children.len() as u32;
        Some(stat)
    }

    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        Some(self.nodes.get(path)?.children.iter().cloned().collect())
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Znode)> {
        self.nodes.iter()
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn sessions(&self) -> impl Iterator<Item = (&SessionId, &Session)> {
        self.sessions.iter()
    }

    pub fn ephemerals_of(&self, id: SessionId) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&id).into_iter().flatten()
    }

    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn inconsistencies(&self) -> u64 {
        self.inconsistencies
    }

    /// Applies one committed transaction. Zxids must be applied in
    /// increasing order; that is the core's contract, so it is asserted.
    pub fn apply(&mut self, logged: &LoggedTxn) -> (OpResult, Vec<Trigger>) {
        assert!(
            logged.zxid > self.last_zxid,
            "apply {} after {}",
            logged.zxid,
            self.last_zxid
        );
        let mut triggers = Vec::new();
        let result = self.apply_txn(logged, &logged.txn, &mut triggers);
        self.last_zxid = logged.zxid;
        (result, triggers)
    }

    /// Applies one sub-operation of a multi being prepped; the scratch tree
    /// sees every sub-operation under the same zxid.
    pub(crate) fn apply_in_prep(&mut self, logged: &LoggedTxn) {
        let mut triggers = Vec::new();
        self.apply_txn(logged, &logged.txn, &mut triggers);
    }

    fn apply_txn(&mut self, logged: &LoggedTxn, txn: &Txn, triggers: &mut Vec<Trigger>) -> OpResult {
        match txn {
            Txn::Create {
                path,
                data,
                ephemeral_owner,
                parent_cversion,
            } => self.apply_create(logged, path, data, *ephemeral_owner, *parent_cversion, triggers),
            Txn::Delete { path } => self.apply_delete(logged.zxid, path, triggers),
            Txn::SetData { path, data, version } => self.apply_set_data(logged, path, data, *version, triggers),
            Txn::Check { path } => {
                if self.nodes.contains_key(path) {
                    OpResult::Checked
                } else {
                    self.inconsistent(ErrorCode::NoNode)
                }
            }
            Txn::Multi(txns) => {
                let results = txns.iter().map(|t| self.apply_txn(logged, t, triggers)).collect();
                OpResult::Multi(results)
            }
            Txn::CreateSession { timeout_ms } => {
                let session = SessionId(logged.zxid.0);
                if self.sessions.contains_key(&session) {
                    return self.inconsistent(ErrorCode::RuntimeInconsistency);
                }
                self.insert_session(
                    session,
                    Session {
                        timeout_ms: *timeout_ms,
                    },
                );
                OpResult::SessionCreated {
                    session,
                    timeout_ms: *timeout_ms,
                }
            }
            Txn::CloseSession => self.apply_close_session(logged, triggers),
            Txn::Error(code) => OpResult::Error(*code),
        }
    }

    fn apply_create(
        &mut self,
        logged: &LoggedTxn,
        path: &str,
        data: &[u8],
        owner: Option<SessionId>,
        parent_cversion: i32,
        triggers: &mut Vec<Trigger>,
    ) -> OpResult {
        let Some(parent_path) = parent_of(path) else {
            return self.inconsistent(ErrorCode::BadArguments);
        };
        if self.nodes.contains_key(path) || !self.nodes.contains_key(parent_path) {
            return self.inconsistent(ErrorCode::NodeExists);
        }
        if let Some(owner) = owner {
            if !self.sessions.contains_key(&owner) {
                return self.inconsistent(ErrorCode::SessionExpired);
            }
            self.ephemerals.entry(owner).or_default().insert(path.to_string());
        }
        let name = path[path.rfind('/').unwrap_or(0) + 1..].to_string();
        self.update_node(parent_path, |parent| {
            parent.children.insert(name);
            parent.stat.cversion = parent_cversion;
            parent.stat.pzxid = logged.zxid;
        });
        let stat = Stat {
            czxid: logged.zxid,
            mzxid: logged.zxid,
            pzxid: logged.zxid,
            ctime_ms: logged.time_ms,
            mtime_ms: logged.time_ms,
            ephemeral_owner: owner,
            ..Stat::default()
        };
        self.insert_node(
            path.to_string(),
            Znode {
                data: data.to_vec(),
                stat,
                children: BTreeSet::new(),
            },
        );
        triggers.push((path.to_string(), WatchEventType::NodeCreated));
        triggers.push((parent_path.to_string(), WatchEventType::NodeChildrenChanged));
        OpResult::Created { path: path.to_string() }
    }

    fn apply_delete(&mut self, zxid: Zxid, path: &str, triggers: &mut Vec<Trigger>) -> OpResult {
        let Some(parent_path) = parent_of(path) else {
            return self.inconsistent(ErrorCode::BadArguments);
        };
        match self.nodes.get(path) {
            None => return self.inconsistent(ErrorCode::NoNode),
            Some(node) if !node.children.is_empty() => return self.inconsistent(ErrorCode::NotEmpty),
            Some(_) => {}
        }
        let Some(node) = self.remove_node(path) else {
            return self.inconsistent(ErrorCode::NoNode);
        };
        if let Some(owner) = node.stat.ephemeral_owner {
            if let Some(set) = self.ephemerals.get_mut(&owner) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
        let name = &path[path.rfind('/').unwrap_or(0) + 1..];
        self.update_node(parent_path, |parent| {
            parent.children.remove(name);
            // cversion counts changes to the children, deletes included.
            parent.stat.cversion = parent.stat.cversion.wrapping_add(1);
            parent.stat.pzxid = parent.stat.pzxid.max(zxid);
        });
        triggers.push((path.to_string(), WatchEventType::NodeDeleted));
        triggers.push((parent_path.to_string(), WatchEventType::NodeChildrenChanged));
        OpResult::Deleted
    }

    fn apply_set_data(
        &mut self,
        logged: &LoggedTxn,
        path: &str,
        data: &[u8],
        version: i32,
        triggers: &mut Vec<Trigger>,
    ) -> OpResult {
        if !self.nodes.contains_key(path) {
            return self.inconsistent(ErrorCode::NoNode);
        }
        self.update_node(path, |node| {
            node.data = data.to_vec();
            node.stat.version = version;
            node.stat.mzxid = logged.zxid;
            node.stat.mtime_ms = logged.time_ms;
        });
        triggers.push((path.to_string(), WatchEventType::NodeDataChanged));
        OpResult::SetData { version }
    }

    fn apply_close_session(&mut self, logged: &LoggedTxn, triggers: &mut Vec<Trigger>) -> OpResult {
        let session = logged.session;
        let Some(info) = self.sessions.remove(&session) else {
            return self.inconsistent(ErrorCode::SessionExpired);
        };
        self.digest = self.digest.wrapping_sub(session_hash(session, &info));
        let paths: Vec<String> = self.ephemerals.remove(&session).into_iter().flatten().collect();
        // Ephemeral nodes never have children, so deleting them in any
        // order is valid; reverse order keeps it tidy for readers anyway.
        for path in paths.iter().rev() {
            self.ephemerals.entry(session).or_default().insert(path.clone());
            self.apply_delete(logged.zxid, path, triggers);
        }
        self.ephemerals.remove(&session);
        OpResult::SessionClosed
    }

    fn inconsistent(&mut self, code: ErrorCode) -> OpResult {
        self.inconsistencies += 1;
        OpResult::Error(code)
    }

    fn insert_node(&mut self, path: String, node: Znode) {
        self.digest = self.digest.wrapping_add(node_hash(&path, &node));
        self.nodes.insert(path, node);
    }

    fn remove_node(&mut self, path: &str) -> Option<Znode> {
        let node = self.nodes.remove(path)?;
        self.digest = self.digest.wrapping_sub(node_hash(path, &node));
        Some(node)
    }

    fn update_node(&mut self, path: &str, change: impl FnOnce(&mut Znode)) {
        if let Some(node) = self.nodes.get_mut(path) {
            let before = node_hash(path, node);
            change(node);
            let after = node_hash(path, node);
            self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        }
    }

    fn insert_session(&mut self, id: SessionId, session: Session) {
        self.digest = self.digest.wrapping_add(session_hash(id, &session));
        self.sessions.insert(id, session);
    }

    /// Checks the derived indexes against the nodes; O(tree), for tests and
    /// the simulator.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut digest = 0u64;
        for (path, node) in &self.nodes {
            digest = digest.wrapping_add(node_hash(path, node));
            if let Some(parent) = parent_of(path) {
                let name = &path[path.rfind('/').unwrap_or(0) + 1..];
                let Some(p) = self.nodes.get(parent) else {
                    return Err(format!("{path} has no parent"));
                };
                if !p.children.contains(name) {
                    return Err(format!("{parent} does not list {name}"));
                }
                if p.stat.ephemeral_owner.is_some() {
                    return Err(format!("ephemeral {parent} has child {name}"));
                }
            }
            if let Some(owner) = node.stat.ephemeral_owner {
                if !self.sessions.contains_key(&owner) {
                    return Err(format!("ephemeral {path} outlives session {owner:?}"));
                }
                if !self.ephemerals.get(&owner).is_some_and(|s| s.contains(path)) {
                    return Err(format!("ephemeral {path} missing from index"));
                }
            }
        }
        for (id, session) in &self.sessions {
            digest = digest.wrapping_add(session_hash(*id, session));
        }
        for (owner, paths) in &self.ephemerals {
            for path in paths {
                if self.nodes.get(path).and_then(|n| n.stat.ephemeral_owner) != Some(*owner) {
                    return Err(format!("index lists {path} for {owner:?}"));
                }
            }
        }
        if digest != self.digest {
            return Err("digest drifted".to_string());
        }
        Ok(())
    }
}

/// FNV-1a over the fields, finished with a splitmix64 mix so that the
/// wrapping sum of many hashes does not cancel out structured inputs.
fn node_hash(path: &str, node: &Znode) -> u64 {
    let mut h = Fnv::new();
    h.bytes(path.as_bytes());
    h.bytes(&node.data);
    let s = &node.stat;
    for v in [
        s.czxid.0,
        s.mzxid.0,
        s.pzxid.0,
        s.ctime_ms,
        s.mtime_ms,
        s.ephemeral_owner.map_or(0, |o| o.0),
    ] {
        h.u64(v);
    }
    for v in [s.version, s.cversion, s.aversion] {
        h.u64(v as u32 as u64);
    }
    mix(h.0)
}

fn session_hash(id: SessionId, session: &Session) -> u64 {
    let mut h = Fnv::new();
    h.u64(0x5e55_1011);
    h.u64(id.0);
    h.u64(u64::from(session.timeout_ms));
    mix(h.0)
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One-shot watches set on this peer (ZooKeeper's `WatchManager`): they are
/// local state, never replicated, and fire on the peer where they were set.
#[derive(Clone, Debug, Default)]
pub struct Watches {
    data: BTreeMap<String, BTreeSet<SessionId>>,
    child: BTreeMap<String, BTreeSet<SessionId>>,
}

impl Watches {
    /// Set by getData and exists (an exists watch on a missing node waits
    /// for NodeCreated).
    pub fn watch_data(&mut self, path: &str, session: SessionId) {
        self.data.entry(path.to_string()).or_default().insert(session);
    }

    pub fn watch_children(&mut self, path: &str, session: SessionId) {
        self.child.entry(path.to_string()).or_default().insert(session);
    }

    /// Removes and returns the watches a change fires, as
    /// `(session, path, event)`.
    pub fn fire(&mut self, path: &str, event: WatchEventType) -> Vec<(SessionId, String, WatchEventType)> {
        let mut fired = BTreeSet::new();
        let data = matches!(
            event,
            WatchEventType::NodeCreated | WatchEventType::NodeDeleted | WatchEventType::NodeDataChanged
        );
        let child = matches!(event, WatchEventType::NodeDeleted | WatchEventType::NodeChildrenChanged);
        if data {
            fired.extend(self.data.remove(path).into_iter().flatten());
        }
        if child {
            fired.extend(self.child.remove(path).into_iter().flatten());
        }
        fired.into_iter().map(|s| (s, path.to_string(), event)).collect()
    }

    /// Drops a closed session's watches.
    pub fn remove_session(&mut self, session: SessionId) {
        for table in [&mut self.data, &mut self.child] {
            table.retain(|_, sessions| {
                sessions.remove(&session);
                !sessions.is_empty()
            });
        }
    }

    pub fn len(&self) -> usize {
        self.data.values().chain(self.child.values()).map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Epoch;
    use crate::txn::{prep, CreateMode, PrepLimits, WriteOp, VERSION_ANY};

    const LIMITS: PrepLimits = PrepLimits {
        data_bytes_max: 1024,
        session_timeout_ms_min: 4000,
        session_timeout_ms_max: 40000,
    };

    struct Harness {
        tree: DataTree,
        counter: u32,
    }

    impl Harness {
        fn new() -> Harness {
            Harness {
                tree: DataTree::new(),
                counter: 0,
            }
        }

        fn run(&mut self, session: SessionId, op: WriteOp) -> OpResult {
            self.counter += 1;
            let zxid = Zxid::new(Epoch(1), self.counter);
            let txn = prep(&self.tree, session, &op, zxid, &LIMITS);
            let logged = LoggedTxn {
                zxid,
                session,
                time_ms: u64::from(self.counter),
                txn,
            };
            let (result, _) = self.tree.apply(&logged);
            self.tree.check_consistency().expect("consistent tree");
            assert_eq!(self.tree.inconsistencies(), 0);
            result
        }

        fn session(&mut self, timeout_ms: u32) -> SessionId {
            match self.run(SessionId(0), WriteOp::CreateSession { timeout_ms }) {
                OpResult::SessionCreated { session, .. } => session,
                other => panic!("{other:?}"),
            }
        }
    }

    fn create(path: &str, mode: CreateMode) -> WriteOp {
        WriteOp::Create {
            path: path.to_string(),
            data: b"d".to_vec(),
            mode,
        }
    }

    #[test]
    fn create_set_delete_with_versions() {
        let mut h = Harness::new();
        let s = h.session(10_000);
        assert_eq!(
            h.run(s, create("/a", CreateMode::Persistent)),
            OpResult::Created { path: "/a".into() }
        );
        assert_eq!(
            h.run(s, create("/a", CreateMode::Persistent)),
            OpResult::Error(ErrorCode::NodeExists)
        );
        assert_eq!(
            h.run(s, create("/x/y", CreateMode::Persistent)),
            OpResult::Error(ErrorCode::NoNode)
        );
        let set = |v| WriteOp::SetData {
            path: "/a".into(),
            data: b"e".to_vec(),
            version: v,
        };
        assert_eq!(h.run(s, set(0)), OpResult::SetData { version: 1 });
        assert_eq!(h.run(s, set(0)), OpResult::Error(ErrorCode::BadVersion));
        assert_eq!(h.run(s, set(VERSION_ANY)), OpResult::SetData { version: 2 });
        h.run(s, create("/a/b", CreateMode::Persistent));
        let del = |p: &str, v| WriteOp::Delete {
            path: p.into(),
            version: v,
        };
        assert_eq!(h.run(s, del("/a", VERSION_ANY)), OpResult::Error(ErrorCode::NotEmpty));
        assert_eq!(h.run(s, del("/a/b", 3)), OpResult::Error(ErrorCode::BadVersion));
        assert_eq!(h.run(s, del("/a/b", 0)), OpResult::Deleted);
        let stat = h.tree.stat("/a").expect("exists");
        assert_eq!(stat.version, 2);
        assert_eq!(stat.cversion, 2);
        assert_eq!(stat.num_children, 0);
        assert_eq!(stat.data_length, 1);
        assert_eq!(stat.czxid, Zxid::new(Epoch(1), 2));
        assert_eq!(stat.pzxid, Zxid::new(Epoch(1), 11));
    }

    #[test]
    fn sequential_names_follow_parent_cversion() {
        let mut h = Harness::new();
        let s = h.session(10_000);
        h.run(s, create("/q", CreateMode::Persistent));
        let a = h.run(s, create("/q/n-", CreateMode::PersistentSequential));
        h.run(s, create("/q/x", CreateMode::Persistent));
        let b = h.run(s, create("/q/n-", CreateMode::EphemeralSequential));
        assert_eq!(
            a,
            OpResult::Created {
                path: "/q/n-0000000000".into()
            }
        );
        assert_eq!(
            b,
            OpResult::Created {
                path: "/q/n-0000000002".into()
            }
        );
    }

    #[test]
    fn ephemerals_vanish_with_their_session() {
        let mut h = Harness::new();
        let s = h.session(1);
        assert_eq!(
            h.tree.session(s),
            Some(&Session { timeout_ms: 4000 }),
            "timeout is clamped"
        );
        let other = h.session(10_000);
        h.run(s, create("/e", CreateMode::Ephemeral));
        h.run(other, create("/p", CreateMode::Persistent));
        assert_eq!(
            h.run(s, create("/e/c", CreateMode::Persistent)),
            OpResult::Error(ErrorCode::NoChildrenForEphemerals)
        );
        h.run(s, create("/p/e", CreateMode::Ephemeral));
        assert_eq!(h.tree.ephemerals_of(s).count(), 2);
        assert_eq!(h.run(s, WriteOp::CloseSession), OpResult::SessionClosed);
        assert!(h.tree.node("/e").is_none());
        assert!(h.tree.node("/p/e").is_none());
        assert!(h.tree.node("/p").is_some());
        assert_eq!(
            h.run(s, create("/z", CreateMode::Persistent)),
            OpResult::Error(ErrorCode::SessionExpired)
        );
    }

    #[test]
    fn multi_is_all_or_nothing() {
        let mut h = Harness::new();
        let s = h.session(10_000);
        let ok = h.run(
            s,
            WriteOp::Multi(vec![
                create("/m", CreateMode::Persistent),
                create("/m/c", CreateMode::Persistent),
            ]),
        );
        assert_eq!(
            ok,
            OpResult::Multi(vec![
                OpResult::Created { path: "/m".into() },
                OpResult::Created { path: "/m/c".into() }
            ])
        );
        let digest = h.tree.digest();
        let failed = h.run(
            s,
            WriteOp::Multi(vec![
                create("/n", CreateMode::Persistent),
                WriteOp::Check {
                    path: "/m".into(),
                    version: 5,
                },
                create("/o", CreateMode::Persistent),
            ]),
        );
        assert_eq!(
            failed,
            OpResult::Multi(vec![
                OpResult::Error(ErrorCode::Ok),
                OpResult::Error(ErrorCode::BadVersion),
                OpResult::Error(ErrorCode::RuntimeInconsistency),
            ])
        );
        assert!(h.tree.node("/n").is_none());
        assert_eq!(h.tree.digest(), digest, "a failed multi changes nothing");
    }

    #[test]
    fn watches_are_one_shot() {
        let mut w = Watches::default();
        let s = SessionId(9);
        w.watch_data("/a", s);
        w.watch_children("/", s);
        assert_eq!(w.fire("/a", WatchEventType::NodeCreated).len(), 1);
        assert!(w.fire("/a", WatchEventType::NodeDataChanged).is_empty());
        assert!(w.fire("/", WatchEventType::NodeDataChanged).is_empty());
        assert_eq!(w.fire("/", WatchEventType::NodeChildrenChanged).len(), 1);
        assert!(w.is_empty());
    }

    #[test]
    fn rebuilt_tree_matches() {
        let mut h = Harness::new();
        let s = h.session(10_000);
        h.run(s, create("/a", CreateMode::Persistent));
        h.run(s, create("/a/e", CreateMode::Ephemeral));
        let nodes = h
            .tree
            .nodes()
            .map(|(p, n)| (p.clone(), n.data.clone(), n.stat.clone()))
            .collect();
        let sessions = h.tree.sessions().map(|(id, s)| (*id, *s)).collect();
        let rebuilt = DataTree::from_parts(nodes, sessions, h.tree.last_zxid()).expect("valid parts");
        assert_eq!(rebuilt, h.tree);
        rebuilt.check_consistency().expect("consistent");
    }
}
