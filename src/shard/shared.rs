//! What every shard of a broker shares: the mesh, the configuration, the clock, and two
//! counters that need no more than a relaxed atomic.

use super::clock::Clock;
use super::mesh::Mesh;
use crate::config::Config;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

/// What every shard shares.
pub struct Shared {
    pub mesh: Arc<Mesh>,
    pub config: Config,
    pub clock: Clock,
    /// Connections open in the process, for `max_connections`.
    pub connections: AtomicUsize,
    /// Orders retained updates across shards (one increment per retained PUBLISH).
    pub retain_seq: AtomicU64,
}

impl Shared {
    /// What `shards` shards share, their mesh queues as long as the configuration says.
    pub fn new(config: Config, shards: usize) -> Self {
        Shared {
            mesh: Arc::new(Mesh::new(shards, config.mesh_queue as usize)),
            config,
            clock: Clock::start(),
            connections: AtomicUsize::new(0),
            retain_seq: AtomicU64::new(0),
        }
    }
}
