//! A connection's socket as the event loop sees it: the reading side's state, the
//! operations in flight on it, and the bytes being sent.

use super::super::input::Input;
use bytes::BytesMut;
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
}

impl Socket {
    pub fn new(fd: OwnedFd, input: Input) -> Self {
        Socket {
            fd,
            input,
            attached: true,
            recv_armed: false,
            buf: BytesMut::new(),
            sending: None,
            writer_finished: false,
            has_big_buffers: false,
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
