//! Prometheus metrics: `GET /metrics` on `metrics.listen`, in the text
//! exposition format 0.0.4 that `promtool check metrics` and every
//! Prometheus read (ADR 0003 says why the `prometheus` crate writes it).
//!
//! # Layout
//!
//! - [`shard`]: what each shard counts for itself on the request path
//!   (plain thread-local cells: no atomic is shared between shards or
//!   touched twice per request), and the snapshot a shard takes of those
//!   counters, its partitions, its consumer groups and its io_uring ring.
//! - [`coordinator`]: the coordinator thread's figures, published by its
//!   one writer every tick.
//! - [`collect`]: a scrape: one job per shard through the mesh, the
//!   answers merged into metric families with process, disk and
//!   coordinator figures.
//! - [`http`]: the endpoint's own thread (control plane, not a shard).
//!
//! Every family, its labels and its meaning are listed in the README
//! ("Metrics").

pub mod collect;
pub mod coordinator;
pub mod http;
pub mod shard;
