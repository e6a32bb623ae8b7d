//! UNSUBSCRIBE and UNSUBACK (sections 3.10, 3.11).

use super::subscribe::{check_filter, nonzero_packet_id};
use super::Props;
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::reason::{valid_unsuback, ReasonCode};
use crate::protocol::wire::{binary_len, put_binary, ByteStr, Reader};
use crate::protocol::ProtocolVersion;
use bytes::{BufMut, BytesMut};

/// An UNSUBSCRIBE.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub filters: Vec<ByteStr>,
    pub properties: Props,
}

impl Unsubscribe {
    pub fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = nonzero_packet_id(r)?;
        let properties =
            if version.is_v5() { Properties::decode(r, PropertyContext::Unsubscribe)? } else { None };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            check_filter(&filter)?;
            filters.push(filter);
        }
        // At least one filter [MQTT-3.10.3-2].
        if filters.is_empty() {
            return Err(DecodeError::EmptyUnsubscribe);
        }
        Ok(Unsubscribe { packet_id, filters, properties })
    }

    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        let props = if version.is_v5() { block_len(self.properties.as_deref()) } else { 0 };
        2 + props + self.filters.iter().map(|f| binary_len(f.as_bytes())).sum::<usize>()
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            put_block(out, self.properties.as_deref());
        }
        for f in &self.filters {
            put_binary(out, f.as_bytes());
        }
    }
}

/// An UNSUBACK. 3.1.1 has no reason codes; in 5.0 there is one per filter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub reasons: Vec<ReasonCode>,
    pub properties: Props,
}

impl UnsubAck {
    pub fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = nonzero_packet_id(r)?;
        let mut ack = UnsubAck { packet_id, reasons: Vec::new(), properties: None };
        if version.is_v5() {
            ack.properties = Properties::decode(r, PropertyContext::UnsubAck)?;
            while !r.is_empty() {
                let raw = r.u8()?;
                if !valid_unsuback(raw) {
                    return Err(DecodeError::InvalidReasonCode(raw));
                }
                ack.reasons.push(ReasonCode(raw));
            }
        }
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(ack)
    }

    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        if !version.is_v5() {
            return 2;
        }
        2 + block_len(self.properties.as_deref()) + self.reasons.len()
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            put_block(out, self.properties.as_deref());
            for r in &self.reasons {
                out.put_u8(r.0);
            }
        }
    }
}
