//! Subscription identifiers and options (no local, retain as published, retain
//! handling), across shards.

use super::*;
use crate::common::*;
use ringmq::protocol::{ReasonCode, RetainHandling};
use std::collections::BTreeSet;

#[test]
fn overlapping_subscriptions_get_one_publish_carrying_every_identifier_from_publishers_on_every_shard() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut subs = one_per_shard(b.addr);
    let id = |n| Some(props(|p| p.subscription_identifiers = vec![n]));
    for s in subs.iter_mut() {
        let a = s.subscribe_with(vec![filter("sidx/#", sub_opts(Q0, |_| {}))], id(11));
        let b2 = s.subscribe_with(vec![filter("sidx/+/t", sub_opts(Q1, |_| {}))], id(22));
        let c = s.subscribe_with(vec![filter("sidx/a/t", sub_opts(Q2, |_| {}))], None);
        assert_eq!(
            [a.reasons, b2.reasons, c.reasons].concat(),
            vec![ReasonCode(0), ReasonCode(1), ReasonCode(2)]
        );
    }
    for (i, p) in fence.conns.iter_mut().enumerate() {
        p.publish("sidx/a/t", format!("three {i}").as_bytes(), Q2, false);
        p.publish("sidx/b/x", format!("one {i}").as_bytes(), Q1, false);
    }
    for s in subs.iter_mut() {
        let got = s.expect_publishes(2 * SHARDS, IO_TIMEOUT);
        let payloads: BTreeSet<String> = got.iter().map(payload_str).collect();
        assert_eq!(payloads.len(), 2 * SHARDS, "{}: a message came twice: {got:?}", s.client_id);
        for m in &got {
            let mut ids = props_of(m).subscription_identifiers;
            ids.sort();
            let (want_ids, want_qos) =
                if payload_str(m).starts_with("three") { (vec![11, 22], Q2) } else { (vec![11], Q0) };
            assert_eq!((ids, m.qos), (want_ids, want_qos), "{}: {}", s.client_id, payload_str(m));
        }
        fence.expect_quiet(s);
    }
}

#[test]
fn resubscribing_replaces_the_subscription_identifier() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut s = Raw::client(b.addr, "sid-replace", V5);
    for (round, sid) in [Some(1), Some(2), None].into_iter().enumerate() {
        let p = sid.map(|n| props(|p| p.subscription_identifiers = vec![n]));
        s.subscribe_with(vec![filter("sidr/t", sub_opts(Q1, |_| {}))], p);
        for p in fence.conns.iter_mut() {
            p.publish("sidr/t", format!("{round}").as_bytes(), Q1, false);
        }
        for m in s.expect_publishes(SHARDS, IO_TIMEOUT) {
            let want: Vec<u32> = sid.into_iter().collect();
            assert_eq!(props_of(&m).subscription_identifiers, want, "round {round}: {m:?}");
        }
    }
    fence.expect_quiet(&mut s);
}

#[test]
fn no_local_holds_for_clients_on_every_shard() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut cs = one_per_shard(b.addr);
    for c in cs.iter_mut() {
        c.subscribe_with(vec![filter("nlx/t", sub_opts(Q1, |o| o.no_local = true))], None);
    }
    for (i, c) in cs.iter_mut().enumerate() {
        c.publish("nlx/t", format!("{i}").as_bytes(), Q1, false);
    }
    for (i, c) in cs.iter_mut().enumerate() {
        let got: BTreeSet<String> =
            c.expect_publishes(SHARDS - 1, IO_TIMEOUT).iter().map(payload_str).collect();
        let want: BTreeSet<String> = (0..SHARDS).filter(|j| *j != i).map(|j| j.to_string()).collect();
        assert_eq!(got, want, "{}: no local", c.client_id);
        fence.expect_quiet(c);
    }
}

#[test]
fn retain_as_published_holds_on_every_shard_and_retained_replays_always_have_retain_1() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut rap = one_per_shard(b.addr);
    let mut plain = one_per_shard(b.addr);
    for c in rap.iter_mut() {
        c.subscribe_with(vec![filter("rapx/#", sub_opts(Q1, |o| o.retain_as_published = true))], None);
    }
    for c in plain.iter_mut() {
        c.subscribe_ok(&[("rapx/#", Q1)]);
    }
    for (i, p) in fence.conns.iter_mut().enumerate() {
        p.publish(&format!("rapx/{i}"), b"retained", Q1, true);
        p.publish(&format!("rapx/{i}"), b"live", Q1, false);
    }
    for c in rap.iter_mut() {
        for m in c.expect_publishes(2 * SHARDS, IO_TIMEOUT) {
            assert_eq!(
                m.retain,
                &m.payload[..] == b"retained",
                "{}: retain as published: {m:?}",
                c.client_id
            );
        }
    }
    for c in plain.iter_mut() {
        for m in c.expect_publishes(2 * SHARDS, IO_TIMEOUT) {
            assert!(!m.retain, "{}: live delivery with RETAIN 1: {m:?}", c.client_id);
        }
    }
    for (k, mut c) in one_per_shard(b.addr).into_iter().enumerate() {
        let rap_flag = k % 2 == 0;
        c.subscribe_with(vec![filter("rapx/#", sub_opts(Q1, |o| o.retain_as_published = rap_flag))], None);
        for m in c.expect_publishes(SHARDS, IO_TIMEOUT) {
            assert!(
                m.retain && &m.payload[..] == b"retained",
                "replay (retain as published {rap_flag}): {m:?}"
            );
        }
    }
}

#[test]
fn retain_handling_0_1_2_with_retained_messages_from_every_shard() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut pubs = one_per_shard(b.addr);
    for (i, p) in pubs.iter_mut().enumerate() {
        p.publish(&format!("rhx/{i}"), format!("kept {i}").as_bytes(), Q1, true);
    }
    let rh = |f: &str, h| vec![filter(f, sub_opts(Q1, |o| o.retain_handling = h))];
    let all: BTreeSet<String> = (0..SHARDS).map(|i| format!("kept {i}")).collect();
    // New subscribers on every shard.
    for mut s in one_per_shard(b.addr) {
        let expect_all = |s: &mut Raw, what: &str| {
            let got = s.expect_publishes(SHARDS, IO_TIMEOUT);
            assert!(got.iter().all(|m| m.retain), "{}: {what}: {got:?}", s.client_id);
            assert_eq!(got.iter().map(payload_str).collect::<BTreeSet<_>>(), all, "{}: {what}", s.client_id);
        };
        assert_eq!(
            s.subscribe_with(rh("rhx/#", RetainHandling::SendIfNewSubscription), None).reasons,
            vec![ReasonCode(1)]
        );
        expect_all(&mut s, "retain handling 1, new subscription");
        s.subscribe_with(rh("rhx/#", RetainHandling::SendIfNewSubscription), None);
        fence.expect_quiet(&mut s);
        s.subscribe_with(rh("rhx/#", RetainHandling::SendOnSubscribe), None);
        expect_all(&mut s, "retain handling 0, existing subscription");
        s.subscribe_with(rh("rhx/+", RetainHandling::DoNotSend), None);
        fence.expect_quiet(&mut s);
        s.unsubscribe(&["rhx/#"]);
        s.subscribe_with(rh("rhx/#", RetainHandling::SendIfNewSubscription), None);
        expect_all(&mut s, "retain handling 1 after UNSUBSCRIBE");
    }
}
