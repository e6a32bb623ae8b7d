//! CONNACK (section 3.2).

use super::Props;
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::reason::{valid_connack, ReasonCode};
use crate::protocol::wire::Reader;
use crate::protocol::ProtocolVersion;
use bytes::{BufMut, BytesMut};

/// A CONNACK. `code` is the MQTT 5 reason code; for 3.x it is mapped to and from the
/// return codes 0-5 of section 3.2.2.3.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ReasonCode,
    pub properties: Props,
}

impl ConnAck {
    pub fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        // Bits 7-1 are reserved (5.0 [MQTT-3.2.2-1]; 3.1.1 section 3.2.2.1, no id).
        if flags & 0xFE != 0 {
            return Err(DecodeError::InvalidConnAckFlags);
        }
        let raw = r.u8()?;
        let (code, properties) = if version.is_v5() {
            if !valid_connack(raw) {
                return Err(DecodeError::InvalidReasonCode(raw));
            }
            (ReasonCode(raw), Properties::decode(r, PropertyContext::ConnAck)?)
        } else {
            if raw > 5 {
                return Err(DecodeError::InvalidReasonCode(raw));
            }
            (ReasonCode::from_v3_connack(raw), None)
        };
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(ConnAck { session_present: flags & 1 != 0, code, properties })
    }

    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + if version.is_v5() { block_len(self.properties.as_deref()) } else { 0 }
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        out.put_u8(self.session_present as u8);
        if version.is_v5() {
            out.put_u8(self.code.0);
            put_block(out, self.properties.as_deref());
        } else {
            out.put_u8(self.code.to_v3_connack());
        }
    }
}
