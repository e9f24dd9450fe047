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
//! send time ([`rate`]). Throughput counts acknowledged records (acks=0:
//! written ones) over the time from the start to the last answer.
//!
//! Producer settings keep Kafka's names. `--defaults java` (the default)
//! starts them from Kafka's Java producer, as `kafka-producer-perf-test`
//! runs it: `batch.size` 16384, `linger.ms` 5, 5 requests in flight, a
//! 32 MiB buffer, requests of up to 1 MiB carrying one batch of every
//! partition that has one, and the uniform sticky partitioner for records
//! without a key. `--defaults librdkafka` starts them from librdkafka's,
//! as `rdkafka_performance` runs it (`perf/broker.sh` adds `linger.ms=5
//! batch.size=1000000`): 1 MB batches, one partition per Produce request,
//! up to a million requests in flight, a 1 GiB queue. `--batch-size`,
//! `--linger-ms`, `--max-in-flight`, `--buffer-memory`,
//! `--max-request-size` (1: one batch per request) and `--partitioner
//! sticky|round-robin` override single settings; the first stderr line
//! shows the settings in force. Neither client compresses by default, nor
//! does ringtail-perf.
//!
//! After a produce run a line on stderr tells the request shape the
//! broker saw (requests, batches per request, KiB and records per
//! batch); after a produce or consume run another tells the CPU the load
//! generator used, as a share of one core: near 100% the generator, not
//! the broker, set the rate.
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
