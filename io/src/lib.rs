//! Ringtail's I/O layer: a thread-per-core io_uring runtime and the durable,
//! Kafka-layout log every partition stands on.
//!
//! # Layout
//!
//! - [`rt`]: one io_uring per thread; executor, file and TCP operations
//!   (including zero-copy SPLICE file -> socket), timers, and single-thread
//!   notify / oneshot primitives.
//! - [`log`]: the segmented partition log (segments, offset and time
//!   indexes, group-committed durability, recovery, retention, compaction).

pub mod log;
pub mod rt;
