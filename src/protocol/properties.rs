//! MQTT 5 properties (section 2.2.2). One struct holds every property; each packet
//! type accepts only its own subset ([`PropertyContext::allows`]), and a property that
//! appears twice is a protocol error (5.0 says so in each property's section, with no
//! conformance id) except the user property and the subscription identifier in PUBLISH,
//! which may repeat.
//!
//! Packets carry `Option<Box<Properties>>`: most packets have none, and the box keeps
//! a PUBLISH small on the hot path.

use super::error::DecodeError;
use super::wire::{binary_len, put_binary, put_varint, varint_len, ByteStr, Reader};
use bytes::{BufMut, Bytes, BytesMut};

/// Property identifiers (section 2.2.2.2).
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Every MQTT 5 property. Absent properties are `None` / empty.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval_secs: Option<u32>,
    pub content_type: Option<ByteStr>,
    pub response_topic: Option<ByteStr>,
    pub correlation_data: Option<Bytes>,
    /// One in SUBSCRIBE; one per matching subscription in a PUBLISH to a client.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval_secs: Option<u32>,
    pub assigned_client_identifier: Option<ByteStr>,
    pub server_keep_alive_secs: Option<u16>,
    pub authentication_method: Option<ByteStr>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval_secs: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<ByteStr>,
    pub server_reference: Option<ByteStr>,
    pub reason_string: Option<ByteStr>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    /// Name/value pairs, in the order they were sent; they must be passed on in order.
    pub user_properties: Vec<(ByteStr, ByteStr)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

/// Which packet (or the will in CONNECT) a property block belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PubAck,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    /// Whether property `pid` may appear here (the table in section 2.2.2.2).
    pub fn allows(self, pid: u8) -> bool {
        use id::*;
        use PropertyContext::*;
        if pid == USER_PROPERTY {
            return true;
        }
        match pid {
            PAYLOAD_FORMAT_INDICATOR
            | MESSAGE_EXPIRY_INTERVAL
            | CONTENT_TYPE
            | RESPONSE_TOPIC
            | CORRELATION_DATA => matches!(self, Publish | Will),
            SUBSCRIPTION_IDENTIFIER => matches!(self, Publish | Subscribe),
            SESSION_EXPIRY_INTERVAL => matches!(self, Connect | ConnAck | Disconnect),
            ASSIGNED_CLIENT_IDENTIFIER
            | SERVER_KEEP_ALIVE
            | RESPONSE_INFORMATION
            | MAXIMUM_QOS
            | RETAIN_AVAILABLE
            | WILDCARD_SUBSCRIPTION_AVAILABLE
            | SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | SHARED_SUBSCRIPTION_AVAILABLE => self == ConnAck,
            AUTHENTICATION_METHOD | AUTHENTICATION_DATA => matches!(self, Connect | ConnAck | Auth),
            REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => self == Connect,
            WILL_DELAY_INTERVAL => self == Will,
            SERVER_REFERENCE => matches!(self, ConnAck | Disconnect),
            REASON_STRING => matches!(self, ConnAck | PubAck | SubAck | UnsubAck | Disconnect | Auth),
            RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => {
                matches!(self, Connect | ConnAck)
            }
            TOPIC_ALIAS => self == Publish,
            _ => false,
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, pid: u8, v: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(pid));
    }
    *slot = Some(v);
    Ok(())
}

/// A byte property whose only valid values are 0 and 1.
fn flag(r: &mut Reader, pid: u8) -> Result<u8, DecodeError> {
    let v = r.u8()?;
    if v > 1 {
        return Err(DecodeError::InvalidPropertyValue(pid));
    }
    Ok(v)
}

impl Properties {
    /// Reads a property length and block; `None` when the block is empty.
    pub fn decode(r: &mut Reader, ctx: PropertyContext) -> Result<Option<Box<Self>>, DecodeError> {
        let len = r.varint()? as usize;
        if len == 0 {
            return Ok(None);
        }
        let mut block = r.take(len)?;
        let mut p = Properties::default();
        while !block.is_empty() {
            // The identifier is a variable byte integer; every defined one fits in one byte.
            let pid_wide = block.varint()?;
            let pid = u8::try_from(pid_wide).map_err(|_| DecodeError::UnknownProperty(0xFF))?;
            if !ctx.allows(pid) {
                return Err(if Self::is_known(pid) {
                    DecodeError::MisplacedProperty(pid)
                } else {
                    DecodeError::UnknownProperty(pid)
                });
            }
            p.decode_one(&mut block, pid, ctx)?;
        }
        Ok(Some(Box::new(p)))
    }

    fn is_known(pid: u8) -> bool {
        PropertyContext::ALL.iter().any(|c| c.allows(pid))
    }

    fn decode_one(&mut self, r: &mut Reader, pid: u8, ctx: PropertyContext) -> Result<(), DecodeError> {
        use id::*;
        match pid {
            PAYLOAD_FORMAT_INDICATOR => set_once(&mut self.payload_format_indicator, pid, flag(r, pid)?),
            MESSAGE_EXPIRY_INTERVAL => set_once(&mut self.message_expiry_interval_secs, pid, r.u32()?),
            CONTENT_TYPE => set_once(&mut self.content_type, pid, r.string()?),
            RESPONSE_TOPIC => {
                let topic = r.string()?;
                // The response topic is a topic name: no wildcards (5.0 [MQTT-3.3.2-14]).
                if topic.is_empty() || topic.has_wildcard() {
                    return Err(DecodeError::InvalidPropertyValue(pid));
                }
                set_once(&mut self.response_topic, pid, topic)
            }
            CORRELATION_DATA => set_once(&mut self.correlation_data, pid, r.binary()?),
            SUBSCRIPTION_IDENTIFIER => {
                let v = r.varint()?;
                // A value of 0 is a protocol error (section 3.8.2.1.2).
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue(pid));
                }
                if ctx == PropertyContext::Subscribe && !self.subscription_identifiers.is_empty() {
                    return Err(DecodeError::DuplicateProperty(pid));
                }
                self.subscription_identifiers.push(v);
                Ok(())
            }
            SESSION_EXPIRY_INTERVAL => set_once(&mut self.session_expiry_interval_secs, pid, r.u32()?),
            ASSIGNED_CLIENT_IDENTIFIER => set_once(&mut self.assigned_client_identifier, pid, r.string()?),
            SERVER_KEEP_ALIVE => set_once(&mut self.server_keep_alive_secs, pid, r.u16()?),
            AUTHENTICATION_METHOD => set_once(&mut self.authentication_method, pid, r.string()?),
            AUTHENTICATION_DATA => set_once(&mut self.authentication_data, pid, r.binary()?),
            REQUEST_PROBLEM_INFORMATION => {
                set_once(&mut self.request_problem_information, pid, flag(r, pid)?)
            }
            WILL_DELAY_INTERVAL => set_once(&mut self.will_delay_interval_secs, pid, r.u32()?),
            REQUEST_RESPONSE_INFORMATION => {
                set_once(&mut self.request_response_information, pid, flag(r, pid)?)
            }
            RESPONSE_INFORMATION => set_once(&mut self.response_information, pid, r.string()?),
            SERVER_REFERENCE => set_once(&mut self.server_reference, pid, r.string()?),
            REASON_STRING => set_once(&mut self.reason_string, pid, r.string()?),
            RECEIVE_MAXIMUM => {
                let v = r.u16()?;
                // Receive Maximum 0 is a protocol error (section 3.1.2.11.3).
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue(pid));
                }
                set_once(&mut self.receive_maximum, pid, v)
            }
            TOPIC_ALIAS_MAXIMUM => set_once(&mut self.topic_alias_maximum, pid, r.u16()?),
            TOPIC_ALIAS => {
                let v = r.u16()?;
                // A topic alias of 0 is not permitted (5.0 [MQTT-3.3.2-8]).
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue(pid));
                }
                set_once(&mut self.topic_alias, pid, v)
            }
            MAXIMUM_QOS => set_once(&mut self.maximum_qos, pid, flag(r, pid)?),
            RETAIN_AVAILABLE => set_once(&mut self.retain_available, pid, flag(r, pid)?),
            USER_PROPERTY => {
                let k = r.string()?;
                let v = r.string()?;
                self.user_properties.push((k, v));
                Ok(())
            }
            MAXIMUM_PACKET_SIZE => {
                let v = r.u32()?;
                // Maximum Packet Size 0 is a protocol error (section 3.1.2.11.4).
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue(pid));
                }
                set_once(&mut self.maximum_packet_size, pid, v)
            }
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                set_once(&mut self.wildcard_subscription_available, pid, flag(r, pid)?)
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                set_once(&mut self.subscription_identifier_available, pid, flag(r, pid)?)
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                set_once(&mut self.shared_subscription_available, pid, flag(r, pid)?)
            }
            other => Err(DecodeError::UnknownProperty(other)),
        }
    }

    /// Length of the encoded block, without its own length prefix.
    pub fn encoded_len(&self) -> usize {
        let mut n = 0;
        let byte = |o: &Option<u8>| o.map_or(0, |_| 2);
        let u16p = |o: &Option<u16>| o.map_or(0, |_| 3);
        let u32p = |o: &Option<u32>| o.map_or(0, |_| 5);
        let s = |o: &Option<ByteStr>| o.as_ref().map_or(0, |v| 1 + binary_len(v.as_bytes()));
        let b = |o: &Option<Bytes>| o.as_ref().map_or(0, |v| 1 + binary_len(v));
        n += byte(&self.payload_format_indicator) + u32p(&self.message_expiry_interval_secs);
        n += s(&self.content_type) + s(&self.response_topic) + b(&self.correlation_data);
        n += self.subscription_identifiers.iter().map(|&v| 1 + varint_len(v)).sum::<usize>();
        n += u32p(&self.session_expiry_interval_secs) + s(&self.assigned_client_identifier);
        n += u16p(&self.server_keep_alive_secs) + s(&self.authentication_method);
        n += b(&self.authentication_data) + byte(&self.request_problem_information);
        n += u32p(&self.will_delay_interval_secs) + byte(&self.request_response_information);
        n += s(&self.response_information) + s(&self.server_reference) + s(&self.reason_string);
        n += u16p(&self.receive_maximum) + u16p(&self.topic_alias_maximum) + u16p(&self.topic_alias);
        n += byte(&self.maximum_qos) + byte(&self.retain_available);
        n += self
            .user_properties
            .iter()
            .map(|(k, v)| 1 + binary_len(k.as_bytes()) + binary_len(v.as_bytes()))
            .sum::<usize>();
        n += u32p(&self.maximum_packet_size) + byte(&self.wildcard_subscription_available);
        n += byte(&self.subscription_identifier_available) + byte(&self.shared_subscription_available);
        n
    }

    /// Appends the block's properties (without the length prefix), in identifier order;
    /// user properties keep their order.
    pub fn encode_body(&self, out: &mut BytesMut) {
        use id::*;
        fn byte(out: &mut BytesMut, pid: u8, o: Option<u8>) {
            if let Some(v) = o {
                out.put_u8(pid);
                out.put_u8(v);
            }
        }
        fn u16p(out: &mut BytesMut, pid: u8, o: Option<u16>) {
            if let Some(v) = o {
                out.put_u8(pid);
                out.put_u16(v);
            }
        }
        fn u32p(out: &mut BytesMut, pid: u8, o: Option<u32>) {
            if let Some(v) = o {
                out.put_u8(pid);
                out.put_u32(v);
            }
        }
        fn bin(out: &mut BytesMut, pid: u8, o: Option<&[u8]>) {
            if let Some(v) = o {
                out.put_u8(pid);
                put_binary(out, v);
            }
        }
        fn s(o: &Option<ByteStr>) -> Option<&[u8]> {
            o.as_ref().map(|v| &v.as_bytes()[..])
        }
        byte(out, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        u32p(out, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval_secs);
        bin(out, CONTENT_TYPE, s(&self.content_type));
        bin(out, RESPONSE_TOPIC, s(&self.response_topic));
        bin(out, CORRELATION_DATA, self.correlation_data.as_deref());
        for &v in &self.subscription_identifiers {
            out.put_u8(SUBSCRIPTION_IDENTIFIER);
            put_varint(out, v);
        }
        u32p(out, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval_secs);
        bin(out, ASSIGNED_CLIENT_IDENTIFIER, s(&self.assigned_client_identifier));
        u16p(out, SERVER_KEEP_ALIVE, self.server_keep_alive_secs);
        bin(out, AUTHENTICATION_METHOD, s(&self.authentication_method));
        bin(out, AUTHENTICATION_DATA, self.authentication_data.as_deref());
        byte(out, REQUEST_PROBLEM_INFORMATION, self.request_problem_information);
        u32p(out, WILL_DELAY_INTERVAL, self.will_delay_interval_secs);
        byte(out, REQUEST_RESPONSE_INFORMATION, self.request_response_information);
        bin(out, RESPONSE_INFORMATION, s(&self.response_information));
        bin(out, SERVER_REFERENCE, s(&self.server_reference));
        bin(out, REASON_STRING, s(&self.reason_string));
        u16p(out, RECEIVE_MAXIMUM, self.receive_maximum);
        u16p(out, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        u16p(out, TOPIC_ALIAS, self.topic_alias);
        byte(out, MAXIMUM_QOS, self.maximum_qos);
        byte(out, RETAIN_AVAILABLE, self.retain_available);
        for (k, v) in &self.user_properties {
            out.put_u8(USER_PROPERTY);
            put_binary(out, k.as_bytes());
            put_binary(out, v.as_bytes());
        }
        u32p(out, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        byte(out, WILDCARD_SUBSCRIPTION_AVAILABLE, self.wildcard_subscription_available);
        byte(out, SUBSCRIPTION_IDENTIFIER_AVAILABLE, self.subscription_identifier_available);
        byte(out, SHARED_SUBSCRIPTION_AVAILABLE, self.shared_subscription_available);
    }
}

impl PropertyContext {
    const ALL: [PropertyContext; 11] = [
        Self::Connect,
        Self::Will,
        Self::ConnAck,
        Self::Publish,
        Self::PubAck,
        Self::Subscribe,
        Self::SubAck,
        Self::Unsubscribe,
        Self::UnsubAck,
        Self::Disconnect,
        Self::Auth,
    ];
}

/// Encoded size of an optional property block including its length prefix.
pub fn block_len(p: Option<&Properties>) -> usize {
    let n = p.map_or(0, Properties::encoded_len);
    varint_len(n as u32) + n
}

/// Appends an optional property block with its length prefix.
pub fn put_block(out: &mut BytesMut, p: Option<&Properties>) {
    match p {
        None => out.put_u8(0),
        Some(p) => {
            put_varint(out, p.encoded_len() as u32);
            p.encode_body(out);
        }
    }
}
