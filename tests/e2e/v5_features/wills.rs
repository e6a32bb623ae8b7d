//! Wills: the Will Delay Interval and will properties.

use super::*;
use crate::common::*;
use crate::scenarios::will::{expect_wills, will_watchers};
use bytes::Bytes;
use ringmq::protocol::ByteStr;
use std::time::{Duration, Instant};

fn delayed_will(id: &str, delay: u32, session_expiry: u32, payload: &str) -> Conn {
    let c =
        v5(id).clean(false).session_expiry(session_expiry).will(&format!("will/{id}"), payload, Q1, false);
    with_will_props(c, |p| p.will_delay_interval_secs = Some(delay))
}

#[test]
fn delayed_will_is_published_after_its_delay_to_watchers_on_every_shard() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut watchers = will_watchers(&b, V5);
    let c = Raw::connect_ok(b.addr, delayed_will("wd-late", 2, 60, "late")).0;
    let t0 = Instant::now();
    drop_abruptly(c);
    watchers[0].expect_no_packet(Duration::from_millis(1500));
    let m = watchers[0].expect_publish(Duration::from_secs(5));
    let at = t0.elapsed();
    assert_eq!((&*m.topic, payload_str(&m).as_str()), ("will/wd-late", "late"));
    assert!(at >= Duration::from_millis(1900), "will with a 2 s delay published after {at:?}");
    let want = vec![("will/wd-late".to_string(), "late".to_string())];
    expect_wills(&mut watchers[1..], &want, IO_TIMEOUT);
    fence.expect_quiet_all(watchers.iter_mut());
}

#[test]
fn delayed_will_is_cancelled_when_the_client_reconnects_in_time() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut watchers = will_watchers(&b, V5);
    let ids = ids_covering_homes("wd-back", 1);
    let first: Vec<Raw> =
        ids.iter().map(|id| Raw::connect_ok(b.addr, delayed_will(id, 3, 60, "must not appear")).0).collect();
    for c in first {
        drop_abruptly(c);
    }
    let mut back = Vec::new();
    for id in &ids {
        let (c, ack) = Raw::connect_ok(b.addr, v5(id).clean(false).session_expiry(60));
        assert!(ack.session_present, "{id}");
        back.push(c);
    }
    std::thread::sleep(Duration::from_millis(4500));
    Raw::client(b.addr, "wd-marker", V5).publish("will/marker", b"marker", Q1, false);
    for w in watchers.iter_mut() {
        let m = w.expect_publish(IO_TIMEOUT);
        assert_eq!(payload_str(&m), "marker", "{}: a cancelled will was published: {m:?}", w.client_id);
    }
    for c in back {
        c.disconnect();
    }
    fence.expect_quiet_all(watchers.iter_mut());
}

#[test]
fn delayed_will_is_published_when_the_session_ends_before_the_delay() {
    let b = TestBroker::start();
    let mut watchers = will_watchers(&b, V5);
    let c = Raw::connect_ok(b.addr, delayed_will("wd-expiry", 60, 1, "session over")).0;
    let t0 = Instant::now();
    drop_abruptly(c);
    let m = watchers[0].expect_publish(Duration::from_secs(5));
    let at = t0.elapsed();
    assert_eq!(payload_str(&m), "session over");
    assert!(at >= Duration::from_millis(900), "published after {at:?}, before the 1 s session ended");
    let want = vec![("will/wd-expiry".to_string(), "session over".to_string())];
    expect_wills(&mut watchers[1..], &want, IO_TIMEOUT);
}

#[test]
fn delayed_will_is_published_when_the_client_comes_back_with_clean_start() {
    let b = TestBroker::start();
    let mut watchers = will_watchers(&b, V5);
    let c = Raw::connect_ok(b.addr, delayed_will("wd-clean", 60, 60, "new session")).0;
    drop_abruptly(c);
    // Time for the broker to see the close, so that this is a new connection after it
    // and not a takeover of the old one (both publish the will; this is the case named).
    std::thread::sleep(QUIET);
    let (c, ack) = Raw::connect_ok(b.addr, v5("wd-clean").session_expiry(60));
    assert!(!ack.session_present);
    let want = vec![("will/wd-clean".to_string(), "new session".to_string())];
    expect_wills(&mut watchers, &want, Duration::from_secs(3));
    c.disconnect();
}

#[test]
fn will_properties_are_passed_through_to_subscribers() {
    let b = TestBroker::start();
    let mut watchers = will_watchers(&b, V5);
    let sent = props(|p| {
        p.payload_format_indicator = Some(1);
        p.content_type = Some(ByteStr::from("text/plain"));
        p.response_topic = Some(ByteStr::from("will/reply"));
        p.correlation_data = Some(Bytes::from_static(&[0, 1, 0xfe, 0xff]));
        p.user_properties = vec![
            (ByteStr::from("k"), ByteStr::from("1")),
            (ByteStr::from("ü"), ByteStr::from("ß")),
            (ByteStr::from("k"), ByteStr::from("2")),
        ];
        p.message_expiry_interval_secs = Some(60);
    });
    let conn = v5("wp").will("will/wp", "with properties", Q1, false);
    let conn = with_will_props(conn, |p| *p = sent.clone());
    let c = Raw::connect_ok(b.addr, conn).0;
    drop_abruptly(c);
    for w in watchers.iter_mut() {
        let m = w.expect_publish(IO_TIMEOUT);
        assert_eq!(payload_str(&m), "with properties");
        let mut got = props_of(&m);
        // The value left is checked by will_message_expiry_interval_is_never_more_than_was_set.
        let left = got.message_expiry_interval_secs.take().expect("will message expiry forwarded");
        assert!((55..=61).contains(&left), "{left}");
        let mut want = sent.clone();
        want.message_expiry_interval_secs = None;
        assert_eq!(got, want, "{}: will properties", w.client_id);
    }
}

#[test]
fn will_message_expiry_interval_is_never_more_than_was_set() {
    let b = TestBroker::start();
    let mut watchers = will_watchers(&b, V5);
    let mut want = Vec::new();
    let mut clients = Vec::new();
    for id in ids_covering_homes("wx", 1) {
        let c = v5(&id).will(&format!("will/{id}"), "expiring", Q1, false);
        let c = with_will_props(c, |p| p.message_expiry_interval_secs = Some(60));
        clients.push(Raw::connect_ok(b.addr, c).0);
        want.push((format!("will/{id}"), "expiring".to_string()));
    }
    // Idle a while: the shards' batch clocks are then some way behind the real one.
    std::thread::sleep(Duration::from_millis(600));
    for c in clients {
        drop_abruptly(c);
    }
    let mut too_long = Vec::new();
    for w in watchers.iter_mut() {
        for m in w.expect_publishes(want.len(), IO_TIMEOUT) {
            let left = props_of(&m).message_expiry_interval_secs.expect("will message expiry forwarded");
            if left > 60 {
                too_long.push((w.client_id.clone(), m.topic.to_string(), left));
            }
        }
    }
    assert!(too_long.is_empty(), "wills with 60 s expiry delivered with more left: {too_long:?}");
}
