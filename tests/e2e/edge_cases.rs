//! Protocol edge cases where ringmq once answered differently from Mosquitto 2.0 (issue
//! 20), each compared byte for byte with Mosquitto 2.0.11 on 127.0.0.1. Where the spec
//! decides, the test cites it; where it leaves a choice, the test pins Mosquitto's answer.
//! One test per behaviour, at each protocol version it applies to (`_v31`, `_v311`, `_v5`).

use crate::common::*;
use crate::scenarios::vtag;
use ringmq::protocol::{
    Ack, ByteStr, ConnAck, Packet, QoS, ReasonCode, Subscribe, SubscriptionOptions, Unsubscribe,
};
use std::time::Duration;

/// Asserts the broker closed `c` for a protocol violation: MQTT 5 gets one DISCONNECT with
/// `reason` first (5.0 section 4.13.1), 3.x nothing (3.1.1 [MQTT-4.8.0-1]).
fn expect_closed_with(c: &mut Raw, reason: ReasonCode) {
    let before = c.expect_closed(IO_TIMEOUT);
    if c.version.is_v5() {
        assert!(
            matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == reason),
            "{}: expected DISCONNECT {reason:?}, got {before:?}",
            c.client_id
        );
    } else {
        assert!(before.is_empty(), "{}: expected a plain close, got {before:?}", c.client_id);
    }
}

// --- 1. an acknowledgement of the wrong kind ------------------------------------------------

/// A subscriber answers a PUBLISH at `qos` with `wrong` (after `first`, if any): the broker
/// closes the connection (5.0: DISCONNECT 0x82) and answers no later PINGREQ.
fn wrong_acknowledgement(
    v: ProtocolVersion,
    case: &str,
    qos: QoS,
    first: Option<fn(Ack) -> Packet>,
    wrong: fn(Ack) -> Packet,
) {
    let b = TestBroker::start();
    let tag = format!("{}-{case}", vtag(v));
    let topic = format!("wrong-ack/{tag}");
    let mut sub = Raw::client(b.addr, format!("sub-{tag}"), v);
    sub.subscribe_ok(&[(&topic, qos)]);
    let mut publisher = Raw::client(b.addr, format!("pub-{tag}"), v);
    publisher.publish(&topic, b"m", qos, false);
    let p = sub.expect_publish_noack(IO_TIMEOUT);
    assert_eq!(p.qos, qos);
    // A late acknowledgement of an identifier not in flight is a duplicate, not an error.
    sub.send(&Packet::PubAck(Ack::new(p.packet_id.wrapping_add(1000).max(1))));
    sub.sync();
    if let Some(first) = first {
        sub.send(&first(Ack::new(p.packet_id)));
        sub.expect_match(IO_TIMEOUT, "PUBREL", |q| matches!(q, Packet::PubRel(_)));
    }
    sub.send(&wrong(Ack::new(p.packet_id)));
    let _ = sub.try_send_raw(&[0xC0, 0x00]);
    expect_closed_with(&mut sub, ReasonCode::PROTOCOL_ERROR);
}

/// Mosquitto closes on each of these (section 4.3.2: QoS 1 is answered by PUBACK; section
/// 4.3.3: QoS 2 by PUBREC, then PUBCOMP).
fn every_wrong_acknowledgement_closes_the_connection(v: ProtocolVersion) {
    wrong_acknowledgement(v, "q1-pubrec", Q1, None, Packet::PubRec);
    wrong_acknowledgement(v, "q1-pubcomp", Q1, None, Packet::PubComp);
    wrong_acknowledgement(v, "q2-puback", Q2, None, Packet::PubAck);
    wrong_acknowledgement(v, "q2-pubcomp-before-pubrec", Q2, None, Packet::PubComp);
    wrong_acknowledgement(v, "q2-puback-after-pubrec", Q2, Some(Packet::PubRec), Packet::PubAck);
}

#[test]
fn wrong_acknowledgement_closes_the_connection_v311() {
    every_wrong_acknowledgement_closes_the_connection(V3_1_1);
}

#[test]
fn wrong_acknowledgement_gets_disconnect_protocol_error_v5() {
    every_wrong_acknowledgement_closes_the_connection(V5);
}

// --- 2. CONNACK at MQTT 3.1 ------------------------------------------------------------------

#[test]
fn connack_at_3_1_never_sets_the_reserved_session_present_bit_v31() {
    let b = TestBroker::start();
    let (c, _) = Raw::connect_ok(b.addr, Conn::new("persist31", V3_1).clean(false));
    let mut c = c;
    c.subscribe_ok(&[("v31/resumed", Q1)]);
    c.disconnect();
    let mut publisher = Raw::client(b.addr, "pub31", V3_1_1);
    publisher.publish("v31/resumed", b"queued", Q1, false);
    let mut c = Raw::open(b.addr, V3_1);
    c.client_id = "persist31".into();
    c.send(&Conn::new("persist31", V3_1).clean(false).packet());
    // The bytes themselves: the codec reads that bit as 0 at 3.1 whatever it is.
    let mut connack = [0u8; 4];
    c.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    std::io::Read::read_exact(&mut c.stream, &mut connack).expect("CONNACK");
    // Byte 1 of a 3.1 CONNACK is reserved (3.1 section 3.2): 0, as Mosquitto sends it...
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
    // ...although the session was resumed: the message queued for it arrives.
    assert_eq!(payload_str(&c.expect_publish(IO_TIMEOUT)), "queued");
}

// --- 3. the will of a connection taken over ---------------------------------------------------

/// Connects `id` with a will on `will/<id>` (no delay), then takes it over with
/// `new_clean`; returns whether the will was published.
fn will_published_on_takeover(
    b: &TestBroker,
    v: ProtocolVersion,
    id: &str,
    old_persistent: bool,
    new_clean: bool,
) -> bool {
    let will_topic = format!("will/{id}");
    let mut watcher = Raw::client(b.addr, format!("watch-{id}"), v);
    watcher.subscribe_ok(&[(&will_topic, Q0)]);
    let old = Conn::new(id, v).will(&will_topic, "gone", Q0, false);
    let old = if old_persistent { old.persistent() } else { old };
    let (mut old, _) = Raw::connect_ok(b.addr, old);
    old.sync();
    let new = Conn::new(id, v);
    let new = if new_clean { new } else { new.persistent() };
    let (_new, _) = Raw::connect_ok(b.addr, new);
    old.expect_closed(IO_TIMEOUT);
    let mut fence = Fence::new(b.addr);
    fence.flush(&mut watcher);
    match watcher.recv(Duration::ZERO) {
        Recv::Packet(Packet::Publish(p)) if *p.topic == *will_topic => {
            assert_eq!(payload_str(&p), "gone");
            fence.expect_quiet(&mut watcher);
            true
        }
        Recv::Timeout => false,
        other => panic!("{id}: unexpected {other:?}"),
    }
}

/// 3.1.1 leaves it open (section 3.1.2.5 lists when a will goes out, "but not limited
/// to"); Mosquitto publishes the will unless the new connection resumes the session.
#[test]
fn will_is_published_on_takeover_unless_the_session_resumes_v311() {
    let b = TestBroker::start();
    assert!(will_published_on_takeover(&b, V3_1_1, "tk311-clean-clean", false, true));
    assert!(will_published_on_takeover(&b, V3_1_1, "tk311-clean-persistent", false, false));
    assert!(will_published_on_takeover(&b, V3_1_1, "tk311-persistent-clean", true, true));
    assert!(!will_published_on_takeover(&b, V3_1_1, "tk311-resumed", true, false));
}

/// 5.0: "If the existing Client has a Will Message, that Will Message is published as
/// described in section 3.1.2.5" [MQTT-3.1.4-3]; without a Will Delay Interval it goes
/// out when the connection closes [MQTT-3.1.2-8], also when the session resumes (there
/// Mosquitto 2.0 keeps it: a deliberate difference, listed in the README).
#[test]
fn will_without_delay_is_published_on_takeover_v5() {
    let b = TestBroker::start();
    assert!(will_published_on_takeover(&b, V5, "tk5-clean-clean", false, true));
    assert!(will_published_on_takeover(&b, V5, "tk5-clean-persistent", false, false));
    assert!(will_published_on_takeover(&b, V5, "tk5-persistent-clean", true, true));
    assert!(will_published_on_takeover(&b, V5, "tk5-resumed", true, false));
}

// --- 4. a will larger than message_size_limit -------------------------------------------------

fn will_over_message_size_limit_is_refused(v: ProtocolVersion, refusal: ReasonCode) {
    let b = TestBroker::start_with(|c| c.message_size_limit = 100);
    let tag = vtag(v);
    let at_limit = Conn::new(format!("will100-{tag}"), v).will("w/t", &"x".repeat(100), Q0, false);
    Raw::connect_ok(b.addr, at_limit).0.disconnect();
    let over = Conn::new(format!("will101-{tag}"), v).will("w/t", &"x".repeat(101), Q0, false);
    let (mut c, ack) = Raw::connect(b.addr, over);
    assert_eq!(ack.code, refusal, "{ack:?}");
    c.expect_closed(IO_TIMEOUT);
}

/// 3.x has no "packet too large" return code: Mosquitto answers 5 (not authorized).
#[test]
fn will_over_message_size_limit_is_refused_with_not_authorized_v311() {
    will_over_message_size_limit_is_refused(V3_1_1, ReasonCode::NOT_AUTHORIZED);
}

#[test]
fn will_over_message_size_limit_is_refused_with_packet_too_large_v5() {
    will_over_message_size_limit_is_refused(V5, ReasonCode::PACKET_TOO_LARGE);
}

// --- 5. topics of more than 201 levels --------------------------------------------------------

/// Mosquitto's bound (`TOPIC_HIERARCHY_LIMIT`: at most 200 `/`). 5.0 reasons as Mosquitto
/// sends them: a PUBLISH's name is a protocol error, a filter a malformed packet.
fn topics_deeper_than_201_levels_close_the_connection(v: ProtocolVersion) {
    let b = TestBroker::start();
    let tag = vtag(v);
    let deepest = "/".repeat(200);
    let mut c = Raw::client(b.addr, format!("deep-ok-{tag}"), v);
    c.subscribe_ok(&[(&deepest, Q1)]);
    c.publish(&deepest, b"201 levels", Q1, false);
    assert_eq!(payload_str(&c.expect_publish(IO_TIMEOUT)), "201 levels");
    c.unsubscribe(&[&deepest]);
    c.disconnect();

    let too_deep = "/".repeat(201);
    // The report's topic: 65,535 `/`, 65,536 levels.
    let deepest_possible = "/".repeat(65_535);
    for (i, topic) in [&too_deep, &deepest_possible].into_iter().enumerate() {
        let mut c = Raw::client(b.addr, format!("deep-pub{i}-{tag}"), v);
        c.send(&publish_packet(topic, b"x", Q1, false, 1, None));
        expect_closed_with(&mut c, ReasonCode::PROTOCOL_ERROR);

        let mut c = Raw::client(b.addr, format!("deep-sub{i}-{tag}"), v);
        let filters = vec![(ByteStr::from(topic.as_str()), SubscriptionOptions::qos(Q0))];
        c.send(&Packet::Subscribe(Subscribe { packet_id: 1, filters, properties: None }));
        expect_closed_with(&mut c, ReasonCode::MALFORMED_PACKET);

        let mut c = Raw::client(b.addr, format!("deep-unsub{i}-{tag}"), v);
        let filters = vec![ByteStr::from(topic.as_str())];
        c.send(&Packet::Unsubscribe(Unsubscribe { packet_id: 1, filters, properties: None }));
        expect_closed_with(&mut c, ReasonCode::MALFORMED_PACKET);
    }
    // A will's topic too: closed without a CONNACK, as Mosquitto does.
    let mut c = Raw::open(b.addr, v);
    c.send(&Conn::new(format!("deep-will-{tag}"), v).will(&too_deep, "x", Q0, false).packet());
    assert!(c.expect_closed(IO_TIMEOUT).is_empty());
}

#[test]
fn topic_of_more_than_201_levels_closes_the_connection_v311() {
    topics_deeper_than_201_levels_close_the_connection(V3_1_1);
}

#[test]
fn topic_of_more_than_201_levels_gets_disconnect_v5() {
    topics_deeper_than_201_levels_close_the_connection(V5);
}

// --- 6. PUBLISH to a `$share` topic name ------------------------------------------------------

/// Mosquitto refuses every topic name that begins with `$share` (5.0: PUBACK or PUBREC
/// 0x87); 3.1.1 cannot refuse, so the PUBACK is a success and the message is dropped.
fn publish_to_a_share_topic_is_dropped(v: ProtocolVersion) {
    let b = TestBroker::start();
    let tag = vtag(v);
    // `$sharex/...` is a plain filter: a subscriber could get it, but Mosquitto refuses
    // the name (it checks the first six characters).
    let mut watcher = Raw::client(b.addr, format!("share-watch-{tag}"), v);
    watcher.subscribe_ok(&[("$sharex/#", Q1)]);
    let mut c = Raw::client(b.addr, format!("share-pub-{tag}"), v);
    for (topic, qos) in [("$share/g/t", Q1), ("$share/g/t", Q2), ("$sharex/y", Q1), ("$share", Q2)] {
        let id = c.send_publish(topic, b"x", qos, false, None);
        let ack = c.expect_match(IO_TIMEOUT, "PUBACK or PUBREC", |p| {
            matches!(p, Packet::PubAck(_) | Packet::PubRec(_))
        });
        let (Packet::PubAck(a) | Packet::PubRec(a)) = ack else { unreachable!() };
        assert_eq!(a.packet_id, id);
        let want = if v.is_v5() { ReasonCode::NOT_AUTHORIZED } else { ReasonCode::SUCCESS };
        assert_eq!(a.reason, want, "{topic} at {qos:?}");
        if qos == Q2 {
            // A refused QoS 2 exchange ends at PUBREC in 5.0; 3.1.1 completes it.
            if !v.is_v5() {
                c.send(&Packet::PubRel(Ack::new(id)));
                c.expect_match(IO_TIMEOUT, "PUBCOMP", |p| matches!(p, Packet::PubComp(_)));
            }
        }
    }
    c.sync();
    Fence::new(b.addr).expect_quiet(&mut watcher);
}

#[test]
fn publish_to_a_share_topic_is_acknowledged_and_dropped_v311() {
    publish_to_a_share_topic_is_dropped(V3_1_1);
}

#[test]
fn publish_to_a_share_topic_is_not_authorized_v5() {
    publish_to_a_share_topic_is_dropped(V5);
}

// --- 7. a payload over message_size_limit -----------------------------------------------------

/// Mosquitto answers 0x95 "Packet too large", which the spec does not allow in a PUBACK
/// (5.0 section 3.4.2.1) or a PUBREC (section 3.5.2.1): the client's own decoder here
/// refuses it. 0x97 "Quota exceeded" is the listed code for "an implementation or
/// administrative imposed limit": a deliberate difference, listed in the README.
#[test]
fn payload_over_message_size_limit_gets_quota_exceeded_v5() {
    let b = TestBroker::start_with(|c| c.message_size_limit = 100);
    let mut watcher = Raw::client(b.addr, "size-watch", V5);
    watcher.subscribe_ok(&[("size/#", Q1)]);
    let mut c = Raw::client(b.addr, "size-pub", V5);
    c.publish("size/ok", &[b'x'; 100], Q1, false);
    assert_eq!(watcher.expect_publish(IO_TIMEOUT).payload.len(), 100);
    for qos in [Q1, Q2] {
        let id = c.send_publish("size/big", &[b'x'; 101], qos, false, None);
        let ack = c.expect_match(IO_TIMEOUT, "PUBACK or PUBREC", |p| {
            matches!(p, Packet::PubAck(_) | Packet::PubRec(_))
        });
        let (Packet::PubAck(a) | Packet::PubRec(a)) = ack else { unreachable!() };
        assert_eq!((a.packet_id, a.reason), (id, ReasonCode::QUOTA_EXCEEDED), "{qos:?}");
    }
    c.sync();
    Fence::new(b.addr).expect_quiet(&mut watcher);
}

// --- 8. SUBSCRIBE or UNSUBSCRIBE with packet identifier 0 -------------------------------------

/// "SUBSCRIBE, UNSUBSCRIBE, and PUBLISH (in cases where QoS > 0) Control Packets MUST
/// contain a non-zero 16-bit Packet Identifier" (5.0 [MQTT-2.2.1-3]). Identifier 0 parses;
/// it is "data that is not allowed by the protocol", a Protocol Error (5.0 section 1.2),
/// not a packet that "cannot be parsed", a Malformed Packet. Mosquitto sends 0x81 for
/// SUBSCRIBE and UNSUBSCRIBE but 0x82 for PUBLISH; ringmq sends 0x82 for all three.
fn packet_identifier_0_closes_the_connection(v: ProtocolVersion) {
    let b = TestBroker::start();
    let tag = vtag(v);
    let mut c = Raw::client(b.addr, format!("id0-sub-{tag}"), v);
    let filters = vec![(ByteStr::from("t"), SubscriptionOptions::qos(Q0))];
    c.send(&Packet::Subscribe(Subscribe { packet_id: 0, filters, properties: None }));
    expect_closed_with(&mut c, ReasonCode::PROTOCOL_ERROR);
    let mut c = Raw::client(b.addr, format!("id0-unsub-{tag}"), v);
    c.send(&Packet::Unsubscribe(Unsubscribe {
        packet_id: 0,
        filters: vec![ByteStr::from("t")],
        properties: None,
    }));
    expect_closed_with(&mut c, ReasonCode::PROTOCOL_ERROR);
    let mut c = Raw::client(b.addr, format!("id0-pub-{tag}"), v);
    c.send(&publish_packet("t", b"x", Q1, false, 0, None));
    expect_closed_with(&mut c, ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn packet_identifier_0_closes_the_connection_v311() {
    packet_identifier_0_closes_the_connection(V3_1_1);
}

#[test]
fn packet_identifier_0_is_a_protocol_error_v5() {
    packet_identifier_0_closes_the_connection(V5);
}

// --- 9. a Maximum Packet Size smaller than the CONNACK ----------------------------------------

/// The server must not send a packet larger than the client's Maximum Packet Size (5.0
/// [MQTT-3.1.2-24]), counted over the whole packet (5.0 section 3.1.2.11.4): a CONNACK
/// that does not fit is not sent, the connection closes, and the client id takes nothing
/// over.
#[test]
fn connack_larger_than_the_client_maximum_packet_size_is_not_sent_v5() {
    let b = TestBroker::start();
    let (mut holder, ack) = Raw::connect_ok(b.addr, Conn::new("mps-holder", V5));
    let mut encoded = bytes::BytesMut::new();
    Packet::ConnAck(ack.clone()).encode(V5, &mut encoded);
    let connack_bytes = encoded.len() as u32;
    for max in [2, connack_bytes - 1] {
        let mut c = Raw::open(b.addr, V5);
        c.client_id = "mps-holder".into();
        let conn = Conn::new("mps-holder", V5).props(props(|p| p.maximum_packet_size = Some(max)));
        c.send(&conn.packet());
        assert!(c.expect_closed(IO_TIMEOUT).is_empty(), "Maximum Packet Size {max}");
    }
    // The holder was not taken over...
    holder.sync();
    // ...and a CONNACK that fits exactly is sent.
    let fits = Conn::new("mps-fits", V5).props(props(|p| p.maximum_packet_size = Some(connack_bytes)));
    let (_, fitting): (Raw, ConnAck) = Raw::connect_ok(b.addr, fits);
    assert_eq!(fitting.properties, ack.properties);
}

/// A refusal is a CONNACK too (5 bytes in 5.0 with no properties): not sent when the
/// client allows less.
#[test]
fn refusing_connack_larger_than_the_client_maximum_packet_size_is_not_sent_v5() {
    let b = TestBroker::start_with(|c| c.retain_available = false);
    let refused = |max: u32| {
        Conn::new("mps-refused", V5)
            .will("w/t", "x", Q0, true)
            .props(props(|p| p.maximum_packet_size = Some(max)))
    };
    let mut c = Raw::open(b.addr, V5);
    c.send(&refused(4).packet());
    assert!(c.expect_closed(IO_TIMEOUT).is_empty());
    let (mut c, ack) = Raw::connect(b.addr, refused(5));
    assert_eq!(ack.code, ReasonCode::RETAIN_NOT_SUPPORTED);
    c.expect_closed(IO_TIMEOUT);
}

/// The DISCONNECT the broker sends keeps its Reason String only where it still fits the
/// client's Maximum Packet Size (5.0 [MQTT-3.14.2-3]).
#[test]
fn disconnect_drops_its_reason_string_to_fit_the_client_maximum_packet_size_v5() {
    let b = TestBroker::start();
    let second_connect = |c: &mut Raw| {
        c.send(&Conn::new(c.client_id.clone(), V5).packet());
        let before = c.expect_closed(IO_TIMEOUT);
        match before.as_slice() {
            [Packet::Disconnect(d)] if d.reason == ReasonCode::PROTOCOL_ERROR => d.properties.clone(),
            other => panic!("{}: expected DISCONNECT 0x82, got {other:?}", c.client_id),
        }
    };
    let (mut roomy, ack) = Raw::connect_ok(b.addr, Conn::new("mps-roomy", V5));
    let why = second_connect(&mut roomy);
    assert!(why.is_some_and(|p| p.reason_string.is_some()), "a client that allows it gets the reason");
    let mut encoded = bytes::BytesMut::new();
    Packet::ConnAck(ack).encode(V5, &mut encoded);
    let tight =
        Conn::new("mps-tight", V5).props(props(|p| p.maximum_packet_size = Some(encoded.len() as u32)));
    let (mut tight, _) = Raw::connect_ok(b.addr, tight);
    assert_eq!(second_connect(&mut tight), None);
}

// --- 11. QoS 2 to a client with a Receive Maximum of 1 or 2 -----------------------------------

/// Reads `n` QoS 2 messages `m0`.. as a client with Receive Maximum `window` would,
/// answering PUBREC at once and PUBCOMP to each PUBREL, and asserts the broker never has
/// more than `window` of them unfinished (5.0 [MQTT-3.3.4-9]) and sends each publisher's
/// (`m{i}` came from publisher `i % publishers`) in order.
fn read_qos2_within_window(c: &mut Raw, n: usize, window: usize, publishers: usize) {
    let mut unfinished = 0usize;
    let mut got = Vec::new();
    while got.len() < n || unfinished > 0 {
        match c.expect_packet(IO_TIMEOUT) {
            Packet::Publish(p) => {
                assert_eq!(p.qos, Q2);
                unfinished += 1;
                assert!(unfinished <= window, "{}: {unfinished} unfinished, window {window}", c.client_id);
                got.push(payload_str(&p));
                c.send(&Packet::PubRec(Ack::new(p.packet_id)));
            }
            Packet::PubRel(a) => {
                unfinished -= 1;
                c.send(&Packet::PubComp(Ack::new(a.packet_id)));
            }
            other => panic!("{}: unexpected {other:?} after {} messages", c.client_id, got.len()),
        }
    }
    let numbers: Vec<usize> = got.iter().map(|m| m[1..].parse().expect("m<number>")).collect();
    for publisher in 0..publishers {
        let theirs: Vec<usize> = numbers.iter().copied().filter(|i| i % publishers == publisher).collect();
        let want: Vec<usize> = (publisher..n).step_by(publishers).collect();
        assert_eq!(theirs, want, "{}: publisher {publisher}'s messages", c.client_id);
    }
}

#[test]
fn qos2_to_a_receive_maximum_of_1_or_2_never_stalls_v5() {
    const MESSAGES: usize = 200;
    let b = TestBroker::start();
    for window in [1u16, 2] {
        for offline in [false, true] {
            let id = format!("rm{window}-{}", if offline { "queued" } else { "live" });
            let conn = Conn::new(&id, V5).persistent().props(props(|p| {
                p.session_expiry_interval_secs = Some(3600);
                p.receive_maximum = Some(window);
            }));
            let (mut first, _) = Raw::connect_ok(b.addr, conn.clone());
            first.subscribe_ok(&[(&format!("rm/{id}"), Q2)]);
            let live = if offline {
                first.disconnect();
                None
            } else {
                Some(first)
            };
            // One publisher per shard, taking turns, so the messages come through the mesh
            // and from the subscriber's own shard alike; all are in before any is read.
            let mut fence = Fence::new(b.addr);
            for i in 0..MESSAGES {
                let publisher = &mut fence.conns[i % SHARDS];
                publisher.publish(&format!("rm/{id}"), format!("m{i}").as_bytes(), Q2, false);
            }
            let mut c = live.unwrap_or_else(|| {
                let (again, ack) = Raw::connect_ok(b.addr, conn);
                assert!(ack.session_present);
                again
            });
            read_qos2_within_window(&mut c, MESSAGES, window as usize, SHARDS);
        }
    }
}

#[test]
fn resumed_session_resends_no_more_than_the_new_receive_maximum_v5() {
    let b = TestBroker::start();
    let with_window = |window: u16| {
        Conn::new("rm-shrinks", V5).persistent().props(props(|p| {
            p.session_expiry_interval_secs = Some(3600);
            p.receive_maximum = Some(window);
        }))
    };
    let (mut c, _) = Raw::connect_ok(b.addr, with_window(2));
    c.subscribe_ok(&[("rm/shrinks", Q2)]);
    let mut publisher = Raw::client(b.addr, "rm-shrinks-pub", V5);
    for i in 0..6 {
        publisher.publish("rm/shrinks", format!("m{i}").as_bytes(), Q2, false);
    }
    // Two in flight, unanswered, when the connection drops.
    c.expect_publish_noack(IO_TIMEOUT);
    c.expect_publish_noack(IO_TIMEOUT);
    drop_abruptly(c);
    let (mut c, ack) = Raw::connect_ok(b.addr, with_window(1));
    assert!(ack.session_present);
    read_qos2_within_window(&mut c, 6, 1, 1);
}

// --- 10. Receive Maximum in CONNACK -----------------------------------------------------------

/// Mosquitto advertises its `max_inflight_messages` (20) as Receive Maximum; ringmq's
/// inbound window is `receive_maximum`, 65,535 by default, which is the value the absent
/// property means (5.0 section 3.2.2.3.3), so nothing is advertised. Measured in
/// results/2026-12-08-vm-2cpu-receive-maximum: a window of 20 costs pipelining publishers
/// throughput and buys no protection (see the README's options). Configured lower, it is
/// advertised and enforced (DISCONNECT 0x93 for one QoS 2 PUBLISH too many).
#[test]
fn receive_maximum_is_advertised_only_when_configured_below_65535_v5() {
    let b = TestBroker::start();
    let (_, ack) = Raw::connect_ok(b.addr, Conn::new("rm-default", V5));
    assert_eq!(ack.properties.as_ref().and_then(|p| p.receive_maximum), None, "{ack:?}");

    let b = TestBroker::start_with(|c| c.receive_maximum = 2);
    let (mut c, ack) = Raw::connect_ok(b.addr, Conn::new("rm-two", V5));
    assert_eq!(ack.properties.as_ref().and_then(|p| p.receive_maximum), Some(2), "{ack:?}");
    for id in 1..=3 {
        c.send(&publish_packet("rm/in", b"x", Q2, false, id, None));
    }
    let before = c.expect_closed(IO_TIMEOUT);
    let recs = before.iter().filter(|p| matches!(p, Packet::PubRec(_))).count();
    assert_eq!(recs, 2, "{before:?}");
    assert!(
        matches!(before.last(), Some(Packet::Disconnect(d)) if d.reason == ReasonCode::RECEIVE_MAXIMUM_EXCEEDED),
        "{before:?}"
    );
}
