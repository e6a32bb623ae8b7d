//! MQTT 3.1.1 (and 3.1): the scenarios of `scenarios` at 3.1.1 (`v5` runs them at 5.0),
//! what only 3.1.1 and 3.1 have (CONNACK return codes, the 3.1 protocol name and client
//! id limit), and rumqttc's 3.1.1 client.

use crate::common::*;
use ringmq::protocol::ReasonCode;
use std::time::{Duration, Instant};

const V: ProtocolVersion = V3_1_1;

crate::scenarios::twins!(V);

// --- connection rules --------------------------------------------------------------------------

#[test]
fn socket_without_connect_is_closed_at_connect_deadline() {
    let b = TestBroker::start_with(|c| c.connect_timeout_secs = 1);
    let mut c = Raw::open(b.addr, V);
    let t0 = Instant::now();
    let before = c.expect_closed(Duration::from_secs(4));
    let elapsed = t0.elapsed();
    assert!(before.is_empty(), "{before:?}");
    assert!(elapsed >= Duration::from_millis(800), "closed after {elapsed:?}, before the 1 s deadline");
    // A half-sent CONNECT does not extend the deadline either.
    let mut c = Raw::open(b.addr, V);
    c.send_raw(&[0x10, 0x20, 0x00]);
    let t0 = Instant::now();
    c.expect_closed(Duration::from_secs(4));
    assert!(t0.elapsed() >= Duration::from_millis(800));
}

#[test]
fn empty_client_id_with_clean_session_is_accepted() {
    let b = TestBroker::start();
    for _ in 0..4 {
        let (mut c, ack) = Raw::connect(b.addr, Conn::new("", V));
        assert_eq!(ack.code, ReasonCode::SUCCESS);
        assert!(!ack.session_present);
        assert!(ack.properties.is_none());
        c.subscribe_ok(&[("anon/t", Q1)]);
        c.publish("anon/t", b"anonymous", Q1, false);
        assert_eq!(&c.expect_publish(IO_TIMEOUT).payload[..], b"anonymous");
    }
}

#[test]
fn empty_client_id_without_clean_session_gets_connack_2_and_close() {
    let b = TestBroker::start();
    let mut c = Raw::open(b.addr, V);
    c.send(&Conn::new("", V).clean(false).packet());
    // The raw bytes: CONNACK, remaining length 2, session present 0, return code 2.
    let mut raw = [0u8; 4];
    use std::io::Read;
    c.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.stream.read_exact(&mut raw).expect("CONNACK");
    assert_eq!(raw, [0x20, 0x02, 0x00, 0x02]);
    assert!(c.expect_closed(IO_TIMEOUT).is_empty());
}

#[test]
fn unsupported_protocol_level_6_gets_connack_1_and_close() {
    let b = TestBroker::start();
    let mut c = Raw::open(b.addr, V);
    // CONNECT "MQTT" level 6, clean session, keepalive 60, client id "x".
    c.send_raw(&[0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x01, b'x']);
    let mut raw = [0u8; 4];
    use std::io::Read;
    c.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.stream.read_exact(&mut raw).expect("CONNACK");
    assert_eq!(raw, [0x20, 0x02, 0x00, 0x01], "CONNACK with return code 1 (unacceptable protocol version)");
    assert!(c.expect_closed(IO_TIMEOUT).is_empty());
}

#[test]
fn mqtt31_mqisdp_client_connects_and_exchanges_messages_with_311() {
    let b = TestBroker::start();
    let (mut old, ack) = Raw::connect(b.addr, Conn::new("mqtt31-client", V3_1));
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    old.subscribe_ok(&[("v31/in/0", Q0), ("v31/in/1", Q1), ("v31/in/2", Q2)]);
    let mut new = Raw::client(b.addr, "mqtt311-client", V3_1_1);
    new.subscribe_ok(&[("v31/out/0", Q0), ("v31/out/1", Q1), ("v31/out/2", Q2)]);
    for q in [Q0, Q1, Q2] {
        new.publish(&format!("v31/in/{}", q as u8), b"to 3.1", q, false);
        let m = old.expect_publish(IO_TIMEOUT);
        assert_eq!((&m.payload[..], m.qos), (&b"to 3.1"[..], q));
        old.publish(&format!("v31/out/{}", q as u8), b"from 3.1", q, false);
        let m = new.expect_publish(IO_TIMEOUT);
        assert_eq!((&m.payload[..], m.qos), (&b"from 3.1"[..], q));
    }
    old.ping();
    old.disconnect();
}

#[test]
fn mqtt31_client_id_longer_than_23_characters_is_refused() {
    let b = TestBroker::start();
    let (mut c, ack) = Raw::connect(b.addr, Conn::new("a-client-id-of-24-chars!", V3_1));
    assert_eq!(ack.code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, "3.1 CONNACK return code 2");
    assert!(c.expect_closed(IO_TIMEOUT).is_empty());
}

// --- with rumqttc ------------------------------------------------------------------------------

#[test]
fn rumqttc_pubsub_at_qos_0_1_2() {
    let b = TestBroker::start();
    run_async(Duration::from_secs(30), async {
        for round in 0..3 {
            let sub = RumqV4::connect(RumqV4::options(b.addr, &format!("rq-sub-{round}"))).await;
            let levels = [rumqttc::QoS::AtMostOnce, rumqttc::QoS::AtLeastOnce, rumqttc::QoS::ExactlyOnce];
            // One topic per QoS, granted that QoS.
            for (q, level) in levels.iter().enumerate() {
                sub.client.subscribe(format!("rq/t/{q}"), *level).await.unwrap();
            }
            sub.wait_suback(3).await;
            let publisher = RumqV4::connect(RumqV4::options(b.addr, &format!("rq-pub-{round}"))).await;
            for i in 0..30 {
                publisher
                    .client
                    .publish(format!("rq/t/{}", i % 3), levels[i % 3], false, format!("{i}"))
                    .await
                    .unwrap();
            }
            let got = sub.wait_publishes(30, IO_TIMEOUT).await;
            assert_eq!(got.len(), 30, "{got:?}");
            for (i, p) in got.iter().enumerate() {
                assert_eq!(&p.payload[..], format!("{i}").as_bytes(), "in publish order");
                assert_eq!(p.qos, levels[i % 3]);
                assert!(!p.retain);
            }
            publisher
                .wait_event("PUBCOMP", |e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::PubComp(_))))
                .await;
        }
    });
}

#[test]
fn rumqttc_retained_message_reaches_later_subscriber() {
    let b = TestBroker::start();
    run_async(Duration::from_secs(30), async {
        let publisher = RumqV4::connect(RumqV4::options(b.addr, "rq-ret-pub")).await;
        publisher.client.publish("rq/retained", rumqttc::QoS::AtLeastOnce, true, "kept").await.unwrap();
        publisher
            .wait_event("PUBACK", |e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))))
            .await;
        for i in 0..4 {
            let sub = RumqV4::connect(RumqV4::options(b.addr, &format!("rq-ret-sub-{i}"))).await;
            sub.client.subscribe("rq/#", rumqttc::QoS::AtLeastOnce).await.unwrap();
            let got = sub.wait_publishes(1, IO_TIMEOUT).await;
            assert_eq!(
                (&got[0].payload[..], got[0].retain, &got[0].topic[..]),
                (&b"kept"[..], true, "rq/retained")
            );
        }
    });
}

#[test]
fn rumqttc_last_will_is_published_when_client_vanishes() {
    let b = TestBroker::start();
    run_async(Duration::from_secs(30), async {
        let watcher = RumqV4::connect(RumqV4::options(b.addr, "rq-will-watcher")).await;
        watcher.client.subscribe("rq/will/#", rumqttc::QoS::AtLeastOnce).await.unwrap();
        watcher.wait_suback(1).await;
        let mut opts = RumqV4::options(b.addr, "rq-mortal");
        opts.set_last_will(rumqttc::LastWill::new("rq/will/mortal", "bye", rumqttc::QoS::AtLeastOnce, false));
        let mortal = RumqV4::connect(opts).await;
        drop(mortal); // aborts the event loop: the socket closes without DISCONNECT
        wait_until(IO_TIMEOUT, || watcher.publishes().iter().any(|p| &p.topic[..] == "rq/will/mortal")).await;
        let wills: Vec<_> =
            watcher.publishes().into_iter().filter(|p| &p.topic[..] == "rq/will/mortal").collect();
        assert_eq!(wills.len(), 1, "{wills:?}");
        assert_eq!(&wills[0].payload[..], b"bye");
    });
}

#[test]
fn rumqttc_persistent_session_gets_messages_sent_while_offline() {
    let b = TestBroker::start();
    run_async(Duration::from_secs(30), async {
        let mut opts = RumqV4::options(b.addr, "rq-persistent");
        opts.set_clean_session(false);
        let c = RumqV4::connect(opts.clone()).await;
        c.client.subscribe("rq/offline", rumqttc::QoS::AtLeastOnce).await.unwrap();
        c.wait_suback(1).await;
        let publisher = RumqV4::connect(RumqV4::options(b.addr, "rq-offline-pub")).await;
        c.client.disconnect().await.unwrap();
        c.wait_event("DISCONNECT sent", |e| {
            matches!(e, rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect))
        })
        .await;
        drop(c);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..5 {
            publisher
                .client
                .publish("rq/offline", rumqttc::QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        wait_until(IO_TIMEOUT, || {
            publisher.count(|e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)))) >= 5
        })
        .await;
        let c = RumqV4::connect(opts).await;
        c.wait_event(
            "CONNACK with session present",
            |e| matches!(e, rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a)) if a.session_present),
        )
        .await;
        let got = c.wait_publishes(5, IO_TIMEOUT).await;
        let payloads: Vec<String> =
            got.iter().map(|p| String::from_utf8_lossy(&p.payload).into_owned()).collect();
        assert_eq!(payloads, vec!["0", "1", "2", "3", "4"]);
    });
}
