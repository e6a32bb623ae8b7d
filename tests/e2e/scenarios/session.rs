//! Sessions: persistent subscriptions and queues across reconnects, session present,
//! re-sending unacknowledged messages, clean session / clean start, and takeover. The
//! clients' ids have every home shard, so the sessions' registry entries are both local
//! and remote.

use super::vtag;
use crate::common::*;
use ringmq::protocol::{Ack, Packet, Publish, ReasonCode};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Persistent clients (ids with every home shard), each reconnecting; their ids.
fn persistent_ids(tag: &str, v: ProtocolVersion) -> Vec<String> {
    ids_covering_homes(&format!("{tag}-{}", vtag(v)), 1)
}

/// A persistent session keeps its subscriptions: after reconnecting (session present 1)
/// the client gets messages from every shard without subscribing again.
pub fn persistent_session_keeps_subscriptions_across_reconnect(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for id in persistent_ids("keep", v) {
        let (mut c, ack) = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent());
        assert!(!ack.session_present, "{id}: new session with session present");
        c.subscribe_ok(&[(&format!("keep/{id}"), Q1)]);
        c.disconnect();
        let (mut c, ack) = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent());
        assert!(ack.session_present, "{id}: resumed session without session present");
        for (i, p) in fence.conns.iter_mut().enumerate() {
            p.publish(&format!("keep/{id}"), format!("{i}").as_bytes(), Q1, false);
        }
        let got: BTreeSet<String> = c.expect_publishes(SHARDS, IO_TIMEOUT).iter().map(payload_str).collect();
        assert_eq!(got, (0..SHARDS).map(|i| i.to_string()).collect::<BTreeSet<_>>(), "{id}");
        fence.expect_quiet(&mut c);
    }
}

/// QoS 1 and 2 messages published while a persistent client is offline are queued and
/// delivered on reconnect, in each publisher's order, at min(published, granted). QoS 0
/// messages may or may not be queued.
pub fn persistent_session_queues_qos1_and_qos2_while_offline(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let ids = persistent_ids("offline", v);
    for id in &ids {
        let mut c = Raw::connect_ok(b.addr, Conn::new(id, v).persistent()).0;
        // Each QoS on a topic granted that QoS (see publish_qos_is_never_upgraded_to_granted_qos).
        c.subscribe_ok(&[
            (&format!("offline/{id}/0"), Q0),
            (&format!("offline/{id}/1"), Q1),
            (&format!("offline/{id}/2"), Q2),
        ]);
        c.disconnect();
    }
    let mut pubs = one_per_shard(b.addr);
    pubs.push(Raw::client(b.addr, "offline-pub", v));
    for id in &ids {
        for (i, p) in pubs.iter_mut().enumerate() {
            for (n, q) in [(0, Q1), (1, Q2), (2, Q0), (3, Q1)] {
                p.publish(
                    &format!("offline/{id}/{}", q as u8),
                    format!("{i}:{n}:{}", q as u8).as_bytes(),
                    q,
                    false,
                );
            }
        }
    }
    for id in &ids {
        let (mut c, ack) = Raw::connect_ok(b.addr, Conn::new(id, v).persistent());
        assert!(ack.session_present, "{id}");
        let want = pubs.len() * 3;
        let mut per_pub: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut got = 0;
        let deadline = Instant::now() + IO_TIMEOUT;
        while got < want {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = match c.recv(left) {
                Recv::Packet(Packet::Publish(m)) => m,
                other => panic!("{id}: after {got} of {want} queued messages: {other:?}"),
            };
            c.ack(&m);
            if let Some((i, n)) = queued(id, &m) {
                got += 1;
                per_pub.entry(i).or_default().push(n);
            }
        }
        // Whatever else was queued has been sent by now: it may only be QoS 0.
        fence.flush(&mut c);
        while let Recv::Packet(p) = c.recv(Duration::ZERO) {
            let Packet::Publish(m) = p else { panic!("{id}: unexpected {p:?}") };
            c.ack(&m);
            assert_eq!(queued(id, &m), None, "{id}: more than the {want} QoS 1 and 2 messages queued");
        }
        for i in 0..pubs.len() {
            assert_eq!(per_pub.get(&i), Some(&vec![0, 1, 3]), "{id}: queued messages of publisher {i}");
        }
    }
}

/// (publisher, message number) of a message of [`persistent_session_queues_qos1_and_qos2_while_offline`],
/// after checking it came at the QoS it was published at; `None` at QoS 0.
fn queued(id: &str, m: &Publish) -> Option<(usize, usize)> {
    let text = payload_str(m);
    let parts: Vec<usize> = text.split(':').map(|x| x.parse().unwrap()).collect();
    let published = qos(parts[2] as u8);
    assert_eq!(m.qos, published, "{id}: {text}");
    (published != Q0).then_some((parts[0], parts[1]))
}

/// Session present is 0 for a new session, 1 for a resumed one, 0 after a clean session
/// or clean start (which also discards the old one).
pub fn session_present_is_1_only_for_a_resumed_session(v: ProtocolVersion) {
    let b = TestBroker::start();
    for id in persistent_ids("sp", v) {
        let steps = [(false, false), (false, true), (true, false), (false, false), (false, true)];
        for (k, (clean, want)) in steps.into_iter().enumerate() {
            let conn = if clean { Conn::new(&id, v) } else { Conn::new(&id, v).persistent() };
            let (c, ack) = Raw::connect_ok(b.addr, conn);
            assert_eq!(ack.session_present, want, "{id}: step {k} (clean {clean})");
            c.disconnect();
        }
    }
}

/// A QoS 1 message received but not acknowledged is sent again, same packet id, DUP
/// set, when the persistent client reconnects [MQTT-4.4.0-1]; once acknowledged, never
/// again.
pub fn unacknowledged_qos1_is_resent_with_dup_on_reconnect(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for (k, id) in persistent_ids("dup1", v).into_iter().enumerate() {
        let topic = format!("dup1/{id}");
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent()).0;
        c.subscribe_ok(&[(&topic, Q1)]);
        fence.conns[k % SHARDS].publish(&topic, b"unacked", Q1, false);
        let first = c.expect_publish_noack(IO_TIMEOUT);
        assert!(!first.dup);
        drop_abruptly(c);
        let (mut c, ack) = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent());
        assert!(ack.session_present);
        let again = c.expect_publish_noack(IO_TIMEOUT);
        assert_eq!(
            (&again.payload[..], again.qos, again.packet_id),
            (&b"unacked"[..], Q1, first.packet_id),
            "{id}"
        );
        assert!(again.dup, "{id}: re-sent QoS 1 PUBLISH without DUP");
        c.ack(&again);
        fence.expect_quiet(&mut c);
        c.disconnect();
        // Acknowledged now: not sent a third time.
        let (mut c, _) = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent());
        fence.expect_quiet(&mut c);
    }
}

/// QoS 2 outbound state survives reconnects: an unanswered PUBLISH is re-sent with DUP,
/// and after PUBREC the PUBREL is re-sent (not the PUBLISH) [MQTT-4.4.0-1].
pub fn unacknowledged_qos2_publish_and_pubrel_are_resent_on_reconnect(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for (k, id) in persistent_ids("dup2", v).into_iter().enumerate() {
        let topic = format!("dup2/{id}");
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent()).0;
        c.subscribe_ok(&[(&topic, Q2)]);
        fence.conns[k % SHARDS].publish(&topic, b"exactly once", Q2, false);
        let first = c.expect_publish_noack(IO_TIMEOUT);
        drop_abruptly(c);
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent()).0;
        let again = c.expect_publish_noack(IO_TIMEOUT);
        assert_eq!(
            (&again.payload[..], again.packet_id, again.dup),
            (&b"exactly once"[..], first.packet_id, true),
            "{id}"
        );
        c.send(&Packet::PubRec(Ack::new(again.packet_id)));
        let pid = again.packet_id;
        c.expect_match(IO_TIMEOUT, "PUBREL", |p| matches!(p, Packet::PubRel(a) if a.packet_id == pid));
        drop_abruptly(c);
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent()).0;
        match c.expect_packet(IO_TIMEOUT) {
            Packet::PubRel(a) => assert_eq!(a.packet_id, pid, "{id}"),
            other => panic!("{id}: expected the PUBREL again, got {other:?}"),
        }
        c.send(&Packet::PubComp(Ack::new(pid)));
        fence.expect_quiet(&mut c);
    }
}

/// Connecting with clean session 1 (5.0: clean start 1) discards the old session: no
/// queued messages, no subscriptions, session present 0.
pub fn clean_connect_discards_subscriptions_and_queued_messages(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for (k, id) in persistent_ids("discard", v).into_iter().enumerate() {
        let topic = format!("discard/{id}");
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent()).0;
        c.subscribe_ok(&[(&topic, Q1)]);
        c.disconnect();
        fence.conns[k % SHARDS].publish(&topic, b"queued", Q1, false);
        let (mut c, ack) = Raw::connect_ok(b.addr, Conn::new(&id, v));
        assert!(!ack.session_present, "{id}");
        fence.expect_quiet(&mut c);
        for p in fence.conns.iter_mut() {
            p.publish(&topic, b"live", Q1, false);
        }
        fence.expect_quiet(&mut c);
    }
}

/// A second connection with the same client id closes the first (3.1.1 [MQTT-3.1.4-2],
/// 5.0 [MQTT-3.1.4-3]: DISCONNECT 0x8E first); the new one works. Ids cover every home
/// shard.
pub fn same_client_id_takes_over_and_closes_older_connection(v: ProtocolVersion) {
    let b = TestBroker::start();
    for id in ids_covering_homes(&format!("take-{}", vtag(v)), 3) {
        let mut first = Raw::client(b.addr, &id, v);
        let mut second = Raw::client(b.addr, &id, v);
        let before = first.expect_closed(IO_TIMEOUT);
        if v.is_v5() {
            assert!(
                matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::SESSION_TAKEN_OVER),
                "{id}: first connection should get DISCONNECT 0x8E, got {before:?}"
            );
        } else {
            assert!(before.is_empty(), "{id}: {before:?}");
        }
        let topic = format!("take/{id}");
        second.subscribe_ok(&[(&topic, Q1)]);
        second.publish(&topic, b"still here", Q1, false);
        assert_eq!(&second.expect_publish(IO_TIMEOUT).payload[..], b"still here");
    }
}

/// Takeover of a persistent session hands it over: the new connection has session
/// present 1 and the old subscriptions.
pub fn takeover_hands_persistent_session_to_new_connection(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for (k, id) in ids_covering_homes(&format!("handover-{}", vtag(v)), 2).into_iter().enumerate() {
        let topic = format!("handover/{id}");
        let mut first = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent()).0;
        first.subscribe_ok(&[(&topic, Q1)]);
        let (mut second, ack) = Raw::connect_ok(b.addr, Conn::new(&id, v).persistent());
        assert!(ack.session_present, "{id}: takeover of a persistent session");
        first.expect_closed(IO_TIMEOUT);
        fence.conns[k % SHARDS].publish(&topic, b"handed over", Q1, false);
        assert_eq!(&second.expect_publish(IO_TIMEOUT).payload[..], b"handed over", "{id}");
        fence.expect_quiet(&mut second);
    }
}
