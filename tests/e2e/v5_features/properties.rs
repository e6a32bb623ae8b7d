//! Request / response and the properties passed through; CONNACK's properties.

use super::*;
use crate::common::*;
use bytes::Bytes;
use ringmq::protocol::{ByteStr, ConnAck, Packet, Properties, Publish, ReasonCode};
use std::time::{Duration, Instant};

#[test]
fn request_response_across_every_pair_of_shards_keeps_response_topic_and_correlation_data() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut cs = one_per_shard(b.addr);
    let n = cs.len();
    for (i, c) in cs.iter_mut().enumerate() {
        c.subscribe_ok(&[(&format!("rr/req/{i}"), Q1), (&format!("rr/resp/{i}"), Q1)]);
    }
    for i in 0..n {
        for j in 0..n {
            let corr = Bytes::from(vec![i as u8, j as u8, 0x00, 0xff, 0x80]);
            let request = props(|p| {
                p.response_topic = Some(ByteStr::from(format!("rr/resp/{i}")));
                p.correlation_data = Some(corr.clone());
            });
            cs[i].publish_with(&format!("rr/req/{j}"), b"request", Q1, false, Some(request));
            let req = expect_publish_on(&mut cs[j], &format!("rr/req/{j}"));
            let rp = props_of(&req);
            assert_eq!(rp.response_topic.as_deref(), Some(format!("rr/resp/{i}").as_str()), "{i}->{j}");
            assert_eq!(rp.correlation_data.as_ref(), Some(&corr), "{i}->{j}: request correlation data");
            let reply = props(|p| p.correlation_data = rp.correlation_data.clone());
            cs[j].publish_with(&rp.response_topic.unwrap(), b"response", Q1, false, Some(reply));
            let resp = expect_publish_on(&mut cs[i], &format!("rr/resp/{i}"));
            assert_eq!(payload_str(&resp), "response");
            assert_eq!(props_of(&resp).correlation_data, Some(corr), "{i}->{j}: response correlation data");
        }
    }
    fence.expect_quiet_all(cs.iter_mut());
}

#[test]
fn payload_format_content_type_and_user_properties_pass_unchanged_live_queued_and_retained() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let sent = props(|p| {
        p.payload_format_indicator = Some(1);
        p.content_type = Some(ByteStr::from("application/json; charset=utf-8"));
        p.user_properties =
            [("z", "first"), ("a", "1"), ("a", "2"), ("ключ", "значение"), ("", ""), ("a", "1")]
                .iter()
                .map(|(k, v)| (ByteStr::from(*k), ByteStr::from(*v)))
                .collect();
    });
    let check = |who: &str, m: &Publish| {
        let got = props_of(m);
        assert_eq!(got.payload_format_indicator, sent.payload_format_indicator, "{who}");
        assert_eq!(got.content_type, sent.content_type, "{who}");
        assert_eq!(got.user_properties, sent.user_properties, "{who}: user properties, in order");
    };
    let mut live = one_per_shard(b.addr);
    for c in live.iter_mut() {
        c.subscribe_ok(&[("ppx/live", Q1)]);
    }
    let mut off = Raw::connect_ok(b.addr, v5("ppx-offline").persistent()).0;
    off.subscribe_ok(&[("ppx/queued", Q1)]);
    off.disconnect();
    for (i, p) in fence.conns.iter_mut().enumerate() {
        let body = format!("{{\"i\":{i}}}");
        p.publish_with("ppx/live", body.as_bytes(), Q1, false, Some(sent.clone()));
        p.publish_with("ppx/queued", body.as_bytes(), Q1, false, Some(sent.clone()));
        p.publish_with(&format!("ppx/retained/{i}"), body.as_bytes(), Q1, true, Some(sent.clone()));
    }
    for c in live.iter_mut() {
        for m in c.expect_publishes(SHARDS, IO_TIMEOUT) {
            check(&format!("live to {}", c.client_id), &m);
        }
    }
    let (mut off, ack) = Raw::connect_ok(b.addr, v5("ppx-offline").persistent());
    assert!(ack.session_present);
    for m in off.expect_publishes(SHARDS, IO_TIMEOUT) {
        check("queued", &m);
    }
    let mut late = Raw::client(b.addr, "ppx-late", V5);
    late.subscribe_ok(&[("ppx/retained/#", Q1)]);
    for m in late.expect_publishes(SHARDS, IO_TIMEOUT) {
        assert!(m.retain);
        check("retained", &m);
    }
}

#[test]
fn payload_format_indicator_1_with_invalid_utf8_gets_0x99_when_checking_is_on() {
    let b = TestBroker::start_with(|c| c.check_payload_format = true);
    let mut fence = Fence::new(b.addr);
    let mut s = Raw::client(b.addr, "pf-sub", V5);
    s.subscribe_ok(&[("pf/t", Q2)]);
    let pfi = |v| Some(props(|p| p.payload_format_indicator = Some(v)));
    let bad: &[u8] = b"\xff\xfe not UTF-8";
    for (i, p) in fence.conns.iter_mut().enumerate() {
        assert_eq!(publish_reason(p, "pf/t", bad, Q1, pfi(1)), ReasonCode::PAYLOAD_FORMAT_INVALID, "PUBACK");
        assert_eq!(publish_reason(p, "pf/t", bad, Q2, pfi(1)), ReasonCode::PAYLOAD_FORMAT_INVALID, "PUBREC");
        let good = format!("good ✓ {i}");
        assert_eq!(publish_reason(p, "pf/t", good.as_bytes(), Q1, pfi(1)), ReasonCode::SUCCESS);
        assert_eq!(publish_reason(p, "pf/t", bad, Q1, pfi(0)), ReasonCode::SUCCESS, "indicator 0: bytes");
    }
    let got = s.expect_publishes(2 * SHARDS, IO_TIMEOUT);
    assert_eq!(got.iter().filter(|m| props_of(m).payload_format_indicator == Some(1)).count(), SHARDS);
    assert!(
        got.iter()
            .all(|m| props_of(m).payload_format_indicator != Some(1)
                || std::str::from_utf8(&m.payload).is_ok()),
        "an invalid payload claiming UTF-8 was forwarded: {got:?}"
    );
    fence.expect_quiet(&mut s);
    // At QoS 0 there is no acknowledgement to refuse with: DISCONNECT 0x99.
    let mut c = Raw::client(b.addr, "pf-qos0", V5);
    c.send_publish("pf/t", bad, Q0, false, pfi(1));
    expect_disconnect(&mut c, ReasonCode::PAYLOAD_FORMAT_INVALID);
    fence.expect_quiet(&mut s);
}

#[test]
fn invalid_utf8_payload_claiming_utf8_is_forwarded_unchanged_when_checking_is_off() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut s = Raw::client(b.addr, "pf-off-sub", V5);
    s.subscribe_ok(&[("pfoff/t", Q1)]);
    let pfi = Some(props(|p| p.payload_format_indicator = Some(1)));
    for p in fence.conns.iter_mut() {
        assert_eq!(publish_reason(p, "pfoff/t", b"\xff\xfe", Q1, pfi.clone()), ReasonCode::SUCCESS);
    }
    for m in s.expect_publishes(SHARDS, IO_TIMEOUT) {
        assert_eq!((&m.payload[..], props_of(&m).payload_format_indicator), (&b"\xff\xfe"[..], Some(1)));
    }
}

// ---------------------------------------------------------------------------------------
// CONNACK properties
// ---------------------------------------------------------------------------------------

fn connack_props(ack: &ConnAck) -> Properties {
    ack.properties.as_deref().cloned().unwrap_or_default()
}

#[test]
fn connack_of_a_default_broker_has_topic_alias_maximum_10_and_nothing_unconfigured() {
    let b = TestBroker::start();
    let conn = with_props(v5("ca-default").keepalive(60), |p| {
        p.request_response_information = Some(1);
        p.request_problem_information = Some(1);
    });
    let (_c, ack) = Raw::connect_ok(b.addr, conn);
    let p = connack_props(&ack);
    assert_eq!(p.topic_alias_maximum, Some(10), "{ack:?}");
    assert_eq!(p.maximum_packet_size, None, "no maximum configured: {ack:?}");
    assert_eq!(p.retain_available, None, "retain is available: {ack:?}");
    assert_eq!(p.server_keep_alive_secs, None, "the client's keepalive stands: {ack:?}");
    assert_eq!(p.receive_maximum, None, "65,535 is the default: {ack:?}");
    assert_eq!(p.response_information, None, "none configured: {ack:?}");
    assert_eq!(p.assigned_client_identifier, None, "the client chose its id: {ack:?}");
    assert_eq!(p.maximum_qos, None, "QoS 2 is supported: {ack:?}");
    assert_eq!(
        (
            p.wildcard_subscription_available,
            p.subscription_identifier_available,
            p.shared_subscription_available
        ),
        (None, None, None),
        "all supported: {ack:?}"
    );
    let (_c, ack) = Raw::connect_ok(b.addr, v5(""));
    assert!(connack_props(&ack).assigned_client_identifier.is_some_and(|id| !id.is_empty()), "{ack:?}");
}

#[test]
fn connack_server_keep_alive_replaces_a_longer_or_absent_keepalive() {
    let b = TestBroker::start_with(|c| c.max_keepalive_secs = 30);
    for (asked, want) in [(100, Some(30)), (31, Some(30)), (30, None), (10, None), (0, Some(30))] {
        let (c, ack) = Raw::connect_ok(b.addr, v5(&format!("ka-{asked}")).keepalive(asked));
        assert_eq!(connack_props(&ack).server_keep_alive_secs, want, "keepalive {asked}: {ack:?}");
        c.disconnect();
    }
}

#[test]
fn server_keep_alive_is_enforced_with_disconnect_0x8d() {
    let b = TestBroker::start_with(|c| c.max_keepalive_secs = 1);
    let (mut c, ack) = Raw::connect_ok(b.addr, v5("ka-enforced").keepalive(60));
    assert_eq!(connack_props(&ack).server_keep_alive_secs, Some(1));
    let t0 = Instant::now();
    let before = c.expect_closed(Duration::from_secs(5));
    let at = t0.elapsed();
    assert!(
        matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::KEEP_ALIVE_TIMEOUT),
        "{before:?}"
    );
    assert!(at >= Duration::from_millis(1200), "closed after {at:?}: 1.5 x the server keep alive is 1.5 s");
}

#[test]
fn retain_unavailable_is_announced_and_retained_publish_gets_disconnect_0x9a() {
    let b = TestBroker::start_with(|c| c.retain_available = false);
    let (mut c, ack) = Raw::connect_ok(b.addr, v5("ra-0"));
    assert_eq!(connack_props(&ack).retain_available, Some(0), "{ack:?}");
    c.publish("ra/t", b"not retained is fine", Q1, false);
    c.send_publish("ra/t", b"retained", Q1, true, None);
    expect_disconnect(&mut c, ReasonCode::RETAIN_NOT_SUPPORTED);
    // A will with RETAIN 1 is refused at CONNECT.
    let (_c, ack) = Raw::connect(b.addr, v5("ra-will").will("ra/will", "x", Q1, true));
    assert_eq!(ack.code, ReasonCode::RETAIN_NOT_SUPPORTED, "{ack:?}");
}

#[test]
fn connack_response_information_only_when_requested_and_configured() {
    let configured = TestBroker::start_with(|c| c.response_information = Some("responses/".into()));
    let default = TestBroker::start();
    let ask = |n: Option<u8>| with_props(v5(""), |p| p.request_response_information = n);
    let info = |b: &TestBroker, n| connack_props(&Raw::connect_ok(b.addr, ask(n)).1).response_information;
    assert_eq!(info(&configured, Some(1)).as_deref(), Some("responses/"));
    assert_eq!(info(&configured, Some(0)), None, "not requested");
    assert_eq!(info(&configured, None), None, "not requested (absent)");
    assert_eq!(info(&default, Some(1)), None, "not configured");
}
