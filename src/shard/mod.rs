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
//!   - `drops.rs`: drop counters, logged once per episode; `counters.rs`: the
//!     shard's message counts, for `$SYS` and metrics (`sys.rs`);
//!   - `flow.rs`: flow control, a full subscriber queue holding its publishers;
//! - `state.rs`: the shard itself, and what waits for other shards: CONNECTs
//!   (`registry.rs`), SUBACK barriers (`barriers.rs`), sessions moving between shards
//!   (`takeover.rs`, `handover.rs`); `connack.rs` decides a CONNECT's answer;
//! - access control: `login.rs` takes a CONNECT from its first checks through its
//!   credentials (a password compared on the `verifier.rs` threads, or a SCRAM exchange)
//!   to its registration, and handles re-authentications;
//!   `security.rs` holds the password, ACL and SCRAM files per listener behind the handle a
//!   reload swaps, and each session's ACL (checked on PUBLISH, SUBSCRIBE and delivery);
//! - `persist.rs`: the shard's store (persistence on): its writer thread, the
//!   acknowledgements that wait for a write, what the stores held at start-up;
//! - `input.rs`: a connection's reading side (CONNECT phase, then decoding);
//! - `layers.rs`: what a listener puts between a connection's socket and its input:
//!   `tls/` (rustls; each listener's configuration behind the handle a reload swaps) and
//!   `ws.rs` (WebSockets: the upgrade and RFC 6455 framing), or both;
//! - `reactor/`: the event loop (`mod.rs`), the ring (`ring.rs`), sockets (`socket.rs`);
//! - `mesh.rs`, `messages.rs`: the queues between shards and what travels on them;
//! - `sys.rs`: `$SYS`, from the figures each shard copies into a shared board;
//!   `metrics.rs`: the Prometheus endpoint's thread, reading the same board;
//! - `reload.rs`: the limits a SIGHUP reload changes, behind the handle it swaps;
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
mod counters;
mod drops;
mod flow;
mod handover;
mod ids;
mod input;
mod layers;
mod login;
mod mesh;
mod messages;
mod metrics;
mod outbox;
mod persist;
mod plane;
mod reactor;
mod registry;
mod reload;
mod routes;
mod security;
mod sessions;
mod shared;
mod slab;
mod state;
mod sys;
mod takeover;
mod tls;
mod verifier;
mod ws;
mod xorshift;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod harness_tests;
#[cfg(test)]
mod model_tests;

use crate::config::Config;
use security::AccessControl;
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
    /// The listener's connection count and `max_connections`, shared by the shards.
    pub limit: Arc<reactor::ListenerLimit>,
}

/// A running broker: its shard threads and the addresses it listens on.
pub struct Broker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
    /// Each configured listener's connection limit, for [`Broker::reload`].
    limits: Vec<Arc<reactor::ListenerLimit>>,
    /// The metrics endpoint's thread (`metrics_listener`).
    metrics: Option<metrics::MetricsServer>,
    /// What the shards publish for `$SYS` and metrics, and where SIGUSR2 asks them.
    board: Arc<sys::Board>,
}

/// Loads the password, ACL and SCRAM files `config` names, as a start does, and drops
/// them: every error of every file, for `--test-config`. (TLS certificate files are
/// checked only by a start.)
pub fn check_access_files(config: &Config) -> Result<(), Vec<String>> {
    AccessControl::load(config).map(drop)
}

/// Fails with one clear line when io_uring is missing, disabled or too old.
pub fn check_io_uring() -> anyhow::Result<()> {
    check_io_uring_for(1, 128)
}

/// As [`check_io_uring`], with a locked-memory shortfall put in terms of `shards` shards
/// with `recv_buffers` receive buffers each.
fn check_io_uring_for(shards: usize, recv_buffers: u16) -> anyhow::Result<()> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() == "2" {
            anyhow::bail!("io_uring is disabled on this machine (kernel.io_uring_disabled = 2); ringmq needs io_uring (Linux {MIN_KERNEL} or later)");
        }
    }
    reactor::probe()
        .map_err(|e| reactor::explain("the io_uring start-up check", &e, shards, recv_buffers))?;
    Ok(())
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
        check_io_uring_for(config.cores.max(1), config.recv_buffers)?;
        // Every error of every file at once, before a socket is bound.
        let access =
            AccessControl::load(&config).map_err(|errors| anyhow::anyhow!("{}", errors.join("\n")))?;
        let tls =
            tls::TlsConfigs::load(&config).map_err(|errors| anyhow::anyhow!("{}", errors.join("\n")))?;
        let shards = config.cores.max(1);
        let default_listeners = config.listeners.is_empty();
        let reactor::Bound { per_shard, addrs, limits } = reactor::bind_all(&config, port, shards)?;
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
        // Password checks get threads of their own even without a password file, which a
        // reload may bring.
        let mut shared = Shared::new(config, shards, access, verifier_threads(shards))?;
        if tls.any() {
            shared.handshakes = Some(tls::Handshakes::start(shared.mesh.clone(), verifier_threads(shards))?);
        }
        shared.tls = tls;
        if shared.config.persistence.enabled {
            shared.persist = persist::start(&shared, shards)?;
        }
        let shared = Arc::new(shared);
        let mut threads = Vec::with_capacity(shards);
        // Each shard says whether its ring is set up before the broker counts as started,
        // so a failure (RLIMIT_MEMLOCK, most likely) is a start-up error naming its cause.
        let (setup_tx, setup_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let board = sys::Board::new(shards);
        let started = std::time::Instant::now();
        for (id, listeners) in per_shard.into_iter().enumerate() {
            let shared = shared.clone();
            let cpu = cpus.as_ref().map(|c| c[id % c.len()]);
            let setup_tx = setup_tx.clone();
            let tally = sys::SysTally::new(board.clone(), id);
            let t = std::thread::Builder::new().name(format!("ringmq-shard-{id}")).spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to_cpu(cpu);
                }
                let shard = Shard::new(id as u16, shared.clone(), shared.clock.now_ms());
                let reactor = match reactor::Reactor::new(shard, shared, listeners, tally) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = setup_tx.send(Err(format!("shard {id}: {e}")));
                        return;
                    }
                };
                let _ = setup_tx.send(Ok(()));
                drop(setup_tx);
                // A shard that stops on its own (io_uring_enter failing) takes its clients
                // and listeners with it: that is the whole broker failing, so it panics,
                // and the binary's panic hook aborts the process for a supervisor to restart.
                if let Err(e) = reactor.run() {
                    crate::log!(Error, "Error: shard {} stopped: {}", id, e);
                    panic!("shard {id} stopped: {e}");
                }
            })?;
            threads.push(t);
        }
        drop(setup_tx);
        let mut failed = None;
        for _ in 0..shards {
            match setup_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(_) => {
                    failed.get_or_insert("a shard thread ended before setting up its ring".into());
                }
            }
        }
        let mut broker = Broker { shared, threads, addrs, limits, metrics: None, board: board.clone() };
        if let Some(e) = failed {
            broker.shutdown();
            anyhow::bail!("{e}");
        }
        if let Some(addr) = broker.shared.config.metrics_listener {
            match metrics::MetricsServer::start(addr, board, started) {
                Ok(m) => broker.metrics = Some(m),
                Err(e) => {
                    broker.shutdown();
                    anyhow::bail!("metrics_listener {addr}: {e}");
                }
            }
        }
        crate::log!(Notice, "ringmq version {} running with {} shard(s).", env!("CARGO_PKG_VERSION"), shards);
        Ok(broker)
    }

    /// Applies a reloaded configuration (SIGHUP), as Mosquitto does for what ringmq
    /// supports. It reloads:
    /// - logging: `log_dest` (files are reopened, for logrotate), `log_type`,
    ///   `log_timestamp`, `log_timestamp_format`, `log_facility`, `connection_messages`;
    /// - each listener's `max_connections` (listeners matched by their order in the file);
    /// - the broker-wide limits `reload.rs` lists (`max_connections`, `max_keepalive`,
    ///   `message_size_limit`, `max_queued_messages`, ...), which each shard takes at its
    ///   next turn, for the clients already connected too;
    /// - TLS listeners' certificate, key, CA and CRL files (for connections accepted after).
    ///
    /// It does not change what needs a restart in Mosquitto too (listeners, their
    /// addresses, `user`, `pid_file`, persistence), nor ringmq's own start-up shape
    /// (`cores`, `cpus`, `recv_buffers`, `mesh_queue`, `flow_control`, `receive_maximum`).
    pub fn reload(&self, config: &Config) {
        crate::log::configure(&config.log);
        let configured = config.bind_listeners(0);
        if configured.len() != self.limits.len() {
            crate::log!(
                Warning,
                "Warning: the reloaded config file has {} listener(s), the broker {}; listeners change only on restart.",
                configured.len(),
                self.limits.len()
            );
        }
        for (limit, listener) in self.limits.iter().zip(&configured) {
            limit.set_max(listener.max_connections);
        }
        let (limits, changed) = reload::merged(&self.shared.reloadable.current(), config);
        if !changed.is_empty() {
            crate::log!(Notice, "Reloaded {}.", changed.join(", "));
            self.shared.reloadable.replace(limits);
        }
        self.reload_access(config);
        self.reload_tls(config);
    }

    /// Re-reads every TLS listener's certificate, key, CA and CRL files; connections
    /// accepted from then on use them (those connected keep their session). A file that
    /// does not load keeps the ones loaded before, and every error is logged.
    pub fn reload_tls(&self, config: &Config) {
        match tls::TlsConfigs::load(config) {
            Ok(reloaded) => self.shared.tls.replace(reloaded),
            Err(errors) => {
                for e in errors {
                    crate::log!(Error, "Error: {}", e);
                }
                crate::log!(Error, "Error: certificates not reloaded; those loaded before stay in force.");
            }
        }
    }

    /// Re-reads the password, ACL and SCRAM files; the shards take them at their next
    /// turn and apply the new ACLs to the clients already connected. A file with errors
    /// keeps the ones loaded before, and every error is logged.
    pub fn reload_access(&self, config: &Config) {
        match AccessControl::load(config) {
            Ok(access) => self.shared.access.replace(access),
            Err(errors) => {
                for e in errors {
                    crate::log!(Error, "Error: {}", e);
                }
                crate::log!(
                    Error,
                    "Error: access control not reloaded; the files loaded before stay in force."
                );
            }
        }
    }

    /// Syncs and compacts every shard's store now (SIGUSR1, Mosquitto's "save the
    /// database"); logs that there is nothing to save with persistence off.
    pub fn save(&self) {
        self.shared.persist.save();
    }

    /// Writes every shard's subscriptions to the log (SIGUSR2, Mosquitto's "print the
    /// subscription tree"): each shard logs its own at its next housekeeping tick.
    pub fn log_subscriptions(&self) {
        crate::log!(
            Notice,
            "Received SIGUSR2: writing the subscriptions of {} shard(s) to the log.",
            self.board.shard_count()
        );
        self.board.request_subscription_log();
    }

    /// Where the metrics endpoint listens (`metrics_listener`), with the port bound.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(metrics::MetricsServer::local_addr)
    }

    /// The addresses the broker listens on (with the ports actually bound).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops every shard (clients get DISCONNECT 0x8B in MQTT 5, wills are published)
    /// and waits for the threads.
    pub fn shutdown(mut self) {
        if let Some(mut m) = self.metrics.take() {
            m.stop();
        }
        self.shared.mesh.shut_down();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Verifier threads for `shards` shards: one per four, at least one, at most four. A
/// `$7$` check at Mosquitto's 101 iterations is about 200 SHA-512 compressions: 300 logins
/// a second were answered in 0.32 ms at the median, CONNECT to CONNACK, with one thread
/// (results/2026-12-08-vm-2cpu-login-storm). More threads only matter for files hashed
/// with far higher iteration counts.
fn verifier_threads(shards: usize) -> usize {
    shards.div_ceil(4).clamp(1, 4)
}
