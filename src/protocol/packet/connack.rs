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
        // 3.1 has no Session Present flag (3.1 section 3.2): its bit is read as 0, so that
        // what is decoded encodes back to the same bytes.
        let session_present = flags & 1 != 0 && version != ProtocolVersion::V3_1;
        Ok(ConnAck { session_present, code, properties })
    }

    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + if version.is_v5() { block_len(self.properties.as_deref()) } else { 0 }
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        // MQTT 3.1 has no Session Present flag: its CONNACK's first byte is "reserved
        // values, not used" (3.1 section 3.2), sent as 0, as Mosquitto does; the flag came
        // with 3.1.1 (section 3.2.2.2).
        let session_present = self.session_present && version != ProtocolVersion::V3_1;
        out.put_u8(session_present as u8);
        if version.is_v5() {
            out.put_u8(self.code.0);
            put_block(out, self.properties.as_deref());
        } else {
            out.put_u8(self.code.to_v3_connack());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Packet;

    fn encoded(version: ProtocolVersion) -> Vec<u8> {
        let ack = ConnAck { session_present: true, code: ReasonCode::SUCCESS, properties: None };
        let mut out = BytesMut::new();
        Packet::ConnAck(ack).encode(version, &mut out);
        out.to_vec()
    }

    #[test]
    fn session_present_is_sent_from_3_1_1_on_and_never_at_3_1() {
        // 3.1: byte 1 is reserved and 0 whatever the session (3.1 section 3.2).
        assert_eq!(encoded(ProtocolVersion::V3_1), [0x20, 0x02, 0x00, 0x00]);
        // 3.1.1 and 5.0: bit 0 is Session Present (section 3.2.2.2).
        assert_eq!(encoded(ProtocolVersion::V3_1_1), [0x20, 0x02, 0x01, 0x00]);
        assert_eq!(encoded(ProtocolVersion::V5), [0x20, 0x03, 0x01, 0x00, 0x00]);
        // A 3.1 server that sets the bit anyway is not read as saying anything.
        let mut r = Reader::new(bytes::Bytes::from_static(&[0x01, 0x00]));
        assert!(!ConnAck::decode(&mut r, ProtocolVersion::V3_1).unwrap().session_present);
    }
}
