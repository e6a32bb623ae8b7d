//! Golden byte vectors for every MQTT control packet at protocol levels 4 (3.1.1) and 5
//! (5.0), and CONNECT at level 3 (3.1, "MQIsdp"). The bytes are written from the spec's
//! figures (MQTT 3.1.1 and 5.0, sections 3.1 - 3.15), labelled byte by byte, not taken
//! from the encoder.
//!
//! Each vector is checked four ways by [`assert_golden`]: it decodes to the expected
//! packet, the packet encodes to the same bytes, it decodes with more bytes behind it
//! (the decoder stops at the frame boundary and leaves them), and fed one byte at a time
//! it is incomplete, with the right figure for the bytes still needed, until the last.
//!
//! `RINGMQ_FUZZ_SEEDS=fuzz/corpus/decode cargo test --test codec_golden` also writes each
//! vector to that folder as a seed for the fuzzer.

use bytes::{BufMut, Bytes, BytesMut};
use ringmq::protocol::{
    check_frame, Ack, Auth, ByteStr, ConnAck, Connect, Decoded, Decoder, Disconnect, FrameStatus, LastWill,
    Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

const PACKET_SIZE_MAX_BYTES: usize = 1 << 20;

/// Bytes behind each vector: a PINGREQ and the first byte of another packet.
const TRAILER: [u8; 3] = [0xC0, 0x00, 0x30];

fn s(text: &str) -> ByteStr {
    ByteStr::from(text)
}

fn props(p: Properties) -> Option<Box<Properties>> {
    Some(Box::new(p))
}

fn fixed_header_len(bytes: &[u8]) -> usize {
    1 + bytes[1..].iter().position(|b| b & 0x80 == 0).expect("a complete length") + 1
}

fn decode_one(decoder: &mut Decoder, buf: &mut BytesMut) -> Packet {
    match decoder.decode(buf) {
        Ok(Decoded::Packet(p)) => p,
        other => panic!("expected a packet, got {other:?}"),
    }
}

/// Checks a vector both ways, with a trailer, and byte by byte. `decoder` makes a fresh
/// decoder in the state the vector is read in.
fn assert_golden_with(decoder: impl Fn() -> Decoder, v: ProtocolVersion, bytes: &[u8], expected: &Packet) {
    write_fuzz_seed(bytes);

    // Decode.
    let mut buf = BytesMut::from(bytes);
    let packet = decode_one(&mut decoder(), &mut buf);
    assert_eq!(&packet, expected, "decoded");
    assert!(buf.is_empty(), "the whole frame is consumed");

    // Encode.
    let mut out = BytesMut::new();
    expected.encode(v, &mut out);
    assert_eq!(&out[..], bytes, "encoded");
    assert_eq!(expected.encoded_len(v), bytes.len(), "encoded_len");

    // Decode with trailing bytes: the decoder stops at the frame boundary.
    let mut d = decoder();
    let mut buf = BytesMut::from(bytes);
    buf.put_slice(&TRAILER);
    assert_eq!(&decode_one(&mut d, &mut buf), expected, "decoded with trailing bytes");
    assert_eq!(&buf[..], &TRAILER, "the trailing bytes are left in the buffer");
    assert_eq!(decode_one(&mut d, &mut buf), Packet::PingReq, "the next frame decodes");
    assert!(matches!(d.decode(&mut buf), Ok(Decoded::Incomplete { needed: 1 })));
    assert_eq!(&buf[..], &[0x30]);

    // One byte at a time.
    let header_len = fixed_header_len(bytes);
    let mut d = decoder();
    let mut buf = BytesMut::new();
    for (i, &b) in bytes.iter().enumerate() {
        buf.put_u8(b);
        let fed = i + 1;
        match d.decode(&mut buf) {
            Ok(Decoded::Incomplete { needed }) => {
                assert!(fed < bytes.len(), "incomplete after the last byte");
                // Until the remaining length is known the next byte is all it can ask for;
                // after that it knows exactly.
                let exact = if fed < header_len { 1 } else { bytes.len() - fed };
                assert_eq!(needed, exact, "needed after {fed} of {} bytes", bytes.len());
                assert_eq!(buf.len(), fed, "an incomplete frame is left in the buffer");
            }
            Ok(Decoded::Packet(p)) => {
                assert_eq!(fed, bytes.len(), "a packet before the last byte");
                assert_eq!(&p, expected, "decoded byte by byte");
                assert!(buf.is_empty());
            }
            Err(e) => panic!("error {e:?} after {fed} bytes"),
        }
    }
    assert_eq!(
        check_frame(bytes, PACKET_SIZE_MAX_BYTES),
        Ok(FrameStatus::Complete { header_len, body_len: bytes.len() - header_len })
    );
}

/// A packet sent after CONNECT, on a connection at level `v`.
fn assert_golden(v: ProtocolVersion, bytes: &[u8], expected: &Packet) {
    assert_golden_with(|| Decoder::with_version(v, PACKET_SIZE_MAX_BYTES), v, bytes, expected);
}

/// A CONNECT, as a server's first packet and on a connection whose level is known.
fn assert_golden_connect(v: ProtocolVersion, bytes: &[u8], expected: &Packet) {
    assert_golden_with(|| Decoder::server(PACKET_SIZE_MAX_BYTES), v, bytes, expected);
    assert_golden(v, bytes, expected);
    let mut d = Decoder::server(PACKET_SIZE_MAX_BYTES);
    decode_one(&mut d, &mut BytesMut::from(bytes));
    assert_eq!(d.version(), Some(v), "CONNECT sets the decoder's level");
}

/// A form the spec allows but the encoder does not produce: it decodes to `expected`,
/// which encodes to the shortest form `canonical`.
fn assert_decodes_to_canonical(v: ProtocolVersion, bytes: &[u8], expected: &Packet, canonical: &[u8]) {
    write_fuzz_seed(bytes);
    let mut buf = BytesMut::from(bytes);
    assert_eq!(&decode_one(&mut Decoder::with_version(v, PACKET_SIZE_MAX_BYTES), &mut buf), expected);
    assert!(buf.is_empty());
    assert_golden(v, canonical, expected);
}

fn write_fuzz_seed(bytes: &[u8]) {
    use std::hash::{Hash, Hasher};
    let Some(dir) = std::env::var_os("RINGMQ_FUZZ_SEEDS") else { return };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let path = std::path::Path::new(&dir).join(format!("golden-{:016x}", h.finish()));
    std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(path, bytes)).expect("write seed");
}

// ---------------------------------------------------------------------------------------
// CONNECT (section 3.1)
// ---------------------------------------------------------------------------------------

#[test]
fn connect_v3_1_mqisdp() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                                       // CONNECT, flags 0
        0x0F,                                       // remaining length 15
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp"
        0x03,                                       // protocol level 3
        0x02,                                       // connect flags: clean session
        0x00, 0x3C,                                 // keep alive 60 s
        0x00, 0x01, b'c',                           // client identifier "c"
    ];
    let expected = Packet::Connect(Box::new(Connect {
        version: V3_1,
        clean_start: true,
        keep_alive_secs: 60,
        client_id: s("c"),
        will: None,
        username: None,
        password: None,
        properties: None,
    }));
    assert_golden_connect(V3_1, &bytes, &expected);
}

#[test]
fn connect_v4_minimal() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                                       // CONNECT, flags 0
        0x0E,                                       // remaining length 14
        0x00, 0x04, b'M', b'Q', b'T', b'T',         // protocol name "MQTT"
        0x04,                                       // protocol level 4
        0x02,                                       // connect flags: clean session
        0x00, 0x3C,                                 // keep alive 60 s
        0x00, 0x02, b'c', b'1',                     // client identifier "c1"
    ];
    let expected = Packet::Connect(Box::new(Connect {
        version: V3_1_1,
        clean_start: true,
        keep_alive_secs: 60,
        client_id: s("c1"),
        will: None,
        username: None,
        password: None,
        properties: None,
    }));
    assert_golden_connect(V3_1_1, &bytes, &expected);
}

#[test]
fn connect_v4_empty_client_id_persistent_session() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                                       // CONNECT, flags 0
        0x0C,                                       // remaining length 12
        0x00, 0x04, b'M', b'Q', b'T', b'T',         // protocol name "MQTT"
        0x04,                                       // protocol level 4
        0x00,                                       // connect flags: none
        0x00, 0x00,                                 // keep alive 0: off
        0x00, 0x00,                                 // client identifier "" (the server
                                                    // decides what to do with it)
    ];
    let expected = Packet::Connect(Box::new(Connect {
        version: V3_1_1,
        clean_start: false,
        keep_alive_secs: 0,
        client_id: s(""),
        will: None,
        username: None,
        password: None,
        properties: None,
    }));
    assert_golden_connect(V3_1_1, &bytes, &expected);
}

#[test]
fn connect_v4_with_will_user_name_and_password() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                                       // CONNECT, flags 0
        0x1F,                                       // remaining length 31
        0x00, 0x04, b'M', b'Q', b'T', b'T',         // protocol name "MQTT"
        0x04,                                       // protocol level 4
        0xEE,                                       // connect flags: user name 0x80,
                                                    // password 0x40, will retain 0x20,
                                                    // will QoS 1 0x08, will 0x04, clean 0x02
        0x00, 0x0A,                                 // keep alive 10 s
        0x00, 0x02, b'i', b'd',                     // client identifier "id"
        0x00, 0x03, b'w', b'/', b't',               // will topic "w/t"
        0x00, 0x03, b'b', b'y', b'e',               // will message "bye"
        0x00, 0x01, b'u',                           // user name "u"
        0x00, 0x02, b'p', b'w',                     // password "pw"
    ];
    let expected = Packet::Connect(Box::new(Connect {
        version: V3_1_1,
        clean_start: true,
        keep_alive_secs: 10,
        client_id: s("id"),
        will: Some(LastWill {
            topic: s("w/t"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: None,
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"pw")),
        properties: None,
    }));
    assert_golden_connect(V3_1_1, &bytes, &expected);
}

#[test]
fn connect_v5_minimal() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                                       // CONNECT, flags 0
        0x0F,                                       // remaining length 15
        0x00, 0x04, b'M', b'Q', b'T', b'T',         // protocol name "MQTT"
        0x05,                                       // protocol level 5
        0x02,                                       // connect flags: clean start
        0x00, 0x3C,                                 // keep alive 60 s
        0x00,                                       // property length 0
        0x00, 0x02, b'c', b'1',                     // client identifier "c1"
    ];
    let expected = Packet::Connect(Box::new(Connect {
        version: V5,
        clean_start: true,
        keep_alive_secs: 60,
        client_id: s("c1"),
        will: None,
        username: None,
        password: None,
        properties: None,
    }));
    assert_golden_connect(V5, &bytes, &expected);
}

#[test]
fn connect_v5_with_properties_and_will_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                                       // CONNECT, flags 0
        0x4F,                                       // remaining length 79
        0x00, 0x04, b'M', b'Q', b'T', b'T',         // protocol name "MQTT"
        0x05,                                       // protocol level 5
        0xD6,                                       // connect flags: user name 0x80,
                                                    // password 0x40, will QoS 2 0x10,
                                                    // will 0x04, clean start 0x02
        0x00, 0x1E,                                 // keep alive 30 s
        0x17,                                       // property length 23
        0x11, 0x00, 0x00, 0x0E, 0x10,               //   session expiry interval 3600 s
        0x21, 0x00, 0x14,                           //   receive maximum 20
        0x22, 0x00, 0x0A,                           //   topic alias maximum 10
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',   //   user property "k" = "v"
        0x27, 0x00, 0x00, 0x04, 0x00,               //   maximum packet size 1024
        0x00, 0x02, b'v', b'5',                     // client identifier "v5"
        0x1C,                                       // will property length 28
        0x01, 0x01,                                 //   payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x00, 0x3C,               //   message expiry interval 60 s
        0x03, 0x00, 0x04, b'j', b's', b'o', b'n',   //   content type "json"
        0x08, 0x00, 0x01, b'r',                     //   response topic "r"
        0x09, 0x00, 0x02, 0x01, 0x02,               //   correlation data 01 02
        0x18, 0x00, 0x00, 0x00, 0x05,               //   will delay interval 5 s
        0x00, 0x01, b'w',                           // will topic "w"
        0x00, 0x01, b'x',                           // will payload "x"
        0x00, 0x01, b'u',                           // user name "u"
        0x00, 0x01, b'p',                           // password "p"
    ];
    let expected = Packet::Connect(Box::new(Connect {
        version: V5,
        clean_start: true,
        keep_alive_secs: 30,
        client_id: s("v5"),
        will: Some(LastWill {
            topic: s("w"),
            payload: Bytes::from_static(b"x"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: props(Properties {
                payload_format_indicator: Some(1),
                message_expiry_interval_secs: Some(60),
                content_type: Some(s("json")),
                response_topic: Some(s("r")),
                correlation_data: Some(Bytes::from_static(&[0x01, 0x02])),
                will_delay_interval_secs: Some(5),
                ..Properties::default()
            }),
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: props(Properties {
            session_expiry_interval_secs: Some(3600),
            receive_maximum: Some(20),
            topic_alias_maximum: Some(10),
            user_properties: vec![(s("k"), s("v"))],
            maximum_packet_size: Some(1024),
            ..Properties::default()
        }),
    }));
    assert_golden_connect(V5, &bytes, &expected);
}

#[test]
fn connect_v5_with_enhanced_authentication() {
    #[rustfmt::skip]
    let bytes = [
        0x10,                                       // CONNECT, flags 0
        0x23,                                       // remaining length 35
        0x00, 0x04, b'M', b'Q', b'T', b'T',         // protocol name "MQTT"
        0x05,                                       // protocol level 5
        0x40,                                       // connect flags: password only
                                                    // (allowed in 5.0, section 3.1.2.9)
        0x00, 0x00,                                 // keep alive 0: off
        0x11,                                       // property length 17
        0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', //   authentication method "SCRAM"
        0x16, 0x00, 0x02, 0xAA, 0xBB,               //   authentication data AA BB
        0x17, 0x00,                                 //   request problem information 0
        0x19, 0x01,                                 //   request response information 1
        0x00, 0x01, b'a',                           // client identifier "a"
        0x00, 0x02, 0x00, 0xFF,                     // password 00 FF (binary data)
    ];
    let expected = Packet::Connect(Box::new(Connect {
        version: V5,
        clean_start: false,
        keep_alive_secs: 0,
        client_id: s("a"),
        will: None,
        username: None,
        password: Some(Bytes::from_static(&[0x00, 0xFF])),
        properties: props(Properties {
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(Bytes::from_static(&[0xAA, 0xBB])),
            request_problem_information: Some(0),
            request_response_information: Some(1),
            ..Properties::default()
        }),
    }));
    assert_golden_connect(V5, &bytes, &expected);
}

// ---------------------------------------------------------------------------------------
// CONNACK (section 3.2)
// ---------------------------------------------------------------------------------------

#[test]
fn connack_v4_accepted() {
    #[rustfmt::skip]
    let bytes = [
        0x20,                                       // CONNACK, flags 0
        0x02,                                       // remaining length 2
        0x00,                                       // acknowledge flags: no session present
        0x00,                                       // return code 0: accepted
    ];
    let expected =
        Packet::ConnAck(ConnAck { session_present: false, code: ReasonCode::SUCCESS, properties: None });
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn connack_v4_session_present() {
    #[rustfmt::skip]
    let bytes = [
        0x20, 0x02,                                 // CONNACK, remaining length 2
        0x01,                                       // acknowledge flags: session present
        0x00,                                       // return code 0: accepted
    ];
    let expected =
        Packet::ConnAck(ConnAck { session_present: true, code: ReasonCode::SUCCESS, properties: None });
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn connack_v4_return_codes_map_to_v5_reasons() {
    // Section 3.2.2.3, table 3.1.
    let codes = [
        (0x01, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
        (0x02, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
        (0x03, ReasonCode::SERVER_UNAVAILABLE),
        (0x04, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        (0x05, ReasonCode::NOT_AUTHORIZED),
    ];
    for (raw, code) in codes {
        #[rustfmt::skip]
        let bytes = [
            0x20, 0x02,                             // CONNACK, remaining length 2
            0x00,                                   // acknowledge flags: none
            raw,                                    // return code
        ];
        let expected = Packet::ConnAck(ConnAck { session_present: false, code, properties: None });
        assert_golden(V3_1_1, &bytes, &expected);
        assert_golden(V3_1, &bytes, &expected);
    }
}

#[test]
fn connack_v5_success_without_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x20,                                       // CONNACK, flags 0
        0x03,                                       // remaining length 3
        0x00,                                       // acknowledge flags: no session present
        0x00,                                       // reason code 0x00: success
        0x00,                                       // property length 0
    ];
    let expected =
        Packet::ConnAck(ConnAck { session_present: false, code: ReasonCode::SUCCESS, properties: None });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn connack_v5_with_many_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x20,                                       // CONNACK, flags 0
        0x43,                                       // remaining length 67
        0x01,                                       // acknowledge flags: session present
        0x00,                                       // reason code 0x00: success
        0x40,                                       // property length 64
        0x11, 0x00, 0x00, 0x00, 0x78,               //   session expiry interval 120 s
        0x12, 0x00, 0x02, b'a', b'1',               //   assigned client identifier "a1"
        0x13, 0x00, 0x1E,                           //   server keep alive 30 s
        0x15, 0x00, 0x01, b'm',                     //   authentication method "m"
        0x16, 0x00, 0x01, 0xAB,                     //   authentication data AB
        0x1A, 0x00, 0x02, b'r', b'i',               //   response information "ri"
        0x1C, 0x00, 0x02, b's', b'2',               //   server reference "s2"
        0x1F, 0x00, 0x02, b'o', b'k',               //   reason string "ok"
        0x21, 0x00, 0x64,                           //   receive maximum 100
        0x22, 0x00, 0x10,                           //   topic alias maximum 16
        0x24, 0x01,                                 //   maximum QoS 1
        0x25, 0x00,                                 //   retain available 0
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b',   //   user property "a" = "b"
        0x27, 0x00, 0x01, 0x00, 0x00,               //   maximum packet size 65536
        0x28, 0x01,                                 //   wildcard subscription available 1
        0x29, 0x00,                                 //   subscription identifiers available 0
        0x2A, 0x01,                                 //   shared subscription available 1
    ];
    let expected = Packet::ConnAck(ConnAck {
        session_present: true,
        code: ReasonCode::SUCCESS,
        properties: props(Properties {
            session_expiry_interval_secs: Some(120),
            assigned_client_identifier: Some(s("a1")),
            server_keep_alive_secs: Some(30),
            authentication_method: Some(s("m")),
            authentication_data: Some(Bytes::from_static(&[0xAB])),
            response_information: Some(s("ri")),
            server_reference: Some(s("s2")),
            reason_string: Some(s("ok")),
            receive_maximum: Some(100),
            topic_alias_maximum: Some(16),
            maximum_qos: Some(1),
            retain_available: Some(0),
            user_properties: vec![(s("a"), s("b"))],
            maximum_packet_size: Some(65536),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(0),
            shared_subscription_available: Some(1),
            ..Properties::default()
        }),
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn connack_v5_refused_with_reason_string() {
    #[rustfmt::skip]
    let bytes = [
        0x20,                                       // CONNACK, flags 0
        0x09,                                       // remaining length 9
        0x00,                                       // acknowledge flags: none
        0x87,                                       // reason code 0x87: not authorized
        0x06,                                       // property length 6
        0x1F, 0x00, 0x03, b'n', b'o', b'!',         //   reason string "no!"
    ];
    let expected = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::NOT_AUTHORIZED,
        properties: props(Properties { reason_string: Some(s("no!")), ..Properties::default() }),
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn connack_v5_packet_too_large() {
    // 0x95 is in the CONNACK table (section 3.2.2.2).
    #[rustfmt::skip]
    let bytes = [
        0x20, 0x03,                                 // CONNACK, remaining length 3
        0x00,                                       // acknowledge flags: none
        0x95,                                       // reason code 0x95: packet too large
        0x00,                                       // property length 0
    ];
    let expected = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::PACKET_TOO_LARGE,
        properties: None,
    });
    assert_golden(V5, &bytes, &expected);
}

// ---------------------------------------------------------------------------------------
// PUBLISH (section 3.3)
// ---------------------------------------------------------------------------------------

fn publish(qos: QoS, topic: &str, packet_id: u16, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s(topic),
        packet_id,
        payload: Bytes::from_static(payload),
        properties: None,
    }
}

#[test]
fn publish_v4_qos0() {
    #[rustfmt::skip]
    let bytes = [
        0x30,                                       // PUBLISH, DUP 0, QoS 0, RETAIN 0
        0x0A,                                       // remaining length 10
        0x00, 0x03, b'a', b'/', b'b',               // topic name "a/b"
                                                    // (no packet identifier at QoS 0)
        b'h', b'e', b'l', b'l', b'o',               // payload "hello"
    ];
    let expected = Packet::Publish(publish(QoS::AtMostOnce, "a/b", 0, b"hello"));
    assert_golden(V3_1_1, &bytes, &expected);
    assert_golden(V3_1, &bytes, &expected);
}

#[test]
fn publish_v4_qos1_dup_retain() {
    #[rustfmt::skip]
    let bytes = [
        0x3B,                                       // PUBLISH, DUP 1, QoS 1, RETAIN 1
        0x08,                                       // remaining length 8
        0x00, 0x01, b't',                           // topic name "t"
        0x00, 0x0A,                                 // packet identifier 10
        0x01, 0x02, 0x03,                           // payload 01 02 03
    ];
    let expected = Packet::Publish(Publish {
        dup: true,
        retain: true,
        ..publish(QoS::AtLeastOnce, "t", 10, &[0x01, 0x02, 0x03])
    });
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn publish_v4_qos2_empty_payload() {
    #[rustfmt::skip]
    let bytes = [
        0x34,                                       // PUBLISH, DUP 0, QoS 2, RETAIN 0
        0x07,                                       // remaining length 7
        0x00, 0x03, b'x', b'/', b'y',               // topic name "x/y"
        0x12, 0x34,                                 // packet identifier 0x1234
                                                    // empty payload
    ];
    let expected = Packet::Publish(publish(QoS::ExactlyOnce, "x/y", 0x1234, b""));
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn publish_v4_two_byte_remaining_length() {
    static PAYLOAD: [u8; 200] = [0x5A; 200];
    #[rustfmt::skip]
    let header = [
        0x30,                                       // PUBLISH, DUP 0, QoS 0, RETAIN 0
        0xCB, 0x01,                                 // remaining length 203: 0x4B | 0x80, 1 << 7
        0x00, 0x01, b't',                           // topic name "t"
    ];
    let bytes = [&header[..], &PAYLOAD[..]].concat(); // payload 200 x 5A
    let expected = Packet::Publish(publish(QoS::AtMostOnce, "t", 0, &PAYLOAD));
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn publish_v4_utf8_topic() {
    #[rustfmt::skip]
    let bytes = [
        0x30,                                       // PUBLISH, DUP 0, QoS 0, RETAIN 0
        0x0B,                                       // remaining length 11
        0x00, 0x07,                                 // topic name length 7
        b'c', b'a', b'f', 0xC3, 0xA9,               //   "caf" U+00E9
        b'/', b'$',                                 //   "/$"
        0x00, 0x2A,                                 // payload 00 2A: a NUL in the payload is fine
    ];
    let expected = Packet::Publish(publish(QoS::AtMostOnce, "caf\u{e9}/$", 0, &[0x00, 0x2A]));
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn publish_v5_qos0_without_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x30,                                       // PUBLISH, DUP 0, QoS 0, RETAIN 0
        0x08,                                       // remaining length 8
        0x00, 0x03, b'a', b'/', b'b',               // topic name "a/b"
        0x00,                                       // property length 0
        b'h', b'i',                                 // payload "hi"
    ];
    let expected = Packet::Publish(publish(QoS::AtMostOnce, "a/b", 0, b"hi"));
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn publish_v5_topic_alias_user_properties_and_subscription_ids() {
    #[rustfmt::skip]
    let bytes = [
        0x32,                                       // PUBLISH, DUP 0, QoS 1, RETAIN 0
        0x1F,                                       // remaining length 31
        0x00, 0x03, b's', b'/', b'1',               // topic name "s/1"
        0x00, 0x07,                                 // packet identifier 7
        0x16,                                       // property length 22
        0x0B, 0x01,                                 //   subscription identifier 1
        0x0B, 0x80, 0x01,                           //   subscription identifier 128 (two bytes)
        0x23, 0x00, 0x05,                           //   topic alias 5
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',   //   user property "k" = "v"
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'w',   //   user property "k" = "w" (order kept)
        b'p',                                       // payload "p"
    ];
    let expected = Packet::Publish(Publish {
        properties: props(Properties {
            subscription_identifiers: vec![1, 128],
            topic_alias: Some(5),
            user_properties: vec![(s("k"), s("v")), (s("k"), s("w"))],
            ..Properties::default()
        }),
        ..publish(QoS::AtLeastOnce, "s/1", 7, b"p")
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn publish_v5_empty_topic_with_topic_alias() {
    #[rustfmt::skip]
    let bytes = [
        0x30,                                       // PUBLISH, DUP 0, QoS 0, RETAIN 0
        0x07,                                       // remaining length 7
        0x00, 0x00,                                 // topic name "": the alias stands for it
        0x03,                                       // property length 3
        0x23, 0x00, 0x05,                           //   topic alias 5
        b'z',                                       // payload "z"
    ];
    let expected = Packet::Publish(Publish {
        properties: props(Properties { topic_alias: Some(5), ..Properties::default() }),
        ..publish(QoS::AtMostOnce, "", 0, b"z")
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn publish_v5_message_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x35,                                       // PUBLISH, DUP 0, QoS 2, RETAIN 1
        0x1C,                                       // remaining length 28
        0x00, 0x01, b'm',                           // topic name "m"
        0x00, 0x02,                                 // packet identifier 2
        0x16,                                       // property length 22
        0x01, 0x01,                                 //   payload format indicator: UTF-8
        0x02, 0x00, 0x00, 0x0E, 0x10,               //   message expiry interval 3600 s
        0x03, 0x00, 0x01, b'a',                     //   content type "a"
        0x08, 0x00, 0x03, b'r', b'/', b't',         //   response topic "r/t"
        0x09, 0x00, 0x02, 0xCA, 0xFE,               //   correlation data CA FE
                                                    // empty payload
    ];
    let expected = Packet::Publish(Publish {
        retain: true,
        properties: props(Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval_secs: Some(3600),
            content_type: Some(s("a")),
            response_topic: Some(s("r/t")),
            correlation_data: Some(Bytes::from_static(&[0xCA, 0xFE])),
            ..Properties::default()
        }),
        ..publish(QoS::ExactlyOnce, "m", 2, b"")
    });
    assert_golden(V5, &bytes, &expected);
}

// ---------------------------------------------------------------------------------------
// PUBACK, PUBREC, PUBREL, PUBCOMP (sections 3.4 - 3.7)
// ---------------------------------------------------------------------------------------

#[test]
fn puback_v4() {
    #[rustfmt::skip]
    let bytes = [
        0x40,                                       // PUBACK, flags 0
        0x02,                                       // remaining length 2
        0x00, 0x01,                                 // packet identifier 1
    ];
    assert_golden(V3_1_1, &bytes, &Packet::PubAck(Ack::new(1)));
}

#[test]
fn pubrec_v4() {
    #[rustfmt::skip]
    let bytes = [
        0x50,                                       // PUBREC, flags 0
        0x02,                                       // remaining length 2
        0x00, 0x02,                                 // packet identifier 2
    ];
    assert_golden(V3_1_1, &bytes, &Packet::PubRec(Ack::new(2)));
}

#[test]
fn pubrel_v4() {
    #[rustfmt::skip]
    let bytes = [
        0x62,                                       // PUBREL, flags 0b0010 [MQTT-3.6.1-1]
        0x02,                                       // remaining length 2
        0x00, 0x03,                                 // packet identifier 3
    ];
    assert_golden(V3_1_1, &bytes, &Packet::PubRel(Ack::new(3)));
}

#[test]
fn pubcomp_v4() {
    #[rustfmt::skip]
    let bytes = [
        0x70,                                       // PUBCOMP, flags 0
        0x02,                                       // remaining length 2
        0xFF, 0xFF,                                 // packet identifier 65535
    ];
    assert_golden(V3_1_1, &bytes, &Packet::PubComp(Ack::new(0xFFFF)));
}

#[test]
fn puback_v5_short_form_is_success() {
    // Section 3.4.2.1: a remaining length of 2 means success and no properties.
    #[rustfmt::skip]
    let bytes = [
        0x40,                                       // PUBACK, flags 0
        0x02,                                       // remaining length 2
        0x00, 0x01,                                 // packet identifier 1
    ];
    assert_golden(V5, &bytes, &Packet::PubAck(Ack::new(1)));
}

#[test]
fn puback_v5_reason_without_properties() {
    // Section 3.4.2.2: a remaining length of 3 means no property length.
    #[rustfmt::skip]
    let bytes = [
        0x40,                                       // PUBACK, flags 0
        0x03,                                       // remaining length 3
        0x00, 0x01,                                 // packet identifier 1
        0x10,                                       // reason code 0x10: no matching subscribers
    ];
    let expected = Packet::PubAck(Ack { reason: ReasonCode::NO_MATCHING_SUBSCRIBERS, ..Ack::new(1) });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn puback_v5_long_forms_decode_to_the_short_form() {
    #[rustfmt::skip]
    let with_reason = [
        0x40,                                       // PUBACK, flags 0
        0x03,                                       // remaining length 3
        0x00, 0x01,                                 // packet identifier 1
        0x00,                                       // reason code 0x00: success
    ];
    #[rustfmt::skip]
    let with_empty_properties = [
        0x40,                                       // PUBACK, flags 0
        0x04,                                       // remaining length 4
        0x00, 0x01,                                 // packet identifier 1
        0x00,                                       // reason code 0x00: success
        0x00,                                       // property length 0
    ];
    let canonical = [0x40, 0x02, 0x00, 0x01];
    let expected = Packet::PubAck(Ack::new(1));
    assert_decodes_to_canonical(V5, &with_reason, &expected, &canonical);
    assert_decodes_to_canonical(V5, &with_empty_properties, &expected, &canonical);
}

#[test]
fn pubrec_v5_reason_and_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x50,                                       // PUBREC, flags 0
        0x11,                                       // remaining length 17
        0x00, 0x05,                                 // packet identifier 5
        0x80,                                       // reason code 0x80: unspecified error
        0x0D,                                       // property length 13
        0x1F, 0x00, 0x03, b'e', b'r', b'r',         //   reason string "err"
        0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b',   //   user property "a" = "b"
    ];
    let expected = Packet::PubRec(Ack {
        packet_id: 5,
        reason: ReasonCode::UNSPECIFIED_ERROR,
        properties: props(Properties {
            reason_string: Some(s("err")),
            user_properties: vec![(s("a"), s("b"))],
            ..Properties::default()
        }),
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn pubrel_v5_packet_identifier_not_found() {
    #[rustfmt::skip]
    let bytes = [
        0x62,                                       // PUBREL, flags 0b0010
        0x03,                                       // remaining length 3
        0x00, 0x06,                                 // packet identifier 6
        0x92,                                       // reason code 0x92: identifier not found
    ];
    let expected = Packet::PubRel(Ack { reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND, ..Ack::new(6) });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn pubcomp_v5_success_with_properties() {
    #[rustfmt::skip]
    let bytes = [
        0x70,                                       // PUBCOMP, flags 0
        0x09,                                       // remaining length 9
        0x00, 0x07,                                 // packet identifier 7
        0x00,                                       // reason code 0x00: success (present
                                                    // because properties follow)
        0x05,                                       // property length 5
        0x1F, 0x00, 0x02, b'o', b'k',               //   reason string "ok"
    ];
    let expected = Packet::PubComp(Ack {
        properties: props(Properties { reason_string: Some(s("ok")), ..Properties::default() }),
        ..Ack::new(7)
    });
    assert_golden(V5, &bytes, &expected);
}

// ---------------------------------------------------------------------------------------
// SUBSCRIBE and SUBACK (sections 3.8, 3.9)
// ---------------------------------------------------------------------------------------

#[test]
fn subscribe_v4() {
    #[rustfmt::skip]
    let bytes = [
        0x82,                                       // SUBSCRIBE, flags 0b0010 [MQTT-3.8.1-1]
        0x0E,                                       // remaining length 14
        0x00, 0x01,                                 // packet identifier 1
        0x00, 0x03, b'a', b'/', b'+',               // topic filter "a/+"
        0x01,                                       //   requested QoS 1
        0x00, 0x03, b'b', b'/', b'#',               // topic filter "b/#"
        0x02,                                       //   requested QoS 2
    ];
    let expected = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![
            (s("a/+"), SubscriptionOptions::qos(QoS::AtLeastOnce)),
            (s("b/#"), SubscriptionOptions::qos(QoS::ExactlyOnce)),
        ],
        properties: None,
    });
    assert_golden(V3_1_1, &bytes, &expected);
    assert_golden(V3_1, &bytes, &expected);
}

#[test]
fn subscribe_v5_with_options_and_subscription_identifier() {
    #[rustfmt::skip]
    let bytes = [
        0x82,                                       // SUBSCRIBE, flags 0b0010
        0x1C,                                       // remaining length 28
        0x00, 0x0A,                                 // packet identifier 10
        0x02,                                       // property length 2
        0x0B, 0x05,                                 //   subscription identifier 5
        0x00, 0x03, b'a', b'/', b'b',               // topic filter "a/b"
        0x2D,                                       //   options: retain handling 2 (0x20),
                                                    //   retain as published (0x08),
                                                    //   no local (0x04), QoS 1
        0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'c',
                                                    // topic filter "$share/g/c"
        0x12,                                       //   options: retain handling 1, QoS 2
        0x00, 0x01, b'#',                           // topic filter "#"
        0x00,                                       //   options: all 0
    ];
    let expected = Packet::Subscribe(Subscribe {
        packet_id: 10,
        filters: vec![
            (
                s("a/b"),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            ),
            (
                s("$share/g/c"),
                SubscriptionOptions {
                    retain_handling: RetainHandling::SendIfNewSubscription,
                    ..SubscriptionOptions::qos(QoS::ExactlyOnce)
                },
            ),
            (s("#"), SubscriptionOptions::qos(QoS::AtMostOnce)),
        ],
        properties: props(Properties { subscription_identifiers: vec![5], ..Properties::default() }),
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn suback_v4() {
    #[rustfmt::skip]
    let bytes = [
        0x90,                                       // SUBACK, flags 0
        0x06,                                       // remaining length 6
        0x00, 0x01,                                 // packet identifier 1
        0x01,                                       // granted QoS 1
        0x02,                                       // granted QoS 2
        0x80,                                       // failure
        0x00,                                       // granted QoS 0
    ];
    let expected = Packet::SubAck(SubAck {
        packet_id: 1,
        reasons: vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::GRANTED_QOS_2,
            ReasonCode::UNSPECIFIED_ERROR,
            ReasonCode::GRANTED_QOS_0,
        ],
        properties: None,
    });
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn suback_v5_with_reason_codes_and_reason_string() {
    #[rustfmt::skip]
    let bytes = [
        0x90,                                       // SUBACK, flags 0
        0x0B,                                       // remaining length 11
        0x00, 0x0A,                                 // packet identifier 10
        0x05,                                       // property length 5
        0x1F, 0x00, 0x02, b'h', b'i',               //   reason string "hi"
        0x01,                                       // reason code 0x01: granted QoS 1
        0x9E,                                       // reason code 0x9E: shared subscriptions
                                                    //   not supported
        0xA2,                                       // reason code 0xA2: wildcard subscriptions
                                                    //   not supported
    ];
    let expected = Packet::SubAck(SubAck {
        packet_id: 10,
        reasons: vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
            ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
        ],
        properties: props(Properties { reason_string: Some(s("hi")), ..Properties::default() }),
    });
    assert_golden(V5, &bytes, &expected);
}

// ---------------------------------------------------------------------------------------
// UNSUBSCRIBE and UNSUBACK (sections 3.10, 3.11)
// ---------------------------------------------------------------------------------------

#[test]
fn unsubscribe_v4() {
    #[rustfmt::skip]
    let bytes = [
        0xA2,                                       // UNSUBSCRIBE, flags 0b0010 [MQTT-3.10.1-1]
        0x13,                                       // remaining length 19
        0x00, 0x02,                                 // packet identifier 2
        0x00, 0x03, b'a', b'/', b'+',               // topic filter "a/+"
        0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b'c',
                                                    // topic filter "$share/g/c"
    ];
    let expected = Packet::Unsubscribe(Unsubscribe {
        packet_id: 2,
        filters: vec![s("a/+"), s("$share/g/c")],
        properties: None,
    });
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn unsubscribe_v5_with_user_property() {
    #[rustfmt::skip]
    let bytes = [
        0xA2,                                       // UNSUBSCRIBE, flags 0b0010
        0x0D,                                       // remaining length 13
        0x00, 0x03,                                 // packet identifier 3
        0x07,                                       // property length 7
        0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',   //   user property "k" = "v"
        0x00, 0x01, b'x',                           // topic filter "x"
    ];
    let expected = Packet::Unsubscribe(Unsubscribe {
        packet_id: 3,
        filters: vec![s("x")],
        properties: props(Properties { user_properties: vec![(s("k"), s("v"))], ..Properties::default() }),
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn unsuback_v4() {
    #[rustfmt::skip]
    let bytes = [
        0xB0,                                       // UNSUBACK, flags 0
        0x02,                                       // remaining length 2
        0x00, 0x02,                                 // packet identifier 2 (3.1.1: nothing else)
    ];
    let expected = Packet::UnsubAck(UnsubAck { packet_id: 2, reasons: vec![], properties: None });
    assert_golden(V3_1_1, &bytes, &expected);
}

#[test]
fn unsuback_v5_with_reason_codes() {
    #[rustfmt::skip]
    let bytes = [
        0xB0,                                       // UNSUBACK, flags 0
        0x05,                                       // remaining length 5
        0x00, 0x03,                                 // packet identifier 3
        0x00,                                       // property length 0
        0x00,                                       // reason code 0x00: success
        0x11,                                       // reason code 0x11: no subscription existed
    ];
    let expected = Packet::UnsubAck(UnsubAck {
        packet_id: 3,
        reasons: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
        properties: None,
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn unsuback_v5_with_reason_string() {
    #[rustfmt::skip]
    let bytes = [
        0xB0,                                       // UNSUBACK, flags 0
        0x09,                                       // remaining length 9
        0x00, 0x04,                                 // packet identifier 4
        0x05,                                       // property length 5
        0x1F, 0x00, 0x02, b'n', b'o',               //   reason string "no"
        0x87,                                       // reason code 0x87: not authorized
    ];
    let expected = Packet::UnsubAck(UnsubAck {
        packet_id: 4,
        reasons: vec![ReasonCode::NOT_AUTHORIZED],
        properties: props(Properties { reason_string: Some(s("no")), ..Properties::default() }),
    });
    assert_golden(V5, &bytes, &expected);
}

// ---------------------------------------------------------------------------------------
// PINGREQ, PINGRESP (sections 3.12, 3.13)
// ---------------------------------------------------------------------------------------

#[test]
fn pingreq_and_pingresp_at_every_level() {
    #[rustfmt::skip]
    let pingreq = [
        0xC0,                                       // PINGREQ, flags 0
        0x00,                                       // remaining length 0
    ];
    #[rustfmt::skip]
    let pingresp = [
        0xD0,                                       // PINGRESP, flags 0
        0x00,                                       // remaining length 0
    ];
    for v in [V3_1, V3_1_1, V5] {
        assert_golden(v, &pingreq, &Packet::PingReq);
        assert_golden(v, &pingresp, &Packet::PingResp);
    }
}

// ---------------------------------------------------------------------------------------
// DISCONNECT (section 3.14)
// ---------------------------------------------------------------------------------------

#[test]
fn disconnect_v4() {
    #[rustfmt::skip]
    let bytes = [
        0xE0,                                       // DISCONNECT, flags 0
        0x00,                                       // remaining length 0
    ];
    assert_golden(V3_1_1, &bytes, &Packet::Disconnect(Disconnect::default()));
}

#[test]
fn disconnect_v5_short_form_is_normal_disconnection() {
    // Section 3.14.2.1: a remaining length of 0 means normal disconnection.
    #[rustfmt::skip]
    let bytes = [
        0xE0,                                       // DISCONNECT, flags 0
        0x00,                                       // remaining length 0
    ];
    assert_golden(V5, &bytes, &Packet::Disconnect(Disconnect::default()));
}

#[test]
fn disconnect_v5_reason_without_properties() {
    #[rustfmt::skip]
    let bytes = [
        0xE0,                                       // DISCONNECT, flags 0
        0x01,                                       // remaining length 1
        0x04,                                       // reason code 0x04: with will message
    ];
    let expected = Packet::Disconnect(Disconnect::with_reason(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE));
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn disconnect_v5_from_client_with_session_expiry() {
    #[rustfmt::skip]
    let bytes = [
        0xE0,                                       // DISCONNECT, flags 0
        0x0D,                                       // remaining length 13
        0x00,                                       // reason code 0x00: normal disconnection
        0x0B,                                       // property length 11
        0x11, 0x00, 0x00, 0x00, 0x00,               //   session expiry interval 0
        0x1F, 0x00, 0x03, b'b', b'y', b'e',         //   reason string "bye"
    ];
    let expected = Packet::Disconnect(Disconnect {
        reason: ReasonCode::NORMAL_DISCONNECTION,
        properties: props(Properties {
            session_expiry_interval_secs: Some(0),
            reason_string: Some(s("bye")),
            ..Properties::default()
        }),
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn disconnect_v5_from_server_with_server_reference() {
    #[rustfmt::skip]
    let bytes = [
        0xE0,                                       // DISCONNECT, flags 0
        0x0C,                                       // remaining length 12
        0x9C,                                       // reason code 0x9C: use another server
        0x0A,                                       // property length 10
        0x1C, 0x00, 0x01, b's',                     //   server reference "s"
        0x1F, 0x00, 0x03, b'g', b'o', b'!',         //   reason string "go!"
    ];
    let expected = Packet::Disconnect(Disconnect {
        reason: ReasonCode::USE_ANOTHER_SERVER,
        properties: props(Properties {
            server_reference: Some(s("s")),
            reason_string: Some(s("go!")),
            ..Properties::default()
        }),
    });
    assert_golden(V5, &bytes, &expected);
}

// ---------------------------------------------------------------------------------------
// AUTH (section 3.15)
// ---------------------------------------------------------------------------------------

#[test]
fn auth_v5_short_form_is_success() {
    // Section 3.15.2.1: a remaining length of 0 means success and no properties.
    #[rustfmt::skip]
    let bytes = [
        0xF0,                                       // AUTH, flags 0
        0x00,                                       // remaining length 0
    ];
    assert_golden(V5, &bytes, &Packet::Auth(Auth::default()));
}

#[test]
fn auth_v5_continue_with_method_and_data() {
    #[rustfmt::skip]
    let bytes = [
        0xF0,                                       // AUTH, flags 0
        0x10,                                       // remaining length 16
        0x18,                                       // reason code 0x18: continue authentication
        0x0E,                                       // property length 14
        0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M', //   authentication method "SCRAM"
        0x16, 0x00, 0x03, 0x01, 0x02, 0x03,         //   authentication data 01 02 03
    ];
    let expected = Packet::Auth(Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: props(Properties {
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(Bytes::from_static(&[0x01, 0x02, 0x03])),
            ..Properties::default()
        }),
    });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn auth_v5_re_authenticate_without_properties() {
    #[rustfmt::skip]
    let bytes = [
        0xF0,                                       // AUTH, flags 0
        0x02,                                       // remaining length 2
        0x19,                                       // reason code 0x19: re-authenticate
        0x00,                                       // property length 0
    ];
    let expected = Packet::Auth(Auth { reason: ReasonCode::RE_AUTHENTICATE, properties: None });
    assert_golden(V5, &bytes, &expected);
}

#[test]
fn auth_v5_reason_without_property_length_is_accepted() {
    #[rustfmt::skip]
    let bytes = [
        0xF0,                                       // AUTH, flags 0
        0x01,                                       // remaining length 1
        0x18,                                       // reason code 0x18, no property length
    ];
    let canonical = [0xF0, 0x02, 0x18, 0x00];
    let expected = Packet::Auth(Auth { reason: ReasonCode::CONTINUE_AUTHENTICATION, properties: None });
    assert_decodes_to_canonical(V5, &bytes, &expected, &canonical);
}

// ---------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------

#[test]
fn four_byte_remaining_length_frame_is_recognised() {
    // Section 1.5.5: 268,435,455 is FF FF FF 7F, the largest remaining length.
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    assert_eq!(check_frame(&header, usize::MAX), Ok(FrameStatus::Incomplete { needed: 268_435_455 }));
    // 2,097,152 is 80 80 80 01, the smallest that needs four bytes.
    let header = [0x30, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(check_frame(&header, usize::MAX), Ok(FrameStatus::Incomplete { needed: 2_097_152 }));
    // 16,384 is 80 80 01, the smallest that needs three.
    let header = [0x30, 0x80, 0x80, 0x01];
    assert_eq!(check_frame(&header, usize::MAX), Ok(FrameStatus::Incomplete { needed: 16_384 }));
}

#[test]
fn non_minimal_remaining_length_is_accepted() {
    // 5.0 section 1.5.5 asks senders for the shortest encoding (5.0 [MQTT-1.5.5-1]); the
    // decoder tolerates a longer one, as 3.1.1 receivers do, and re-encodes it in the shortest.
    #[rustfmt::skip]
    let bytes = [
        0xC0,                                       // PINGREQ, flags 0
        0x80, 0x00,                                 // remaining length 0 in two bytes
    ];
    assert_decodes_to_canonical(V3_1_1, &bytes, &Packet::PingReq, &[0xC0, 0x00]);
}

#[test]
fn empty_buffer_needs_a_fixed_header() {
    let mut d = Decoder::with_version(V5, PACKET_SIZE_MAX_BYTES);
    assert!(matches!(d.decode(&mut BytesMut::new()), Ok(Decoded::Incomplete { needed: 2 })));
}
