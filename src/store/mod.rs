//! Persistence: what a shard keeps on disk so that sessions, retained messages and QoS 1/2
//! messages survive a restart or a crash (see docs/persistence.md).
//!
//! - `log.rs`: one shard's append-only log of checksummed key-value records, with its
//!   recovery (a torn or corrupt tail is cut) and compaction (snapshot, then rename);
//! - `writer.rs`: a shard's writer thread, fed by a bounded queue: group commit, the
//!   durability settings, answers back to the shard;
//! - `records.rs`: what the log holds: retained messages, sessions, their queued and
//!   in-flight messages, inbound QoS 2 ids, as keys and values.
//!
//! Everything here is synchronous file I/O and runs on a shard's writer thread or at
//! start-up, never on a shard's event loop.

pub mod log;
pub mod records;
pub mod writer;
