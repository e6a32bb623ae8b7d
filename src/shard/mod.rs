//! The only module that touches the kernel. One shard thread per core, each running its
//! own io_uring event loop (`reactor/`; COOP_TASKRUN, SINGLE_ISSUER, DEFER_TASKRUN), each
//! with its own SO_REUSEPORT socket on every listener so the kernel spreads connections
//! over the shards. Shards share nothing but the mesh (`mesh.rs`), the configuration, the
//! clock and two counters.
//!
//! # Layout
//!
//! A shard (`state::Shard`) is a data plane and a control plane:
//! - `plane.rs`: the data plane, the path of a message from PUBLISH to subscribers,
//!   composed of the parts below;
//!   - `routes.rs`: the trie, per-filter counts, route cache and retained copy;
//!   - `sessions.rs`: the session table and the one place a delivery reaches a session;
//!   - `connections.rs`: connections, their output, and their life (`connections::Life`);
//!   - `outbox.rs`: this shard's sending end of the mesh, with its backlog;
//!   - `drops.rs`: drop counters, logged once per episode;
//! - `state.rs`: the shard itself, and what waits for other shards: CONNECTs
//!   (`registry.rs`), SUBACK barriers (`barriers.rs`), sessions moving between shards
//!   (`takeover.rs`, `handover.rs`); `connack.rs` decides a CONNECT's answer;
//! - `input.rs`: a connection's reading side (CONNECT phase, then decoding);
//! - `reactor/`: the event loop (`mod.rs`), the ring (`ring.rs`), sockets (`socket.rs`);
//! - `mesh.rs`, `messages.rs`: the queues between shards and what travels on them;
//! - `shared.rs`: what the shards share; `clock.rs`, `ids.rs`, `slab.rs`, `bufring.rs`:
//!   the clock, the ids, the tables behind them, the receive buffers.
//!
//! Everything but `reactor/` is synchronous and free of sockets and clocks, which is what
//! lets `harness.rs` drive several shards in one test, deterministically.

mod barriers;
mod bufring;
mod clock;
mod connack;
mod connections;
mod drops;
mod handover;
mod ids;
mod input;
mod mesh;
mod messages;
mod outbox;
mod plane;
mod reactor;
mod registry;
mod routes;
mod sessions;
mod shared;
mod slab;
mod state;
mod takeover;
mod xorshift;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod harness_tests;
#[cfg(test)]
mod model_tests;

use crate::config::Config;
use shared::Shared;
use state::Shard;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The oldest kernel ringmq runs on: DEFER_TASKRUN arrived in Linux 6.1 (multishot
/// receive in 6.0, provided-buffer rings in 5.19).
pub const MIN_KERNEL: &str = "6.1";

/// One shard's socket for one configured listener address.
pub(crate) struct BoundListener {
    pub socket: TcpListener,
    /// The port actually bound (the configured one may be 0).
    pub port: u16,
    /// The listener's index in [`Config::bind_listeners`]: which access control applies.
    pub index: u16,
}

/// A running broker: its shard threads and the addresses it listens on.
pub struct Broker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
}

/// Fails with one clear line when io_uring is missing, disabled or too old.
pub fn check_io_uring() -> anyhow::Result<()> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() == "2" {
            anyhow::bail!("io_uring is disabled on this machine (kernel.io_uring_disabled = 2); ringmq needs io_uring (Linux {MIN_KERNEL} or later)");
        }
    }
    reactor::probe().map_err(|e| {
        anyhow::anyhow!(
            "io_uring is not available ({e}); ringmq needs Linux {MIN_KERNEL} or later with io_uring enabled (check kernel.io_uring_disabled and any seccomp profile)"
        )
    })?;
    Ok(())
}

/// Binds one SO_REUSEPORT socket per shard on `addr`; the first decides the port when
/// `addr` asks for port 0.
fn bind_reuseport(addr: SocketAddr, shards: usize) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::with_capacity(shards);
    let mut addr = addr;
    for _ in 0..shards {
        let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
        let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
        s.set_reuse_port(true)?;
        s.set_reuse_address(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.bind(&addr.into())?;
        s.listen(4096)?;
        let l: TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Pins the calling thread to one CPU.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays in bounds for cpu < CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                crate::log!(Warning, "Warning: could not pin a shard to CPU {}.", cpu);
            }
        }
    }
}

impl Broker {
    /// Starts the shards and listeners. `port` applies when no listener is configured.
    pub fn start(config: Config, port: u16) -> anyhow::Result<Broker> {
        check_io_uring()?;
        refuse_access_control_until_enforced(&config)?;
        let shards = config.cores.max(1);
        let mut per_shard: Vec<Vec<BoundListener>> = (0..shards).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        let default_listeners = config.listeners.is_empty();
        for (index, listener) in config.bind_listeners(port).iter().enumerate() {
            for &addr in &listener.addrs {
                match bind_reuseport(addr, shards) {
                    Ok(ls) => {
                        let local = ls[0].local_addr()?;
                        crate::log!(
                            Notice,
                            "Opening {} listen socket on {}.",
                            if local.is_ipv6() { "ipv6" } else { "ipv4" },
                            local
                        );
                        addrs.push(local);
                        for (i, socket) in ls.into_iter().enumerate() {
                            per_shard[i].push(BoundListener {
                                socket,
                                port: local.port(),
                                index: index as u16,
                            });
                        }
                    }
                    // ::1 may be missing where IPv6 is off; the loopback default then runs on IPv4.
                    Err(e) if default_listeners && addr.is_ipv6() => {
                        crate::log!(Warning, "Warning: not listening on {}: {}.", addr, e);
                    }
                    Err(e) => anyhow::bail!("cannot listen on {addr}: {e}"),
                }
            }
        }
        if default_listeners {
            crate::log!(Notice, "Starting in local only mode. Connections will only be possible from clients running on this machine.");
            crate::log!(
                Notice,
                "Create a configuration file which defines a listener to allow remote access."
            );
        }
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpus: Option<Vec<usize>> = match &config.cpus {
            Some(list) => Some(list.clone()),
            // Pin only when every shard gets a CPU of its own; otherwise the kernel places them.
            None if shards <= online => Some((0..shards).collect()),
            None => None,
        };
        let shared = Arc::new(Shared::new(config, shards));
        let mut threads = Vec::with_capacity(shards);
        for (id, listeners) in per_shard.into_iter().enumerate() {
            let shared = shared.clone();
            let cpu = cpus.as_ref().map(|c| c[id % c.len()]);
            let t = std::thread::Builder::new().name(format!("ringmq-shard-{id}")).spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to_cpu(cpu);
                }
                // A shard that stops on its own (io_uring_enter failing) takes its clients
                // and listeners with it: that is the whole broker failing, so it panics,
                // and the binary's panic hook aborts the process for a supervisor to restart.
                if let Err(e) = run_shard(id as u16, shared, listeners) {
                    crate::log!(Error, "Error: shard {} stopped: {}", id, e);
                    panic!("shard {id} stopped: {e}");
                }
            })?;
            threads.push(t);
        }
        crate::log!(Notice, "ringmq version {} running with {} shard(s).", env!("CARGO_PKG_VERSION"), shards);
        Ok(Broker { shared, threads, addrs })
    }

    /// The addresses the broker listens on (with the ports actually bound).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops every shard (clients get DISCONNECT 0x8B in MQTT 5, wills are published)
    /// and waits for the threads.
    pub fn shutdown(self) {
        self.shared.mesh.shut_down();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// `password_file`, `acl_file` and `scram_file` are parsed but not yet enforced by the
/// shards: starting with them would let in clients the file means to keep out.
fn refuse_access_control_until_enforced(config: &Config) -> anyhow::Result<()> {
    let all = std::iter::once(&config.security).chain(config.listeners.iter().map(|l| &l.security));
    for s in all {
        if let Some(p) = s.password_file.as_ref().or(s.acl_file.as_ref()).or(s.scram_file.as_ref()) {
            anyhow::bail!("{}: password_file, acl_file and scram_file are not enforced yet", p.display());
        }
    }
    Ok(())
}

fn run_shard(id: u16, shared: Arc<Shared>, listeners: Vec<BoundListener>) -> anyhow::Result<()> {
    let shard = Shard::new(id, shared.clone(), shared.clock.now_ms());
    reactor::Reactor::new(shard, shared, listeners)?.run()?;
    Ok(())
}
