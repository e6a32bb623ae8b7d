//! What every shard of a broker shares: the mesh, the configuration, the clock, and two
//! counters that need no more than a relaxed atomic.

use super::clock::Clock;
use super::mesh::Mesh;
use super::reload::ConfigHandle;
use super::security::{AccessControl, AccessHandle};
use super::tls::{Handshakes, TlsConfigs};
use super::verifier::Verifier;
use crate::config::Config;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

/// What every shard shares.
pub struct Shared {
    pub mesh: Arc<Mesh>,
    /// The configuration as the broker started; the shards read their own copy
    /// (`DataPlane::config`), which a reload replaces through `reloadable`.
    pub config: Config,
    /// The configuration with the limits a reload changes (`reload.rs`).
    pub reloadable: ConfigHandle,
    pub clock: Clock,
    /// Connections open in the process, for `max_connections`.
    pub connections: AtomicUsize,
    /// Orders retained updates across shards (one increment per retained PUBLISH).
    pub retain_seq: AtomicU64,
    /// The password and ACL files, swapped whole by a reload.
    pub access: AccessHandle,
    /// Where password checks run, off the shards' loops.
    pub verifier: Verifier,
    /// Each TLS listener's rustls configuration, swapped by a reload.
    pub tls: TlsConfigs,
    /// Where TLS handshakes run, off the shards' loops (`None`: no TLS listener).
    pub handshakes: Option<Handshakes>,
    /// Each shard's store and what the stores held, for the shards to take at start.
    pub persist: super::persist::Start,
}

impl Shared {
    /// What `shards` shards share, their mesh queues as long as the configuration says,
    /// with password checks on `verifier_threads` threads (0: inline, for the
    /// deterministic tests).
    pub fn new(
        config: Config,
        shards: usize,
        access: AccessControl,
        verifier_threads: usize,
    ) -> std::io::Result<Self> {
        let mesh = Arc::new(Mesh::new(shards, config.mesh_queue as usize));
        let verifier = match verifier_threads {
            0 => Verifier::inline(mesh.clone()),
            n => Verifier::threads(mesh.clone(), n)?,
        };
        Ok(Shared {
            mesh,
            reloadable: ConfigHandle::new(config.clone()),
            config,
            clock: Clock::start(),
            connections: AtomicUsize::new(0),
            retain_seq: AtomicU64::new(0),
            access: AccessHandle::new(access),
            verifier,
            tls: TlsConfigs::default(),
            handshakes: None,
            persist: super::persist::Start::default(),
        })
    }

    /// For the sans-IO tests: the files the configuration names (which must load), and
    /// password checks inline.
    #[cfg(test)]
    pub fn for_tests(config: Config, shards: usize) -> Self {
        let access = AccessControl::load(&config).unwrap_or_else(|e| panic!("{}", e.join("\n")));
        Shared::new(config, shards, access, 0).expect("no threads to start")
    }
}
