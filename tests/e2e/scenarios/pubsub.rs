//! Publish and subscribe: delivery at each QoS, QoS downgrade, wildcards, overlapping
//! subscriptions, unsubscribe and shared subscriptions.

use super::vtag;
use crate::common::*;
use ringmq::protocol::{Packet, QoS, ReasonCode};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// 8 subscribers and 8 publishers of version `v`, plus 4 MQTT 5 publishers one per shard,
/// each publishing 3 messages at `q` with the full handshake both ways. Every subscriber
/// gets every message once, at `q`, in each publisher's order, with RETAIN and DUP clear.
fn roundtrip(v: ProtocolVersion, q: QoS) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let topic = format!("pubsub/{}/q{}", vtag(v), q as u8);
    let mut subs: Vec<Raw> = (0..8).map(|i| Raw::client(b.addr, format!("sub-{i}"), v)).collect();
    for s in &mut subs {
        s.subscribe_ok(&[(&topic, q)]);
    }
    let mut pubs: Vec<Raw> = (0..8).map(|i| Raw::client(b.addr, format!("pub-{i}"), v)).collect();
    pubs.extend(one_per_shard(b.addr));
    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        for (i, p) in pubs.iter_mut().enumerate() {
            p.publish(&topic, format!("{i}:{round}").as_bytes(), q, false);
        }
    }
    for s in &mut subs {
        let got = s.expect_publishes(pubs.len() * ROUNDS, IO_TIMEOUT);
        let mut per_pub: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for p in &got {
            assert_eq!(&*p.topic, topic);
            assert_eq!(p.qos, q, "{}: delivered QoS of {}", s.client_id, payload_str(p));
            assert!(!p.retain, "live delivery with RETAIN set");
            assert!(!p.dup, "first delivery with DUP set");
            if q != Q0 {
                assert_ne!(p.packet_id, 0);
            }
            let text = payload_str(p);
            let (i, r) = text.split_once(':').unwrap();
            per_pub.entry(i.parse().unwrap()).or_default().push(r.parse().unwrap());
        }
        for i in 0..pubs.len() {
            assert_eq!(
                per_pub.get(&i),
                Some(&(0..ROUNDS).collect::<Vec<_>>()),
                "{}: messages of publisher {i}",
                s.client_id
            );
        }
    }
    fence.expect_quiet_all(subs.iter_mut());
}

/// [`roundtrip`] at QoS 0.
pub fn qos0_publish_reaches_every_subscriber_across_shards(v: ProtocolVersion) {
    roundtrip(v, Q0);
}

/// [`roundtrip`] at QoS 1.
pub fn qos1_publish_reaches_every_subscriber_with_puback_both_ways(v: ProtocolVersion) {
    roundtrip(v, Q1);
}

/// [`roundtrip`] at QoS 2.
pub fn qos2_publish_reaches_every_subscriber_with_full_handshake_both_ways(v: ProtocolVersion) {
    roundtrip(v, Q2);
}

/// Subscriptions granted QoS 0, 1 and 2 get a QoS 2 publish at their granted QoS, and
/// a QoS 1 publish at min(1, granted) (the granted-2 case of that is
/// [`publish_qos_is_never_upgraded_to_granted_qos`]).
pub fn publish_qos_is_downgraded_to_granted_qos(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let topic = format!("downgrade/{}", vtag(v));
    let mut subs: Vec<(QoS, Raw)> = Vec::new();
    for g in [Q0, Q1, Q2] {
        for k in 0..2 {
            let mut s = Raw::client(b.addr, format!("sub-g{}-{k}", g as u8), v);
            s.subscribe_ok(&[(&topic, g)]);
            subs.push((g, s));
        }
    }
    let mut pubs = one_per_shard(b.addr);
    pubs.push(Raw::client(b.addr, "publisher", v));
    for published in [Q2, Q1] {
        for p in pubs.iter_mut() {
            p.publish(&topic, format!("q{}", published as u8).as_bytes(), published, false);
        }
        for (g, s) in subs.iter_mut() {
            for m in s.expect_publishes(pubs.len(), IO_TIMEOUT) {
                if published >= *g {
                    assert_eq!(m.qos, *g, "{}: published at {published:?}, granted {g:?}", s.client_id);
                }
            }
        }
    }
    fence.expect_quiet_all(subs.iter_mut().map(|(_, s)| s));
}

/// A QoS 0 (or 1) publish to a subscription granted a higher QoS is delivered at the
/// published QoS: the delivered QoS is min(published, granted) (3.1.1 [MQTT-3.8.4-6],
/// 5.0 [MQTT-3.8.4-8]).
pub fn publish_qos_is_never_upgraded_to_granted_qos(v: ProtocolVersion) {
    let b = TestBroker::start();
    let topic = format!("upgrade/{}", vtag(v));
    let mut subs: Vec<(QoS, Raw)> = Vec::new();
    for g in [Q1, Q2] {
        let mut s = Raw::client(b.addr, format!("sub-g{}", g as u8), v);
        s.subscribe_ok(&[(&topic, g)]);
        subs.push((g, s));
    }
    // Overlapping subscriptions granted 0 and 2: a QoS 1 publish arrives at QoS 1.
    let mut overlap = Raw::client(b.addr, "sub-overlap", v);
    // On a topic of its own: `{topic}/#` would also match `{topic}` itself.
    overlap.subscribe_ok(&[(&format!("{topic}-o/#"), Q0), (&format!("{topic}-o/+"), Q2)]);
    let mut p = Raw::client(b.addr, "publisher", v);
    for published in [Q0, Q1] {
        p.publish(&topic, b"m", published, false);
        for (g, s) in subs.iter_mut() {
            let m = s.expect_publish(IO_TIMEOUT);
            assert_eq!(
                m.qos,
                published.min(*g),
                "{}: published at {published:?}, granted {g:?}",
                s.client_id
            );
        }
    }
    p.publish(&format!("{topic}-o/x"), b"m", Q1, false);
    let m = overlap.expect_publish(IO_TIMEOUT);
    assert_eq!(m.qos, Q1, "overlapping subscriptions granted 0 and 2, published at 1: got {m:?}");
}

/// `+` and `#` match as section 4.7 says, and topics starting with `$` are not matched
/// by a filter starting with a wildcard [MQTT-4.7.2-1].
pub fn wildcards_match_and_dollar_topics_are_not_matched_by_leading_wildcards(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let cases: &[(&str, &[&str])] = &[
        ("wc/+/x", &["wc/a/x"]),
        ("wc/#", &["wc/a/x", "wc/b/y", "wc", "wc/a"]),
        ("#", &["wc/a/x", "wc/b/y", "wc", "wc/a", "other/a/x"]),
        ("+/+/x", &["wc/a/x", "other/a/x"]),
        ("wc/+", &["wc/a"]),
        ("+/x", &[]),
        ("$ops/#", &["$ops/x", "$ops/a/x"]),
        ("$ops/+/x", &["$ops/a/x"]),
    ];
    let topics = ["wc/a/x", "wc/b/y", "wc", "wc/a", "$ops/x", "$ops/a/x", "other/a/x"];
    let mut subs: Vec<Raw> = Vec::new();
    for (i, (f, _)) in cases.iter().enumerate() {
        let mut s = Raw::client(b.addr, format!("wc-sub-{i}"), v);
        s.subscribe_ok(&[(f, Q1)]);
        subs.push(s);
    }
    let mut pubs = one_per_shard(b.addr);
    pubs.push(Raw::client(b.addr, "wc-pub", v));
    for (i, p) in pubs.iter_mut().enumerate() {
        for t in topics {
            p.publish(t, format!("{i}").as_bytes(), Q1, false);
        }
    }
    for ((f, want), s) in cases.iter().zip(subs.iter_mut()) {
        let got = s.expect_publishes(want.len() * pubs.len(), IO_TIMEOUT);
        let mut got: Vec<(String, String)> =
            got.iter().map(|p| (p.topic.to_string(), payload_str(p))).collect();
        got.sort();
        let mut expected: Vec<(String, String)> =
            want.iter().flat_map(|t| (0..pubs.len()).map(move |i| (t.to_string(), i.to_string()))).collect();
        expected.sort();
        assert_eq!(got, expected, "filter {f}");
    }
    fence.expect_quiet_all(subs.iter_mut());
}

/// Subscriptions `ov/#` (QoS 0), `ov/+` (QoS 2) and `ov/x` (QoS 1) all match `ov/x`:
/// a QoS 2 message is delivered once, at QoS 2 (3.1.1 [MQTT-3.3.5-1], 5.0 [MQTT-3.3.4-2]);
/// `ov/y` (matched by the QoS 0 and QoS 2 filters) likewise. (A QoS 1 publish here is in
/// [`publish_qos_is_never_upgraded_to_granted_qos`].)
pub fn overlapping_subscriptions_deliver_once_at_highest_qos(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut subs: Vec<Raw> = (0..3).map(|i| Raw::client(b.addr, format!("ov-sub-{i}"), v)).collect();
    for s in subs.iter_mut() {
        s.subscribe_ok(&[("ov/#", Q0), ("ov/+", Q2)]);
        s.subscribe_ok(&[("ov/x", Q1)]);
    }
    let mut pubs = one_per_shard(b.addr);
    pubs.push(Raw::client(b.addr, "ov-pub", v));
    for (q, t) in [(Q2, "ov/x"), (Q2, "ov/y")] {
        for (i, p) in pubs.iter_mut().enumerate() {
            p.publish(t, format!("{i}").as_bytes(), q, false);
        }
        for s in subs.iter_mut() {
            let got = s.expect_publishes(pubs.len(), IO_TIMEOUT);
            let payloads: BTreeSet<String> = got.iter().map(payload_str).collect();
            assert_eq!(payloads.len(), pubs.len(), "{}: a message came twice: {got:?}", s.client_id);
            assert!(got.iter().all(|m| m.qos == q), "{}: QoS at publish {q:?}: {got:?}", s.client_id);
        }
        fence.expect_quiet_all(subs.iter_mut());
    }
}

/// A client subscribed to a topic receives its own publishes to it, once.
pub fn client_receives_its_own_publishes_when_subscribed(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    for q in [Q0, Q1, Q2] {
        let mut c = Raw::client(b.addr, format!("own-{}", q as u8), v);
        let topic = format!("own/{}", q as u8);
        c.subscribe_ok(&[(&topic, q)]);
        c.publish(&topic, b"me", q, false);
        let m = c.expect_publish(IO_TIMEOUT);
        assert_eq!((&*m.topic, &m.payload[..], m.qos), (topic.as_str(), &b"me"[..], q));
        fence.expect_quiet(&mut c);
    }
}

/// UNSUBSCRIBE stops delivery: afterwards only the other subscription's messages come.
pub fn unsubscribe_stops_delivery(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut subs: Vec<Raw> = (0..3).map(|i| Raw::client(b.addr, format!("unsub-{i}"), v)).collect();
    for s in subs.iter_mut() {
        s.subscribe_ok(&[("unsub/a", Q1), ("unsub/b", Q1)]);
    }
    let mut pubs = one_per_shard(b.addr);
    for p in pubs.iter_mut() {
        p.publish("unsub/a", b"before", Q1, false);
    }
    for s in subs.iter_mut() {
        assert!(s.expect_publishes(SHARDS, IO_TIMEOUT).iter().all(|m| &m.payload[..] == b"before"));
        let ack = s.unsubscribe(&["unsub/a"]);
        if v.is_v5() {
            assert_eq!(ack.reasons, vec![ReasonCode::SUCCESS]);
        } else {
            assert!(ack.reasons.is_empty());
        }
    }
    for p in pubs.iter_mut() {
        p.publish("unsub/a", b"after", Q1, false);
        p.publish("unsub/b", b"marker", Q1, false);
    }
    for s in subs.iter_mut() {
        let got = s.expect_publishes(SHARDS, IO_TIMEOUT);
        assert!(
            got.iter().all(|m| &*m.topic == "unsub/b"),
            "{}: delivered after UNSUBSCRIBE: {got:?}",
            s.client_id
        );
    }
    fence.expect_quiet_all(subs.iter_mut());
}

/// `$share/g/<topic>`: 6 members across connections and shards, 600 QoS 1 messages from
/// publishers on every shard: each message reaches exactly one member.
pub fn shared_subscription_delivers_each_message_to_exactly_one_member(v: ProtocolVersion) {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let topic = format!("shared/{}", vtag(v));
    let filter = format!("$share/g/{topic}");
    // At 5.0, 4 of the 6 members are one per shard; at 3.1.1 all 6 are 3.1.1 clients.
    let mut members: Vec<Raw> = Vec::new();
    if v.is_v5() {
        members.extend(one_per_shard(b.addr));
    }
    while members.len() < 6 {
        members.push(Raw::client(b.addr, format!("member-{}", members.len()), v));
    }
    for m in members.iter_mut() {
        m.subscribe_ok(&[(&filter, Q1)]);
    }
    const TOTAL: usize = 600;
    let mut pubs = one_per_shard(b.addr);
    let n = pubs.len();
    for k in 0..TOTAL {
        pubs[k % n].publish(&topic, format!("{k}").as_bytes(), Q1, false);
    }
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut per_member = vec![0usize; members.len()];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.values().sum::<usize>() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {} of {TOTAL} shared messages arrived",
            seen.values().sum::<usize>()
        );
        for (i, m) in members.iter_mut().enumerate() {
            while let Recv::Packet(p) = m.recv(Duration::from_millis(10)) {
                let Packet::Publish(p) = p else { panic!("{}: unexpected {p:?}", m.client_id) };
                m.ack(&p);
                *seen.entry(payload_str(&p).parse().unwrap()).or_default() += 1;
                per_member[i] += 1;
            }
        }
    }
    fence.expect_quiet_all(members.iter_mut());
    let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "messages delivered to more than one member: {dups:?}");
    assert_eq!(seen.len(), TOTAL);
    assert!(per_member.iter().filter(|c| **c > 0).count() >= 2, "one member got everything: {per_member:?}");
}
