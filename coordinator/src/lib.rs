//! ZooKeeper-style coordinator for Ringtail: a sans-IO ZAB core, the
//! replicated metadata tree, and a deterministic simulator.
//!
//! # Layout
//!
//! - [`ids`]: newtypes `Zxid`, `Epoch`, `NodeId`, `SessionId`, ...
//! - [`txn`]: client write operations, the idempotent transactions the
//!   leader preps them into, results and ZooKeeper error codes.
//! - [`tree`]: the data tree (znodes, stats, sessions, ephemerals) with an
//!   incremental digest, and the per-peer one-shot watch table.
//! - [`kafka`]: Kafka's ZooKeeper layout (`/brokers/ids/N`, ...).

pub mod ids;
pub mod kafka;
pub mod tree;
pub mod txn;
