//! PUBACK, PUBREC, PUBREL and PUBCOMP (sections 3.4 - 3.7): a packet identifier and,
//! in 5.0, a reason code and properties, both of which may be left out.

use super::Props;
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::reason::ReasonCode;
use crate::protocol::wire::Reader;
use crate::protocol::ProtocolVersion;
use bytes::{BufMut, BytesMut};

/// The body shared by the four QoS 1/2 acknowledgements.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ack {
    pub packet_id: u16,
    pub reason: ReasonCode,
    pub properties: Props,
}

impl Ack {
    /// A success acknowledgement with no properties.
    pub fn new(packet_id: u16) -> Self {
        Ack { packet_id, reason: ReasonCode::SUCCESS, properties: None }
    }

    /// Decodes; `valid` is the packet type's table of reason codes.
    pub fn decode(
        r: &mut Reader,
        version: ProtocolVersion,
        valid: fn(u8) -> bool,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.u16()?;
        // These packets always carry a non-zero identifier: the one of the PUBLISH they
        // answer (3.1.1 [MQTT-2.3.1-6], 5.0 [MQTT-2.2.1-5]).
        if packet_id == 0 {
            return Err(DecodeError::ZeroPacketId);
        }
        let mut ack = Ack::new(packet_id);
        if version.is_v5() && !r.is_empty() {
            let raw = r.u8()?;
            if !valid(raw) {
                return Err(DecodeError::InvalidReasonCode(raw));
            }
            ack.reason = ReasonCode(raw);
            // With a remaining length of 3 there is no property block (section 3.4.2.2).
            if !r.is_empty() {
                ack.properties = Properties::decode(r, PropertyContext::PubAck)?;
            }
        }
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(ack)
    }

    /// The shortest form the spec allows: 2 bytes when the reason is success and there
    /// are no properties, 3 when there are no properties.
    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        if !version.is_v5() {
            return 2;
        }
        match (&self.properties, self.reason) {
            (None, ReasonCode::SUCCESS) => 2,
            (None, _) => 3,
            (Some(p), _) => 3 + block_len(Some(p)),
        }
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        let len = self.body_len(version);
        if len >= 3 {
            out.put_u8(self.reason.0);
        }
        if len > 3 {
            put_block(out, self.properties.as_deref());
        }
    }
}
