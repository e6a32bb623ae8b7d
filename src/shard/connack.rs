//! What a CONNECT asks for and what the broker answers, decided from the packet and the
//! configuration alone: whether to refuse it, the CONNACK's properties, the will to
//! keep, the keepalive to enforce. The registry round trip is the control plane's.

use crate::config::{Config, PROTOCOL_MAX_PACKET_BYTES};
use crate::protocol::{ByteStr, ConnAck, Connect, Packet, Properties, ProtocolVersion, ReasonCode};
use crate::session::{Limits, Message, Origin, PublisherKey};
use std::sync::Arc;

/// What CONNECT checking decided before the registry is asked.
pub enum ConnectDecision {
    /// Register this client id (`assigned`: the broker chose it) and wait for the handoff.
    Register { client_id: ByteStr, assigned: bool },
    /// Refuse with this CONNACK reason; the connection closes.
    Refuse(ReasonCode),
}

/// Checks a CONNECT against the rules that need no other shard and the configuration
/// (credentials are `login.rs`'s). `assign_id` names a client that sent none (MQTT 5
/// section 3.1.3.1).
pub fn check_connect(cfg: &Config, connect: &Connect, assign_id: impl FnOnce() -> String) -> ConnectDecision {
    if connect.will.as_ref().is_some_and(|w| w.retain && !cfg.retain_available) {
        return ConnectDecision::Refuse(ReasonCode::RETAIN_NOT_SUPPORTED);
    }
    // A will is a PUBLISH waiting to happen: `message_size_limit` bounds its payload as
    // it bounds a PUBLISH's, and refusing it now beats dropping it when it is due.
    // Mosquitto refuses it so: CONNACK 0x95 (Packet too large) in 5.0, and in 3.x, which
    // has no such return code, 5 (not authorized: `to_v3_connack` maps 0x95 there).
    let limit = cfg.message_size_limit as usize;
    if limit > 0 && connect.will.as_ref().is_some_and(|w| w.payload.len() > limit) {
        crate::log!(Debug, "Client {} connected with too large Will payload.", connect.client_id);
        return ConnectDecision::Refuse(ReasonCode::PACKET_TOO_LARGE);
    }
    if !connect.version.is_v5() && connect.keep_alive_secs > cfg.max_keepalive_secs {
        // A 3.x client cannot be told another keepalive; Mosquitto refuses it too.
        return ConnectDecision::Refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    }
    if connect.version == ProtocolVersion::V3_1 && connect.client_id.len() > 23 {
        // MQTT 3.1 allows 1 to 23 characters.
        return ConnectDecision::Refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    }
    if connect.client_id.is_empty() {
        // 3.1.1: an empty id needs clean session 1 (3.1.1 [MQTT-3.1.3-7] [MQTT-3.1.3-8]);
        // 3.1 has no empty ids; 5.0 assigns one (section 3.1.3.1).
        let allowed = match connect.version {
            ProtocolVersion::V3_1 => false,
            ProtocolVersion::V3_1_1 => connect.clean_start,
            ProtocolVersion::V5 => true,
        };
        if !allowed {
            return ConnectDecision::Refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        return ConnectDecision::Register { client_id: ByteStr::from(assign_id()), assigned: true };
    }
    // A copy of its own: a slice would keep the whole read buffer the CONNECT arrived in
    // alive for as long as the session lives.
    ConnectDecision::Register { client_id: ByteStr::from(connect.client_id.as_str()), assigned: false }
}

/// Whether a CONNACK fits the client's Maximum Packet Size, which counts the whole
/// packet (5.0 section 3.1.2.11.4): the server must not send a larger one (5.0
/// [MQTT-3.1.2-24]). Mosquitto checks too, but leaves out the fixed header's first byte.
pub fn fits_client(connect: &Connect, ack: ConnAck) -> bool {
    let Some(max) = connect.properties.as_ref().and_then(|p| p.maximum_packet_size) else {
        return true;
    };
    let mut bytes = bytes::BytesMut::new();
    Packet::ConnAck(ack).encode(connect.version, &mut bytes);
    bytes.len() <= max as usize
}

/// Whether the CONNACK refusing a CONNECT with `code` fits the client's Maximum Packet Size.
pub fn refusal_fits(connect: &Connect, code: ReasonCode) -> bool {
    fits_client(connect, ConnAck { session_present: false, code, properties: None })
}

/// The Session Expiry Interval the session gets, in seconds (`u32::MAX`: never).
pub fn session_expiry_secs(connect: &Connect) -> u32 {
    match connect.version {
        ProtocolVersion::V5 => {
            connect.properties.as_ref().and_then(|p| p.session_expiry_interval_secs).unwrap_or(0)
        }
        _ if connect.clean_start => 0,
        _ => u32::MAX,
    }
}

/// The keepalive the broker holds the client to: an MQTT 5 client is told the server's
/// in CONNACK and must use it (section 3.2.2.3.14).
pub fn enforced_keep_alive_secs(connect: &Connect, max_keepalive_secs: u16) -> u16 {
    let asked = connect.keep_alive_secs;
    if connect.version.is_v5() && server_keep_alive_differs(asked, max_keepalive_secs) {
        max_keepalive_secs
    } else {
        asked
    }
}

fn server_keep_alive_differs(asked: u16, max: u16) -> bool {
    asked > max || (asked == 0 && max < u16::MAX)
}

/// The properties of a successful MQTT 5 CONNACK (`None` when none differ from the defaults).
pub fn connack_properties(
    cfg: &Config,
    limits: &Limits,
    connect: &Connect,
    assigned: Option<&ByteStr>,
) -> Option<Box<Properties>> {
    if !connect.version.is_v5() {
        return None;
    }
    let asked = connect.properties.as_deref();
    let mut p = Properties { assigned_client_identifier: assigned.cloned(), ..Default::default() };
    if !cfg.retain_available {
        p.retain_available = Some(0);
    }
    if cfg.max_packet_size < PROTOCOL_MAX_PACKET_BYTES {
        p.maximum_packet_size = Some(cfg.max_packet_size);
    }
    if server_keep_alive_differs(connect.keep_alive_secs, cfg.max_keepalive_secs) {
        p.server_keep_alive_secs = Some(cfg.max_keepalive_secs);
    }
    p.topic_alias_maximum = Some(limits.max_topic_alias);
    if limits.receive_maximum < u16::MAX {
        p.receive_maximum = Some(limits.receive_maximum);
    }
    // Response Information only when asked for and configured (section 3.1.2.11.6).
    if asked.and_then(|p| p.request_response_information) == Some(1) {
        p.response_information = cfg.response_information.as_deref().map(ByteStr::from);
    }
    (p != Properties::default()).then(|| Box::new(p))
}

/// The will a CONNECT carries, as the message to publish, and its Will Delay Interval
/// in seconds. Copies, for the same reason as the client id.
pub fn will_of(connect: &Connect) -> (Option<Message>, u32) {
    let Some(w) = &connect.will else { return (None, 0) };
    let delay_secs = w.properties.as_ref().and_then(|p| p.will_delay_interval_secs).unwrap_or(0);
    let will = Message {
        topic: ByteStr::from(w.topic.as_str()),
        payload: bytes::Bytes::copy_from_slice(&w.payload),
        qos: w.qos,
        retain: w.retain,
        properties: w.properties.as_ref().map(|p| {
            let mut p = (**p).clone();
            p.will_delay_interval_secs = None;
            Arc::new(p)
        }),
        expires_at_ms: None,
        publisher: PublisherKey::NONE,
        origin: Origin::UNROUTED,
    };
    (Some(will), delay_secs)
}

/// The protocol number Mosquitto prints in "(p2, c1, k60)".
pub fn mosquitto_protocol_number(v: ProtocolVersion) -> u8 {
    match v {
        ProtocolVersion::V3_1 => 1,
        ProtocolVersion::V3_1_1 => 2,
        ProtocolVersion::V5 => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(version: ProtocolVersion, maximum_packet_size: Option<u32>) -> Connect {
        let properties = maximum_packet_size
            .map(|m| Box::new(Properties { maximum_packet_size: Some(m), ..Default::default() }));
        Connect {
            version,
            clean_start: true,
            keep_alive_secs: 0,
            client_id: ByteStr::from("c"),
            will: None,
            username: None,
            password: None,
            properties,
        }
    }

    #[test]
    fn a_connack_fits_a_maximum_packet_size_counted_over_the_whole_packet() {
        let refused = ReasonCode::NOT_AUTHORIZED;
        // 20 03 00 87 00: five bytes, the fixed header included (5.0 section 3.1.2.11.4).
        assert!(refusal_fits(&connect(ProtocolVersion::V5, Some(5)), refused));
        assert!(!refusal_fits(&connect(ProtocolVersion::V5, Some(4)), refused));
        assert!(refusal_fits(&connect(ProtocolVersion::V5, None), refused));
        assert!(refusal_fits(&connect(ProtocolVersion::V3_1_1, None), refused));
    }
}
