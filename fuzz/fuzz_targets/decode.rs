//! Feeds arbitrary bytes to the MQTT decoder as a server (first packet CONNECT) and at
//! each protocol level. Any panic is a bug. Every packet that decodes must survive a
//! re-encode: decoding the encoding gives the same packet, and the encoding is canonical
//! (encoding that packet again gives the same bytes).
//!
//! There are no normalisations to allow for: the decoder never produces an empty
//! property block (it decodes as `None`), and every form it accepts (short acks, a
//! 4-byte PUBACK with an empty block, a non-minimal variable byte integer) decodes to a
//! packet whose shortest encoding decodes to the same packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::protocol::{check_frame, Decoded, Decoder, FrameStatus, Packet, ProtocolVersion};

/// Small enough that the fuzzer reaches the "too large" path, large enough for real packets.
const PACKET_SIZE_MAX_BYTES: usize = 64 * 1024;
/// Bounds the decode loop; an input of N bytes holds at most N / 2 packets anyway.
const PACKETS_PER_INPUT_MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    decode_all(Decoder::server(PACKET_SIZE_MAX_BYTES), data);
    for v in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        decode_all(Decoder::with_version(v, PACKET_SIZE_MAX_BYTES), data);
    }
});

fn decode_all(mut decoder: Decoder, data: &[u8]) {
    let mut buf = BytesMut::from(data);
    for _ in 0..PACKETS_PER_INPUT_MAX {
        let before = buf.len();
        let status = check_frame(&buf, PACKET_SIZE_MAX_BYTES);
        match decoder.decode(&mut buf) {
            Ok(Decoded::Packet(packet)) => {
                let Ok(FrameStatus::Complete { header_len, body_len }) = status else {
                    panic!("decoded a packet where check_frame said {status:?}");
                };
                assert_eq!(before - buf.len(), header_len + body_len, "decode consumed the frame");
                let version = decoder.version().expect("a decoded packet fixes the version");
                assert_round_trip(version, &packet);
            }
            Ok(Decoded::Incomplete { needed }) => {
                assert!(needed > 0, "incomplete needs at least one byte");
                assert_eq!(status, Ok(FrameStatus::Incomplete { needed }));
                assert_eq!(buf.len(), before, "incomplete consumes nothing");
                return;
            }
            Err(_) => return,
        }
    }
}

fn assert_round_trip(version: ProtocolVersion, packet: &Packet) {
    let mut encoded = BytesMut::new();
    packet.encode(version, &mut encoded);
    assert_eq!(encoded.len(), packet.encoded_len(version));
    let canonical = encoded.clone();
    let mut decoder = Decoder::with_version(version, usize::MAX);
    let again = match decoder.decode(&mut encoded) {
        Ok(Decoded::Packet(p)) => p,
        other => panic!("re-encoded {packet:?} as {canonical:?}, which decodes to {other:?}"),
    };
    assert!(encoded.is_empty(), "the re-encoding is one whole frame");
    assert_eq!(&again, packet, "decode(encode(p)) == p");
    let mut encoded_again = BytesMut::new();
    again.encode(version, &mut encoded_again);
    assert_eq!(encoded_again, canonical, "the encoding is canonical");
}
