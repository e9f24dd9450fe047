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
//! - [`message`]: election notifications and ZAB packets.
//! - [`election`]: fast leader election, one notification at a time.
//! - [`clients`]: client operations, replies, per-session FIFO queues.
//! - [`codec`]: versioned, CRC-32C-checked frames for log records,
//!   snapshots and messages; typed decode errors, never a panic.
//! - [`peer`]: the sans-IO ZAB peer (`Peer::step(Input) -> Vec<Output>`):
//!   discovery, synchronization, broadcast, sessions, and the contract
//!   with the driver about persistence.
//! - [`sim`]: the deterministic simulator (seeded PRNG, virtual clock,
//!   faulty network and disks, randomized clients, invariant checker).
//!
//! # Where this differs from ZooKeeper, and why
//!
//! - ZAB packets carry a link id and sequence numbers instead of relying on
//!   TCP: the core tolerates drop, duplication and reordering, so drivers
//!   and the simulator may use any transport.
//! - A proposal ACK is cumulative, and a NEWLEADER ack counts as the ACK of
//!   every transaction in that learner's sync stream.
//! - Election decides as soon as a quorum agrees (no `finalizeWait`); a
//!   leader re-elects when a learner promised a later epoch than its own,
//!   where ZooKeeper leaves that learner LOOKING until the leader fails.
//! - Observers receive PROPOSAL and COMMIT (never ACK) rather than INFORM.
//! - Session ids are the zxid of their createSession transaction; there
//!   are no local sessions, ACLs, containers, TTL nodes or reconfig.
//! - The data tree holds only committed state; restart replays the
//!   snapshot, and logged-but-uncommitted transactions wait for a leader.

pub mod clients;
pub mod codec;
pub mod election;
pub mod ids;
pub mod kafka;
pub mod message;
pub mod peer;
pub mod sim;
pub mod tree;
pub mod txn;
