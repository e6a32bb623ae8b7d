//! PUBLISH (section 3.3).

use super::{kind, Props};
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::topic::too_many_levels;
use crate::protocol::wire::{put_binary, put_varint, ByteStr, Reader};
use crate::protocol::{ProtocolVersion, QoS};
use bytes::{BufMut, Bytes, BytesMut};

/// A PUBLISH. `topic` and `payload` are zero-copy slices of the read buffer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5 when a topic alias stands for it.
    pub topic: ByteStr,
    /// 0 at QoS 0, where the packet has no identifier.
    pub packet_id: u16,
    pub payload: Bytes,
    pub properties: Props,
}

impl Publish {
    /// Decodes the body of a PUBLISH; `flags` are the low four bits of the fixed header.
    #[inline]
    pub fn decode(flags: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let dup = flags & 0x08 != 0;
        // QoS 3 is malformed [MQTT-3.3.1-4].
        let qos = QoS::try_from((flags >> 1) & 0x03)?;
        // DUP must be 0 at QoS 0 [MQTT-3.3.1-2].
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQos0);
        }
        let topic = r.string()?;
        // No wildcards in a topic name [MQTT-3.3.2-2].
        if topic.has_wildcard() {
            return Err(DecodeError::WildcardInTopicName);
        }
        // The broker's bound on levels (see `TOPIC_LEVELS_MAX`); free below 201 bytes.
        if too_many_levels(&topic) {
            return Err(DecodeError::TopicNameTooDeep);
        }
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            let id = r.u16()?;
            // A packet that needs an identifier must have a non-zero one (3.1.1 [MQTT-2.3.1-1],
            // 5.0 [MQTT-2.2.1-3]).
            if id == 0 {
                return Err(DecodeError::ZeroPacketId);
            }
            id
        };
        let properties =
            if version.is_v5() { Properties::decode(r, PropertyContext::Publish)? } else { None };
        // An empty topic name is only valid with a topic alias in 5.0 [MQTT-3.3.2-1] [MQTT-4.7.3-1].
        if topic.is_empty() && properties.as_ref().and_then(|p| p.topic_alias).is_none() {
            return Err(DecodeError::EmptyTopicName);
        }
        Ok(Publish { dup, qos, retain: flags & 0x01 != 0, topic, packet_id, payload: r.rest(), properties })
    }

    /// Appends the whole packet, fixed header included.
    pub fn encode(&self, version: ProtocolVersion, out: &mut BytesMut) {
        encode_publish(
            out,
            version,
            PublishHeader { dup: self.dup, qos: self.qos, retain: self.retain, packet_id: self.packet_id },
            self.topic.as_bytes(),
            self.properties.as_deref(),
            &self.payload,
        );
    }
}

/// The per-recipient parts of a PUBLISH, which differ between subscribers of one message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublishHeader {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub packet_id: u16,
}

/// Remaining length of a PUBLISH with these parts.
pub fn publish_len(
    version: ProtocolVersion,
    qos: QoS,
    topic: &[u8],
    props: Option<&Properties>,
    payload: &[u8],
) -> usize {
    let mut n = 2 + topic.len() + payload.len();
    if qos != QoS::AtMostOnce {
        n += 2;
    }
    if version.is_v5() {
        n += block_len(props);
    }
    n
}

/// Appends a PUBLISH built from parts, without building a [`Publish`]: the broker's
/// delivery path encodes straight from the routed message.
pub fn encode_publish(
    out: &mut BytesMut,
    version: ProtocolVersion,
    h: PublishHeader,
    topic: &[u8],
    props: Option<&Properties>,
    payload: &[u8],
) {
    let len = publish_len(version, h.qos, topic, props, payload);
    out.reserve(len + 5);
    let flags = ((h.dup as u8) << 3) | ((h.qos as u8) << 1) | h.retain as u8;
    out.put_u8((kind::PUBLISH << 4) | flags);
    put_varint(out, len as u32);
    put_binary(out, topic);
    if h.qos != QoS::AtMostOnce {
        out.put_u16(h.packet_id);
    }
    if version.is_v5() {
        put_block(out, props);
    }
    out.put_slice(payload);
}
