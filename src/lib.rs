//! Ringtail: a Kafka-wire-compatible broker with a built-in coordinator.
//!
//! # Layout
//!
//! - [`config`]: `server.properties` with Kafka's key names.
//! - [`shard`]: pinned executor threads, placement of partitions on
//!   shards, and the cross-core mesh.
//! - [`server`]: the listener, the connection loop and one handler module
//!   per Kafka API (`server/handlers/`).
//! - [`partition`]: a partition on its owner shard: log, high watermark,
//!   parked fetches.
//! - [`group`]: the group coordinator (consumer groups, committed
//!   offsets in `__consumer_offsets`).
//! - [`replication`]: the sans-IO replication core: ISR, high watermark,
//!   `acks=all`, truncation by leader epoch, and its simulator.
//! - [`metadata`]: the topic table (names, ids, partition counts, configs).
//! - [`producer_ids`]: producer ids for InitProducerId, persisted in blocks.
//! - [`broker`]: start-up, signals and clean shutdown.
//! - [`coordinator`]: the embedded ZAB peer's driver (WAL, peer links,
//!   the tools' port), the broker's registration, the coordinator shell.
//! - [`controller`]: the cluster view, replica assignment and the
//!   controller's decisions (leader election, ISR, controlled shutdown),
//!   driven on the coordinator thread.
//! - [`metrics`]: Prometheus `/metrics` (per-shard counters merged at
//!   scrape time, on the endpoint's own thread).
//! - [`admin`]: the CLI's client side (topics, console producer and
//!   consumer) and a small blocking client.

pub mod admin;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod group;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod producer_ids;
pub mod replication;
pub mod server;
pub mod shard;
#[cfg(test)]
mod sim_rng;
