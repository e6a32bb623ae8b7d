//! Retained messages: set, replaced and cleared, sent through wildcards, read on every
//! shard. The SUBACK and the retained messages of a SUBSCRIBE wait for a barrier round
//! trip to every shard, so a retained message whose PUBACK came before the SUBSCRIBE is
//! sent whatever shards the two connections are on; a test in `v5` checks every pair
//! (`retained_message_is_sent_to_an_existing_connection_on_another_shard_...`).

use super::vtag;
use crate::common::*;

/// Retained messages: set, replaced, cleared with an empty payload; each new subscriber
/// gets the current one with RETAIN set, existing subscribers get the live ones with
/// RETAIN clear (including the empty clearing message, 3.1.1 [MQTT-3.3.1-10],
/// 5.0 [MQTT-3.3.1-6]).
pub fn retained_message_is_set_replaced_and_cleared_and_live_copies_have_retain_0(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let topic = format!("ret/{}", vtag(v));
    let mut live = Raw::client(b.addr, "ret-live", v);
    live.subscribe_ok(&[(&topic, Q1)]);
    let mut p = Raw::client(b.addr, "ret-pub", v);
    for (want, tag) in [(Some("one"), "one"), (Some("two"), "two"), (None, "none")] {
        p.publish(&topic, want.unwrap_or("").as_bytes(), Q1, true);
        // New subscribers, each on a connection of its own.
        for i in 0..4 {
            let mut s = Raw::client(b.addr, format!("ret-new-{tag}-{i}"), v);
            s.subscribe_ok(&[(&topic, Q1)]);
            if let Some(w) = want {
                let m = s.expect_publish(IO_TIMEOUT);
                assert_eq!(payload_str(&m), w);
                assert!(m.retain, "retained message sent on subscribe without RETAIN");
            }
            fence.expect_quiet(&mut s);
        }
    }
    let got: Vec<(String, bool)> =
        live.expect_publishes(3, IO_TIMEOUT).iter().map(|m| (payload_str(m), m.retain)).collect();
    let want: Vec<(String, bool)> = ["one", "two", ""].iter().map(|s| (s.to_string(), false)).collect();
    assert_eq!(got, want, "live deliveries of retained publishes");
}

/// Retained messages are sent on SUBSCRIBE through wildcard filters, with RETAIN set,
/// and `$` topics are not matched by a leading wildcard.
pub fn retained_messages_are_sent_on_subscribe_through_wildcards_with_retain_1(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut p = Raw::client(b.addr, "rw-pub", v);
    for t in ["rw/a/x", "rw/b/x", "rw/c/y", "$ops/rw"] {
        p.publish(t, t.as_bytes(), Q1, true);
    }
    let cases: &[(&str, &[&str])] = &[
        ("rw/+/x", &["rw/a/x", "rw/b/x"]),
        ("rw/#", &["rw/a/x", "rw/b/x", "rw/c/y"]),
        ("#", &["rw/a/x", "rw/b/x", "rw/c/y"]),
        ("+/+/y", &["rw/c/y"]),
        ("$ops/#", &["$ops/rw"]),
        ("rw/+", &[]),
    ];
    for (i, (f, want)) in cases.iter().enumerate() {
        for k in 0..3 {
            let mut s = Raw::client(b.addr, format!("rw-sub-{i}-{k}"), v);
            s.subscribe_ok(&[(f, Q1)]);
            let got = s.expect_publishes(want.len(), IO_TIMEOUT);
            let mut topics: Vec<String> = got.iter().map(|m| m.topic.to_string()).collect();
            topics.sort();
            assert_eq!(topics, want.to_vec(), "retained through {f}");
            for m in &got {
                assert!(m.retain, "{f}: retained message without RETAIN");
                assert_eq!(payload_str(m), *m.topic);
                assert_eq!(m.qos, Q1);
            }
            fence.expect_quiet(&mut s);
        }
    }
}

/// A retained message set on one connection is sent to many fresh subscribers, whatever
/// shard they are on (8 of version `v`, and one MQTT 5 connection on every shard).
pub fn retained_message_set_on_one_connection_is_read_by_many_others(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut p = Raw::client(b.addr, "rm-pub", v);
    p.publish("rm/t", b"kept", Q2, true);
    let mut subs: Vec<Raw> = (0..8).map(|i| Raw::client(b.addr, format!("rm-sub-{i}"), v)).collect();
    subs.extend(one_per_shard(b.addr));
    for s in subs.iter_mut() {
        s.subscribe_ok(&[("rm/t", Q2)]);
        let m = s.expect_publish(IO_TIMEOUT);
        assert_eq!((&m.payload[..], m.retain, m.qos), (&b"kept"[..], true, Q2), "{}", s.client_id);
    }
    fence.expect_quiet_all(subs.iter_mut());
}
