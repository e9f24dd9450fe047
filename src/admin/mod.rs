//! The command line's client side: `ringtail topics`, `console-producer`
//! and `console-consumer`, with the flags and output of Kafka's scripts.
//!
//! # Layout
//!
//! - [`client`]: a small blocking Kafka client (one `TcpStream` per
//!   broker, ApiVersions handshake, correlation ids, Metadata helpers,
//!   connections to partition leaders); reusable by the perf tool and
//!   tests.
//! - [`topics`]: `kafka-topics.sh`: create, list, describe, alter, delete.
//! - [`producer`]: `kafka-console-producer.sh`: stdin lines to batches,
//!   Kafka's murmur2 partitioner, every answer checked.
//! - [`consumer`]: `kafka-console-consumer.sh`: assign, or with
//!   `--group` a group member (JoinGroup/SyncGroup with the range and
//!   roundrobin assignors, heartbeats, commits, LeaveGroup); long-poll
//!   Fetch, Kafka's message formatter.
//! - [`groups`]: `kafka-consumer-groups.sh`: list, describe (offsets,
//!   lag, members), reset offsets, delete groups and offsets.
//! - [`codec`]: CRC checks and Kafka's compression codecs for fetched
//!   batches.
//! - [`props`]: `key=value` settings from flags and properties files.

pub mod client;
pub mod codec;
pub mod consumer;
pub mod groups;
pub mod producer;
pub mod props;
pub mod topics;
