//! The topic table: names, topic ids, partition counts, per-topic configs.
//!
//! Readers on the data path take a snapshot (`ArcSwap`: an atomic pointer
//! load, no lock). Changes are rare admin operations: they serialise on a
//! mutex, persist the new table atomically, then publish a new snapshot.
//!
//! # Where the table lives
//!
//! The source of truth is the coordinator's tree, in Kafka's ZooKeeper
//! layout (`/brokers/topics/T`, `/brokers/topics/T/partitions/P/state`,
//! `/config/topics/T`), reached through a [`TopicStore`]: every change is
//! written there first (one atomic `multi`, conditional on the znodes'
//! versions) and published only once the ensemble committed it. A broker
//! starts from the topics the tree assigns to it.
//!
//! `<log.dir>/__cluster_metadata/topics` stays as a local cache, rewritten
//! after every change, for two reasons: a broker whose ensemble has no
//! quorum at start-up still opens its logs (it warns, and changes fail
//! until the quorum is back), and upgrading needs no manual step. The
//! first start with a tree migrates the cached topics that the tree does
//! not have into it, then marks the cache as a mirror
//! ([`MIRROR_MARK`]); later starts never copy from the cache to the tree,
//! so a topic deleted in the tree cannot come back from a stale cache.
//! Without a store ([`Metadata::open`], unit tests) the file is the table.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use thiserror::Error;

pub type TopicId = [u8; 16];

/// Partitions one topic may have: a typo like `--partitions 2147483647`
/// must not make the broker try to open that many logs.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: TopicId,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level overrides (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
}

impl Snapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &TopicId) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| &t.id == id)
    }
}

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("replication factor {requested} is larger than the {available} available brokers")]
    InvalidReplicationFactor { requested: i16, available: i16 },
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    #[error("metadata storage {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
}

/// Kafka's topic name rule: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetaError> {
    let fail = |reason| {
        Err(MetaError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name == "." || name == ".." {
        return fail("'.' and '..' are not allowed");
    }
    if name.len() > 249 {
        return fail("it is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return fail("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Topic configs the broker understands, with their value checks.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), MetaError> {
    let bad = |reason: &str| MetaError::InvalidConfig {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    };
    let int = || value.parse::<i64>().map_err(|_| bad("expected an integer"));
    match key {
        "retention.ms" | "retention.bytes" => {
            if int()? < -1 {
                return Err(bad("must be -1 or non-negative"));
            }
        }
        "segment.bytes" => {
            let v = int()?;
            if !(14..=i64::from(i32::MAX)).contains(&v) {
                return Err(bad("must be in [14, 2147483647]"));
            }
        }
        "segment.ms" | "max.message.bytes" | "index.interval.bytes" | "min.insync.replicas" => {
            if int()? < 1 {
                return Err(bad("must be positive"));
            }
        }
        "delete.retention.ms" | "min.compaction.lag.ms" => {
            if int()? < 0 {
                return Err(bad("must be non-negative"));
            }
        }
        "min.cleanable.dirty.ratio" => {
            let v = value.parse::<f64>().map_err(|_| bad("expected a number"))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(bad("must be in [0, 1]"));
            }
        }
        "cleanup.policy" => {
            if !value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact"))
            {
                return Err(bad("expected delete, compact or compact,delete"));
            }
        }
        "compression.type" => {
            if !matches!(
                value,
                "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
            ) {
                return Err(bad(
                    "expected producer, uncompressed, gzip, snappy, lz4 or zstd",
                ));
            }
        }
        "message.timestamp.type" => {
            if !matches!(value, "CreateTime" | "LogAppendTime") {
                return Err(bad("expected CreateTime or LogAppendTime"));
            }
        }
        _ => return Err(bad("unknown topic config")),
    }
    Ok(())
}

/// The durable home of the topic table (the coordinator's tree).
pub trait TopicStore: Send + Sync {
    /// Every topic in the cluster (not only those with a replica on this
    /// broker: Metadata answers list them all); an error when the store
    /// cannot answer (no quorum, say).
    fn load(&self) -> Result<BTreeMap<String, Arc<TopicMeta>>, MetaError>;
    /// Makes one topic's change durable: `before` / `after` are its old and
    /// new entries (`None`: absent). A new topic or new partitions get
    /// replicas assigned over the live brokers (`InvalidReplicationFactor`
    /// when `replication_factor` exceeds their count); existing
    /// partitions keep theirs. `TopicExists` when another broker holds
    /// the name.
    fn write(&self, before: Option<&TopicMeta>, after: Option<&TopicMeta>)
        -> Result<(), MetaError>;
    /// Adds a topic from this broker's pre-tree local table: its logs are
    /// here, so this broker is its only replica.
    fn migrate(&self, topic: &TopicMeta) -> Result<(), MetaError> {
        self.write(None, Some(topic))
    }
}

pub struct Metadata {
    current: ArcSwap<Snapshot>,
    writer: Mutex<()>,
    path: PathBuf,
    store: Option<Box<dyn TopicStore>>,
    /// Whether the cache file carries [`MIRROR_MARK`]: the tree was read
    /// (and the cache migrated) at least once.
    mirrored: bool,
    /// When this broker last changed the table itself.
    last_local_change: Mutex<Option<std::time::Instant>>,
}

const FILE: &str = "topics";
/// The cache file's line saying that its topics were loaded from (or
/// migrated into) the tree.
pub const MIRROR_MARK: &str = "# mirror of the coordinator tree";

impl Metadata {
    /// Loads the table from `dir`, creating an empty one.
    pub fn open(dir: &Path) -> Result<Metadata, MetaError> {
        let storage = |reason: String| MetaError::Storage {
            path: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| storage(e.to_string()))?;
        let path = dir.join(FILE);
        let snapshot = match std::fs::read_to_string(&path) {
            Ok(text) => decode(&text).map_err(|reason| MetaError::Storage {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
            Err(e) => return Err(storage(e.to_string())),
        };
        Ok(Metadata {
            current: ArcSwap::from_pointee(snapshot),
            writer: Mutex::new(()),
            path,
            store: None,
            mirrored: false,
            last_local_change: Mutex::new(None),
        })
    }

    /// Loads the table from `store`, keeping `dir`'s file as its cache (see
    /// the module doc): migrates cached topics into the store on the first
    /// start, falls back to the cache when the store cannot answer.
    pub fn open_with_store(dir: &Path, store: Box<dyn TopicStore>) -> Result<Metadata, MetaError> {
        let mut meta = Metadata::open(dir)?;
        let mirrored = std::fs::read_to_string(&meta.path)
            .map(|t| t.lines().any(|l| l == MIRROR_MARK))
            .unwrap_or(false);
        let cached = meta.snapshot();
        match store.load() {
            Ok(mut topics) => {
                if !mirrored {
                    let mut migrated = 0;
                    for (name, t) in &cached.topics {
                        if topics.contains_key(name) {
                            continue;
                        }
                        match store.migrate(t) {
                            Ok(()) => {
                                migrated += 1;
                                topics.insert(name.clone(), t.clone());
                            }
                            Err(e) => eprintln!(
                                "metadata: cannot migrate topic {name} into the coordinator tree: {e}; it is not loaded"
                            ),
                        }
                    }
                    if migrated > 0 {
                        eprintln!(
                            "metadata: migrated {migrated} topics from {} into the coordinator tree",
                            meta.path.display()
                        );
                    }
                }
                for name in cached.topics.keys() {
                    if mirrored && !topics.contains_key(name) {
                        eprintln!("metadata: topic {name} is cached but gone from the coordinator tree; not loaded");
                    }
                }
                let snapshot = Snapshot { topics };
                meta.store = Some(store);
                meta.mirrored = true;
                if let Err(e) = meta.persist(&snapshot) {
                    eprintln!("metadata: cannot update the cache: {e}");
                }
                meta.current.store(Arc::new(snapshot));
            }
            Err(e) => {
                eprintln!(
                    "metadata: WARNING: the coordinator tree cannot be read ({e}); starting from the cache {} ({} topics); topic changes fail until it answers",
                    meta.path.display(),
                    cached.topics.len()
                );
                meta.store = Some(store);
                meta.mirrored = mirrored;
            }
        }
        Ok(meta)
    }

    /// The table's cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Applies `change` (to topic `name` only) to a copy of the table,
    /// makes it durable (the store, then the cache; without a store the
    /// file), publishes it.
    fn update<R>(
        &self,
        name: &str,
        change: impl FnOnce(&mut BTreeMap<String, Arc<TopicMeta>>) -> Result<R, MetaError>,
    ) -> Result<R, MetaError> {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut topics = self.current.load().topics.clone();
        let before = topics.get(name).cloned();
        let out = change(&mut topics)?;
        let snapshot = Snapshot { topics };
        match &self.store {
            Some(store) => {
                store.write(before.as_deref(), snapshot.topics.get(name).map(|t| &**t))?;
                if let Err(e) = self.persist(&snapshot) {
                    // The tree has the change; the cache is only a fallback.
                    eprintln!("metadata: cannot update the cache: {e}");
                }
            }
            None => self.persist(&snapshot)?,
        }
        self.current.store(Arc::new(snapshot));
        *self
            .last_local_change
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
        Ok(out)
    }

    fn persist(&self, snapshot: &Snapshot) -> Result<(), MetaError> {
        let tmp = self.path.with_extension("tmp");
        let result: std::io::Result<()> = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            let mut text = encode(snapshot);
            if self.mirrored {
                text.push_str(MIRROR_MARK);
                text.push('\n');
            }
            f.write_all(text.as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()
        })();
        result.map_err(|e| MetaError::Storage {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Makes the table what the tree says (topics other brokers created,
    /// changed or deleted), without writing the tree. Called with every
    /// new view of the tree; a no-op when nothing differs. Removals wait a
    /// second after this broker's own last change, so a view built just
    /// before that change cannot take its topic away for a moment.
    pub fn follow_tree(&self, topics: BTreeMap<String, Arc<TopicMeta>>) {
        let _guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current.load_full();
        let recent = self
            .last_local_change
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1));
        let mut next = topics;
        if recent {
            for (name, t) in &current.topics {
                next.entry(name.clone()).or_insert_with(|| t.clone());
            }
        }
        let same = next.len() == current.topics.len()
            && next
                .iter()
                .all(|(name, t)| current.topics.get(name).is_some_and(|c| **c == **t));
        if same {
            return;
        }
        let snapshot = Snapshot { topics: next };
        if let Err(e) = self.persist(&snapshot) {
            eprintln!("metadata: cannot update the cache: {e}");
        }
        self.current.store(Arc::new(snapshot));
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, MetaError> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(MetaError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        if partitions > PARTITIONS_PER_TOPIC_MAX {
            return Err(MetaError::InvalidPartitions(format!(
                "{partitions} partitions is more than the {PARTITIONS_PER_TOPIC_MAX} a topic may have"
            )));
        }
        // With a store (the coordinator's tree) the store assigns replicas
        // over the live brokers and refuses a factor above their count;
        // without one (unit tests) this broker is the only replica.
        if replication_factor < 1 || (self.store.is_none() && replication_factor != 1) {
            return Err(MetaError::InvalidReplicationFactor {
                requested: replication_factor,
                available: 1,
            });
        }
        for (k, v) in &configs {
            validate_topic_config(k, v)?;
        }
        self.update(name, |topics| {
            if topics.contains_key(name) {
                return Err(MetaError::TopicExists(name.to_string()));
            }
            let meta = Arc::new(TopicMeta {
                name: name.to_string(),
                id: random_id(),
                partitions,
                replication_factor,
                configs,
            });
            topics.insert(name.to_string(), meta.clone());
            Ok(meta)
        })
    }

    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, MetaError> {
        self.update(name, |topics| {
            topics
                .remove(name)
                .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))
        })
    }

    /// Raises the partition count (Kafka never lowers it).
    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
    ) -> Result<(Arc<TopicMeta>, i32), MetaError> {
        self.update(name, |topics| {
            let old = topics.get(name).ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
            if total <= old.partitions {
                return Err(MetaError::InvalidPartitions(format!(
                    "topic currently has {} partitions, which is higher than or equal to the requested {total}",
                    old.partitions
                )));
            }
            if total > PARTITIONS_PER_TOPIC_MAX {
                return Err(MetaError::InvalidPartitions(format!(
                    "{total} partitions is more than the {PARTITIONS_PER_TOPIC_MAX} a topic may have"
                )));
            }
            let before = old.partitions;
            let meta = Arc::new(TopicMeta {
                partitions: total,
                ..(**old).clone()
            });
            topics.insert(name.to_string(), meta.clone());
            Ok((meta, before))
        })
    }

    /// Sets (`Some`) or removes (`None`) topic configs.
    pub fn alter_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
        replace_all: bool,
    ) -> Result<Arc<TopicMeta>, MetaError> {
        for (k, v) in changes {
            if let Some(v) = v {
                validate_topic_config(k, v)?;
            }
        }
        self.update(name, |topics| {
            let old = topics
                .get(name)
                .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
            let mut configs = if replace_all {
                BTreeMap::new()
            } else {
                old.configs.clone()
            };
            for (k, v) in changes {
                match v {
                    Some(v) => drop(configs.insert(k.clone(), v.clone())),
                    None => drop(configs.remove(k)),
                }
            }
            let meta = Arc::new(TopicMeta {
                configs,
                ..(**old).clone()
            });
            topics.insert(name.to_string(), meta.clone());
            Ok(meta)
        })
    }
}

pub fn random_id() -> TopicId {
    let mut id = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .expect("read /dev/urandom");
    id[6] = (id[6] & 0x0f) | 0x40; // UUID version 4
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

fn hex(id: &TopicId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<TopicId> {
    if s.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// Percent-escapes what would break the line format (space, `=`, `%`,
/// control characters), so any config value round-trips.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || c == '=' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One line per topic: `topic NAME ID PARTITIONS RF [key=value ...]`.
fn encode(snapshot: &Snapshot) -> String {
    let mut out = String::from("# ringtail topic table v1\n");
    for t in snapshot.topics.values() {
        out.push_str(&format!(
            "topic {} {} {} {}",
            t.name,
            hex(&t.id),
            t.partitions,
            t.replication_factor
        ));
        for (k, v) in &t.configs {
            out.push_str(&format!(" {}={}", escape(k), escape(v)));
        }
        out.push('\n');
    }
    out
}

fn decode(text: &str) -> Result<Snapshot, String> {
    let mut topics = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let bad = || format!("line {}: malformed topic entry {line:?}", n + 1);
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 5 || f[0] != "topic" {
            return Err(bad());
        }
        let mut configs = BTreeMap::new();
        for kv in &f[5..] {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            configs.insert(unescape(k).ok_or_else(bad)?, unescape(v).ok_or_else(bad)?);
        }
        let meta = TopicMeta {
            name: f[1].to_string(),
            id: unhex(f[2]).ok_or_else(bad)?,
            partitions: f[3].parse().map_err(|_| bad())?,
            replication_factor: f[4].parse().map_err(|_| bad())?,
            configs,
        };
        topics.insert(meta.name.clone(), Arc::new(meta));
    }
    Ok(Snapshot { topics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_configs_are_checked_with_the_reason() {
        for (key, ok) in [
            ("cleanup.policy", "compact,delete"),
            ("delete.retention.ms", "0"),
            ("min.compaction.lag.ms", "60000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ] {
            validate_topic_config(key, ok).unwrap_or_else(|e| panic!("{key}={ok}: {e}"));
        }
        for (key, bad, reason) in [
            (
                "cleanup.policy",
                "compact,shred",
                "expected delete, compact",
            ),
            ("delete.retention.ms", "-1", "non-negative"),
            ("min.compaction.lag.ms", "soon", "integer"),
            ("min.cleanable.dirty.ratio", "1.5", "[0, 1]"),
            ("min.cleanable.dirty.ratio", "half", "number"),
        ] {
            let e = validate_topic_config(key, bad).expect_err(bad).to_string();
            assert!(e.contains(key) && e.contains(reason), "{key}={bad}: {e}");
        }
    }

    #[test]
    fn topics_persist_and_names_are_checked() {
        let dir = std::env::temp_dir().join(format!("ringtail-meta-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let meta = Metadata::open(&dir).expect("open");
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        configs.insert("cleanup.policy".to_string(), "compact, delete".to_string());
        let t = meta.create_topic("orders", 3, 1, configs).expect("create");
        assert!(matches!(
            meta.create_topic("huge", 2_147_483_647, 1, BTreeMap::new()),
            Err(MetaError::InvalidPartitions(_))
        ));
        assert!(matches!(
            meta.create_topic("orders", 1, 1, BTreeMap::new()),
            Err(MetaError::TopicExists(_))
        ));
        assert!(matches!(
            meta.create_topic("bad/name", 1, 1, BTreeMap::new()),
            Err(MetaError::InvalidName { .. })
        ));
        assert!(matches!(
            meta.create_topic("x", 0, 1, BTreeMap::new()),
            Err(MetaError::InvalidPartitions(_))
        ));
        assert!(matches!(
            meta.create_topic("x", 1, 3, BTreeMap::new()),
            Err(MetaError::InvalidReplicationFactor { .. })
        ));
        meta.add_partitions("orders", 5).expect("grow");
        assert!(meta.add_partitions("orders", 4).is_err());
        drop(meta);
        let meta = Metadata::open(&dir).expect("reopen");
        let snap = meta.snapshot();
        let orders = snap.topic("orders").expect("persisted");
        assert_eq!((orders.id, orders.partitions), (t.id, 5));
        assert_eq!(
            orders.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
