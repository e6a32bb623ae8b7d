//! CONNECT (section 3.1).

use super::Props;
use crate::protocol::error::DecodeError;
use crate::protocol::properties::{block_len, put_block, Properties, PropertyContext};
use crate::protocol::topic::{too_many_levels, validate_topic_name, TopicError};
use crate::protocol::wire::{binary_len, put_binary, ByteStr, Reader};
use crate::protocol::{ProtocolVersion, QoS};
use bytes::{BufMut, Bytes, BytesMut};

/// A CONNECT packet.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Connect {
    pub version: ProtocolVersion,
    /// "Clean Session" in 3.1.1, "Clean Start" in 5.0.
    pub clean_start: bool,
    pub keep_alive_secs: u16,
    pub client_id: ByteStr,
    pub will: Option<LastWill>,
    pub username: Option<ByteStr>,
    pub password: Option<Bytes>,
    pub properties: Props,
}

/// The will message carried in CONNECT (section 3.1.3.2 - 3.1.3.4).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LastWill {
    pub topic: ByteStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Props,
}

mod flag {
    pub const RESERVED: u8 = 0x01;
    pub const CLEAN_START: u8 = 0x02;
    pub const WILL: u8 = 0x04;
    pub const WILL_QOS_SHIFT: u8 = 3;
    pub const WILL_RETAIN: u8 = 0x20;
    pub const PASSWORD: u8 = 0x40;
    pub const USER_NAME: u8 = 0x80;
}

impl Connect {
    /// Decodes the body of a CONNECT; the protocol level comes from the packet itself.
    pub fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let name = r.binary()?;
        let level = r.u8()?;
        let version = match level {
            3 => ProtocolVersion::V3_1,
            4 => ProtocolVersion::V3_1_1,
            5 => ProtocolVersion::V5,
            other => return Err(DecodeError::UnsupportedProtocolLevel(other)),
        };
        // The name must be "MQIsdp" for 3.1 and "MQTT" for 3.1.1 and 5.0 [MQTT-3.1.2-1].
        if &name[..] != version.protocol_name().as_bytes() {
            return Err(DecodeError::InvalidProtocolName);
        }
        let flags = r.u8()?;
        // The reserved flag must be zero [MQTT-3.1.2-3].
        if flags & flag::RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let has_will = flags & flag::WILL != 0;
        let will_qos_bits = (flags >> flag::WILL_QOS_SHIFT) & 0x03;
        let will_retain = flags & flag::WILL_RETAIN != 0;
        // Without the will flag, will QoS and will retain must be 0 (3.1.1 [MQTT-3.1.2-13]
        // [MQTT-3.1.2-15], 5.0 [MQTT-3.1.2-11] [MQTT-3.1.2-13]).
        if !has_will && (will_qos_bits != 0 || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        // Will QoS 3 is malformed (3.1.1 [MQTT-3.1.2-14], 5.0 [MQTT-3.1.2-12]).
        let will_qos = QoS::try_from(will_qos_bits)?;
        let has_user = flags & flag::USER_NAME != 0;
        let has_password = flags & flag::PASSWORD != 0;
        // A password needs a user name in 3.1.1 [MQTT-3.1.2-22]; 5.0 lifted that rule.
        if has_password && !has_user && version != ProtocolVersion::V5 {
            return Err(DecodeError::PasswordWithoutUserName);
        }
        let keep_alive_secs = r.u16()?;
        let properties =
            if version.is_v5() { Properties::decode(r, PropertyContext::Connect)? } else { None };
        let client_id = r.string()?;
        let will = if has_will {
            let properties =
                if version.is_v5() { Properties::decode(r, PropertyContext::Will)? } else { None };
            let topic = r.string()?;
            // The will topic is a topic name: non-empty [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2].
            validate_topic_name(&topic).map_err(|e| match e {
                TopicError::Empty => DecodeError::EmptyTopicName,
                _ => DecodeError::WildcardInTopicName,
            })?;
            // The broker's bound on levels (see `TOPIC_LEVELS_MAX`); Mosquitto closes
            // without a CONNACK here too.
            if too_many_levels(&topic) {
                return Err(DecodeError::TopicNameTooDeep);
            }
            let payload = r.binary()?;
            Some(LastWill { topic, payload, qos: will_qos, retain: will_retain, properties })
        } else {
            None
        };
        let username = if has_user { Some(r.string()?) } else { None };
        let password = if has_password { Some(r.binary()?) } else { None };
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(Connect {
            version,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive_secs,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    fn v5(&self) -> bool {
        self.version.is_v5()
    }

    /// Length of the variable header and payload.
    pub fn body_len(&self) -> usize {
        let mut n = binary_len(self.version.protocol_name().as_bytes()) + 1 + 1 + 2;
        if self.v5() {
            n += block_len(self.properties.as_deref());
        }
        n += binary_len(self.client_id.as_bytes());
        if let Some(w) = &self.will {
            if self.v5() {
                n += block_len(w.properties.as_deref());
            }
            n += binary_len(w.topic.as_bytes()) + binary_len(&w.payload);
        }
        n += self.username.as_ref().map_or(0, |u| binary_len(u.as_bytes()));
        n += self.password.as_ref().map_or(0, |p| binary_len(p));
        n
    }

    /// Appends the variable header and payload.
    pub fn encode_body(&self, out: &mut BytesMut) {
        put_binary(out, self.version.protocol_name().as_bytes());
        out.put_u8(self.version.level());
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(w) = &self.will {
            flags |= flag::WILL | ((w.qos as u8) << flag::WILL_QOS_SHIFT);
            if w.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USER_NAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        out.put_u8(flags);
        out.put_u16(self.keep_alive_secs);
        if self.v5() {
            put_block(out, self.properties.as_deref());
        }
        put_binary(out, self.client_id.as_bytes());
        if let Some(w) = &self.will {
            if self.v5() {
                put_block(out, w.properties.as_deref());
            }
            put_binary(out, w.topic.as_bytes());
            put_binary(out, &w.payload);
        }
        if let Some(u) = &self.username {
            put_binary(out, u.as_bytes());
        }
        if let Some(p) = &self.password {
            put_binary(out, p);
        }
    }
}
