//! MQTT 5.0, feature by feature (issue 6), end to end with 4 shards, one file per
//! feature: session and message expiry (`expiry`), topic aliases both ways
//! (`topic_alias`), flow control and maximum packet size both ways (`limits`),
//! subscription identifiers and options (`subscription_options`), shared subscriptions
//! with each strategy and re-delivery (`shared`), will delay and will properties
//! (`wills`), request/response, the properties passed through and CONNACK's
//! (`properties`), and the reason codes of the broker's DISCONNECT, PUBACK, PUBREC, SUBACK,
//! UNSUBACK, PUBREL and PUBCOMP (`reason_codes`). This file has their helpers.
//!
//! `v5` has the basic 5.0 tests; the ones here do not repeat them but add what they leave
//! out, above all the cross-shard cases. Placement is made certain, not left to chance:
//! [`one_per_shard`] gives a connection on every shard, and [`on_shard`] places an MQTT 5
//! connection with CONNECT properties of its own on a chosen shard (see
//! `common/placement.rs`).
//!
//! Clients that allow outbound topic aliases are never fenced ([`Fence`] messages would use
//! up their aliases); nor are clients with a small Receive Maximum, whose window the fence
//! messages would wait behind.

mod expiry;
mod limits;
mod properties;
mod reason_codes;
mod shared;
mod subscription_options;
mod topic_alias;
mod wills;

use crate::common::*;
use bytes::BytesMut;
use ringmq::protocol::{Ack, Disconnect, Packet, Properties, Publish, QoS, ReasonCode};
use std::time::{Duration, Instant};

/// A clean MQTT 5 CONNECT for `id`.
fn v5(id: &str) -> Conn {
    Conn::new(id, V5)
}

/// CONNECT properties set by `f`, on top of what `c` has.
fn with_props(mut c: Conn, f: impl FnOnce(&mut Properties)) -> Conn {
    let mut p = c.props.take().unwrap_or_default();
    f(&mut p);
    c.props(p)
}

/// Will properties set by `f` (the will must be set first).
fn with_will_props(mut c: Conn, f: impl FnOnce(&mut Properties)) -> Conn {
    let w = c.will.as_mut().expect("set the will first");
    let mut p = w.properties.take().map(|b| *b).unwrap_or_default();
    f(&mut p);
    w.properties = Some(Box::new(p));
    c
}

/// The MQTT 5 properties of a received PUBLISH (empty when it had none).
fn props_of(p: &Publish) -> Properties {
    p.properties.as_deref().cloned().unwrap_or_default()
}

fn expiry(secs: u32) -> Option<Properties> {
    Some(props(|p| p.message_expiry_interval_secs = Some(secs)))
}

/// Publishes at QoS 1 or 2 and returns the reason of the PUBACK or PUBREC. A QoS 2
/// exchange the broker accepted is completed (PUBREL, PUBCOMP 0x00).
fn publish_reason(
    c: &mut Raw,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    properties: Option<Properties>,
) -> ReasonCode {
    let id = c.send_publish(topic, payload, qos, false, properties);
    match qos {
        QoS::AtLeastOnce => {
            match c.expect_match(
                IO_TIMEOUT,
                "PUBACK",
                move |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
            ) {
                Packet::PubAck(a) => a.reason,
                _ => unreachable!(),
            }
        }
        QoS::ExactlyOnce => {
            let reason = match c.expect_match(
                IO_TIMEOUT,
                "PUBREC",
                move |p| matches!(p, Packet::PubRec(a) if a.packet_id == id),
            ) {
                Packet::PubRec(a) => a.reason,
                _ => unreachable!(),
            };
            if !reason.is_error() {
                c.send(&Packet::PubRel(Ack::new(id)));
                match c.expect_match(
                    IO_TIMEOUT,
                    "PUBCOMP",
                    move |p| matches!(p, Packet::PubComp(a) if a.packet_id == id),
                ) {
                    Packet::PubComp(a) => assert_eq!(a.reason, ReasonCode::SUCCESS, "PUBCOMP {id}"),
                    _ => unreachable!(),
                }
            }
            reason
        }
        QoS::AtMostOnce => panic!("QoS 0 has no acknowledgement"),
    }
}

/// Asserts the broker sends DISCONNECT with `reason`, then closes the connection.
fn expect_disconnect(c: &mut Raw, reason: ReasonCode) {
    let before = c.expect_closed(IO_TIMEOUT);
    assert!(
        matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == reason),
        "{}: expected DISCONNECT 0x{:02x} then the close, got {before:?}",
        c.client_id,
        reason.0
    );
}

/// DISCONNECT (normal) with these properties; the broker closes without a word.
fn disconnect_with(mut c: Raw, properties: Properties) {
    c.send(&Packet::Disconnect(Disconnect {
        reason: ReasonCode::SUCCESS,
        properties: Some(Box::new(properties)),
    }));
    let before = c.expect_closed(IO_TIMEOUT);
    assert!(
        !before.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "{}: the broker answered a valid DISCONNECT with {before:?}",
        c.client_id
    );
}

/// The next PUBLISH on `topic` (other packets are kept for later), acknowledged.
fn expect_publish_on(c: &mut Raw, topic: &str) -> Publish {
    let t = topic.to_string();
    match c.expect_match(
        IO_TIMEOUT,
        &format!("PUBLISH on {topic}"),
        move |p| matches!(p, Packet::Publish(m) if *m.topic == *t),
    ) {
        Packet::Publish(m) => {
            c.ack(&m);
            m
        }
        _ => unreachable!(),
    }
}

/// The size on the wire of a PUBLISH from these parts.
fn wire_len(topic: &str, payload_len: usize, qos: QoS, properties: Option<Properties>) -> usize {
    let mut out = BytesMut::new();
    let id = if qos == Q0 { 0 } else { 1 };
    publish_packet(topic, &vec![b'x'; payload_len], qos, false, id, properties).encode(V5, &mut out);
    out.len()
}

/// The payload length that makes a PUBLISH (no properties) exactly `total` bytes long.
fn payload_len_for(topic: &str, qos: QoS, total: usize) -> usize {
    (0..total)
        .find(|n| wire_len(topic, *n, qos, None) == total)
        .unwrap_or_else(|| panic!("no payload length makes a {total}-byte PUBLISH on {topic}"))
}

/// Reads every client until `total` PUBLISH packets arrived across them (each
/// acknowledged); returns (client index, packet). Then asserts nothing more is coming.
fn collect_across(
    fence: &mut Fence,
    clients: &mut [Raw],
    total: usize,
    timeout: Duration,
) -> Vec<(usize, Publish)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + timeout;
    while got.len() < total {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} PUBLISH packets arrived in {timeout:?}",
            got.len()
        );
        for (i, c) in clients.iter_mut().enumerate() {
            loop {
                match c.recv(Duration::from_millis(10)) {
                    Recv::Packet(Packet::Publish(p)) => {
                        c.ack(&p);
                        got.push((i, p));
                    }
                    Recv::Timeout => break,
                    other => panic!("{}: unexpected {other:?}", c.client_id),
                }
            }
        }
    }
    fence.expect_quiet_all(clients.iter_mut());
    got
}
