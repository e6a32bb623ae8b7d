//! ringmq: a thread-per-core io_uring MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! # Layout
//!
//! - [`protocol`]: the sans-IO MQTT codec. Packets, properties, reason codes, topic
//!   validation and matching. No sockets, no clock; decoding is zero-copy over `Bytes`.
//! - [`router`]: the per-shard topic trie (local subscribers plus per-shard interest
//!   counts for the other shards), the route cache, the merge of overlapping matches,
//!   shared-subscription selection, and the retained store in its process-wide order.
//! - [`session`]: the per-client state machine: packet ids, QoS 1/2 in-flight windows in
//!   both directions, the offline queue, topic aliases, message expiry. Its inputs are
//!   the client's packets (`accept_publish`, `handle_puback`, ...) and deliveries
//!   (`deliver`); its output is the encoded packets it writes into the buffer it is
//!   given; every input that depends on time takes it (`now_ms`). Keepalive and wills
//!   are the shard's, which owns the connection.
//! - [`shard`]: the only module that touches the kernel, and only in `shard/reactor/`:
//!   threads pinned to CPUs, one io_uring event loop each (multishot accept and receive,
//!   provided buffers, batched sends). The rest of the shard (connections, sessions,
//!   routes, the mesh between shards, the takeover protocol) is synchronous and takes
//!   time as an input, so tests drive several shards at once without sockets.
//! - [`config`]: the command line and the Mosquitto-syntax config file, validated once.
//! - [`log`](mod@log): Mosquitto-shaped log lines.
//! - [`store`]: persistence, one append-only log per shard (recovery, compaction).

pub mod auth;
pub mod config;
pub mod log;
pub mod protocol;
pub mod router;
pub mod session;
pub mod shard;
pub mod store;
