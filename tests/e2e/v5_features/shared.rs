//! Shared subscriptions: each strategy, members on every shard, and re-delivery when a
//! member leaves.

use super::*;
use crate::common::*;
use bytes::BytesMut;
use ringmq::protocol::{Ack, ByteStr, Packet, ReasonCode};
use ringmq::router::ShareStrategy;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SHARED_FILTER: &str = "$share/g/shs/t";

/// A broker with `strategy`, members of `$share/g/shs/t` one per shard, and a fence
/// (whose connections, one per shard, publish).
fn shared_setup(strategy: ShareStrategy) -> (TestBroker, Fence, Vec<Raw>) {
    let b = TestBroker::start_with(|c| c.share_strategy = strategy);
    let fence = Fence::new(b.addr);
    let mut members = one_per_shard(b.addr);
    for m in members.iter_mut() {
        m.subscribe_ok(&[(SHARED_FILTER, Q1)]);
    }
    (b, fence, members)
}

/// Every publisher (one per shard) publishes `per` QoS 1 messages; asserts each reaches
/// exactly one member; returns counts[publisher][member].
fn shared_run(fence: &mut Fence, members: &mut [Raw], per: usize, tag: &str) -> Vec<Vec<usize>> {
    for (i, p) in fence.conns.iter_mut().enumerate() {
        for k in 0..per {
            p.publish("shs/t", format!("{tag}:{i}:{k}").as_bytes(), Q1, false);
        }
    }
    let total = per * fence.conns.len();
    let mut counts = vec![vec![0usize; members.len()]; fence.conns.len()];
    let mut seen = BTreeSet::new();
    for (j, m) in collect_across(fence, members, total, Duration::from_secs(20)) {
        let text = payload_str(&m);
        assert!(seen.insert(text.clone()), "{text} delivered to more than one member");
        let parts: Vec<&str> = text.split(':').collect();
        assert_eq!(parts[0], tag, "a message of an earlier round: {text}");
        counts[parts[1].parse::<usize>().unwrap()][j] += 1;
    }
    assert_eq!(seen.len(), total);
    counts
}

#[test]
fn shared_round_robin_spreads_each_publishers_messages_evenly_over_members_on_every_shard() {
    let (_b, mut fence, mut members) = shared_setup(ShareStrategy::RoundRobin);
    let per = 8 * members.len();
    let counts = shared_run(&mut fence, &mut members, per, "rr");
    for (i, c) in counts.iter().enumerate() {
        assert!(c.iter().all(|n| *n == per / members.len()), "publisher {i}: per member {c:?}");
    }
}

#[test]
fn shared_random_delivers_each_message_once_over_members_on_every_shard() {
    let (_b, mut fence, mut members) = shared_setup(ShareStrategy::Random);
    let counts = shared_run(&mut fence, &mut members, 40, "rnd");
    let per_member: Vec<usize> = (0..members.len()).map(|j| counts.iter().map(|c| c[j]).sum()).collect();
    assert!(per_member.iter().filter(|n| **n > 0).count() >= 2, "one member got everything: {per_member:?}");
}

#[test]
fn shared_hash_by_client_sends_each_publishers_messages_to_one_member() {
    let (_b, mut fence, mut members) = shared_setup(ShareStrategy::HashByClient);
    let counts = shared_run(&mut fence, &mut members, 20, "hash");
    for (i, c) in counts.iter().enumerate() {
        assert_eq!(c.iter().filter(|n| **n > 0).count(), 1, "publisher {i}: per member {c:?}");
    }
}

#[test]
fn shared_sticky_keeps_one_member_until_it_leaves() {
    let (_b, mut fence, mut members) = shared_setup(ShareStrategy::Sticky);
    let counts = shared_run(&mut fence, &mut members, 20, "s1");
    for (i, c) in counts.iter().enumerate() {
        assert_eq!(c.iter().filter(|n| **n > 0).count(), 1, "publisher {i}: per member {c:?}");
    }
    // Publisher 0's member leaves; once every shard knows, its messages stick to another.
    let gone = counts[0].iter().position(|n| *n > 0).unwrap();
    let ack = members[gone].unsubscribe(&[SHARED_FILTER]);
    assert_eq!(ack.reasons, vec![ReasonCode::SUCCESS]);
    // UNSUBACK does not wait for the other shards; the fence's SUBSCRIBE does (its SUBACK
    // waits for a barrier round trip, behind the unsubscribe on every queue).
    fence.flush(&mut members[gone]);
    let counts = shared_run(&mut fence, &mut members, 20, "s2");
    for (i, c) in counts.iter().enumerate() {
        assert_eq!(c[gone], 0, "publisher {i}: a member that left still gets messages: {c:?}");
        assert_eq!(c.iter().filter(|n| **n > 0).count(), 1, "publisher {i}: per member {c:?}");
    }
}

#[test]
fn departed_shared_member_unacknowledged_qos1_messages_go_to_another_member_on_another_shard() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let filter = "$share/rd/rd/t";
    // Member A: Receive Maximum 2, so 2 messages are in flight and 3 queued behind them.
    let (mut a, _) = on_shard(b.addr, with_props(v5(""), |p| p.receive_maximum = Some(2)), 1);
    a.subscribe_ok(&[(filter, Q1)]);
    for k in 0..5 {
        fence.conns[3].publish("rd/t", k.to_string().as_bytes(), Q1, false);
    }
    let first: Vec<String> = (0..2).map(|_| payload_str(&a.expect_publish_noack(IO_TIMEOUT))).collect();
    assert_eq!(first, ["0", "1"]);
    fence.expect_quiet_behind_window(&mut a);
    let (mut bm, _) = on_shard(b.addr, v5(""), 2);
    bm.subscribe_ok(&[(filter, Q1)]);
    // A leaves without acknowledging; its session (expiry 0) ends.
    a.disconnect();
    let got: BTreeSet<String> = bm.expect_publishes(5, IO_TIMEOUT).iter().map(payload_str).collect();
    assert_eq!(got, (0..5).map(|k| k.to_string()).collect::<BTreeSet<_>>());
    fence.expect_quiet(&mut bm);
}

#[test]
fn departed_shared_member_qos2_messages_go_to_another_member_unless_it_sent_pubrec() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let filter = "$share/rd2/rd2/t";
    let (mut a, _) = on_shard(b.addr, v5(""), 0);
    a.subscribe_ok(&[(filter, Q2)]);
    fence.conns[2].publish("rd2/t", b"received", Q2, false);
    fence.conns[2].publish("rd2/t", b"open", Q2, false);
    let m1 = a.expect_publish_noack(IO_TIMEOUT);
    assert_eq!(payload_str(&m1), "received");
    let id = m1.packet_id;
    a.send(&Packet::PubRec(Ack::new(id)));
    a.expect_match(IO_TIMEOUT, "PUBREL", move |p| matches!(p, Packet::PubRel(x) if x.packet_id == id));
    let m2 = a.expect_publish_noack(IO_TIMEOUT);
    assert_eq!(payload_str(&m2), "open");
    let (mut bm, _) = on_shard(b.addr, v5(""), 1);
    bm.subscribe_ok(&[(filter, Q2)]);
    drop_abruptly(a);
    let m = bm.expect_publish(IO_TIMEOUT);
    assert_eq!(payload_str(&m), "open", "only the message without PUBREC goes to another member");
    fence.expect_quiet(&mut bm);
}

#[test]
fn shared_member_leaving_while_messages_stream_in_loses_none_of_them() {
    let b = TestBroker::start_with(|c| {
        c.max_queued_messages = 1_000_000;
        c.max_inflight_messages = u16::MAX;
    });
    let mut fence = Fence::new(b.addr);
    let filter = "$share/race/race/t";
    let mut members = one_per_shard(b.addr);
    for m in members.iter_mut() {
        m.subscribe_ok(&[(filter, Q1)]);
    }
    const N: usize = 20_000;
    let mut publisher = std::mem::take(&mut fence.conns).swap_remove(0);
    let mut stream = BytesMut::new();
    for k in 0..N {
        let id = (k % 65_535) as u16 + 1;
        publish_packet("race/t", format!("{k}").as_bytes(), Q1, false, id, None).encode(V5, &mut stream);
    }
    let sender = std::thread::spawn(move || {
        publisher.send_raw(&stream);
        let mut acked = 0;
        while acked < N {
            match publisher.recv(Duration::from_secs(20)) {
                Recv::Packet(Packet::PubAck(_)) => acked += 1,
                other => panic!("publisher: after {acked} PUBACKs: {other:?}"),
            }
        }
    });
    // A member on another shard leaves while the stream is being routed.
    let leaving = SHARDS - 1;
    members[leaving].expect_publish(IO_TIMEOUT);
    members[leaving].send(&Packet::Unsubscribe(ringmq::protocol::Unsubscribe {
        packet_id: 999,
        filters: vec![ByteStr::from(filter)],
        properties: None,
    }));
    sender.join().unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut quiet = true;
        for m in members.iter_mut() {
            while let Recv::Packet(p) = m.recv(Duration::from_millis(50)) {
                quiet = false;
                if let Packet::Publish(p) = p {
                    m.ack(&p);
                    assert!(seen.insert(payload_str(&p)), "{} delivered twice", payload_str(&p));
                }
            }
        }
        if quiet || Instant::now() > deadline {
            break;
        }
    }
    let lost = N - 1 - seen.len();
    assert_eq!(lost, 0, "{lost} of {N} QoS 1 messages reached no member of the group");
}
