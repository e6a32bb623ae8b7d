//! SUBSCRIBE and SUBACK (sections 3.8, 3.9).

use super::Props;
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::reason::{valid_suback, ReasonCode};
use crate::protocol::topic::{parse_shared, too_many_levels, validate_topic_filter};
use crate::protocol::wire::{binary_len, put_binary, ByteStr, Reader};
use crate::protocol::{ProtocolVersion, QoS};
use bytes::{BufMut, BytesMut};

/// Retain handling (section 3.8.3.1): when retained messages are sent on subscribe.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(u8)]
pub enum RetainHandling {
    #[default]
    SendOnSubscribe = 0,
    SendIfNewSubscription = 1,
    DoNotSend = 2,
}

/// The options byte of one topic filter in a SUBSCRIBE.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with the given maximum QoS and every MQTT 5 option at its default.
    pub fn qos(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendOnSubscribe,
        }
    }

    fn decode(b: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        // Reserved: bits 7-2 in 3.1.1 [MQTT-3.8.3-4], bits 7-6 in 5.0 [MQTT-3.8.3-5].
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions);
        }
        let retain_handling = match (b >> 4) & 0x03 {
            0 => RetainHandling::SendOnSubscribe,
            1 => RetainHandling::SendIfNewSubscription,
            2 => RetainHandling::DoNotSend,
            // Retain handling 3 is a protocol error (section 3.8.3.1).
            _ => return Err(DecodeError::InvalidRetainHandling),
        };
        // QoS 3 is a protocol error in 5.0 (section 3.8.3.1), malformed in
        // 3.1.1 [MQTT-3.8.3-4]; either way the connection closes.
        let qos = QoS::try_from(b & 0x03).map_err(|_| DecodeError::InvalidSubscriptionQos)?;
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    fn encode(&self, version: ProtocolVersion) -> u8 {
        let mut b = self.qos as u8;
        if version.is_v5() {
            b |= (self.no_local as u8) << 2 | (self.retain_as_published as u8) << 3;
            b |= (self.retain_handling as u8) << 4;
        }
        b
    }
}

/// A SUBSCRIBE.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Subscribe {
    pub packet_id: u16,
    pub filters: Vec<(ByteStr, SubscriptionOptions)>,
    pub properties: Props,
}

/// Checks a filter, shared or not, for SUBSCRIBE and UNSUBSCRIBE.
pub(super) fn check_filter(filter: &str) -> Result<bool, DecodeError> {
    let shared = match parse_shared(filter) {
        Ok(Some(_)) => true,
        Ok(None) => {
            validate_topic_filter(filter).map_err(|_| DecodeError::InvalidTopicFilter)?;
            false
        }
        Err(_) => return Err(DecodeError::InvalidSharedFilter),
    };
    // The broker's bound on levels (see `TOPIC_LEVELS_MAX`), the whole filter counted.
    if too_many_levels(filter) {
        return Err(DecodeError::TopicFilterTooDeep);
    }
    Ok(shared)
}

pub(super) fn nonzero_packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    let id = r.u16()?;
    // 3.1.1 [MQTT-2.3.1-1], 5.0 [MQTT-2.2.1-3]
    if id == 0 {
        return Err(DecodeError::ZeroPacketId);
    }
    Ok(id)
}

impl Subscribe {
    pub fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = nonzero_packet_id(r)?;
        let properties =
            if version.is_v5() { Properties::decode(r, PropertyContext::Subscribe)? } else { None };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            let shared = check_filter(&filter)?;
            let opts = SubscriptionOptions::decode(r.u8()?, version)?;
            // No Local on a shared subscription is a protocol error (5.0 [MQTT-3.8.3-4]).
            if shared && opts.no_local && version.is_v5() {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            filters.push((filter, opts));
        }
        // At least one filter (3.1.1 [MQTT-3.8.3-3], 5.0 [MQTT-3.8.3-2]).
        if filters.is_empty() {
            return Err(DecodeError::EmptySubscribe);
        }
        Ok(Subscribe { packet_id, filters, properties })
    }

    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        let props = if version.is_v5() { block_len(self.properties.as_deref()) } else { 0 };
        2 + props + self.filters.iter().map(|(f, _)| binary_len(f.as_bytes()) + 1).sum::<usize>()
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            put_block(out, self.properties.as_deref());
        }
        for (f, o) in &self.filters {
            put_binary(out, f.as_bytes());
            out.put_u8(o.encode(version));
        }
    }
}

/// A SUBACK: one reason code per filter (3.1.1 [MQTT-3.8.4-5], 5.0 [MQTT-3.8.4-6]), in order
/// [MQTT-3.9.3-1].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SubAck {
    pub packet_id: u16,
    pub reasons: Vec<ReasonCode>,
    pub properties: Props,
}

impl SubAck {
    pub fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = nonzero_packet_id(r)?;
        let properties = if version.is_v5() { Properties::decode(r, PropertyContext::SubAck)? } else { None };
        let mut reasons = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let raw = r.u8()?;
            // Only 0x00-0x02 and 0x80 in 3.1.1 [MQTT-3.9.3-2].
            let ok = if version.is_v5() { valid_suback(raw) } else { matches!(raw, 0..=2 | 0x80) };
            if !ok {
                return Err(DecodeError::InvalidReasonCode(raw));
            }
            reasons.push(ReasonCode(raw));
        }
        Ok(SubAck { packet_id, reasons, properties })
    }

    pub fn body_len(&self, version: ProtocolVersion) -> usize {
        let props = if version.is_v5() { block_len(self.properties.as_deref()) } else { 0 };
        2 + props + self.reasons.len()
    }

    pub fn encode_body(&self, version: ProtocolVersion, out: &mut BytesMut) {
        out.put_u16(self.packet_id);
        if version.is_v5() {
            put_block(out, self.properties.as_deref());
        }
        for r in &self.reasons {
            // A 3.1.1 client knows only 0x80 as a failure.
            let code = if !version.is_v5() && r.is_error() { 0x80 } else { r.0 };
            out.put_u8(code);
        }
    }
}
