//! A shard's connections as MQTT sees them: each one's output buffer, who it is once
//! connected, its will and keepalive, and where it stands in its life. The sockets
//! themselves belong to the event loop (`reactor/`), which reads back which connections
//! have output to send ([`Connections::take_to_flush`]) and tells when a side has ended.

pub use super::ids::ConnId;
use super::ids::SessionId;
use super::slab::Slab;
use crate::protocol::{ByteStr, Disconnect, Packet, Properties, ProtocolVersion, ReasonCode};
use crate::session::Message;
use bytes::BytesMut;
use std::net::SocketAddr;

/// Where a connection stands:
///
/// ```text
///  Open ──close──▶ Closing ──writer ends──▶ WriterEnded ──reader ends──▶ (removed)
///    │                │
///    └──reader ends───┴──▶ ReaderEnded ──writer ends──▶ (removed)
/// ```
///
/// The entry outlives whichever side ends first, so the writer can still flush a final
/// packet (a CONNACK refusing the client, a DISCONNECT with its reason) after the reader
/// has stopped, and the reader's end can still be logged after the writer has gone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Life {
    /// Packets flow both ways.
    Open,
    /// The broker decided to close: nothing more is delivered; the writer flushes what
    /// is queued, then shuts the socket. `timed_out` when the keepalive sweep decided.
    Closing { timed_out: bool },
    /// The reading side has ended; the writer is still flushing.
    ReaderEnded,
    /// The writing side has ended (flushed and shut, or failed); the reader has not.
    WriterEnded { timed_out: bool },
}

/// Which side of a connection ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Reader,
    Writer,
}

/// One connection.
pub struct Conn {
    pub peer: SocketAddr,
    /// The configured listener it came in on (an index into `Config::bind_listeners`):
    /// which access control applies.
    pub listener: u16,
    /// Encoded packets waiting for the event loop to send them.
    pub out: BytesMut,
    /// The session, once CONNECT has completed (and until a takeover takes it away).
    pub session: Option<SessionId>,
    pub client_id: Option<ByteStr>,
    pub version: ProtocolVersion,
    pub will: Option<Box<Message>>,
    /// Will Delay Interval (MQTT 5), seconds.
    pub will_delay_secs: u32,
    /// Close after this much silence (1.5 x keepalive: 3.1.1 [MQTT-3.1.2-24],
    /// 5.0 [MQTT-3.1.2-22]); 0 is never.
    pub keepalive_ms: u64,
    /// When the client last sent something, on the shard clock.
    pub last_heard_ms: u64,
    /// Whether the client wants Reason Strings (MQTT 5 Request Problem Information).
    pub problem_information: bool,
    /// The client's Maximum Packet Size (MQTT 5; `usize::MAX` when it set none), which the
    /// broker's DISCONNECT must fit too.
    pub max_packet_bytes: usize,
    /// It authenticated with SCRAM (MQTT 5 enhanced authentication), so it may
    /// re-authenticate with AUTH (section 4.12.1).
    pub enhanced_auth: bool,
    /// Subscribers whose full queues this publisher is held for (flow control): while
    /// above 0 the broker reads nothing from it.
    held_by: u16,
    life: Life,
    /// Set while the connection is listed for the event loop to flush.
    flush_queued: bool,
}

impl Conn {
    fn new(peer: SocketAddr, listener: u16) -> Self {
        Conn {
            peer,
            listener,
            out: BytesMut::new(),
            session: None,
            client_id: None,
            version: ProtocolVersion::V3_1_1,
            will: None,
            will_delay_secs: 0,
            keepalive_ms: 0,
            last_heard_ms: 0,
            problem_information: true,
            max_packet_bytes: usize::MAX,
            enhanced_auth: false,
            held_by: 0,
            life: Life::Open,
            flush_queued: false,
        }
    }

    /// Whether the broker is done with it: no more deliveries, only the last flush.
    pub fn is_closing(&self) -> bool {
        self.life != Life::Open
    }

    /// Whether the keepalive sweep closed it.
    pub fn timed_out(&self) -> bool {
        matches!(self.life, Life::Closing { timed_out: true } | Life::WriterEnded { timed_out: true })
    }
}

/// A shard's connection table and the list of connections with output to send.
#[derive(Default)]
pub struct Connections {
    table: Slab<Conn>,
    to_flush: Vec<ConnId>,
    /// Connections just held (flow control), for the event loop to stop reading them.
    paused: Vec<ConnId>,
    /// Connections just let go, for the event loop to read again.
    resumed: Vec<ConnId>,
}

impl Connections {
    /// A new connection that has not sent CONNECT yet.
    pub fn insert(&mut self, peer: SocketAddr, listener: u16) -> ConnId {
        self.table.insert(Conn::new(peer, listener))
    }

    pub fn get(&self, conn: ConnId) -> Option<&Conn> {
        self.table.get(conn)
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut Conn> {
        self.table.get_mut(conn)
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every connection, in slot order.
    pub fn ids(&self) -> Vec<ConnId> {
        self.table.iter().map(|(id, _)| id).collect()
    }

    /// Lists a connection for the event loop to send its output (or finish closing).
    /// Inlined on purpose: it runs once per delivery, and a new caller elsewhere (the
    /// TLS and WebSocket layers) must not change the hot path's inlining.
    #[inline]
    pub fn wake_writer(&mut self, conn: ConnId) {
        if let Some(c) = self.table.get_mut(conn) {
            if !c.flush_queued {
                c.flush_queued = true;
                self.to_flush.push(conn);
            }
        }
    }

    /// Whether any connection waits for the event loop to send.
    pub fn has_output(&self) -> bool {
        !self.to_flush.is_empty()
    }

    /// The connections listed since the last call; take each with
    /// [`Connections::flushing`]. `spare` is an empty list to reuse.
    pub fn take_to_flush(&mut self, spare: Vec<ConnId>) -> Vec<ConnId> {
        debug_assert!(spare.is_empty());
        std::mem::replace(&mut self.to_flush, spare)
    }

    /// A listed connection, unlisted as it is taken (output appended while it is being
    /// sent lists it again).
    pub fn flushing(&mut self, conn: ConnId) -> Option<&mut Conn> {
        let c = self.table.get_mut(conn)?;
        c.flush_queued = false;
        Some(c)
    }

    /// Marks a connection for closing; `goodbye` is the MQTT 5 DISCONNECT reason to send
    /// first, `why` its Reason String.
    pub fn close(&mut self, conn: ConnId, goodbye: Option<ReasonCode>, why: &str) {
        let Some(c) = self.table.get_mut(conn) else { return };
        if c.is_closing() {
            return;
        }
        if let Some(reason) = goodbye.filter(|_| c.version.is_v5() && c.client_id.is_some()) {
            // Sent only to a client that did not turn problem information off, although
            // the spec would allow it in a DISCONNECT (5.0 [MQTT-3.1.2-29]).
            let properties = (!why.is_empty() && c.problem_information).then(|| {
                Box::new(Properties { reason_string: Some(ByteStr::from(why)), ..Default::default() })
            });
            let start = c.out.len();
            Packet::Disconnect(Disconnect { reason, properties }).encode(c.version, &mut c.out);
            // The Reason String goes only where the packet still fits the client's Maximum
            // Packet Size (5.0 [MQTT-3.14.2-3]); a DISCONNECT that would not fit even
            // without it is not sent (5.0 [MQTT-3.1.2-24]).
            if c.out.len() - start > c.max_packet_bytes {
                c.out.truncate(start);
                Packet::Disconnect(Disconnect { reason, properties: None }).encode(c.version, &mut c.out);
                if c.out.len() - start > c.max_packet_bytes {
                    c.out.truncate(start);
                }
            }
        }
        c.life = Life::Closing { timed_out: false };
        self.wake_writer(conn);
    }

    /// Closes the connections whose client has been silent for longer than its keepalive
    /// allows (1.5 times it: 3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]); MQTT 5 clients get
    /// DISCONNECT 0x8D first.
    pub fn close_silent(&mut self, now_ms: u64) {
        let expired: Vec<ConnId> = self
            .table
            .iter()
            .filter(|(_, c)| {
                // A held publisher is silent because the broker stopped reading it.
                !c.is_closing()
                    && c.held_by == 0
                    && c.keepalive_ms > 0
                    && now_ms.saturating_sub(c.last_heard_ms) > c.keepalive_ms
            })
            .map(|(id, _)| id)
            .collect();
        for conn in expired {
            self.close(conn, Some(ReasonCode::KEEP_ALIVE_TIMEOUT), "");
            if let Some(c) = self.table.get_mut(conn) {
                c.life = Life::Closing { timed_out: true };
            }
        }
    }

    /// Holds a publisher for one more subscriber's full queue (`hold`), or lets it go for
    /// one (flow control). The event loop learns of the changes from
    /// [`Connections::take_paused`] and [`Connections::take_resumed`].
    pub fn hold(&mut self, conn: ConnId, hold: bool, now_ms: u64) {
        let Some(c) = self.table.get_mut(conn) else { return };
        if hold {
            c.held_by = c.held_by.saturating_add(1);
            if c.held_by == 1 {
                self.paused.push(conn);
            }
        } else if c.held_by > 0 {
            c.held_by -= 1;
            if c.held_by == 0 {
                // Its keepalive starts again from the moment the broker reads again.
                c.last_heard_ms = now_ms;
                self.resumed.push(conn);
            }
        }
    }

    /// Whether the broker is holding this publisher (reading nothing from it).
    #[inline]
    pub fn is_held(&self, conn: ConnId) -> bool {
        self.table.get(conn).is_some_and(|c| c.held_by > 0)
    }

    /// Connections held since the last call.
    pub fn take_paused(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.paused)
    }

    /// Connections let go since the last call.
    pub fn take_resumed(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.resumed)
    }

    /// Whether holds changed since the event loop last looked.
    pub fn has_hold_changes(&self) -> bool {
        !self.paused.is_empty() || !self.resumed.is_empty()
    }

    /// One side of a connection ended; the second removes the entry. True when removed.
    pub fn side_ended(&mut self, conn: ConnId, side: Side) -> bool {
        let Some(c) = self.table.get_mut(conn) else { return false };
        let timed_out = c.timed_out();
        c.life = match (c.life, side) {
            (Life::ReaderEnded, Side::Writer) | (Life::WriterEnded { .. }, Side::Reader) => {
                self.table.remove(conn);
                return true;
            }
            (_, Side::Reader) => Life::ReaderEnded,
            (_, Side::Writer) => Life::WriterEnded { timed_out },
        };
        self.wake_writer(conn);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1883))
    }

    #[test]
    fn an_entry_outlives_its_first_side_to_end_and_goes_with_the_second() {
        for (first, second) in [(Side::Reader, Side::Writer), (Side::Writer, Side::Reader)] {
            let mut conns = Connections::default();
            let c = conns.insert(peer(), 0);
            assert!(!conns.side_ended(c, first));
            assert!(conns.get(c).is_some_and(Conn::is_closing));
            assert!(conns.side_ended(c, second));
            assert!(conns.get(c).is_none());
        }
    }

    #[test]
    fn a_keepalive_timeout_is_remembered_until_the_reader_ends() {
        let mut conns = Connections::default();
        let c = conns.insert(peer(), 0);
        conns.get_mut(c).unwrap().keepalive_ms = 1_500;
        conns.close_silent(1_500);
        assert!(!conns.get(c).unwrap().is_closing(), "exactly 1.5 x keepalive is still in time");
        conns.close_silent(1_501);
        assert!(conns.get(c).unwrap().timed_out());
        conns.side_ended(c, Side::Writer);
        assert!(conns.get(c).unwrap().timed_out(), "the reader's end is logged as a timeout");
    }

    #[test]
    fn a_disconnect_fits_the_client_maximum_packet_size_or_is_not_sent() {
        let disconnect = |max: usize| {
            let mut conns = Connections::default();
            let c = conns.insert(peer(), 0);
            let conn = conns.get_mut(c).unwrap();
            (conn.version, conn.client_id, conn.max_packet_bytes) =
                (ProtocolVersion::V5, Some("c".into()), max);
            conns.close(c, Some(ReasonCode::PROTOCOL_ERROR), "why");
            conns.get(c).unwrap().out.to_vec()
        };
        // e0 08 82 06 1f 00 03 'w' 'h' 'y': 10 bytes with the Reason String.
        assert_eq!(disconnect(usize::MAX).len(), 10);
        assert_eq!(disconnect(10).len(), 10);
        // Without it (5.0 [MQTT-3.14.2-3]): e0 01 82.
        assert_eq!(disconnect(9), [0xE0, 0x01, 0x82]);
        assert_eq!(disconnect(3), [0xE0, 0x01, 0x82]);
        assert!(disconnect(2).is_empty(), "nothing that does not fit (5.0 [MQTT-3.1.2-24])");
    }

    #[test]
    fn a_connection_is_listed_for_flushing_once_until_taken() {
        let mut conns = Connections::default();
        let c = conns.insert(peer(), 0);
        conns.wake_writer(c);
        conns.wake_writer(c);
        assert_eq!(conns.take_to_flush(Vec::new()), vec![c]);
        assert!(!conns.has_output());
        conns.wake_writer(c);
        assert!(!conns.has_output(), "still listed until taken for flushing");
        assert!(conns.flushing(c).is_some());
        conns.wake_writer(c);
        assert_eq!(conns.take_to_flush(Vec::new()), vec![c], "listed again after being taken");
    }
}
