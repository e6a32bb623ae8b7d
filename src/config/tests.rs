use super::*;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    let mut c = Config::default();
    c.apply_text(text, Path::new("ringmq.conf")).map(|_| c)
}

fn errors(text: &str) -> Vec<String> {
    load(text).unwrap_err().0.iter().map(|e| e.to_string()).collect()
}

#[test]
fn reads_mosquitto_options() {
    let c = load("# comment\nlistener 1884 127.0.0.1\nallow_anonymous true\nmax_queued_messages 50\nmax_inflight_messages 0\npersistent_client_expiration 2d\ncores 4\ncpus 0,2-3\nlog_type all\n").unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].addrs, vec!["127.0.0.1:1884".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.listeners[0].origin.as_deref(), Some("ringmq.conf:2"));
    assert!(c.allow_anonymous_on(0));
    assert_eq!(c.max_queued_messages, 50);
    assert_eq!(c.max_inflight_messages, u16::MAX);
    assert_eq!(c.persistent_client_expiration, Some(Duration::from_secs(2 * 86400)));
    assert_eq!(c.cores, 4);
    assert_eq!(c.cpus, Some(vec![0, 2, 3]));
    assert_eq!(c.log.types, LogTypes::ALL);
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
    assert_eq!(
        errors("allow_anonymous true\n\nfrobnicate 3\n"),
        ["ringmq.conf:3: frobnicate: unknown option"]
    );
}

#[test]
fn every_error_of_a_file_is_reported_in_one_pass() {
    let e = errors("listener 70000\nmax_keepalive 70000\npid_file /run/x.pid\nfrobnicate\nlog_type loud\ncafile /etc/ca.pem\n");
    assert_eq!(
        e,
        [
            "ringmq.conf:1: listener: expected a whole number from 0 to 65535, got '70000'",
            "ringmq.conf:2: max_keepalive: expected a whole number from 0 to 65535, got '70000'",
            "ringmq.conf:4: frobnicate: unknown option",
            "ringmq.conf:5: log_type: expected one of debug, error, warning, notice, information, subscribe, unsubscribe, websockets, none, all; got 'loud'",
            "ringmq.conf:6: cafile: TLS options belong to a listener: put this after a 'listener' line",
        ]
    );
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let c = load("\u{feff}listener 1884 127.0.0.1\n").unwrap();
    assert_eq!(c.listeners.len(), 1);
}

#[test]
fn options_owned_elsewhere_say_where() {
    let e = errors("persistence true\nlistener 8080\nprotocol websockets\nconnection b\naddress 10.0.0.1:1883\ntopic # both 0\nauth_plugin /x.so\nplugin_opt_x 1\n");
    assert!(e[0].contains("persistence: not in service yet"), "{e:?}");
    assert_eq!(e[1], "ringmq.conf:4: connection: bridges are not implemented yet");
    assert_eq!(e[2], "ringmq.conf:5: address: bridges are not implemented yet");
    assert_eq!(e[3], "ringmq.conf:6: topic: bridges are not implemented yet");
    assert!(e[4].contains("C plugins"), "{e:?}");
    assert!(e[5].contains("C plugins"), "{e:?}");
    assert_eq!(e.len(), 6);
}

#[test]
fn options_that_change_nothing_without_persistence_are_accepted() {
    let c = load("persistence false\npersistence_location /var/lib/mosquitto/\npersistence_file mosquitto.db\nautosave_interval 1800\n").unwrap();
    assert!(c.listeners.is_empty());
}

#[test]
fn logging_options() {
    let c = load("log_dest stdout\nlog_dest file /var/log/m.log\nlog_type error\nlog_type warning\nlog_timestamp_format %Y-%m-%dT%H:%M:%S\nconnection_messages false\nlog_timestamp false\n").unwrap();
    assert_eq!(c.log.dests, vec![LogDest::Stdout, LogDest::File("/var/log/m.log".into())]);
    assert_eq!(c.log.types, LogTypes { error: true, warning: true, ..LogTypes::NONE });
    assert_eq!(c.log.timestamp_format.as_deref(), Some("%Y-%m-%dT%H:%M:%S"));
    assert!(!c.log.connection_messages && !c.log.timestamp);
    assert_eq!(load("log_type none\n").unwrap().log.types, LogTypes::NONE);
    assert!(load("log_dest none\n").unwrap().log.dests.is_empty());
    assert_eq!(Config::default().log.dests, vec![LogDest::Stderr]);
    assert!(Config::default().log.types.information, "Mosquitto logs connections by default");
}

#[test]
fn listener_options_apply_to_the_listener_above_them() {
    let c = load("max_connections 5\nlistener 1883\nmax_connections 10\nsocket_domain ipv4\nlistener 1884 ::1\nbind_interface lo\n").unwrap();
    assert_eq!(c.max_connections, Some(5));
    assert_eq!(c.listeners[0].max_connections, Some(10));
    assert_eq!(c.listeners[0].addrs, vec!["0.0.0.0:1883".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.listeners[1].max_connections, None);
    assert_eq!(c.listeners[1].bind_interface.as_deref(), Some("lo"));
}

#[test]
fn port_and_bind_address_make_the_default_listener() {
    let c = load("bind_address 127.0.0.1\nport 1885\n").unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].addrs, vec!["127.0.0.1:1885".parse::<SocketAddr>().unwrap()]);
    let both = load("port 1885\n").unwrap();
    assert_eq!(both.listeners[0].addrs.len(), 2, "port listens on IPv4 and IPv6, as in Mosquitto");
}

#[test]
fn duplicate_and_overlapping_listeners_are_refused() {
    let e = errors("listener 1883\nlistener 1883\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("ringmq.conf:2: listener: port 1883 on ") && e[0].contains("ringmq.conf:1"),
        "{e:?}"
    );
    assert_eq!(errors("listener 1883 127.0.0.1\nlistener 1883\n").len(), 1);
    assert!(load(
        "listener 1883 127.0.0.1\nlistener 1884 127.0.0.1\nlistener 0 127.0.0.1\nlistener 0 127.0.0.1\n"
    )
    .is_ok());
}

#[test]
fn include_dir_reads_conf_files_in_name_order() {
    let dir = std::env::temp_dir().join(format!("ringmq-include-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("b.conf"), "max_queued_messages 7\n").unwrap();
    std::fs::write(dir.join("a.conf"), "max_queued_messages 3\nbogus 1\n").unwrap();
    std::fs::write(dir.join("c.txt"), "bogus 2\n").unwrap();
    let mut c = Config::default();
    let text = format!("include_dir {}\n", dir.display());
    let e = c.apply_text(&text, Path::new("main.conf")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].to_string(), format!("{}:2: bogus: unknown option", dir.join("a.conf").display()));
    std::fs::remove_file(dir.join("a.conf")).unwrap();
    let mut c = Config::default();
    c.apply_text(&text, Path::new("main.conf")).unwrap();
    assert_eq!(c.max_queued_messages, 7);
    std::fs::remove_dir_all(&dir).unwrap();
    let e = errors("include_dir /nonexistent/ringmq-conf.d\n");
    assert!(
        e[0].starts_with("ringmq.conf:1: include_dir: cannot read directory /nonexistent/ringmq-conf.d"),
        "{e:?}"
    );
}

#[test]
fn a_missing_file_is_one_error() {
    let mut c = Config::default();
    let e = c.load_file(Path::new("/nonexistent/ringmq.conf")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/nonexistent/ringmq.conf: cannot read it: No such file or directory (os error 2)"
    );
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
        "listener 1883 no-such-host.invalid",
        "cores 0",
        "recv_buffers 1000",
        "recv_buffers 65536",
        "mesh_queue 0",
        "mesh_queue 1048577",
        "persistent_client_expiration 3x",
        "max_packet_size 5",
        "log_dest carrier-pigeon",
        "socket_domain ipv5",
        "sys_interval 70000",
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

#[test]
fn tls_options_belong_to_their_listener() {
    let text = "listener 1883\nlistener 8883\ncertfile /s.crt\nkeyfile /s.key\ncafile /ca.crt\n\
                require_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n\
                ciphers_tls1.3 TLS_AES_128_GCM_SHA256\ntls_keyform pem\n";
    let c = load(text).unwrap();
    assert!(!c.listeners[0].tls.enabled());
    let tls = &c.listeners[1].tls;
    assert!(tls.enabled() && tls.require_certificate && tls.use_identity_as_username);
    assert_eq!(tls.certfile.as_deref(), Some(std::path::Path::new("/s.crt")));
    assert_eq!(tls.tls_version, Some(super::TlsVersion::Tls13));
    assert_eq!(tls.ciphers_tls13.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
}

#[test]
fn tls_options_rustls_cannot_honour_are_refused_with_the_reason() {
    let e = errors(
        "listener 8883\ntls_version tlsv1.1\ndhparamfile /dh.pem\npsk_hint x\ntls_engine pkcs11\ntls_keyform engine\n",
    );
    assert_eq!(
        e[0],
        "ringmq.conf:2: tls_version: rustls speaks TLS 1.2 and 1.3 only; use tlsv1.2 or tlsv1.3"
    );
    assert!(e[1].contains("dhparamfile") && e[1].contains("ECDHE only"), "{e:?}");
    assert!(e[2].contains("pre-shared-key"), "{e:?}");
    assert!(e[3].contains("OpenSSL engines"), "{e:?}");
    assert!(e[4].contains("only pem"), "{e:?}");
    assert_eq!(e.len(), 5);
}

#[test]
fn tls_options_before_any_listener_are_refused() {
    let e = errors("certfile /s.crt\n");
    assert_eq!(
        e,
        ["ringmq.conf:1: certfile: TLS options belong to a listener: put this after a 'listener' line"]
    );
}

#[test]
fn use_username_as_clientid_follows_per_listener_settings() {
    assert!(load("use_username_as_clientid true\n").unwrap().security_for(0).use_username_as_clientid);
    let per =
        load("per_listener_settings true\nlistener 1883\nlistener 1884\nuse_username_as_clientid true\n")
            .unwrap();
    assert!(!per.security_for(0).use_username_as_clientid);
    assert!(per.security_for(1).use_username_as_clientid);
}

#[test]
fn protocol_websockets_belongs_to_its_listener() {
    let c = load("listener 1883\nlistener 9001\nprotocol websockets\nwebsockets_headers_size 8192\nwebsockets_log_level 0\n").unwrap();
    assert!(!c.listeners[0].websockets && c.listeners[1].websockets);
    assert_eq!(c.websockets_headers_size, 8192);
    let e = errors("protocol websockets\nlistener 9001\nhttp_dir /var/www\n");
    assert!(e[0].contains("after a 'listener' line"), "{e:?}");
    assert!(e[1].contains("http_dir") && e[1].contains("serves no files"), "{e:?}");
}

#[test]
fn metrics_listener_takes_an_address_and_port_and_is_off_by_default() {
    assert_eq!(Config::default().metrics_listener, None);
    let c = load("metrics_listener 127.0.0.1:9100\n").unwrap();
    assert_eq!(c.metrics_listener, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(
        load("metrics_listener [::1]:0\n").unwrap().metrics_listener,
        Some("[::1]:0".parse().unwrap())
    );
    let e = errors("metrics_listener 9100\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("metrics_listener") && e[0].contains("expected ADDRESS:PORT"), "{e:?}");
}
