//! Last will: published when the socket closes without DISCONNECT, on keepalive expiry
//! and on a protocol error; discarded by a normal DISCONNECT. Watchers are on every shard.

use super::vtag;
use crate::common::*;
use ringmq::protocol::{Packet, ReasonCode};
use std::time::{Duration, Instant};

/// Subscribers to `will/#` on every shard (MQTT 5) and one of version `v`.
pub fn will_watchers(b: &TestBroker, v: ProtocolVersion) -> Vec<Raw> {
    let mut watchers = one_per_shard(b.addr);
    watchers.push(Raw::client(b.addr, "will-watcher", v));
    for w in watchers.iter_mut() {
        w.subscribe_ok(&[("will/#", Q1)]);
    }
    watchers
}

/// Asserts every watcher gets exactly these wills (topic, payload), in any order.
pub fn expect_wills(watchers: &mut [Raw], want: &[(String, String)], timeout: Duration) {
    let mut want = want.to_vec();
    want.sort();
    for w in watchers.iter_mut() {
        let got = w.expect_publishes(want.len(), timeout);
        let mut got: Vec<(String, String)> =
            got.iter().map(|m| (m.topic.to_string(), payload_str(m))).collect();
        got.sort();
        assert_eq!(got, want, "{}: wills", w.client_id);
    }
}

/// A client whose socket closes without DISCONNECT has its will published, once. The
/// clients' ids have every home shard.
pub fn will_is_published_when_socket_closes_without_disconnect(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut watchers = will_watchers(&b, v);
    let mut want = Vec::new();
    for id in ids_covering_homes(&format!("wsc-{}", vtag(v)), 1) {
        let topic = format!("will/{id}");
        let c = Raw::connect_ok(b.addr, Conn::new(&id, v).will(&topic, &format!("gone {id}"), Q1, false)).0;
        want.push((topic, format!("gone {id}")));
        drop_abruptly(c);
    }
    expect_wills(&mut watchers, &want, IO_TIMEOUT);
    fence.expect_quiet_all(watchers.iter_mut());
}

/// Keepalive 1 s and silence: the broker closes the connection after 1.5 s
/// (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]) and publishes the will. At 5.0 the client
/// gets DISCONNECT 0x8D first.
pub fn will_is_published_on_keepalive_expiry(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut watchers = will_watchers(&b, v);
    let id = format!("ka-{}", vtag(v));
    let (mut c, _) =
        Raw::connect_ok(b.addr, Conn::new(&id, v).keepalive(1).will("will/ka", "expired", Q1, false));
    let t0 = Instant::now();
    let w = &mut watchers[0];
    let m = w.expect_publish(Duration::from_secs(4));
    let elapsed = t0.elapsed();
    assert_eq!(payload_str(&m), "expired");
    assert!(
        elapsed >= Duration::from_millis(1250) && elapsed <= Duration::from_millis(2750),
        "will after {elapsed:?}; keepalive 1 s should close after about 1.5 s"
    );
    let before_close = c.expect_closed(Duration::from_secs(2));
    if v.is_v5() {
        assert!(
            before_close
                .iter()
                .any(|p| matches!(p, Packet::Disconnect(d) if d.reason == ReasonCode::KEEP_ALIVE_TIMEOUT)),
            "MQTT 5 client should get DISCONNECT 0x8D before the close: {before_close:?}"
        );
    } else {
        assert!(before_close.is_empty(), "3.1.1 gets no packet before the close: {before_close:?}");
    }
    let want = vec![("will/ka".to_string(), "expired".to_string())];
    expect_wills(&mut watchers[1..], &want, IO_TIMEOUT);
}

/// Garbage bytes (reserved packet type 0) close the connection and publish the will. At
/// 5.0 the client gets DISCONNECT 0x81 first.
pub fn will_is_published_on_protocol_error(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut watchers = will_watchers(&b, v);
    let mut want = Vec::new();
    let mut clients = Vec::new();
    for id in ids_covering_homes(&format!("wpe-{}", vtag(v)), 1) {
        let topic = format!("will/{id}");
        let c = Raw::connect_ok(b.addr, Conn::new(&id, v).will(&topic, "protocol error", Q0, false)).0;
        want.push((topic, "protocol error".to_string()));
        clients.push(c);
    }
    for c in clients.iter_mut() {
        c.send_raw(&[0x00, 0x00]);
        let before = c.expect_closed(IO_TIMEOUT);
        if v.is_v5() {
            assert!(
                matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::MALFORMED_PACKET),
                "MQTT 5: DISCONNECT 0x81 expected before the close, got {before:?}"
            );
        } else {
            assert!(before.is_empty(), "{before:?}");
        }
    }
    expect_wills(&mut watchers, &want, IO_TIMEOUT);
}

/// After a normal DISCONNECT the will is discarded [MQTT-3.1.2-10]. The broker decides
/// when it handles the DISCONNECT, before it closes the socket, so once the client has
/// seen the close a will would already be on its way: the fence finds none.
pub fn will_is_not_published_after_clean_disconnect(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut watchers = will_watchers(&b, v);
    for id in ids_covering_homes(&format!("wcd-{}", vtag(v)), 1) {
        let c = Raw::connect_ok(b.addr, Conn::new(&id, v).will("will/clean", "must not appear", Q1, false)).0;
        c.disconnect();
    }
    fence.expect_quiet_all(watchers.iter_mut());
}
