//! What a shard does with each packet from a connected client, and with a connection's
//! end. Synchronous: the connection task calls in with the state borrowed.

use super::messages::MeshMsg;
use super::state::{CloseKind, ConnId, PendingSubAck, SessionId, ShardState};
use crate::protocol::{
    ByteStr, ConnAck, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};
use crate::session::{Message, PublisherKey, Session, Subscription};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The broker closes the connection: the MQTT 5 DISCONNECT reason and whether the will goes out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Close {
    pub reason: ReasonCode,
    pub kind: CloseKind,
    /// Why, for the log and the DISCONNECT's Reason String.
    pub detail: &'static str,
}

impl Close {
    pub fn protocol_error(reason: ReasonCode, detail: &'static str) -> Self {
        Close { reason, kind: CloseKind::Abnormal, detail }
    }
}

/// What CONNECT checking decided before the registry is asked.
pub enum ConnectDecision {
    /// Register this (possibly assigned) client id and wait for the handoff.
    Register { client_id: ByteStr, assigned: bool },
    /// Refuse with this CONNACK reason; the connection closes.
    Refuse(ReasonCode),
}

/// The version number Mosquitto prints in "(p2, c1, k60)".
fn mosquitto_protocol_number(v: ProtocolVersion) -> u8 {
    match v {
        ProtocolVersion::V3_1 => 1,
        ProtocolVersion::V3_1_1 => 2,
        ProtocolVersion::V5 => 5,
    }
}

impl ShardState {
    /// Checks a CONNECT against the rules that need no other shard [MQTT-3.1.3-8] and
    /// the configuration.
    pub fn check_connect(&mut self, connect: &Connect) -> ConnectDecision {
        let cfg = self.config();
        if !cfg.allow_anonymous {
            crate::log!(
                Notice,
                "Client refused: allow_anonymous is false and ringmq has no password file support yet."
            );
            return ConnectDecision::Refuse(ReasonCode::NOT_AUTHORIZED);
        }
        if connect.properties.as_ref().and_then(|p| p.authentication_method.as_ref()).is_some() {
            return ConnectDecision::Refuse(ReasonCode::BAD_AUTHENTICATION_METHOD);
        }
        if let Some(w) = &connect.will {
            if w.retain && !cfg.retain_available {
                return ConnectDecision::Refuse(ReasonCode::RETAIN_NOT_SUPPORTED);
            }
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
            // 3.1.1: an empty id needs clean session 1 [MQTT-3.1.3-7] [MQTT-3.1.3-8]; 3.1
            // has no empty ids; 5.0 assigns one (section 3.1.3.1).
            let allowed = match connect.version {
                ProtocolVersion::V3_1 => false,
                ProtocolVersion::V3_1_1 => connect.clean_start,
                ProtocolVersion::V5 => true,
            };
            if !allowed {
                return ConnectDecision::Refuse(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
            }
            let token = self.new_token();
            let id = format!("auto-{:04x}-{:012x}", self.id, token & 0xFFFF_FFFF_FFFF);
            return ConnectDecision::Register { client_id: ByteStr::from(id), assigned: true };
        }
        // A copy of its own: a slice would keep the whole read buffer the CONNECT arrived
        // in alive for as long as the session lives.
        ConnectDecision::Register { client_id: ByteStr::from(connect.client_id.as_str()), assigned: false }
    }

    /// Writes a refusing CONNACK and marks the connection for closing.
    pub fn refuse_connect(&mut self, conn: ConnId, version: ProtocolVersion, reason: ReasonCode) {
        if let Some(c) = self.conns.get_mut(conn) {
            Packet::ConnAck(ConnAck { session_present: false, code: reason, properties: None })
                .encode(version, &mut c.out);
            crate::log!(Information, "Client connection from {} refused: {:?}.", c.peer, reason);
            c.closing = true;
        }
        self.wake_writer(conn);
    }

    /// The registry answered: install the session (resumed or new), send CONNACK, and
    /// re-send what the resumed session had in flight.
    pub fn complete_connect(
        &mut self,
        conn: ConnId,
        connect: &Connect,
        client_id: ByteStr,
        assigned: bool,
        token: u64,
        resumed: Option<SessionId>,
    ) -> SessionId {
        let v = connect.version;
        let props = connect.properties.as_deref();
        let expiry = match v {
            ProtocolVersion::V5 => props.and_then(|p| p.session_expiry_interval_secs).unwrap_or(0),
            _ if connect.clean_start => 0,
            _ => u32::MAX,
        };
        // The resumed session was installed (offline) when its handoff arrived.
        let resumed = resumed.filter(|sid| self.sessions.get(*sid).is_some_and(|e| e.conn.is_none()));
        let session_present = resumed.is_some();
        let sid = match resumed {
            Some(sid) => sid,
            None => {
                self.install_session(Session::new(client_id.clone(), v, expiry, self.limits), None, token)
            }
        };
        let receive_max = props.and_then(|p| p.receive_maximum).unwrap_or(u16::MAX);
        let max_packet = props.and_then(|p| p.maximum_packet_size).map_or(usize::MAX, |m| m as usize);
        if let Some(e) = self.sessions.get_mut(sid) {
            e.conn = Some(conn);
            e.offline_since = None;
            e.token = token;
            let session = &mut e.session;
            session.expiry_interval_secs = expiry;
            session.attach(v, receive_max, max_packet);
            session.set_client_topic_alias_maximum(props.and_then(|p| p.topic_alias_maximum).unwrap_or(0));
            session.set_now_ms(self.clock_ms);
        }
        let cfg = self.config();
        let mut ack_props = Properties::default();
        if v.is_v5() {
            if assigned {
                ack_props.assigned_client_identifier = Some(client_id.clone());
            }
            if !cfg.retain_available {
                ack_props.retain_available = Some(0);
            }
            if cfg.max_packet_size < crate::config::PROTOCOL_MAX_PACKET_BYTES {
                ack_props.maximum_packet_size = Some(cfg.max_packet_size);
            }
            if connect.keep_alive_secs > cfg.max_keepalive_secs
                || (connect.keep_alive_secs == 0 && cfg.max_keepalive_secs < u16::MAX)
            {
                ack_props.server_keep_alive_secs = Some(cfg.max_keepalive_secs);
            }
            ack_props.topic_alias_maximum = Some(self.limits.max_topic_alias);
            if self.limits.receive_maximum < u16::MAX {
                ack_props.receive_maximum = Some(self.limits.receive_maximum);
            }
            // Response Information only when asked for and configured (section 3.1.2.11.6).
            if props.and_then(|p| p.request_response_information) == Some(1) {
                ack_props.response_information = cfg.response_information.as_deref().map(ByteStr::from);
            }
        }
        // Copies, for the same reason as the client id.
        let will = connect.will.as_ref().map(|w| Message {
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
        });
        let will_delay_secs = connect
            .will
            .as_ref()
            .and_then(|w| w.properties.as_ref())
            .and_then(|p| p.will_delay_interval_secs)
            .unwrap_or(0);
        if let Some(c) = self.conns.get_mut(conn) {
            c.session = Some(sid);
            c.client_id = Some(client_id.clone());
            c.version = v;
            c.will = will.map(Box::new);
            c.will_delay_secs = will_delay_secs;
            c.problem_information = props.and_then(|p| p.request_problem_information) != Some(0);
            let properties = (ack_props != Properties::default()).then(|| Box::new(ack_props));
            // Session present is 0 whenever clean start is set [MQTT-3.2.2-1] [MQTT-3.2.2-2].
            Packet::ConnAck(ConnAck { session_present, code: ReasonCode::SUCCESS, properties })
                .encode(v, &mut c.out);
            crate::log!(
                Information,
                "New client connected from {} as {} (p{}, c{}, k{}).",
                c.peer,
                client_id,
                mosquitto_protocol_number(v),
                connect.clean_start as u8,
                connect.keep_alive_secs
            );
            crate::log!(Debug, "Sending CONNACK to {} ({}, 0)", client_id, session_present as u8);
        }
        if let Some(entry) = self.sessions.get_mut(sid) {
            if let Some(c) = entry.conn.and_then(|c| self.conns.get_mut(c)) {
                entry.session.resume(&mut c.out);
            }
        }
        self.wake_writer(conn);
        sid
    }

    /// One packet from a connected client.
    pub fn handle_packet(&mut self, conn: ConnId, packet: Packet) -> Result<(), Close> {
        let Some(c) = self.conns.get_mut(conn) else {
            return Err(Close::protocol_error(ReasonCode::UNSPECIFIED_ERROR, "connection state lost"));
        };
        let Some(sid) = c.session else {
            return Err(Close::protocol_error(ReasonCode::SESSION_TAKEN_OVER, "session taken over"));
        };
        // The client id is only needed for per-packet log lines: skip the refcount
        // traffic of cloning it when those are off.
        let cid = if crate::log::enabled(crate::log::Level::Debug) {
            c.client_id.clone().unwrap_or_default()
        } else {
            ByteStr::default()
        };
        let Some(entry) = self.sessions.get_mut(sid) else {
            return Err(Close::protocol_error(ReasonCode::UNSPECIFIED_ERROR, "connection state lost"));
        };
        // An acknowledgement may let queued messages out: their expiry is checked now.
        entry.session.set_now_ms(self.clock_ms);
        let out = &mut c.out;
        match packet {
            Packet::Publish(p) => return self.handle_publish(conn, sid, p, &cid),
            Packet::PubAck(a) => entry.session.handle_puback(a.packet_id, out),
            Packet::PubRec(a) => entry.session.handle_pubrec(a.packet_id, a.reason, out),
            Packet::PubRel(a) => entry.session.handle_pubrel(a.packet_id, out),
            Packet::PubComp(a) => entry.session.handle_pubcomp(a.packet_id, out),
            Packet::Subscribe(s) => self.handle_subscribe(conn, sid, s, &cid),
            Packet::Unsubscribe(u) => self.handle_unsubscribe(conn, sid, u, &cid),
            Packet::PingReq => {
                crate::log!(Debug, "Received PINGREQ from {}", cid);
                Packet::PingResp.encode(c.version, out);
                crate::log!(Debug, "Sending PINGRESP to {}", cid);
            }
            Packet::Disconnect(d) => {
                crate::log!(Debug, "Received DISCONNECT from {}", cid);
                if let Some(expiry) = d.properties.as_ref().and_then(|p| p.session_expiry_interval_secs) {
                    // Setting a non-zero expiry at DISCONNECT after 0 at CONNECT is a
                    // protocol error [MQTT-3.14.2-2].
                    if entry.session.expiry_interval_secs == 0 && expiry != 0 {
                        return Err(Close::protocol_error(
                            ReasonCode::PROTOCOL_ERROR,
                            "session expiry set at DISCONNECT after 0 at CONNECT [MQTT-3.14.2-2]",
                        ));
                    }
                    entry.session.expiry_interval_secs = expiry;
                }
                // DISCONNECT deletes the will [MQTT-3.1.2-10], unless a 5.0 client asked
                // for it with 0x04.
                if d.reason != ReasonCode::DISCONNECT_WITH_WILL_MESSAGE {
                    c.will = None;
                }
                return Err(Close { reason: ReasonCode::SUCCESS, kind: CloseKind::Clean, detail: "" });
            }
            Packet::Connect(_) => {
                // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
                return Err(Close::protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "second CONNECT [MQTT-3.1.0-2]",
                ));
            }
            Packet::Auth(_) => {
                // No enhanced authentication method was agreed at CONNECT (section 4.12).
                return Err(Close::protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "AUTH without an authentication method",
                ));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                // Server-to-client packets from a client are a protocol error.
                return Err(Close::protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "server-to-client packet sent by a client",
                ));
            }
        }
        self.wake_writer(conn);
        Ok(())
    }

    /// A PUBLISH from a client: accept it (topic alias, QoS 2 duplicate check), route it,
    /// then acknowledge with the outcome.
    fn handle_publish(&mut self, conn: ConnId, sid: SessionId, p: Publish, cid: &str) -> Result<(), Close> {
        crate::log!(
            Debug,
            "Received PUBLISH from {} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            cid,
            p.dup as u8,
            p.qos as u8,
            p.retain as u8,
            p.packet_id,
            p.topic,
            p.payload.len()
        );
        let cfg = &self.shared.config;
        if p.retain && !cfg.retain_available {
            // Retain Available is 0: a retained PUBLISH is a protocol error (0x9A,
            // section 3.2.2.3.5).
            return Err(Close::protocol_error(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retained messages are not available",
            ));
        }
        let oversize = cfg.message_size_limit > 0 && p.payload.len() > cfg.message_size_limit as usize;
        // Payload Format Indicator 1 promises UTF-8; checking it is optional (0x99).
        let bad_format = cfg.check_payload_format
            && p.properties.as_ref().and_then(|pr| pr.payload_format_indicator) == Some(1)
            && std::str::from_utf8(&p.payload).is_err();
        let now = self.clock_ms;
        let Some(entry) = self.sessions.get_mut(sid) else { return Ok(()) };
        entry.session.set_now_ms(now);
        let accepted = entry
            .session
            .accept_publish(p)
            .map_err(|e| Close::protocol_error(e.reason_code(), e.describe()))?;
        let reason = match accepted.message {
            _ if bad_format => ReasonCode::PAYLOAD_FORMAT_INVALID,
            _ if oversize => {
                crate::log!(Information, "Dropped too large PUBLISH from {} (message_size_limit).", cid);
                ReasonCode::QUOTA_EXCEEDED
            }
            Some(mut m) => {
                m.publisher = PublisherKey::new(self.id, sid, 0);
                if self.publish(m) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                }
            }
            None => ReasonCode::SUCCESS,
        };
        if bad_format && accepted.qos == QoS::AtMostOnce {
            return Err(Close::protocol_error(
                ReasonCode::PAYLOAD_FORMAT_INVALID,
                "payload is not UTF-8 but its format indicator says it is",
            ));
        }
        let (Some(entry), Some(c)) = (self.sessions.get_mut(sid), self.conns.get_mut(conn)) else {
            return Ok(());
        };
        entry.session.acknowledge(accepted.qos, accepted.packet_id, reason, &mut c.out);
        if accepted.qos != QoS::AtMostOnce {
            let kind = if accepted.qos == QoS::AtLeastOnce { "PUBACK" } else { "PUBREC" };
            crate::log!(Debug, "Sending {} to {} (m{}, rc{})", kind, cid, accepted.packet_id, reason.0);
        }
        self.wake_writer(conn);
        Ok(())
    }

    fn handle_subscribe(&mut self, conn: ConnId, sid: SessionId, s: Subscribe, cid: &str) {
        crate::log!(Debug, "Received SUBSCRIBE from {}", cid);
        let subscription_id = s.properties.as_ref().and_then(|p| p.subscription_identifiers.first().copied());
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut accepted = Vec::with_capacity(s.filters.len());
        for (filter, options) in s.filters {
            crate::log!(Debug, "\t{} (QoS {})", filter, options.qos as u8);
            reasons.push(ReasonCode(options.qos as u8));
            accepted.push((filter, Subscription { options, subscription_id }));
        }
        // The subscriptions take effect now (the server may send matching PUBLISH packets
        // before the SUBACK, section 3.8.4); the SUBACK and the retained messages wait for
        // a barrier round trip, after which every shard routes here and every retained
        // update published before the SUBSCRIBE has arrived.
        let mut retained_for = Vec::new();
        for (filter, sub) in accepted {
            if self.subscribe(sid, &filter, sub) {
                retained_for.push((filter, sub));
            }
        }
        let suback = SubAck { packet_id: s.packet_id, reasons, properties: None };
        let (token, waiting) = self.barrier();
        let pending = PendingSubAck { conn, sid, suback, retained_for, waiting };
        if waiting == 0 {
            self.complete_suback(pending);
        } else {
            self.pending_subacks.insert(token, pending);
        }
    }

    /// A barrier answer: complete the SUBACK when it was the last one awaited.
    fn on_barrier_ack(&mut self, token: u64) {
        if self.on_handover_barrier(token) {
            return;
        }
        let Some(p) = self.pending_subacks.get_mut(&token) else { return };
        p.waiting -= 1;
        if p.waiting == 0 {
            let p = self.pending_subacks.remove(&token).expect("present above");
            self.complete_suback(p);
        }
    }

    /// Writes the SUBACK, then the retained messages of the new subscriptions.
    fn complete_suback(&mut self, p: PendingSubAck) {
        let Some(c) = self.conns.get_mut(p.conn).filter(|c| c.session == Some(p.sid)) else { return };
        Packet::SubAck(p.suback).encode(c.version, &mut c.out);
        crate::log!(Debug, "Sending SUBACK to {}", c.client_id.as_deref().unwrap_or(""));
        for (filter, sub) in &p.retained_for {
            self.send_retained(p.sid, filter, sub);
        }
        self.wake_writer(p.conn);
    }

    fn handle_unsubscribe(&mut self, conn: ConnId, sid: SessionId, u: Unsubscribe, cid: &str) {
        crate::log!(Debug, "Received UNSUBSCRIBE from {}", cid);
        let reasons: Vec<ReasonCode> = u
            .filters
            .iter()
            .map(|f| {
                if self.unsubscribe(sid, f) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        if let Some(c) = self.conns.get_mut(conn) {
            let reasons = if c.version.is_v5() { reasons } else { Vec::new() };
            Packet::UnsubAck(UnsubAck { packet_id: u.packet_id, reasons, properties: None })
                .encode(c.version, &mut c.out);
            crate::log!(Debug, "Sending UNSUBACK to {}", cid);
        }
        self.wake_writer(conn);
    }

    /// Publishes a connection's will, if it still has one.
    pub fn fire_will(&mut self, conn: ConnId) {
        let Some(will) = self.conns.get_mut(conn).and_then(|c| c.will.take()) else { return };
        self.publish_will(*will);
    }

    /// Publishes a will now; its Message Expiry Interval starts at publication.
    pub fn publish_will(&mut self, mut will: Message) {
        // The clock deliveries are checked against, so the interval sent is never more
        // than was set [MQTT-3.3.2-6].
        self.tick();
        crate::log!(Debug, "Publishing will to '{}'", will.topic);
        will.expires_at_ms = will
            .properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval_secs)
            .map(|secs| self.clock_ms + secs as u64 * 1000);
        self.publish(will);
    }

    /// The connection is gone (or about to be): will, session detach or end, registry.
    pub fn connection_closed(&mut self, conn: ConnId, why: &str) {
        let Some(c) = self.conns.get_mut(conn) else { return };
        // A will with a Will Delay Interval on a session that outlives the connection
        // waits: it is cancelled if the client comes back in time, and published at the
        // earlier of the delay and the session's end (section 3.1.3.2.2).
        let delayed = match (c.will_delay_secs, c.session.and_then(|sid| self.sessions.get_mut(sid))) {
            (delay, Some(e)) if delay > 0 && e.session.is_persistent() && e.conn == Some(conn) => {
                let delay = delay.min(e.session.expiry_interval_secs);
                e.delayed_will =
                    c.will.take().map(|w| Box::new((Instant::now() + Duration::from_secs(delay as u64), *w)));
                true
            }
            _ => false,
        };
        // A clean DISCONNECT has already deleted the will, unless it was 0x04 (Disconnect
        // with Will Message), so whatever will is left goes out now.
        if !delayed {
            self.fire_will(conn);
        }
        let Some(c) = self.conns.get_mut(conn) else { return };
        c.closing = true;
        if let Some(cid) = &c.client_id {
            crate::log!(Information, "Client {} {}.", cid, why);
        }
        let Some(sid) = c.session.take() else { return };
        let persistent = match self.sessions.get_mut(sid) {
            Some(e) if e.conn == Some(conn) => {
                e.conn = None;
                e.session.detach();
                e.offline_since = Some(Instant::now());
                e.session.is_persistent()
            }
            _ => return,
        };
        if !persistent {
            self.end_session(sid);
        }
    }

    /// Handles one message from the mesh.
    pub fn on_mesh(&mut self, msg: MeshMsg) -> bool {
        match msg {
            MeshMsg::Forward(m) => self.deliver_forwarded(m),
            MeshMsg::SharedForward { group, filter, message, hops } => {
                self.deliver_shared(&group, &filter, message, hops)
            }
            MeshMsg::Interest { filter, from, add: true } => self.trie.add_remote_interest(&filter, from),
            MeshMsg::Interest { filter, from, add: false } => {
                self.trie.remove_remote_interest(&filter, from);
            }
            MeshMsg::SharedInterest { group, filter, from, add: true } => {
                self.trie.add_remote_shared(&group, &filter, from)
            }
            MeshMsg::SharedInterest { group, filter, from, add: false } => {
                self.trie.remove_remote_shared(&group, &filter, from);
            }
            MeshMsg::Retain { topic, seq, message } => self.apply_retained(&topic, seq, message),
            MeshMsg::Barrier { from, token } => self.send(from as usize, MeshMsg::BarrierAck { token }),
            MeshMsg::BarrierAck { token } => self.on_barrier_ack(token),
            MeshMsg::Register { client_id, from, token, clean_start } => {
                self.on_register(client_id, from, token, clean_start)
            }
            MeshMsg::Takeover { client_id, to, token, clean_start } => {
                self.on_takeover(&client_id, to, token, clean_start)
            }
            MeshMsg::Handoff { token, session, from } => self.on_handoff(token, session, from),
            MeshMsg::MovedDelivery { token, delivery } => self.on_moved_delivery(token, delivery),
            MeshMsg::Release { token, from } => self.on_release(token, from),
            MeshMsg::Released { token } => self.on_released(token),
            MeshMsg::Unregister { client_id, token } => self.on_unregister(&client_id, token),
            MeshMsg::Shutdown => return false,
        }
        true
    }
}
