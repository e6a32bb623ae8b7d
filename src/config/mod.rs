//! Configuration: the command line (Mosquitto's flags plus ringmq's own) and a config
//! file in Mosquitto's syntax. Everything is validated once at start-up; a line ringmq
//! does not know is an error naming the file, line and option, and the broker does not
//! start.

use crate::router::ShareStrategy;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Per-packet lines ("Received PUBLISH from ..."); `-v` turns them on.
    pub debug: bool,
}

impl Default for LogTypes {
    fn default() -> Self {
        LogTypes { error: true, warning: true, notice: true, information: true, debug: false }
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
    /// Connections per broker; `None` means no limit.
    pub max_connections: Option<usize>,
    /// How long a disconnected persistent 3.1.1 session lives; `None` is forever.
    pub persistent_client_expiration: Option<Duration>,
    pub retain_available: bool,
    pub log: LogTypes,
    /// Number of shard threads.
    pub cores: usize,
    /// CPUs to pin the shards to, one each; `None` leaves placement to the kernel.
    pub cpus: Option<Vec<usize>>,
    pub share_strategy: ShareStrategy,
    /// Seconds a new socket may wait before its CONNECT arrives.
    pub connect_timeout_secs: u64,
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
            log: LogTypes::default(),
            cores: 1,
            cpus: None,
            share_strategy: ShareStrategy::RoundRobin,
            connect_timeout_secs: 10,
            check_payload_format: false,
            response_information: None,
            receive_maximum: u16::MAX,
            recv_buffers: 128,
            mesh_queue: DEFAULT_MESH_QUEUE,
        }
    }
}

/// One listener: where it binds, and its own access control.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerConfig {
    /// The addresses it binds: one, or every IPv4 and IPv6 address for a `listener`
    /// line without one.
    pub addrs: Vec<SocketAddr>,
    /// Used instead of [`Config::security`] when `per_listener_settings` is true.
    pub security: SecurityOptions,
}

impl ListenerConfig {
    /// A listener on one address, with no access control options of its own.
    pub fn on(addr: SocketAddr) -> Self {
        ListenerConfig { addrs: vec![addr], security: SecurityOptions::default() }
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
        vec![ListenerConfig { addrs, security: SecurityOptions::default() }]
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

/// A config file error, reported as `file:line: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {message}")]
    Line { file: PathBuf, line: usize, message: String },
    #[error("cannot read config file {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

/// Options Mosquitto has that ringmq does not support yet: named so the error says so
/// rather than "unknown option".
const UNSUPPORTED_MOSQUITTO_OPTIONS: &[&str] = &[
    "psk_file",
    "cafile",
    "capath",
    "certfile",
    "keyfile",
    "require_certificate",
    "use_identity_as_username",
    "bridge_cafile",
    "connection",
    "address",
    "topic",
    "plugin",
    "auth_plugin",
    "persistence",
    "persistence_location",
    "persistence_file",
    "autosave_interval",
    "protocol",
    "socket_domain",
    "bind_interface",
    "http_dir",
    "mount_point",
    "log_dest",
    "pid_file",
    "user",
    "include_dir",
    "sys_interval",
    "clientid_prefixes",
    "queue_qos0_messages",
    "upgrade_outgoing_qos",
    "websockets_log_level",
    "allow_zero_length_clientid",
    "auto_id_prefix",
    "check_retain_source",
    "max_inflight_bytes",
    "set_tcp_nodelay",
    "allow_duplicate_messages",
    "memory_limit",
    "log_timestamp",
    "log_timestamp_format",
    "connection_messages",
    "ciphers",
    "tls_version",
    "psk_hint",
    "accept_protocol_versions",
];

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("expected true or false, got '{v}'")),
    }
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("expected a number, got '{v}'"))
}

/// Mosquitto's duration syntax: a number followed by h, d, w, m (months) or y.
fn parse_expiration(v: &str) -> Result<Duration, String> {
    let (num, unit) = v.split_at(v.len().saturating_sub(1));
    let n: u64 = num.parse().map_err(|_| format!("expected e.g. 1h, 2d, 1w, 1m, 1y; got '{v}'"))?;
    let hours = match unit {
        "h" => 1,
        "d" => 24,
        "w" => 24 * 7,
        "m" => 24 * 30,
        "y" => 24 * 365,
        _ => return Err(format!("unknown unit in '{v}' (use h, d, w, m or y)")),
    };
    Ok(Duration::from_secs(n * hours * 3600))
}

/// Parses a CPU list such as `0,2-5`.
pub fn parse_cpu_list(v: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in v.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (parse_num(a)?, parse_num(b)?);
                if a > b {
                    return Err(format!("bad CPU range '{part}'"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(parse_num(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("empty CPU list '{v}'"));
    }
    Ok(cpus)
}

impl Config {
    /// Reads a Mosquitto-syntax config file over the current values.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: path.into(), source })?;
        self.apply_text(&text, path)
    }

    /// Applies config text; `path` is used in error messages.
    pub fn apply_text(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let option = words.next().unwrap_or_default();
            let args: Vec<&str> = words.collect();
            self.apply_option(option, &args).map_err(|message| ConfigError::Line {
                file: path.into(),
                line: i + 1,
                message,
            })?;
        }
        Ok(())
    }

    /// Where an access control option goes: the last listener's own with
    /// `per_listener_settings true` (Mosquitto reads the file top to bottom, so the
    /// option must come after its `listener` line), the global ones otherwise.
    fn security_options(&mut self) -> &mut SecurityOptions {
        match self.listeners.last_mut() {
            Some(l) if self.per_listener_settings => &mut l.security,
            _ => &mut self.security,
        }
    }

    fn apply_option(&mut self, option: &str, args: &[&str]) -> Result<(), String> {
        let one = || -> Result<&str, String> {
            match args {
                [v] => Ok(v),
                _ => Err(format!("'{option}' takes exactly one value")),
            }
        };
        match option {
            "listener" => {
                let port: u16 = parse_num(args.first().ok_or("'listener' needs a port")?)?;
                let addrs = match args.get(1) {
                    Some(host) => {
                        let ip: IpAddr =
                            host.parse().map_err(|_| format!("'{host}' is not an IP address"))?;
                        vec![SocketAddr::new(ip, port)]
                    }
                    // Mosquitto listens on every address when none is given.
                    None => vec![
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                    ],
                };
                if args.len() > 2 {
                    return Err("'listener' takes a port and an optional address".into());
                }
                self.listeners.push(ListenerConfig { addrs, security: SecurityOptions::default() });
                self.listeners_in_file = true;
            }
            "port" => {
                let port: u16 = parse_num(one()?)?;
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
                self.listeners.push(ListenerConfig::on(addr));
                self.listeners_in_file = true;
            }
            "per_listener_settings" => self.per_listener_settings = parse_bool(one()?)?,
            "allow_anonymous" => self.security_options().allow_anonymous = Some(parse_bool(one()?)?),
            "password_file" => self.security_options().password_file = Some(PathBuf::from(one()?)),
            "acl_file" => self.security_options().acl_file = Some(PathBuf::from(one()?)),
            "scram_file" => self.security_options().scram_file = Some(PathBuf::from(one()?)),
            "max_queued_messages" => self.max_queued_messages = parse_num(one()?)?,
            "max_queued_bytes" => self.max_queued_bytes = parse_num(one()?)?,
            "max_inflight_messages" => {
                let n: u16 = parse_num(one()?)?;
                // Mosquitto: 0 means no limit.
                self.max_inflight_messages = if n == 0 { u16::MAX } else { n };
            }
            "message_size_limit" => self.message_size_limit = parse_num(one()?)?,
            "max_packet_size" => {
                let n: u32 = parse_num(one()?)?;
                if n < 20 {
                    return Err("max_packet_size must be at least 20 bytes".into());
                }
                self.max_packet_size = n;
            }
            "max_keepalive" => self.max_keepalive_secs = parse_num(one()?)?,
            "max_connections" => {
                let n: i64 = parse_num(one()?)?;
                self.max_connections = if n < 0 { None } else { Some(n as usize) };
            }
            "persistent_client_expiration" => {
                self.persistent_client_expiration = Some(parse_expiration(one()?)?)
            }
            "retain_available" => self.retain_available = parse_bool(one()?)?,
            "log_type" => {
                let t = one()?;
                match t {
                    "all" => {
                        self.log = LogTypes {
                            error: true,
                            warning: true,
                            notice: true,
                            information: true,
                            debug: true,
                        }
                    }
                    "none" => {
                        self.log = LogTypes {
                            error: false,
                            warning: false,
                            notice: false,
                            information: false,
                            debug: false,
                        }
                    }
                    "error" => self.log.error = true,
                    "warning" => self.log.warning = true,
                    "notice" => self.log.notice = true,
                    "information" => self.log.information = true,
                    "debug" => self.log.debug = true,
                    "subscribe" | "unsubscribe" | "websockets" => {}
                    _ => return Err(format!("unknown log_type '{t}'")),
                }
            }
            "cores" => {
                let n: usize = parse_num(one()?)?;
                if n == 0 || n > 1024 {
                    return Err("cores must be between 1 and 1024".into());
                }
                self.cores = n;
            }
            "check_payload_format" => self.check_payload_format = parse_bool(one()?)?,
            "response_information" => self.response_information = Some(one()?.to_string()),
            "receive_maximum" => {
                let n: u16 = parse_num(one()?)?;
                if n == 0 {
                    return Err("receive_maximum must be between 1 and 65535".into());
                }
                self.receive_maximum = n;
            }
            "recv_buffers" => {
                let n: u16 = parse_num(one()?)?;
                if !n.is_power_of_two() || n > 1 << 15 {
                    return Err("recv_buffers must be a power of two between 1 and 32768".into());
                }
                self.recv_buffers = n;
            }
            "mesh_queue" => {
                let n: u32 = parse_num(one()?)?;
                if n == 0 || n > MESH_QUEUE_MAX {
                    return Err(format!("mesh_queue must be between 1 and {MESH_QUEUE_MAX}"));
                }
                self.mesh_queue = n;
            }
            "connect_timeout" => self.connect_timeout_secs = parse_num(one()?)?,
            "cpus" => self.cpus = Some(parse_cpu_list(one()?)?),
            "shared_subscription_strategy" => {
                self.share_strategy = one()?.parse().map_err(|e| format!("{e}"))?;
            }
            _ if UNSUPPORTED_MOSQUITTO_OPTIONS.contains(&option) => {
                return Err(format!(
                    "option '{option}' is a Mosquitto option that ringmq does not support yet"
                ));
            }
            _ => return Err(format!("unknown option '{option}'")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply_text(text, Path::new("ringmq.conf")).map(|_| c)
    }

    #[test]
    fn reads_mosquitto_options() {
        let c = load("# comment\nlistener 1884 127.0.0.1\nallow_anonymous true\nmax_queued_messages 50\nmax_inflight_messages 0\npersistent_client_expiration 2d\ncores 4\ncpus 0,2-3\nlog_type all\n").unwrap();
        assert_eq!(c.listeners, vec![ListenerConfig::on("127.0.0.1:1884".parse().unwrap())]);
        assert!(c.allow_anonymous_on(0));
        assert_eq!(c.max_queued_messages, 50);
        assert_eq!(c.max_inflight_messages, u16::MAX);
        assert_eq!(c.persistent_client_expiration, Some(Duration::from_secs(2 * 86400)));
        assert_eq!(c.cores, 4);
        assert_eq!(c.cpus, Some(vec![0, 2, 3]));
        assert!(c.log.debug);
    }

    #[test]
    fn mesh_queue_sets_the_cross_shard_queue_length() {
        assert_eq!(Config::default().mesh_queue, DEFAULT_MESH_QUEUE);
        assert_eq!(load("mesh_queue 16\n").unwrap().mesh_queue, 16);
    }

    #[test]
    fn recv_buffers_sets_the_shard_receive_pool() {
        assert_eq!(Config::default().recv_buffers, 128);
        assert_eq!(load("recv_buffers 256\n").unwrap().recv_buffers, 256);
    }

    #[test]
    fn unknown_option_names_file_and_line() {
        let err = load("allow_anonymous true\n\nfrobnicate 3\n").unwrap_err().to_string();
        assert_eq!(err, "ringmq.conf:3: unknown option 'frobnicate'");
    }

    #[test]
    fn unsupported_mosquitto_option_says_so() {
        let err = load("psk_file /etc/psk\n").unwrap_err().to_string();
        assert!(err.starts_with("ringmq.conf:1: option 'psk_file' is a Mosquitto option"), "{err}");
    }

    #[test]
    fn anonymous_clients_are_refused_by_default_once_a_listener_is_configured() {
        // Mosquitto 2: allow_anonymous defaults to false unless the file defines no listener.
        assert!(load("max_queued_messages 5\n").unwrap().allow_anonymous_on(0));
        assert!(!load("listener 1883\n").unwrap().allow_anonymous_on(0));
        assert!(!load("port 1883\n").unwrap().allow_anonymous_on(0));
    }

    #[test]
    fn access_control_options_are_global_unless_per_listener_settings() {
        let global = load("listener 1883\npassword_file /a\nlistener 1884\nacl_file /b\n").unwrap();
        assert_eq!(global.security_for(0).password_file, Some(PathBuf::from("/a")));
        assert_eq!(global.security_for(1).acl_file, Some(PathBuf::from("/b")));
        let per = load(
            "per_listener_settings true\nlistener 1883\nallow_anonymous true\nlistener 1884\npassword_file /p\n",
        )
        .unwrap();
        assert!(per.allow_anonymous_on(0));
        assert!(!per.allow_anonymous_on(1));
        assert_eq!(per.security_for(0).password_file, None);
        assert_eq!(per.security_for(1).password_file, Some(PathBuf::from("/p")));
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            "max_queued_messages lots",
            "allow_anonymous yes",
            "listener",
            "listener 1883 nowhere",
            "cores 0",
            "recv_buffers 1000",
            "recv_buffers 65536",
            "mesh_queue 0",
            "mesh_queue 1048577",
            "persistent_client_expiration 3x",
            "max_packet_size 5",
        ] {
            assert!(load(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn default_listeners_are_loopback_only() {
        let listeners = Config::default().bind_listeners(1883);
        assert_eq!(listeners.len(), 1);
        assert!(listeners[0].addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
