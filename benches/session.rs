//! The server-to-client QoS 1 window of one session, with W messages in flight.
//!
//! Each iteration is one message's turn in a steady window: the client's PUBACK for the
//! oldest message in flight (`Session::handle_puback`), then the next delivery
//! (`Session::deliver`), which picks a free packet identifier and encodes the PUBLISH.
//! W = 20 is Mosquitto's and ringmq's default `max_inflight_messages`; 1,000 and 65,535
//! are what a subscriber reaches with `max_inflight_messages 0` and an MQTT 5 client's
//! default Receive Maximum (65,535), as in the benchmark configurations.
//!
//! `scripts/bench-session.sh` runs these for the current tree and an earlier commit and
//! writes `results/session-window-bench.md`.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringmq::protocol::{ByteStr, ProtocolVersion, QoS};
use ringmq::session::{DeliverOutcome, Delivery, Limits, Message, Origin, PublisherKey, Session};
use std::sync::Arc;

const WINDOWS: [u16; 3] = [20, 1000, u16::MAX];

fn delivery(message: &Arc<Message>) -> Delivery {
    Delivery {
        message: message.clone(),
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: vec![],
        shared: None,
    }
}

/// The packet identifier of the `n`-th message delivered (from 0): identifiers are handed
/// out in turn, and the one after the newest is always free here, because the oldest was
/// acknowledged first.
fn packet_id(n: u64) -> u16 {
    (n % u16::MAX as u64) as u16 + 1
}

fn window(c: &mut Criterion) {
    let message = Arc::new(Message {
        topic: ByteStr::from("sensors/building-1/floor-2/temperature"),
        payload: Bytes::from(vec![0xA5; 64]),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: None,
        expires_at_ms: None,
        publisher: PublisherKey::NONE,
        origin: Origin::UNROUTED,
    });
    for w in WINDOWS {
        let limits = Limits { max_inflight_messages: w, max_queued_messages: 0, ..Limits::default() };
        let mut session = Session::new(ByteStr::from("bench"), ProtocolVersion::V5, u32::MAX, limits);
        session.attach(ProtocolVersion::V5, u16::MAX, usize::MAX);
        let mut out = BytesMut::with_capacity(1 << 16);
        for _ in 0..w {
            session.deliver(delivery(&message), 0, &mut out);
            out.clear();
        }
        let (mut oldest, mut not_sent) = (0u64, 0u64);
        c.bench_function(&format!("qos1_window_{w}_ack_and_send"), |b| {
            b.iter(|| {
                session.handle_puback(packet_id(oldest), 0, &mut out);
                oldest += 1;
                // Sent, not queued: the PUBACK matched and freed a place in the window.
                not_sent += (black_box(session.deliver(delivery(&message), 0, &mut out))
                    != DeliverOutcome::Sent) as u64;
                out.clear();
            })
        });
        assert_eq!(not_sent, 0, "window {w}: a PUBACK did not match the oldest message in flight");
    }
}

criterion_group!(benches, window);
criterion_main!(benches);
