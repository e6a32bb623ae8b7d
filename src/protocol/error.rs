//! Decode errors. Each variant names the rule it enforces and, where the spec has one,
//! its conformance id. [`DecodeError::reason_code`] maps it to the MQTT 5 reason code the
//! broker sends in its DISCONNECT (or CONNACK); an MQTT 3.1.1 peer just gets the
//! connection closed (3.1.1 [MQTT-4.8.0-1]).

use super::reason::ReasonCode;

/// Why a frame could not be decoded. Small and `Copy`: it sits on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("remaining length longer than 4 bytes (3.1.1 section 2.2.3, 5.0 section 1.5.5)")]
    RemainingLengthTooLong,
    #[error("packet of {0} bytes exceeds the maximum packet size (5.0 [MQTT-3.2.2-15])")]
    PacketTooLarge(usize),
    #[error("reserved packet type 0 (3.1.1 section 2.2.1, 5.0 section 2.1.2)")]
    ReservedPacketType,
    #[error("reserved flag bits set in the fixed header (3.1.1 [MQTT-2.2.2-1], 5.0 [MQTT-2.1.3-1])")]
    InvalidHeaderFlags,
    #[error("QoS 3 is not a valid QoS [MQTT-3.3.1-4]")]
    InvalidQos,
    #[error("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")]
    DupOnQos0,
    #[error("packet shorter than its fields")]
    Truncated,
    #[error("bytes left over after the last field of the packet")]
    TrailingBytes,
    #[error("string is not well-formed UTF-8 (3.1.1 [MQTT-1.5.3-1], 5.0 [MQTT-1.5.4-1])")]
    InvalidUtf8,
    #[error("string contains U+0000 (3.1.1 [MQTT-1.5.3-2], 5.0 [MQTT-1.5.4-2])")]
    NullCharacter,
    #[error("topic name contains a wildcard [MQTT-3.3.2-2]")]
    WildcardInTopicName,
    #[error("empty topic name without a topic alias [MQTT-3.3.2-1] [MQTT-4.7.3-1]")]
    EmptyTopicName,
    #[error(
        "invalid topic filter [MQTT-4.7.3-1] (3.1.1 [MQTT-4.7.1-2] [MQTT-4.7.1-3], \
         5.0 [MQTT-4.7.1-1] [MQTT-4.7.1-2])"
    )]
    InvalidTopicFilter,
    #[error("topic name of more than 201 levels (the broker's bound, as Mosquitto's)")]
    TopicNameTooDeep,
    #[error("topic filter of more than 201 levels (the broker's bound, as Mosquitto's)")]
    TopicFilterTooDeep,
    #[error("invalid shared subscription filter (5.0 [MQTT-4.8.2-1] [MQTT-4.8.2-2])")]
    InvalidSharedFilter,
    #[error("packet identifier 0 (3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3])")]
    ZeroPacketId,
    #[error("SUBSCRIBE with no topic filter (3.1.1 [MQTT-3.8.3-3], 5.0 [MQTT-3.8.3-2])")]
    EmptySubscribe,
    #[error("UNSUBSCRIBE with no topic filter [MQTT-3.10.3-2]")]
    EmptyUnsubscribe,
    #[error("reserved bits set in the subscription options (3.1.1 [MQTT-3.8.3-4], 5.0 [MQTT-3.8.3-5])")]
    InvalidSubscriptionOptions,
    #[error("subscription options ask for QoS 3 (section 3.8.3.1)")]
    InvalidSubscriptionQos,
    #[error("subscription options have retain handling 3 (section 3.8.3.1)")]
    InvalidRetainHandling,
    #[error("protocol name does not match the level [MQTT-3.1.2-1]")]
    InvalidProtocolName,
    #[error("unsupported protocol level {0} [MQTT-3.1.2-2]")]
    UnsupportedProtocolLevel(u8),
    #[error("CONNECT reserved flag set [MQTT-3.1.2-3]")]
    ConnectReservedFlag,
    #[error(
        "will QoS or will retain set without the will flag (3.1.1 [MQTT-3.1.2-13] \
         [MQTT-3.1.2-15], 5.0 [MQTT-3.1.2-11] [MQTT-3.1.2-13])"
    )]
    WillFlagsWithoutWill,
    #[error("password flag set without the user name flag (3.1.1 [MQTT-3.1.2-22])")]
    PasswordWithoutUserName,
    #[error("client identifier not valid (3.1.1 [MQTT-3.1.3-9], 5.0 [MQTT-3.1.3-8])")]
    ClientIdNotValid,
    #[error("unknown property identifier 0x{0:02x}")]
    UnknownProperty(u8),
    #[error("property 0x{0:02x} is not allowed in this packet")]
    MisplacedProperty(u8),
    #[error("property 0x{0:02x} appears more than once")]
    DuplicateProperty(u8),
    #[error("property 0x{0:02x} has an invalid value")]
    InvalidPropertyValue(u8),
    #[error("invalid reason code 0x{0:02x} for this packet")]
    InvalidReasonCode(u8),
    #[error("CONNACK flags reserved bits set (5.0 [MQTT-3.2.2-1])")]
    InvalidConnAckFlags,
    #[error("AUTH packet in a protocol level that has none")]
    AuthBeforeV5,
    #[error("No Local set on a shared subscription (5.0 [MQTT-3.8.3-4])")]
    NoLocalOnSharedSubscription,
    #[error("first packet is not CONNECT [MQTT-3.1.0-1]")]
    FirstPacketNotConnect,
}

impl DecodeError {
    /// The MQTT 5 reason code to send before closing (DISCONNECT, or CONNACK while the
    /// connection is still in its CONNECT phase).
    pub fn reason_code(self) -> ReasonCode {
        match self {
            Self::PacketTooLarge(_) => ReasonCode::PACKET_TOO_LARGE,
            Self::UnsupportedProtocolLevel(_) | Self::InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            Self::ClientIdNotValid => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            // A bad shared filter is a bad topic filter (5.0 [MQTT-4.8.2-1] [MQTT-4.8.2-2]).
            Self::InvalidTopicFilter | Self::InvalidSharedFilter => ReasonCode::TOPIC_FILTER_INVALID,
            Self::WildcardInTopicName | Self::EmptyTopicName => ReasonCode::TOPIC_NAME_INVALID,
            // The spec sets no level bound, so no reason code names it; these are the
            // codes Mosquitto 2.0 sends for its bound (`TOPIC_HIERARCHY_LIMIT`): a name
            // is a protocol error, a filter a malformed packet.
            Self::TopicNameTooDeep => ReasonCode::PROTOCOL_ERROR,
            Self::TopicFilterTooDeep => ReasonCode::MALFORMED_PACKET,
            Self::DuplicateProperty(_)
            | Self::ZeroPacketId
            | Self::AuthBeforeV5
            | Self::NoLocalOnSharedSubscription
            | Self::FirstPacketNotConnect => ReasonCode::PROTOCOL_ERROR,
            // "A SUBSCRIBE (UNSUBSCRIBE) packet with no Payload is a Protocol Error"
            // (5.0 [MQTT-3.8.3-2] [MQTT-3.10.3-2]); so are QoS 3 and retain handling 3 in the
            // subscription options (section 3.8.3.1).
            Self::EmptySubscribe
            | Self::EmptyUnsubscribe
            | Self::InvalidSubscriptionQos
            | Self::InvalidRetainHandling => ReasonCode::PROTOCOL_ERROR,
            // A topic alias of 0 (5.0 [MQTT-3.3.2-8]) gets "Topic Alias invalid".
            Self::InvalidPropertyValue(0x23) => ReasonCode::TOPIC_ALIAS_INVALID,
            // Each of these properties' sections says a bad value "is a Protocol Error":
            // subscription identifier 0 (3.8.2.1.2), request problem / response
            // information (3.1.2.11.7, 3.1.2.11.6), receive maximum 0 (3.1.2.11.3),
            // maximum QoS and retain available (3.2.2.3.4, 3.2.2.3.5), maximum packet size
            // 0 (3.1.2.11.4), and the three "available" flags (3.2.2.3.11 - 3.2.2.3.13).
            Self::InvalidPropertyValue(
                0x0B | 0x17 | 0x19 | 0x21 | 0x24 | 0x25 | 0x27 | 0x28 | 0x29 | 0x2A,
            ) => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
    }
}
