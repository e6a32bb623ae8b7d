//! A connection's socket as the event loop sees it: the reading side's state, the
//! operations in flight on it, and the bytes being sent.

use super::super::connections::{ConnId, Connections};
use super::super::input::Input;
use super::super::layers::Layers;
use super::super::slab::Slab;
use super::bind::ListenerSeat;
use super::tuning::IDLE_BUFFER_KEEP_BYTES;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

/// A receive completion kept for later: bytes in a provided buffer, or the end.
#[derive(Clone, Copy)]
pub enum Held {
    Data { bid: u16, len: usize },
    End { why: &'static str },
}

/// One connection's socket and the operations in flight on it.
///
/// A socket is closed (dropped) only when the shard has let go of its connection
/// (`attached` false) and no operation on it is in flight: the kernel may still write
/// into or read from what an operation points at until it completes.
pub struct Socket {
    pub fd: OwnedFd,
    pub input: Input,
    /// TLS and WebSockets between the socket and the input, on listeners that have
    /// them (boxed: a plain connection pays a pointer).
    pub layers: Option<Box<Layers>>,
    /// The shard's entry for this connection still exists (it goes when both sides end).
    pub attached: bool,
    /// A multishot receive is armed.
    pub recv_armed: bool,
    /// While a send is in flight, the bytes being sent; between sends, the spare buffer
    /// that becomes the connection's next output buffer (one field for both, since each
    /// byte here is paid per connection).
    pub buf: BytesMut,
    /// How much of `buf` has gone, while a send is in flight.
    pub sending: Option<u32>,
    /// The writing side has ended (FIN sent after the last packet, or the send failed);
    /// what still arrives is read and discarded (the lingering close).
    pub writer_finished: bool,
    /// Listed among the sockets whose large buffers are given back once quiet.
    pub has_big_buffers: bool,
    /// Its place on its listener (`max_connections`), given back as the socket closes.
    _seat: ListenerSeat,
}

impl Socket {
    pub fn new(fd: OwnedFd, input: Input, layers: Option<Box<Layers>>, seat: ListenerSeat) -> Self {
        Socket {
            fd,
            input,
            layers,
            attached: true,
            recv_armed: false,
            buf: BytesMut::new(),
            sending: None,
            writer_finished: false,
            has_big_buffers: false,
            _seat: seat,
        }
    }

    /// No operation on the socket is in flight.
    pub fn is_idle(&self) -> bool {
        !self.recv_armed && self.sending.is_none()
    }

    /// Whether received bytes still go to the connection.
    pub fn is_reading(&self) -> bool {
        self.attached && !self.input.is_ended()
    }

    /// Shuts one or both directions of the socket (`libc::SHUT_WR`, `SHUT_RDWR`).
    pub fn shutdown(&self, how: i32) {
        // SAFETY: shutdown(2) on a descriptor we own and have not closed.
        unsafe { libc::shutdown(self.fd.as_raw_fd(), how) };
    }
}

/// The shard's sockets: the table, each connection's socket slot, the sockets still read
/// after their writing side finished (the lingering close), and those holding large
/// buffers to give back once quiet.
#[derive(Default)]
pub struct Sockets {
    table: Slab<Socket>,
    /// Socket slot of each connection id (`u32::MAX`: none).
    by_conn: Vec<u32>,
    /// Lingering sockets in the order they started: (until, shard clock ms; slot;
    /// descriptor, to tell a later socket in the slot apart). Kept here rather than in
    /// [`Socket`], whose every byte is paid per connection.
    lingering: VecDeque<(u64, u32, i32)>,
    /// Sockets holding output buffers above [`IDLE_BUFFER_KEEP_BYTES`].
    big_buffers: Vec<u32>,
}

impl Sockets {
    /// A new connection's socket; returns its slot.
    pub fn insert(
        &mut self,
        fd: OwnedFd,
        input: Input,
        layers: Option<Box<Layers>>,
        seat: ListenerSeat,
    ) -> u32 {
        let conn = input.conn as usize;
        let slot = self.table.insert(Socket::new(fd, input, layers, seat));
        if self.by_conn.len() <= conn {
            self.by_conn.resize(conn + 1, u32::MAX);
        }
        self.by_conn[conn] = slot;
        slot
    }

    /// Sockets open on this shard (connections, and closed ones still lingering).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn get(&self, slot: u32) -> Option<&Socket> {
        self.table.get(slot)
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Socket> {
        self.table.get_mut(slot)
    }

    /// The slot of a connection's socket (`u32::MAX`: none).
    pub fn slot_of(&self, conn: ConnId) -> u32 {
        self.by_conn.get(conn as usize).copied().unwrap_or(u32::MAX)
    }

    /// The shard let go of the socket's connection (both sides ended).
    pub fn detach(&mut self, slot: u32) {
        let Some(s) = self.table.get_mut(slot) else { return };
        s.attached = false;
        let conn = s.input.conn as usize;
        if self.by_conn.get(conn) == Some(&slot) {
            self.by_conn[conn] = u32::MAX;
        }
    }

    /// Closes a detached socket once no operation on it is in flight and no receive of
    /// it is `held` back; a detached socket with a receive still armed is shut both ways
    /// first, which ends the receive.
    pub fn release_if_done(&mut self, slot: u32, held: bool) {
        let Some(s) = self.table.get_mut(slot) else { return };
        if s.attached {
            return;
        }
        if s.is_idle() && !held {
            if !s.writer_finished {
                s.shutdown(libc::SHUT_RDWR);
            }
            // Dropping the socket closes the descriptor.
            self.table.remove(slot);
        } else if s.recv_armed && !s.writer_finished {
            s.writer_finished = true;
            s.shutdown(libc::SHUT_RDWR);
        }
    }

    /// Keeps reading (and discarding) from a socket whose writing side finished, until
    /// `until_ms`.
    pub fn linger(&mut self, slot: u32, until_ms: u64) {
        if let Some(s) = self.table.get(slot) {
            self.lingering.push_back((until_ms, slot, s.fd.as_raw_fd()));
        }
    }

    /// Ends the lingering of sockets whose time is up: their receive is ended by a
    /// shutdown both ways. Returns their slots, to release once the receive has ended.
    pub fn end_lingering(&mut self, now_ms: u64) -> Vec<u32> {
        let mut due = Vec::new();
        while let Some(&(until, slot, fd)) = self.lingering.front() {
            if until > now_ms {
                break;
            }
            self.lingering.pop_front();
            if let Some(s) = self.table.get(slot).filter(|s| s.fd.as_raw_fd() == fd && s.writer_finished) {
                if s.recv_armed {
                    s.shutdown(libc::SHUT_RDWR);
                }
            }
            due.push(slot);
        }
        due
    }

    /// A send left the socket with a buffer above [`IDLE_BUFFER_KEEP_BYTES`].
    pub fn note_big_buffer(&mut self, slot: u32) {
        if let Some(s) = self.table.get_mut(slot).filter(|s| !s.has_big_buffers) {
            s.has_big_buffers = true;
            self.big_buffers.push(slot);
        }
    }

    /// Gives back the large output buffers of connections that have gone quiet (the
    /// socket's spare and the connection's own).
    pub fn shrink_quiet_buffers(&mut self, conns: &mut Connections) {
        let table = &mut self.table;
        self.big_buffers.retain(|&slot| {
            let Some(s) = table.get_mut(slot) else { return false };
            let out = if s.attached { conns.get_mut(s.input.conn).map(|c| &mut c.out) } else { None };
            if s.sending.is_some() || out.as_ref().is_some_and(|o| !o.is_empty()) {
                return true;
            }
            s.buf = BytesMut::new();
            if let Some(out) = out.filter(|o| o.capacity() > IDLE_BUFFER_KEEP_BYTES) {
                *out = BytesMut::new();
            }
            s.has_big_buffers = false;
            false
        });
    }
}

pub fn peer_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    socket2::SockRef::from(fd).peer_addr().ok().and_then(|a| a.as_socket())
}

pub fn set_nodelay(fd: &OwnedFd) {
    let _ = socket2::SockRef::from(fd).set_nodelay(true);
}

/// A peer address for the log, which may be unknown.
pub struct DisplayPeer(pub Option<SocketAddr>);

impl std::fmt::Display for DisplayPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("unknown address"),
        }
    }
}
