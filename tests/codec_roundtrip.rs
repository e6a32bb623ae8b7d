//! Property tests: decode(encode(p)) == p for every packet type at every protocol level
//! where the type exists, and a buffer of many encoded packets decodes to all of them in
//! order.
//!
//! The generators make only valid packets: strings are UTF-8 without U+0000, topic names
//! and filters obey section 4.7, packet identifiers are non-zero, each property block
//! holds only the properties its packet allows (the table in section 2.2.2.2) and is
//! either absent or non-empty (an empty block decodes as `None`), and reason codes come
//! from each packet's table in the spec. At levels 3 and 4 packets carry no properties
//! and no MQTT 5 options, CONNACK codes are the ones `ReasonCode::from_v3_connack` gives,
//! and SUBACK codes are 0, 1, 2 and 0x80.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use ringmq::protocol::{
    Ack, Auth, ByteStr, ConnAck, Connect, Decoded, Decoder, Disconnect, LastWill, Packet, Properties,
    PropertyContext, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

const PACKET_SIZE_MAX_BYTES: usize = 1 << 24;

// Reason code tables, from the spec's sections (not from the codec).
/// Section 3.2.2.2.
const CONNACK_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99,
    0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
/// Sections 3.4.2.1 and 3.5.2.1.
const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
/// Sections 3.6.2.1 and 3.7.2.1.
const PUBREL_REASONS: &[u8] = &[0x00, 0x92];
/// Section 3.9.3.
const SUBACK_REASONS: &[u8] = &[0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
/// Section 3.9.3 of 3.1.1.
const SUBACK_V3_RETURN_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];
/// Section 3.11.3.
const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
/// Section 3.14.2.1.
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96,
    0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
/// Section 3.15.2.1.
const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

fn reason(table: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(table).prop_map(ReasonCode)
}

/// Any character but U+0000 (3.1.1 [MQTT-1.5.3-2], 5.0 [MQTT-1.5.4-2]); Rust's `char` already
/// excludes surrogates.
fn string(len: std::ops::Range<usize>) -> impl Strategy<Value = ByteStr> {
    vec(any::<char>().prop_filter("no U+0000", |&c| c != '\0'), len)
        .prop_map(|cs| ByteStr::from(cs.into_iter().collect::<String>()))
}

fn binary(len: std::ops::Range<usize>) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), len).prop_map(Bytes::from)
}

/// One topic level without wildcards; includes `$`, spaces and multi-byte characters.
fn level() -> impl Strategy<Value = String> {
    "[a-z0-9$ é€😀]{0,4}"
}

/// A valid topic name: one or more levels, not empty, no wildcards [MQTT-4.7.3-1].
fn topic_name() -> impl Strategy<Value = ByteStr> {
    vec(level(), 1..5)
        .prop_map(|ls| ls.join("/"))
        .prop_filter("non-empty", |t| !t.is_empty())
        .prop_map(ByteStr::from)
}

/// A valid topic filter: levels that are `+` or plain, and maybe a final `#`.
fn plain_filter() -> impl Strategy<Value = String> {
    (vec(prop_oneof![Just("+".to_owned()), level()], 0..5), any::<bool>())
        .prop_map(|(mut ls, hash)| {
            if hash || ls.is_empty() {
                ls.push("#".to_owned());
            }
            ls.join("/")
        })
        .prop_filter("non-empty", |f| !f.is_empty())
}

/// A filter, shared (`$share/{group}/{filter}`) about one time in four.
fn filter() -> impl Strategy<Value = (ByteStr, bool)> {
    prop_oneof![
        3 => plain_filter().prop_map(|f| (ByteStr::from(f), false)),
        1 => ("[a-z0-9$é]{1,4}", plain_filter())
            .prop_map(|(g, f)| (ByteStr::from(format!("$share/{g}/{f}")), true)),
    ]
}

fn user_properties() -> impl Strategy<Value = Vec<(ByteStr, ByteStr)>> {
    vec((string(0..4), string(0..4)), 0..3)
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    option::of(0u8..=1)
}

/// Every property with a random valid value or absent; [`properties`] keeps those the
/// packet allows.
fn any_properties() -> impl Strategy<Value = Properties> {
    let message = (
        flag(),
        option::of(any::<u32>()),
        option::of(string(0..5)),
        option::of(topic_name()),
        option::of(binary(0..5)),
        vec(1u32..=268_435_455, 0..3),
    );
    let session = (
        option::of(any::<u32>()),
        option::of(string(0..5)),
        option::of(any::<u16>()),
        option::of(string(1..5)),
        option::of(binary(0..5)),
        flag(),
        option::of(any::<u32>()),
        flag(),
    );
    let server = (
        option::of(string(0..5)),
        option::of(string(0..5)),
        option::of(string(0..5)),
        option::of(1u16..),
        option::of(any::<u16>()),
        option::of(1u16..),
        flag(),
        flag(),
        user_properties(),
        option::of(1u32..),
        (flag(), flag(), flag()),
    );
    (message, session, server).prop_map(|(m, s, v)| Properties {
        payload_format_indicator: m.0,
        message_expiry_interval_secs: m.1,
        content_type: m.2,
        response_topic: m.3,
        correlation_data: m.4,
        subscription_identifiers: m.5,
        session_expiry_interval_secs: s.0,
        assigned_client_identifier: s.1,
        server_keep_alive_secs: s.2,
        authentication_method: s.3,
        authentication_data: s.4,
        request_problem_information: s.5,
        will_delay_interval_secs: s.6,
        request_response_information: s.7,
        response_information: v.0,
        server_reference: v.1,
        reason_string: v.2,
        receive_maximum: v.3,
        topic_alias_maximum: v.4,
        topic_alias: v.5,
        maximum_qos: v.6,
        retain_available: v.7,
        user_properties: v.8,
        maximum_packet_size: v.9,
        wildcard_subscription_available: v.10 .0,
        subscription_identifier_available: v.10 .1,
        shared_subscription_available: v.10 .2,
    })
}

/// Drops every property `ctx` does not allow.
fn keep_allowed(mut p: Properties, ctx: PropertyContext) -> Properties {
    fn keep<T>(slot: &mut Option<T>, ctx: PropertyContext, pid: u8) {
        if !ctx.allows(pid) {
            *slot = None;
        }
    }
    keep(&mut p.payload_format_indicator, ctx, 0x01);
    keep(&mut p.message_expiry_interval_secs, ctx, 0x02);
    keep(&mut p.content_type, ctx, 0x03);
    keep(&mut p.response_topic, ctx, 0x08);
    keep(&mut p.correlation_data, ctx, 0x09);
    if !ctx.allows(0x0B) {
        p.subscription_identifiers.clear();
    }
    // SUBSCRIBE carries at most one subscription identifier (section 3.8.2.1.2).
    if ctx == PropertyContext::Subscribe {
        p.subscription_identifiers.truncate(1);
    }
    keep(&mut p.session_expiry_interval_secs, ctx, 0x11);
    keep(&mut p.assigned_client_identifier, ctx, 0x12);
    keep(&mut p.server_keep_alive_secs, ctx, 0x13);
    keep(&mut p.authentication_method, ctx, 0x15);
    keep(&mut p.authentication_data, ctx, 0x16);
    keep(&mut p.request_problem_information, ctx, 0x17);
    keep(&mut p.will_delay_interval_secs, ctx, 0x18);
    keep(&mut p.request_response_information, ctx, 0x19);
    keep(&mut p.response_information, ctx, 0x1A);
    keep(&mut p.server_reference, ctx, 0x1C);
    keep(&mut p.reason_string, ctx, 0x1F);
    keep(&mut p.receive_maximum, ctx, 0x21);
    keep(&mut p.topic_alias_maximum, ctx, 0x22);
    keep(&mut p.topic_alias, ctx, 0x23);
    keep(&mut p.maximum_qos, ctx, 0x24);
    keep(&mut p.retain_available, ctx, 0x25);
    keep(&mut p.maximum_packet_size, ctx, 0x27);
    keep(&mut p.wildcard_subscription_available, ctx, 0x28);
    keep(&mut p.subscription_identifier_available, ctx, 0x29);
    keep(&mut p.shared_subscription_available, ctx, 0x2A);
    p
}

/// No block, or a non-empty block of the properties `ctx` allows; always `None` below 5.0.
fn properties(v: ProtocolVersion, ctx: PropertyContext) -> BoxedStrategy<Option<Box<Properties>>> {
    if !v.is_v5() {
        return Just(None).boxed();
    }
    prop_oneof![
        1 => Just(None),
        3 => any_properties()
            .prop_map(move |p| keep_allowed(p, ctx))
            .prop_filter("non-empty block", |p| *p != Properties::default())
            .prop_map(|p| Some(Box::new(p))),
    ]
    .boxed()
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1u16..
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will =
        option::of((properties(v, PropertyContext::Will), topic_name(), binary(0..8), qos(), any::<bool>()))
            .prop_map(|w| {
                w.map(|(properties, topic, payload, qos, retain)| LastWill {
                    topic,
                    payload,
                    qos,
                    retain,
                    properties,
                })
            });
    (
        any::<bool>(),
        any::<u16>(),
        string(0..8),
        will,
        option::of(string(0..6)),
        option::of(binary(0..6)),
        properties(v, PropertyContext::Connect),
    )
        .prop_map(
            move |(clean_start, keep_alive_secs, client_id, will, username, mut password, properties)| {
                // Before 5.0 a password needs a user name (3.1.1 [MQTT-3.1.2-22]).
                if !v.is_v5() && username.is_none() {
                    password = None;
                }
                Packet::Connect(Box::new(Connect {
                    version: v,
                    clean_start,
                    keep_alive_secs,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if v.is_v5() {
        reason(CONNACK_REASONS).boxed()
    } else {
        (0u8..=5).prop_map(ReasonCode::from_v3_connack).boxed()
    };
    // MQTT 3.1 has no Session Present flag: that byte is reserved and 0 (3.1 section 3.2).
    let session_present = if v == V3_1 { Just(false).boxed() } else { any::<bool>().boxed() };
    (session_present, code, properties(v, PropertyContext::ConnAck)).prop_map(
        |(session_present, code, properties)| Packet::ConnAck(ConnAck { session_present, code, properties }),
    )
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        binary(0..64),
        properties(v, PropertyContext::Publish),
    )
        .prop_map(move |(qos, dup, retain, topic, id, payload, properties)| {
            let at_most_once = qos == QoS::AtMostOnce;
            // With a topic alias a 5.0 PUBLISH may leave the topic name empty.
            let aliased = properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
            let topic = if aliased && retain { ByteStr::from("") } else { topic };
            Packet::Publish(Publish {
                // DUP must be 0 at QoS 0 [MQTT-3.3.1-2], and so is the identifier.
                dup: dup && !at_most_once,
                qos,
                retain,
                topic,
                packet_id: if at_most_once { 0 } else { id },
                payload,
                properties,
            })
        })
}

fn ack(v: ProtocolVersion, table: &'static [u8]) -> impl Strategy<Value = Ack> {
    let code = if v.is_v5() { reason(table).boxed() } else { Just(ReasonCode::SUCCESS).boxed() };
    (packet_id(), code, properties(v, PropertyContext::PubAck))
        .prop_map(|(packet_id, reason, properties)| Ack { packet_id, reason, properties })
}

fn subscription_options(v: ProtocolVersion, shared: bool) -> BoxedStrategy<SubscriptionOptions> {
    if !v.is_v5() {
        return qos().prop_map(SubscriptionOptions::qos).boxed();
    }
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendOnSubscribe),
        Just(RetainHandling::SendIfNewSubscription),
        Just(RetainHandling::DoNotSend),
    ];
    (qos(), any::<bool>(), any::<bool>(), retain_handling)
        .prop_map(move |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
            qos,
            // No Local on a shared subscription is a protocol error (5.0 [MQTT-3.8.3-4]).
            no_local: no_local && !shared,
            retain_as_published,
            retain_handling,
        })
        .boxed()
}

fn subscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let entry = filter().prop_flat_map(move |(f, shared)| (Just(f), subscription_options(v, shared)));
    (packet_id(), vec(entry, 1..5), properties(v, PropertyContext::Subscribe)).prop_map(
        |(packet_id, filters, properties)| Packet::Subscribe(Subscribe { packet_id, filters, properties }),
    )
}

fn suback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let table = if v.is_v5() { SUBACK_REASONS } else { SUBACK_V3_RETURN_CODES };
    (packet_id(), vec(reason(table), 0..5), properties(v, PropertyContext::SubAck)).prop_map(
        |(packet_id, reasons, properties)| Packet::SubAck(SubAck { packet_id, reasons, properties }),
    )
}

fn unsubscribe(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (packet_id(), vec(filter().prop_map(|(f, _)| f), 1..5), properties(v, PropertyContext::Unsubscribe))
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe { packet_id, filters, properties })
        })
}

fn unsuback(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    // 3.1.1's UNSUBACK is the packet identifier alone.
    let reasons = if v.is_v5() { vec(reason(UNSUBACK_REASONS), 0..5).boxed() } else { Just(vec![]).boxed() };
    (packet_id(), reasons, properties(v, PropertyContext::UnsubAck)).prop_map(
        |(packet_id, reasons, properties)| Packet::UnsubAck(UnsubAck { packet_id, reasons, properties }),
    )
}

fn disconnect(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    if !v.is_v5() {
        return Just(Packet::Disconnect(Disconnect::default())).boxed();
    }
    (reason(DISCONNECT_REASONS), properties(v, PropertyContext::Disconnect))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    (reason(AUTH_REASONS), properties(V5, PropertyContext::Auth))
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
}

/// Any packet that exists at level `v` (AUTH only in 5.0).
fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(v),
        connack(v),
        publish(v),
        ack(v, PUBACK_REASONS).prop_map(Packet::PubAck),
        ack(v, PUBACK_REASONS).prop_map(Packet::PubRec),
        ack(v, PUBREL_REASONS).prop_map(Packet::PubRel),
        ack(v, PUBREL_REASONS).prop_map(Packet::PubComp),
        subscribe(v),
        suback(v),
        unsubscribe(v),
        unsuback(v),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(v),
    ];
    if v.is_v5() {
        prop_oneof![14 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(V3_1), Just(V3_1_1), Just(V5)]
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn encode(v: ProtocolVersion, p: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    p.encode(v, &mut out);
    assert_eq!(out.len(), p.encoded_len(v), "encoded_len of {p:?}");
    out
}

fn round_trip(v: ProtocolVersion, p: &Packet) -> Result<(), TestCaseError> {
    let mut buf = encode(v, p);
    let mut d = Decoder::with_version(v, PACKET_SIZE_MAX_BYTES);
    match d.decode(&mut buf) {
        Ok(Decoded::Packet(q)) => prop_assert_eq!(&q, p),
        other => prop_assert!(false, "{:?} encoded as {:?} decodes to {:?}", p, encode(v, p), other),
    }
    prop_assert!(buf.is_empty(), "one whole frame");
    Ok(())
}

fn strategy_for(name: &str, v: ProtocolVersion) -> BoxedStrategy<Packet> {
    match name {
        "connect" => connect(v).boxed(),
        "connack" => connack(v).boxed(),
        "publish" => publish(v).boxed(),
        "puback" => ack(v, PUBACK_REASONS).prop_map(Packet::PubAck).boxed(),
        "pubrec" => ack(v, PUBACK_REASONS).prop_map(Packet::PubRec).boxed(),
        "pubrel" => ack(v, PUBREL_REASONS).prop_map(Packet::PubRel).boxed(),
        "pubcomp" => ack(v, PUBREL_REASONS).prop_map(Packet::PubComp).boxed(),
        "subscribe" => subscribe(v).boxed(),
        "suback" => suback(v).boxed(),
        "unsubscribe" => unsubscribe(v).boxed(),
        "unsuback" => unsuback(v).boxed(),
        "disconnect" => disconnect(v),
        "auth" => auth().boxed(),
        _ => unreachable!("{name}"),
    }
}

/// One proptest per packet type, each over every level where the type exists, so a
/// failure names the packet type.
macro_rules! round_trip_tests {
    ($($test:ident: $name:literal at $versions:expr;)*) => {$(
        proptest! {
            #[test]
            fn $test((v, p) in proptest::sample::select($versions.to_vec())
                .prop_flat_map(|v| (Just(v), strategy_for($name, v))))
            {
                round_trip(v, &p)?;
            }
        }
    )*};
}

const ALL_LEVELS: [ProtocolVersion; 3] = [V3_1, V3_1_1, V5];

round_trip_tests! {
    connect_round_trips: "connect" at ALL_LEVELS;
    connack_round_trips: "connack" at ALL_LEVELS;
    publish_round_trips: "publish" at ALL_LEVELS;
    puback_round_trips: "puback" at ALL_LEVELS;
    pubrec_round_trips: "pubrec" at ALL_LEVELS;
    pubrel_round_trips: "pubrel" at ALL_LEVELS;
    pubcomp_round_trips: "pubcomp" at ALL_LEVELS;
    subscribe_round_trips: "subscribe" at ALL_LEVELS;
    suback_round_trips: "suback" at ALL_LEVELS;
    unsubscribe_round_trips: "unsubscribe" at ALL_LEVELS;
    unsuback_round_trips: "unsuback" at ALL_LEVELS;
    disconnect_round_trips: "disconnect" at ALL_LEVELS;
    auth_round_trips: "auth" at [V5];
}

proptest! {
    #[test]
    fn ping_round_trips(v in version()) {
        round_trip(v, &Packet::PingReq)?;
        round_trip(v, &Packet::PingResp)?;
    }

    #[test]
    fn connect_decodes_as_first_packet_and_fixes_the_level(p in version().prop_flat_map(connect)) {
        let Packet::Connect(c) = &p else { unreachable!() };
        let mut buf = encode(c.version, &p);
        let mut d = Decoder::server(PACKET_SIZE_MAX_BYTES);
        match d.decode(&mut buf) {
            Ok(Decoded::Packet(q)) => prop_assert_eq!(&q, &p),
            other => prop_assert!(false, "{:?}", other),
        }
        prop_assert_eq!(d.version(), Some(c.version));
    }

    #[test]
    fn concatenated_packets_decode_in_order(
        (v, packets) in version().prop_flat_map(|v| (Just(v), vec(packet(v), 1..24)))
    ) {
        let mut buf = BytesMut::new();
        for p in &packets {
            p.encode(v, &mut buf);
        }
        let mut d = Decoder::with_version(v, PACKET_SIZE_MAX_BYTES);
        for (i, p) in packets.iter().enumerate() {
            match d.decode(&mut buf) {
                Ok(Decoded::Packet(q)) => prop_assert_eq!(&q, p, "packet {}", i),
                other => prop_assert!(false, "packet {}: {:?}", i, other),
            }
        }
        prop_assert!(buf.is_empty());
        let drained = matches!(d.decode(&mut buf), Ok(Decoded::Incomplete { needed: 2 }));
        prop_assert!(drained, "an empty buffer needs a fixed header");
    }

    #[test]
    fn session_decodes_connect_then_packets_at_its_level(
        (connect, packets) in version().prop_flat_map(|v| (connect(v), vec(packet(v), 0..8)))
    ) {
        let Packet::Connect(c) = &connect else { unreachable!() };
        let v = c.version;
        let mut buf = encode(v, &connect);
        for p in &packets {
            p.encode(v, &mut buf);
        }
        let mut d = Decoder::server(PACKET_SIZE_MAX_BYTES);
        for p in std::iter::once(&connect).chain(&packets) {
            match d.decode(&mut buf) {
                Ok(Decoded::Packet(q)) => prop_assert_eq!(&q, p),
                other => prop_assert!(false, "{:?}", other),
            }
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn split_anywhere_decodes_the_same(
        (v, p, cut) in version().prop_flat_map(|v| (Just(v), packet(v), any::<proptest::sample::Index>()))
    ) {
        let bytes = encode(v, &p);
        let cut = cut.index(bytes.len());
        let mut d = Decoder::with_version(v, PACKET_SIZE_MAX_BYTES);
        let mut buf = BytesMut::from(&bytes[..cut]);
        match d.decode(&mut buf) {
            Ok(Decoded::Incomplete { needed }) => {
                prop_assert!(needed >= 1 && cut + needed <= bytes.len(), "needed {} at {}", needed, cut);
            }
            other => prop_assert!(false, "{:?} after {} of {} bytes", other, cut, bytes.len()),
        }
        prop_assert_eq!(buf.len(), cut);
        buf.extend_from_slice(&bytes[cut..]);
        match d.decode(&mut buf) {
            Ok(Decoded::Packet(q)) => prop_assert_eq!(&q, &p),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Normalisations the encoder applies, pinned so they stay deliberate.
// ---------------------------------------------------------------------------------------

#[test]
fn empty_property_block_encodes_as_absent() {
    let p = Packet::PubAck(Ack {
        packet_id: 9,
        reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        properties: Some(Box::default()),
    });
    let mut buf = encode(V5, &p);
    assert_eq!(&buf[..], &[0x40, 0x04, 0x00, 0x09, 0x10, 0x00]);
    let mut d = Decoder::with_version(V5, PACKET_SIZE_MAX_BYTES);
    let Ok(Decoded::Packet(Packet::PubAck(a))) = d.decode(&mut buf) else { panic!() };
    assert_eq!(a.properties, None);
}

#[test]
fn v3_suback_failure_codes_encode_as_0x80() {
    let p = Packet::SubAck(SubAck {
        packet_id: 1,
        reasons: vec![ReasonCode::NOT_AUTHORIZED, ReasonCode::GRANTED_QOS_1],
        properties: None,
    });
    assert_eq!(&encode(V3_1_1, &p)[..], &[0x90, 0x04, 0x00, 0x01, 0x80, 0x01]);
}

#[test]
fn v5_properties_are_dropped_at_level_4() {
    let with = Packet::Disconnect(Disconnect {
        reason: ReasonCode::SERVER_SHUTTING_DOWN,
        properties: Some(Box::new(Properties {
            reason_string: Some(ByteStr::from("x")),
            ..Properties::default()
        })),
    });
    assert_eq!(&encode(V3_1_1, &with)[..], &[0xE0, 0x00]);
}
