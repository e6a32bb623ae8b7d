//! Session expiry and clean start, and message expiry: queued, waiting behind the
//! receive window, unacknowledged, retained.

use super::*;
use crate::common::*;
use ringmq::protocol::{Ack, Disconnect, Packet, ReasonCode};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[test]
fn expired_session_is_removed_with_its_queued_messages_and_subscriptions() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let short = ids_covering_homes("sx-short", 1);
    let long = ids_covering_homes("sx-long", 1);
    let all: Vec<(&String, u32)> = short.iter().map(|i| (i, 1)).chain(long.iter().map(|i| (i, 60))).collect();
    for (id, secs) in &all {
        let mut c = Raw::connect_ok(b.addr, v5(id).clean(false).session_expiry(*secs)).0;
        c.subscribe_ok(&[(&format!("sx/{id}"), Q1)]);
        c.disconnect();
    }
    for (id, _) in &all {
        for (i, p) in fence.conns.iter_mut().enumerate() {
            p.publish(&format!("sx/{id}"), format!("queued {i}").as_bytes(), Q1, false);
        }
    }
    // Expiry is checked once a second: a 1 s session is gone within 2 s of its close.
    std::thread::sleep(Duration::from_millis(3000));
    for id in &long {
        let (mut c, ack) = Raw::connect_ok(b.addr, v5(id).clean(false).session_expiry(60));
        assert!(ack.session_present, "{id}: a 60 s session is gone after 3 s");
        let got: BTreeSet<String> = c.expect_publishes(SHARDS, IO_TIMEOUT).iter().map(payload_str).collect();
        assert_eq!(got.len(), SHARDS, "{id}: queued messages {got:?}");
        fence.expect_quiet(&mut c);
        c.disconnect();
    }
    for id in &short {
        let (mut c, ack) = Raw::connect_ok(b.addr, v5(id).clean(false).session_expiry(60));
        assert!(!ack.session_present, "{id}: the session outlived its 1 s expiry interval");
        // Nothing queued survived, and the old subscription is gone from every shard.
        fence.expect_quiet(&mut c);
        for p in fence.conns.iter_mut() {
            p.publish(&format!("sx/{id}"), b"after expiry", Q1, false);
        }
        fence.expect_quiet(&mut c);
        c.disconnect();
    }
}

#[test]
fn session_expiry_set_to_0_at_disconnect_ends_the_session() {
    let b = TestBroker::start();
    for id in ids_covering_homes("sx-d0", 1) {
        let mut c = Raw::connect_ok(b.addr, v5(&id).clean(false).session_expiry(60)).0;
        c.subscribe_ok(&[("sxd0/t", Q1)]);
        disconnect_with(c, props(|p| p.session_expiry_interval_secs = Some(0)));
        let (c, ack) = Raw::connect_ok(b.addr, v5(&id).clean(false).session_expiry(60));
        assert!(!ack.session_present, "{id}: expiry 0 at DISCONNECT should end the session");
        c.disconnect();
    }
}

#[test]
fn session_expiry_raised_at_disconnect_keeps_the_session_and_its_queue() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let ids = ids_covering_homes("sx-up", 1);
    for id in &ids {
        let mut c = Raw::connect_ok(b.addr, v5(id).clean(false).session_expiry(1)).0;
        c.subscribe_ok(&[(&format!("sxup/{id}"), Q1)]);
        disconnect_with(c, props(|p| p.session_expiry_interval_secs = Some(60)));
    }
    for id in &ids {
        for (i, p) in fence.conns.iter_mut().enumerate() {
            p.publish(&format!("sxup/{id}"), format!("queued {i}").as_bytes(), Q1, false);
        }
    }
    // Well past the 1 s asked for at CONNECT.
    std::thread::sleep(Duration::from_millis(2500));
    for id in &ids {
        let (mut c, ack) = Raw::connect_ok(b.addr, v5(id).clean(false).session_expiry(60));
        assert!(ack.session_present, "{id}: the expiry raised to 60 s at DISCONNECT was not kept");
        let got: BTreeSet<String> = c.expect_publishes(SHARDS, IO_TIMEOUT).iter().map(payload_str).collect();
        assert_eq!(got, (0..SHARDS).map(|i| format!("queued {i}")).collect::<BTreeSet<_>>(), "{id}");
        fence.expect_quiet(&mut c);
        c.disconnect();
    }
}

#[test]
fn session_expiry_0_at_connect_then_non_zero_at_disconnect_gets_disconnect_0x82() {
    let b = TestBroker::start();
    for id in ids_covering_homes("sx-82", 1) {
        let mut c = Raw::connect_ok(b.addr, v5(&id).clean(false)).0;
        c.subscribe_ok(&[("sx82/t", Q1)]);
        c.send(&Packet::Disconnect(Disconnect {
            reason: ReasonCode::SUCCESS,
            properties: Some(Box::new(props(|p| p.session_expiry_interval_secs = Some(30)))),
        }));
        expect_disconnect(&mut c, ReasonCode::PROTOCOL_ERROR);
        // The session had expiry 0 and did not outlive the connection.
        let (c, ack) = Raw::connect_ok(b.addr, v5(&id).clean(false).session_expiry(30));
        assert!(!ack.session_present, "{id}");
        c.disconnect();
    }
}

#[test]
fn clean_start_1_with_session_expiry_replaces_the_old_session_with_a_new_persistent_one() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for (k, id) in ids_covering_homes("cs", 1).into_iter().enumerate() {
        let (old_t, new_t) = (format!("cs/{id}/old"), format!("cs/{id}/new"));
        let mut c = Raw::connect_ok(b.addr, v5(&id).clean(false).session_expiry(60)).0;
        c.subscribe_ok(&[(&old_t, Q1)]);
        c.disconnect();
        fence.conns[k % SHARDS].publish(&old_t, b"queued for the old session", Q1, false);
        let (mut c, ack) = Raw::connect_ok(b.addr, v5(&id).clean(true).session_expiry(60));
        assert!(!ack.session_present, "{id}: clean start 1 resumed the old session");
        c.subscribe_ok(&[(&new_t, Q1)]);
        fence.expect_quiet(&mut c);
        c.disconnect();
        for p in fence.conns.iter_mut() {
            p.publish(&old_t, b"old", Q1, false);
            p.publish(&new_t, b"new", Q1, false);
        }
        let (mut c, ack) = Raw::connect_ok(b.addr, v5(&id).clean(false).session_expiry(60));
        assert!(ack.session_present, "{id}: the new session (expiry 60) did not persist");
        let got = c.expect_publishes(SHARDS, IO_TIMEOUT);
        assert!(got.iter().all(|m| *m.topic == *new_t), "{id}: old subscription or queue survived: {got:?}");
        fence.expect_quiet(&mut c);
        c.disconnect();
    }
}

// ---------------------------------------------------------------------------------------
// Message expiry
// ---------------------------------------------------------------------------------------

#[test]
fn queued_messages_that_expire_offline_are_dropped_and_the_rest_carry_their_remaining_interval() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let ids = ids_covering_homes("mx-q", 1);
    for id in &ids {
        let mut c = Raw::connect_ok(b.addr, v5(id).persistent()).0;
        c.subscribe_ok(&[(&format!("mxq/{id}"), Q1)]);
        c.disconnect();
    }
    for id in &ids {
        for (i, p) in fence.conns.iter_mut().enumerate() {
            let t = format!("mxq/{id}");
            p.publish_with(&t, format!("short {i}").as_bytes(), Q1, false, expiry(1));
            p.publish_with(&t, format!("long {i}").as_bytes(), Q1, false, expiry(60));
            p.publish_with(&t, format!("none {i}").as_bytes(), Q1, false, None);
        }
    }
    std::thread::sleep(Duration::from_millis(2500));
    for id in &ids {
        let (mut c, ack) = Raw::connect_ok(b.addr, v5(id).persistent());
        assert!(ack.session_present, "{id}");
        let got = c.expect_publishes(2 * SHARDS, IO_TIMEOUT);
        fence.expect_quiet(&mut c);
        for m in &got {
            let text = payload_str(m);
            let left = props_of(m).message_expiry_interval_secs;
            if text.starts_with("long") {
                let left = left.unwrap_or_else(|| panic!("{id}: {text} lost its expiry interval"));
                assert!((50..=58).contains(&left), "{id}: {text}: {left} s left after 2.5 s of 60");
            } else {
                assert!(text.starts_with("none"), "{id}: expired message delivered: {text}");
                assert_eq!(left, None, "{id}: {text} gained an expiry interval");
            }
        }
    }
}

#[test]
fn message_waiting_behind_the_client_receive_window_expires_and_is_not_sent() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let (mut s, _) = on_shard(b.addr, with_props(v5(""), |p| p.receive_maximum = Some(1)), 0);
    s.subscribe_ok(&[("mxw/t", Q1)]);
    let p = &mut fence.conns[SHARDS - 1];
    p.publish("mxw/t", b"first", Q1, false);
    p.publish_with("mxw/t", b"short", Q1, false, expiry(1));
    p.publish_with("mxw/t", b"long", Q1, false, expiry(30));
    let first = s.expect_publish_noack(IO_TIMEOUT);
    assert_eq!(payload_str(&first), "first");
    fence.expect_quiet_behind_window(&mut s);
    std::thread::sleep(Duration::from_millis(2200));
    s.send(&Packet::PubAck(Ack::new(first.packet_id)));
    let next = s.expect_publish(IO_TIMEOUT);
    assert_eq!(payload_str(&next), "long", "the expired message was sent after waiting in the queue");
    let left = props_of(&next).message_expiry_interval_secs.expect("expiry interval kept");
    assert!((20..=28).contains(&left), "{left} s left after 2.5 s of 30");
    fence.expect_quiet(&mut s);
}

#[test]
fn expired_unacknowledged_message_does_not_block_the_receive_window_after_reconnect() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let conn = || with_props(v5("mx-stuck").persistent(), |p| p.receive_maximum = Some(1));
    let mut s = Raw::connect_ok(b.addr, conn()).0;
    s.subscribe_ok(&[("mxs/t", Q1)]);
    fence.conns[0].publish_with("mxs/t", b"short", Q1, false, expiry(1));
    assert_eq!(payload_str(&s.expect_publish_noack(IO_TIMEOUT)), "short");
    drop_abruptly(s);
    fence.conns[1].publish("mxs/t", b"later", Q1, false);
    std::thread::sleep(Duration::from_millis(2000));
    let (mut s, ack) = Raw::connect_ok(b.addr, conn());
    assert!(ack.session_present);
    // Re-sending "short" (delivery had started) or not are both fine; "later" must come.
    loop {
        let m = s.expect_publish(IO_TIMEOUT);
        if payload_str(&m) == "later" {
            break;
        }
        assert_eq!(payload_str(&m), "short");
    }
}

#[test]
fn retained_message_expires_and_its_remaining_interval_counts_down() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut pubs = one_per_shard(b.addr);
    let published = Instant::now();
    for (i, p) in pubs.iter_mut().enumerate() {
        p.publish_with(&format!("mxr/short/{i}"), b"short", Q1, true, expiry(3));
        p.publish_with(&format!("mxr/long/{i}"), b"long", Q1, true, expiry(30));
    }
    // Read at once on every shard: both, with what they have left.
    for mut s in one_per_shard(b.addr) {
        s.subscribe_ok(&[("mxr/#", Q1)]);
        for m in s.expect_publishes(2 * SHARDS, IO_TIMEOUT) {
            assert!(m.retain);
            let left = props_of(&m).message_expiry_interval_secs.expect("retained message kept its expiry");
            let max = if &m.payload[..] == b"short" { 3 } else { 30 };
            assert!((1..=max).contains(&left), "{}: {left} s left of {max}", m.topic);
        }
        fence.expect_quiet(&mut s);
    }
    std::thread::sleep((published + Duration::from_millis(4500)).saturating_duration_since(Instant::now()));
    for mut s in one_per_shard(b.addr) {
        s.subscribe_ok(&[("mxr/#", Q1)]);
        for m in s.expect_publishes(SHARDS, IO_TIMEOUT) {
            assert_eq!(&m.payload[..], b"long", "{}: an expired retained message was sent", m.topic);
            let left = props_of(&m).message_expiry_interval_secs.unwrap();
            assert!((20..=26).contains(&left), "{}: {left} s left after 4.5 s of 30", m.topic);
        }
        fence.expect_quiet(&mut s);
    }
}
