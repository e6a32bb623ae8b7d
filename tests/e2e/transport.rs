//! The socket path under stress: packets split across many receives, and more data in
//! flight at once than a shard's provided-buffer pool holds (receives end with ENOBUFS
//! and are re-armed; the data waits in the sockets meanwhile). The pool is shrunk with the
//! `recv_buffers` option so that it must run dry; and a mesh between shards so short
//! (`mesh_queue`) that publishers back it up all the time. Nothing may be lost,
//! reordered or corrupted. And the end of a connection the broker closes: a half-close
//! that still reads what the client sends, for a bounded time.

use crate::common::*;
use bytes::BytesMut;
use ringmq::protocol::{
    Ack, Packet,
    ProtocolVersion::{V3_1_1, V5},
    QoS, ReasonCode,
};
use std::time::Duration;

#[test]
fn a_packet_split_over_many_receives_is_reassembled() {
    let b = TestBroker::start();
    let mut sub = Raw::client(b.addr, "split-sub", V3_1_1);
    sub.subscribe_ok(&[("split/t", Q1)]);
    let mut publisher = Raw::client(b.addr, "split-pub", V3_1_1);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut bytes = bytes::BytesMut::new();
    publish_packet("split/t", &payload, Q1, false, 7, None).encode(V3_1_1, &mut bytes);
    // Header, then the body in uneven pieces with pauses, so each arrives on its own.
    for piece in bytes.chunks(701) {
        publisher.send_raw(piece);
        std::thread::sleep(Duration::from_millis(20));
    }
    match publisher.expect_packet(IO_TIMEOUT) {
        Packet::PubAck(a) => assert_eq!(a.packet_id, 7),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let m = sub.expect_publish(IO_TIMEOUT);
    assert_eq!(&m.payload[..], &payload[..]);
}

#[test]
fn more_data_in_flight_than_the_buffer_pool_holds_arrives_intact() {
    // 2 receive buffers of 16 KiB per shard: a single 64 KiB message cannot fit.
    let b = TestBroker::start_with(|c| c.recv_buffers = 2);
    // 32 x 4 x 64 KiB = 8 MiB sent at once, through 2 buffers per shard.
    flood_one_subscriber(&b, "pool", 32, 4, 64 * 1024);
}

#[test]
fn publishers_flooding_through_a_full_mesh_lose_and_reorder_nothing() {
    // Queues of 2 messages between shards: every few publishes back up the mesh, so the
    // senders hold their sockets' input, keep a backlog, and are woken by the receiver.
    let b = TestBroker::start_with(|c| {
        c.mesh_queue = 2;
        c.max_queued_messages = 0;
        c.max_inflight_messages = u16::MAX;
    });
    // 8 publishers land on 4 shards as the kernel spreads them: most messages cross.
    flood_one_subscriber(&b, "mesh", 8, 2000, 32);
}

/// `publishers` clients each send `each` QoS 1 messages of `size` bytes on `NAME/<i>`,
/// all at once before reading a PUBACK, to one subscriber of `NAME/#`, which must get every
/// message intact and in each publisher's order (3.1.1 [MQTT-4.6.0-6]), and nothing more.
fn flood_one_subscriber(b: &TestBroker, name: &str, publishers: usize, each: usize, size: usize) {
    let mut fence = Fence::new(b.addr);
    let mut sub = Raw::client(b.addr, format!("{name}-sub"), V3_1_1);
    sub.subscribe_ok(&[(format!("{name}/#").as_str(), Q1)]);
    let threads: Vec<_> = (0..publishers)
        .map(|i| {
            let mut p = Raw::client(b.addr, format!("{name}-pub-{i}"), V3_1_1);
            let topic = format!("{name}/{i}");
            std::thread::spawn(move || {
                let ids: Vec<u16> = (0..each)
                    .map(|k| p.send_publish(&topic, &pattern(i, k, size), Q1, false, None))
                    .collect();
                for id in ids {
                    p.finish_publish(Q1, id);
                }
            })
        })
        .collect();
    let mut next = vec![0usize; publishers];
    for _ in 0..publishers * each {
        let m = sub.expect_publish(Duration::from_secs(30));
        let i: usize = m.topic.strip_prefix(&format!("{name}/")).unwrap().parse().unwrap();
        let k = next[i];
        assert!(
            m.payload[..] == pattern(i, k, size)[..],
            "publisher {i} message {k} lost, corrupted or out of order"
        );
        next[i] += 1;
    }
    for t in threads {
        t.join().expect("publisher thread");
    }
    assert!(next.iter().all(|&n| n == each), "{next:?}");
    fence.expect_quiet(&mut sub);
}

/// A payload that differs per publisher, per message and per byte.
fn pattern(publisher: usize, k: usize, size: usize) -> Vec<u8> {
    (0..size).map(|j| (j as u64 * 31 + publisher as u64 * 7 + k as u64 * 13) as u8).collect()
}

/// The broker's half of closing, as in `reactor.rs` (`LINGER_MS`), plus its housekeeping
/// period and some slack.
const LINGER_AND_SLACK: Duration = Duration::from_millis(2000 + 100 + 700);

/// PUBREL 1, encoded: what the clients below keep sending after the broker's DISCONNECT.
fn pubrel_1() -> BytesMut {
    let mut out = BytesMut::new();
    Packet::PubRel(Ack::new(1)).encode(V5, &mut out);
    out
}

/// A client that sends two QoS 2 PUBLISHes against a Receive Maximum of 1 and keeps
/// talking (PUBRELs) before it reads anything: the broker's answer is PUBREC 1, then
/// DISCONNECT 0x93 (5.0 [MQTT-3.3.4-7]), and the connection ends.
fn exceed_receive_maximum_and_keep_sending(b: &TestBroker, client_id: &str) -> Raw {
    let (mut c, _) = Raw::connect_ok(b.addr, Conn::new(client_id, V5));
    let mut out = BytesMut::new();
    for id in [1, 2] {
        publish_packet("linger/t", b"x", QoS::ExactlyOnce, false, id, None).encode(V5, &mut out);
    }
    c.send_raw(&out);
    std::thread::sleep(Duration::from_millis(100));
    let pubrel = pubrel_1();
    for i in 0..3 {
        // A socket closed with data unread answers with a reset, which fails the next
        // write here (and may discard the DISCONNECT at a client's end).
        c.try_send_raw(&pubrel)
            .unwrap_or_else(|e| panic!("write {i} after the broker's DISCONNECT failed: {e}"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = c.expect_closed(IO_TIMEOUT);
    assert!(
        matches!(got.as_slice(), [Packet::PubRec(a), Packet::Disconnect(d)]
            if a.packet_id == 1 && d.reason == ReasonCode::RECEIVE_MAXIMUM_EXCEEDED),
        "expected PUBREC 1 and DISCONNECT 0x93, got {got:?}"
    );
    c
}

#[test]
fn a_client_still_sending_after_the_brokers_disconnect_reads_it_and_gets_no_reset() {
    let b = TestBroker::start_with(|c| c.receive_maximum = 1);
    exceed_receive_maximum_and_keep_sending(&b, "linger-reads");
}

#[test]
fn a_client_that_never_closes_is_closed_once_the_linger_is_over() {
    let b = TestBroker::start_with(|c| c.receive_maximum = 1);
    let mut c = exceed_receive_maximum_and_keep_sending(&b, "linger-ends");
    std::thread::sleep(LINGER_AND_SLACK);
    // The socket is gone now: the first write draws a reset, a later one fails.
    let pubrel = pubrel_1();
    let failed = (0..10).any(|_| {
        let r = c.try_send_raw(&pubrel);
        std::thread::sleep(Duration::from_millis(50));
        r.is_err()
    });
    assert!(failed, "the broker still held the socket {LINGER_AND_SLACK:?} after its DISCONNECT");
}
