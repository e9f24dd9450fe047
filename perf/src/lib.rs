//! Ringtail's load generator, `ringtail-perf`, speaking the Kafka
//! protocol: `produce`, `consume` and `end-to-end`, with output laid out
//! like Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
//!
//! # Usage
//!
//! ```text
//! ringtail-perf produce --bootstrap-server 127.0.0.1:9092 --topic t --num-records 1000000 \
//!     --record-size 1024 --throughput 100000 --acks 1 --partitions 16 --producers 1 --create-topic
//! ringtail-perf consume --bootstrap-server 127.0.0.1:9092 --topic t --messages 1000000 --from-beginning
//! ringtail-perf end-to-end --bootstrap-server 127.0.0.1:9092 --topic e2e --num-records 100000 \
//!     --record-size 1024 --throughput 10000 --create-topic
//! ```
//!
//! `--throughput -1` is the closed-loop maximum rate; any positive rate is
//! an open-loop schedule whose latencies count from each record's intended
//! send time ([`rate`]). Producer settings keep Kafka's names and
//! defaults (`--batch-size 16384 --linger-ms 5 --max-in-flight 5
//! --buffer-memory 33554432 --max-request-size 1048576`). librdkafka sends
//! one partition per Produce request with up to a million requests in
//! flight; `--max-request-size 1 --max-in-flight 1000000 --batch-size
//! 1000000` gives ringtail-perf the same request shape. After a produce
//! run a line on stderr tells the shape the broker saw (requests, batches
//! per request, KiB and records per batch).
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
