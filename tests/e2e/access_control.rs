//! Access control end to end: Mosquitto's password and ACL files, `allow_anonymous`,
//! `per_listener_settings`, `$SYS` kept for the broker, at MQTT 3.1.1 and 5.0. The files
//! are written per test into a scratch directory; the brokers run with 4 shards, so the
//! publisher, the subscriber and the client ids' home shards differ.

use crate::common::{Conn, Raw, TestBroker, IO_TIMEOUT};
use ringmq::auth::password::{format_line, PasswordHash};
use ringmq::config::{Config, ListenerConfig};
use ringmq::protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];
const QUIET: Duration = Duration::from_millis(300);

/// A scratch directory for one test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ringmq-acl-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A password file (Mosquitto's `$7$` format, as `mosquitto_passwd` writes it).
    fn passwords(&self, users: &[(&str, &str)]) -> PathBuf {
        let text: String = users
            .iter()
            .map(|(u, p)| format_line(u, &PasswordHash::new_pbkdf2(p.as_bytes(), 101)) + "\n")
            .collect();
        self.file("passwd", &text)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A broker whose one listener requires a password, with an ACL.
fn secured(passwords: &Path, acl: Option<&Path>) -> TestBroker {
    TestBroker::start_with(|c: &mut Config| {
        c.security.allow_anonymous = Some(false);
        c.security.password_file = Some(passwords.to_path_buf());
        c.security.acl_file = acl.map(Path::to_path_buf);
    })
}

fn refused(v: ProtocolVersion) -> ReasonCode {
    // What Mosquitto 2.0 answers to a wrong password, an unknown user and a refused
    // anonymous client alike: 3.1.1 return code 5, 5.0 0x87 (both "not authorized").
    if v.is_v5() {
        ReasonCode::NOT_AUTHORIZED
    } else {
        ReasonCode::from_v3_connack(5)
    }
}

#[test]
fn a_wrong_password_an_unknown_user_and_an_anonymous_client_are_refused() {
    let dir = Scratch::new();
    let broker = secured(&dir.passwords(&[("alice", "secret")]), None);
    for v in VERSIONS {
        for c in [
            Conn::new("c-wrong", v).login("alice", "guess"),
            Conn::new("c-unknown", v).login("mallory", "secret"),
            Conn::new("c-anon", v),
        ] {
            let (mut raw, ack) = Raw::connect(broker.addr, c.clone());
            assert_eq!(ack.code, refused(v), "{c:?}");
            assert!(!ack.session_present);
            raw.expect_closed(IO_TIMEOUT);
        }
        Raw::connect_ok(broker.addr, Conn::new("c-right", v).login("alice", "secret"));
    }
}

#[test]
fn allow_anonymous_lets_clients_without_a_user_name_in_beside_the_password_file() {
    let dir = Scratch::new();
    let passwords = dir.passwords(&[("alice", "secret")]);
    let broker = TestBroker::start_with(|c: &mut Config| {
        c.security.allow_anonymous = Some(true);
        c.security.password_file = Some(passwords.clone());
    });
    for v in VERSIONS {
        Raw::connect_ok(broker.addr, Conn::new("anon", v));
        let (_, ack) = Raw::connect(broker.addr, Conn::new("bad", v).login("alice", "nope"));
        assert_eq!(ack.code, refused(v), "a user name still needs its password");
    }
}

#[test]
fn a_file_written_by_mosquitto_passwd_is_accepted() {
    // tests/fixtures/auth/mosquitto_passwd.txt: written by Debian's mosquitto_passwd 2.0.11
    // (the commands are in src/auth/mosquitto_interop_tests.rs): alice with `-H sha512`
    // (`$6$`), bob and carol with PBKDF2 (`$7$`, 101 and 1,000 iterations; carol's password is not ASCII).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/mosquitto_passwd.txt");
    let broker = secured(&fixture, None);
    for v in VERSIONS {
        for (user, password) in
            [("alice", "alice-secret"), ("bob", "bob-secret"), ("carol", "carol pässwörd")]
        {
            Raw::connect_ok(broker.addr, Conn::new(format!("fix-{user}"), v).login(user, password));
        }
        let (_, ack) = Raw::connect(broker.addr, Conn::new("fix-bad", v).login("bob", "alice-secret"));
        assert_eq!(ack.code, refused(v));
    }
}

const ACL: &str = "\
# anonymous clients: nothing
user alice
topic readwrite a/#
topic read r/#
topic write w/#
topic deny a/secret/#
user bob
topic readwrite #
topic readwrite $SYS/#
pattern readwrite p/%u/%c/#
";

/// alice (publisher or subscriber) and bob (who may do anything) on one broker.
fn acl_broker(dir: &Scratch) -> TestBroker {
    let passwords = dir.passwords(&[("alice", "a"), ("bob", "b")]);
    secured(&passwords, Some(&dir.file("acl", ACL)))
}

fn alice(broker: &TestBroker, id: &str, v: ProtocolVersion) -> Raw {
    Raw::connect_ok(broker.addr, Conn::new(id, v).login("alice", "a")).0
}

fn bob(broker: &TestBroker, id: &str, v: ProtocolVersion) -> Raw {
    Raw::connect_ok(broker.addr, Conn::new(id, v).login("bob", "b")).0
}

#[test]
fn a_publish_the_acl_does_not_allow_is_dropped_and_refused_in_v5() {
    let dir = Scratch::new();
    let broker = acl_broker(&dir);
    for v in VERSIONS {
        let mut watcher = bob(&broker, &format!("watch-{v:?}"), v);
        watcher.subscribe_ok(&[("#", QoS::AtLeastOnce)]);
        let mut pubber = alice(&broker, &format!("pub-{v:?}"), v);
        for topic in ["r/x", "b/x", "a/secret/x"] {
            let id = pubber.send_publish(topic, b"no", QoS::AtLeastOnce, false, None);
            let ack = match pubber.expect_match(IO_TIMEOUT, "PUBACK", |p| matches!(p, Packet::PubAck(_))) {
                Packet::PubAck(a) => a,
                _ => unreachable!(),
            };
            assert_eq!(ack.packet_id, id);
            // 3.1.1 has no way to refuse: PUBACK as usual, message dropped (as Mosquitto).
            let want = if v.is_v5() { ReasonCode::NOT_AUTHORIZED } else { ReasonCode::SUCCESS };
            assert_eq!(ack.reason, want, "{topic} at {v:?}");
        }
        pubber.publish("w/ok", b"yes", QoS::AtLeastOnce, false);
        // One publisher's messages arrive in order: the first to arrive being the last
        // sent shows the refused ones went nowhere.
        let p = watcher.expect_publish(IO_TIMEOUT);
        assert_eq!(&*p.topic, "w/ok", "only the allowed publish went out");
    }
}

#[test]
fn clients_never_publish_under_sys_even_with_an_acl_that_allows_everything() {
    let dir = Scratch::new();
    let broker = acl_broker(&dir);
    for v in VERSIONS {
        let mut reader = bob(&broker, &format!("sys-reader-{v:?}"), v);
        reader.subscribe_ok(&[("$SYS/#", QoS::AtLeastOnce)]);
        let mut writer = bob(&broker, &format!("sys-writer-{v:?}"), v);
        writer.send_publish("$SYS/broker/version", b"fake", QoS::AtLeastOnce, true, None);
        match writer.expect_match(IO_TIMEOUT, "PUBACK", |p| matches!(p, Packet::PubAck(_))) {
            Packet::PubAck(a) if v.is_v5() => assert_eq!(a.reason, ReasonCode::NOT_AUTHORIZED),
            _ => {}
        }
        reader.expect_no_packet(QUIET);
        // Not stored either: a later subscriber gets no retained copy.
        let mut late = bob(&broker, &format!("sys-late-{v:?}"), v);
        late.subscribe_ok(&[("$SYS/broker/version", QoS::AtLeastOnce)]);
        late.expect_no_packet(QUIET);
    }
}

#[test]
fn anonymous_clients_without_an_acl_file_still_cannot_write_sys() {
    let broker = TestBroker::start();
    for v in VERSIONS {
        let mut reader = Raw::client(broker.addr, format!("r-{v:?}"), v);
        reader.subscribe_ok(&[("$SYS/#", QoS::AtMostOnce)]);
        let mut writer = Raw::client(broker.addr, format!("w-{v:?}"), v);
        writer.send_publish("$SYS/broker/version", b"fake", QoS::AtLeastOnce, true, None);
        let want = if v.is_v5() { ReasonCode::NOT_AUTHORIZED } else { ReasonCode::SUCCESS };
        match writer.expect_match(IO_TIMEOUT, "PUBACK", |p| matches!(p, Packet::PubAck(_))) {
            Packet::PubAck(a) => assert_eq!(a.reason, want, "{v:?}"),
            _ => unreachable!(),
        }
        reader.expect_no_packet(QUIET);
    }
}

#[test]
fn a_filter_no_rule_lets_the_client_read_is_refused_and_a_partly_readable_one_is_filtered() {
    let dir = Scratch::new();
    let broker = acl_broker(&dir);
    for v in VERSIONS {
        let mut sub = alice(&broker, &format!("sub-{v:?}"), v);
        let ack = sub.subscribe(&[
            ("b/#", QoS::AtLeastOnce),        // no read rule reaches b/
            ("w/#", QoS::AtLeastOnce),        // write only
            ("a/secret/+", QoS::AtLeastOnce), // covered by the deny rule
            ("a/+", QoS::AtLeastOnce),        // readable throughout
            ("#", QoS::AtLeastOnce),          // some topics readable: granted, filtered
        ]);
        let no = if v.is_v5() { ReasonCode::NOT_AUTHORIZED } else { ReasonCode(0x80) };
        let yes = ReasonCode(1);
        assert_eq!(ack.reasons, vec![no, no, no, yes, yes], "{v:?}");
        let mut pubber = bob(&broker, &format!("feed-{v:?}"), v);
        for topic in ["b/1", "w/1", "a/secret/1", "a/1", "r/1", "a/x/y"] {
            pubber.publish(topic, topic.as_bytes(), QoS::AtLeastOnce, false);
        }
        let got: Vec<String> =
            sub.expect_publishes(3, IO_TIMEOUT).iter().map(|p| p.topic.to_string()).collect();
        // In publishing order, and the last one sent arrived: nothing else is on its way.
        assert_eq!(got, vec!["a/1", "r/1", "a/x/y"], "{v:?}");
    }
}

#[test]
fn retained_messages_are_filtered_by_read_access_too() {
    let dir = Scratch::new();
    let broker = acl_broker(&dir);
    let mut feeder = bob(&broker, "retain-feeder", ProtocolVersion::V5);
    for topic in ["a/keep", "a/secret/hidden", "z/other"] {
        feeder.publish(topic, topic.as_bytes(), QoS::AtLeastOnce, true);
    }
    for v in VERSIONS {
        let mut sub = alice(&broker, &format!("retain-sub-{v:?}"), v);
        sub.subscribe_ok(&[("#", QoS::AtLeastOnce)]);
        let p = sub.expect_publish(IO_TIMEOUT);
        assert_eq!((&*p.topic, p.retain), ("a/keep", true));
        sub.expect_no_packet(QUIET);
    }
}

#[test]
fn shared_subscriptions_are_checked_on_their_filter() {
    let dir = Scratch::new();
    let broker = acl_broker(&dir);
    let mut sub = alice(&broker, "shared-sub", ProtocolVersion::V5);
    let ack = sub.subscribe(&[("$share/g/a/+", QoS::AtLeastOnce), ("$share/g/b/+", QoS::AtLeastOnce)]);
    assert_eq!(ack.reasons, vec![ReasonCode(1), ReasonCode::NOT_AUTHORIZED]);
}

#[test]
fn pattern_rules_substitute_the_user_name_and_client_id() {
    let dir = Scratch::new();
    let broker = acl_broker(&dir);
    for v in VERSIONS {
        let id = format!("dev{}", v as u8);
        let mut me = alice(&broker, &id, v);
        let own = format!("p/alice/{id}/t");
        me.subscribe_ok(&[(own.as_str(), QoS::AtLeastOnce)]);
        me.publish(&own, b"mine", QoS::AtLeastOnce, false);
        assert_eq!(&*me.expect_publish(IO_TIMEOUT).topic, own.as_str());
        // Another client's tree is not alice's.
        let ack = me.subscribe(&[("p/alice/other/t", QoS::AtLeastOnce)]);
        assert!(ack.reasons[0].is_error(), "{v:?}: {ack:?}");
    }
}

#[test]
fn a_will_the_client_may_not_write_is_not_published() {
    let dir = Scratch::new();
    let broker = acl_broker(&dir);
    for v in VERSIONS {
        let mut watcher = bob(&broker, &format!("will-watch-{v:?}"), v);
        watcher.subscribe_ok(&[("#", QoS::AtLeastOnce)]);
        for (topic, allowed) in [("b/will", false), ("w/will", true)] {
            let c = Conn::new(format!("will-{topic}-{v:?}"), v).login("alice", "a").will(
                topic,
                "gone",
                QoS::AtLeastOnce,
                false,
            );
            let (raw, _) = Raw::connect_ok(broker.addr, c);
            crate::common::drop_abruptly(raw);
            if allowed {
                assert_eq!(&*watcher.expect_publish(IO_TIMEOUT).topic, topic);
            } else {
                watcher.expect_no_packet(QUIET);
            }
        }
    }
}

#[test]
fn per_listener_settings_give_each_listener_its_own_files() {
    let dir = Scratch::new();
    let open_acl = dir.file("open.acl", "topic readwrite #\n");
    let passwords = dir.passwords(&[("carol", "c")]);
    let broker = TestBroker::start_with(|c: &mut Config| {
        c.per_listener_settings = true;
        // Listener 0: anonymous, everything allowed by its ACL. Listener 1: passwords.
        c.listeners[0].security.allow_anonymous = Some(true);
        c.listeners[0].security.acl_file = Some(open_acl.clone());
        let mut second = ListenerConfig::on("127.0.0.1:0".parse().unwrap());
        second.security.allow_anonymous = Some(false);
        second.security.password_file = Some(passwords.clone());
        c.listeners.push(second);
    });
    let (first, second) = (broker.broker().local_addrs()[0], broker.broker().local_addrs()[1]);
    for v in VERSIONS {
        Raw::connect_ok(first, Conn::new("anon-first", v));
        let (_, ack) = Raw::connect(second, Conn::new("anon-second", v));
        assert_eq!(ack.code, refused(v));
        Raw::connect_ok(second, Conn::new("carol-second", v).login("carol", "c"));
        // carol's password means nothing on the first listener, which has no password
        // file: a user name alone is let in there (Mosquitto's rule).
        Raw::connect_ok(first, Conn::new("carol-first", v).login("carol", "wrong"));
    }
}

#[test]
fn a_bad_password_or_acl_file_stops_the_broker_with_every_error() {
    let dir = Scratch::new();
    let passwords = dir.file("bad.passwd", "alice:$7$notanumber$x$y\n:nouser\n");
    let acl = dir.file("bad.acl", "topic sideways a/#\nuser\n");
    let mut config = Config {
        listeners: vec![ListenerConfig::on("127.0.0.1:0".parse().unwrap())],
        cores: 1,
        ..Config::default()
    };
    config.security.password_file = Some(passwords);
    config.security.acl_file = Some(acl);
    let err = match ringmq::shard::Broker::start(config, 0) {
        Ok(_) => panic!("a broker with bad access control files must not start"),
        Err(e) => format!("{e:#}"),
    };
    for line in ["bad.passwd:1:", "bad.passwd:2:", "bad.acl:1:", "bad.acl:2:"] {
        assert!(err.contains(line), "{line} missing from: {err}");
    }
}

mod scram {
    //! MQTT 5 enhanced authentication with SCRAM-SHA-256 (section 4.12, RFC 7677):
    //! at CONNECT, and a re-authentication while connected (section 4.12.1).

    use super::*;
    use ringmq::auth::scram::random_nonce;
    use ringmq::auth::scram_client::{ScramClient, ScramClientFinal};
    use ringmq::auth::scram_file::{format_line as scram_line, ScramCredentials};
    use ringmq::protocol::{Auth, ByteStr, Properties};

    const METHOD: &str = "SCRAM-SHA-256";

    fn broker(dir: &Scratch) -> TestBroker {
        let creds = dir.file("scram", &scram_line("dave", &ScramCredentials::new(b"d-pass", 4096)));
        let acl = dir.file("acl", "user dave\ntopic readwrite d/#\n");
        TestBroker::start_with(|c: &mut Config| {
            c.security.allow_anonymous = Some(false);
            c.security.scram_file = Some(creds.clone());
            c.security.acl_file = Some(acl.clone());
        })
    }

    fn auth_props(data: Vec<u8>) -> Properties {
        Properties {
            authentication_method: Some(ByteStr::from(METHOD)),
            authentication_data: Some(data.into()),
            ..Default::default()
        }
    }

    /// Sends CONNECT with the client-first-message; returns the client's next state
    /// and its client-final-message, after the server's AUTH (continue).
    fn start(broker: &TestBroker, id: &str, user: &str, password: &[u8]) -> (Raw, ScramClientFinal, Vec<u8>) {
        let (client, first) = ScramClient::new(user, password, &random_nonce());
        let c = Conn::new(id, ProtocolVersion::V5).props(auth_props(first));
        let mut raw = Raw::open(broker.addr, ProtocolVersion::V5);
        raw.client_id = id.to_string();
        raw.send(&c.packet());
        let server_first = expect_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION);
        let (next, last) = client.server_first(&server_first).expect("a well-formed server-first-message");
        (raw, next, last)
    }

    fn expect_auth(raw: &mut Raw, reason: ReasonCode) -> Vec<u8> {
        match raw.expect_packet(IO_TIMEOUT) {
            Packet::Auth(a) => {
                assert_eq!(a.reason, reason);
                let p = a.properties.expect("AUTH carries the method and data");
                assert_eq!(p.authentication_method.as_deref(), Some(METHOD));
                p.authentication_data.expect("authentication data").to_vec()
            }
            other => panic!("expected AUTH, got {other:?}"),
        }
    }

    fn send_auth(raw: &mut Raw, reason: ReasonCode, data: Vec<u8>) {
        raw.send(&Packet::Auth(Auth { reason, properties: Some(Box::new(auth_props(data))) }));
    }

    #[test]
    fn a_scram_exchange_at_connect_authenticates_and_the_server_proves_itself() {
        let dir = Scratch::new();
        let broker = broker(&dir);
        let (mut raw, client, last) = start(&broker, "scram-ok", "dave", b"d-pass");
        send_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION, last);
        let ack = match raw.expect_packet(IO_TIMEOUT) {
            Packet::ConnAck(a) => a,
            other => panic!("expected CONNACK, got {other:?}"),
        };
        assert_eq!(ack.code, ReasonCode::SUCCESS);
        let p = ack.properties.expect("CONNACK carries the method and the server-final-message");
        assert_eq!(p.authentication_method.as_deref(), Some(METHOD));
        client.server_final(&p.authentication_data.expect("server-final")).expect("the server knows the key");
        // The SCRAM user's ACL applies.
        raw.subscribe_ok(&[("d/x", QoS::AtLeastOnce)]);
        let ack = raw.subscribe(&[("e/x", QoS::AtLeastOnce)]);
        assert_eq!(ack.reasons, vec![ReasonCode::NOT_AUTHORIZED]);
    }

    #[test]
    fn a_wrong_scram_password_an_unknown_user_and_another_method_are_refused() {
        let dir = Scratch::new();
        let broker = broker(&dir);
        // An unknown user gets a server-first-message like any other (RFC 5802 section
        // 9: not telling which user names exist) and fails at the proof.
        for (id, user, password) in [("scram-bad", "dave", &b"not-it"[..]), ("scram-who", "nobody", b"x")] {
            let (mut raw, _, last) = start(&broker, id, user, password);
            send_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION, last);
            let ack = match raw.expect_packet(IO_TIMEOUT) {
                Packet::ConnAck(a) => a,
                other => panic!("expected CONNACK, got {other:?}"),
            };
            assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED, "{id}");
            raw.expect_closed(IO_TIMEOUT);
        }
        let mut other = auth_props(b"x".to_vec());
        other.authentication_method = Some(ByteStr::from("KERBEROS"));
        let (_, ack) = Raw::connect(broker.addr, Conn::new("scram-krb", ProtocolVersion::V5).props(other));
        assert_eq!(ack.code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    }

    #[test]
    fn a_connected_client_re_authenticates_and_a_failed_re_authentication_disconnects_it() {
        let dir = Scratch::new();
        let broker = broker(&dir);
        let (mut raw, _, last) = start(&broker, "scram-re", "dave", b"d-pass");
        send_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION, last);
        assert!(matches!(raw.expect_packet(IO_TIMEOUT), Packet::ConnAck(a) if a.code == ReasonCode::SUCCESS));
        // Re-authentication: 0x19 with a client-first, 0x18 both ways, then 0x00.
        let (client, first) = ScramClient::new("dave", b"d-pass", &random_nonce());
        send_auth(&mut raw, ReasonCode::RE_AUTHENTICATE, first);
        let server_first = expect_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION);
        let (client, last) = client.server_first(&server_first).unwrap();
        send_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION, last);
        let server_final = expect_auth(&mut raw, ReasonCode::SUCCESS);
        client.server_final(&server_final).expect("the server knows the key");
        raw.ping();
        // Again with a wrong password: DISCONNECT 0x87 (section 4.12.1).
        let (client, first) = ScramClient::new("dave", b"wrong", &random_nonce());
        send_auth(&mut raw, ReasonCode::RE_AUTHENTICATE, first);
        let server_first = expect_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION);
        let (_, last) = client.server_first(&server_first).unwrap();
        send_auth(&mut raw, ReasonCode::CONTINUE_AUTHENTICATION, last);
        let rest = raw.expect_closed(IO_TIMEOUT);
        assert!(
            rest.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason == ReasonCode::NOT_AUTHORIZED)),
            "{rest:?}"
        );
    }

    #[test]
    fn auth_from_a_client_that_did_not_use_enhanced_authentication_is_a_protocol_error() {
        let dir = Scratch::new();
        let passwords = dir.passwords(&[("erin", "e")]);
        let broker = secured(&passwords, None);
        let (mut raw, _) =
            Raw::connect_ok(broker.addr, Conn::new("no-scram", ProtocolVersion::V5).login("erin", "e"));
        send_auth(&mut raw, ReasonCode::RE_AUTHENTICATE, b"n,,n=erin,r=abc".to_vec());
        let rest = raw.expect_closed(IO_TIMEOUT);
        assert!(
            rest.iter().any(|p| matches!(p, Packet::Disconnect(d) if d.reason == ReasonCode::PROTOCOL_ERROR)),
            "{rest:?}"
        );
    }
}

#[test]
fn a_reload_applies_new_password_and_acl_files_to_new_and_connected_clients() {
    let dir = Scratch::new();
    let passwords = dir.passwords(&[("alice", "a"), ("bob", "b")]);
    let acl = dir.file("acl", "user alice\ntopic read a/#\nuser bob\ntopic readwrite #\n");
    let config = |c: &mut Config| {
        c.security.allow_anonymous = Some(false);
        c.security.password_file = Some(passwords.clone());
        c.security.acl_file = Some(acl.clone());
    };
    let broker = TestBroker::start_with(config);
    let v = ProtocolVersion::V5;
    let mut reader = alice(&broker, "reload-reader", v);
    reader.subscribe_ok(&[("#", QoS::AtLeastOnce)]);
    let mut feeder = bob(&broker, "reload-feeder", v);
    feeder.publish("a/1", b"before", QoS::AtLeastOnce, false);
    assert_eq!(&*reader.expect_publish(IO_TIMEOUT).topic, "a/1");

    // alice may now read b/ instead of a/, and carol exists.
    std::fs::write(&acl, "user alice\ntopic read b/#\nuser bob\ntopic readwrite #\n").unwrap();
    dir.passwords(&[("alice", "a"), ("bob", "b"), ("carol", "c")]);
    let mut reloaded = Config::default();
    config(&mut reloaded);
    broker.broker().reload_access(&reloaded);

    // Each shard takes the new files at its next turn, before it handles what woke it.
    Raw::connect_ok(broker.addr, Conn::new("reload-carol", v).login("carol", "c"));
    feeder.publish("a/2", b"after", QoS::AtLeastOnce, false);
    feeder.publish("b/2", b"after", QoS::AtLeastOnce, false);
    // In publishing order: b/2 first means a/2 was filtered out.
    assert_eq!(&*reader.expect_publish(IO_TIMEOUT).topic, "b/2");

    // A file with errors keeps the rules in force.
    std::fs::write(&acl, "topic sideways x\n").unwrap();
    broker.broker().reload_access(&reloaded);
    feeder.publish("b/3", b"still", QoS::AtLeastOnce, false);
    assert_eq!(&*reader.expect_publish(IO_TIMEOUT).topic, "b/3");
}

#[test]
fn use_username_as_clientid_gives_each_user_one_session_and_refuses_clients_without_one() {
    let dir = Scratch::new();
    let passwords = dir.passwords(&[("frank", "f")]);
    let broker = TestBroker::start_with(|c: &mut Config| {
        c.security.allow_anonymous = Some(true);
        c.security.password_file = Some(passwords.clone());
        c.security.use_username_as_clientid = true;
    });
    for v in VERSIONS {
        let (mut first, _) =
            Raw::connect_ok(broker.addr, Conn::new(format!("a-{v:?}"), v).login("frank", "f"));
        // Another client id, the same user: the same session, so the first is taken over.
        Raw::connect_ok(broker.addr, Conn::new(format!("b-{v:?}"), v).login("frank", "f"));
        first.expect_closed(IO_TIMEOUT);
        let (_, ack) = Raw::connect(broker.addr, Conn::new(format!("anon-{v:?}"), v));
        assert_eq!(ack.code, refused(v));
    }
}

#[test]
fn sighup_reloads_the_password_file_of_the_real_binary() {
    let dir = Scratch::new();
    let passwords = dir.passwords(&[("gina", "g")]);
    let conf = dir.file(
        "ringmq.conf",
        &format!("listener 0 127.0.0.1\nallow_anonymous false\npassword_file {}\n", passwords.display()),
    );
    let mut broker = crate::binary::BrokerProcess::spawn(&["-c", conf.to_str().unwrap(), "--cores", "4"]);
    let v = ProtocolVersion::V3_1_1;
    Raw::connect_ok(broker.addr, Conn::new("gina-1", v).login("gina", "g"));
    let (_, ack) = Raw::connect(broker.addr, Conn::new("hank-1", v).login("hank", "h"));
    assert_eq!(ack.code, refused(v));
    dir.passwords(&[("gina", "g"), ("hank", "h")]);
    broker.signal(libc::SIGHUP);
    broker.wait_for_line("Reloading config.", IO_TIMEOUT);
    // The line comes before the files are read (as Mosquitto writes it), so the new
    // password may take a moment: a few tries, bounded.
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let (_, ack) = Raw::connect(broker.addr, Conn::new("hank-2", v).login("hank", "h"));
        if ack.code == ReasonCode::SUCCESS {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the reloaded password file never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.signal(libc::SIGTERM);
}
