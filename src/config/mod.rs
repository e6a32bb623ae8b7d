//! Configuration: the command line (Mosquitto's flags plus ringmq's own) and config files
//! in Mosquitto's syntax, validated once at start-up (and again on SIGHUP).
//!
//! - `mod.rs`: [`Config`] and what it holds: listeners, access control, logging, limits.
//! - `parser.rs`: reading files: lines, the byte-order mark, `include_dir`, which
//!   listener an option belongs to, and every error of every file collected in one pass.
//! - `options.rs`: every option of Mosquitto 2.0's mosquitto.conf(5), what it sets, or
//!   why it is refused (another open issue, or a C plugin).
//! - `values.rs`: one value's syntax (booleans, ranges, durations, CPU lists).
//! - `persistence.rs`: the persistence options (Mosquitto's, and `persistence_sync`).

mod options;
mod parser;
mod persistence;
mod values;

pub use parser::{ConfigError, ConfigErrors};
pub use persistence::{PersistenceConfig, PersistenceSync};
pub use values::parse_cpu_list;

use crate::router::ShareStrategy;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Mosquitto's default `sys_interval`, the binary's.
pub const DEFAULT_SYS_INTERVAL_SECS: u32 = 10;
/// The default MQTT port.
pub const DEFAULT_PORT: u16 = 1883;
/// The largest packet MQTT can express: 1 + 4 length bytes + 268,435,455.
pub const PROTOCOL_MAX_PACKET_BYTES: u32 = 268_435_460;

/// Which log lines are written (Mosquitto's `log_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LogTypes {
    pub error: bool,
    pub warning: bool,
    pub notice: bool,
    pub information: bool,
    pub subscribe: bool,
    pub unsubscribe: bool,
    pub websockets: bool,
    /// Per-packet lines ("Received PUBLISH from ..."); `-v` turns them on.
    pub debug: bool,
}

impl LogTypes {
    /// Nothing at all (`log_type none`).
    pub const NONE: LogTypes = LogTypes {
        error: false,
        warning: false,
        notice: false,
        information: false,
        subscribe: false,
        unsubscribe: false,
        websockets: false,
        debug: false,
    };
    /// Everything (`log_type all`, `-v`).
    pub const ALL: LogTypes = LogTypes {
        error: true,
        warning: true,
        notice: true,
        information: true,
        subscribe: true,
        unsubscribe: true,
        websockets: true,
        debug: true,
    };
}

impl Default for LogTypes {
    /// Mosquitto's default: error, warning, notice and information.
    fn default() -> Self {
        LogTypes { error: true, warning: true, notice: true, information: true, ..LogTypes::NONE }
    }
}

/// Where log lines go (Mosquitto's `log_dest`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LogDest {
    Stderr,
    Stdout,
    /// Appended to; reopened on SIGHUP (for logrotate).
    File(PathBuf),
    Syslog,
}

/// Logging: Mosquitto's `log_dest`, `log_type`, `log_timestamp`, `log_timestamp_format`,
/// `log_facility`, `connection_messages`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LogConfig {
    pub types: LogTypes,
    /// Every destination; empty after `log_dest none`.
    pub dests: Vec<LogDest>,
    /// Whether lines start with a timestamp (never on syslog, which has its own).
    pub timestamp: bool,
    /// strftime(3) format of the timestamp, in local time; `None`: seconds since 1970.
    pub timestamp_format: Option<String>,
    /// Whether connections and disconnections are logged.
    pub connection_messages: bool,
    /// syslog facility: `None` is LOG_DAEMON, `Some(n)` LOG_LOCALn (Mosquitto's numbers).
    pub syslog_facility: Option<u8>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            types: LogTypes::default(),
            dests: vec![LogDest::Stderr],
            timestamp: true,
            timestamp_format: None,
            connection_messages: true,
            syslog_facility: None,
        }
    }
}

/// The broker's validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen. Empty means the local-only default (127.0.0.1 and ::1).
    pub listeners: Vec<ListenerConfig>,
    /// Whether a `listener` or `port` line appeared in the config file: Mosquitto 2 then
    /// refuses anonymous clients unless `allow_anonymous true` says otherwise.
    pub listeners_in_file: bool,
    /// Access control for every listener (Mosquitto's global `allow_anonymous`,
    /// `password_file`, `acl_file`), unless `per_listener_settings` is true.
    pub security: SecurityOptions,
    /// Mosquitto's `per_listener_settings`: each listener has its own access control.
    pub per_listener_settings: bool,
    pub max_queued_messages: usize,
    /// 0 means no limit.
    pub max_queued_bytes: usize,
    pub max_inflight_messages: u16,
    /// Largest accepted PUBLISH payload; 0 means no limit beyond the packet size.
    pub message_size_limit: u32,
    /// Largest packet accepted, fixed header included.
    pub max_packet_size: u32,
    pub max_keepalive_secs: u16,
    /// Connections per broker; `None` means no limit. (`max_connections` after a
    /// `listener` line is that listener's: [`ListenerConfig::max_connections`].)
    pub max_connections: Option<usize>,
    /// How long a disconnected persistent 3.1.1 session lives; `None` is forever.
    pub persistent_client_expiration: Option<Duration>,
    pub retain_available: bool,
    pub log: LogConfig,
    /// Written with the process id at start, removed at exit (`pid_file`).
    pub pid_file: Option<PathBuf>,
    /// The user to switch to after binding when started as root (`user`); `None` is
    /// Mosquitto's default, `mosquitto`.
    pub user: Option<String>,
    /// Seconds between `$SYS` updates (`sys_interval`); 0 turns them off. 0 in
    /// [`Config::default`], so a broker embedded in a program (the tests) publishes none
    /// unless asked; the `ringmq` binary starts from Mosquitto's default,
    /// [`DEFAULT_SYS_INTERVAL_SECS`].
    pub sys_interval_secs: u32,
    /// Where to serve Prometheus metrics over HTTP (`metrics_listener ADDRESS:PORT`);
    /// `None`, the default, serves none.
    pub metrics_listener: Option<SocketAddr>,
    /// TCP_NODELAY on client sockets (`set_tcp_nodelay`). ringmq's default is true: it
    /// already gathers a turn's packets into one send, so Nagle only adds latency.
    pub set_tcp_nodelay: bool,
    /// Number of shard threads.
    pub cores: usize,
    /// CPUs to pin the shards to, one each; `None` leaves placement to the kernel.
    pub cpus: Option<Vec<usize>>,
    pub share_strategy: ShareStrategy,
    /// Seconds a new socket may wait before its CONNECT arrives.
    pub connect_timeout_secs: u64,
    /// The longest WebSocket upgrade request accepted, in bytes (Mosquitto's
    /// `websockets_headers_size`, which sets libwebsockets' limit the same way).
    pub websockets_headers_size: usize,
    /// Check that payloads with Payload Format Indicator 1 are UTF-8 (MQTT 5, 0x99).
    pub check_payload_format: bool,
    /// Response Information sent in CONNACK to MQTT 5 clients that request it.
    pub response_information: Option<String>,
    /// Our Receive Maximum: QoS 2 messages an MQTT 5 client may have unreleased at once
    /// (advertised in CONNACK when below 65,535; exceeding it is DISCONNECT 0x93).
    pub receive_maximum: u16,
    /// Receive buffers per shard, shared by all its connections (a power of two, at most
    /// 32,768; each 16 KiB). When they run out, sockets wait until some come back.
    pub recv_buffers: u16,
    /// Messages one shard may have queued toward another before it stops reading its
    /// publishers' sockets until the queue drains (at most [`MESH_QUEUE_MAX`]).
    pub mesh_queue: u32,
    /// `persistence` and the options beside it (docs/persistence.md).
    pub persistence: PersistenceConfig,
    /// When a subscriber's queue is full, hold the QoS 1/2 publishers that fill it (stop
    /// reading their sockets) until it drains, instead of dropping (`false`: drop at once,
    /// as Mosquitto does).
    pub flow_control: bool,
    /// A subscriber whose full queue has not moved for this long is stuck: its publishers
    /// are let go and what does not fit its queue is dropped.
    pub stuck_subscriber_secs: u32,
}

/// The default `mesh_queue`. On 16 CPUs, 2,048 cost QoS 0 pairs 13-14% of their rate at 2,
/// 4 and 8 shards against 8,192 (results/2026-11-26-fc-16cpu-scaling/NOTES.md).
pub const DEFAULT_MESH_QUEUE: u32 = 8192;
/// The largest `mesh_queue`: each of the shards x shards queues allocates its slots at start.
pub const MESH_QUEUE_MAX: u32 = 1 << 20;

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            listeners_in_file: false,
            security: SecurityOptions::default(),
            per_listener_settings: false,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            max_inflight_messages: 20,
            message_size_limit: 0,
            max_packet_size: PROTOCOL_MAX_PACKET_BYTES,
            max_keepalive_secs: u16::MAX,
            max_connections: None,
            persistent_client_expiration: None,
            retain_available: true,
            log: LogConfig::default(),
            pid_file: None,
            user: None,
            sys_interval_secs: 0,
            metrics_listener: None,
            set_tcp_nodelay: true,
            cores: 1,
            cpus: None,
            share_strategy: ShareStrategy::RoundRobin,
            connect_timeout_secs: 10,
            websockets_headers_size: 4096,
            check_payload_format: false,
            response_information: None,
            receive_maximum: u16::MAX,
            recv_buffers: 128,
            mesh_queue: DEFAULT_MESH_QUEUE,
            persistence: PersistenceConfig::default(),
            flow_control: true,
            stuck_subscriber_secs: 10,
        }
    }
}

/// One listener: where it binds, its own limits, and its own access control.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerConfig {
    /// The addresses it binds: one, or every IPv4 and IPv6 address for a `listener`
    /// line without one (fewer with `socket_domain`).
    pub addrs: Vec<SocketAddr>,
    /// Used instead of [`Config::security`] when `per_listener_settings` is true.
    pub security: SecurityOptions,
    /// Connections on this listener at once (`max_connections` after its `listener`
    /// line); `None` means no limit of its own.
    pub max_connections: Option<usize>,
    /// The network interface it binds to (`bind_interface`, SO_BINDTODEVICE).
    pub bind_interface: Option<String>,
    /// Where it was defined (`file:line`), for messages about it.
    pub origin: Option<String>,
    /// TLS, with Mosquitto's per-listener options; off unless a certificate is set.
    pub tls: TlsOptions,
    /// `protocol websockets`: MQTT over WebSockets (inside TLS when `tls` is on).
    pub websockets: bool,
}

impl ListenerConfig {
    /// A listener on one address, with no options of its own.
    pub fn on(addr: SocketAddr) -> Self {
        ListenerConfig {
            addrs: vec![addr],
            security: SecurityOptions::default(),
            max_connections: None,
            bind_interface: None,
            origin: None,
            tls: TlsOptions::default(),
            websockets: false,
        }
    }
}

/// A listener's TLS options, as mosquitto.conf(5) names them; `src/shard/tls/` builds
/// the rustls configuration from them and refuses what rustls cannot do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsOptions {
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub crlfile: Option<PathBuf>,
    pub require_certificate: bool,
    pub use_identity_as_username: bool,
    pub use_subject_as_username: bool,
    /// `tls_version`: the oldest version accepted; `None`, TLS 1.2 and 1.3.
    pub tls_version: Option<TlsVersion>,
    /// `ciphers`: TLS 1.2 suites, OpenSSL's names separated by colons.
    pub ciphers: Option<String>,
    /// `ciphers_tls1.3`: TLS 1.3 suites, their RFC names separated by colons.
    pub ciphers_tls13: Option<String>,
}

/// The TLS versions rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsOptions {
    /// Whether the listener speaks TLS: Mosquitto turns it on with any of its files.
    pub fn enabled(&self) -> bool {
        self.certfile.is_some() || self.keyfile.is_some() || self.cafile.is_some() || self.capath.is_some()
    }
}

/// Who may connect and what they may do, as Mosquitto configures it: globally, or per
/// listener with `per_listener_settings true`. `None` is "not set": the default applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecurityOptions {
    pub allow_anonymous: Option<bool>,
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    /// ringmq's own: SCRAM-SHA-256 credentials for MQTT 5 enhanced authentication,
    /// written by `ringmq passwd --scram`.
    pub scram_file: Option<PathBuf>,
    /// Mosquitto's `use_username_as_clientid`: an authenticated client's user name
    /// replaces its client id; a client without one is refused.
    pub use_username_as_clientid: bool,
}

impl Config {
    /// The listeners to bind: the configured ones, or 127.0.0.1 and ::1 on `port`.
    pub fn bind_listeners(&self, port: u16) -> Vec<ListenerConfig> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        let addrs = vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ];
        vec![ListenerConfig {
            addrs,
            ..ListenerConfig::on(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        }]
    }

    /// The access control options that apply on listener `listener` (an index into
    /// [`Config::bind_listeners`]).
    pub fn security_for(&self, listener: usize) -> &SecurityOptions {
        match self.listeners.get(listener) {
            Some(l) if self.per_listener_settings => &l.security,
            _ => &self.security,
        }
    }

    /// Whether clients without a user name may connect on listener `listener`. Mosquitto
    /// 2's default: yes only when the config file defines no listener (the broker then
    /// listens on the loopback addresses alone).
    pub fn allow_anonymous_on(&self, listener: usize) -> bool {
        self.security_for(listener).allow_anonymous.unwrap_or(!self.listeners_in_file)
    }
}

impl Config {
    /// Reads a Mosquitto-syntax config file over the current values. Every error of the
    /// file (and of the files it includes) is returned, each with its file and line.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigErrors> {
        parser::Parser::new(self).file(path).finish()
    }

    /// Applies config text; `path` names it in error messages and anchors a relative
    /// `include_dir`.
    pub fn apply_text(&mut self, text: &str, path: &Path) -> Result<(), ConfigErrors> {
        parser::Parser::new(self).text(text, path).finish()
    }
}

#[cfg(test)]
mod tests;
