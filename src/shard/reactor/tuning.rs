//! The event loop's bounds and intervals, each with the measurement or reason behind it.

use std::time::Duration;

/// Size of each of the shard's receive buffers; how many there are is the
/// `recv_buffers` option (default 128: 2 MiB per shard, touched as used). A pipelining
/// publisher's bytes cost one receive per buffer: 4 KiB buffers made QoS 0 pairs about 7%
/// dearer than 16 KiB; 32 KiB and 64 KiB measured no better than 16 (scripts/ab.sh).
pub const RECV_BUFFER_BYTES: usize = 16 * 1024;
/// Received bytes are staged in chunks of this size (decoded packets are slices of them).
pub const RECV_CHUNK_BYTES: usize = 64 * 1024;
/// A connection's output buffers are reused from send to send whatever their size (regrowing
/// a fan-out subscriber's buffer from empty every turn cost 7% of the broker's CPU in QoS 0
/// fan-out, 1 -> 50 subscribers); buffers above this size are given back by the
/// housekeeping once the connection has gone quiet.
pub const IDLE_BUFFER_KEEP_BYTES: usize = 64 * 1024;
/// Output produced per turn before the rest of the received data waits for the next turn:
/// without a bound a turn behind a fast publisher grew to megabytes of output per
/// subscriber and the appends ran out of cache (QoS 0 fan-out, 1 -> 50: 35% more CPU per
/// message); a bound on input instead (64 KiB) cut the messages per send in QoS 0 pairs,
/// and the sends cost 20% more.
pub const TURN_OUTPUT_BYTES: usize = 2 << 20;
/// Mesh messages taken from one peer per turn, so one busy peer cannot starve the
/// others or the shard's own sockets.
pub const MESH_BATCH: usize = 1024;
/// Periodic work runs this often; while the mesh is backed up, much more often.
pub const HOUSEKEEPING: Duration = Duration::from_millis(100);
pub const BACKLOG_RETRY: Duration = Duration::from_micros(200);
/// Keepalive deadlines are checked this often: 1.5 x keepalive is met within it.
pub const KEEPALIVE_SWEEP_MS: u64 = 250;
/// The shard's once-a-second timers (wills, expiry, drop logs).
pub const SLOW_TIMERS_MS: u64 = 1000;
/// How long a shutting-down shard lets connections flush their last packets.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_millis(500);
/// How long a connection the broker has finished writing to is still read (and what
/// arrives discarded) before its socket is closed: see [`Reactor::finish_writer`].
pub const LINGER_MS: u64 = 2000;
