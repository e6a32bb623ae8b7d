//! One shard's state: its connections, sessions, trie and retained store, and its end of
//! the mesh. Everything here runs on the shard's thread, synchronously: the event loop in
//! `reactor.rs` calls in with each batch of completions, and reads back which
//! connections have output to send (`to_flush`) and which CONNECTs were answered
//! (`connects_ready`).

use super::mesh::Mesh;
use super::messages::{ConnectToken, MeshMsg};
use super::routing::Retained;
pub use super::slab::Slab;
use crate::config::Config;
use crate::protocol::{ByteStr, ProtocolVersion, ReasonCode};
use crate::router::{RetainedStore, RouteCache, Trie};
use crate::session::{Limits, Message, Session, Subscription};
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Milliseconds since the broker started: the clock for message expiry and keepalive.
/// The hot path reads [`ShardState::clock_ms`], refreshed once per batch, instead.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What every shard shares: the mesh and the configuration, plus a connection count for
/// `max_connections`.
pub struct Shared {
    pub mesh: Mesh,
    pub config: Config,
    pub connections: AtomicUsize,
    /// Orders retained updates across shards (one increment per retained PUBLISH).
    pub retain_seq: std::sync::atomic::AtomicU64,
}

/// A session's slot in this shard's table; the trie stores these.
pub type SessionId = u32;
/// A connection's slot in this shard's table.
pub type ConnId = u32;

/// Output bytes a connection may have waiting before QoS 0 messages to it are dropped.
pub const OUTPUT_HIGH_WATER_BYTES: usize = 4 << 20;

/// A session and where it stands on this shard.
pub struct SessionEntry {
    pub session: Session,
    pub conn: Option<ConnId>,
    /// The registration this session holds at its client id's home shard.
    pub token: ConnectToken,
    /// When the connection went away (for session expiry).
    pub offline_since: Option<Instant>,
    /// A will waiting out its Will Delay Interval (MQTT 5), with its due time.
    /// Boxed, as are the other rarely-set fields here: sessions are many, wills few.
    pub delayed_will: Option<Box<(Instant, Message)>>,
    /// Set on the stub left behind when the session moved to another shard: deliveries
    /// go on to (shard, handoff token) until the new holder releases the stub.
    pub moved_to: Option<Box<(u16, ConnectToken)>>,
    /// Set on a session that just arrived from another shard, until the old holder's
    /// stub is gone: a message can then come both ways, so deliveries are deduplicated
    /// by the identity of the shared message.
    // Boxed on purpose: an empty HashMap is 48 bytes inline in every session entry, the
    // box 8, and a session arrives from another shard rarely.
    #[allow(clippy::box_collection)]
    pub arriving: Option<Box<HashMap<usize, Arc<Message>>>>,
}

/// Why a connection is being closed by the broker.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CloseKind {
    /// The client sent DISCONNECT: no will (unless 5.0 asked for it).
    Clean,
    /// A protocol error, keepalive expiry, socket error or takeover: the will is published.
    Abnormal,
}

/// A connection: its output buffer and where it stands.
pub struct ConnEntry {
    pub peer: SocketAddr,
    pub out: BytesMut,
    /// Set while the connection is in [`ShardState::to_flush`].
    pub flush_queued: bool,
    /// Set when the broker decided to close; the writer flushes, then shuts the socket.
    pub closing: bool,
    pub session: Option<SessionId>,
    pub client_id: Option<ByteStr>,
    pub version: ProtocolVersion,
    pub will: Option<Box<Message>>,
    /// Will Delay Interval (MQTT 5), seconds.
    pub will_delay_secs: u32,
    /// Set when this connection lost its session to a newer connection.
    pub taken_over: bool,
    /// Close after this much silence (1.5 x keepalive [MQTT-3.1.2-24]); 0 is never.
    pub keepalive_ms: u64,
    /// When the client last sent something, on the shard clock.
    pub last_heard_ms: u64,
    /// Set when the keepalive sweep closed the connection.
    pub keepalive_expired: bool,
    /// Whether the client wants Reason Strings (MQTT 5 Request Problem Information).
    pub problem_information: bool,
    /// The reading and the writing side each set theirs when they end; the last one
    /// removes the entry, so the writing side can still flush a final DISCONNECT.
    pub reader_done: bool,
    pub writer_done: bool,
}

impl ConnEntry {
    /// A connection that has not sent CONNECT yet.
    pub fn new(peer: SocketAddr) -> Self {
        ConnEntry {
            peer,
            out: BytesMut::new(),
            flush_queued: false,
            closing: false,
            session: None,
            client_id: None,
            version: ProtocolVersion::V3_1_1,
            will: None,
            will_delay_secs: 0,
            taken_over: false,
            keepalive_ms: 0,
            last_heard_ms: 0,
            keepalive_expired: false,
            problem_information: true,
            reader_done: false,
            writer_done: false,
        }
    }
}

/// A CONNECT waiting for its client id's home shard to answer.
pub struct PendingConnect {
    /// The answer: `Some(None)` for a fresh session, `Some(Some(sid))` for a resumed
    /// one, already installed here (offline) when its handoff arrived.
    pub result: Option<Option<SessionId>>,
    /// The connection that sent the CONNECT.
    pub conn: ConnId,
}

/// A SUBSCRIBE whose SUBACK waits for a barrier round trip to every other shard, so
/// that a message any client publishes after seeing the SUBACK reaches the new
/// subscription, and the retained messages it gets are the newest.
pub struct PendingSubAck {
    pub conn: ConnId,
    pub sid: SessionId,
    pub suback: crate::protocol::SubAck,
    /// Subscriptions that get retained messages once the barrier completes.
    pub retained_for: Vec<(ByteStr, Subscription)>,
    /// Shards that have not answered yet.
    pub waiting: usize,
}

/// A drop counter logged once per episode: what was added since the last report.
#[derive(Default, Debug)]
pub struct DropCounter {
    count: u64,
    logged: u64,
}

impl DropCounter {
    pub fn add(&mut self) {
        self.count += 1;
    }

    /// Drops since the last call, if any.
    fn unreported(&mut self) -> Option<u64> {
        let new = self.count - self.logged;
        self.logged = self.count;
        (new > 0).then_some(new)
    }
}

/// Counters reported in the log, once per episode.
#[derive(Default, Debug)]
pub struct DropStats {
    /// QoS 0 messages to a subscriber whose output was above [`OUTPUT_HIGH_WATER_BYTES`].
    pub qos0_slow_subscriber: DropCounter,
    /// QoS 1/2 messages beyond `max_queued_messages`.
    pub queue_full: DropCounter,
    /// Shared-subscription messages whose group had no member left on any shard.
    pub shared_no_member: DropCounter,
}

/// What a session handover does once every other shard has answered a barrier.
pub enum HandoverStep {
    /// New holder: every shard now routes to the moved-in session; tell the old holder
    /// (`holder`) its stub for handoff `token` may go.
    ReleaseOldStub { holder: u16, token: ConnectToken },
    /// Old holder: everything sent to the stub for handoff `token` has been forwarded;
    /// drop it and tell `new_holder`.
    DropStub { token: ConnectToken, new_holder: u16 },
}

/// The value stored per subscription in the trie.
pub type SubValue = Subscription;

/// One shard.
pub struct ShardState {
    pub id: u16,
    pub shared: Arc<Shared>,
    pub limits: Limits,
    pub trie: Trie<SessionId, SubValue>,
    /// Subscriptions per filter on this shard, to send interest changes on 0 <-> 1.
    pub filter_refs: HashMap<Arc<str>, u32>,
    pub retained: RetainedStore<Retained>,
    /// Cleared retained topics, oldest first, to forget after a while.
    pub tombstones: VecDeque<(Instant, ByteStr, u64)>,
    /// SUBACKs waiting for every other shard to have seen the subscription's interest.
    pub pending_subacks: HashMap<u64, PendingSubAck>,
    /// Session-handover steps waiting for a barrier round trip: barrier token ->
    /// (answers awaited, the step to take when all have come).
    pub handover_barriers: HashMap<u64, (usize, HandoverStep)>,
    /// Sessions that arrived and whose old stub still exists: handoff token -> slot.
    pub arrivals: HashMap<ConnectToken, SessionId>,
    /// Stubs of sessions that moved away: handoff token -> slot.
    pub stubs: HashMap<ConnectToken, SessionId>,
    /// Stubs whose new holder has released them while an older holder's stub still
    /// forwards into them (the session moved twice in quick succession): stub slot ->
    /// (its handoff token, the new holder). They go when the older stub is gone.
    pub deferred_releases: HashMap<SessionId, (ConnectToken, u16)>,
    next_barrier: u64,
    pub sessions: Slab<SessionEntry>,
    pub by_client: HashMap<ByteStr, SessionId>,
    /// The home-shard registry: client id -> the registration that owns it.
    pub registry: HashMap<ByteStr, ConnectToken>,
    pub conns: Slab<ConnEntry>,
    pub pending: HashMap<ConnectToken, PendingConnect>,
    /// Messages for a shard whose queue was full, kept in order.
    pub backlog: Vec<VecDeque<MeshMsg>>,
    /// Shards sent to since the last wake-up round.
    pub to_wake: Vec<bool>,
    next_token: u64,
    pub drops: DropStats,
    /// Connections with output appended since the event loop last sent.
    pub to_flush: Vec<ConnId>,
    /// CONNECTs whose home shard has answered, for the event loop to complete.
    pub connects_ready: Vec<ConnectToken>,
    pub rng: u64,
    /// [`now_ms`] as of the current batch: one clock read per batch, not per message.
    pub clock_ms: u64,
    /// Bytes of messages written to connections' output this turn (the event loop bounds it).
    pub turn_output_bytes: usize,
    /// The publish path's match list, kept to reuse its allocation.
    pub scratch_matches: Vec<super::routing::Match>,
    /// Recent topics' routes (see [`RouteCache`]): most publishes skip the trie walk.
    pub route_cache: RouteCache<super::routing::Match>,
    pub scratch_shards: Vec<u16>,
}

impl ShardState {
    pub fn new(id: u16, shared: Arc<Shared>) -> Self {
        let c = &shared.config;
        let limits = Limits {
            max_inflight_messages: c.max_inflight_messages,
            max_queued_messages: c.max_queued_messages,
            max_queued_bytes: c.max_queued_bytes,
            receive_maximum: c.receive_maximum,
            ..Limits::default()
        };
        let shards = shared.mesh.shards();
        ShardState {
            id,
            limits,
            trie: Trie::new(id),
            filter_refs: HashMap::new(),
            retained: RetainedStore::new(),
            tombstones: VecDeque::new(),
            pending_subacks: HashMap::new(),
            handover_barriers: HashMap::new(),
            arrivals: HashMap::new(),
            stubs: HashMap::new(),
            deferred_releases: HashMap::new(),
            next_barrier: 0,
            sessions: Slab::default(),
            by_client: HashMap::new(),
            registry: HashMap::new(),
            conns: Slab::default(),
            pending: HashMap::new(),
            backlog: (0..shards).map(|_| VecDeque::new()).collect(),
            to_wake: vec![false; shards],
            next_token: 0,
            drops: DropStats::default(),
            to_flush: Vec::new(),
            connects_ready: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1),
            clock_ms: now_ms(),
            turn_output_bytes: 0,
            scratch_matches: Vec::new(),
            // A per-process random seed: which topics share a cache slot is not predictable.
            route_cache: RouteCache::new(std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                id,
            )),
            scratch_shards: Vec::new(),
            shared,
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A fresh token for a CONNECT on this shard.
    pub fn new_token(&mut self) -> ConnectToken {
        self.next_token += 1;
        ((self.id as u64) << 48) | self.next_token
    }

    /// The shard a token's CONNECT arrived on.
    pub fn token_shard(token: ConnectToken) -> usize {
        (token >> 48) as usize
    }

    /// A client id's home shard, where its registry entry lives.
    pub fn home_shard(&self, client_id: &str) -> usize {
        // FNV-1a: stable across shards and runs, cheap for short ids.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in client_id.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        (h % self.shared.mesh.shards() as u64) as usize
    }

    /// A cheap pseudo-random number (xorshift) for shared-subscription selection.
    pub fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Sends to a shard (this one included) in order: behind any backlog, or into the
    /// backlog when the queue is full.
    pub fn send(&mut self, to: usize, msg: MeshMsg) {
        self.to_wake[to] = true;
        if !self.backlog[to].is_empty() {
            self.backlog[to].push_back(msg);
            return;
        }
        if let Err(msg) = self.shared.mesh.try_send(self.id as usize, to, msg) {
            self.backlog[to].push_back(msg);
        }
    }

    /// Sends to every other shard.
    pub fn broadcast(&mut self, mut make: impl FnMut() -> MeshMsg) {
        for to in 0..self.shared.mesh.shards() {
            if to != self.id as usize {
                let m = make();
                self.send(to, m);
            }
        }
    }

    /// Moves backlog into the queues as space allows; returns true when all is sent.
    pub fn flush_backlog(&mut self) -> bool {
        let mut drained = true;
        for to in 0..self.backlog.len() {
            while let Some(msg) = self.backlog[to].pop_front() {
                if let Err(msg) = self.shared.mesh.try_send(self.id as usize, to, msg) {
                    self.backlog[to].push_front(msg);
                    drained = false;
                    break;
                }
                self.to_wake[to] = true;
            }
        }
        drained
    }

    /// Sends a barrier to every other shard; returns its token and how many answers to
    /// wait for (0 with a single shard).
    pub fn barrier(&mut self) -> (u64, usize) {
        self.next_barrier += 1;
        let token = self.next_barrier;
        let from = self.id;
        self.broadcast(|| MeshMsg::Barrier { from, token });
        (token, self.shared.mesh.shards() - 1)
    }

    /// Whether a backed-up queue has room now, so the backlog can move without waiting.
    pub fn backlog_has_room(&self) -> bool {
        let from = self.id as usize;
        (0..self.backlog.len()).any(|to| !self.backlog[to].is_empty() && self.shared.mesh.has_room(from, to))
    }

    /// Whether any mesh queue toward another shard is backed up.
    pub fn is_backlogged(&self) -> bool {
        self.backlog.iter().any(|b| !b.is_empty())
    }

    /// Wakes the shards sent to since the last call.
    pub fn wake_peers(&mut self) {
        for to in 0..self.to_wake.len() {
            if std::mem::take(&mut self.to_wake[to]) {
                self.shared.mesh.wake(to);
            }
        }
    }

    /// Reads the clock for the batch about to be handled.
    pub fn tick(&mut self) -> u64 {
        self.clock_ms = now_ms();
        self.clock_ms
    }

    /// Closes connections whose client has been silent for 1.5 times its keepalive
    /// [MQTT-3.1.2-24]; MQTT 5 clients get DISCONNECT 0x8D first.
    pub fn sweep_keepalive(&mut self) {
        let now = self.tick();
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                !c.closing && c.keepalive_ms > 0 && now.saturating_sub(c.last_heard_ms) > c.keepalive_ms
            })
            .map(|(id, _)| id)
            .collect();
        for conn in expired {
            if let Some(c) = self.conns.get_mut(conn) {
                c.keepalive_expired = true;
            }
            self.close_conn(conn, Some(ReasonCode::KEEP_ALIVE_TIMEOUT));
        }
    }

    /// Queues a connection for the event loop to send its output (or finish closing).
    pub fn wake_writer(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(conn) {
            if !c.flush_queued {
                c.flush_queued = true;
                self.to_flush.push(conn);
            }
        }
    }

    /// Called as the reading and the writing side each end; the second removes the entry.
    pub fn task_done(&mut self, conn: ConnId, reader: bool) {
        let Some(c) = self.conns.get_mut(conn) else { return };
        if reader {
            c.reader_done = true;
        } else {
            c.writer_done = true;
        }
        c.closing = true;
        if c.reader_done && c.writer_done {
            self.conns.remove(conn);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.wake_writer(conn);
        }
    }

    /// Marks a connection for closing; `goodbye` is the MQTT 5 DISCONNECT reason to send.
    pub fn close_conn(&mut self, conn: ConnId, goodbye: Option<ReasonCode>) {
        self.close_conn_explained(conn, goodbye, "");
    }

    /// [`ShardState::close_conn`] with a Reason String in the DISCONNECT.
    pub fn close_conn_explained(&mut self, conn: ConnId, goodbye: Option<ReasonCode>, why: &str) {
        use crate::protocol::{Disconnect, Packet, Properties};
        let Some(c) = self.conns.get_mut(conn) else { return };
        if c.closing {
            return;
        }
        if let Some(reason) = goodbye.filter(|_| c.version.is_v5() && c.client_id.is_some()) {
            // Sent only to a client that did not turn problem information off, although
            // the spec would allow it in a DISCONNECT [MQTT-3.1.2-29].
            let properties = (!why.is_empty() && c.problem_information).then(|| {
                Box::new(Properties { reason_string: Some(ByteStr::from(why)), ..Default::default() })
            });
            Packet::Disconnect(Disconnect { reason, properties }).encode(c.version, &mut c.out);
        }
        c.closing = true;
        self.wake_writer(conn);
    }
}

impl ShardState {
    /// Logs drop counters once per episode: when they moved since the last report.
    pub fn log_drops(&mut self) {
        let d = &mut self.drops;
        if let Some(n) = d.qos0_slow_subscriber.unreported() {
            crate::log!(
                Warning,
                "Warning: dropped {n} QoS 0 messages to slow subscribers (output buffer above {OUTPUT_HIGH_WATER_BYTES} bytes)."
            );
        }
        if let Some(n) = d.shared_no_member.unreported() {
            crate::log!(Warning, "Warning: dropped {n} shared-subscription messages: no group member left.");
        }
        if let Some(n) = d.queue_full.unreported() {
            crate::log!(Warning, "Warning: dropped {n} QoS 1/2 messages: max_queued_messages reached.");
        }
    }
}

/// The mesh queue length of [`test_shards`]: the default's.
#[cfg(test)]
const MESH_QUEUE_CAPACITY: usize = crate::config::DEFAULT_MESH_QUEUE as usize;

/// `n` shard states joined by one mesh, default configuration: for sans-IO tests.
#[cfg(test)]
pub(super) fn test_shards(n: usize) -> Vec<ShardState> {
    let shared = Arc::new(Shared {
        mesh: Mesh::new(n, MESH_QUEUE_CAPACITY),
        config: Config::default(),
        connections: AtomicUsize::new(0),
        retain_seq: Default::default(),
    });
    (0..n).map(|id| ShardState::new(id as u16, shared.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_shards() -> (ShardState, ShardState) {
        let mut s = test_shards(2);
        let b = s.pop().expect("two");
        (s.pop().expect("two"), b)
    }

    fn forward() -> MeshMsg {
        MeshMsg::BarrierAck { token: 0 }
    }

    #[test]
    fn full_mesh_queue_keeps_messages_in_order_in_a_backlog_and_drains_it() {
        let (mut a, b) = two_shards();
        for token in 0..MESH_QUEUE_CAPACITY as u64 + 10 {
            a.send(1, MeshMsg::BarrierAck { token });
        }
        assert!(a.is_backlogged(), "the queue holds {MESH_QUEUE_CAPACITY}; the rest waits");
        assert!(!a.flush_backlog(), "nothing drained yet");
        // Shard 1 takes everything queued, in order; then the backlog fits.
        let mesh = &b.shared.mesh;
        let mut next = 0;
        while let Some(MeshMsg::BarrierAck { token }) = mesh.try_recv(0, 1) {
            assert_eq!(token, next);
            next += 1;
        }
        assert!(a.flush_backlog());
        assert!(!a.is_backlogged());
        while let Some(MeshMsg::BarrierAck { token }) = mesh.try_recv(0, 1) {
            assert_eq!(token, next);
            next += 1;
        }
        assert_eq!(next, MESH_QUEUE_CAPACITY as u64 + 10, "nothing lost, nothing reordered");
    }

    #[test]
    fn sends_behind_a_backlog_wait_their_turn_even_when_the_queue_has_room() {
        let (mut a, b) = two_shards();
        for _ in 0..MESH_QUEUE_CAPACITY {
            a.send(1, forward());
        }
        a.send(1, MeshMsg::BarrierAck { token: 7 });
        let _ = b.shared.mesh.try_recv(0, 1); // one slot frees up
        a.send(1, MeshMsg::BarrierAck { token: 8 });
        // 8 must not overtake 7, which is still in the backlog.
        assert_eq!(a.backlog[1].len(), 2);
    }

    #[test]
    fn both_directions_full_does_not_block_either_shard() {
        let (mut a, mut b) = two_shards();
        for _ in 0..MESH_QUEUE_CAPACITY + 1 {
            a.send(1, forward());
            b.send(0, forward());
        }
        // Neither send blocked; each shard can still drain what it receives.
        assert!(a.is_backlogged() && b.is_backlogged());
        let mut received = 0;
        while let Some(m) = a.shared.mesh.try_recv(1, 0) {
            a.on_mesh(m);
            received += 1;
        }
        assert_eq!(received, MESH_QUEUE_CAPACITY);
        assert!(b.flush_backlog(), "room again toward shard 0");
    }
}
