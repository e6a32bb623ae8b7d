//! One shard: the data plane (`plane.rs`) and the control plane around it, which is what
//! waits for other shards: CONNECTs waiting for their client id's home shard, SUBACKs
//! waiting for a barrier, sessions moving in and out (`takeover.rs`). Everything here
//! runs on the shard's thread, synchronously, with time passed in: the event loop
//! (`reactor/`) calls in with each turn's input and reads back what to send.

use super::barriers::{AfterBarrier, Barriers, PendingSubAck};
use super::connack;
use super::connections::{ConnId, Connections, Side};
use super::handover::Handovers;
use super::login::{Logins, SCRAM_SHA_256};
use super::messages::{ConnectToken, MeshMsg};
use super::outbox::Outbox;
use super::plane::{Close, DataPlane};
use super::registry::{PendingConnects, PendingTakeover, Registry};
use super::security::{may_write, AccessControl, ClientAccess};
use super::sessions::SessionId;
use super::shared::Shared;
use super::takeover::Takeover;
use crate::auth::acl::SubscribeAccess;
use crate::config::Config;
use crate::protocol::{
    ByteStr, ConnAck, Connect, Packet, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use crate::session::{AckKind, Session, SessionError, Subscription};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A CONNECT registered at its client id's home shard, waiting for the answer.
pub struct Registration {
    pub client_id: ByteStr,
    pub assigned: bool,
    pub token: ConnectToken,
    /// Who the client proved to be: the CONNECT's user name, or the SCRAM user.
    pub username: Option<ByteStr>,
    /// A SCRAM exchange's last word (server-final-message), for the CONNACK.
    pub scram_final: Option<bytes::Bytes>,
}

/// One shard.
pub struct Shard {
    pub(super) plane: DataPlane,
    registry: Registry,
    pub(super) connects: PendingConnects,
    handovers: Handovers,
    barriers: Barriers,
    /// Password and ACL files as of this shard's last turn (see `security.rs`).
    pub(super) access: Arc<AccessControl>,
    access_generation: u64,
    /// The reload generation of `plane.config` (see `reload.rs`).
    config_generation: u64,
    pub(super) logins: Logins,
}

impl Shard {
    pub fn new(id: u16, shared: Arc<Shared>, now_ms: u64) -> Self {
        let (access, access_generation) = (shared.access.current(), shared.access.generation());
        Shard {
            plane: DataPlane::new(id, shared, now_ms),
            registry: Registry::default(),
            connects: PendingConnects::new(id),
            handovers: Handovers::default(),
            barriers: Barriers::default(),
            access,
            access_generation,
            config_generation: 0,
            logins: Logins::default(),
        }
    }

    pub fn id(&self) -> u16 {
        self.plane.id
    }

    pub fn config(&self) -> &Config {
        &self.plane.config
    }

    /// Starts a turn of the event loop at `now_ms` on the shard clock.
    pub fn begin_turn(&mut self, now_ms: u64) {
        self.plane.now_ms = now_ms;
        self.plane.turn_output_bytes = 0;
        let generation = self.plane.shared.access.generation();
        if generation != self.access_generation {
            self.access_generation = generation;
            self.reload_access();
        }
        let generation = self.plane.shared.reloadable.generation();
        if generation != self.config_generation {
            self.config_generation = generation;
            self.plane.reload_config();
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.plane.now_ms
    }

    /// Bytes of messages written to connections' output this turn.
    pub fn turn_output_bytes(&self) -> usize {
        self.plane.turn_output_bytes
    }

    /// The connections, for the event loop to send their output.
    pub fn conns(&mut self) -> &mut Connections {
        &mut self.plane.conns
    }

    /// The mesh as this shard sends into it.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.plane.outbox
    }

    fn takeover(&mut self) -> Takeover<'_> {
        Takeover {
            plane: &mut self.plane,
            registry: &mut self.registry,
            connects: &mut self.connects,
            handovers: &mut self.handovers,
            barriers: &mut self.barriers,
        }
    }

    /// A new connection on configured listener `listener`, which has yet to send CONNECT.
    pub fn open_connection(&mut self, peer: SocketAddr, listener: u16) -> ConnId {
        self.plane.shared.connections.fetch_add(1, Ordering::Relaxed);
        self.plane.conns.insert(peer, listener)
    }

    /// One side of a connection ended; the second removes it.
    pub fn side_ended(&mut self, conn: ConnId, side: Side) {
        if self.plane.conns.side_ended(conn, side) {
            self.plane.shared.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Marks a connection for closing; `goodbye` is the MQTT 5 DISCONNECT reason to send
    /// first, `why` its Reason String.
    pub fn close(&mut self, conn: ConnId, goodbye: Option<ReasonCode>, why: &str) {
        self.plane.conns.close(conn, goodbye, why);
    }

    /// The client sent bytes: it is alive (keepalive).
    pub fn heard_from(&mut self, conn: ConnId) {
        let now = self.plane.now_ms;
        if let Some(c) = self.plane.conns.get_mut(conn) {
            c.last_heard_ms = now;
        }
    }

    /// Whether CONNECTs have been answered by their home shard.
    pub fn has_answered_connects(&self) -> bool {
        self.connects.has_answers()
    }

    /// The next CONNECT whose home shard answered: (connection, resumed session).
    pub fn next_answered_connect(&mut self) -> Option<(ConnId, Option<SessionId>)> {
        self.connects.next_answered()
    }

    /// The registry answered: install the session (resumed or new), send CONNACK, re-send
    /// what the resumed session had in flight, and start the keepalive.
    pub fn complete_connect(
        &mut self,
        conn: ConnId,
        connect: &Connect,
        r: Registration,
        resumed: Option<SessionId>,
    ) {
        let Registration { client_id, assigned, token, username, scram_final } = r;
        let listener = self.plane.conns.get(conn).map_or(0, |c| c.listener);
        let access = self.access.any_files().then(|| {
            let acl = self.access.listener(listener).acl_for(username.as_deref(), &client_id);
            if let Some(notice) = acl.as_ref().and_then(|a| a.notice()) {
                crate::log!(Notice, "{}", notice);
            }
            Box::new(ClientAccess::new(listener, username.clone(), acl))
        });
        let (v, now) = (connect.version, self.plane.now_ms);
        let props = connect.properties.as_deref();
        let expiry = connack::session_expiry_secs(connect);
        let sessions = &mut self.plane.sessions;
        // The resumed session was installed (offline) when its handoff arrived.
        let resumed = resumed.filter(|sid| sessions.get(*sid).is_some_and(|e| e.conn.is_none()));
        let sid = resumed.unwrap_or_else(|| {
            let session = Session::new(client_id.clone(), v, expiry, sessions.limits());
            sessions.install(session, None, token, now)
        });
        if let Some(e) = sessions.get_mut(sid) {
            e.conn = Some(conn);
            e.offline_since_ms = None;
            e.token = token;
            // The rights of the client that connects now, whoever held the session before.
            e.access = access;
            let session = &mut e.session;
            session.expiry_interval_secs = expiry;
            let receive_max = props.and_then(|p| p.receive_maximum).unwrap_or(u16::MAX);
            let max_packet = props.and_then(|p| p.maximum_packet_size).map_or(usize::MAX, |m| m as usize);
            session.attach(v, receive_max, max_packet);
            session.set_client_topic_alias_maximum(props.and_then(|p| p.topic_alias_maximum).unwrap_or(0));
        }
        let cfg = &self.plane.config;
        let limits = self.plane.sessions.limits();
        let mut properties =
            connack::connack_properties(cfg, &limits, connect, assigned.then_some(&client_id));
        let enhanced_auth = scram_final.is_some();
        if let Some(data) = scram_final {
            // The exchange's last message goes in CONNACK, with the method (MQTT 5
            // section 4.12: the server's CONNACK carries the Authentication Method).
            let p = properties.get_or_insert_with(Default::default);
            p.authentication_method = Some(ByteStr::from(SCRAM_SHA_256));
            p.authentication_data = Some(data);
        }
        let keep_alive = connack::enforced_keep_alive_secs(connect, cfg.max_keepalive_secs);
        let (mut will, will_delay_secs) = connack::will_of(connect);
        // A will goes where its client may write, or nowhere (Mosquitto 2.0 accepts the
        // CONNECT and drops the will).
        let access = self.plane.sessions.get_mut(sid).and_then(|e| e.access.as_deref_mut());
        if will.as_ref().is_some_and(|w| !may_write(access, &w.topic)) {
            crate::log!(
                Notice,
                "Denied will of {} to '{}'.",
                client_id,
                will.as_ref().map_or("", |w| &w.topic)
            );
            will = None;
        }
        let Some(c) = self.plane.conns.get_mut(conn) else { return };
        c.session = Some(sid);
        c.enhanced_auth = enhanced_auth;
        c.client_id = Some(client_id.clone());
        c.version = v;
        c.will = will.map(Box::new);
        c.will_delay_secs = will_delay_secs;
        c.problem_information = props.and_then(|p| p.request_problem_information) != Some(0);
        c.max_packet_bytes = props.and_then(|p| p.maximum_packet_size).map_or(usize::MAX, |m| m as usize);
        // Keepalive: the sweep closes the connection after one and a half keepalive
        // periods of silence (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]); receives carry no
        // timer.
        c.keepalive_ms = keep_alive as u64 * 1500;
        c.last_heard_ms = now;
        // Session present is 0 whenever clean start is set (3.1.1 [MQTT-3.2.2-1], 5.0 [MQTT-3.2.2-2]).
        let session_present = resumed.is_some();
        Packet::ConnAck(ConnAck { session_present, code: ReasonCode::SUCCESS, properties })
            .encode(v, &mut c.out);
        crate::log_connection!(
            "New client connected from {} as {} (p{}, c{}, k{}{}).",
            c.peer,
            client_id,
            connack::mosquitto_protocol_number(v),
            connect.clean_start as u8,
            connect.keep_alive_secs,
            MosquittoUser(username.as_deref())
        );
        self.plane.counts.connects_accepted += 1;
        match &connect.will {
            Some(w) => {
                crate::log!(
                    Debug,
                    "Will message specified ({} bytes) (r{}, q{}).",
                    w.payload.len(),
                    w.retain as u8,
                    w.qos as u8
                );
                crate::log!(Debug, "\t{}", w.topic);
            }
            None => crate::log!(Debug, "No will message specified."),
        }
        crate::log!(Debug, "Sending CONNACK to {} ({}, 0)", client_id, session_present as u8);
        if let Some(e) = self.plane.sessions.get_mut(sid) {
            e.session.resume(now, &mut c.out);
        }
        self.plane.conns.wake_writer(conn);
        // A newer CONNECT with the same client id registered while this one waited.
        if let Some(t) = self.connects.take_deferred_takeover(token) {
            self.takeover().on_takeover(t);
        }
    }

    /// One packet from a connected client.
    pub fn handle_packet(&mut self, conn: ConnId, packet: Packet) -> Result<(), Close> {
        let lost = || Close::protocol_error(ReasonCode::UNSPECIFIED_ERROR, "connection state lost");
        let wrong_ack = |e: SessionError| Close::protocol_error(e.reason_code(), e.describe());
        let plane = &mut self.plane;
        let c = plane.conns.get_mut(conn).ok_or_else(lost)?;
        let sid =
            c.session.ok_or(Close::protocol_error(ReasonCode::SESSION_TAKEN_OVER, "session taken over"))?;
        // The client id is only needed for per-packet log lines: skip the refcount
        // traffic of cloning it when those are off.
        let cid = if crate::log::enabled(crate::log::Level::Debug) {
            c.client_id.clone().unwrap_or_default()
        } else {
            ByteStr::default()
        };
        let entry = plane.sessions.get_mut(sid).ok_or_else(lost)?;
        // An acknowledgement may let queued messages out: their expiry is checked now.
        let (now, out) = (plane.now_ms, &mut c.out);
        // And a subscriber in flow control (`flow.rs`) has moved.
        let progressed = entry.flow.is_some()
            && matches!(packet, Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_));
        match packet {
            Packet::Publish(p) => return plane.handle_publish(conn, sid, p, &cid),
            Packet::PubAck(a) => {
                crate::log!(Debug, "Received PUBACK from {} (Mid: {}, RC:{})", cid, a.packet_id, a.reason.0);
                entry.session.check_ack(AckKind::PubAck, a.packet_id).map_err(wrong_ack)?;
                entry.session.handle_puback(a.packet_id, now, out)
            }
            Packet::PubRec(a) => {
                crate::log!(Debug, "Received PUBREC from {} (Mid: {})", cid, a.packet_id);
                entry.session.check_ack(AckKind::PubRec, a.packet_id).map_err(wrong_ack)?;
                entry.session.handle_pubrec(a.packet_id, a.reason, now, out);
                // Mosquitto answers an error code with nothing, and so does the session.
                if !a.reason.is_error() {
                    crate::log!(Debug, "Sending PUBREL to {} (m{})", cid, a.packet_id);
                }
            }
            Packet::PubRel(a) => {
                crate::log!(Debug, "Received PUBREL from {} (Mid: {})", cid, a.packet_id);
                entry.session.handle_pubrel(a.packet_id, out);
                crate::log!(Debug, "Sending PUBCOMP to {} (m{})", cid, a.packet_id);
            }
            Packet::PubComp(a) => {
                crate::log!(Debug, "Received PUBCOMP from {} (Mid: {}, RC:{})", cid, a.packet_id, a.reason.0);
                entry.session.check_ack(AckKind::PubComp, a.packet_id).map_err(wrong_ack)?;
                entry.session.handle_pubcomp(a.packet_id, now, out)
            }
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
                    // A non-zero expiry at DISCONNECT after 0 at CONNECT is a protocol
                    // error (5.0 section 3.14.2.2.2, which gives it no conformance id).
                    if entry.session.expiry_interval_secs == 0 && expiry != 0 {
                        return Err(Close::protocol_error(
                            ReasonCode::PROTOCOL_ERROR,
                            "session expiry set at DISCONNECT after 0 at CONNECT (5.0 section 3.14.2.2.2)",
                        ));
                    }
                    entry.session.expiry_interval_secs = expiry;
                }
                // DISCONNECT deletes the will (3.1.1 [MQTT-3.1.2-10]), unless a 5.0
                // client asked for it with 0x04.
                if d.reason != ReasonCode::DISCONNECT_WITH_WILL_MESSAGE {
                    c.will = None;
                }
                return Err(Close { reason: ReasonCode::SUCCESS, clean: true, detail: "" });
            }
            Packet::Connect(_) => {
                // A second CONNECT is a protocol violation [MQTT-3.1.0-2].
                return Err(Close::protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "second CONNECT [MQTT-3.1.0-2]",
                ));
            }
            Packet::Auth(a) => {
                if !c.enhanced_auth {
                    // No enhanced authentication method was agreed at CONNECT (MQTT 5
                    // section 4.12).
                    return Err(Close::protocol_error(
                        ReasonCode::PROTOCOL_ERROR,
                        "AUTH without an authentication method",
                    ));
                }
                return self.reauthenticate(conn, a);
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Err(Close::protocol_error(
                    ReasonCode::PROTOCOL_ERROR,
                    "server-to-client packet sent by a client",
                ));
            }
        }
        if progressed {
            let publishers = self.plane.sessions.progress(sid, now);
            self.plane.let_go(publishers);
        }
        self.plane.conns.wake_writer(conn);
        Ok(())
    }

    fn handle_subscribe(&mut self, conn: ConnId, sid: SessionId, s: Subscribe, cid: &str) {
        crate::log!(Debug, "Received SUBSCRIBE from {}", cid);
        let subscription_id = s.properties.as_ref().and_then(|p| p.subscription_identifiers.first().copied());
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained_for = Vec::new();
        // The subscriptions take effect now (the server may send matching PUBLISH packets
        // before the SUBACK, MQTT 5 section 3.8.4); the SUBACK and the retained messages
        // wait for a barrier round trip, after which every shard routes here and every
        // retained update published before the SUBSCRIBE has arrived.
        let v5 = self.plane.conns.get(conn).is_some_and(|c| c.version.is_v5());
        for (filter, options) in s.filters {
            crate::log!(Debug, "\t{} (QoS {})", filter, options.qos as u8);
            let read_checked = match self.plane.sessions.subscribe_access(sid, &filter) {
                SubscribeAccess::Granted => false,
                SubscribeAccess::GrantedFiltered => true,
                SubscribeAccess::Denied => {
                    crate::log!(Debug, "Denied SUBSCRIBE from {} to '{}'", cid, filter);
                    // 3.1.1's one failure code, 0x80; 5.0 says why (section 3.9.3).
                    reasons.push(if v5 { ReasonCode::NOT_AUTHORIZED } else { ReasonCode(0x80) });
                    continue;
                }
            };
            reasons.push(ReasonCode(options.qos as u8));
            if crate::log::enabled(crate::log::Level::Subscribe) {
                // Mosquitto's `log_type subscribe` line: client id, QoS, filter.
                let id = self.plane.conns.get(conn).and_then(|c| c.client_id.clone()).unwrap_or_default();
                crate::log!(Subscribe, "{} {} {}", id, options.qos as u8, filter);
            }
            let sub = Subscription { options, subscription_id, read_checked };
            if self.plane.subscribe(sid, &filter, sub) {
                retained_for.push((filter, sub));
            }
        }
        let suback = SubAck { packet_id: s.packet_id, reasons, properties: None };
        let pending = AfterBarrier::SubAck(PendingSubAck { conn, sid, suback, retained_for });
        if let Some(now) = self.barriers.open(&mut self.plane.outbox, pending) {
            self.after_barrier(now);
        }
    }

    /// Takes what waited for a barrier once every shard has answered it.
    fn after_barrier(&mut self, then: AfterBarrier) {
        match then {
            AfterBarrier::SubAck(p) => self.complete_suback(p),
            AfterBarrier::Handover(step) => self.takeover().take_step(step),
        }
    }

    /// Writes the SUBACK, then the retained messages of the new subscriptions.
    fn complete_suback(&mut self, p: PendingSubAck) {
        let plane = &mut self.plane;
        let Some(c) = plane.conns.get_mut(p.conn).filter(|c| c.session == Some(p.sid)) else { return };
        Packet::SubAck(p.suback).encode(c.version, &mut c.out);
        crate::log!(Debug, "Sending SUBACK to {}", c.client_id.as_deref().unwrap_or(""));
        for (filter, sub) in &p.retained_for {
            plane.deliver_retained(p.sid, filter, sub);
        }
        plane.conns.wake_writer(p.conn);
    }

    fn handle_unsubscribe(&mut self, conn: ConnId, sid: SessionId, u: Unsubscribe, cid: &str) {
        crate::log!(Debug, "Received UNSUBSCRIBE from {}", cid);
        let plane = &mut self.plane;
        let reasons: Vec<ReasonCode> = u
            .filters
            .iter()
            .map(|f| {
                crate::log!(Debug, "\t{}", f);
                if crate::log::enabled(crate::log::Level::Unsubscribe) {
                    // Mosquitto's `log_type unsubscribe` line: client id, filter.
                    let id = plane.conns.get(conn).and_then(|c| c.client_id.clone()).unwrap_or_default();
                    crate::log!(Unsubscribe, "{} {}", id, f);
                }
                if plane.unsubscribe(sid, f) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        if let Some(c) = plane.conns.get_mut(conn) {
            let reasons = if c.version.is_v5() { reasons } else { Vec::new() };
            Packet::UnsubAck(UnsubAck { packet_id: u.packet_id, reasons, properties: None })
                .encode(c.version, &mut c.out);
            crate::log!(Debug, "Sending UNSUBACK to {}", cid);
        }
        plane.conns.wake_writer(conn);
    }

    /// The connection is gone (or about to be): its will, and its session's detach or end.
    pub fn connection_closed(&mut self, conn: ConnId, why: &str) {
        self.logins.forget(conn);
        // An offline session holds no publisher (it queues to its bound and drops).
        if let Some(sid) = self.plane.conns.get(conn).and_then(|c| c.session) {
            let publishers = self.plane.sessions.end_flow(sid);
            self.plane.let_go(publishers);
        }
        let plane = &mut self.plane;
        let Some(c) = plane.conns.get_mut(conn) else { return };
        // A will with a Will Delay Interval on a session that outlives the connection
        // waits: it is cancelled if the client comes back in time, and published at the
        // earlier of the delay and the session's end (MQTT 5 section 3.1.3.2.2).
        let session = c.session.and_then(|sid| plane.sessions.get_mut(sid));
        let delayed = match (c.will_delay_secs, session) {
            (delay, Some(e)) if delay > 0 && e.session.is_persistent() && e.conn == Some(conn) => {
                let delay_ms = delay.min(e.session.expiry_interval_secs) as u64 * 1000;
                e.delayed_will = c.will.take().map(|w| Box::new((plane.now_ms + delay_ms, *w)));
                true
            }
            _ => false,
        };
        // A clean DISCONNECT has already deleted the will, unless it was 0x04 (Disconnect
        // with Will Message), so whatever will is left goes out now.
        if !delayed {
            plane.fire_will(conn);
        }
        plane.conns.close(conn, None, "");
        let Some(c) = plane.conns.get_mut(conn) else { return };
        if let Some(cid) = &c.client_id {
            crate::log_connection!("Client {} {}.", cid, why);
        }
        let Some(sid) = c.session.take() else { return };
        let now = plane.now_ms;
        let persistent = match plane.sessions.get_mut(sid) {
            Some(e) if e.conn == Some(conn) => {
                e.conn = None;
                e.session.detach();
                e.offline_since_ms = Some(now);
                e.session.is_persistent()
            }
            _ => return,
        };
        if !persistent {
            self.takeover().end_session(sid);
        }
    }

    /// Handles one message from the mesh.
    pub fn on_mesh(&mut self, msg: MeshMsg) {
        let Some(control) = self.plane.on_mesh(msg) else { return };
        match control {
            MeshMsg::Barrier { from, token } => {
                self.plane.outbox.send(from as usize, MeshMsg::BarrierAck { token })
            }
            MeshMsg::BarrierAck { token } => {
                if let Some(then) = self.barriers.answered(token) {
                    self.after_barrier(then);
                }
            }
            MeshMsg::Register { client_id, from, token, clean_start } => {
                self.takeover().on_register(client_id, from, token, clean_start)
            }
            MeshMsg::Takeover { client_id, holder, to, token, clean_start } => {
                self.takeover().on_takeover(PendingTakeover { client_id, holder, to, token, clean_start })
            }
            MeshMsg::Handoff { token, session, from } => self.takeover().on_handoff(token, session, from),
            MeshMsg::MovedDelivery { token, delivery } => self.takeover().on_moved_delivery(token, delivery),
            MeshMsg::Release { token, from } => self.takeover().on_release(token, from),
            MeshMsg::Released { token } => self.takeover().on_released(token),
            MeshMsg::Unregister { client_id, token } => self.registry.unregister(&client_id, token),
            _ => unreachable!("the data plane handled every other message"),
        }
    }

    /// Closes connections whose keepalive has run out.
    pub fn sweep_keepalive(&mut self) {
        self.plane.conns.close_silent(self.plane.now_ms);
    }

    /// The once-a-second timers: delayed wills, retained tombstones, session expiry, and
    /// the drop counters' log lines.
    pub fn every_second(&mut self) {
        let now = self.plane.now_ms;
        for will in self.plane.sessions.take_due_wills(now) {
            self.plane.publish_will(will);
        }
        self.plane.routes.prune_retained(now);
        let stuck_ms = self.plane.config.stuck_subscriber_secs as u64 * 1000;
        let publishers = self.plane.sessions.stuck_check(now, stuck_ms);
        self.plane.let_go(publishers);
        self.takeover().expire_sessions();
        self.plane.drops.log();
    }

    /// Closes every connection for shutdown (MQTT 5: DISCONNECT 0x8B) and publishes wills.
    pub fn close_all(&mut self) {
        for conn in self.plane.conns.ids() {
            self.plane.conns.close(conn, Some(ReasonCode::SERVER_SHUTTING_DOWN), "");
            self.plane.fire_will(conn);
        }
    }
}

/// Mosquitto's `, u'NAME'` after the keepalive in "New client connected", when there is
/// a user name.
struct MosquittoUser<'a>(Option<&'a str>);

impl std::fmt::Display for MosquittoUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(u) => write!(f, ", u'{u}'"),
            None => Ok(()),
        }
    }
}

/// Test access to the data plane, for the sans-IO tests beside it.
#[cfg(test)]
impl Shard {
    pub(super) fn plane(&mut self) -> &mut DataPlane {
        &mut self.plane
    }
}
