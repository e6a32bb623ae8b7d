//! The reason codes of the broker's DISCONNECT, PUBACK, PUBREC, SUBACK, UNSUBACK, PUBREL
//! and PUBCOMP.

use super::*;
use crate::common::*;
use bytes::BytesMut;
use ringmq::protocol::{Ack, Packet, QoS, ReasonCode, RetainHandling, Subscribe};

#[test]
fn server_shutdown_sends_disconnect_0x8b_to_clients_on_every_shard() {
    let b = TestBroker::start();
    let mut cs = one_per_shard(b.addr);
    cs.push(Raw::connect_ok(b.addr, v5("sd-persistent").persistent()).0);
    drop(b);
    for c in cs.iter_mut() {
        expect_disconnect(c, ReasonCode::SERVER_SHUTTING_DOWN);
    }
}

#[test]
fn no_local_on_a_shared_subscription_gets_disconnect_0x82() {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "nl-shared", V5);
    c.send(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![filter("$share/g/nls/t", sub_opts(Q1, |o| o.no_local = true))],
        properties: None,
    }));
    expect_disconnect(&mut c, ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn publish_with_a_subscription_identifier_from_the_client_gets_disconnect_0x82() {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "sid-from-client", V5);
    c.send_publish("sidc/t", b"x", Q1, false, Some(props(|p| p.subscription_identifiers = vec![3])));
    expect_disconnect(&mut c, ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn puback_and_pubrec_say_0x10_when_no_subscriber_matches_on_any_shard() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for p in fence.conns.iter_mut() {
        assert_eq!(publish_reason(p, "nm/none", b"x", Q1, None), ReasonCode::NO_MATCHING_SUBSCRIBERS);
        assert_eq!(publish_reason(p, "nm/none", b"x", Q2, None), ReasonCode::NO_MATCHING_SUBSCRIBERS);
    }
    let (mut s, _) = on_shard(b.addr, v5(""), 0);
    s.subscribe_ok(&[("nm/+/plain", Q1)]);
    let (mut g, _) = on_shard(b.addr, v5(""), 1);
    g.subscribe_ok(&[("$share/g/nm/shared", Q1)]);
    for p in fence.conns.iter_mut() {
        assert_eq!(publish_reason(p, "nm/x/plain", b"x", Q1, None), ReasonCode::SUCCESS);
        assert_eq!(publish_reason(p, "nm/shared", b"x", Q2, None), ReasonCode::SUCCESS);
        assert_eq!(publish_reason(p, "nm/none", b"x", Q1, None), ReasonCode::NO_MATCHING_SUBSCRIBERS);
    }
    s.expect_publishes(SHARDS, IO_TIMEOUT);
    g.expect_publishes(SHARDS, IO_TIMEOUT);
}

#[test]
fn puback_0x97_for_a_payload_over_message_size_limit_and_the_message_is_dropped() {
    let b = TestBroker::start_with(|c| c.message_size_limit = 100);
    let mut fence = Fence::new(b.addr);
    let mut s = Raw::client(b.addr, "msl-sub", V5);
    s.subscribe_ok(&[("msl/t", Q2)]);
    for p in fence.conns.iter_mut() {
        assert_eq!(publish_reason(p, "msl/t", &[b'a'; 100], Q1, None), ReasonCode::SUCCESS);
        assert_eq!(publish_reason(p, "msl/t", &[b'b'; 101], Q1, None), ReasonCode::QUOTA_EXCEEDED);
        assert_eq!(publish_reason(p, "msl/t", &[b'c'; 101], Q2, None), ReasonCode::QUOTA_EXCEEDED);
        p.publish("msl/t", &[b'd'; 101], Q0, false);
    }
    for m in s.expect_publishes(SHARDS, IO_TIMEOUT) {
        assert_eq!(&m.payload[..], &[b'a'; 100][..]);
    }
    fence.expect_quiet(&mut s);
}

#[test]
fn suback_has_the_granted_qos_for_each_filter_in_order() {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "suback-codes", V5);
    let ack = c.subscribe_with(
        vec![
            filter("sa/0", sub_opts(Q0, |_| {})),
            filter("sa/2", sub_opts(Q2, |_| {})),
            filter("sa/+/1", sub_opts(Q1, |_| {})),
            filter("$share/g/sa/s", sub_opts(Q2, |_| {})),
            filter("sa/#", sub_opts(Q0, |o| o.retain_as_published = true)),
            filter("sa/0", sub_opts(Q1, |o| o.retain_handling = RetainHandling::DoNotSend)),
        ],
        Some(props(|p| p.subscription_identifiers = vec![5])),
    );
    assert_eq!(ack.reasons, [0, 2, 1, 2, 0, 1].map(ReasonCode).to_vec());
}

#[test]
fn unsuback_reason_codes_cover_shared_subscriptions() {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "unsuback-shared", V5);
    c.subscribe_ok(&[("$share/g/us/t", Q1), ("us/t", Q1)]);
    let ack = c.unsubscribe(&["$share/g/us/t", "$share/other/us/t", "us/t", "$share/g/us/t"]);
    let (ok, none) = (ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED);
    assert_eq!(ack.reasons, vec![ok, none, ok, none]);
}

#[test]
fn pubrel_for_an_unknown_packet_id_gets_pubcomp_0x92_and_pubrec_gets_pubrel_0x92() {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "unknown-ids", V5);
    let pubcomp = |c: &mut Raw, id: u16| {
        c.send(&Packet::PubRel(Ack::new(id)));
        match c.expect_match(
            IO_TIMEOUT,
            "PUBCOMP",
            move |p| matches!(p, Packet::PubComp(a) if a.packet_id == id),
        ) {
            Packet::PubComp(a) => a.reason,
            _ => unreachable!(),
        }
    };
    assert_eq!(pubcomp(&mut c, 77), ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
    // A completed exchange is forgotten: its PUBREL again is unknown.
    let id = c.publish("ids/t", b"x", Q2, false);
    assert_eq!(pubcomp(&mut c, id), ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
    c.send(&Packet::PubRec(Ack::new(99)));
    match c.expect_match(IO_TIMEOUT, "PUBREL", |p| matches!(p, Packet::PubRel(a) if a.packet_id == 99)) {
        Packet::PubRel(a) => assert_eq!(a.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        _ => unreachable!(),
    }
}

#[test]
fn our_receive_maximum_is_advertised_and_exceeding_it_gets_disconnect_0x93() {
    let b = TestBroker::start_with(|c| c.receive_maximum = 2);
    let (mut c, ack) = Raw::connect_ok(b.addr, v5("recv-max"));
    let advertised = ack.properties.as_ref().and_then(|p| p.receive_maximum);
    assert_eq!(advertised, Some(2), "{ack:?}");
    // Two QoS 2 exchanges left open (no PUBREL) are within the maximum...
    for _ in 0..2 {
        c.send_publish("rm/t", b"x", QoS::ExactlyOnce, false, None);
        assert!(matches!(c.expect_packet(IO_TIMEOUT), Packet::PubRec(_)));
    }
    // ...a third is one too many (5.0 [MQTT-3.3.4-7]).
    c.send_publish("rm/t", b"x", QoS::ExactlyOnce, false, None);
    expect_disconnect(&mut c, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
}

/// At the default maximum a client can exceed it only by reusing an identifier: 65,535 QoS
/// 2 exchanges left open, one per packet identifier, then a new PUBLISH (DUP 0) on
/// identifier 1. (Eclipse Paho's interoperability suite, `test_flow_control2`, means to
/// do this, but its client never uses identifier 65,535 and stops at 65,534.)
#[test]
fn a_new_publish_beyond_the_default_receive_maximum_of_65535_gets_disconnect_0x93() {
    let b = TestBroker::start();
    let (mut c, ack) = Raw::connect_ok(b.addr, v5("recv-max-default"));
    assert_eq!(ack.properties.as_ref().and_then(|p| p.receive_maximum), None, "65,535 is the default");
    let chunk = 1024u32;
    let mut id = 1u32;
    while id <= u16::MAX as u32 {
        // In chunks, reading the PUBRECs in between, so neither side's buffers fill.
        let mut out = BytesMut::new();
        let last = (id + chunk - 1).min(u16::MAX as u32);
        for i in id..=last {
            publish_packet("rm/default", b"x", QoS::ExactlyOnce, false, i as u16, None).encode(V5, &mut out);
        }
        c.send_raw(&out);
        for i in id..=last {
            match c.expect_packet(IO_TIMEOUT) {
                Packet::PubRec(a) => assert_eq!(a.packet_id, i as u16),
                other => panic!("expected PUBREC {i}, got {other:?}"),
            }
        }
        id = last + 1;
    }
    // A retransmission of an open exchange (DUP 1) is still acknowledged (5.0 [MQTT-4.3.3-10])...
    let mut dup = BytesMut::new();
    let Packet::Publish(mut p) = publish_packet("rm/default", b"x", QoS::ExactlyOnce, false, 1, None) else {
        unreachable!()
    };
    p.dup = true;
    Packet::Publish(p).encode(V5, &mut dup);
    c.send_raw(&dup);
    assert!(matches!(c.expect_packet(IO_TIMEOUT), Packet::PubRec(a) if a.packet_id == 1));
    // ...a new PUBLISH is the 65,536th unacknowledged one (5.0 [MQTT-3.3.4-7]).
    c.send(&publish_packet("rm/default", b"x", QoS::ExactlyOnce, false, 1, None));
    expect_disconnect(&mut c, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
}

#[test]
fn malformed_packet_gets_disconnect_0x81_with_a_reason_string_naming_the_rule() {
    let b = TestBroker::start();
    let (mut c, _) = Raw::connect_ok(b.addr, v5("malformed-why"));
    // PUBLISH at QoS 3 [MQTT-3.3.1-4].
    c.send_raw(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]);
    let before = c.expect_closed(IO_TIMEOUT);
    let [Packet::Disconnect(d)] = before.as_slice() else { panic!("expected DISCONNECT, got {before:?}") };
    assert_eq!(d.reason, ReasonCode::MALFORMED_PACKET);
    let why = d.properties.as_ref().and_then(|p| p.reason_string.clone()).expect("a reason string");
    assert!(why.contains("MQTT-3.3.1-4"), "{why}");
}
