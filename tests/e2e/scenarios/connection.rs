//! Connection rules: PINGREQ, what may come first and what may not come twice, and a
//! malformed packet, which closes only its own connection.

use crate::common::*;
use bytes::Bytes;
use ringmq::protocol::{ByteStr, Packet, Publish, ReasonCode, Subscribe, SubscriptionOptions};
use std::collections::BTreeSet;

/// PINGREQ gets PINGRESP.
pub fn pingreq_gets_pingresp(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut c = Raw::client(b.addr, "pinger", v);
    for _ in 0..3 {
        c.send(&Packet::PingReq);
        assert!(matches!(c.expect_packet(IO_TIMEOUT), Packet::PingResp));
    }
    fence.expect_quiet(&mut c);
}

/// A second CONNECT on a connection is a protocol violation: the connection closes
/// [MQTT-3.1.0-2] (5.0: DISCONNECT 0x82 first).
pub fn second_connect_closes_connection(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "twice", v);
    c.send(&Conn::new("twice", v).packet());
    let before = c.expect_closed(IO_TIMEOUT);
    if v.is_v5() {
        assert!(
            matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::PROTOCOL_ERROR),
            "{before:?}"
        );
    } else {
        assert!(before.is_empty(), "{before:?}");
    }
}

/// A packet other than CONNECT first closes the connection, with no CONNACK [MQTT-3.1.0-1].
pub fn first_packet_other_than_connect_closes_connection(v: ProtocolVersion) {
    let b = TestBroker::start();
    let firsts: Vec<Packet> = vec![
        Packet::PingReq,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(ByteStr::from("a"), SubscriptionOptions::qos(Q0))],
            properties: None,
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: Q0,
            retain: false,
            topic: ByteStr::from("a"),
            packet_id: 0,
            payload: Bytes::from_static(b"x"),
            properties: None,
        }),
    ];
    for p in firsts {
        let mut c = Raw::open(b.addr, v);
        c.send(&p);
        let before = c.expect_closed(IO_TIMEOUT);
        assert!(before.is_empty(), "{} before CONNECT: got {before:?}", p.name());
    }
}

/// A malformed packet closes only its connection (5.0: DISCONNECT 0x81 first);
/// other clients go on publishing and receiving.
pub fn malformed_packet_closes_only_that_connection(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let mut subs: Vec<Raw> = (0..3).map(|i| Raw::client(b.addr, format!("ok-sub-{i}"), v)).collect();
    for s in subs.iter_mut() {
        s.subscribe_ok(&[("mal/t", Q1)]);
    }
    // PUBLISH with QoS 3, then a PUBLISH whose topic length runs past the packet.
    let bad: [&[u8]; 2] = [&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01], &[0x30, 0x03, 0x00, 0x09, b'a']];
    for (k, bytes) in bad.iter().enumerate() {
        let mut victim = Raw::client(b.addr, format!("bad-{k}"), v);
        victim.subscribe_ok(&[("mal/t", Q1)]);
        victim.send_raw(bytes);
        let before = victim.expect_closed(IO_TIMEOUT);
        if v.is_v5() {
            assert!(
                matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::MALFORMED_PACKET),
                "MQTT 5: DISCONNECT 0x81 before the close, got {before:?}"
            );
        } else {
            assert!(before.is_empty(), "{before:?}");
        }
        for (i, p) in pubs.iter_mut().enumerate() {
            p.publish("mal/t", format!("{k}:{i}").as_bytes(), Q1, false);
        }
        for s in subs.iter_mut() {
            let got: BTreeSet<String> =
                s.expect_publishes(SHARDS, IO_TIMEOUT).iter().map(payload_str).collect();
            assert_eq!(got, (0..SHARDS).map(|i| format!("{k}:{i}")).collect::<BTreeSet<_>>());
        }
    }
}
