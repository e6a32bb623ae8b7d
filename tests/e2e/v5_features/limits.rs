//! Flow control (the client's Receive Maximum) and Maximum Packet Size, both ways.

use super::*;
use crate::common::*;
use ringmq::protocol::{Ack, Packet, Publish, ReasonCode};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[test]
fn broker_never_has_more_unacknowledged_qos1_publishes_to_a_client_than_its_receive_maximum() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut s = Raw::connect_ok(b.addr, with_props(v5("rm-2"), |p| p.receive_maximum = Some(2))).0;
    s.subscribe_ok(&[("rm/t", Q1)]);
    const PER: usize = 5;
    for (i, p) in fence.conns.iter_mut().enumerate() {
        for k in 0..PER {
            p.publish("rm/t", format!("{i}:{k}").as_bytes(), Q1, false);
        }
    }
    let total = PER * SHARDS;
    let mut unacked: VecDeque<Publish> = VecDeque::new();
    let mut per_pub: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut count = 0;
    while count < total {
        // With the window full, wait a while: nothing may come until an acknowledgement.
        let wait = if unacked.len() >= 2 { Duration::from_millis(100) } else { IO_TIMEOUT };
        match s.recv(wait) {
            Recv::Packet(Packet::Publish(m)) => {
                assert!(
                    unacked.len() < 2,
                    "a third unacknowledged QoS 1 PUBLISH ({}) to a client with Receive Maximum 2",
                    payload_str(&m)
                );
                let text = payload_str(&m);
                let (i, k) = text.split_once(':').unwrap();
                per_pub.entry(i.to_string()).or_default().push(k.to_string());
                count += 1;
                unacked.push_back(m);
            }
            Recv::Timeout if unacked.len() >= 2 => {
                let oldest = unacked.pop_front().unwrap();
                s.send(&Packet::PubAck(Ack::new(oldest.packet_id)));
            }
            other => panic!("after {count} of {total}, with {} unacknowledged: {other:?}", unacked.len()),
        }
    }
    for m in unacked {
        s.send(&Packet::PubAck(Ack::new(m.packet_id)));
    }
    fence.expect_quiet(&mut s);
    let want: Vec<String> = (0..PER).map(|k| k.to_string()).collect();
    assert_eq!(per_pub.len(), SHARDS);
    for (i, ks) in per_pub {
        assert_eq!(ks, want, "messages of publisher {i}, in order");
    }
}

#[test]
fn qos2_exchange_counts_against_the_client_receive_maximum_until_pubcomp() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let (mut s, _) = on_shard(b.addr, with_props(v5(""), |p| p.receive_maximum = Some(1)), 0);
    s.subscribe_ok(&[("rm2/t", Q2)]);
    for k in 0..3 {
        fence.conns[1 + k % (SHARDS - 1)].publish("rm2/t", k.to_string().as_bytes(), Q2, false);
    }
    for k in 0..3 {
        let m = s.expect_publish_noack(IO_TIMEOUT);
        assert_eq!((payload_str(&m), m.qos), (k.to_string(), Q2));
        fence.expect_quiet_behind_window(&mut s);
        let id = m.packet_id;
        s.send(&Packet::PubRec(Ack::new(id)));
        s.expect_match(IO_TIMEOUT, "PUBREL", move |p| matches!(p, Packet::PubRel(a) if a.packet_id == id));
        // Released but not completed: still in flight.
        fence.expect_quiet_behind_window(&mut s);
        s.send(&Packet::PubComp(Ack::new(id)));
    }
    fence.expect_quiet(&mut s);
}

// ---------------------------------------------------------------------------------------
// Maximum packet size
// ---------------------------------------------------------------------------------------

#[test]
fn maximum_packet_size_is_advertised_and_a_bigger_packet_gets_disconnect_0x95() {
    let b = TestBroker::start_with(|c| c.max_packet_size = 256);
    let mut fence = Fence::new(b.addr);
    let mut s = Raw::client(b.addr, "mps-sub", V5);
    s.subscribe_ok(&[("mps/t", Q1)]);
    let (mut c, ack) = Raw::connect_ok(b.addr, v5("mps-pub"));
    assert_eq!(ack.properties.as_ref().and_then(|p| p.maximum_packet_size), Some(256), "{ack:?}");
    let n = payload_len_for("mps/t", Q1, 256);
    assert_eq!(publish_reason(&mut c, "mps/t", &vec![b'a'; n], Q1, None), ReasonCode::SUCCESS);
    assert_eq!(s.expect_publish(IO_TIMEOUT).payload.len(), n, "the 256-byte PUBLISH");
    c.send_publish("mps/t", &vec![b'b'; n + 1], Q1, false, None);
    expect_disconnect(&mut c, ReasonCode::PACKET_TOO_LARGE);
    fence.expect_quiet(&mut s);
}

#[test]
fn message_larger_than_the_client_maximum_packet_size_is_not_sent_to_it_but_others_get_it() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut small =
        Raw::connect_ok(b.addr, with_props(v5("mpc-small"), |p| p.maximum_packet_size = Some(128))).0;
    let mut big = Raw::client(b.addr, "mpc-big", V5);
    for c in [&mut small, &mut big] {
        c.subscribe_ok(&[("mpc/t", Q1)]);
    }
    for (i, p) in fence.conns.iter_mut().enumerate() {
        let mut large = format!("big {i} ").into_bytes();
        large.resize(300, b'.');
        p.publish("mpc/t", &large, Q1, false);
        p.publish("mpc/t", &large, Q0, false);
        p.publish("mpc/t", format!("small {i}").as_bytes(), Q1, false);
    }
    let got: BTreeSet<String> = small.expect_publishes(SHARDS, IO_TIMEOUT).iter().map(payload_str).collect();
    assert_eq!(got, (0..SHARDS).map(|i| format!("small {i}")).collect::<BTreeSet<_>>());
    fence.expect_quiet(&mut small);
    let got = big.expect_publishes(3 * SHARDS, IO_TIMEOUT);
    assert_eq!(got.iter().filter(|m| m.payload.len() == 300).count(), 2 * SHARDS);
    fence.expect_quiet(&mut big);
}

#[test]
fn a_message_exactly_at_the_client_maximum_packet_size_is_delivered() {
    const MAX: usize = 64;
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut s =
        Raw::connect_ok(b.addr, with_props(v5("mpe-sub"), |p| p.maximum_packet_size = Some(MAX as u32))).0;
    s.subscribe_ok(&[("mpe/t", Q1)]);
    // What the broker sends: the same topic, QoS 1 with a packet id, no properties.
    let n = payload_len_for("mpe/t", Q1, MAX);
    fence.conns[1].publish("mpe/t", &vec![b'x'; n + 1], Q1, false);
    fence.conns[1].publish("mpe/t", &vec![b'y'; n], Q1, false);
    let m = s.expect_publish(IO_TIMEOUT);
    assert_eq!((m.payload.len(), m.payload[0]), (n, b'y'), "only the {MAX}-byte PUBLISH fits");
    fence.expect_quiet(&mut s);
}
