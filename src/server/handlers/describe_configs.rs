//! DescribeConfigs v1-4 for topics (resource type 2) and this broker (4):
//! all configs or the requested keys, with their source, synonyms (when
//! asked), type (v3+) and documentation (v3+, when asked).
//!
//! A topic key shows the topic's override (DYNAMIC_TOPIC_CONFIG) or the
//! broker-level value it inherits: STATIC_BROKER_CONFIG when
//! `server.properties` or `--override` changed it from the built-in
//! default, DEFAULT_CONFIG otherwise. Broker configs are static (read
//! only); the table of topic keys here is shared with the AlterConfigs
//! handlers, which need the inherited values and the list-valued keys.

use std::rc::Rc;

use ringtail_protocol::messages::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use ringtail_protocol::messages::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use ringtail_protocol::messages::kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse,
};
use ringtail_protocol::ErrorCode;

use super::{decode, respond, str_bytes};
use crate::config::{BrokerConfig, Listener};
use crate::metadata::TopicMeta;
use crate::server::{Header, Response};
use crate::shard::Shard;

/// Kafka's ConfigResource.Type.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's DescribeConfigsResponse.ConfigSource.
pub const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
pub const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// Kafka's DescribeConfigsResponse.ConfigType.
pub const TYPE_UNKNOWN: i8 = 0;
pub const TYPE_BOOLEAN: i8 = 1;
pub const TYPE_STRING: i8 = 2;
pub const TYPE_INT: i8 = 3;
pub const TYPE_LONG: i8 = 5;
pub const TYPE_DOUBLE: i8 = 6;
pub const TYPE_LIST: i8 = 7;

/// A topic config key and the broker-level key it inherits from.
pub struct TopicKey {
    pub name: &'static str,
    pub broker_key: &'static str,
    pub config_type: i8,
    pub doc: &'static str,
    /// The broker-level value, as Kafka prints it.
    pub broker_value: fn(&BrokerConfig) -> String,
}

fn limit(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-1".to_string(), |v| v.to_string())
}

/// The topic keys `metadata::validate_topic_config` accepts.
pub const TOPIC_KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        broker_key: "log.cleanup.policy",
        config_type: TYPE_LIST,
        doc: "delete old segments, compact by key, or both",
        broker_value: |c| c.log_cleanup_policy.clone(),
    },
    TopicKey {
        name: "compression.type",
        broker_key: "compression.type",
        config_type: TYPE_STRING,
        doc: "codec of stored batches; producer keeps the producer's",
        broker_value: |_| "producer".into(),
    },
    TopicKey {
        name: "delete.retention.ms",
        broker_key: "log.cleaner.delete.retention.ms",
        config_type: TYPE_LONG,
        doc: "how long tombstones stay in a compacted topic",
        broker_value: |c| c.log_cleaner_delete_retention_ms.to_string(),
    },
    TopicKey {
        name: "index.interval.bytes",
        broker_key: "log.index.interval.bytes",
        config_type: TYPE_INT,
        doc: "bytes between offset index entries",
        broker_value: |c| c.log_index_interval_bytes.to_string(),
    },
    TopicKey {
        name: "max.message.bytes",
        broker_key: "message.max.bytes",
        config_type: TYPE_INT,
        doc: "largest record batch the topic accepts",
        broker_value: |c| c.message_max_bytes.to_string(),
    },
    TopicKey {
        name: "message.timestamp.type",
        broker_key: "log.message.timestamp.type",
        config_type: TYPE_STRING,
        doc: "CreateTime (the producer's) or LogAppendTime (the broker's)",
        broker_value: |_| "CreateTime".into(),
    },
    TopicKey {
        name: "min.cleanable.dirty.ratio",
        broker_key: "log.cleaner.min.cleanable.ratio",
        config_type: TYPE_DOUBLE,
        doc: "dirty share of a compacted log that starts a cleaning pass",
        broker_value: |c| c.log_cleaner_min_cleanable_ratio.to_string(),
    },
    TopicKey {
        name: "min.compaction.lag.ms",
        broker_key: "log.cleaner.min.compaction.lag.ms",
        config_type: TYPE_LONG,
        doc: "age below which a record is not compacted",
        broker_value: |c| c.log_cleaner_min_compaction_lag_ms.to_string(),
    },
    TopicKey {
        name: "min.insync.replicas",
        broker_key: "min.insync.replicas",
        config_type: TYPE_INT,
        doc: "replicas that must have a write for acks=all",
        broker_value: |c| c.min_insync_replicas.to_string(),
    },
    TopicKey {
        name: "retention.bytes",
        broker_key: "log.retention.bytes",
        config_type: TYPE_LONG,
        doc: "partition size beyond which old segments are deleted; -1 unlimited",
        broker_value: |c| limit(c.log_retention_bytes),
    },
    TopicKey {
        name: "retention.ms",
        broker_key: "log.retention.ms",
        config_type: TYPE_LONG,
        doc: "age beyond which old segments are deleted; -1 unlimited",
        broker_value: |c| limit(c.log_retention_ms),
    },
    TopicKey {
        name: "segment.bytes",
        broker_key: "log.segment.bytes",
        config_type: TYPE_INT,
        doc: "size at which a segment is rolled",
        broker_value: |c| c.log_segment_bytes.to_string(),
    },
    TopicKey {
        name: "segment.ms",
        broker_key: "log.roll.ms",
        config_type: TYPE_LONG,
        doc: "age at which a segment is rolled",
        broker_value: |c| c.log_roll_ms.to_string(),
    },
];

pub fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// Whether `key` holds a comma-separated list (APPEND and SUBTRACT apply).
pub fn is_list(key: &str) -> bool {
    topic_key(key).is_some_and(|k| k.config_type == TYPE_LIST)
}

/// The value a topic has for `key`: its override, else the broker's.
pub fn topic_value(config: &BrokerConfig, topic: &TopicMeta, key: &str) -> Option<String> {
    topic
        .configs
        .get(key)
        .cloned()
        .or_else(|| topic_key(key).map(|k| (k.broker_value)(config)))
}

/// STATIC_BROKER_CONFIG when the configured value differs from the
/// built-in default, DEFAULT_CONFIG otherwise.
fn broker_source<T: PartialEq>(
    config: &BrokerConfig,
    defaults: &BrokerConfig,
    value: impl Fn(&BrokerConfig) -> T,
) -> i8 {
    if value(config) == value(defaults) {
        SOURCE_DEFAULT_CONFIG
    } else {
        SOURCE_STATIC_BROKER_CONFIG
    }
}

/// One config as it is answered.
struct Entry {
    name: String,
    value: Option<String>,
    source: i8,
    config_type: i8,
    read_only: bool,
    doc: &'static str,
    /// (name, value, source), highest precedence first.
    synonyms: Vec<(String, Option<String>, i8)>,
}

fn topic_entries(config: &BrokerConfig, topic: &TopicMeta) -> Vec<Entry> {
    let defaults = BrokerConfig::default();
    let mut out: Vec<Entry> = TOPIC_KEYS
        .iter()
        .map(|k| {
            let inherited = (k.broker_value)(config);
            let broker = (
                k.broker_key.to_string(),
                Some(inherited.clone()),
                broker_source(config, &defaults, k.broker_value),
            );
            let (value, source, synonyms) = match topic.configs.get(k.name) {
                Some(v) => (
                    v.clone(),
                    SOURCE_DYNAMIC_TOPIC_CONFIG,
                    vec![
                        (
                            k.name.to_string(),
                            Some(v.clone()),
                            SOURCE_DYNAMIC_TOPIC_CONFIG,
                        ),
                        broker,
                    ],
                ),
                None => (inherited, broker.2, vec![broker]),
            };
            Entry {
                name: k.name.to_string(),
                value: Some(value),
                source,
                config_type: k.config_type,
                read_only: false,
                doc: k.doc,
                synonyms,
            }
        })
        .collect();
    // Overrides the table does not know (a hand-edited topic table).
    for (k, v) in &topic.configs {
        if topic_key(k).is_none() {
            out.push(Entry {
                name: k.clone(),
                value: Some(v.clone()),
                source: SOURCE_DYNAMIC_TOPIC_CONFIG,
                config_type: TYPE_UNKNOWN,
                read_only: false,
                doc: "",
                synonyms: vec![(k.clone(), Some(v.clone()), SOURCE_DYNAMIC_TOPIC_CONFIG)],
            });
        }
    }
    out
}

/// A static broker config: key, type, doc, value.
type BrokerKey = (
    &'static str,
    i8,
    &'static str,
    fn(&BrokerConfig) -> Option<String>,
);

fn listeners(ls: &[Listener]) -> String {
    ls.iter()
        .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
        .collect::<Vec<_>>()
        .join(",")
}

const BROKER_KEYS: &[BrokerKey] = &[
    ("broker.id", TYPE_INT, "this broker's id", |c| {
        Some(c.broker_id.to_string())
    }),
    (
        "listeners",
        TYPE_STRING,
        "addresses the broker listens on",
        |c| Some(listeners(&c.listeners)),
    ),
    (
        "advertised.listeners",
        TYPE_STRING,
        "addresses clients are told to connect to",
        |c| Some(listeners(&c.advertised_listeners)),
    ),
    (
        "log.dirs",
        TYPE_STRING,
        "directories holding partition logs",
        |c| {
            Some(
                c.log_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
        },
    ),
    (
        "num.partitions",
        TYPE_INT,
        "partitions of an auto-created topic",
        |c| Some(c.num_partitions.to_string()),
    ),
    (
        "default.replication.factor",
        TYPE_INT,
        "replication factor of an auto-created topic",
        |c| Some(c.default_replication_factor.to_string()),
    ),
    (
        "log.segment.bytes",
        TYPE_INT,
        "size at which a segment is rolled",
        |c| Some(c.log_segment_bytes.to_string()),
    ),
    (
        "log.roll.ms",
        TYPE_LONG,
        "age at which a segment is rolled",
        |c| Some(c.log_roll_ms.to_string()),
    ),
    (
        "log.retention.ms",
        TYPE_LONG,
        "age beyond which old segments are deleted; -1 unlimited",
        |c| Some(limit(c.log_retention_ms)),
    ),
    (
        "log.retention.bytes",
        TYPE_LONG,
        "partition size beyond which old segments are deleted; -1 unlimited",
        |c| Some(limit(c.log_retention_bytes)),
    ),
    (
        "log.retention.check.interval.ms",
        TYPE_LONG,
        "how often retention and time-based rolls run",
        |c| Some(c.log_retention_check_interval_ms.to_string()),
    ),
    (
        "log.index.interval.bytes",
        TYPE_INT,
        "bytes between offset index entries",
        |c| Some(c.log_index_interval_bytes.to_string()),
    ),
    (
        "min.insync.replicas",
        TYPE_INT,
        "replicas that must have a write for acks=all",
        |c| Some(c.min_insync_replicas.to_string()),
    ),
    (
        "auto.create.topics.enable",
        TYPE_BOOLEAN,
        "create unknown topics on Metadata and Produce",
        |c| Some(c.auto_create_topics_enable.to_string()),
    ),
    (
        "message.max.bytes",
        TYPE_INT,
        "largest record batch a topic accepts",
        |c| Some(c.message_max_bytes.to_string()),
    ),
    (
        "socket.request.max.bytes",
        TYPE_INT,
        "largest request frame",
        |c| Some(c.socket_request_max_bytes.to_string()),
    ),
    (
        "connections.max.idle.ms",
        TYPE_LONG,
        "idle time after which a connection is closed",
        |c| Some(c.connections_max_idle_ms.to_string()),
    ),
    (
        "socket.inflight.requests.max",
        TYPE_INT,
        "requests of one connection processed at once",
        |c| Some(c.socket_inflight_requests_max.to_string()),
    ),
    (
        "shard.count",
        TYPE_INT,
        "executor threads, one per core",
        |c| Some(c.shard_count.to_string()),
    ),
    (
        "delete.topic.enable",
        TYPE_BOOLEAN,
        "whether DeleteTopics may delete",
        |c| Some(c.delete_topic_enable.to_string()),
    ),
    ("cluster.id", TYPE_STRING, "the expected cluster id", |c| {
        c.cluster_id.clone()
    }),
    (
        "fetch.zero.copy",
        TYPE_BOOLEAN,
        "splice fetched records from the page cache",
        |c| Some(c.fetch_zero_copy.to_string()),
    ),
];

fn broker_entries(config: &BrokerConfig) -> Vec<Entry> {
    let defaults = BrokerConfig::default();
    let fixed = BROKER_KEYS.iter().map(|&(name, config_type, doc, value)| {
        let source = broker_source(config, &defaults, value);
        (name, value(config), source, config_type, doc)
    });
    // The broker-level keys topics inherit that BrokerConfig does not hold.
    let inherited = TOPIC_KEYS
        .iter()
        .filter(|k| !BROKER_KEYS.iter().any(|b| b.0 == k.broker_key))
        .map(|k| {
            let source = broker_source(config, &defaults, k.broker_value);
            (
                k.broker_key,
                Some((k.broker_value)(config)),
                source,
                k.config_type,
                k.doc,
            )
        });
    fixed
        .chain(inherited)
        .map(|(name, value, source, config_type, doc)| Entry {
            name: name.to_string(),
            synonyms: vec![(name.to_string(), value.clone(), source)],
            value,
            source,
            config_type,
            read_only: true,
            doc,
        })
        .collect()
}

pub async fn handle(header: &Header, body: &[u8], shard: &Rc<Shard>) -> Response {
    let request: DescribeConfigsRequest = match decode(header, body) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let results = request
        .resources
        .iter()
        .map(|r| describe(header.api_version, &request, r, shard))
        .collect();
    respond(
        header,
        &DescribeConfigsResponse::default().with_results(results),
    )
}

fn describe(
    version: i16,
    request: &DescribeConfigsRequest,
    resource: &DescribeConfigsResource,
    shard: &Shard,
) -> DescribeConfigsResult {
    let config = &shard.shared.config;
    let name = resource.resource_name.as_str();
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    let entries = match resource.resource_type {
        RESOURCE_TOPIC => match shard.shared.metadata.snapshot().topic(name) {
            Some(topic) => Ok(topic_entries(config, topic)),
            None => Err((
                ErrorCode::UnknownTopicOrPartition,
                format!("topic {name:?} does not exist"),
            )),
        },
        // An empty name asks for the cluster-wide dynamic defaults, of
        // which a broker with static configs has none.
        RESOURCE_BROKER if name.is_empty() => Ok(Vec::new()),
        RESOURCE_BROKER if name.parse::<i32>().ok() == Some(config.broker_id) => {
            Ok(broker_entries(config))
        }
        RESOURCE_BROKER => Err((
            ErrorCode::InvalidRequest,
            format!(
                "unexpected broker id {name:?}, expected {} or an empty string",
                config.broker_id
            ),
        )),
        other => Err((
            ErrorCode::InvalidRequest,
            format!("resource type {other} is not supported (2 = topic, 4 = broker)"),
        )),
    };
    match entries {
        Ok(entries) => result.with_configs(
            entries
                .into_iter()
                .filter(|e| {
                    resource
                        .configuration_keys
                        .as_ref()
                        .is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                })
                .map(|e| encode_entry(version, request, e))
                .collect(),
        ),
        Err((code, message)) => result
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(&message))),
    }
}

fn encode_entry(
    version: i16,
    request: &DescribeConfigsRequest,
    e: Entry,
) -> DescribeConfigsResourceResult {
    let synonyms = if request.include_synonyms {
        e.synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(&name))
                    .with_value(value.as_deref().map(str_bytes))
                    .with_source(source)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut out = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&e.name))
        .with_value(e.value.as_deref().map(str_bytes))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms);
    if version >= 3 {
        out = out.with_config_type(e.config_type);
        if request.include_documentation && !e.doc.is_empty() {
            out = out.with_documentation(Some(str_bytes(e.doc)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::validate_topic_config;

    #[test]
    fn every_topic_key_is_one_the_table_accepts_with_its_default() {
        let config = BrokerConfig::default();
        for k in TOPIC_KEYS {
            let value = (k.broker_value)(&config);
            validate_topic_config(k.name, &value)
                .unwrap_or_else(|e| panic!("{}: default {value:?}: {e}", k.name));
        }
        assert!(is_list("cleanup.policy"));
        assert!(!is_list("retention.ms"));
    }

    #[test]
    fn sources_tell_configured_from_built_in() {
        let (config, _) =
            BrokerConfig::from_pairs(&[("log.retention.ms".to_string(), "1000".to_string())])
                .expect("config");
        let topic = TopicMeta {
            name: "t".into(),
            id: [0; 16],
            partitions: 1,
            replication_factor: 1,
            configs: [("segment.bytes".to_string(), "1024".to_string())].into(),
        };
        let entries = topic_entries(&config, &topic);
        let find = |name: &str| entries.iter().find(|e| e.name == name).expect(name);
        let retention = find("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.source, SOURCE_STATIC_BROKER_CONFIG);
        let segment = find("segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("1024"));
        assert_eq!(segment.source, SOURCE_DYNAMIC_TOPIC_CONFIG);
        assert_eq!(segment.synonyms.len(), 2);
        assert_eq!(find("cleanup.policy").source, SOURCE_DEFAULT_CONFIG);
        assert_eq!(
            topic_value(&config, &topic, "cleanup.policy").as_deref(),
            Some("delete")
        );
    }
}
