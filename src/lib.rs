//! ringmq: a thread-per-core io_uring MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! # Layout
//!
//! - [`protocol`]: the sans-IO MQTT codec. Packets, properties, reason codes, topic
//!   validation and matching. No sockets, no clock; decoding is zero-copy over `Bytes`.
//! - [`router`]: the per-shard topic trie (local subscribers plus per-shard interest
//!   counts for the other shards), the retained store and shared-subscription selection.
//! - [`session`]: the per-client state machine: packet ids, QoS 1/2 inflight windows in
//!   both directions, the offline queue, keepalive and will. Inputs are `handle_*`,
//!   outputs are `poll_*`, time is passed in.
//! - [`shard`]: the only module that touches the kernel: threads pinned to CPUs, one
//!   io_uring event loop each (on the io-uring crate: multishot accept and receive,
//!   provided buffers, batched sends), listeners, connections and the cross-shard mesh.
//! - [`config`]: the command line and the Mosquitto-syntax config file, validated once.
//! - [`log`]: Mosquitto-shaped log lines.

pub mod config;
pub mod log;
pub mod protocol;
pub mod router;
pub mod session;
pub mod shard;
