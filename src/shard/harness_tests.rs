//! Cross-shard behaviour on the deterministic harness: several shards, one process, no
//! sockets, virtual time. Scenarios that hold at 3.1.1 and 5.0 alike run at both
//! (`both_versions!`); the rest are 5.0 features.

use super::harness::{connect, publish, subscribe, ClientId, Harness};
use super::registry::home_shard;
use crate::protocol::{
    Ack, ByteStr, Connect, LastWill, Packet, Properties, ProtocolVersion, QoS, ReasonCode,
};
use bytes::Bytes;

const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;

/// Defines one test per protocol version from a scenario taking the version.
macro_rules! both_versions {
    ($($name:ident),* $(,)?) => {
        mod v311 {
            $(#[test] fn $name() { super::$name(crate::protocol::ProtocolVersion::V3_1_1) })*
        }
        mod v5 {
            $(#[test] fn $name() { super::$name(crate::protocol::ProtocolVersion::V5) })*
        }
    };
}

both_versions!(
    a_publish_reaches_subscribers_on_every_shard_once,
    the_suback_waits_until_every_shard_routes_to_the_subscription,
    a_session_resumed_on_another_shard_brings_its_queue_in_order,
    a_takeover_across_shards_closes_the_old_connection,
    keepalive_closes_a_silent_client_after_one_and_a_half_periods_and_publishes_its_will,
    a_connection_that_never_sends_connect_is_closed_at_the_deadline,
    a_malformed_packet_closes_only_its_own_connection,
    retained_updates_from_several_shards_leave_the_newest,
    a_full_queue_holds_a_publisher_on_another_shard_until_it_drains,
);

/// A CONNECT whose session outlives the connection (clean session 0; 5.0: an hour).
fn persistent(version: ProtocolVersion, client_id: &str) -> Connect {
    let mut c = connect(version, client_id);
    c.clean_start = false;
    if version.is_v5() {
        c.properties =
            Some(Box::new(Properties { session_expiry_interval_secs: Some(3600), ..Default::default() }));
    }
    c
}

/// Connects and checks the CONNACK; returns the client and its Session Present flag.
fn connected(h: &mut Harness, shard: usize, c: Connect) -> (ClientId, bool) {
    let id = h.connect(shard, c);
    match h.recv(id) {
        Some(Packet::ConnAck(a)) if a.code == ReasonCode::SUCCESS => (id, a.session_present),
        other => panic!("expected a successful CONNACK, got {other:?}"),
    }
}

fn client(h: &mut Harness, shard: usize, version: ProtocolVersion, client_id: &str) -> ClientId {
    connected(h, shard, connect(version, client_id)).0
}

/// Subscribes and checks the SUBACK.
fn subscribed(h: &mut Harness, id: ClientId, filter: &str, qos: QoS) {
    h.send(id, subscribe(1, filter, qos));
    assert!(matches!(h.recv(id), Some(Packet::SubAck(_))), "a SUBACK for {filter}");
}

/// The payloads of the PUBLISH packets received, acknowledging QoS 1 ones.
fn payloads(h: &mut Harness, id: ClientId) -> Vec<Bytes> {
    let mut got = Vec::new();
    for p in h.drain(id) {
        if let Packet::Publish(p) = p {
            if p.qos == Q1 {
                let ack = Ack { packet_id: p.packet_id, reason: ReasonCode::SUCCESS, properties: None };
                h.send(id, Packet::PubAck(ack));
            }
            got.push(p.payload);
        }
    }
    got
}

/// A client id whose home shard is `home` among `shards`.
fn id_homed_on(home: usize, shards: usize, prefix: &str) -> String {
    (0..).map(|i| format!("{prefix}-{i}")).find(|id| home_shard(id, shards) == home).expect("some id")
}

fn a_publish_reaches_subscribers_on_every_shard_once(v: ProtocolVersion) {
    let mut h = Harness::new(3);
    let subs: Vec<ClientId> = (0..3).map(|s| client(&mut h, s, v, &format!("sub-{s}"))).collect();
    for &s in &subs {
        subscribed(&mut h, s, "a/+", Q1);
        subscribed(&mut h, s, "a/b", Q1); // overlapping: still one copy
    }
    let publisher = client(&mut h, 1, v, "pub");
    h.send(publisher, publish("a/b", Q1, 7, b"m"));
    assert!(matches!(h.recv(publisher), Some(Packet::PubAck(a)) if a.packet_id == 7));
    for s in subs {
        assert_eq!(payloads(&mut h, s), vec![Bytes::from_static(b"m")], "one copy each");
    }
}

fn the_suback_waits_until_every_shard_routes_to_the_subscription(v: ProtocolVersion) {
    let mut h = Harness::new(3);
    let sub = client(&mut h, 0, v, "sub");
    let publisher = client(&mut h, 2, v, "pub");
    h.send_unsettled(sub, subscribe(1, "x", Q0));
    h.turn(0);
    assert!(h.recv(sub).is_none(), "no SUBACK before the other shards have answered the barrier");
    h.settle();
    assert!(matches!(h.recv(sub), Some(Packet::SubAck(_))));
    // Anything published after the SUBACK, on any shard, reaches the subscription.
    h.send(publisher, publish("x", Q0, 0, b"after"));
    assert_eq!(payloads(&mut h, sub), vec![Bytes::from_static(b"after")]);
}

fn a_session_resumed_on_another_shard_brings_its_queue_in_order(v: ProtocolVersion) {
    let mut h = Harness::new(3);
    // Held on shard 0, homed on shard 1, resumed on shard 2: every hop crosses.
    let id = id_homed_on(1, 3, "roamer");
    let (s, present) = connected(&mut h, 0, persistent(v, &id));
    assert!(!present);
    subscribed(&mut h, s, "q", Q1);
    h.drop_connection(s);
    let publisher = client(&mut h, 1, v, "pub");
    for (i, m) in [b"1", b"2", b"3"].iter().enumerate() {
        h.send(publisher, publish("q", Q1, i as u16 + 1, *m));
    }
    let (s2, present) = connected(&mut h, 2, persistent(v, &id));
    assert!(present, "the session moved from shard 0 to shard 2");
    assert_eq!(payloads(&mut h, s2), [&b"1"[..], b"2", b"3"].map(Bytes::from_static));
    // The stub on shard 0 is gone: a new message reaches the session once.
    h.send(publisher, publish("q", Q1, 9, b"4"));
    assert_eq!(payloads(&mut h, s2), vec![Bytes::from_static(b"4")]);
}

fn a_takeover_across_shards_closes_the_old_connection(v: ProtocolVersion) {
    let mut h = Harness::new(3);
    let id = id_homed_on(2, 3, "twin");
    let (old, _) = connected(&mut h, 0, persistent(v, &id));
    subscribed(&mut h, old, "t", Q1);
    let (new, present) = connected(&mut h, 1, persistent(v, &id));
    assert!(present);
    assert!(h.is_closed(old), "the older connection is closed (3.1.1 [MQTT-3.1.4-2], 5.0 [MQTT-3.1.4-3])");
    let goodbye = h.drain(old);
    if v.is_v5() {
        assert!(
            matches!(goodbye[..], [Packet::Disconnect(ref d)] if d.reason == ReasonCode::SESSION_TAKEN_OVER),
            "{goodbye:?}"
        );
    } else {
        assert!(goodbye.is_empty(), "3.1.1 has no DISCONNECT from the server: {goodbye:?}");
    }
    let publisher = client(&mut h, 2, v, "pub");
    h.send(publisher, publish("t", Q1, 1, b"x"));
    assert_eq!(payloads(&mut h, new), vec![Bytes::from_static(b"x")], "the subscription moved too");
}

fn keepalive_closes_a_silent_client_after_one_and_a_half_periods_and_publishes_its_will(v: ProtocolVersion) {
    let mut h = Harness::new(2);
    let watcher = client(&mut h, 1, v, "watcher");
    subscribed(&mut h, watcher, "will", Q0);
    let mut c = connect(v, "sleepy");
    c.keep_alive_secs = 2;
    let will = LastWill {
        topic: ByteStr::from("will"),
        payload: Bytes::from_static(b"gone"),
        qos: Q0,
        retain: false,
        properties: None,
    };
    c.will = Some(will);
    let (sleepy, _) = connected(&mut h, 0, c);
    h.advance(3_000);
    assert!(!h.is_closed(sleepy), "3 s of silence is exactly 1.5 x 2 s: still in time");
    h.advance(100);
    assert!(h.is_closed(sleepy), "closed after 1.5 x keepalive (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22])");
    if v.is_v5() {
        let got = h.drain(sleepy);
        assert!(matches!(got[..], [Packet::Disconnect(ref d)] if d.reason == ReasonCode::KEEP_ALIVE_TIMEOUT));
    }
    assert_eq!(payloads(&mut h, watcher), vec![Bytes::from_static(b"gone")]);
}

fn a_connection_that_never_sends_connect_is_closed_at_the_deadline(v: ProtocolVersion) {
    let mut h = Harness::new(2);
    let silent = h.open(1, v);
    let deadline_ms = crate::config::Config::default().connect_timeout_secs * 1000;
    h.advance(deadline_ms - 100);
    assert!(!h.is_closed(silent));
    h.advance(100);
    assert!(h.is_closed(silent));
}

fn a_malformed_packet_closes_only_its_own_connection(v: ProtocolVersion) {
    let mut h = Harness::new(2);
    let sub = client(&mut h, 0, v, "sub");
    subscribed(&mut h, sub, "ok", Q0);
    let bad = client(&mut h, 0, v, "bad");
    let publisher = client(&mut h, 1, v, "pub");
    // PUBLISH at QoS 3 is malformed [MQTT-3.3.1-4].
    h.send_bytes(bad, &[0x36, 0x03, 0x00, 0x01, b'x']);
    assert!(h.is_closed(bad));
    h.send(publisher, publish("ok", Q0, 0, b"still here"));
    assert_eq!(payloads(&mut h, sub), vec![Bytes::from_static(b"still here")]);
}

fn retained_updates_from_several_shards_leave_the_newest(v: ProtocolVersion) {
    let mut h = Harness::new(3);
    let publishers: Vec<ClientId> = (0..3).map(|s| client(&mut h, s, v, &format!("p{s}"))).collect();
    let retained = |payload: &'static [u8]| {
        let mut p = publish("r", Q0, 0, payload);
        if let Packet::Publish(p) = &mut p {
            p.retain = true;
        }
        p
    };
    h.send(publishers[0], retained(b"1"));
    h.send(publishers[1], retained(b"2"));
    h.send(publishers[2], retained(b"")); // clears (3.1.1 [MQTT-3.3.1-10], 5.0 [MQTT-3.3.1-6])
    let late = client(&mut h, 1, v, "late");
    subscribed(&mut h, late, "r", Q0);
    assert!(payloads(&mut h, late).is_empty(), "cleared everywhere");
    h.send(publishers[0], retained(b"3"));
    for s in 0..3 {
        let fresh = client(&mut h, s, v, &format!("fresh{s}"));
        subscribed(&mut h, fresh, "r", Q0);
        assert_eq!(payloads(&mut h, fresh), vec![Bytes::from_static(b"3")], "shard {s}");
    }
}

#[test]
fn a_delayed_will_waits_out_its_interval_in_virtual_time() {
    let v = ProtocolVersion::V5;
    let mut h = Harness::new(2);
    let watcher = client(&mut h, 1, v, "watcher");
    subscribed(&mut h, watcher, "will", Q0);
    let mut c = persistent(v, "delayed");
    let properties = Properties { will_delay_interval_secs: Some(5), ..Default::default() };
    let will = LastWill {
        topic: ByteStr::from("will"),
        payload: Bytes::from_static(b"late"),
        qos: Q0,
        retain: false,
        properties: Some(Box::new(properties)),
    };
    c.will = Some(will);
    let (d, _) = connected(&mut h, 0, c);
    h.drop_connection(d);
    h.advance(4_000);
    assert!(payloads(&mut h, watcher).is_empty(), "the Will Delay Interval has not passed");
    h.advance(2_000);
    assert_eq!(payloads(&mut h, watcher), vec![Bytes::from_static(b"late")]);
}

#[test]
fn a_session_ends_when_its_expiry_interval_passes_in_virtual_time() {
    let v = ProtocolVersion::V5;
    let mut h = Harness::new(2);
    let id = id_homed_on(1, 2, "brief");
    let mut c = persistent(v, &id);
    c.properties = Some(Box::new(Properties { session_expiry_interval_secs: Some(2), ..Default::default() }));
    let (s, _) = connected(&mut h, 0, c.clone());
    h.drop_connection(s);
    h.advance(1_000);
    let (s, present) = connected(&mut h, 1, c.clone());
    assert!(present, "back within the interval");
    h.drop_connection(s);
    h.advance(3_000);
    let (_, present) = connected(&mut h, 0, c);
    assert!(!present, "the session expired while offline");
}

#[test]
fn a_shared_group_gives_each_message_to_exactly_one_member_across_shards() {
    let v = ProtocolVersion::V5;
    let mut h = Harness::new(3);
    let members: Vec<ClientId> = (0..3).map(|s| client(&mut h, s, v, &format!("m{s}"))).collect();
    for &m in &members {
        subscribed(&mut h, m, "$share/g/s/+", Q1);
    }
    let publisher = client(&mut h, 1, v, "pub");
    for i in 0..30u16 {
        h.send(publisher, publish("s/t", Q1, i + 1, &i.to_be_bytes()));
    }
    let mut all: Vec<Bytes> = members.iter().flat_map(|&m| payloads(&mut h, m)).collect();
    all.sort();
    let expected: Vec<Bytes> = (0..30u16).map(|i| Bytes::copy_from_slice(&i.to_be_bytes())).collect();
    assert_eq!(all, expected, "each message once, to one member");
}

/// Flow control across shards (`flow.rs`): a subscriber on shard 0 whose queue is full
/// holds a publisher on shard 1, whose later PUBLISH packets wait undecoded (no PUBACK)
/// until the subscriber drains; then everything arrives, in order, nothing dropped.
fn a_full_queue_holds_a_publisher_on_another_shard_until_it_drains(v: ProtocolVersion) {
    let config = crate::config::Config {
        max_queued_messages: 4,
        max_inflight_messages: 2,
        mesh_queue: 8,
        ..crate::config::Config::default()
    };
    let mut h = Harness::with_config(2, config, 0);
    let sub = client(&mut h, 0, v, "slow");
    subscribed(&mut h, sub, "flow/t", Q1);
    let publisher = client(&mut h, 1, v, "fast");
    // 20 messages: what waits while the publisher is held (13) fits the room past the
    // bound for what is on its way (mesh_queue + max_queued_messages), as the bytes a
    // held socket has buffered do.
    let n = 20u16;
    for i in 0..n {
        h.send(publisher, publish("flow/t", Q1, i + 1, &i.to_be_bytes()));
    }
    let acked =
        |h: &mut Harness| h.drain(publisher).iter().filter(|p| matches!(p, Packet::PubAck(_))).count();
    // 2 in flight, 4 queued, the 7th past the bound: its publisher is held from then on.
    let mut acks = acked(&mut h);
    assert_eq!(acks, 7, "the publisher was held after the 7th");
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(payloads(&mut h, sub));
        acks += acked(&mut h);
        if got.len() == n as usize {
            break;
        }
    }
    let want: Vec<Bytes> = (0..n).map(|i| Bytes::copy_from_slice(&i.to_be_bytes())).collect();
    assert_eq!(got, want, "every message once, in order");
    assert_eq!(acks, n as usize);
}
