//! Framing: the fixed header (section 2.1), then dispatch to the packet's decoder.
//!
//! Decoding is two-phase. [`check_frame`] looks at the fixed header only and answers
//! "complete, this long" or "incomplete, need N more bytes"; an incomplete frame is a
//! normal answer, not an error. The remaining length is checked against the maximum
//! packet size before any of the body is buffered, so an oversized packet is refused
//! as soon as its header arrives.

use super::error::DecodeError;
use super::packet::{
    kind, Ack, Auth, ConnAck, Connect, Disconnect, Packet, Publish, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use super::reason::{valid_puback, valid_pubrel};
use super::wire::{put_varint, Reader};
use super::ProtocolVersion;
use bytes::{Buf, BufMut, BytesMut};

/// What [`check_frame`] found at the front of a buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameStatus {
    /// A whole packet of `header_len + body_len` bytes is buffered.
    Complete { header_len: usize, body_len: usize },
    /// At least `needed` more bytes must arrive before the frame is complete.
    Incomplete { needed: usize },
}

/// Reads the fixed header of the frame at the front of `buf`. `max_packet_size` bounds the
/// whole packet (fixed header included), as the Maximum Packet Size property does.
pub fn check_frame(buf: &[u8], max_packet_size: usize) -> Result<FrameStatus, DecodeError> {
    if buf.is_empty() {
        return Ok(FrameStatus::Incomplete { needed: 2 });
    }
    let mut body_len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(FrameStatus::Incomplete { needed: 2 + i - buf.len() });
        };
        body_len |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            let header_len = 2 + i;
            let total = header_len + body_len;
            if total > max_packet_size {
                return Err(DecodeError::PacketTooLarge(total));
            }
            if buf.len() < total {
                return Ok(FrameStatus::Incomplete { needed: total - buf.len() });
            }
            return Ok(FrameStatus::Complete { header_len, body_len });
        }
    }
    // A fifth length byte is malformed (3.1.1 section 2.2.3, 5.0 section 1.5.5).
    Err(DecodeError::RemainingLengthTooLong)
}

/// The result of one [`Decoder::decode`] call.
#[derive(Debug)]
pub enum Decoded {
    Packet(Packet),
    Incomplete { needed: usize },
}

/// Decodes frames off the front of a connection's read buffer. Before a CONNECT has
/// been seen it is a server decoder waiting for one; its protocol level then applies
/// to every later packet.
#[derive(Clone, Debug)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: usize,
}

impl Decoder {
    /// A server-side decoder: the first packet must be CONNECT [MQTT-3.1.0-1].
    pub fn server(max_packet_size: usize) -> Self {
        Decoder { version: None, max_packet_size }
    }

    /// A decoder for a known protocol level (a client, or a server after CONNECT).
    pub fn with_version(version: ProtocolVersion, max_packet_size: usize) -> Self {
        Decoder { version: Some(version), max_packet_size }
    }

    /// The protocol level in force, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Changes the maximum packet size (after CONNECT, for example).
    pub fn set_max_packet_size(&mut self, max_packet_size: usize) {
        self.max_packet_size = max_packet_size;
    }

    /// Takes one packet off the front of `buf`, or says how many more bytes it needs.
    /// On success the packet's bytes are split off `buf`; the packet's `Bytes` fields
    /// share that memory.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        let (header_len, body_len) = match check_frame(buf, self.max_packet_size)? {
            FrameStatus::Incomplete { needed } => return Ok(Decoded::Incomplete { needed }),
            FrameStatus::Complete { header_len, body_len } => (header_len, body_len),
        };
        let first = buf[0];
        let packet_type = first >> 4;
        if body_len == 2 && self.version.is_some() {
            if let Some(ack) = short_ack(packet_type, first, &buf[header_len..header_len + 2]) {
                buf.advance(header_len + 2);
                return ack.map(Decoded::Packet);
            }
        }
        // Skipping the header on the `BytesMut` moves a pointer; splitting it off a
        // `Bytes` would take another reference.
        let mut frame = buf.split_to(header_len + body_len);
        frame.advance(header_len);
        let mut r = Reader::new(frame.freeze());
        let version = match self.version {
            Some(v) => v,
            None if packet_type == kind::CONNECT => {
                check_flags(first, 0)?;
                let connect = Connect::decode(&mut r)?;
                self.version = Some(connect.version);
                return Ok(Decoded::Packet(Packet::Connect(Box::new(connect))));
            }
            None => return Err(DecodeError::FirstPacketNotConnect),
        };
        // PUBLISH is most of the traffic: decode it without the general dispatch, so the
        // packet is built once in place rather than moved through each layer.
        if packet_type == kind::PUBLISH {
            return Publish::decode(first & 0x0F, &mut r, version)
                .map(|p| Decoded::Packet(Packet::Publish(p)));
        }
        decode_body(first, &mut r, version).map(Decoded::Packet)
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP in its 2-byte form (all of 3.1.1's; 5.0's success
/// without properties), decoded straight from the buffer: these are about one packet in
/// two at QoS 1 and 2, and the general path would split a frame off the buffer for them
/// (a reference count taken and dropped, measurable in the QoS 1 fan-out profile).
/// `None` for any other packet type. Checks what [`Ack::decode`] checks.
fn short_ack(packet_type: u8, first: u8, body: &[u8]) -> Option<Result<Packet, DecodeError>> {
    let flags = if packet_type == kind::PUBREL { 0b0010 } else { 0 };
    let make: fn(Ack) -> Packet = match packet_type {
        kind::PUBACK => Packet::PubAck,
        kind::PUBREC => Packet::PubRec,
        kind::PUBREL => Packet::PubRel,
        kind::PUBCOMP => Packet::PubComp,
        _ => return None,
    };
    let packet_id = u16::from_be_bytes([body[0], body[1]]);
    Some(check_flags(first, flags).and_then(|()| {
        // These packets always carry a non-zero identifier: the one of the PUBLISH they
        // answer (3.1.1 [MQTT-2.3.1-6], 5.0 [MQTT-2.2.1-5]).
        if packet_id == 0 {
            return Err(DecodeError::ZeroPacketId);
        }
        Ok(make(Ack::new(packet_id)))
    }))
}

/// Fixed-header flags must be exactly as the spec lists them (3.1.1 [MQTT-2.2.2-1],
/// 5.0 [MQTT-2.1.3-1]).
fn check_flags(first: u8, expected: u8) -> Result<(), DecodeError> {
    if first & 0x0F != expected {
        return Err(DecodeError::InvalidHeaderFlags);
    }
    Ok(())
}

fn empty_body(r: &Reader) -> Result<(), DecodeError> {
    if !r.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(())
}

/// Decodes the body of a frame whose first header byte is `first`.
pub fn decode_body(first: u8, r: &mut Reader, v: ProtocolVersion) -> Result<Packet, DecodeError> {
    let flags = first & 0x0F;
    let packet = match first >> 4 {
        kind::PUBLISH => Packet::Publish(Publish::decode(flags, r, v)?),
        kind::CONNECT => {
            check_flags(first, 0)?;
            Packet::Connect(Box::new(Connect::decode(r)?))
        }
        kind::CONNACK => {
            check_flags(first, 0)?;
            Packet::ConnAck(ConnAck::decode(r, v)?)
        }
        kind::PUBACK => {
            check_flags(first, 0)?;
            Packet::PubAck(Ack::decode(r, v, valid_puback)?)
        }
        kind::PUBREC => {
            check_flags(first, 0)?;
            Packet::PubRec(Ack::decode(r, v, valid_puback)?)
        }
        kind::PUBREL => {
            // [MQTT-3.6.1-1]
            check_flags(first, 0b0010)?;
            Packet::PubRel(Ack::decode(r, v, valid_pubrel)?)
        }
        kind::PUBCOMP => {
            check_flags(first, 0)?;
            Packet::PubComp(Ack::decode(r, v, valid_pubrel)?)
        }
        kind::SUBSCRIBE => {
            // [MQTT-3.8.1-1]
            check_flags(first, 0b0010)?;
            Packet::Subscribe(Subscribe::decode(r, v)?)
        }
        kind::SUBACK => {
            check_flags(first, 0)?;
            Packet::SubAck(SubAck::decode(r, v)?)
        }
        kind::UNSUBSCRIBE => {
            // [MQTT-3.10.1-1]
            check_flags(first, 0b0010)?;
            Packet::Unsubscribe(Unsubscribe::decode(r, v)?)
        }
        kind::UNSUBACK => {
            check_flags(first, 0)?;
            Packet::UnsubAck(UnsubAck::decode(r, v)?)
        }
        kind::PINGREQ => {
            check_flags(first, 0)?;
            empty_body(r)?;
            Packet::PingReq
        }
        kind::PINGRESP => {
            check_flags(first, 0)?;
            empty_body(r)?;
            Packet::PingResp
        }
        kind::DISCONNECT => {
            check_flags(first, 0)?;
            Packet::Disconnect(Disconnect::decode(r, v)?)
        }
        kind::AUTH => {
            check_flags(first, 0)?;
            Packet::Auth(Auth::decode(r, v)?)
        }
        _ => return Err(DecodeError::ReservedPacketType),
    };
    Ok(packet)
}

impl Packet {
    /// Appends the packet, fixed header included, as protocol level `v` encodes it.
    pub fn encode(&self, v: ProtocolVersion, out: &mut BytesMut) {
        let (first, len) = match self {
            Packet::Publish(p) => return p.encode(v, out),
            Packet::Connect(c) => (kind::CONNECT << 4, c.body_len()),
            Packet::ConnAck(c) => (kind::CONNACK << 4, c.body_len(v)),
            Packet::PubAck(a) => (kind::PUBACK << 4, a.body_len(v)),
            Packet::PubRec(a) => (kind::PUBREC << 4, a.body_len(v)),
            Packet::PubRel(a) => (kind::PUBREL << 4 | 0b0010, a.body_len(v)),
            Packet::PubComp(a) => (kind::PUBCOMP << 4, a.body_len(v)),
            Packet::Subscribe(s) => (kind::SUBSCRIBE << 4 | 0b0010, s.body_len(v)),
            Packet::SubAck(s) => (kind::SUBACK << 4, s.body_len(v)),
            Packet::Unsubscribe(u) => (kind::UNSUBSCRIBE << 4 | 0b0010, u.body_len(v)),
            Packet::UnsubAck(u) => (kind::UNSUBACK << 4, u.body_len(v)),
            Packet::PingReq => (kind::PINGREQ << 4, 0),
            Packet::PingResp => (kind::PINGRESP << 4, 0),
            Packet::Disconnect(d) => (kind::DISCONNECT << 4, d.body_len(v)),
            Packet::Auth(a) => (kind::AUTH << 4, a.body_len()),
        };
        out.reserve(len + 5);
        out.put_u8(first);
        put_varint(out, len as u32);
        match self {
            Packet::Publish(_) | Packet::PingReq | Packet::PingResp => {}
            Packet::Connect(c) => c.encode_body(out),
            Packet::ConnAck(c) => c.encode_body(v, out),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                a.encode_body(v, out)
            }
            Packet::Subscribe(s) => s.encode_body(v, out),
            Packet::SubAck(s) => s.encode_body(v, out),
            Packet::Unsubscribe(u) => u.encode_body(v, out),
            Packet::UnsubAck(u) => u.encode_body(v, out),
            Packet::Disconnect(d) => d.encode_body(v, out),
            Packet::Auth(a) => a.encode_body(out),
        }
    }

    /// The encoded size of the whole packet, for checking a client's Maximum Packet Size.
    pub fn encoded_len(&self, v: ProtocolVersion) -> usize {
        let mut out = BytesMut::new();
        self.encode(v, &mut out);
        out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2-byte acknowledgements take the short path; it must give exactly what the
    /// general path gives, and consume exactly its frame.
    #[test]
    fn short_acknowledgements_decode_as_the_general_path_does() {
        for v in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for first in [0x40u8, 0x50, 0x62, 0x70] {
                let mut buf = BytesMut::from(&[first, 0x02, 0x12, 0x34, 0xC0, 0x00][..]);
                let mut d = Decoder::with_version(v, 1 << 20);
                let Ok(Decoded::Packet(short)) = d.decode(&mut buf) else { panic!("{first:#x} {v:?}") };
                let general =
                    decode_body(first, &mut Reader::new(bytes::Bytes::from_static(&[0x12, 0x34])), v)
                        .unwrap();
                assert_eq!(short, general, "{first:#x} {v:?}");
                assert_eq!(&buf[..], &[0xC0, 0x00], "the next packet is left in place");
                assert!(matches!(d.decode(&mut buf), Ok(Decoded::Packet(Packet::PingReq))));
            }
        }
    }
}
