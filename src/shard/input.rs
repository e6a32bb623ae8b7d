//! The reading side of one connection: the CONNECT phase (the first packet must be
//! CONNECT, within the deadline), the wait for the client id's home shard, then decoding
//! every complete packet and handing it to the shard. Synchronous and free of sockets:
//! the event loop calls in with each receive, and the deterministic tests do the same.

use super::connections::{ConnId, Side};
use super::login::ConnectStep;
use super::sessions::SessionId;
use super::state::{Registration, Shard};
use super::verifier::Verified;
use crate::protocol::{Connect, DecodeError, Decoded, Decoder, Packet, ProtocolVersion, ReasonCode};
use bytes::BytesMut;

/// Where a connection's reading side stands:
///
/// ```text
///  AwaitConnect ──CONNECT──▶ Authenticating ──credentials good──▶ Registering ──home shard answers──▶ Connected
///        │       (no check to wait for) ──────────────────────────────▲   │                              │
///        └── timeout, bad packet, refused, socket end ─────────────────────┴──────────────────────────────┴──▶ Ended
/// ```
pub enum Phase {
    /// Accepted; its CONNECT must arrive by `deadline_ms` (shard clock).
    AwaitConnect { deadline_ms: u64 },
    /// CONNECT received; its password is being compared on the verifier threads, or a
    /// SCRAM exchange waits for the client's AUTH. Still bound by the CONNECT deadline.
    Authenticating(Box<Authenticating>),
    /// CONNECT received and registered at the client id's home shard; waiting for the
    /// answer (and the old session, when one is resumed). Bytes that arrive meanwhile are
    /// kept, undecoded.
    Registering(Box<Registering>),
    /// CONNACK sent: packets go to the shard.
    Connected,
    /// The reading side has ended: later bytes are dropped.
    Ended,
}

/// A CONNECT whose credentials are being checked.
pub struct Authenticating {
    connect: Box<Connect>,
    deadline_ms: u64,
    /// A SCRAM exchange: AUTH packets are read and handed to the shard. Otherwise (a
    /// password check) bytes that arrive meanwhile are kept, undecoded.
    exchange: bool,
}

/// A CONNECT waiting for its home shard (boxed: connections spend most of their life
/// connected, and each byte of [`Input`] is paid per connection).
pub struct Registering {
    connect: Box<Connect>,
    registration: Registration,
    /// The socket ended meanwhile: the log's reason, applied once the CONNECT completes
    /// (the home shard's answer may carry a session, which must land somewhere first).
    deferred_end: Option<&'static str>,
}

/// The reading side of one connection.
pub struct Input {
    pub conn: ConnId,
    phase: Phase,
    decoder: Decoder,
    /// Received bytes not yet decoded: a partial packet, or everything received while
    /// registering. Empty (no allocation) on an idle connection.
    pending: BytesMut,
}

impl Input {
    pub fn new(conn: ConnId, max_packet_size: usize, deadline_ms: u64) -> Self {
        Input {
            conn,
            phase: Phase::AwaitConnect { deadline_ms },
            decoder: Decoder::server(max_packet_size),
            pending: BytesMut::new(),
        }
    }

    /// The deadline a CONNECT must be complete by, while it is not.
    pub fn connect_deadline_ms(&self) -> Option<u64> {
        match &self.phase {
            Phase::AwaitConnect { deadline_ms } => Some(*deadline_ms),
            Phase::Authenticating(a) => Some(a.deadline_ms),
            _ => None,
        }
    }

    /// Whether the reading side has ended.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// Handles received bytes. `chunk` is the shard's receive staging buffer: bytes are
    /// copied there (out of the kernel's provided buffer, which goes straight back) so
    /// decoded topics and payloads can be zero-copy slices of it.
    pub fn on_bytes(&mut self, shard: &mut Shard, chunk: &mut BytesMut, data: &[u8]) {
        if self.is_ended() {
            return;
        }
        if self.pending.is_empty() {
            chunk.reserve(data.len());
            chunk.extend_from_slice(data);
            self.pending = chunk.split();
        } else {
            self.pending.extend_from_slice(data);
        }
        shard.heard_from(self.conn);
        self.process(shard);
    }

    /// Decodes and handles whatever is buffered, as far as the phase allows.
    fn process(&mut self, shard: &mut Shard) {
        if let Phase::AwaitConnect { deadline_ms } = self.phase {
            match self.decoder.decode(&mut self.pending) {
                Ok(Decoded::Packet(Packet::Connect(c))) => {
                    shard.plane.counts.packets_received += 1;
                    let step = shard.begin_connect(self.conn, &c);
                    self.take_step(shard, c, deadline_ms, step);
                }
                Ok(Decoded::Packet(_)) => return self.end(shard, "sent a packet before CONNECT"),
                Ok(Decoded::Incomplete { .. }) => return self.release_idle_buffer(),
                Err(e) => {
                    connect_error(shard, self.conn, e);
                    return self.end(shard, "sent a malformed CONNECT");
                }
            }
        }
        if let Phase::Authenticating(a) = &self.phase {
            if !a.exchange {
                return;
            }
            match self.decoder.decode(&mut self.pending) {
                Ok(Decoded::Packet(Packet::Auth(auth))) => {
                    shard.plane.counts.packets_received += 1;
                    let Phase::Authenticating(a) = std::mem::replace(&mut self.phase, Phase::Ended) else {
                        unreachable!()
                    };
                    let step = shard.continue_exchange(self.conn, &a.connect, auth);
                    self.take_step(shard, a.connect, a.deadline_ms, step);
                }
                // During the exchange the client sends AUTH or nothing (MQTT 5 section
                // 4.12: [MQTT-4.12.0-4] no other packet before CONNACK than AUTH and
                // DISCONNECT).
                Ok(Decoded::Packet(_)) => {
                    shard.close(self.conn, Some(ReasonCode::PROTOCOL_ERROR), "a packet other than AUTH");
                    return self.end(shard, "sent a packet other than AUTH during authentication");
                }
                Ok(Decoded::Incomplete { .. }) => return self.release_idle_buffer(),
                Err(e) => {
                    shard.close(self.conn, Some(e.reason_code()), &e.to_string());
                    return self.end(shard, "sent a malformed packet during authentication");
                }
            }
            if let Phase::Authenticating(_) = self.phase {
                return;
            }
        }
        if let Phase::Connected = self.phase {
            self.decode_packets(shard);
            self.release_idle_buffer();
        }
    }

    fn release_idle_buffer(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = BytesMut::new();
        }
    }

    fn decode_packets(&mut self, shard: &mut Shard) {
        let conn = self.conn;
        loop {
            // Held for a subscriber's full queue (flow control): the rest waits, undecoded,
            // until it is let go (`resume`).
            if shard.conns().is_held(conn) {
                break;
            }
            match self.decoder.decode(&mut self.pending) {
                Ok(Decoded::Packet(p)) => {
                    shard.plane.counts.packets_received += 1;
                    if let Err(close) = shard.handle_packet(conn, p) {
                        if !close.detail.is_empty() {
                            crate::log!(
                                Information,
                                "Client protocol error: {}, disconnecting.",
                                close.detail
                            );
                        }
                        let goodbye = (!close.clean).then_some(close.reason);
                        shard.close(conn, goodbye, close.detail);
                        let why = if close.clean { "disconnected" } else { "closed: protocol error" };
                        return self.end(shard, why);
                    }
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => {
                    crate::log!(Information, "Bad packet from client: {}, disconnecting.", e);
                    shard.close(conn, Some(e.reason_code()), &e.to_string());
                    return self.end(shard, "closed: malformed packet");
                }
            }
        }
        match shard.conns().get(conn) {
            Some(c) if c.timed_out() => self.end(shard, "has exceeded timeout, disconnecting"),
            Some(c) if !c.is_closing() => {}
            _ => self.end(shard, "closed by the broker"),
        }
    }

    /// The connection was let go after a hold (flow control): decode what waited.
    pub fn resume(&mut self, shard: &mut Shard) {
        if let Phase::Connected = self.phase {
            self.decode_packets(shard);
            self.release_idle_buffer();
        }
    }

    /// Moves to the phase a login step leads to.
    fn take_step(&mut self, shard: &mut Shard, connect: Box<Connect>, deadline_ms: u64, step: ConnectStep) {
        match step {
            ConnectStep::Refused => self.end(shard, "refused"),
            ConnectStep::Waiting { exchange } => {
                let a = Authenticating { connect, deadline_ms, exchange };
                self.phase = Phase::Authenticating(Box::new(a));
            }
            ConnectStep::Registered(registration) => {
                let r = Registering { connect, registration, deferred_end: None };
                self.phase = Phase::Registering(Box::new(r));
            }
        }
    }

    /// The password check for this connection's CONNECT answered.
    pub fn verified(&mut self, shard: &mut Shard, answer: Verified) {
        let Phase::Authenticating(a) = &self.phase else { return };
        let Some(step) = shard.after_verified(self.conn, &a.connect, answer) else { return };
        let Phase::Authenticating(a) = std::mem::replace(&mut self.phase, Phase::Ended) else {
            unreachable!()
        };
        // What the client sent behind its CONNECT waits for the home shard's answer.
        self.take_step(shard, a.connect, a.deadline_ms, step);
    }

    /// The home shard answered (`resumed`: the session moved here, if one was resumed):
    /// completes the CONNECT, then handles whatever arrived behind it.
    pub fn complete_connect(&mut self, shard: &mut Shard, resumed: Option<SessionId>) {
        let Phase::Registering(r) = std::mem::replace(&mut self.phase, Phase::Connected) else {
            unreachable!("a CONNECT completes only while registering");
        };
        let Registering { connect, registration, deferred_end } = *r;
        shard.complete_connect(self.conn, &connect, registration, resumed);
        self.process(shard);
        if let Some(why) = deferred_end.filter(|_| !self.is_ended()) {
            self.end(shard, why);
        }
    }

    /// The socket has no more to give: `why` is the log's reason.
    pub fn on_end(&mut self, shard: &mut Shard, why: &'static str) {
        match &mut self.phase {
            Phase::Ended => {}
            Phase::AwaitConnect { .. } => self.end(shard, "closed its connection before CONNECT"),
            // Nothing registered yet: the pending check is dropped with the connection.
            Phase::Authenticating(_) => self.end(shard, why),
            // The home shard's answer is on its way (perhaps with a session): take it first.
            Phase::Registering(r) => r.deferred_end = Some(why),
            Phase::Connected => {
                let timed_out = shard.conns().get(self.conn).is_some_and(|c| c.timed_out());
                self.end(shard, if timed_out { "has exceeded timeout, disconnecting" } else { why });
            }
        }
    }

    /// A layer below MQTT (TLS) failed on this connection: its reading side ends, as
    /// for a socket end, with `why` for the log.
    pub fn transport_failed(&mut self, shard: &mut Shard, why: &'static str) {
        if !self.is_ended() {
            self.on_end(shard, why);
        }
    }

    /// The CONNECT deadline passed without a CONNECT.
    pub fn connect_timed_out(&mut self, shard: &mut Shard) {
        match self.phase {
            Phase::AwaitConnect { .. } => self.end(shard, "closed its connection before CONNECT"),
            Phase::Authenticating(_) => {
                shard.close(self.conn, None, "");
                self.end(shard, "did not finish authenticating in time");
            }
            _ => {}
        }
    }

    /// Ends the reading side: the session learns the connection is gone, and the writing
    /// side flushes what is left and closes the socket.
    fn end(&mut self, shard: &mut Shard, why: &str) {
        self.phase = Phase::Ended;
        self.pending = BytesMut::new();
        shard.connection_closed(self.conn, why);
        shard.side_ended(self.conn, Side::Reader);
    }
}

/// A CONNECT that failed to decode: an unsupported protocol level or name gets CONNACK
/// 0x01 (3.1.1 [MQTT-3.1.2-2]); anything else closes the connection.
fn connect_error(shard: &mut Shard, conn: ConnId, e: DecodeError) {
    let peer = shard.conns().get(conn).map(|c| c.peer.to_string()).unwrap_or_default();
    crate::log!(Notice, "Bad CONNECT from {}: {}", peer, e);
    if let DecodeError::UnsupportedProtocolLevel(_) | DecodeError::InvalidProtocolName = e {
        shard.refuse_connect(conn, ProtocolVersion::V3_1_1, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
    } else {
        shard.close(conn, None, "");
    }
}
