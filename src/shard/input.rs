//! What a connection does with the bytes it receives: the CONNECT phase (the first packet
//! must be CONNECT, within the deadline), the wait for the client id's home shard, then
//! decoding every complete packet and handing it to the shard state. Synchronous; the
//! event loop in `reactor.rs` calls in with each receive completion.

use super::handle::ConnectDecision;
use super::messages::{ConnectToken, MeshMsg};
use super::state::{CloseKind, ConnId, PendingConnect, ShardState};
use crate::protocol::{ByteStr, Connect, DecodeError, Decoded, Decoder, Packet, ReasonCode};
use bytes::BytesMut;

/// Where a connection stands in its life.
pub enum Phase {
    /// Accepted; its CONNECT must arrive by `deadline_ms` (shard clock).
    AwaitConnect { deadline_ms: u64 },
    /// CONNECT received and registered at the client id's home shard; waiting for the
    /// answer (and the old session, when one is resumed). Bytes that arrive meanwhile are
    /// kept, undecoded.
    Registering(Box<Registering>),
    /// CONNACK sent: packets go to the shard state.
    Connected,
}

/// A CONNECT waiting for its home shard (boxed: connections spend most of their life
/// connected, and each byte of [`Input`] is paid per connection).
pub struct Registering {
    connect: Box<Connect>,
    client_id: ByteStr,
    assigned: bool,
    token: ConnectToken,
}

/// The reading side of one connection.
pub struct Input {
    pub conn: ConnId,
    pub phase: Phase,
    decoder: Decoder,
    /// Received bytes not yet decoded: a partial packet, or everything received while
    /// registering. Empty (no allocation) on an idle connection.
    pending: BytesMut,
    /// Set once the reading side has ended: later bytes are dropped.
    pub finished: bool,
    /// The socket ended while registering: the reason, applied once the CONNECT completes.
    deferred_end: Option<&'static str>,
}

impl Input {
    pub fn new(conn: ConnId, max_packet_size: usize, deadline_ms: u64) -> Self {
        Input {
            conn,
            phase: Phase::AwaitConnect { deadline_ms },
            decoder: Decoder::server(max_packet_size),
            pending: BytesMut::new(),
            finished: false,
            deferred_end: None,
        }
    }

    /// Handles received bytes. `chunk` is the shard's receive staging buffer: bytes are
    /// copied there (out of the kernel's provided buffer, which goes straight back) so
    /// decoded topics and payloads can be zero-copy slices of it.
    pub fn on_bytes(&mut self, st: &mut ShardState, chunk: &mut BytesMut, data: &[u8]) {
        if self.finished {
            return;
        }
        if self.pending.is_empty() {
            chunk.reserve(data.len());
            chunk.extend_from_slice(data);
            self.pending = chunk.split();
        } else {
            self.pending.extend_from_slice(data);
        }
        if let Some(c) = st.conns.get_mut(self.conn) {
            c.last_heard_ms = st.clock_ms;
        }
        self.process(st);
    }

    /// Decodes and handles whatever is buffered, as far as the phase allows.
    fn process(&mut self, st: &mut ShardState) {
        if let Phase::AwaitConnect { .. } = self.phase {
            match self.decoder.decode(&mut self.pending) {
                Ok(Decoded::Packet(Packet::Connect(c))) => {
                    crate::log!(Debug, "Received CONNECT from {}", c.client_id);
                    if !self.start_connect(st, c) {
                        return self.finish(st, "refused");
                    }
                }
                Ok(Decoded::Packet(_)) => return self.finish(st, "sent a packet before CONNECT"),
                Ok(Decoded::Incomplete { .. }) => return self.release_idle_buffer(),
                Err(e) => {
                    connect_error(st, self.conn, e);
                    return self.finish(st, "sent a malformed CONNECT");
                }
            }
        }
        if let Phase::Registering(_) = self.phase {
            return;
        }
        self.decode_packets(st);
        self.release_idle_buffer();
    }

    fn release_idle_buffer(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = BytesMut::new();
        }
    }

    fn decode_packets(&mut self, st: &mut ShardState) {
        let conn = self.conn;
        loop {
            match self.decoder.decode(&mut self.pending) {
                Ok(Decoded::Packet(p)) => {
                    if let Err(close) = st.handle_packet(conn, p) {
                        let goodbye = (close.kind == CloseKind::Abnormal).then_some(close.reason);
                        if !close.detail.is_empty() {
                            crate::log!(
                                Information,
                                "Client protocol error: {}, disconnecting.",
                                close.detail
                            );
                        }
                        st.close_conn_explained(conn, goodbye, close.detail);
                        let why = if close.kind == CloseKind::Clean {
                            "disconnected"
                        } else {
                            "closed: protocol error"
                        };
                        return self.finish(st, why);
                    }
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => {
                    crate::log!(Information, "Bad packet from client: {}, disconnecting.", e);
                    st.close_conn_explained(conn, Some(e.reason_code()), &e.to_string());
                    return self.finish(st, "closed: malformed packet");
                }
            }
        }
        match st.conns.get(conn) {
            Some(c) if c.keepalive_expired => self.finish(st, "has exceeded timeout, disconnecting"),
            Some(c) if !c.closing => {}
            _ => self.finish(st, "closed by the broker"),
        }
    }

    /// Checks the CONNECT and registers the client id at its home shard. False when the
    /// connection was refused.
    fn start_connect(&mut self, st: &mut ShardState, connect: Box<Connect>) -> bool {
        let max = st.shared.config.max_connections;
        let count = st.shared.connections.load(std::sync::atomic::Ordering::Relaxed);
        let decision = if max.is_some_and(|m| count > m) {
            ConnectDecision::Refuse(ReasonCode::SERVER_UNAVAILABLE)
        } else {
            st.check_connect(&connect)
        };
        match decision {
            ConnectDecision::Refuse(reason) => {
                st.refuse_connect(self.conn, connect.version, reason);
                false
            }
            ConnectDecision::Register { client_id, assigned } => {
                let token = st.new_token();
                st.pending.insert(token, PendingConnect { result: None, conn: self.conn });
                let home = st.home_shard(&client_id);
                let from = st.id;
                st.send(
                    home,
                    MeshMsg::Register {
                        client_id: client_id.clone(),
                        from,
                        token,
                        clean_start: connect.clean_start,
                    },
                );
                self.phase =
                    Phase::Registering(Box::new(Registering { connect, client_id, assigned, token }));
                true
            }
        }
    }

    /// The home shard answered (`resumed`: the session moved here, if one was resumed):
    /// completes the CONNECT, then handles whatever arrived behind it.
    pub fn complete_connect(&mut self, st: &mut ShardState, resumed: Option<u32>) {
        let Phase::Registering(r) = std::mem::replace(&mut self.phase, Phase::Connected) else {
            unreachable!("a CONNECT completes only while registering");
        };
        let Registering { connect, client_id, assigned, token } = *r;
        let max_keepalive = st.config().max_keepalive_secs;
        st.complete_connect(self.conn, &connect, client_id, assigned, token, resumed);
        let ka = connect.keep_alive_secs;
        // An MQTT 5 client is told the server keepalive in CONNACK and must use it.
        let keep_alive =
            if connect.version.is_v5() && (ka > max_keepalive || (ka == 0 && max_keepalive < u16::MAX)) {
                max_keepalive
            } else {
                ka
            };
        // Keepalive: the shard's sweep closes the connection after one and a half
        // keepalive periods of silence [MQTT-3.1.2-24]; receives carry no timer.
        let now = st.tick();
        if let Some(c) = st.conns.get_mut(self.conn) {
            c.keepalive_ms = keep_alive as u64 * 1500;
            c.last_heard_ms = now;
        }
        self.process(st);
        if let Some(why) = self.deferred_end.take() {
            self.finish(st, why);
        }
    }

    /// The socket has no more to give: `why` is the log's reason.
    pub fn on_end(&mut self, st: &mut ShardState, why: &'static str) {
        match self.phase {
            _ if self.finished => {}
            Phase::AwaitConnect { .. } => self.finish(st, "closed its connection before CONNECT"),
            // The home shard's answer is on its way (perhaps with a session): take it first.
            Phase::Registering(_) => self.deferred_end = Some(why),
            Phase::Connected => {
                let expired = st.conns.get(self.conn).is_some_and(|c| c.keepalive_expired);
                self.finish(st, if expired { "has exceeded timeout, disconnecting" } else { why });
            }
        }
    }

    /// The CONNECT deadline passed without a CONNECT.
    pub fn connect_timed_out(&mut self, st: &mut ShardState) {
        if !self.finished {
            self.finish(st, "closed its connection before CONNECT");
        }
    }

    /// Ends the reading side: the session learns the connection is gone, and the writing
    /// side flushes what is left and closes the socket.
    fn finish(&mut self, st: &mut ShardState, why: &str) {
        self.finished = true;
        self.pending = BytesMut::new();
        st.connection_closed(self.conn, why);
        st.task_done(self.conn, true);
    }
}

/// A CONNECT that failed to decode: MQTT 5 gets a CONNACK with the reason when the
/// version is known; an unsupported level gets CONNACK 0x01 in 3.1.1 [MQTT-3.1.2-2].
fn connect_error(st: &mut ShardState, conn: ConnId, e: DecodeError) {
    crate::log!(
        Notice,
        "Bad CONNECT from {}: {}",
        st.conns.get(conn).map(|c| c.peer.to_string()).unwrap_or_default(),
        e
    );
    if let DecodeError::UnsupportedProtocolLevel(_) | DecodeError::InvalidProtocolName = e {
        st.refuse_connect(
            conn,
            crate::protocol::ProtocolVersion::V3_1_1,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        );
    } else {
        st.close_conn(conn, None);
    }
}
