//! MQTT 5 reason codes (section 2.4), named as the spec names them, and the
//! MQTT 3.1.1 CONNACK return codes (section 3.2.2.3).

/// A reason code byte. A newtype over `u8`, because a peer may send any value and
/// the packet-specific tables decide what is valid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    pub const SUCCESS: Self = Self(0x00);
    /// Also "Normal disconnection" and "Granted QoS 0".
    pub const NORMAL_DISCONNECTION: Self = Self(0x00);
    pub const GRANTED_QOS_0: Self = Self(0x00);
    pub const GRANTED_QOS_1: Self = Self(0x01);
    pub const GRANTED_QOS_2: Self = Self(0x02);
    pub const DISCONNECT_WITH_WILL_MESSAGE: Self = Self(0x04);
    pub const NO_MATCHING_SUBSCRIBERS: Self = Self(0x10);
    pub const NO_SUBSCRIPTION_EXISTED: Self = Self(0x11);
    pub const CONTINUE_AUTHENTICATION: Self = Self(0x18);
    pub const RE_AUTHENTICATE: Self = Self(0x19);
    pub const UNSPECIFIED_ERROR: Self = Self(0x80);
    pub const MALFORMED_PACKET: Self = Self(0x81);
    pub const PROTOCOL_ERROR: Self = Self(0x82);
    pub const IMPLEMENTATION_SPECIFIC_ERROR: Self = Self(0x83);
    pub const UNSUPPORTED_PROTOCOL_VERSION: Self = Self(0x84);
    pub const CLIENT_IDENTIFIER_NOT_VALID: Self = Self(0x85);
    pub const BAD_USER_NAME_OR_PASSWORD: Self = Self(0x86);
    pub const NOT_AUTHORIZED: Self = Self(0x87);
    pub const SERVER_UNAVAILABLE: Self = Self(0x88);
    pub const SERVER_BUSY: Self = Self(0x89);
    pub const BANNED: Self = Self(0x8A);
    pub const SERVER_SHUTTING_DOWN: Self = Self(0x8B);
    pub const BAD_AUTHENTICATION_METHOD: Self = Self(0x8C);
    pub const KEEP_ALIVE_TIMEOUT: Self = Self(0x8D);
    pub const SESSION_TAKEN_OVER: Self = Self(0x8E);
    pub const TOPIC_FILTER_INVALID: Self = Self(0x8F);
    pub const TOPIC_NAME_INVALID: Self = Self(0x90);
    pub const PACKET_IDENTIFIER_IN_USE: Self = Self(0x91);
    pub const PACKET_IDENTIFIER_NOT_FOUND: Self = Self(0x92);
    pub const RECEIVE_MAXIMUM_EXCEEDED: Self = Self(0x93);
    pub const TOPIC_ALIAS_INVALID: Self = Self(0x94);
    pub const PACKET_TOO_LARGE: Self = Self(0x95);
    pub const MESSAGE_RATE_TOO_HIGH: Self = Self(0x96);
    pub const QUOTA_EXCEEDED: Self = Self(0x97);
    pub const ADMINISTRATIVE_ACTION: Self = Self(0x98);
    pub const PAYLOAD_FORMAT_INVALID: Self = Self(0x99);
    pub const RETAIN_NOT_SUPPORTED: Self = Self(0x9A);
    pub const QOS_NOT_SUPPORTED: Self = Self(0x9B);
    pub const USE_ANOTHER_SERVER: Self = Self(0x9C);
    pub const SERVER_MOVED: Self = Self(0x9D);
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: Self = Self(0x9E);
    pub const CONNECTION_RATE_EXCEEDED: Self = Self(0x9F);
    pub const MAXIMUM_CONNECT_TIME: Self = Self(0xA0);
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: Self = Self(0xA1);
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: Self = Self(0xA2);

    /// Values of 0x80 and above are failures (section 2.4).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The MQTT 3.1 / 3.1.1 CONNACK return code for this MQTT 5 CONNACK reason
    /// (section 3.2.2.3), for answering a 3.x client.
    pub fn to_v3_connack(self) -> u8 {
        match self {
            Self::SUCCESS => 0,
            Self::UNSUPPORTED_PROTOCOL_VERSION => 1,
            Self::CLIENT_IDENTIFIER_NOT_VALID => 2,
            Self::SERVER_UNAVAILABLE | Self::SERVER_BUSY | Self::SERVER_SHUTTING_DOWN => 3,
            Self::BAD_USER_NAME_OR_PASSWORD => 4,
            _ => 5,
        }
    }

    /// The MQTT 5 reason for a 3.x CONNACK return code.
    pub fn from_v3_connack(code: u8) -> Self {
        match code {
            0 => Self::SUCCESS,
            1 => Self::UNSUPPORTED_PROTOCOL_VERSION,
            2 => Self::CLIENT_IDENTIFIER_NOT_VALID,
            3 => Self::SERVER_UNAVAILABLE,
            4 => Self::BAD_USER_NAME_OR_PASSWORD,
            _ => Self::NOT_AUTHORIZED,
        }
    }
}

/// Reason codes a CONNACK may carry (section 3.2.2.2). 0x95 (packet too large) is in
/// the table; 0x91 - 0x94 and 0x96 are not.
pub(crate) fn valid_connack(code: u8) -> bool {
    matches!(code, 0x00 | 0x80..=0x9F)
        && !matches!(code, 0x8B | 0x8D | 0x8E | 0x8F | 0x91..=0x94 | 0x96 | 0x98 | 0x9E)
}

/// Reason codes a PUBACK or PUBREC may carry (sections 3.4.2.1, 3.5.2.1).
pub(crate) fn valid_puback(code: u8) -> bool {
    matches!(code, 0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99)
}

/// Reason codes a PUBREL or PUBCOMP may carry (sections 3.6.2.1, 3.7.2.1).
pub(crate) fn valid_pubrel(code: u8) -> bool {
    matches!(code, 0x00 | 0x92)
}

/// Reason codes a SUBACK may carry (section 3.9.3).
pub(crate) fn valid_suback(code: u8) -> bool {
    matches!(code, 0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2)
}

/// Reason codes an UNSUBACK may carry (section 3.11.3).
pub(crate) fn valid_unsuback(code: u8) -> bool {
    matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91)
}

/// Reason codes a DISCONNECT may carry (section 3.14.2.1).
pub(crate) fn valid_disconnect(code: u8) -> bool {
    matches!(code, 0x00 | 0x04 | 0x80..=0xA2)
        && !matches!(code, 0x84..=0x86 | 0x88 | 0x8A | 0x8C | 0x91 | 0x92)
}

/// Reason codes an AUTH may carry (section 3.15.2.1).
pub(crate) fn valid_auth(code: u8) -> bool {
    matches!(code, 0x00 | 0x18 | 0x19)
}
