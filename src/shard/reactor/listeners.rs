//! The shard's listening sockets: a multishot accept armed on each, each listener's
//! connection limit, and the pause after an accept fails (out of file descriptors, most
//! likely) so the loop does not spin. A run of failures is one episode: logged when it
//! starts and, with its count, when accepting works again.

use super::super::BoundListener;
use super::bind::{ListenerLimit, ListenerSeat};
use super::ring::{user_data, Op, Ring};
use io_uring::{cqueue, opcode, types};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long accepting pauses after the first failed accept of an episode; each further
/// failure doubles the pause, up to [`ACCEPT_RETRY_MAX`].
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);

/// A run of failed accepts, logged once at its start and once at its end.
struct AcceptFailures {
    /// The first failure's error.
    first: std::io::Error,
    count: u64,
    pause: Duration,
}

/// A listening socket and whether its multishot accept is armed.
struct Listener {
    socket: TcpListener,
    port: u16,
    /// The configured listener it belongs to.
    index: u16,
    limit: Arc<ListenerLimit>,
    armed: bool,
}

/// A connection a listener accepted.
pub struct Accepted {
    pub fd: OwnedFd,
    /// The port it came in on.
    pub port: u16,
    /// The configured listener's index.
    pub listener: u16,
    pub seat: ListenerSeat,
}

/// The shard's listeners.
pub struct Listeners {
    list: Vec<Listener>,
    retry_at: Option<Instant>,
    failures: Option<AcceptFailures>,
}

impl Listeners {
    pub fn new(sockets: Vec<BoundListener>) -> Self {
        let list = sockets
            .into_iter()
            .map(|b| Listener {
                socket: b.socket,
                port: b.port,
                index: b.index,
                limit: b.limit,
                armed: false,
            })
            .collect();
        Listeners { list, retry_at: None, failures: None }
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

    /// An accept completion on listener `i`: the new socket, the port it came in on, the
    /// configured listener's index and the connection's place on it. A connection beyond
    /// the listener's `max_connections` is closed at once.
    pub fn on_accept(&mut self, i: usize, res: i32, flags: u32, ring: &mut Ring) -> Option<Accepted> {
        if !cqueue::more(flags) {
            self.list[i].armed = false;
        }
        if res < 0 {
            self.failed(std::io::Error::from_raw_os_error(-res));
            return None;
        }
        if let Some(f) = self.failures.take() {
            crate::log!(
                Notice,
                "Accepting connections again, after {} failed accept(s) (the first: {}).",
                f.count,
                f.first
            );
        }
        if !self.list[i].armed && self.retry_at.is_none() {
            self.arm(i, ring);
        }
        // SAFETY: a successful accept returns a new descriptor that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        let l = &self.list[i];
        let Some(seat) = l.limit.admit() else {
            crate::log_connection!(
                "Client connection from {} denied: max_connections exceeded.",
                super::socket::DisplayPeer(super::socket::peer_addr(&fd))
            );
            return None;
        };
        Some(Accepted { fd, port: l.port, listener: l.index, seat })
    }

    /// A failed accept: the first of an episode is logged, the rest counted; accepting
    /// pauses, longer each time.
    fn failed(&mut self, e: std::io::Error) {
        let pause = match &mut self.failures {
            Some(f) => {
                f.count += 1;
                f.pause = (f.pause * 2).min(ACCEPT_RETRY_MAX);
                f.pause
            }
            None => {
                crate::log!(
                    Error,
                    "Error accepting a connection: {}; accepting pauses and retries (the count is logged when it works again).",
                    e
                );
                self.failures = Some(AcceptFailures { first: e, count: 1, pause: ACCEPT_RETRY });
                ACCEPT_RETRY
            }
        };
        self.retry_at = Some(Instant::now() + pause);
    }

    /// Re-arms accepting once a pause after a failure is over.
    pub fn retry_if_due(&mut self, ring: &mut Ring) {
        if self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.retry_at = None;
            self.arm_all(ring);
        }
    }
}
