//! Broker configuration in Kafka's `server.properties` format and key names.
//!
//! Values come from the file, then `--override key=value` (later wins).
//! A bad value stops start-up with a message naming the key; an unknown key
//! is a warning; a Kafka key Ringtail does not need (ZooKeeper, thread
//! pools) is noted and ignored, so a stock `server.properties` starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: expected key=value, got {text:?}")]
    Syntax {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("--override {0:?}: expected key=value")]
    Override(String),
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// A listener: `PLAINTEXT://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", self.port)
            .parse()
            .or_else(|_| format!("[{host}]:{}", self.port).parse())
            .map_err(|_| format!("host {:?} is not an IP address", self.host))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub broker_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub log_segment_bytes: u64,
    pub log_roll_ms: i64,
    pub log_retention_ms: Option<i64>,
    pub log_retention_bytes: Option<u64>,
    pub log_retention_check_interval_ms: u64,
    pub log_index_interval_bytes: u64,
    /// `log.cleanup.policy`: `delete`, `compact` or `compact,delete`.
    pub log_cleanup_policy: String,
    /// `log.cleaner.enable`: run compaction passes at all.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: pause between the cleaner's checks.
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_delete_retention_ms: i64,
    pub log_cleaner_min_compaction_lag_ms: i64,
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.cleaner.dedupe.buffer.size`: one pass's key map bound.
    pub log_cleaner_dedupe_buffer_size: usize,
    pub min_insync_replicas: i32,
    /// `broker.rack`: the rack (or zone) this broker is in; replica
    /// assignment spreads each partition's replicas across racks.
    pub broker_rack: Option<String>,
    /// `unclean.leader.election.enable` (default false): elect a replica
    /// outside the ISR when no ISR member is alive, losing what it lacks.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`: the controller moves leadership back
    /// to each partition's preferred (first) replica once it is in the ISR.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `controlled.shutdown.enable`: on SIGTERM, move leadership away first.
    pub controlled_shutdown_enable: bool,
    /// `controlled.shutdown.max.wait.ms`: how long a clean stop waits for
    /// the controller to move leadership away.
    pub controlled_shutdown_max_wait_ms: u64,
    /// `replica.lag.time.max.ms`: a follower that has not caught up for
    /// this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: a follower's Fetch `max_wait_ms`.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.max.bytes`: bytes per partition in a follower's Fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: bytes per follower Fetch.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.socket.timeout.ms`: a follower resends an unanswered request.
    pub replica_socket_timeout_ms: i64,
    /// `replica.fetch.backoff.ms`: a follower's pause after an error.
    pub replica_fetch_backoff_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    pub auto_create_topics_enable: bool,
    pub message_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    pub connections_max_idle_ms: u64,
    /// Requests of one connection being processed at once; more are left
    /// unread in the socket (back-pressure).
    pub socket_inflight_requests_max: usize,
    /// Executor threads, one per core (`shard.count`, default: all cores).
    pub shard_count: usize,
    pub delete_topic_enable: bool,
    pub cluster_id: Option<String>,
    /// `fetch.zero.copy`: splice record bytes from the page cache (default)
    /// or copy them through memory (for comparison benchmarks).
    pub fetch_zero_copy: bool,
    /// `coordinator.voters`: the ZAB ensemble, `id@host:port` per voter
    /// (zoo.cfg's `server.N=host:port`). Empty: this broker alone.
    pub coordinator_voters: Vec<Voter>,
    /// `coordinator.data.dir` (default `<log.dirs[0]>/__coordinator`).
    pub coordinator_data_dir: Option<PathBuf>,
    /// `coordinator.client.port`: the tools' port (ZooKeeper's
    /// `clientPort`). Unset: 2181 when free, else none, with a warning.
    pub coordinator_client_port: Option<u16>,
    /// `producer.id.expiration.ms`: idle idempotent producers' state is
    /// dropped after this long (Kafka's default: one day).
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms` (Kafka's default: 10 min);
    /// checked on the housekeeping pass, so at most that often.
    pub producer_id_expiration_check_interval_ms: i64,
    /// `offsets.retention.minutes` in ms: committed offsets of an empty
    /// group expire after this long (Kafka's default: 7 days).
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (Kafka's default: 10 min).
    pub offsets_retention_check_interval_ms: i64,
    /// `offsets.topic.replication.factor`: replicas of `__consumer_offsets`
    /// when the broker creates it on first use (Kafka's default: 3). The
    /// factor used is this or the number of live brokers, whichever is
    /// smaller, so the one-node default still works (RF 1) and the broker
    /// logs the factor it chose.
    pub offsets_topic_replication_factor: i16,
    /// `metrics.listen`: the Prometheus `/metrics` endpoint, `ip:port`
    /// (default [`METRICS_LISTEN_DEFAULT`]; empty: no endpoint).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `metrics.listen` was set: a taken port then stops start-up, while
    /// the default port is skipped with a warning (tests, second brokers).
    pub metrics_listen_explicit: bool,
}

/// Where `/metrics` listens unless `metrics.listen` says otherwise
/// (Redpanda's metrics port; loopback, like the default listener).
pub const METRICS_LISTEN_DEFAULT: &str = "127.0.0.1:9644";

/// One voter of the coordinator ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: u64,
    pub host: String,
    /// The peer port other voters connect to.
    pub port: u16,
}

/// Parses `id@host:port[:port],...`; a second port (zoo.cfg's election
/// port) is accepted and ignored: one port carries every peer message.
fn voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut out: Vec<Voter> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| invalid(key, value, format!("{item:?}: expected id@host:port")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| invalid(key, value, format!("{item:?}: id {id:?} is not a number")))?;
        let mut parts = addr.split(':');
        let host = parts.next().unwrap_or_default().to_string();
        let port = parts
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(key, value, format!("{item:?}: missing or bad port")))?;
        if let Some(extra) = parts.next() {
            extra
                .parse::<u16>()
                .map_err(|_| invalid(key, value, format!("{item:?}: bad second port")))?;
        }
        if parts.next().is_some() || host.is_empty() {
            return Err(invalid(
                key,
                value,
                format!("{item:?}: expected id@host:port"),
            ));
        }
        if out.iter().any(|v| v.id == id) {
            return Err(invalid(key, value, format!("voter id {id} appears twice")));
        }
        out.push(Voter { id, host, port });
    }
    if out.is_empty() {
        return Err(invalid(key, value, "no voter given"));
    }
    Ok(out)
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listener = Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
        };
        BrokerConfig {
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            offsets_retention_ms: 10_080 * 60_000,
            offsets_topic_replication_factor: 3,
            offsets_retention_check_interval_ms: 600_000,
            broker_id: 0,
            listeners: vec![listener.clone()],
            advertised_listeners: vec![listener],
            log_dirs: vec![PathBuf::from("ringtail-data")],
            num_partitions: 1,
            default_replication_factor: 1,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 168 * 3_600_000,
            log_retention_ms: Some(168 * 3_600_000),
            log_retention_bytes: None,
            log_retention_check_interval_ms: 300_000,
            log_index_interval_bytes: 4096,
            log_cleanup_policy: "delete".into(),
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_delete_retention_ms: 86_400_000,
            log_cleaner_min_compaction_lag_ms: 0,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_dedupe_buffer_size: 128 << 20,
            min_insync_replicas: 1,
            broker_rack: None,
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            controlled_shutdown_enable: true,
            controlled_shutdown_max_wait_ms: 30_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1_048_576,
            replica_fetch_response_max_bytes: 10_485_760,
            replica_socket_timeout_ms: 30_000,
            replica_fetch_backoff_ms: 1_000,
            replica_high_watermark_checkpoint_interval_ms: 5_000,
            auto_create_topics_enable: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            connections_max_idle_ms: 600_000,
            socket_inflight_requests_max: 16,
            shard_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
            delete_topic_enable: true,
            cluster_id: None,
            fetch_zero_copy: true,
            coordinator_voters: Vec::new(),
            coordinator_data_dir: None,
            coordinator_client_port: None,
            metrics_listen: METRICS_LISTEN_DEFAULT.parse().ok(),
            metrics_listen_explicit: false,
        }
    }
}

/// Kafka keys that configure parts Ringtail replaces or does not have.
const IGNORED: &[&str] = &[
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "zookeeper.session.timeout.ms",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "group.initial.rebalance.delay.ms",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    // Transactions are not implemented: no transactional id state to expire.
    "transactional.id.expiration.ms",
    "log.cleaner.threads",
];

/// Reads `key=value` lines (`#` and `!` comments, blank lines).
pub fn parse_properties(text: &str, path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                text: raw.to_string(),
            });
        };
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn int<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "expected an integer"))
}

fn at_least<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    key: &str,
    value: &str,
    min: T,
) -> Result<T, ConfigError> {
    let v: T = int(key, value)?;
    if v < min {
        return Err(invalid(key, value, format!("must be at least {min}")));
    }
    Ok(v)
}

/// A fraction in [0, 1] (`min.cleanable.dirty.ratio`).
fn ratio(key: &str, value: &str) -> Result<f64, ConfigError> {
    match value.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err(invalid(key, value, "must be in [0, 1]")),
        Err(_) => Err(invalid(key, value, "expected a number")),
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// Parses `NAME://host:port[,NAME://host:port]`.
fn listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| invalid(key, value, "expected NAME://host:port"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, "missing :port"))?;
        let port = port.parse().map_err(|_| {
            invalid(
                key,
                value,
                format!("port {port:?} is not a number in 0..65535"),
            )
        })?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        out.push(Listener {
            name: name.to_string(),
            host,
            port,
        });
    }
    if out.is_empty() {
        return Err(invalid(key, value, "no listener given"));
    }
    Ok(out)
}

/// Kafka's "-1 means unlimited" for sizes and times.
fn optional_limit(key: &str, value: &str) -> Result<Option<i64>, ConfigError> {
    let v: i64 = int(key, value)?;
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v)),
        _ => Err(invalid(
            key,
            value,
            "must be -1 (unlimited) or non-negative",
        )),
    }
}

/// What applying the settings noticed but accepted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notes {
    pub unknown: Vec<String>,
    pub ignored: Vec<String>,
}

impl BrokerConfig {
    /// Builds the config from an optional file plus overrides.
    pub fn load(
        file: Option<&Path>,
        overrides: &[String],
    ) -> Result<(BrokerConfig, Notes), ConfigError> {
        let mut pairs = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            pairs.extend(parse_properties(&text, path)?);
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::Override(o.clone()))?;
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
        BrokerConfig::from_pairs(&pairs)
    }

    pub fn from_pairs(pairs: &[(String, String)]) -> Result<(BrokerConfig, Notes), ConfigError> {
        let mut c = BrokerConfig::default();
        let mut notes = Notes::default();
        let mut advertised_set = false;
        // Kafka's precedence: ms over minutes over hours.
        let mut retention: BTreeMap<u8, Option<i64>> = BTreeMap::new();
        let mut roll: BTreeMap<u8, i64> = BTreeMap::new();
        for (key, value) in pairs {
            let (k, v) = (key.as_str(), value.as_str());
            match k {
                "broker.id" | "node.id" => c.broker_id = at_least(k, v, 0)?,
                "listeners" => c.listeners = listeners(k, v)?,
                "advertised.listeners" => {
                    c.advertised_listeners = listeners(k, v)?;
                    advertised_set = true;
                }
                "log.dirs" | "log.dir" => {
                    c.log_dirs = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(PathBuf::from)
                        .collect();
                    if c.log_dirs.is_empty() {
                        return Err(invalid(k, v, "no directory given"));
                    }
                }
                "num.partitions" => c.num_partitions = at_least(k, v, 1)?,
                "default.replication.factor" => c.default_replication_factor = at_least(k, v, 1)?,
                "log.segment.bytes" => {
                    let bytes: u64 = at_least(k, v, 14)?;
                    if bytes > i32::MAX as u64 {
                        return Err(invalid(k, v, format!("must be at most {}", i32::MAX)));
                    }
                    c.log_segment_bytes = bytes;
                }
                "log.roll.ms" => {
                    roll.insert(0, at_least(k, v, 1)?);
                }
                "log.roll.hours" => {
                    roll.insert(2, at_least::<i64>(k, v, 1)? * 3_600_000);
                }
                "log.retention.ms" => {
                    retention.insert(0, optional_limit(k, v)?);
                }
                "log.retention.minutes" => {
                    retention.insert(1, optional_limit(k, v)?.map(|m| m * 60_000));
                }
                "log.retention.hours" => {
                    retention.insert(2, optional_limit(k, v)?.map(|h| h * 3_600_000));
                }
                "log.retention.bytes" => {
                    c.log_retention_bytes = optional_limit(k, v)?.map(|b| b as u64)
                }
                "log.retention.check.interval.ms" => {
                    c.log_retention_check_interval_ms = at_least(k, v, 1)?
                }
                "log.index.interval.bytes" => c.log_index_interval_bytes = at_least(k, v, 1)?,
                "log.cleanup.policy" => {
                    crate::metadata::validate_topic_config("cleanup.policy", v)
                        .map_err(|e| invalid(k, v, e.to_string()))?;
                    c.log_cleanup_policy = v.replace(' ', "");
                }
                "log.cleaner.enable" => c.log_cleaner_enable = boolean(k, v)?,
                "log.cleaner.backoff.ms" => c.log_cleaner_backoff_ms = at_least(k, v, 1)?,
                "log.cleaner.delete.retention.ms" => {
                    c.log_cleaner_delete_retention_ms = at_least(k, v, 0)?
                }
                "log.cleaner.min.compaction.lag.ms" => {
                    c.log_cleaner_min_compaction_lag_ms = at_least(k, v, 0)?
                }
                "log.cleaner.min.cleanable.ratio" => {
                    c.log_cleaner_min_cleanable_ratio = ratio(k, v)?
                }
                "log.cleaner.dedupe.buffer.size" => {
                    c.log_cleaner_dedupe_buffer_size = at_least(k, v, 1 << 20)?
                }
                "min.insync.replicas" => c.min_insync_replicas = at_least(k, v, 1)?,
                "broker.rack" => {
                    c.broker_rack = (!v.trim().is_empty()).then(|| v.trim().to_string())
                }
                "unclean.leader.election.enable" => {
                    c.unclean_leader_election_enable = boolean(k, v)?
                }
                "auto.leader.rebalance.enable" => c.auto_leader_rebalance_enable = boolean(k, v)?,
                "leader.imbalance.check.interval.seconds" => {
                    c.leader_imbalance_check_interval_ms = at_least::<u64>(k, v, 1)? * 1000
                }
                "controlled.shutdown.enable" => c.controlled_shutdown_enable = boolean(k, v)?,
                "controlled.shutdown.max.wait.ms" => {
                    c.controlled_shutdown_max_wait_ms = at_least(k, v, 0)?
                }
                "replica.lag.time.max.ms" => c.replica_lag_time_max_ms = at_least(k, v, 1)?,
                "replica.fetch.wait.max.ms" => c.replica_fetch_wait_max_ms = at_least(k, v, 0)?,
                "replica.fetch.max.bytes" => c.replica_fetch_max_bytes = at_least(k, v, 1)?,
                "replica.fetch.response.max.bytes" => {
                    c.replica_fetch_response_max_bytes = at_least(k, v, 1)?
                }
                "replica.socket.timeout.ms" => c.replica_socket_timeout_ms = at_least(k, v, 1)?,
                "replica.fetch.backoff.ms" => c.replica_fetch_backoff_ms = at_least(k, v, 0)?,
                "replica.high.watermark.checkpoint.interval.ms" => {
                    c.replica_high_watermark_checkpoint_interval_ms = at_least(k, v, 1)?
                }
                "auto.create.topics.enable" => c.auto_create_topics_enable = boolean(k, v)?,
                "delete.topic.enable" => c.delete_topic_enable = boolean(k, v)?,
                "message.max.bytes" => c.message_max_bytes = at_least(k, v, 0)?,
                "socket.request.max.bytes" => c.socket_request_max_bytes = at_least(k, v, 1)?,
                "connections.max.idle.ms" => c.connections_max_idle_ms = at_least(k, v, 1)?,
                "socket.inflight.requests.max" => {
                    c.socket_inflight_requests_max = at_least(k, v, 1)?
                }
                "shard.count" => c.shard_count = at_least(k, v, 1)?,
                "cluster.id" => c.cluster_id = Some(v.to_string()),
                "fetch.zero.copy" => c.fetch_zero_copy = boolean(k, v)?,
                "coordinator.voters" => c.coordinator_voters = voters(k, v)?,
                "coordinator.data.dir" => {
                    if v.is_empty() {
                        return Err(invalid(k, v, "no directory given"));
                    }
                    c.coordinator_data_dir = Some(PathBuf::from(v));
                }
                "coordinator.client.port" => c.coordinator_client_port = Some(at_least(k, v, 1)?),
                "producer.id.expiration.ms" => c.producer_id_expiration_ms = at_least(k, v, 1)?,
                "producer.id.expiration.check.interval.ms" => {
                    c.producer_id_expiration_check_interval_ms = at_least(k, v, 1)?
                }
                "offsets.retention.minutes" => {
                    c.offsets_retention_ms = at_least::<i64>(k, v, 1)?.saturating_mul(60_000)
                }
                "offsets.topic.replication.factor" => {
                    c.offsets_topic_replication_factor = at_least(k, v, 1)?
                }
                "offsets.retention.check.interval.ms" => {
                    c.offsets_retention_check_interval_ms = at_least(k, v, 1)?
                }
                "metrics.listen" => {
                    c.metrics_listen_explicit = true;
                    c.metrics_listen = match v {
                        "" => None,
                        _ => Some(v.parse().map_err(|_| {
                            invalid(
                                k,
                                v,
                                "expected ip:port, e.g. 0.0.0.0:9644, or empty for none",
                            )
                        })?),
                    };
                }
                _ if IGNORED.contains(&k) => notes.ignored.push(k.to_string()),
                _ => notes.unknown.push(k.to_string()),
            }
        }
        if let Some((_, ms)) = retention.into_iter().next() {
            c.log_retention_ms = ms;
        }
        if let Some((_, ms)) = roll.into_iter().next() {
            c.log_roll_ms = ms;
        }
        if !c.coordinator_voters.is_empty()
            && !c
                .coordinator_voters
                .iter()
                .any(|v| v.id == c.broker_id as u64)
        {
            let listed: Vec<String> = c
                .coordinator_voters
                .iter()
                .map(|v| v.id.to_string())
                .collect();
            return Err(invalid(
                "coordinator.voters",
                &listed.join(","),
                format!("broker.id {} is not a voter", c.broker_id),
            ));
        }
        if !advertised_set {
            c.advertised_listeners = c.listeners.clone();
        }
        for l in &c.listeners {
            l.socket_addr().map_err(|reason| {
                invalid(
                    "listeners",
                    &format!("{}://{}:{}", l.name, l.host, l.port),
                    reason,
                )
            })?;
        }
        Ok((c, notes))
    }

    pub fn log_config(&self) -> ringtail_io::log::LogConfig {
        ringtail_io::log::LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: Some(self.log_roll_ms),
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            index_interval_bytes: self.log_index_interval_bytes,
            compact: self.log_cleaner_enable
                && self.log_cleanup_policy.split(',').any(|p| p == "compact"),
            delete_retention_ms: self.log_cleaner_delete_retention_ms,
            min_compaction_lag_ms: self.log_cleaner_min_compaction_lag_ms,
            min_cleanable_dirty_ratio: self.log_cleaner_min_cleanable_ratio,
            cleaner_key_map_bytes_max: self.log_cleaner_dedupe_buffer_size,
            ..ringtail_io::log::LogConfig::default()
        }
    }

    /// The coordinator's WAL directory.
    pub fn coordinator_dir(&self) -> PathBuf {
        self.coordinator_data_dir
            .clone()
            .unwrap_or_else(|| self.log_dirs[0].join("__coordinator"))
    }

    /// The first advertised listener: what clients are told to connect to.
    pub fn advertised(&self) -> &Listener {
        &self.advertised_listeners[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<(BrokerConfig, Notes), ConfigError> {
        let pairs = parse_properties(text, Path::new("server.properties"))?;
        BrokerConfig::from_pairs(&pairs)
    }

    #[test]
    fn a_stock_server_properties_starts_with_notes() {
        let (c, notes) = load(
            "# Kafka's sample\nbroker.id=3\nlisteners=PLAINTEXT://127.0.0.1:19092\nnum.network.threads=3\n\
             log.dirs=/var/lib/kafka\nnum.partitions=3\nlog.retention.hours=24\nlog.segment.bytes=1073741824\n\
             zookeeper.connect=localhost:2181\nsome.plugin.key=1\n",
        )
        .expect("load");
        assert_eq!(c.broker_id, 3);
        assert_eq!(c.listeners[0].port, 19092);
        assert_eq!(c.advertised().port, 19092);
        assert_eq!(c.log_dirs, vec![PathBuf::from("/var/lib/kafka")]);
        assert_eq!(c.log_retention_ms, Some(24 * 3_600_000));
        assert_eq!(
            notes.ignored,
            vec!["num.network.threads", "zookeeper.connect"]
        );
        assert_eq!(notes.unknown, vec!["some.plugin.key"]);
    }

    #[test]
    fn cleaner_settings_reach_the_log_config() {
        let (c, _) = load(
            "log.cleanup.policy=compact, delete\nlog.cleaner.min.cleanable.ratio=0.25\n\
             log.cleaner.delete.retention.ms=0\nlog.cleaner.backoff.ms=100",
        )
        .expect("load");
        assert_eq!(c.log_cleanup_policy, "compact,delete");
        let log = c.log_config();
        assert!(log.compact);
        assert_eq!(log.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(log.delete_retention_ms, 0);
        assert_eq!(c.log_cleaner_backoff_ms, 100);
        let (c, _) = load("log.cleanup.policy=compact\nlog.cleaner.enable=false").expect("load");
        assert!(!c.log_config().compact, "the cleaner is off");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("num.partitions=zero", "num.partitions"),
            ("num.partitions=0", "num.partitions"),
            ("log.segment.bytes=99999999999", "log.segment.bytes"),
            ("auto.create.topics.enable=yes", "auto.create.topics.enable"),
            ("listeners=127.0.0.1:9092", "listeners"),
            ("listeners=PLAINTEXT://my-host:9092", "listeners"),
            ("log.retention.ms=-5", "log.retention.ms"),
            ("log.cleanup.policy=shred", "log.cleanup.policy"),
            ("log.cleaner.enable=maybe", "log.cleaner.enable"),
            (
                "log.cleaner.min.cleanable.ratio=1.5",
                "log.cleaner.min.cleanable.ratio",
            ),
            (
                "log.cleaner.min.cleanable.ratio=half",
                "log.cleaner.min.cleanable.ratio",
            ),
            (
                "log.cleaner.delete.retention.ms=-1",
                "log.cleaner.delete.retention.ms",
            ),
            (
                "log.cleaner.min.compaction.lag.ms=-1",
                "log.cleaner.min.compaction.lag.ms",
            ),
            ("log.cleaner.backoff.ms=0", "log.cleaner.backoff.ms"),
        ];
        for (text, key) in cases {
            match load(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: expected an error naming {key}, got {other:?}"),
            }
        }
        assert!(matches!(
            load("just words"),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn the_shipped_example_loads_without_unknown_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/server.properties");
        let (c, notes) =
            BrokerConfig::load(Some(&path), &[]).expect("deploy/server.properties loads");
        assert_eq!(notes, Notes::default());
        assert_eq!(c.num_partitions, 3);
        assert_eq!(c.log_dirs, vec![PathBuf::from("/var/lib/ringtail")]);
    }

    #[test]
    fn coordinator_keys() {
        let (c, notes) = load("").expect("load");
        assert!(
            c.coordinator_voters.is_empty(),
            "default: this broker alone"
        );
        assert_eq!(
            c.coordinator_dir(),
            PathBuf::from("ringtail-data/__coordinator")
        );
        assert_eq!(c.coordinator_client_port, None);
        assert_eq!(notes, Notes::default());
        let (c, notes) = load(
            "broker.id=2\ncoordinator.voters=1@127.0.0.1:2881, 2@127.0.0.1:2882:3882,3@10.0.0.3:2883\n\
             coordinator.data.dir=/var/lib/coord\ncoordinator.client.port=2181\n",
        )
        .expect("load");
        assert_eq!(notes, Notes::default());
        assert_eq!(
            c.coordinator_voters,
            vec![
                Voter {
                    id: 1,
                    host: "127.0.0.1".into(),
                    port: 2881
                },
                Voter {
                    id: 2,
                    host: "127.0.0.1".into(),
                    port: 2882
                },
                Voter {
                    id: 3,
                    host: "10.0.0.3".into(),
                    port: 2883
                },
            ]
        );
        assert_eq!(c.coordinator_dir(), PathBuf::from("/var/lib/coord"));
        assert_eq!(c.coordinator_client_port, Some(2181));
    }

    #[test]
    fn bad_coordinator_values_name_the_key() {
        let cases = [
            ("coordinator.voters=", "coordinator.voters"),
            ("coordinator.voters=127.0.0.1:2881", "coordinator.voters"),
            ("coordinator.voters=x@127.0.0.1:2881", "coordinator.voters"),
            ("coordinator.voters=0@127.0.0.1", "coordinator.voters"),
            ("coordinator.voters=0@127.0.0.1:99999", "coordinator.voters"),
            ("coordinator.voters=0@h:1,0@h:2", "coordinator.voters"),
            ("coordinator.voters=1@127.0.0.1:2881", "coordinator.voters"),
            ("coordinator.client.port=0", "coordinator.client.port"),
            ("coordinator.client.port=http", "coordinator.client.port"),
            ("coordinator.data.dir=", "coordinator.data.dir"),
        ];
        for (text, key) in cases {
            match load(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: expected an error naming {key}, got {other:?}"),
            }
        }
    }

    #[test]
    fn metrics_listen() {
        let (c, _) = load("broker.id=1").expect("load");
        assert_eq!(c.metrics_listen, METRICS_LISTEN_DEFAULT.parse().ok());
        assert!(!c.metrics_listen_explicit);
        let (c, _) = load("metrics.listen=0.0.0.0:9308").expect("load");
        assert_eq!(c.metrics_listen, "0.0.0.0:9308".parse().ok());
        assert!(c.metrics_listen_explicit);
        let (c, _) = load("metrics.listen=").expect("load");
        assert_eq!(c.metrics_listen, None);
        for bad in ["metrics.listen=9644", "metrics.listen=localhost:9644"] {
            match load(bad) {
                Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "metrics.listen"),
                other => panic!("{bad}: expected an error naming metrics.listen, got {other:?}"),
            }
        }
    }

    #[test]
    fn retention_precedence_and_unlimited() {
        let (c, _) = load("log.retention.hours=1\nlog.retention.ms=500").expect("load");
        assert_eq!(c.log_retention_ms, Some(500));
        let (c, _) = load("log.retention.hours=-1\nlog.retention.bytes=-1").expect("load");
        assert_eq!((c.log_retention_ms, c.log_retention_bytes), (None, None));
    }
}
