//! The shard's listening sockets: a multishot accept armed on each, and the pause after
//! an accept fails (out of file descriptors, most likely) so the loop does not spin.

use super::super::BoundListener;
use super::ring::{user_data, Op, Ring};
use io_uring::{cqueue, opcode, types};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long accepting pauses after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A listening socket and whether its multishot accept is armed.
struct Listener {
    socket: TcpListener,
    port: u16,
    /// The configured listener it belongs to.
    index: u16,
    armed: bool,
}

/// The shard's listeners.
pub struct Listeners {
    list: Vec<Listener>,
    retry_at: Option<Instant>,
}

impl Listeners {
    pub fn new(sockets: Vec<BoundListener>) -> Self {
        let list = sockets
            .into_iter()
            .map(|b| Listener { socket: b.socket, port: b.port, index: b.index, armed: false })
            .collect();
        Listeners { list, retry_at: None }
    }

    /// Arms an accept on every listener that has none.
    pub fn arm_all(&mut self, ring: &mut Ring) {
        for i in 0..self.list.len() {
            if !self.list[i].armed {
                self.arm(i, ring);
            }
        }
    }

    fn arm(&mut self, i: usize, ring: &mut Ring) {
        let l = &mut self.list[i];
        l.armed = true;
        let e = opcode::AcceptMulti::new(types::Fd(l.socket.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(Op::Accept, i as u32));
        // SAFETY: the entry points at nothing but the listener, which lives as long as
        // the ring.
        unsafe { ring.push(&e) }
    }

    /// An accept completion on listener `i`: the new socket, the port it came in on and
    /// the configured listener's index.
    pub fn on_accept(
        &mut self,
        i: usize,
        res: i32,
        flags: u32,
        ring: &mut Ring,
    ) -> Option<(OwnedFd, u16, u16)> {
        if !cqueue::more(flags) {
            self.list[i].armed = false;
        }
        if res < 0 {
            let e = std::io::Error::from_raw_os_error(-res);
            crate::log!(Error, "Error accepting a connection: {}.", e);
            self.retry_at = Some(Instant::now() + ACCEPT_RETRY);
            return None;
        }
        if !self.list[i].armed && self.retry_at.is_none() {
            self.arm(i, ring);
        }
        // SAFETY: a successful accept returns a new descriptor that we now own.
        Some((unsafe { OwnedFd::from_raw_fd(res) }, self.list[i].port, self.list[i].index))
    }

    /// Re-arms accepting once a pause after a failure is over.
    pub fn retry_if_due(&mut self, ring: &mut Ring) {
        if self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.retry_at = None;
            self.arm_all(ring);
        }
    }
}
