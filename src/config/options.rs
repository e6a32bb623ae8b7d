//! Every option of Mosquitto 2.0's mosquitto.conf(5), and ringmq's own: what each sets,
//! or, where ringmq cannot do what it means yet, a one-line reason. An option whose
//! value changes nothing in Mosquitto either (e.g. `persistence_location` without
//! `persistence true`) is checked and accepted.

use super::parser::{Domain, Parser, Section};
use super::values::{parse_bool, parse_cpu_list, parse_expiration, parse_num, parse_range};
use super::{ListenerConfig, LogDest, LogTypes, SecurityOptions, TlsOptions, TlsVersion, MESH_QUEUE_MAX};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// TLS options rustls has no equivalent for, and why.
const TLS_REFUSED: &[(&str, &str)] = &[
    (
        "dhparamfile",
        "rustls offers no finite-field Diffie-Hellman suites (ECDHE only), so DH parameters have no use",
    ),
    ("tls_engine", "OpenSSL engines do not exist in rustls"),
    ("tls_engine_kpass_sha1", "OpenSSL engines do not exist in rustls"),
    ("psk_file", "rustls has no TLS pre-shared-key suites for servers"),
    ("psk_hint", "rustls has no TLS pre-shared-key suites for servers"),
];

/// Bridge options (a `connection` line and what follows it).
const BRIDGE: &[&str] = &[
    "connection",
    "address",
    "addresses",
    "bridge_alpn",
    "bridge_attempt_unsubscribe",
    "bridge_bind_address",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_identity",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_packet_size",
    "bridge_outgoing_retain",
    "bridge_protocol_version",
    "bridge_psk",
    "bridge_require_ocsp",
    "bridge_tls_version",
    "cleansession",
    "idle_timeout",
    "keepalive_interval",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "notifications",
    "notifications_local_only",
    "notification_topic",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "start_type",
    "threshold",
    "topic",
    "try_private",
];

/// Every IPv4 and IPv6 address on `port`.
pub(super) fn every_address(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
    ]
}

/// `value` only: ringmq cannot do anything else yet.
fn only(got: &str, supported: &str, why: &str) -> Result<(), String> {
    if got == supported {
        Ok(())
    } else {
        Err(format!("only '{supported}' is supported: {why}"))
    }
}

/// The TLS options of the listener being defined: Mosquitto's TLS options are per
/// listener, and ringmq does not put TLS on the listener without a `listener` line.
fn tls_options<'p>(p: &'p mut Parser<'_>) -> Result<&'p mut TlsOptions, String> {
    match p.current_listener() {
        Some(l) => Ok(&mut l.tls),
        None => Err("TLS options belong to a listener: put this after a 'listener' line".into()),
    }
}

/// Applies one line. `rest` is everything after the option name (for paths and formats,
/// which may contain spaces), `args` the same split into words.
pub(super) fn apply(p: &mut Parser<'_>, option: &str, rest: &str, args: &[&str]) -> Result<(), String> {
    let one = || -> Result<&str, String> {
        match args {
            [v] => Ok(v),
            [] => Err("needs a value".into()),
            _ => Err(format!("takes one value, got {}", args.len())),
        }
    };
    let text = || -> Result<&str, String> {
        if rest.is_empty() {
            Err("needs a value".into())
        } else {
            Ok(rest)
        }
    };
    if p.section == Section::Bridge && option != "listener" && BRIDGE.contains(&option) {
        return Err("bridges are not implemented yet".into());
    }
    let c = &mut *p.config;
    match option {
        // Listeners.
        "listener" => listener(p, args)?,
        "port" => {
            let port = parse_range::<u16>(one()?, 1, 65535)?;
            if p.default_listener.index.is_some() {
                return Err("the default listener already has a port".into());
            }
            let mut l = ListenerConfig::on(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
            l.addrs = every_address(port);
            l.origin = Some(p.here.clone());
            c.listeners.push(l);
            c.listeners_in_file = true;
            p.default_listener.index = Some(c.listeners.len() - 1);
        }
        "bind_address" => {
            if p.section != Section::Global {
                return Err("belongs to the default listener (before any 'listener' line); give the address on the 'listener' line instead".into());
            }
            let ip: IpAddr = one()?.parse().map_err(|_| format!("expected an IP address, got '{rest}'"))?;
            p.default_listener.bind_address = Some(ip);
            p.default_listener.origin.get_or_insert(p.here.clone());
        }
        "bind_interface" => {
            let name = one()?.to_string();
            if name.len() >= libc::IFNAMSIZ {
                return Err(format!("an interface name has at most {} characters", libc::IFNAMSIZ - 1));
            }
            match p.section {
                Section::Listener(_) => p.current_listener().unwrap().bind_interface = Some(name),
                _ => {
                    p.default_listener.bind_interface = Some(name);
                    p.default_listener.origin.get_or_insert(p.here.clone());
                }
            }
        }
        "socket_domain" => {
            let domain = match one()? {
                "ipv4" => Domain::Ipv4,
                "ipv6" => Domain::Ipv6,
                v => return Err(format!("expected ipv4 or ipv6, got '{v}'")),
            };
            match p.current_listener() {
                Some(l) => {
                    l.addrs.retain(|a| a.is_ipv6() == (domain == Domain::Ipv6));
                    if l.addrs.is_empty() {
                        return Err("the listener's address is of the other address family".into());
                    }
                }
                None => {
                    p.default_listener.socket_domain = Some(domain);
                    p.default_listener.origin.get_or_insert(p.here.clone());
                }
            }
        }
        "max_connections" => {
            let n = parse_range::<i64>(one()?, -1, i64::from(i32::MAX))?;
            let limit = (n >= 0).then_some(n as usize);
            match p.section {
                Section::Listener(i) => p.config.listeners[i].max_connections = limit,
                _ => p.config.max_connections = limit,
            }
        }
        "protocol" => {
            let websockets = match one()? {
                "mqtt" => false,
                "websockets" => true,
                v => return Err(format!("expected mqtt or websockets, got '{v}'")),
            };
            match p.current_listener() {
                Some(l) => l.websockets = websockets,
                None if websockets => {
                    return Err(
                        "protocol websockets belongs to a listener: put it after a 'listener' line".into()
                    )
                }
                None => {}
            }
        }
        "mount_point" => {
            return Err("not implemented yet: the shards do not rewrite topics per listener".into())
        }
        "max_qos" => {
            let q = parse_range::<u8>(one()?, 0, 2)?;
            if q != 2 {
                return Err("only 2 is supported yet: the shards do not cap QoS per listener".into());
            }
        }
        "max_topic_alias" => {
            let n = parse_range::<u16>(one()?, 0, 65535)?;
            if n != 10 {
                return Err("only 10 (Mosquitto's default) is supported yet: the alias maximum is fixed in the session".into());
            }
        }
        "use_username_as_clientid" => p.security_options().use_username_as_clientid = parse_bool(one()?)?,

        // Access control, global or per listener (`security_options`).
        "per_listener_settings" => c.per_listener_settings = parse_bool(one()?)?,
        "allow_anonymous" => p.security_options().allow_anonymous = Some(parse_bool(one()?)?),
        "password_file" => p.security_options().password_file = Some(PathBuf::from(text()?)),
        "acl_file" => p.security_options().acl_file = Some(PathBuf::from(text()?)),
        "scram_file" => p.security_options().scram_file = Some(PathBuf::from(text()?)),
        "allow_zero_length_clientid" => {
            if !parse_bool(one()?)? {
                return Err("only 'true' is supported yet: clients without an id are always given one".into());
            }
        }
        "auto_id_prefix" => only(text()?, "auto-", "assigned client ids are auto-<shard>-<number>")?,
        "check_retain_source" => {
            if parse_bool(one()?)? {
                return Err("not implemented yet: retained messages are not checked again against their publisher's ACL".into());
            }
        }
        "clientid_prefixes" => {
            return Err("not implemented yet (and deprecated in Mosquitto: use an ACL)".into())
        }
        "auth_plugin" | "plugin" => {
            return Err("ringmq cannot load Mosquitto's C plugins; use password_file and acl_file".into())
        }
        "auth_plugin_deny_special_chars" => {
            parse_bool(one()?)?;
        }
        _ if option.starts_with("auth_opt_") || option.starts_with("plugin_opt_") => {
            return Err("ringmq cannot load Mosquitto's C plugins, so plugin options have no use".into())
        }

        // Limits.
        "max_queued_messages" => c.max_queued_messages = parse_range::<u32>(one()?, 0, u32::MAX)? as usize,
        "max_queued_bytes" => {
            c.max_queued_bytes = parse_range::<u64>(one()?, 0, u64::from(u32::MAX))? as usize
        }
        "max_inflight_messages" => {
            let n = parse_range::<u16>(one()?, 0, 65535)?;
            // Mosquitto: 0 means no limit.
            c.max_inflight_messages = if n == 0 { u16::MAX } else { n };
        }
        "max_inflight_bytes" => {
            if parse_range::<u64>(one()?, 0, u64::from(u32::MAX))? != 0 {
                return Err(
                    "only 0 (no limit) is supported yet; max_inflight_messages bounds the window".into()
                );
            }
        }
        "message_size_limit" => c.message_size_limit = parse_range::<u32>(one()?, 0, 268_435_455)?,
        "max_packet_size" => {
            c.max_packet_size = parse_range::<u32>(one()?, 20, super::PROTOCOL_MAX_PACKET_BYTES)?
        }
        "max_keepalive" => c.max_keepalive_secs = parse_range::<u16>(one()?, 0, 65535)?,
        "persistent_client_expiration" => c.persistent_client_expiration = Some(parse_expiration(one()?)?),
        "retain_available" => c.retain_available = parse_bool(one()?)?,
        "memory_limit" => {
            if parse_num::<u64>(one()?)? != 0 {
                return Err("only 0 (no limit) is supported yet".into());
            }
        }
        "queue_qos0_messages" => {
            if parse_bool(one()?)? {
                return Err(
                    "only 'false' is supported yet: offline clients get QoS 1 and 2 messages only".into()
                );
            }
        }
        "upgrade_outgoing_qos" => {
            if parse_bool(one()?)? {
                return Err("only 'false' is supported yet".into());
            }
        }
        "set_tcp_nodelay" => c.set_tcp_nodelay = parse_bool(one()?)?,
        "allow_duplicate_messages" => {
            // Mosquitto 2.0 ignores it too: duplicates are always delivered.
            parse_bool(one()?)?;
        }
        "retry_interval" | "store_clean_interval" => {
            // Gone from Mosquitto 2.0, which warns and carries on.
            parse_num::<u64>(one()?)?;
        }

        // Persistence: `persistence.rs` reads them.
        "persistence"
        | "persistence_location"
        | "persistence_file"
        | "autosave_interval"
        | "autosave_on_changes"
        | "persistence_sync" => {
            return super::persistence::apply(&mut c.persistence, option, rest, args)
                .unwrap_or_else(|| unreachable!("a persistence option"));
        }

        // Process.
        "pid_file" => c.pid_file = Some(PathBuf::from(text()?)),
        "user" => c.user = Some(one()?.to_string()),
        "sys_interval" => {
            c.sys_interval_secs = parse_range::<u32>(one()?, 0, 65535)?;
        }
        "metrics_listener" => {
            let v = one()?;
            let addr = v.parse::<SocketAddr>().map_err(|_| {
                format!("expected ADDRESS:PORT, such as 127.0.0.1:9100 or [::1]:9100, got '{v}'")
            })?;
            c.metrics_listener = Some(addr);
        }

        // Logging.
        "log_dest" => log_dest(p, args)?,
        "log_type" => {
            if !p.log_types_set {
                p.log_types_set = true;
                p.config.log.types = LogTypes::NONE;
            }
            let t = &mut p.config.log.types;
            match one()? {
                "all" => *t = LogTypes::ALL,
                "none" => *t = LogTypes::NONE,
                "error" => t.error = true,
                "warning" => t.warning = true,
                "notice" => t.notice = true,
                "information" => t.information = true,
                "debug" => t.debug = true,
                "subscribe" => t.subscribe = true,
                "unsubscribe" => t.unsubscribe = true,
                "websockets" => t.websockets = true,
                v => return Err(format!("expected one of debug, error, warning, notice, information, subscribe, unsubscribe, websockets, none, all; got '{v}'")),
            }
        }
        "log_timestamp" => c.log.timestamp = parse_bool(one()?)?,
        "log_timestamp_format" => c.log.timestamp_format = Some(text()?.to_string()),
        "log_facility" => c.log.syslog_facility = Some(parse_range::<u8>(one()?, 0, 7)?),
        "connection_messages" => c.log.connection_messages = parse_bool(one()?)?,

        // ringmq's own.
        "cores" => c.cores = parse_range::<u16>(one()?, 1, 1024)? as usize,
        "cpus" => c.cpus = Some(parse_cpu_list(one()?)?),
        "check_payload_format" => c.check_payload_format = parse_bool(one()?)?,
        "response_information" => c.response_information = Some(text()?.to_string()),
        "receive_maximum" => c.receive_maximum = parse_range::<u16>(one()?, 1, 65535)?,
        "recv_buffers" => {
            let n = parse_range::<u16>(one()?, 1, 1 << 15)?;
            if !n.is_power_of_two() {
                return Err(format!("expected a power of two from 1 to 32768, got {n}"));
            }
            c.recv_buffers = n;
        }
        "mesh_queue" => c.mesh_queue = parse_range::<u32>(one()?, 1, MESH_QUEUE_MAX)?,
        "flow_control" => c.flow_control = parse_bool(one()?)?,
        "stuck_subscriber_secs" => c.stuck_subscriber_secs = parse_range::<u32>(one()?, 1, 86_400)?,
        "connect_timeout" => c.connect_timeout_secs = parse_range::<u32>(one()?, 1, 86_400)?.into(),
        "shared_subscription_strategy" => c.share_strategy = one()?.parse().map_err(|e| format!("{e}"))?,

        "certfile" => tls_options(p)?.certfile = Some(PathBuf::from(text()?)),
        "keyfile" => tls_options(p)?.keyfile = Some(PathBuf::from(text()?)),
        "cafile" => tls_options(p)?.cafile = Some(PathBuf::from(text()?)),
        "capath" => tls_options(p)?.capath = Some(PathBuf::from(text()?)),
        "crlfile" => tls_options(p)?.crlfile = Some(PathBuf::from(text()?)),
        "require_certificate" => tls_options(p)?.require_certificate = parse_bool(one()?)?,
        "use_identity_as_username" => tls_options(p)?.use_identity_as_username = parse_bool(one()?)?,
        "use_subject_as_username" => tls_options(p)?.use_subject_as_username = parse_bool(one()?)?,
        "tls_version" => {
            tls_options(p)?.tls_version = Some(match one()? {
                "tlsv1.3" => TlsVersion::Tls13,
                "tlsv1.2" => TlsVersion::Tls12,
                "tlsv1.1" | "tlsv1" => {
                    return Err("rustls speaks TLS 1.2 and 1.3 only; use tlsv1.2 or tlsv1.3".into())
                }
                v => return Err(format!("expected tlsv1.3 or tlsv1.2, got '{v}'")),
            })
        }
        "ciphers" => tls_options(p)?.ciphers = Some(one()?.to_string()),
        "ciphers_tls1.3" => tls_options(p)?.ciphers_tls13 = Some(one()?.to_string()),
        "tls_keyform" => {
            if one()? != "pem" {
                return Err("only pem: keys in OpenSSL engines do not exist in rustls".into());
            }
        }
        _ if TLS_REFUSED.iter().any(|(o, _)| *o == option) => {
            let (_, why) = TLS_REFUSED.iter().find(|(o, _)| *o == option).expect("listed");
            return Err((*why).into());
        }
        "websockets_headers_size" => {
            c.websockets_headers_size = parse_range::<u32>(one()?, 64, 1 << 20)? as usize
        }
        "websockets_log_level" => {
            parse_range::<u32>(one()?, 0, u32::MAX)?;
        }
        "http_dir" => {
            return Err("ringmq serves no files over HTTP: its WebSockets listeners speak MQTT only".into())
        }
        "connection" => {
            p.section = Section::Bridge;
            return Err("bridges are not implemented yet".into());
        }
        _ if BRIDGE.contains(&option) => {
            return Err(
                "bridges are not implemented yet (and this option belongs after a 'connection' line)".into()
            )
        }
        _ => return Err("unknown option".into()),
    }
    Ok(())
}

/// `listener PORT [ADDRESS|HOST]`.
fn listener(p: &mut Parser<'_>, args: &[&str]) -> Result<(), String> {
    let (port, host) = match args {
        [port] => (*port, None),
        [port, host] => (*port, Some(*host)),
        _ => return Err("expected a port and an optional address or host name".into()),
    };
    let port = parse_range::<u16>(port, 0, 65535)?;
    let addrs = match host {
        None => every_address(port),
        Some(h) if h.starts_with('/') => {
            return Err("listening on a unix socket is not supported".into());
        }
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let mut v: Vec<SocketAddr> = (h, port)
                    .to_socket_addrs()
                    .map_err(|e| {
                        format!("'{h}' is neither an IP address nor a host name that resolves: {e}")
                    })?
                    .collect();
                v.sort();
                v.dedup();
                v
            }
        },
    };
    let c = &mut *p.config;
    let mut l = ListenerConfig::on(addrs[0]);
    l.addrs = addrs;
    l.origin = Some(p.here.clone());
    c.listeners.push(l);
    c.listeners_in_file = true;
    p.section = Section::Listener(c.listeners.len() - 1);
    Ok(())
}

/// `log_dest stderr|stdout|syslog|file PATH|topic|none`: the first line replaces the
/// default (stderr), later ones add.
fn log_dest(p: &mut Parser<'_>, args: &[&str]) -> Result<(), String> {
    if !p.log_dests_set {
        p.log_dests_set = true;
        p.config.log.dests.clear();
    }
    let dest = match args {
        ["stderr"] => LogDest::Stderr,
        ["stdout"] => LogDest::Stdout,
        ["syslog"] => LogDest::Syslog,
        ["none"] => {
            p.config.log.dests.clear();
            return Ok(());
        }
        ["file", path @ ..] if !path.is_empty() => LogDest::File(PathBuf::from(path.join(" "))),
        ["file"] => return Err("'file' needs a path".into()),
        ["topic"] => return Err("'topic' is not implemented yet ($SYS topics are not published yet)".into()),
        ["dlt"] => return Err("'dlt' needs Mosquitto's DLT build; use syslog or file".into()),
        _ => {
            return Err(format!(
                "expected stderr, stdout, syslog, file PATH, topic or none; got '{}'",
                args.join(" ")
            ))
        }
    };
    if !p.config.log.dests.contains(&dest) {
        p.config.log.dests.push(dest);
    }
    Ok(())
}

impl Parser<'_> {
    /// Where an access control option goes: the current listener's own with
    /// `per_listener_settings true` (Mosquitto reads the file top to bottom, so the
    /// option must come after its `listener` line), the global ones otherwise.
    fn security_options(&mut self) -> &mut SecurityOptions {
        let per = self.config.per_listener_settings;
        match self.section {
            Section::Listener(i) if per => &mut self.config.listeners[i].security,
            _ => &mut self.config.security,
        }
    }
}
