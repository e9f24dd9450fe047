//! Ringtail's load generator, `ringtail-perf`, speaking the Kafka
//! protocol: `produce`, `consume` and `end-to-end`, with output laid out
//! like Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
//!
//! # Layout
//!
//! - [`rate`]: the open-loop schedule (each record's intended send time)
//!   and why latency counts from it (coordinated omission).
//! - [`stats`]: HDR histograms with microsecond resolution, the progress
//!   and summary lines, and a parser for them (tests, scripts).
//! - [`kafka`]: topic layout (Metadata, CreateTopics), connections,
//!   framed reads, the hand-written Produce request encoder.
//! - [`produce`]: producer threads: batching per partition, up to
//!   `max.in.flight` pipelined requests per connection, per-record latency.
//! - [`consume`]: fetchers over hand-assigned partitions (no groups).
//! - [`end_to_end`]: producer and consumer in one process, latency from
//!   intended send time to consumption.
//!
//! The binary is `src/main.rs`; `src/bin/storage_bench.rs` is the storage
//! engine's own benchmark.

pub mod consume;
pub mod end_to_end;
pub mod kafka;
pub mod produce;
pub mod rate;
pub mod stats;
