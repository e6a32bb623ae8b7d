//! Sessions driven without sockets: packets in, decoded packets out.

use super::*;
use crate::protocol::{Decoded, Decoder, Properties};
use bytes::Bytes;

fn session(version: ProtocolVersion) -> Session {
    let mut s = Session::new(
        ByteStr::from("c1"),
        version,
        u32::MAX,
        Limits { max_inflight_messages: 2, max_queued_messages: 3, ..Limits::default() },
    );
    s.attach(version, u16::MAX, usize::MAX);
    s
}

fn packets(version: ProtocolVersion, out: &mut BytesMut) -> Vec<Packet> {
    let mut d = Decoder::with_version(version, usize::MAX);
    let mut v = Vec::new();
    while let Decoded::Packet(p) = d.decode(out).expect("session wrote a valid packet") {
        v.push(p);
    }
    assert!(out.is_empty());
    v
}

fn publish(qos: QoS, packet_id: u16, topic: &str) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: Bytes::from_static(b"x"),
        properties: None,
    }
}

fn delivery(qos: QoS, payload: &'static [u8]) -> Delivery {
    let message = Message {
        topic: "t".into(),
        payload: Bytes::from_static(payload),
        qos,
        retain: false,
        properties: None,
        expires_at_ms: None,
        publisher: PublisherKey::NONE,
        origin: Origin::UNROUTED,
    };
    Delivery { message: Arc::new(message), qos, retain: false, subscription_ids: vec![], shared: None }
}

#[test]
fn qos1_publish_is_acknowledged_and_routed() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut s = session(v);
        let mut out = BytesMut::new();
        let m = s.handle_publish(publish(QoS::AtLeastOnce, 7, "a/b"), 0, &mut out).unwrap().unwrap();
        assert_eq!(&*m.topic, "a/b");
        assert_eq!(packets(v, &mut out), vec![Packet::PubAck(Ack::new(7))]);
    }
}

#[test]
fn qos2_retransmission_is_not_routed_twice() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut s = session(v);
        let mut out = BytesMut::new();
        assert!(s.handle_publish(publish(QoS::ExactlyOnce, 9, "a"), 0, &mut out).unwrap().is_some());
        let mut again = publish(QoS::ExactlyOnce, 9, "a");
        again.dup = true;
        assert!(s.handle_publish(again, 0, &mut out).unwrap().is_none());
        s.handle_pubrel(9, &mut out);
        // After the release the same id starts a new exchange.
        assert!(s.handle_publish(publish(QoS::ExactlyOnce, 9, "a"), 0, &mut out).unwrap().is_some());
        let got = packets(v, &mut out);
        assert_eq!(
            got,
            vec![
                Packet::PubRec(Ack::new(9)),
                Packet::PubRec(Ack::new(9)),
                Packet::PubComp(Ack::new(9)),
                Packet::PubRec(Ack::new(9))
            ]
        );
    }
}

#[test]
fn pubrel_for_unknown_id_answers_packet_identifier_not_found_in_v5() {
    let mut s = session(ProtocolVersion::V5);
    let mut out = BytesMut::new();
    s.handle_pubrel(3, &mut out);
    let got = packets(ProtocolVersion::V5, &mut out);
    assert_eq!(
        got,
        vec![Packet::PubComp(Ack {
            packet_id: 3,
            reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            properties: None
        })]
    );
}

#[test]
fn outbound_window_queues_then_pumps_on_ack() {
    let v = ProtocolVersion::V3_1_1;
    let mut s = session(v);
    let mut out = BytesMut::new();
    for _ in 0..4 {
        s.deliver(delivery(QoS::AtLeastOnce, b"m"), 0, &mut out);
    }
    let sent = packets(v, &mut out);
    assert_eq!(sent.len(), 2, "window of 2");
    assert_eq!(s.outbound.queue.len(), 2);
    let Packet::Publish(first) = &sent[0] else { panic!() };
    s.handle_puback(first.packet_id, 0, &mut out);
    assert_eq!(packets(v, &mut out).len(), 1);
    assert_eq!(s.outbound.queue.len(), 1);
}

#[test]
fn a_full_65535_window_hands_out_each_id_once_and_reuses_the_one_acknowledged() {
    let mut s = Session::new(
        ByteStr::from("c1"),
        ProtocolVersion::V5,
        u32::MAX,
        Limits { max_inflight_messages: u16::MAX, max_queued_messages: 0, ..Limits::default() },
    );
    s.attach(ProtocolVersion::V5, u16::MAX, usize::MAX);
    let mut out = BytesMut::new();
    for _ in 0..u16::MAX as usize + 2 {
        s.deliver(delivery(QoS::AtLeastOnce, b"m"), 0, &mut out);
    }
    let mut seen = vec![false; u16::MAX as usize + 1];
    for p in packets(ProtocolVersion::V5, &mut out) {
        let Packet::Publish(p) = p else { panic!("expected PUBLISH, got {p:?}") };
        // Never 0, never one already in flight (5.0 [MQTT-2.2.1-4]).
        assert!(p.packet_id != 0 && !seen[p.packet_id as usize], "id {} twice", p.packet_id);
        seen[p.packet_id as usize] = true;
    }
    assert_eq!(seen.iter().filter(|&&x| x).count(), u16::MAX as usize, "the window is full");
    // Acknowledging one from the middle frees exactly that id for the first queued message.
    s.handle_puback(30_000, 0, &mut out);
    match packets(ProtocolVersion::V5, &mut out).as_slice() {
        [Packet::Publish(p)] => assert_eq!(p.packet_id, 30_000),
        other => panic!("expected one PUBLISH, got {other:?}"),
    }
}

#[test]
fn queue_bound_drops_and_counts() {
    let v = ProtocolVersion::V3_1_1;
    let mut s = session(v);
    s.detach();
    let mut out = BytesMut::new();
    let outcomes: Vec<_> = (0..5).map(|_| s.deliver(delivery(QoS::AtLeastOnce, b"m"), 0, &mut out)).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == DeliverOutcome::Queued).count(), 3);
    assert_eq!(s.drops.queue_full, 2);
    assert!(out.is_empty(), "nothing is written while offline");
}

#[test]
fn qos0_is_not_queued_while_offline() {
    let mut s = session(ProtocolVersion::V3_1_1);
    s.detach();
    let mut out = BytesMut::new();
    assert_eq!(s.deliver(delivery(QoS::AtMostOnce, b"m"), 0, &mut out), DeliverOutcome::Dropped);
}

#[test]
fn resume_resends_unacknowledged_with_dup_and_pubrel() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut s = session(v);
        let mut out = BytesMut::new();
        s.deliver(delivery(QoS::AtLeastOnce, b"one"), 0, &mut out);
        s.deliver(delivery(QoS::ExactlyOnce, b"two"), 0, &mut out);
        let sent = packets(v, &mut out);
        let Packet::Publish(two) = &sent[1] else { panic!() };
        s.handle_pubrec(two.packet_id, ReasonCode::SUCCESS, 0, &mut out);
        assert_eq!(packets(v, &mut out), vec![Packet::PubRel(Ack::new(two.packet_id))]);
        s.deliver(delivery(QoS::AtLeastOnce, b"three"), 0, &mut out); // queued: window full
        s.detach();
        s.attach(v, u16::MAX, usize::MAX);
        s.resume(0, &mut out);
        let again = packets(v, &mut out);
        let Packet::Publish(one) = &again[0] else { panic!("{again:?}") };
        assert!(one.dup && &one.payload[..] == b"one");
        assert_eq!(again[1], Packet::PubRel(Ack::new(two.packet_id)));
        assert_eq!(again.len(), 2, "window still full: 'three' waits");
    }
}

#[test]
fn topic_alias_maps_empty_topic_and_rejects_zero_and_unknown() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    let mut out = BytesMut::new();
    let with_alias = |topic: &str, alias: u16| {
        let mut p = publish(QoS::AtMostOnce, 0, topic);
        p.properties = Some(Box::new(Properties { topic_alias: Some(alias), ..Default::default() }));
        p
    };
    assert_eq!(s.handle_publish(with_alias("", 4), 0, &mut out), Err(SessionError::UnknownTopicAlias));
    let m = s.handle_publish(with_alias("x/y", 4), 0, &mut out).unwrap().unwrap();
    assert!(m.properties.is_none(), "the alias is not forwarded");
    let m = s.handle_publish(with_alias("", 4), 0, &mut out).unwrap().unwrap();
    assert_eq!(&*m.topic, "x/y");
    assert_eq!(s.handle_publish(with_alias("z", 0), 0, &mut out), Err(SessionError::TopicAliasInvalid));
}

#[test]
fn subscription_ids_are_added_per_delivery_in_v5_only() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut s = session(v);
        let mut out = BytesMut::new();
        let mut d = delivery(QoS::AtMostOnce, b"m");
        d.subscription_ids = vec![1, 5];
        s.deliver(d, 0, &mut out);
        let Packet::Publish(p) = packets(v, &mut out).remove(0) else { panic!() };
        let ids = p.properties.map(|p| p.subscription_identifiers).unwrap_or_default();
        assert_eq!(ids, if v.is_v5() { vec![1, 5] } else { vec![] });
    }
}

#[test]
fn never_sends_more_than_the_clients_maximum_packet_size() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    s.attach(v, u16::MAX, 20);
    let mut out = BytesMut::new();
    assert_eq!(s.deliver(delivery(QoS::AtMostOnce, &[0u8; 64]), 0, &mut out), DeliverOutcome::Dropped);
    assert_eq!(s.drops.too_large_for_client, 1);
    assert_eq!(s.deliver(delivery(QoS::AtMostOnce, b"ok"), 0, &mut out), DeliverOutcome::Sent);
}

#[test]
fn expired_messages_are_not_sent_and_live_ones_carry_the_time_left() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    let mut out = BytesMut::new();
    let mut d = delivery(QoS::AtLeastOnce, b"m");
    Arc::make_mut(&mut d.message).expires_at_ms = Some(10_500);
    assert_eq!(s.deliver(d.clone(), 1_000, &mut out), DeliverOutcome::Sent);
    let Packet::Publish(p) = packets(v, &mut out).remove(0) else { panic!() };
    assert_eq!(p.properties.and_then(|p| p.message_expiry_interval_secs), Some(10), "9.5 s left rounds up");
    assert_eq!(s.deliver(d, 10_500, &mut out), DeliverOutcome::Dropped);
    assert_eq!(s.drops.expired, 1);
}

#[test]
fn a_clock_behind_the_publishers_never_sends_more_expiry_than_was_set() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    let mut out = BytesMut::new();
    let mut d = delivery(QoS::AtLeastOnce, b"m");
    let m = Arc::make_mut(&mut d.message);
    // Set to 60 s at 10,000 ms on the publishing shard's clock...
    m.properties =
        Some(Arc::new(Properties { message_expiry_interval_secs: Some(60), ..Default::default() }));
    m.expires_at_ms = Some(70_000);
    // ...and sent by a shard whose clock was read 500 ms earlier.
    assert_eq!(s.deliver(d, 9_500, &mut out), DeliverOutcome::Sent);
    let Packet::Publish(p) = packets(v, &mut out).remove(0) else { panic!() };
    assert_eq!(p.properties.and_then(|p| p.message_expiry_interval_secs), Some(60), "5.0 [MQTT-3.3.2-6]");
}

#[test]
fn queued_message_that_expires_while_waiting_is_dropped_on_pump() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    s.detach();
    let mut out = BytesMut::new();
    let mut d = delivery(QoS::AtLeastOnce, b"m");
    Arc::make_mut(&mut d.message).expires_at_ms = Some(5_000);
    assert_eq!(s.deliver(d, 0, &mut out), DeliverOutcome::Queued);
    s.attach(v, u16::MAX, usize::MAX);
    s.resume(6_000, &mut out);
    assert!(out.is_empty(), "expired while the client was away");
}

#[test]
fn outbound_topic_alias_sends_the_topic_once_then_only_the_alias() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    s.set_client_topic_alias_maximum(1);
    let mut out = BytesMut::new();
    s.deliver(delivery(QoS::AtMostOnce, b"1"), 0, &mut out);
    s.deliver(delivery(QoS::AtMostOnce, b"2"), 0, &mut out);
    let mut other = delivery(QoS::AtMostOnce, b"3");
    Arc::make_mut(&mut other.message).topic = "other".into();
    s.deliver(other, 0, &mut out);
    let got = packets(v, &mut out);
    let pubs: Vec<_> =
        got.into_iter().map(|p| if let Packet::Publish(p) = p { p } else { panic!() }).collect();
    assert_eq!((&*pubs[0].topic, pubs[0].properties.as_ref().and_then(|p| p.topic_alias)), ("t", Some(1)));
    assert_eq!((&*pubs[1].topic, pubs[1].properties.as_ref().and_then(|p| p.topic_alias)), ("", Some(1)));
    assert_eq!(
        (&*pubs[2].topic, pubs[2].properties.as_ref().and_then(|p| p.topic_alias)),
        ("other", None),
        "alias maximum reached"
    );
}

#[test]
fn acknowledge_carries_the_reason_in_v5_only() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let mut s = session(v);
        let mut out = BytesMut::new();
        let a = s.accept_publish(publish(QoS::AtLeastOnce, 4, "x"), 0).unwrap();
        s.acknowledge(a.qos, a.packet_id, ReasonCode::NO_MATCHING_SUBSCRIBERS, &mut out);
        let Packet::PubAck(ack) = packets(v, &mut out).remove(0) else { panic!() };
        let want = if v.is_v5() { ReasonCode::NO_MATCHING_SUBSCRIBERS } else { ReasonCode::SUCCESS };
        assert_eq!(ack.reason, want);
    }
}

#[test]
fn refused_qos2_publish_does_not_open_an_exchange() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    let mut out = BytesMut::new();
    let a = s.accept_publish(publish(QoS::ExactlyOnce, 8, "x"), 0).unwrap();
    s.acknowledge(a.qos, a.packet_id, ReasonCode::QUOTA_EXCEEDED, &mut out);
    let a = s.accept_publish(publish(QoS::ExactlyOnce, 8, "x"), 0).unwrap();
    assert!(a.message.is_some(), "a refused exchange is not a duplicate");
}

#[test]
fn shared_deliveries_lists_unacknowledged_and_queued_shared_messages_only() {
    let v = ProtocolVersion::V3_1_1;
    let mut s = session(v);
    let mut out = BytesMut::new();
    let name = Arc::new(SharedGroupName { group: "g".into(), filter: "t".into() });
    let shared = |payload| {
        let mut d = delivery(QoS::ExactlyOnce, payload);
        d.shared = Some(name.clone());
        d
    };
    s.deliver(shared(b"a"), 0, &mut out); // in flight, will get PUBREC
    s.deliver(shared(b"b"), 0, &mut out); // in flight
    s.deliver(shared(b"c"), 0, &mut out); // queued
    s.deliver(delivery(QoS::AtLeastOnce, b"plain"), 0, &mut out); // queued, not shared
    let sent = packets(v, &mut out);
    let Packet::Publish(a) = &sent[0] else { panic!() };
    s.handle_pubrec(a.packet_id, ReasonCode::SUCCESS, 0, &mut out);
    let left: Vec<_> = s.shared_deliveries().iter().map(|d| d.message.payload.clone()).collect();
    assert_eq!(left, vec![Bytes::from_static(b"b"), Bytes::from_static(b"c")]);
}

#[test]
fn max_queued_messages_zero_means_no_limit_as_in_mosquitto() {
    let v = ProtocolVersion::V3_1_1;
    let mut s =
        Session::new(ByteStr::from("c"), v, u32::MAX, Limits { max_queued_messages: 0, ..Limits::default() });
    let mut out = BytesMut::new();
    for _ in 0..5000 {
        assert_eq!(s.deliver(delivery(QoS::AtLeastOnce, b"m"), 0, &mut out), DeliverOutcome::Queued);
    }
}

fn session_with_receive_maximum(version: ProtocolVersion, receive_maximum: u16) -> Session {
    let mut s =
        Session::new(ByteStr::from("c1"), version, u32::MAX, Limits { receive_maximum, ..Limits::default() });
    s.attach(version, u16::MAX, usize::MAX);
    s
}

#[test]
fn new_qos2_publish_reusing_an_open_identifier_at_the_receive_maximum_is_one_too_many() {
    let v = ProtocolVersion::V5;
    let mut s = session_with_receive_maximum(v, 2);
    let mut out = BytesMut::new();
    for id in [1, 2] {
        assert!(s.handle_publish(publish(QoS::ExactlyOnce, id, "a"), 0, &mut out).unwrap().is_some());
    }
    // A retransmission (DUP 1) is acknowledged again and not routed (5.0 [MQTT-4.3.3-10])...
    let mut again = publish(QoS::ExactlyOnce, 1, "a");
    again.dup = true;
    assert!(s.handle_publish(again, 0, &mut out).unwrap().is_none());
    // ...a new PUBLISH (DUP 0) is a third unacknowledged one against a maximum of 2
    // (5.0 [MQTT-3.3.4-7]), whether its identifier is new or still in use.
    for id in [1, 3] {
        let err = s.handle_publish(publish(QoS::ExactlyOnce, id, "a"), 0, &mut out).unwrap_err();
        assert_eq!(err, SessionError::ReceiveMaximumExceeded);
        assert_eq!(err.reason_code(), ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
    }
    let got = packets(v, &mut out);
    assert_eq!(got.len(), 3, "PUBREC 1, PUBREC 2 and PUBREC 1 again: {got:?}");
}

#[test]
fn below_the_receive_maximum_a_reused_open_identifier_is_acknowledged_and_not_routed() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        // MQTT 3.1.1 has no Receive Maximum: a limit of 1 must not apply to it.
        let mut s = session_with_receive_maximum(v, if v.is_v5() { 3 } else { 1 });
        let mut out = BytesMut::new();
        for id in [1, 2] {
            assert!(s.handle_publish(publish(QoS::ExactlyOnce, id, "a"), 0, &mut out).unwrap().is_some());
        }
        // DUP 0, identifier 1 still open: a client fault, but the rule for the receiver
        // is to acknowledge it and not deliver it twice (3.1.1 [MQTT-4.3.3-2],
        // 5.0 [MQTT-4.3.3-10]).
        assert!(s.handle_publish(publish(QoS::ExactlyOnce, 1, "a"), 0, &mut out).unwrap().is_none());
        assert_eq!(packets(v, &mut out).len(), 3, "{v:?}");
    }
}

#[test]
fn an_acknowledgement_must_fit_the_qos_and_step_of_the_message_in_flight() {
    use AckKind::{PubAck, PubComp, PubRec};
    let mut s = session(ProtocolVersion::V3_1_1);
    let mut out = BytesMut::new();
    s.deliver(delivery(QoS::AtLeastOnce, b"one"), 0, &mut out);
    s.deliver(delivery(QoS::ExactlyOnce, b"two"), 0, &mut out);
    let sent = packets(ProtocolVersion::V3_1_1, &mut out);
    let (Packet::Publish(one), Packet::Publish(two)) = (&sent[0], &sent[1]) else { panic!("{sent:?}") };
    let (one, two) = (one.packet_id, two.packet_id);
    let wrong = Err(SessionError::WrongAcknowledgement);
    // QoS 1 is answered by PUBACK alone (section 4.3.2).
    assert_eq!(s.check_ack(PubRec, one), wrong);
    assert_eq!(s.check_ack(PubComp, one), wrong);
    assert_eq!(s.check_ack(PubAck, one), Ok(()));
    // QoS 2 by PUBREC, then PUBCOMP (section 4.3.3); a PUBREC may come again.
    assert_eq!(s.check_ack(PubAck, two), wrong);
    assert_eq!(s.check_ack(PubComp, two), wrong, "PUBCOMP before PUBREC");
    assert_eq!(s.check_ack(PubRec, two), Ok(()));
    s.handle_pubrec(two, ReasonCode::SUCCESS, 0, &mut out);
    assert_eq!(s.check_ack(PubAck, two), wrong);
    assert_eq!(s.check_ack(PubRec, two), Ok(()), "a repeated PUBREC");
    assert_eq!(s.check_ack(PubComp, two), Ok(()));
    // An identifier not in flight is a late duplicate of any kind.
    for kind in [PubAck, PubRec, PubComp] {
        assert_eq!(s.check_ack(kind, 999), Ok(()));
    }
    assert_eq!(SessionError::WrongAcknowledgement.reason_code(), ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn resume_resends_no_more_than_the_new_window_and_the_rest_as_it_opens() {
    let v = ProtocolVersion::V5;
    let mut s = session(v);
    let mut out = BytesMut::new();
    for payload in [&b"one"[..], b"two", b"three"] {
        s.deliver(delivery(QoS::ExactlyOnce, payload), 0, &mut out);
    }
    let sent = packets(v, &mut out);
    assert_eq!(sent.len(), 2, "window of 2: 'three' waits");
    let Packet::Publish(one) = &sent[0] else { panic!("{sent:?}") };
    s.handle_pubrec(one.packet_id, ReasonCode::SUCCESS, 0, &mut out);
    packets(v, &mut out);
    // The client comes back with a Receive Maximum of 1 (5.0 [MQTT-3.3.4-9]).
    s.detach();
    s.attach(v, 1, usize::MAX);
    s.resume(0, &mut out);
    assert_eq!(packets(v, &mut out), vec![Packet::PubRel(Ack::new(one.packet_id))]);
    s.handle_pubcomp(one.packet_id, 0, &mut out);
    let again = packets(v, &mut out);
    let [Packet::Publish(two)] = &again[..] else { panic!("{again:?}") };
    assert!(two.dup && &two.payload[..] == b"two", "re-sent under its own id, DUP set");
    s.handle_pubrec(two.packet_id, ReasonCode::SUCCESS, 0, &mut out);
    assert_eq!(packets(v, &mut out), vec![Packet::PubRel(Ack::new(two.packet_id))]);
    s.handle_pubcomp(two.packet_id, 0, &mut out);
    let last = packets(v, &mut out);
    let [Packet::Publish(three)] = &last[..] else { panic!("{last:?}") };
    assert!(!three.dup && &three.payload[..] == b"three", "then the queue");
}

#[test]
fn an_overflow_allowance_queues_past_the_bound_and_says_so_then_drops() {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        // Window 2, queue 3: five are taken within the bounds...
        let mut s = session(v);
        let mut out = BytesMut::new();
        let outcomes: Vec<_> =
            (0..8).map(|_| s.deliver_within(delivery(QoS::AtLeastOnce, b"m"), 0, &mut out, 2)).collect();
        use DeliverOutcome::*;
        // ...two more past them (the caller holds their publishers), the eighth is dropped.
        assert_eq!(
            outcomes,
            vec![Sent, Sent, Queued, Queued, Queued, QueuedOverLimit, QueuedOverLimit, Dropped]
        );
        assert_eq!(s.queued(), 5);
        assert_eq!(s.drops.queue_full, 1);
        // Without an allowance the bound holds as before.
        let mut plain = session(v);
        let outcomes: Vec<_> =
            (0..6).map(|_| plain.deliver(delivery(QoS::AtLeastOnce, b"m"), 0, &mut out)).collect();
        assert_eq!(outcomes, vec![Sent, Sent, Queued, Queued, Queued, Dropped]);
    }
}
