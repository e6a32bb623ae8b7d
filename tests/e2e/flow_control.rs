//! Flow control for QoS 1/2: a subscriber whose queue is full holds its publishers
//! instead of losing their messages; a stuck one is let go of after
//! `stuck_subscriber_secs`, and publishers of other topics never wait for it.

use crate::common::{on_shard, Conn, Raw, TestBroker, IO_TIMEOUT};
use ringmq::config::Config;
use ringmq::protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use std::time::{Duration, Instant};

/// A queue bound far below what the flood sends: without flow control most messages
/// would be dropped.
const QUEUE: usize = 50;
const MESSAGES: usize = 3000;

fn broker(f: impl FnOnce(&mut Config)) -> TestBroker {
    TestBroker::start_with(|c: &mut Config| {
        c.max_queued_messages = QUEUE;
        f(c);
    })
}

/// Sends `n` QoS `qos` PUBLISH packets on `topic` without waiting (the socket buffers
/// hold them while the broker holds the publisher), then collects every acknowledgement.
fn flood(mut publisher: Raw, topic: String, n: usize, qos: QoS) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        for i in 0..n {
            publisher.send_publish(&topic, i.to_string().as_bytes(), qos, false, None);
        }
        let mut acked = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked < n && Instant::now() < deadline {
            match publisher.expect_packet(Duration::from_secs(30)) {
                Packet::PubAck(a) => {
                    assert_eq!(a.reason, ReasonCode::SUCCESS);
                    acked += 1;
                }
                Packet::PubRec(a) => {
                    publisher.send(&Packet::PubRel(ringmq::protocol::Ack::new(a.packet_id)));
                }
                Packet::PubComp(_) => acked += 1,
                other => panic!("publisher: unexpected {other:?}"),
            }
        }
        acked
    })
}

/// Reads `n` messages, acknowledging each, pausing now and then like a slow consumer.
fn drain_slowly(sub: &mut Raw, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let p = sub.expect_publish(IO_TIMEOUT);
        got.push(String::from_utf8_lossy(&p.payload).into_owned());
        if got.len() % 200 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    got
}

#[test]
fn a_qos1_and_qos2_flood_to_a_slow_subscriber_loses_nothing_on_one_shard_and_across_shards() {
    let b = broker(|_| {});
    for (qos, (pub_shard, sub_shard)) in
        [(QoS::AtLeastOnce, (0, 0)), (QoS::AtLeastOnce, (0, 1)), (QoS::ExactlyOnce, (2, 3))]
    {
        let topic = format!("flood/{}/{pub_shard}{sub_shard}", qos as u8);
        let (mut sub, _) = on_shard(b.addr, Conn::new("", ProtocolVersion::V5), sub_shard);
        sub.subscribe_ok(&[(topic.as_str(), qos)]);
        let (publisher, _) = on_shard(b.addr, Conn::new("", ProtocolVersion::V5), pub_shard);
        let acks = flood(publisher, topic.clone(), MESSAGES, qos);
        let got = drain_slowly(&mut sub, MESSAGES);
        let want: Vec<String> = (0..MESSAGES).map(|i| i.to_string()).collect();
        assert_eq!(got, want, "{topic}: every message, in order");
        assert_eq!(acks.join().unwrap(), MESSAGES, "{topic}: every publish acknowledged");
    }
}

#[test]
fn a_fan_in_at_3_1_1_loses_nothing() {
    let b = broker(|_| {});
    let v = ProtocolVersion::V3_1_1;
    let mut sub = Raw::client(b.addr, "fanin-sub", v);
    sub.subscribe_ok(&[("fanin/+", QoS::AtLeastOnce)]);
    let publishers: Vec<_> = (0..10)
        .map(|i| {
            flood(
                Raw::client(b.addr, format!("fanin-pub-{i}"), v),
                format!("fanin/{i}"),
                500,
                QoS::AtLeastOnce,
            )
        })
        .collect();
    let got = drain_slowly(&mut sub, 5000);
    assert_eq!(got.len(), 5000);
    for p in publishers {
        assert_eq!(p.join().unwrap(), 500);
    }
}

#[test]
fn a_stuck_subscriber_lets_its_publisher_go_and_other_topics_never_wait() {
    let b = broker(|c| c.stuck_subscriber_secs = 1);
    let v = ProtocolVersion::V5;
    // A subscriber that never acknowledges: its window fills, then its queue.
    let (mut stuck, _) = on_shard(b.addr, Conn::new("", v), 0);
    stuck.subscribe_ok(&[("stuck/t", QoS::AtLeastOnce)]);
    let (publisher, _) = on_shard(b.addr, Conn::new("", v), 1);
    let started = Instant::now();
    // More than its queue can take past the bound (`mesh_queue` + `max_queued_messages`,
    // room for what is on its way while a publisher on another shard is told to wait).
    let n = 20_000;
    let acks = flood(publisher, "stuck/t".into(), n, QoS::AtLeastOnce);
    // Meanwhile another topic on the same shards flows at once.
    let (mut other_sub, _) = on_shard(b.addr, Conn::new("", v), 0);
    other_sub.subscribe_ok(&[("other/t", QoS::AtLeastOnce)]);
    let (mut other_pub, _) = on_shard(b.addr, Conn::new("", v), 1);
    for i in 0..20 {
        other_pub.publish("other/t", format!("{i}").as_bytes(), QoS::AtLeastOnce, false);
    }
    assert_eq!(other_sub.expect_publishes(20, IO_TIMEOUT).len(), 20);
    assert!(started.elapsed() < Duration::from_millis(900), "other topics waited for the stuck one");
    // After stuck_subscriber_secs the publisher is let go: all its messages acknowledged,
    // what did not fit the stuck subscriber's queue dropped.
    assert_eq!(acks.join().unwrap(), n);
    assert!(started.elapsed() >= Duration::from_secs(1), "let go only after the stuck timeout");
    // It holds its in-flight window (max_inflight_messages, 20), never acknowledged.
    let mut got = 0;
    while let crate::common::Recv::Packet(Packet::Publish(_)) = stuck.recv(Duration::from_millis(200)) {
        got += 1;
    }
    assert_eq!(got, 20);
}

#[test]
fn flow_control_false_drops_at_the_bound_as_mosquitto_does() {
    let b = broker(|c| c.flow_control = false);
    let v = ProtocolVersion::V5;
    let (mut sub, _) = on_shard(b.addr, Conn::new("", v), 0);
    sub.subscribe_ok(&[("drop/t", QoS::AtLeastOnce)]);
    let (publisher, _) = on_shard(b.addr, Conn::new("", v), 0);
    // The subscriber reads nothing until every publish is acknowledged: the broker
    // never waited for it.
    assert_eq!(flood(publisher, "drop/t".into(), MESSAGES, QoS::AtLeastOnce).join().unwrap(), MESSAGES);
    let mut got = 0;
    while let crate::common::Recv::Packet(Packet::Publish(p)) = sub.recv(Duration::from_millis(300)) {
        sub.ack(&p);
        got += 1;
    }
    assert!(got < MESSAGES, "some were dropped at the bound: {got}");
}
