//! MQTT 5.0: the scenarios of `scenarios` at 5.0 (`v311` runs them at 3.1.1), the basic
//! 5.0-only features (reason codes, assigned client ids, topic aliases, subscription
//! identifiers, no local, retain as published, session expiry, properties), the cross-shard
//! ordering cases, and rumqttc's 5.0 client. `v5_features` goes further, feature by feature.

use crate::common::*;
use crate::scenarios::will::{expect_wills, will_watchers};
use bytes::Bytes;
use ringmq::protocol::{ByteStr, Disconnect, Packet, ReasonCode, RetainHandling};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const V: ProtocolVersion = V5;

crate::scenarios::twins!(V);

// --- publish / subscribe -----------------------------------------------------------------

#[test]
fn publish_properties_are_forwarded_and_topic_alias_is_not() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let mut s = Raw::client(b.addr, "props-sub", V);
    s.subscribe_ok(&[("props/t", Q1)]);
    let sent = props(|p| {
        p.payload_format_indicator = Some(1);
        p.content_type = Some(ByteStr::from("text/plain"));
        p.response_topic = Some(ByteStr::from("props/reply"));
        p.correlation_data = Some(Bytes::from_static(b"\x01\x02"));
        p.user_properties =
            vec![(ByteStr::from("k"), ByteStr::from("v1")), (ByteStr::from("k"), ByteStr::from("v2"))];
        p.message_expiry_interval_secs = Some(3600);
    });
    for p in pubs.iter_mut() {
        let mut with_alias = sent.clone();
        with_alias.topic_alias = Some(1);
        p.publish_with("props/t", b"with properties", Q1, false, Some(with_alias));
    }
    for m in s.expect_publishes(SHARDS, IO_TIMEOUT) {
        let got = m.properties.as_deref().cloned().unwrap_or_default();
        assert_eq!(got.topic_alias, None, "a topic alias is per connection, never forwarded");
        assert_eq!(&*m.topic, "props/t");
        assert_eq!(got.payload_format_indicator, sent.payload_format_indicator);
        assert_eq!(got.content_type, sent.content_type);
        assert_eq!(got.response_topic, sent.response_topic);
        assert_eq!(got.correlation_data, sent.correlation_data);
        assert_eq!(
            got.user_properties, sent.user_properties,
            "user properties in order (5.0 [MQTT-3.3.2-18])"
        );
        let expiry = got.message_expiry_interval_secs.expect("message expiry forwarded");
        assert!((3590..=3600).contains(&expiry), "remaining expiry {expiry}");
    }
}

// --- retained ------------------------------------------------------------------------------

#[test]
fn retain_as_published_keeps_retain_flag_on_live_delivery() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let mut rap = Raw::client(b.addr, "rap", V);
    let ack = rap.subscribe_with(vec![filter("rap/t", sub_opts(Q1, |o| o.retain_as_published = true))], None);
    assert_eq!(ack.reasons, vec![ReasonCode::GRANTED_QOS_1]);
    let mut plain = Raw::client(b.addr, "plain", V);
    plain.subscribe_ok(&[("rap/t", Q1)]);
    for p in pubs.iter_mut() {
        p.publish("rap/t", b"retained", Q1, true);
        p.publish("rap/t", b"not retained", Q1, false);
    }
    for m in rap.expect_publishes(2 * SHARDS, IO_TIMEOUT) {
        assert_eq!(m.retain, &m.payload[..] == b"retained", "retain as published: {m:?}");
    }
    for m in plain.expect_publishes(2 * SHARDS, IO_TIMEOUT) {
        assert!(!m.retain, "without retain as published, live delivery has RETAIN 0: {m:?}");
    }
}

#[test]
fn retain_handling_controls_retained_messages_on_subscribe() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut p = Raw::client(b.addr, "rh-pub", V);
    p.publish("rh/t", b"kept", Q1, true);
    // 0: sent on every SUBSCRIBE; 1: only when the subscription is new; 2: never.
    let mut c = Raw::client(b.addr, "rh-sub", V);
    let send = |rh| vec![filter("rh/t", sub_opts(Q1, |o| o.retain_handling = rh))];
    c.subscribe_with(send(RetainHandling::SendOnSubscribe), None);
    assert!(c.expect_publish(IO_TIMEOUT).retain);
    c.subscribe_with(send(RetainHandling::SendOnSubscribe), None);
    assert!(c.expect_publish(IO_TIMEOUT).retain);
    c.subscribe_with(send(RetainHandling::SendIfNewSubscription), None);
    fence.expect_quiet(&mut c);
    let mut d = Raw::client(b.addr, "rh-sub-2", V);
    d.subscribe_with(send(RetainHandling::SendIfNewSubscription), None);
    assert!(d.expect_publish(IO_TIMEOUT).retain);
    let mut e = Raw::client(b.addr, "rh-sub-3", V);
    e.subscribe_with(send(RetainHandling::DoNotSend), None);
    fence.expect_quiet(&mut e);
}

// --- last will -------------------------------------------------------------------------------

#[test]
fn will_is_published_after_disconnect_with_will_message_0x04() {
    let b = TestBroker::start();
    let mut watchers = will_watchers(&b, V);
    let mut c = Raw::connect_ok(b.addr, Conn::new("will-04", V).will("will/04", "asked for", Q1, false)).0;
    c.send(&Packet::Disconnect(Disconnect::with_reason(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE)));
    c.expect_closed(IO_TIMEOUT);
    expect_wills(&mut watchers, &[("will/04".to_string(), "asked for".to_string())], IO_TIMEOUT);
}

// --- sessions --------------------------------------------------------------------------------

#[test]
fn session_expiry_0_ends_the_session_at_disconnect() {
    let b = TestBroker::start();
    for id in ids_covering_homes("expiry0", 1) {
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, V).clean(false).session_expiry(0)).0;
        c.subscribe_ok(&[("expiry0/t", Q1)]);
        c.disconnect();
        let (c, ack) = Raw::connect_ok(b.addr, Conn::new(&id, V).clean(false).session_expiry(0));
        assert!(!ack.session_present, "{id}: a session with expiry 0 outlived its connection");
        c.disconnect();
    }
}

#[test]
fn session_expires_after_its_expiry_interval() {
    let b = TestBroker::start();
    let ids = ids_covering_homes("expiry1", 1);
    for id in &ids {
        let mut c = Raw::connect_ok(b.addr, Conn::new(id, V).clean(false).session_expiry(1)).0;
        c.subscribe_ok(&[("expiry1/t", Q1)]);
        c.disconnect();
    }
    // Housekeeping checks expiry once a second: 1 s expiry is gone within 3 s.
    std::thread::sleep(Duration::from_millis(3000));
    for id in &ids {
        let (c, ack) = Raw::connect_ok(b.addr, Conn::new(id, V).clean(false).session_expiry(60));
        assert!(!ack.session_present, "{id}: session outlived its 1 s expiry interval");
        c.disconnect();
    }
    // A longer expiry is still there after the same wait.
    for id in &ids {
        let (c, ack) = Raw::connect_ok(b.addr, Conn::new(id, V).clean(false).session_expiry(60));
        assert!(ack.session_present, "{id}: session with 60 s expiry gone");
        c.disconnect();
    }
}

// --- connection rules --------------------------------------------------------------------------

#[test]
fn empty_client_id_gets_an_assigned_client_identifier() {
    let b = TestBroker::start();
    let mut ids = BTreeSet::new();
    for _ in 0..8 {
        let (mut c, ack) = Raw::connect(b.addr, Conn::new("", V));
        assert_eq!(ack.code, ReasonCode::SUCCESS);
        let id = ack
            .properties
            .as_ref()
            .and_then(|p| p.assigned_client_identifier.clone())
            .expect("CONNACK carries an Assigned Client Identifier (5.0 [MQTT-3.2.2-16])");
        assert!(!id.is_empty());
        assert!(ids.insert(id.to_string()), "assigned id {id} given twice");
        c.subscribe_ok(&[("assigned/t", Q1)]);
        c.publish("assigned/t", b"hello", Q1, false);
        assert_eq!(&c.expect_publish(IO_TIMEOUT).payload[..], b"hello");
    }
}

#[test]
fn connack_announces_topic_alias_maximum() {
    let b = TestBroker::start();
    let (_c, ack) = Raw::connect_ok(b.addr, Conn::new("caps", V));
    let max = ack.properties.as_ref().and_then(|p| p.topic_alias_maximum).unwrap_or(0);
    assert!(max > 0, "CONNACK: {ack:?}");
}

#[test]
fn unsuback_has_0x11_for_a_filter_that_was_not_subscribed() {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "unsub-codes", V);
    c.subscribe_ok(&[("a/b", Q1), ("c/#", Q0)]);
    let ack = c.unsubscribe(&["a/b", "never/subscribed", "c/#", "a/b"]);
    assert_eq!(
        ack.reasons,
        vec![
            ReasonCode::SUCCESS,
            ReasonCode::NO_SUBSCRIPTION_EXISTED,
            ReasonCode::SUCCESS,
            ReasonCode::NO_SUBSCRIPTION_EXISTED
        ]
    );
}

// --- topic aliases -----------------------------------------------------------------------------

#[test]
fn inbound_topic_alias_stands_for_its_topic_until_rebound() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let mut s = Raw::client(b.addr, "alias-sub", V);
    s.subscribe_ok(&[("alias/#", Q1)]);
    let alias = |a| Some(props(|p| p.topic_alias = Some(a)));
    for (i, p) in pubs.iter_mut().enumerate() {
        p.publish_with("alias/x", format!("{i}:1").as_bytes(), Q1, false, alias(1));
        p.publish_with("", format!("{i}:2").as_bytes(), Q1, false, alias(1));
        p.publish_with("alias/y", format!("{i}:3").as_bytes(), Q0, false, alias(1));
        p.publish_with("", format!("{i}:4").as_bytes(), Q1, false, alias(1));
        p.publish_with("alias/z", format!("{i}:5").as_bytes(), Q1, false, alias(2));
        p.publish_with("", format!("{i}:6").as_bytes(), Q1, false, alias(1));
        p.publish_with("", format!("{i}:7").as_bytes(), Q1, false, alias(2));
    }
    let got = s.expect_publishes(7 * SHARDS, IO_TIMEOUT);
    let mut per_pub: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for m in &got {
        let text = payload_str(m);
        let (i, n) = text.split_once(':').unwrap();
        per_pub.entry(i.to_string()).or_default().push((n.to_string(), m.topic.to_string()));
    }
    let want: Vec<(String, String)> = [
        ("1", "alias/x"),
        ("2", "alias/x"),
        ("3", "alias/y"),
        ("4", "alias/y"),
        ("5", "alias/z"),
        ("6", "alias/y"),
        ("7", "alias/z"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect();
    for (i, seq) in per_pub {
        assert_eq!(seq, want, "publisher {i}");
    }
}

#[test]
fn topic_alias_above_maximum_gets_disconnect_0x94() {
    let b = TestBroker::start();
    let (mut c, ack) = Raw::connect_ok(b.addr, Conn::new("alias-too-big", V));
    let max = ack.properties.as_ref().and_then(|p| p.topic_alias_maximum).unwrap_or(0);
    c.send(&Packet::Publish(ringmq::protocol::Publish {
        dup: false,
        qos: Q0,
        retain: false,
        topic: ByteStr::from("alias/t"),
        packet_id: 0,
        payload: Bytes::from_static(b"x"),
        properties: Some(Box::new(props(|p| p.topic_alias = Some(max + 1)))),
    }));
    let before = c.expect_closed(IO_TIMEOUT);
    assert!(
        matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::TOPIC_ALIAS_INVALID),
        "{before:?}"
    );
}

#[test]
fn unknown_topic_alias_with_empty_topic_gets_disconnect_0x82() {
    let b = TestBroker::start();
    let mut c = Raw::client(b.addr, "alias-unknown", V);
    c.send(&Packet::Publish(ringmq::protocol::Publish {
        dup: false,
        qos: Q1,
        retain: false,
        topic: ByteStr::from(""),
        packet_id: 1,
        payload: Bytes::from_static(b"x"),
        properties: Some(Box::new(props(|p| p.topic_alias = Some(1)))),
    }));
    let before = c.expect_closed(IO_TIMEOUT);
    assert!(
        matches!(before.as_slice(), [Packet::Disconnect(d)] if d.reason == ReasonCode::PROTOCOL_ERROR),
        "{before:?}"
    );
}

// --- subscription options ----------------------------------------------------------------------

#[test]
fn subscription_identifiers_are_delivered_for_every_matching_subscription() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    let mut s = Raw::client(b.addr, "sid-sub", V);
    let with_id = |id| Some(props(|p| p.subscription_identifiers = vec![id]));
    assert_eq!(
        s.subscribe_with(vec![filter("sid/#", sub_opts(Q1, |_| {}))], with_id(42)).reasons,
        vec![ReasonCode(1)]
    );
    assert_eq!(
        s.subscribe_with(vec![filter("sid/+", sub_opts(Q1, |_| {}))], with_id(268_435_455)).reasons,
        vec![ReasonCode(1)]
    );
    s.subscribe_ok(&[("sid/+/none", Q1)]);
    let mut other = Raw::client(b.addr, "sid-other", V);
    other.subscribe_ok(&[("sid/#", Q1)]);
    for p in pubs.iter_mut() {
        p.publish("sid/x", b"both", Q1, false);
        p.publish("sid/a/b", b"one", Q1, false);
        p.publish("sid/a/none", b"hash and none", Q1, false);
    }
    for m in s.expect_publishes(3 * SHARDS, IO_TIMEOUT) {
        let mut ids = m.properties.as_deref().map(|p| p.subscription_identifiers.clone()).unwrap_or_default();
        ids.sort();
        let want = match &m.payload[..] {
            b"both" => vec![42, 268_435_455],
            _ => vec![42],
        };
        assert_eq!(ids, want, "{}: {m:?}", payload_str(&m));
    }
    for m in other.expect_publishes(3 * SHARDS, IO_TIMEOUT) {
        let ids = m.properties.as_deref().map(|p| p.subscription_identifiers.clone()).unwrap_or_default();
        assert!(ids.is_empty(), "no identifier on this subscription: {m:?}");
    }
    // A retained message sent on subscribe carries the new subscription's identifier.
    pubs[0].publish("sid/kept", b"retained", Q1, true);
    let mut late = Raw::client(b.addr, "sid-late", V);
    late.subscribe_with(vec![filter("sid/kept", sub_opts(Q1, |_| {}))], with_id(7));
    let m = late.expect_publish(IO_TIMEOUT);
    assert_eq!(m.properties.as_deref().map(|p| p.subscription_identifiers.clone()), Some(vec![7]));
}

#[test]
fn no_local_subscription_does_not_receive_own_publishes() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut me = Raw::client(b.addr, "no-local", V);
    me.subscribe_with(vec![filter("nl/t", sub_opts(Q1, |o| o.no_local = true))], None);
    let mut other = Raw::client(b.addr, "nl-other", V);
    other.subscribe_ok(&[("nl/t", Q1)]);
    me.publish("nl/t", b"mine", Q1, false);
    fence.conns[0].publish("nl/t", b"theirs", Q1, false);
    assert_eq!(&other.expect_publish(IO_TIMEOUT).payload[..], b"mine");
    assert_eq!(&other.expect_publish(IO_TIMEOUT).payload[..], b"theirs");
    let m = me.expect_publish(IO_TIMEOUT);
    assert_eq!(
        &m.payload[..],
        b"theirs",
        "no local: the client's own message came back (5.0 [MQTT-3.8.3-3])"
    );
    fence.expect_quiet(&mut me);
}

// --- cross-shard ordering ------------------------------------------------------------------------
//
// A SUBSCRIBE takes effect on its own shard at once and reaches the others over the mesh;
// its SUBACK and retained messages wait for a barrier round trip to every shard
// (the shard's `handle_subscribe`). These tests check every ordered pair of
// shards for what that promises. They once failed, before the barrier.

/// For every ordered pair of shards (subscriber's, publisher's), 3 times.
fn shard_pairs() -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for _ in 0..3 {
        for s in 0..SHARDS {
            for p in 0..SHARDS {
                v.push((s, p));
            }
        }
    }
    v
}

#[test]
fn publish_right_after_suback_reaches_a_subscriber_on_another_shard() {
    let b = TestBroker::start();
    let mut conns = one_per_shard(b.addr);
    let mut lost = Vec::new();
    for (k, (s, p)) in shard_pairs().into_iter().enumerate() {
        let topic = format!("after-suback/{k}");
        conns[s].subscribe_ok(&[(&topic, Q1)]);
        conns[p].publish(&topic, b"x", Q1, false);
        match conns[s].recv(Duration::from_millis(300)) {
            Recv::Packet(Packet::Publish(m)) if *m.topic == *topic => conns[s].ack(&m),
            other => lost.push(((s, p), format!("{other:?}"))),
        }
    }
    assert!(
        lost.is_empty(),
        "(subscriber shard, publisher shard) pairs whose QoS 1 publish was lost: {lost:?}"
    );
}

#[test]
fn retained_message_is_sent_to_an_existing_connection_on_another_shard_subscribing_right_after_puback() {
    let b = TestBroker::start();
    let mut conns = one_per_shard(b.addr);
    let mut missing = Vec::new();
    for (k, (s, p)) in shard_pairs().into_iter().enumerate() {
        let topic = format!("ret-after-puback/{k}");
        conns[p].publish(&topic, b"kept", Q1, true);
        conns[s].subscribe_ok(&[(&topic, Q1)]);
        match conns[s].recv(Duration::from_millis(300)) {
            Recv::Packet(Packet::Publish(m)) if *m.topic == *topic && m.retain => conns[s].ack(&m),
            other => missing.push(((s, p), format!("{other:?}"))),
        }
    }
    assert!(
        missing.is_empty(),
        "(subscriber shard, publisher shard) pairs without the retained message: {missing:?}"
    );
}

#[test]
fn retained_message_replaced_from_another_shard_is_the_one_every_shard_serves() {
    let b = TestBroker::start();
    let mut fence = Fence::new(b.addr);
    let mut conns = one_per_shard(b.addr);
    let mut topics = Vec::new();
    for a in 0..SHARDS {
        for z in 0..SHARDS {
            let topic = format!("replaced/{a}/{z}");
            conns[a].publish(&topic, b"first", Q1, true);
            conns[z].publish(&topic, b"second", Q1, true);
            topics.push(topic);
        }
    }
    // New subscribers on every shard.
    for mut s in one_per_shard(b.addr) {
        s.subscribe_ok(&[("replaced/#", Q1)]);
        let got = s.expect_publishes(topics.len(), IO_TIMEOUT);
        let wrong: Vec<String> =
            got.iter().filter(|m| &m.payload[..] != b"second").map(|m| m.topic.to_string()).collect();
        assert!(wrong.is_empty(), "{}: stale retained message on {wrong:?}", s.client_id);
        fence.expect_quiet(&mut s);
    }
}

#[test]
fn persistent_session_loses_no_qos1_message_while_reconnecting() {
    let b = TestBroker::start();
    let id = "roamer";
    let mut c = Raw::connect_ok(b.addr, Conn::new(id, V).persistent()).0;
    c.subscribe_ok(&[("roam/t", Q1)]);
    const TOTAL: usize = 1500;
    let mut pubs = one_per_shard(b.addr);
    let publisher = std::thread::spawn(move || {
        for k in 0..TOTAL {
            let n = pubs.len();
            pubs[k % n].publish("roam/t", format!("{k}").as_bytes(), Q1, false);
        }
    });
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reconnects = 0;
    const QUIET_END: Duration = Duration::from_secs(10);
    let mut last_packet = Instant::now();
    while seen.len() < TOTAL && Instant::now() < deadline {
        match c.recv(Duration::from_millis(500)) {
            Recv::Packet(Packet::Publish(m)) => {
                last_packet = Instant::now();
                c.ack(&m);
                seen.insert(payload_str(&m).parse::<usize>().unwrap());
                if seen.len() % 100 == 0 && !publisher.is_finished() {
                    // Reconnect: the new connection usually lands on another shard.
                    c.disconnect();
                    c = Raw::connect_ok(b.addr, Conn::new(id, V).persistent()).0;
                    reconnects += 1;
                }
            }
            Recv::Packet(other) => panic!("unexpected {other:?}"),
            // Only a long silence after the last publish ends the wait: on a loaded
            // machine redelivery after a reconnect can take longer than one timeout.
            Recv::Timeout if publisher.is_finished() && last_packet.elapsed() > QUIET_END => break,
            Recv::Timeout => {}
            other => panic!("{other:?}"),
        }
    }
    publisher.join().unwrap();
    let missing: Vec<usize> = (0..TOTAL).filter(|k| !seen.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {TOTAL} QoS 1 messages lost over {reconnects} reconnects: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
}

/// A persistent session resumed on another shard gets each QoS 2 message published right
/// after its CONNACK exactly once (section 4.3.3). 100 rounds of reconnecting and 10
/// pipelined messages from every shard.
///
/// It failed in about one round in ten until the new holder kept deduplicating for one
/// more barrier round trip after the old holder's `Released`: a direct copy from a third
/// shard could still be on its way when `Released` came (the new holder reads its peers'
/// queues in turn, not in the order things were sent).
#[test]
fn message_published_right_after_a_session_moved_shards_is_delivered_once() {
    let b = TestBroker::start();
    let mut pubs = one_per_shard(b.addr);
    const EACH: usize = 10;
    let mut twice = Vec::new();
    for round in 0..100 {
        let id = format!("moved-{round}");
        let topic = format!("moved/{round}");
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, V).persistent()).0;
        c.subscribe_ok(&[(&topic, Q2)]);
        c.disconnect();
        let mut c = Raw::connect_ok(b.addr, Conn::new(&id, V).persistent()).0;
        let ids: Vec<Vec<u16>> = pubs
            .iter_mut()
            .enumerate()
            .map(|(i, p)| {
                (0..EACH)
                    .map(|k| p.send_publish(&topic, format!("{i}:{k}").as_bytes(), Q2, false, None))
                    .collect()
            })
            .collect();
        for (p, ids) in pubs.iter_mut().zip(ids) {
            for id in ids {
                p.finish_publish(Q2, id);
            }
        }
        let mut got: Vec<String> =
            c.expect_publishes(SHARDS * EACH, IO_TIMEOUT).iter().map(payload_str).collect();
        // Anything more has come by the time the client's ping is answered, or soon after.
        c.sync();
        while let Recv::Packet(Packet::Publish(m)) = c.recv(Duration::from_millis(20)) {
            c.ack(&m);
            got.push(payload_str(&m));
        }
        let distinct: BTreeSet<&String> = got.iter().collect();
        if distinct.len() != got.len() {
            twice.push(round);
        }
    }
    assert!(twice.is_empty(), "rounds in which a QoS 2 message came twice: {twice:?}");
}

// --- with rumqttc 5.0 ---------------------------------------------------------------------------

use rumqttc::v5::mqttbytes::QoS as RQoS;

#[test]
fn rumqttc_v5_pubsub_at_qos_0_1_2() {
    let b = TestBroker::start();
    run_async(Duration::from_secs(30), async {
        for round in 0..3 {
            let sub = RumqV5::connect(RumqV5::options(b.addr, &format!("rq5-sub-{round}"))).await;
            let levels = [RQoS::AtMostOnce, RQoS::AtLeastOnce, RQoS::ExactlyOnce];
            for (q, level) in levels.iter().enumerate() {
                sub.client.subscribe(format!("rq5/t/{q}"), *level).await.unwrap();
            }
            sub.wait_suback(3).await;
            let publisher = RumqV5::connect(RumqV5::options(b.addr, &format!("rq5-pub-{round}"))).await;
            for i in 0..30 {
                publisher
                    .client
                    .publish(format!("rq5/t/{}", i % 3), levels[i % 3], false, format!("{i}"))
                    .await
                    .unwrap();
            }
            let got = sub.wait_publishes(30, IO_TIMEOUT).await;
            assert_eq!(got.len(), 30, "{got:?}");
            for (i, p) in got.iter().enumerate() {
                assert_eq!(&p.payload[..], format!("{i}").as_bytes(), "in publish order");
                assert_eq!(p.qos, levels[i % 3]);
            }
        }
    });
}

#[test]
fn rumqttc_v5_retained_message_reaches_later_subscriber() {
    let b = TestBroker::start();
    run_async(Duration::from_secs(30), async {
        let publisher = RumqV5::connect(RumqV5::options(b.addr, "rq5-ret-pub")).await;
        publisher.client.publish("rq5/retained", RQoS::AtLeastOnce, true, "kept").await.unwrap();
        publisher
            .wait_event("PUBACK", |e| matches!(e, rumqttc::v5::Event::Incoming(V5Packet::PubAck(_))))
            .await;
        for i in 0..4 {
            let sub = RumqV5::connect(RumqV5::options(b.addr, &format!("rq5-ret-sub-{i}"))).await;
            sub.client.subscribe("rq5/#", RQoS::AtLeastOnce).await.unwrap();
            let got = sub.wait_publishes(1, IO_TIMEOUT).await;
            assert_eq!(
                (&got[0].payload[..], got[0].retain, &got[0].topic[..]),
                (&b"kept"[..], true, &b"rq5/retained"[..])
            );
        }
    });
}

#[test]
fn rumqttc_v5_last_will_is_published_when_client_vanishes() {
    let b = TestBroker::start();
    run_async(Duration::from_secs(30), async {
        let watcher = RumqV5::connect(RumqV5::options(b.addr, "rq5-will-watcher")).await;
        watcher.client.subscribe("rq5/will/#", RQoS::AtLeastOnce).await.unwrap();
        watcher.wait_suback(1).await;
        let mut opts = RumqV5::options(b.addr, "rq5-mortal");
        opts.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
            "rq5/will/mortal",
            "bye",
            RQoS::AtLeastOnce,
            false,
            None,
        ));
        let mortal = RumqV5::connect(opts).await;
        drop(mortal);
        wait_until(IO_TIMEOUT, || watcher.publishes().iter().any(|p| &p.topic[..] == b"rq5/will/mortal"))
            .await;
        let wills: Vec<_> =
            watcher.publishes().into_iter().filter(|p| &p.topic[..] == b"rq5/will/mortal").collect();
        assert_eq!(wills.len(), 1, "{wills:?}");
        assert_eq!(&wills[0].payload[..], b"bye");
    });
}
