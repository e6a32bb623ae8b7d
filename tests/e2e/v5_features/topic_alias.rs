//! Topic aliases both ways: outbound up to the client's maximum and per connection,
//! inbound up to ours.

use super::*;
use crate::common::*;
use ringmq::protocol::{Packet, ReasonCode};
use std::collections::HashMap;

#[test]
fn outbound_topic_aliases_are_assigned_up_to_the_client_topic_alias_maximum() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let (mut s, _) = on_shard(b.addr, with_props(v5(""), |p| p.topic_alias_maximum = Some(2)), 0);
    s.subscribe_ok(&[("oa/#", Q1)]);
    // From another shard, then from the subscriber's own.
    let seq = ["oa/1", "oa/1", "oa/2", "oa/3", "oa/2", "oa/1", "oa/3"];
    for (k, t) in seq.iter().enumerate() {
        pubs[SHARDS - 1].publish(t, k.to_string().as_bytes(), Q1, false);
    }
    let mut got = s.expect_publishes(seq.len(), IO_TIMEOUT);
    pubs[0].publish("oa/2", b"same shard", Q1, false);
    got.push(s.expect_publish(IO_TIMEOUT));
    let wire: Vec<(String, Option<u16>)> =
        got.iter().map(|m| (m.topic.to_string(), props_of(m).topic_alias)).collect();
    let want: Vec<(String, Option<u16>)> = [
        ("oa/1", Some(1)),
        ("", Some(1)),
        ("oa/2", Some(2)),
        ("oa/3", None),
        ("", Some(2)),
        ("", Some(1)),
        ("oa/3", None),
        ("", Some(2)),
    ]
    .iter()
    .map(|(t, a)| (t.to_string(), *a))
    .collect();
    assert_eq!(wire, want, "(topic, alias) as sent to a client with Topic Alias Maximum 2");
    let payloads: Vec<String> = got.iter().map(payload_str).collect();
    assert_eq!(payloads[..seq.len()], (0..seq.len()).map(|k| k.to_string()).collect::<Vec<_>>()[..]);
    s.expect_no_packet(QUIET);
}

#[test]
fn outbound_topic_aliases_start_over_on_a_new_connection() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let conn = || with_props(v5("oa-again").persistent(), |p| p.topic_alias_maximum = Some(3));
    let mut s = Raw::connect_ok(b.addr, conn()).0;
    s.subscribe_ok(&[("oar/#", Q1)]);
    for p in pubs.iter_mut() {
        p.publish("oar/a", b"live", Q1, false);
    }
    let got = s.expect_publishes(SHARDS, IO_TIMEOUT);
    assert_eq!((got[0].topic.as_str(), props_of(&got[0]).topic_alias), ("oar/a", Some(1)));
    assert!(got[1..].iter().all(|m| m.topic.is_empty() && props_of(m).topic_alias == Some(1)), "{got:?}");
    s.disconnect();
    pubs[1].publish("oar/a", b"queued", Q1, false);
    let (mut s, ack) = Raw::connect_ok(b.addr, conn());
    assert!(ack.session_present);
    let m = s.expect_publish(IO_TIMEOUT);
    assert_eq!(payload_str(&m), "queued");
    assert_eq!(
        &*m.topic, "oar/a",
        "the first PUBLISH of a new connection used an alias of the old one: {m:?}"
    );
    pubs[2].publish("oar/a", b"live again", Q1, false);
    let m = s.expect_publish(IO_TIMEOUT);
    assert!(m.topic.is_empty() && props_of(&m).topic_alias.is_some(), "{m:?}");
}

#[test]
fn no_outbound_topic_alias_when_the_client_topic_alias_maximum_is_absent_or_0() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for (k, max) in [None, Some(0)].into_iter().enumerate() {
        let mut s =
            Raw::connect_ok(b.addr, with_props(v5(&format!("oa0-{k}")), |p| p.topic_alias_maximum = max)).0;
        s.subscribe_ok(&[("oa0/#", Q1)]);
        for p in fence.conns.iter_mut() {
            for _ in 0..3 {
                p.publish("oa0/t", b"x", Q1, false);
            }
        }
        for m in s.expect_publishes(3 * SHARDS, IO_TIMEOUT) {
            assert_eq!((&*m.topic, props_of(&m).topic_alias), ("oa0/t", None), "Topic Alias Maximum {max:?}");
        }
    }
}

#[test]
fn a_message_dropped_as_too_large_does_not_use_up_an_outbound_topic_alias() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let conn = with_props(v5(""), |p| {
        p.topic_alias_maximum = Some(5);
        p.maximum_packet_size = Some(128);
    });
    let (mut s, _) = on_shard(b.addr, conn, 0);
    s.subscribe_ok(&[("oab/#", Q1)]);
    pubs[1].publish("oab/t", &[b'x'; 300], Q1, false);
    pubs[1].publish("oab/t", b"small 1", Q1, false);
    pubs[1].publish("oab/t", b"small 2", Q1, false);
    let mut known: HashMap<u16, String> = HashMap::new();
    for (k, m) in s.expect_publishes(2, IO_TIMEOUT).iter().enumerate() {
        let alias = props_of(m).topic_alias;
        let topic = match (m.topic.is_empty(), alias) {
            (false, Some(a)) => {
                known.insert(a, m.topic.to_string());
                m.topic.to_string()
            }
            (false, None) => m.topic.to_string(),
            (true, Some(a)) => known.get(&a).cloned().unwrap_or_else(|| {
                panic!("PUBLISH {k} has an empty topic and alias {a}, never given: {m:?}")
            }),
            (true, None) => panic!("empty topic without an alias: {m:?}"),
        };
        assert_eq!((topic.as_str(), payload_str(m)), ("oab/t", format!("small {}", k + 1)));
    }
    s.expect_no_packet(QUIET);
}

#[test]
fn topic_alias_0_from_the_client_gets_disconnect_0x94() {
    let b = TestBroker::start();
    // Without Request Problem Information, the DISCONNECT has no reason string or user
    // properties (section 3.1.2.11.7).
    let conn = with_props(v5("alias-zero"), |p| p.request_problem_information = Some(0));
    let mut c = Raw::connect_ok(b.addr, conn).0;
    c.send_publish("alias/t", b"x", Q1, false, Some(props(|p| p.topic_alias = Some(0))));
    let before = c.expect_closed(IO_TIMEOUT);
    match before.as_slice() {
        [Packet::Disconnect(d)] => {
            assert_eq!(d.reason, ReasonCode::TOPIC_ALIAS_INVALID);
            let p = d.properties.as_deref().cloned().unwrap_or_default();
            assert!(p.reason_string.is_none() && p.user_properties.is_empty(), "{d:?}");
        }
        other => panic!("expected DISCONNECT 0x94 then the close, got {other:?}"),
    }
}

#[test]
fn inbound_topic_aliases_reach_our_maximum_and_end_with_the_connection() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut s = Raw::client(b.addr, "ia-sub", V5);
    s.subscribe_ok(&[("ia/#", Q1)]);
    let (mut c, ack) = Raw::connect_ok(b.addr, v5("ia-pub").persistent());
    let max = ack.properties.as_ref().and_then(|p| p.topic_alias_maximum).expect("topic alias maximum");
    let alias = Some(props(|p| p.topic_alias = Some(max)));
    c.publish_with("ia/max", b"1", Q1, false, alias.clone());
    c.publish_with("", b"2", Q1, false, alias.clone());
    let got: Vec<(String, String)> =
        s.expect_publishes(2, IO_TIMEOUT).iter().map(|m| (m.topic.to_string(), payload_str(m))).collect();
    assert_eq!(got, [("ia/max", "1"), ("ia/max", "2")].map(|(t, p)| (t.to_string(), p.to_string())));
    // A new connection of the same session starts without aliases (5.0 [MQTT-3.3.2-7]).
    c.disconnect();
    let (mut c, ack) = Raw::connect_ok(b.addr, v5("ia-pub").persistent());
    assert!(ack.session_present);
    c.send_publish("", b"3", Q1, false, alias);
    expect_disconnect(&mut c, ReasonCode::PROTOCOL_ERROR);
    fence.expect_quiet(&mut s);
}
