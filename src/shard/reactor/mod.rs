//! One shard's event loop, on the io-uring crate directly. Every socket of the shard is
//! driven from one ring (`ring.rs`):
//! - each listener has a multishot accept armed;
//! - each connection has one multishot receive armed, taking buffers from the shard's
//!   provided-buffer ring (`bufring.rs`), so an idle connection holds no read buffer and
//!   a receive costs no new submission;
//! - everything a turn produced for a connection goes out as one send, and all of a
//!   turn's sends are submitted together in the one `io_uring_enter` that also waits for
//!   the next completions;
//! - the mesh wakes a parked shard through an eventfd with a read armed on the ring.
//!
//! A turn: read the clock once, handle the completions, drain the mesh, complete answered
//! CONNECTs, submit sends, then wait (or just collect, when work is left). Nothing here
//! knows MQTT: bytes go to the connection's [`Input`], output comes from the shard's
//! per-connection buffers.
//!
//! Why not monoio, which the shards ran on first: its per-operation futures and buffers
//! cost a re-armed read and an allocation per receive, and a read buffer per idle
//! connection; docs/performance.md has the before/after figures.

mod bind;
mod listeners;
mod ring;
mod socket;
mod tuning;

pub use bind::{bind_all, Bound, ListenerLimit};
pub use ring::{explain, probe, SetupError};

use super::bufring::BufRing;
use super::connections::{ConnId, Side};
use super::input::Input;
use super::layers::Layers;
use super::shared::Shared;
use super::state::Shard;
use super::sys::SysTally;
use bytes::BytesMut;
use io_uring::{cqueue, opcode, squeue, types};
use listeners::Listeners;
use ring::{decode_user_data, user_data, Completion, EventFdWake, Op, Ring, RECV_BUFFER_GROUP};
use socket::{peer_addr, set_nodelay, DisplayPeer, Held, Sockets};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};
use tuning::*;

/// One shard's ring, sockets and loop.
pub struct Reactor {
    // Field order is drop order: the ring goes before the buffers the kernel writes into.
    ring: Ring,
    bufs: BufRing,
    shard: Shard,
    shared: Arc<Shared>,
    listeners: Listeners,
    sockets: Sockets,
    /// Receive staging: bytes are copied here from the kernel's buffers.
    chunk: BytesMut,
    /// CONNECT deadlines in accept order: (deadline_ms, socket slot, connection).
    connect_deadlines: VecDeque<(u64, u32, ConnId)>,
    /// Receives that completed while the mesh was backed up, in order, buffers held.
    held: VecDeque<(u32, Held)>,
    /// Sockets whose multishot receive ended for want of buffers, to re-arm.
    rearm: Vec<u32>,
    wake_fd: Arc<EventFdWake>,
    wake_buf: Box<u64>,
    waker: Waker,
    /// The flush list handed back and forth with the shard, to reuse its allocation.
    spare_flush: Vec<ConnId>,
    spare_completions: Vec<Completion>,
    next_keepalive_sweep_ms: u64,
    next_slow_timers_ms: u64,
    /// `$SYS`: this shard's byte counts and its part of the tree.
    sys: SysTally,
}

impl Reactor {
    /// Sets up the shard's ring and buffer ring; an error names its cause (see
    /// [`explain`]).
    pub fn new(
        shard: Shard,
        shared: Arc<Shared>,
        listeners: Vec<super::BoundListener>,
        sys: SysTally,
    ) -> Result<Reactor, SetupError> {
        let (shards, count) = (shared.mesh.shards(), shard.config().recv_buffers);
        let ring = Ring::new().map_err(|e| explain("io_uring set-up", &e, shards, count))?;
        let bufs = BufRing::register(&ring.submitter(), RECV_BUFFER_GROUP, count, RECV_BUFFER_BYTES)
            .map_err(|e| explain("registering the receive buffers with io_uring", &e, shards, count))?;
        // SAFETY: eventfd(2) returns a new descriptor or -1, checked.
        // Blocking, on purpose: io_uring answers a read on a non-blocking descriptor with
        // EAGAIN instead of waiting for it.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(SetupError(format!("eventfd failed: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: efd is a fresh descriptor nobody else owns.
        let wake_fd = Arc::new(EventFdWake(unsafe { OwnedFd::from_raw_fd(efd) }));
        let waker = Waker::from(wake_fd.clone());
        let listeners = Listeners::new(listeners);
        let now = shard.now_ms();
        Ok(Reactor {
            ring,
            bufs,
            shard,
            shared,
            listeners,
            sockets: Default::default(),
            chunk: BytesMut::with_capacity(RECV_CHUNK_BYTES),
            connect_deadlines: VecDeque::new(),
            held: VecDeque::new(),
            rearm: Vec::new(),
            wake_fd,
            wake_buf: Box::new(0),
            waker,
            spare_flush: Vec::new(),
            spare_completions: Vec::with_capacity(1024),
            next_keepalive_sweep_ms: now + KEEPALIVE_SWEEP_MS,
            next_slow_timers_ms: now + SLOW_TIMERS_MS,
            sys,
        })
    }

    /// Runs the shard until the broker shuts down, then closes every connection.
    pub fn run(mut self) -> std::io::Result<()> {
        self.listeners.arm_all(&mut self.ring);
        self.arm_wake();
        let id = self.shard.id() as usize;
        let mesh = self.shared.mesh.clone();
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        while !mesh.is_shutting_down() {
            // Turn durations, for the metrics endpoint only (`sys::TurnHistogram`).
            let turn_start = self.sys.timing_turns.then(Instant::now);
            self.shard.begin_turn(self.shared.clock.now_ms());
            self.handle_completions();
            let mesh_more = self.drain_mesh();
            self.complete_verifications();
            self.complete_handshakes();
            self.shard.complete_persisted();
            self.complete_connects();
            self.apply_holds();
            self.after_backlog();
            let now = Instant::now();
            if now >= next_housekeeping {
                self.housekeeping();
                let retry = self.shard.outbox().is_backlogged();
                next_housekeeping = now + if retry { BACKLOG_RETRY } else { HOUSEKEEPING };
            }
            self.flush_output();
            self.shard.outbox().wake_peers();
            if let Some(start) = turn_start {
                self.sys.turns.record(start.elapsed().as_nanos() as u64);
            }
            let busy = mesh_more
                || self.ring.has_completions()
                || self.shard.has_answered_connects()
                || self.shard.conns().has_hold_changes()
                || self.shard.conns().has_output()
                || self.processable_held()
                || self.shared.handshakes.as_ref().is_some_and(|h| h.has_results(self.shard.id()));
            if busy {
                self.ring.enter(0, None)?;
            } else {
                let mut cx = Context::from_waker(&self.waker);
                let shard = &mut self.shard;
                let handshakes = self.shared.handshakes.as_ref();
                if mesh.park(id, &mut cx, || {
                    shard.outbox().backlog_has_room()
                        || shard.has_verified()
                        || shard.has_persisted()
                        || handshakes.is_some_and(|h| h.has_results(id as u16))
                }) {
                    let wait = next_housekeeping.saturating_duration_since(Instant::now());
                    self.ring.enter(1, Some(wait))?;
                    mesh.unpark(id);
                } else {
                    self.ring.enter(0, None)?;
                }
            }
        }
        self.shutdown()
    }

    /// Queues one submission.
    fn push(&mut self, e: squeue::Entry) {
        // SAFETY: every buffer and descriptor an entry points at outlives its
        // completion: send buffers sit in `Socket::buf`, the wake buffer in `wake_buf`,
        // and sockets stay open until their operations have completed.
        unsafe { self.ring.push(&e) }
    }

    fn arm_wake(&mut self) {
        let e = opcode::Read::new(
            types::Fd(self.wake_fd.0.as_raw_fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(user_data(Op::Wake, 0));
        self.push(e);
    }

    fn arm_recv(&mut self, slot: u32) {
        let Some(s) = self.sockets.get_mut(slot) else { return };
        s.recv_armed = true;
        let e = opcode::RecvMulti::new(types::Fd(s.fd.as_raw_fd()), self.bufs.bgid)
            .build()
            .user_data(user_data(Op::Recv, slot));
        self.push(e);
    }

    fn handle_completions(&mut self) {
        let mut batch = self.ring.take_completions(std::mem::take(&mut self.spare_completions));
        let mut gave_back = false;
        // Receives past the turn's output budget wait for the next turn, in order, after
        // this turn's output is sent; everything else is handled now (a send completion
        // held back would stall that connection's output).
        let mut deferred = 0;
        for i in 0..batch.len() {
            let (ud, res, flags) = batch[i];
            let (op, slot) = decode_user_data(ud);
            match op {
                Op::Recv if self.shard.turn_output_bytes() >= TURN_OUTPUT_BYTES => {
                    batch[deferred] = batch[i];
                    deferred += 1;
                }
                Op::Recv => gave_back |= self.on_recv(slot, res, flags),
                Op::Accept => self.on_accept(slot as usize, res, flags),
                Op::Send => self.on_send(slot, res),
                Op::Wake => self.arm_wake(),
                Op::Cancel => {}
            }
        }
        if gave_back {
            self.bufs.publish();
        }
        // The deferred receives go back to the ring; the emptied list is reused next turn.
        batch.truncate(deferred);
        self.ring.put_back(&mut batch);
        self.spare_completions = batch;
    }

    fn on_accept(&mut self, i: usize, res: i32, flags: u32) {
        let Some(listeners::Accepted { fd, port, listener, seat }) =
            self.listeners.on_accept(i, res, flags, &mut self.ring)
        else {
            return;
        };
        self.sys.sockets_accepted += 1;
        let peer = peer_addr(&fd);
        if self.shard.config().set_tcp_nodelay {
            set_nodelay(&fd);
        }
        crate::log_connection!("New connection from {} on port {}.", DisplayPeer(peer), port);
        let layers = match Layers::for_listener(&self.shared, listener) {
            Ok(layers) => layers,
            // Never plain on a TLS listener: the socket closes as `fd` drops.
            Err(e) => return crate::log!(Error, "Error: TLS set-up for a new connection failed: {}.", e),
        };
        let sh = &mut self.shard;
        let conn = sh.open_connection(peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))), listener);
        let deadline_ms = sh.now_ms() + sh.config().connect_timeout_secs * 1000;
        let input = Input::new(conn, sh.config().max_packet_size as usize, deadline_ms);
        let slot = self.sockets.insert(fd, input, layers, seat);
        self.connect_deadlines.push_back((deadline_ms, slot, conn));
        self.arm_recv(slot);
    }

    /// A receive completion; true when a buffer went back to the ring.
    fn on_recv(&mut self, slot: u32, res: i32, flags: u32) -> bool {
        let more = cqueue::more(flags);
        let Some(s) = self.sockets.get_mut(slot) else { return false };
        if !more {
            s.recv_armed = false;
        }
        if s.writer_finished {
            // Read after the broker's last packet (see `finish_writer`): discarded, and
            // the socket closes once the peer does (or the receive ends some other way).
            let bid = (res > 0).then(|| cqueue::buffer_select(flags)).flatten();
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
            self.maybe_release(slot);
            return bid.is_some();
        }
        let reading = s.is_reading();
        let event = match res {
            1.. => {
                self.sys.bytes_received += res as u64;
                let bid = cqueue::buffer_select(flags).expect("a receive with data names its buffer");
                if !more && reading {
                    self.rearm.push(slot);
                }
                Held::Data { bid, len: res as usize }
            }
            0 => Held::End { why: "closed its connection" },
            // Cancelled because the connection is held (flow control): it is read again
            // when let go (`apply_holds`).
            _ if -res == libc::ECANCELED => {
                if !reading {
                    self.maybe_release(slot);
                }
                return false;
            }
            _ if -res == libc::ENOBUFS => {
                // The pool ran dry: the data waits in the socket until buffers come back.
                if reading {
                    self.rearm.push(slot);
                } else {
                    self.maybe_release(slot);
                }
                return false;
            }
            _ => Held::End { why: "socket error, disconnecting" },
        };
        self.deliver_or_hold(slot, event)
    }

    /// Hands a receive event to the connection now, or, behind a backed-up mesh or behind
    /// events already held, keeps it (and its buffer, which keeps the kernel from filling
    /// more) until the backlog drains. True when a buffer went back to the ring.
    fn deliver_or_hold(&mut self, slot: u32, event: Held) -> bool {
        if !self.held.is_empty() || self.shard.outbox().is_backlogged() {
            self.held.push_back((slot, event));
            return false;
        }
        self.deliver(slot, event)
    }

    /// Hands a receive event to the connection; true when a buffer went back to the ring.
    fn deliver(&mut self, slot: u32, event: Held) -> bool {
        if let Some(s) = self.sockets.get_mut(slot) {
            if s.attached {
                match event {
                    Held::Data { bid, len } => {
                        let data = self.bufs.bytes(bid, len);
                        match &mut s.layers {
                            None => s.input.on_bytes(&mut self.shard, &mut self.chunk, data),
                            Some(l) => {
                                l.on_bytes(&mut s.input, &mut self.shard, &mut self.chunk, data, &self.shared)
                            }
                        }
                    }
                    Held::End { why } => s.input.on_end(&mut self.shard, why),
                }
            }
        }
        self.check_detached(slot);
        match event {
            Held::Data { bid, .. } => {
                self.bufs.give_back(bid);
                true
            }
            Held::End { .. } => false,
        }
    }

    /// Processes held receives once the mesh has room again, then re-arms receives.
    fn after_backlog(&mut self) {
        let outbox = self.shard.outbox();
        if outbox.is_backlogged() && outbox.flush_backlog() {
            outbox.wake_peers();
        }
        let mut gave_back = false;
        while !self.shard.outbox().is_backlogged() {
            let Some((slot, event)) = self.held.pop_front() else { break };
            gave_back |= self.deliver(slot, event);
        }
        if gave_back {
            self.bufs.publish();
        }
        if self.held.is_empty() {
            for slot in std::mem::take(&mut self.rearm) {
                let conns = self.shard.conns();
                if self
                    .sockets
                    .get(slot)
                    .is_some_and(|s| !s.recv_armed && s.is_reading() && !conns.is_held(s.input.conn))
                {
                    self.arm_recv(slot);
                }
            }
        }
    }

    /// Flow control's holds and releases since the last look: a held publisher's
    /// receive is cancelled, so what it sends waits in its socket and TCP slows it down;
    /// one let go decodes what waited and is read again.
    fn apply_holds(&mut self) {
        if !self.shard.conns().has_hold_changes() {
            return;
        }
        for conn in self.shard.conns().take_paused() {
            let slot = self.sockets.slot_of(conn);
            if self.sockets.get(slot).is_some_and(|s| s.attached && s.input.conn == conn && s.recv_armed) {
                let e = opcode::AsyncCancel::new(user_data(Op::Recv, slot))
                    .build()
                    .user_data(user_data(Op::Cancel, slot));
                self.push(e);
            }
        }
        for conn in self.shard.conns().take_resumed() {
            let slot = self.sockets.slot_of(conn);
            if let Some(s) = self.sockets.get_mut(slot) {
                if s.attached && s.input.conn == conn {
                    s.input.resume(&mut self.shard);
                }
            }
            let conns = self.shard.conns();
            if self
                .sockets
                .get(slot)
                .is_some_and(|s| !s.recv_armed && s.is_reading() && !conns.is_held(s.input.conn))
            {
                self.arm_recv(slot);
            }
            self.check_detached(slot);
        }
    }

    fn processable_held(&mut self) -> bool {
        !self.held.is_empty() && !self.shard.outbox().is_backlogged()
    }

    /// Takes up to a batch from each peer's queue. Returns whether more is waiting.
    fn drain_mesh(&mut self) -> bool {
        let id = self.shard.id() as usize;
        let mesh = &self.shared.mesh;
        for from in 0..mesh.shards() {
            let mut took = false;
            for _ in 0..MESH_BATCH {
                let Some(m) = mesh.try_recv(from, id) else { break };
                took = true;
                self.shard.on_mesh(m);
            }
            // A sender backed up on this queue waits for the room just made.
            if took && from != id && mesh.take_blocked(from, id) {
                mesh.wake(from);
            }
        }
        mesh.has_pending(id)
    }

    /// CONNECTs whose password check answered: on to registration, or refused.
    fn complete_verifications(&mut self) {
        while let Some(answer) = self.shard.next_verified() {
            let slot = self.sockets.slot_of(answer.conn);
            if let Some(s) = self.sockets.get_mut(slot) {
                if s.attached && s.input.conn == answer.conn {
                    s.input.verified(&mut self.shard, answer);
                }
            }
            self.check_detached(slot);
        }
    }

    /// TLS handshake steps back from the handshake threads.
    fn complete_handshakes(&mut self) {
        let shared = self.shared.clone();
        let Some(pool) = &shared.handshakes else { return };
        while let Some(r) = pool.next(self.shard.id()) {
            let slot = self.sockets.slot_of(r.conn);
            if let Some(s) = self.sockets.get_mut(slot) {
                if s.attached && s.input.conn == r.conn {
                    if let Some(layers) = &mut s.layers {
                        layers.stepped(r, &mut s.input, &mut self.shard, &mut self.chunk, &shared);
                    }
                }
            }
            self.check_detached(slot);
        }
    }

    /// CONNECTs whose home shard answered: CONNACK, then whatever the client sent behind.
    fn complete_connects(&mut self) {
        while let Some((conn, resumed)) = self.shard.next_answered_connect() {
            let slot = self.sockets.slot_of(conn);
            if let Some(s) = self.sockets.get_mut(slot) {
                if s.attached && s.input.conn == conn {
                    s.input.complete_connect(&mut self.shard, resumed);
                }
            }
            self.check_detached(slot);
        }
    }

    /// Sends each listed connection's output, one send per connection, and finishes the
    /// writing side of connections that are closing and flushed.
    fn flush_output(&mut self) {
        let mut listed = self.shard.conns().take_to_flush(std::mem::take(&mut self.spare_flush));
        for &conn in &listed {
            let slot = self.sockets.slot_of(conn);
            let Some(c) = self.shard.conns().flushing(conn) else { continue };
            let Some(s) = self.sockets.get_mut(slot) else { continue };
            if s.sending.is_some() || s.writer_finished {
                continue;
            }
            let send = match &mut s.layers {
                None if !c.out.is_empty() => {
                    s.buf.clear();
                    std::mem::swap(&mut c.out, &mut s.buf);
                    true
                }
                None => false,
                Some(layers) => {
                    let closing = c.is_closing();
                    layers.flush(&mut c.out, &mut s.buf, closing)
                }
            };
            if send {
                self.start_send(slot, 0);
            } else if c.is_closing() {
                self.finish_writer(slot);
            }
        }
        listed.clear();
        self.spare_flush = listed;
    }

    fn start_send(&mut self, slot: u32, offset: usize) {
        let Some(s) = self.sockets.get_mut(slot) else { return };
        let rest = &s.buf[offset..];
        let e = opcode::Send::new(
            types::Fd(s.fd.as_raw_fd()),
            rest.as_ptr(),
            rest.len().min(u32::MAX as usize) as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(user_data(Op::Send, slot));
        s.sending = Some(offset as u32);
        self.push(e);
    }

    fn on_send(&mut self, slot: u32, res: i32) {
        let Some(s) = self.sockets.get_mut(slot) else { return };
        let Some(offset) = s.sending.take() else { return };
        if res <= 0 {
            // The peer is gone (a send of a non-empty buffer never returns 0): the
            // writing side ends, which shuts the socket and ends the receive too.
            self.finish_writer(slot);
            self.maybe_release(slot);
            return;
        }
        self.sys.bytes_sent += res as u64;
        let offset = offset as usize + res as usize;
        if offset < s.buf.len() {
            return self.start_send(slot, offset);
        }
        let big = s.buf.capacity() > IDLE_BUFFER_KEEP_BYTES;
        if big {
            self.sockets.note_big_buffer(slot);
        }
        let Some(s) = self.sockets.get_mut(slot) else { return };
        if s.attached {
            // More output may have accumulated meanwhile, or the connection may be closing.
            let conn = s.input.conn;
            self.shard.conns().wake_writer(conn);
        } else {
            self.maybe_release(slot);
        }
    }

    /// The writing side is done (the last packet, a DISCONNECT perhaps, has gone, or the
    /// peer is gone): tell the state, which removes the connection once the reading side
    /// is done too, and end the reading side for the state as well.
    ///
    /// The socket itself is only half-closed: FIN after the last packet, while what the
    /// client still sends is read and discarded until it closes too, or for
    /// [`LINGER_MS`]. Closing a socket with unread data sends a reset instead of a FIN,
    /// and a client still sending (PUBRELs for PUBRECs it has not read yet, say) would
    /// get that reset, which can also throw away the DISCONNECT and its reason code still
    /// in the client's receive buffer (the "lingering close" of HTTP servers).
    fn finish_writer(&mut self, slot: u32) {
        let Some(s) = self.sockets.get_mut(slot) else { return };
        if s.writer_finished {
            return;
        }
        s.writer_finished = true;
        s.shutdown(libc::SHUT_WR);
        let reader_open = s.is_reading();
        let (linger, attached, conn) = (s.recv_armed || reader_open, s.attached, s.input.conn);
        if linger {
            self.sockets.linger(slot, self.shard.now_ms() + LINGER_MS);
        }
        if attached {
            self.shard.side_ended(conn, Side::Writer);
        }
        if reader_open {
            // The end the receive brought when the socket was shut both ways, in order
            // behind any receive still held.
            self.deliver_or_hold(slot, Held::End { why: "closed by the broker" });
        }
        self.check_detached(slot);
    }

    /// Closes lingering sockets whose peer has not closed within [`LINGER_MS`].
    fn end_lingering(&mut self) {
        for slot in self.sockets.end_lingering(self.shard.now_ms()) {
            self.maybe_release(slot);
        }
    }

    /// Notices that the shard removed the connection (both sides ended); the socket is
    /// closed once no operation on it is in flight.
    fn check_detached(&mut self, slot: u32) {
        let Some(s) = self.sockets.get(slot) else { return };
        if s.attached && self.shard.conns().get(s.input.conn).is_none() {
            self.sockets.detach(slot);
        }
        self.maybe_release(slot);
    }

    fn maybe_release(&mut self, slot: u32) {
        let held = self.held.iter().any(|&(h, _)| h == slot);
        self.sockets.release_if_done(slot, held);
    }

    /// Timers: keepalive, the shard's once-a-second work, CONNECT deadlines, lingering
    /// sockets, quiet buffers, a paused accept.
    fn housekeeping(&mut self) {
        self.sockets.shrink_quiet_buffers(self.shard.conns());
        let clock = self.shard.now_ms();
        if clock >= self.next_keepalive_sweep_ms {
            self.next_keepalive_sweep_ms = clock + KEEPALIVE_SWEEP_MS;
            self.shard.sweep_keepalive();
        }
        if clock >= self.next_slow_timers_ms {
            self.next_slow_timers_ms = clock + SLOW_TIMERS_MS;
            self.shard.every_second();
        }
        // The first packet must be CONNECT, within the deadline. Entries of sockets that
        // have sent CONNECT (most, long before their deadline) leave from the front early,
        // so the queue holds about the connections still waiting, not the last 10 s.
        while let Some(&(deadline, slot, conn)) = self.connect_deadlines.front() {
            let waiting = self.sockets.get(slot).is_some_and(|s| {
                s.attached && s.input.conn == conn && s.input.connect_deadline_ms() == Some(deadline)
            });
            if waiting && deadline > clock {
                break;
            }
            self.connect_deadlines.pop_front();
            if waiting {
                if let Some(s) = self.sockets.get_mut(slot) {
                    s.input.connect_timed_out(&mut self.shard);
                }
                self.check_detached(slot);
            }
        }
        if self.connect_deadlines.is_empty() && self.connect_deadlines.capacity() > 1024 {
            self.connect_deadlines = VecDeque::new();
        }
        self.end_lingering();
        self.listeners.retry_if_due(&mut self.ring);
        self.sys.tick(&mut self.shard, self.sockets.len());
    }

    /// Closes every connection (MQTT 5: DISCONNECT 0x8B), publishes wills, and lets the
    /// sockets flush for a moment.
    fn shutdown(mut self) -> std::io::Result<()> {
        self.shard.close_all();
        self.shard.outbox().wake_peers();
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while Instant::now() < deadline && !self.shard.conns().is_empty() {
            self.shard.begin_turn(self.shared.clock.now_ms());
            self.handle_completions();
            self.after_backlog();
            self.flush_output();
            self.shard.outbox().wake_peers();
            self.ring.enter(1, Some(Duration::from_millis(5)))?;
        }
        Ok(())
    }
}
