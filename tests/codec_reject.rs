//! One negative test per validation rule of the decoder, each naming the rule's
//! conformance id or section, with the error it gives and the MQTT 5 reason code the
//! broker would send for it (0x81 malformed packet, 0x82 protocol error, 0x84
//! unsupported protocol version, 0x8F topic filter invalid, 0x90 topic name invalid,
//! 0x94 topic alias invalid, 0x95 packet too large).
//!
//! Where a rule has a valid twin (the same bytes with one thing changed) the twin is
//! decoded too, so a test cannot pass because its bytes were wrong somewhere else.

use bytes::BytesMut;
use ringmq::protocol::{
    check_frame, DecodeError, Decoded, Decoder, FrameStatus, Packet, ProtocolVersion, ReasonCode,
};

use DecodeError as E;
use ProtocolVersion::{V3_1, V3_1_1, V5};

const PACKET_SIZE_MAX_BYTES: usize = 1 << 20;
const MALFORMED: u8 = 0x81;
const PROTOCOL_ERROR: u8 = 0x82;
const UNSUPPORTED_VERSION: u8 = 0x84;
const TOPIC_FILTER_INVALID: u8 = 0x8F;
const TOPIC_NAME_INVALID: u8 = 0x90;
const TOPIC_ALIAS_INVALID: u8 = 0x94;
const PACKET_TOO_LARGE: u8 = 0x95;

// ---------------------------------------------------------------------------------------
// Byte builders. The golden tests spell every byte out; here the bodies are built so
// that each test shows the one field that breaks the rule.
// ---------------------------------------------------------------------------------------

fn varint(mut v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        out.push(if v > 0 { b | 0x80 } else { b });
        if v == 0 {
            return out;
        }
    }
}

/// A whole packet: first byte, remaining length, body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    [&[first][..], &varint(body.len()), body].concat()
}

/// A UTF-8 string or binary field: two-byte length, then the bytes.
fn field(b: &[u8]) -> Vec<u8> {
    [&(b.len() as u16).to_be_bytes()[..], b].concat()
}

/// A property block: its length, then the properties.
fn block(props: &[u8]) -> Vec<u8> {
    [varint(props.len()), props.to_vec()].concat()
}

/// A CONNECT at `level` with protocol name `name`; `props` is the CONNECT property block's
/// content (5.0 only) and `payload` everything after it.
fn connect(name: &[u8], level: u8, flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = [field(name), vec![level, flags, 0x00, 0x3C]].concat();
    if level == 5 {
        body.extend(block(props));
    }
    body.extend_from_slice(payload);
    frame(0x10, &body)
}

fn connect_v4(flags: u8, payload: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 4, flags, &[], payload)
}

fn connect_v5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 5, flags, props, payload)
}

/// A 5.0 PUBLISH at QoS 1 (packet identifier 1) to "t" with these properties.
fn publish_v5_props(props: &[u8]) -> Vec<u8> {
    frame(0x32, &[field(b"t"), vec![0x00, 0x01], block(props), b"x".to_vec()].concat())
}

/// A QoS 0 PUBLISH to `topic` at level `v`.
fn publish_to(v: ProtocolVersion, topic: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    if v.is_v5() {
        body.push(0x00);
    }
    body.extend_from_slice(b"x");
    frame(0x30, &body)
}

/// A SUBSCRIBE (packet identifier 1) with one filter and options byte.
fn subscribe(v: ProtocolVersion, filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if v.is_v5() {
        body.push(0x00);
    }
    body.extend(field(filter));
    body.push(options);
    frame(0x82, &body)
}

/// An UNSUBSCRIBE (packet identifier 1) with one filter.
fn unsubscribe(v: ProtocolVersion, filter: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if v.is_v5() {
        body.push(0x00);
    }
    body.extend(field(filter));
    frame(0xA2, &body)
}

// ---------------------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------------------

fn decode(mut d: Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    d.decode(&mut BytesMut::from(bytes))
}

/// Decodes on a connection at level `v` and expects `error`, whose MQTT 5 reason code
/// is `reason`.
#[track_caller]
fn assert_rejects(v: ProtocolVersion, bytes: &[u8], error: DecodeError, reason: u8) {
    let got = decode(Decoder::with_version(v, PACKET_SIZE_MAX_BYTES), bytes);
    assert_eq!(got.as_ref().err(), Some(&error), "{v:?} {bytes:02X?} gave {got:?}");
    assert_eq!(error.reason_code(), ReasonCode(reason), "reason code of {error:?}");
}

/// As [`assert_rejects`], for a server's first packet.
#[track_caller]
fn assert_rejects_first(bytes: &[u8], error: DecodeError, reason: u8) {
    let got = decode(Decoder::server(PACKET_SIZE_MAX_BYTES), bytes);
    assert_eq!(got.as_ref().err(), Some(&error), "{bytes:02X?} gave {got:?}");
    assert_eq!(error.reason_code(), ReasonCode(reason), "reason code of {error:?}");
}

#[track_caller]
fn accept(v: ProtocolVersion, bytes: &[u8]) -> Packet {
    match decode(Decoder::with_version(v, PACKET_SIZE_MAX_BYTES), bytes) {
        Ok(Decoded::Packet(p)) => p,
        other => panic!("{v:?} {bytes:02X?} should decode, gave {other:?}"),
    }
}

#[track_caller]
fn accept_first(bytes: &[u8]) -> Packet {
    match decode(Decoder::server(PACKET_SIZE_MAX_BYTES), bytes) {
        Ok(Decoded::Packet(p)) => p,
        other => panic!("{bytes:02X?} should decode, gave {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Fixed header (sections 1.5.5, 2.1)
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_remaining_length_of_five_bytes() {
    // "The maximum number of bytes in the Variable Byte Integer field is four" (5.0 section 1.5.5).
    let header = [0x30, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(check_frame(&header, usize::MAX), Err(E::RemainingLengthTooLong));
    assert_rejects(V5, &header, E::RemainingLengthTooLong, MALFORMED);
    assert_rejects_first(&[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], E::RemainingLengthTooLong, MALFORMED);
    // Four bytes is fine: the frame is merely incomplete.
    assert_eq!(
        check_frame(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], usize::MAX),
        Ok(FrameStatus::Incomplete { needed: 268_435_455 })
    );
}

#[test]
fn rejects_five_byte_variable_byte_integer_in_properties() {
    // Property length and subscription identifier are variable byte integers too.
    let long_block = frame(0xE0, &[0x00, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_rejects(V5, &long_block, E::RemainingLengthTooLong, MALFORMED);
    let long_sub_id = frame(0x82, &[0x00, 0x01, 0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_rejects(V5, &long_sub_id, E::RemainingLengthTooLong, MALFORMED);
}

#[test]
fn rejects_packet_too_large_from_the_header_alone() {
    // 5.0 [MQTT-3.2.2-15]: checked against the maximum packet size as soon as the remaining
    // length is known, before any of the body is buffered.
    let header = [0x30, 0x80, 0x01]; // PUBLISH, remaining length 128: 131 bytes in all
    assert_eq!(check_frame(&header, 130), Err(E::PacketTooLarge(131)));
    let mut d = Decoder::with_version(V3_1_1, 130);
    assert_eq!(d.decode(&mut BytesMut::from(&header[..])).err(), Some(E::PacketTooLarge(131)));
    assert_eq!(E::PacketTooLarge(131).reason_code(), ReasonCode(PACKET_TOO_LARGE));
    // The first packet too.
    let mut d = Decoder::server(130);
    assert_eq!(d.decode(&mut BytesMut::from(&[0x10, 0x80, 0x01][..])).err(), Some(E::PacketTooLarge(131)));
    // At the limit it is only incomplete.
    assert_eq!(check_frame(&header, 131), Ok(FrameStatus::Incomplete { needed: 128 }));
    // The limit counts the fixed header: a 2-byte PINGREQ does not fit in 1.
    assert_eq!(check_frame(&[0xC0, 0x00], 1), Err(E::PacketTooLarge(2)));
}

#[test]
fn rejects_reserved_packet_type_0() {
    // Type 0 is reserved (3.1.1 section 2.2.1, 5.0 section 2.1.2).
    assert_rejects(V3_1_1, &[0x00, 0x00], E::ReservedPacketType, MALFORMED);
    assert_rejects(V5, &[0x00, 0x02, 0x00, 0x01], E::ReservedPacketType, MALFORMED);
}

/// A valid packet of each non-PUBLISH type at level 5 and the flags it must carry.
fn typed_packets_v5() -> Vec<(&'static str, Vec<u8>, u8)> {
    vec![
        ("CONNECT", connect_v5(0x02, &[], &field(b"c")), 0),
        ("CONNACK", frame(0x20, &[0x00, 0x00, 0x00]), 0),
        ("PUBACK", frame(0x40, &[0x00, 0x01]), 0),
        ("PUBREC", frame(0x50, &[0x00, 0x01]), 0),
        ("PUBREL", frame(0x62, &[0x00, 0x01]), 0b0010),
        ("PUBCOMP", frame(0x70, &[0x00, 0x01]), 0),
        ("SUBSCRIBE", subscribe(V5, b"a", 0x00), 0b0010),
        ("SUBACK", frame(0x90, &[0x00, 0x01, 0x00, 0x00]), 0),
        ("UNSUBSCRIBE", unsubscribe(V5, b"a"), 0b0010),
        ("UNSUBACK", frame(0xB0, &[0x00, 0x01, 0x00, 0x00]), 0),
        ("PINGREQ", frame(0xC0, &[]), 0),
        ("PINGRESP", frame(0xD0, &[]), 0),
        ("DISCONNECT", frame(0xE0, &[]), 0),
        ("AUTH", frame(0xF0, &[]), 0),
    ]
}

#[test]
fn rejects_reserved_fixed_header_flags_for_each_packet_type() {
    // 3.1.1 [MQTT-2.2.2-2], 5.0 [MQTT-2.1.3-1]: "If invalid flags are received it is a Malformed
    // Packet".
    for (name, bytes, expected_flags) in typed_packets_v5() {
        accept(V5, &bytes);
        for flags in (0..16u8).filter(|&f| f != expected_flags) {
            let mut bad = bytes.clone();
            bad[0] = (bad[0] & 0xF0) | flags;
            let got = decode(Decoder::with_version(V5, PACKET_SIZE_MAX_BYTES), &bad);
            assert_eq!(got.err(), Some(E::InvalidHeaderFlags), "{name} with flags {flags:04b}");
        }
    }
    assert_eq!(E::InvalidHeaderFlags.reason_code(), ReasonCode(MALFORMED));
    // A server's first packet goes through the same check.
    assert_rejects_first(
        &[&[0x11][..], &connect_v4(0x02, &field(b"c"))[1..]].concat(),
        E::InvalidHeaderFlags,
        MALFORMED,
    );
}

#[test]
fn rejects_pubrel_subscribe_unsubscribe_without_flags_0b0010() {
    // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]: bits 3-0 must be 0,0,1,0.
    for v in [V3_1_1, V5] {
        assert_rejects(v, &frame(0x60, &[0x00, 0x01]), E::InvalidHeaderFlags, MALFORMED);
        let sub = subscribe(v, b"a", 0x00);
        assert_rejects(v, &[&[0x80][..], &sub[1..]].concat(), E::InvalidHeaderFlags, MALFORMED);
        let unsub = unsubscribe(v, b"a");
        assert_rejects(v, &[&[0xA0][..], &unsub[1..]].concat(), E::InvalidHeaderFlags, MALFORMED);
    }
}

// ---------------------------------------------------------------------------------------
// QoS and DUP
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_qos_3_in_publish() {
    // [MQTT-3.3.1-4] "If a Server or Client receives a PUBLISH packet which has both QoS
    // bits set to 1 it is a Malformed Packet".
    let body = [field(b"t"), vec![0x00, 0x01], b"x".to_vec()].concat();
    accept(V3_1_1, &frame(0x34, &body));
    assert_rejects(V3_1_1, &frame(0x36, &body), E::InvalidQos, MALFORMED);
    assert_rejects(V5, &frame(0x36, &body), E::InvalidQos, MALFORMED);
}

#[test]
fn rejects_qos_3_in_will() {
    // 3.1.1 [MQTT-3.1.2-14], 5.0 [MQTT-3.1.2-12]: will QoS 3 is a Malformed Packet.
    let payload = [field(b"c"), field(b"w"), field(b"x")].concat();
    accept_first(&connect_v4(0x04 | 0x10, &payload));
    assert_rejects_first(&connect_v4(0x04 | 0x18, &payload), E::InvalidQos, MALFORMED);
    let payload_v5 = [field(b"c"), vec![0x00], field(b"w"), field(b"x")].concat();
    assert_rejects_first(&connect_v5(0x04 | 0x18, &[], &payload_v5), E::InvalidQos, MALFORMED);
}

#[test]
fn rejects_qos_3_in_subscription_options() {
    // 3.1.1 [MQTT-3.8.3-4]: malformed. 5.0 section 3.8.3.1: "It is a Protocol Error if the
    // Maximum QoS field has the value 3".
    accept(V3_1_1, &subscribe(V3_1_1, b"a", 0x02));
    assert_rejects(V3_1_1, &subscribe(V3_1_1, b"a", 0x03), E::InvalidSubscriptionQos, PROTOCOL_ERROR);
    assert_rejects(V5, &subscribe(V5, b"a", 0x03), E::InvalidSubscriptionQos, PROTOCOL_ERROR);
}

#[test]
fn rejects_dup_on_qos_0_publish() {
    // [MQTT-3.3.1-2] "The DUP flag MUST be set to 0 for all QoS 0 messages".
    let body = [field(b"t"), b"x".to_vec()].concat();
    accept(V3_1_1, &frame(0x30, &body));
    assert_rejects(V3_1_1, &frame(0x38, &body), E::DupOnQos0, MALFORMED);
    assert_rejects(V5, &frame(0x39, &[field(b"t"), vec![0x00]].concat()), E::DupOnQos0, MALFORMED);
}

// ---------------------------------------------------------------------------------------
// UTF-8 strings (section 1.5.4)
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_invalid_utf8() {
    // 3.1.1 [MQTT-1.5.3-1], 5.0 [MQTT-1.5.4-1] Ill-formed UTF-8 is a Malformed Packet: a lone
    // continuation byte, a truncated sequence, 0xFF, and an overlong encoding of '/'.
    for bad in [&b"a\x80"[..], b"a\xC3", b"\xFF", b"\xC0\xAF"] {
        assert_rejects(V3_1_1, &publish_to(V3_1_1, bad), E::InvalidUtf8, MALFORMED);
        assert_rejects(V5, &subscribe(V5, bad, 0x00), E::InvalidUtf8, MALFORMED);
        assert_rejects_first(&connect_v4(0x02, &field(bad)), E::InvalidUtf8, MALFORMED);
    }
}

#[test]
fn rejects_utf16_surrogate_encoded_in_utf8() {
    // 3.1.1 [MQTT-1.5.3-1], 5.0 [MQTT-1.5.4-1] U+D800 - U+DFFF must not appear; ED A0 80 is
    // U+D800 in UTF-8 form.
    let surrogate = b"a\xED\xA0\x80";
    assert_rejects(V3_1_1, &publish_to(V3_1_1, surrogate), E::InvalidUtf8, MALFORMED);
    assert_rejects(
        V5,
        &publish_v5_props(&[&[0x26][..], &field(surrogate), &field(b"v")].concat()),
        E::InvalidUtf8,
        MALFORMED,
    );
    assert_rejects(V3_1_1, &unsubscribe(V3_1_1, b"\xED\xBF\xBF"), E::InvalidUtf8, MALFORMED);
}

#[test]
fn rejects_null_character_in_strings() {
    // 3.1.1 [MQTT-1.5.3-2], 5.0 [MQTT-1.5.4-2] A UTF-8 string must not include U+0000.
    assert_rejects(V3_1_1, &publish_to(V3_1_1, b"a\x00b"), E::NullCharacter, MALFORMED);
    assert_rejects_first(&connect_v4(0x02, &field(b"c\x00")), E::NullCharacter, MALFORMED);
    assert_rejects(V5, &subscribe(V5, b"a/\x00", 0x00), E::NullCharacter, MALFORMED);
    let user_property = [&[0x26][..], &field(b"k"), &field(b"\x00")].concat();
    assert_rejects(V5, &publish_v5_props(&user_property), E::NullCharacter, MALFORMED);
    // In binary data and payloads a zero byte is fine.
    accept_first(&connect_v4(0xC2, &[field(b"c"), field(b"u"), field(b"\x00")].concat()));
}

// ---------------------------------------------------------------------------------------
// Topic names and filters (sections 4.7, 4.8.2)
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_wildcard_in_publish_topic() {
    // [MQTT-3.3.2-2] The topic name in a PUBLISH must not contain wildcards.
    for topic in [&b"a/+"[..], b"+", b"#", b"a/#", b"a+b", b"a#"] {
        for v in [V3_1, V3_1_1, V5] {
            assert_rejects(v, &publish_to(v, topic), E::WildcardInTopicName, TOPIC_NAME_INVALID);
        }
    }
}

#[test]
fn rejects_wildcard_in_will_topic() {
    // The will topic (3.1.1 [MQTT-3.1.3-10], 5.0 [MQTT-3.1.3-11]) is a topic name [MQTT-3.3.2-2].
    for topic in [&b"w/+"[..], b"#"] {
        let payload = [field(b"c"), field(topic), field(b"x")].concat();
        assert_rejects_first(&connect_v4(0x06, &payload), E::WildcardInTopicName, TOPIC_NAME_INVALID);
        let payload_v5 = [field(b"c"), vec![0x00], field(topic), field(b"x")].concat();
        assert_rejects_first(&connect_v5(0x06, &[], &payload_v5), E::WildcardInTopicName, TOPIC_NAME_INVALID);
    }
}

#[test]
fn rejects_empty_publish_topic_at_level_4() {
    // [MQTT-4.7.3-1] Topic names must be at least one character long.
    assert_rejects(V3_1_1, &publish_to(V3_1_1, b""), E::EmptyTopicName, TOPIC_NAME_INVALID);
    assert_rejects(V3_1, &publish_to(V3_1, b""), E::EmptyTopicName, TOPIC_NAME_INVALID);
}

#[test]
fn rejects_empty_publish_topic_without_alias_at_level_5() {
    // [MQTT-3.3.2-1] [MQTT-4.7.3-1]: only a topic alias may stand in for the topic name.
    assert_rejects(V5, &publish_to(V5, b""), E::EmptyTopicName, TOPIC_NAME_INVALID);
    let no_alias = frame(0x30, &[field(b""), block(&[0x01, 0x01]), b"x".to_vec()].concat());
    assert_rejects(V5, &no_alias, E::EmptyTopicName, TOPIC_NAME_INVALID);
}

#[test]
fn accepts_empty_publish_topic_with_alias_at_level_5() {
    let aliased = frame(0x30, &[field(b""), block(&[0x23, 0x00, 0x01]), b"x".to_vec()].concat());
    let Packet::Publish(p) = accept(V5, &aliased) else { panic!("not a PUBLISH") };
    assert!(p.topic.is_empty());
    assert_eq!(p.properties.and_then(|p| p.topic_alias), Some(1));
}

#[test]
fn rejects_empty_will_topic() {
    // [MQTT-4.7.3-1]
    let payload = [field(b"c"), field(b""), field(b"x")].concat();
    assert_rejects_first(&connect_v4(0x06, &payload), E::EmptyTopicName, TOPIC_NAME_INVALID);
}

#[test]
fn rejects_invalid_topic_filters() {
    // 3.1.1 [MQTT-4.7.1-2], 5.0 [MQTT-4.7.1-1] '#' alone and last; 3.1.1 [MQTT-4.7.1-3],
    // 5.0 [MQTT-4.7.1-2] '+' alone in its level; [MQTT-4.7.3-1] not empty.
    for filter in [&b"a/#/b"[..], b"a#", b"a/b+", b"+a", b"", b"##", b"a/#/"] {
        for v in [V3_1_1, V5] {
            assert_rejects(v, &subscribe(v, filter, 0x00), E::InvalidTopicFilter, TOPIC_FILTER_INVALID);
            assert_rejects(v, &unsubscribe(v, filter), E::InvalidTopicFilter, TOPIC_FILTER_INVALID);
        }
    }
    // Their valid neighbours.
    for filter in [&b"a/#"[..], b"#", b"a/+/b", b"+", b"/", b"$SYS/#"] {
        accept(V5, &subscribe(V5, filter, 0x00));
        accept(V3_1_1, &unsubscribe(V3_1_1, filter));
    }
}

#[test]
fn rejects_invalid_shared_filters() {
    // 5.0 [MQTT-4.8.2-1] the share name is at least one character; 5.0 [MQTT-4.8.2-2] it has
    // no '/', '+' or '#' and is followed by '/' and a valid topic filter.
    for filter in [
        &b"$share/"[..],
        b"$share/g",
        b"$share/g/",
        b"$share/g+/a",
        b"$share//a",
        b"$share/#/a",
        b"$share/g/a#",
    ] {
        for v in [V3_1_1, V5] {
            assert_rejects(v, &subscribe(v, filter, 0x00), E::InvalidSharedFilter, TOPIC_FILTER_INVALID);
            assert_rejects(v, &unsubscribe(v, filter), E::InvalidSharedFilter, TOPIC_FILTER_INVALID);
        }
    }
    accept(V5, &subscribe(V5, b"$share/g/a/#", 0x00));
    accept(V5, &unsubscribe(V5, b"$share/g/+"));
}

// ---------------------------------------------------------------------------------------
// Packet identifiers (section 2.2.1)
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_packet_id_0() {
    // 3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3] SUBSCRIBE, UNSUBSCRIBE and PUBLISH at QoS > 0
    // carry a non-zero identifier, and the acknowledgements echo it.
    let publish_qos1 = frame(0x32, &[field(b"t"), vec![0x00, 0x00], b"x".to_vec()].concat());
    let publish_qos2 = frame(0x34, &[field(b"t"), vec![0x00, 0x00], b"x".to_vec()].concat());
    let cases = [
        ("PUBLISH QoS 1", publish_qos1),
        ("PUBLISH QoS 2", publish_qos2),
        ("SUBSCRIBE", frame(0x82, &[&[0x00, 0x00][..], &field(b"a"), &[0x00]].concat())),
        ("UNSUBSCRIBE", frame(0xA2, &[&[0x00, 0x00][..], &field(b"a")].concat())),
        ("PUBACK", frame(0x40, &[0x00, 0x00])),
        ("PUBREC", frame(0x50, &[0x00, 0x00])),
        ("PUBREL", frame(0x62, &[0x00, 0x00])),
        ("PUBCOMP", frame(0x70, &[0x00, 0x00])),
        ("SUBACK", frame(0x90, &[0x00, 0x00, 0x00])),
        ("UNSUBACK", frame(0xB0, &[0x00, 0x00])),
    ];
    for (name, bytes) in cases {
        let got = decode(Decoder::with_version(V3_1_1, PACKET_SIZE_MAX_BYTES), &bytes);
        assert_eq!(got.err(), Some(E::ZeroPacketId), "{name}");
    }
    assert_rejects(V5, &frame(0x40, &[0x00, 0x00, 0x10]), E::ZeroPacketId, PROTOCOL_ERROR);
    assert_rejects(
        V5,
        &frame(0x82, &[&[0x00, 0x00, 0x00][..], &field(b"a"), &[0x00]].concat()),
        E::ZeroPacketId,
        PROTOCOL_ERROR,
    );
}

#[test]
fn rejects_subscribe_without_filters() {
    // 3.1.1 [MQTT-3.8.3-3], 5.0 [MQTT-3.8.3-2]: "A SUBSCRIBE packet with no Payload is a
    // Protocol Error".
    assert_rejects(V3_1_1, &frame(0x82, &[0x00, 0x01]), E::EmptySubscribe, PROTOCOL_ERROR);
    assert_rejects(V5, &frame(0x82, &[0x00, 0x01, 0x00]), E::EmptySubscribe, PROTOCOL_ERROR);
    assert_rejects(V5, &frame(0x82, &[0x00, 0x01, 0x02, 0x0B, 0x01]), E::EmptySubscribe, PROTOCOL_ERROR);
}

#[test]
fn rejects_unsubscribe_without_filters() {
    // [MQTT-3.10.3-2] "An UNSUBSCRIBE packet with no Payload is a Protocol Error".
    assert_rejects(V3_1_1, &frame(0xA2, &[0x00, 0x01]), E::EmptyUnsubscribe, PROTOCOL_ERROR);
    assert_rejects(V5, &frame(0xA2, &[0x00, 0x01, 0x00]), E::EmptyUnsubscribe, PROTOCOL_ERROR);
}

// ---------------------------------------------------------------------------------------
// Subscription options (section 3.8.3.1)
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_reserved_subscription_option_bits() {
    // 3.1.1 [MQTT-3.8.3-4]: bits 7-2 reserved. 5.0 [MQTT-3.8.3-5]: bits 7-6 reserved;
    // either way a Malformed Packet.
    for bit in 2..8 {
        let options = 0x01 | 1 << bit;
        assert_rejects(V3_1_1, &subscribe(V3_1_1, b"a", options), E::InvalidSubscriptionOptions, MALFORMED);
    }
    for bit in 6..8 {
        let options = 0x01 | 1 << bit;
        assert_rejects(V5, &subscribe(V5, b"a", options), E::InvalidSubscriptionOptions, MALFORMED);
    }
    // Bits 2-5 are options in 5.0.
    accept(V5, &subscribe(V5, b"a", 0x2D));
}

#[test]
fn rejects_retain_handling_3() {
    // Section 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3".
    accept(V5, &subscribe(V5, b"a", 0x20));
    assert_rejects(V5, &subscribe(V5, b"a", 0x30), E::InvalidRetainHandling, PROTOCOL_ERROR);
}

#[test]
fn rejects_no_local_on_shared_subscription() {
    // 5.0 [MQTT-3.8.3-4] "It is a Protocol Error to set the No Local bit to 1 on a
    // Shared Subscription".
    accept(V5, &subscribe(V5, b"$share/g/a", 0x01));
    accept(V5, &subscribe(V5, b"a", 0x05));
    assert_rejects(V5, &subscribe(V5, b"$share/g/a", 0x05), E::NoLocalOnSharedSubscription, PROTOCOL_ERROR);
    // In 3.1.1 that bit is reserved.
    assert_rejects(V3_1_1, &subscribe(V3_1_1, b"$share/g/a", 0x05), E::InvalidSubscriptionOptions, MALFORMED);
}

// ---------------------------------------------------------------------------------------
// Properties (section 2.2.2)
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_duplicate_property() {
    // Each property's section: "It is a Protocol Error to include the <property> more than once".
    let session_expiry = [0x11, 0x00, 0x00, 0x00, 0x0A];
    let twice = [session_expiry, session_expiry].concat();
    assert_rejects_first(&connect_v5(0x02, &twice, &field(b"c")), E::DuplicateProperty(0x11), PROTOCOL_ERROR);
    let alias_twice = [0x23, 0x00, 0x01, 0x23, 0x00, 0x02];
    assert_rejects(V5, &publish_v5_props(&alias_twice), E::DuplicateProperty(0x23), PROTOCOL_ERROR);
    assert_rejects(
        V5,
        &publish_v5_props(&[0x01, 0x00, 0x01, 0x01]),
        E::DuplicateProperty(0x01),
        PROTOCOL_ERROR,
    );
    let reason_twice = [&[0x1F][..], &field(b"a"), &[0x1F], &field(b"b")].concat();
    assert_rejects(
        V5,
        &frame(0xE0, &[&[0x80][..], &block(&reason_twice)].concat()),
        E::DuplicateProperty(0x1F),
        PROTOCOL_ERROR,
    );
    // SUBSCRIBE carries one subscription identifier (section 3.8.2.1.2); PUBLISH may carry several.
    let sub_id_twice = [0x0B, 0x01, 0x0B, 0x02];
    let sub = frame(0x82, &[&[0x00, 0x01][..], &block(&sub_id_twice), &field(b"a"), &[0x00]].concat());
    assert_rejects(V5, &sub, E::DuplicateProperty(0x0B), PROTOCOL_ERROR);
    accept(V5, &publish_v5_props(&sub_id_twice));
    // User properties may repeat, even with the same name (section 3.1.2.11.8).
    let user = [&[0x26][..], &field(b"k"), &field(b"v")].concat();
    accept(V5, &publish_v5_props(&[user.clone(), user].concat()));
}

#[test]
fn rejects_property_not_allowed_in_packet() {
    // Section 2.2.2.2: "A Control Packet which contains an Identifier which is not valid
    // for its packet type ... is a Malformed Packet".
    let alias = [0x23, 0x00, 0x01];
    assert_rejects_first(&connect_v5(0x02, &alias, &field(b"c")), E::MisplacedProperty(0x23), MALFORMED);
    let will_delay = [0x18, 0x00, 0x00, 0x00, 0x05];
    assert_rejects_first(&connect_v5(0x02, &will_delay, &field(b"c")), E::MisplacedProperty(0x18), MALFORMED);
    // Session expiry belongs to CONNECT, not to the will.
    let will = [field(b"c"), block(&[0x11, 0x00, 0x00, 0x00, 0x05]), field(b"w"), field(b"x")].concat();
    assert_rejects_first(&connect_v5(0x06, &[], &will), E::MisplacedProperty(0x11), MALFORMED);
    let will_ok = [field(b"c"), block(&will_delay), field(b"w"), field(b"x")].concat();
    accept_first(&connect_v5(0x06, &[], &will_ok));
    // A reason string in PUBLISH, a subscription identifier in UNSUBSCRIBE, a topic alias
    // in PUBACK, server keep alive in DISCONNECT.
    let reason_string = [&[0x1F][..], &field(b"r")].concat();
    assert_rejects(V5, &publish_v5_props(&reason_string), E::MisplacedProperty(0x1F), MALFORMED);
    let unsub = frame(0xA2, &[&[0x00, 0x01][..], &block(&[0x0B, 0x01]), &field(b"a")].concat());
    assert_rejects(V5, &unsub, E::MisplacedProperty(0x0B), MALFORMED);
    let puback = frame(0x40, &[&[0x00, 0x01, 0x00][..], &block(&alias)].concat());
    assert_rejects(V5, &puback, E::MisplacedProperty(0x23), MALFORMED);
    let disconnect = frame(0xE0, &[&[0x00][..], &block(&[0x13, 0x00, 0x0A])].concat());
    assert_rejects(V5, &disconnect, E::MisplacedProperty(0x13), MALFORMED);
}

#[test]
fn rejects_unknown_property_id() {
    // Identifiers that section 2.2.2.2 does not define, including two-byte ones.
    // An identifier too wide for a byte is reported as 0xFF.
    let ids =
        [(&[0x00][..], 0x00), (&[0x04], 0x04), (&[0x2B], 0x2B), (&[0x80, 0x01], 0x80), (&[0x80, 0x02], 0xFF)];
    for (id, reported) in ids {
        let props = [id, &[0x00]].concat();
        assert_rejects(V5, &publish_v5_props(&props), E::UnknownProperty(reported), MALFORMED);
    }
}

#[test]
fn rejects_out_of_range_property_values() {
    let cases: &[(&str, Vec<u8>, DecodeError, u8)] = &[
        // Section 3.1.2.11.3: "It is a Protocol Error ... for it to have the value 0".
        (
            "receive maximum 0",
            connect_v5(0x02, &[0x21, 0x00, 0x00], &field(b"c")),
            E::InvalidPropertyValue(0x21),
            PROTOCOL_ERROR,
        ),
        // Section 3.1.2.11.4: "... or for the value to be set to zero".
        (
            "maximum packet size 0",
            connect_v5(0x02, &[0x27, 0, 0, 0, 0], &field(b"c")),
            E::InvalidPropertyValue(0x27),
            PROTOCOL_ERROR,
        ),
        // Section 3.1.2.11.7: "... or to have a value other than 0 or 1".
        (
            "request problem information 2",
            connect_v5(0x02, &[0x17, 0x02], &field(b"c")),
            E::InvalidPropertyValue(0x17),
            PROTOCOL_ERROR,
        ),
        (
            "request response information 2",
            connect_v5(0x02, &[0x19, 0x02], &field(b"c")),
            E::InvalidPropertyValue(0x19),
            PROTOCOL_ERROR,
        ),
    ];
    for (name, bytes, error, reason) in cases {
        let got = decode(Decoder::server(PACKET_SIZE_MAX_BYTES), bytes);
        assert_eq!(got.err(), Some(*error), "{name}");
        assert_eq!(error.reason_code(), ReasonCode(*reason), "{name}");
    }
    // Section 3.3.2.3.2: the payload format indicator is 0 or 1.
    assert_rejects(V5, &publish_v5_props(&[0x01, 0x02]), E::InvalidPropertyValue(0x01), MALFORMED);
    // Section 3.8.2.1.2: "It is a Protocol Error if the Subscription Identifier has a value of 0".
    let sub = frame(0x82, &[&[0x00, 0x01][..], &block(&[0x0B, 0x00]), &field(b"a"), &[0x00]].concat());
    assert_rejects(V5, &sub, E::InvalidPropertyValue(0x0B), PROTOCOL_ERROR);
    assert_rejects(V5, &publish_v5_props(&[0x0B, 0x00]), E::InvalidPropertyValue(0x0B), PROTOCOL_ERROR);
    // 5.0 [MQTT-3.3.2-8] "A sender MUST NOT send a PUBLISH packet containing a Topic Alias
    // which has the value 0".
    assert_rejects(
        V5,
        &publish_v5_props(&[0x23, 0x00, 0x00]),
        E::InvalidPropertyValue(0x23),
        TOPIC_ALIAS_INVALID,
    );
    // 5.0 [MQTT-3.3.2-14] The response topic is a topic name: no wildcards.
    let response_topic = [&[0x08][..], &field(b"r/#")].concat();
    assert_rejects(V5, &publish_v5_props(&response_topic), E::InvalidPropertyValue(0x08), MALFORMED);
    // Sections 3.2.2.3.4, 3.2.2.3.5, 3.2.2.3.11 - 3.2.2.3.13: 0 or 1, else a Protocol Error.
    for id in [0x24, 0x25, 0x28, 0x29, 0x2A] {
        let connack = frame(0x20, &[&[0x00, 0x00][..], &block(&[id, 0x02])].concat());
        assert_rejects(V5, &connack, E::InvalidPropertyValue(id), PROTOCOL_ERROR);
        accept(V5, &frame(0x20, &[&[0x00, 0x00][..], &block(&[id, 0x01])].concat()));
    }
}

#[test]
fn rejects_property_block_longer_than_packet() {
    // The property length says 10 bytes; 3 follow.
    let bytes = frame(0x30, &[&field(b"t")[..], &[0x0A, 0x23, 0x00, 0x01]].concat());
    assert_rejects(V5, &bytes, E::Truncated, MALFORMED);
    // A property cut short inside its block.
    let bytes = frame(0x30, &[&field(b"t")[..], &[0x02, 0x23, 0x00]].concat());
    assert_rejects(V5, &bytes, E::Truncated, MALFORMED);
}

// ---------------------------------------------------------------------------------------
// CONNECT (section 3.1)
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_protocol_name_that_does_not_match_level() {
    // [MQTT-3.1.2-1]: "MQIsdp" goes with level 3, "MQTT" with 4 and 5.
    let client = field(b"c");
    accept_first(&connect(b"MQIsdp", 3, 0x02, &[], &client));
    assert_rejects_first(
        &connect(b"MQTT", 3, 0x02, &[], &client),
        E::InvalidProtocolName,
        UNSUPPORTED_VERSION,
    );
    assert_rejects_first(
        &connect(b"MQIsdp", 4, 0x02, &[], &client),
        E::InvalidProtocolName,
        UNSUPPORTED_VERSION,
    );
    assert_rejects_first(
        &connect(b"MQIsdp", 5, 0x02, &[], &client),
        E::InvalidProtocolName,
        UNSUPPORTED_VERSION,
    );
    assert_rejects_first(
        &connect(b"mqtt", 4, 0x02, &[], &client),
        E::InvalidProtocolName,
        UNSUPPORTED_VERSION,
    );
    assert_rejects_first(
        &connect(b"MQTT\x00", 4, 0x02, &[], &client),
        E::InvalidProtocolName,
        UNSUPPORTED_VERSION,
    );
}

#[test]
fn rejects_unsupported_protocol_level() {
    // [MQTT-3.1.2-2]: the server answers 0x84 (5.0) / return code 1 (3.1.1).
    for level in [0, 1, 2, 6, 0x84, 0xFF] {
        let bytes = connect(b"MQTT", level, 0x02, &[], &field(b"c"));
        assert_rejects_first(&bytes, E::UnsupportedProtocolLevel(level), UNSUPPORTED_VERSION);
    }
}

#[test]
fn rejects_connect_reserved_flag() {
    // [MQTT-3.1.2-3] "If the reserved flag is not 0 it is a Malformed Packet".
    assert_rejects_first(&connect_v4(0x03, &field(b"c")), E::ConnectReservedFlag, MALFORMED);
    assert_rejects_first(&connect_v5(0x01, &[], &field(b"c")), E::ConnectReservedFlag, MALFORMED);
}

#[test]
fn rejects_will_qos_or_retain_without_will_flag() {
    // 3.1.1 [MQTT-3.1.2-13] [MQTT-3.1.2-15], 5.0 [MQTT-3.1.2-11] [MQTT-3.1.2-13].
    for flags in [0x02 | 0x08, 0x02 | 0x10, 0x02 | 0x20, 0x02 | 0x38] {
        assert_rejects_first(&connect_v4(flags, &field(b"c")), E::WillFlagsWithoutWill, MALFORMED);
        assert_rejects_first(&connect_v5(flags, &[], &field(b"c")), E::WillFlagsWithoutWill, MALFORMED);
    }
}

#[test]
fn rejects_password_without_user_name_in_3_1_1() {
    // 3.1.1 [MQTT-3.1.2-22] "If the User Name Flag is set to 0, the Password Flag MUST be set to 0".
    let payload = [field(b"c"), field(b"pw")].concat();
    assert_rejects_first(&connect_v4(0x42, &payload), E::PasswordWithoutUserName, MALFORMED);
    assert_rejects_first(&connect(b"MQIsdp", 3, 0x42, &[], &payload), E::PasswordWithoutUserName, MALFORMED);
}

#[test]
fn accepts_password_without_user_name_in_5_0() {
    // Section 3.1.2.9 of 5.0 dropped the rule, for passwords that are credentials alone.
    let Packet::Connect(c) = accept_first(&connect_v5(0x42, &[], &[field(b"c"), field(b"pw")].concat()))
    else {
        panic!("not a CONNECT");
    };
    assert_eq!((c.username, c.password.as_deref()), (None, Some(&b"pw"[..])));
}

#[test]
fn rejects_missing_and_extra_connect_fields() {
    // The user name flag is set but the payload ends after the client identifier.
    assert_rejects_first(&connect_v4(0x82, &field(b"c")), E::Truncated, MALFORMED);
    // A byte after the last field the flags announce.
    assert_rejects_first(&connect_v4(0x02, &[field(b"c"), vec![0x00]].concat()), E::TrailingBytes, MALFORMED);
}

#[test]
fn rejects_first_packet_that_is_not_connect() {
    // [MQTT-3.1.0-1] "the first packet sent from the Client to the Server MUST be a CONNECT".
    for bytes in [frame(0xC0, &[]), publish_to(V3_1_1, b"t"), frame(0x20, &[0x00, 0x00]), frame(0xE0, &[])] {
        assert_rejects_first(&bytes, E::FirstPacketNotConnect, PROTOCOL_ERROR);
    }
}

// ---------------------------------------------------------------------------------------
// Fixed-size packets and lengths
// ---------------------------------------------------------------------------------------

#[test]
fn rejects_pingreq_and_pingresp_with_a_body() {
    // Sections 3.12, 3.13: no variable header, no payload.
    for v in [V3_1_1, V5] {
        assert_rejects(v, &frame(0xC0, &[0x00]), E::TrailingBytes, MALFORMED);
        assert_rejects(v, &frame(0xD0, &[0x00]), E::TrailingBytes, MALFORMED);
    }
}

#[test]
fn rejects_v4_acks_with_extra_bytes() {
    // 3.1.1 sections 3.4 - 3.7, 3.11: remaining length 2; 3.14: remaining length 0.
    for first in [0x40, 0x50, 0x62, 0x70, 0xB0] {
        assert_rejects(V3_1_1, &frame(first, &[0x00, 0x01, 0x00]), E::TrailingBytes, MALFORMED);
    }
    assert_rejects(V3_1_1, &frame(0xE0, &[0x00]), E::TrailingBytes, MALFORMED);
    assert_rejects(V3_1_1, &frame(0x20, &[0x00, 0x00, 0x00]), E::TrailingBytes, MALFORMED);
    // 5.0 acks past their property block.
    assert_rejects(V5, &frame(0x40, &[0x00, 0x01, 0x00, 0x00, 0x00]), E::TrailingBytes, MALFORMED);
    assert_rejects(V5, &frame(0xE0, &[0x00, 0x00, 0x00]), E::TrailingBytes, MALFORMED);
    assert_rejects(V5, &frame(0xF0, &[0x00, 0x00, 0x00]), E::TrailingBytes, MALFORMED);
}

#[test]
fn rejects_truncated_fixed_fields() {
    assert_rejects(V3_1_1, &frame(0x40, &[0x00]), E::Truncated, MALFORMED);
    assert_rejects(V3_1_1, &frame(0x20, &[0x00]), E::Truncated, MALFORMED);
    assert_rejects(V3_1_1, &frame(0x32, &field(b"t")), E::Truncated, MALFORMED);
    assert_rejects(V3_1_1, &frame(0x30, &[0x00, 0x05, b'a']), E::Truncated, MALFORMED);
    // A SUBSCRIBE filter without its options byte.
    assert_rejects(
        V3_1_1,
        &frame(0x82, &[&[0x00, 0x01][..], &field(b"a")].concat()),
        E::Truncated,
        MALFORMED,
    );
}

// ---------------------------------------------------------------------------------------
// Reason codes (section 2.4 and each packet's table)
// ---------------------------------------------------------------------------------------

/// Decodes a 5.0 packet built around each reason byte and checks that exactly the
/// spec's table is accepted.
#[track_caller]
fn assert_reason_table(name: &str, table: &[u8], build: impl Fn(u8) -> Vec<u8>) {
    for code in 0..=255u8 {
        let got = decode(Decoder::with_version(V5, PACKET_SIZE_MAX_BYTES), &build(code));
        if table.contains(&code) {
            assert!(matches!(got, Ok(Decoded::Packet(_))), "{name} should accept 0x{code:02X}: {got:?}");
        } else {
            assert_eq!(got.err(), Some(E::InvalidReasonCode(code)), "{name} 0x{code:02X}");
        }
    }
    assert_eq!(E::InvalidReasonCode(0x01).reason_code(), ReasonCode(MALFORMED));
}

#[test]
fn rejects_invalid_reason_codes_in_v5() {
    let connack = [
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99,
        0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    ];
    let puback = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
    let pubrel = [0x00, 0x92];
    let suback = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
    let unsuback = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
    let disconnect = [
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96,
        0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
    ];
    let auth = [0x00, 0x18, 0x19];
    assert_reason_table("CONNACK (3.2.2.2)", &connack, |c| frame(0x20, &[0x00, c, 0x00]));
    assert_reason_table("PUBACK (3.4.2.1)", &puback, |c| frame(0x40, &[0x00, 0x01, c]));
    assert_reason_table("PUBREC (3.5.2.1)", &puback, |c| frame(0x50, &[0x00, 0x01, c, 0x00]));
    assert_reason_table("PUBREL (3.6.2.1)", &pubrel, |c| frame(0x62, &[0x00, 0x01, c]));
    assert_reason_table("PUBCOMP (3.7.2.1)", &pubrel, |c| frame(0x70, &[0x00, 0x01, c]));
    assert_reason_table("SUBACK (3.9.3)", &suback, |c| frame(0x90, &[0x00, 0x01, 0x00, 0x00, c]));
    assert_reason_table("UNSUBACK (3.11.3)", &unsuback, |c| frame(0xB0, &[0x00, 0x01, 0x00, c]));
    assert_reason_table("DISCONNECT (3.14.2.1)", &disconnect, |c| frame(0xE0, &[c]));
    assert_reason_table("AUTH (3.15.2.1)", &auth, |c| frame(0xF0, &[c, 0x00]));
}

#[test]
fn rejects_invalid_v3_return_codes() {
    // 3.1.1 section 3.2.2.3: CONNACK return codes 0-5; section 3.9.3: SUBACK 0, 1, 2, 0x80.
    for code in 6..=255u8 {
        assert_rejects(V3_1_1, &frame(0x20, &[0x00, code]), E::InvalidReasonCode(code), MALFORMED);
    }
    for code in (0..=255u8).filter(|c| !matches!(c, 0..=2 | 0x80)) {
        assert_rejects(V3_1_1, &frame(0x90, &[0x00, 0x01, code]), E::InvalidReasonCode(code), MALFORMED);
    }
}

#[test]
fn rejects_connack_reserved_flags() {
    // 5.0 [MQTT-3.2.2-1] Bits 7-1 of the acknowledge flags are reserved.
    for flags in [0x02, 0x80, 0xFE] {
        assert_rejects(V3_1_1, &frame(0x20, &[flags, 0x00]), E::InvalidConnAckFlags, MALFORMED);
        assert_rejects(V5, &frame(0x20, &[flags, 0x00, 0x00]), E::InvalidConnAckFlags, MALFORMED);
    }
}

#[test]
fn rejects_auth_at_level_4() {
    // AUTH exists only in 5.0 (section 3.15); at 3.x type 15 is reserved.
    assert_rejects(V3_1_1, &frame(0xF0, &[]), E::AuthBeforeV5, PROTOCOL_ERROR);
    assert_rejects(V3_1, &frame(0xF0, &[0x18, 0x00]), E::AuthBeforeV5, PROTOCOL_ERROR);
    accept(V5, &frame(0xF0, &[]));
}
