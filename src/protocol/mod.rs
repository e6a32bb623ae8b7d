//! Sans-IO MQTT 3.1 / 3.1.1 / 5.0 codec.
//!
//! Spec citations in this crate follow one convention. A bare `[MQTT-x.y.z-n]` cites an id
//! that states the same rule in MQTT 3.1.1 and 5.0. Any other citation names its version,
//! `3.1.1 [MQTT-x.y.z-n]` or `5.0 [MQTT-x.y.z-n]`, and a rule enforced for both versions
//! under different ids cites both: `3.1.1 [MQTT-3.8.4-6], 5.0 [MQTT-3.8.4-8]`.
//!
//! Decoding works in two phases, as in mini-redis: [`check_frame`] finds a complete
//! frame (or says how many more bytes are needed) after checking the remaining length
//! against the configured maximum packet size, then the packet's own decoder parses the
//! body. PUBLISH topics and payloads are zero-copy slices of the read buffer. Encoding
//! appends to a `BytesMut`; [`encode_publish`] encodes a PUBLISH from its parts so that
//! one encoding can be shared by many subscribers.

mod codec;
mod error;
pub mod packet;
pub mod properties;
mod reason;
pub mod topic;
pub mod wire;

pub use codec::{check_frame, decode_body, Decoded, Decoder, FrameStatus};
pub use error::DecodeError;
pub use packet::*;
pub use properties::{Properties, PropertyContext};
pub use reason::ReasonCode;
pub use wire::ByteStr;

/// The protocol level of a connection (CONNECT's protocol level byte).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V3_1,
    /// MQTT 3.1.1, level 4.
    V3_1_1,
    /// MQTT 5.0, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte.
    pub fn level(self) -> u8 {
        match self {
            Self::V3_1 => 3,
            Self::V3_1_1 => 4,
            Self::V5 => 5,
        }
    }

    /// The protocol name that goes with the level [MQTT-3.1.2-1].
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            _ => "MQTT",
        }
    }

    /// Whether this level has properties and reason codes.
    pub fn is_v5(self) -> bool {
        self == Self::V5
    }
}

/// Quality of service (section 4.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl TryFrom<u8> for QoS {
    type Error = DecodeError;
    /// QoS 3 is malformed [MQTT-3.3.1-4].
    fn try_from(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            _ => Err(DecodeError::InvalidQos),
        }
    }
}
