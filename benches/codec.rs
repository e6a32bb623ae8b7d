//! Codec micro-benchmarks: PUBLISH decode and encode at 16 B, 64 B, 256 B and 4 KiB of
//! payload at levels 4 and 5 (5.0 with no properties), and CONNECT decode at level 4 and
//! at level 5 with a few properties.
//!
//! What is measured, per packet:
//! - decode: `Decoder::decode` taking one frame off the front of a read buffer that holds
//!   many frames back to back, as after a large socket read. The buffer is filled and the
//!   packets are dropped outside the timed section (as criterion's `iter_batched` does),
//!   so the time is the framing, the validation and the zero-copy split, not a copy of the
//!   payload; a 4 KiB PUBLISH costs what a 16 B one does unless the decoder touches the
//!   payload. `decode_and_drop_publish_v4_64B` times the drop too: releasing the packet's
//!   two references to the read buffer.
//! - encode: `Packet::encode` of a ready-made packet into a reused `BytesMut` (cleared each
//!   time, so no allocation); this does include copying the payload, which encoding is.
//!
//! `scripts/bench-codec.sh` runs these and writes `results/codec-bench.md`.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringmq::protocol::{
    ByteStr, Connect, Decoded, Decoder, LastWill, Packet, Properties, ProtocolVersion, Publish, QoS,
};
use std::time::{Duration, Instant};

const PAYLOAD_SIZES_BYTES: [usize; 4] = [16, 64, 256, 4096];
/// Frames per pre-filled read buffer: enough to amortise the buffer's one-time promotion
/// to shared storage (its first split), few enough to stay in cache at 4 KiB.
const FRAMES_PER_BUFFER: u64 = 256;
const PACKET_SIZE_MAX_BYTES: usize = 1 << 20;

fn publish(payload_bytes: usize) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: ByteStr::from("sensors/building-1/floor-2/temperature"),
        packet_id: 42,
        payload: Bytes::from(vec![0xA5; payload_bytes]),
        properties: None,
    })
}

fn connect_v4() -> Packet {
    Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive_secs: 60,
        client_id: ByteStr::from("bench-client-0001"),
        will: None,
        username: Some(ByteStr::from("user")),
        password: Some(Bytes::from_static(b"secret")),
        properties: None,
    }))
}

fn connect_v5() -> Packet {
    Packet::Connect(Box::new(Connect {
        version: ProtocolVersion::V5,
        clean_start: true,
        keep_alive_secs: 60,
        client_id: ByteStr::from("bench-client-0001"),
        will: Some(LastWill {
            topic: ByteStr::from("clients/bench-client-0001/status"),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Some(Box::new(Properties {
                will_delay_interval_secs: Some(5),
                ..Properties::default()
            })),
        }),
        username: Some(ByteStr::from("user")),
        password: Some(Bytes::from_static(b"secret")),
        properties: Some(Box::new(Properties {
            session_expiry_interval_secs: Some(3600),
            receive_maximum: Some(100),
            topic_alias_maximum: Some(10),
            user_properties: vec![(ByteStr::from("region"), ByteStr::from("eu"))],
            ..Properties::default()
        })),
    }))
}

/// What a decoder has seen before the measured packets.
#[derive(Clone, Copy)]
enum Conn {
    /// A connection at this level, after its CONNECT: one decoder reads every frame.
    After(ProtocolVersion),
    /// A new connection: each packet is the first a fresh server decoder sees.
    New,
}

impl Conn {
    fn decoder(self) -> Decoder {
        match self {
            Conn::After(v) => Decoder::with_version(v, PACKET_SIZE_MAX_BYTES),
            Conn::New => Decoder::server(PACKET_SIZE_MAX_BYTES),
        }
    }
}

/// Whether dropping the decoded packets is part of the measurement.
#[derive(Clone, Copy)]
enum Drop {
    /// Decoding only: packets are dropped after the clock stops, as `iter_batched` does.
    Untimed,
    /// Decoding and then dropping each packet (releasing its references to the buffer).
    Timed,
}

fn drop_packets<T>(packets: Vec<T>) {
    std::mem::drop(black_box(packets));
}

/// Times `decode` one frame at a time over pre-filled buffers; criterion sees one
/// iteration per packet.
fn bench_decode(c: &mut Criterion, name: &str, v: ProtocolVersion, packet: &Packet, conn: Conn, drop: Drop) {
    let mut template = BytesMut::new();
    for _ in 0..FRAMES_PER_BUFFER {
        packet.encode(v, &mut template);
    }
    let frame_bytes = template.len() / FRAMES_PER_BUFFER as usize;
    // Check once, outside the timing, that the frames decode to the packet.
    let mut check = template.clone();
    match conn.decoder().decode(&mut check) {
        Ok(Decoded::Packet(p)) => assert_eq!(&p, packet),
        other => panic!("{name}: {other:?}"),
    }
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(FRAMES_PER_BUFFER);
                let mut buf = BytesMut::from(&template[..n as usize * frame_bytes]);
                let mut decoder = conn.decoder();
                let mut decoded = Vec::with_capacity(n as usize);
                let start = Instant::now();
                for _ in 0..n {
                    if let Conn::New = conn {
                        decoder = conn.decoder();
                    }
                    decoded.push(decoder.decode(black_box(&mut buf)));
                }
                if let Drop::Timed = drop {
                    decoded.clear();
                }
                timed += start.elapsed();
                assert!(buf.is_empty());
                drop_packets(decoded);
                left -= n;
            }
            timed
        })
    });
}

fn bench_encode(c: &mut Criterion, name: &str, v: ProtocolVersion, packet: &Packet) {
    let mut out = BytesMut::with_capacity(packet.encoded_len(v));
    c.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            black_box(packet).encode(v, &mut out);
            black_box(&out);
        })
    });
}

fn level_name(v: ProtocolVersion) -> &'static str {
    if v.is_v5() {
        "v5"
    } else {
        "v4"
    }
}

fn publish_benches(c: &mut Criterion) {
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        for size in PAYLOAD_SIZES_BYTES {
            let p = publish(size);
            let name = format!("decode_publish_{}_{size}B", level_name(v));
            bench_decode(c, &name, v, &p, Conn::After(v), Drop::Untimed);
        }
    }
    let p = publish(64);
    let v = ProtocolVersion::V3_1_1;
    bench_decode(c, "decode_and_drop_publish_v4_64B", v, &p, Conn::After(v), Drop::Timed);
    for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        for size in PAYLOAD_SIZES_BYTES {
            let p = publish(size);
            bench_encode(c, &format!("encode_publish_{}_{size}B", level_name(v)), v, &p);
        }
    }
}

fn connect_benches(c: &mut Criterion) {
    bench_decode(c, "decode_connect_v4", ProtocolVersion::V3_1_1, &connect_v4(), Conn::New, Drop::Untimed);
    bench_decode(c, "decode_connect_v5_props", ProtocolVersion::V5, &connect_v5(), Conn::New, Drop::Untimed);
}

criterion_group! {
    name = benches;
    // The machine is small and shared: short runs, enough samples for a stable median.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = publish_benches, connect_benches
}
criterion_main!(benches);
